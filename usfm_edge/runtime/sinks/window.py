"""``window:``: an OpenCV window with a HUD. Asked for explicitly; fails with a clear message
where the OpenCV build (pip's headless wheel) or the machine (no display) cannot show one."""

from __future__ import annotations

import os
import sys
import time

import cv2

from usfm_edge.errors import DependencyError, InputError
from usfm_edge.runtime.frame import Result
from usfm_edge.runtime.overlay import draw_hud
from usfm_edge.runtime.sinks.base import Sink, SinkContext, SinkError, register_sink

STATS_EVERY_S = 0.5  # HUD refresh: fast enough to read, cheap next to 60 frames a second


def can_show_windows() -> str | None:
    """None when a window can be shown here, else why not."""
    gui = next((line.split(":", 1)[1].strip() for line in cv2.getBuildInformation().splitlines()
                if line.strip().startswith("GUI:")), "NONE")
    if gui.upper() == "NONE":
        return ("this OpenCV build has no GUI (opencv-python-headless); pip install opencv-python in its place, "
                "or use --sink http:127.0.0.1:8080 and a browser")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display here ($DISPLAY is not set); use --sink http:127.0.0.1:8080 or a video: sink"
    return None


class WindowSink(Sink):
    scheme = "window"
    display = True

    def __init__(self, title: str, context: SinkContext) -> None:
        problem = can_show_windows()
        if problem:
            raise (DependencyError if "OpenCV" in problem else InputError)(f"window sink: {problem}")
        self.title, self.context = title or "usfm-edge", context
        self._stats: dict = {}
        self._stats_at = 0.0
        cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)

    def write(self, result: Result) -> None:
        image = result.overlay.copy()
        now = time.monotonic()
        if self.context.stats and now - self._stats_at >= STATS_EVERY_S:  # the full report computes percentiles
            self._stats, self._stats_at = self.context.stats(), now
        stats = self._stats
        draw_hud(image, stats.get("fps_out", 0.0), result.latency_ms, stats.get("dropped", {}).get("total", 0))
        try:
            cv2.imshow(self.title, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            cv2.waitKey(1)
        except cv2.error as exc:  # the display went away (X server stopped, session ended)
            raise SinkError(f"window sink: cannot show the frame ({str(exc).strip().splitlines()[-1]})") from None

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass  # already gone with its display


@register_sink("window")
def _window(target: str, params: dict, context: SinkContext) -> Sink:
    return WindowSink(target, context)
