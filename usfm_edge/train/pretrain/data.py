"""Pretraining data: frames from folders, manifests, DICOM cines, videos and tar shards;
ultrasound augmentations; SimMIM masks made here, in the loader; and an organ-balanced
sampler that stays correct under DDP."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from usfm_edge.data.dicom import read_dicom
from usfm_edge.data.images import read_image
from usfm_edge.data.index import index_sources
from usfm_edge.data.layouts import ManifestEntry, read_manifest
from usfm_edge.contracts import Intensity, Preprocess
from usfm_edge.contracts.prepare import locate, to_channels, to_unit_range
from usfm_edge.contracts.region import Box
from usfm_edge.data.shards import ShardMember, index_shard, read_member
from usfm_edge.data.video import VIDEO_SUFFIXES
from usfm_edge.errors import InputError
from usfm_edge.train.pretrain.masking import block_mask

Item = ManifestEntry | ShardMember


def collect_items(sources: Sequence[str | Path], *, stride: int = 1, threshold: float = 2.0) -> tuple[list[Item], list[str]]:
    """Every frame the sources hold, and the errors met on the way (unreadable files)."""
    items: list[Item] = []
    errors: list[str] = []
    missing = [str(s) for s in sources if not Path(s).exists()]
    if missing:
        raise InputError(f"--data {missing[0]}: no such file or folder")
    for source in map(Path, sources):
        if source.suffix == ".csv":
            items.extend(read_manifest(source))
        elif source.suffix == ".tar":
            items.extend(index_shard(source))
        elif source.is_dir() and any(source.glob("*.tar")):
            for shard in sorted(source.glob("*.tar")):
                items.extend(index_shard(shard))
        else:
            report = index_sources([source], stride=stride, threshold=threshold)
            items.extend(report.entries)
            errors.extend(report.errors)
    if not items:
        raise InputError(f"no frames found in {', '.join(map(str, sources))}; give image folders, a manifest, "
                         "DICOM/video files or tar shards")
    return items, errors


class FrameReader:
    """Loads one item's frame; keeps the last few multi-frame files decoded (a cine's frames
    are usually drawn close together)."""

    def __init__(self, cache: int = 4) -> None:
        self._cache: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._size = cache

    def __call__(self, item: Item) -> np.ndarray:
        if isinstance(item, ShardMember):
            return read_member(item)
        if item.frame is None:
            return read_image(item.path)
        if item.path.suffix.lower() in VIDEO_SUFFIXES:
            return self._video_frame(item.path, item.frame)
        return self._frames(item.path)[item.frame]

    def _frames(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            self._cache[path] = read_dicom(path).frames
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(path)
        return self._cache[path]

    @staticmethod
    def _video_frame(path: Path, index: int) -> np.ndarray:
        capture = cv2.VideoCapture(str(path))
        try:
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = capture.read()
        finally:
            capture.release()
        if not ok:
            raise InputError(f"{path}: frame {index} could not be decoded")
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


class PretrainDataset(Dataset):
    """Keys are (index, epoch, draw) from the sampler, so augmentations and masks are drawn
    from a generator seeded by the key: the same on a resumed run, in any worker."""

    def __init__(self, items: list[Item], *, img_size: int, in_chans: int = 1, mask_patch: int = 32,
                 mask_ratio: float = 0.6, augment: bool = True, seed: int = 0,
                 crop_scale: tuple[float, float] = (0.5, 1.0), spec: Preprocess | None = None) -> None:
        if img_size % mask_patch:
            raise InputError(f"img_size {img_size} must be a multiple of mask_patch {mask_patch}")
        self.items, self.img_size, self.in_chans = items, img_size, in_chans
        self.mask_patch, self.mask_ratio, self.augment, self.seed = mask_patch, mask_ratio, augment, seed
        self.crop_scale = crop_scale
        # The crop rule of the encoder's model directory: frames are located as in every stage.
        self.spec = spec or Preprocess.for_channels(in_chans, (img_size, img_size))
        self._boxes: dict[int, Box] = {}
        self.organs = sorted({item.organ for item in items})
        self.organ_ids = [self.organs.index(item.organ) for item in items]
        self.read = FrameReader()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key) -> dict:
        index, epoch, draw = key if isinstance(key, tuple) else (key, 0, key)
        rng = np.random.default_rng((self.seed, epoch, draw))
        raw = self.read(self.items[index])
        if index not in self._boxes:
            self._boxes[index] = locate(raw, self.spec, sector=False).box
        frame = to_channels(to_unit_range(raw, Intensity.UNIT_RANGE), self.in_chans)
        frame = self._view(frame, self._boxes[index], rng)
        grid = (self.img_size // self.mask_patch,) * 2
        return {"image": torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))),
                "mask": torch.from_numpy(block_mask(grid, self.mask_ratio, rng)),
                "index": index, "organ": self.organ_ids[index]}

    def _view(self, frame: np.ndarray, box: Box, rng: np.random.Generator) -> np.ndarray:
        """(H, W, C) unit -> (S, S, C): a crop inside the scan region ``box`` (x, y, w, h), a
        lateral flip, gain and gamma (ultrasound-plausible changes only), resized to the
        training size."""
        left, top = box[0], box[1]
        right, bottom = left + box[2], top + box[3]
        if self.augment:
            h, w = bottom - top, right - left
            scale = math.sqrt(rng.uniform(*self.crop_scale))
            ch, cw = max(8, int(h * scale)), max(8, int(w * scale * rng.uniform(0.85, 1.15)))
            cw = min(cw, w)
            top += int(rng.integers(0, h - ch + 1))
            left += int(rng.integers(0, w - cw + 1))
            bottom, right = top + ch, left + cw
        crop = frame[top:bottom, left:right]
        out = cv2.resize(crop, (self.img_size, self.img_size), interpolation=cv2.INTER_AREA).reshape(
            self.img_size, self.img_size, -1)
        if self.augment:
            if rng.random() < 0.5:
                out = out[:, ::-1]
            out = np.clip(out * rng.uniform(0.8, 1.2), 0, 1) ** rng.uniform(0.8, 1.25)
        return out.astype(np.float32)


class OrganBalancedSampler(Sampler):
    """Draws items with probability proportional to n_organ^-alpha (alpha 1: organs equally
    often; 0: as the archive has them), so an organ's share is n^(1-alpha) normalised.

    Under DDP every rank computes the same epoch-level draw from (seed, epoch) and takes its
    own slice (positions rank, rank + world, ...), so no draw is processed twice. With
    alpha 0 the draw is a permutation: ranks then see disjoint items. ``start`` skips draws
    already consumed before a resume."""

    def __init__(self, organ_ids: Sequence[int], *, alpha: float = 0.5, seed: int = 0, rank: int = 0,
                 world: int = 1, samples_per_epoch: int | None = None) -> None:
        self.organ_ids = torch.as_tensor(list(organ_ids))
        self.alpha, self.seed, self.rank, self.world = alpha, seed, rank, world
        total = samples_per_epoch or len(self.organ_ids)
        self.per_rank = math.ceil(total / world)
        self.epoch, self.start = 0, 0

    def weights(self) -> torch.Tensor:
        counts = torch.bincount(self.organ_ids).double()
        return counts[self.organ_ids] ** -self.alpha

    def target_shares(self) -> torch.Tensor:
        counts = torch.bincount(self.organ_ids).double()
        shares = counts ** (1 - self.alpha)
        return shares / shares.sum()

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def epoch_draw(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        total = self.per_rank * self.world
        if self.alpha == 0:
            reps = math.ceil(total / len(self.organ_ids))
            return torch.cat([torch.randperm(len(self.organ_ids), generator=generator) for _ in range(reps)])[:total]
        return torch.multinomial(self.weights(), total, replacement=True, generator=generator)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        draw = self.epoch_draw()
        for position in range(self.rank + self.start * self.world, len(draw), self.world):
            yield int(draw[position]), self.epoch, position

    def __len__(self) -> int:
        return self.per_rank - self.start
