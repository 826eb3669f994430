"""Typed ``?key=value`` options of source and sink URIs.

Every scheme declares the options it takes (name, type, range, default) as a ``ParamSet``;
a URI is parsed against it before anything is opened. An unknown key (``phantom:?fsp=5``) or
a bad value (``fps=nan``, ``size=100000``) is refused in one line naming the key and what the
scheme takes, instead of being ignored: a misspelled option on a cart must not silently run
with the default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from usfm_edge.errors import InputError

Converter = Callable[[str], Any]


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("is not an integer") from None


def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("is not a number") from None
    if not math.isfinite(value):
        raise ValueError("is not a finite number")
    return value


def flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("is not a yes/no value (1, 0, true, false)")


def text(value: str) -> str:
    return value


def fourcc(value: str) -> str:
    if len(value) != 4:
        raise ValueError("is not a FOURCC (four characters, e.g. MJPG or YUYV)")
    return value


def size(value: str) -> tuple[int, int]:
    """``S`` or ``HxW`` pixels -> (H, W)."""
    try:
        parts = [int(p) for p in value.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise ValueError("is not a size; give H x W in pixels, e.g. 480x640")
    return parts[0], parts[-1]


_KIND_NAMES = {integer: "an integer", number: "a number", flag: "1 or 0", text: "text", fourcc: "a FOURCC",
               size: "HxW pixels"}


@dataclass(frozen=True)
class Param:
    """One option: ``convert`` parses the text, then ``low``/``high`` bound the number (each
    side of a size), ``choices`` the text."""

    name: str
    convert: Converter
    default: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None
    help: str = ""

    def parse(self, raw: str) -> Any:
        value = self.convert(raw)
        for part in (value if isinstance(value, tuple) else (value,)):
            if isinstance(part, (int, float)) and not isinstance(part, bool):
                if self.low is not None and part < self.low:
                    raise ValueError(f"is below {self.low:g}")
                if self.high is not None and part > self.high:
                    raise ValueError(f"is above {self.high:g}")
        choices = self.choices() if callable(self.choices) else self.choices
        if choices is not None and value not in choices:
            raise ValueError(f"is not one of {', '.join(choices)}")
        return value

    def describe(self) -> str:
        kind = _KIND_NAMES.get(self.convert, "a value")
        bounds = ""
        if self.low is not None or self.high is not None:
            bounds = f" in [{'' if self.low is None else f'{self.low:g}'}, " \
                     f"{'' if self.high is None else f'{self.high:g}'}]"
        return f"{self.name} ({kind}{bounds})"


class ParamSet:
    """The options one scheme takes."""

    def __init__(self, *params: Param) -> None:
        self.params = {p.name: p for p in params}

    def parse(self, where: str, given: Mapping[str, str]) -> dict[str, Any]:
        """``given`` (the URI's query) -> every declared option, typed; defaults where absent
        or empty. ``where`` names the URI in messages (``source phantom:``)."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            takes = ", ".join(sorted(self.params)) if self.params else "no options"
            raise InputError(f"{where} unknown option {unknown[0]!r}; it takes {takes}")
        values = {}
        for name, param in self.params.items():
            raw = given.get(name, "")
            if raw == "":
                values[name] = param.default
                continue
            try:
                values[name] = param.parse(raw)
            except ValueError as exc:
                raise InputError(f"{where} {name}={raw!r} {exc}; give {param.describe()}") from None
        return values


NO_PARAMS = ParamSet()
