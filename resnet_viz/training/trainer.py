"""The lock-step training loop: one minibatch per step, fed to every model in turn.

It writes everything it measures into shared-memory tensors (a `Record` per model) and reads its orders
from a shared `Control`, so the same loop runs in the CLI's own process or in a worker process beside the
Streamlit server, where the server's Python work cannot hold the GIL against it (a chart thread in the same
process slowed training ~3x on 2 cores).
"""
import contextlib
import math
import time
from dataclasses import replace

import torch
import torch.nn.functional as nnf

from ..config import LR_MILESTONES, ModelSpec, TrainSpec, pretraining
from ..data.arrays import tensors
from ..metrics import NAMES, PROBED, SERIES
from ..models import Net, build_model
from . import device
from .probes import Probes
from .weights import bind_weights


class Control:
    """Orders and progress shared between the job's owner and the worker, each slot written by one side:
    owner -> STOP, PAUSED, GRANTED (single steps allowed while paused); worker -> USED, BLOCKED, STEP,
    PRETRAINED (pretraining steps done, over all the nets pretrained for transfer models); a Ray driver ->
    STAGE (workers.CONNECTING, CONNECTED, PLACED)."""

    STOP, PAUSED, GRANTED, USED, BLOCKED, STEP, PRETRAINED, STAGE = range(8)

    def __init__(self):
        self.ints = torch.zeros(8, dtype=torch.int64)
        self.elapsed = torch.zeros(1, dtype=torch.float64)  # training seconds, paused time excluded

    def share_memory_(self) -> "Control":
        self.ints.share_memory_()
        self.elapsed.share_memory_()
        return self

    def __getitem__(self, slot: int) -> int:
        return int(self.ints[slot])

    def __setitem__(self, slot: int, value: int) -> None:
        self.ints[slot] = value


class Record:
    """What is measured for one model, preallocated for the whole run: one tensor per metrics.SERIES entry,
    as an attribute of that name (NaN = not yet), and `counts` = [evaluations done, step it diverged at or -1]."""

    def __init__(self, steps: int, layers: int, blocks: int, evals: int):
        for s in SERIES:
            setattr(self, s.name, torch.full(s.shape(steps, layers, blocks, evals), s.fill,
                                             dtype=torch.int64 if s.integer else torch.float32))
        self.counts = torch.tensor([0, -1])

    def share_memory_(self) -> "Record":
        for name in NAMES + ("counts",):
            getattr(self, name).share_memory_()
        return self

    @property
    def diverged_step(self) -> int:
        return int(self.counts[1])


def evaluations(spec: TrainSpec) -> int:
    return spec.steps // spec.eval_every + 1


def build_nets(models: list[ModelSpec], seed: int, flats: list[torch.Tensor] | None = None,
               build_lock=None) -> list[Net]:
    """The models at their seeded start, channels_last; with `flats`, bound to those shared buffers (whose
    values they adopt, see weights.py)."""
    build_lock = build_lock or contextlib.nullcontext()
    nets = []
    for i, s in enumerate(models):
        with build_lock:  # seeding is process-global: another thread's build must not interleave
            torch.manual_seed(seed)  # the same start for models of the same architecture
            net = build_model(s).to(memory_format=torch.channels_last)
        if flats is not None:
            bind_weights(net, flats[i])
        nets.append(net)
    return nets


def train_lockstep(nets: list[Net], spec: TrainSpec, records: list[Record], control: Control,
                   dataset: str = "mnist-5k", on_step=None, sourced=()) -> str:
    """Train until done or stopped; returns "done" or "stopped". Never touches anything but its arguments.
    On a GPU (spec.device) it trains copies there and publishes their weights into `nets` as it goes."""
    target = device.resolve(spec.device)
    work = device.on_device(nets, target)
    models = [net.spec for net in nets]
    probes = []
    try:
        if not pretrain(work, models, spec, control, dataset, sourced):
            return "stopped"
        probes = [Probes(net) for net in work]
        return _train(work, probes, spec, records, control, tensors(dataset, spec.class_list), on_step,
                      publish=None if work is nets else lambda: device.publish(work, nets))
    finally:  # the nets live on (the server draws digits through them); their probes must not
        for probe in probes:
            probe.remove()
        device.publish(work, nets)
        for net in nets:
            net.eval()


