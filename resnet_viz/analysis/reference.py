"""The experiments' reference results, committed in assets/reference/ (made by assets/make_reference.py with
the default settings): read here as plain numbers, so the Experiments page shows them at once."""
import csv
import json
from functools import cache

import numpy as np

from ..data.arrays import ASSETS

REFERENCE = ASSETS / "reference"
REFERENCE_STEPS = 300  # the lesion, landscape and shattering references use models trained this long


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
