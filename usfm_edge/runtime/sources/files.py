"""Replay sources: a video file, a DICOM cine, an image folder.

By default every frame is delivered in order, as fast as the pipeline takes them, so a replay
is deterministic (golden tests, offline analysis). ``realtime`` paces them at the file's frame
rate; the pipeline then treats them like a live source and keeps only the newest frame.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from usfm_edge.data.dicom import is_dicom_file, read_dicom
from usfm_edge.data.images import IMAGE_SUFFIXES, read_image
from usfm_edge.data.video import VIDEO_SUFFIXES
from usfm_edge.errors import InputError
from usfm_edge.contracts.region import Box
from usfm_edge.runtime.frame import Frame
from usfm_edge.runtime.params import Param, ParamSet, number
from usfm_edge.runtime.sources.base import FrameError, Source, SourceError, SourceOptions, register_source

DEFAULT_FPS = 30.0  # for image folders and files that do not state a rate
# ``video:clip.mp4?fps=25``: override the rate a file states (or lacks)
FILE_PARAMS = ParamSet(Param("fps", number, low=0.1, high=1000, help="frames per second"))
log = logging.getLogger("usfm_edge.runtime")


class FileSource(Source):
    """Frames from a file, delivered in order; subclasses yield (image, time_ms)."""

    def __init__(self, path: str | Path, options: SourceOptions, fps: float | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"source {self.path}: no such file or folder")
        self.options, self.fps = options, fps
        self.live = options.realtime
        self._iter: Iterator[tuple[np.ndarray, float | None]] | None = None
        self._index, self._t0, self._loop_ms = 0, 0.0, 0.0

    def _frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        raise NotImplementedError

    @property
    def regions(self) -> tuple[Box, ...]:
        return ()

    def open(self) -> None:
        self._iter, self._t0 = self._frames(), time.monotonic()

    def read(self) -> Frame | None:
        if self._iter is None:
            self.open()
        item = next(self._iter, None)
        if item is None and self.options.loop and self._index:
            self._loop_ms = (self._index / (self.fps or DEFAULT_FPS)) * 1000.0
            self._iter = self._frames()
            item = next(self._iter, None)
        if item is None:
            return None
        image, time_ms, *named = item
        if isinstance(image, Exception):  # an unreadable file in a folder: skip it, counted
            self._index += 1
            raise FrameError(str(image))
        stamp = (time_ms if time_ms is not None else self._index * 1000.0 / (self.fps or DEFAULT_FPS))
        if self.options.realtime:  # wait until the frame's time on the file's clock
            delay = self._t0 + (stamp + (self._loop_ms if self.options.loop else 0.0)) / 1000.0 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        frame = Frame(image, self._index, time.monotonic(), stamp, self.regions, named[0] if named else None)
        self._index += 1
        return frame

    def close(self) -> None:
        self._iter = None

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.path)}


class VideoSource(FileSource):
    """A video file. Only the thread that reads it opens and releases it (the pipeline's
    capture thread): releasing a capture while another thread decodes crashes FFmpeg."""

    scheme = "video"
    short_by = 0  # frames the container states but that could not be decoded

    def __init__(self, path: str | Path, options: SourceOptions, fps: float | None = None) -> None:
        super().__init__(path, options, fps)
        if self.fps is None:  # known before open, so a video sink can be set to the same rate
            probe = cv2.VideoCapture(str(self.path))
            rate = probe.get(cv2.CAP_PROP_FPS) if probe.isOpened() else 0.0
            probe.release()
            self.fps = rate if 0 < rate < 1000 else None

    def open(self) -> None:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise InputError(f"{self.path}: OpenCV cannot open this video (corrupt, or a codec this OpenCV "
                             "build lacks); re-encode it to H.264 MP4 or MJPEG AVI")
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = self.fps or (fps if 0 < fps < 1000 else DEFAULT_FPS)
        self._capture = capture
        super().open()

    def _frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        capture = self._capture
        if self._index:  # looping: rewind
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        decoded = 0
        expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        while True:
            ok, bgr = capture.read()
            if not ok:
                if decoded == 0 and self._index == 0:
                    raise InputError(f"{self.path}: no frame could be decoded; the file is corrupt or empty")
                if expected > 0 and decoded < expected - max(1, expected // 50):
                    # Containers estimate their frame count, so this is a warning, not an error.
                    log.warning("%s: decoding stopped after %d of the %d frames the file states (truncated?)",
                                self.path, decoded, expected)
                    self.short_by = expected - decoded
                return
            decoded += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None

    def close(self) -> None:
        capture = getattr(self, "_capture", None)
        if capture is not None:
            self._capture = None
            capture.release()
        super().close()

    def describe(self) -> dict:
        return {**super().describe(), **({"undecodable_frames": self.short_by} if self.short_by else {})}


class DicomSource(FileSource):
    """A DICOM cine: frame times and ultrasound regions come from the file."""

    scheme = "dicom"

    def __init__(self, path: str | Path, options: SourceOptions, fps: float | None = None) -> None:
        super().__init__(path, options, fps)
        self.cine = read_dicom(self.path)  # decodes once: cines are small, replays are repeated
        self.fps = fps or self.cine.fps or DEFAULT_FPS
        self._regions = tuple(r.box for r in self.cine.tissue_regions)

    @property
    def regions(self) -> tuple[Box, ...]:
        return self._regions

    def _frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        times = self.cine.frame_times_ms
        for i, image in enumerate(self.cine.frames):
            yield image, (float(times[i]) if i < len(times) else None)

    def describe(self) -> dict:
        return {**super().describe(), "frames": len(self.cine.frames), "regions": [list(b) for b in self._regions]}


class ImageFolderSource(FileSource):
    """Every image under a folder, in sorted path order (recursive). Each is a still: located
    on its own and not smoothed with its neighbours (``stills``)."""

    scheme = "images"
    stills = True

    def __init__(self, path: str | Path, options: SourceOptions, fps: float | None = None) -> None:
        super().__init__(path, options, fps or DEFAULT_FPS)
        self.files = sorted(p for p in self.path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise InputError(f"source {self.path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")

    def _frames(self) -> Iterator[tuple[np.ndarray, float | None, str]]:
        for i, file in enumerate(self.files):
            name = file.relative_to(self.path).as_posix()
            if not file.exists():  # not a corrupt image: the replay itself is incomplete
                gone = "the folder is gone" if not self.path.is_dir() else "deleted or moved"
                raise SourceError(f"{file}: vanished during the run ({gone}) after {i} of {len(self.files)} images")
            try:
                yield read_image(file), None, name
            except InputError as exc:
                yield exc, None, name


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def _is_dicom(path: Path) -> bool:
    return path.is_file() and (path.suffix.lower() in (".dcm", ".dicom") or is_dicom_file(path))


@register_source("video", params=FILE_PARAMS, path_rule=_is_video)
def _video(target: str, params: dict[str, Any], options: SourceOptions) -> Source:
    return VideoSource(target, options, params["fps"])


@register_source("dicom", params=FILE_PARAMS, path_rule=_is_dicom)
def _dicom(target: str, params: dict[str, Any], options: SourceOptions) -> Source:
    return DicomSource(target, options, params["fps"])


@register_source("images", params=FILE_PARAMS, path_rule=Path.is_dir)
def _images(target: str, params: dict[str, Any], options: SourceOptions) -> Source:
    return ImageFolderSource(target, options, params["fps"])