def pretrain(nets: list[Net], models: list[ModelSpec], spec: TrainSpec, control: Control,
             dataset: str = "mnist-5k", sourced=()) -> bool:
    """Transfer learning's first half: for each architecture among the transfer models, train one net from
    the same seeded start as the others for spec.pretrain_steps on the pretraining task, with the run's own
    optimiser and schedule, then copy its weights into those models, all but the head (theirs stays at its
    seeded start: the new head). Models in `sourced` have their weights already. False when stopped meanwhile."""
    groups = pretraining(models, sourced)
    if not groups:
        return True
    data = tensors(spec.pretrain_dataset or dataset, spec.pretrain_class_list)
    schedule = replace(spec, steps=spec.pretrain_steps, warmup_steps=min(spec.warmup_steps, spec.pretrain_steps))
    where = next(nets[0].parameters()).device
    done = 0
    for architecture, members in groups.items():
        net = build_nets([architecture], spec.seed)[0].to(where)  # the seeded start every model of it shares
        opt = _optimizer(net, schedule)
        batches = _batches(data, schedule, where)
        net.train()
        for step in range(schedule.steps):
            if not _wait_for_go(control):
                return False
            x, y = next(batches)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, schedule)
            loss = nnf.cross_entropy(net(x), y)
            if math.isfinite(loss.item()):  # a diverging pretraining step is skipped, not learned from
                opt.zero_grad(set_to_none=False)
                loss.backward()
                opt.step()
            done += 1
            control[Control.PRETRAINED] = done
        for i in members:
            nets[i].load_backbone(net)
    return True


def _batches(data, spec: TrainSpec, where):
    """Minibatches (x, y) forever, in the seeded order (a new permutation after each epoch)."""
    order = torch.Generator().manual_seed(spec.seed)
    while True:
        perm = torch.randperm(len(data.train_y), generator=order)
        for start in range(0, len(perm) - spec.batch_size + 1, spec.batch_size):
            idx = perm[start:start + spec.batch_size]
            x = data.normalise(data.train_x[idx]).to(where).contiguous(memory_format=torch.channels_last)
            yield x, data.train_y[idx].to(where)  # uint8 till normalise


def _train(nets, probes, spec: TrainSpec, records, control: Control, data, on_step, publish) -> str:
    opts = [_optimizer(net, spec) for net in nets]
    where = next(nets[0].parameters()).device
    batches = _batches(data, spec, where)
    test_x = data.normalise(data.test_x[:spec.eval_size]).to(where).contiguous(memory_format=torch.channels_last)
    test_y = data.test_y[:spec.eval_size].to(where)
    clock = time.perf_counter()
    for step in range(spec.steps):
        control.elapsed[0] += time.perf_counter() - clock
        if not _wait_for_go(control):
            return "stopped"
        clock = time.perf_counter()
        x, y = next(batches)
        lr = lr_at(step, spec)
        for net, opt, probe, rec in zip(nets, opts, probes, records):
            if rec.diverged_step < 0:
                for g in opt.param_groups:
                    g["lr"] = lr
                _train_step(step, net, opt, probe, rec, x, y)
        if (step + 1) % spec.eval_every == 0 or step + 1 == spec.steps:
            _evaluate(step + 1, nets, probes, records, test_x, test_y)
        if publish is not None and (step + 1) % device.PUBLISH_EVERY == 0:
            publish()
        control[Control.STEP] = step + 1
        if on_step is not None:
            on_step(step + 1, [float(r.train_loss[step]) for r in records])
    control.elapsed[0] += time.perf_counter() - clock
    return "done"


def _wait_for_go(control: Control) -> bool:
    """At a step boundary: False when asked to stop; waits while paused, unless a single step was granted."""
    while True:
        if control[Control.STOP]:
            return False
        if not control[Control.PAUSED]:
            return True
        if control[Control.USED] < control[Control.GRANTED]:
            control[Control.USED] = control[Control.USED] + 1
            return True
        control[Control.BLOCKED] = 1
        time.sleep(0.05)
        control[Control.BLOCKED] = 0


def _train_step(step, net, opt, probe, rec: Record, x, y) -> None:
    t0 = time.perf_counter()
    net.train()
    logits = net(x)
    loss = nnf.cross_entropy(logits, y)
    loss_value = loss.item()
    if not math.isfinite(loss_value):
        rec.train_loss[step] = loss_value
        rec.counts[1] = step + 1
        probe.read()  # drop this step's activation stats
        return
    opt.zero_grad(set_to_none=False)
    loss.backward()
    opt.step()
    readout, start = probe.read(), 0
    for name in PROBED:  # the readout is these series' rows for this step, one after the other
        target = getattr(rec, name)
        target[step] = readout[start:start + target.shape[1]]
        start += target.shape[1]
    rec.train_acc[step] = (logits.argmax(1) == y).float().mean().item()
    rec.seconds[step] = time.perf_counter() - t0
    rec.train_loss[step] = loss_value  # written last: a finite loss marks the step as complete


