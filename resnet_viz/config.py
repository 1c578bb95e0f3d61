"""What to build and how to train it: frozen, self-validating specs and the named presets.

Every limit lives here, once, so the UI, the CLI and the engine reject the same bad values with the same
message (a LabError whose key the UI translates).
"""
import re
import types
from dataclasses import asdict, dataclass, field, fields, replace

from .data.datasets import DATASETS
from .i18n import LabError

# He et al.'s CIFAR nets have 6n+2 layers: a stem conv, three stages of n two-conv blocks, and a linear head.
MIN_DEPTH, MAX_DEPTH = 8, 110
VALID_DEPTHS = tuple(range(MIN_DEPTH, MAX_DEPTH + 1, 6))
CIFAR_CHANNELS = (16, 32, 64)  # the three stages' channels at width 1
RESNET_DEPTHS = (18, 34, 50, 101, 152)  # He et al. Table 1: basic blocks below 50, bottlenecks from 50
VGG_DEPTHS = (11, 13, 16, 19)  # Simonyan and Zisserman Table 1, columns A, B, D, E
WIDTHS = (0.125, 0.25, 0.5, 1.0, 2.0)  # multiplies every layer's channels
SHORTCUTS = ("A", "B")  # A: identity + zero-padding (same params as plain); B: 1x1 projection on shape change
INITS = ("he", "default")  # he: Kaiming normal (fan_out), as torchvision; default: PyTorch's own
STEMS = ("small", "imagenet")  # small: one 3x3 conv; imagenet: 7x7 conv stride 2 + 3x3 max pool stride 2
STEM_STRIDES = (1, 2)


@dataclass(frozen=True)
class Family:
    """What a family of networks takes: its depths, the settings that apply to it, and its defaults.
    A setting that does not apply is None in a spec of the family (or, for the skip-path settings, its
    neutral default); giving it another value is an error that names the setting and the family."""

    depths: tuple[int, ...]
    settings: frozenset  # ModelSpec fields a user may set, besides family and name
    defaults: dict  # values of the family-dependent fields (FAMILY_FIELDS) when not given


FAMILY_FIELDS = ("depth", "skip", "shortcut", "width", "batch_norm", "init", "stem", "stem_stride")
SKIP_FIELDS = ("alpha", "beta", "learn_alpha", "learn_beta", "scale", "csp", "csp_fusion")  # residual families
_RESIDUAL = frozenset({"depth", "skip", "shortcut", "width", "batch_norm", "init", "stem_stride", *SKIP_FIELDS})
FAMILIES = {
    # He et al.'s CIFAR nets (Section 4.2): the lab's own, and every preset, link and saved run before families
    "cifar": Family(VALID_DEPTHS, _RESIDUAL, dict(depth=20, skip=True, shortcut="A", width=1.0, batch_norm=True,
                                                  init="he", stem=None, stem_stride=2)),
    # He et al.'s ImageNet nets, as torchvision builds them; by default a quarter width and a 3x3 stride-2
    # stem (14x14 maps into stage 1, as the cifar nets), so a laptop trains them on 28x28 digits in a lesson;
    # width 1 and stem imagenet are torchvision's exact models
    "resnet": Family(RESNET_DEPTHS, _RESIDUAL | {"stem"}, dict(depth=18, skip=True, shortcut="B", width=0.25,
                                                              batch_norm=True, init="he", stem="small",
                                                              stem_stride=2)),
    "lenet5": Family((5,), frozenset({"batch_norm", "init"}), dict(depth=5, skip=False, shortcut=None,
                                                                    width=None, batch_norm=False,
                                                                    init="default", stem=None, stem_stride=None)),
    "alexnet": Family((8,), frozenset({"width", "batch_norm", "init"}), dict(
        depth=8, skip=False, shortcut=None, width=0.25, batch_norm=True, init="he", stem=None, stem_stride=None)),
    "vgg": Family(VGG_DEPTHS, frozenset({"depth", "width", "batch_norm", "init"}), dict(
        depth=16, skip=False, shortcut=None, width=0.25, batch_norm=True, init="he", stem=None,
        stem_stride=None)),
}
DEFAULT_FAMILY = "cifar"
OPTIMIZERS = ("sgd", "adam")
DEVICES = ("auto", "cpu", "cuda", "mps")  # auto: CUDA, else Apple MPS, else CPU
LR_MILESTONES = (0.5, 0.75)  # He et al. divide the lr by 10 at 32k and 48k of 64k iterations: 50 % and 75 %
SCALES = ("block", "channel")  # one alpha/beta per block, or one per channel of the block
SCALE_RANGE = (-5.0, 5.0)  # start values of alpha and beta
CSP_RANGE = (0.1, 0.9)  # share of a stage's channels that go through its blocks
CSP_FUSIONS = ("last", "first")
# Transfer learning: start from the run's pretraining step (TrainSpec.pretrain_*), with a new head (the last
# linear layer at its seeded start); "frozen" trains the head only, "finetune" every layer.
TRANSFERS = ("none", "frozen", "finetune")
MAX_PRETRAIN_STEPS = 20_000
MIN_MODELS, MAX_MODELS = 1, 6
MAX_NAME = 24
MAX_RUN_BYTES = 200 * 2**20  # a saved run's file (runfile.py): a 6-model run of the widest, deepest nets is ~170 MB


