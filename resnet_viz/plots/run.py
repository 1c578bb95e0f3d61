"""Pure functions from recorded numbers (engine snapshots) to figures: plotly for the app, matplotlib for the
PNG files the CLI writes. No Streamlit, no torch. Every text on a figure comes through `t(key)`, so charts
follow the language switch.
"""
from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import plotly.graph_objects as go

if TYPE_CHECKING:  # only a type here: the app draws its first page without importing torch
    from ..training.engine import ModelView

Text = Callable[..., str]
_log = logging.getLogger(__name__)

# One fixed colour per position: plain models dashed, residual solid, so a projected chart reads at a glance.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


# 1-2-5 ticks: readable on a projector, where plotly's own log ticks crowd small digits between decades.
LOG_TICKS = [m * 10.0**e for e in range(-4, 2) for m in (1, 2, 5)]


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def dash(view: ModelView) -> str:
    return "solid" if view.spec.skip else "dash"


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average as TensorBoard does it (debiased), NaN-safe; weight 0 returns the input."""
    if weight <= 0 or values.size == 0:
        return values
    out = np.empty_like(values, dtype=float)
    avg, norm = 0.0, 0.0
    for i, v in enumerate(values):
        if np.isfinite(v):
            avg = weight * avg + (1 - weight) * v
            norm = weight * norm + (1 - weight)
        out[i] = avg / norm if norm else np.nan
    return out


def _figure(traces: list[dict], layout: dict, title: str, height: int = 360) -> go.Figure:
    """A figure from plain dicts, unvalidated: the app rebuilds these every second while a model trains in
    the next process, and plotly's validation cost ~10x the drawing (110 ms a refresh for three charts)."""
    # The finished run's mode bar (camera, zoom) stands upright at the right edge, in a margin of its own:
    # lying across the top, it covered the chart's title (on phones it shows without a hover).
    base = dict(title=dict(text=title, x=0.01, font=dict(size=16)), height=height,
                margin=dict(l=60, r=40, t=50, b=50), legend=dict(orientation="h", y=-0.22),
                hovermode="x unified", template=_template(), font=dict(size=13), modebar=dict(orientation="v"))
    return go.Figure(data=traces, layout={**base, **layout}, _validate=False)


_TEMPLATE = None  # filled on first use: the validated plotly_white template, as a plain dict


def _template() -> dict:
    global _TEMPLATE
    if _TEMPLATE is None:
        import plotly.io as pio
        _TEMPLATE = pio.templates["plotly_white"].to_plotly_json()
    return _TEMPLATE


def _line(x, y, name: str, i: int, view: ModelView, width: float, **extra) -> dict:
    return dict(type="scatter", x=np.asarray(x), y=np.asarray(y, dtype=np.float32), name=name, mode="lines",
                line=dict(color=colour(i), dash=dash(view), width=width), **extra)


def loss_figure(views: Sequence[ModelView], t: Text, log_y: bool = True, smoothing: float = 0.6) -> go.Figure:
    traces = [_line(v.step, smooth(v.train_loss, smoothing), v.name, i, v, 2.5) for i, v in enumerate(views)]
    yaxis = dict(title=dict(text=t("chart.train_loss")), type="log" if log_y else "linear")
    if log_y:
        yaxis.update(tickvals=LOG_TICKS, ticktext=[f"{v:g}" for v in LOG_TICKS])
    return _figure(traces, dict(xaxis=dict(title=dict(text=t("chart.step")), rangemode="tozero"), yaxis=yaxis),
                   t("chart.loss_title"))


def accuracy_figure(views: Sequence[ModelView], t: Text, smoothing: float = 0.6) -> go.Figure:
    traces = []
    for i, v in enumerate(views):
        # One legend entry per model: the thin line is training accuracy, the dots test accuracy.
        traces.append(_line(v.step, smooth(v.train_acc, smoothing), v.name, i, v, 1.5, legendgroup=v.name,
                            opacity=0.55, hovertemplate=f"{t('chart.train')} %{{y:.1%}}<extra>{v.name}</extra>"))
        if v.eval_step.size:
            traces.append(_line(v.eval_step, v.test_acc, v.name, i, v, 2.5, legendgroup=v.name,
                                showlegend=False, marker=dict(size=8),
                                hovertemplate=f"{t('chart.test')} %{{y:.1%}}<extra>{v.name}</extra>")
                          | dict(mode="lines+markers"))
    layout = dict(xaxis=dict(title=dict(text=t("chart.step")), rangemode="tozero"),
                  yaxis=dict(title=dict(text=t("chart.accuracy")), range=[0, 1.02], tickformat=".0%"))
    return _figure(traces, layout, t("chart.accuracy_title"))


