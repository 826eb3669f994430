"""Option parsing and run endings shared by the training commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import click

T = TypeVar("T")


def json_dict(_ctx: click.Context, param: click.Parameter, value: str | None) -> dict | None:
    """click callback: a JSON object option (``--model-args '{"depth": 4}'``)."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param=param) from exc
    if not isinstance(parsed, dict):
        raise click.BadParameter(f"give a JSON object like '{{\"depth\": 4}}', not {value!r}", param=param)
    return parsed


def image_size(_ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    """click callback: ``S`` or ``HxW`` pixels."""
    if value is None:
        return None
    try:
        parts = [int(p) for p in value.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts, default=0) <= 0:
        raise click.BadParameter(f"{value!r}; give S or HxW in pixels, e.g. 256 or 480x640", param=param)
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def run_resumable(run: Callable[[], T], *, resume: str) -> T:
    """Run a training loop; when it stops early (SIGTERM, --max-steps) with its state saved,
    say how to continue and exit 143."""
    from usfm_edge.train.finetune import StopRequested

    try:
        return run()
    except StopRequested:
        click.echo(f"stopped (SIGTERM or --max-steps); state saved; continue with: {resume}", err=True)
        raise SystemExit(143) from None
