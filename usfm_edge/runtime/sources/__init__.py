"""Where frames come from: capture cards, GStreamer, streams, files, DICOM, the phantom,
OpenIGTLink. One interface (``Source``), a registry keyed by URI scheme."""

from usfm_edge.runtime.sources.base import (FrameError, Source, SourceError, SourceOptions, list_sources,
                                            open_source, parse_uri, register_source)
from usfm_edge.runtime.sources import capture as _capture  # noqa: F401  (registers)
from usfm_edge.runtime.sources import files as _files  # noqa: F401  (registers)
from usfm_edge.runtime.sources import igtl as _igtl  # noqa: F401  (registers; pyigtl imported on open)
from usfm_edge.runtime.sources import phantom as _phantom  # noqa: F401  (registers)

__all__ = ["FrameError", "Source", "SourceError", "SourceOptions", "list_sources", "open_source", "parse_uri",
           "register_source"]
