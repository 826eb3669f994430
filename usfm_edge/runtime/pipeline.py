"""The real-time loop: capture thread -> newest frame -> [prepare thread] crop, preprocess
-> newest input -> infer (caller's thread) -> sink thread (postprocess, overlay, write).

No stage waits on a slower one: the capture thread reads as fast as the source delivers and
keeps only the newest frame (live sources; older ones are dropped and counted); inference
always takes the newest input; the sink thread maps outputs back onto the frame, draws and
writes, behind a short queue that drops rather than blocks when a display or disk falls
behind. Where inference leaves a core free (``--threads`` below the cores this process may
use, the default), a prepare thread finds the scan region, crops and preprocesses the next
frame while the current one is in inference (on the 2-core development machine, 2026-11-24,
with one inference thread: 87 % -> 99 % of the bare backend's fps on a 1080p screen,
benchmarks/results/pipeline_prepare_ab). With every core given to inference the extra thread
only competes with it (80 % -> 70 % there), so the inference thread then prepares its own
frames. Replays (files without
``--realtime``, ``phantom:?fps=0``) instead hand over every frame in order and the queues
block: deterministic output, nothing dropped.

Ending a run, whichever way (the end of the source, ``max_frames``, ``stop()`` from a signal
handler, an error in any thread), never waits without bound and never pulls a resource from
under a thread that uses it:
- the capture thread owns its source: it opens, reads and closes it (closing a video capture
  while another thread is inside ``read()`` crashes or deadlocks FFmpeg);
- every blocking put and get wakes every ``POLL_S`` to look at the stop flag;
- the first failure of any thread (a source that cannot be read, a sink that cannot write, a
  callback that raises, too many failed frames) stops the run and is raised by ``run()``
  after the sinks are closed, so files are finalised and the report counts what was written.

Every stage is injected (source, model, postprocessor, tracker, sinks), so tests and
benchmarks run the real loop with their own parts.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from usfm_edge.contracts.region import Box, View
from usfm_edge.errors import InputError, UsfmEdgeError
from usfm_edge.runtime.frame import Frame, Result
from usfm_edge.runtime.metrics import RunMetrics
from usfm_edge.runtime.overlay import draw_result
from usfm_edge.runtime.postprocess import Postprocessor
from usfm_edge.runtime.sinks.base import Sink, SinkError
from usfm_edge.runtime.sources.base import FrameError, Source, SourceError

log = logging.getLogger("usfm_edge.runtime")

POLL_S = 0.1  # every blocking wait wakes this often to look at the stop flag
SINK_DRAIN_S = 10.0  # longest wait for the sink thread to write what is queued at the end
THREAD_JOIN_S = 2.0  # longest wait for the capture and prepare threads to leave
DISPLAY_REFRESH_HZ = 60.0  # a monitor's refresh, for the glass-to-glass estimate


def put_until_stopped(fifo: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put ``item`` in a bounded queue, waiting while it is full, unless ``stop`` is set first
    (a consumer that has stopped must not leave its producer waiting forever)."""
    while not stop.is_set():
        try:
            fifo.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False


class BackendFailedError(UsfmEdgeError):
    """The backend (or preparing frames for it) failed on too many frames in a row."""


class InferenceModel(Protocol):
    task: str

    def preprocess(self, crops: list[np.ndarray]) -> np.ndarray: ...

    def infer(self, x: np.ndarray) -> np.ndarray: ...


class Tracker(Protocol):
    changes: int

    def update(self, image: np.ndarray, source_regions: Sequence[Box] = ()) -> list[View]: ...


@dataclass
class PipelineConfig:
    max_frames: int | None = None  # stop after this many processed frames
    max_backend_errors: int = 10  # consecutive failed frames before giving up
    reconnect_backoff_s: tuple[float, float] = (0.25, 5.0)  # first and longest wait between reopen tries
    max_reconnects: int | None = None  # per run; None: keep trying (a cart's cable comes back)
    stall_timeout_s: float = 2.0  # no frame for this long counts a stall
    sink_queue: int = 4  # results waiting for the sink thread
    prepare_thread: bool = False  # crop + preprocess on their own thread (when a core is spare)


@dataclass
class Prepared:
    """A frame cropped to its regions and preprocessed, waiting for inference; or the error
    that stopped it (counted where inference failures are)."""

    frame: Frame
    views: list[View]
    x: np.ndarray | None
    times_ms: dict[str, float]
    region_changed: bool
    error: Exception | None = None