def _check(ok: bool, key: str, **params) -> None:
    if not ok:
        raise LabError(key, **params)


@dataclass(frozen=True)
class ModelSpec:
    """One CNN of a comparison. Depth counts weight layers (6n+2 for the cifar family). A None setting takes
    the family's default, or stays None where it does not apply to the family (FAMILIES)."""

    family: str = DEFAULT_FAMILY
    depth: int | None = None
    skip: bool | None = None  # residual (True) or plain (False)
    transfer: str = "none"  # TRANSFERS: start from the run's pretrained weights, a new head, frozen or not
    shortcut: str | None = None
    width: float | None = None  # multiplies every stage's channels (cifar: 16/32/64)
    batch_norm: bool | None = None
    init: str | None = None
    stem: str | None = None  # resnet family: "small" (3x3 conv) or "imagenet" (7x7 stride 2 + max pool)
    # cifar: 2 puts 14x14 maps into stage 1: ~4x cheaper on a laptop, the lesson survives
    stem_stride: int | None = None
    # Weighted residual H = alpha * F(x) + beta * x (residual nets only). alpha = 0, learnable: ReZero.
    alpha: float = 1.0
    beta: float = 1.0
    learn_alpha: bool = False
    learn_beta: bool = False
    scale: str = "block"  # one alpha/beta per block, or per channel
    # CSP stages: 0 = off; else the share of channels sent through the blocks, the rest bypass the stage.
    csp: float = 0.0
    csp_fusion: str = "last"  # last: transition on the block path, then concat; first: concat, then transition
    name: str = ""  # empty: derived, e.g. "res-56"

    def __post_init__(self):
        _check(isinstance(self.family, str) and self.family in FAMILIES, "error.family", value=self.family, choices=", ".join(FAMILIES))
        family = FAMILIES[self.family]
        for key in FAMILY_FIELDS + SKIP_FIELDS:  # stem before stem_stride: whether the stride applies needs it
            value = getattr(self, key)
            if self.applies(key):
                if value is None:
                    object.__setattr__(self, key, family.defaults[key] if key in FAMILY_FIELDS else
                                       _FIELD_DEFAULTS[key])
                continue
            fixed = None if key == "stem_stride" else (family.defaults[key] if key in FAMILY_FIELDS else
                                                       _FIELD_DEFAULTS[key])
            _check(value is None or value == fixed, "error.not_applicable", setting=key, family=self.family)
            object.__setattr__(self, key, fixed)
        if self.family == "cifar":
            _check(isinstance(self.depth, int) and self.depth in VALID_DEPTHS, "error.depth",
                   value=self.depth, lo=MIN_DEPTH, hi=MAX_DEPTH)
        else:
            _check(isinstance(self.depth, int) and self.depth in family.depths, "error.depth_choice",
                   value=self.depth, family=self.family, choices=", ".join(map(str, family.depths)))
        for key in ("skip", "batch_norm"):  # a table editor may hand over numpy's bools
            _check(getattr(self, key) in (True, False), "error.bool", name=key, value=getattr(self, key))
            object.__setattr__(self, key, bool(getattr(self, key)))
        _check(self.shortcut in SHORTCUTS or self.shortcut is None, "error.shortcut", value=self.shortcut)
        _check(self.width in WIDTHS or self.width is None, "error.width", value=self.width,
               choices=", ".join(map(str, WIDTHS)))
        _check(self.init in INITS, "error.init", value=self.init)
        _check(self.stem in STEMS or self.stem is None, "error.stem", value=self.stem,
               choices=", ".join(STEMS))
        _check(self.stem_stride in STEM_STRIDES or self.stem_stride is None, "error.stem_stride",
               value=self.stem_stride)
        _check(isinstance(self.name, str) and len(self.name) <= MAX_NAME, "error.name", hi=MAX_NAME)
        for key, value in (("alpha", self.alpha), ("beta", self.beta)):
            _check(_finite(value) and SCALE_RANGE[0] <= value <= SCALE_RANGE[1], "error.scale", name=key,
                   value=value, lo=SCALE_RANGE[0], hi=SCALE_RANGE[1])
        _check(self.scale in SCALES, "error.scale_kind", value=self.scale)
        _check(_finite(self.csp) and (self.csp == 0 or CSP_RANGE[0] <= self.csp <= CSP_RANGE[1]), "error.csp",
               value=self.csp, lo=CSP_RANGE[0], hi=CSP_RANGE[1])
        _check(self.csp_fusion in CSP_FUSIONS, "error.csp_fusion", value=self.csp_fusion)
        _check(self.transfer in TRANSFERS, "error.transfer", value=self.transfer, choices=", ".join(TRANSFERS))
        if not self.name:
            object.__setattr__(self, "name", self.default_name())

    def applies(self, key: str) -> bool:
        """Whether a setting means anything for this spec's family (the editor greys out the others)."""
        if key == "stem_stride" and self.stem == "imagenet":
            return False
        return key in ("family", "name", "transfer") or key in FAMILIES[self.family].settings

    def cifar_layout(self) -> tuple[int, tuple[int, ...]]:
        """A cifar net's blocks per stage and stage channels (the diagram draws it without torch)."""
        return (self.depth - 2) // 6, tuple(max(1, round(c * self.width)) for c in CIFAR_CHANNELS)

    @property
    def residual_family(self) -> bool:
        """A family with blocks and skip paths (cifar, resnet), whether this net uses them or not."""
        return "skip" in FAMILIES[self.family].settings

    @property
    def architecture(self) -> "ModelSpec":
        """The net without its transfer setting and name: what a trained net must be to lend it its weights."""
        return replace(self, transfer="none", name="")

    @property
    def frozen_backbone(self) -> bool:
        """Only the head trains: every weight layer but the last is frozen at its pretrained values."""
        return self.transfer == "frozen"

    @property
    def weighted(self) -> bool:
        """True when the skip path is not the plain H = F(x) + x."""
        return self.skip and (self.alpha != 1 or self.beta != 1 or self.learn_alpha or self.learn_beta)

    def default_name(self) -> str:
        """res-56, plain-20-nobn, resnet-50, plain-34, vgg-16, lenet-5, alexnet-bn ...: the family's own name
        (NAMES), then what differs from the family's defaults."""
        suffix = {"none": "", "frozen": "-frozen", "finetune": "-ft"}[self.transfer]
        return self._architecture_name() + suffix

    def _architecture_name(self) -> str:
        family, defaults = self.family, FAMILIES[self.family].defaults
        if family == "lenet5":
            return "lenet-5" + ("-bn" if self.batch_norm else "")
        if family in ("alexnet", "vgg"):
            name = "alexnet" if family == "alexnet" else f"vgg-{self.depth}"
            if self.width != defaults["width"]:
                name += f"-w{self.width:g}"
            if self.batch_norm != defaults["batch_norm"]:
                name += "-bn" if self.batch_norm else "-nobn"
            return name
        if family == "resnet":
            name = f"{'resnet' if self.skip else 'plain'}-{self.depth}"
        else:
            name = f"{'res' if self.skip else 'plain'}-{self.depth}"
        if self.csp:
            name = f"csp{self.csp:g}-" + name + ("" if self.csp_fusion == "last" else "-ff")
        if self.skip and self.shortcut != defaults["shortcut"]:
            name += self.shortcut
        if self.weighted:
            for sym, value, learn in (("a", self.alpha, self.learn_alpha), ("b", self.beta, self.learn_beta)):
                if value != 1 or learn:
                    name += f"-{sym}{value:g}" + ("L" if learn else "")
        if self.width != defaults["width"]:
            name += f"-w{self.width:g}"
        if not self.batch_norm:
            name += "-nobn"
        if family == "resnet" and self.stem == "imagenet":
            name += "-7x7"
        elif family == "resnet" and self.stem_stride != defaults["stem_stride"]:
            name += f"-s{self.stem_stride}"
        return name


