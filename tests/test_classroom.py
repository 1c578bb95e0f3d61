"""The app with odd links, classroom mode, saved runs and both languages: every page, no crash, no raw key."""
import json
import re
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToJson
from speed import hang_s
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

from resnet_viz import runfile
from resnet_viz.config import ModelSpec, TrainSpec
from resnet_viz.i18n import LANGUAGES, catalogue
from resnet_viz.training.engine import Job
from resnet_viz.ui.nav import PAGES
from resnet_viz.ui.session import JobHolder

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
# Every kind of chart: plain, residual, learnable alpha, CSP.
MODELS = [ModelSpec(depth=8, skip=False), ModelSpec(depth=8, alpha=0.5, learn_alpha=True), ModelSpec(depth=8, csp=0.5)]


@pytest.fixture(scope="module")
def trained():
    job = Job(MODELS, TrainSpec(steps=20, eval_every=10))
    job.run_blocking()
    return job


def app(url_path: str = "lab", job=None, params: dict | None = None, lang: str | None = None, run=True):
    at = AppTest.from_file(APP, default_timeout=hang_s(60))
    if job is not None:
        holder = JobHolder()
        holder.job = job
        at.session_state["_job_holder"] = holder
    if lang:
        at.session_state["lang"] = lang
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at._page_hash = calc_hash(url_path)
    if run:
        at.run()
        assert not at.exception, at.exception
    return at


def everything_shown(at) -> str:
    """Every element's content, sidebar and charts included, as JSON text (Chinese kept readable)."""
    out = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "DESCRIPTOR"):
            out.append(MessageToJson(proto, ensure_ascii=False))
        for child in getattr(node, "children", {}).values():
            walk(child)
    walk(at._tree)
    return "\n".join(out)


KEYS = [k for k in catalogue("en") if "." in k]
KEY_PATTERN = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, sorted(KEYS, key=len, reverse=True))) + r")(?![\w])")


@pytest.mark.parametrize("lang", list(LANGUAGES))
@pytest.mark.parametrize("page", [name for name, _ in PAGES])
def test_no_page_shows_a_raw_key_in_either_language(trained, page, lang):
    at = app(page, trained, lang=lang)
    shown = everything_shown(at)
    assert len(shown) > 1000, "the walk found nothing: the test would pass vacuously"
    raw = sorted(set(KEY_PATTERN.findall(shown)))
    assert not raw, raw
    if lang == "zh":  # and no English sentence from the catalogue was left untranslated
        en, zh = catalogue("en"), catalogue("zh")
        left = [v for k, v in en.items() if len(v) > 25 and "{" not in v and v != zh[k] and v in shown]
        assert not left, left


def test_a_hostile_link_is_refused_piece_by_piece_and_the_rest_applies():
    at = app(params={"preset": "rezero", "steps": "1e9", "lr": "<img src=x onerror=alert(1)>",
                     "model": ["depth:56,skip:0,batch_norm:0", "depth:56,alpha:0,learn_alpha:1,batch_norm:0",
                               "depth:9999"], "lang": "klingon", "classroom": "1; DROP TABLE", "x" * 300: "y"})
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 5, warnings  # steps, lr, model, lang, classroom
    assert any("“lr”" in w and "`<img src=x onerror=alert(1)>`" in w for w in warnings), "quoted as code"
    assert at.selectbox[0].value == "rezero"
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["classroom"] is False and at.session_state["lang"] == "en"


def test_a_link_value_the_spec_takes_but_an_input_does_not_starts_at_the_nearest_end_with_a_message():
    """?steps=6 is a valid run (the CLI trains it) but below the Steps input's 10: Streamlit would raise."""
    at = app(params={"preset": "imagenet_fig4", "steps": "6", "lr_decay": "0.005"})
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.sidebar.warning]  # beside each input ...
    assert len(warnings) == 2 and "Steps: 6" in warnings[0] and "0.005" in warnings[1], warnings
    assert [w.value for w in at.main.warning] == warnings  # ... and where a phone sees it, with the link's
    assert at.sidebar.number_input[0].value == 10
    assert at.selectbox[0].value == "imagenet_fig4" and not at.error


def test_a_link_sets_language_classroom_mode_settings_and_models():
    at = app(params={"preset": "shortcut_scaling", "steps": "200", "lr": "0.1", "lang": "zh", "classroom": "1",
                     "model": ["depth:20", "depth:20,beta:0.5"]})
    assert at.session_state["lang"] == "zh" and at.session_state["classroom"] is True
    steps = at.sidebar.number_input[0]
    assert steps.value == 200 and at.sidebar.number_input[1].value == 0.1
    assert not any("更多设置" in e.proto.label for e in at.sidebar.get("expander")), "classroom hides them"
    assert len(at.sidebar.number_input) == 2  # steps and learning rate: no batch size, momentum, warm-up
    # Only the dataset stays to choose (a lesson's choice, like the preset): no optimizer, no device.
    assert [s.key for s in at.sidebar.selectbox] == ["dataset_zh"]
    # The address bar is rewritten from the settings on screen: the same link comes back.
    assert at.query_params["preset"] == "shortcut_scaling" and at.query_params["steps"] == "200"
    assert at.query_params["model"] == ["depth:20", "depth:20,beta:0.5"]
    assert at.query_params["lang"] == "zh" and at.query_params["classroom"] == "1"


def test_classroom_mode_caps_steps_and_hides_the_sweep_recompute():
    at = app(params={"classroom": "1", "steps": "2000"})
    notes = [w.value for w in at.main.warning]  # the link's 2000 is cut to classroom mode's 500: said so
    assert len(notes) == 1 and "2000" in notes[0] and "500" in notes[0], notes
    assert at.sidebar.number_input[0].value == 500
    assert not app(params={"classroom": "1"}).warning, "a preset's steps under the cap: nothing to say"
    at = app("experiments", params={"classroom": "1"})
    assert not [e for e in at.get("expander") if "Recompute" in e.proto.label and "sweep" in e.proto.label.lower()]
    assert any("classroom mode" in c.value for c in at.caption)


def test_the_classroom_server_setting_cannot_be_switched_off(monkeypatch):
    monkeypatch.setenv("RESNET_LAB_CLASSROOM", "1")
    at = app(params={"classroom": "0"})
    toggle = at.sidebar.toggle[0]
    assert toggle.value is True and toggle.disabled
    assert len(at.sidebar.number_input) == 2


def test_changing_a_setting_updates_the_share_link():
    at = app()
    assert dict(at.query_params) == {"preset": "degradation"}
    at.sidebar.number_input[0].set_value(300).run()
    assert at.query_params["steps"] == "300"
    share = [c.value for c in at.get("code")]
    assert any("preset=degradation&steps=300" in c for c in share), share


def test_opening_a_saved_run_on_a_fresh_session_shows_the_same_summary(trained):
    data = runfile.run_bytes(trained.snapshot(), trained.nets, trained.dataset)
    reopened = Job.reopen(runfile.read_run(data))
    original, again = app("lab", trained), app("lab", reopened)
    assert original.dataframe[0].value.equals(again.dataframe[0].value)
    charts = [c.proto.spec for c in original.get("plotly_chart")]
    assert charts and charts == [c.proto.spec for c in again.get("plotly_chart")]
    assert json.loads(charts[0])["data"], "the charts have data"
