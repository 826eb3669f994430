"""Option types declared once for every command, and the run endings shared by the training
commands. A number option says what it accepts (``POSITIVE``, ``Finite(0, 1)``), so a zero,
negative, NaN or infinite value is refused by click with the option's name, before any work."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

import click

T = TypeVar("T")

POSITIVE = click.IntRange(min=1)  # counts: steps, epochs, batch sizes, frames, threads
NON_NEGATIVE = click.IntRange(min=0)  # workers, warmup runs, seeds


class Finite(click.FloatRange):
    """A float in a range that is never NaN or infinite (click's FloatRange lets NaN through:
    every comparison with it is false)."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


POSITIVE_FLOAT = Finite(min=0.0, min_open=True)
FRACTION = Finite(min=0.0, max=1.0)  # a fraction in [0, 1]


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


MIN_SIDE, MAX_SIDE = 16, 8192  # pixels: smaller holds no ultrasound image, larger no screen


def image_size(_ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    """click callback: ``S`` or ``HxW`` pixels, each side in [16, 8192]."""
    if value is None:
        return None
    try:
        parts = [int(p) for p in value.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts, default=0) <= 0:
        raise click.BadParameter(f"{value!r}; give S or HxW in pixels, e.g. 256 or 480x640", param=param)
    if min(parts) < MIN_SIDE or max(parts) > MAX_SIDE:
        raise click.BadParameter(f"{value!r}; each side must be {MIN_SIDE} to {MAX_SIDE} pixels", param=param)
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def run_resumable(run: Callable[[], T], *, resume: str) -> T:
    """Run a training loop; when it stops early (SIGINT, SIGTERM, --max-steps) with its state
    saved, say how to continue and exit 130, 143 or 0."""
    from usfm_edge.train.engine import StopRequested

    try:
        return run()
    except StopRequested as stop:
        click.echo(f"{stop}; state saved; continue with: {resume}", err=True)
        raise SystemExit(stop.exit_code) from None


def training_config(cls: type[T], recipe: Any, options: dict[str, Any], *, resume: bool,
                    required: tuple[str, ...] = ()) -> T:
    """A training command's config: defaults -> recipe -> command line; with ``--resume``, the
    run's saved config instead of the defaults (so ``--out RUN --resume`` is enough)."""
    from usfm_edge.train.engine import load_config, resume_config

    options = {k: (str(v) if hasattr(v, "__fspath__") else v) for k, v in options.items()}
    if resume:
        out = options.pop("out", None)
        if out is None:
            raise click.UsageError("--resume needs --out RUN, the folder of the run to continue")
        return resume_config(cls, out, recipe, **options)
    cfg = load_config(cls, recipe, **options)
    for name in required:
        if not getattr(cfg, name):
            raise click.UsageError(f"--{name.replace('_', '-')} is required (or '{name}:' in the recipe)")
    return cfg
