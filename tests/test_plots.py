"""The charts read alike on every page: colour follows a net's size (plain dashed, residual solid), the loss
axis always shows chance, titles fit a phone, the summary shows only the columns a run gives a meaning to."""
import dataclasses
import math

import numpy as np
import pytest

from resnet_viz.config import PRESETS, ModelSpec, TrainSpec
from resnet_viz.i18n import tr
from resnet_viz.plots import experiments as xp
from resnet_viz.plots import inside
from resnet_viz.plots import run as plots
from resnet_viz.training.engine import Job, WorkerQueue


def t(key, **kw):
    return tr("en", key, **kw)


def zh(key, **kw):
    return tr("zh", key, **kw)


MODELS = [ModelSpec(depth=8, skip=False, batch_norm=False), ModelSpec(depth=8, batch_norm=False),
          ModelSpec(depth=14, skip=False, batch_norm=False), ModelSpec(depth=8, batch_norm=False, csp=0.5)]


@pytest.fixture(scope="module")
def views():
    """Four real nets after 6 steps: a plain/residual pair of depth 8, a plain-14, a CSP net, no batch norm."""
    snap = Job(MODELS, TrainSpec(steps=6, eval_every=3, batch_size=32), queue=WorkerQueue(1)).run_blocking()
    assert snap.state == "done"
    return snap.models


def test_a_plain_net_and_its_residual_twin_share_a_colour_and_other_sizes_do_not():
    fig4 = {m.name: c for m, c in zip(PRESETS["imagenet_fig4"].models,
                                      plots.colours(PRESETS["imagenet_fig4"].models))}
    assert fig4["plain-34"] == fig4["resnet-34A"] and fig4["plain-18"] == fig4["resnet-18A"]
    assert fig4["plain-18"] != fig4["plain-34"]
    degradation = plots.colours(PRESETS["degradation"].models)  # plain-20, res-20, plain-56, res-56
    assert degradation[0] == degradation[1] != degradation[2] == degradation[3]
    # Same size and kind (res-56 and res-56 with β 0.5; a net and its transfer copies): told apart by colour.
    for key in ("shortcut_scaling", "transfer", "csp"):
        assert len(set(plots.colours(PRESETS[key].models))) == len(PRESETS[key].models), key
    rezero = plots.colours(PRESETS["rezero"].models)  # plain-56, res-56 (pair) and ReZero's res-56
    assert rezero[0] == rezero[1] != rezero[2]


def lines(fig) -> dict:
    """{legend name: (colour, dash)} of a figure's line traces that carry a name."""
    return {tr_.name: (tr_.line.color, tr_.line.dash) for tr_ in fig.data if tr_.name and tr_.line.color}


def test_every_chart_colours_by_size_and_dashes_the_plain_nets(views):
    names = [v.name for v in views]
    expected = dict(zip(names, plots.colours(MODELS)))
    figures = [plots.loss_figure(views, t), plots.accuracy_figure(views, t), plots.grad_ratio_figure(views, t),
               inside.layer_gradient_figure(views, [1, 3, 6], t)]
    entries = [(v.name, v.spec.skip, np.linspace(2, 1, 5), np.linspace(1, 2, 5)) for v in views]
    colours = plots.colours([v.spec for v in views])
    figures += [inside.activation_figure(entries, t, key, colours) for key in ("mean", "std")]
    figures += [xp.interpolation_figure([(n, s, np.arange(5), m) for n, s, m, _ in entries], t, colours),
                xp.correlation_figure([(n, s, np.arange(5), m) for n, s, m, _ in entries], t, "c", colours)]
    for fig in figures:
        drawn = {k: v for k, v in lines(fig).items() if k in names}
        assert drawn.keys() == set(names), fig.layout.title.text
        for v in views:
            style = (expected[v.name], "solid" if v.spec.skip else "dash")
            assert drawn[v.name] == style, (fig.layout.title.text, v.name)
    assert expected["plain-8-nobn"] == expected["res-8-nobn"] != expected["plain-14-nobn"]
    bars = inside.probability_figure(names, np.full((4, 10), 0.1) + np.eye(4, 10), t, colours=colours)
    assert [trace.marker.color[i] for i, trace in enumerate(bars.data)] == colours


