"""Saving a run and opening it again: identical records, charts and weights; damaged or hostile files are
refused with a message and change nothing."""
import csv
import io
import json
import zipfile

import numpy as np
import pytest
import torch

from resnet_viz import runfile
from resnet_viz.config import LabError, ModelSpec, TrainSpec
from resnet_viz.i18n import tr
from resnet_viz.plots import run as plots
from resnet_viz.training.engine import Job, WorkerQueue


def t(key, **kw):
    return tr("en", key, **kw)


@pytest.fixture(scope="module")
def trained():
    job = Job([ModelSpec(depth=8, skip=False), ModelSpec(depth=8, alpha=0.5, learn_alpha=True)],
              TrainSpec(steps=12, eval_every=5, batch_size=32), queue=WorkerQueue(1))
    snap = job.run_blocking()
    assert snap.state == "done"
    return job, snap, runfile.run_bytes(snap, job.nets, job.dataset, {"loss": b"\x89PNG fake"})


def reopen(data: bytes) -> Job:
    return Job.reopen(runfile.read_run(data), queue=WorkerQueue(1))


def figures(views):
    return [f.to_json() for f in (plots.loss_figure(views, t), plots.accuracy_figure(views, t),
                                  plots.grad_heatmap_figure(views, t), plots.grad_ratio_figure(views, t),
                                  plots.scale_figure(views, t), plots.ratio_heatmap_figure(views, t))]


def test_a_saved_run_reopens_with_identical_records_charts_and_weights(trained):
    job, snap, data = trained
    again = reopen(data)
    snap2 = again.snapshot()
    assert (snap2.state, snap2.step, snap2.elapsed, snap2.train) == (snap.state, snap.step, snap.elapsed, snap.train)
    for a, b in zip(snap.models, snap2.models):
        assert a.spec == b.spec and a.diverged_step == b.diverged_step
        for k in runfile.ARRAYS:
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)
    assert figures(snap.models) == figures(snap2.models)
    assert plots.summary_rows(snap.models, t) == plots.summary_rows(snap2.models, t)
    x = torch.randn(3, 1, 28, 28)
    for net, net2 in zip(job.nets, again.nets):
        with torch.inference_mode():
            torch.testing.assert_close(net(x), net2(x), rtol=0, atol=0)
    assert again.start() is again and again.snapshot().state == "done", "a reopened run must not retrain"


def test_the_zip_holds_what_the_readme_promises(trained):
    _, snap, data = trained
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = set(z.namelist())
        assert {"run.json", "records.npz", "metrics.csv", "grad_norms.csv", "metrics.json", "models/0.pt",
                "models/1.pt", "charts/loss.png"} <= names
        rows = list(csv.DictReader(io.StringIO(z.read("metrics.csv").decode())))
        meta = json.loads(z.read("run.json"))
        metrics = json.loads(z.read("metrics.json"))
        sd = torch.load(io.BytesIO(z.read("models/1.pt")), weights_only=True)
    assert len(rows) == 2 * 12 and rows[0]["model"] == "plain-8" and float(rows[0]["train_loss"]) > 0
    assert [r["test_acc"] != "" for r in rows[:12]].count(True) == 3  # steps 5, 10 and the last
    assert meta["models"][1]["alpha"] == 0.5 and meta["train"]["steps"] == 12
    assert set(metrics["curves"]) == {"plain-8", "res-8-a0.5L"}
    assert any(k.endswith("alpha.weight") for k in sd)


def test_every_chart_of_the_lab_is_drawn_as_a_png(trained):
    """The export's pictures: one PNG per Lab chart, 1100 px wide at scale 2, as tall as the page draws it
    (kaleido's occasional blank tab is drawn again, so none goes missing)."""
    import struct
    _, snap, _ = trained
    figs = plots.lab_figures(snap.models, t)
    pngs = plots.figure_pngs(figs)
    assert list(pngs) == list(figs) and {"loss", "accuracy", "alpha_beta"} <= set(pngs)
    for name, png in pngs.items():
        assert png[:8] == b"\x89PNG\r\n\x1a\n", name
        width, height = struct.unpack(">II", png[16:24])
        assert width == 2200 and height == 2 * figs[name].layout.height, (name, width, height)


def damaged_copy(data: bytes, replace: dict[str, bytes | None]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            if item.filename in replace:
                if replace[item.filename] is not None:
                    dst.writestr(item.filename, replace[item.filename])
            else:
                dst.writestr(item.filename, src.read(item.filename))
    return out.getvalue()


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def evil_checkpoint() -> bytes:
    buf = io.BytesIO()
    torch.save({"stem.weight": Evil()}, buf)
    return buf.getvalue()


def other_architecture() -> bytes:
    buf = io.BytesIO()
    from resnet_viz.models import build_model
    torch.save(build_model(ModelSpec(depth=14)).state_dict(), buf)
    return buf.getvalue()


def edited_meta(data: bytes, **changes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        meta = json.loads(z.read("run.json"))
    for k, v in changes.items():
        meta[k] = v
    return damaged_copy(data, {"run.json": json.dumps(meta).encode()})


CASES = {
    "not a zip": lambda d: b"hello, I am a PNG" * 100,
    "truncated": lambda d: d[: len(d) // 2],
    "no run.json": lambda d: damaged_copy(d, {"run.json": None}),
    "run.json not json": lambda d: damaged_copy(d, {"run.json": b"{nope"}),
    "foreign json": lambda d: damaged_copy(d, {"run.json": b'{"format": "keras"}'}),
    "bad depth": lambda d: edited_meta(d, models=[{"depth": 9}, {"depth": 8}]),
    "bad lr": lambda d: edited_meta(d, train={"lr": -1}),
    "step beyond run": lambda d: edited_meta(d, step=10_000),
    "nan elapsed": lambda d: edited_meta(d, elapsed="NaN"),
    "missing checkpoint": lambda d: damaged_copy(d, {"models/1.pt": None}),
    "garbage checkpoint": lambda d: damaged_copy(d, {"models/0.pt": b"\x00" * 100}),
    "pickle with code": lambda d: damaged_copy(d, {"models/0.pt": evil_checkpoint()}),
    "other architecture": lambda d: damaged_copy(d, {"models/0.pt": other_architecture()}),
    "records cut short": lambda d: damaged_copy(d, {"records.npz": b"PK\x03\x04"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_or_hostile_run_is_refused_with_a_message(trained, case, capsys):
    _, _, data = trained
    with pytest.raises(LabError) as e:
        reopen(CASES[case](data))
    assert e.value.key == "error.run_file"
    assert "damaged" in e.value.text("en") and "损坏" in e.value.text("zh")
    assert "pwned" not in capsys.readouterr().out


def test_too_large_files_are_refused_before_unpacking(trained, monkeypatch):
    _, _, data = trained
    monkeypatch.setattr(runfile, "MAX_UNPACKED_BYTES", 1000)
    with pytest.raises(LabError, match="too large when unpacked"):
        runfile.read_run(data)
    monkeypatch.setattr(runfile, "MAX_RUN_BYTES", 1000)
    with pytest.raises(LabError) as e:
        runfile.read_run(data)
    assert e.value.key == "error.run_file_size"


def test_a_run_saved_mid_training_reopens_as_stopped(trained):
    job, snap, _ = trained
    from dataclasses import replace
    data = runfile.run_bytes(replace(snap, state="running"), job.nets, job.dataset)
    assert reopen(data).snapshot().state == "stopped"
