"""``usfm-edge demo``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("usfm-edge-demo"),
              show_default=True, help="Folder for every stage's outputs, report.html and summary.json.")
@click.option("--fast", is_flag=True, help="Smaller runs: about 1.5 minutes on a 2-core CPU instead of about 4-5.")
@click.option("--threads", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="CPU threads for every stage. The demo's models are tiny: more threads gain little, and "
              "on cores shared with other processes they can make it many times slower.")
@click.option("--no-progress", is_flag=True, help="No progress bars (logs, CI).")
def demo(out: Path, fast: bool, threads: int, no_progress: bool) -> None:
    """The whole chain on the synthetic phantom, with no data or weights to download:
    SF-MIM pretraining of a small encoder, segmentation fine-tuning with 20 % of the labels,
    distillation, INT8 export to ONNX Runtime and OpenVINO through the accuracy gate, the
    runtime on a phantom cine in scanner UI, and latency per backend. Ends with a summary
    table and OUT/report.html.

    Re-running into the same OUT starts over: the previous demo's outputs there are replaced
    (nothing else in OUT is touched); a folder with files the demo did not make is refused."""
    from usfm_edge.demo import plan_for, run_demo

    run_demo(out, plan_for(fast=fast), threads=threads, progress=not no_progress)