_FIELD_DEFAULTS = {f.name: f.default for f in fields(ModelSpec)}
# What each ModelSpec field may hold, for a form or a table of specs (the Lab's model editor draws one column
# per field from its type and these): a field with choices is picked from them, a float lies in its range, a
# bool is ticked, a str is typed. ModelSpec's checks above enforce the same values.
FIELD_CHOICES = {"family": tuple(FAMILIES), "depth": tuple(sorted({d for f in FAMILIES.values() for d in f.depths})),
                 "transfer": TRANSFERS, "shortcut": SHORTCUTS, "width": WIDTHS, "init": INITS, "stem": STEMS,
                 "stem_stride": STEM_STRIDES, "scale": SCALES, "csp_fusion": CSP_FUSIONS}
FIELD_RANGES = {"alpha": SCALE_RANGE, "beta": SCALE_RANGE, "csp": (0.0, CSP_RANGE[1])}


def field_default(key: str):
    """A new spec's value of a field, the default family's where the family decides (None: left empty)."""
    default = _FIELD_DEFAULTS[key]
    return FAMILIES[DEFAULT_FAMILY].defaults.get(key) if default is None else default

# Names the CLI, links and the editor accept for a model, next to key=value settings.
_NAME = re.compile(r"(resnet|res|plain|lenet|alexnet|vgg)-?(\d*)")
NAMES_HELP = ("resnet-18|34|50|101|152, plain-18|34|50|101|152 (their plain twins), res-N and plain-N "
              "(He et al.'s CIFAR 6n+2 nets), lenet-5, alexnet, vgg-11|13|16|19")


