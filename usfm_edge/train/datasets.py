"""Torch datasets over the on-disk layouts. Frames go through the one prepare path
(``usfm_edge.contracts.prepare``): located and cropped by the model's crop rule (image and
mask alike), then preprocessed, as the runtime prepares a captured screen, so a model trains on
exactly the pixels it will see deployed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from usfm_edge.data.layouts import (
    ClassificationSplit, EnhancementSplit, SegmentationSplit, load_classification, load_enhancement,
    load_segmentation,
)
from usfm_edge.contracts import Preprocess
from usfm_edge.contracts.prepare import locate, preprocess_frame, resize_label_map
from usfm_edge.contracts.region import Box
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
        self._boxes: dict[int, Box] = {}  # the crop of each frame: located once, it never changes

    def set_epoch(self, epoch: int) -> None:
        """Augmentations are drawn from (seed, epoch, index): the same on a resumed run."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> dict:
        index = self.indices[item]
        image, target = self.split.load(index)
        if index not in self._boxes:
            self._boxes[index] = locate(image, self.preprocess, sector=False).box
        x0, y0, w, h = self._boxes[index]
        image = image[y0:y0 + h, x0:x0 + w]
        if self.task != "cls":  # a mask or a clean target lies on the frame's grid: the same crop
            target = target[y0:y0 + h, x0:x0 + w]
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
