"""``usfm-edge run``: stream frames through a deployment bundle. Torch-free."""

from __future__ import annotations

import math
import signal
import threading
from pathlib import Path

import click

from usfm_edge.contracts.enums import Backend, Precision
from usfm_edge.runtime.quiet import quiet_video_libraries

quiet_video_libraries()  # before anything imports OpenCV (option callbacks included)

# The shared option types of ``usfm_edge.cli.options`` are not imported here: that module
# reaches the training stack (``run_resumable``), and nothing ``run`` reaches may import torch
# (tests/test_import_layers.py). These two behave the same as its POSITIVE and Finite.
POSITIVE = click.IntRange(min=1)


def _finite(_ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """click's FloatRange lets NaN through (every comparison with it is false)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value!r} is not a finite number", param=param)
    return value

SOURCES_HELP = """Frames from: v4l2:/dev/video0?width=1920&height=1080&fps=60&fourcc=MJPG (capture card),
'gst:PIPELINE ! appsink', rtsp://..., a video file, a DICOM file, an image folder, phantom:?fps=30&ui=1,
igtl:HOST:PORT (OpenIGTLink IMAGE messages)."""


def check_threads(_ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    """More inference threads than cores only makes them wait for each other (and a typo of
    100000 would ask OpenCV and the backend for that many)."""
    if value is None:
        return None
    from usfm_edge.runtime.pipeline import usable_cores

    if value > usable_cores():
        raise click.BadParameter(f"{value} is more than the {usable_cores()} cores this process may use", param=param)
    return value


@click.command(context_settings={"max_content_width": 110})
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--source", default="phantom:", show_default=True, help=SOURCES_HELP)
@click.option("--sink", "sinks", multiple=True, help="Repeatable: video:out.mp4, images:DIR, jsonl:out.jsonl"
              "[?masks=polygons], window:, http:[HOST:]PORT (browser view, 127.0.0.1 by default), none: (default).")
@click.option("--backend", type=click.Choice(["auto", *Backend.values()]), default="auto", show_default=True,
              help="What runs the bundle's artifact (auto: the fastest installed that can).")
@click.option("--precision", type=click.Choice(Precision.values()), help="Pick the bundle's artifact of "
              "this precision (default: the exported one).")
@click.option("--device", default="CPU", show_default=True, help="CPU, GPU (ONNX Runtime CUDA/TensorRT "
              "providers, OpenVINO GPU) or NPU (OpenVINO).")
@click.option("--threads", type=POSITIVE, callback=check_threads,
              help="Inference threads (also caps OpenCV's). Default: the cores this process may use but one, "
                   "which then prepares the next frame and draws; the whole core count: preparing on the "
                   "inference thread.")
@click.option("--max-frames", type=POSITIVE, help="Stop after this many processed frames.")
@click.option("--realtime", is_flag=True, help="Pace file sources at their frame rate (then stale frames drop).")
@click.option("--loop", is_flag=True, help="Restart file sources at their end.")
@click.option("--roi", help="x,y,w,h: crop here instead of detecting the scan region.")
@click.option("--region", default="0", show_default=True, help="Which of the source's regions (DICOM "
              "ultrasound regions): an index, or 'all' for one result per region.")
@click.option("--ema", type=click.FloatRange(min=0.01, max=1.0), callback=_finite,
              help="Temporal smoothing: weight of the newest frame (1 = none). Default 0.5 for streams, and 1 for "
                   "image folders (unrelated stills).")
@click.option("--report", type=click.Path(path_type=Path), help="Write the run's metrics here as JSON at exit "
              "(checked writable before the run starts).")
@click.option("--engine-cache", type=click.Path(path_type=Path), help="TensorRT engine cache (default BUNDLE/engines).")
@click.option("--quiet", is_flag=True, help="No live status line.")
def run(bundle: Path, source: str, sinks: tuple[str, ...], backend: str, precision: str | None, device: str,
        threads: int | None, max_frames: int | None, realtime: bool, loop: bool, roi: str | None, region: str,
        ema: float | None, report: Path | None, engine_cache: Path | None, quiet: bool) -> None:
    """Stream frames through BUNDLE: crop to the scan region, infer, overlay, record.

    The default sink needs no display; ask for a window or a browser view explicitly.
    SIGINT/SIGTERM stop cleanly: files are finalised and the report is written, then the
    command exits 130/143. A sink that cannot write (full disk, read-only folder) stops the run
    with an error (exit 3); the report then counts what was really written."""
    from usfm_edge.runtime.app import RunOptions, build_pipeline, parse_region, parse_roi
    from usfm_edge.runtime.metrics import check_report_path, write_report

    options = RunOptions(bundle=bundle, source=source, sinks=list(sinks) or ["none:"], backend=backend,
                         precision=precision, device=device, threads=threads, max_frames=max_frames,
                         realtime=realtime, loop=loop, roi=parse_roi(roi), region=parse_region(region), ema=ema,
                         engine_cache=engine_cache)
    if report is not None:
        check_report_path(report)
    with _StopOnSignal() as stop:  # installed before the bundle loads: a SIGTERM then ends the run at once
        pipeline = build_pipeline(options)
        stop.attach(pipeline)
        model = pipeline.model
        click.echo(f"{model.describe()['artifact']} on {model.backend} ({model.session.precision}); "
                   f"source {source}; sinks {', '.join(options.sinks)}", err=True)
        for sink in pipeline.sinks:
            if getattr(sink, "url", None):
                click.echo(f"browser view: {sink.url}", err=True)
        status = None if quiet else threading.Thread(target=_status_line, args=(pipeline,), daemon=True)
        if status:
            status.start()
        result, error = None, None
        try:
            result = pipeline.run()
        except Exception as exc:  # written into the report first, raised after
            error = exc
        if status:
            status.join(timeout=2.0)
    if report is not None:
        partial = pipeline.report()
        partial["model"] = model.describe()
        try:
            write_report(report, partial)
        except Exception:
            if error is None:
                raise
    if error is not None:
        raise error
    _summary(result)
    if report is not None:
        click.echo(f"wrote {report}", err=True)
    if stop.signal is not None:  # the documented codes: 130 for SIGINT, 143 for SIGTERM, files finished first
        click.echo(f"stopped by {signal.Signals(stop.signal).name} after {result['frames_out']} frames; files "
                   "finalised" + (", report written" if report is not None else ""), err=True)
        raise SystemExit(128 + stop.signal)


class _StopOnSignal:
    """SIGINT and SIGTERM stop the pipeline (once it exists) instead of killing the process,
    so files are finalised and the report written; the previous handlers come back after."""

    def __init__(self) -> None:
        self.pipeline = None
        self.signal: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, _frame) -> None:
        self.signal = self.signal or signum
        if self.pipeline is not None:
            self.pipeline.stop()

    def attach(self, pipeline) -> None:
        self.pipeline = pipeline
        if self.signal is not None:  # the signal came while the bundle was loading
            pipeline.stop()

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _status_line(pipeline) -> None:
    while not pipeline.stop_event.wait(1.0):
        stats = pipeline.metrics.report()
        infer = stats["stages"].get("infer", {})
        click.echo(f"\r{stats['frames_out']} frames  {stats['fps_out']:5.1f} fps  infer p50 "
                   f"{infer.get('p50_ms', 0):6.1f} ms  dropped {stats['dropped']['total']}   ", nl=False, err=True)
    click.echo("", err=True)


def _summary(report: dict) -> None:
    click.echo(f"{report['frames_out']} frames out of {report['frames_in']} in {report['duration_s']:.1f} s: "
               f"{report['fps_out']:.1f} fps out, {report['fps_in']:.1f} fps in; dropped "
               + ", ".join(f"{k} {v}" for k, v in report["dropped"].items()))
    for stage, s in report["stages"].items():
        if s.get("count"):
            click.echo(f"  {stage:<20} p50 {s['p50_ms']:7.2f} ms  p95 {s['p95_ms']:7.2f}  p99 {s['p99_ms']:7.2f}")
    estimate = report.get("glass_to_glass")
    if estimate:
        click.echo(f"  glass-to-glass estimate p50 {estimate['estimate_p50_ms']:.1f} ms ({estimate['measured']} "
                   f"+ one source frame + one 60 Hz refresh)")
    flicker = report.get("flicker") or {}
    if "mask_change" in flicker:
        click.echo(f"  flicker: {100 * flicker['mask_change']:.1f} % of the mask's pixels change between frames "
                   f"({flicker['mask_pairs']} pairs, --ema {report.get('ema')})")
    for sink in report.get("sinks", []):
        if "frames" in sink:
            click.echo(f"  {sink['scheme']}: {sink['frames']} frames written to {sink.get('path')}")
