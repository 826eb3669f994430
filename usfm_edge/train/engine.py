"""The one training engine: pretraining, fine-tuning and distillation run on it.

A run folder holds ``config.yaml`` (the resolved options), ``metrics.jsonl``, ``state.pt``
(everything a resumed run needs) and the run's outputs. The engine does, the same way for
every loop, what a user relies on:

- the folder's lifecycle: a new folder, ``--resume``, or ``--overwrite``; an existing run is
  never replaced silently and a folder with other files is never written into;
- resume: the saved ``config.yaml`` is the default, so ``--out RUN --resume`` is enough; an
  option given with a different value is refused by name; state (model, optimiser, scheduler,
  scaler, EMA, position, RNG) is restored, and rows of ``metrics.jsonl`` logged after the
  saved step are dropped, so none is duplicated;
- stopping: SIGINT and SIGTERM finish the current step, save the state and stop (exit 130,
  143); ``--max-steps N`` stops after N steps of this session (exit 0); either way the
  command prints how to continue;
- metrics rows, the progress bar, autocast precision (``train.precision``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import torch
import yaml

from usfm_edge.errors import CheckpointError, InputError, SchemaError, UsfmEdgeError
from usfm_edge.fileio import write_text_atomic
from usfm_edge.train.progress import StepProgress
from usfm_edge.train.state import load_state, save_state

T = TypeVar("T")
CONFIG_FILE, METRICS_FILE, STATE_FILE = "config.yaml", "metrics.jsonl", "state.pt"
# What a run writes into its folder; --overwrite removes these and nothing else.
RUN_OUTPUTS = (CONFIG_FILE, METRICS_FILE, STATE_FILE, "subset.json", "eval.json", "distill_report.json",
               "unreadable.txt", "model", "encoder", "previews", "tensorboard", "samples")
# Options a resumed session may set differently: they do not change the curve.
RESUME_MAY_CHANGE = frozenset({"max_steps", "num_workers", "device", "save_every", "preview_every", "out"})
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143, "max_steps": 0}


class StopRequested(UsfmEdgeError):
    """The run stopped early with its state saved: a signal or ``--max-steps``. The training
    commands say how to continue; any other command ends with its exit code."""

    def __init__(self, reason: str, step: int) -> None:
        super().__init__(f"stopped at step {step} ({'--max-steps' if reason == 'max_steps' else reason})")
        self.reason, self.step, self.exit_code = reason, step, EXIT_CODES[reason]


# --------------------------------------------------------------------------- configuration


def load_config(cls: type[T], recipe: str | Path | None = None, **overrides: Any) -> T:
    """Defaults of ``cls``, then the recipe YAML, then ``overrides`` (None means "not given")."""
    values: dict[str, Any] = {}
    if recipe:
        values.update(_read_yaml(Path(recipe), "recipe"))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return _build(cls, values)


def resume_config(cls: type[T], out: str | Path, recipe: str | Path | None = None, **overrides: Any) -> T:
    """The saved config of the run in ``out``, with what the command line (or a recipe) sets
    that may change on resume; any other option given with a new value is refused by name."""
    out = Path(out)
    saved = _read_yaml(out / CONFIG_FILE, "run config", missing=f"no run to resume in {out} (no {CONFIG_FILE}); "
                       "start it without --resume")
    given = {**(_read_yaml(Path(recipe), "recipe") if recipe else {}),
             **{k: v for k, v in overrides.items() if v is not None}}
    check_unchanged(saved, given)
    return _build(cls, {**saved, **given, "out": str(out)})


def check_unchanged(saved: dict[str, Any], given: dict[str, Any]) -> None:
    for key, value in given.items():
        if key in RESUME_MAY_CHANGE or key not in saved or _same(saved[key], value):
            continue
        flag = "--" + key.replace("_", "-")
        raise InputError(f"{flag} {value!r} differs from the run's {saved[key]!r}: a resumed run keeps its options; "
                         f"leave {flag} out, or start a new run in another --out")


def save_config(config: Any, path: str | Path) -> None:
    write_text_atomic(path, yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def _read_yaml(path: Path, what: str, *, missing: str | None = None) -> dict[str, Any]:
    if not path.is_file():
        raise (CheckpointError if missing else SchemaError)(missing or f"{path}: {what} not found")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:  # includes !!python tags, which safe_load refuses
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        reason = str(getattr(exc, "problem", None) or exc).splitlines()[0]
        raise SchemaError(f"{path}: not a valid YAML {what}{line}: {reason}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: cannot be read ({exc}); check the file") from None
    if not isinstance(loaded, dict):
        raise SchemaError(f"{path}: a {what} is a mapping of option: value, not {type(loaded).__name__}")
    return loaded


def _build(cls: type[T], values: dict[str, Any]) -> T:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SchemaError(f"unknown option(s) {unknown}; known: {sorted(known)}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise SchemaError(f"options do not fit {cls.__name__}: {exc}") from None


# --------------------------------------------------------------------------- the run folder


def open_run_folder(config: Any, *, resume: bool, overwrite: bool = False) -> Path:
    """Make ``config.out`` ready: a new run (refusing to replace one unless ``overwrite``),
    or the run to resume. Writes the resolved config (not on resume: the run keeps its own)."""
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file; give a folder for the run")
    if resume:
        if not (out / STATE_FILE).is_file():
            raise CheckpointError(f"{out / STATE_FILE}: no training state to resume from; start without --resume")
        if (out / CONFIG_FILE).is_file():
            check_unchanged(_read_yaml(out / CONFIG_FILE, "run config"), dataclasses.asdict(config))
        return out
    if out.is_dir() and any(out.iterdir()):
        if not (out / CONFIG_FILE).is_file():
            raise InputError(f"--out {out}: a folder with files that is not a run folder; give a new --out "
                             "(nothing is written into a folder usfm-edge did not make)")
        # A run that never saved a state (it failed on its data, say) holds no work to lose.
        started = any((out / name).exists() for name in (STATE_FILE, "model", "encoder"))
        if started and not overwrite:
            raise InputError(f"--out {out}: already holds a run ({run_status(out)}); --resume continues it, "
                             "--overwrite replaces it, or give another --out")
        for name in RUN_OUTPUTS:
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / CONFIG_FILE)
    return out


def run_status(out: Path) -> str:
    if not (out / STATE_FILE).is_file():
        return "not started"
    try:
        position = load_state(out / STATE_FILE).get("position", {})
    except CheckpointError:
        return "its state.pt is unreadable"
    return f"at step {position.get('step', '?')}" + (", finished" if position.get("finished") else "")


# --------------------------------------------------------------------------- state


class Checkpoint:
    """``state.pt``: each component's ``state_dict``, the position and the torch RNG, written
    atomically (``train.state``). Only the main process writes (``enabled``)."""

    def __init__(self, path: Path, components: dict[str, Any], *, enabled: bool = True) -> None:
        self.path, self.components, self.enabled = Path(path), components, enabled

    def save(self, position: dict[str, Any]) -> None:
        if not self.enabled:
            return
        state = {name: part.state_dict() for name, part in self.components.items() if part is not None}
        save_state(self.path, {**state, "position": dict(position), "torch_rng": torch.get_rng_state()})

    def restore(self) -> dict[str, Any]:
        state = load_state(self.path)
        missing = [name for name, part in self.components.items() if part is not None and name not in state]
        if missing or "position" not in state:
            raise CheckpointError(f"{self.path}: not the state of this kind of run (it lacks {missing or 'position'}); "
                                  "resume with the command that started the run, or start a new one")
        try:
            for name, part in self.components.items():
                if part is not None:
                    part.load_state_dict(state[name])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{self.path}: does not fit this run's model or optimiser "
                                  f"({str(exc).splitlines()[0]}); resume with the options that started it") from None
        torch.set_rng_state(state["torch_rng"])
        return dict(state["position"])


# --------------------------------------------------------------------------- a training session


class Session:
    """One sitting of a run: signals, metrics rows, the progress bar, the stop rules.

    ``with Session(...) as session:`` then ``session.step(loss, **fields)`` after every
    optimiser step. ``position`` is the loop's own dict (it must hold ``step``); the session
    advances ``step`` and saves ``position`` with the checkpoint."""

    def __init__(self, out: Path, *, label: str, total_steps: int, position: dict[str, Any], checkpoint: Checkpoint,
                 log_every: int, max_steps: int | None, progress: bool, resume: bool, main: bool = True,
                 agree: Callable[[bool], bool] = lambda flag: flag) -> None:
        self.out, self.label, self.total, self.position = Path(out), label, total_steps, position
        self.checkpoint, self.log_every, self.max_steps = checkpoint, log_every, max_steps
        self.progress, self.resume, self.main, self.agree = progress, resume, main, agree
        self.start = position["step"]
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}
        self._log = None
        self._bar = None

    def __enter__(self) -> Session:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        if self.main:
            self._log = self._open_metrics()
            self._bar = StepProgress(self.label, self.total, self.start, self.progress)
            self._advance = self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._bar is not None:
            self._bar.__exit__(*exc)
        if self._log is not None:
            self._log.close()

    def _on_signal(self, signum: int, _frame) -> None:
        self.signal = signal.Signals(signum).name  # the step in flight finishes, then the state is saved

    def _open_metrics(self):
        path = self.out / METRICS_FILE
        if self.resume and path.is_file():
            # Rows after the saved step were logged by the session that died; it runs them again.
            rows = [line for line in path.read_text().splitlines() if line.strip()]
            kept = [r for r in rows if json.loads(r).get("step", 0) <= self.start]
            write_text_atomic(path, "".join(r + "\n" for r in kept))
        return open(path, "a" if self.resume else "w")

    def log(self, row: dict[str, Any]) -> None:
        if self._log is not None:
            self._log.write(json.dumps(row) + "\n")
            self._log.flush()

    def step(self, loss: float, **fields: Any) -> None:
        """One optimiser step is done: count it, log it, and stop (state saved) when asked."""
        step = self.position["step"] = self.position["step"] + 1
        if self.main:
            self._advance(loss)
            if step % self.log_every == 0 or step == self.total:
                self.log({"step": step, "loss": round(loss, 6), **fields})
        at_limit = self.max_steps is not None and step - self.start >= self.max_steps
        if self.agree(self.signal is not None or at_limit):
            self.checkpoint.save(self.position)
            raise StopRequested(self.signal or "max_steps", step)

    def save(self) -> None:
        self.checkpoint.save(self.position)

    def finish(self) -> None:
        """The last step is done: the state says so (a finished run is not resumed)."""
        self.position["finished"] = True
        self.checkpoint.save(self.position)


def fit_epochs(session: Session, *, epochs: int, loader_for: Callable[[int], Iterable[dict]],
               train_step: Callable[[dict], tuple[float, int]], end_of_epoch: Callable[[int], None],
               extra_fields: Callable[[], dict[str, Any]] = dict) -> None:
    """Epochs of optimiser steps, resumable mid-epoch: on a resume the first ``position
    ["batch"]`` batches of the interrupted epoch are drawn but not trained on, so the order,
    and so the curve, is that of an uninterrupted run. ``train_step`` returns (loss, images);
    ``end_of_epoch`` evaluates and keeps the best model."""
    position = session.position
    for epoch in range(position["epoch"], epochs):
        skip = position["batch"] if epoch == position["epoch"] else 0
        for i, batch in enumerate(loader_for(epoch)):
            if i < skip:
                continue
            start = time.perf_counter()
            loss, images = train_step(batch)
            position.update(epoch=epoch, batch=i + 1)
            session.step(loss, epoch=epoch, img_per_s=round(images / (time.perf_counter() - start), 2),
                         **extra_fields())
        end_of_epoch(epoch)
        position.update(epoch=epoch + 1, batch=0)
        session.save()


def loader_workers(requested: int | None) -> int:
    """Data-loader processes: as asked, else one per core this process may use less one (the
    training loop needs a core), at most 4; 0 (load in the main process) on 2 cores or fewer."""
    if requested is not None:
        return requested
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return min(4, cores - 1) if cores > 2 else 0


def optimizer_step(loss: torch.Tensor, optimizer, scheduler, *, params=None, clip: float | None = None,
                   what: str = "loss") -> float:
    """Backward, clip, step; a NaN or infinite loss stops the run with what to do."""
    if not torch.isfinite(loss):
        raise InputError(f"the {what} became {loss.item()}; lower --lr, or check the data for NaN or broken frames")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()
    scheduler.step()
    return float(loss.detach())
