"""Frame -> network input, driven only by a ``Preprocess`` spec (numpy + OpenCV, no torch).

Training, calibration and the runtime all call this one function, so a model sees the same
pixels in every stage. Cropping to the scan region happens before (it needs the detector).
"""

from __future__ import annotations

import cv2
import numpy as np

from usfm_edge.errors import InputError
from usfm_edge.spec import Intensity, Preprocess, Resize

# ITU-R BT.601 luma, what scanners' own gray conversion uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_INTEGER_SCALE = {np.dtype(np.uint8): np.float32(1 / 255), np.dtype(np.uint16): np.float32(1 / 65535)}


def to_unit_range(frame: np.ndarray, intensity: Intensity) -> np.ndarray:
    """(H, W[, C]) uint8/uint16/float -> float32 in [0, 1]."""
    if intensity is Intensity.MINMAX:
        f = frame.astype(np.float32)
        lo, hi = float(f.min()), float(f.max())
        return (f - lo) / (hi - lo) if hi > lo else np.zeros_like(f)
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) / 255.0
    if frame.dtype == np.uint16:
        return frame.astype(np.float32) / 65535.0
    if np.issubdtype(frame.dtype, np.floating):
        return np.clip(frame.astype(np.float32), 0.0, 1.0)
    raise InputError(f"frame dtype {frame.dtype} is not supported; give uint8, uint16 or float in [0, 1]")


def to_channels(frame: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, 3) RGB float -> (H, W, channels)."""
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.shape[-1] == channels:
        return frame
    if frame.shape[-1] == 1:  # gray into an RGB model: replicate
        return np.repeat(frame, channels, axis=-1)
    if frame.shape[-1] == 3 and channels == 1:
        if frame.dtype == np.float32:  # OpenCV's per-pixel transform: several times numpy's matmul
            return cv2.transform(frame, _LUMA[None])[..., None]
        return (frame @ _LUMA)[..., None]
    raise InputError(f"frame has {frame.shape[-1]} channels; give gray (H, W) or RGB (H, W, 3)")


def resize(frame: np.ndarray, size: tuple[int, int], mode: Resize) -> np.ndarray:
    """(H, W, C) -> (h, w, C) with ``size`` = (h, w)."""
    h, w = size
    channels = frame.shape[-1]
    if mode is Resize.STRETCH:
        out = _resize(frame, w, h)
    else:
        top, left, nh, nw = letterbox_window(frame.shape[:2], size)
        out = np.zeros((h, w, channels), dtype=np.float32)
        out[top:top + nh, left:left + nw] = _resize(frame, nw, nh).reshape(nh, nw, channels)
    return out.reshape(h, w, channels)


def _resize(frame: np.ndarray, w: int, h: int) -> np.ndarray:
    shrinking = w < frame.shape[1] or h < frame.shape[0]
    # INTER_AREA averages speckle instead of aliasing it when shrinking.
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def preprocess_frame(frame: np.ndarray, spec: Preprocess) -> np.ndarray:
    """One frame, gray (H, W) or RGB (H, W, 3), -> network input (1, C, h, w) float32."""
    if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or frame.size == 0:
        shape = getattr(frame, "shape", None)
        raise InputError(f"frame of shape {shape} is not an image; give (H, W) gray or (H, W, 3) RGB")
    if np.issubdtype(frame.dtype, np.floating) and not np.isfinite(frame).all():
        raise InputError("frame contains NaN or infinite values; check the source or its decoder")
    if frame.dtype in _INTEGER_SCALE and spec.intensity is not Intensity.MINMAX:
        # Gray conversion, resizing and the scaling to [0, 1] are all linear, so the scaling can
        # come last, on the network-size image: a 1200x900 RGB capture crop then costs about a
        # quarter of the time (benchmarks/results/pipeline_*.md times the stage).
        x = frame.astype(np.float32)
        x = x[..., None] if x.ndim == 2 else x
        if x.shape[-1] < spec.channels:  # gray into an RGB model: replicate after resizing
            x = to_channels(resize(x, spec.input_size, spec.resize), spec.channels)
        else:
            x = resize(to_channels(x, spec.channels), spec.input_size, spec.resize)
        x *= _INTEGER_SCALE[frame.dtype]
    else:
        x = resize(to_channels(to_unit_range(frame, spec.intensity), spec.channels), spec.input_size, spec.resize)
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def resize_label_map(labels: np.ndarray, spec: Preprocess) -> np.ndarray:
    """(H, W) class indices -> (h, w) at the network's input size, the same geometry as
    ``preprocess_frame`` (nearest neighbour: a label is never blended)."""
    h, w = spec.input_size
    if spec.resize is Resize.STRETCH:
        return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    top, left, nh, nw = letterbox_window(labels.shape[:2], spec.input_size)
    out = np.zeros((h, w), dtype=labels.dtype)
    out[top:top + nh, left:left + nw] = cv2.resize(labels, (nw, nh), interpolation=cv2.INTER_NEAREST)
    return out


def letterbox_window(original: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where a letterboxed frame of ``original`` (H, W) sits in ``size``: (top, left, h, w)."""
    scale = min(size[0] / original[0], size[1] / original[1])
    nh, nw = max(1, round(original[0] * scale)), max(1, round(original[1] * scale))
    return (size[0] - nh) // 2, (size[1] - nw) // 2, nh, nw


def to_original_grid(maps: np.ndarray, original: tuple[int, int], spec: Preprocess) -> np.ndarray:
    """(K, h, w) network-resolution maps (probabilities, an image) -> (K, H, W) on the frame's
    own pixel grid, undoing ``spec.resize``. Metrics are computed there, where pixels are
    square and carry the scanner's spacing."""
    if spec.resize is Resize.LETTERBOX:
        top, left, nh, nw = letterbox_window(original, spec.input_size)
        maps = maps[:, top:top + nh, left:left + nw]
    H, W = original
    return np.stack([cv2.resize(m.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR) for m in maps])
