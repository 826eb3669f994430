"""The pretraining loop. ``run_pretrain`` wires data, model, objective and optimiser;
``train_step`` is one optimiser step. Runs on one CPU, one GPU, or under torchrun (DDP)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from usfm_edge.errors import InputError
from usfm_edge.models import build_task_model, load_model_dir, make_config, save_model_dir
from usfm_edge.models.task_model import TaskModel
from usfm_edge.contracts import Preprocess
from usfm_edge.train.engine import STATE_FILE, Checkpoint, Session, loader_workers, open_run_folder
from usfm_edge.train.finetune import init_encoder
from usfm_edge.train.optim import warmup_cosine
from usfm_edge.train.pretrain.config import PretrainConfig, peak_lr
from usfm_edge.train.pretrain.data import OrganBalancedSampler, PretrainDataset, collect_items
from usfm_edge.train.precision import autocast_dtype
from usfm_edge.train.pretrain.objectives import create_objective
from usfm_edge.train.previews import save_png

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if device_name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda but no CUDA device is visible; use --device cpu")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(rank=dist.get_rank() if world > 1 else 0, world=world, device=device)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim <= 1 or name.endswith(("cls_token", "mask_token", "relative_position_bias_table"))
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class EMA:
    """Exponential moving average of the encoder's weights."""

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        for k, v in module.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(self.decay).add_(v.detach().float(), alpha=1 - self.decay)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.shadow = {k: v.clone() for k, v in state.items()}


def build_teacher(cfg: PretrainConfig) -> tuple[torch.nn.Module, Preprocess]:
    path = Path(cfg.teacher)
    if not path.is_dir():
        raise InputError(f"{path}: the teacher must be a model directory (convert weights with convert-checkpoint)")
    model = load_model_dir(path)
    return model.encoder, model.config.preprocess


def build(cfg: PretrainConfig, device: torch.device) -> tuple[TaskModel, torch.nn.Module, Preprocess]:
    model_args = {"drop_path_rate": cfg.drop_path} if cfg.model.startswith("usfm_vit") and cfg.drop_path else {}
    model_args.update(cfg.model_args or {})
    config = make_config(cfg.model, "features", img_size=cfg.img_size, in_chans=cfg.in_chans, model_args=model_args,
                         provenance={"objective": cfg.objective, "data": list(cfg.data), "init": cfg.init})
    holder = build_task_model(config)
    if cfg.init:
        config.provenance["init_report"] = init_encoder(holder, cfg.init)
    extra = dict(cfg.objective_args)
    if cfg.objective == "feature":
        teacher, teacher_pre = build_teacher(cfg)
        extra.update(teacher=teacher, teacher_mean=teacher_pre.mean, teacher_std=teacher_pre.std)
    pre = config.preprocess
    objective = create_objective(cfg.objective, holder.encoder, mean=pre.mean, std=pre.std, **extra).to(device)
    return holder, objective, pre


