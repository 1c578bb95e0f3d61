"""The Lab page: pick models, press Train, watch plain and residual nets learn side by side.

The engine (and with it torch, ~2 s to import) is imported when first needed, so a visitor sees the page at
once while a background thread warms the workers up (session.workers_warmed_up).
"""
import re
import sys
from dataclasses import fields
from functools import partial

import streamlit as st

from ..config import (
    DEFAULT_FAMILY,
    DEVICES,
    FAMILIES,
    FAMILY_FIELDS,
    FIELD_CHOICES,
    FIELD_RANGES,
    MAX_MODELS,
    MAX_NAME,
    MAX_PRETRAIN_STEPS,
    PRESETS,
    LabError,
    ModelSpec,
    TrainSpec,
    check_models,
    check_run,
    field_default,
    name_apart,
    twins,
    field_kind,
    replace,
    sources,
    spec_dict,
    spec_from_dict,
)
from ..data.datasets import DATASETS
from ..i18n import tr
from ..plots.diagram import architecture_dot
from ..summary import records, si
from ..training.sharing import RUNS, run_key
from . import link
from .dataset import dataset_picker
from .link import CLASSROOM_MAX_STEPS
from .replay import reconnect_note, replay_button, replay_note, start_replay
from .saving import save_and_share
from .session import (
    CHART_STEPS_KNOWN,
    chart_interval,
    chart_pace,
    followed_slot,
    following,
    heartbeat_timeout,
    job_holder,
    status_interval,
    viewed_job,
    viewer_here,
    workers_warmed_up,
)
from .text import lang, t

# One column per ModelSpec field: first what tells the models apart (a phone shows only the first three or
# four columns), then the rest in the spec's order.
LEADING_COLUMNS = ("name", "skip", "depth", "family")
MODEL_COLUMNS = LEADING_COLUMNS + tuple(f.name for f in fields(ModelSpec) if f.name not in LEADING_COLUMNS)
KINDS = {k: field_kind(ModelSpec, k) for k in MODEL_COLUMNS}


# ---- settings ---------------------------------------------------------------------------------------------

BASIC_COLUMNS = ("name", "skip", "depth", "family")  # what classroom mode shows, and the ones below when used
USED_COLUMNS = {"alpha": 1.0, "beta": 1.0, "csp": 0.0, "transfer": "none"}  # column: its value when unused


def spec_rows(models) -> list[dict]:
    """Editor rows; a derived name is left empty so it follows the row's settings. A setting fixed by the
    family shows its value (LeNet-5's depth 5), one that means nothing for it (VGG's α) an empty cell."""
    return [{k: (("" if m.name == m.default_name() else m.name) if k == "name" else
                 spec_dict(m)[k] if m.applies(k) or k in FAMILY_FIELDS else None) for k in MODEL_COLUMNS}
            for m in models]


def preset_rows(preset: str) -> list[dict]:
    return spec_rows(PRESETS[preset].models)


def _column(key: str):
    """The editor column of one ModelSpec field, from its type and config's FIELD_CHOICES and FIELD_RANGES.
    Cells may be empty: the family's default, or a setting that does not apply to the row's family. A
    checkbox cannot be empty, so a new row's boxes start at the default family's values."""
    kind, label, tip = KINDS[key], t(f"col.{key}"), t(f"col.{key}_help")
    default = field_default(key)
    if key in FIELD_CHOICES:
        required = key not in FAMILY_FIELDS  # a family setting may stay empty: the row's family decides
        return st.column_config.SelectboxColumn(label, help=tip, options=list(FIELD_CHOICES[key]),
                                                default=default if required else None, required=required)
    if kind is bool:
        return st.column_config.CheckboxColumn(label, help=tip, default=bool(default))
    if kind is float:
        lo, hi = FIELD_RANGES[key]
        return st.column_config.NumberColumn(label, help=tip, min_value=lo, max_value=hi, step=0.05, default=default,
                                             format="%.2f")
    return st.column_config.TextColumn(label, help=tip, max_chars=MAX_NAME)


def model_editor(preset: str, linked_models=None, simple: bool = False) -> list[dict]:
    st.caption(t("lab.models_help", n=MAX_MODELS) + (" " + t("classroom.models_note") if simple else ""))
    config = {key: _column(key) for key in MODEL_COLUMNS}
    # A new key per preset (and per reset) gives the editor fresh rows instead of the user's old edits.
    version = st.session_state.get("editor_version", 0)
    key = f"models_{preset}_{version}{'_link' if linked_models else ''}"
    rows = spec_rows(linked_models) if linked_models else preset_rows(preset)
    kept = st.session_state.get("_editor_rows")
    if kept and kept[0] == key:
        rows = kept[1]
    # Classroom mode hides the advanced columns; their values (the preset's) still apply.
    edited = st.data_editor(rows, column_config=config, num_rows="dynamic", hide_index=True,
                            column_order=_basic_columns(rows) if simple else None, key=key, width="stretch")
    _follow_family_changes(key, edited, preset, linked_models)
    return edited


