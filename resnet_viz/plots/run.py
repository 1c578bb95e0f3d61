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
    from ..config import ModelSpec
    from ..training.engine import ModelView

Text = Callable[..., str]
_log = logging.getLogger(__name__)

# One colour per size of net (colours()): a plain net and its residual twin share theirs, dashed and solid,
# so a projected chart reads as pairs at a glance. No red next to green: a class has colour-blind students.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
# The experiments' sweep lines span every size: plain and residual in greys of their own.
PLAIN_GREY, RESIDUAL_GREY = "#8c8c8c", "#303030"


# 1-2-5 ticks: readable on a projector, where plotly's own log ticks crowd small digits between decades.
LOG_TICKS = [m * 10.0**e for e in range(-4, 2) for m in (1, 2, 5)]
FINE_TICKS = [m * 10.0**e for e in range(-4, 2) for m in (1, 1.5, 2, 3, 5, 7)]  # when 1-2-5 leave too few
CHANCE_LOSS = math.log(10)  # cross-entropy of a net that guesses among ten digits: ln 10 = 2.3
# What a plain net and its residual twin may differ in and still be "the same size".
_NOT_SIZE = frozenset({"skip", "name", "transfer", "shortcut", "alpha", "beta", "learn_alpha", "learn_beta",
                       "scale"})


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def size_key(spec: ModelSpec | None) -> tuple:
    """What decides a model's colour: its architecture without the skip paths (family, depth, width, batch
    norm, CSP, ...). None (a model known by name only) is a size of its own."""
    if spec is None:
        return (object(),)
    from dataclasses import fields
    return tuple((f.name, getattr(spec, f.name)) for f in fields(spec) if f.name not in _NOT_SIZE)


def colours(specs: Sequence[ModelSpec | None]) -> list[str]:
    """One colour per model, following its size: plain-34 and resnet-34A share one (dashed and solid). Two
    models of one size and one kind (res-56 and res-56 with β = 0.5) get different colours: the first
    plain pairs with the first residual, the second with the second, and so on."""
    seen: dict = {}
    slots: dict = {}
    out = []
    for spec in specs:
        size = size_key(spec)
        kind = (size, None if spec is None else bool(spec.skip))
        k = seen[kind] = seen.get(kind, -1) + 1
        out.append(colour(slots.setdefault((size, k), len(slots))))
    return out


def view_colours(views: Sequence[ModelView]) -> list[str]:
    return colours([v.spec for v in views])


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


def _figure(traces: list[dict], layout: dict, title: str, height: int = 360,
            title_width: int | None = None) -> go.Figure:
    """A figure from plain dicts, unvalidated: the app rebuilds these every second while a model trains in
    the next process, and plotly's validation cost ~10x the drawing (110 ms a refresh for three charts)."""
    # The finished run's mode bar (camera, zoom) stands upright at the right edge, in a margin of its own:
    # lying across the top, it covered the chart's title (on phones it shows without a hover).
    # A plotly title never wraps: a long one is broken into lines that fit a phone's 390 px.
    lines = wrap(title, title_width or TITLE_WIDTH)
    top = 50 + 20 * lines.count("<br>")
    # The legend starts 72 px under the plot, below the x axis's title whatever the chart's height (at a
    # share of the height, -0.22, it ran into the title of a short chart).
    legend = dict(orientation="h", y=-72 / max(100, height - top - 50), yanchor="top")
    base = dict(title=dict(text=lines, x=0.01, font=dict(size=16)), height=height,
                margin=dict(l=60, r=40, t=top, b=50), legend=legend,
                hovermode="x unified", template=_template(), font=dict(size=13), modebar=dict(orientation="v"))
    return go.Figure(data=traces, layout={**base, **layout}, _validate=False)


TITLE_WIDTH = 40  # characters of a 16 px title on one line of a phone's chart (a CJK character counts two)


def wrap(text: str, width: int = TITLE_WIDTH) -> str:
    """`text` in lines of at most `width` columns, joined by <br>, as even as they can be (a lone last word
    reads badly): broken at spaces, or before a CJK character (Chinese has no spaces); a <br> of its own
    stays."""
    if "<br>" in text:
        return "<br>".join(wrap(part, width) for part in text.split("<br>"))
    words = _words(text)
    lines = _lines(words, width)
    even = math.ceil(_width(text) / len(lines))
    while even < width and len(_lines(words, even)) > len(lines):
        even += 1
    return "<br>".join(_lines(words, min(even, width)))