def _evaluate(step, nets, probes, records, x, y) -> None:
    for net, probe, rec in zip(nets, probes, records):
        if rec.diverged_step >= 0:
            continue
        probe.active = False
        net.eval()
        with torch.inference_mode():
            logits = net(x)
            i = int(rec.counts[0])
            rec.test_loss[i] = nnf.cross_entropy(logits, y).item()
            rec.test_acc[i] = (logits.argmax(1) == y).float().mean().item()
            rec.eval_step[i] = step
        rec.counts[0] = i + 1
        probe.active = True


def _optimizer(net, spec: TrainSpec) -> torch.optim.Optimizer:
    trained = [p for p in net.parameters() if p.requires_grad]  # a frozen backbone is not even decayed
    if spec.optimizer == "adam":
        return torch.optim.Adam(trained, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(trained, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)


def lr_at(step: int, spec: TrainSpec) -> float:
    """Linear warm-up from lr/10 over warmup_steps, then the lr times gamma (lr_decay) for each milestone
    passed (He et al.'s step schedule, scaled to the run's length)."""
    if step < spec.warmup_steps:
        return spec.lr * (0.1 + 0.9 * step / spec.warmup_steps)
    passed = sum(step >= int(m * spec.steps) for m in LR_MILESTONES)
    return spec.lr * spec.lr_decay ** passed


def die_with_server() -> None:
    """A local worker ends (SIGKILL) when the fork server that forked it ends, and the fork server ends when
    the server does, however it ends (it exits at the end of a pipe only the server holds open, and a server
    killed outright closes it too): nothing trains on for a server that is no more. A flag in the kernel
    (Linux's PR_SET_PDEATHSIG), not a thread: a watching thread in these workers stalled the load test's
    shared run (watch_parent's first use). Elsewhere (spawned workers, whose OS parent is the server's
    launching thread, and not Linux) it does nothing."""
    import ctypes
    import multiprocessing
    import os
    import signal
    import sys
    server = multiprocessing.parent_process()
    if sys.platform != "linux" or server is None or server.pid == os.getppid():  # not forked by a fork server
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    # multiprocessing hands every child of the fork server a copy of the server's end of that pipe (so that
    # the child could start processes of its own through it): while a worker held it, a killed server's fork
    # server never saw the pipe end, and stayed, with its workers training. Ours start no processes.
    from multiprocessing import forkserver
    alive = getattr(forkserver._forkserver, "_forkserver_alive_fd", None)
    if alive is not None:
        forkserver._forkserver._forkserver_alive_fd = None
        os.close(alive)
    if os.getppid() == 1:  # the fork server ended before the flag was set
        os._exit(1)


def watch_parent(on_gone) -> None:
    """Call on_gone() once the server that started this process has gone (killed outright: no atexit ran to
    stop it), so that nothing trains on for a server that is no more. The fork server outlives it, so the
    parent to watch is multiprocessing's (the process that asked for this one), not the OS's. Used by the Ray
    drivers, which end their actors through Ray when they stop (local workers: die_with_server)."""
    import multiprocessing
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:  # not started by multiprocessing
        return

    def watch():
        while parent.is_alive():
            time.sleep(1.0)
        on_gone()

    threading.Thread(target=watch, name="resnet-lab-parent-watch", daemon=True).start()


def say(conn, message) -> None:
    """Send a worker's message to the server, unless the server is gone (nobody to tell)."""
    try:
        conn.send(message)
    except (BrokenPipeError, ConnectionError, EOFError):
        pass


def worker_main(models, flats, spec, records, control, dataset, threads, sourced, conn) -> None:
    """Entry point of a worker process: train the models whose weights live in the shared `flats`, then
    report ("done"|"stopped"|"failed", error) on conn."""
    die_with_server()
    torch.set_num_threads(threads)
    try:
        nets = build_nets(models, spec.seed, flats)
        say(conn, (train_lockstep(nets, spec, records, control, dataset, sourced=sourced), None))
    except Exception as exc:  # reported to the owner, shown in the UI
        say(conn, ("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()
