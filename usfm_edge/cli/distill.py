"""``usfm-edge distill``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from usfm_edge.cli.options import json_dict


@click.command()
@click.option("--teacher", required=True, type=click.Path(path_type=Path), help="The fine-tuned model directory.")
@click.option("--student", default="usfm_vit_t16", show_default=True, help="usfm_vit_t16/s16 or timm:NAME.")
@click.option("--student-args", callback=json_dict, help='Student encoder arguments as JSON, e.g. \'{"depth": 6}\'.')
@click.option("--head", help="Student head (default: light_seg / linear / pixel_decoder).")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Dataset root in the teacher's layout.")
@click.option("--unlabeled", type=click.Path(path_type=Path), help="Extra frames without labels.")
@click.option("--epochs", default=10, show_default=True)
@click.option("--batch-size", default=8, show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--temperature", default=2.0, show_default=True)
@click.option("--label-weight", default=1.0, show_default=True, help="Weight of the labelled task loss.")
@click.option("--feature-weight", default=0.5, show_default=True, help="Weight of feature distillation (0: off).")
@click.option("--device", default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="Autocast precision (auto: bf16 on CUDA, fp32 on CPU).")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--no-progress", is_flag=True)
def distill(teacher, student, student_args, head, data, unlabeled, epochs, batch_size, lr, temperature, label_weight,
            feature_weight, device, precision, out, no_progress) -> None:
    """Distill a fine-tuned teacher into a small student; writes RUN/model and
    RUN/distill_report.json (teacher vs student on the validation split, paired per case)."""
    from usfm_edge.train.distill import DistillConfig, run_distill

    cfg = DistillConfig(teacher=str(teacher), student=student, student_args=student_args, head=head, data=str(data), unlabeled=str(unlabeled) if unlabeled else None,
                        out=str(out), epochs=epochs, batch_size=batch_size, lr=lr, temperature=temperature,
                        label_weight=label_weight, feature_weight=feature_weight, device=device,
                        precision=precision)
    run = run_distill(cfg, progress=not no_progress)
    report = json.loads((run / "distill_report.json").read_text())
    click.echo(f"{report['metric']}: teacher {report['teacher']:.4f}, student {report['student']:.4f}; "
               f"{report['teacher_gmacs']} vs {report['student_gmacs']} GMACs ({report['macs_ratio']:.1f}x fewer)")
