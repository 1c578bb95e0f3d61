"""The Lab page through Streamlit's AppTest: real script runs, real training in the background worker."""
import json
import re
import time
from pathlib import Path

import pytest
from speed import hang_s
from streamlit.testing.v1 import AppTest

from resnet_viz.config import PRESETS

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
TIMEOUT = hang_s(60)  # AppTest's default 3 s is shorter than importing torch


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def button(at, label):
    return next(b for b in at.button if b.label == label)


def press_train(at) -> None:
    """Train, and for a run estimated at several minutes (a test that stops it early) "Train anyway"."""
    button(at, "Train").click()
    at.run()
    if any(b.label == "Train anyway" for b in at.button):
        button(at, "Train anyway").click()
        at.run()


def run_until(at, predicate, seconds=60.0):
    deadline = time.monotonic() + hang_s(seconds)
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if predicate(at):
            return
        time.sleep(0.3)
    raise AssertionError("condition not reached in time")


def summary(at):
    """The summary table as a list of row dicts, or [] before the first step (dataframe 0 is the editor)."""
    tables = [d.value for d in at.dataframe if "Model" in d.value.columns or "模型" in d.value.columns]
    return tables[0].to_dict("records") if tables else []


def test_default_preset_loads_ready_to_train():
    at = new_app()
    assert "ResNet Lab" in at.title[0].value
    assert at.selectbox(key="preset_en").value == "degradation"
    assert not button(at, "Train").disabled
    assert button(at, "Stop").disabled and button(at, "Pause").disabled
    assert any("No run yet" in i.value for i in at.info)
    assert at.number_input[0].value == 120  # steps of the default preset


def test_train_updates_charts_then_finishes():
    at = new_app()
    at.number_input[0].set_value(12)  # steps (not 10: the queue test's second session trains 10 and would join this run)
    button(at, "Train").click()
    at.run()
    assert button(at, "Train").disabled, "Train must be disabled while a run is going on"
    run_until(at, lambda a: len(summary(a)) == 4)
    assert_live_fragments_end_their_blocks(at)  # while it trains (the fragments poll), and once it ended
    names = [r["Model"] for r in summary(at)]
    assert names == ["plain-20", "res-20", "plain-56", "res-56"]
    run_until(at, lambda a: not button(a, "Train").disabled)
    rows = summary(at)
    assert "Status" not in rows[0], "a status column only once a model diverged"
    assert all(r["Test acc (500 digits)"].endswith("%") for r in rows)  # evaluated at the last step
    charts = [c.key for c in at.get("plotly_chart")]
    assert charts == ["loss_chart", "acc_chart", "grad_chart", "grad_ratio_chart", "ratio_chart"]  # no learnable α/β
    assert_live_fragments_end_their_blocks(at)


def paths(node, kind: str, at=()) -> list[tuple]:
    """Where the elements of one kind stand in the page's tree: each one's index path from `node`."""
    if getattr(node, "type", None) == kind:
        return [at]
    kids = getattr(node, "children", None) or {}
    return [p for i in sorted(kids) for p in paths(kids[i], kind, (*at, i))]


def node(root, path):
    for i in path:
        root = root.children[i]
    return root


def kinds(node) -> set[str]:
    """The kinds of element anywhere below `node`."""
    kids = getattr(node, "children", None) or {}
    return {getattr(node, "type", "")} | {k for i in kids for k in kinds(kids[i])}


def assert_live_fragments_end_their_blocks(at):
    """Each polling fragment is the only element of a container of its own (lab.live_view says why: a late
    clean-up in the browser can remove a fragment's block, and only a last element puts itself back without
    Streamlit's frontend throwing): the status line with the loss and accuracy curves, then the other charts."""
    status = paths(at.main, "progress")
    assert len(status) == 1, status
    block = status[0][:-1]
    assert status[0][-1] == min(node(at.main, block).children), "the status line opens its fragment's block"
    curves = [p for p in paths(at.main, "plotly_chart") if p[:len(block)] == block]
    others = [p for p in paths(at.main, "plotly_chart") if p[:len(block)] != block]
    assert len(curves) == 2 and others, (curves, others)
    inside = others[0][:len(block)]
    for where in (block, inside):
        widgets = kinds(node(at.main, where)) & {"button", "selectbox", "slider", "checkbox", "toggle",
                                                 "number_input", "text_input", "radio", "expander"}
        assert not widgets, (where, widgets)
    assert all(p[:len(block)] == inside for p in others), others


