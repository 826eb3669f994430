"""Dataset layouts on disk.

- Segmentation (the USFM layout): ``ROOT/{training_set,val_set,test_set}/{image,mask}/NAME``.
  Masks: binary 0/255 or 0/1, or index images 0..K-1 with the class names in
  ``ROOT/labels.json`` (a list, background first). Optional ``ROOT/labels.csv`` with columns
  ``id`` and ``pixel_size_mm`` (HC18's) gives each image's spacing.
- Enhancement: ``ROOT/{training_set,val_set,test_set}/{image,target}/NAME`` (degraded, clean).
- Classification: ``ROOT/{train,val,test}/CLASS/NAME``.
- Pretraining manifest: a CSV with ``path,organ[,frame]``, paths relative to the CSV.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from usfm_edge.data.images import IMAGE_SUFFIXES, read_image, read_label_image
from usfm_edge.errors import InputError
from usfm_edge.fileio import write_text_atomic

SEG_SPLITS = {"train": "training_set", "val": "val_set", "test": "test_set"}
CLS_SPLITS = ("train", "val", "test")
BINARY_LABELS = ["background", "foreground"]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


@dataclass
class SegSample:
    name: str
    image: Path
    mask: Path
    spacing_mm: float | None = None


@dataclass
class SegmentationSplit:
    root: Path
    split: str
    labels: list[str]
    samples: list[SegSample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image (H, W[, 3]), mask (H, W) uint8 class indices)."""
        sample = self.samples[index]
        image = read_image(sample.image)
        mask = read_mask(sample.mask, num_classes=len(self.labels))
        if mask.shape != image.shape[:2]:
            raise InputError(f"{sample.mask}: mask is {mask.shape}, its image {image.shape[:2]}; they must match")
        return image, mask


def read_mask(path: str | Path, *, num_classes: int) -> np.ndarray:
    """A mask file -> (H, W) uint8 indices. Binary 0/255 becomes 0/1."""
    values = read_label_image(path)
    present = np.unique(values)
    if num_classes == 2 and set(present.tolist()) <= {0, 255}:
        return (values == 255).astype(np.uint8)
    if present.max(initial=0) < num_classes:
        return values.astype(np.uint8)
    raise InputError(
        f"{path}: mask values {present[:10].tolist()} do not fit {num_classes} classes; use 0/255 or 0/1 "
        "for binary masks, or indices 0..K-1 with the class names in ROOT/labels.json"
    )


def segmentation_labels(root: Path) -> list[str]:
    labels_file = root / "labels.json"
    if not labels_file.is_file():
        return list(BINARY_LABELS)
    try:
        labels = json.loads(labels_file.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{labels_file}: not valid JSON ({exc})") from exc
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
        raise InputError(f"{labels_file}: must be a list of at least 2 class names, background first")
    return labels


def _spacing_table(root: Path) -> dict[str, float]:
    table = root / "labels.csv"
    if not table.is_file():
        return {}
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "id" not in rows[0] or "pixel_size_mm" not in rows[0]:
        return {}
    return {row["id"]: float(row["pixel_size_mm"]) for row in rows if row.get("pixel_size_mm")}


def _paired_files(root: Path, split: str, second: str) -> list[tuple[str, Path, Path]]:
    """(stem, image, partner) for ROOT/<split folder>/{image,<second>}/NAME, paired by stem."""
    if split not in SEG_SPLITS:
        raise InputError(f"split {split!r}; use one of {sorted(SEG_SPLITS)}")
    folder = root / SEG_SPLITS[split]
    image_dir, other_dir = folder / "image", folder / second
    for needed in (image_dir, other_dir):
        if not needed.is_dir():
            raise InputError(f"{needed}: missing; this dataset is ROOT/{SEG_SPLITS[split]}/{{image,{second}}}/NAME")
    partners = {p.stem: p for p in _images_in(other_dir)}
    images = _images_in(image_dir)
    orphans = sorted(set(partners) - {p.stem for p in images})
    if orphans:
        raise InputError(f"{other_dir / orphans[0]}: {second} without an image ({len(orphans)} such)")
    missing = [p for p in images if p.stem not in partners]
    if missing:
        raise InputError(f"{missing[0]}: has no {second} in {other_dir} ({len(missing)} such)")
    if not images:
        raise InputError(f"{image_dir}: no images")
    return [(p.stem, p, partners[p.stem]) for p in images]


def load_segmentation(root: str | Path, split: str = "train") -> SegmentationSplit:
    """Pair images and masks by file stem; a missing mask or image is an error naming it."""
    root = Path(root)
    spacing = _spacing_table(root)
    samples = [SegSample(stem, image, mask, spacing.get(stem)) for stem, image, mask in _paired_files(root, split, "mask")]
    return SegmentationSplit(root, split, segmentation_labels(root), samples)


@dataclass
class EnhancementSplit:
    """ROOT/{training_set,val_set,test_set}/{image,target}/NAME: degraded frame and its clean
    target (the phantom writes exact pairs)."""

    root: Path
    split: str
    samples: list[tuple[str, Path, Path]]

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        _, image_path, target_path = self.samples[index]
        image, target = read_image(image_path), read_image(target_path)
        if image.shape != target.shape:
            raise InputError(f"{target_path}: target is {target.shape}, its image {image.shape}; they must match")
        return image, target


def load_enhancement(root: str | Path, split: str = "train") -> EnhancementSplit:
    root = Path(root)
    return EnhancementSplit(root, split, _paired_files(root, split, "target"))


@dataclass
class ClassificationSplit:
    root: Path
    split: str
    classes: list[str]
    samples: list[tuple[Path, int]]

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, int]:
        path, label = self.samples[index]
        return read_image(path), label


