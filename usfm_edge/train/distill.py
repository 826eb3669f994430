"""Distillation: a small student learns a fine-tuned teacher's outputs.

Output distillation: soft masks (per-pixel KL at temperature T) for segmentation, logits (KL)
for classification, the restored image (L1) for enhancement; optional feature distillation:
the student's deepest map, projected by a 1x1 conv to the teacher's width and resized, matches
the teacher's deepest map (layer-normalised MSE). Where the frames have labels, the task loss
is added with ``label_weight``. Frames without labels (``--unlabeled``) get the teacher terms
only. The student shares the teacher's preprocessing, so one bundle spec serves both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from usfm_edge.data.images import IMAGE_SUFFIXES, read_image
from usfm_edge.models import build_task_model, load_model_dir, make_config, save_model_dir
from usfm_edge.contracts.prepare import locate, preprocess_frame
from usfm_edge.train.augment import Augment
from usfm_edge.train.config import save_config
from usfm_edge.train.datasets import SupervisedDataset, load_split
from usfm_edge.train.evaluate import evaluate, headline
from usfm_edge.train.finetune import pick_device
from usfm_edge.train.losses import task_loss
from usfm_edge.train.optim import build_optimizer, warmup_cosine
from usfm_edge.train.precision import UNSCALED, autocast, check_precision
from usfm_edge.train.progress import StepProgress


@dataclass
class DistillConfig:
    teacher: str = ""
    student: str = "usfm_vit_t16"
    student_args: dict | None = None
    head: str | None = None
    data: str = ""  # dataset root in the teacher's task layout (train split used, val split for the report)
    unlabeled: str | None = None  # extra frames without labels
    out: str = "runs/distill"
    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    temperature: float = 2.0
    label_weight: float = 1.0
    feature_weight: float = 0.5
    device: str = "auto"
    precision: str = "auto"  # autocast for teacher and student (see train.precision)
    seed: int = 0

    def __post_init__(self) -> None:
        check_precision(self.precision, UNSCALED)


class UnlabeledFrames(Dataset):
    """Images below a folder, as distillation items without a target, cropped by the teacher's
    crop rule like every labelled frame."""

    def __init__(self, root: str | Path, preprocess, *, task: str, augment: Augment | None, seed: int) -> None:
        self.files = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        self.preprocess, self.task, self.augment, self.seed = preprocess, task, augment, seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        image = read_image(self.files[index])
        image = locate(image, self.preprocess, sector=False).crop(image)
        if self.augment is not None:
            image, _ = self.augment(image, None, np.random.default_rng((self.seed, index)))
        x = torch.from_numpy(preprocess_frame(image, self.preprocess)[0])
        # a placeholder of the labelled targets' shape, so mixed batches collate; never used
        target = {"seg": torch.zeros(x.shape[-2:], dtype=torch.long), "cls": torch.tensor(0)}.get(self.task, x)
        return {"image": x, "target": target, "index": index, "labeled": torch.tensor(False)}


class _Labeled(Dataset):
    def __init__(self, inner: SupervisedDataset) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> dict:
        return {**self.inner[index], "labeled": torch.tensor(True)}


def _deepest(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.encoder.forward_taps(x)[-1]


def _outputs_and_deepest(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The task output and the deepest feature map from one encoder pass (``TaskModel.forward``
    split in two), so feature distillation costs no second forward of either model."""
    taps = model.encoder.forward_taps(x)
    return model.head(taps, x), taps[-1]


