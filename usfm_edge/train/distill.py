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

from usfm_edge.contracts.prepare import locate, preprocess_frame
from usfm_edge.data.images import IMAGE_SUFFIXES, read_image
from usfm_edge.errors import InputError
from usfm_edge.models import build_task_model, load_model_dir, make_config, save_model_dir
from usfm_edge.train.augment import Augment
from usfm_edge.train.config import finite, positive, require
from usfm_edge.train.datasets import SupervisedDataset, load_split, to_working_size
from usfm_edge.train.engine import STATE_FILE, Checkpoint, Session, fit_epochs, open_run_folder, optimizer_step
from usfm_edge.train.evaluate import evaluate, headline
from usfm_edge.train.finetune import init_encoder, pick_device
from usfm_edge.train.losses import task_loss
from usfm_edge.train.optim import build_optimizer, warmup_cosine
from usfm_edge.train.precision import UNSCALED, autocast, check_precision


@dataclass
class DistillConfig:
    teacher: str = ""
    student: str = "usfm_vit_t16"
    student_args: dict | None = None
    student_init: str | None = None  # encoder weights for the student; a shallower student takes their first blocks
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
    log_every: int = 5
    max_steps: int | None = None  # stop after this many steps in this session (state saved; --resume)

    def __post_init__(self) -> None:
        check_precision(self.precision, UNSCALED)
        require({
            "epochs": (self.epochs, positive(self.epochs), "an integer >= 1"),
            "batch_size": (self.batch_size, positive(self.batch_size), "an integer >= 1"),
            "lr": (self.lr, finite(self.lr, 0, open_low=True), "a finite number > 0"),
            "temperature": (self.temperature, finite(self.temperature, 0, open_low=True), "a finite number > 0"),
            "label_weight": (self.label_weight, finite(self.label_weight, 0), "a finite number >= 0"),
            "feature_weight": (self.feature_weight, finite(self.feature_weight, 0), "a finite number >= 0"),
            "log_every": (self.log_every, positive(self.log_every), "an integer >= 1"),
            "max_steps": (self.max_steps, self.max_steps is None or positive(self.max_steps), "an integer >= 1"),
            "student_args": (self.student_args, self.student_args is None or isinstance(self.student_args, dict),
                             "a mapping (JSON object)"),
        })


class UnlabeledFrames(Dataset):
    """Images below a folder, as distillation items without a target, cropped by the teacher's
    crop rule like every labelled frame."""

    def __init__(self, root: str | Path, preprocess, *, task: str, augment: Augment | None, seed: int) -> None:
        self.files = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise InputError(f"--unlabeled {root}: no images in this folder")
        self.preprocess, self.task, self.augment, self.seed, self.epoch = preprocess, task, augment, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        image = read_image(self.files[index])
        image, _ = to_working_size(locate(image, self.preprocess, sector=False).crop(image), None, "cls",
                                   self.preprocess)
        if self.augment is not None:
            image, _ = self.augment(image, None, np.random.default_rng((self.seed, self.epoch, index)))
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


def run_distill(cfg: DistillConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    teacher = load_model_dir(cfg.teacher).to(device).eval().requires_grad_(False)
    task, spec = teacher.config.task.value, teacher.config.preprocess
    train_split = load_split(task, cfg.data, "train")
    val_split = load_split(task, cfg.data, "val")
    parts: list[Dataset] = [SupervisedDataset(task, train_split, spec, augment=Augment(), seed=cfg.seed)]
    if cfg.unlabeled:
        parts.append(UnlabeledFrames(cfg.unlabeled, spec, task=task, augment=Augment(), seed=cfg.seed))
    config = make_config(cfg.student, task, labels=teacher.config.labels, img_size=tuple(spec.input_size),
                         in_chans=spec.channels, head=cfg.head, model_args=cfg.student_args,
                         provenance={"distilled_from": str(cfg.teacher), "data": cfg.data, "unlabeled": cfg.unlabeled,
                                     "student_init": cfg.student_init})
    config.preprocess = spec
    student = build_task_model(config).to(device)
    if cfg.student_init:  # a resumed run loads its own weights over these below
        config.provenance["student_init_report"] = init_encoder(student, cfg.student_init, first_blocks_only=True)
    out = open_run_folder(cfg, resume=resume, overwrite=overwrite)  # after the student is known to build and load
    dataset = ConcatDataset([_Labeled(parts[0]), *parts[1:]])
    with torch.no_grad():
        probe = torch.zeros(1, spec.channels, *spec.input_size, device=device)
        widths = (_deepest(student, probe).shape[1], _deepest(teacher, probe).shape[1])
    loss_fn = DistillLoss(task, task_loss(task), temperature=cfg.temperature, label_weight=cfg.label_weight,
                          feature_weight=cfg.feature_weight, student_width=widths[0], teacher_width=widths[1]).to(device)
    params = nn.ModuleList([student, loss_fn.project])
    optimizer = build_optimizer(params, lr=cfg.lr, weight_decay=0.05, layer_decay=1.0)
    steps_per_epoch = max(1, len(dataset) // cfg.batch_size)
    steps = cfg.epochs * steps_per_epoch
    scheduler = warmup_cosine(optimizer, total_steps=steps, warmup_steps=max(1, steps // 20), base_lr=cfg.lr,
                              min_lr=cfg.lr / 100)
    checkpoint = Checkpoint(out / STATE_FILE, {"student": params, "optimizer": optimizer, "scheduler": scheduler})
    position = checkpoint.restore() if resume else {"epoch": 0, "batch": 0, "step": 0, "best": -float("inf")}
    num_classes = max(2, len(config.labels))

    def loader_for(epoch: int) -> DataLoader:
        for part in parts:
            part.set_epoch(epoch)
        return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                          generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))

    def train_step(batch: dict) -> tuple[float, int]:
        student.train()
        x = batch["image"].to(device)
        with autocast(cfg.precision, device):
            loss = loss_fn(student, teacher, x, batch["target"].to(device), batch["labeled"].to(device))
        return optimizer_step(loss, optimizer, scheduler, what="distillation loss"), len(x)

    def end_of_epoch(epoch: int) -> None:
        score = headline(task, evaluate(student, task, val_split, spec, device, num_classes=num_classes))
        session.log({"epoch": epoch, "step": position["step"], "val": score})
        if score > position["best"]:
            position["best"] = score
            config.provenance.update(epoch=epoch, val_score=score)
            save_model_dir(student, out / "model")

    with Session(out, label="distill", total_steps=steps, position=position, checkpoint=checkpoint,
                 log_every=cfg.log_every, max_steps=cfg.max_steps, progress=progress, resume=resume) as session:
        fit_epochs(session, epochs=cfg.epochs, loader_for=loader_for, train_step=train_step, end_of_epoch=end_of_epoch)
        session.finish()
    report = _report(teacher, load_model_dir(out / "model").to(device), task, val_split, spec, device, num_classes)
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
