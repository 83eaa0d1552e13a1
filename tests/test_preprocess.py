"""The one preprocessing function: crop/resize rule, colour order, image reading."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeshop.errors import ImageInputError
from edgeshop.runtime.preprocess import crop_box, preprocess, read_image
from edgeshop.tflite.modelcard import InputSpec


def test_center_crop_takes_the_middle_square_of_a_wide_frame():
    assert crop_box(480, 640, InputSpec(224, 224)) == (80, 0, 480, 480)
    assert crop_box(480, 640, InputSpec(224, 224, crop_fraction=0.5)) == (200, 120, 240, 240)
    assert crop_box(480, 640, InputSpec(224, 224, resize="stretch")) == (0, 0, 640, 480)


def test_colour_order_and_exact_resize():
    frame = np.zeros((10, 10, 3), np.uint8)
    frame[..., 0] = 255  # pure blue in BGR
    rgb = preprocess(frame, InputSpec(10, 10))
    assert rgb.shape == (10, 10, 3) and rgb[0, 0].tolist() == [0, 0, 255]
    bgr = preprocess(frame, InputSpec(10, 10, color_order="BGR"))
    assert bgr[0, 0].tolist() == [255, 0, 0]


@given(h=st.integers(1, 300), w=st.integers(1, 300), th=st.integers(1, 64), tw=st.integers(1, 64),
       channels=st.sampled_from([None, 1, 3, 4]), stretch=st.booleans(),
       interpolation=st.sampled_from(["area", "linear"]))
def test_any_frame_becomes_the_model_input_shape(h, w, th, tw, channels, stretch, interpolation):
    shape = (h, w) if channels is None else (h, w, channels)
    frame = np.random.default_rng(h * w).integers(0, 256, shape, dtype=np.uint8)
    spec = InputSpec(th, tw, resize="stretch" if stretch else "center_crop", interpolation=interpolation)
    out = preprocess(frame, spec)
    assert out.shape == (th, tw, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("size", [(640, 480), (1920, 1080), (301, 257)])
def test_linear_rule_stays_close_to_the_exact_box_filter(size):
    # A photo-like frame (smooth shapes and a fine stripe pattern that aliases if sampled).
    frame = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (*size[::-1], 3), dtype=np.uint8), (0, 0), 3)
    frame[::2, :, 1] = 255
    area = preprocess(frame, InputSpec(224, 224, interpolation="area")).astype(int)
    linear = preprocess(frame, InputSpec(224, 224, interpolation="linear")).astype(int)
    assert np.abs(area - linear).mean() < 5  # plain bilinear is 9-12 away here: it aliases the stripes


def test_unknown_interpolation_is_refused():
    from edgeshop.errors import ModelCardError

    with pytest.raises(ModelCardError, match="interpolation"):
        InputSpec(10, 10, interpolation="cubic")


def test_read_image_handles_gray_alpha_16bit_and_unicode(tmp_path):
    base = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    cases = {
        "gray.png": cv2.cvtColor(base, cv2.COLOR_BGR2GRAY),
        "alpha.png": cv2.cvtColor(base, cv2.COLOR_BGR2BGRA),
        "deep.png": base.astype(np.uint16) * 257,
        "étiquette é.jpg": base,
    }
    values = {}
    for name, image in cases.items():
        path = tmp_path / name
        ok, encoded = cv2.imencode(path.suffix, image)
        assert ok
        path.write_bytes(encoded.tobytes())
        out = read_image(path)
        assert out.shape == (20, 30, 3) and out.dtype == np.uint8, name
        values[name] = out.astype(int)
    gray = cv2.cvtColor(base, cv2.COLOR_BGR2GRAY).astype(int)
    assert all((values["gray.png"][..., c] == gray).all() for c in range(3))
    assert (values["alpha.png"] == base).all()
    # 16-bit v * 257 is 8-bit v exactly (the top byte): not clipped to 255, not scaled by 1/257 twice
    assert (values["deep.png"] == base).all()
    jpeg = cv2.imdecode(cv2.imencode(".jpg", base)[1], cv2.IMREAD_COLOR)  # lossy: compare with the same decode
    assert (values["étiquette é.jpg"] == jpeg).all()


def test_sixteen_bit_values_map_onto_the_full_eight_bit_range(tmp_path):
    ramp = np.linspace(0, 65535, 256 * 3, dtype=np.uint16).reshape(16, 16, 3)
    path = tmp_path / "ramp16.png"
    assert cv2.imwrite(str(path), ramp)
    out = read_image(path).astype(int)
    assert out.min() == 0 and out.max() == 255
    assert np.abs(out - ramp.astype(int) / 257).max() <= 1  # proportional: 16-bit x maps to x / 257


def test_read_image_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    for path, message in ((empty, "empty"), (text, "not a readable image"), (tmp_path / "gone.jpg", "cannot read")):
        with pytest.raises(ImageInputError, match=message) as info:
            read_image(path)
        assert path.name in str(info.value)


def test_huge_jpeg_is_decoded_at_reduced_scale(tmp_path):
    big = np.full((6000, 5000, 3), 128, np.uint8)
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), big)
    out = read_image(path)
    assert out.shape[0] * out.shape[1] <= 4096 * 4096
    assert out.shape[0] == 3000  # 30 Mpx > 16.7 Mpx budget: halved
