"""``usfm-edge models``."""

from __future__ import annotations

import click


@click.command()
def models() -> None:
    """List registered encoders and heads (any timm backbone works as timm:NAME)."""
    from usfm_edge.models import create_model, list_heads, list_models

    for name in list_models():
        encoder = create_model(name)
        params = sum(p.numel() for p in encoder.parameters()) / 1e6
        click.echo(f"{name:16s} {params:6.1f} M params  dim {encoder.embed_dim:4d}  depth {encoder.depth}")
    click.echo("timm:<name>      any timm backbone (CNN/hybrid students); weights from a file only")
    click.echo("heads: " + ", ".join(f"{h} ({'/'.join(_tasks(h))})" for h in list_heads()))


def _tasks(head: str) -> tuple[str, ...]:
    from usfm_edge.models.registry import _HEADS

    return _HEADS[head].tasks
