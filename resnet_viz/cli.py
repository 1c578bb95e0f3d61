"""`python -m resnet_viz train|sweep|bench|download`: the lab without a browser, for scripts, CI and measurements.

Bad flags or values exit with status 2 and one line on stderr, never a traceback; a failed download exits
with status 1, likewise.
"""
import argparse
import json
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

from .config import (PRESETS, DEFAULT_PRESET, SWEEP_DEPTHS, SWEEP_SEEDS, SWEEP_TRAIN, VALID_DEPTHS, ModelSpec,
                     TrainSpec, spec_from_dict)
from .download import SOURCES
from .i18n import LabError, tr

t = partial(tr, "en")
DATASET_NAMES = ["mnist-5k", *SOURCES]  # data.DATASETS without importing torch, which --help does not need


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_model(text: str) -> ModelSpec:
    """'plain-56', 'res-20', or key=value pairs: 'depth=56,skip=false,shortcut=B,width=0.5,name=wide'."""
    text = text.strip()
    for prefix, skip in (("plain-", False), ("res-", True)):
        if text.startswith(prefix) and text[len(prefix):].isdigit():
            return ModelSpec(depth=int(text[len(prefix):]), skip=skip)
    fields = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected key=value or plain-N/res-N, got {part!r}")
        fields[key.strip().replace("-", "_")] = _value(key.strip(), value.strip())
    unknown = set(fields) - set(ModelSpec.__dataclass_fields__)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown model setting(s): {', '.join(sorted(unknown))}")
    try:
        return spec_from_dict(ModelSpec, fields)
    except LabError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _value(key: str, value: str):
    booleans = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False,
                "off": False}
    key = key.replace("-", "_")
    if key in ("skip", "batch_norm", "learn_alpha", "learn_beta"):
        if value.lower() not in booleans:
            raise argparse.ArgumentTypeError(f"{key} must be true or false, got {value!r}")
        return booleans[value.lower()]
    if key in ("depth", "stem_stride"):
        if not value.lstrip("-").isdigit():
            raise argparse.ArgumentTypeError(f"{key} must be a whole number, got {value!r}")
        return int(value)
    if key in ("width", "alpha", "beta", "csp"):
        try:
            return float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key} must be a number, got {value!r}") from None
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m resnet_viz", description=t("cli.description"))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    train = sub.add_parser("train", help=t("cli.train_help"))
    train.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET)
    train.add_argument("--model", action="append", type=parse_model, metavar="SPEC",
                       help="replace the preset's models; repeat for each: plain-56, res-20, or "
                            "key=value pairs (depth, skip, shortcut, width, batch_norm, init, stem_stride, alpha, "
                            "beta, learn_alpha, learn_beta, scale, csp, csp_fusion, name)")
    defaults = TrainSpec()
    for name, kind in (("steps", int), ("batch_size", int), ("lr", float), ("momentum", float),
                       ("weight_decay", float), ("warmup_steps", int), ("seed", int), ("eval_every", int),
                       ("eval_size", int), ("lr_decay", float)):
        train.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None,
                           help=f"default {getattr(defaults, name)}")
    train.add_argument("--optimizer", choices=["sgd", "adam"], default=None)
    train.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default=None,
                       help="auto (default): CUDA, else Apple MPS, else the CPU")
    train.add_argument("--dataset", choices=DATASET_NAMES, default="mnist-5k",
                       help="default %(default)s (bundled); the others must be downloaded first (see download)")
    train.add_argument("--out", type=Path, required=True, help="folder for metrics.csv, grad_norms.csv, "
                       "metrics.json, summary.json, PNG plots and run.zip (open it in the app)")
    train.add_argument("--quiet", action="store_true", help="no progress lines")

    sweep = sub.add_parser("sweep", help=t("cli.sweep_help"))
    sweep.add_argument("--depths", type=depth_list, default=depth_list(",".join(map(str, SWEEP_DEPTHS))),
                       help="comma-separated depths, each 6n+2 (default %(default)s)")
    sweep.add_argument("--seeds", type=int, default=len(SWEEP_SEEDS), help="seeds 0..N-1 (default %(default)s)")
    sweep.add_argument("--steps", type=int, default=SWEEP_TRAIN.steps, help="training steps per net (default "
                                                                             "%(default)s)")
    sweep.add_argument("--out", type=Path, required=True, help="folder for sweep.csv and degradation.png")

    bench = sub.add_parser("bench", help=t("cli.bench_help"))
    bench.add_argument("--steps", type=int, default=20, help="timed steps per model (after 3 warm-up steps)")
    bench.add_argument("--first-render", action="store_true",
                       help="also start the app and time its first page in Chromium (needs playwright and "
                            "Debian's chromium, from tests/requirements.txt)")
    download = sub.add_parser("download", help=t("cli.download_help"))
    download.add_argument("dataset", choices=list(SOURCES))
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return cmd_train(args)
        if args.command == "sweep":
            return cmd_sweep(args)
        if args.command == "download":
            return cmd_download(args)
        return cmd_bench(args)
    except LabError as e:
        print(f"python -m resnet_viz: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def cmd_train(args) -> int:
    from .data import digits
    from .engine import Job
    from .plots import save_curves_png, save_grad_norms_png
    from .runfile import run_bytes, run_files, summary

    preset = PRESETS[args.preset]
    overrides = {k: getattr(args, k) for k in TrainSpec.__dataclass_fields__ if getattr(args, k, None) is not None}
    train = replace(preset.train, **overrides)
    models = args.model or preset.models
    digits(args.dataset)  # here, not in the training loop: a missing or damaged dataset is a one-line error
    job = Job(models, train, dataset=args.dataset)
    if not _make_folder(args.out):
        return 2
    started = time.perf_counter()

    def progress(step, losses):
        if not args.quiet and (step % 10 == 0 or step == train.steps):
            text = ", ".join(f"{spec.name} {loss:.3f}" for spec, loss in zip(job.models, losses))
            print(f"step {step}/{train.steps} ({time.perf_counter() - started:.0f} s): {text}",
                  file=sys.stderr, flush=True)

    snap = job.run_blocking(progress)
    if snap.state == "failed":
        print(f"python -m resnet_viz: error: training failed: {snap.error}", file=sys.stderr)
        return 1
    files = run_files(snap, args.dataset)
    for name in ("metrics.csv", "grad_norms.csv", "metrics.json"):
        (args.out / name).write_bytes(files[name])
    (args.out / "summary.json").write_text(json.dumps(summary(snap), indent=2))
    save_curves_png(snap.models, args.out / "curves.png", t)
    save_grad_norms_png(snap.models, args.out / "grad_norms.png", t)
    charts = {name: (args.out / f"{name}.png").read_bytes() for name in ("curves", "grad_norms")}
    (args.out / "run.zip").write_bytes(run_bytes(snap, job.nets, args.dataset, charts))  # opens in the app
    for v in snap.models:
        if v.diverged:
            print(t("msg.diverged", name=v.name, step=v.diverged_step), file=sys.stderr)
    print(f"wrote {args.out}/metrics.csv, grad_norms.csv, metrics.json, summary.json, curves.png, grad_norms.png, "
          f"run.zip in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


def _make_folder(path: Path) -> bool:
    """Create the output folder; on failure say why in one line and return False."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        return True
    except OSError as e:
        print(f"python -m resnet_viz: error: cannot create {path}: {e.strerror}", file=sys.stderr)
        return False


def depth_list(text: str) -> tuple[int, ...]:
    try:
        depths = tuple(int(d) for d in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"depths must be comma-separated whole numbers, got {text!r}") from None
    for d in depths:
        if d not in VALID_DEPTHS:
            raise argparse.ArgumentTypeError(tr("en", "error.depth", value=d, lo=VALID_DEPTHS[0], hi=VALID_DEPTHS[-1]))
    return depths


def cmd_sweep(args) -> int:
    from .experiment_plots import save_degradation_png
    from .experiments import sweep, sweep_summary, write_sweep_csv

    if not 1 <= args.seeds <= 20:
        print("python -m resnet_viz: error: --seeds must be 1 to 20", file=sys.stderr)
        return 2
    train = replace(SWEEP_TRAIN, steps=args.steps, eval_every=args.steps)  # validates steps
    if not _make_folder(args.out):
        return 2
    started = time.perf_counter()

    def progress(done, total):
        print(f"{done}/{total} depth-seed pairs ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

    rows = sweep(args.depths, tuple(range(args.seeds)), train, on_progress=progress)
    write_sweep_csv(rows, args.out / "sweep.csv")
    save_degradation_png(sweep_summary(rows), args.out / "degradation.png", t)
    print(f"wrote {args.out}/sweep.csv, degradation.png in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench
    if args.steps < 1:
        raise LabError("error.steps", value=args.steps)
    print(json.dumps(run_bench(args.steps, args.first_render), indent=2))
    return 0


def cmd_download(args) -> int:
    """Fetch a full dataset with a progress line about once a second; 1 and one line on failure."""
    from .download import fetch, local_dir

    name = args.dataset
    here = local_dir(name)
    if here is not None:
        print(t("cli.download_local", name=name, folder=here), file=sys.stderr)
        return 0
    shown = [0.0]

    def progress(done, total):
        now = time.perf_counter()
        if now - shown[0] >= 1 or done == total:
            shown[0] = now
            print(t("cli.download_progress", name=name, done=done / 1e6, total=total / 1e6), file=sys.stderr,
                  flush=True)

    try:
        paths = fetch(name, progress)
    except LabError as e:
        print(f"python -m resnet_viz: error: {e}", file=sys.stderr)
        return 1
    print(t("cli.download_done", name=name, folder=next(iter(paths.values())).parent), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