def _lines(words: list[str], width: int) -> list[str]:
    lines, line = [], ""
    for word in words:
        if line.strip() and _width(line + word.rstrip()) > width and word.strip():
            lines.append(line.rstrip())
            line = word.lstrip()
        else:
            line += word
    return lines + [line.rstrip()]


def _width(text: str) -> int:
    return sum(2 if ord(ch) >= 0x2E80 else 1 for ch in text)


def _words(text: str) -> list[str]:
    """Pieces a line may break before: a space and what follows it up to the next space, or a CJK character
    (but not the punctuation that must not start a line)."""
    out: list[str] = []
    for ch in text:
        if not out or ch == " " or (ord(ch) >= 0x2E80 and ch not in NO_LINE_START):
            out.append(ch)
        else:
            out[-1] += ch
    return out


NO_LINE_START = "，。：；、）」』！？"


_TEMPLATE = None  # filled on first use: the validated plotly_white template, as a plain dict


def _template() -> dict:
    global _TEMPLATE
    if _TEMPLATE is None:
        import plotly.io as pio
        _TEMPLATE = pio.templates["plotly_white"].to_plotly_json()
    return _TEMPLATE


def _line(x, y, name: str, colour_: str, view: ModelView, width: float, **extra) -> dict:
    return dict(type="scatter", x=np.asarray(x), y=np.asarray(y, dtype=np.float32), name=name, mode="lines",
                line=dict(color=colour_, dash=dash(view), width=width), **extra)


def loss_figure(views: Sequence[ModelView], t: Text, log_y: bool = True, smoothing: float = 0.6) -> go.Figure:
    """Training loss, a line per model, and a dotted line at chance (a net that guesses: ln 10 = 2.3), so the
    class reads off at once which nets have learned anything."""
    cs = view_colours(views)
    traces = [_line(v.step, smooth(v.train_loss, smoothing), v.name, c, v, 2.5) for v, c in zip(views, cs)]
    yaxis = dict(title=dict(text=t("chart.train_loss")), type="log" if log_y else "linear")
    if log_y:
        lo, hi = loss_range([smooth(v.train_loss, smoothing) for v in views])
        ticks = log_ticks(lo, hi)
        yaxis.update(range=[lo, hi], tickvals=ticks, ticktext=[f"{v:g}" for v in ticks])
    chance = dict(type="line", xref="paper", x0=0, x1=1, y0=CHANCE_LOSS, y1=CHANCE_LOSS,
                  line=dict(color="#777", width=1.5, dash="dot"))
    label = dict(text=t("chart.chance", value=f"{CHANCE_LOSS:.1f}"), xref="paper", x=1, xanchor="right",
                 y=math.log10(CHANCE_LOSS) if log_y else CHANCE_LOSS, yanchor="bottom", showarrow=False,
                 font=dict(size=12, color="#555"), bgcolor="rgba(255,255,255,0.8)")
    return _figure(traces, dict(xaxis=dict(title=dict(text=t("chart.step")), rangemode="tozero"), yaxis=yaxis,
                                shapes=[chance], annotations=[label]), t("chart.loss_title"))


def loss_range(curves: Sequence[np.ndarray]) -> tuple[float, float]:
    """log10 limits of a loss axis: every finite positive value and the chance level, with a little room,
    at least a factor 3 apart, so the axis shows several ticks even while all losses sit near 2.3."""
    values = [c[np.isfinite(c) & (c > 0)] for c in curves]
    values = np.concatenate(values + [np.array([CHANCE_LOSS])])
    lo, hi = math.log10(values.min()) - 0.05, math.log10(values.max()) + 0.05
    if hi - lo < math.log10(3):
        mid = (hi + lo) / 2
        lo, hi = mid - math.log10(3) / 2, mid + math.log10(3) / 2
    return lo, hi


