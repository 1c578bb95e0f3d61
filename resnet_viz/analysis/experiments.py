"""The papers' experiments on MNIST: depth sweep (He et al. Fig. 6), lesion study (Veit et al.), loss
landscape (Li et al.), shattered gradients (Balduzzi et al.). Plain functions of models and data, returning
numpy; long ones report progress through `on_progress(done, total)` and stop when `cancelled()` is true.
"""
import copy
import csv
import math
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

from ..config import SWEEP_DEPTHS, SWEEP_SEEDS, SWEEP_TRAIN, ModelSpec, TrainSpec
from ..data.arrays import ALL_CLASSES, MNIST_STATS, normalise, tensors
from ..models import ResidualBlock
from ..training.engine import Job
from ..training.trainer import build_nets

LANDSCAPE_IMAGES = 512  # a fixed training subset: the loss surface of the same data for every model
# The 2-D slice's grid and reach. At 11x11 over [-1, 1]² both slices were smooth bowls on a log scale spanning
# nine decades (plain-56's walls rise to 1e9). Close to the weights, over [-0.3, 0.3]², at 21x21, each slice in
# its own colours: res-56 is one smooth bowl, plain-56 (at chance after the reference's 300 steps) a bumpy
# plateau whose lowest point is not where training stopped. 441 losses per model.
LANDSCAPE_RESOLUTION = 21
LANDSCAPE_SPAN = 0.3


class Cancelled(Exception):
    """Raised inside an experiment when its `cancelled()` says so."""


def _never() -> bool:
    return False


# ---- depth sweep -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SweepRow:
    depth: int
    skip: bool
    seed: int
    steps: int
    final_train_loss: float  # mean of the last 20 steps
    final_train_error: float  # 1 - mean training accuracy of the last 20 steps
    test_error: float
    seconds: float


def sweep_base(family: str = "cifar") -> ModelSpec:
    """The nets a sweep compares: the family's defaults with option-A shortcuts, so each residual net has
    exactly its plain twin's parameters (He et al. Fig. 4 and 6)."""
    return ModelSpec(family=family, shortcut="A")


def sweep(depths=SWEEP_DEPTHS, seeds=SWEEP_SEEDS, train: TrainSpec = SWEEP_TRAIN, base: ModelSpec = ModelSpec(),
          on_row=None, on_progress=None, cancelled=_never, ray: str | None = None, threads: int = 1) -> list[SweepRow]:
    """Plain and residual nets at each depth and seed, each pair trained in lock-step on the same batches for
    the same budget, in this process. Rows arrive through on_row(row) as each pair finishes. `base` sets the
    family and the other settings (sweep_base('resnet') sweeps ResNet-18/34/50/101 against plain-18/34/50/101).
    With `ray` (a Ray address, training/workers.py), every pair is a Ray task asking for `threads` CPUs and
    training with that many torch threads, all at once across the cluster; rows stream in as pairs finish and
    are returned in the order of a sweep here, with the same numbers as one here at as many threads."""
    pairs = [(d, s) for s in seeds for d in depths]
    if ray:
        return _sweep_on_ray(ray, pairs, train, base, on_row, on_progress, cancelled, threads)
    rows = []
    for done, (depth, seed) in enumerate(pairs):
        if cancelled():
            raise Cancelled
        for row in sweep_pair(depth, seed, train, base, cancelled):
            rows.append(row)
            if on_row is not None:
                on_row(row)
        if on_progress is not None:
            on_progress(done + 1, len(pairs))
    return rows


def sweep_pair(depth: int, seed: int, train: TrainSpec, base: ModelSpec, cancelled=_never) -> list[SweepRow]:
    """One depth and seed of the sweep: the plain net and its residual twin, in lock-step."""
    specs = [replace(base, depth=depth, skip=skip, name="") for skip in (False, True)]
    job = Job(specs, replace(train, seed=seed), ray="")
    snap = job.run_blocking(lambda step, losses: cancelled() and job.stop())
    if snap.state != "done":
        raise Cancelled
    rows = []
    for view in snap.models:
        test_error = 1 - float(view.test_acc[-1]) if view.test_acc.size else math.nan
        rows.append(SweepRow(depth, view.spec.skip, seed, snap.steps, view.final_train_loss(),
                             1 - view.final_train_acc(), test_error, float(view.seconds.sum())))
    return rows


def _ray_pair(depth, seed, train, base, threads):
    torch.set_num_threads(threads)
    return sweep_pair(depth, seed, train, base)