def _basic_columns(rows: list[dict]) -> tuple[str, ...]:
    """Classroom mode's columns, and α, β, CSP γ and Transfer too when a row sets them (else the rows
    would look the same): a column of 1.00s is one more thing to explain and none to see."""
    return BASIC_COLUMNS + tuple(k for k, unused in USED_COLUMNS.items()
                                 if any(_cell(r.get(k), KINDS[k]) not in (None, unused) for r in rows))


def _follow_family_changes(key: str, rows: list[dict], preset: str, linked_models) -> None:
    """A row whose family was just changed takes that family's defaults (keeping its name), so it shows
    what the new network is and leaves the settings that do not apply empty."""
    edits = (st.session_state.get(key) or {}).get("edited_rows", {})
    changed = [int(i) for i, cells in edits.items() if "family" in cells and int(i) < len(rows)]
    changed = [i for i in changed if rows[i].get("family") in FAMILIES]
    if not changed:
        return
    rows = [dict(r) for r in rows]
    for i in changed:
        rows[i] = spec_rows([ModelSpec(family=rows[i]["family"])])[0] | {"name": rows[i].get("name") or ""}
    version = st.session_state.get("editor_version", 0) + 1
    st.session_state["editor_version"] = version
    st.session_state["_editor_rows"] = (f"models_{preset}_{version}{'_link' if linked_models else ''}", rows)
    st.rerun()


def _cell(value, kind):
    """An editor cell as its field's type; empty (None, NaN, '') stays None: the family decides."""
    if value is None or value != value or value == "":
        return None
    return kind(value) if kind in (int, float, bool) else value


def parse_models(rows: list[dict]) -> tuple[list[ModelSpec], list[str]]:
    """Rows from the editor -> specs, and one translated message per bad row (nothing raises)."""
    specs, errors = [], []
    for i, row in enumerate(rows, 1):
        try:
            values = {k: _cell(row.get(k), KINDS[k]) for k in MODEL_COLUMNS}
            values["name"] = str(values["name"] or "").strip()
            values["family"] = values["family"] or DEFAULT_FAMILY
            specs.append(spec_from_dict(ModelSpec, {k: v for k, v in values.items() if v is not None}))
        except LabError as e:
            errors.append(t("lab.row_error", row=i, error=e.text(st.session_state.get("lang", "en"))))
        except (TypeError, ValueError):
            errors.append(t("lab.row_error", row=i, error=t("error.row_values")))
    specs = list(name_apart(specs))
    if not errors:
        try:
            check_models(specs)
        except LabError as e:
            errors.append(e.text(st.session_state.get("lang", "en")))
    return specs, errors


BATCH_SIZES = (16, 32, 64, 128, 256)


