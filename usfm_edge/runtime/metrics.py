"""Per-frame timing and counters: per-stage p50/p95/p99, input and output fps, drops, and the
temporal stability (flicker) of what is shown.

Memory stays bounded on long runs: each stage keeps a fixed-size window of recent samples
(percentiles over the last ``window`` frames) and running totals for the whole run."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import numpy as np

from usfm_edge.errors import InputError, WriteError
from usfm_edge.fileio import why_write_failed

WINDOW = 4096


class StageTimes:
    def __init__(self, window: int = WINDOW) -> None:
        self.recent: deque[float] = deque(maxlen=window)
        self.count, self.total = 0, 0.0

    def add(self, ms: float) -> None:
        self.recent.append(ms)
        self.count += 1
        self.total += ms

    def summary(self) -> dict[str, float]:
        if not self.recent:
            return {"count": 0}
        p50, p95, p99 = np.percentile(np.fromiter(self.recent, float), [50, 95, 99])
        return {"count": self.count, "mean_ms": self.total / self.count, "p50_ms": float(p50),
                "p95_ms": float(p95), "p99_ms": float(p99), "max_ms": float(max(self.recent))}


class Flicker:
    """How much what is shown changes from one frame to the next. Per region and pair of
    consecutive frames: the pixels whose class changed and the union of the two masks;
    ``mask_change`` pools them over the run (changed pixels / union pixels, so a speck that
    blinks does not count as much as a lesion that jumps), ``mask_change_pair_mean`` and
    ``_p95`` are the per-pair 1 - IoU (0 when both are empty). Class calls: how often the
    label changes. On a held probe (a static stretch of a cine) the anatomy barely moves, so
    this is flicker: what temporal smoothing (``--ema``) exists to remove. Pairs across a
    region change or a gap in frame numbers are skipped. Masks are compared on every 2nd
    pixel each way: a statistic of the whole mask at a quarter of the cost, on the sink
    thread."""

    def __init__(self, window: int = WINDOW) -> None:
        self.pair_change = StageTimes(window)
        self.changed = self.union = 0
        self.label_pairs = self.label_changes = 0
        self._previous: dict[int, tuple[int, tuple, Any]] = {}  # region -> (frame index, box, mask or label)

    def update(self, index: int, boxes: list, outputs: list[dict[str, Any]], *, region_changed: bool) -> None:
        for region, (box, out) in enumerate(zip(boxes, outputs)):
            value = out["mask"][::2, ::2] > 0 if "mask" in out else out.get("label")
            previous = self._previous.get(region)
            self._previous[region] = (index, tuple(box), value)
            if previous is None or region_changed or previous[0] != index - 1 or previous[1] != tuple(box) \
                    or value is None:
                continue
            if isinstance(value, np.ndarray):
                union = int(np.count_nonzero(value | previous[2]))
                changed = int(np.count_nonzero(value ^ previous[2]))
                self.changed, self.union = self.changed + changed, self.union + union
                self.pair_change.add(changed / union if union else 0.0)
            else:
                self.label_pairs += 1
                self.label_changes += value != previous[2]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.pair_change.count:
            recent = np.fromiter(self.pair_change.recent, float)
            out.update(mask_pairs=self.pair_change.count,
                       mask_change=self.changed / self.union if self.union else 0.0,
                       mask_change_pair_mean=self.pair_change.total / self.pair_change.count,
                       mask_change_pair_p95=float(np.percentile(recent, 95)))
        if self.label_pairs:
            out.update(label_pairs=self.label_pairs, label_change_rate=self.label_changes / self.label_pairs)
        return out


class RunMetrics:
    """Thread-safe: the capture, inference and sink threads all report here."""

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self.flicker = Flicker(window)
        self.stages: dict[str, StageTimes] = {}
        self.counts: Counter[str] = Counter()
        self.started = time.monotonic()
        self._first_in: float | None = None
        self._first_out: float | None = None
        self._last_in = self._last_out = 0.0
        self._lock = threading.Lock()

    def time(self, stage: str, ms: float) -> None:
        with self._lock:
            self.stages.setdefault(stage, StageTimes(self.window)).add(ms)

    def shown(self, index: int, boxes: list, outputs: list[dict[str, Any]], *, region_changed: bool) -> None:
        """A result was postprocessed: update the flicker figures."""
        with self._lock:
            self.flicker.update(index, boxes, outputs, region_changed=region_changed)

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] += n

    def frame_in(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.counts["frames_in"] += 1
            self._first_in = self._first_in if self._first_in is not None else now
            self._last_in = now

    def frame_out(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.counts["frames_out"] += 1
            self._first_out = self._first_out if self._first_out is not None else now
            self._last_out = now

    @staticmethod
    def _rate(n: int, first: float | None, last: float) -> float:
        return (n - 1) / (last - first) if first is not None and n > 1 and last > first else 0.0

    def fps(self) -> tuple[float, float]:
        """(input fps, output fps) over the run so far."""
        with self._lock:
            return (self._rate(self.counts["frames_in"], self._first_in, self._last_in),
                    self._rate(self.counts["frames_out"], self._first_out, self._last_out))

    def report(self, **extra: Any) -> dict[str, Any]:
        fps_in, fps_out = self.fps()
        with self._lock:
            stages = {name: times.summary() for name, times in self.stages.items()}
            counts = dict(self.counts)
            flicker = self.flicker.summary()
        dropped = {k.removeprefix("dropped_"): v for k, v in counts.items() if k.startswith("dropped_")}
        return {"duration_s": time.monotonic() - self.started, "frames_in": counts.get("frames_in", 0),
                "frames_out": counts.get("frames_out", 0), "fps_in": fps_in, "fps_out": fps_out,
                "dropped": {"total": sum(dropped.values()), **dropped},
                "stages": stages, "counts": counts, "flicker": flicker, **extra}


class ReportError(WriteError):
    """The report file cannot be written where it was asked for (exit 3)."""


def check_report_path(path: str | Path, option: str = "--report") -> Path:
    """Prove, before a run starts, that the report can be written at ``path``: a run of
    hours must not end without its record."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder; give a file name, e.g. {path / 'report.json'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.probe")
        probe.write_text("{}\n")
        probe.unlink()
    except OSError as exc:
        raise ReportError(f"{option} {path}: cannot write there ({why_write_failed(path.parent, exc)}); choose "
                          "another place") from None
    return path


def write_report(path: str | Path, report: dict[str, Any], option: str = "--report") -> Path:
    """Write ``report`` as JSON atomically (a temporary file renamed into place)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ReportError(f"{option} {path}: cannot write it ({why_write_failed(path.parent, exc)}); choose "
                          "another place") from None
    return path