def _sweep_on_ray(address, pairs, train, base, on_row, on_progress, cancelled, threads) -> list[SweepRow]:
    from ..training.workers import connect, resolve
    ray = connect(resolve(address))
    task = ray.remote(num_cpus=threads, max_retries=0)(_ray_pair)
    refs = {task.remote(depth, seed, train, base, threads): i for i, (depth, seed) in enumerate(pairs)}
    results: dict[int, list[SweepRow]] = {}
    pending = list(refs)
    try:
        while pending:
            if cancelled():
                raise Cancelled
            ready, pending = ray.wait(pending, num_returns=1, timeout=0.5)
            for ref in ready:
                results[refs[ref]] = ray.get(ref)  # a lost task raises here: the sweep fails, says so
                for row in results[refs[ref]]:
                    if on_row is not None:
                        on_row(row)
                if on_progress is not None:
                    on_progress(len(results), len(pairs))
    finally:
        for ref in pending:  # cancelled or failed: nothing trains on for nobody
            ray.cancel(ref, force=True)
    return [row for i in range(len(pairs)) for row in results[i]]


def write_sweep_csv(rows, path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f.name for f in fields(SweepRow)])
        for r in rows:
            w.writerow([_csv_value(getattr(r, f.name)) for f in fields(SweepRow)])


def read_sweep_csv(path) -> list[SweepRow]:
    with open(path, newline="") as f:
        return [SweepRow(int(r["depth"]), r["skip"] == "True", int(r["seed"]), int(r["steps"]),
                         float(r["final_train_loss"] or "nan"), float(r["final_train_error"] or "nan"),
                         float(r["test_error"] or "nan"), float(r["seconds"])) for r in csv.DictReader(f)]


