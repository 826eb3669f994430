"""Fine-tuning for segmentation, classification and enhancement.

``run_finetune(config)`` wires the pieces; ``train_one_epoch`` is the loop. A run folder
holds: config.yaml (resolved), subset.json (the label-fraction draw), metrics.jsonl,
state.pt (for --resume), model/ (the best epoch's model directory), eval.json and previews/.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
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
from usfm_edge.train.config import FinetuneConfig, save_config
from usfm_edge.train.datasets import SupervisedDataset, load_split, strata
from usfm_edge.train.evaluate import evaluate, headline, predict
from usfm_edge.train.losses import task_loss
from usfm_edge.train.optim import build_optimizer, warmup_cosine
from usfm_edge.train.precision import autocast
from usfm_edge.train.progress import StepProgress
from usfm_edge.train.state import load_state, save_state
from usfm_edge.train.subsets import stratified_subset

STATE_FILE = "state.pt"


class StopRequested(Exception):
    """SIGTERM arrived or --max-steps was reached: the state was saved; --resume continues."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda but no CUDA device is visible; use --device cpu")
    return torch.device(name)


def init_encoder(model: torch.nn.Module, init: str) -> str:
    """Load pretrained encoder weights from a model directory or a weights file."""
    path = Path(init)
    if path.is_dir():
        source = load_model_dir(path)
        report = load_state_strict(model.encoder, source.encoder.state_dict(), str(path))
    else:
        report = load_encoder_checkpoint(model.encoder, path)
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


def train_one_epoch(model, loader, loss_fn, optimizer, scheduler, device, *, skip: int, on_step,
                    precision: str = "fp32") -> None:
    """One pass; ``skip`` batches already done before a resume are drawn but not trained on,
    so the sampler's order, and so the curve, stays that of an uninterrupted run."""
    model.train()
    for i, batch in enumerate(loader):
        if i < skip:
            continue
        start = time.perf_counter()
        x, y = batch["image"].to(device), batch["target"].to(device)
        with autocast(precision, device):
            out = model(x)
        loss = loss_fn(out.float(), y)
        if not torch.isfinite(loss):
            raise InputError(f"loss became {loss.item()} at batch {i}; lower --lr or check the data for NaN")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        optimizer.step()
        scheduler.step()
        on_step(i, float(loss.item()), len(x) / (time.perf_counter() - start))


def run_finetune(cfg: FinetuneConfig, *, resume: bool = False, progress: bool = True) -> Path:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)

    train_split = load_split(cfg.task, cfg.data, "train")
    val_split = _optional_split(cfg, "val") or train_split
    test_split = _optional_split(cfg, "test") or val_split
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

    position = {"epoch": 0, "batch": 0, "step": 0, "best": -float("inf")}
    if resume:
        position = _restore(out / STATE_FILE, model, optimizer, scheduler)
    stop = {"requested": False}
    session_start = position["step"]
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
    log = open(out / "metrics.jsonl", "a" if resume else "w")
    try:
        with StepProgress("finetune", cfg.epochs * steps_per_epoch, position["step"], progress) as advance:
            for epoch in range(position["epoch"], cfg.epochs):
                dataset.set_epoch(epoch)
                # Its own generator: without one, each new iterator draws a seed from the global
                # torch RNG, and a resumed run (which re-creates it) would drift from the original.
                loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=_sampler(cfg, dataset, epoch),
                                    num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                                    generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))

                def on_step(batch: int, loss: float, img_per_s: float, epoch: int = epoch) -> None:
                    position.update(epoch=epoch, batch=batch + 1, step=position["step"] + 1)
                    advance(loss)
                    if position["step"] % cfg.log_every == 0:
                        row = {"step": position["step"], "epoch": epoch, "loss": round(loss, 5),
                               "lr": optimizer.param_groups[-1]["lr"], "img_per_s": round(img_per_s, 2)}
                        log.write(json.dumps(row) + "\n")
                        log.flush()
                    at_limit = cfg.max_steps is not None and position["step"] - session_start >= cfg.max_steps
                    if stop["requested"] or at_limit:
                        _save(out / STATE_FILE, model, optimizer, scheduler, position)
                        raise StopRequested

                train_one_epoch(model, loader, loss_fn, optimizer, scheduler, device,
                                skip=position["batch"] if epoch == position["epoch"] else 0, on_step=on_step,
                                precision=cfg.precision)
                result = evaluate(model, cfg.task, val_split, config.preprocess, device,
                                  batch_size=cfg.batch_size, num_classes=max(2, len(labels)))
                score = headline(cfg.task, result)
                log.write(json.dumps({"epoch": epoch, "step": position["step"], "val": _summary(cfg.task, result)}) + "\n")
                log.flush()
                if score > position["best"]:
                    position["best"] = score
                    config.provenance.update(epoch=epoch, val_score=score)
                    save_model_dir(model, out / "model")
                position.update(epoch=epoch + 1, batch=0)
                _save(out / STATE_FILE, model, optimizer, scheduler, position)
    finally:
        log.close()
        signal.signal(signal.SIGTERM, previous)

    best = load_model_dir(out / "model").to(device)
    result = evaluate(best, cfg.task, test_split, config.preprocess, device, batch_size=cfg.batch_size,
                      num_classes=max(2, len(labels)))
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


def _save(path: Path, model, optimizer, scheduler, position: dict) -> None:
    save_state(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "position": dict(position),
                      "torch_rng": torch.get_rng_state()})


def _restore(path: Path, model, optimizer, scheduler) -> dict:
    state = load_state(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return dict(state["position"])


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
