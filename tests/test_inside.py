"""Looking inside trained models: predictions, feature maps, test errors, and the pages that show them."""
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from speed import hang_s
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

from resnet_viz.analysis.features import block_maps, mosaic
from resnet_viz.analysis.inference import evaluate, probabilities
from resnet_viz.config import ModelSpec, TrainSpec
from resnet_viz.data.arrays import bundled_mnist
from resnet_viz.data.preprocess import prepare
from resnet_viz.training.engine import Job
from resnet_viz.ui.session import JobHolder

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
MODELS = [ModelSpec(depth=8, skip=False), ModelSpec(depth=8), ModelSpec(depth=14, skip=False), ModelSpec(depth=14)]


# Draw's charts: predictions, one figure per mosaic (the plain net's output; the residual net's branch, skip
# path and output), the blocks' mean and spread.
MAPS_PAGE_CHARTS = ["prob_chart", "maps_chart", "maps_chart_2", "maps_chart_3", "maps_chart_4", "act_chart",
                    "act_chart_std"]


@pytest.fixture(scope="module")
def trained():
    """Four small nets, trained in this process for 60 steps (a few seconds)."""
    job = Job(MODELS, TrainSpec(steps=60, eval_every=20))
    job.run_blocking()
    return job


def test_probabilities_are_distributions_for_every_model(trained):
    digit = bundled_mnist().test_images[0]
    p = probabilities(trained.nets, digit)
    assert p.shape == (4, 10)
    assert np.allclose(p.sum(1), 1.0, atol=1e-5)


def test_a_diverged_model_gives_no_prediction_and_no_error():
    job = Job([ModelSpec(depth=8), ModelSpec(depth=8, skip=False)], TrainSpec(steps=1))
    with torch.no_grad():
        job.nets[0].head[2].weight.fill_(float("nan"))
    p = probabilities(job.nets, bundled_mnist().test_images[0])
    assert np.isnan(p[0]).all() and np.isfinite(p[1]).all()
    errors = evaluate(job.nets[0], bundled_mnist().test_images[:20], bundled_mnist().test_labels[:20])
    assert errors.accuracy == 0.0 and (errors.predicted == -1).all()
    assert errors.confusion().sum() == 0  # no prediction is counted as no class, not as class 9


def test_test_errors_match_the_recorded_accuracy_and_sort_by_confidence(trained):
    d = bundled_mnist()
    snap = trained.snapshot()
    for net, view in zip(trained.nets, snap.models):
        r = evaluate(net, d.test_images[:trained.train.eval_size], d.test_labels[:trained.train.eval_size])
        assert r.accuracy == pytest.approx(view.test_acc[-1], abs=1e-6)  # the very weights that were trained
        wrong = r.wrong()
        assert len(wrong) == (r.predicted != r.labels).sum()
        assert np.all(np.diff(r.confidence[wrong]) <= 0)
        m = r.confusion()
        assert m.sum() == len(r.labels) and np.trace(m) == (r.predicted == r.labels).sum()


def to_canvas(digit: np.ndarray) -> np.ndarray:
    """A test digit as if drawn on the 280x280 canvas: white on black, smooth edges, RGBA."""
    big = np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR))
    return np.dstack([big, big, big, np.full_like(big, 255)])


def test_test_digits_through_the_canvas_path_score_like_direct_evaluation():
    job = Job([ModelSpec(depth=20)], TrainSpec(steps=150))
    job.run_blocking()
    d = bundled_mnist()
    direct = evaluate(job.nets[0], d.test_images, d.test_labels).accuracy
    drawn = np.stack([prepare(to_canvas(x)).digit for x in d.test_images])
    via_canvas = evaluate(job.nets[0], drawn, d.test_labels).accuracy
    assert direct > 0.8
    assert abs(direct - via_canvas) <= 0.02, (direct, via_canvas)


def test_block_maps_show_both_paths_of_residual_blocks(trained):
    digit = bundled_mnist().test_images[1]
    plain, res = block_maps(trained.nets[2], digit), block_maps(trained.nets[3], digit)
    assert [b.name for b in plain] == [b.name for b in res] == [n for n, _ in trained.nets[3].blocks()]
    assert all(b.residual is None and b.identity is None for b in plain)
    for b in res:
        assert b.residual.shape == b.identity.shape == b.output.shape
        assert np.allclose(b.output, np.maximum(b.residual + b.identity, 0), atol=1e-5)  # H = ReLU(aF + bx)
    assert res[0].output.shape == (16, 14, 14) and res[-1].output.shape == (64, 4, 4)
    assert not any(b.observer for _, b in trained.nets[3].blocks())  # nothing left hooked