def log_range(arrays: Sequence[np.ndarray], default: tuple[float, float] = (-4.0, 0.0)) -> tuple[float, float]:
    """log10 limits shared by several heatmaps, so equal colours mean equal values (1st-99.5th percentile,
    rounded out to half decades)."""
    finite = [a[np.isfinite(a) & (a > 0)] for a in arrays]
    finite = [f for f in finite if f.size]
    if not finite:
        return default
    lo, hi = np.percentile(np.log10(np.concatenate(finite)), [1, 99.5])
    return float(math.floor(lo * 2) / 2), float(math.ceil(hi * 2) / 2 if hi > lo else lo + 1)


def grad_norm_range(views: Sequence[ModelView]) -> tuple[float, float]:
    return log_range([v.grad_norm for v in views])


def _log_heatmaps(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], t: Text, title: str, colour_title: str,
                  hover: str, ylabel: str, lo: float, hi: float, max_columns: int = 120,
                  gap: float = 0.03) -> go.Figure:
    """One log10 heatmap per (name, steps, values[step, row]) panel, side by side, one shared colour scale.
    Long runs are thinned to `max_columns` steps to keep the once-a-second payload small."""
    n = max(1, len(panels))
    width = (1 - gap * (n - 1)) / n
    traces, layout = [], dict(annotations=[], hovermode="closest")
    for i, (name, steps, values) in enumerate(panels):
        if len(steps) > max_columns:
            keep = np.linspace(0, len(steps) - 1, max_columns).round().astype(int)
            values, steps = values[keep], steps[keep]
        with np.errstate(divide="ignore", invalid="ignore"):
            # An exact zero (a dead layer) takes the darkest colour rather than a blank cell.
            z = np.log10(np.where(values > 0, values, np.where(values == 0, 10.0**lo, np.nan))).T
        z = z.astype(np.float32)
        suffix = "" if i == 0 else str(i + 1)
        traces.append(dict(type="heatmap", z=z, x=steps, y=np.arange(1, values.shape[1] + 1),
                           coloraxis="coloraxis", xaxis=f"x{suffix}", yaxis=f"y{suffix}", hovertemplate=hover))
        left = i * (width + gap)
        layout[f"xaxis{suffix}"] = dict(domain=[left, left + width], title=dict(text=t("chart.step")),
                                        anchor=f"y{suffix}")
        layout[f"yaxis{suffix}"] = dict(anchor=f"x{suffix}", title=dict(text=ylabel if i == 0 else ""))
        layout["annotations"].append(dict(text=name, x=left + width / 2, y=1.0, xref="paper", yref="paper",
                                          xanchor="center", yanchor="bottom", showarrow=False,
                                          font=dict(size=14)))
    ticks = np.arange(math.ceil(lo), math.floor(hi) + 1)
    ticks = ticks[::max(1, math.ceil(len(ticks) / 7))]  # at most ~7 labels, however wide the range
    layout["coloraxis"] = dict(colorscale="Viridis", cmin=lo, cmax=hi, colorbar=dict(
        title=dict(text=colour_title, side="right"), tickvals=ticks.tolist(), ticktext=[f"1e{int(k)}" for k in ticks]))
    fig = _figure(traces, layout, title, height=380)
    fig.layout.margin.t = 70
    return fig


def panel_name(v: ModelView, t: Text) -> str:
    """A model's name over its gradient rows, saying when all but the head are frozen (blank, not dark)."""
    return t("chart.frozen_panel", name=v.name, n=len(v.layer_names) - 1) if v.spec.frozen_backbone else v.name


def grad_heatmap_figure(views: Sequence[ModelView], t: Text, gap: float = 0.03) -> go.Figure:
    """Layer x step heatmap of gradient norms, one panel per model, one colour scale for all (`gap`: room
    between panels, as a share of the width; more for a narrow column, where each panel's layer labels
    need it)."""
    lo, hi = grad_norm_range(views)
    return _log_heatmaps([(panel_name(v, t), v.step, v.grad_norm) for v in views], t, t("chart.grad_title"),
                         t("chart.grad_colour"), t("chart.grad_hover"), t("chart.layer"), lo, hi, gap=gap)


def ratio_heatmap_figure(views: Sequence[ModelView], t: Text) -> go.Figure | None:
    """Block x step heatmap of ||alpha F(x)|| / ||beta x|| for the residual models (None if there are none)."""
    views = [v for v in views if v.spec.skip]
    if not views:
        return None
    lo, hi = log_range([v.ratio for v in views], (-2.0, 1.0))
    return _log_heatmaps([(v.name, v.step, v.ratio) for v in views], t, t("chart.ratio_title"),
                         t("chart.ratio_colour"), t("chart.ratio_hover"), t("chart.block"), lo, hi)


