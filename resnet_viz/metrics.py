"""What a run records for each model, declared once: every series' name, what it is recorded per, its type.

The trainer's shared-memory Record, the probes' readout order, the snapshot's ModelView and the saved run
file all derive from SERIES, so adding a series is one line here (and the code that measures it).
Torch-free and numpy-free: the UI and the run file read it too.
"""
from dataclasses import dataclass

NAN = float("nan")


@dataclass(frozen=True)
class Series:
    name: str
    per: str  # "step": one value a step; "layer": a step x weight layer; "block": a step x block; "eval": one a test evaluation
    integer: bool = False
    fill: float = NAN  # the value before it is recorded (NaN: "not yet")

    def shape(self, steps: int, layers: int, blocks: int, evals: int) -> tuple[int, ...]:
        return {"step": (steps,), "layer": (steps, layers), "block": (steps, blocks), "eval": (evals,)}[self.per]


SERIES = (
    Series("train_loss", "step"),  # written last in a step: a finite loss marks the step complete
    Series("train_acc", "step"),
    Series("seconds", "step", fill=0.0),  # this model's own compute time for the step
    Series("grad_norm", "layer"),  # the rows of the layer x step heatmap; NaN for a frozen layer
    Series("act_mean", "block"),
    Series("act_std", "block"),
    Series("ratio", "block"),  # ||alpha F(x)|| / ||beta x||, NaN for plain blocks
    Series("alpha", "block"),  # mean over channels
    Series("beta", "block"),
    Series("eval_step", "eval", integer=True, fill=0),  # the step each test evaluation was made after
    Series("test_loss", "eval"),
    Series("test_acc", "eval"),
)
NAMES = tuple(s.name for s in SERIES)
# What probes.Probes.read() returns for a step, concatenated in this order.
PROBED = tuple(s.name for s in SERIES if s.per in ("layer", "block"))
