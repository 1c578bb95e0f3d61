"""What to build and how to train it: frozen, self-validating specs and the named presets.

Every limit lives here, once, so the UI, the CLI and the engine reject the same bad values with the same
message (a LabError whose key the UI translates).
"""
from dataclasses import asdict, dataclass, field, fields, replace

from .i18n import LabError

# He et al.'s CIFAR nets have 6n+2 layers: a stem conv, three stages of n two-conv blocks, and a linear head.
MIN_DEPTH, MAX_DEPTH = 8, 110
VALID_DEPTHS = tuple(range(MIN_DEPTH, MAX_DEPTH + 1, 6))
STAGE_CHANNELS = (16, 32, 64)
WIDTHS = (0.25, 0.5, 1.0, 2.0)
SHORTCUTS = ("A", "B")  # A: identity + zero-padding (same params as plain); B: 1x1 projection on shape change
INITS = ("he", "default")  # he: Kaiming normal (fan_out), as torchvision; default: PyTorch's own
STEM_STRIDES = (1, 2)
OPTIMIZERS = ("sgd", "adam")
DEVICES = ("auto", "cpu", "cuda", "mps")  # auto: CUDA, else Apple MPS, else CPU
LR_MILESTONES = (0.5, 0.75)  # He et al. divide the lr by 10 at 32k and 48k of 64k iterations: 50 % and 75 %
SCALES = ("block", "channel")  # one alpha/beta per block, or one per channel of the block
SCALE_RANGE = (-5.0, 5.0)  # start values of alpha and beta
CSP_RANGE = (0.1, 0.9)  # share of a stage's channels that go through its blocks
CSP_FUSIONS = ("last", "first")
MIN_MODELS, MAX_MODELS = 1, 6
MAX_NAME = 24


def _check(ok: bool, key: str, **params) -> None:
    if not ok:
        raise LabError(key, **params)


@dataclass(frozen=True)
class ModelSpec:
    """One CNN of a comparison. Depth counts weight layers: 6n+2."""

    depth: int = 20
    skip: bool = True  # residual (True) or plain (False)
    shortcut: str = "A"
    width: float = 1.0  # multiplies the 16/32/64 stage channels
    batch_norm: bool = True
    init: str = "he"
    stem_stride: int = 2  # 2 puts 14x14 maps into stage 1: ~4x cheaper on a laptop, the lesson survives
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
        _check(isinstance(self.depth, int) and self.depth in VALID_DEPTHS, "error.depth",
               value=self.depth, lo=MIN_DEPTH, hi=MAX_DEPTH)
        _check(self.shortcut in SHORTCUTS, "error.shortcut", value=self.shortcut)
        _check(self.width in WIDTHS, "error.width", value=self.width, choices=", ".join(map(str, WIDTHS)))
        _check(self.init in INITS, "error.init", value=self.init)
        _check(self.stem_stride in STEM_STRIDES, "error.stem_stride", value=self.stem_stride)
        _check(isinstance(self.name, str) and len(self.name) <= MAX_NAME, "error.name", hi=MAX_NAME)
        for key, value in (("alpha", self.alpha), ("beta", self.beta)):
            _check(_finite(value) and SCALE_RANGE[0] <= value <= SCALE_RANGE[1], "error.scale", name=key,
                   value=value, lo=SCALE_RANGE[0], hi=SCALE_RANGE[1])
        _check(self.scale in SCALES, "error.scale_kind", value=self.scale)
        _check(_finite(self.csp) and (self.csp == 0 or CSP_RANGE[0] <= self.csp <= CSP_RANGE[1]), "error.csp",
               value=self.csp, lo=CSP_RANGE[0], hi=CSP_RANGE[1])
        _check(self.csp_fusion in CSP_FUSIONS, "error.csp_fusion", value=self.csp_fusion)
        if not self.name:
            object.__setattr__(self, "name", self.default_name())

    @property
    def blocks_per_stage(self) -> int:
        return (self.depth - 2) // 6

    def stage_channels(self) -> tuple[int, ...]:
        return tuple(max(1, round(c * self.width)) for c in STAGE_CHANNELS)

    @property
    def weighted(self) -> bool:
        """True when the skip path is not the plain H = F(x) + x."""
        return self.skip and (self.alpha != 1 or self.beta != 1 or self.learn_alpha or self.learn_beta)

    def default_name(self) -> str:
        name = f"{'res' if self.skip else 'plain'}-{self.depth}"
        if self.csp:
            name = f"csp{self.csp:g}-" + name + ("" if self.csp_fusion == "last" else "-ff")
        if self.skip and self.shortcut != "A":
            name += self.shortcut
        if self.weighted:
            for sym, value, learn in (("a", self.alpha, self.learn_alpha), ("b", self.beta, self.learn_beta)):
                if value != 1 or learn:
                    name += f"-{sym}{value:g}" + ("L" if learn else "")
        if self.width != 1.0:
            name += f"-w{self.width:g}"
        if not self.batch_norm:
            name += "-nobn"
        return name


