"""Typed errors. Each message names the thing that is wrong and what to do about it.

The CLI prints ``UsfmEdgeError`` messages as one line and exits non-zero; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations


class UsfmEdgeError(Exception):
    """Base class of the errors a user can fix."""

    exit_code = 2


class SchemaError(UsfmEdgeError):
    """A ``config.json`` or ``manifest.json`` that does not follow its schema."""


class ModelNotFoundError(UsfmEdgeError):
    """A model or head name that is not in the registry."""


class CheckpointError(UsfmEdgeError):
    """A weights file that cannot be read safely or does not fit the model."""


class CheckpointMismatchError(CheckpointError):
    """Weights whose names or shapes do not match the model (strict loading)."""

    def __init__(
        self,
        source: str,
        *,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_head(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_head(unexpected)})")
        if mismatched:
            shown = ", ".join(f"{k}: file {tuple(a)} vs model {tuple(b)}" for k, a, b in mismatched[:4])
            parts.append(f"{len(mismatched)} with other shapes ({shown}{', ...' if len(mismatched) > 4 else ''})")
        super().__init__(
            f"{source}: weights do not match the model: " + "; ".join(parts)
            + ". Check --model/--arch (and its size) against the file"
        )


class IntegrityError(UsfmEdgeError):
    """A bundle file that is missing, changed, or outside the bundle folder."""


class BundleMismatchError(UsfmEdgeError):
    """A deployment bundle that cannot serve what was asked (backend, precision, frames)."""


class DependencyError(UsfmEdgeError):
    """An optional dependency that this code path needs is not installed."""


class InputError(UsfmEdgeError):
    """An input file or array that cannot be used (missing, corrupt, wrong shape, NaN)."""


class WriteError(UsfmEdgeError):
    """The machine refused a write (a full or read-only disk, a permission); nothing half
    written is left behind."""

    exit_code = 3


def _head(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")