def train_settings(base: TrainSpec, simple: bool = False) -> tuple[TrainSpec | None, str | None]:
    """The training settings in the sidebar, starting from `base` (the preset's, or a link's). Classroom mode
    shows steps and learning rate only, and caps the steps so a class's queue keeps moving."""
    side = st.sidebar
    side.subheader(t("lab.training"))
    max_steps = CLASSROOM_MAX_STEPS if simple else 5000
    # Classroom mode's cap on a preset's steps is its rule (said in the help); a link's value it cuts is named.
    preset = any(base == p.train for p in PRESETS.values())
    steps = min(base.steps, max_steps) if simple and preset else base.steps
    kw = dict(steps=_number(side, "set.steps", 10, max_steps, steps, 10,
                            help=t("set.steps_help") + (" " + t("classroom.steps_note", n=max_steps) if simple else "")))
    if not simple:
        batch = _nearest(base.batch_size, BATCH_SIZES)
        if batch != base.batch_size:
            _clamped(side, t("lab.value_snapped", name=t("set.batch_size"), value=base.batch_size,
                             choices=", ".join(map(str, BATCH_SIZES)), used=batch))
        kw.update(
            batch_size=side.select_slider(t("set.batch_size"), BATCH_SIZES, batch, help=t("set.batch_size_help")),
            optimizer=side.selectbox(t("set.optimizer"), ["sgd", "adam"], ["sgd", "adam"].index(base.optimizer),
                                     format_func=lambda o: t(f"set.optimizer.{o}")))
    kw["lr"] = _number(side, "set.lr", 0.0001, 10.0, base.lr, 0.01, format="%.4f", help=t("set.lr_help"))
    if simple:
        return _train_spec(base, kw)
    with side.expander(t("lab.more_settings")):
        kw.update(
            momentum=_number(st, "set.momentum", 0.0, 0.99, base.momentum, 0.05, format="%.2f"),
            weight_decay=_number(st, "set.weight_decay", 0.0, 0.1, base.weight_decay, 1e-4, format="%.5f"),
            warmup_steps=_number(st, "set.warmup", 0, 5000, base.warmup_steps, 10, help=t("set.warmup_help")),
            seed=_number(st, "set.seed", 0, 2**31 - 1, base.seed, 1, help=t("set.seed_help")),
            eval_every=_number(st, "set.eval_every", 1, 5000, base.eval_every, 5, help=t("set.eval_every_help")),
            lr_decay=_number(st, "set.lr_decay", 0.01, 1.0, base.lr_decay, 0.05, format="%.2f",
                             help=t("set.lr_decay_help")),
            device=st.selectbox(t("set.device"), DEVICES, DEVICES.index(base.device), help=t("set.device_help")),
        )
    with side.expander(t("lab.transfer_settings"), expanded=base.pretrain_steps > 0 or bool(base.classes)):
        pretrain_sources = ("", *DATASETS)
        kw.update(
            classes=st.text_input(t("set.classes"), base.classes, max_chars=40, placeholder="0-9",
                                  help=t("set.classes_help")),
            pretrain_steps=_number(st, "set.pretrain_steps", 0, MAX_PRETRAIN_STEPS, base.pretrain_steps, 10,
                                   help=t("set.pretrain_steps_help")),
            pretrain_classes=st.text_input(t("set.pretrain_classes"), base.pretrain_classes, max_chars=40,
                                           placeholder="0-9", help=t("set.pretrain_classes_help")),
            pretrain_dataset=st.selectbox(t("set.pretrain_dataset"), pretrain_sources,
                                          pretrain_sources.index(base.pretrain_dataset),
                                          format_func=lambda d: t(f"dataset.{d}") if d else
                                          t("set.pretrain_dataset_same")),
        )
        st.radio(t("set.transfer_from"), TRANSFER_FROM, key="transfer_from", help=t("set.transfer_from_help"),
                 format_func=lambda k: t(f"set.transfer_from.{k}"))
    return _train_spec(base, kw)


TRANSFER_FROM = ("pretraining", "run")  # where transfer models take their weights from


def transfer_lender(holder):
    """The session's current run, when the user chose to start transfer models from it (a finished run:
    Train is disabled while one trains)."""
    return holder.job if st.session_state.get("transfer_from") == "run" else None


def _number(where, key: str, lo, hi, value, step, **kw):
    """A number input that starts at `value` (the preset's or a link's). A link may carry a value the spec
    accepts but this input does not (?steps=6: the spec takes 1-100000, the input 10-5000), which Streamlit
    refuses with an exception: it starts at the nearest end instead, and says so above the input and where
    the link's problems are."""
    used = min(max(value, lo), hi)
    if used != value:
        _clamped(where, t("lab.value_clamped", name=t(key), value=value, lo=lo, hi=hi, used=used))
    return where.number_input(t(key), lo, hi, used, step, **kw)


def _clamped(where, note: str) -> None:
    """A link's value this page cannot take as it is: said beside its input (in the sidebar, closed on a
    phone) and, once, on the page with the link's other problems."""
    where.warning(note)
    link.note_once(note)


def _nearest(value: int, choices) -> int:
    return min(choices, key=lambda c: abs(c - value))


def _train_spec(base: TrainSpec, values: dict) -> tuple[TrainSpec | None, str | None]:
    try:
        return replace(base, **{k: (int(v) if isinstance(v, int) else v) for k, v in values.items()}), None
    except LabError as e:
        return None, e.text(lang())


# ---- controls and the live panel ---------------------------------------------------------------------------