class Mailbox:
    """A one-item mailbox (live: a new item replaces an unread one, counted as a stale frame)
    or a short FIFO (replay: the writer waits, looking at ``stop`` while it does)."""

    def __init__(self, *, keep_all: bool, metrics: RunMetrics, stop: threading.Event) -> None:
        self.keep_all, self.metrics, self.stop = keep_all, metrics, stop
        self._fifo: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._item: Any = None
        self._ended = False
        self._cond = threading.Condition()

    def put(self, item: Any) -> None:
        if self.keep_all:
            put_until_stopped(self._fifo, item, self.stop)
            return
        with self._cond:
            if self._item is not None:
                self.metrics.count("dropped_stale")
            self._item = item
            self._cond.notify()

    def end(self) -> None:
        if self.keep_all:
            while True:  # the reader may be gone already; never block forever
                try:
                    self._fifo.put(None, timeout=POLL_S)
                    return
                except queue.Full:
                    if self.stop.is_set():
                        return
        with self._cond:
            self._ended = True
            self._cond.notify()

    def get(self, timeout: float) -> Any:
        """The next item; None at the end of the stream; False on timeout."""
        if self.keep_all:
            try:
                return self._fifo.get(timeout=timeout)
            except queue.Empty:
                return False
        with self._cond:
            if not self._cond.wait_for(lambda: self._item is not None or self._ended, timeout):
                return False
            item, self._item = self._item, None
            return item


def check_frame(frame: Frame) -> None:
    image = frame.image
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or min(image.shape[:2], default=0) < 8 \
            or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise InputError(f"frame {frame.index}: shape {getattr(image, 'shape', None)} is not an image")
    if image.dtype not in (np.uint8, np.uint16):
        if not np.issubdtype(image.dtype, np.floating) or not np.isfinite(image).all():
            raise InputError(f"frame {frame.index}: dtype {image.dtype} with non-finite values")


