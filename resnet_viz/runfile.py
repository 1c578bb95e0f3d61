"""A saved run: one .zip a teacher can keep, share and reopen later with identical charts.

    run.json         format, dataset, training settings, every model's spec, state, steps done, seconds
    records.npz      every recorded number, exactly (what reopening reads; numpy, no pickle)
    metrics.csv      one row per model and step: losses, accuracies (test ones at evaluation steps), seconds
    grad_norms.csv   one row per model, step and weight layer
    metrics.json     the summary per model plus every curve, NaN as null (for scripts and spreadsheets)
    models/N.pt      model N's state_dict (torch.save); its spec is in run.json. Read back with
                     torch.load(..., weights_only=True), which cannot run code hidden in a file.
    charts/*.png     pictures of the charts (the app adds them when it can draw them)

Reading validates everything and raises LabError("error.run_file", detail=...) for anything that is not a
run this app wrote: a saved file comes from a browser upload and may be anything.
"""
import csv
import io
import json
import zipfile
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .config import (
    MAX_RUN_BYTES,
    LabError,
    ModelSpec,
    TrainSpec,
    check_models,
    spec_from_dict,
)
from .metrics import NAMES, SERIES

FORMAT = "resnet-lab-run/1"
MAX_UNPACKED_BYTES = 600 * 2**20  # a zip that claims more is a zip bomb, not a run
ARRAYS = NAMES  # every recorded series (metrics.SERIES), one array per model


@dataclass(frozen=True)
class SavedRun:
    dataset: str
    train: TrainSpec
    models: tuple[ModelSpec, ...]
    state: str  # done or stopped (a run saved while training is saved as stopped at its last step)
    step: int
    elapsed: float
    arrays: list[dict[str, np.ndarray]]  # per model: ARRAYS, each trimmed to what was recorded
    diverged_steps: list[int]
    state_dicts: list[dict[str, torch.Tensor]]


# ---- writing ------------------------------------------------------------------------------------------------

def run_bytes(snap, nets, dataset: str, charts: dict[str, bytes] | None = None, half: bool = False) -> bytes:
    """The zip for a job's snapshot and its models (their current weights; with `half`, float16 weights:
    half the size, and a prediction within a rounding of the float32 one; reading them back restores float32)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in run_files(snap, dataset).items():
            z.writestr(name, data)
        for i, net in enumerate(nets):
            weights = io.BytesIO()
            torch.save({k: (v.detach().half() if half and v.is_floating_point() else v.detach().clone())
                        for k, v in net.state_dict().items()}, weights)
            z.writestr(f"models/{i}.pt", weights.getvalue())
        for name, png in (charts or {}).items():
            z.writestr(f"charts/{name}.png", png)
    return buf.getvalue()


def run_files(snap, dataset: str) -> dict[str, bytes]:
    """Everything but the weights and pictures, as files: what the CLI writes into its output folder too."""
    state = snap.state if snap.state in ("done", "stopped") else "stopped"
    meta = {"format": FORMAT, "dataset": dataset, "train": asdict(snap.train),
            "models": [asdict(v.spec) for v in snap.models], "state": state, "step": snap.step,
            "elapsed": snap.elapsed, "diverged_steps": [v.diverged_step for v in snap.models]}
    arrays = io.BytesIO()
    np.savez_compressed(arrays, **{f"{i}/{k}": getattr(v, k) for i, v in enumerate(snap.models) for k in ARRAYS})
    return {"run.json": json.dumps(meta, indent=2).encode(), "records.npz": arrays.getvalue(),
            "metrics.csv": _metrics_csv(snap).encode(), "grad_norms.csv": _grad_csv(snap).encode(),
            "metrics.json": json.dumps(_metrics_json(snap, dataset), indent=2).encode()}


def _metrics_csv(snap) -> str:
    """One row per model and step: the per-step series, then the test evaluation's series where one was made."""
    per_step = [s.name for s in SERIES if s.per == "step"]
    per_eval = [s.name for s in SERIES if s.per == "eval" and s.name != "eval_step"]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["model", "step", *per_step, *per_eval])
    for v in snap.models:
        evals = {int(step): j for j, step in enumerate(v.eval_step)}
        for i, step in enumerate(v.step):
            j = evals.get(int(step))
            w.writerow([v.name, int(step), *(_cell(getattr(v, k)[i]) for k in per_step),
                        *("" if j is None else _cell(getattr(v, k)[j]) for k in per_eval)])
    return out.getvalue()


def _grad_csv(snap) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["model", "step", "layer_index", "layer", "grad_norm"])
    for v in snap.models:
        for i, step in enumerate(v.step):
            for j, layer in enumerate(v.layer_names):
                w.writerow([v.name, int(step), j + 1, layer, _cell(v.grad_norm[i, j])])
    return out.getvalue()


def _metrics_json(snap, dataset: str) -> dict:
    return {"dataset": dataset, **summary(snap),
            "curves": {v.name: {"step": v.step.tolist(), "train_loss": _nums(v.train_loss),
                                "train_acc": _nums(v.train_acc), "eval_step": v.eval_step.tolist(),
                                "test_loss": _nums(v.test_loss), "test_acc": _nums(v.test_acc)}
                       for v in snap.models}}


