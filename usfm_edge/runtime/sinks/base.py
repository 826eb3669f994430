"""The sink interface and its registry. Sinks run on the sink thread, never on the inference
thread, so a slow display or disk cannot stall inference.

Sinks are named ``scheme:target?key=value``: ``video:out.mp4``, ``images:DIR``,
``jsonl:results.jsonl?masks=polygons``, ``window:``, ``http:127.0.0.1:8080``, ``none:``.
"""

from __future__ import annotations

import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from usfm_edge.errors import InputError
from usfm_edge.runtime.frame import Result


@dataclass
class SinkContext:
    """What a sink may need to know about the run."""

    fps: float = 30.0  # the source's frame rate, for video files
    labels: tuple[str, ...] = ()
    task: str = ""
    stats: Callable[[], dict[str, Any]] | None = None  # live metrics (HUD, browser page)


class Sink(ABC):
    scheme: str = ""
    needs_overlay: bool = True  # False: the pipeline may skip drawing for this sink

    @abstractmethod
    def write(self, result: Result) -> None:
        ...

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Finalise files, release windows and sockets."""

    def describe(self) -> dict[str, Any]:
        return {"scheme": self.scheme}


SinkFactory = Callable[[str, dict[str, str], SinkContext], Sink]
_SINKS: dict[str, SinkFactory] = {}


def register_sink(*schemes: str):
    def decorator(factory: SinkFactory) -> SinkFactory:
        for scheme in schemes:
            _SINKS[scheme] = factory
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
    return _SINKS[scheme](target, dict(urllib.parse.parse_qsl(query)), context or SinkContext())


class NullSink(Sink):
    """Report only: the default, works on any headless machine."""

    scheme = "none"
    needs_overlay = False

    def write(self, result: Result) -> None:
        pass


@register_sink("none", "report")
def _none(target: str, params: dict[str, str], context: SinkContext) -> Sink:
    return NullSink()
