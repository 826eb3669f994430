"""Sinks that write files: an overlay video, an image folder, JSONL of per-frame results.

Files are complete when ``close`` returns (the pipeline closes sinks on SIGINT/SIGTERM too),
and a sink reports only what really reached the disk: the folder is proven writable before
the run starts, every write is checked, a video is reopened at close and its decodable frames
counted (OpenCV's writer reports no errors: on a full disk it goes on "writing" into an
undecodable file), and a disk running out of space stops the run instead of recording
nothing for hours.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from usfm_edge.errors import InputError
from usfm_edge.fileio import why_write_failed
from usfm_edge.runtime.frame import Result
from usfm_edge.runtime.params import Param, ParamSet, fourcc, number, text
from usfm_edge.runtime.postprocess import mask_to_polygons, mask_to_rle
from usfm_edge.runtime.sinks.base import Sink, SinkContext, SinkError, check_writable, register_sink

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
IMAGE_EXTS = ("png", "jpg", "bmp", "tif")
DISK_CHECK_EVERY = 1  # frames between free-space checks (a statvfs call: microseconds)
DISK_MARGIN_FRAMES = 8  # stop while this many more frames would still fit, so the file can be finished
DISK_MARGIN_BYTES = 256 << 10  # and at least this much: writers buffer, and an MP4 writes its index at close
INDEX_BYTES_PER_FRAME = 64  # an MP4's index (moov) grows with the frames it lists


def free_bytes(folder: Path) -> int:
    """Bytes this process may still write on the file system holding ``folder`` (root may
    use the blocks reserved for it)."""
    stat = os.statvfs(folder)
    blocks = stat.f_bfree if hasattr(os, "geteuid") and os.geteuid() == 0 else stat.f_bavail
    return blocks * stat.f_frsize


class DiskWatch:
    """Stops a writer before the disk is full, while the file can still be finished (an MP4
    written to the last byte has no index and plays nowhere): fails when less room is left
    than a few more frames of what it has been writing, plus the index, need."""

    def __init__(self, folder: Path, what: str) -> None:
        self.folder, self.what, self.calls = folder, what, 0

    def check(self, written_bytes: int, frames: int) -> None:
        self.calls += 1
        if self.calls % DISK_CHECK_EVERY:
            return
        per_frame = written_bytes / max(frames, 1)
        try:
            free = free_bytes(self.folder)
        except OSError:
            return  # the next write reports what is wrong
        if free < DISK_MARGIN_FRAMES * per_frame + DISK_MARGIN_BYTES + INDEX_BYTES_PER_FRAME * frames:
            raise SinkError(f"{self.what}: the disk holding {self.folder} is full ({free // 1024} KiB left); "
                            f"{frames} frames written; free space or write elsewhere")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def decodable_frames(path: Path) -> int:
    """Frames a reader gets back from a video file: the container's count, or by reading
    through where the container does not say."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return 0
        stated = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if stated > 0:
            return stated
        count = 0
        while capture.grab():
            count += 1
        return count
    finally:
        capture.release()


class VideoSink(Sink):
    scheme = "video"

    def __init__(self, path: str, fps: float, code: str | None = None) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in FOURCC and code is None:
            raise InputError(f"video:{path}: give a .mp4, .avi or .mkv file (or ?fourcc=XXXX)")
        if self.path.is_dir():
            raise InputError(f"video:{path}: is a folder; give a file name, e.g. video:{self.path / 'out.mp4'}")
        check_writable(self.path.parent, f"video:{path}")
        self.fps, self.fourcc = fps, code or FOURCC[self.path.suffix.lower()]
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.disk = DiskWatch(self.path.parent, f"video:{path}")

    def write(self, result: Result) -> None:
        image = result.overlay
        if self.writer is None:
            self.size = (image.shape[1], image.shape[0])
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, self.size)
            if not self.writer.isOpened():
                raise SinkError(f"video:{self.path}: OpenCV cannot write {self.fourcc} video there "
                                "(codec missing or no permission); try a .avi file or another folder")
        if (image.shape[1], image.shape[0]) != self.size:  # a resolution change mid-run: keep one file
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self.frames += 1
        self.disk.check(_size(self.path), self.frames)

    def close(self) -> None:
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        written, self.frames = self.frames, decodable_frames(self.path)
        if self.frames < written:
            raise SinkError(f"video:{self.path}: the file holds {self.frames} decodable frames of the {written} "
                            f"written ({why_write_failed(self.path.parent, OSError('the file is incomplete'))})")

    def describe(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "path": str(self.path), "frames": self.frames}


