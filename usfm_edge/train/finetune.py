"""Fine-tuning for segmentation, classification and enhancement.

``run_finetune(config)`` wires the pieces; the loop, resume, signals and metrics are the
training engine's (``train.engine``). A run folder holds: config.yaml (resolved),
subset.json (the label-fraction draw), metrics.jsonl, state.pt (for --resume), model/ (the
best epoch's model directory), eval.json and previews/.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, WeightedRandomSampler

from usfm_edge.errors import InputError
from usfm_edge.models import build_task_model, load_model_dir, make_config, save_model_dir
from usfm_edge.models.checkpoint import load_encoder_checkpoint, load_state_strict
from usfm_edge.contracts import Crop, Preprocess, Resize
from usfm_edge.contracts.prepare import segment_frame, to_display
from usfm_edge.train import previews
from usfm_edge.train.augment import Augment
from usfm_edge.train.config import FinetuneConfig
from usfm_edge.train.datasets import SupervisedDataset, load_split, strata
from usfm_edge.train.engine import STATE_FILE, Checkpoint, Session, fit_epochs, open_run_folder, optimizer_step
from usfm_edge.train.evaluate import evaluate, headline, predict
from usfm_edge.train.losses import task_loss
from usfm_edge.train.optim import build_optimizer, warmup_cosine
from usfm_edge.train.precision import autocast
from usfm_edge.train.subsets import stratified_subset

def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name} but no CUDA device is visible; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r}: use auto, cpu, cuda or cuda:N") from None


def init_encoder(model: torch.nn.Module, init: str, *, first_blocks_only: bool = False) -> str:
    """Load pretrained encoder weights from a model directory or a weights file, strictly;
    ``first_blocks_only``: a shallower encoder takes the source's first blocks."""
    path = Path(init)
    if path.is_dir():
        source = load_model_dir(path)
        report = load_state_strict(model.encoder, source.encoder.state_dict(), str(path),
                                   first_blocks_only=first_blocks_only)
    else:
        report = load_encoder_checkpoint(model.encoder, path, first_blocks_only=first_blocks_only)
    return report.summary()


def _labels(task: str, split) -> list[str]:
    if task == "seg":
        return split.labels
    if task == "cls":
        return split.classes
    return []


def _sampler(cfg: FinetuneConfig, dataset: SupervisedDataset, epoch: int):
    generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
    if cfg.task == "cls" and cfg.balanced_sampling:
        labels = np.array([dataset.split.samples[i][1] for i in dataset.indices])
        weights = 1.0 / np.bincount(labels)[labels]
        return WeightedRandomSampler(weights.tolist(), len(labels), replacement=True, generator=generator)
    return RandomSampler(dataset, generator=generator)


def supervised_step(model, batch: dict, loss_fn, optimizer, scheduler, device: torch.device,
                    precision: str) -> tuple[float, int]:
    """One optimiser step on a batch: forward under autocast, the loss in fp32, backward,
    gradients clipped at 3, AdamW, the schedule. Returns (loss, images)."""
    model.train()
    x, y = batch["image"].to(device), batch["target"].to(device)
    with autocast(precision, device):
        out = model(x)
    return optimizer_step(loss_fn(out.float(), y), optimizer, scheduler, params=model.parameters(), clip=3.0), len(x)