def controls(holder, specs, train, problems, dataset: str = "mnist-5k", lender=None) -> None:
    job = holder.job
    snap = job.snapshot() if job else None
    busy = snap is not None and not snap.finished
    paused = snap is not None and snap.pause_requested
    # Pause and Step would change a run other sessions watch: they need a private copy (offered below).
    shared = job is not None and RUNS.shared(job)
    # One row that wraps: four buttons and the class code across a projector, two to a line on a phone.
    c_train = c_pause = c_step = c_stop = c_class = st.container(horizontal=True, vertical_alignment="center")
    if c_train.button(t("btn.train"), icon=":material/play_arrow:", type="primary", width="stretch",
                      disabled=busy or bool(problems),
                      help=t("btn.train_help") if not busy else t("btn.train_busy")):
        if _long_run(specs, train) and st.session_state.get("_confirmed") != (tuple(specs), train):
            st.session_state["_confirm"] = (tuple(specs), train)  # asked below the buttons: train anyway, or not
        else:
            start_run(holder, specs, train, dataset, lender)
    if paused:
        if c_pause.button(t("btn.resume"), icon=":material/play_arrow:", width="stretch"):
            job.resume()
            st.rerun()
    elif c_pause.button(t("btn.pause"), icon=":material/pause:", disabled=not busy or shared, width="stretch",
                        help=t("btn.shared_help") if shared else None):
        job.pause()
        st.rerun()
    if c_step.button(t("btn.step"), icon=":material/skip_next:", disabled=not busy or shared, width="stretch",
                     help=t("btn.shared_help") if shared else t("btn.step_help")):
        job.step(1)
        st.rerun()
    if shared:  # Stop would end it for everybody: this session leaves it instead
        if c_stop.button(t("btn.leave"), icon=":material/logout:", width="stretch", help=t("btn.leave_help")):
            holder.replace(None)
            st.rerun()
    elif c_stop.button(t("btn.stop"), icon=":material/stop:", disabled=not busy or snap.stopping, width="stretch"):
        job.stop()  # the workers end at their next step boundary; the status line says "Stopping" meanwhile
        st.rerun()
    class_code(holder, c_class)
    if not busy and not problems:
        run_estimate(holder, specs, train, dataset, lender)


def run_estimate(holder, specs, train, dataset: str, lender) -> None:
    """How long the run would take on this server, under the buttons; a long one is confirmed first. Drawn once
    the engine is loaded (the server's warm-up imports it after the first page): till then it waits for it."""
    pending = st.session_state.get("_confirm")
    if pending == (tuple(specs), train):
        seconds = _estimate(specs, train)
        st.warning(t("lab.estimate_confirm", time=duration(seconds)), icon=":material/hourglass_top:")
        go, back = st.columns(2)
        if go.button(t("btn.train_anyway"), icon=":material/play_arrow:", width="stretch"):
            st.session_state["_confirmed"], st.session_state["_confirm"] = pending, None
            start_run(holder, specs, train, dataset, lender)
        if back.button(t("btn.cancel"), icon=":material/close:", width="stretch"):
            st.session_state["_confirm"] = None
            st.rerun()
        return
    with st.container():
        st.fragment(_estimate_note, run_every=None if _engine_ready() else 1.0)(tuple(specs), train)


def _engine_ready() -> bool:
    return "resnet_viz.training.engine" in sys.modules


def _estimate_note(specs, train) -> None:
    if not _engine_ready():
        st.session_state["_estimate_waited"] = True
        return
    if st.session_state.pop("_estimate_waited", False):
        st.rerun()  # a full run draws the note without polling
    st.caption(t("lab.estimate", time=duration(_estimate(specs, train))), help=t("lab.estimate_help"))


def _estimate(specs, train) -> float:
    from ..training.engine import QUEUE
    from ..training.pace import estimate  # torch: the engine is loaded by now (_engine_ready)
    return estimate(specs, train, QUEUE.threads).seconds


def _long_run(specs, train) -> bool:
    from ..training.pace import CONFIRM_S
    return _estimate(specs, train) > CONFIRM_S