def test_pause_step_and_stop_keep_the_results():
    at = new_app()
    at.number_input[0].set_value(2000)
    press_train(at)
    run_until(at, lambda a: len(summary(a)) == 4)
    button(at, "Pause").click()
    at.run()
    assert any(b.label == "Resume" for b in at.button)
    run_until(at, lambda a: a.get("progress")[0].proto.text.startswith("Paused"), 20)  # after the step in flight
    progress = at.get("progress")[0].proto.text
    time.sleep(1.5)
    at.run()
    assert at.get("progress")[0].proto.text.split("·")[1] == progress.split("·")[1], "paused run moved on"
    step_before = int(re.search(r"(\d+)/2000", at.get("progress")[0].proto.text).group(1))
    button(at, "Step").click()
    at.run()
    run_until(at, lambda a: f"{step_before + 1}/2000" in a.get("progress")[0].proto.text, 20)
    button(at, "Stop").click()
    at.run()
    run_until(at, lambda a: not button(a, "Train").disabled, 20)
    assert "Stopped" in at.get("progress")[0].proto.text
    assert len(summary(at)) == 4, "stopping must keep what was computed"


def test_chinese_switch_translates_the_page_and_shows_no_raw_keys():
    at = new_app()
    at.radio(key="lang").set_value("zh")
    at.run()
    assert not at.exception
    assert "ResNet 实验室" in at.title[0].value
    assert at.selectbox(key="preset_zh").value == "degradation"
    assert "退化问题" in at.selectbox(key="preset_zh").options[0]
    assert [b.label for b in at.button] == ["训练", "暂停", "单步", "停止", "回放参考训练", "展示给全班"]
    keys = set(json.loads((Path(APP).parent / "resnet_viz/locales/en.json").read_text()))
    shown = [e.value for e in at.markdown] + [e.value for e in at.info] + [e.label for e in at.number_input]
    assert not [s for s in shown if s in keys], "a raw catalogue key reached the page"


def _editor_script():
    import streamlit as st

    from resnet_viz.ui.lab import parse_models

    rows = [dict(name="", skip=True, depth=20, shortcut="A", width=1.0, batch_norm=True, init="he", stem_stride=2),
            dict(name="", skip=False, depth=20, shortcut="A", width=None, batch_norm=True, init="he",
                 stem_stride=2),
            dict(name="x" * 30, skip=True, depth=20, shortcut="A", width=1.0, batch_norm=True, init="he",
                 stem_stride=2)]
    specs, errors = parse_models(rows)
    st.markdown(str(len(specs)))
    for e in errors:
        st.error(e)
    twins, dupes = parse_models([rows[0], rows[0]])
    for e in dupes:
        st.error(e)
    st.markdown(" ".join(m.name for m in twins))