class Pipeline:
    def __init__(self, source: Source, model: InferenceModel, postprocessor: Postprocessor, tracker: Tracker,
                 sinks: list[Sink], config: PipelineConfig | None = None, *,
                 metrics: RunMetrics | None = None,
                 on_result: Callable[[Result], None] | None = None) -> None:
        """``on_result`` is called on the sink thread with every postprocessed result; if it
        raises, the run stops and ``run()`` raises that error."""
        self.source, self.model, self.post, self.tracker = source, model, postprocessor, tracker
        self.sinks, self.config = sinks, config or PipelineConfig()
        self.metrics = metrics or RunMetrics()
        self.on_result = on_result
        self.stop_event = threading.Event()  # capture, prepare and inference wind down
        self._sink_halt = threading.Event()  # the sink thread leaves without draining its queue
        self.replay = not source.live
        self.failure: BaseException | None = None
        self._failure_lock = threading.Lock()
        self._results: queue.Queue[Result | None] = queue.Queue(
            maxsize=self.config.sink_queue if not self.replay else max(2, self.config.sink_queue))
        self._frames = Mailbox(keep_all=self.replay, metrics=self.metrics, stop=self.stop_event)
        # prepared inputs, when a prepare thread hands them over; else inference reads _frames
        self._inputs = (Mailbox(keep_all=self.replay, metrics=self.metrics, stop=self.stop_event)
                        if self.config.prepare_thread else None)
        self._last_index: int | None = None
        self._processed = 0
        self._changes_seen = 0
        self._first_skip: str | None = None
        self._threads: dict[str, threading.Thread] = {}

    def stop(self) -> None:
        """Ask the loop to finish (signal handlers call this); files are finalised on the way
        out. Safe from any thread and from a signal handler: it only sets a flag."""
        self.stop_event.set()

    def _fail(self, exc: BaseException) -> None:
        """Record the first fatal error of any thread and stop the run."""
        with self._failure_lock:
            if self.failure is None:
                self.failure = exc
        self.stop_event.set()

    def _skipped(self, exc: Exception) -> None:
        self.metrics.count("skipped_corrupt")
        self._first_skip = self._first_skip or str(exc)
        log.debug("skipped: %s", exc)

    # ------------------------------------------------------------------ capture thread

    def _capture(self) -> None:
        """Open, read and close the source: nothing else touches it while the run lasts."""
        backoff = self.config.reconnect_backoff_s[0]
        reconnects = 0
        try:
            self.source.open()
            while not self.stop_event.is_set():
                try:
                    frame = self.source.read()
                except FrameError as exc:
                    self._skipped(exc)
                    continue
                except SourceError as exc:
                    if not self.source.reconnects or (self.config.max_reconnects is not None
                                                      and reconnects >= self.config.max_reconnects):
                        raise
                    reconnects += 1
                    self.metrics.count("reconnects")
                    log.warning("%s; reconnecting in %.2f s", exc, backoff)
                    self.source.close()
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, self.config.reconnect_backoff_s[1])
                    try:
                        self.source.open()
                    except SourceError as again:  # still gone: the next read fails and waits longer
                        log.warning("%s", again)
                    continue
                if frame is None:
                    return
                backoff = self.config.reconnect_backoff_s[0]
                self.metrics.frame_in(frame.captured)
                if self._last_index is not None and frame.index > self._last_index + 1:
                    self.metrics.count("dropped_source", frame.index - self._last_index - 1)
                self._last_index = frame.index
                self._frames.put(frame)
        except BaseException as exc:  # a source that fails (or a bug in one) ends the run, never hangs it
            self._fail(exc)
        finally:
            try:
                self.source.close()
            except Exception as exc:  # releasing a device that is already gone
                log.warning("closing the source: %s", exc)
            self._frames.end()

    # ------------------------------------------------------------------ prepare thread

    def _prepare_loop(self) -> None:
        try:
            while not self.stop_event.is_set():
                frame = self._frames.get(timeout=POLL_S)
                if frame is False:
                    continue  # stalls are counted where inference waits
                if frame is None:
                    return
                item = self._admit(frame)
                if item is not None:
                    self._inputs.put(item)
        except BaseException as exc:  # a bug in the region tracker must end the run, not hang it
            self._fail(exc)
        finally:
            self._inputs.end()

    def _admit(self, frame: Frame) -> Prepared | None:
        """The frame prepared for inference, or None for a corrupt one (counted, skipped)."""
        self.metrics.time("frame_age_at_pickup", (time.monotonic() - frame.captured) * 1000.0)
        try:
            check_frame(frame)
        except InputError as exc:
            self._skipped(exc)
            return None
        return self._prepare(frame)

    def _prepare(self, frame: Frame) -> Prepared:
        times: dict[str, float] = {}
        t = time.perf_counter()
        image = frame.image
        try:
            views = self.tracker.update(image, frame.regions)
            changed = self.tracker.changes != self._changes_seen
            self._changes_seen = self.tracker.changes
            crops = [view.crop(image) for view in views]
            times["crop"], t = (time.perf_counter() - t) * 1000.0, time.perf_counter()
            x = self.model.preprocess(crops)
            times["preprocess"] = (time.perf_counter() - t) * 1000.0
        except Exception as exc:  # counted with the inference failures, on the inference thread
            return Prepared(frame, [], None, times, False, error=exc)
        return Prepared(frame, views, x, times, changed)

    # ------------------------------------------------------------------ sink thread

    def _sink_loop(self) -> None:
        several = len(self.sinks) > 1
        failures = 0
        try:
            while True:
                try:
                    result = self._results.get(timeout=POLL_S)
                except queue.Empty:
                    if self._sink_halt.is_set():
                        return
                    continue
                if result is None:
                    return
                t0 = time.perf_counter()
                try:
                    self._postprocess(result)
                    t1 = time.perf_counter()
                    if any(s.wants_overlay() for s in self.sinks):  # not for a browser view nobody watches
                        result.overlay = draw_result(result.frame.image, result.boxes, result.outputs)
                except Exception as exc:  # one bad frame must not end the run; a run of them must
                    failures += 1
                    self.metrics.count("postprocess_errors")
                    log.warning("postprocessing frame %d: %s", result.frame.index, exc)
                    if failures >= self.config.max_backend_errors:
                        raise BackendFailedError(f"postprocessing failed on {failures} frames in a row; last error: "
                                                 f"{exc}") from exc
                    continue
                failures = 0
                t2 = time.perf_counter()
                self.metrics.shown(result.frame.index, result.boxes, result.outputs,
                                   region_changed=result.region_changed)
                self._write(result, several)
                t3 = time.perf_counter()
                for stage, start, end in (("postprocess", t0, t1), ("overlay", t1, t2), ("sink", t2, t3)):
                    self.metrics.time(stage, (end - start) * 1000.0)
                self.metrics.time("capture_to_sink", (time.monotonic() - result.frame.captured) * 1000.0)
                if self.on_result is not None:
                    self.on_result(result)
        except BaseException as exc:  # a sink that cannot write, or a callback that raises: stop, say why
            self._fail(exc)

    def _write(self, result: Result, several: bool) -> None:
        for sink in self.sinks:
            t = time.perf_counter()
            try:
                sink.write(result)
            except UsfmEdgeError:
                raise
            except Exception as exc:
                raise SinkError(f"sink {sink.scheme}: {type(exc).__name__}: {exc}") from exc
            if several:
                self.metrics.time(f"sink_{sink.scheme}", (time.perf_counter() - t) * 1000.0)
            if sink.display:  # handed to what a person looks at: the runtime's part of glass-to-glass
                self.metrics.time("capture_to_display", (time.monotonic() - result.frame.captured) * 1000.0)

    def _postprocess(self, result: Result) -> None:
        """Raw outputs -> masks / probabilities / images on each region's grid. Here, on the
        sink thread, so mapping maps back to a 1080p crop overlaps the next inference. Results
        arrive in order, which the temporal smoothing needs."""
        if result.region_changed:
            self.post.reset()  # the region moved: smoothed maps no longer line up
        image = result.frame.image
        result.outputs = [self.post(result.raw[i], view, view.crop(image), i) for i, view in enumerate(result.views)]

    def _emit(self, result: Result) -> None:
        if self.replay:  # every result, in order; but never wait on a sink thread that has stopped
            put_until_stopped(self._results, result, self.stop_event)
            return
        try:
            self._results.put_nowait(result)
        except queue.Full:  # the sink is behind: drop its oldest result, keep the newest
            try:
                self._results.get_nowait()
                self.metrics.count("dropped_sink")
            except queue.Empty:
                pass
            self._results.put_nowait(result)

    # ------------------------------------------------------------------ inference (caller's thread)

    def _infer(self, item: Prepared) -> Result:
        if item.error is not None:
            raise item.error
        t = time.perf_counter()
        out = self.model.infer(item.x)  # (B, ...) one row per region
        times = {**item.times_ms, "infer": (time.perf_counter() - t) * 1000.0}
        return Result(item.frame, item.views, out, times_ms=times,
                      latency_ms=(time.monotonic() - item.frame.captured) * 1000.0, region_changed=item.region_changed)

    def _loop(self) -> None:
        inputs = self._inputs or self._frames
        failures, waited = 0, 0.0
        while not self.stop_event.is_set():
            if self.config.max_frames is not None and self._processed >= self.config.max_frames:
                return
            got = inputs.get(timeout=POLL_S)
            if got is False:
                waited += POLL_S
                if waited >= self.config.stall_timeout_s:
                    self.metrics.count("stalls")
                    waited = 0.0
                continue
            waited = 0.0
            if got is None:
                return
            item = got if self.config.prepare_thread else self._admit(got)
            if item is None:
                continue
            try:
                result = self._infer(item)
            except Exception as exc:
                failures += 1
                self.metrics.count("backend_errors")
                log.warning("frame %d failed: %s", item.frame.index, exc)
                if failures >= self.config.max_backend_errors:
                    what = "preparing frames (region, crop, preprocess)" if item.error is not None else "inference"
                    raise BackendFailedError(f"{what} failed on {failures} frames in a row; last error: "
                                             f"{exc}") from exc
                continue
            failures = 0
            self._processed += 1
            for stage, ms in result.times_ms.items():
                self.metrics.time(stage, ms)
            self.metrics.time("capture_to_output", result.latency_ms)
            self.metrics.frame_out()
            self._emit(result)

    def run(self) -> dict[str, Any]:
        """Run to the end of the source, ``max_frames``, ``stop()`` or a fatal error; returns
        the report. Sinks are closed (files finalised) on every way out; a fatal error of any
        thread is raised after that."""
        self._threads = {"sink": threading.Thread(target=self._sink_loop, name="sink", daemon=True),
                         "capture": threading.Thread(target=self._capture, name="capture", daemon=True)}
        if self.config.prepare_thread:
            self._threads["prepare"] = threading.Thread(target=self._prepare_loop, name="prepare", daemon=True)
        try:
            for thread in self._threads.values():
                thread.start()
            self._loop()
        except BaseException as exc:  # KeyboardInterrupt included: shut down cleanly, then raise it
            self._fail(exc)
        finally:
            self._shutdown()
        if self.failure is None and self._processed == 0 and self.metrics.counts["skipped_corrupt"]:
            self.failure = InputError(f"no frame of the source could be used: {self.metrics.counts['skipped_corrupt']} "
                                      f"skipped as unreadable or not images (first: {self._first_skip})")
        if self.failure is not None:
            raise self.failure
        return self.report()

    def _shutdown(self) -> None:
        """Stop the threads in order: capture and prepare leave, the sink thread writes what is
        queued, the sinks are closed; each wait is bounded."""
        self.stop_event.set()
        sink = self._threads.get("sink")
        if sink is not None and sink.is_alive():
            self._deliver_end(sink)
            sink.join(timeout=SINK_DRAIN_S)
            if sink.is_alive():
                self._sink_halt.set()
                log.warning("the sink thread is still writing after %.0f s; closing the sinks anyway", SINK_DRAIN_S)
        for s in self.sinks:
            try:
                s.close()
            except Exception as exc:  # a file that could not be finished: the run failed
                self._fail(exc if isinstance(exc, UsfmEdgeError) else SinkError(f"sink {s.scheme}: {exc}"))
        for name in ("prepare", "capture"):
            thread = self._threads.get(name)
            if thread is not None and thread.is_alive():
                thread.join(timeout=THREAD_JOIN_S)
                if thread.is_alive():  # inside a blocking read; it releases the source when that returns
                    log.warning("the %s thread has not left after %.0f s", name, THREAD_JOIN_S)

    def _deliver_end(self, sink: threading.Thread) -> None:
        """Put the end marker behind the queued results (live runs make room by dropping the
        oldest), for as long as the sink thread is there to take it."""
        deadline = time.monotonic() + SINK_DRAIN_S
        while sink.is_alive() and time.monotonic() < deadline:
            try:
                self._results.put(None, timeout=POLL_S)
                return
            except queue.Full:
                if not self.replay:
                    try:
                        self._results.get_nowait()
                        self.metrics.count("dropped_sink")
                    except queue.Empty:
                        pass

    def report(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"region_changes": getattr(self.tracker, "changes", 0),
                                 "source": self.source.describe(), "sinks": [s.describe() for s in self.sinks]}
        ema = getattr(getattr(self.post, "config", None), "ema", None)
        if ema is not None:
            extra["ema"] = ema
        if self.failure is not None:
            extra["error"] = f"{type(self.failure).__name__}: {self.failure}"
        report = self.metrics.report(**extra)
        estimate = glass_to_glass(report["stages"], self.source.fps)
        if estimate is not None:
            report["glass_to_glass"] = estimate
        return report


