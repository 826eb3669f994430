"""Where results go: report only (default), a window, a video, images, JSONL, a browser."""

from usfm_edge.runtime.sinks.base import Sink, SinkContext, SinkError, list_sinks, open_sink, register_sink
from usfm_edge.runtime.sinks import files as _files  # noqa: F401  (registers)
from usfm_edge.runtime.sinks import http as _http  # noqa: F401  (registers)
from usfm_edge.runtime.sinks import window as _window  # noqa: F401  (registers)

__all__ = ["Sink", "SinkContext", "SinkError", "list_sinks", "open_sink", "register_sink"]
