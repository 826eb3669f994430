"""``usfm-edge pretrain`` (under torchrun: ``torchrun ... -m usfm_edge pretrain ...``)."""

from __future__ import annotations

from pathlib import Path

import click

from usfm_edge.cli.options import json_dict, run_resumable
from usfm_edge.train.pretrain.objectives import list_objectives


@click.command()
@click.option("--objective", type=click.Choice(list_objectives()), help="sfmim (USFM), mae, feature (URFM).")
@click.option("--data", multiple=True, help="Image folder, manifest CSV, DICOM/video files or shard folder (repeatable).")
@click.option("--model", help="Encoder to pretrain (usfm_vit_b16/s16/t16).")
@click.option("--model-args", callback=json_dict, help='Encoder arguments as JSON, e.g. \'{"depth": 4}\'.')
@click.option("--init", help="Continue from a model directory or USFM_latest.pth.")
@click.option("--teacher", help="feature objective: the frozen teacher's model directory.")
@click.option("--img-size", type=int)
@click.option("--in-chans", type=int)
@click.option("--steps", type=int, help="Optimiser steps.")
@click.option("--batch-size", type=int, help="Per process.")
@click.option("--accum-steps", type=int, help="Gradient accumulation.")
@click.option("--lr", type=float, help="Per 256 images (scaled by the global batch).")
@click.option("--warmup-steps", type=int)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]))
@click.option("--compile/--no-compile", default=None, help="torch.compile the model.")
@click.option("--ema", type=float, help="EMA decay of the encoder (saved encoder is the EMA).")
@click.option("--organ-alpha", type=float, help="Sampling weight n_organ^-alpha: 1 balanced, 0 natural.")
@click.option("--frame-stride", type=int, help="Every N-th frame of cines and videos.")
@click.option("--mask-ratio", type=float)
@click.option("--num-workers", type=int)
@click.option("--log-every", type=int)
@click.option("--save-every", type=int, help="Checkpoint every N steps (also on SIGTERM).")
@click.option("--preview-every", type=int)
@click.option("--seed", type=int)
@click.option("--device")
@click.option("--record-samples/--no-record-samples", default=None, help="Log each rank's item indices.")
@click.option("--max-steps", type=int, help="Stop after N steps now (state saved); continue with --resume.")
@click.option("--config", "recipe", type=click.Path(path_type=Path), help="Recipe YAML (recipes/pretrain/).")
@click.option("--out", type=click.Path(path_type=Path))
@click.option("--resume", is_flag=True, help="Continue the run in --out.")
@click.option("--no-progress", is_flag=True)
def pretrain(recipe, resume, no_progress, **options) -> None:
    """Self-supervised pretraining; writes RUN/encoder (a model directory), metrics.jsonl,
    config.yaml, TensorBoard logs, previews/ and state.pt (resume)."""
    from usfm_edge.train.config import load_config
    from usfm_edge.train.pretrain.config import PretrainConfig
    from usfm_edge.train.pretrain.engine import run_pretrain

    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}
    options["data"] = list(options["data"]) or None
    cfg = load_config(PretrainConfig, recipe, **options)
    if not cfg.data:
        raise click.UsageError("--data is required (or 'data:' in the recipe)")
    out = run_resumable(lambda: run_pretrain(cfg, resume=resume, progress=not no_progress),
                        resume=f"the same command with --resume (run folder {cfg.out})")
    click.echo(f"wrote {out}/encoder")
