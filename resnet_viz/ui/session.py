"""One training job per browser session, stopped when the session ends.

The job lives in a session-scoped resource: when the tab closes, Streamlit releases it and we stop the
worker. A heartbeat stamped by the polling chart is the second guard (the engine stops a job nobody has
looked at for HEARTBEAT_TIMEOUT seconds), in case a release never comes.
"""
import streamlit as st

from .. import engine

HEARTBEAT_TIMEOUT = 90.0  # s; browsers throttle background tabs' timers to about once a minute


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


@st.cache_resource(scope="session", on_release=JobHolder.release, show_spinner=False)
def job_holder() -> JobHolder:
    return JobHolder()


@st.cache_resource(show_spinner=False)
def workers_warmed_up() -> bool:
    """Once per server: start the worker fork server while the first visitor reads the page."""
    engine.warm_up()
    return True
