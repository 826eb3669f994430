"""Live capture through OpenCV: V4L2/UVC capture cards, GStreamer pipelines (Jetson
``nvvidconv``), RTSP/HTTP streams.

The device is opened through an injectable factory (``SourceOptions.capture_factory``,
default ``cv2.VideoCapture``), so tests check the properties set and their order without
hardware. Order matters on V4L2: the FOURCC must be set before the size (a capture card
offers 1080p60 only as MJPG), and a driver buffer of 1 keeps the frame we get the newest.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from usfm_edge.errors import DependencyError, InputError
from usfm_edge.runtime.frame import Frame
from usfm_edge.runtime.params import Param, ParamSet, fourcc, integer, number
from usfm_edge.runtime.sources.base import Source, SourceError, SourceOptions, register_source

V4L2_PARAMS = ParamSet(Param("width", integer, low=1, high=16384), Param("height", integer, low=1, high=16384),
                       Param("fps", number, low=0.1, high=1000), Param("fourcc", fourcc))


def _default_factory(target: Any, api: int):
    return cv2.VideoCapture(target, api)


def opencv_has(backend: str) -> bool:
    """Whether this OpenCV build was compiled with a video I/O backend (e.g. GStreamer)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith(f"{backend}:"):
            return "YES" in line.split(":", 1)[1]
    return False


class CaptureSource(Source):
    """Any OpenCV capture; subclasses say what to open and which properties to set."""

    live = True
    reconnects = True
    api = cv2.CAP_ANY
    open_hint = "the capture device or stream (unplugged, busy in another program, or wrong address)"

    def __init__(self, target: str, params: dict[str, Any], options: SourceOptions) -> None:
        self.target, self.params = target, params
        self.factory = options.capture_factory or _default_factory
        self.fps = params.get("fps")
        self._capture = None
        self._index = 0

    def properties(self) -> list[tuple[int, float]]:
        """(property, value) pairs to set after opening, in order."""
        return [(cv2.CAP_PROP_BUFFERSIZE, 1)]

    def device(self) -> Any:
        return self.target

    def open(self) -> None:
        capture = self.factory(self.device(), self.api)
        if capture is None or not capture.isOpened():
            raise SourceError(f"{self.scheme}:{self.target}: cannot open {self.open_hint}")
        for prop, value in self.properties():
            capture.set(prop, value)  # a driver may refuse one; what it delivers is checked per frame
        reported = capture.get(cv2.CAP_PROP_FPS)
        self.fps = self.fps or (reported if reported and 0 < reported < 1000 else None)
        self._capture = capture

    def read(self) -> Frame | None:
        if self._capture is None:
            self.open()
        ok, bgr = self._capture.read()
        if not ok or bgr is None:
            raise SourceError(f"{self.scheme}:{self.target}: no frame (signal lost or device unplugged)")
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3 and bgr.shape[2] == 3 else bgr
        frame = Frame(np.ascontiguousarray(image), self._index, time.monotonic())
        self._index += 1
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def describe(self) -> dict:
        return {**super().describe(), "target": self.target}


class V4l2Source(CaptureSource):
    """``v4l2:/dev/video0?width=1920&height=1080&fps=60&fourcc=MJPG`` (or ``v4l2:0``)."""

    scheme = "v4l2"
    api = cv2.CAP_V4L2

    def device(self) -> Any:
        return int(self.target) if self.target.isdigit() else self.target

    def properties(self) -> list[tuple[int, float]]:
        props: list[tuple[int, float]] = []
        code = self.params.get("fourcc")
        if code:
            props.append((cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*code)))
        for key, prop in (("width", cv2.CAP_PROP_FRAME_WIDTH), ("height", cv2.CAP_PROP_FRAME_HEIGHT)):
            value = self.params.get(key)
            if value:
                props.append((prop, value))
        if self.fps:
            props.append((cv2.CAP_PROP_FPS, self.fps))
        return props + super().properties()


class GstreamerSource(CaptureSource):
    """``gst:PIPELINE`` ending in ``appsink``.

    A live pipeline (a camera, a capture card, a network stream) is read like any capture:
    ``drop=1 max-buffers=1`` are added to the appsink when missing so it never queues stale
    frames, and a lost signal is reopened with back-off. A finite one, which starts with
    ``filesrc``/``multifilesrc`` or sets ``num-buffers`` on its first element (a recorded
    cine, a test pattern), is a replay like a video file: every frame in order, as fast as it
    is taken (``sync=false``, a two-frame appsink queue that holds the decoder back instead of
    dropping), and the end of the stream ends the run; with ``--realtime`` it plays at its
    clock's pace and drops like a live source."""

    scheme = "gst"
    api = cv2.CAP_GSTREAMER
    open_hint = ("the pipeline (an element or plugin missing: gst-inspect-1.0 NAME tells; a file that is not there; "
                 "a device in use; or caps no element can convert)")
    FINITE_SOURCES = ("filesrc", "multifilesrc")

    def __init__(self, target: str, params: dict[str, Any], options: SourceOptions) -> None:
        super().__init__(target, params, options)
        first = target.strip().split("!", 1)[0]
        self.finite = first.split()[0] in self.FINITE_SOURCES if first.strip() else False
        self.finite = self.finite or "num-buffers=" in first
        self.live = not self.finite or options.realtime
        self.reconnects = not self.finite

    def device(self) -> Any:
        pipeline = self.target.strip()
        if "appsink" not in pipeline:
            raise InputError("gst: the pipeline must end in appsink, e.g. "
                             "'v4l2src ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1'")
        sink_options = pipeline.rsplit("appsink", 1)[1]
        wanted = ("drop=1", "max-buffers=1") if self.live else ("sync=false", "drop=0", "max-buffers=2")
        for option in wanted:
            if option.split("=")[0] not in sink_options:
                pipeline += f" {option}"
        if self.factory is _default_factory and not opencv_has("GStreamer"):
            raise DependencyError("this OpenCV build has no GStreamer support (pip's opencv-python lacks it); "
                                  "on a Jetson use JetPack's OpenCV (python3-opencv), elsewhere build OpenCV "
                                  "with -DWITH_GSTREAMER=ON, or use a v4l2: source")
        return pipeline

    def read(self) -> Frame | None:
        try:
            return super().read()
        except SourceError:
            if self.finite and self._index > 0:
                return None  # the end of a recorded or counted stream
            raise

    def properties(self) -> list[tuple[int, float]]:
        return []  # the pipeline string says it all

    def describe(self) -> dict:
        return {**super().describe(), "finite": self.finite}


class StreamSource(CaptureSource):
    """``rtsp://...``, ``http(s)://...`` (MJPEG or HLS) through OpenCV's FFmpeg backend."""

    scheme = "rtsp"
    api = cv2.CAP_FFMPEG


@register_source("v4l2", params=V4L2_PARAMS)
def _v4l2(target: str, params: dict[str, Any], options: SourceOptions) -> Source:
    return V4l2Source(target, params, options)


@register_source("gst")  # the pipeline string says everything; GStreamer's own syntax, no URI options
def _gst(target: str, params: dict[str, Any], options: SourceOptions) -> Source:
    return GstreamerSource(target, params, options)


@register_source("rtsp", "rtsps", "http", "https")  # the whole URL is the stream's address
def _stream(target: str, params: dict[str, Any], options: SourceOptions) -> Source:
    source = StreamSource(target, params, options)
    source.scheme = target.split(":", 1)[0]
    return source