class ImageFolderSink(Sink):
    scheme = "images"

    def __init__(self, folder: str, ext: str = "png") -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"images:{folder}: is a file; give a folder")
        check_writable(self.folder, f"images:{folder}")
        self.ext, self.frames, self.bytes = ext.lstrip("."), 0, 0
        self.disk = DiskWatch(self.folder, f"images:{folder}")

    def write(self, result: Result) -> None:
        path = self.folder / f"frame_{result.frame.index:06d}.{self.ext}"
        try:
            ok = cv2.imwrite(str(path), cv2.cvtColor(result.overlay, cv2.COLOR_RGB2BGR))
        except cv2.error:
            ok = False
        if not ok:
            path.unlink(missing_ok=True)  # a partial image is not a frame
            raise SinkError(f"images:{self.folder}: cannot write {path.name} "
                            f"({why_write_failed(self.folder, OSError('the image writer failed'))}); "
                            f"{self.frames} frames written")
        self.frames += 1
        self.bytes += _size(path)
        self.disk.check(self.bytes, self.frames)

    def describe(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "path": str(self.folder), "frames": self.frames}


class JsonlSink(Sink):
    """One JSON object per frame: index, times, and per region its box and result (masks as
    RLE or polygons in the crop's pixels, class probabilities). Each line is flushed as it is
    written, so a failing disk shows at once and ``frames`` counts lines that reached it."""

    scheme = "jsonl"
    needs_overlay = False

    def __init__(self, path: str, masks: str = "rle") -> None:
        self.path, self.masks, self.frames = Path(path), masks, 0
        if self.path.is_dir():
            raise InputError(f"jsonl:{path}: is a folder; give a file name")
        check_writable(self.path.parent, f"jsonl:{path}")
        self.file = None  # created at the first result: a run that fails to start leaves an old file as it was

    def _open(self):
        try:
            return self.path.open("w", buffering=1)  # line-buffered: each record reaches the disk as written
        except OSError as exc:
            raise SinkError(f"jsonl:{self.path}: cannot create it ({why_write_failed(self.path.parent, exc)})") from None

    def write(self, result: Result) -> None:
        if self.file is None:
            self.file = self._open()
        regions = []
        for box, out in zip(result.boxes, result.outputs):
            entry: dict[str, Any] = {"box": list(box)}
            if "mask" in out:
                entry["mask"] = mask_to_rle(out["mask"]) if self.masks == "rle" else mask_to_polygons(out["mask"])
                entry["areas_px"] = out["areas_px"]
            if "probs" in out:
                entry.update(probs=out["probs"], label=out["label"])
            if "image" in out:
                entry["image_mean"] = float(np.mean(out["image"]))
            regions.append(entry)
        record = {"index": result.frame.index, "name": result.frame.name, "source_time_ms": result.frame.source_time_ms,
                  "latency_ms": round(result.latency_ms, 3),
                  "times_ms": {k: round(v, 3) for k, v in result.times_ms.items()}, "regions": regions}
        try:
            self.file.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise SinkError(f"jsonl:{self.path}: cannot write ({why_write_failed(self.path.parent, exc)}); "
                            f"{self.frames} frames written") from None
        self.frames += 1

    def close(self) -> None:
        if self.file is None or self.file.closed:
            return
        try:
            self.file.close()
        except OSError as exc:
            raise SinkError(f"jsonl:{self.path}: cannot finish the file ({why_write_failed(self.path.parent, exc)})") \
                from None

    def describe(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "path": str(self.path), "frames": self.frames}


VIDEO_PARAMS = ParamSet(Param("fps", number, low=0.1, high=1000), Param("fourcc", fourcc))


@register_sink("video", params=VIDEO_PARAMS)
def _video(target: str, params: dict[str, Any], context: SinkContext) -> Sink:
    return VideoSink(target, params["fps"] or context.fps or 30.0, params["fourcc"])


@register_sink("images", params=ParamSet(Param("ext", text, default="png", choices=IMAGE_EXTS)))
def _images(target: str, params: dict[str, Any], context: SinkContext) -> Sink:
    return ImageFolderSink(target, params["ext"])


@register_sink("jsonl", params=ParamSet(Param("masks", text, default="rle", choices=("rle", "polygons"))))
def _jsonl(target: str, params: dict[str, Any], context: SinkContext) -> Sink:
    return JsonlSink(target, params["masks"])
