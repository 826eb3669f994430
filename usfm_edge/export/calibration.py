"""Calibration frames for INT8, prepared exactly as the runtime prepares frames: located,
cropped to their scan region (when the model's crop rule says so), preprocessed. The black
background and UI margins of a screen therefore never set the activation ranges."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from usfm_edge.contracts import Preprocess
from usfm_edge.contracts.prepare import prepare
from usfm_edge.data.images import IMAGE_SUFFIXES, read_image
from usfm_edge.data.layouts import SEG_SPLITS
from usfm_edge.errors import InputError


def _calibration_files(root: Path) -> list[Path]:
    """A dataset root's training images, else every image below ``root``."""
    for train in (root / SEG_SPLITS["train"] / "image", root / "train"):
        if train.is_dir():
            root = train
            break
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and "mask" not in p.parent.name)


def calibration_frames(root: str | Path, spec: Preprocess, *, limit: int = 300, seed: int = 0) -> tuple[np.ndarray, str]:
    """(N, C, H, W) float32 and the sha256 of the files' names and bytes used. Unreadable
    files are skipped; none readable is an error naming the folder."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such folder for --calib")
    files = _calibration_files(root)
    if not files:
        raise InputError(f"{root}: no images for calibration; give a folder of frames or a dataset root")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(files), size=min(limit, len(files)), replace=False).tolist())
    digest = hashlib.sha256()
    batch, skipped = [], []
    for i in chosen:
        try:
            frame = read_image(files[i])
        except InputError as exc:
            skipped.append(str(exc))
            continue
        digest.update(files[i].name.encode())
        digest.update(files[i].read_bytes())
        batch.append(prepare(frame, spec)[0])
    if not batch:
        raise InputError(f"{root}: none of its {len(chosen)} calibration images could be read (first: {skipped[0]})")
    return np.concatenate(batch), digest.hexdigest()