def parse_name(text: str) -> dict | None:
    """The settings a model name stands for ('resnet-50' -> family resnet, depth 50), or None when the text
    is not a model name. The depth is checked by ModelSpec, with its own message."""
    m = _NAME.fullmatch(text.strip().lower())
    if m is None:
        return None
    kind, digits = m.groups()
    depth = int(digits) if digits else None
    if kind in ("lenet", "alexnet"):
        ok = depth is None or (kind, depth) == ("lenet", 5)
        return {"family": "lenet5" if kind == "lenet" else "alexnet"} if ok else None
    if depth is None:
        return None
    if kind == "vgg":
        return {"family": "vgg", "depth": depth}
    if kind == "resnet" or (kind == "plain" and depth in RESNET_DEPTHS):
        return {"family": "resnet", "depth": depth, "skip": kind == "resnet"}
    return {"family": "cifar", "depth": depth, "skip": kind == "res"}


def field_kind(cls, key: str) -> type:
    """int, float, bool or str: the type of a spec's field, None-ness aside (for parsing text)."""
    kind = {f.name: f.type for f in fields(cls)}[key]
    if isinstance(kind, types.UnionType):
        kind = next(k for k in kind.__args__ if k is not type(None))
    return kind


@dataclass(frozen=True)
class TrainSpec:
    """How every model of a comparison is trained: the same data order, seed and schedule for each."""

    steps: int = 120  # plain-56 falls 2x behind by step ~40 (LESSON_TRAIN); 120 steps take ~40 s on 2 cores
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 0  # linear warm-up from lr/10 helps very deep nets without batch norm
    seed: int = 0
    eval_every: int = 30  # steps between test-set evaluations (and one at the end)
    eval_size: int = 500  # test digits used per evaluation; a fixed subset keeps it quick
    lr_decay: float = 1.0  # gamma: the lr is multiplied by it at each of LR_MILESTONES (1 = constant lr)
    device: str = "auto"
    classes: str = ""  # the classes trained and tested on, e.g. "5-9" or "0,2,4" ("": all ten)
    # Transfer learning: models with transfer != "none" start from a net of their architecture trained for
    # pretrain_steps on pretrain_classes of pretrain_dataset ("": the run's own dataset), same schedule.
    pretrain_steps: int = 0
    pretrain_classes: str = ""
    pretrain_dataset: str = ""

    def __post_init__(self):
        _check(isinstance(self.steps, int) and 1 <= self.steps <= 100_000, "error.steps", value=self.steps)
        _check(isinstance(self.batch_size, int) and 1 <= self.batch_size <= 1024, "error.batch_size",
               value=self.batch_size)
        _check(self.optimizer in OPTIMIZERS, "error.optimizer", value=self.optimizer)
        _check(_finite(self.lr) and 0 < self.lr <= 10, "error.lr", value=self.lr)
        _check(_finite(self.momentum) and 0 <= self.momentum < 1, "error.momentum", value=self.momentum)
        _check(_finite(self.weight_decay) and 0 <= self.weight_decay <= 0.1, "error.weight_decay",
               value=self.weight_decay)
        _check(isinstance(self.warmup_steps, int) and 0 <= self.warmup_steps <= self.steps, "error.warmup",
               value=self.warmup_steps)
        _check(isinstance(self.seed, int) and 0 <= self.seed < 2**31, "error.seed", value=self.seed)
        _check(isinstance(self.eval_every, int) and 1 <= self.eval_every, "error.eval_every",
               value=self.eval_every)
        _check(isinstance(self.eval_size, int) and 10 <= self.eval_size, "error.eval_size",
               value=self.eval_size)
        _check(_finite(self.lr_decay) and 0 < self.lr_decay <= 1, "error.lr_decay", value=self.lr_decay)
        _check(self.device in DEVICES, "error.device", value=self.device, choices=", ".join(DEVICES))
        for key in ("classes", "pretrain_classes"):
            parse_classes(getattr(self, key), key)
        _check(isinstance(self.pretrain_steps, int) and 0 <= self.pretrain_steps <= MAX_PRETRAIN_STEPS,
               "error.pretrain_steps", value=self.pretrain_steps, hi=MAX_PRETRAIN_STEPS)
        _check(self.pretrain_dataset in ("", *DATASETS), "error.pretrain_dataset", value=self.pretrain_dataset,
               choices=", ".join(DATASETS))

    @property
    def class_list(self) -> tuple[int, ...]:
        return parse_classes(self.classes)

    @property
    def pretrain_class_list(self) -> tuple[int, ...]:
        return parse_classes(self.pretrain_classes)


