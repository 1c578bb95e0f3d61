"""A slower CPU, emulated, for measuring the suite's time budget on the slow machines of DESIGN section 9.

    python3 tests/slow_cpu.py --steal 0.3 &        # as root: each core runs everything else at ~70 % speed
    CI=true python -m pytest ...                   # the hang guards' factor then reads about x1.7-2.1
    kill %1

On each core a real-time (SCHED_FIFO) process spins for `steal` of every `period_ms` and sleeps the rest. Real
time comes before every normal process, whatever its nice level, so every process on the machine (the
server, the browser, the training workers and the nice-19 science runs alike) gets the rest of each core, in
slices of a millisecond or two: closer to a slower CPU than a busy loop beside the suite (which takes one
whole core and leaves the other at full speed, and starves nice-19 work) or a cgroup quota (which stops
both cores for tens of milliseconds at a time). Still harsher than a slower CPU for work that waits on other
threads every millisecond (two-thread torch steps, a browser's processes): the stolen slices fall at
different times on the two cores. Needs root (real-time scheduling); the kernel keeps 5 % of each second for
normal processes in any case (sched_rt_runtime_us).
"""
import argparse
import os
import signal
import sys
import time


def steal(cpu: int, steal: float, period_s: float) -> None:
    os.sched_setaffinity(0, {cpu})
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
    busy, idle = steal * period_s, (1 - steal) * period_s
    clock, parent = time.perf_counter, os.getppid()
    while os.getppid() == parent:  # ends with its parent, however that ends
        end = clock() + busy
        while clock() < end:
            pass
        time.sleep(idle)
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steal", type=float, default=0.3, help="the share of each core taken (0-0.9)")
    parser.add_argument("--period-ms", type=float, default=2.0, help="one spin and sleep, in milliseconds")
    args = parser.parse_args()
    if not 0 < args.steal <= 0.9:
        parser.error("--steal takes a share above 0 and at most 0.9")
    children = []
    for cpu in sorted(os.sched_getaffinity(0)):
        pid = os.fork()
        if pid == 0:
            steal(cpu, args.steal, args.period_ms / 1000)
        children.append(pid)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill`: the finally below stops the spinners
    print(f"taking {args.steal:.0%} of cores {sorted(os.sched_getaffinity(0))} (processes {children}); "
          "stop with Ctrl-C or kill", flush=True)
    try:
        for pid in children:
            os.waitpid(pid, 0)
    except KeyboardInterrupt:
        pass
    finally:
        for pid in children:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    main()