def load_classification(root: str | Path, split: str = "train") -> ClassificationSplit:
    """Classes are the sorted folder names of the split (the same in every split)."""
    root = Path(root)
    if split not in CLS_SPLITS:
        raise InputError(f"split {split!r}; use one of {list(CLS_SPLITS)}")
    folder = root / split
    if not folder.is_dir():
        raise InputError(f"{folder}: missing; a classification dataset is ROOT/{{train,val,test}}/CLASS/NAME")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise InputError(f"{folder}: needs at least 2 class folders, found {classes}")
    samples = [(path, i) for i, name in enumerate(classes) for path in _images_in(folder / name)]
    if not samples:
        raise InputError(f"{folder}: no images in its class folders")
    return ClassificationSplit(root, split, classes, samples)


@dataclass
class ManifestEntry:
    path: Path
    organ: str
    frame: int | None = None


def read_manifest(csv_path: str | Path, *, check_files: bool = True) -> list[ManifestEntry]:
    """Unlabeled pretraining data: ``path,organ[,frame]`` rows; paths relative to the CSV."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(f"{csv_path}: no such file")
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"path", "organ"} <= set(reader.fieldnames):
            raise InputError(f"{csv_path}: needs a header with columns path,organ[,frame]; has {reader.fieldnames}")
        entries = []
        for line, row in enumerate(reader, start=2):
            path = (csv_path.parent / row["path"]).resolve() if not Path(row["path"]).is_absolute() else Path(row["path"])
            if check_files and not path.is_file():
                raise InputError(f"{csv_path}:{line}: {row['path']} does not exist")
            frame = row.get("frame")
            try:
                entries.append(ManifestEntry(path, row["organ"] or "unknown", int(frame) if frame not in (None, "") else None))
            except ValueError as exc:
                raise InputError(f"{csv_path}:{line}: frame {frame!r} is not an integer") from exc
    if not entries:
        raise InputError(f"{csv_path}: no rows")
    return entries


def write_manifest(csv_path: str | Path, entries: list[ManifestEntry]) -> Path:
    """Paths relative to the CSV's folder (``../archive/...`` where needed), so a manifest moves
    with its data and names no machine's absolute paths. Written atomically."""
    import io
    import os

    csv_path = Path(csv_path)
    base = csv_path.resolve().parent
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "organ", "frame"])
    for e in entries:
        path = Path(os.path.relpath(Path(e.path).resolve(), base))
        writer.writerow([path.as_posix(), e.organ, "" if e.frame is None else e.frame])
    write_text_atomic(csv_path, buffer.getvalue())
    return csv_path