def duration(seconds: float) -> str:
    """40 s, 1 min 20 s, 12 min: a time to wait, as a class reads it."""
    seconds = max(1, round(seconds))
    if seconds < 60:
        return t("time.s", s=seconds)
    if seconds < 600:
        return t("time.min_s", m=seconds // 60, s=seconds % 60)
    return t("time.min", m=round(seconds / 60))


def start_run(holder, specs, train, dataset: str, lender=None, private: bool = False, fresh: bool = False) -> None:
    """Train these models, or join the run with identical settings that this server already has (queued or
    training): one run for a class pressing Train on the same preset. One it has already trained is replayed
    (a rehearsed lesson still unfolds in class), unless `fresh`: then a new run trains and takes its place.
    A `private` run, or one that starts from this session's weights (transfer from the run), is its own."""
    from ..training.engine import Job
    try:
        key = None if private or lender is not None else run_key(specs, train, dataset)

        def new_job():
            return Job(specs, train, dataset=dataset, heartbeat_timeout=heartbeat_timeout(),
                       start_from=lender, viewer_here=viewer_here()).start()
        if key and fresh:
            job, joined = new_job(), False
            RUNS.add(key, job, holder)
        else:
            job, joined = RUNS.find_or_start(key, new_job, holder) if key else (new_job(), False)
    except LabError as e:  # too big for the server, a GPU it lacks, a damaged dataset: say so, keep the run
        st.error(e.text(lang()))
        return
    if joined and job.snapshot().finished:
        start_replay(holder, job, "cached")
    else:
        holder.replace(job)
        st.session_state["_joined"] = id(job) if joined else None
    st.rerun()


def sharing_note(holder, job, snap) -> None:
    """Where the shown run came from (reconnected, replayed, joined), and the way to a run of one's own."""
    reconnect_note(job)
    if snap is not None and snap.replay:
        replay_note(holder, job, snap, lambda: start_run(holder, list(job.models), job.train, job.dataset, fresh=True))
        return
    if job is not None and st.session_state.get("_joined") == id(job):
        key = "sharing.watching_done" if snap.finished else "sharing.watching"
        st.info(t(key, n=RUNS.watchers(job)), icon=":material/groups:")
        if st.button(t("sharing.private"), icon=":material/content_copy:", help=t("sharing.private_help")):
            start_run(holder, list(job.models), job.train, job.dataset, private=True)
    replay_button(holder, job, snap)


def status_line(snap, dataset: str = "mnist-5k") -> None:
    if snap.state == "queued":
        from ..training.background import RAY_LINE
        from ..training.engine import QUEUE
        running, _ = (RAY_LINE if snap.cluster else QUEUE).busy()
        key = "status.queued_cluster" if snap.cluster else "status.queued"
        st.info(t(key, position=max(1, snap.queue_position), running=running))
        return
    if snap.pretraining:
        st.progress(snap.pretrained / snap.pretrain_total, text=t(
            "status.pretraining", done=snap.pretrained, total=snap.pretrain_total, steps=snap.steps,
            classes=snap.train.pretrain_classes or "0-9", dataset=t(f"dataset.{snap.train.pretrain_dataset or dataset}")))
        return
    replaying = snap.replay and snap.state == "running"
    label = t("status.stopping") if snap.stopping else \
        t("status.replay", speed=f"{snap.replay:g}") if replaying else t(f"status.{snap.state}")
    rate = snap.step / snap.elapsed if snap.elapsed > 0 else 0.0
    st.progress(min(1.0, snap.step / snap.steps),
                text=t("status.progress", state=label, step=snap.step, steps=snap.steps, seconds=snap.elapsed,
                       rate=rate))
    if snap.state == "failed":
        st.error(t("status.failed_detail", error=snap.error))
    for v in snap.models:
        if v.diverged:
            st.warning(t("msg.diverged", name=v.name, step=v.diverged_step))


CHART_KEYS = {"loss": "loss_chart", "accuracy": "acc_chart", "grad_norms": "grad_chart",
              "grad_first_last": "grad_ratio_chart", "alpha_beta": "scale_chart", "residual_ratio": "ratio_chart"}
# The curves a class watches, drawn with the status line from the same snapshot: they are never behind the
# counter. The heatmaps and the rest, which cost a browser far more to redraw, refresh less often (live_inside).
CURVES = ("loss", "accuracy")
CURVE_HEIGHT = 360  # px: with the title, the buttons and the status line, they fill a 1280x720 projector's screen
CAPTIONS = {"grad_norms": "lab.grad_caption", "residual_ratio": "lab.ratio_caption"}


# Where the two polling fragments stand, and why. When a full run of the page ends, the browser clears what
# that run did not draw, and under load (24 tabs of one browser, a busy server) that clean-up can land after
# the fragment reruns that followed the run: it then removes the fragments' blocks, which those reruns redrew
# under their own run ids. A fragment that is the last element of its block simply appends itself again on
# its next rerun; one with a sibling after it writes past the end of its block, and Streamlit's frontend
# throws ("Bad delta path index 3 (should be between [0, 2])": the page held its title and the container
# only) and the tab goes blank for good. So each fragment is the only element of a container of its own.

def live_view(job, snap) -> None:
    """The run's status line and its loss and accuracy curves, polled every second or two while the run can
    change (a follower's also while it waits for the teacher's next run)."""
    if job is None:
        st.info(t("lab.empty"))
        return
    # No heatmaps before the first step: the status line asks for one full rerun then, which sets their
    # interval from the viewers the run has by then (a fragment's interval is fixed when it is drawn). Set
    # before the status line runs: in this very run it must not ask again.
    st.session_state["_charts_wait"] = snap.step == 0 and not snap.finished
    # The pace the heatmaps' interval is set for in this run: the status line reruns the page once the run's
    # pace is known, if it asks for another interval (_pace_changed).
    st.session_state["_chart_pace"] = (job.uid, snap.step >= CHART_STEPS_KNOWN, chart_pace(job))
    every = status_interval(job)
    if following() and every is None:
        every = FOLLOW_POLL_S
    with st.container():
        st.fragment(live_status, run_every=every)()


def live_inside_view(job, snap) -> None:
    """The run's heatmaps, gradient ratio and summary, polled less often the more sessions view the run, and
    when the browser draws them on the cores that train (session.chart_interval)."""
    if job is not None:
        with st.container():
            st.fragment(live_inside, run_every=chart_interval(job) if snap.step else None)()


def live_status() -> None:
    job = viewed_job()  # this session's run, or the one it follows
    if job is None:
        return
    job.touch()
    snap = job.snapshot()
    status_line(snap, job.dataset)
    opened = st.session_state.get("_opened")
    if opened and opened[0] == id(job):
        st.caption(t("save.opened", name=opened[1]))
    if snap.step == 0 and snap.state in ("running", "paused"):  # queued or stopped early: the line says it all
        st.caption(t("lab.waiting_first_step"))
    if snap.step:
        _charts(job, snap, CURVES, st.columns(2))
    # The status polls only while something can change; once the run ends, one full rerun refreshes the
    # buttons and the charts and stops the polling. So does the first step (the heatmaps start polling).
    was_busy = st.session_state.get("_was_busy", False)
    st.session_state["_was_busy"] = not snap.finished
    if (was_busy and snap.finished) or (st.session_state.get("_charts_wait") and snap.step > 0) \
            or _pace_changed(job, snap):
        st.rerun()
    if following() and _followed_changed():  # the teacher started another run, or left
        st.rerun()


def _pace_changed(job, snap) -> bool:
    """Whether the heatmaps' interval was set before the run's pace was known and the pace now asks for one
    at least 1.5x apart (a slow machine, with the page's browser on it): then one full rerun sets it anew."""
    drawn = st.session_state.get("_chart_pace")
    if not drawn or drawn[0] != job.uid or drawn[1] or snap.state != "running" or snap.step < CHART_STEPS_KNOWN:
        return False
    # Only for a lone viewer on the server's machine (a teacher's laptop): a run that several watch already
    # refreshes less often (live_interval), and a full rerun of every watcher's page at once costs more than
    # the redraws it saves (the load test's 24 local tabs on an emulated slow machine).
    if not viewer_here() or RUNS.viewers(job) > 1:
        return False
    pace = chart_pace(job)
    return not drawn[2] / 1.5 < pace < drawn[2] * 1.5


def live_inside() -> None:
    job = viewed_job()
    if job is None:
        return
    snap = job.snapshot()
    if snap.step == 0:
        return
    from ..plots import run as plots  # plotly: only once there is something to draw
    _charts(job, snap, None)
    st.subheader(t("lab.summary"))
    digits = tested_digits(job)
    summary_table(plots.summary_rows(snap.models, t, digits), plots.summary_help(t, digits))


def _charts(job, snap, names: tuple | None, places=()) -> None:
    """The Lab's charts of `snap`: `names`, or every chart but the curves, each in its place (or one below the
    other). While training, static: no hover layers to rebuild at every redraw, so the browser leaves the CPU to
    the model; once the run ends they become interactive (hover, zoom, the camera button's PNG)."""
    figures = _figures(job.uid, snap.step, snap.state, int(snap.models[0].test_acc.size), lang(),
                       st.session_state.get("log_y", True), st.session_state.get("smoothing", 0.6),
                       names is not None, snap.models)
    config = {"displaylogo": False, "staticPlot": not snap.finished}
    for i, (name, figure) in enumerate(figures.items()):
        where = places[i] if i < len(places) else st
        where.plotly_chart(figure, key=CHART_KEYS[name], height=CURVE_HEIGHT if name in CURVES else "content",
                           config=config | {"toImageButtonOptions": {"format": "png", "filename": f"resnet-lab-{name}",
                                                                     "scale": 2}})
        if name in CAPTIONS:
            where.caption(t(CAPTIONS[name]))


def summary_table(rows: list[dict], helps: dict[str, str]) -> None:
    """The summary, its model column pinned (on a phone the other columns scroll under it), each header
    with a tooltip that says what its number means."""
    model = t("table.model")
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={k: st.column_config.Column(k, help=helps.get(k), pinned=k == model or None)
                                for k in (rows[0] if rows else {})})


