"""`python -m resnet_viz`: real subprocess runs, real training on the bundled MNIST digits."""
import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from speed import hang_s

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "resnet_viz", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=hang_s(timeout))


def test_train_writes_metrics_plots_and_summary(tmp_path):
    out = tmp_path / "run"
    r = cli("train", "--model", "plain-8", "--model", "depth=8,skip=true,name=res8", "--steps", "12",
            "--eval-every", "5", "--batch-size", "32", "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    names = [m["name"] for m in summary["models"]]
    assert names == ["plain-8", "res8"]
    for m in summary["models"]:
        assert set(m) >= {"name", "skip", "depth", "params", "flops", "final_train_loss", "train_acc", "test_acc",
                          "diverged", "seconds"}
        assert m["depth"] == 8 and m["params"] > 0 and m["flops"] > 0 and not m["diverged"]
        assert 0 < m["final_train_loss"] < 5 and 0 <= m["test_acc"] <= 1
    assert summary["models"][0]["params"] == summary["models"][1]["params"]  # option A: same parameters
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 2 * 12
    # run.zip is the same run, ready to open in the app
    from resnet_viz.runfile import read_run
    saved = read_run((out / "run.zip").read_bytes())
    assert [m.name for m in saved.models] == ["plain-8", "res8"] and saved.step == 12 and saved.state == "done"
    tested = [r for r in rows if r["test_acc"]]
    assert [int(r["step"]) for r in tested if r["model"] == "res8"] == [5, 10, 12]
    grads = list(csv.DictReader(open(out / "grad_norms.csv")))
    assert len(grads) == 2 * 12 * 8 and all(float(g["grad_norm"]) > 0 for g in grads)
    for png in ("curves.png", "grad_norms.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["train", "--steps", "0", "--out", "x"], "Steps must be"),
    (["train", "--model", "depth=21", "--out", "x"], "Depth must be 6n+2"),
    (["train", "--model", "plain-8", "--model", "plain-8", "--out", "x"], "used twice"),
    (["train", "--lr", "abc", "--out", "x"], "invalid float value"),
    (["train", "--lr", "-1", "--out", "x"], "Learning rate must be"),
    (["train", "--model", "colour=red", "--out", "x"], "unknown model setting"),
    (["train", "--preset", "nope", "--out", "x"], "invalid choice"),
    (["train", "--steps", "5"], "--out"),
    (["bench", "--steps", "0"], "Steps must be"),
    (["fly"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    code, err = run_main(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err


def run_main(args, capsys) -> tuple[int, str]:
    """The CLI's main() in this process (3 s less than a fresh interpreter importing torch, per case): its
    exit code and what it wrote to stderr. test_a_real_process_says_bad_input_in_one_line covers the process."""
    from resnet_viz.cli import main
    try:
        code = main(list(args))
    except SystemExit as e:  # argparse's own errors
        code = e.code
    return code, capsys.readouterr().err


def test_a_real_process_says_bad_input_in_one_line():
    r = cli("train", "--model", "depth=21", "--out", "x", timeout=120)
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "Depth must be 6n+2" in r.stderr, r.stderr


def test_bench_times_a_presets_lesson():
    """`bench --presets` trains each preset until its Lesson shows; here the quickest one, the vanishing
    preset, whose lesson (the first/last gradient ratio) is on screen after its first step."""
    from resnet_viz.bench import lesson_seconds
    seconds, step = lesson_seconds("vanishing")
    assert step == 1 and seconds > 0


def test_bench_prints_one_json_object():
    # --no-lesson: the lesson's timing trains the default preset (40 s here); the step it reports is checked on
    # the same run, trained in the background, by test_science.py's test_the_default_preset_shows_the_lesson.
    r = cli("bench", "--steps", "2", "--no-lesson")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["cores"] >= 1 and data["matmul_gflops"] > 0
    assert [m["name"] for m in data["models"]] == ["plain-20", "res-20", "plain-56", "res-56"]
    assert all(m["steps_per_s"] > 0 and 0 < m["efficiency"] for m in data["models"])
    # probe_overhead is a ratio of two step times minus one: a figure, not a pass line. With one core kept
    # busy by another process, 5 pairs of 2-thread steps gave -0.65 (the noise, not the probes).
    assert math.isfinite(data["probe_overhead"]) and data["probe_overhead"] > -1 and data["rss_mb"] > 100
    assert "degradation_seconds" not in data and "degradation_step" not in data


def test_bench_split_trains_the_default_run_in_one_worker_and_in_one_per_core():
    """`bench --split`'s three ways on 1 step: every model of the preset in exactly one of the single-thread
    workers, the costliest two (plain-56 and res-56) apart, each way timed (a figure, not a pass line)."""
    from resnet_viz.bench import split_bench
    from resnet_viz.config import DEFAULT_PRESET, PRESETS
    out = split_bench(steps=1)
    names = [n for group in out["split_groups"] for n in group]
    assert sorted(names) == sorted(m.name for m in PRESETS[DEFAULT_PRESET].models)
    if len(out["split_groups"]) > 1:
        assert not any({"plain-56", "res-56"} <= set(group) for group in out["split_groups"])
    assert all(v > 0 for k, v in out.items() if k.endswith("_s")), out
    print("bench --split on 1 step (s):", out)


# ---- predict: the bundled reference models (or a saved run's) on one image -----------------------------------

def _digit_png(path: Path, image) -> Path:
    from PIL import Image
    Image.fromarray(255 - image).resize((112, 112)).save(path)  # dark ink on light paper, as a phone sees it
    return path


def test_predict_names_every_reference_model_s_top_class(tmp_path):
    from resnet_viz.data.arrays import bundled_mnist
    d = bundled_mnist()
    for i in [int(i) for i in range(40) if d.test_labels[i] == 7][:1]:
        png = _digit_png(tmp_path / f"{i}.png", d.test_images[i])
        r = cli("predict", str(png), timeout=120)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert [line.split(":")[0] for line in lines] == ["plain-20", "res-20", "plain-56", "res-56"]
        assert lines[3].startswith(f"res-56: {d.test_labels[i]} ("), lines  # the well-trained residual net
        data = json.loads(cli("predict", str(png), "--json", timeout=120).stdout)
        assert set(data) == {"plain-20", "res-20", "plain-56", "res-56"}
        for probs in data.values():
            assert list(probs) == [str(c) for c in range(10)] and sum(probs.values()) == pytest.approx(1, abs=1e-4)


def test_predict_explains_a_blank_image_a_missing_file_and_a_bad_run(tmp_path):
    import numpy as np
    blank = _digit_png(tmp_path / "blank.png", np.zeros((28, 28), np.uint8))
    r = cli("predict", str(blank), timeout=120)
    assert r.returncode == 2 and "shows no digit" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = cli("predict", str(tmp_path / "nothing.png"), timeout=120)
    assert r.returncode == 2 and "cannot read" in r.stderr and "Traceback" not in r.stderr, r.stderr
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    r = cli("predict", str(blank), "--run", str(tmp_path / "bad.zip"), timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr


def test_a_run_too_big_for_the_servers_memory_is_refused_before_anything_starts(tmp_path):
    """The run measured at 16 GB of resident memory (3 min 42 s for 2 steps): with the budget a 24 GB
    machine with one trainer gets by default (12 GB), it is refused at once, with what to lower."""
    import os
    out = tmp_path / "huge"
    r = subprocess.run([sys.executable, "-m", "resnet_viz", "train", "--model", "depth=110,width=2.0,stem_stride=1",
                        "--batch-size", "1024", "--steps", "2", "--out", str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=hang_s(120), env={**os.environ, "RESNET_LAB_RUN_MEMORY_MB": "12288"})
    assert r.returncode == 2, r.stderr
    assert "more than this server allows one run (12.0 GB" in r.stderr and "batch size (now 1024)" in r.stderr, r.stderr
    assert "res-110-w2" in r.stderr and not out.exists(), "nothing started, nothing written"


def test_bench_fusion_times_the_same_gradients_two_ways():
    """`bench --fusion`: a plain and a residual net's step one after the other and fused with vmap over their
    stacked weights compute the same gradients (else the timing compares different work); the times are
    figures, not pass lines."""
    from resnet_viz.bench import fusion_bench
    out = fusion_bench(nets=(("cifar", 8),), repeats=1, threads=(1,))
    assert out["fusion_8_grad_diff"] < 1e-4, out
    assert out["fusion_8_1t_separate_ms"] > 0 and out["fusion_8_1t_fused_ms"] > 0
    print("bench --fusion at depth 8:", out)