def test_the_layer_gradient_chart_has_a_legend_for_its_shades_of_step(views):
    fig = inside.layer_gradient_figure(views, [1, 3, 6], t)
    keys = [tr_ for tr_ in fig.data if tr_.legendgroup == "steps"]
    assert [k.name for k in keys] == ["step 1", "step 3", "step 6"]
    assert keys[0].opacity < keys[1].opacity < keys[2].opacity and keys[0].line.width < keys[2].line.width


@pytest.mark.parametrize("losses", [(2.2, 5.0), (2.25, 2.4), (0.02, 2.4), (0.5, 900.0), (3.0, 4.0)])
def test_the_loss_axis_always_shows_chance_and_at_least_three_ticks(losses):
    lo, hi = plots.loss_range([np.geomspace(*losses, 20)])
    ticks = plots.log_ticks(lo, hi)
    assert len(ticks) >= 3 and all(lo <= math.log10(v) <= hi for v in ticks), (losses, ticks)
    assert 2.3 in ticks
    spaced = np.diff(np.log10(ticks))
    assert spaced.min() > (hi - lo) / 13, ("ticks print over each other", ticks)


def test_the_loss_chart_draws_a_labelled_chance_line_on_either_scale(views):
    for log_y in (True, False):
        fig = plots.loss_figure(views, t, log_y=log_y)
        assert [s.y0 for s in fig.layout.shapes] == [pytest.approx(math.log(10))]
        assert fig.layout.annotations[0].text == "chance (2.3)"
    fig = plots.loss_figure(views, t)
    lo, hi = fig.layout.yaxis.range
    assert sum(lo <= math.log10(v) <= hi for v in fig.layout.yaxis.tickvals) >= 3


@pytest.mark.parametrize("text", [t("chart.ratio_fl_title"), t("chart.ratio_title"), zh("chart.ratio_fl_title"),
                                  t("grad.by_layer_title", steps="1, 150, 300")])
def test_long_titles_are_broken_into_lines_that_fit_a_phone(text):
    wrapped = plots.wrap(text)
    assert wrapped.replace("<br>", "").replace(" ", "") == text.replace(" ", "")
    widths = [sum(2 if ord(c) >= 0x2E80 else 1 for c in line) for line in wrapped.split("<br>")]
    assert max(widths) <= plots.TITLE_WIDTH and len(widths) > 1, wrapped


def test_heatmap_panels_stand_two_to_a_row_with_their_titles_apart(views):
    fig = plots.grad_heatmap_figure(views, t)
    titles = fig.layout.annotations
    assert [a.text for a in titles] == [v.name for v in views]
    xs = [fig.layout[f"xaxis{'' if i == 0 else i + 1}"].domain for i in range(4)]
    ys = [fig.layout[f"yaxis{'' if i == 0 else i + 1}"].domain for i in range(4)]
    assert xs[0] == xs[2] and xs[1] == xs[3] and xs[0][1] < xs[1][0]  # two columns, a gap between
    assert ys[0] == ys[1] and ys[2][1] < ys[0][0]  # two rows


def test_the_summary_shows_a_column_only_where_a_model_uses_it(views):
    rows = plots.summary_rows(views, t, test_digits=500)
    assert "CSP share γ" in rows[0] and rows[0]["CSP share γ"] == "–" and rows[3]["CSP share γ"] == "0.5"
    assert "Gradient at layer 1 ÷ last" in rows[0]  # no batch norm: the ratio tells a story
    assert "Test acc (500 digits)" in rows[0] and "Status" not in rows[0]  # nobody diverged
    helps = plots.summary_help(t, 500)
    assert all(helps.get(column) for column in rows[0]), set(rows[0]) - set(helps)  # a tooltip for each
    # the same records, as nets with batch norm and without CSP
    plain_bn = [dataclasses.replace(v, spec=ModelSpec(depth=8, skip=v.spec.skip)) for v in views[:2]]
    rows = plots.summary_rows(plain_bn, t)
    assert not {"CSP share γ", "Gradient at layer 1 ÷ last", "Status"} & set(rows[0])
    assert "Test acc" in rows[0]
    assert list(rows[0])[:3] == ["Model", "Skip", "Depth"]
