"""One training job per browser session, stopped when the session ends.

The job lives in a session-scoped resource: when the tab closes (or reloads), Streamlit releases it, and the
run stops once its grace (sharing.grace_s) has passed with nobody back to watch it: a reload finds it by the
code in the page's address (`reconnect`). A heartbeat stamped by the polling status line is the second guard
(the engine stops a job nobody has looked at for `heartbeat_timeout()` seconds), in case a release never
comes.
"""
import threading
import time

import streamlit as st

from ..training.sharing import CODE_ALPHABET, RUNS, grace_s, normal_code

HEARTBEAT_TIMEOUT = 90.0  # s; browsers throttle background tabs' timers to about once a minute


def heartbeat_timeout() -> float:
    """How long a run nobody looks at trains on: HEARTBEAT_TIMEOUT, or the grace when that is longer (the
    heartbeat must not stop a run its session may still come back to)."""
    return max(HEARTBEAT_TIMEOUT, grace_s())

# Importing torch (here and in the fork server) takes ~2 s of both cores; done while the first page renders
# it made the page appear in 7 s instead of 4. Wait until the page is up (a Train pressed sooner imports it).
WARM_UP_DELAY = 3.0  # s


def viewer_here() -> bool:
    """Whether this session's browser runs on the server's machine (it connected from localhost), so that
    it draws the charts on the cores that train (engine.worker_threads, engine.run_threads). A script with no browser (AppTest) is
    not."""
    return st.context.ip_address is None and bool(st.context.headers.get("Host"))


class JobHolder:
    """A session's slot for its run. A run several sessions watch (training/sharing.py) is stopped only when
    its last watcher leaves; a private one when its session replaces it or leaves. With `grace`, a session
    that ends leaves its run going for sharing.grace_s() seconds, for a reload to come back to."""

    def __init__(self, here: bool = False, grace: bool = False):
        self.job = None
        self.here = here  # its browser is on the server's machine (viewer_here): it draws on the training cores
        self.grace = grace

    def replace(self, job) -> None:
        """Show `job` (None: nothing) instead of the current run, which this session leaves at once."""
        if self.job is not None and self.job is not job:
            RUNS.leave(self.job, self)
        if job is not None:
            RUNS.join(job, self)
        self.job = job

    def release(self) -> None:
        RUNS.unpublish(self)
        if self.job is not None:
            RUNS.leave(self.job, self, grace_s() if self.grace else 0.0)


class ReleaseGuard:
    """Lives exactly as long as the browser session; stops the session's job when Streamlit releases it."""

    def __init__(self):
        self.holders: list[JobHolder] = []

    def release(self) -> None:
        for holder in self.holders:
            holder.release()


@st.cache_resource(scope="session", on_release=ReleaseGuard.release, show_spinner=False)
def _release_guard() -> ReleaseGuard:
    return ReleaseGuard()


def job_holder() -> JobHolder:
    """This session's job slot: kept in session_state (one per session, tests included), and registered with
    the session-scoped guard so closing the tab stops the job."""
    holder = st.session_state.get("_job_holder")
    if holder is None:
        holder = st.session_state["_job_holder"] = JobHolder(here=viewer_here(), grace=True)
    guard = _release_guard()
    if holder not in guard.holders:
        # A session whose connection dropped and came back (Streamlit keeps it a while) got a new guard, and
        # its release left its run: it watches it again.
        guard.holders.append(holder)
        if holder.job is not None:
            RUNS.join(holder.job, holder)
    return holder


def run_code() -> str | None:
    """The code of this session's run, for the page's address (None without a run)."""
    job = job_holder().job
    return RUNS.run_code(job) if job is not None else None


def reconnect(code: str):
    """A session opened with a run's code (a reload, the address on another device) watches that run, as a
    shared one, and the Lab says so (ui/replay.py); an unknown code is said too. Returns the run, or None."""
    code = "".join(c for c in normal_code(code) if c in CODE_ALPHABET)[:8]  # shown in the note: nothing else
    if not code:
        return None
    job = RUNS.run_by_code(code)
    if job is None:
        st.session_state["_reconnected"] = (None, code, 0, 0, None)
        return None
    job.touch()
    job_holder().replace(job)
    snap = job.snapshot()
    st.session_state["_reconnected"] = (id(job), code, snap.step, snap.steps, snap.state if snap.finished else None)
    return job


def task_holder(kind: str) -> JobHolder:
    """This session's slot for one kind of live experiment, stopped with the session like the job."""
    key = f"_task_{kind}"
    holder = st.session_state.get(key)
    if holder is None:
        holder = st.session_state[key] = JobHolder()
        _release_guard().holders.append(holder)
    return holder


@st.cache_resource(show_spinner=False)
def workers_warmed_up() -> bool:
    """Once per server: start the worker fork server while the first visitor reads the page."""
    def warm_up():
        time.sleep(WARM_UP_DELAY)
        from ..training import (
            engine,  # torch: imported off the script thread, once the page is up
        )
        engine.warm_up()

    threading.Thread(target=warm_up, name="resnet-lab-warm-up", daemon=True).start()
    return True


