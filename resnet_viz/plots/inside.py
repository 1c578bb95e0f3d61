"""Figures for looking inside trained models: class probabilities for a drawn digit, feature maps, activation
statistics per block, gradient norms per layer, the confusion matrix. Pure functions of numpy, no Streamlit,
no torch; every text through `t(key)`, as in run.py.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np
import plotly.graph_objects as go

from .run import LOG_TICKS, Text, _figure, colour, view_colours, wrap

if TYPE_CHECKING:
    from ..training.engine import ModelView

GREY = "#c7c7c7"
DIVERGING = [[0, "#2166ac"], [0.25, "#92c5de"], [0.5, "#ffffff"], [0.75, "#f4a582"], [1, "#b2182b"]]  # zero white


def _row_domains(n: int, gap: float) -> list[tuple[float, float]]:
    """n horizontal bands, top to bottom."""
    h = (1 - gap * (n - 1)) / n
    return [(max(0.0, round(1 - (i + 1) * h - i * gap, 6)), min(1.0, round(1 - i * h - i * gap, 6)))
            for i in range(n)]


def _column_domains(n: int, gap: float) -> list[tuple[float, float]]:
    w = (1 - gap * (n - 1)) / n
    return [(max(0.0, round(i * (w + gap), 6)), min(1.0, round(i * (w + gap) + w, 6))) for i in range(n)]


def probability_figure(names: Sequence[str], probs: np.ndarray, t: Text,
                       classes: Sequence[str] | None = None, colours: Sequence[str] | None = None) -> go.Figure:
    """One row of ten bars per model; the top class in the model's colour (`colours`, run.colours: by size)
    and named beside the model. `classes`: the class names (default the digits 0-9)."""
    classes = list(classes) if classes is not None else [str(k) for k in range(10)]
    n = len(names)
    row, gap, margins = 90, 56, 90  # px: each row's bars, the room for its tick labels and the next label
    height = margins + n * row + (n - 1) * gap
    traces, layout = [], dict(annotations=[], hovermode="closest", showlegend=False, bargap=0.15)
    for i, (name, p) in enumerate(zip(names, probs)):
        s = "" if i == 0 else str(i + 1)
        lo, hi = _row_domains(n, gap / (height - margins))[i]
        ok = bool(np.all(np.isfinite(p)))
        top = int(np.argmax(p)) if ok else -1
        own = colours[i] if colours is not None else colour(i)
        bars = [own if k == top else GREY for k in range(10)]
        traces.append(dict(type="bar", x=list(range(10)), y=np.nan_to_num(p).astype(np.float32), xaxis=f"x{s}",
                           yaxis=f"y{s}", marker=dict(color=bars), name=name,
                           customdata=classes, hovertemplate=f"{name}: %{{customdata}} %{{y:.1%}}<extra></extra>"))
        layout[f"xaxis{s}"] = dict(anchor=f"y{s}", tickvals=list(range(10)), ticktext=classes, range=[-0.6, 9.6],
                                   showticklabels=True, fixedrange=True)
        layout[f"yaxis{s}"] = dict(anchor=f"x{s}", domain=[lo, hi], range=[0, 1], tickformat=".0%",
                                   tickvals=[0, 0.5, 1], fixedrange=True)
        label = (t("draw.top", name=name, digit=classes[top], pct=100 * p[top]) if ok
                 else t("draw.no_prediction", name=name))
        layout["annotations"].append(dict(text=label, x=0, y=hi, xref="paper", yref="paper", xanchor="left",
                                          yanchor="bottom", showarrow=False, font=dict(size=14)))
    fig = _figure(traces, layout, t("draw.prob_title"), height=height)
    fig.layout.margin.update(t=65, b=25)
    return fig


MAPS_TITLE_WIDTH = 26  # a mosaic's figure is a quarter of a screen wide


def maps_figure(panels: Sequence[tuple[str, np.ndarray]], limit: float, t: Text, title: str,
                width: int = 1000, colour_bar: bool = True) -> go.Figure:
    """Channel mosaics side by side on one diverging scale, -limit..limit: zero white, positive red,
    negative blue, so a dead channel is a blank square and equal colours are equal values. The Draw page
    draws one of these per model (stacked on a phone), each with that model's panels."""
    traces, layout = [], dict(annotations=[], hovermode="closest", plot_bgcolor="#b0b0b0")  # grey gaps
    n = len(panels)
    for i, ((label, image), (left, right)) in enumerate(zip(panels, _column_domains(n, 0.04))):
        s = "" if i == 0 else str(i + 1)
        traces.append(dict(type="heatmap", z=image.astype(np.float32), coloraxis="coloraxis", xaxis=f"x{s}",
                           yaxis=f"y{s}", hovertemplate=t("draw.map_hover")))
        layout[f"xaxis{s}"] = dict(domain=[left, right], anchor=f"y{s}", visible=False, constrain="domain")
        layout[f"yaxis{s}"] = dict(anchor=f"x{s}", visible=False, autorange="reversed", scaleanchor=f"x{s}",
                                   constrain="domain")
        if label:  # a figure of one mosaic says what it is in its title
            layout["annotations"].append(dict(text=label, x=(left + right) / 2, y=1.0, xref="paper", yref="paper",
                                              xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=13)))
    limit = float(limit) if np.isfinite(limit) and limit > 0 else 1.0
    bar = 45 if colour_bar else 0  # px under the mosaics for the colour bar, lying flat
    layout["coloraxis"] = dict(colorscale=DIVERGING, cmin=-limit, cmax=limit, showscale=colour_bar,
                               colorbar=dict(thickness=10, len=0.9, orientation="h", y=-0.02, yanchor="top"))
    # As tall as the mosaics need at `width` px (wide 4x8 mosaics would float in a square figure)
    aspect = max(image.shape[0] / image.shape[1] for _, image in panels) if panels else 1.0
    height = int(np.clip(110 + 0.85 * width / max(1, n) * aspect, 200, 420)) + bar
    fig = _figure(traces, layout, title, height=height, title_width=MAPS_TITLE_WIDTH)
    fig.layout.margin.update(l=10, r=10, t=60 + 20 * wrap(title, MAPS_TITLE_WIDTH).count("<br>") +
                             16 * max((label.count("<br>") for label, _ in panels), default=0), b=10 + bar)
    return fig


