"""Pure functions from recorded numbers (engine snapshots) to figures: plotly for the app, matplotlib for the
PNG files the CLI writes. No Streamlit, no torch. Every text on a figure comes through `t(key)`, so charts
follow the language switch.
"""
import math
from typing import Callable, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .engine import ModelView

Text = Callable[..., str]

# One fixed colour per position: plain models dashed, residual solid, so a projected chart reads at a glance.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


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


def _layout(fig: go.Figure, title: str, height: int = 360) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=16)), height=height,
                      margin=dict(l=60, r=20, t=50, b=50), legend=dict(orientation="h", y=-0.2),
                      hovermode="x unified", template="plotly_white", font=dict(size=13))
    return fig


def loss_figure(views: Sequence[ModelView], t: Text, log_y: bool = True, smoothing: float = 0.6) -> go.Figure:
    fig = go.Figure()
    for i, v in enumerate(views):
        fig.add_scatter(x=v.step, y=smooth(v.train_loss, smoothing), name=v.name, mode="lines",
                        line=dict(color=colour(i), dash=dash(v), width=2.5))
    fig.update_xaxes(title_text=t("chart.step"), rangemode="tozero")
    fig.update_yaxes(title_text=t("chart.train_loss"), type="log" if log_y else "linear")
    return _layout(fig, t("chart.loss_title"))


def accuracy_figure(views: Sequence[ModelView], t: Text, smoothing: float = 0.6) -> go.Figure:
    fig = go.Figure()
    for i, v in enumerate(views):
        fig.add_scatter(x=v.step, y=smooth(v.train_acc, smoothing), name=f"{v.name} · {t('chart.train')}",
                        mode="lines", line=dict(color=colour(i), dash=dash(v), width=1.5), opacity=0.55)
        if v.eval_step.size:
            fig.add_scatter(x=v.eval_step, y=v.test_acc, name=f"{v.name} · {t('chart.test')}",
                            mode="lines+markers", line=dict(color=colour(i), dash=dash(v), width=2.5),
                            marker=dict(size=8))
    fig.update_xaxes(title_text=t("chart.step"), rangemode="tozero")
    fig.update_yaxes(title_text=t("chart.accuracy"), range=[0, 1.02], tickformat=".0%")
    return _layout(fig, t("chart.accuracy_title"))


def grad_norm_range(views: Sequence[ModelView]) -> tuple[float, float]:
    """log10 limits shared by every model's heatmap, so equal colours mean equal gradient norms."""
    finite = [v.grad_norm[np.isfinite(v.grad_norm) & (v.grad_norm > 0)] for v in views]
    finite = [f for f in finite if f.size]
    if not finite:
        return -4.0, 0.0
    values = np.concatenate(finite)
    lo, hi = np.percentile(np.log10(values), [1, 99.5])
    return float(math.floor(lo * 2) / 2), float(math.ceil(hi * 2) / 2 if hi > lo else lo + 1)


def grad_heatmap_figure(views: Sequence[ModelView], t: Text, max_columns: int = 300) -> go.Figure:
    """Layer x step heatmap of log10 gradient norm, one panel per model, one colour scale for all."""
    lo, hi = grad_norm_range(views)
    fig = make_subplots(rows=1, cols=max(1, len(views)), subplot_titles=[v.name for v in views],
                        horizontal_spacing=0.04)
    for i, v in enumerate(views, 1):
        g = v.grad_norm
        steps = v.step
        if len(steps) > max_columns:  # keep the browser payload small on long runs
            keep = np.linspace(0, len(steps) - 1, max_columns).round().astype(int)
            g, steps = g[keep], steps[keep]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.log10(np.where(g > 0, g, np.nan)).T
        fig.add_heatmap(z=z, x=steps, y=np.arange(1, len(v.layer_names) + 1), coloraxis="coloraxis",
                        customdata=np.array(v.layer_names)[:, None].repeat(len(steps), 1),
                        hovertemplate=t("chart.grad_hover"), row=1, col=i)
        fig.update_xaxes(title_text=t("chart.step"), row=1, col=i)
    fig.update_yaxes(title_text=t("chart.layer"), row=1, col=1)
    ticks = np.arange(math.ceil(lo), math.floor(hi) + 1)
    fig.update_layout(coloraxis=dict(
        colorscale="Viridis", cmin=lo, cmax=hi,
        colorbar=dict(title=dict(text=t("chart.grad_colour"), side="right"), tickvals=ticks,
                      ticktext=[f"1e{int(k)}" for k in ticks])))
    fig = _layout(fig, t("chart.grad_title"), height=380)
    fig.update_layout(hovermode="closest")
    return fig


def summary_rows(views: Sequence[ModelView], t: Text) -> list[dict]:
    rows = []
    for v in views:
        last_test = v.test_acc[-1] if v.test_acc.size else float("nan")
        rows.append({
            t("table.model"): v.name,
            t("table.skip"): t("yes") if v.spec.skip else t("no"),
            t("table.depth"): v.spec.depth,
            t("table.params"): f"{v.params:,}",
            t("table.mflops"): round(v.flops / 1e6, 1),
            t("table.loss"): _fmt(v.final_train_loss(), 3),
            t("table.train_acc"): _pct(v.final_train_acc()),
            t("table.test_acc"): _pct(last_test),
            t("table.speed"): _fmt(v.steps_per_second(), 1),
            t("table.status"): t("table.diverged", step=v.diverged_step) if v.diverged else t("table.ok"),
        })
    return rows


def _fmt(x: float, digits: int) -> str:
    return f"{x:.{digits}f}" if np.isfinite(x) else "–"


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
               title=t("chart.accuracy_title"))
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
        ax.set(title=v.name, xlabel=t("chart.step"))
    axes[0][0].set_ylabel(t("chart.layer"))
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), label=t("chart.grad_colour_log10"))
    fig.suptitle(t("chart.grad_title"))
    fig.savefig(path, dpi=110)
    plt.close(fig)
