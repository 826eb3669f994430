"""The one prepare path: a captured frame -> network input, and network output -> the frame.

    frame (a whole scanner screen, or an already cropped image)
      -> locate: the scan region's box and its imaging sector (``contracts.region``), by the
         crop rule of ``Preprocess`` (``crop``, ``mask_sector``)
      -> crop -> gray/RGB -> resize (stretch or letterbox) -> [0, 1] -> mean/std: (1, C, h, w)
    network output (K, h, w)
      -> back onto the crop's own pixel grid (undoing the resize)
      -> classes, cleared outside the imaging sector
      -> pasted into the frame's grid (zero outside the crop)

Fine-tuning, pretraining, calibration, the export gate, ``bench --val``, the demo and the
runtime all call these functions, so the accuracy a bundle records is the accuracy the cart
delivers on the same screens. Numpy + OpenCV only, no torch.
"""

from __future__ import annotations

import cv2
import numpy as np

from usfm_edge.contracts.model_dir import Crop, Intensity, Preprocess, Resize
from usfm_edge.contracts.region import Box, RegionTracker, View
from usfm_edge.errors import InputError

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


def locate(frame: np.ndarray, spec: Preprocess, *, sector: bool | None = None) -> View:
    """Where the network looks in ``frame`` ((H, W[, C]) uint8/uint16 or unit float) under
    ``spec``'s crop rule, detected on this frame alone; ``sector`` (default
    ``spec.mask_sector``) also finds the imaging sector. The runtime's tracker gives the same
    view for each still (it detects with this very function)."""
    tracker = RegionTracker(crop=spec.crop is Crop.SCAN_REGION, sector=spec.mask_sector if sector is None else sector)
    return tracker.detect(frame)


def prepare(frame: np.ndarray, spec: Preprocess) -> tuple[np.ndarray, View]:
    """A captured frame -> (network input (1, C, h, w) float32, the view it was cropped by)."""
    view = locate(frame, spec)
    return preprocess_frame(view.crop(frame), spec), view


def preprocess_frame(frame: np.ndarray, spec: Preprocess) -> np.ndarray:
    """One (already cropped) frame, gray (H, W) or RGB (H, W, 3), -> network input
    (1, C, h, w) float32."""
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
    """(K, h, w) network-resolution maps (probabilities, an image) -> (K, H, W) on the crop's
    own pixel grid, undoing ``spec.resize``. Metrics are computed there (pasted into the
    frame), where pixels are square and carry the scanner's spacing."""
    if spec.resize is Resize.LETTERBOX:
        top, left, nh, nw = letterbox_window(original, spec.input_size)
        maps = maps[:, top:top + nh, left:left + nw]
    H, W = original
    return np.stack([cv2.resize(m.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR) for m in maps])


# --------------------------------------------------------------------------- output -> frame


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def class_map(probs: np.ndarray, view: View, spec: Preprocess, *, threshold: float = 0.5) -> np.ndarray:
    """(K, h, w) class probabilities at network resolution -> (H, W) uint8 class indices on
    the crop's grid, zero outside the imaging sector when ``spec.mask_sector``. Two classes:
    foreground where its probability reaches ``threshold`` (one channel mapped back, not
    two); more: the most probable class."""
    if probs.shape[0] == 2:
        classes = (to_original_grid(probs[1:], view.shape, spec)[0] >= threshold).astype(np.uint8)
    else:
        classes = to_original_grid(probs, view.shape, spec).argmax(0).astype(np.uint8)
    return clear_outside_sector(classes, view, spec)


def clear_outside_sector(values: np.ndarray, view: View, spec: Preprocess, fill: np.ndarray | int = 0) -> np.ndarray:
    """``values`` ((h, w[, C]) on the crop's grid) with everything outside the imaging sector
    set to ``fill`` (in place), when ``spec.mask_sector`` and a sector was found."""
    if spec.mask_sector and view.sector is not None:
        outside = ~view.sector
        values[outside] = fill[outside] if isinstance(fill, np.ndarray) else fill
    return values


def paste(crop_values: np.ndarray, view: View, frame_shape: tuple[int, ...], fill: int = 0) -> np.ndarray:
    """(h, w) values on the crop's grid -> (H, W) on the frame's grid, ``fill`` elsewhere."""
    out = np.full(frame_shape[:2], fill, dtype=crop_values.dtype)
    x, y, w, h = view.box
    out[y:y + h, x:x + w] = crop_values
    return out


def segment_frame(logits: np.ndarray, view: View, spec: Preprocess, frame_shape: tuple[int, ...], *,
                  threshold: float = 0.5) -> np.ndarray:
    """(K, h, w) logits for one view -> (H, W) uint8 class indices on the frame's grid: what
    the runtime draws and what every Dice in this project is computed on."""
    return paste(class_map(softmax(logits), view, spec, threshold=threshold), view, frame_shape)


def to_display(output: np.ndarray, original: tuple[int, int], spec: Preprocess) -> np.ndarray:
    """A normalized (C, h, w) restored image -> (H, W) 0..255 gray float on the crop's grid."""
    mean = np.asarray(spec.mean, np.float32)[:, None, None]
    std = np.asarray(spec.std, np.float32)[:, None, None]
    unit = np.clip(output * std + mean, 0, 1).mean(0, keepdims=True)
    return to_original_grid(unit, original, spec)[0] * 255.0


__all__ = [
    "Box", "View", "class_map", "clear_outside_sector", "letterbox_window", "locate", "paste", "prepare",
    "preprocess_frame", "resize_label_map", "segment_frame", "softmax", "to_display", "to_original_grid",
]