def parse_classes(text: str, setting: str = "classes") -> tuple[int, ...]:
    """'5-9' -> (5, 6, 7, 8, 9), '0,2,4' -> (0, 2, 4), '' -> all ten; at least two distinct classes."""
    every = tuple(range(10))
    _check(isinstance(text, str), "error.class_list", setting=setting, value=text)
    if not text.strip():
        return every
    chosen = set()
    for part in text.replace(" ", "").split(","):
        m = re.fullmatch(r"(\d)(?:-(\d))?", part)
        _check(m is not None and (m[2] is None or m[1] <= m[2]), "error.class_list", setting=setting, value=text)
        chosen.update(range(int(m[1]), int(m[2] or m[1]) + 1))
    _check(len(chosen) >= 2, "error.class_list", setting=setting, value=text)
    return tuple(sorted(chosen))


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and x == x and abs(x) != float("inf")


LESSON_WINDOW = 20  # steps a lesson's losses are averaged over: one step's loss is too noisy to call it on
LESSON_ON = ("loss", "evaluation", "first_step")


@dataclass(frozen=True)
class Lesson:
    """When a preset's lesson is on screen, so `bench --presets` can time it:
    - "loss": each model in `worse` ends (its training loss averaged over the last LESSON_WINDOW steps) at
      least `factor` times above each model in `better` (the degradation problem, Fig. 4, transfer);
    - "evaluation": at the run's first test evaluation, when the summary table has every column (parameters,
      FLOPs, time per step, accuracy): the lesson of a cost comparison;
    - "first_step": after the first step (the vanishing preset's first/last gradient ratio)."""
    on: str = "evaluation"
    worse: tuple[str, ...] = ()
    better: tuple[str, ...] = ()
    factor: float = 1.0

    def __post_init__(self):  # presets are code, not user input: a plain error for whoever writes one
        if self.on not in LESSON_ON:
            raise ValueError(f"a lesson is on one of {LESSON_ON}, not {self.on!r}")
        if (self.on == "loss") != bool(self.worse and self.better):
            raise ValueError("a loss lesson names models worse and better; the others name none")

    def shown(self, losses: dict[str, list[float]], train: "TrainSpec") -> bool:
        """Whether the lesson shows once the run has recorded `losses` (model name -> loss per step so far)."""
        steps = min(len(v) for v in losses.values())
        if self.on == "first_step":
            return steps >= 1
        if self.on == "evaluation":
            return steps >= min(train.eval_every, train.steps)
        if steps < LESSON_WINDOW:
            return False
        mean = {name: sum(losses[name][steps - LESSON_WINDOW:steps]) / LESSON_WINDOW
                for name in self.worse + self.better}
        return min(mean[n] for n in self.worse) >= self.factor * max(mean[n] for n in self.better)

    def step(self, losses: dict[str, list[float]], train: "TrainSpec") -> int:
        """The first step at which the lesson shows (1-based), or -1 if it never does in these losses."""
        steps = min(len(v) for v in losses.values())
        return next((n for n in range(1, steps + 1) if self.shown({k: v[:n] for k, v in losses.items()}, train)),
                    -1)