def tested_digits(job) -> int | None:
    """How many test digits the run's test accuracy is measured on (TrainSpec.eval_size, at most the test
    set of its classes): the summary says so, and the Errors page counts all of them."""
    from ..data.arrays import digits
    try:
        return min(job.train.eval_size, len(digits(job.dataset, job.train.class_list).test_labels))
    except LabError:  # a reopened run of a dataset this server lacks: the header goes without the count
        return None


@st.cache_resource(max_entries=64, show_spinner=False)
def _figures(job_uid: int, step: int, state: str, evaluations: int, language: str, log_y: bool, smoothing: float,
             curves: bool, _views) -> dict:
    """The curves (`curves`) or the other charts of one run at one step, built once for every session that
    shows them: 25 students watching one shared run would otherwise each build the same figures."""
    from ..plots import run as plots
    text = partial(tr, language)
    if curves:
        return {"loss": plots.loss_figure(_views, text, log_y, smoothing),
                "accuracy": plots.accuracy_figure(_views, text, smoothing)}
    return {name: figure for name, figure in plots.lab_figures(_views, text, log_y=log_y, smoothing=smoothing).items()
            if name not in CURVES}


def architecture(specs: list[ModelSpec]) -> None:
    """The chosen model's diagram and, on request, under it its layer table (like the papers' tables and
    Keras's model.summary()): each stage's output size, operation (with its block count, ×3), parameters
    and FLOPs, and the totals. Under, not beside: side by side, ResNet-50's diagram shrank to unreadable
    text and the table lost its right-hand columns. Both are drawn only while the expander is open, the
    table only on its toggle: a class of 30 opening the page should not each lay out a graph nobody opened
    (0.4 of a tab's 3 s of page work, tests/test_load.py)."""
    box = st.expander(t("lab.architecture"), icon=":material/account_tree:", key="arch_open", on_change="rerun")
    if not box.open:
        return
    with box:
        names = [s.name for s in specs]
        chosen = st.radio(t("lab.architecture_model"), names, horizontal=True, key=f"arch_{lang()}")
        spec = specs[names.index(chosen)] if chosen in names else specs[0]
        show_table = st.toggle(t("lab.layer_table"), key="layer_table")
        # The cifar nets are drawn from their spec alone; the others from their layer table (torch, on meta).
        table = _layer_table(spec) if show_table or spec.family != "cifar" else None
        st.graphviz_chart(architecture_dot(spec, lang(), table), width="content")
        if show_table:
            layer_table_view(table)