def activation_figure(entries: Sequence[tuple[str, bool, np.ndarray, np.ndarray]], t: Text, key: str = "mean",
                      colours: Sequence[str] | None = None) -> go.Figure:
    """The mean (`key` "mean") or standard deviation ("std") of each block's output for one digit (post-ReLU,
    so never negative; log axis), a line per model (entries: name, skip, means, stds); dashed = plain,
    solid = residual, coloured by size (`colours`) as on the Lab page. The page shows the two side by side,
    or one above the other on a phone."""
    traces = []
    for i, (name, skip, means, stds) in enumerate(entries):
        values = means if key == "mean" else stds
        traces.append(dict(type="scatter", x=np.arange(1, len(values) + 1), y=np.asarray(values, np.float32),
                           mode="lines+markers", name=name, marker=dict(size=5),
                           line=dict(color=colours[i] if colours is not None else colour(i),
                                     dash="solid" if skip else "dash", width=2)))
    # log: one model's signal can be 100x another's (a plain net blowing up), and both should read
    layout = dict(xaxis=dict(title=dict(text=t("chart.block"))),
                  yaxis=dict(title=dict(text=t(f"draw.act_{key}")), type="log", tickvals=LOG_TICKS,
                             ticktext=[f"{v:g}" for v in LOG_TICKS]))
    return _figure(traces, layout, t(f"draw.act_title_{key}"), height=340)


