"""The experiments' reference results, committed in assets/reference/ (made by assets/make_reference.py with
the default settings): read here as plain numbers, so the Experiments page shows them at once."""
import csv
import dataclasses
import json
import threading
from functools import cache

import numpy as np

from ..config import PRESETS, SWEEP_SEEDS
from ..data.arrays import ASSETS

REFERENCE = ASSETS / "reference"
REFERENCE_STEPS = 300  # the lesion, landscape and shattering references use models trained this long
# Presets whose lesson is kept at every seed (lessons.json): their models at the preset's settings.
LESSON_PRESETS = ("degradation", "imagenet_fig4")
LESSON_SEEDS = SWEEP_SEEDS


@cache
def lesion() -> dict:
    """{model: (skip, block names, accuracies with each block deleted, full accuracy)}."""
    out: dict = {}
    with open(REFERENCE / "lesion.csv", newline="") as f:
        for r in csv.DictReader(f):
            entry = (r["skip"] == "True", [], [], float(r["full_accuracy"]))
            skip, names, acc, full = out.setdefault(r["model"], entry)
            names.append(r["block"])
            acc.append(float(r["accuracy"]) if r["accuracy"] else np.nan)
    return {k: (s, n, np.array(a), full) for k, (s, n, a, full) in out.items()}


@cache
def landscape() -> dict:
    data = json.loads((REFERENCE / "landscape.json").read_text())
    for entry in list(data["slices"].values()) + list(data["interpolation"].values()):
        for key in ("coords", "t", "loss"):
            if key in entry:
                entry[key] = np.array(entry[key], dtype=float)
    return data


@cache
def shattered() -> dict:
    data = json.loads((REFERENCE / "shattered.json").read_text())
    for when in ("init", "trained"):
        for entry in data[when].values():
            entry["lags"], entry["corr"] = np.array(entry["lags"]), np.array(entry["corr"], dtype=float)
    return data


def sweep_path():
    return REFERENCE / "sweep.csv"


def as_plain(spec) -> dict:
    """A ModelSpec or TrainSpec as the JSON in lessons.json holds it (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(spec)))


def lesson_settings(key: str, seed: int):
    """What lessons.json holds for a preset at a seed: all its models (the first steps' check reads res-20 too,
    which the degradation lesson does not compare) and its training settings."""
    preset = PRESETS[key]
    return list(preset.models), dataclasses.replace(preset.train, seed=seed)


def lessons_path():
    return REFERENCE / "lessons.json"


@cache
def lessons() -> dict:
    """{preset key: {"train": settings at seed 0, "models": [specs], "seeds": {seed: {"first_loss": {model: the
    first step's loss}, "train_loss": {model: [loss per step]}}}}}, seeds as ints."""
    data = json.loads(lessons_path().read_text())
    for entry in data["presets"].values():
        entry["seeds"] = {int(seed): runs for seed, runs in entry["seeds"].items()}
    return data


def models_path():
    return REFERENCE / "models.zip"


_MODELS_LOCK = threading.Lock()


def reference_job():
    """The default lesson's four nets trained REFERENCE_STEPS steps (a saved run, float16 weights): what the
    Draw, Errors and Gradients pages and `predict` use before anyone trained. One finished Job per process,
    read-only: every session shares it."""
    with _MODELS_LOCK:
        if not hasattr(reference_job, "job"):
            from ..runfile import (
                read_run,  # torch: only when the reference models are first needed
            )
            from ..training.engine import Job
            reference_job.job = Job.reopen(read_run(models_path().read_bytes()))
        return reference_job.job
