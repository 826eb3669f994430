"""Video files through OpenCV (whatever codecs its build has: mp4v, MJPG, XVID, FFV1, ...)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from usfm_edge.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".wmv")


@dataclass
class VideoInfo:
    path: Path
    fps: float
    frame_count: int  # as the container says; may be approximate
    width: int
    height: int


def open_video(path: str | Path) -> tuple[cv2.VideoCapture, VideoInfo]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError(f"{path}: OpenCV cannot open it (corrupt, or a codec this OpenCV build lacks)")
    info = VideoInfo(
        path=path,
        fps=float(capture.get(cv2.CAP_PROP_FPS)) or 30.0,
        frame_count=int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    return capture, info


def iter_video(path: str | Path, *, gray: bool = False) -> Iterator[np.ndarray]:
    """Frames in order as (H, W, 3) RGB uint8, or (H, W) with ``gray`` (OpenCV decodes to
    BGR even for gray-written files)."""
    capture, info = open_video(path)
    count = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if gray else cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
    if count == 0:
        raise InputError(f"{info.path}: no frame could be decoded (empty or corrupt video)")


def read_video(path: str | Path, *, gray: bool = False) -> tuple[np.ndarray, VideoInfo]:
    """All frames: (N, H, W[, 3]) uint8, and the container's info."""
    _, info = open_video(path)
    frames = np.stack(list(iter_video(path, gray=gray)))
    return frames, info


def write_video(path: str | Path, frames: np.ndarray, *, fps: float = 30.0, fourcc: str = "mp4v") -> Path:
    """(N, H, W) gray or (N, H, W, 3) RGB uint8 -> a video file (mp4v for .mp4, MJPG for .avi
    work in the pip OpenCV wheels; H.264 has no encoder there)."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or len(frames) == 0:
        raise ValueError(f"frames must be uint8 (N, H, W[, 3]); got {frames.dtype} {frames.shape}")
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h), True)
    if not writer.isOpened():
        raise InputError(f"{path}: OpenCV cannot write {fourcc} video here; try .avi with fourcc MJPG")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR if frame.ndim == 2 else cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return Path(path)
