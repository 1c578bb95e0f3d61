"""The Lab's notes above the status line about where the shown run came from: a replay of a finished run (with
its speed, Skip to the end, and a live run instead), a reconnected run, and the Replay button of a finished
run or of the reference run. The replay itself is training/replay.py (torch: imported when first needed).
"""
import streamlit as st

from ..training.sharing import RUNS
from .session import _reference_job
from .text import t

SPEEDS = (1, 2, 4)


def start_replay(holder, source, origin: str) -> None:
    """This session watches `source` (a finished run) train again from step 0. `origin`: "cached" (Train
    found these settings trained before), "run" (the Replay button), "reference" (the bundled run)."""
    from ..training.replay import Replay  # torch, as the engine
    replay = Replay(source)
    RUNS.leave(source, holder)  # a finished run: nothing stops, it stays cached for the others
    holder.replace(replay)
    st.session_state["_replay_origin"] = (id(replay), origin)
    st.session_state["_joined"] = None


def replay_note(holder, job, snap, train_live) -> None:
    """What a replay is, while it plays and after: its speed, Skip to the end, and a run that trains."""
    origin = st.session_state.get("_replay_origin", (None, "run"))
    origin = origin[1] if origin[0] == id(job) else "run"
    if snap.finished:
        cut = snap.step < job.end_step  # Stop was pressed: the rest of the run is a click away
        st.info(t("replay.stopped" if cut else "replay.ended", step=snap.step, steps=snap.steps, end=job.end_step),
                icon=":material/replay:")
        c_again, c_skip, c_live = st.columns(3)
        if c_again.button(t("replay.again"), icon=":material/replay:", width="stretch", help=t("replay.again_help")):
            start_replay(holder, job.source, origin)
            st.rerun()
        if cut and c_skip.button(t("replay.skip"), icon=":material/skip_next:", width="stretch",
                                 help=t("replay.skip_help")):
            job.skip_to_end()
            st.rerun()
    else:
        st.info(t(f"replay.note_{origin}", steps=snap.steps), icon=":material/replay:")
        c_speed, c_skip, c_live = st.columns(3, vertical_alignment="bottom")
        speed = c_speed.segmented_control(t("replay.speed"), SPEEDS, default=int(job.speed),
                                          format_func=lambda s: f"{s}×", key=f"replay_speed_{job.uid}",
                                          help=t("replay.speed_help"))
        if speed is not None and speed != job.speed:
            job.set_speed(speed)
            st.rerun()
        if c_skip.button(t("replay.skip"), icon=":material/skip_next:", width="stretch",
                         help=t("replay.skip_help")):
            job.skip_to_end()
            st.rerun()
    if c_live.button(t("replay.live"), icon=":material/play_arrow:", width="stretch", help=t("replay.live_help"),
                     key="replay_live"):
        train_live()


def replay_button(holder, job, snap) -> None:
    """Under a finished run (this session's, an opened file): watch it train again. Before any run: the
    bundled reference run."""
    if job is None:
        if st.button(t("replay.reference"), icon=":material/replay:", help=t("replay.reference_help")):
            start_replay(holder, _reference_job(), "reference")
            st.rerun()
    elif snap.finished and snap.step > 0:
        if st.button(t("replay.again"), icon=":material/replay:", help=t("replay.again_help")):
            start_replay(holder, getattr(job, "source", job), "run")
            st.rerun()


def reconnect_note(job) -> None:
    """A session that came back to its run by the page's address (a reload, another device) is told so; a
    code this server no longer has gets a note, until a run is shown."""
    back = st.session_state.get("_reconnected")
    if not back:
        return
    shown, code, step, steps, ended = back
    if job is not None and shown == id(job):
        if ended:
            st.success(t("reconnect.ended", step=step, steps=steps, state=t(f"status.{ended}")),
                       icon=":material/link:")
        else:
            st.success(t("reconnect.running", step=step, steps=steps), icon=":material/link:")
    elif shown is None and job is None:
        st.warning(t("reconnect.unknown", code=code), icon=":material/link_off:")