def test_mosaic_tiles_channels_with_gaps():
    maps = np.arange(16 * 3 * 2, dtype=np.float32).reshape(16, 3, 2)
    m = mosaic(maps)
    assert m.shape == (4 * 3 + 3, 4 * 2 + 3)
    assert np.isnan(m).sum() == m.size - maps.size
    assert m[0, 0] == maps[0, 0, 0] and m[4, 0] == maps[4, 0, 0]
    assert mosaic(np.zeros((32, 7, 7))).shape == (4 * 8 - 1, 8 * 8 - 1)  # full rows: 4 x 8


# ---- the pages, through AppTest -----------------------------------------------------------------------

def open_page(url_path: str, job=None, lang: str = "en", state: dict | None = None) -> AppTest:
    """The real app on one of its pages, with `job` as this session's run and `state` set in its session
    before the first run. AppTest switches only file-based pages; ours are functions, registered under the
    hash of their url_path (as st.Page does), which is what a browser asks for."""
    at = AppTest.from_file(APP, default_timeout=hang_s(60))
    if job is not None:
        holder = JobHolder()
        holder.job = job
        at.session_state["_job_holder"] = holder
    at.session_state["lang"] = lang
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at._page_hash = calc_hash(url_path)
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at) -> str:
    parts = [e.value for kind in ("title", "markdown", "caption", "info", "error", "subheader", "success")
             for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("url_path", ["draw", "errors", "gradients"])
def test_pages_without_a_run_show_the_reference_models_and_point_to_the_lab(url_path):
    at = open_page(url_path)
    assert "Lab" in at.get("page_link")[0].proto.label
    assert any(i.value.startswith("Reference models: the default lesson's four nets") for i in at.info)


def test_draw_page_with_a_test_digit_shows_steps_predictions_and_feature_maps(trained):
    at = open_page("draw", trained)
    assert any("Draw a digit" in i.value for i in at.info)  # the empty canvas asks for a digit
    at.segmented_control(key="draw_source").set_value("test").run()
    at.number_input(key="draw_test_index").set_value(7).run()
    assert not at.exception, at.exception
    charts = [c.key for c in at.get("plotly_chart")]
    assert charts == MAPS_PAGE_CHARTS
    assert len(at.image) == 4  # the preprocessing steps
    label = int(bundled_mnist().test_labels[7])
    assert f"True label: **{label}**" in texts(at)
    # A residual and a plain net of the same depth, side by side; the last block of the deepest pair.
    assert at.selectbox(key="maps_left").value == 2 and at.selectbox(key="maps_right").value == 3
    at.slider(key="maps_block").set_value(6).run()
    at.radio(key="maps_scale").set_value("shared").run()
    assert not at.exception, at.exception
    prob = next(c for c in at.get("plotly_chart") if c.key == "prob_chart")
    assert "plain-14" in prob.proto.spec and "res-14" in prob.proto.spec


def test_draw_page_upload_of_a_non_image_says_so(trained):
    at = open_page("draw", trained)
    at.segmented_control(key="draw_source").set_value("upload").run()
    at.file_uploader(key="draw_upload").upload("digit.png", b"this is not a png", "image/png").run()
    assert not at.exception, at.exception
    assert any("not an image" in e.value for e in at.error)


def test_errors_page_shows_accuracy_confusion_and_wrong_digits(trained):
    at = open_page("errors", trained)
    table = at.dataframe[0].value
    assert list(table["Model"]) == ["plain-8", "res-8", "plain-14", "res-14"]
    d = bundled_mnist()
    expected = evaluate(trained.nets[0], d.test_images, d.test_labels)
    assert table["mistakes"][0] == (expected.predicted != expected.labels).sum()
    assert [c.key for c in at.get("plotly_chart")] == ["confusion"]
    at.radio(key="errors_model").set_value(3).run()
    assert not at.exception, at.exception
    assert "res-14" in texts(at)


def test_gradients_page_shows_layers_at_chosen_steps(trained):
    at = open_page("gradients", trained)
    assert [c.key for c in at.get("plotly_chart")] == ["layer_grad", "grad_heatmap"]
    key = f"grad_steps_{id(trained)}"
    assert at.session_state[key] == [1, 30, 60]
    at.multiselect(key=key).set_value([]).run()
    assert any("Pick at least one" in i.value for i in at.info)


def test_inside_pages_in_chinese_show_no_raw_keys(trained):
    for url_path in ("draw", "errors", "gradients"):
        at = open_page(url_path, trained, lang="zh")
        shown = texts(at)
        assert "draw." not in shown and "errors." not in shown and "grad." not in shown, shown
        for chart in at.get("plotly_chart"):
            assert "draw." not in chart.proto.spec and "grad." not in chart.proto.spec


def test_predictions_follow_a_running_job_live():
    """The page's weights are the worker's: two reads a few steps apart differ while it trains."""
    job = Job([ModelSpec(depth=8)], TrainSpec(steps=400)).start()
    try:
        digit = bundled_mnist().test_images[3]
        deadline = time.monotonic() + hang_s(60)
        while job.snapshot().step < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        first, step = probabilities(job.nets, digit), job.snapshot().step
        while job.snapshot().step < step + 5:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert not np.allclose(first, probabilities(job.nets, digit))
    finally:
        job.stop()
        job.join(hang_s(10))


def test_experiments_page_shows_every_reference_at_once():
    at = open_page("experiments")
    keys = [c.key for c in at.get("plotly_chart")]
    assert keys == ["sweep_ref", "lesion_ref", "land_ref_plain-56", "land_ref_res-56", "interp_ref",
                    "shat_ref_init", "shat_ref_trained"]
    # Without a trained model the live lesion, landscape and shattered runs say what they need.
    starts = [b for b in at.button if b.label == "Recompute live"]
    assert len(starts) == 4 and not starts[0].disabled and all(b.disabled for b in starts[1:])
    at.radio(key="sweep_metric").set_value("error").run()
    at.toggle(key="landscape_surface").set_value(True).run()
    assert not at.exception, at.exception


def run_live_lesion(job, guard_s: float) -> AppTest:
    """The Experiments page on `job`'s models with its live lesion study started and drawn."""
    at = open_page("experiments", job)
    next(b for b in at.button if b.key == "start_lesion").click().run()
    deadline = time.monotonic() + hang_s(guard_s)
    while "lesion_live" not in [c.key for c in at.get("plotly_chart")]:
        assert time.monotonic() < deadline, "the live lesion study did not finish"
        time.sleep(0.5)
        at.run()
        assert not at.exception, at.exception
    return at


def test_experiments_live_lesion_on_the_session_models(trained):
    run_live_lesion(trained, 120)


def test_experiments_live_sweep_can_be_cancelled():
    at = open_page("experiments")
    at.multiselect(key="sweep_depths_cifar").set_value([56]).run()
    next(b for b in at.button if b.key == "start_sweep").click().run()
    assert next(b for b in at.button if b.key == "cancel_sweep").disabled is False
    next(b for b in at.button if b.key == "cancel_sweep").click().run()
    assert not at.exception, at.exception
    assert any("Cancelled" in w.value for w in at.warning)
    # the resnet family's sweep: ResNet-18/34/50/101 against their plain twins
    at.radio(key="sweep_family").set_value("resnet").run()
    assert at.multiselect(key="sweep_depths_resnet").value == [18, 34, 50, 101]
    at.multiselect(key="sweep_depths_resnet").set_value([18]).run()
    next(b for b in at.button if b.key == "start_sweep").click().run()
    next(b for b in at.button if b.key == "cancel_sweep").click().run()
    assert not at.exception, at.exception


def test_experiments_page_in_chinese_shows_no_raw_keys():
    at = open_page("experiments", lang="zh")
    assert "exp." not in texts(at)
    for chart in at.get("plotly_chart"):
        assert "exp." not in chart.proto.spec and "chart." not in chart.proto.spec


def test_errors_and_draw_pages_survive_a_diverged_model():
    job = Job([ModelSpec(depth=8, skip=False), ModelSpec(depth=8)], TrainSpec(steps=3))
    job.run_blocking()
    with torch.no_grad():
        job.nets[0].head[2].weight.fill_(float("nan"))  # as if it had diverged
    at = open_page("errors", job)
    assert at.dataframe[0].value["mistakes"][0] == 1000
    at = open_page("draw", job)
    at.segmented_control(key="draw_source").set_value("test").run()
    assert not at.exception, at.exception
    prob = next(c for c in at.get("plotly_chart") if c.key == "prob_chart")
    assert "no prediction" in prob.proto.spec