@dataclass(frozen=True)
class Preset:
    key: str  # catalogue key prefix for its title and explanation
    models: tuple[ModelSpec, ...]
    train: TrainSpec = field(default_factory=TrainSpec)
    lesson: Lesson = field(default_factory=Lesson)

    def __post_init__(self):
        unknown = set(self.lesson.worse + self.lesson.better) - {m.name for m in self.models}
        if unknown:
            raise ValueError(f"{self.key}: its lesson names models it does not have: {sorted(unknown)}")

    @property
    def compared(self) -> tuple[ModelSpec, ...]:
        """The models its lesson compares (all of them for a lesson that names none), in the preset's order."""
        names = self.lesson.worse + self.lesson.better
        return tuple(m for m in self.models if m.name in names) if names else self.models


# How the plain-vs-residual lessons (degradation, shortcut scaling, Fig. 4) train: Adam, whose step does not
# grow with the gradient. With SGD (lr 0.05, momentum 0.9) res-56's loss rose to 5-9 in its first ten steps
# while plain-56 sat at chance, the opposite of the lesson: res-56's pooled features are ~5x plain-20's, which
# multiplies the effective learning rate of its class scores ~25x, and every digit's logits swung to one wrong
# class. Gradient clipping, warm-up or a lower lr still left spikes of 3-5, or slowed plain-20 as much; see
# README, "The first steps".
LESSON_TRAIN = TrainSpec(optimizer="adam", lr=0.003)

