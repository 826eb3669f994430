"""Ultrasound-appropriate augmentations, applied jointly to a frame and its label map.

What varies between real acquisitions: the probe's lateral orientation (a left-right flip is
a plausible image; an up-down flip puts the transducer at the bottom, which no scanner
shows), zoom and position of the region of interest, a small probe tilt, and the gain, TGC
and dynamic-range settings (gain and gamma). Speckle is left as it is: blurring or adding
noise per pixel would teach the model an image statistics no scanner produces.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Augment:
    flip_p: float = 0.5
    zoom: tuple[float, float] = (0.8, 1.0)  # fraction of each side kept by the crop
    rotate_deg: float = 10.0
    gain: tuple[float, float] = (0.8, 1.2)
    gamma: tuple[float, float] = (0.8, 1.25)

    def __call__(
        self, image: np.ndarray, target: np.ndarray | None, rng: np.random.Generator, *, target_is_image: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``image`` (H, W[, 3]) uint8/uint16; ``target`` a label map (H, W), a clean image
        (``target_is_image``) or None (classification). Geometry is applied to both,
        intensity changes to the image alone (an enhancement target keeps its true levels)."""
        h, w = image.shape[:2]
        matrix = self._geometry(h, w, rng)
        image = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        if target is not None:
            interp = cv2.INTER_LINEAR if target_is_image else cv2.INTER_NEAREST
            target = cv2.warpAffine(target, matrix, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT)
        if rng.random() < self.flip_p:
            image = image[:, ::-1].copy()
            target = None if target is None else target[:, ::-1].copy()
        return self._intensity(image, rng), target

    def _geometry(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        keep = rng.uniform(*self.zoom)
        angle = rng.uniform(-self.rotate_deg, self.rotate_deg)
        # zoom about a random centre that keeps the crop inside the frame
        cx = w / 2 + rng.uniform(-1, 1) * (1 - keep) * w / 2
        cy = h / 2 + rng.uniform(-1, 1) * (1 - keep) * h / 2
        matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0 / keep)
        matrix[:, 2] += (w / 2 - cx, h / 2 - cy)
        return matrix

    def _intensity(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        top = 65535.0 if image.dtype == np.uint16 else 255.0
        x = image.astype(np.float32) / top
        x = np.clip(x * rng.uniform(*self.gain), 0, 1) ** rng.uniform(*self.gamma)
        return (x * top).round().astype(image.dtype)
