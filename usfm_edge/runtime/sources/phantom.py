"""``phantom:``: a live synthetic B-mode stream, so everything runs without a probe.

``phantom:?fps=30&organ=breast&size=256&frames=32&ui=1&canvas=480x640&seed=0``. A cine of
``frames`` frames is rendered once at open (rendering is ~0.1 s a frame, slower than real
time) and played in a loop at ``fps``, inside scanner UI chrome on a ``canvas`` (H x W)
screen when ``ui=1``. ``fps=0`` hands the ``frames`` over once, in order, as fast as they
are taken (deterministic, for replay tests; ``loop=1`` repeats them). The truth (lesion
masks on the screen grid) stays at hand for live accuracy checks.
"""

from __future__ import annotations

import time

import numpy as np

from usfm_edge.errors import InputError
from usfm_edge.runtime.frame import Box, Frame
from usfm_edge.runtime.sources.base import Source, SourceOptions, float_param, int_param, register_source


def _size(value: str, key: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in value.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 16:
        raise InputError(f"phantom: {key}={value!r}: give H x W in pixels, e.g. {key}=480x640 (>= 16)")
    return (parts[0], parts[-1])


class PhantomSource(Source):
    scheme = "phantom"

    def __init__(self, params: dict[str, str], options: SourceOptions) -> None:
        from usfm_edge.data.phantom import PhantomConfig, list_organs

        organ = params.get("organ", "breast")
        if organ not in list_organs():
            raise InputError(f"phantom: organ={organ!r} is unknown; choose from {', '.join(list_organs())}")
        self.config = PhantomConfig(size=_size(params.get("size", "256"), "size"), organ=organ)
        self.n_frames = int_param(params, "frames", 32)
        self.seed = int_param(params, "seed", 0)
        self.fps = float_param(params, "fps", 30.0)
        self.ui = params.get("ui", "1") not in ("0", "false", "no")
        self.canvas = _size(params.get("canvas", "480x640"), "canvas")
        if self.n_frames < 1 or self.fps < 0:
            raise InputError("phantom: frames must be >= 1 and fps >= 0")
        self.live = self.fps > 0
        # A live probe never runs out; a replay (fps=0) ends after its frames unless asked to loop.
        self.loop = params.get("loop", "1" if self.live else "0") not in ("0", "false", "no") or options.loop
        self.screens: list[np.ndarray] = []
        self.truth: list[np.ndarray] = []  # (H, W) uint8 lesion masks on the screen grid
        self.box: Box | None = None
        self._index, self._t0 = 0, 0.0

    def open(self) -> None:
        if not self.screens:
            self._render()
        self._t0 = time.monotonic()

    def _render(self) -> None:
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


@register_source("phantom")
def _phantom(target: str, params: dict[str, str], options: SourceOptions) -> Source:
    return PhantomSource(params, options)
