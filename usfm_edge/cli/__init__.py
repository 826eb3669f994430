"""The ``usfm-edge`` command. Subcommands are imported only when run, so ``--help`` and the
runtime commands start without torch."""

from __future__ import annotations

from usfm_edge.cli.lazy import LazyGroup

# name -> (module:attribute, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("usfm_edge.cli.doctor:doctor", "Report versions, backends, devices and install hints."),
    "models": ("usfm_edge.cli.models:models", "List registered encoders and heads."),
    "pretrain": (
        "usfm_edge.cli.pretrain:pretrain",
        "Spatial-frequency MIM / MAE / teacher-feature pretraining.",
    ),
    "data": ("usfm_edge.cli.data:data", "Index and shard unlabeled archives for pretraining."),
    "finetune": (
        "usfm_edge.cli.finetune:finetune",
        "Fine-tune for segmentation, classification or enhancement.",
    ),
    "distill": ("usfm_edge.cli.distill:distill", "Distill a fine-tuned teacher into an edge student."),
    "export": ("usfm_edge.cli.export:export", "Export a model directory to a verified deployment bundle."),
    "bundle": ("usfm_edge.cli.export:bundle", "Verify deployment bundles (schema, hashes, golden pair)."),
    "phantom": (
        "usfm_edge.cli.phantom:phantom",
        "Write synthetic B-mode phantom datasets and cines with exact ground truth.",
    ),
    "run": ("usfm_edge.cli.run:run", "Stream frames through a bundle: crop, infer, overlay, record."),
    "bench": ("usfm_edge.cli.bench:bench", "Latency and accuracy across backends on one bundle; --pipeline for the runtime."),
    "demo": ("usfm_edge.cli.demo:demo", "The whole chain on the synthetic phantom, with a report."),
    "convert-checkpoint": (
        "usfm_edge.cli.convert:convert_checkpoint",
        "Convert a released .pth (e.g. USFM_latest.pth) into a model directory.",
    ),
}
cli = LazyGroup(
    name="usfm-edge",
    commands=COMMANDS,
    help="Ultrasound foundation models from pretraining to real-time inference on carts and Jetsons.",
)


def main() -> None:
    cli(prog_name="usfm-edge")