# The depth sweep (experiments.sweep): plain and residual nets at these depths and seeds, for this budget.
SWEEP_DEPTHS = (8, 14, 20, 32, 44, 56)
SWEEP_SEEDS = (0, 1, 2)
SWEEP_TRAIN = replace(LESSON_TRAIN, steps=200, eval_every=200)  # plain-56 is far behind plain-20 and res-56
RESNET_SWEEP_DEPTHS = (18, 34, 50, 101)  # the resnet family's sweep: ResNet-18/34/50/101 and their plain twins

PRESETS = {
    "degradation": Preset("preset.degradation", (
        ModelSpec(depth=20, skip=False), ModelSpec(depth=20, skip=True),
        ModelSpec(depth=56, skip=False), ModelSpec(depth=56, skip=True),
    ), LESSON_TRAIN, Lesson("loss", ("plain-56",), ("plain-20", "res-56"), factor=2.0)),
    "shortcut_scaling": Preset("preset.shortcut_scaling", (
        ModelSpec(depth=56, skip=True), ModelSpec(depth=56, skip=True, beta=0.5),
    ), LESSON_TRAIN, lesson=Lesson("loss", ("res-56-b0.5",), ("res-56",), factor=2.0)),
    "rezero": Preset("preset.rezero", (
        ModelSpec(depth=56, skip=False, batch_norm=False), ModelSpec(depth=56, skip=True, batch_norm=False),
        ModelSpec(depth=56, skip=True, batch_norm=False, alpha=0.0, learn_alpha=True),
    ), TrainSpec(optimizer="adam", lr=0.002),  # SGD moves alpha off 0 too slowly for a short lesson
        lesson=Lesson("loss", ("plain-56-nobn", "res-56-nobn"), ("res-56-a0L-nobn",), factor=1.5)),
    # He et al.'s other case: no batch norm, PyTorch's default init. Now the plain nets' gradients do vanish
    # (first/last layer ratio ~1e-7 at depth 20, underflow to 0 at 56) while residual nets keep ~0.15.
    "vanishing": Preset("preset.vanishing", tuple(
        ModelSpec(depth=d, skip=s, batch_norm=False, init="default") for d in (20, 56) for s in (False, True)),
        lesson=Lesson("first_step")),
    "csp": Preset("preset.csp", (
        ModelSpec(depth=20, skip=True), ModelSpec(depth=20, skip=True, csp=0.5),
        ModelSpec(depth=20, skip=True, csp=0.5, csp_fusion="first"),
    )),
    # He et al. Fig. 4: plain-18/34 against ResNet-18/34 with option-A shortcuts, so each residual net has
    # exactly its plain twin's parameters, as in the paper.
    "imagenet_fig4": Preset("preset.imagenet_fig4", (
        ModelSpec(family="resnet", depth=18, skip=False), ModelSpec(family="resnet", depth=34, skip=False),
        ModelSpec(family="resnet", depth=18, shortcut="A"), ModelSpec(family="resnet", depth=34, shortcut="A"),
    ), LESSON_TRAIN, lesson=Lesson("loss", ("plain-34",), ("plain-18", "resnet-34A"))),
    "bottleneck": Preset("preset.bottleneck", (
        ModelSpec(family="resnet", depth=34), ModelSpec(family="resnet", depth=50),
    )),
    "case_studies": Preset("preset.case_studies", (
        ModelSpec(family="lenet5"), ModelSpec(family="alexnet"), ModelSpec(family="vgg", depth=16),
        ModelSpec(family="resnet", depth=18),
    )),
    # The first article's recipe: a net pretrained on digits 0-4 gets a new head and learns 5-9, frozen
    # (only the head trains) or fine-tuned (all of it), against the same net from scratch on the same steps.
    "transfer": Preset("preset.transfer", (
        ModelSpec(depth=20), ModelSpec(depth=20, transfer="frozen"), ModelSpec(depth=20, transfer="finetune"),
    ), TrainSpec(steps=60, eval_every=20, classes="5-9", pretrain_steps=120, pretrain_classes="0-4",
                 pretrain_dataset="mnist-5k"), lesson=Lesson("loss", ("res-20",), ("res-20-ft",))),
}
DEFAULT_PRESET = "degradation"


