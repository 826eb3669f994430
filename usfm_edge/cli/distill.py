"""``usfm-edge distill``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from usfm_edge.cli.options import NON_NEGATIVE, POSITIVE, POSITIVE_FLOAT, Finite, json_dict, run_resumable, training_config


@click.command()
@click.option("--teacher", type=click.Path(path_type=Path), help="The fine-tuned model directory.")
@click.option("--student", help="usfm_vit_t16 (default), usfm_vit_s16 or timm:NAME.")
@click.option("--student-args", callback=json_dict, help='Student encoder arguments as JSON, e.g. \'{"depth": 6}\'.')
@click.option("--student-init", type=click.Path(path_type=Path),
              help="Start the student's encoder from these weights (an encoder or model directory, or a weights "
                   "file); a shallower student takes their first blocks.")
@click.option("--head", help="Student head (default: light_seg / linear / pixel_decoder).")
@click.option("--data", type=click.Path(path_type=Path), help="Dataset root in the teacher's layout.")
@click.option("--unlabeled", type=click.Path(path_type=Path), help="Extra frames without labels.")
@click.option("--epochs", type=POSITIVE, help="Default 10.")
@click.option("--batch-size", type=POSITIVE, help="Default 8.")
@click.option("--lr", type=POSITIVE_FLOAT, help="Default 1e-3.")
@click.option("--temperature", type=POSITIVE_FLOAT, help="Softmax temperature of the soft targets (default 2).")
@click.option("--label-weight", type=Finite(min=0.0), help="Weight of the labelled task loss (default 1).")
@click.option("--feature-weight", type=Finite(min=0.0), help="Weight of feature distillation (default 0.5; 0: off).")
@click.option("--device", help="auto (default), cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]),
              help="Autocast precision (auto: bf16 on CUDA, fp32 on CPU).")
@click.option("--seed", type=NON_NEGATIVE)
@click.option("--max-steps", type=POSITIVE, help="Stop after N steps now (state saved, exit 0); continue with --resume.")
@click.option("--config", "recipe", type=click.Path(path_type=Path), help="Recipe YAML; options given here win.")
@click.option("--out", type=click.Path(path_type=Path), help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its state.pt, with its own options.")
@click.option("--overwrite", is_flag=True, help="Replace the run already in --out (otherwise refused).")
@click.option("--no-progress", is_flag=True)
def distill(recipe, resume, overwrite, no_progress, **options) -> None:
    """Distill a fine-tuned teacher into a small student; writes RUN/model and
    RUN/distill_report.json (teacher vs student on the validation split, paired per case).

    An interrupted run continues with `usfm-edge distill --out RUN --resume`."""
    from usfm_edge.train.distill import DistillConfig, run_distill

    cfg = training_config(DistillConfig, recipe, options, resume=resume, required=("teacher", "data"))
    run = run_resumable(lambda: run_distill(cfg, resume=resume, overwrite=overwrite, progress=not no_progress),
                        resume=f"usfm-edge distill --out {cfg.out} --resume")
    report = json.loads((run / "distill_report.json").read_text())
    click.echo(f"{report['metric']}: teacher {report['teacher']:.4f}, student {report['student']:.4f}; "
               f"{report['teacher_gmacs']} vs {report['student_gmacs']} GMACs ({report['macs_ratio']:.1f}x fewer)")
