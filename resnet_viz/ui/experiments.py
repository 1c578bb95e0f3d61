"""The Experiments page: the papers' evidence on MNIST. Each tab opens with the committed reference result
(instant), and can recompute it live: the sweep from scratch, the others on this session's trained models."""
import streamlit as st

from ..analysis import reference
from ..analysis.experiments import LANDSCAPE_RESOLUTION, read_sweep_csv, sweep_summary
from ..analysis.reference import REFERENCE_STEPS
from ..config import (
    PRESETS,
    RESNET_DEPTHS,
    RESNET_SWEEP_DEPTHS,
    SWEEP_DEPTHS,
    SWEEP_SEEDS,
    SWEEP_TRAIN,
    VALID_DEPTHS,
    replace,
)
from ..plots import experiments as xp
from ..plots.run import colours
from ..training.engine import run_threads
from ..training.tasks import Task
from .link import classroom
from .session import (
    HEARTBEAT_TIMEOUT,
    live_interval,
    rerun_when_finished,
    task_holder,
    viewed_job,
    viewer_here,
)
from .text import t

CONFIG = {"displaylogo": False}


def _reference(load):
    """A committed reference result, or a note (and None) when it is missing or unreadable: the live run
    still works."""
    try:
        return load()
    except (OSError, ValueError, KeyError) as exc:
        st.info(t("exp.no_reference", error=type(exc).__name__))
        return None


def _colours(names, specs=None) -> list[str]:
    """Each model's colour by its size, as on the Lab page. The references name their models only: they
    are the default lesson's (the Degradation preset's), looked up by name."""
    known = {s.name: s for s in (specs if specs is not None else PRESETS["degradation"].models)}
    return colours([known.get(name) for name in names])


def _trained_job():
    job = viewed_job()  # this session's run, or the one it follows
    return job if job is not None and job.snapshot().step > 0 else None


def task_controls(kind: str, make_params, needs_models: bool = True) -> None:
    """Start / Cancel for one experiment, and its progress while it runs (the page polls while it does)."""
    holder = task_holder(kind)
    task = holder.job
    view = task.snapshot() if task else None
    job = _trained_job()
    busy = view is not None and not view.finished
    c1, c2, c3 = st.columns([1, 1, 2], vertical_alignment="center")
    missing = needs_models and job is None
    if c1.button(t("exp.start"), key=f"start_{kind}", icon=":material/play_arrow:", type="primary",
                 disabled=busy or missing, width="stretch"):
        holder.replace(Task(kind, make_params(), job=job if needs_models else None,
                            heartbeat_timeout=HEARTBEAT_TIMEOUT, threads=run_threads(viewer_here())).start())
        st.rerun()
    if c2.button(t("exp.cancel"), key=f"cancel_{kind}", icon=":material/stop:", disabled=not busy,
                 width="stretch"):
        task.stop()
        task.join(15)
        st.rerun()
    if missing:
        c3.caption(t("exp.needs_models"))
    elif job is not None and needs_models:
        c3.caption(t("exp.on_models", names=", ".join(s.name for s in job.models), step=job.snapshot().step))


def live(kind: str, section) -> None:
    """The live part of a tab, polled once a second while its experiment runs (the references above it
    are drawn once)."""
    st.fragment(section, run_every=live_interval(task_holder(kind).job, running=1.0, paused=1.0))()


def task_status(kind: str):
    """Progress line of the live run; returns its view (None before the first)."""
    task = task_holder(kind).job
    if task is None:
        return None
    task.touch()
    rerun_when_finished(task, f"_task_busy_{kind}")
    view = task.snapshot()
    if view.state == "queued":
        st.info(t("exp.queued_cluster" if view.cluster else "exp.queued", position=max(1, view.queue_position)))
    elif view.state == "running":
        st.progress(view.done / view.total if view.total else 0.0,
                    text=t("exp.progress", done=view.done, total=view.total or "…"))
    elif view.state == "failed":
        st.error(t("exp.failed", error=view.error))
    elif view.state == "cancelled":
        st.warning(t("exp.cancelled"))
    return view


