"""`python -m resnet_viz train|sweep|bench|summary|download|predict`: the lab without a browser, for scripts, CI and measurements.

Bad flags or values exit with status 2 and one line on stderr, never a traceback; a failed download exits
with status 1, likewise.
"""
import argparse
import json
import sys
import time
from dataclasses import fields, replace
from functools import partial
from pathlib import Path

from .config import (
    DEFAULT_PRESET,
    NAMES_HELP,
    PRESETS,
    RESNET_SWEEP_DEPTHS,
    SWEEP_DEPTHS,
    SWEEP_SEEDS,
    SWEEP_TRAIN,
    ModelSpec,
    TrainSpec,
    field_kind,
    parse_name,
    pretraining,
    spec_from_dict,
)
from .data.download import SOURCES
from .i18n import LabError, tr

t = partial(tr, "en")
MODEL_HELP = (f"a model name ({NAMES_HELP}), key=value pairs ({', '.join(f.name for f in fields(ModelSpec))}), "
              "or a name then pairs: resnet-50,width=0.5,stem=imagenet")
MIN_SIDE, MAX_SIDE = 8, 1024  # --input: smaller than LeNet-5 and VGG take, larger than anyone summarises
DATASET_NAMES = ["mnist-5k", *SOURCES]  # data.DATASETS without importing torch, which --help does not need


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_model(text: str) -> ModelSpec:
    """A model name ('resnet-50', 'plain-56', 'vgg-16'), key=value pairs ('depth=56,skip=false,shortcut=B'),
    or a name followed by pairs that change it ('resnet-50,width=0.5,stem=imagenet')."""
    fields = {}
    for i, part in enumerate(filter(None, (p.strip() for p in text.split(",")))):
        key, sep, value = part.partition("=")
        if not sep:
            named = parse_name(part) if i == 0 else None
            if named is None:
                raise argparse.ArgumentTypeError(f"expected key=value or a model name ({NAMES_HELP}), got {part!r}")
            fields |= named
            continue
        key = key.strip().replace("-", "_")
        if key not in ModelSpec.__dataclass_fields__:
            raise argparse.ArgumentTypeError(f"unknown model setting: {key}")
        fields[key] = _value(key, value.strip())
    try:
        return spec_from_dict(ModelSpec, fields)
    except LabError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _value(key: str, value: str):
    booleans = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False,
                "off": False}
    kind = field_kind(ModelSpec, key)
    if kind is bool:
        if value.lower() not in booleans:
            raise argparse.ArgumentTypeError(f"{key} must be true or false, got {value!r}")
        return booleans[value.lower()]
    if kind is int:
        if not value.lstrip("-").isdigit():
            raise argparse.ArgumentTypeError(f"{key} must be a whole number, got {value!r}")
        return int(value)
    if kind is float:
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
    train.add_argument("--model", action="append", type=parse_model, metavar="SPEC", help=MODEL_HELP)
    defaults = TrainSpec()
    for name, kind in (("steps", int), ("batch_size", int), ("lr", float), ("momentum", float),
                       ("weight_decay", float), ("warmup_steps", int), ("seed", int), ("eval_every", int),
                       ("eval_size", int), ("lr_decay", float), ("classes", str), ("pretrain_steps", int),
                       ("pretrain_classes", str)):
        train.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None,
                           help=f"default {getattr(defaults, name)}")
    train.add_argument("--optimizer", choices=["sgd", "adam"], default=None)
    train.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default=None,
                       help="auto (default): CUDA, else Apple MPS, else the CPU")
    train.add_argument("--dataset", choices=DATASET_NAMES, default="mnist-5k",
                       help="default %(default)s (bundled); the others must be downloaded first (see download)")
    train.add_argument("--pretrain-dataset", choices=DATASET_NAMES, default=None,
                       help="what transfer models (transfer=frozen|finetune) pretrain on (default: --dataset)")
    train.add_argument("--out", type=Path, required=True, help="folder for metrics.csv, grad_norms.csv, "
                       "metrics.json, summary.json, PNG plots and run.zip (open it in the app)")
    train.add_argument("--quiet", action="store_true", help="no progress lines")
    train.add_argument("--ray", metavar="ADDRESS", default=None,
                       help="train on a Ray cluster: auto, ray://HOST:10001, or local (a Ray instance on this "
                            "machine); needs requirements-cluster.txt")

    sweep = sub.add_parser("sweep", help=t("cli.sweep_help"))
    sweep.add_argument("--family", choices=["cifar", "resnet"], default="cifar",
                       help="cifar: the 6n+2 nets (default); resnet: ResNet-18/34/50/101 and their plain twins")
    sweep.add_argument("--depths", type=depth_list, default=None,
                       help=f"comma-separated depths (default {','.join(map(str, SWEEP_DEPTHS))} for cifar, "
                            f"{','.join(map(str, RESNET_SWEEP_DEPTHS))} for resnet)")
    sweep.add_argument("--seeds", type=int, default=len(SWEEP_SEEDS), help="seeds 0..N-1 (default %(default)s)")
    sweep.add_argument("--steps", type=int, default=SWEEP_TRAIN.steps, help="training steps per net (default "
                                                                             "%(default)s)")
    sweep.add_argument("--out", type=Path, required=True, help="folder for sweep.csv and degradation.png")
    sweep.add_argument("--ray", metavar="ADDRESS", default=None,
                       help="train every depth-seed pair as a Ray task, all at once across the cluster: auto, "
                            "ray://HOST:10001, or local; needs requirements-cluster.txt")
    sweep.add_argument("--threads", type=int, default=1, choices=range(1, 65), metavar="N",
                       help="with --ray: the CPUs (and torch threads) each task asks for (default %(default)s)")

    bench = sub.add_parser("bench", help=t("cli.bench_help"))
    bench.add_argument("--steps", type=int, default=20, help="timed steps per model (after 3 warm-up steps)")
    bench.add_argument("--first-render", action="store_true",
                       help="also start the app and time its first page in Chromium (needs playwright and "
                            "Debian's chromium, from tests/requirements.txt)")
    bench.add_argument("--browser", action="store_true",
                       help="also train the default preset headless and then from its Lab page in Chromium, back "
                            "to back, and print both times, their ratio and where the CPU went (needs what "
                            "--first-render needs; a few minutes)")
    bench.add_argument("--no-lesson", dest="lesson", action="store_false",
                       help="skip timing the default lesson (it trains until plain-56 falls behind: 30-60 s)")
    bench.add_argument("--split", action="store_true",
                       help="also train the default run in one worker (its threads, then one) and in one "
                            "single-thread worker per core, the models split among them (about 2 minutes)")
    bench.add_argument("--fusion", action="store_true",
                       help="also time a plain and a residual net's training step one after the other and "
                            "horizontally fused (torch.func.vmap over their stacked weights), at 1 and 2 threads")
    bench.add_argument("--ray", metavar="ADDRESS", default=None,
                       help="also train the default run in local workers and twice on Ray at ADDRESS (local: a "
                            "Ray instance on this machine), back to back")
    bench.add_argument("--presets", action="store_true",
                       help="also time every preset's lesson, headless (each trains until its lesson shows: "
                            "several minutes in all)")
    summary = sub.add_parser("summary", help=t("cli.summary_help"))
    summary.add_argument("--model", action="append", type=parse_model, metavar="SPEC",
                         help="the model(s) to summarise (default: the preset's): " + MODEL_HELP)
    summary.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET)
    summary.add_argument("--input", type=input_shape, default=(1, 28, 28), metavar="CxHxW",
                         help="one image's size (default 1x28x28; 3x224x224 for ImageNet)")
    summary.add_argument("--classes", type=int, default=10, help="outputs of the last layer (default 10)")
    summary.add_argument("--blocks", action="store_true", help="one row per block, not per stage")
    summary.add_argument("--json", action="store_true", help="one JSON object per model, one per line")
    summary.add_argument("--lang", choices=["en", "zh"], default="en")
    download = sub.add_parser("download", help=t("cli.download_help"))
    download.add_argument("dataset", choices=list(SOURCES))
    predict = sub.add_parser("predict", help=t("cli.predict_help"))
    predict.add_argument("image", type=Path, help="a PNG or JPG of one handwritten digit (either ink colour)")
    predict.add_argument("--run", type=Path, default=None,
                         help="a saved run (run.zip from train --out, or the app's export); default: the bundled "
                              "reference models (the default lesson's four nets)")
    predict.add_argument("--json", action="store_true", help="one JSON object: every model's probabilities")
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
        if args.command == "summary":
            return cmd_summary(args)
        if args.command == "predict":
            return cmd_predict(args)
        return cmd_bench(args)
    except LabError as e:
        print(f"python -m resnet_viz: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def cmd_train(args) -> int:
    from .data.arrays import digits
    from .plots.run import save_curves_png, save_grad_norms_png
    from .runfile import run_bytes, run_files, summary
    from .training.engine import Job

    preset = PRESETS[args.preset]
    overrides = {k: getattr(args, k) for k in TrainSpec.__dataclass_fields__ if getattr(args, k, None) is not None}
    train = replace(preset.train, **overrides)
    models = args.model or preset.models
    digits(args.dataset)  # here, not in the training loop: a missing or damaged dataset is a one-line error
    if train.pretrain_dataset:
        digits(train.pretrain_dataset)
    job = Job(models, train, dataset=args.dataset, ray=args.ray)
    pretrained = pretraining(job.models)
    if pretrained and not args.quiet:
        print(f"pretraining {len(pretrained)} net(s) for {train.pretrain_steps} steps on classes "
              f"{train.pretrain_classes or '0-9'} of {train.pretrain_dataset or args.dataset}, then training "
              f"on classes {train.classes or '0-9'}", file=sys.stderr, flush=True)
    if not _make_folder(args.out):
        return 2
    started = time.perf_counter()

    def progress(step, losses):
        if not args.quiet and (step % 10 == 0 or step == train.steps):
            text = ", ".join(f"{spec.name} {loss:.3f}" for spec, loss in zip(job.models, losses))
            print(f"step {step}/{train.steps} ({time.perf_counter() - started:.0f} s): {text}",
                  file=sys.stderr, flush=True)

    snap = job.run_blocking(progress) if args.ray is None else _run_elsewhere(job, progress)
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


def _run_elsewhere(job, progress):
    """Train `job` in its workers (a Ray cluster), calling progress(step, losses) for each step it shows."""
    job.start()
    shown = 0
    while True:
        finished = job.join(0.5)
        snap = job.snapshot()
        for step in range(shown + 1, snap.step + 1):
            progress(step, [float(v.train_loss[step - 1]) for v in snap.models])
        shown = snap.step
        if finished:
            return snap


def cmd_predict(args) -> int:
    from .analysis.inference import probabilities
    from .analysis.reference import models_path
    from .data.datasets import info
    from .data.preprocess import prepare, read_upload
    from .runfile import read_run
    from .training.engine import Job

    try:
        image = args.image.read_bytes()
        run = (args.run or models_path()).read_bytes()
    except OSError as e:
        print(f"python -m resnet_viz: error: cannot read {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    prepared = prepare(read_upload(image))
    if prepared.blank:
        raise LabError("error.blank_image")
    saved = read_run(run)
    job = Job.reopen(saved)
    data = info(saved.dataset)
    probs = probabilities(job.nets, prepared.digit, stats=data.stats)
    names = data.class_names("en")
    if args.json:
        print(json.dumps({spec.name: {names[c]: round(float(p), 6) for c, p in enumerate(row)}
                          for spec, row in zip(job.models, probs)}))
        return 0
    for spec, row in zip(job.models, probs):
        if row[0] != row[0]:
            print(f"{spec.name}: no prediction (it diverged)")
            continue
        top = int(row.argmax())
        rest = " ".join(f"{names[c]}:{p:.2f}" for c, p in enumerate(row))
        print(t("cli.predict_line", name=spec.name, digit=names[top], pct=100 * row[top]) + f"  [{rest}]")
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
        return tuple(int(d) for d in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"depths must be comma-separated whole numbers, got {text!r}") from None


def cmd_sweep(args) -> int:
    from .analysis.experiments import sweep, sweep_base, sweep_summary, write_sweep_csv
    from .plots.experiments import save_degradation_png

    if not 1 <= args.seeds <= 20:
        print("python -m resnet_viz: error: --seeds must be 1 to 20", file=sys.stderr)
        return 2
    train = replace(SWEEP_TRAIN, steps=args.steps, eval_every=args.steps)  # validates steps
    depths = args.depths or (SWEEP_DEPTHS if args.family == "cifar" else RESNET_SWEEP_DEPTHS)
    for d in depths:  # each depth must exist in the family: ModelSpec says so in its own words
        ModelSpec(family=args.family, depth=d)
    if not _make_folder(args.out):
        return 2
    started = time.perf_counter()

    def progress(done, total):
        print(f"{done}/{total} depth-seed pairs ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

    rows = sweep(depths, tuple(range(args.seeds)), train, sweep_base(args.family), on_progress=progress,
                 ray=args.ray, threads=args.threads)
    write_sweep_csv(rows, args.out / "sweep.csv")
    save_degradation_png(sweep_summary(rows), args.out / "degradation.png", t)
    print(f"wrote {args.out}/sweep.csv, degradation.png in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


def input_shape(text: str) -> tuple[int, int, int]:
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"input must be CxHxW, e.g. 3x224x224, got {text!r}")
    c, h, w = (int(p) for p in parts)
    if not (1 <= c <= 16 and MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
        raise argparse.ArgumentTypeError(f"input must have 1-16 channels and sides of {MIN_SIDE}-{MAX_SIDE}, "
                                         f"got {text!r}")
    return c, h, w


def cmd_summary(args) -> int:
    from .models import layer_table
    from .summary import as_json, as_text

    if not 1 <= args.classes <= 100_000:
        raise LabError("error.classes", value=args.classes)
    models = args.model or PRESETS[args.preset].models
    for i, spec in enumerate(models):
        try:
            table = layer_table(spec, args.input, args.classes)
        except RuntimeError as e:  # an input too small for the net's poolings: torch says which layer
            print(f"python -m resnet_viz: error: {spec.name} cannot take a {'x'.join(map(str, args.input))} "
                  f"input: {str(e).splitlines()[0]}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps(as_json(table, grouped=not args.blocks)))
        else:
            print(("\n" if i else "") + as_text(table, args.lang, grouped=not args.blocks), end="")
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench
    if args.steps < 1:
        raise LabError("error.steps", value=args.steps)
    print(json.dumps(run_bench(args.steps, args.first_render, args.lesson, args.presets, args.browser, args.split,
                               args.fusion, args.ray), indent=2))
    return 0


def cmd_download(args) -> int:
    """Fetch a full dataset with a progress line about once a second; 1 and one line on failure."""
    from .data.download import fetch, local_dir

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