def check_models(models) -> tuple[ModelSpec, ...]:
    """A comparison needs 1 to 6 models with distinct names (the names label every chart)."""
    models = tuple(models)
    _check(MIN_MODELS <= len(models) <= MAX_MODELS, "error.model_count", n=len(models),
           lo=MIN_MODELS, hi=MAX_MODELS)
    names = [m.name for m in models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    _check(not dupes, "error.duplicate_names", names=", ".join(dupes))
    return models


def name_apart(models) -> tuple[ModelSpec, ...]:
    """The same models, a name used before getting -2, -3, ... (a student who adds four res-110 rows should not
    have to invent names: the names label every chart)."""
    named, taken = [], set()
    for m in models:
        name, n = m.name, 1
        while name in taken:
            n += 1
            suffix = f"-{n}"
            name = m.name[:MAX_NAME - len(suffix)] + suffix
        taken.add(name)
        named.append(m if name == m.name else replace(m, name=name))
    return tuple(named)


def twins(models) -> list[list[str]]:
    """Names of models that are the same network (all but the name): they train identically, on the same
    batches from the same seed, so their curves lie on top of each other."""
    groups: dict[ModelSpec, list[str]] = {}
    for m in models:
        groups.setdefault(replace(m, name=""), []).append(m.name)
    return [names for names in groups.values() if len(names) > 1]


def check_run(models, train: TrainSpec, sourced=()) -> tuple[ModelSpec, ...]:
    """check_models, and a transfer model needs weights to start from: a trained net of its architecture
    (the indices in `sourced`, see sources) or the run's pretraining step."""
    models = check_models(models)
    transferred = [m.name for i, m in enumerate(models) if m.transfer != "none" and i not in sourced]
    _check(not transferred or train.pretrain_steps > 0, "error.transfer_needs_pretrain",
           names=", ".join(transferred))
    return models


def sources(models, trained) -> dict[int, int]:
    """Which transfer models can start from a trained run's models: index -> index of the first model of
    `trained` with the same architecture."""
    found = {}
    for i, m in enumerate(models):
        match = [j for j, t in enumerate(trained) if t.architecture == m.architecture]
        if m.transfer != "none" and match:
            found[i] = match[0]
    return found


def pretraining(models, sourced=()) -> dict[ModelSpec, list[int]]:
    """The nets a run pretrains for its transfer models (those not in `sourced`): one per architecture, with
    the indices of the models that start from it."""
    groups: dict[ModelSpec, list[int]] = {}
    for i, m in enumerate(models):
        if m.transfer != "none" and i not in sourced:
            groups.setdefault(m.architecture, []).append(i)
    return groups


def spec_dict(spec) -> dict:
    return asdict(spec)


def spec_from_dict(cls, data: dict):
    """Build a spec from a dict (UI rows, JSON), ignoring unknown keys; validation happens in the class."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


__all__ = ["ModelSpec", "TrainSpec", "Preset", "Lesson", "LESSON_WINDOW", "PRESETS", "DEFAULT_PRESET", "check_models", "replace",
           "spec_dict", "spec_from_dict", "LESSON_TRAIN", "VALID_DEPTHS", "WIDTHS", "SHORTCUTS", "INITS", "STEM_STRIDES",
           "FAMILIES", "Family", "STEMS", "RESNET_DEPTHS", "VGG_DEPTHS", "parse_name", "field_kind",
           "OPTIMIZERS", "DEVICES", "MAX_MODELS", "LabError", "SWEEP_DEPTHS", "SWEEP_SEEDS", "SWEEP_TRAIN",
           "TRANSFERS", "parse_classes", "check_run", "pretraining", "sources"]
