"""``usfm-edge run``: stream frames through a deployment bundle. Torch-free."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from usfm_edge.contracts.enums import Backend, Precision

SOURCES_HELP = """Frames from: v4l2:/dev/video0?width=1920&height=1080&fps=60&fourcc=MJPG (capture card),
'gst:PIPELINE ! appsink', rtsp://..., a video file, a DICOM file, an image folder, phantom:?fps=30&ui=1,
igtl:HOST:PORT (OpenIGTLink IMAGE messages)."""


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
@click.option("--threads", type=click.IntRange(1),
              help="Cap CPU threads so the scanner's own software keeps its share.")
@click.option("--max-frames", type=click.IntRange(1), help="Stop after this many processed frames.")
@click.option("--realtime", is_flag=True, help="Pace file sources at their frame rate (then stale frames drop).")
@click.option("--loop", is_flag=True, help="Restart file sources at their end.")
@click.option("--roi", help="x,y,w,h: crop here instead of detecting the scan region.")
@click.option("--region", default="0", show_default=True, help="Which of the source's regions (DICOM "
              "ultrasound regions): an index, or 'all' for one result per region.")
@click.option("--ema", type=click.FloatRange(0.01, 1.0),
              help="Temporal smoothing: weight of the newest frame (1 = none). Default 0.5 for streams, and 1 for "
                   "image folders (unrelated stills).")
@click.option("--report", type=click.Path(path_type=Path), help="Write the run's metrics here as JSON at exit.")
@click.option("--engine-cache", type=click.Path(path_type=Path), help="TensorRT engine cache (default BUNDLE/engines).")
@click.option("--quiet", is_flag=True, help="No live status line.")
def run(bundle: Path, source: str, sinks: tuple[str, ...], backend: str, precision: str | None, device: str,
        threads: int | None, max_frames: int | None, realtime: bool, loop: bool, roi: str | None, region: str,
        ema: float | None, report: Path | None, engine_cache: Path | None, quiet: bool) -> None:
    """Stream frames through BUNDLE: crop to the scan region, infer, overlay, record.

    The default sink needs no display; ask for a window or a browser view explicitly.
    SIGINT/SIGTERM stop cleanly: files are finalised and the report is written."""
    from usfm_edge.runtime.app import RunOptions, build_pipeline, parse_region, parse_roi
    from usfm_edge.runtime.metrics import write_report

    options = RunOptions(bundle=bundle, source=source, sinks=list(sinks) or ["none:"], backend=backend,
                         precision=precision, device=device, threads=threads, max_frames=max_frames,
                         realtime=realtime, loop=loop, roi=parse_roi(roi), region=parse_region(region), ema=ema,
                         engine_cache=engine_cache)
    pipeline = build_pipeline(options)
    model = pipeline.model
    click.echo(f"{model.describe()['artifact']} on {model.backend} ({model.session.precision}); "
               f"source {source}; sinks {', '.join(options.sinks)}", err=True)
    for sink in pipeline.sinks:
        if getattr(sink, "url", None):
            click.echo(f"browser view: {sink.url}", err=True)
    previous = {sig: signal.signal(sig, lambda *_: pipeline.stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    status = None if quiet else threading.Thread(target=_status_line, args=(pipeline,), daemon=True)
    try:
        if status:
            status.start()
        result = pipeline.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if report is not None:
            result_or_partial = pipeline.report()
            result_or_partial["model"] = model.describe()
            write_report(report, result_or_partial)
    _summary(result)
    if report is not None:
        click.echo(f"wrote {report}", err=True)


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
