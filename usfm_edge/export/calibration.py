"""Calibration and validation frames, preprocessed exactly as the runtime will.

Calibration frames are cropped to their scan region first (when the model's preprocessing
crops), so the black background and UI margins do not set the activation ranges."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from usfm_edge.data.images import IMAGE_SUFFIXES, read_image
from usfm_edge.data.layouts import SEG_SPLITS, read_mask
from usfm_edge.data.scan_region import scan_box
from usfm_edge.errors import InputError
from usfm_edge.preprocess import preprocess_frame
from usfm_edge.spec import Crop, Preprocess


def crop_to_scan(frame: np.ndarray, spec: Preprocess) -> np.ndarray:
    if spec.crop is not Crop.SCAN_REGION:
        return frame
    top, left, bottom, right = scan_box(frame if frame.ndim == 2 else frame.mean(-1))
    return frame[top:bottom, left:right]


def _calibration_files(root: Path) -> list[Path]:
    """A dataset root's training images, else every image below ``root``."""
    for train in (root / SEG_SPLITS["train"] / "image", root / "train"):
        if train.is_dir():
            root = train
            break
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def calibration_frames(root: str | Path, spec: Preprocess, *, limit: int = 300, seed: int = 0) -> tuple[np.ndarray, str]:
    """(N, C, H, W) float32 and the sha256 of the files' names and bytes used."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such folder for --calib")
    files = _calibration_files(root)
    if not files:
        raise InputError(f"{root}: no images for calibration; give a folder of frames or a dataset root")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(files), size=min(limit, len(files)), replace=False).tolist())
    digest = hashlib.sha256()
    batch = []
    for i in chosen:
        digest.update(files[i].name.encode())
        digest.update(files[i].read_bytes())
        batch.append(preprocess_frame(crop_to_scan(read_image(files[i]), spec), spec))
    return np.concatenate(batch), digest.hexdigest()


def validation_pairs(root: str | Path, *, num_classes: int, limit: int = 200) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, image, mask) from a dataset root's validation split or a split folder with
    image/ and mask/ (masks of the same stems)."""
    root = Path(root)
    folder = root / SEG_SPLITS["val"] if (root / SEG_SPLITS["val"]).is_dir() else root
    image_dir, mask_dir = folder / "image", folder / "mask"
    if not image_dir.is_dir() or not mask_dir.is_dir():
        raise InputError(f"{root}: --val needs a dataset root with {SEG_SPLITS['val']}/ or a folder with image/ and mask/")
    masks = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    pairs = []
    for image in sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]:
        if image.stem not in masks:
            raise InputError(f"{image}: has no mask in {mask_dir}")
        pairs.append((image.stem, read_image(image), read_mask(masks[image.stem], num_classes=num_classes)))
    if not pairs:
        raise InputError(f"{image_dir}: no validation images")
    return pairs
