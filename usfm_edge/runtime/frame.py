"""What flows through the pipeline: a captured frame, and the result made from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from usfm_edge.contracts.region import Box, View


@dataclass
class Frame:
    """One frame as a source delivers it. ``image`` is (H, W) gray or (H, W, 3) RGB (not
    OpenCV's BGR), uint8 or uint16."""

    image: np.ndarray
    index: int  # position in the source's stream (gaps = frames the source itself lost)
    captured: float  # time.monotonic() when the source handed it over
    source_time_ms: float | None = None  # the file's own clock (DICOM frame time, video position)
    regions: tuple[Box, ...] = ()  # where the source says the image is (DICOM ultrasound regions)
    name: str | None = None  # the file a still came from (image folders), relative to the folder


@dataclass
class Result:
    """One processed frame: what sinks write. The inference thread fills ``raw``; the sink
    thread postprocesses it into ``outputs`` (one entry per region) and draws ``overlay``."""

    frame: Frame
    views: list[View]  # per region: the crop box and its imaging sector
    raw: np.ndarray  # (regions, ...) the network's output, one row per region
    outputs: list[dict[str, Any]] = field(default_factory=list)  # per region: mask, probabilities or image
    overlay: np.ndarray | None = None  # (H, W, 3) RGB uint8, the frame with the results drawn on it
    times_ms: dict[str, float] = field(default_factory=dict)  # per stage, this frame
    latency_ms: float = 0.0  # capture -> network output ready
    region_changed: bool = False  # the crop moved: temporal smoothing starts again

    @property
    def boxes(self) -> list[Box]:
        return [view.box for view in self.views]
