"""A source wrapper that injects the faults a cart sees: dropped frames, stalls, corrupt
frames, an unplugged cable, a resolution change. Tests and soak runs use it; nothing is
patched."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from usfm_edge.runtime.frame import Frame
from usfm_edge.runtime.sources.base import FrameError, Source, SourceError


@dataclass
class Faults:
    """Frame indices (of the inner source) at which each fault happens."""

    drop: set[int] = field(default_factory=set)  # the frame never arrives
    stall: dict[int, float] = field(default_factory=dict)  # index -> seconds the source hangs first
    corrupt: set[int] = field(default_factory=set)  # the decoder fails on it
    garbage: set[int] = field(default_factory=set)  # it arrives, but is not an image (wrong shape, NaN)
    unplug: set[int] = field(default_factory=set)  # the read fails; the source must be reopened
    resize: dict[int, tuple[int, int]] = field(default_factory=dict)  # from index on, frames are (H, W)


class FaultySource(Source):
    def __init__(self, inner: Source, faults: Faults, *, reconnects: bool = True) -> None:
        self.inner, self.faults, self.reconnects = inner, faults, reconnects
        self.scheme, self.live, self.fps = f"faulty+{inner.scheme}", inner.live, inner.fps
        self.opens = 0
        self._unplugged: set[int] = set()
        self._size: tuple[int, int] | None = None

    def open(self) -> None:
        self.opens += 1
        self.inner.open()

    def read(self) -> Frame | None:
        while True:
            frame = self.inner.read()
            if frame is None:
                return None
            i = frame.index
            if i in self.faults.unplug and i not in self._unplugged:
                self._unplugged.add(i)
                raise SourceError(f"injected: cable unplugged at frame {i}")
            if i in self.faults.stall:
                time.sleep(self.faults.stall[i])
            if i in self.faults.drop:
                continue
            if i in self.faults.corrupt:
                raise FrameError(f"injected: frame {i} is corrupt")
            if i in self.faults.garbage:
                frame.image = np.full((3,), np.nan) if i % 2 else np.full((8, 8), np.nan, np.float32)
                return frame
            self._size = self.faults.resize.get(i, self._size)
            if self._size is not None and frame.image.shape[:2] != self._size:
                frame.image = cv2.resize(frame.image, self._size[::-1], interpolation=cv2.INTER_AREA)
            return frame

    def close(self) -> None:
        self.inner.close()