def glass_to_glass(stages: dict[str, dict], source_fps: float | None) -> dict[str, Any] | None:
    """An estimate of capture-to-eye latency from what the runtime measured: from the frame's
    hand-over by the source to a viewer's socket (browser view) or the display sink, plus one
    source frame period (a capture card delivers a frame only after all of it has arrived) and
    one 60 Hz refresh (the screen's own scan-out). Not included: the scanner's processing, a
    capture card's buffering and a browser's decoding, which the runtime cannot see."""
    measured = next((k for k in ("capture_to_viewer", "capture_to_display") if stages.get(k, {}).get("count")), None)
    if measured is None:
        return None
    frame_ms = 1000.0 / source_fps if source_fps else 0.0
    refresh_ms = 1000.0 / DISPLAY_REFRESH_HZ
    p50, p99 = stages[measured]["p50_ms"], stages[measured]["p99_ms"]
    return {"measured": measured, "p50_ms": p50, "p99_ms": p99, "source_frame_ms": frame_ms,
            "display_refresh_ms": refresh_ms, "estimate_p50_ms": p50 + frame_ms + refresh_ms,
            "estimate_p99_ms": p99 + frame_ms + refresh_ms}


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask; a container's quota can be lower)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def default_threads() -> int:
    """Inference threads when ``--threads`` is not given: every core this process may use but
    one, which the prepare and sink threads then have to themselves (one on a single core).
    On the 2-core development machine this layout was the faster one in every stored run
    (benchmarks/results/pipeline_prepare_ab, pipeline_display_cpu*)."""
    return max(1, usable_cores() - 1)


def spare_core(threads: int | None) -> bool:
    """Whether inference on ``threads`` threads (None: every core) leaves a core to this
    process for a prepare thread."""
    return threads is not None and threads < usable_cores()


def set_cpu_threads(threads: int | None) -> None:
    """Cap OpenCV's own thread pool too, so ``--threads`` caps the whole runtime."""
    if threads:
        cv2.setNumThreads(max(1, threads))