@dataclass(frozen=True)
class TrainSpec:
    """How every model of a comparison is trained: the same data order, seed and schedule for each."""

    steps: int = 120  # plain-56 falls 2x behind by step ~60-70; 120 steps take ~40 s on 2 cores
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05  # 0.1 also shows the lesson, but res-56 then needs ~250 steps to get going
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 0  # linear warm-up from lr/10 helps very deep nets without batch norm
    seed: int = 0
    eval_every: int = 30  # steps between test-set evaluations (and one at the end)
    eval_size: int = 500  # test digits used per evaluation; a fixed subset keeps it quick
    lr_decay: float = 1.0  # gamma: the lr is multiplied by it at each of LR_MILESTONES (1 = constant lr)
    device: str = "auto"

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


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and x == x and abs(x) != float("inf")


@dataclass(frozen=True)
class Preset:
    key: str  # catalogue key prefix for its title and explanation
    models: tuple[ModelSpec, ...]
    train: TrainSpec = field(default_factory=TrainSpec)


# The depth sweep (experiments.sweep): plain and residual nets at these depths and seeds, for this budget.
SWEEP_DEPTHS = (8, 14, 20, 32, 44, 56)
SWEEP_SEEDS = (0, 1, 2)
SWEEP_TRAIN = TrainSpec(steps=200, eval_every=200)  # plain-56 is far behind plain-20 and res-56 by then

PRESETS = {
    "degradation": Preset("preset.degradation", (
        ModelSpec(depth=20, skip=False), ModelSpec(depth=20, skip=True),
        ModelSpec(depth=56, skip=False), ModelSpec(depth=56, skip=True),
    )),
    "shortcut_scaling": Preset("preset.shortcut_scaling", (
        ModelSpec(depth=56, skip=True), ModelSpec(depth=56, skip=True, beta=0.5),
    )),
    "rezero": Preset("preset.rezero", (
        ModelSpec(depth=56, skip=False, batch_norm=False), ModelSpec(depth=56, skip=True, batch_norm=False),
        ModelSpec(depth=56, skip=True, batch_norm=False, alpha=0.0, learn_alpha=True),
    ), TrainSpec(optimizer="adam", lr=0.002)),  # SGD moves alpha off 0 too slowly for a short lesson
    # He et al.'s other case: no batch norm, PyTorch's default init. Now the plain nets' gradients do vanish
    # (first/last layer ratio ~1e-7 at depth 20, underflow to 0 at 56) while residual nets keep ~0.15.
    "vanishing": Preset("preset.vanishing", tuple(
        ModelSpec(depth=d, skip=s, batch_norm=False, init="default") for d in (20, 56) for s in (False, True))),
    "csp": Preset("preset.csp", (
        ModelSpec(depth=20, skip=True), ModelSpec(depth=20, skip=True, csp=0.5),
        ModelSpec(depth=20, skip=True, csp=0.5, csp_fusion="first"),
    )),
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


def spec_dict(spec) -> dict:
    return asdict(spec)


def spec_from_dict(cls, data: dict):
    """Build a spec from a dict (UI rows, JSON), ignoring unknown keys; validation happens in the class."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


__all__ = ["ModelSpec", "TrainSpec", "Preset", "PRESETS", "DEFAULT_PRESET", "check_models", "replace",
           "spec_dict", "spec_from_dict", "VALID_DEPTHS", "WIDTHS", "SHORTCUTS", "INITS", "STEM_STRIDES",
           "OPTIMIZERS", "DEVICES", "MAX_MODELS", "LabError", "SWEEP_DEPTHS", "SWEEP_SEEDS", "SWEEP_TRAIN"]
