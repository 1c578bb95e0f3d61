"""One training job per browser session, stopped when the session ends.

The job lives in a session-scoped resource: when the tab closes, Streamlit releases it and we stop the
worker. A heartbeat stamped by the polling chart is the second guard (the engine stops a job nobody has
looked at for HEARTBEAT_TIMEOUT seconds), in case a release never comes.
"""
import threading
import time

import streamlit as st

HEARTBEAT_TIMEOUT = 90.0  # s; browsers throttle background tabs' timers to about once a minute
# Importing torch (here and in the fork server) takes ~2 s of both cores; done while the first page renders
# it made the page appear in 7 s instead of 4. Wait until the page is up (a Train pressed sooner imports it).
WARM_UP_DELAY = 3.0  # s


class JobHolder:
    def __init__(self):
        self.job = None

    def replace(self, job) -> None:
        if self.job is not None:
            self.job.stop()
        self.job = job

    def release(self) -> None:
        if self.job is not None:
            self.job.stop()


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
        holder = st.session_state["_job_holder"] = JobHolder()
        _release_guard().holders.append(holder)
    return holder


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


def live_interval(job, running: float = 2.0, paused: float = 4.0) -> float | None:
    """How often a live view of `job` should refresh: never once it has finished."""
    if job is None:
        return None
    snap = job.snapshot()
    return None if snap.finished else (running if snap.active else paused)


def rerun_when_finished(job, key: str) -> None:
    """Inside a polling fragment: one full rerun when the job finishes, which stops the polling."""
    finished = job.snapshot().finished
    was_busy = st.session_state.get(key, False)
    st.session_state[key] = not finished
    if was_busy and finished:
        st.rerun()
