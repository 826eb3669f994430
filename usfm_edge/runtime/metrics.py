"""Per-frame timing and counters: per-stage p50/p95/p99, input and output fps, drops.

Memory stays bounded on long runs: each stage keeps a fixed-size window of recent samples
(percentiles over the last ``window`` frames) and running totals for the whole run."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import numpy as np

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


class RunMetrics:
    """Thread-safe: the capture, inference and sink threads all report here."""

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
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
        dropped = {k.removeprefix("dropped_"): v for k, v in counts.items() if k.startswith("dropped_")}
        return {"duration_s": time.monotonic() - self.started, "frames_in": counts.get("frames_in", 0),
                "frames_out": counts.get("frames_out", 0), "fps_in": fps_in, "fps_out": fps_out,
                "dropped": {"total": sum(dropped.values()), **dropped},
                "stages": stages, "counts": counts, **extra}


def write_report(path: str | Path, report: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path
