"""``usfm-edge doctor``."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor(as_json: bool) -> None:
    """Report versions, backends (torch/CUDA, ONNX Runtime providers, OpenVINO devices,
    TensorRT), the OpenCV build, capture devices, and an install hint for each missing piece.
    Exits 1 when something the runtime needs is missing."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from usfm_edge import doctor as checks

    findings = checks.run_checks()
    if as_json:
        click.echo(json.dumps(checks.as_json(findings), indent=2))
    else:
        table = Table(title="usfm-edge doctor", show_lines=False)
        for column in ("section", "component", "status", "detail", "fix"):
            table.add_column(column, overflow="fold")
        colours = {"ok": "green", "missing": "red", "warn": "yellow", "info": "cyan"}
        for f in findings:
            # escape: rich reads "[train]" in "pip install '.[train]'" as a style tag and drops it
            table.add_row(escape(f.section), escape(f.name), f"[{colours[f.status.value]}]{f.status.value}[/]",
                          escape(f.detail), escape(f.hint))
        Console(width=max(Console().width, 140)).print(table)
    if not checks.runtime_ready(findings):
        raise SystemExit(1)
