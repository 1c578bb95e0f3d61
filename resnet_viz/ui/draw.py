"""The Draw page: draw a digit (or pick a test digit, or upload a photo), see it prepared like MNIST, what
every model of the session predicts, and what each block of a plain and a residual net made of it."""
import numpy as np
import streamlit as st

from ..analysis.features import block_maps, mosaic, upscale
from ..analysis.inference import probabilities
from ..data.arrays import digits
from ..data.datasets import info
from ..data.preprocess import MAX_UPLOAD_BYTES, prepare, read_upload
from ..i18n import LabError
from ..plots import inside as inside_plots
from ..plots import run as plots
from .nav import models_note
from .session import live_interval, models_job, rerun_when_finished
from .text import lang, t

CANVAS = 280  # px; the stroke is ~2 px after scaling to MNIST's 20 px box, like MNIST's pens
STROKE = 20
SOURCES = ("draw", "test", "upload")


def _pixels(image: np.ndarray, size: int = 84) -> np.ndarray:
    return upscale(image, max(1, size // max(image.shape)))


PAD = 70  # grey around a thumbnail's picture: the crop's edges stay visible against the digit's black


def _square(image: np.ndarray) -> np.ndarray:
    """The picture centred on a grey square, its aspect kept: the page shows every thumbnail as a square,
    and a wide crop would be stretched into one."""
    h, w = image.shape
    side = max(h, w)
    out = np.full((side, side), PAD, np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    out[top:top + h, left:left + w] = image
    return out


def choose_input(dataset: str) -> np.ndarray | None:
    """The raw image from the chosen source, or None (with a message) when there is none yet."""
    source = st.segmented_control(t("draw.source"), SOURCES, default="draw", key="draw_source",
                                  format_func=lambda s: t(f"draw.source.{s}"))
    if source == "test":
        try:
            test = digits(dataset)
        except LabError as e:  # a reopened run trained on a dataset this server does not have
            st.error(e.text(lang()))
            return None
        c1, c2 = st.columns([2, 1])
        index = c1.number_input(t("draw.test_index"), 0, len(test.test_labels) - 1, key="draw_test_index")
        if c2.button(t("draw.random"), icon=":material/casino:", width="stretch"):
            st.session_state["draw_test_index"] = int(np.random.default_rng().integers(len(test.test_labels)))
            st.rerun()
        st.caption(t("draw.test_label", label=test.class_names(lang())[int(test.test_labels[index])]))
        return test.test_images[int(index)]
    if source == "upload":
        file = st.file_uploader(t("draw.upload"), type=["png", "jpg", "jpeg"], key="draw_upload",
                                help=t("draw.upload_help", mb=MAX_UPLOAD_BYTES // 2**20),
                                max_upload_size=MAX_UPLOAD_BYTES // 2**20)  # the browser refuses a bigger one
        if file is None:
            return None
        try:
            return read_upload(file.getvalue())
        except LabError as e:
            st.error(e.text(lang()))
            return None
    from streamlit_drawable_canvas import (
        st_canvas,  # here: it registers itself with a running Streamlit
    )

    st.space("small")  # the canvas's toolbar floats above it
    result = st_canvas(stroke_width=STROKE, stroke_color="#FFFFFF", background_color="#000000", height=CANVAS,
                       width=CANVAS, drawing_mode="freedraw", return_image_data=True,
                       key=f"canvas_{st.session_state.get('canvas_version', 0)}")
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    if c1.button(t("draw.clear"), icon=":material/ink_eraser:"):
        st.session_state["canvas_version"] = st.session_state.get("canvas_version", 0) + 1
        st.rerun()
    c2.caption(t("draw.canvas_help"))
    return None if result is None else result.image_data


def show_steps(prepared) -> None:
    steps = [("draw.step_raw", prepared.raw), ("draw.step_cropped", prepared.cropped),
             ("draw.step_scaled", prepared.scaled), ("draw.step_centred", prepared.digit)]
    shown = [(key, img) for key, img in steps if img is not None]
    for col, (key, img) in zip(st.columns(4), shown):
        small = img if max(img.shape) <= 84 else img[::max(1, max(img.shape) // 84), ::max(1, max(img.shape) // 84)]
        col.image(_pixels(_square(small)), caption=t(key), width=84)


def predictions() -> None:
    """Every model's class probabilities for the prepared digit, with the weights of this very moment."""
    job, _ = models_job()
    digit = st.session_state.get("_draw_digit")
    if digit is None:
        return
    job.touch()
    snap = job.snapshot()
    data = info(job.dataset)
    probs = probabilities(job.nets, digit, stats=data.stats)
    names = [v.name for v in snap.models]
    colours = plots.colours([v.spec for v in snap.models])
    st.plotly_chart(inside_plots.probability_figure(names, probs, t, data.class_names(lang()), colours),
                    key="prob_chart", config={"displaylogo": False, "staticPlot": True})
    key = "draw.weights_replay" if snap.replay else "draw.weights_at"
    st.caption(t(key, step=snap.weights_at, steps=snap.steps) if snap.weights_at else t("draw.untrained"))
    rerun_when_finished(job, "_draw_busy")


def default_pair(specs) -> tuple[int, int]:
    """A plain and a residual net of the same depth, the deepest such pair; else the first two models."""
    pairs = [(a, b) for a, sa in enumerate(specs) for b, sb in enumerate(specs)
             if not sa.skip and sb.skip and (sa.family, sa.depth) == (sb.family, sb.depth)]
    if pairs:
        return max(pairs, key=lambda p: specs[p[0]].depth)
    return 0, min(1, len(specs) - 1)


def feature_maps(job, digit: np.ndarray) -> None:
    st.subheader(t("draw.maps_title"))
    st.caption(t("draw.maps_help"))
    specs = list(job.models)
    names = [s.name for s in specs]
    a, b = default_pair(specs)
    c1, c2, c3 = st.columns([1, 1, 1])
    left = c1.selectbox(t("draw.model_left"), range(len(specs)), index=a, format_func=names.__getitem__,
                        key="maps_left")
    right = c2.selectbox(t("draw.model_right"), range(len(specs)), index=b, format_func=names.__getitem__,
                         key="maps_right")
    shared = c3.radio(t("draw.scale"), ("layer", "shared"), format_func=lambda k: t(f"draw.scale.{k}"),
                      horizontal=True, key="maps_scale") == "shared"
    chosen = [left, right] if left != right else [left]
    stats = info(job.dataset).stats
    maps = {i: block_maps(job.nets[i], digit, stats=stats) for i in chosen}
    n_blocks = max(len(m) for m in maps.values())
    block = st.slider(t("draw.block"), 1, n_blocks, min(n_blocks, st.session_state.get("maps_block", 1)),
                      key="maps_block", help=t("draw.block_help")) if n_blocks > 1 else 1
    panels = {}
    for i in chosen:
        if block > len(maps[i]):
            st.info(t("draw.no_block", name=names[i], block=block, blocks=len(maps[i])))
            continue
        bm = maps[i][block - 1]
        if bm.residual is not None:
            parts = [("draw.panel_residual", bm.residual), ("draw.panel_identity", bm.identity),
                     ("draw.panel_sum", bm.output)]
        else:
            parts = [("draw.panel_plain", bm.output)]
        panels[i] = [(t(key), values) for key, values in parts]
    if not panels:
        return
    if shared:  # one scale for every block of both models: see the signal grow or fade with depth
        limit = max(float(np.abs(p).max()) for m in maps.values() for bm in m
                    for p in (bm.output, bm.residual, bm.identity) if p is not None)
    else:  # one scale for this layer, the same for both models
        limit = max(float(np.abs(p).max()) for parts in panels.values() for _, p in parts)
    first = next(iter(panels))
    st.markdown(t("draw.maps_block", block=maps[first][block - 1].name, channels=panels[first][0][1].shape[0]))
    # One figure per mosaic, in a row on a screen, one under the other on a phone, where four mosaics in
    # one figure left no room for their captions. One colour scale for all, its bar under the last.
    shown = [(i, label, values) for i, parts in panels.items() for label, values in parts]
    for k, (col, (i, label, values)) in enumerate(zip(st.columns(len(shown), gap="small"), shown)):
        fig = inside_plots.maps_figure([("", mosaic(values))], limit, t, f"<b>{names[i]}</b><br>{label}", width=260,
                                       colour_bar=k == len(shown) - 1)
        col.plotly_chart(fig, key="maps_chart" if k == 0 else f"maps_chart_{k + 1}", config={"displaylogo": False})
    entries = []
    for i, spec in enumerate(specs):
        m = maps[i] if i in maps else block_maps(job.nets[i], digit, stats=stats)
        entries.append((names[i], spec.skip, np.array([x.mean for x in m]), np.array([x.std for x in m])))
    colours = plots.colours(specs)
    for col, key in zip(st.columns(2), ("mean", "std")):
        col.plotly_chart(inside_plots.activation_figure(entries, t, key, colours),
                         key="act_chart" if key == "mean" else "act_chart_std",
                         config={"displaylogo": False})
    st.caption(t("draw.act_help"))


def page() -> None:
    st.title(t("draw.title"))
    job, reference = models_job()
    models_note(job, reference)
    left, right = st.columns([1, 1.25], gap="large")
    with left:
        image = choose_input(job.dataset)
        prepared = None
        if image is not None:
            try:
                prepared = prepare(image)
            except LabError as e:
                st.error(e.text(lang()))
        digit = None if prepared is None or prepared.blank else prepared.digit
        st.session_state["_draw_digit"] = digit
        if prepared is not None and not prepared.blank:
            show_steps(prepared)
    with right:
        if digit is None:
            st.info(t("draw.blank"))
        else:
            st.fragment(predictions, run_every=live_interval(job))()
    if digit is not None:
        st.divider()
        feature_maps(job, digit)
