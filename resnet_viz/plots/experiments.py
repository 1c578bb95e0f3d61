"""Figures of the experiments (depth sweep, lesion study, loss landscape, shattered gradients): plotly for
the app, matplotlib for the CLI's degradation.png. Pure functions of numbers; texts through `t(key)`."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from .run import PLAIN_GREY, RESIDUAL_GREY, Text, _figure
from .run import colour as palette_colour

# The sweep's two lines span every depth: greys, not the size colours the other charts give each model.
PLAIN, RESIDUAL = PLAIN_GREY, RESIDUAL_GREY


def _colour(colours, i: int) -> str:
    """The i-th model's colour: from `colours` (run.colours, by size) when given."""
    return colours[i] if colours is not None else palette_colour(i)


def _kind(skip: bool, t: Text) -> str:
    return t("exp.residual") if skip else t("exp.plain")


def sweep_figure(summary: dict, t: Text, metric: str = "loss") -> go.Figure:
    """Final training loss (or error) against depth, plain dashed and residual solid, the band spanning the
    seeds (min to max): the MNIST analogue of He et al.'s Fig. 6."""
    traces = []
    for skip, colour in ((False, PLAIN), (True, RESIDUAL)):
        depths = sorted(d for (s, d) in summary if s == skip)
        if not depths:
            continue
        mean, lo, hi = (np.array([summary[(skip, d)][metric][k] for d in depths]) for k in range(3))
        name = _kind(skip, t)
        traces.append(dict(type="scatter", x=depths + depths[::-1], y=np.concatenate([hi, lo[::-1]]),
                           fill="toself", fillcolor=colour, opacity=0.18, line=dict(width=0), hoverinfo="skip",
                           mode="lines",
                           showlegend=False, legendgroup=name))
        traces.append(dict(type="scatter", x=depths, y=mean, mode="lines+markers", name=name, legendgroup=name,
                           line=dict(color=colour, width=3, dash="solid" if skip else "dash"), marker=dict(size=9),
                           hovertemplate=t("exp.sweep_hover") + "<extra>" + name + "</extra>"))
    ytitle = t("exp.final_loss") if metric == "loss" else t("exp.final_error")
    layout = dict(xaxis=dict(title=dict(text=t("exp.depth")), tickvals=sorted({d for _, d in summary})),
                  yaxis=dict(title=dict(text=ytitle), rangemode="tozero",
                             tickformat=".0%" if metric == "error" else None), hovermode="closest")
    title = t("exp.sweep_title_loss") if metric == "loss" else t("exp.sweep_title_error")
    return _figure(traces, layout, title, height=400)


def lesion_figure(entries: Sequence[tuple[str, bool, list[str], np.ndarray, float]], t: Text,
                  colours: Sequence[str] | None = None) -> go.Figure:
    """Test accuracy with each block deleted (x: the deleted block), a line per model (entries: name, skip,
    block names, accuracies, accuracy with nothing deleted, drawn as a dotted level)."""
    traces = []
    for i, (name, skip, blocks, acc, full) in enumerate(entries):
        colour = _colour(colours, i)
        traces.append(dict(type="scatter", x=np.arange(1, len(acc) + 1), y=np.asarray(acc, np.float32),
                           mode="lines+markers", name=name, text=blocks, connectgaps=False,
                           line=dict(color=colour, width=2.5, dash="solid" if skip else "dash"),
                           hovertemplate=t("exp.lesion_hover") + "<extra>" + name + "</extra>"))
        traces.append(dict(type="scatter", x=[1, max(1, len(acc))], y=[full, full], mode="lines", showlegend=False,
                           line=dict(color=colour, width=1, dash="dot"), hoverinfo="skip"))
    layout = dict(xaxis=dict(title=dict(text=t("exp.deleted_block"))),
                  yaxis=dict(title=dict(text=t("chart.test_accuracy")), range=[0, 1.02], tickformat=".0%"),
                  hovermode="closest")
    return _figure(traces, layout, t("exp.lesion_title"), height=400)


