"""A drawn or uploaded digit, made to look like an MNIST digit before any model sees it.

MNIST's digits were cropped to their ink, scaled so the longer side is 20 px (aspect kept), and pasted into
28x28 with their centre of mass at the centre. A model trained on that expects it: squashing a whole canvas
down to 28x28 gives thin, off-centre digits that it classifies badly. So we do the same steps, and keep each
one so the page can show them.
"""
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..i18n import LabError

BOX = 20  # MNIST: the longer side of the digit's box
SIZE = 28
INK = 0.2  # a pixel is ink when at least this bright (0..1) after the digit is made white-on-black
MIN_EXTENT = 0.1  # ink spanning less than this share of the image's longer side is a dot, not a digit
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class Prepared:
    """The steps, each a uint8 greyscale image, white ink on black; `digit` is what the models get."""

    raw: np.ndarray
    cropped: np.ndarray | None
    scaled: np.ndarray | None
    digit: np.ndarray | None  # (28, 28) uint8, None when blank
    blank: bool


def to_grey(image: np.ndarray) -> np.ndarray:
    """Any 2-D greyscale, RGB or RGBA array (uint8, other integers, bool or floats in 0..1) -> float 0..1."""
    a = np.asarray(image)
    if a.dtype == object or a.size == 0 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise LabError("error.image_shape", shape=tuple(a.shape))
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / (255.0 if a.max(initial=0) <= 255 else float(a.max()))
    elif np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        if a.max(initial=0) > 1.0:  # floats on a 0..255 scale
            a = a / 255.0
    else:
        raise LabError("error.image_shape", shape=tuple(a.shape))
    a = np.clip(a, 0.0, 1.0)
    if a.ndim == 2:
        return a
    if a.shape[2] == 1:
        return a[:, :, 0]
    grey = a[:, :, :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    if a.shape[2] == 3 or a[:, :, 3].min() > 0.99:
        return grey
    # Transparent background: the ink is what is opaque, dark or light. Make it light on black.
    alpha = a[:, :, 3]
    opaque = alpha > 0.5
    dark_ink = opaque.any() and float(grey[opaque].mean()) < 0.5
    return alpha * (1.0 - grey if dark_ink else grey)


def white_on_black(grey: np.ndarray) -> np.ndarray:
    """Light ink on a black background, the background at 0. Photos and scans are dark ink on light paper:
    flip them when the border is mostly bright; grey paper is then lifted off the ink."""
    border = np.concatenate((grey[0], grey[-1], grey[:, 0], grey[:, -1]))
    if np.median(border) > 0.5:
        grey, border = 1.0 - grey, 1.0 - border
    background = float(np.median(border))
    if background <= 0.0 or background >= 1.0:
        return grey
    return np.clip((grey - background) / (1.0 - background), 0.0, 1.0)


def _u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


def prepare(image: np.ndarray) -> Prepared:
    """Crop to the ink, scale the longer side to 20 px, centre the centre of mass in 28x28. Nothing to crop,
    or ink too small to be a digit (a dot, a speck), gives blank=True."""
    grey = white_on_black(to_grey(image))
    rows, cols = np.nonzero(grey >= INK)
    if rows.size == 0 or max(np.ptp(rows), np.ptp(cols)) + 1 < MIN_EXTENT * max(grey.shape):
        return Prepared(_u8(grey), None, None, None, blank=True)
    cropped = grey[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = cropped.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL wants (width, height)
    # BILINEAR averages over the whole footprint when shrinking (antialiased), like MNIST's own scaling
    scaled = np.asarray(Image.fromarray(cropped.astype(np.float32)).resize(size, Image.Resampling.BILINEAR))
    scaled = np.clip(scaled, 0.0, 1.0)
    scaled = scaled / scaled.max()  # strokes as bright as MNIST's
    digit = _centre_of_mass_paste(scaled)
    return Prepared(_u8(grey), _u8(cropped), _u8(scaled), _u8(digit), blank=False)


def _centre_of_mass_paste(scaled: np.ndarray) -> np.ndarray:
    """Paste into 28x28 with the centre of mass at (14, 14), where MNIST has it (clipped to stay inside)."""
    h, w = scaled.shape
    total = scaled.sum()
    cy = (scaled.sum(1) * np.arange(h)).sum() / total
    cx = (scaled.sum(0) * np.arange(w)).sum() / total
    top = int(np.clip(round(SIZE / 2 - cy), 0, SIZE - h))
    left = int(np.clip(round(SIZE / 2 - cx), 0, SIZE - w))
    out = np.zeros((SIZE, SIZE), np.float32)
    out[top:top + h, left:left + w] = scaled
    return out


def read_upload(data: bytes) -> np.ndarray:
    """PNG/JPG bytes -> RGBA uint8 array; a clear LabError for what is too big or not an image."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise LabError("error.upload_size", mb=MAX_UPLOAD_BYTES // (1024 * 1024))
    try:
        img = Image.open(io.BytesIO(data))  # lazy: reads the header only
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise LabError("error.upload_image") from exc
    if img.width * img.height > MAX_PIXELS:
        raise LabError("error.upload_pixels", width=img.width, height=img.height)
    try:
        img.thumbnail((1024, 1024))  # plenty for a digit, and keeps the steps quick
        return np.asarray(img.convert("RGBA"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:  # a truncated or broken file
        raise LabError("error.upload_image") from exc
