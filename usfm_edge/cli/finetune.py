"""``usfm-edge finetune``."""

from __future__ import annotations

from pathlib import Path

import click

from usfm_edge.cli.options import (
    FRACTION, NON_NEGATIVE, POSITIVE, POSITIVE_FLOAT, Finite, json_dict, run_resumable, training_config,
)
from usfm_edge.contracts import Crop, Task

TASKS = [t.value for t in Task if t is not Task.FEATURES]


@click.command()
@click.option("--task", type=click.Choice(TASKS), help="What the head learns.")
@click.option("--data", type=click.Path(path_type=Path), help="Dataset root in the task's layout.")
@click.option("--model", help="Encoder: usfm_vit_b16/s16/t16 or timm:NAME.")
@click.option("--init", help="Pretrained encoder: a model directory, USFM_latest.pth, or omit for scratch.")
@click.option("--model-args", callback=json_dict, help='Encoder arguments as JSON, e.g. \'{"depth": 4}\'.')
@click.option("--head", help="Head name (default: upernet for ViT-B, light_seg for students).")
@click.option("--img-size", type=POSITIVE, help="Network input size (multiple of 16).")
@click.option("--in-chans", type=click.Choice(["1", "3"]), callback=lambda c, p, v: None if v is None else int(v),
              help="1 for gray B-mode (default), 3 for RGB.")
@click.option("--crop", type=click.Choice(Crop.values()), help="scan_region (default): every stage, training "
              "included, crops each frame to the B-mode image found in it; none: the whole frame.")
@click.option("--mask-sector/--no-mask-sector", default=None, help="Clear results outside the imaging sector "
              "(the fan or rectangle of echoes) in metrics and at run time (default: on).")
@click.option("--label-fraction", type=Finite(0.0, 1.0, min_open=True),
              help="Seeded, stratified fraction of the training labels, in (0, 1].")
@click.option("--epochs", type=POSITIVE)
@click.option("--batch-size", type=POSITIVE)
@click.option("--lr", type=POSITIVE_FLOAT, help="Peak learning rate (AdamW, after warmup).")
@click.option("--layer-decay", type=Finite(0.0, 1.0, min_open=True), help="Layer-wise lr decay for ViT encoders.")
@click.option("--balanced-sampling/--no-balanced-sampling", default=None, help="Class-balanced sampling (cls).")
@click.option("--device", help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=NON_NEGATIVE)
@click.option("--max-steps", type=POSITIVE, help="Stop after this many steps now (state saved, exit 0); continue "
              "with --resume.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]),
              help="Autocast precision (auto: bf16 on CUDA, fp32 on CPU; bf16 helps CPUs with AVX-512 BF16/AMX).")
@click.option("--num-workers", type=NON_NEGATIVE, help="Data-loader processes (default 0: load in the main process).")
@click.option("--log-every", type=POSITIVE, help="Log every N steps.")
@click.option("--eval-every", type=POSITIVE, help="Validate (and keep the best model) at the first epoch end N steps "
              "after the last validation; default: every epoch. For runs of many short epochs (few labels).")
@click.option("--config", "recipe", type=click.Path(path_type=Path), help="Recipe YAML; options given here win.")
@click.option("--out", type=click.Path(path_type=Path), help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its state.pt, with its own options.")
@click.option("--overwrite", is_flag=True, help="Replace the run already in --out (otherwise refused).")
@click.option("--no-progress", is_flag=True, help="No progress bar (logs only).")
def finetune(recipe, resume, overwrite, no_progress, **options) -> None:
    """Fine-tune an encoder for segmentation, classification or enhancement; writes
    RUN/model (best epoch), RUN/metrics.jsonl, RUN/eval.json and RUN/previews/.

    An interrupted run (Ctrl-C, SIGTERM, --max-steps) continues with
    `usfm-edge finetune --out RUN --resume`."""
    from usfm_edge.train.config import FinetuneConfig
    from usfm_edge.train.finetune import run_finetune

    cfg = training_config(FinetuneConfig, recipe, options, resume=resume, required=("data",))
    out = run_resumable(lambda: run_finetune(cfg, resume=resume, overwrite=overwrite, progress=not no_progress),
                        resume=f"usfm-edge finetune --out {cfg.out} --resume")
    click.echo(f"wrote {out}/model, {out}/eval.json")