def landscape_figure(coords: np.ndarray, loss: np.ndarray, t: Text, title: str, surface: bool = False,
                     zrange: tuple[float, float] | None = None) -> go.Figure:
    """The 2-D slice as filled contours (or a 3-D surface) of log10 training loss, δ and η its two directions.
    Without `zrange` (log10 limits) the colours run from the slice's lowest loss to the loss of its highest
    tenth (own_range): the shape is what a bowl and a bumpy plateau differ in."""
    z = np.log10(np.clip(loss, 1e-3, None)).astype(np.float32)
    bottom, top = zrange if zrange is not None else own_range(z)
    common = dict(x=coords, y=coords, z=z, colorscale="Viridis", cmin=bottom, cmax=top,
                  hovertemplate=t("exp.landscape_hover"))
    if surface:
        trace = dict(type="surface", showscale=False, **common)
        layout = dict(scene=dict(xaxis=dict(title=dict(text=t("exp.delta"))), yaxis=dict(title=dict(text=t("exp.eta"))),
                                 zaxis=dict(title=dict(text=t("exp.log_loss")), range=[bottom, top])),
                      margin=dict(l=0, r=0, t=50, b=0))
    else:
        trace = dict(type="contour", zmin=common.pop("cmin"), zmax=common.pop("cmax"), ncontours=25,
                     colorbar=dict(title=dict(text=t("exp.log_loss"), side="right")), **common)
        layout = dict(xaxis=dict(title=dict(text=t("exp.delta")), constrain="domain"),
                      yaxis=dict(title=dict(text=t("exp.eta")), scaleanchor="x", constrain="domain"),
                      hovermode="closest")
    return _figure([trace], layout, title, height=420)


def own_range(z: np.ndarray, top: float = 90) -> tuple[float, float]:
    """log10 colour limits of one slice: its lowest loss to its `top` percentile. With the highest loss as
    the top, plain-56's one steep corner (2.6 against a floor of 2.29-2.32) took every colour but the
    darkest, and its bumps vanished into one flat plateau."""
    finite = z[np.isfinite(z)]
    if not finite.size:
        return 0.0, 1.0
    bottom, high = float(finite.min()), float(np.percentile(finite, top))
    return bottom, high if high > bottom else bottom + 1e-3


def interpolation_figure(entries: Sequence[tuple[str, bool, np.ndarray, np.ndarray]], t: Text,
                         colours: Sequence[str] | None = None) -> go.Figure:
    """Training loss along the straight line from each model's start (t = 0) to its trained weights (t = 1)."""
    traces = [dict(type="scatter", x=ts, y=np.asarray(loss, np.float32), mode="lines", name=name,
                   line=dict(color=_colour(colours, i), width=2.5, dash="solid" if skip else "dash"))
              for i, (name, skip, ts, loss) in enumerate(entries)]
    layout = dict(xaxis=dict(title=dict(text=t("exp.interp_t"))),
                  yaxis=dict(title=dict(text=t("chart.train_loss")), type="log"), hovermode="x unified",
                  shapes=[dict(type="line", x0=x, x1=x, y0=0, y1=1, yref="paper", line=dict(color="#999", dash="dot"))
                          for x in (0, 1)])
    return _figure(traces, layout, t("exp.interp_title"), height=380)


def correlation_figure(entries: Sequence[tuple[str, bool, np.ndarray, np.ndarray]], t: Text, title: str,
                       colours: Sequence[str] | None = None) -> go.Figure:
    """Correlation of input gradients `lag` steps apart along a line of inputs, a line per model."""
    traces = [dict(type="scatter", x=lags, y=np.asarray(corr, np.float32), mode="lines+markers", name=name,
                   marker=dict(size=5),
                   line=dict(color=_colour(colours, i), width=2.5, dash="solid" if skip else "dash"))
              for i, (name, skip, lags, corr) in enumerate(entries)]
    layout = dict(xaxis=dict(title=dict(text=t("exp.lag"))),
                  yaxis=dict(title=dict(text=t("exp.correlation")), range=[-0.1, 1.02]), hovermode="x unified")
    return _figure(traces, layout, title, height=380)


def save_degradation_png(summary: dict, path, t: Text) -> None:
    """The depth sweep for the CLI: final training loss and training error against depth, seed bands."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, metric, label in zip(axes, ("loss", "error"), (t("exp.final_loss"), t("exp.final_error"))):
        for skip, colour in ((False, PLAIN), (True, RESIDUAL)):
            depths = sorted(d for (s, d) in summary if s == skip)
            if not depths:
                continue
            mean, lo, hi = (np.array([summary[(skip, d)][metric][k] for d in depths]) for k in range(3))
            ax.fill_between(depths, lo, hi, color=colour, alpha=0.2)
            ax.plot(depths, mean, "-o" if skip else "--o", color=colour, label=_kind(skip, t))
        ax.set(xlabel=t("exp.depth"), ylabel=label, xticks=sorted({d for _, d in summary}))
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(t("exp.sweep_png_title"))
    fig.savefig(path, dpi=110)
    plt.close(fig)
