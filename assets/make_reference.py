"""Make the experiments' reference results in assets/reference/, with the default settings, so the app shows
them at once (a teacher with no time to wait still has the picture); "Recompute live" redoes them.

    python assets/make_reference.py            # about 15 minutes on 2 cores
    python assets/make_reference.py --skip-sweep
    python assets/make_reference.py --only-lessons   # about 5 minutes
    python assets/make_reference.py --only-models    # about 2 minutes
    python assets/make_reference.py --only-landscape # the models, then landscape.json alone

Writes sweep.csv (depth sweep), lesion.csv, landscape.json (2-D slices and 1-D interpolations) and
shattered.json (gradient correlations at initialisation and after training), from the degradation preset's
four models trained for REFERENCE_STEPS steps (seed 0) on the bundled MNIST subset; models.zip, those
four models as a saved run with float16 weights (the Draw page's models before anyone trains, and
`python -m resnet_viz predict`); and lessons.json: the
degradation and Fig. 4 presets' models at each of their settings' seeds, every step's training
loss (the science checks read seeds 1 and 2 from it and retrain seed 0 live; a check pins the file to the
code by each seed's first-step losses and the presets' settings).
"""
import argparse
import csv
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from resnet_viz.analysis import experiments as E  # noqa: E402
from resnet_viz.analysis import reference  # noqa: E402
from resnet_viz.analysis.reference import REFERENCE_STEPS  # noqa: E402
from resnet_viz.config import PRESETS  # noqa: E402
from resnet_viz.data.arrays import bundled_mnist  # noqa: E402
from resnet_viz.runfile import run_bytes  # noqa: E402
from resnet_viz.training.engine import Job  # noqa: E402

OUT = Path(__file__).resolve().parent / "reference"
LANDSCAPE_MODELS = ("plain-56", "res-56")
SHATTER_PAIR = (0, 1)  # test digits at the ends of the input path


def _round(values, digits=5):
    return [None if v != v else round(float(v), digits) for v in values]


def trained_models():
    preset = PRESETS["degradation"]
    job = Job(preset.models, replace(preset.train, steps=REFERENCE_STEPS, eval_every=REFERENCE_STEPS))
    job.run_blocking()
    return job


def write_lesion(job, d) -> None:
    with open(OUT / "lesion.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "skip", "block_index", "block", "accuracy", "full_accuracy"])
        for spec, net in zip(job.models, job.nets):
            full = E.accuracy(net, d.test_images, d.test_labels)
            acc = E.lesion(net, d.test_images, d.test_labels)
            for i, ((name, _), a) in enumerate(zip(net.blocks(), acc), 1):
                w.writerow([spec.name, spec.skip, i, name, "" if a != a else f"{a:.4f}", f"{full:.4f}"])


def write_landscape(job) -> None:
    out = {"resolution": E.LANDSCAPE_RESOLUTION, "span": E.LANDSCAPE_SPAN, "images": E.LANDSCAPE_IMAGES,
           "steps": REFERENCE_STEPS,
           "slices": {}, "interpolation": {}}
    starts = E.initial_nets(job.models, job.train.seed)
    for spec, net, start in zip(job.models, job.nets, starts):
        ts, loss = E.interpolation_1d(start, net)
        out["interpolation"][spec.name] = {"skip": spec.skip, "t": _round(ts, 4), "loss": _round(loss)}
        if spec.name in LANDSCAPE_MODELS:
            coords, grid = E.landscape_2d(net, resolution=out["resolution"], span=out["span"])
            out["slices"][spec.name] = {"skip": spec.skip, "coords": _round(coords, 4),
                                        "loss": [_round(row) for row in grid]}
    (OUT / "landscape.json").write_text(json.dumps(out))


def write_shattered(job, d) -> None:
    a, b = (d.test_images[i] for i in SHATTER_PAIR)
    out = {"pair": SHATTER_PAIR, "steps": REFERENCE_STEPS, "init": {}, "trained": {}}
    starts = E.initial_nets(job.models, job.train.seed)
    for spec, net, start in zip(job.models, job.nets, starts):
        for key, model in (("init", start), ("trained", net)):
            lags, corr = E.gradient_correlation(model, a, b)
            out[key][spec.name] = {"skip": spec.skip, "lags": lags.tolist(), "corr": _round(corr, 4)}
    (OUT / "shattered.json").write_text(json.dumps(out))


def write_models(job) -> None:
    snap = job.snapshot()
    reference.models_path().write_bytes(run_bytes(snap, job.nets, "mnist-5k", half=True))


def write_lessons() -> None:
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "presets": {}}
    for key in reference.LESSON_PRESETS:
        models, train = reference.lesson_settings(key, 0)
        entry = out["presets"][key] = {"train": reference.as_plain(train),
                                       "models": [reference.as_plain(m) for m in models], "seeds": {}}
        for seed in reference.LESSON_SEEDS:
            t0 = time.perf_counter()
            snap = Job(*reference.lesson_settings(key, seed)).run_blocking()
            entry["seeds"][seed] = {"first_loss": {v.name: float(v.train_loss[0]) for v in snap.models},
                                    "train_loss": {v.name: _round(v.train_loss) for v in snap.models}}
            print(f"lesson {key} seed {seed} in {time.perf_counter() - t0:.0f} s", flush=True)
    reference.lessons_path().write_text(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--only-lessons", action="store_true", help="write lessons.json only")
    parser.add_argument("--only-models", action="store_true", help="write models.zip only")
    parser.add_argument("--only-landscape", action="store_true",
                        help="write landscape.json only (its grid: LANDSCAPE_RESOLUTION and LANDSCAPE_SPAN)")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    if args.only_lessons:
        return write_lessons()
    d = bundled_mnist()
    t0 = time.perf_counter()
    job = trained_models()
    print(f"trained the four models in {time.perf_counter() - t0:.0f} s", flush=True)
    if args.only_landscape:
        return write_landscape(job)
    write_models(job)
    if args.only_models:
        return
    write_lesion(job, d)
    write_shattered(job, d)
    write_landscape(job)
    print(f"lesion, shattered, landscape done at {time.perf_counter() - t0:.0f} s", flush=True)
    if not args.skip_sweep:
        rows = E.sweep(on_progress=lambda done, total: print(f"sweep {done}/{total}", flush=True))
        E.write_sweep_csv(rows, OUT / "sweep.csv")
    write_lessons()
    print(f"wrote {OUT} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