class DistillLoss(nn.Module):
    def __init__(self, task: str, task_loss: nn.Module, *, temperature: float, label_weight: float,
                 feature_weight: float, student_width: int, teacher_width: int) -> None:
        super().__init__()
        self.task, self.task_loss = task, task_loss
        self.t, self.label_weight, self.feature_weight = temperature, label_weight, feature_weight
        self.project = nn.Conv2d(student_width, teacher_width, 1)

    def output_term(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Teacher outputs as targets: the restored image (enhancement) or the class
        distribution at temperature T, per pixel for segmentation (KL, scaled by T^2)."""
        if self.task == "enhance":
            return F.l1_loss(student, teacher)
        log_p = F.log_softmax(student / self.t, dim=1)
        q = F.softmax(teacher / self.t, dim=1)
        kl = F.kl_div(log_p, q, reduction="none").sum(1)  # (B[, H, W])
        return kl.mean() * self.t**2

    def feature_term(self, student_map: torch.Tensor, teacher_map: torch.Tensor) -> torch.Tensor:
        s = F.interpolate(self.project(student_map), size=teacher_map.shape[-2:], mode="bilinear", align_corners=False)
        return F.mse_loss(F.layer_norm(s.transpose(1, -1), s.shape[1:2]),
                          F.layer_norm(teacher_map.transpose(1, -1), teacher_map.shape[1:2]))

    def forward(self, student, teacher, x, target, labeled) -> torch.Tensor:
        with torch.no_grad():
            t_out, t_map = _outputs_and_deepest(teacher, x)
        s_out, s_map = _outputs_and_deepest(student, x)
        # .float(): under bf16 autocast the losses still compare fp32 values
        s_out, t_out = s_out.float(), t_out.float()
        loss = self.output_term(s_out, t_out)
        if self.feature_weight:
            loss = loss + self.feature_weight * self.feature_term(s_map.float(), t_map.float())
        if self.label_weight and labeled.any():
            loss = loss + self.label_weight * self.task_loss(s_out[labeled], target[labeled])
        return loss


def run_distill(cfg: DistillConfig, *, progress: bool = True) -> Path:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    teacher = load_model_dir(cfg.teacher).to(device).eval().requires_grad_(False)
    task, spec = teacher.config.task.value, teacher.config.preprocess
    config = make_config(cfg.student, task, labels=teacher.config.labels, img_size=tuple(spec.input_size),
                         in_chans=spec.channels, head=cfg.head, model_args=cfg.student_args,
                         provenance={"distilled_from": str(cfg.teacher), "data": cfg.data, "unlabeled": cfg.unlabeled})
    config.preprocess = spec
    student = build_task_model(config).to(device)
    train_split = load_split(task, cfg.data, "train")
    val_split = load_split(task, cfg.data, "val")
    parts: list[Dataset] = [_Labeled(SupervisedDataset(task, train_split, spec, augment=Augment(), seed=cfg.seed))]
    if cfg.unlabeled:
        parts.append(UnlabeledFrames(cfg.unlabeled, spec, task=task, augment=Augment(), seed=cfg.seed))
    dataset = ConcatDataset(parts)
    with torch.no_grad():
        probe = torch.zeros(1, spec.channels, *spec.input_size, device=device)
        widths = (_deepest(student, probe).shape[1], _deepest(teacher, probe).shape[1])
    loss_fn = DistillLoss(task, task_loss(task), temperature=cfg.temperature, label_weight=cfg.label_weight,
                          feature_weight=cfg.feature_weight, student_width=widths[0], teacher_width=widths[1]).to(device)
    params = nn.ModuleList([student, loss_fn.project])
    optimizer = build_optimizer(params, lr=cfg.lr, weight_decay=0.05, layer_decay=1.0)
    steps = cfg.epochs * max(1, len(dataset) // cfg.batch_size)
    scheduler = warmup_cosine(optimizer, total_steps=steps, warmup_steps=max(1, steps // 20), base_lr=cfg.lr,
                              min_lr=cfg.lr / 100)
    best = -float("inf")
    log = open(out / "metrics.jsonl", "w")
    with StepProgress("distill", steps, 0, progress) as advance:
        for epoch in range(cfg.epochs):
            student.train()
            loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
            for batch in loader:
                x = batch["image"].to(device)
                with autocast(cfg.precision, device):
                    loss = loss_fn(student, teacher, x, batch["target"].to(device), batch["labeled"].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                advance(float(loss.detach()))
            result = evaluate(student, task, val_split, spec, device, num_classes=max(2, len(config.labels)))
            score = headline(task, result)
            log.write(json.dumps({"epoch": epoch, "loss": float(loss.detach()), "val": score}) + "\n")
            log.flush()
            if score > best:
                best = score
                config.provenance.update(epoch=epoch, val_score=score)
                save_model_dir(student, out / "model")
    log.close()
    report = _report(teacher, load_model_dir(out / "model").to(device), task, val_split, spec, device,
                     max(2, len(config.labels)))
    (out / "distill_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return out


def _report(teacher, student, task, split, spec, device, num_classes: int) -> dict:
    """Teacher vs student on the validation split: the headline metric, paired per case, and
    the models' sizes and multiply-accumulates per frame."""
    t = evaluate(teacher, task, split, spec, device, num_classes=num_classes)
    s = evaluate(student, task, split, spec, device, num_classes=num_classes)
    report = {"metric": {"seg": "dice", "cls": "balanced_accuracy", "enhance": "ssim"}[task],
              "teacher": headline(task, t), "student": headline(task, s),
              "teacher_params_m": _params(teacher), "student_params_m": _params(student),
              "teacher_gmacs": macs(teacher, spec), "student_gmacs": macs(student, spec)}
    if task != "cls":
        key = report["metric"]
        report["per_case"] = [{"name": a["name"], "teacher": a[key], "student": b[key]}
                              for a, b in zip(t["per_case"], s["per_case"])]
    report["macs_ratio"] = report["teacher_gmacs"] / max(report["student_gmacs"], 1e-9)
    return report


def _params(model: nn.Module) -> float:
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 3)


def macs(model: nn.Module, spec) -> float:
    """Multiply-accumulates (G) of one frame, counted by torch's FLOP counter (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, spec.channels, *spec.input_size, device=next(model.parameters()).device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return round(counter.get_total_flops() / 2e9, 4)
