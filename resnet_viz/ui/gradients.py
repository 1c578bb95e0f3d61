"""The Gradients page: the gradient norm of every layer at chosen steps, beside the layer x step heatmap."""
import streamlit as st

from ..plots import inside as inside_plots
from ..plots import run as plots
from .nav import link_to_lab, models_note
from .session import live_interval, models_job, rerun_when_finished
from .text import t


def default_steps(n: int) -> list[int]:
    return sorted({1, max(1, n // 2), n})


def charts() -> None:
    job, _ = models_job()
    job.touch()
    snap = job.snapshot()
    views = snap.models
    # Options fixed for the whole run (so the widget keeps the user's picks while steps come in); a step
    # not trained yet is left out of the chart until it is.
    key = f"grad_steps_{id(job)}"
    if key not in st.session_state:
        st.session_state[key] = default_steps(snap.steps if snap.finished else max(1, snap.step))
    chosen = st.multiselect(t("grad.steps"), list(range(1, snap.steps + 1)), max_selections=4, key=key,
                            help=t("grad.steps_help"))
    chosen = sorted(s for s in chosen if s <= snap.step)
    left, right = st.columns(2, gap="medium")
    static = {"displaylogo": False, "staticPlot": not snap.finished}
    if chosen:
        left.plotly_chart(inside_plots.layer_gradient_figure(views, chosen, t), key="layer_grad",
                          config=static)
    else:
        left.info(t("grad.pick_a_step"))
    right.plotly_chart(plots.grad_heatmap_figure(views, t), key="grad_heatmap", config=static)
    st.caption(t("grad.caption"))
    rerun_when_finished(job, "_grad_busy")


def page() -> None:
    st.title(t("grad.title"))
    job, reference = models_job()
    if job.snapshot().step == 0:  # this session's run has not taken its first step
        st.info(t("grad.no_models"))
        link_to_lab()
        return
    models_note(job, reference)
    st.markdown(t("grad.intro"))
    st.fragment(charts, run_every=live_interval(job))()
