"""``usfm-edge bench``: latency, memory, parity and the task metric of every backend x
precision of one model, each cell in its own process."""

from __future__ import annotations

from pathlib import Path

import click

from usfm_edge.runtime.quiet import quiet_video_libraries

quiet_video_libraries()  # before the bench package imports OpenCV
from usfm_edge.bench.runner import DEFAULT_BACKENDS, DEFAULT_PRECISIONS  # noqa: E402
from usfm_edge.cli.options import Finite  # noqa: E402
from usfm_edge.cli.run import check_threads  # noqa: E402
from usfm_edge.errors import UsfmEdgeError  # noqa: E402


class BenchFailedError(UsfmEdgeError):
    """Some cells were asked for and could not be measured."""

    exit_code = 1


def _progress(message: str) -> None:
    click.echo(message, err=True)


def _names(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@click.command()
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--backends", default=",".join(DEFAULT_BACKENDS), show_default=True, callback=_names,
              help="Comma-separated runtime backends; those not installed are listed as skipped.")
@click.option("--precisions", default=",".join(DEFAULT_PRECISIONS), show_default=True, callback=_names,
              help="Comma-separated precisions; cells the bundle cannot provide are listed as skipped.")
@click.option("--threads", type=click.IntRange(min=1), callback=check_threads,
              help="Threads for every backend (ONNX Runtime intra-op, OpenVINO INFERENCE_NUM_THREADS, "
                   "torch.set_num_threads). Default: each backend's own; --pipeline: the runtime's default (every "
                   "core but one).")
@click.option("--warmup", default=5, show_default=True, type=click.IntRange(0, 10_000),
              help="Untimed runs before timing.")
@click.option("--iters", default=50, show_default=True, type=click.IntRange(1, 100_000),
              help="Timed runs at batch 1 (--pipeline: frames per run).")
@click.option("--batch-size", default=1, show_default=True, type=click.IntRange(1, 1024),
              help="Also time batches of B frames (ceil(iters/B) runs).")
@click.option("--val", type=click.Path(path_type=Path), help="Dataset root (validation split): the task metric "
              "(Dice, balanced accuracy, PSNR) of every cell on these frames.")
@click.option("--val-limit", default=200, show_default=True, type=click.IntRange(1, 1_000_000),
              help="At most this many validation frames.")
@click.option("--calib", type=click.Path(path_type=Path), help="Model-directory TARGET: int8 calibration frames "
              "(required for int8 cells).")
@click.option("--calib-limit", default=300, show_default=True, type=click.IntRange(1, 1_000_000),
              help="At most this many calibration frames.")
@click.option("--work", type=click.Path(path_type=Path), help="Model-directory TARGET: where the exported variants "
              "are kept and reused (default: NAME_bundles/ next to --json, else a temporary folder).")