def scale_figure(views: Sequence[ModelView], t: Text) -> go.Figure | None:
    """alpha (solid) and beta (dotted) of every block over the steps, for models where either is learnable;
    deeper blocks in darker shades of the model's colour. None when nothing is learnable."""
    traces = []
    for i, v in enumerate(views):
        if not v.spec.skip or not (v.spec.learn_alpha or v.spec.learn_beta):
            continue
        blocks = len(v.block_names)
        for kind, values, learn, style in (("α", v.alpha, v.spec.learn_alpha, "solid"),
                                           ("β", v.beta, v.spec.learn_beta, "dot")):
            if not learn:
                continue
            for b in range(blocks):
                traces.append(dict(type="scatter", x=v.step, y=values[:, b].astype(np.float32), mode="lines",
                                   name=f"{v.name} {kind}", legendgroup=f"{v.name}{kind}", showlegend=b == 0,
                                   opacity=0.35 + 0.65 * (b + 1) / blocks,
                                   line=dict(color=colour(i), dash=style, width=1.5),
                                   hovertemplate=f"{v.name} {kind} {v.block_names[b]}: %{{y:.3f}}<extra></extra>"))
    if not traces:
        return None
    layout = dict(xaxis=dict(title=dict(text=t("chart.step")), rangemode="tozero"),
                  yaxis=dict(title=dict(text=t("chart.scale_value"))), hovermode="closest")
    return _figure(traces, layout, t("chart.scale_title"))