def log_ticks(lo: float, hi: float, least: int = 3) -> list[float]:
    """Tick values between 10**lo and 10**hi: 1-2-5 per decade, finer (1-1.5-2-3-5-7) when those give
    fewer than `least`, always with the chance level (2.3) among them."""
    for grid in (LOG_TICKS, FINE_TICKS):
        ticks = [v for v in grid if lo <= math.log10(v) <= hi]
        if len(ticks) >= least:
            break
    if lo <= math.log10(CHANCE_LOSS) <= hi:
        # a tick closer to 2.3 than a twelfth of the axis would print over it: the chance tick takes its place
        near = (hi - lo) / 12
        ticks = sorted([v for v in ticks if abs(math.log10(v / CHANCE_LOSS)) > near] + [round(CHANCE_LOSS, 1)])
    return ticks


def accuracy_figure(views: Sequence[ModelView], t: Text, smoothing: float = 0.6) -> go.Figure:
    traces = []
    for c, v in zip(view_colours(views), views):
        # One legend entry per model: the thin line is training accuracy, the dots test accuracy.
        traces.append(_line(v.step, smooth(v.train_acc, smoothing), v.name, c, v, 1.5, legendgroup=v.name,
                            opacity=0.55, hovertemplate=f"{t('chart.train')} %{{y:.1%}}<extra>{v.name}</extra>"))
        if v.eval_step.size:
            traces.append(_line(v.eval_step, v.test_acc, v.name, c, v, 2.5, legendgroup=v.name,
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
                  columns: int = 2) -> go.Figure:
    """One log10 heatmap per (name, steps, values[step, row]) panel, `columns` to a row (a phone's 390 px
    hold two panels with their titles and layer numbers apart; four in a row ran together), one shared
    colour scale. Long runs are thinned to `max_columns` steps to keep the once-a-second payload small."""
    n = max(1, len(panels))
    cols = min(n, columns)
    rows = math.ceil(n / cols)
    # The colour bar lies under the panels: standing at their right it took a phone's chart a third narrower.
    row_px, gap_px, top_px, bottom_px = (300 if rows == 1 else 230), 80, 80, 130
    height = top_px + bottom_px + rows * row_px + (rows - 1) * gap_px
    xgap = 0.2  # room for the next panel's layer numbers
    width = (1 - xgap * (cols - 1)) / cols
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
        row, col = divmod(i, cols)
        left = col * (width + xgap)
        top = 1 - (row * (row_px + gap_px)) / (height - top_px - bottom_px)
        bottom = top - row_px / (height - top_px - bottom_px)
        last_row = row == rows - 1 or i + cols >= n
        layout[f"xaxis{suffix}"] = dict(domain=[left, left + width], anchor=f"y{suffix}", nticks=4,
                                        title=dict(text=t("chart.step") if last_row else ""))
        layout[f"yaxis{suffix}"] = dict(anchor=f"x{suffix}", domain=[max(0.0, bottom), min(1.0, top)], nticks=6,
                                        title=dict(text=ylabel if col == 0 else ""))
        layout["annotations"].append(dict(text=wrap(name, 22), x=left + width / 2, y=min(1.0, top), xref="paper",
                                          yref="paper", xanchor="center", yanchor="bottom", showarrow=False,
                                          font=dict(size=14)))
    ticks = np.arange(math.ceil(lo), math.floor(hi) + 1)
    ticks = ticks[::max(1, math.ceil(len(ticks) / 7))]  # at most ~7 labels, however wide the range
    layout["coloraxis"] = dict(colorscale="Viridis", cmin=lo, cmax=hi, colorbar=dict(
        title=dict(text=colour_title, side="right"), tickvals=ticks.tolist(), ticktext=[f"1e{int(k)}" for k in ticks],
        orientation="h", thickness=12, len=0.8, x=0.45, xanchor="center",
        y=-75 / (height - top_px - bottom_px), yanchor="top"))
    fig = _figure(traces, layout, title, height=height)
    fig.layout.margin.t = top_px + 20 * wrap(title).count("<br>")
    fig.layout.margin.b = bottom_px
    return fig


def panel_name(v: ModelView, t: Text) -> str:
    """A model's name over its gradient rows, saying when all but the head are frozen (blank, not dark)."""
    return t("chart.frozen_panel", name=v.name, n=len(v.layer_names) - 1) if v.spec.frozen_backbone else v.name


def grad_heatmap_figure(views: Sequence[ModelView], t: Text, columns: int = 2) -> go.Figure:
    """Layer x step heatmap of gradient norms, one panel per model, `columns` panels to a row, one colour
    scale for all."""
    lo, hi = grad_norm_range(views)
    return _log_heatmaps([(panel_name(v, t), v.step, v.grad_norm) for v in views], t, t("chart.grad_title"),
                         t("chart.grad_colour"), t("chart.grad_hover"), t("chart.layer"), lo, hi, columns=columns)


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
    for c, v in zip(view_colours(views), views):
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
                                   line=dict(color=c, dash=style, width=1.5),
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
    traces = [_line(v.step, np.where(r == 0, floor, r), v.name, c, v, 2.5,
                    hovertemplate=t("chart.ratio_fl_hover") + f"<extra>{v.name}</extra>")
              for c, v, r in zip(view_colours(views), views, ratios)]
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


def summary_rows(views: Sequence[ModelView], t: Text, test_digits: int | None = None) -> list[dict]:
    """The Lab's summary table, a row per model. A column shows only where a model of the run gives it a
    meaning: CSP γ with a CSP net, the first/last gradient ratio with a net without batch norm (with it the
    ratio stays near 1 and says little), the status once a net diverged. `test_digits`: how many test digits
    the test accuracy was measured on, said in its header (the Errors page uses all of them)."""
    csp = any(v.spec.csp for v in views)
    no_bn = any(v.spec.batch_norm is False for v in views)
    diverged = any(v.diverged for v in views)
    test_acc = t("table.test_acc_n", n=test_digits) if test_digits else t("table.test_acc")
    rows = []
    for v in views:
        last_test = v.test_acc[-1] if v.test_acc.size else float("nan")
        row = {
            t("table.model"): v.name,
            t("table.skip"): t("yes") if v.spec.skip else t("no"),
            t("table.depth"): v.spec.depth,
            t("table.loss"): _fmt(v.final_train_loss(), 3),
            t("table.train_acc"): _pct(v.final_train_acc()),
            test_acc: _pct(last_test),
        }
        if diverged:
            row[t("table.status")] = t("table.diverged", step=v.diverged_step) if v.diverged else t("table.ok")
        if no_bn:
            row[t("table.grad_ratio")] = _sci(first_last_ratio(v.grad_norm))
        if csp:
            row[t("table.csp")] = f"{v.spec.csp:g}" if v.spec.csp else "–"
        row[t("table.params")] = f"{v.params:,}" + (t("table.vs_full", pct=100 * v.params / v.full_params)
                                                     if v.full_params else "")
        row[t("table.mflops")] = f"{v.flops / 1e6:.1f}" + (t("table.vs_full", pct=100 * v.flops / v.full_flops)
                                                           if v.full_flops else "")
        row[t("table.speed")] = _fmt(v.steps_per_second(), 1)
        rows.append(row)
    return rows


def summary_help(t: Text, test_digits: int | None = None) -> dict[str, str]:
    """Each summary column's header -> its tooltip: what the number means, in plain words."""
    keys = ("model", "skip", "params", "mflops", "loss", "train_acc", "speed", "csp", "grad_ratio")
    out = {t(f"table.{k}"): t(f"table.{k}_help") for k in keys}
    out[t("table.test_acc_n", n=test_digits) if test_digits else t("table.test_acc")] = t("table.test_acc_help")
    return out


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
    for c, v in zip(view_colours(views), views):
        style = "-" if v.spec.skip else "--"
        ax_loss.plot(v.step, smooth(v.train_loss, smoothing), style, color=c, label=v.name)
        if v.eval_step.size:
            ax_acc.plot(v.eval_step, v.test_acc, style + "o", color=c, label=v.name)
    ax_loss.axhline(CHANCE_LOSS, color="#777", linestyle=":", linewidth=1.2)
    ax_loss.annotate(t("chart.chance", value=f"{CHANCE_LOSS:.1f}"), (1, CHANCE_LOSS),
                     xycoords=("axes fraction", "data"), ha="right", va="bottom", color="#555", fontsize=9)
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
