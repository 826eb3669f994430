"""One entry point for any ultrasound file: ``read_frames(path)`` -> ``Frames``.

Readers register by suffix; DICOM is also recognised by its 'DICM' marker whatever the name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from usfm_edge.data.dicom import UltrasoundRegion, is_dicom_file, read_dicom
from usfm_edge.data.images import IMAGE_SUFFIXES, read_image
from usfm_edge.data.video import VIDEO_SUFFIXES, read_video
from usfm_edge.errors import InputError


@dataclass
class Frames:
    """Frames of one file with what its format says about them."""

    path: Path
    frames: np.ndarray  # (N, H, W) or (N, H, W, 3) RGB; uint8 or uint16
    fps: float | None = None
    regions: list[UltrasoundRegion] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)


_READERS: dict[str, Callable[[Path], Frames]] = {}


def register_reader(*suffixes: str) -> Callable[[Callable[[Path], Frames]], Callable[[Path], Frames]]:
    def decorator(fn: Callable[[Path], Frames]) -> Callable[[Path], Frames]:
        for suffix in suffixes:
            _READERS[suffix.lower()] = fn
        return fn

    return decorator


@register_reader(*IMAGE_SUFFIXES)
def _image(path: Path) -> Frames:
    return Frames(path, read_image(path)[None])


@register_reader(".dcm", ".dicom")
def _dicom(path: Path) -> Frames:
    cine = read_dicom(path)
    return Frames(path, cine.frames, cine.fps, cine.regions)


@register_reader(*VIDEO_SUFFIXES)
def _video(path: Path) -> Frames:
    frames, info = read_video(path)
    return Frames(path, frames, info.fps)


def supported_suffixes() -> list[str]:
    return sorted(_READERS)


def read_frames(path: str | Path) -> Frames:
    """Read an image, a DICOM file or a video; ``InputError`` names the file and the reason."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    reader = _READERS.get(path.suffix.lower())
    if reader is None and is_dicom_file(path):
        reader = _dicom
    if reader is None:
        raise InputError(f"{path}: unknown file type; supported: {', '.join(supported_suffixes())} or DICOM")
    return reader(path)