def summary(snap) -> dict:
    models = []
    for v in snap.models:
        models.append({
            "name": v.name, "family": v.spec.family, "skip": v.spec.skip, "depth": v.spec.depth, "params": v.params,
            "flops": v.flops,
            "final_train_loss": _num(v.final_train_loss()),
            "train_acc": _num(v.final_train_acc()),
            "test_acc": _num(float(v.test_acc[-1]) if v.test_acc.size else float("nan")),
            "diverged": v.diverged, "diverged_step": v.diverged_step if v.diverged else None,
            "seconds": round(float(v.seconds.sum()), 3), "spec": asdict(v.spec),
            "csp": v.spec.csp, "csp_fusion": v.spec.csp_fusion if v.spec.csp else None,
            "final_alpha": _last_row(v.alpha), "final_beta": _last_row(v.beta),
        })
    return {"train": asdict(snap.train), "steps_done": snap.step, "wall_seconds": round(snap.elapsed, 3),
            "models": models}


def _last_row(values) -> list | None:
    """alpha or beta of every block after the last trained step (None for plain nets)."""
    rows = values[np.isfinite(values).all(axis=1)] if values.size else values
    return [round(float(x), 6) for x in rows[-1]] if len(rows) else None


def _num(x: float):
    """JSON has no NaN: a value that never became a number is null."""
    return None if not np.isfinite(x) else round(float(x), 6)


def _nums(values) -> list:
    return [_num(float(x)) for x in values]


def _cell(x) -> str:
    if isinstance(x, str):
        return x
    return f"{float(x):.6g}" if np.isfinite(x) else ""


# ---- reading ------------------------------------------------------------------------------------------------

def read_run(data: bytes) -> SavedRun:
    """A saved run from the bytes of its zip, fully checked; LabError("error.run_file") otherwise."""
    if len(data) > MAX_RUN_BYTES:
        raise LabError("error.run_file_size", mb=MAX_RUN_BYTES // 2**20)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if sum(i.file_size for i in z.infolist()) > MAX_UNPACKED_BYTES:
                raise _bad("too large when unpacked")
            meta = _json(z, "run.json")
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise _bad("not a ResNet Lab run (run.json has no known format)")
            train = spec_from_dict(TrainSpec, _dict(meta.get("train")))
            models = check_models(spec_from_dict(ModelSpec, _dict(m)) for m in _list(meta.get("models")))
            step, elapsed = meta.get("step"), meta.get("elapsed")
            if not (isinstance(step, int) and 0 <= step <= train.steps):
                raise _bad(f"step {step!r} is not within the run's {train.steps} steps")
            if not (isinstance(elapsed, (int, float)) and np.isfinite(elapsed) and elapsed >= 0):
                raise _bad("elapsed time is not a number of seconds")
            diverged = _list(meta.get("diverged_steps"))
            if len(diverged) != len(models) or not all(isinstance(d, int) and -1 <= d <= step for d in diverged):
                raise _bad("diverged steps do not match the models")
            with z.open("records.npz") as f, np.load(io.BytesIO(f.read()), allow_pickle=False) as npz:
                arrays = [{k: npz[f"{i}/{k}"] for k in ARRAYS} for i in range(len(models))]
            state_dicts = [_state_dict(z, f"models/{i}.pt") for i in range(len(models))]
    except KeyError as e:
        raise _bad(f"missing {e.args[0]!r}") from None
    except LabError as e:
        if e.key.startswith("error.run_file"):
            raise
        raise _bad(e) from None  # a setting out of range: say which, in the reader's language
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, TypeError) as e:
        raise _bad(f"{type(e).__name__}: {e}") from None
    state = meta.get("state") if meta.get("state") in ("done", "stopped") else "stopped"
    return SavedRun(str(meta.get("dataset", "mnist-5k")), train, models, state, step, float(elapsed), arrays,
                    diverged, state_dicts)


def _bad(detail: "str | LabError") -> LabError:
    return LabError("error.run_file", detail=detail if isinstance(detail, LabError) else detail[:300])


def _json(z: zipfile.ZipFile, name: str):
    try:
        return json.loads(z.read(name).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(f"{name} is not JSON: {e}") from None


def _dict(x) -> dict:
    if not isinstance(x, dict):
        raise _bad("a spec in run.json is not an object")
    return x


def _list(x) -> list:
    if not isinstance(x, list):
        raise _bad("run.json lists no models")
    return x


def _state_dict(z: zipfile.ZipFile, name: str) -> dict[str, torch.Tensor]:
    try:
        sd = torch.load(io.BytesIO(z.read(name)), map_location="cpu", weights_only=True)
    except KeyError:
        raise
    except Exception as e:  # torch raises many kinds for a damaged or hostile file: all mean "not a checkpoint"
        raise _bad(f"{name} is not a checkpoint: {type(e).__name__}") from None
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise _bad(f"{name} is not a state_dict")
    return sd


__all__ = ["SavedRun", "run_bytes", "run_files", "read_run", "summary", "FORMAT",
           "MAX_RUN_BYTES"]
