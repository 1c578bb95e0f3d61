"""A whole class on one server: identical runs trained once, and runs followed by a code.

Training is deterministic for one set of models, training settings, dataset and seed on one server with one
thread count (the same data order: tests/test_sharing.py), so when 25 students press Train on the same preset,
one run trains and the others watch it, instead of 25 identical copies queueing for half an hour.

    RUNS.find(key)            a run with these settings that a newcomer may join: queued, training, or done
    RUNS.add(key, job, who)   a new run, watched by `who` (anything with an identity: a session's job slot;
                              `who.here`, if set, says its browser is on the server's machine)
    RUNS.join(job, who) / RUNS.leave(job, who, grace)
                              a run stops only when its last watcher leaves (a finished one stays cached),
                              `grace` seconds later: a watcher who comes back in time (a reload) keeps it
    RUNS.run_code(job) -> code / RUNS.run_by_code(code)
                              a short code for a run, for the page's address: a reload, or the same address
                              on another device, finds the run again
    RUNS.publish(who) -> code / RUNS.followed(code)
                              follow the teacher: a short code names a session's slot; whoever opens the
                              app with it watches whatever run that slot holds, read-only

Finished runs stay in a least-recently-used cache of RESNET_LAB_RUN_CACHE runs (default 8), so a student
who presses Train after the first one finished watches it replayed (training/replay.py) rather than trained
again. No torch here: the UI imports it.
"""
import hashlib
import json
import os
import secrets
import threading
import weakref
from collections import OrderedDict

from ..config import spec_dict

CODE_ALPHABET = "ACDEFHJKMNPRTUVWXY3479"  # no 0/O, 1/I/L, 2/Z, 5/S, 6/G, 8/B: read off a projector
CODE_LENGTH = 4


def grace_s() -> float:
    """How long a run whose last watcher left (a closed or reloading tab) trains on before it stops, so a
    reload finds it still going: RESNET_LAB_GRACE_S, else 60 s."""
    try:
        return max(0.0, float(os.environ.get("RESNET_LAB_GRACE_S", "")))
    except ValueError:
        return 60.0


def run_cache_size() -> int:
    """How many finished runs the server keeps for latecomers: RESNET_LAB_RUN_CACHE, else 8."""
    env = os.environ.get("RESNET_LAB_RUN_CACHE", "")
    return int(env) if env.isdigit() else 8