# Live charts of one run that the server redraws per second, all its viewers together: a Streamlit server runs
# every session's script on one core (the GIL), so 25 students watching a shared run each refreshed every
# second would queue up behind each other, and their charts would stand still (seen in tests/test_load.py).
LIVE_REFRESHES_PER_SECOND = 2
# A status line is cheap on the server (one progress bar), so every viewer's refreshes far more often than its
# charts. Not in the browser: each fragment rerun costs a tab with charts about 0.1-0.25 CPU-s, so the tabs on
# the server's machine, which draw on the training cores, share fewer (session.status_interval).
STATUS_REFRESHES_PER_SECOND = 5
LOCAL_STATUS_REFRESHES_PER_SECOND = 2


def live_interval(job, running: float = 2.0, paused: float = 4.0,
                  per_second: float = LIVE_REFRESHES_PER_SECOND) -> float | None:
    """How often a live view of `job` should refresh: never once it has finished; less often the more sessions
    view it (watchers and followers): `per_second` refreshes for all of them together."""
    if job is None:
        return None
    snap = job.snapshot()
    if snap.finished:
        return None
    # A queued run changes only its place in the line: it is polled like a paused one.
    return max(running if snap.state == "running" else paused, RUNS.viewers(job) / per_second)


def status_interval(job) -> float | None:
    """How often a run's status line refreshes: every second (2 s while paused or queued), for N viewers every
    N/5 s; a tab on the server's machine at most 2 a second for all of the run's tabs there together (24 local
    tabs of one browser polling every 4.8 s kept 1.3 cores busy while the run they showed trained,
    tests/test_load.py)."""
    every = live_interval(job, 1.0, 2.0, STATUS_REFRESHES_PER_SECOND)
    if every is not None and viewer_here():
        every = max(every, RUNS.viewers(job, here=True) / LOCAL_STATUS_REFRESHES_PER_SECOND)
    return every


CHART_STEPS = 16  # a browser on the server's machine redraws the charts once per this many training steps
CHART_STEPS_KNOWN = 10  # steps after which a run's pace is known (the first ones are slow)


def chart_interval(job) -> float | None:
    """How often a run's charts refresh (live_interval): every second where the browser is elsewhere; where
    it draws them on the cores that train (a teacher's laptop: viewer_here), once per CHART_STEPS steps'
    time and at least every 2 s, for all the run's tabs on that machine together (each of N such tabs every
    N times that). A redraw costs the browser about 0.8 CPU-s on a fast machine and more on a slower one,
    whose steps take longer too: counted in steps, the page takes the same share of any machine.
    Redrawn every second, the charts took a third of the CPU the training workers had: the default lesson
    trained in 21.4 s with the page open, 19.5 s with charts every 2 s (browser 10.6 vs 7.1 CPU-s), against
    16.3 s headless (`bench --browser`). 24 tabs of one browser redrawing a shared run's charts each at the
    pace of one took the cores from the run (tests/test_load.py)."""
    if not viewer_here():
        return live_interval(job, 1.0, 2.0)
    return live_interval(job, chart_pace(job) * max(1, RUNS.viewers(job, here=True)), 2.0)


def chart_pace(job) -> float:
    """CHART_STEPS steps of `job`'s training time in whole seconds, at least 2 (2 until its pace is known)."""
    snap = job.snapshot()
    per_step = snap.elapsed / snap.step if snap.step >= CHART_STEPS_KNOWN else 0.0
    return max(2.0, float(round(CHART_STEPS * per_step)))


def rerun_when_finished(job, key: str) -> None:
    """Inside a polling fragment: one full rerun when the job finishes, which stops the polling."""
    finished = job.snapshot().finished
    was_busy = st.session_state.get(key, False)
    st.session_state[key] = not finished
    if was_busy and finished:
        st.rerun()


# ---- what the pages show: this session's run, the run it follows, or the reference models -----------------

def following() -> str | None:
    """The code of the run this session follows (a link's ?follow=CODE, or typed in the sidebar), or None."""
    return st.session_state.get("_follow") or None


def follow(code: str | None) -> None:
    st.session_state["_follow"] = code or None
    st.session_state.pop("_follow_job", None)


def followed_slot():
    code = following()
    return RUNS.followed(code) if code else None


def viewed_job():
    """The run this session's pages show: its own, or, while it follows a code, the run the code's session
    holds now (the last one it showed once that session has ended)."""
    if not following():
        return job_holder().job
    slot = followed_slot()
    if slot is not None and slot.job is not None:
        st.session_state["_follow_job"] = slot.job
        RUNS.follow(following(), job_holder())  # counted among the run's viewers (live_interval)
    return st.session_state.get("_follow_job")


@st.cache_resource(show_spinner=False)
def _reference_job():
    from ..analysis.reference import (
        reference_job,  # torch: when a page first needs the models
    )
    return reference_job()


def models_job():
    """(job, is_reference): the models Draw, Errors and Gradients use. Before this session has a run, the
    bundled reference models (the default lesson's four nets), shared by every session, read-only."""
    job = viewed_job()
    return (job, False) if job is not None else (_reference_job(), True)
