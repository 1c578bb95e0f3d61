"""The page's URL as a share link, and classroom mode.

On a session's first run the URL's settings (share.from_params) are read into the session: the language and
classroom mode at once, the Lab settings when the Lab draws. From then on the Lab writes its current settings
back into the URL, so the address bar is always a link to what is on screen; while the session holds a run,
the address also names it (?run=CODE), so a reload, or the address opened on another device, finds the run
again (session.reconnect). The Share menu's link carries the settings only.
"""
import os
from dataclasses import replace
from urllib.parse import urlencode

import streamlit as st

from ..data.datasets import DATASETS
from ..share import Shared, from_params, to_params
from ..training.sharing import normal_code
from .session import follow, following, reconnect, run_code
from .text import t

CLASSROOM_ENV = "RESNET_LAB_CLASSROOM"  # "1": every session is in classroom mode, and cannot leave it
CLASSROOM_MAX_STEPS = 500  # keeps the queue moving when 30 students press Train


def read_once() -> None:
    if "_link" in st.session_state:
        return
    params = {key: st.query_params.get_all(key) for key in st.query_params}
    shared = from_params(params, tuple(DATASETS))
    st.session_state["_link"] = shared
    st.session_state["_link_problems"] = list(shared.problems)
    if shared.lang:
        st.session_state["lang"] = shared.lang
    if shared.classroom is not None:
        st.session_state["classroom"] = shared.classroom
    if st.query_params.get("follow"):
        follow(normal_code(st.query_params.get("follow"))[:16])
    elif st.query_params.get("run"):
        job = reconnect(st.query_params.get("run"))
        if job is not None:  # the Lab's settings are the run's (an address from another page has none)
            st.session_state["_link"] = replace(shared, train=job.train, models=tuple(job.models),
                                                dataset=job.dataset)


def keep_run() -> None:
    """On every page, the address names the session's run (a page switch empties it): a reload on the Draw
    page finds the run as one on the Lab does. The Lab then writes its settings beside it (`write`)."""
    code = run_code() if not following() else None
    if code and st.query_params.get("run") != code:
        st.query_params["run"] = code


def shared() -> Shared:
    return st.session_state.get("_link") or Shared()


def forced_classroom() -> bool:
    return os.environ.get(CLASSROOM_ENV, "") == "1"


def classroom() -> bool:
    return forced_classroom() or bool(st.session_state.get("classroom", False))


def classroom_toggle() -> None:
    if forced_classroom():
        st.sidebar.toggle(t("classroom.toggle"), value=True, disabled=True, help=t("classroom.forced_help"))
    else:
        st.sidebar.toggle(t("classroom.toggle"), key="classroom", help=t("classroom.help"))


def show_problems() -> None:
    """The link's bad parameters, once, where the settings they meant to change are; and a place for the
    notes of the values the page had to change (note_once), which the settings below it write."""
    for problem in st.session_state.pop("_link_problems", []):
        st.warning(problem.text(st.session_state.get("lang", "en")), icon=":material/link_off:")
    st.session_state["_link_notes"] = st.container()


def note_once(text: str) -> None:
    """A value from the link that the page cannot take as it is (steps=50000 where the input stops at 5000):
    said once per session where the link's problems are (in the main column, seen on a phone too)."""
    noted = st.session_state.setdefault("_link_noted", set())
    if text in noted:
        return
    noted.add(text)
    box = st.session_state.get("_link_notes")
    (box if box is not None else st).warning(text, icon=":material/link_off:")


def write(preset: str, train, models, dataset: str = "mnist-5k") -> str:
    """Put the current settings into the address bar; returns the full link."""
    params = to_params(preset, train, models, st.session_state.get("lang", "en"), classroom(), dataset)
    code = run_code()
    # replaces the URL in place: no rerun, no new history entry
    st.query_params.from_dict(params | ({"run": code} if code else {}))
    base = (st.context.url or "").rstrip("/")
    return f"{base}/?{urlencode(params, doseq=True, safe=':,')}"


def follow_box() -> None:
    """The sidebar's box for a teacher's code: typing one follows that run, clearing it stops."""
    version = st.session_state.get("_follow_box", 0)
    code = st.sidebar.text_input(t("follow.box"), value=following() or "", max_chars=8,
                                 placeholder=t("follow.box_placeholder"),
                                 help=t("follow.box_help"), key=f"follow_box_{version}")
    code = normal_code(code)
    if code != (following() or ""):
        follow(code)
        st.rerun()


def stop_following() -> None:
    follow(None)
    st.session_state["_follow_box"] = st.session_state.get("_follow_box", 0) + 1  # an empty box
    st.query_params.clear()


def follow_url(code: str) -> str:
    base = (st.context.url or "").split("?")[0].rstrip("/")
    return f"{base}/?follow={code}"
