"""Every page with the new families: a run of LeNet-5, AlexNet, VGG, plain-18, ResNet-18 and ResNet-50 (thin,
a few steps: the pages, not the accuracy, are under test) through Draw, Errors, Gradients, Experiments and
the Lab's diagram and layer table, in both languages; a saved run of each family reopens with identical
records."""
import numpy as np
import pytest
from speed import hang_s
from test_inside import open_page, run_live_lesion, texts

from resnet_viz import runfile
from resnet_viz.config import PRESETS, ModelSpec, TrainSpec
from resnet_viz.i18n import tr
from resnet_viz.training.engine import Job

MODELS = [ModelSpec(family="lenet5"), ModelSpec(family="alexnet", width=0.125),
          ModelSpec(family="vgg", depth=11, width=0.125), ModelSpec(family="resnet", depth=18, skip=False, width=0.125),
          ModelSpec(family="resnet", depth=18, width=0.125), ModelSpec(family="resnet", depth=50, width=0.125)]


# Draw's charts: predictions, one figure per mosaic (the plain net's output; the residual net's branch, skip
# path and output), the blocks' mean and spread.
MAPS_PAGE_CHARTS = ["prob_chart", "maps_chart", "maps_chart_2", "maps_chart_3", "maps_chart_4", "act_chart",
                    "act_chart_std"]


@pytest.fixture(scope="module")
def families():
    job = Job(MODELS, TrainSpec(steps=12, eval_every=6, eval_size=100))
    job.run_blocking()
    return job


def test_every_family_trains_and_records_its_own_layers_and_blocks(families):
    snap = families.snapshot()
    assert snap.state == "done" and snap.step == 12
    for view in snap.models:
        assert np.isfinite(view.train_loss).all(), view.name
        assert view.grad_norm.shape == (12, view.spec.depth)  # a row per weight layer, input to output
        assert view.act_mean.shape[1] == len(view.block_names) > 0
        assert view.table.params == view.params
        if view.spec.skip:  # residual blocks report how far they are from the identity
            assert np.isfinite(view.ratio).all()
        else:
            assert np.isnan(view.ratio).all()
    names = {v.name: v.block_names for v in snap.models}
    assert names["lenet-5"] == ["C1", "C3", "C5"]
    assert names["vgg-11-w0.125"] == ["s1", "s2", "s3", "s4", "s5"]
    assert names["resnet-50-w0.125"][:4] == ["s1.b1", "s1.b2", "s1.b3", "s2.b1"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_draw_errors_gradients_for_every_family(families, lang):
    # Widgets are set before the page's first run: AppTest cannot rerun a page whose labels changed language.
    at = open_page("draw", families, lang, state={"draw_source": "test"})
    assert [c.key for c in at.get("plotly_chart")] == MAPS_PAGE_CHARTS
    prob = next(c for c in at.get("plotly_chart") if c.key == "prob_chart")
    assert all(m.name in prob.proto.spec for m in MODELS)
    # plain beside residual of the same family and depth: plain-18 and resnet-18
    assert (at.selectbox(key="maps_left").value, at.selectbox(key="maps_right").value) == (3, 4)
    if lang == "en":
        for index in range(len(MODELS)):  # feature maps of every family's blocks or stages
            at.selectbox(key="maps_left").set_value(index).run()
            assert not at.exception, (MODELS[index].name, at.exception)
    at = open_page("errors", families, lang)
    assert not at.exception and len(at.dataframe[0].value) == len(MODELS)
    at = open_page("gradients", families, lang)
    assert [c.key for c in at.get("plotly_chart")] == ["layer_grad", "grad_heatmap"]
    assert "draw." not in texts(at) and "grad." not in texts(at)


def test_lesion_study_runs_over_every_family(families):
    at = run_live_lesion(families, 180)
    chart = next(c for c in at.get("plotly_chart") if c.key == "lesion_live")
    assert "s4.b2" in chart.proto.spec  # ResNet-18's last block, named as the Lab names it


def test_saved_runs_of_every_family_reopen_identically(families):
    saved = runfile.read_run(runfile.run_bytes(families.snapshot(), families.nets, families.dataset))
    reopened = Job.reopen(saved)
    for a, b in zip(families.snapshot().models, reopened.snapshot().models, strict=True):
        assert (a.name, a.spec) == (b.name, b.spec)
        np.testing.assert_array_equal(a.train_loss, b.train_loss)
        np.testing.assert_array_equal(a.grad_norm, b.grad_norm)
        assert a.block_names == b.block_names and a.layer_names == b.layer_names
    for net, again in zip(families.nets, reopened.nets, strict=True):
        for p, q in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
            np.testing.assert_array_equal(p.numpy(), q.numpy())


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("preset", ["imagenet_fig4", "bottleneck", "case_studies"])
def test_lab_shows_each_new_preset_with_diagram_and_layer_table(preset, lang):
    names = [m.name for m in PRESETS[preset].models]
    for name in names:  # every model's diagram and layer table
        at = open_page("lab", lang=lang, state={"preset_value": preset, "arch_open": True, "layer_table": True,
                                                    f"arch_{lang}": name})
        assert not at.error, [e.value for e in at.error]
        assert name in at.get("graphviz_chart")[0].proto.spec
        header = tr(lang, "summary.operation")
        table = next(d.value for d in at.table if header in d.value.columns)  # under the diagram, every cell whole
        assert list(table.columns) == [tr(lang, f"summary.{k}") for k in ("layer", "output", "operation", "params",
                                                                        "flops")]
        assert len(table) >= 4 and table.iloc[-1][tr(lang, "summary.layer")] == f"**{tr(lang, 'summary.total')}**"
        counts = [op for op in table[header] if "**×" in op]  # a stage's block count, in bold: ×2, ×3, ...
        assert counts or preset == "case_studies", list(table[header])


def _family_rows_script():
    import streamlit as st

    from resnet_viz.config import ModelSpec
    from resnet_viz.ui.lab import parse_models, spec_rows
    good = spec_rows([ModelSpec(family="vgg", depth=11), ModelSpec(family="lenet5")])
    specs, errors = parse_models(good + [dict(name="", family="resnet", depth=50, width=0.5)])
    st.markdown(" ".join(s.name for s in specs))
    assert not errors, errors
    _, errors = parse_models([dict(name="", family="lenet5", width=0.5), dict(name="", family="resnet", depth=20)])
    for e in errors:
        st.error(e)


def test_editor_rows_of_every_family_and_messages_that_name_the_row():
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_function(_family_rows_script, default_timeout=hang_s(60))
    at.run()
    assert not at.exception, at.exception
    assert at.markdown[0].value == "vgg-11 lenet-5 resnet-50-w0.5"  # empty cells: the family's defaults
    errors = [e.value for e in at.error]
    assert errors[0].startswith("Model row 1:") and "width does not apply to lenet5" in errors[0]
    assert errors[1].startswith("Model row 2:") and "18, 34, 50, 101, 152" in errors[1]