def run_finetune(cfg: FinetuneConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    train_split = load_split(cfg.task, cfg.data, "train")
    val_split = _optional_split(cfg, "val") or train_split
    test_split = _optional_split(cfg, "test") or val_split
    out = open_run_folder(cfg, resume=resume, overwrite=overwrite)
    indices = stratified_subset(strata(cfg.task, train_split), cfg.label_fraction, cfg.seed)
    subset = {"fraction": cfg.label_fraction, "seed": cfg.seed, "count": len(indices), "of": len(train_split),
              "sha256": hashlib.sha256(json.dumps(indices).encode()).hexdigest()}
    (out / "subset.json").write_text(json.dumps({**subset, "indices": indices}) + "\n")

    labels = _labels(cfg.task, train_split)
    model_args = {"drop_path_rate": cfg.drop_path} if cfg.model.startswith("usfm_vit") else {}
    model_args.update(cfg.model_args or {})
    config = make_config(cfg.model, cfg.task, labels=labels, img_size=cfg.img_size, in_chans=cfg.in_chans,
                         head=cfg.head, model_args=model_args,
                         provenance={"data": str(cfg.data), "label_fraction": subset, "init": cfg.init})
    config.preprocess = Preprocess.for_channels(cfg.in_chans, (cfg.img_size, cfg.img_size), resize=Resize(cfg.resize),
                                                crop=Crop(cfg.crop), mask_sector=cfg.mask_sector)
    model = build_task_model(config).to(device)
    if cfg.init:
        config.provenance["init_report"] = init_encoder(model, cfg.init)

    dataset = SupervisedDataset(cfg.task, train_split, config.preprocess, indices=indices,
                                augment=Augment() if cfg.augment else None, seed=cfg.seed)
    steps_per_epoch = max(1, -(-len(dataset) // cfg.batch_size))
    optimizer = build_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay, layer_decay=cfg.layer_decay)
    scheduler = warmup_cosine(optimizer, total_steps=cfg.epochs * steps_per_epoch,
                              warmup_steps=round(cfg.warmup_epochs * steps_per_epoch), base_lr=cfg.lr, min_lr=cfg.min_lr)
    loss_fn = task_loss(cfg.task, ce_weight=cfg.ce_weight, dice_weight=cfg.dice_weight,
                        label_smoothing=cfg.label_smoothing)
    checkpoint = Checkpoint(out / STATE_FILE, {"model": model, "optimizer": optimizer, "scheduler": scheduler})
    position = checkpoint.restore() if resume else {"epoch": 0, "batch": 0, "step": 0, "best": -float("inf")}
    num_classes = max(2, len(labels))

    def loader_for(epoch: int) -> DataLoader:
        dataset.set_epoch(epoch)
        # Its own generator: without one, each new iterator draws a seed from the global torch
        # RNG, and a resumed run (which re-creates it) would drift from the original.
        return DataLoader(dataset, batch_size=cfg.batch_size, sampler=_sampler(cfg, dataset, epoch),
                          num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                          generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))

    def end_of_epoch(epoch: int) -> None:
        due = cfg.eval_every is None or epoch == cfg.epochs - 1 \
            or position["step"] - position.get("evaluated_at", 0) >= cfg.eval_every
        if not due:
            return
        position["evaluated_at"] = position["step"]
        result = evaluate(model, cfg.task, val_split, config.preprocess, device, batch_size=cfg.batch_size,
                          num_classes=num_classes)
        score = headline(cfg.task, result)
        session.log({"epoch": epoch, "step": position["step"], "val": _summary(cfg.task, result)})
        if score > position["best"]:
            position["best"] = score
            config.provenance.update(epoch=epoch, val_score=score)
            save_model_dir(model, out / "model")

    with Session(out, label="finetune", total_steps=cfg.epochs * steps_per_epoch, position=position,
                 checkpoint=checkpoint, log_every=cfg.log_every, max_steps=cfg.max_steps, progress=progress,
                 resume=resume) as session:
        fit_epochs(session, epochs=cfg.epochs, loader_for=loader_for,
                   train_step=lambda batch: supervised_step(model, batch, loss_fn, optimizer, scheduler, device,
                                                            cfg.precision),
                   end_of_epoch=end_of_epoch, extra_fields=lambda: {"lr": optimizer.param_groups[-1]["lr"]})
        session.finish()

    best = load_model_dir(out / "model").to(device)
    result = evaluate(best, cfg.task, test_split, config.preprocess, device, batch_size=cfg.batch_size,
                      num_classes=num_classes)
    (out / "eval.json").write_text(json.dumps({"split": test_split.split, **result}, indent=2) + "\n")
    write_previews(best, cfg, test_split, config.preprocess, device, out / "previews")
    return out


def _optional_split(cfg: FinetuneConfig, split: str):
    try:
        return load_split(cfg.task, cfg.data, split)
    except InputError:
        return None


def _summary(task: str, result: dict) -> dict:
    if task == "cls":
        return {k: v for k, v in result.items() if k != "confusion_matrix"}
    return {k: round(v, 5) for k, v in result["mean"].items() if k.endswith("_mean")}


def write_previews(model, cfg: FinetuneConfig, split, spec: Preprocess, device, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()
    for i in range(min(cfg.previews, len(split))):
        image, target = split.load(i)
        outputs, views = predict(model, [image], spec, device)
        out, view = outputs[0], views[0]
        if cfg.task == "seg":
            panel = previews.draw_mask_contours(image, segment_frame(out, view, spec, target.shape), target)
        elif cfg.task == "cls":
            panel = previews.draw_mask_contours(image, np.zeros(image.shape[:2]))
            text = f"{split.classes[int(out.argmax())]} ({split.classes[target]})"
            cv2.putText(panel, text, (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, previews.GREEN, 2)
        else:
            restored = to_display(out, view.shape, spec).round().astype(np.uint8)
            panel = previews.side_by_side(view.crop(image), restored, view.crop(target))
        previews.save_png(folder / f"{i:02d}.png", panel)
