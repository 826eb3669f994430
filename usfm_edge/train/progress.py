"""A step progress bar for training loops (rich), or nothing for logs and tests."""

from __future__ import annotations

from collections.abc import Callable


class StepProgress:
    """``with StepProgress("finetune", total, done, enabled) as advance: advance(loss)``."""

    def __init__(self, label: str, total: int, done: int = 0, enabled: bool = True) -> None:
        self.label, self.total, self.done, self.enabled = label, total, done, enabled

    def __enter__(self) -> Callable[[float], None]:
        if not self.enabled:
            return lambda loss: None
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn(self.label), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn())
        self.bar.start()
        task = self.bar.add_task("steps", total=self.total, completed=self.done, loss="-")
        return lambda loss: self.bar.update(task, advance=1, loss=f"{loss:.4f}")

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.bar.stop()