def run_key(models, train, dataset: str) -> str:
    """What makes two runs identical: every model's spec, every training setting (the seed among them), the
    dataset. A run that starts from another run's weights (transfer from this session's run) has no key."""
    text = json.dumps({"models": [spec_dict(m) for m in models], "train": spec_dict(train), "dataset": dataset},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class Runs:
    def __init__(self, cache_size: int | None = None):
        self.cache_size = run_cache_size() if cache_size is None else cache_size
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._by_key: OrderedDict[str, object] = OrderedDict()  # the most recently used last
        self._watchers: dict[int, weakref.WeakSet] = {}  # id(job) -> who watches it
        self._codes: dict[str, weakref.ref] = {}  # code -> the publishing slot
        self._followers: dict[str, weakref.WeakSet] = {}  # code -> who follows it
        self._leaving: dict[int, tuple[object, threading.Timer]] = {}  # id(job) -> (job, its stop in grace)
        self._run_codes: dict[str, weakref.ref] = {}  # code -> the run
        self._code_of: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # run -> its code

    # ---- identical runs -----------------------------------------------------------------------------
    def find(self, key: str):
        """The run with these settings that a newcomer joins, or None. A paused run is not offered (its
        watcher is stepping through it), nor a stopped or failed one."""
        with self._lock:
            job = self._by_key.get(key)
            if job is None:
                return None
            snap = job.snapshot()
            if snap.state in ("stopped", "failed") or (not snap.finished and snap.pause_requested):
                if snap.finished:
                    del self._by_key[key]
                return None
            self._by_key.move_to_end(key)
            return job

    def find_or_start(self, key: str, start, who):
        """(the run with these settings, True) for a newcomer who joins it, else (start(), False), the new
        run registered under `key`. One at a time: 25 students pressing Train together start one run."""
        with self._start_lock:
            job = self.find(key)
            if job is not None:
                self.join(job, who)
                return job, True
            job = start()
            self.add(key, job, who)
            return job, False

    def add(self, key: str, job, who) -> None:
        with self._lock:
            self._by_key[key] = job
            self._by_key.move_to_end(key)
            self._watchers.setdefault(id(job), weakref.WeakSet()).add(who)
            self._evict()

    def join(self, job, who) -> None:
        """`who` watches `job` now (back in time: the stop its last watcher's leaving set is called off)."""
        with self._lock:
            self._watchers.setdefault(id(job), weakref.WeakSet()).add(who)
            leaving = self._leaving.pop(id(job), None)
        if leaving is not None:
            leaving[1].cancel()

    def leave(self, job, who, grace: float = 0.0) -> None:
        """`who` stops watching `job`; when the last watcher leaves, the run stops `grace` seconds later
        unless someone joins it by then (a finished run has nothing to stop). A run nobody registered (a
        private copy, a reopened file) has only its owner, so its owner's leaving is the last."""
        with self._lock:
            watchers = self._watchers.get(id(job))
            if watchers is not None:
                watchers.discard(who)
            if watchers or id(job) in self._leaving:
                return
            if grace > 0 and not job.snapshot().finished:
                timer = threading.Timer(grace, self._expire, (job,))
                timer.daemon = True
                self._leaving[id(job)] = (job, timer)  # the timer keeps the run alive to be found again
                timer.start()
                return
        self._stop(job)

    def _expire(self, job) -> None:
        """The grace of a run nobody watched is over: stop it, unless a watcher came back."""
        with self._lock:
            if self._leaving.get(id(job), (None,))[0] is not job or self._watchers.get(id(job)):
                return
            del self._leaving[id(job)]
        self._stop(job)

    def _stop(self, job) -> None:
        with self._lock:
            if self._watchers.get(id(job)):
                return
            self._watchers.pop(id(job), None)
            for key, kept in list(self._by_key.items()):
                if kept is job and not job.snapshot().state == "done":
                    del self._by_key[key]  # a run stopped half-way is nobody's to join
        job.stop()

    def leaving(self, job) -> bool:
        """Whether `job` lost its last watcher and stops when its grace ends."""
        with self._lock:
            return id(job) in self._leaving

    def watchers(self, job) -> int:
        with self._lock:
            watchers = self._watchers.get(id(job))
            return len(watchers) if watchers is not None else 0

    def viewers(self, job, here: bool = False) -> int:
        """Its watchers and the sessions that follow the code of a session holding it; with `here`, only
        those whose `who.here` is true (their browser is on the server's machine)."""
        def count(whos) -> int:
            return sum(1 for who in whos if getattr(who, "here", False)) if here else len(whos)

        with self._lock:
            n = count(self._watchers.get(id(job), ()))
            for code, ref in self._codes.items():
                slot = ref()
                if slot is not None and getattr(slot, "job", None) is job:
                    n += count(self._followers.get(code, ()))
            return n

    def shared(self, job) -> bool:
        """Whether someone else watches `job` too."""
        return self.watchers(job) > 1

    def _evict(self) -> None:
        done = [k for k, j in self._by_key.items() if j.snapshot().finished]
        for key in done[:max(0, len(done) - self.cache_size)]:  # the least recently used first
            job = self._by_key.pop(key)
            if not self._watchers.get(id(job)):
                self._watchers.pop(id(job), None)

    def cached(self) -> int:
        with self._lock:
            return len(self._by_key)

    # ---- a run's own code, for the page's address ----------------------------------------------------
    def run_code(self, job) -> str:
        """The short code of `job` (the same for every session that shows it), made on first asking."""
        with self._lock:
            code = self._code_of.get(job)
            if code is None:
                for old, ref in list(self._run_codes.items()):
                    if ref() is None:
                        del self._run_codes[old]
                code = self._new_code(lambda c: c in self._run_codes)
                self._run_codes[code] = weakref.ref(job)
                self._code_of[job] = code
            return code

    def run_by_code(self, code: str):
        """The run `code` names (case and spaces ignored) while this server still has it, else None."""
        with self._lock:
            ref = self._run_codes.get(normal_code(code))
            return ref() if ref is not None else None

    def _new_code(self, taken) -> str:
        """A fresh code that is neither `taken` nor a follow code nor a run code in use (lock held)."""
        while True:
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            follow = self._codes.get(code)
            run = self._run_codes.get(code)
            if not taken(code) and (follow is None or follow() is None) and (run is None or run() is None):
                return code

    # ---- follow the teacher -----------------------------------------------------------------------------
    def publish(self, slot) -> str:
        """A short code for `slot` (anything with a `.job`): its current run and every later one."""
        with self._lock:
            for code, ref in self._codes.items():
                if ref() is slot:
                    return code
            code = self._new_code(lambda c: False)
            self._codes[code] = weakref.ref(slot)
            return code

    def follow(self, code: str, who) -> None:
        """`who` follows `code` now (one code at a time: following another leaves the first)."""
        with self._lock:
            for followers in self._followers.values():
                followers.discard(who)
            if normal_code(code) in self._codes:
                self._followers.setdefault(normal_code(code), weakref.WeakSet()).add(who)

    def unpublish(self, slot) -> None:
        with self._lock:
            for code, ref in list(self._codes.items()):
                if ref() is slot or ref() is None:
                    del self._codes[code]
                    self._followers.pop(code, None)

    def followed(self, code: str):
        """The slot published under `code` (case and spaces ignored), or None."""
        with self._lock:
            ref = self._codes.get(normal_code(code))
            return ref() if ref is not None else None


def normal_code(code: str) -> str:
    return "".join(str(code or "").split()).upper()


RUNS = Runs()
