"""How big each stage of the demo is: one plan for ``--fast`` (CI, < 3 min on 2 CPU cores) and
one for the full demo (< 10 min). Measured on a shared 2-core machine at one thread: fast
about 95 s, full about 5 min. The numbers they give are demo numbers on synthetic data.

What the sizes buy: at this scale the test Dice of the teacher plateaus near 0.6 (faint
phantom lesions, 28-42 labelled frames); 96 px input or 8 px patches measured no better at
1.5-2x the time. The full plan therefore spends its extra minutes on a longer pretraining,
more test frames and more label-fraction runs, not on a bigger model."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DemoPlan:
    name: str
    organ: str = "breast"  # the labelled task: lesion segmentation on breast phantom frames
    # Frames are rendered at render_size and the models see them at img_size: downsampling
    # averages speckle, so lesions stay visible (the PSF is set in pixels of the render).
    render_size: int = 128
    img_size: int = 64
    seg_frames: int = 200  # labelled frames, split 70/15/15; label_fraction of the training part is used
    pretrain_frames: int = 300  # unlabelled frames of every organ preset
    label_fraction: float = 0.2
    # Teacher: a 4-block ViT-Ti (SF-MIM pretrained); student: 4 blocks at half the width (2.5x
    # fewer MACs). Measured: 2-block students lost 0.1-0.2 Dice to the teacher at this budget.
    teacher_args: dict = field(default_factory=lambda: {"depth": 4})
    student_args: dict = field(default_factory=lambda: {"depth": 4, "embed_dim": 96, "num_heads": 3})
    pretrain_steps: int = 150
    pretrain_batch: int = 16
    finetune_steps: int = 160  # optimiser steps of every fine-tuning run, whatever its label fraction...
    max_epochs: int = 100  # ...up to this many epochs (each one ends with a validation pass)
    distill_epochs: int = 20
    # Extra fine-tuning runs for the label-fraction plot: (init, fraction); the teacher's own
    # run is the ("pretrained", label_fraction) point.
    fraction_runs: tuple[tuple[str, float], ...] = (("scratch", 0.2), ("pretrained", 1.0))
    calib_frames: int = 64
    cine_frames: int = 24
    canvas: tuple[int, int] = (300, 400)  # scanner screen (H, W) around the B-mode image
    latency_calls: int = 50
    seed: int = 0

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


FAST = DemoPlan(name="fast")
FULL = DemoPlan(
    name="full", seg_frames=300, pretrain_frames=600, pretrain_steps=600, finetune_steps=320, distill_epochs=30,
    fraction_runs=(("pretrained", 0.1), ("pretrained", 1.0), ("scratch", 0.1), ("scratch", 0.2), ("scratch", 1.0)),
    calib_frames=128, cine_frames=48, canvas=(360, 480), latency_calls=200,
)


def plan_for(*, fast: bool) -> DemoPlan:
    return FAST if fast else FULL
