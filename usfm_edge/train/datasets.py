"""Torch datasets over the on-disk layouts. Frames go through the one prepare path
(``usfm_edge.contracts.prepare``): located and cropped by the model's crop rule (image and
mask alike), then preprocessed, as the runtime prepares a captured screen, so a model trains on
exactly the pixels it will see deployed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from usfm_edge.data.layouts import (
    ClassificationSplit, EnhancementSplit, SegmentationSplit, load_classification, load_enhancement,
    load_segmentation,
)
from usfm_edge.contracts import Preprocess
from usfm_edge.contracts.prepare import locate, preprocess_frame, resize_label_map
from usfm_edge.train.augment import Augment

Split = SegmentationSplit | ClassificationSplit | EnhancementSplit
LOADERS = {"seg": load_segmentation, "cls": load_classification, "enhance": load_enhancement}


def load_split(task: str, root: str | Path, split: str) -> Split:
    return LOADERS[task](root, split)


def strata(task: str, split: Split) -> list:
    """What a label-fraction subset keeps balanced: the class (cls), the set of classes
    present in the mask (seg); nothing for enhancement."""
    if task == "cls":
        return [label for _, label in split.samples]
    if task == "seg":
        return [tuple(np.unique(split.load(i)[1]).tolist()) for i in range(len(split))]
    return [0] * len(split)


# Frames whose crop is more than this many times the network input (per side) are brought down
# to that size once, before augmenting: an 800x540 HC18 frame for a 64 px model is warped at
# 128 px, not at full size (the affine warp was most of a step's time), and kept in memory.
WORK_SCALE = 2
CACHE_BYTES = 512 * 2**20  # working-size frames kept in memory, at most


def to_working_size(image: np.ndarray, target: Any, task: str, spec: Preprocess) -> tuple[np.ndarray, Any]:
    """A crop larger than ``WORK_SCALE`` x the input size brought down to it (per side, aspect
    kept), its mask (nearest) or clean target alike."""
    h, w = image.shape[:2]
    limit_h, limit_w = (WORK_SCALE * side for side in spec.input_size)
    scale = max(limit_h / h, limit_w / w)  # keep at least the working size on both sides
    if scale >= 1:
        return image, target
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if task == "seg":
        target = cv2.resize(target, size, interpolation=cv2.INTER_NEAREST)
    elif task == "enhance":
        target = cv2.resize(target, size, interpolation=cv2.INTER_AREA)
    return image, target


class SupervisedDataset(Dataset):
    """Items: {"image": (C, h, w) float32, "target": (h, w) long | () long | (C, h, w) float,
    "index": int}."""

    def __init__(
        self, task: str, split: Split, preprocess: Preprocess, *, indices: list[int] | None = None,
        augment: Augment | None = None, seed: int = 0,
    ) -> None:
        self.task, self.split, self.preprocess = task, split, preprocess
        self.indices = list(range(len(split))) if indices is None else list(indices)
        self.augment, self.seed, self.epoch = augment, seed, 0
        self._cache: dict[int, tuple[np.ndarray, Any]] = {}  # index -> (cropped image, target) at working size
        self._cached_bytes = 0

    def set_epoch(self, epoch: int) -> None:
        """Augmentations are drawn from (seed, epoch, index): the same on a resumed run."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def working(self, index: int) -> tuple[np.ndarray, Any]:
        """The frame cropped by the crop rule (image and mask or target alike), at most
        ``WORK_SCALE`` x the input size per side."""
        if index in self._cache:
            return self._cache[index]
        image, target = self.split.load(index)
        view = locate(image, self.preprocess, sector=False)
        image = view.crop(image)
        if self.task != "cls":  # a mask or a clean target lies on the frame's grid: the same crop
            target = view.crop(target)
        image, target = to_working_size(image, target, self.task, self.preprocess)
        size = image.nbytes + (target.nbytes if isinstance(target, np.ndarray) else 0)
        if self._cached_bytes + size <= CACHE_BYTES:
            self._cache[index] = (image, target)
            self._cached_bytes += size
        return image, target

    def __getitem__(self, item: int) -> dict:
        index = self.indices[item]
        image, target = self.working(index)
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            geometric = target if self.task != "cls" else None
            image, geometric = self.augment(image, geometric, rng, target_is_image=self.task == "enhance")
            if self.task != "cls":
                target = geometric
        x = torch.from_numpy(preprocess_frame(image, self.preprocess)[0])
        if self.task == "seg":
            y = torch.from_numpy(resize_label_map(target, self.preprocess).astype(np.int64))
        elif self.task == "cls":
            y = torch.tensor(int(target), dtype=torch.long)
        else:
            y = torch.from_numpy(preprocess_frame(target, self.preprocess)[0])
        return {"image": x, "target": y, "index": index}
