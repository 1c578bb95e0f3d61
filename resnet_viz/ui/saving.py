"""Save, open and share a run: three small menus under the Lab's buttons.

The export is built when it is clicked (a deferred download, on its own thread): drawing the chart PNGs
takes a few seconds and must not slow every rerun of the page.
"""
from functools import partial

import streamlit as st

from ..config import DEFAULT_PRESET, MAX_RUN_BYTES
from ..i18n import LabError, tr
from ..share import Shared
from .text import lang, t


def save_and_share(holder, share_url: str) -> None:
    job = holder.job
    snap = job.snapshot() if job else None
    c_save, c_open, c_share = st.columns(3)
    with c_save.popover(t("save.export"), icon=":material/download:", width="stretch"):
        if snap is None or snap.step == 0:
            st.caption(t("save.nothing"))
        else:
            st.caption(t("save.export_help"))
            st.download_button(
                t("save.download"), data=_exporter(job, lang(), st.session_state.get("log_y", True),
                                                   st.session_state.get("smoothing", 0.6)),
                file_name=f"resnet-lab-run-{snap.step}-steps.zip", mime="application/zip", on_click="ignore",
                icon=":material/folder_zip:", type="primary", key="export_run")
    with c_open.popover(t("save.open"), icon=":material/upload_file:", width="stretch"):
        if snap is not None and not snap.finished:
            st.caption(t("save.open_busy"))
        else:
            version = st.session_state.get("_open_version", 0)
            upload = st.file_uploader(t("save.open_label"), type=["zip"], key=f"open_run_{version}",
                                      help=t("save.open_help"), max_upload_size=MAX_RUN_BYTES // 2**20)
            if upload is not None:
                _open(holder, upload)
    with c_share.popover(t("share.button"), icon=":material/share:", width="stretch"):
        st.caption(t("share.help"))
        st.code(share_url, language=None, wrap_lines=True)


def _exporter(job, language: str, log_y: bool, smoothing: float):
    job = getattr(job, "source", job)  # a replay saves the run it replays, whole, with the weights it ended with

    def build() -> bytes:
        from .. import runfile
        from ..plots import run as plots  # torch and kaleido: only when someone exports
        snap = job.snapshot()
        text = partial(tr, language)
        charts = plots.figure_pngs(plots.lab_figures(snap.models, text, log_y, smoothing))
        return runfile.run_bytes(snap, job.nets, job.dataset, charts)
    return build


def _open(holder, upload) -> None:
    """Replace this session's (finished) run by the uploaded one; a bad file changes nothing."""
    failed = st.session_state.get("_open_failed", {})
    if upload.file_id in failed:
        st.error(failed[upload.file_id])
        return
    from ..runfile import read_run
    from ..training.engine import Job
    try:
        saved = read_run(upload.getvalue())
        job = Job.reopen(saved)
    except LabError as e:
        failed[upload.file_id] = e.text(lang())
        st.session_state["_open_failed"] = failed
        st.error(failed[upload.file_id])
        return
    holder.replace(job)
    # The settings follow the opened run, so Train repeats it (a share link's settings work the same way).
    st.session_state["_link"] = Shared(st.session_state.get("preset_value", DEFAULT_PRESET), saved.train,
                                       saved.models)
    st.session_state["editor_version"] = st.session_state.get("editor_version", 0) + 1
    st.session_state["_open_version"] = st.session_state.get("_open_version", 0) + 1  # frees the upload
    st.session_state["_opened"] = (id(job), upload.name)
    st.rerun()