def test_bad_model_rows_get_clear_messages_and_missing_cells_use_defaults():
    at = AppTest.from_function(_editor_script, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert at.markdown[0].value == "2"  # the row with an empty width cell falls back to width 1
    errors = [e.value for e in at.error]
    assert errors[0].startswith("Model row 3:") and "at most 24 characters" in errors[0]
    assert len(errors) == 1, errors
    assert at.markdown[1].value == "res-20 res-20-2"  # identical rows are named apart, not refused


def test_identical_rows_are_named_apart_and_said_to_train_identically():
    from resnet_viz.config import ModelSpec, name_apart, twins
    named = name_apart([ModelSpec(depth=110, width=2.0)] * 4 + [ModelSpec(depth=110, width=2.0, name="x" * 24)] * 2)
    assert [m.name for m in named] == ["res-110-w2", "res-110-w2-2", "res-110-w2-3", "res-110-w2-4",
                                       "x" * 24, "x" * 22 + "-2"]
    assert twins(named) == [[m.name for m in named]]
    assert twins([ModelSpec(depth=20), ModelSpec(depth=56)]) == []


@pytest.mark.parametrize("preset, models, chart, diagram_text", [
    ("rezero", ["plain-56-nobn", "res-56-nobn", "res-56-a0L-nobn"], "scale_chart", "α=0 (learned)"),
    ("csp", ["res-20", "csp0.5-res-20", "csp0.5-res-20-ff"], "ratio_chart", "concat"),
    ("shortcut_scaling", ["res-56", "res-56-b0.5"], "ratio_chart", "β=0.5"),
    ("vanishing", ["plain-20-nobn", "res-20-nobn", "plain-56-nobn", "res-56-nobn"], "grad_ratio_chart",
     "conv3×3-ReLU-conv3×3"),
])
def test_presets_train_and_draw_their_architecture(preset, models, chart, diagram_text):
    at = new_app()
    assert not at.get("graphviz_chart")  # a closed expander draws no diagram (a class opening the page)
    at.session_state["arch_open"] = True  # opened: its diagrams are drawn
    at.selectbox(key="preset_en").set_value(preset)
    at.run()
    assert not at.exception
    assert [r["name"] or "" for r in at.dataframe[0].value.to_dict("records")] == [""] * len(models)
    at.radio(key="arch_en").set_value(models[-1])
    at.run()
    dot = at.get("graphviz_chart")[0].proto.spec
    assert diagram_text in dot, dot[:500]
    at.number_input[0].set_value(10)  # the smallest run the UI allows
    button(at, "Train").click()
    at.run()
    run_until(at, lambda a: not button(a, "Train").disabled and len(summary(a)) == len(models), 90)
    assert [r["Model"] for r in summary(at)] == models
    assert chart in [c.key for c in at.get("plotly_chart")]


def test_sessions_wait_in_the_queue_and_stop_while_queued():
    from resnet_viz.training.engine import QUEUE
    assert QUEUE.slots == 1  # 2 cores: one trainer at a time (RESNET_LAB_WORKERS unset)
    first, second, third = new_app(), new_app(), new_app()
    first.number_input[0].set_value(2000)
    press_train(first)
    # Until it has trained a step (its worker needs a moment to start), so that stopping it has kept something.
    run_until(first, lambda a: bool(a.get("progress")) and re.search(r"Training · step [1-9]",
                                                                      a.get("progress")[0].proto.text))
    for at, steps in ((second, 10), (third, 20)):  # settings of their own: identical ones share one run
        at.number_input[0].set_value(steps)
        button(at, "Train").click()
        at.run()
    run_until(second, lambda a: any("number 1 in the queue" in i.value for i in a.info), 20)
    run_until(third, lambda a: any("number 2 in the queue" in i.value for i in a.info), 20)
    assert not any("Building the models" in c.value for c in third.caption), "queued is not building"
    # Train twice: the button is disabled while queued (and Job.start ignores a second call: test_engine).
    assert button(third, "Train").disabled and not button(third, "Stop").disabled
    # Stop while queued: the wait ends at once, nothing trained, and the others keep their places.
    button(third, "Stop").click()
    third.run()
    run_until(third, lambda a: not button(a, "Train").disabled, 20)
    assert "Stopped · step 0/20" in third.get("progress")[0].proto.text
    # (Switching the language mid-run is checked in a real browser: test_browser.py.)
    button(first, "Stop").click()
    first.run()
    run_until(second, lambda a: len(summary(a)) == 4 and "Done" in a.get("progress")[0].proto.text, 90)
    assert "step 10/10" in second.get("progress")[0].proto.text
    first.run()
    assert len(summary(first)) == 4 and "Stopped" in first.get("progress")[0].proto.text, "stopping keeps the run"


def test_a_diverging_model_is_marked_and_the_others_go_on():
    at = new_app()
    at.selectbox(key="preset_en").set_value("rezero")
    at.run()
    optimizer = next(s for s in at.selectbox if s.label == "Optimizer")
    optimizer.set_value("sgd")
    next(n for n in at.number_input if n.label == "Learning rate").set_value(0.1)
    at.number_input[0].set_value(10)
    at.run()
    button(at, "Train").click()
    at.run()
    run_until(at, lambda a: not button(a, "Train").disabled and len(summary(a)) == 3, 120)
    warnings = [w.value for w in at.warning]
    assert any("res-56-nobn diverged at step" in w for w in warnings), warnings
    status = {r["Model"]: r["Status"] for r in summary(at)}
    assert status["res-56-nobn"].startswith("diverged at step") and status["plain-56-nobn"] == "ok"
    assert "Done · step 10/10" in at.get("progress")[0].proto.text


DEFAULT_STEPS = PRESETS["degradation"].train.steps


@pytest.mark.parametrize("params, said, steps", [
    ({"steps": "50000"}, "Steps: 50000 is outside what this field takes (10 to 5000), so it starts at 5000.", 5000),
    ({"steps": "3"}, "Steps: 3 is outside what this field takes (10 to 5000), so it starts at 10.", 10),
    ({"batch_size": "1000"}, "Batch size: 1000 is not one of the choices (16, 32, 64, 128, 256), so it starts at 256.",
     DEFAULT_STEPS),
    ({"steps": ["20", "30"]}, "The link gives “steps” more than once (20, 30): the last one, 30, applies.", 30),
    ({"steps": "-5", "lr": "0.02"}, "The link's setting “steps” was ignored", DEFAULT_STEPS),
])
def test_a_link_names_every_value_it_changes_or_drops_on_the_page(params, said, steps):
    """Where the link's problems are (the main column, which a phone shows), once; the rest applies."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    shown = [w.value for w in at.main.warning]
    assert any(w.startswith(said) for w in shown), shown
    assert at.number_input[0].value == steps
    at.run()  # said once: the next rerun keeps the page quiet
    assert not [w.value for w in at.main.warning]
