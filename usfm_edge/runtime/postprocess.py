"""Network output -> what a clinician sees, per task (a registry keyed by the bundle's task).

Outputs are mapped back onto the crop's own pixel grid and cleared outside the imaging sector
by ``usfm_edge.contracts.prepare``, the code the export gate scores with, so with ``--ema 1``
a mask here is the mask the gate measured. Smoothing over time is the runtime's own step: an
EMA on probabilities steadies a mask or a class call that would otherwise flicker with
speckle. Its state resets when the scan region changes (a depth change moves every pixel)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from usfm_edge.contracts import Preprocess
from usfm_edge.contracts.prepare import View, class_map, clear_outside_sector, softmax, to_display

_POSTPROCESSORS: dict[str, type[Postprocessor]] = {}


@dataclass
class PostConfig:
    ema: float = 0.5  # weight of the newest frame (1 = no smoothing)
    threshold: float = 0.5  # foreground probability for a binary mask


class Postprocessor(ABC):
    task: str

    def __init__(self, spec: Preprocess, labels: list[str], config: PostConfig | None = None) -> None:
        self.spec, self.labels, self.config = spec, labels, config or PostConfig()
        self._state: dict[int, tuple[tuple[int, ...], np.ndarray]] = {}  # region -> (crop shape, smoothed)

    def smooth(self, region: int, value: np.ndarray) -> np.ndarray:
        previous = self._state.get(region)
        if previous is not None and previous[0] == value.shape:
            value = self.config.ema * value + (1.0 - self.config.ema) * previous[1]
        self._state[region] = (value.shape, value)
        return value

    def reset(self) -> None:
        self._state.clear()

    @abstractmethod
    def __call__(self, output: np.ndarray, view: View, crop: np.ndarray, region: int = 0) -> dict[str, Any]:
        """One region's raw output (no batch axis) -> a result dict on the crop's grid;
        ``crop`` is the captured pixels of the region."""


def register_postprocessor(cls: type[Postprocessor]) -> type[Postprocessor]:
    _POSTPROCESSORS[cls.task] = cls
    return cls


def make_postprocessor(task: str, spec: Preprocess, labels: list[str],
                       config: PostConfig | None = None) -> Postprocessor:
    return _POSTPROCESSORS[str(task)](spec, labels, config)


@register_postprocessor
class Segmentation(Postprocessor):
    task = "seg"

    def __call__(self, output: np.ndarray, view: View, crop: np.ndarray, region: int = 0) -> dict[str, Any]:
        # Smooth at network resolution (cheap), then map back to the crop: (K, h, w) -> (H, W).
        probs = self.smooth(region, softmax(output, axis=0))
        mask = class_map(probs, view, self.spec, threshold=self.config.threshold)
        if probs.shape[0] == 2:  # binary: one count, without a comparison array the size of the crop
            counts = {1: int(np.count_nonzero(mask))}
        else:
            counts = {k: int(np.count_nonzero(mask == k)) for k in range(1, probs.shape[0])}
        areas = {self.labels[k] if k < len(self.labels) else str(k): n for k, n in counts.items()}
        return {"mask": mask, "areas_px": areas}


@register_postprocessor
class Classification(Postprocessor):
    task = "cls"

    def __call__(self, output: np.ndarray, view: View, crop: np.ndarray, region: int = 0) -> dict[str, Any]:
        probs = self.smooth(region, softmax(output.reshape(-1), axis=0))
        top = int(probs.argmax())
        return {"probs": {label: float(p) for label, p in zip(self.labels, probs)},
                "label": self.labels[top] if top < len(self.labels) else str(top), "score": float(probs[top])}


@register_postprocessor
class Enhancement(Postprocessor):
    task = "enhance"

    def __call__(self, output: np.ndarray, view: View, crop: np.ndarray, region: int = 0) -> dict[str, Any]:
        image = np.clip(to_display(self.smooth(region, output), view.shape, self.spec), 0, 255).astype(np.uint8)
        gray = crop if crop.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(crop[..., :3]), cv2.COLOR_RGB2GRAY)
        if gray.dtype != np.uint8:
            gray = (gray >> 8).astype(np.uint8) if gray.dtype == np.uint16 else np.clip(gray, 0, 255).astype(np.uint8)
        return {"image": clear_outside_sector(image, view, self.spec, fill=gray)}


def mask_to_polygons(mask: np.ndarray, min_area: int = 4) -> list[list[list[int]]]:
    """Outer contours of a binary mask as [[x, y], ...] polygons (for JSONL sinks)."""
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1, 2).tolist() for c in contours if cv2.contourArea(c) >= min_area]


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Uncompressed COCO-style RLE (column-major counts, starting with a run of zeros)."""
    flat = (np.asarray(mask).T.reshape(-1) > 0).astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1] if flat.size else 0]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    return {"size": list(mask.shape), "counts": counts}


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    h, w = rle["size"]
    values = np.zeros(h * w, np.uint8)
    position, value = 0, 0
    for count in rle["counts"]:
        values[position:position + count] = value
        position, value = position + count, 1 - value
    return values.reshape(w, h).T