def first_last_ratio(grad_norm: np.ndarray) -> np.ndarray:
    """Per step: the first weight layer's gradient norm over the last's (how much of the signal reaches the
    input end; ~1e-7 or 0 in a deep plain net without batch norm)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return grad_norm[:, 0] / grad_norm[:, -1] if grad_norm.size else np.array([])


def grad_ratio_figure(views: Sequence[ModelView], t: Text) -> go.Figure:
    """first/last gradient-norm ratio over the steps, log scale, a line per model; zeros (underflow) drawn
    at the bottom edge so a dead net is seen, not dropped."""
    ratios = [first_last_ratio(v.grad_norm) for v in views]
    finite = np.concatenate([r[np.isfinite(r) & (r > 0)] for r in ratios] + [np.array([1.0])])
    floor = 10.0 ** math.floor(math.log10(finite.min()) - 0.5)
    traces = [_line(v.step, np.where(r == 0, floor, r), v.name, i, v, 2.5,
                    hovertemplate=t("chart.ratio_fl_hover") + f"<extra>{v.name}</extra>")
              for i, (v, r) in enumerate(zip(views, ratios))]
    lo, hi = math.log10(floor), math.ceil(math.log10(max(finite.max(), 1.0)) + 0.2)
    ticks = [10.0 ** k for k in range(int(lo), int(hi) + 1)]
    layout = dict(xaxis=dict(title=dict(text=t("chart.step")), rangemode="tozero"),
                  yaxis=dict(title=dict(text=t("chart.ratio_fl")), type="log", range=[lo, hi], tickvals=ticks,
                             ticktext=[f"1e{int(round(math.log10(v)))}" for v in ticks]))
    return _figure(traces, layout, t("chart.ratio_fl_title"), height=340)


def lab_figures(views: Sequence[ModelView], t: Text, log_y: bool = True, smoothing: float = 0.6) -> dict:
    """The Lab page's charts by file name, in page order (the ones a run has nothing to show for left out):
    the page draws these, and an exported run carries them as PNGs."""
    figures = {"loss": loss_figure(views, t, log_y, smoothing), "accuracy": accuracy_figure(views, t, smoothing),
               "grad_norms": grad_heatmap_figure(views, t), "grad_first_last": grad_ratio_figure(views, t),
               "alpha_beta": scale_figure(views, t), "residual_ratio": ratio_heatmap_figure(views, t)}
    return {name: fig for name, fig in figures.items() if fig is not None}


# The charts use no LaTeX (α and β are plain text): without this, kaleido's page fetches MathJax from a CDN
# for every export (a server whose firewall drops the request waits on it; and a CDN hears of every save).
KALEIDO_OPTIONS = {"mathjax": False}


def figure_pngs(figures: dict, width: int = 1100, scale: float = 2, tries: int = 4) -> dict[str, bytes]:
    """PNG pictures of plotly figures, drawn by kaleido in a headless Chrome (one browser for all of them,
    ~3-9 s for six here), each as tall as the page draws it. Empty when there is no Chrome to draw with: the
    export then goes without them.

    kaleido is called directly, not through plotly's write_images, because write_images drops the errors
    kaleido returns: about one figure in 90 comes back as "kaleido_scopes is not defined" (a tab used before
    its script loaded) with no file written, so the failed ones are drawn again in a fresh browser."""
    import tempfile
    from pathlib import Path
    try:
        import kaleido
    except ImportError:
        return {}
    pngs: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        todo = dict(figures)
        for _ in range(tries):
            specs = [dict(fig=fig.to_dict(), path=Path(tmp) / f"{name}.png",
                          opts=dict(format="png", width=width, scale=scale)) for name, fig in todo.items()]
            try:
                errors = kaleido.write_fig_from_object_sync(specs, kopts=KALEIDO_OPTIONS)
            except Exception as e:  # no Chrome, or Chrome failed to start: the charts stay in the app
                errors = [e]
            for spec in specs:
                if spec["path"].is_file() and spec["path"].stat().st_size:
                    pngs[spec["path"].stem] = spec["path"].read_bytes()
            todo = {name: fig for name, fig in todo.items() if name not in pngs}
            if not todo:
                break
            _log.warning("kaleido did not draw %s: %s", ", ".join(todo), "; ".join(map(str, errors))[:300])
    return {name: pngs[name] for name in figures if name in pngs}


def summary_rows(views: Sequence[ModelView], t: Text) -> list[dict]:
    rows = []
    for v in views:
        last_test = v.test_acc[-1] if v.test_acc.size else float("nan")
        rows.append({
            t("table.model"): v.name,
            t("table.skip"): t("yes") if v.spec.skip else t("no"),
            t("table.depth"): v.spec.depth,
            t("table.params"): f"{v.params:,}" + (t("table.vs_full", pct=100 * v.params / v.full_params)
                                                  if v.full_params else ""),
            t("table.mflops"): f"{v.flops / 1e6:.1f}" + (t("table.vs_full", pct=100 * v.flops / v.full_flops)
                                                      if v.full_flops else ""),
            t("table.csp"): f"{v.spec.csp:g}" if v.spec.csp else "–",
            t("table.loss"): _fmt(v.final_train_loss(), 3),
            t("table.train_acc"): _pct(v.final_train_acc()),
            t("table.test_acc"): _pct(last_test),
            t("table.grad_ratio"): _sci(first_last_ratio(v.grad_norm)),
            t("table.speed"): _fmt(v.steps_per_second(), 1),
            t("table.status"): t("table.diverged", step=v.diverged_step) if v.diverged else t("table.ok"),
        })
    return rows


def _fmt(x: float, digits: int) -> str:
    return f"{x:.{digits}f}" if np.isfinite(x) else "–"


def _sci(ratios: np.ndarray) -> str:
    """The latest finite first/last gradient ratio, as 1.2e-07 (0 when it underflowed)."""
    finite = ratios[np.isfinite(ratios)] if ratios.size else ratios
    return f"{finite[-1]:.1e}" if finite.size else "–"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if np.isfinite(x) else "–"


# ---- matplotlib, for the CLI's PNG files ------------------------------------------------------------

def save_curves_png(views: Sequence[ModelView], path, t: Text, smoothing: float = 0.6) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    for i, v in enumerate(views):
        style = "-" if v.spec.skip else "--"
        ax_loss.plot(v.step, smooth(v.train_loss, smoothing), style, color=colour(i), label=v.name)
        if v.eval_step.size:
            ax_acc.plot(v.eval_step, v.test_acc, style + "o", color=colour(i), label=v.name)
    ax_loss.set(yscale="log", xlabel=t("chart.step"), ylabel=t("chart.train_loss"), title=t("chart.loss_title"))
    ax_acc.set(ylim=(0, 1.02), xlabel=t("chart.step"), ylabel=t("chart.test_accuracy"),
               title=t("chart.test_accuracy_title"))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_grad_norms_png(views: Sequence[ModelView], path, t: Text) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = grad_norm_range(views)
    fig, axes = plt.subplots(1, len(views), figsize=(3.2 * len(views) + 1, 4.5), constrained_layout=True,
                             squeeze=False)
    image = None
    for ax, v in zip(axes[0], views):
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.log10(np.where(v.grad_norm > 0, v.grad_norm, np.nan)).T
        image = ax.imshow(z, aspect="auto", origin="lower", vmin=lo, vmax=hi, cmap="viridis",
                          extent=(0.5, len(v.step) + 0.5, 0.5, len(v.layer_names) + 0.5), interpolation="nearest")
        ax.set(title=panel_name(v, t), xlabel=t("chart.step"))
    axes[0][0].set_ylabel(t("chart.layer"))
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), label=t("chart.grad_colour_log10"))
    fig.suptitle(t("chart.grad_title"))
    fig.savefig(path, dpi=110)
    plt.close(fig)