LAYER_COLUMNS = ("layer", "output", "operation", "params", "flops")  # the order of He et al.'s Table 1


def layer_table_view(table) -> None:
    """The layer table as a static table: every cell whole (the operation wraps, its ×N in view), the
    totals as its last row; on a phone it scrolls sideways."""
    import pandas as pd
    cell = {"params": lambda v: f"{v:,}", "flops": si, "operation": _bold_count}
    rows = [{t(f"summary.{k}"): cell.get(k, str)(r[k]) for k in LAYER_COLUMNS} for r in records(table, lang())]
    rows[-1] = {k: f"**{v}**" if v else v for k, v in rows[-1].items()}  # the totals
    numbers = [t("summary.params"), t("summary.flops")]
    frame = pd.DataFrame(rows).style.set_properties(subset=numbers, **{"text-align": "right"})
    st.table(frame.set_properties(subset=[t("summary.layer"), t("summary.output")], **{"white-space": "nowrap"}),
             hide_index=True)
    st.caption(t("lab.layer_table_note", params=f"{table.params:,}", flops=si(table.flops), macs=si(table.flops / 2)))


def _bold_count(operation: str) -> str:
    """'bottleneck [...] ×3' with its block count in bold: what a teacher points at."""
    return re.sub(r" ×(\d+)$", r" **×\1**", operation)


def _layer_table(spec: ModelSpec):
    from ..models import (
        layer_table,  # torch, imported when first needed (see the module's docstring)
    )
    return layer_table(spec)


def chart_options() -> None:
    c1, c2, _ = st.columns([1, 2, 2])
    c1.toggle(t("lab.log_y"), value=True, key="log_y")
    c2.slider(t("lab.smoothing"), 0.0, 0.95, 0.6, 0.05, key="smoothing", help=t("lab.smoothing_help"))


def class_code(holder, where) -> None:
    """Follow the teacher: a button that publishes a short code for this session's runs, then the code itself,
    large, beside the buttons: the one thing the class copies off the projector, in view above the charts."""
    code = _published(holder)
    if code is not None:
        where.metric(t("follow.code_label"), code, help=t("follow.link", url=link.follow_url(code)))
    elif where.button(t("follow.publish"), icon=":material/co_present:", help=t("follow.publish_help"),
                      width="stretch"):
        st.session_state["_class_code"] = RUNS.publish(holder)
        st.rerun()


def _published(holder) -> str | None:
    code = st.session_state.get("_class_code")
    return code if code is not None and RUNS.followed(code) is holder else None


FOLLOW_POLL_S = 3.0  # how often a follower looks for the teacher's next run


