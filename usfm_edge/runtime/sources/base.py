"""The source interface and its registry.

A source is named by a URI, ``scheme:target?key=value&...``: ``v4l2:/dev/video0?width=1920``,
``gst:videotestsrc ! appsink``, ``phantom:?fps=30``, ``rtsp://host/stream``, or a plain path
(a video, a DICOM file, an image folder), recognised by what it is.
"""

from __future__ import annotations

import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from usfm_edge.errors import InputError, UsfmEdgeError
from usfm_edge.runtime.frame import Frame
from usfm_edge.runtime.params import NO_PARAMS, ParamSet


class SourceError(UsfmEdgeError):
    """The source failed to deliver (unplugged, stalled, stream ended unexpectedly, a replay's
    files gone). Devices and streams are reopened with back-off; files fail at once. The
    machine refused (exit 3); a file that is not readable is an ``InputError`` (exit 2)."""

    exit_code = 3


class FrameError(UsfmEdgeError):
    """One frame could not be decoded; the pipeline skips it (counted) and reads on."""


@dataclass
class SourceOptions:
    """What the command line can say about any source."""

    realtime: bool = False  # pace file sources at their frame rate (newest-frame policy then applies)
    loop: bool = False  # restart a file source at its end (soak tests, kiosk demos)
    capture_factory: Callable[..., Any] | None = None  # opens capture devices; tests inject a fake
    extra: dict[str, str] = field(default_factory=dict)  # URI options given apart from the URI (same checks)


class Source(ABC):
    """Frames from somewhere. ``read`` blocks until the next frame; None is the end of stream."""

    scheme: str = ""
    live: bool = False  # frames arrive at their own pace and are lost if not taken
    stills: bool = False  # unrelated images (a folder of screens), not a stream of one scene
    reconnects: bool = False  # after a SourceError, close and reopen it (with back-off) instead of stopping
    fps: float | None = None

    def open(self) -> None:  # noqa: B027  (optional hook)
        """Acquire the device or file; called again after a failure to reconnect."""

    @abstractmethod
    def read(self) -> Frame | None:
        """The next frame, or None at the end of the stream. Raises ``SourceError``."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release the device or file."""

    def describe(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "live": self.live, "fps": self.fps}

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


SourceFactory = Callable[[str, dict[str, Any], SourceOptions], Source]
_SOURCES: dict[str, SourceFactory] = {}
_PARAMS: dict[str, ParamSet] = {}
_PATH_RULES: list[tuple[Callable[[Path], bool], str]] = []


def register_source(*schemes: str, params: ParamSet = NO_PARAMS, path_rule: Callable[[Path], bool] | None = None):
    """Register a factory ``(target, params, options) -> Source`` for URI ``schemes``; it gets
    the URI's options parsed by ``params`` (typed, defaults filled in; unknown keys refused).
    ``path_rule`` claims plain paths (``clip.mp4``) for the first scheme."""

    def decorator(factory: SourceFactory) -> SourceFactory:
        for scheme in schemes:
            _SOURCES[scheme] = factory
            _PARAMS[scheme] = params
        if path_rule is not None:
            _PATH_RULES.append((path_rule, schemes[0]))
        return factory

    return decorator


def list_sources() -> list[str]:
    return sorted(_SOURCES)


def parse_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """``scheme:target?k=v`` -> (scheme, target, params). A plain path gets the scheme of the
    first path rule that claims it. Network URLs keep their whole text as the target."""
    head, sep, rest = uri.partition(":")
    if sep and head in _SOURCES and not (len(head) == 1 and rest.startswith("\\")):
        if head in ("rtsp", "rtsps", "http", "https"):
            return head, uri, {}
        if head == "gst":  # a pipeline string: '?' and '&' are GStreamer syntax, not a query
            return head, rest, {}
        target, _, query = rest.partition("?")
        return head, target, dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    path = Path(uri)
    if not path.exists():
        raise InputError(f"source {uri!r}: no such file or folder, and not a known scheme "
                         f"({', '.join(s + ':' for s in list_sources())})")
    for rule, scheme in _PATH_RULES:
        if rule(path):
            return scheme, uri, {}
    raise InputError(f"source {uri}: not a video, DICOM file or image folder usfm-edge can read")


def open_source(uri: str, options: SourceOptions | None = None) -> Source:
    """Build (not yet open) the source named by ``uri``; its options are checked here."""
    options = options or SourceOptions()
    scheme, target, given = parse_uri(uri)
    params = _PARAMS[scheme].parse(f"source {scheme}:", {**given, **options.extra})
    try:
        return _SOURCES[scheme](target, params, options)
    except MemoryError:
        raise InputError(f"source {uri!r}: not enough memory for what it asks; give smaller sizes or fewer "
                         "frames") from None