# ---- tabs --------------------------------------------------------------------------------------------------

def sweep_tab() -> None:
    st.markdown(t("exp.sweep_intro"))
    metric = st.radio(t("exp.metric"), ("loss", "error"), format_func=lambda m: t(f"exp.metric.{m}"),
                      horizontal=True, key="sweep_metric")
    rows = _reference(lambda: read_sweep_csv(reference.sweep_path()))
    if rows:
        st.plotly_chart(xp.sweep_figure(sweep_summary(rows), t, metric), key="sweep_ref", config=CONFIG)
        st.caption(t("exp.sweep_ref_caption", depths=", ".join(map(str, SWEEP_DEPTHS)), seeds=len(SWEEP_SEEDS),
                     steps=SWEEP_TRAIN.steps))
    if classroom():  # 36 nets from scratch: minutes of the shared server's cores, per student
        st.caption(t("classroom.sweep_off"))
        return
    with st.expander(t("exp.recompute"), icon=":material/refresh:"):
        family = st.radio(t("col.family"), ("cifar", "resnet"), horizontal=True, key="sweep_family",
                          format_func=lambda f: t(f"exp.sweep_family.{f}"))
        c1, c2, c3 = st.columns(3)
        options = VALID_DEPTHS if family == "cifar" else RESNET_DEPTHS
        depths = c1.multiselect(t("exp.depths"), options, key=f"sweep_depths_{family}",
                                default=list(SWEEP_DEPTHS if family == "cifar" else RESNET_SWEEP_DEPTHS))
        seeds = c2.slider(t("exp.seeds"), 1, 5, len(SWEEP_SEEDS), key="sweep_seeds")
        steps = c3.number_input(t("set.steps"), 10, 2000, SWEEP_TRAIN.steps, 10, key="sweep_steps")
        if not depths:
            st.warning(t("exp.pick_depth"))
            return
        params = {"depths": tuple(sorted(depths)), "seeds": tuple(range(seeds)), "family": family,
                  "train": replace(SWEEP_TRAIN, steps=int(steps), eval_every=int(steps))}

        def section():
            task_controls("sweep", lambda: params, needs_models=False)
            view = task_status("sweep")
            if view is not None and view.rows:
                st.plotly_chart(xp.sweep_figure(sweep_summary(view.rows), t, metric), key="sweep_live",
                                config=CONFIG)
                st.caption(t("exp.sweep_live_caption", n=len(view.rows) // 2))

        live("sweep", section)


def lesion_tab() -> None:
    st.markdown(t("exp.lesion_intro"))
    ref = _reference(reference.lesion)
    if ref:
        entries = [(name, skip, blocks, acc, full) for name, (skip, blocks, acc, full) in ref.items()]
        st.plotly_chart(xp.lesion_figure(entries, t, _colours(ref)), key="lesion_ref", config=CONFIG)
        st.caption(t("exp.lesion_ref_caption", steps=REFERENCE_STEPS))
    st.markdown(t("exp.live_heading"))
    live("lesion", lesion_live)


def lesion_live() -> None:
    task_controls("lesion", dict)
    view = task_status("lesion")
    if view is not None and view.state == "done":
        specs = {s.name: s for s in task_holder("lesion").job.models}
        entries = [(name, specs[name].skip, blocks, acc, full)
                   for name, (full, acc, blocks) in view.result.items()]
        st.plotly_chart(xp.lesion_figure(entries, t, _colours(view.result, specs.values())), key="lesion_live",
                        config=CONFIG)


def landscape_tab() -> None:
    st.markdown(t("exp.landscape_intro"))
    surface = st.toggle(t("exp.surface"), key="landscape_surface")
    data = _reference(reference.landscape)
    if data:
        slices = data["slices"]
        # Each slice in its own colours, lowest to highest loss: its shape is the lesson (one bowl, or bumps),
        # and plain-56's chance-level plateau would take a shared scale's whole dark end.
        for col, (name, s) in zip(st.columns(len(slices)), slices.items()):
            col.plotly_chart(xp.landscape_figure(s["coords"], s["loss"], t, t("exp.slice_title", name=name),
                                                 surface=surface), key=f"land_ref_{name}", config=CONFIG)
        interp = [(name, e["skip"], e["t"], e["loss"]) for name, e in data["interpolation"].items()]
        st.plotly_chart(xp.interpolation_figure(interp, t, _colours(data["interpolation"])), key="interp_ref",
                        config=CONFIG)
        st.caption(t("exp.landscape_ref_caption", res=data["resolution"], images=data["images"],
                     steps=data["steps"], span=f"{data['span']:g}"))
    st.markdown(t("exp.live_heading"))
    job = _trained_job()
    names = [s.name for s in job.models] if job else []
    c1, c2 = st.columns(2)
    resolution = c1.slider(t("exp.resolution"), 5, 31, LANDSCAPE_RESOLUTION, 2, key="landscape_res",
                           help=t("exp.resolution_help"))
    chosen = c2.multiselect(t("exp.slice_models"), names, default=_deepest_pair(job) if job else [],
                            placeholder=t("exp.slice_placeholder"),
                            key="landscape_models")
    live("landscape", lambda: landscape_live(int(resolution), list(chosen), surface))


def landscape_live(resolution: int, chosen: list[str], surface: bool) -> None:
    task_controls("landscape", lambda: {"resolution": resolution, "models": chosen})
    view = task_status("landscape")
    if view is not None and view.state == "done":
        res = view.result
        twod = {k[1]: v for k, v in res.items() if k[0] == "2d"}
        if twod:
            for col, (name, (coords, loss)) in zip(st.columns(len(twod)), twod.items()):
                col.plotly_chart(xp.landscape_figure(coords, loss, t, t("exp.slice_title", name=name),
                                                     surface=surface), key=f"land_live_{name}", config=CONFIG)
        specs = list(task_holder("landscape").job.models)
        skips = {s.name: s.skip for s in specs}
        live = [(k[1], skips.get(k[1], True), ts, loss) for k, (ts, loss) in res.items() if k[0] == "1d"]
        st.plotly_chart(xp.interpolation_figure(live, t, _colours([e[0] for e in live], specs)), key="interp_live",
                        config=CONFIG)


def _deepest_pair(job) -> list[str]:
    specs = list(job.models)
    deepest = max(s.depth for s in specs)
    return [s.name for s in specs if s.depth == deepest][:2]


def shattered_tab() -> None:
    st.markdown(t("exp.shattered_intro"))
    data = _reference(reference.shattered)
    if data:
        for col, when in zip(st.columns(2), ("init", "trained")):
            entries = [(name, e["skip"], e["lags"], e["corr"]) for name, e in data[when].items()]
            col.plotly_chart(xp.correlation_figure(entries, t, t(f"exp.shattered_{when}"), _colours(data[when])),
                             key=f"shat_ref_{when}", config=CONFIG)
        st.caption(t("exp.shattered_ref_caption", steps=data["steps"]))
    st.markdown(t("exp.live_heading"))
    live("shattered", shattered_live)


def shattered_live() -> None:
    task_controls("shattered", dict)
    view = task_status("shattered")
    if view is not None and view.state == "done":
        specs = list(task_holder("shattered").job.models)
        skips = {s.name: s.skip for s in specs}
        for col, when in zip(st.columns(2), ("init", "trained")):
            entries = [(k[1], skips.get(k[1], True), lags, corr) for k, (lags, corr) in view.result.items()
                       if k[0] == when]
            col.plotly_chart(xp.correlation_figure(entries, t, t(f"exp.shattered_{when}"),
                                                   _colours([e[0] for e in entries], specs)),
                             key=f"shat_live_{when}", config=CONFIG)


def page() -> None:
    st.title(t("exp.title"))
    st.markdown(t("exp.intro"))
    tabs = st.tabs([t("exp.tab_sweep"), t("exp.tab_lesion"), t("exp.tab_landscape"), t("exp.tab_shattered")])
    for tab, show in zip(tabs, (sweep_tab, lesion_tab, landscape_tab, shattered_tab)):
        with tab:
            show()
