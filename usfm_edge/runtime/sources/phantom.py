"""``phantom:``: a live synthetic B-mode stream, so everything runs without a probe.

``phantom:?fps=30&organ=breast&size=256&frames=32&ui=1&canvas=480x640&seed=0``. A cine of
``frames`` frames is rendered once at open (rendering is ~0.1 s a frame, slower than real
time) and played in a loop at ``fps``, inside scanner UI chrome on a ``canvas`` (H x W)
screen when ``ui=1``. ``fps=0`` hands the ``frames`` over once, in order, as fast as they
are taken (deterministic, for replay tests; ``loop=1`` repeats them). The truth (lesion
masks on the screen grid) stays at hand for live accuracy checks.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from usfm_edge.errors import InputError
from usfm_edge.runtime.frame import Box, Frame
from usfm_edge.runtime.params import Param, ParamSet, flag, integer, number, size, text
from usfm_edge.runtime.sources.base import Source, SourceOptions, register_source

MEMORY_BUDGET = 4 << 30  # bytes of rendered screens (and their truth) a phantom: source may hold
# Rendered cines by their parameters: benchmarks and tests open the same stream many times, and
# rendering 1080p screens takes seconds. Two entries: a benchmark's two screens.
_RENDERED: OrderedDict[tuple, tuple[list[np.ndarray], list[np.ndarray], Box | None]] = OrderedDict()
_RENDERED_LOCK = threading.Lock()


def _organs() -> tuple[str, ...]:
    from usfm_edge.data.phantom import list_organs

    return tuple(list_organs())


PHANTOM_PARAMS = ParamSet(
    Param("fps", number, default=30.0, low=0, high=10000, help="0: every frame once, in order"),
    Param("organ", text, default="breast", choices=_organs),
    Param("size", size, default=(256, 256), low=16, high=2048, help="the B-mode image, H x W"),
    Param("frames", integer, default=32, low=1, high=10000),
    Param("ui", flag, default=True, help="scanner UI chrome around the image"),
    Param("canvas", size, default=(480, 640), low=16, high=8192, help="the screen, H x W"),
    Param("seed", integer, default=0, low=0, high=2**32 - 1),
    Param("loop", flag, help="repeat the frames (default: yes for a live stream, no for fps=0)"),
)


class PhantomSource(Source):
    scheme = "phantom"

    def __init__(self, params: dict[str, Any], options: SourceOptions) -> None:
        from usfm_edge.data.phantom import PhantomConfig

        self.config = PhantomConfig(size=params["size"], organ=params["organ"])
        self.n_frames, self.seed, self.fps = params["frames"], params["seed"], params["fps"]
        self.ui, self.canvas = params["ui"], params["canvas"]
        shape = self.canvas if self.ui else self.config.size
        if 2 * self.n_frames * shape[0] * shape[1] > MEMORY_BUDGET:
            raise InputError(f"phantom: frames={self.n_frames} of {shape[0]}x{shape[1]} would hold "
                             f"{2 * self.n_frames * shape[0] * shape[1] / 2**30:.1f} GiB; give fewer frames or a "
                             "smaller canvas/size")
        self.live = self.fps > 0
        # A live probe never runs out; a replay (fps=0) ends after its frames unless asked to loop.
        self.loop = (params["loop"] if params["loop"] is not None else self.live) or options.loop
        self.screens: list[np.ndarray] = []
        self.truth: list[np.ndarray] = []  # (H, W) uint8 lesion masks on the screen grid
        self.box: Box | None = None
        self._index, self._t0 = 0, 0.0

    def open(self) -> None:
        if not self.screens:
            self._render()
        self._t0 = time.monotonic()

    def _render(self) -> None:
        key = (self.config.size, self.config.organ, self.n_frames, self.seed, self.ui, self.canvas)
        with _RENDERED_LOCK:
            cached = _RENDERED.get(key)
        if cached is not None:
            self.screens, self.truth, self.box = cached
            return
        try:
            self._render_frames()
        except MemoryError:
            self.screens, self.truth = [], []
            raise InputError(f"phantom: not enough memory to render {self.n_frames} frames of "
                             f"{self.config.size[0]}x{self.config.size[1]}; give fewer frames or a smaller size") from None
        with _RENDERED_LOCK:
            _RENDERED[key] = (self.screens, self.truth, self.box)
            while len(_RENDERED) > 2:
                _RENDERED.popitem(last=False)

    def _render_frames(self) -> None:
        from usfm_edge.data.phantom import add_ui_chrome, render_cine

        for frame in render_cine(self.config, self.n_frames, rng=self.seed):
            mask = (frame.mask > 0).astype(np.uint8)
            if not self.ui:
                self.screens.append(frame.image)
                self.truth.append(mask)
                continue
            screen, box = add_ui_chrome(frame.image, canvas_size=self.canvas, rng=self.seed, scale=None,
                                        depth_cm=frame.depth_cm)
            screen_truth, _ = add_ui_chrome(mask * 255, canvas_size=self.canvas, rng=self.seed, scale=None)
            truth = np.zeros(self.canvas, np.uint8)  # only the image's box: the chrome is not a lesion
            x, y, w, h = box
            truth[y:y + h, x:x + w] = screen_truth[y:y + h, x:x + w] > 127
            self.screens.append(screen)
            self.truth.append(truth)
            self.box = box

    def read(self) -> Frame | None:
        if not self.screens:
            self.open()
        if self._index >= self.n_frames and not self.loop:
            return None
        if self.live:  # the probe does not wait for us: frame k exists at t0 + k / fps
            delay = self._t0 + self._index / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        k = self._index % self.n_frames
        frame = Frame(self.screens[k], self._index, time.monotonic(), self._index * 1000.0 / (self.fps or 30.0))
        self._index += 1
        return frame

    def truth_for(self, index: int) -> np.ndarray:
        return self.truth[index % self.n_frames]

    def describe(self) -> dict:
        return {**super().describe(), "organ": self.config.organ, "size": list(self.config.size),
                "frames": self.n_frames, "ui": self.ui, "canvas": list(self.canvas) if self.ui else None}


@register_source("phantom", params=PHANTOM_PARAMS)
def _phantom(target: str, params: dict[str, Any], options: SourceOptions) -> Source:
    return PhantomSource(params, options)
