"""What flows through the pipeline: a captured frame, and the result made from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Box = tuple[int, int, int, int]  # (x, y, w, h) in pixels of the captured frame


@dataclass
class Frame:
    """One frame as a source delivers it. ``image`` is (H, W) gray or (H, W, 3) RGB (not
    OpenCV's BGR), uint8 or uint16."""

    image: np.ndarray
    index: int  # position in the source's stream (gaps = frames the source itself lost)
    captured: float  # time.monotonic() when the source handed it over
    source_time_ms: float | None = None  # the file's own clock (DICOM frame time, video position)
    regions: tuple[Box, ...] = ()  # where the source says the image is (DICOM ultrasound regions)


@dataclass
class Result:
    """One processed frame: what sinks write. ``outputs`` has one entry per region."""

    frame: Frame
    boxes: list[Box]
    outputs: list[dict[str, Any]]  # per region: postprocessed output (mask, probabilities, image)
    overlay: np.ndarray | None  # (H, W, 3) RGB uint8, the frame with the results drawn on it
    times_ms: dict[str, float] = field(default_factory=dict)  # per stage, this frame
    latency_ms: float = 0.0  # capture -> result ready