def layer_gradient_figure(views: Sequence[ModelView], steps: Sequence[int], t: Text) -> go.Figure:
    """Gradient norm against layer index (input to output) on a log axis, a line per model and chosen step;
    later steps drawn darker and thicker, and the legend says which shade is which step: where along the
    depth does the signal fade, and does it recover?"""
    traces = []
    steps = sorted(steps)
    cs = view_colours(views)
    for k, step in enumerate(steps):
        weight = (k + 1) / len(steps)
        for i, v in enumerate(views):
            if not 0 < step <= len(v.grad_norm):
                continue
            traces.append(dict(type="scatter", x=np.arange(1, v.grad_norm.shape[1] + 1),
                               y=v.grad_norm[step - 1].astype(np.float32), mode="lines", name=v.name,
                               legendgroup=v.name, showlegend=k == len(steps) - 1, opacity=0.3 + 0.7 * weight,
                               text=v.layer_names, line=dict(color=cs[i], dash="solid" if v.spec.skip else "dash",
                                                             width=1 + 1.5 * weight),
                               hovertemplate=t("grad.hover", step=step) + "<extra>" + v.name + "</extra>"))
    values = [np.asarray(tr["y"]) for tr in traces]
    finite = np.concatenate([a[np.isfinite(a) & (a > 0)] for a in values]) if values else np.array([])
    lo, hi = ((math.floor(np.log10(finite.min()) * 2) / 2, math.ceil(np.log10(finite.max()) * 2) / 2)
              if finite.size else (-4.0, 1.0))
    if len(steps) > 1:  # the shades' key: a grey line per step, as light and thin as that step's lines
        for k, step in enumerate(steps):
            weight = (k + 1) / len(steps)
            traces.append(dict(type="scatter", x=[None], y=[None], mode="lines", name=t("grad.step_shade", step=step),
                               legendgroup="steps", opacity=0.3 + 0.7 * weight, hoverinfo="skip",
                               line=dict(color="#333", width=1 + 1.5 * weight)))
    ticks = [v for v in LOG_TICKS if lo <= math.log10(v) <= hi]
    if hi - lo > 3:  # over many decades 1-2-5 ticks crowd; decades alone read better
        ticks = [v for v in ticks if math.log10(v) == round(math.log10(v))]
    layout = dict(xaxis=dict(title=dict(text=t("chart.layer")), rangemode="tozero"),
                  yaxis=dict(type="log", range=[lo, hi], tickvals=ticks, ticktext=[f"{v:g}" for v in ticks],
                             title=dict(text=t("chart.grad_norm"))), hovermode="closest")
    title = t("grad.by_layer_title", steps=", ".join(str(s) for s in steps))
    return _figure(traces, layout, title, height=420)


def confusion_figure(matrix: np.ndarray, t: Text, title: str, classes: Sequence[str] | None = None) -> go.Figure:
    """Counts, true class down, predicted across. Mistakes in shades of red that top out at the largest
    mistake (so they show up instead of drowning under the diagonal); the diagonal in one quiet green; counts
    written in, empty cells left blank."""
    ticks = dict(tickvals=list(range(10)), ticktext=list(classes) if classes is not None else list(map(str, range(10))))
    diagonal = np.eye(10, dtype=bool)
    cap = max(1, int(matrix[~diagonal].max(initial=0)))
    z = np.where(diagonal, -1, matrix).astype(np.float32)  # -1: the green end of the scale
    split = 0.5 / (cap + 1)  # halfway between -1 and 0 on the scale that runs from -1 to cap
    scale = [[0, "#dff0d8"], [split, "#dff0d8"], [split, "#ffffff"], [split + (1 - split) * 0.25, "#fcbba1"],
             [split + (1 - split) * 0.6, "#fb6a4a"], [1, "#a50f15"]]
    trace = dict(type="heatmap", z=z, x=list(range(10)), y=list(range(10)), zmin=-1, zmax=cap, colorscale=scale,
                 text=np.where(diagonal | (matrix > 0), matrix.astype(str), ""), texttemplate="%{text}",
                 customdata=matrix, showscale=False, xgap=1, ygap=1, hovertemplate=t("errors.confusion_hover"))
    layout = dict(xaxis=dict(title=dict(text=t("errors.predicted")), **ticks, constrain="domain", showgrid=False),
                  yaxis=dict(title=dict(text=t("errors.true")), **ticks, autorange="reversed",
                             scaleanchor="x", constrain="domain", showgrid=False), hovermode="closest")
    return _figure([trace], layout, title, height=460)
