"""Drawn and uploaded digits are prepared like MNIST: cropped, scaled to 20 px, centred by mass in 28x28."""
import io

import numpy as np
import pytest
from PIL import Image

from resnet_viz.data.arrays import bundled_mnist
from resnet_viz.data.preprocess import (
    BOX,
    MAX_UPLOAD_BYTES,
    SIZE,
    prepare,
    read_upload,
)
from resnet_viz.i18n import LabError


def canvas(size=280) -> np.ndarray:
    """A black canvas as streamlit-drawable-canvas returns it: RGBA uint8, opaque."""
    a = np.zeros((size, size, 4), np.uint8)
    a[..., 3] = 255
    return a


def ink(a, rows, cols):
    a[rows, cols, :3] = 255
    return a


def centre_of_mass(img):
    img = img.astype(float)
    idx = np.arange(img.shape[0])
    return (img.sum(1) * idx).sum() / img.sum(), (img.sum(0) * idx).sum() / img.sum()


def test_an_off_centre_digit_is_centred_by_its_mass():
    a = ink(canvas(), slice(10, 120), slice(200, 240))  # a bar in the top-right corner
    p = prepare(a)
    assert not p.blank and p.digit.shape == (SIZE, SIZE) and p.digit.dtype == np.uint8
    cy, cx = centre_of_mass(p.digit)
    assert abs(cy - 14) <= 0.6 and abs(cx - 14) <= 0.6


def test_aspect_is_kept_and_the_longer_side_is_20_px():
    p = prepare(ink(canvas(), slice(50, 250), slice(100, 150)))  # 200 tall, 50 wide
    assert p.scaled.shape == (BOX, 5)
    assert p.cropped.shape == (200, 50)
    wide = prepare(ink(canvas(), slice(100, 140), slice(20, 260)))  # 40 tall, 240 wide
    assert wide.scaled.shape == (round(40 * BOX / 240), BOX)


def test_blank_canvas_says_blank():
    p = prepare(canvas())
    assert p.blank and p.digit is None and p.raw.shape == (280, 280)


def test_a_single_dot_is_not_a_digit():
    p = prepare(ink(canvas(), slice(138, 148), slice(138, 148)))
    assert p.blank


def test_all_ink_is_not_a_digit():
    a = canvas()
    a[..., :3] = 255
    assert prepare(a).blank


def test_a_thin_line_is_scaled_not_lost():
    p = prepare(ink(canvas(), slice(140, 142), slice(40, 240)))
    assert not p.blank
    assert p.scaled.shape[1] == BOX and p.scaled.shape[0] <= 2
    assert p.digit.max() == 255


def test_large_rgba_image():
    a = ink(canvas(3000), slice(500, 2500), slice(1200, 1800))
    p = prepare(a)
    assert p.digit.shape == (SIZE, SIZE) and p.scaled.shape == (BOX, 6)


@pytest.mark.parametrize("convert", [
    lambda a: a.astype(np.float64) / 255.0,  # floats 0..1
    lambda a: a.astype(np.float32),  # floats on a 0..255 scale
    lambda a: a > 127,  # bool
    lambda a: a.astype(np.int32) * 4,  # integers beyond 255
    lambda a: a.astype(np.uint16),
    lambda a: np.dstack([a, a, a]),  # RGB
    lambda a: a[:, :, None],  # one channel
])
def test_other_dtypes_and_layouts_give_the_same_digit(convert):
    grey = np.zeros((140, 140), np.uint8)
    grey[20:120, 60:80] = 255
    grey[20:40, 40:100] = 255
    expected = prepare(grey).digit
    got = prepare(convert(grey)).digit
    assert np.abs(got.astype(int) - expected).max() <= 2


@pytest.mark.parametrize("bad", [np.zeros(10), np.zeros((4, 4, 5)), np.zeros((0, 0)), np.zeros((2, 2, 2, 2)),
                                 np.array([["a", "b"]], dtype=object), np.zeros((5, 5), complex)])
def test_unexpected_shapes_and_dtypes_get_a_clear_error(bad):
    with pytest.raises(LabError) as e:
        prepare(bad)
    assert e.value.key == "error.image_shape"


def test_nan_and_inf_do_not_break_it():
    a = np.zeros((100, 100), np.float32)
    a[10:90, 45:55] = 1.0
    a[0, 0], a[0, 1] = np.nan, np.inf
    assert not prepare(a).blank


def test_dark_ink_on_light_paper_is_flipped():
    paper = np.full((200, 200), 230, np.uint8)  # grey-white paper
    paper[30:170, 90:110] = 20
    p = prepare(paper)
    assert not p.blank
    assert p.digit[14, 14] > 200 and p.digit[0, 0] == 0


def test_transparent_png_with_black_ink():
    a = np.zeros((200, 200, 4), np.uint8)  # transparent
    a[30:170, 90:110] = (0, 0, 0, 255)  # opaque black ink
    p = prepare(a)
    assert not p.blank and p.digit[14, 14] > 200


def test_mnist_digits_come_back_almost_unchanged():
    """They were made this way: the pipeline must reproduce them (mean difference under 1 grey level)."""
    images = bundled_mnist().test_images[:200]
    diff = np.mean([np.abs(prepare(x).digit.astype(int) - x).mean() for x in images])
    assert diff < 1.0


def png_bytes(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_reads_png_and_jpeg():
    grey = np.full((120, 80), 255, np.uint8)
    grey[10:110, 30:50] = 0
    rgba = read_upload(png_bytes(grey))
    assert rgba.shape == (120, 80, 4)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="JPEG")
    assert not prepare(read_upload(buf.getvalue())).blank


def test_upload_rejects_non_images_and_truncated_files():
    for data in (b"hello, not an image", b"", png_bytes(np.zeros((50, 50), np.uint8))[:60]):
        with pytest.raises(LabError) as e:
            read_upload(data)
        assert e.value.key == "error.upload_image"


def test_upload_rejects_oversized_files_and_pixel_bombs():
    with pytest.raises(LabError) as e:
        read_upload(b"\0" * (MAX_UPLOAD_BYTES + 1))
    assert e.value.key == "error.upload_size"
    huge = Image.new("L", (5000, 5000))  # compresses to a few kB, decodes to 25 megapixels
    buf = io.BytesIO()
    huge.save(buf, format="PNG")
    with pytest.raises(LabError) as e:
        read_upload(buf.getvalue())
    assert e.value.key == "error.upload_pixels"