def follow_page() -> None:
    """A session that follows a code: the followed session's run, live and read-only, and nothing to set."""
    code = following()
    slot, job = followed_slot(), viewed_job()
    st.title(t("lab.title"))
    st.query_params.from_dict({"follow": code})  # the address bar is the link to this view
    st.session_state["_follow_shown"] = id(slot.job) if slot is not None and slot.job is not None else None
    note, leave = st.columns([4, 1], vertical_alignment="center")
    if job is None and slot is None:
        note.warning(t("follow.unknown", code=code))
    else:
        note.info(t("follow.following", code=code))
    if leave.button(t("follow.stop"), icon=":material/close:", width="stretch"):
        link.stop_following()
        st.rerun()
    if slot is None and job is not None:
        st.caption(t("follow.ended"))
    elif slot is not None and job is None:
        st.info(t("follow.waiting"))
    if job is None:  # nothing to show yet: only watch for the teacher's first run
        with st.container():
            st.fragment(_follow_watch, run_every=FOLLOW_POLL_S)()
        return
    snap = job.snapshot()
    live_view(job, snap)  # it watches for the teacher's next run too
    chart_options()
    live_inside_view(job, snap)


def _followed_changed() -> bool:
    """The followed session shows another run than this page drew (or has ended)."""
    slot = followed_slot()
    now = id(slot.job) if slot is not None and slot.job is not None else None
    return now != st.session_state.get("_follow_shown")


def _follow_watch() -> None:
    """Polls the followed session while there is no run to show: its first run redraws the page."""
    if _followed_changed():
        st.rerun()


def page() -> None:
    workers_warmed_up()
    if following():
        return follow_page()
    holder = job_holder()
    snap = holder.job.snapshot() if holder.job else None
    fresh = snap is None
    simple = link.classroom()
    shared = link.shared()
    st.title(t("lab.title"))
    link.show_problems()
    # Before the first run the page explains, then offers the presets and the buttons, then the settings. Once
    # there is a run, the buttons, the status line and the curves come first, so that a projector (1280x720)
    # shows them without scrolling; what to look for follows them, open, then the other charts, then the
    # settings. The Train button stays in view either way: pressing it scrolls nothing away. The containers are
    # laid out here and filled below, once the settings are read.
    if fresh:
        st.markdown(t("lab.intro"))
        head = st.container()
    top = st.container()
    if not fresh:
        notes, inside = st.container(), st.container()
    settings = st.container()
    with head if fresh else settings:
        # One widget per language (a selectbox keeps its first labels), the choice carried across the switch.
        chosen = st.session_state.get("preset_value", shared.preset)
        preset = st.selectbox(t("lab.preset"), list(PRESETS), index=list(PRESETS).index(chosen),
                              format_func=lambda k: t(f"{PRESETS[k].key}.title"), key=f"preset_{lang()}")
        st.session_state["preset_value"] = preset
    with settings:
        if fresh:
            look_for(preset)
        from_link = preset == shared.preset  # a link's settings hold until another preset is picked
        dataset, data_problem = dataset_picker(shared.dataset)
        train, train_error = train_settings(shared.train if from_link and shared.train else PRESETS[preset].train,
                                            simple)
        with st.expander(t("lab.models"), expanded=fresh, icon=":material/tune:"):
            rows = model_editor(preset, shared.models if from_link else None, simple)
        specs, model_problems = parse_models(rows)
        problems = model_problems + [p for p in (train_error, data_problem) if p]
        lender = transfer_lender(holder)
        lent = sources(specs, lender.models) if lender is not None else {}
        if not problems:
            try:
                check_run(specs, train, lent)  # transfer models need weights: the run chosen, or the pretraining
            except LabError as e:
                problems.append(e.text(lang()))
        for p in problems:
            st.error(p)
        for names in twins(specs):
            st.caption(t("lab.twins", names=", ".join(names)))
        if lent:
            st.caption(t("lab.transfer_from_run", pairs=", ".join(f"{specs[i].name} ← {lender.models[j].name}"
                                                                   for i, j in lent.items())))
        if specs:
            architecture(specs)
        share_url = link.write(preset, train, specs if not model_problems else None, dataset)
        save_and_share(holder, share_url)
    with top:
        controls(holder, specs, train, problems, dataset, lender if lent else None)
        if fresh:
            sharing_note(holder, holder.job, snap)  # a code no longer on the server, the reference run's replay
        snap = holder.job.snapshot() if holder.job else None
        live_view(holder.job, snap)
    if not fresh:
        with notes:
            sharing_note(holder, holder.job, snap)  # under the curves: they stay in a projector's first screen
            if _published(holder):
                st.caption(t("follow.link", url=link.follow_url(_published(holder))))
            chart_options()
            look_for(preset, titled=True)
        with inside:
            live_inside_view(holder.job, snap)


def look_for(preset: str, titled: bool = False) -> None:
    """What the preset's run shows, open: before the run it says what to watch, during it what is seen (under
    the charts, named: the preset picker is then further down)."""
    label = t("lab.look_for") + (f": {t(f'{PRESETS[preset].key}.title')}" if titled else "")
    with st.expander(label, expanded=True, icon=":material/visibility:"):
        st.markdown(t(f"{PRESETS[preset].key}.explain"))
