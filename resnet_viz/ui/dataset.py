"""Which images to train on: the bundled 5k MNIST subset, or a full 70k set, downloaded on request with a
progress bar. Offline, or with a damaged file, the page says so and keeps the bundled subset."""
import time

import streamlit as st

from ..data.datasets import DATASETS, available, info
from ..i18n import LabError
from .text import lang, t

BUNDLED = "mnist-5k"


def _label(name: str) -> str:
    here = available(name)
    return t(info(name).title_key) + ("" if here else " · " + t("data.to_download", mb=info(name).download_bytes / 1e6))


def dataset_picker(linked: str | None = None) -> tuple[str, str | None]:
    """(the dataset chosen, a message that keeps Train disabled until it is usable, or None)."""
    side = st.sidebar
    side.subheader(t("data.title"))
    names = list(DATASETS)
    chosen = st.session_state.get("dataset_value", linked if linked in names else BUNDLED)
    name = side.selectbox(t("data.dataset"), names, index=names.index(chosen), format_func=_label,
                          key=f"dataset_{lang()}", help=t("data.help"))
    st.session_state["dataset_value"] = name
    failed = st.session_state.pop("_download_error", None)
    if failed:
        side.warning(failed, icon=":material/cloud_off:")
    if name == BUNDLED:
        return name, None
    problem = None
    if available(name):
        try:
            from ..data.arrays import digits
            digits(name)  # read once per server, shared by every session; a damaged file shows up here
            return name, None
        except LabError as e:
            problem = e.text(lang())
            side.error(problem)
    else:
        problem = t("data.download_first", name=t(info(name).title_key))
        side.caption(t("data.download_note", mb=info(name).download_bytes / 1e6))
    if side.button(t("data.download"), icon=":material/download:", key="download_dataset", width="stretch"):
        _download(name)
    return name, problem


def _download(name: str) -> None:
    from ..data.download import fetch
    bar = st.sidebar.progress(0.0, text=t("data.downloading", done=0.0, total=info(name).download_bytes / 1e6))
    shown = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - shown[0] > 0.25:  # a redraw per chunk would be thousands of messages
            shown[0] = now
            bar.progress(min(1.0, done / total), text=t("data.downloading", done=done / 1e6, total=total / 1e6))

    try:
        fetch(name, progress)
        from ..data.arrays import digits
        digits(name)
    except LabError as e:  # offline, corrupted, disk full: say why, and train on the bundled subset
        st.session_state["_download_error"] = e.text(lang())
        st.session_state["dataset_value"] = BUNDLED
    st.rerun()
