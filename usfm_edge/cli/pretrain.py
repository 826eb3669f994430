"""``usfm-edge pretrain`` (under torchrun: ``torchrun ... -m usfm_edge pretrain ...``)."""

from __future__ import annotations

from pathlib import Path

import click

from usfm_edge.cli.options import (
    FRACTION, NON_NEGATIVE, POSITIVE, POSITIVE_FLOAT, Finite, json_dict, run_resumable, training_config,
)
from usfm_edge.train.pretrain.objectives import list_objectives


@click.command()
@click.option("--objective", type=click.Choice(list_objectives()), help="sfmim (USFM), mae, feature (URFM).")
@click.option("--data", multiple=True, help="Image folder, manifest CSV, DICOM/video files or shard folder (repeatable).")
@click.option("--model", help="Encoder to pretrain (usfm_vit_b16/s16/t16).")
@click.option("--model-args", callback=json_dict, help='Encoder arguments as JSON, e.g. \'{"depth": 4}\'.')
@click.option("--init", help="Continue from a model directory or USFM_latest.pth.")
@click.option("--teacher", help="feature objective: the frozen teacher's model directory.")
@click.option("--img-size", type=POSITIVE, help="Input size (a multiple of 16).")
@click.option("--in-chans", type=click.Choice(["1", "3"]), callback=lambda c, p, v: None if v is None else int(v))
@click.option("--steps", type=POSITIVE, help="Optimiser steps.")
@click.option("--batch-size", type=POSITIVE, help="Per process.")
@click.option("--accum-steps", type=POSITIVE, help="Gradient accumulation.")
@click.option("--lr", type=POSITIVE_FLOAT, help="Per 256 images (default 6e-4), scaled to the global batch by "
              "--lr-scaling; the run prints the peak lr it trains at.")
@click.option("--lr-scaling", type=click.Choice(["sqrt", "linear"]),
              help="sqrt (default): lr x sqrt(batch / 256), AdamW's rule; linear: lr x batch / 256 (MAE's).")
@click.option("--warmup-steps", type=NON_NEGATIVE)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]))
@click.option("--compile/--no-compile", default=None, help="torch.compile the model.")
@click.option("--ema", type=Finite(0.0, 1.0, min_open=True, max_open=True),
              help="EMA decay of the encoder in (0, 1), e.g. 0.999 (the saved encoder is the EMA).")
@click.option("--organ-alpha", type=FRACTION, help="Sampling weight n_organ^-alpha: 1 balanced, 0 natural.")
@click.option("--frame-stride", type=POSITIVE, help="Every N-th frame of cines and videos.")
@click.option("--mask-ratio", type=Finite(0.0, 1.0, min_open=True, max_open=True), help="Masked share in (0, 1).")
@click.option("--num-workers", type=NON_NEGATIVE, help="Data-loader processes (default: cores - 1, at most 4).")
@click.option("--log-every", type=POSITIVE)
@click.option("--save-every", type=POSITIVE, help="Checkpoint every N steps (also on SIGINT and SIGTERM).")
@click.option("--preview-every", type=NON_NEGATIVE, help="Reconstruction previews every N steps (0: none).")
@click.option("--seed", type=NON_NEGATIVE)
@click.option("--device", help="auto, cpu, cuda or cuda:N.")
@click.option("--record-samples/--no-record-samples", default=None, help="Log each rank's item indices.")
@click.option("--max-steps", type=POSITIVE, help="Stop after N steps now (state saved, exit 0); continue with --resume.")
@click.option("--config", "recipe", type=click.Path(path_type=Path), help="Recipe YAML (recipes/pretrain/).")
@click.option("--out", type=click.Path(path_type=Path), help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out, with its own options.")
@click.option("--overwrite", is_flag=True, help="Replace the run already in --out (otherwise refused).")
@click.option("--no-progress", is_flag=True)
def pretrain(recipe, resume, overwrite, no_progress, **options) -> None:
    """Self-supervised pretraining; writes RUN/encoder (a model directory), metrics.jsonl,
    config.yaml, TensorBoard logs, previews/ and state.pt (resume).

    An interrupted run (Ctrl-C, SIGTERM, --max-steps) continues with
    `usfm-edge pretrain --out RUN --resume`."""
    from usfm_edge.train.pretrain.config import PretrainConfig
    from usfm_edge.train.pretrain.engine import run_pretrain

    options["data"] = list(options["data"]) or None
    cfg = training_config(PretrainConfig, recipe, options, resume=resume, required=("data",))
    out = run_resumable(lambda: run_pretrain(cfg, resume=resume, overwrite=overwrite, progress=not no_progress),
                        resume=f"usfm-edge pretrain --out {cfg.out} --resume")
    click.echo(f"wrote {out}/encoder")
