"""Frame -> network input from the spec alone."""

from __future__ import annotations

import numpy as np
import pytest

from usfm_edge.errors import InputError
from usfm_edge.contracts.prepare import preprocess_frame
from usfm_edge.contracts import Intensity, Preprocess, Resize


def test_gray_uint8_to_normalized_tensor():
    spec = Preprocess(channels=1, input_size=(32, 48), mean=(0.5,), std=(0.25,))
    frame = np.full((60, 90), 255, np.uint8)
    x = preprocess_frame(frame, spec)
    assert x.shape == (1, 1, 32, 48) and x.dtype == np.float32
    np.testing.assert_allclose(x, (1.0 - 0.5) / 0.25, rtol=1e-6)


def test_gray_into_rgb_model_and_rgb_into_gray_model():
    rgb_spec = Preprocess.for_channels(3, (16, 16))
    x = preprocess_frame(np.full((20, 20), 128, np.uint8), rgb_spec)
    assert x.shape == (1, 3, 16, 16)
    gray_spec = Preprocess.for_channels(1, (16, 16))
    red = np.zeros((20, 20, 3), np.uint8)
    red[..., 0] = 255
    y = preprocess_frame(red, gray_spec)
    np.testing.assert_allclose(y, (0.299 - gray_spec.mean[0]) / gray_spec.std[0], rtol=1e-5)


def test_uint16_and_minmax():
    spec = Preprocess(channels=1, input_size=(8, 8), mean=(0.0,), std=(1.0,))
    x = preprocess_frame(np.full((8, 8), 65535, np.uint16), spec)
    np.testing.assert_allclose(x, 1.0)
    ramp = np.linspace(100, 200, 64, dtype=np.float32).reshape(8, 8)
    y = preprocess_frame(ramp, Preprocess(channels=1, input_size=(8, 8), mean=(0.0,), std=(1.0,),
                                          intensity=Intensity.MINMAX))
    assert y.min() == 0.0 and y.max() == 1.0


def test_letterbox_keeps_aspect_with_black_bars():
    spec = Preprocess(channels=1, input_size=(32, 32), mean=(0.0,), std=(1.0,), resize=Resize.LETTERBOX)
    x = preprocess_frame(np.full((20, 40), 255, np.uint8), spec)[0, 0]
    assert x[0].max() == 0.0 and x[-1].max() == 0.0  # bars top and bottom
    assert x[16].min() == pytest.approx(1.0)  # image in the middle, full width


@pytest.mark.parametrize("frame, message", [
    (np.zeros((4, 4, 4, 4)), "not an image"),
    (np.zeros((0, 5)), "not an image"),
    (np.full((4, 4), np.nan, np.float32), "NaN"),
    (np.zeros((4, 4, 2), np.uint8), "2 channels"),
    (np.zeros((4, 4), np.int64), "dtype int64"),
])
def test_bad_frames_raise_input_error(frame, message):
    with pytest.raises(InputError, match=message):
        preprocess_frame(frame, Preprocess())


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(90, 120), (90, 120, 3)])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mode", [Resize.STRETCH, Resize.LETTERBOX])
def test_integer_frames_scale_last_and_match_the_float_path(dtype, shape, channels, mode):
    """Integer frames are converted and resized before the scaling to [0, 1] (all linear, so
    the order only moves float rounding); the result is that of the float frame."""
    frame = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    spec = Preprocess.for_channels(channels, (32, 48), resize=mode)
    as_float = frame.astype(np.float64) / np.iinfo(dtype).max
    np.testing.assert_allclose(preprocess_frame(frame, spec), preprocess_frame(as_float.astype(np.float32), spec),
                               atol=1e-5)
