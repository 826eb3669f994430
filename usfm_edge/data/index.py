"""Index frame sources into a pretraining manifest (``usfm-edge data index``).

Images count as one frame; DICOM cines and videos give every ``stride``-th frame, skipping
frames nearly identical to the last one kept (a frozen probe repeats itself for seconds).
The organ comes from the DICOM's BodyPartExamined, else from the name of the folder the
file sits in. Unreadable files are reported, not fatal: an archive of a million files
always has some. Label folders (``mask/``, ``masks/``, ``target/``, ...) are not frames, and a
cine kept both as DICOM and as a video of the same name counts once (the DICOM: it carries
the regions and the frame times).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from usfm_edge.data.dicom import is_dicom_file, read_dicom
from usfm_edge.data.images import IMAGE_SUFFIXES
from usfm_edge.data.layouts import ManifestEntry
from usfm_edge.data.video import VIDEO_SUFFIXES, iter_video
from usfm_edge.errors import InputError

THUMB = 32
# Folders that hold labels next to the images of a dataset layout: never pretraining frames.
LABEL_FOLDERS = frozenset({"mask", "masks", "target", "targets", "label", "labels", "annotation", "annotations",
                           "gt", "ground_truth"})
DICOM_SUFFIXES = (".dcm", ".dicom")


@dataclass
class IndexReport:
    entries: list[ManifestEntry] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped_duplicates: int = 0  # near-identical frames of a cine
    skipped_labels: int = 0  # files in label folders
    skipped_copies: int = 0  # videos that repeat a DICOM cine of the same name


def _thumb(frame: np.ndarray) -> np.ndarray:
    gray = frame if frame.ndim == 2 else frame.mean(-1)
    return cv2.resize(gray.astype(np.float32), (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def kept_frames(frames: Iterable[np.ndarray], *, stride: int = 1, threshold: float = 2.0) -> tuple[list[int], int]:
    """Indices of the frames to keep and how many near-duplicates were skipped. A frame is a
    near-duplicate when its 32x32 thumbnail differs from the last kept one's by less than
    ``threshold`` grey levels on average (0 keeps every strided frame)."""
    kept, skipped, last = [], 0, None
    for i, frame in enumerate(frames):
        if i % stride:
            continue
        thumb = _thumb(frame)
        if last is not None and threshold > 0 and float(np.abs(thumb - last).mean()) < threshold:
            skipped += 1
            continue
        kept.append(i)
        last = thumb
    return kept, skipped


def _files(source: Path, report: IndexReport) -> list[Path]:
    if source.is_file():
        return [source]
    known = (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES, *DICOM_SUFFIXES)
    found = sorted(p for p in source.rglob("*") if p.is_file() and (p.suffix.lower() in known or
                                                                      (p.suffix == "" and is_dicom_file(p))))
    labels = [p for p in found if LABEL_FOLDERS & {part.lower() for part in p.relative_to(source).parts[:-1]}]
    cines = {(p.parent, p.stem) for p in found if p.suffix.lower() in DICOM_SUFFIXES}
    copies = [p for p in found if p.suffix.lower() in VIDEO_SUFFIXES and (p.parent, p.stem) in cines]
    report.skipped_labels += len(labels)
    report.skipped_copies += len(copies)
    dropped = set(labels) | set(copies)
    return [p for p in found if p not in dropped]


def index_sources(sources: Iterable[str | Path], *, stride: int = 1, threshold: float = 2.0,
                  on_file: Callable[[], None] = lambda: None) -> IndexReport:
    report = IndexReport()
    for source in map(Path, sources):
        if not source.exists():
            report.errors.append(f"{source}: no such file or folder")
            continue
        for path in _files(source, report):
            try:
                _index_file(path, stride, threshold, report)
            except (InputError, OSError, ValueError) as exc:
                report.errors.append(str(exc) if str(path) in str(exc) else f"{path}: {exc}")
            on_file()
    return report


def _index_file(path: Path, stride: int, threshold: float, report: IndexReport) -> None:
    suffix = path.suffix.lower()
    organ = path.parent.name or "unknown"
    if suffix in IMAGE_SUFFIXES:
        _verify_image(path)
        report.entries.append(ManifestEntry(path.resolve(), organ))
        return
    if suffix in VIDEO_SUFFIXES:
        frames: Iterable[np.ndarray] = iter_video(path, gray=True)
    else:
        cine = read_dicom(path)
        body_part = _body_part(path)
        organ = body_part.lower() if body_part else organ
        frames = cine.frames
    kept, skipped = kept_frames(frames, stride=stride, threshold=threshold)
    report.skipped_duplicates += skipped
    report.entries.extend(ManifestEntry(path.resolve(), organ, i) for i in kept)


def _verify_image(path: Path) -> None:
    """Header and structure check without decoding every pixel (an index of a million
    files must stay fast)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from exc


def _body_part(path: Path) -> str | None:
    import pydicom

    value = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["BodyPartExamined"]).get("BodyPartExamined")
    return str(value) if value else None