def run_pretrain(cfg: PretrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    d = setup_distributed(cfg.device)
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    items, errors = collect_items(cfg.data, stride=cfg.frame_stride, threshold=cfg.dedup_threshold)
    if d.main:
        out = open_run_folder(cfg, resume=resume, overwrite=overwrite)
        if errors:
            (out / "unreadable.txt").write_text("\n".join(errors) + "\n")
    if d.world > 1:
        dist.barrier()  # the other ranks write into the folder only once it is ready
    holder, objective, pre = build(cfg, d.device)
    dataset = PretrainDataset(items, img_size=cfg.img_size, in_chans=cfg.in_chans, mask_patch=cfg.mask_patch,
                              mask_ratio=cfg.mask_ratio, seed=cfg.seed, spec=pre)
    sampler = OrganBalancedSampler(dataset.organ_ids, alpha=cfg.organ_alpha, seed=cfg.seed, rank=d.rank, world=d.world)
    if len(sampler) // cfg.batch_size == 0:
        raise InputError(f"{len(items)} frames give no full batch of {cfg.batch_size} per process; lower --batch-size")

    global_batch = cfg.batch_size * cfg.accum_steps * d.world
    lr = peak_lr(cfg.lr, global_batch, cfg.lr_scaling)
    if d.main:
        rule = f"sqrt({global_batch}/256)" if cfg.lr_scaling == "sqrt" else f"{global_batch}/256"
        print(f"pretrain: {len(items)} frames, global batch {global_batch}, peak lr {lr:.3g} "
              f"(--lr {cfg.lr:g} per 256 images x {rule})", file=sys.stderr)
    optimizer = torch.optim.AdamW(param_groups(objective, cfg.weight_decay), lr=lr, betas=(0.9, 0.95))
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else round(0.05 * cfg.steps)
    scheduler = warmup_cosine(optimizer, total_steps=cfg.steps, warmup_steps=warmup, base_lr=lr,
                              min_lr=cfg.min_lr)
    dtype = autocast_dtype(cfg.precision, d.device)
    scaler = torch.amp.GradScaler(d.device.type, enabled=dtype == torch.float16)
    ema = EMA(holder.encoder, cfg.ema) if cfg.ema else None
    generator = torch.Generator()  # corruption randomness, re-seeded every step
    # The objective holds the decoder; randomness needs no state (a function of seed, rank and step).
    checkpoint = Checkpoint(out / STATE_FILE, {"objective": objective, "optimizer": optimizer, "scheduler": scheduler,
                                               "scaler": scaler, "ema": ema}, enabled=d.main)
    position = checkpoint.restore() if resume else {"step": 0, "epoch": 0, "consumed": 0}
    model = objective
    if d.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(objective, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    if cfg.compile:
        model = torch.compile(model)

    board = _board(out) if d.main else None
    samples_log = _samples_log(out, d.rank, resume, position["step"]) if cfg.record_samples else None

    def one_step(group: list[dict]) -> None:
        # Randomness as a function of (seed, rank, step): corruptions and drop-path are the
        # same on a resumed run, on every rank, without carrying generator states around.
        generator.manual_seed((cfg.seed * 1_000_003 + d.rank * 10_007 + position["step"]) % 2**63)
        torch.manual_seed((cfg.seed * 7_919 + d.rank * 104_729 + position["step"]) % 2**63)
        start = time.perf_counter()
        loss, parts, preview = train_step(model, group, optimizer, scheduler, scaler, dtype, d.device,
                                          generator, accum=cfg.accum_steps, no_sync=d.world > 1)
        if ema is not None:
            ema.update(holder.encoder)
        position["consumed"] += cfg.batch_size * cfg.accum_steps
        if samples_log is not None:
            samples_log.write(json.dumps([int(i) for b in group for i in b["index"]]) + "\n")
            samples_log.flush()
        step = position["step"] + 1
        if d.main:
            if board is not None and (step % cfg.log_every == 0 or step == cfg.steps):
                _board_row(board, step, loss, parts, optimizer)
            if cfg.preview_every and (step % cfg.preview_every == 0 or step == cfg.steps):
                _preview(out, step, preview)
        if step % cfg.save_every == 0:
            checkpoint.save({**position, "step": step})
        session.step(loss, lr=optimizer.param_groups[0]["lr"],
                     img_per_s=round(global_batch / (time.perf_counter() - start), 2),
                     **{k: round(v, 6) for k, v in parts.items()})

    try:
        with Session(out, label="pretrain", total_steps=cfg.steps, position=position, checkpoint=checkpoint,
                     log_every=cfg.log_every, max_steps=cfg.max_steps, progress=progress and d.main, resume=resume,
                     main=d.main, agree=lambda flag: _any_rank(flag, d)) as session:
            while position["step"] < cfg.steps:
                sampler.set_epoch(position["epoch"], position["consumed"])
                loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                                    num_workers=loader_workers(cfg.num_workers), pin_memory=d.device.type == "cuda",
                                    generator=torch.Generator().manual_seed(cfg.seed + position["epoch"]))
                batches = iter(loader)
                while position["step"] < cfg.steps:
                    group = list(_take(batches, cfg.accum_steps))
                    if len(group) < cfg.accum_steps:  # epoch exhausted: next epoch's draw
                        position["epoch"] += 1
                        position["consumed"] = 0
                        break
                    one_step(group)
            session.finish()
    finally:
        for handle in (board, samples_log):
            if handle is not None:
                handle.close()
    if d.main:
        if ema is not None:
            holder.encoder.load_state_dict(ema.shadow)
        holder.config.provenance.update(steps=position["step"], global_batch=global_batch)
        save_model_dir(holder.cpu(), out / "encoder")
    if d.world > 1:
        dist.barrier()
    return out


def train_step(model, group: list[dict], optimizer, scheduler, scaler, dtype, device, generator, *, accum: int,
               no_sync: bool) -> tuple[float, dict, dict]:
    """One optimiser step over ``accum`` micro-batches (gradients synchronised on the last)."""
    optimizer.zero_grad(set_to_none=True)
    total, parts, preview = 0.0, {}, {}
    for i, batch in enumerate(group):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items() if torch.is_tensor(v)}
        sync = not no_sync or i == len(group) - 1
        with (contextlib.nullcontext() if sync else model.no_sync()), \
                torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(batch, generator=generator)
            scaler.scale(out.loss / accum).backward()
        if not torch.isfinite(out.loss):
            raise InputError(f"loss became {float(out.loss)}; lower --lr or check the data for NaN frames")
        total += float(out.loss.detach()) / accum
        parts, preview = out.parts, out.preview
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 3.0)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return total, parts, preview


def _take(iterator, n: int):
    for _ in range(n):
        try:
            yield next(iterator)
        except StopIteration:
            return


def _any_rank(flag: bool, d: Dist) -> bool:
    if d.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=d.device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def _board_row(board, step: int, loss: float, parts: dict, optimizer) -> None:
    for key, value in {"loss": loss, "lr": optimizer.param_groups[0]["lr"], **parts}.items():
        board.add_scalar(f"pretrain/{key}", value, step)


def _board(out: Path):
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tensorboard"))


def _samples_log(out: Path, rank: int, resume: bool, step: int):
    """One line of item indices per step; on resume, the lines after the saved step go."""
    path = out / "samples" / f"rank{rank}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    if resume and path.is_file():
        path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:step]))
    return open(path, "a" if resume else "w")


def _preview(out: Path, step: int, preview: dict) -> None:
    """A PNG grid: one row per sample (up to 4): input | corrupted | reconstruction."""
    if not preview:
        return
    rows = []
    for i in range(min(4, preview["input"].shape[0])):
        panels = [preview[k][i].detach().float().mean(0).cpu().numpy() for k in ("input", "corrupted", "reconstruction")
                  if k in preview]
        rows.append(np.concatenate(panels, axis=1))
    grid = (np.clip(np.concatenate(rows, axis=0), 0, 1) * 255).astype(np.uint8)
    (out / "previews").mkdir(exist_ok=True)
    save_png(out / "previews" / f"step_{step:07d}.png", np.repeat(grid[..., None], 3, axis=-1))
