"""Sinks that write files: an overlay video, an image folder, JSONL of per-frame results.
Files are complete when ``close`` returns (the pipeline closes sinks on SIGINT/SIGTERM too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from usfm_edge.errors import InputError
from usfm_edge.runtime.frame import Result
from usfm_edge.runtime.postprocess import mask_to_polygons, mask_to_rle
from usfm_edge.runtime.sinks.base import Sink, SinkContext, register_sink

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def _writable(path: Path) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path.parent}: cannot create the output folder ({exc.strerror})") from None
    return path


class VideoSink(Sink):
    scheme = "video"

    def __init__(self, path: str, fps: float, fourcc: str | None = None) -> None:
        self.path = _writable(Path(path))
        if self.path.suffix.lower() not in FOURCC and fourcc is None:
            raise InputError(f"video:{path}: give a .mp4, .avi or .mkv file (or ?fourcc=XXXX)")
        self.fps, self.fourcc = fps, fourcc or FOURCC[self.path.suffix.lower()]
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, result: Result) -> None:
        image = result.overlay
        if self.writer is None:
            self.size = (image.shape[1], image.shape[0])
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, self.size)
            if not self.writer.isOpened():
                raise InputError(f"{self.path}: OpenCV cannot write {self.fourcc} video here; try a .avi file")
        if (image.shape[1], image.shape[0]) != self.size:  # a resolution change mid-run: keep one file
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None

    def describe(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "path": str(self.path), "frames": self.frames}


class ImageFolderSink(Sink):
    scheme = "images"

    def __init__(self, folder: str, ext: str = "png") -> None:
        self.folder = Path(folder)
        _writable(self.folder / "x")
        self.ext, self.frames = ext.lstrip("."), 0

    def write(self, result: Result) -> None:
        path = self.folder / f"frame_{result.frame.index:06d}.{self.ext}"
        if not cv2.imwrite(str(path), cv2.cvtColor(result.overlay, cv2.COLOR_RGB2BGR)):
            raise InputError(f"{path}: cannot write the image (disk full or no permission)")
        self.frames += 1

    def describe(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "path": str(self.folder), "frames": self.frames}


class JsonlSink(Sink):
    """One JSON object per frame: index, times, and per region its box and result (masks as
    RLE or polygons in the crop's pixels, class probabilities)."""

    scheme = "jsonl"
    needs_overlay = False

    def __init__(self, path: str, masks: str = "rle") -> None:
        if masks not in ("rle", "polygons"):
            raise InputError(f"jsonl sink: masks={masks!r}; give masks=rle or masks=polygons")
        self.path, self.masks, self.frames = _writable(Path(path)), masks, 0
        self.file = self.path.open("w")

    def write(self, result: Result) -> None:
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
        self.file.write(json.dumps(record) + "\n")
        self.frames += 1

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()

    def describe(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "path": str(self.path), "frames": self.frames}


@register_sink("video")
def _video(target: str, params: dict[str, str], context: SinkContext) -> Sink:
    return VideoSink(target, float(params.get("fps", context.fps or 30.0)), params.get("fourcc"))


@register_sink("images")
def _images(target: str, params: dict[str, str], context: SinkContext) -> Sink:
    return ImageFolderSink(target, params.get("ext", "png"))


@register_sink("jsonl")
def _jsonl(target: str, params: dict[str, str], context: SinkContext) -> Sink:
    return JsonlSink(target, params.get("masks", "rle"))
