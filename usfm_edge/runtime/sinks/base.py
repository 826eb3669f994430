"""The sink interface and its registry. Sinks run on the sink thread, never on the inference
thread, so a slow display or disk cannot stall inference.

Sinks are named ``scheme:target?key=value``: ``video:out.mp4``, ``images:DIR``,
``jsonl:results.jsonl?masks=polygons``, ``window:``, ``http:127.0.0.1:8080``, ``none:``. Each
scheme declares its ``?key=value`` options (``usfm_edge.runtime.params``); others are refused.

A sink that cannot write (a full disk, a read-only folder, no permission) raises
``SinkError``: the run then stops, non-zero, and its report counts what was really written.
A recording that silently lacks frames is worse than a run that stops and says so.
"""

from __future__ import annotations

import os
import tempfile
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usfm_edge.errors import InputError, WriteError
from usfm_edge.fileio import why_write_failed
from usfm_edge.runtime.frame import Result
from usfm_edge.runtime.params import NO_PARAMS, ParamSet


class SinkError(WriteError):
    """A sink could not write (disk full, read-only, no permission, display gone): the
    machine refused, exit 3."""


@dataclass
class SinkContext:
    """What a sink may need to know about the run."""

    fps: float = 30.0  # the source's frame rate, for video files
    labels: tuple[str, ...] = ()
    task: str = ""
    stats: Callable[[], dict[str, Any]] | None = None  # live metrics (HUD, browser page)
    record: Callable[[str, float], None] | None = None  # (stage, ms): timings a sink measures itself


class Sink(ABC):
    scheme: str = ""
    needs_overlay: bool = True  # False: the pipeline may skip drawing for this sink
    display: bool = False  # shows frames to a person (window, browser): its hand-over is "capture_to_display"

    def wants_overlay(self) -> bool:
        """Whether the next result needs its overlay drawn for this sink (a browser view with
        nobody watching does not)."""
        return self.needs_overlay

    @abstractmethod
    def write(self, result: Result) -> None:
        """Write or show one result. Raises ``SinkError`` when it cannot."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Finalise files, release windows and sockets. Raises ``SinkError`` when what was
        written turns out incomplete (a file the disk could not hold)."""

    def describe(self) -> dict[str, Any]:
        return {"scheme": self.scheme}


SinkFactory = Callable[[str, dict[str, Any], SinkContext], Sink]
_SINKS: dict[str, SinkFactory] = {}
_PARAMS: dict[str, ParamSet] = {}


def register_sink(*schemes: str, params: ParamSet = NO_PARAMS):
    """Register a factory ``(target, params, context) -> Sink``; it gets the URI's options
    parsed by ``params`` (typed, defaults filled in, unknown keys refused)."""

    def decorator(factory: SinkFactory) -> SinkFactory:
        for scheme in schemes:
            _SINKS[scheme] = factory
            _PARAMS[scheme] = params
        return factory

    return decorator


def list_sinks() -> list[str]:
    return sorted(_SINKS)


def open_sink(uri: str, context: SinkContext | None = None) -> Sink:
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme not in _SINKS:
        raise InputError(f"sink {uri!r}: give scheme:target, one of {', '.join(s + ':' for s in list_sinks())} "
                         "(e.g. video:out.mp4)")
    target, _, query = rest.partition("?")
    params = _PARAMS[scheme].parse(f"sink {scheme}:", dict(urllib.parse.parse_qsl(query, keep_blank_values=True)))
    return _SINKS[scheme](target, params, context or SinkContext())


def check_writable(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and prove a file can be written there, before the run
    starts: root ignores permission bits, so only a real write tells (read-only mounts, full
    disks, folders of another user)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".usfm-edge-probe-") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise SinkError(f"{what}: cannot write in {folder} ({why_write_failed(folder, exc)}); choose another "
                        "place") from None


class NullSink(Sink):
    """Report only: the default, works on any headless machine."""

    scheme = "none"
    needs_overlay = False

    def write(self, result: Result) -> None:
        pass


@register_sink("none", "report")
def _none(target: str, params: dict[str, Any], context: SinkContext) -> Sink:
    return NullSink()