def _csv_value(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def sweep_summary(rows) -> dict:
    """{(skip, depth): (mean, min, max) of final training loss and error over seeds}, for the figure."""
    out = {}
    for skip in (False, True):
        for depth in sorted({r.depth for r in rows}):
            sel = [r for r in rows if r.skip == skip and r.depth == depth]
            if sel:
                loss = np.array([r.final_train_loss for r in sel])
                err = np.array([r.final_train_error for r in sel])
                out[(skip, depth)] = dict(loss=(loss.mean(), loss.min(), loss.max()),
                                          error=(err.mean(), err.min(), err.max()), seeds=len(sel))
    return out


# ---- lesion study ----------------------------------------------------------------------------------------

class _Skip(nn.Module):
    """A residual block with its branch deleted: only the skip path is left, H = ReLU(beta * shortcut(x))."""

    def __init__(self, block: ResidualBlock):
        super().__init__()
        self.shortcut, self.beta = block.shortcut, block.beta

    def forward(self, x):
        return torch.relu(self.beta(self.shortcut(x)))


def _shape_preserving(block) -> bool:
    if not hasattr(block, "F"):  # a classic net's conv stage: pooled or widened, never the identity's shape
        return False
    convs = block.F.convs
    return all(c.stride == (1, 1) for c in convs) and convs[0].in_channels == convs[-1].out_channels


def lesion(net, images: np.ndarray, labels: np.ndarray, on_progress=None, cancelled=_never,
           stats: tuple[float, float] = MNIST_STATS) -> np.ndarray:
    """Test accuracy with each block deleted in turn (Veit et al.): a residual block keeps its skip path, a
    plain block becomes the identity where its input and output shapes match (NaN where they do not).
    Works on a copy: the model itself is never touched. Returns (blocks,) accuracies."""
    work = copy.deepcopy(net).eval()
    x = normalise(images, stats).contiguous(memory_format=torch.channels_last)
    y = torch.tensor(labels, dtype=torch.int64)
    slots = work.block_slots()
    out = np.full(len(slots), np.nan)
    for k, (seq, i) in enumerate(slots):
        if cancelled():
            raise Cancelled
        block = seq[i]
        if isinstance(block, ResidualBlock):
            seq[i] = _Skip(block)
        elif _shape_preserving(block):
            seq[i] = nn.Identity()
        else:
            continue
        out[k] = _accuracy(work, x, y)
        seq[i] = block
        if on_progress is not None:
            on_progress(k + 1, len(slots))
    return out


def _accuracy(net, x, y, chunk: int = 500) -> float:
    with torch.inference_mode():
        right = sum(int((net(x[i:i + chunk]).argmax(1) == y[i:i + chunk]).sum()) for i in range(0, len(x), chunk))
    return right / len(x)


def accuracy(net, images: np.ndarray, labels: np.ndarray, stats: tuple[float, float] = MNIST_STATS) -> float:
    x = normalise(images, stats).contiguous(memory_format=torch.channels_last)
    return _accuracy(net.eval(), x, torch.tensor(labels, dtype=torch.int64))


# ---- loss landscape --------------------------------------------------------------------------------------

def _weights(net) -> list[torch.Tensor]:
    return [p for p in net.parameters()]


def filter_normalised_direction(net, generator: torch.Generator) -> list[torch.Tensor]:
    """A random direction shaped like the weights, each filter (output unit) scaled to the norm of the same
    filter in the model (Li et al. 2018), so the slice is comparable across nets of different scale. Biases,
    BN and alpha/beta get 0, as in the paper."""
    out = []
    for p in _weights(net):
        if p.dim() <= 1:
            out.append(torch.zeros_like(p))
            continue
        d = torch.randn(p.shape, generator=generator)
        dims = tuple(range(1, p.dim()))
        norm = torch.linalg.vector_norm
        d = d * (norm(p.detach(), dim=dims, keepdim=True) / norm(d, dim=dims, keepdim=True).clamp_min(1e-12))
        out.append(d)
    return out


def _landscape_data(n: int = LANDSCAPE_IMAGES, dataset: str = "mnist-5k", classes=ALL_CLASSES):
    data = tensors(dataset, classes)
    return data.normalise(data.train_x[:n]).contiguous(memory_format=torch.channels_last), data.train_y[:n]


def _loss_at(work, weights, x, y) -> float:
    with torch.no_grad():
        torch._foreach_copy_(_weights(work), weights)
    with torch.inference_mode():
        loss = float(nnf.cross_entropy(work(x), y))
    return loss if math.isfinite(loss) else math.nan


def landscape_2d(net, resolution: int = LANDSCAPE_RESOLUTION, span: float = LANDSCAPE_SPAN, seed: int = 0,
                 on_progress=None, cancelled=_never, dataset: str = "mnist-5k",
                 classes=ALL_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """Training loss on a resolution x resolution grid around the trained weights, theta + a*d1 + b*d2 for
    a, b in [-span, span], d1 and d2 filter-normalised random directions. Returns (coords, loss[b, a])."""
    if not 3 <= resolution <= 51:
        raise ValueError("resolution must be 3..51")
    gen = torch.Generator().manual_seed(seed)
    work = copy.deepcopy(net).eval()
    theta = [p.detach().clone() for p in _weights(work)]
    d1, d2 = filter_normalised_direction(work, gen), filter_normalised_direction(work, gen)
    x, y = _landscape_data(dataset=dataset, classes=classes)
    coords = np.linspace(-span, span, resolution)
    loss = np.full((resolution, resolution), np.nan)
    for j, b in enumerate(coords):
        for i, a in enumerate(coords):
            if cancelled():
                raise Cancelled
            loss[j, i] = _loss_at(work, [t + a * u + b * v for t, u, v in zip(theta, d1, d2)], x, y)
            if on_progress is not None:
                on_progress(j * resolution + i + 1, resolution * resolution)
    return coords, loss


def interpolation_1d(start, end, points: int = 25, margin: float = 0.25, cancelled=_never,
                     dataset: str = "mnist-5k", classes=ALL_CLASSES):
    """Training loss along the straight line from `start`'s weights (t = 0, the initialisation) to `end`'s
    (t = 1, trained), a little beyond both ends (Goodfellow et al.)."""
    work = copy.deepcopy(end).eval()
    state = [v for v in work.state_dict().values() if v.is_floating_point()]  # BN statistics move too
    w0 = [v.detach().clone() for v in start.state_dict().values() if v.is_floating_point()]
    w1 = [v.detach().clone() for v in state]
    x, y = _landscape_data(dataset=dataset, classes=classes)
    ts = np.linspace(-margin, 1 + margin, points)
    loss = np.full(points, np.nan)
    for k, t in enumerate(ts):
        if cancelled():
            raise Cancelled
        with torch.no_grad():
            torch._foreach_copy_(state, [(1 - t) * a + t * b for a, b in zip(w0, w1)])
        with torch.inference_mode():
            value = float(nnf.cross_entropy(work(x), y))
        loss[k] = value if math.isfinite(value) else math.nan
    return ts, loss


def initial_nets(specs, seed: int):
    """The models as they started (build_nets is seeded), for the 1-D interpolation and 'at init' views."""
    return [n.eval() for n in build_nets(list(specs), seed)]


# ---- shattered gradients ---------------------------------------------------------------------------------

def gradient_correlation(net, a: np.ndarray, b: np.ndarray, points: int = 128, max_lag: int = 32,
                         stats: tuple[float, float] = MNIST_STATS):
    """Balduzzi et al.'s shattered gradients, on digits: walk a straight line of inputs from digit a to digit
    b, take the gradient of one output (the logit of the class the net gives a; a logit, not the loss, which
    saturates in a deep net at init) with respect to each input, and correlate gradients `lag` steps apart.
    Smooth (residual) nets keep neighbours correlated; deep plain nets decorrelate fast, like white noise.
    Returns (lags, mean correlation per lag)."""
    t = torch.linspace(0, 1, points).view(-1, 1, 1, 1)
    xa, xb = normalise(a[None], stats), normalise(b[None], stats)
    x = ((1 - t) * xa + t * xb).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    work = copy.deepcopy(net).eval()
    for p in work.parameters():
        p.requires_grad_(False)
    label = int(work(xa.contiguous(memory_format=torch.channels_last)).argmax())
    (grad,) = torch.autograd.grad(work(x)[:, label].sum(), x)
    g = grad.reshape(points, -1).double()
    g = (g - g.mean(1, keepdim=True)) / g.std(1, keepdim=True).clamp_min(1e-30)
    lags = np.arange(1, max_lag + 1)
    corr = np.array([float((g[:-k] * g[k:]).mean(1).mean()) * g.shape[1] / (g.shape[1] - 1) for k in lags])
    return lags, corr