@click.option("--device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True)
@click.option("--vendor/--no-vendor", "vendor_tools", default=True, show_default=True,
              help="Also run benchmark_app (OpenVINO) and trtexec (TensorRT) where installed; report our p50 / theirs.")
@click.option("--pipeline", is_flag=True, help="Instead: the whole runtime (capture, crop, preprocess, infer, "
              "postprocess, overlay, sink) against its backend bare, on the bundle TARGET; --iters frames per run.")
@click.option("--source", "sources", multiple=True, help="--pipeline: frame source URI(s) (default: phantom frames "
              "on a 1080x1920 and a 480x640 scanner screen).")
@click.option("--sink", "sinks", multiple=True, help="--pipeline, repeatable: where results go, as for `usfm-edge "
              "run` (default: http:0, the browser view, with a viewer connected; none: times the runtime without "
              "drawing or display; video:FILE a recording).")
@click.option("--fps", default=30.0, show_default=True, type=Finite(min=0.0, min_open=True, max=1000.0),
              help="--pipeline: the paced run's frame rate (latency is measured there).")
@click.option("--rounds", default=1, show_default=True, type=click.IntRange(1, 100),
              help="--pipeline: rounds of (bare, pipeline) per source; figures are the rounds' medians.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the result document here.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), help="Write a latency plot (PNG) here.")
def bench(target: Path, backends: list[str], precisions: list[str], threads: int | None, warmup: int, iters: int,
          batch_size: int, val: Path | None, val_limit: int, calib: Path | None, calib_limit: int, work: Path | None,
          device: str, vendor_tools: bool, pipeline: bool, sources: tuple[str, ...], sinks: tuple[str, ...],
          fps: float, rounds: int, json_path: Path | None, plot_path: Path | None) -> None:
    """Benchmark TARGET, a deployment bundle or a model directory, on every backend x
    precision: load time, p50/p90/p99 latency, throughput, peak memory, parity against the
    fp32 reference and the task metric on --val.

    A model directory is exported first (one bundle per backend x precision, under --work;
    int8 needs --calib). The parity reference is the fp32 torch model when the model
    directory is at hand (TARGET, or the bundle's source), else the bundle's model.onnx on
    ONNX Runtime fp32."""
    import shutil

    from rich.console import Console

    from usfm_edge.bench import plot, run_bench, table, write_json
    from usfm_edge.runtime.metrics import check_report_path

    for path, option in ((json_path, "--json"), (plot_path, "--plot")):
        if path is not None:  # before minutes of measuring, not after
            check_report_path(path, option)
    if pipeline:
        _pipeline(target, backends=backends, threads=threads, frames=iters, warmup=warmup, sources=sources,
                  sinks=sinks, fps=fps, rounds=rounds, json_path=json_path, plot_path=plot_path)
        return
    if sinks:
        raise click.UsageError("--sink applies to --pipeline only")
    if work is None and json_path is not None and (target / "config.json").is_file():
        work = json_path.with_name(f"{json_path.stem}_bundles")
    result = run_bench(target, backends=backends, precisions=precisions, threads=threads, warmup=warmup, iters=iters,
                       batch_size=batch_size, val=val, val_limit=val_limit, calib=calib, calib_limit=calib_limit,
                       work=work, device=device.upper(), vendor_tools=vendor_tools, progress=_progress)
    Console(width=shutil.get_terminal_size((180, 40)).columns).print(table(result))
    if json_path is not None:
        click.echo(f"wrote {write_json(result, json_path)}")
    if plot_path is not None:
        click.echo(f"wrote {plot(result, plot_path)}")
    failed = [c for c in result["cells"] if c["status"] == "failed"]
    if failed:  # the table shows them; the exit status must too, or a script reads success
        first = failed[0]
        raise BenchFailedError(f"{len(failed)} of {len(result['cells'])} cells failed (first: {first['backend']} "
                               f"{first['precision']}: {first['reason']})")


def _pipeline(bundle: Path, *, backends: list[str], threads: int | None, frames: int, warmup: int,
              sources: tuple[str, ...], sinks: tuple[str, ...], fps: float, rounds: int, json_path: Path | None,
              plot_path: Path | None) -> None:
    """``--pipeline``: ``usfm_edge.bench.pipeline`` on one backend, or the runtime's automatic
    choice when --backends names several."""
    from usfm_edge.bench import write_json
    from usfm_edge.bench.machine import describe
    from usfm_edge.bench.pipeline import DEFAULT_SINKS, DEFAULT_SOURCES, bench_pipeline, flicker_table, pipeline_table

    if plot_path is not None:
        raise click.UsageError("--plot draws the backend x precision cells; it has no --pipeline plot")
    result = bench_pipeline(bundle, sources=sources or DEFAULT_SOURCES, sinks=sinks or DEFAULT_SINKS,
                            backend=backends[0] if len(backends) == 1 else "auto", threads=threads, frames=frames,
                            warmup=warmup, fps=fps, rounds=rounds, progress=_progress)
    result["machine"] = describe()
    click.echo("\n".join(pipeline_table(result) + [""] + flicker_table(result)))
    if json_path is not None:
        click.echo(f"wrote {write_json(result, json_path)}")


if __name__ == "__main__":
    from usfm_edge.cli.lazy import run_standalone

    run_standalone(bench, "usfm-edge bench")
