"""Quiet video libraries for the command line.

FFmpeg, GStreamer and OpenCV print their own lines for what the runtime reports itself, once
and in words: a corrupt file ("moov atom not found"), a full disk ("Failed to write frame"), a
GStreamer pipeline that will not start. The commands turn theirs off; set
``OPENCV_LOG_LEVEL=WARNING`` or ``OPENCV_FFMPEG_LOGLEVEL=24`` to see them again.

OpenCV reads ``OPENCV_LOG_LEVEL`` when it is imported (4.x) and FFmpeg's level when it first
uses FFmpeg, so this module imports nothing of OpenCV and is called before anything else is.
"""

from __future__ import annotations

import os
import sys

_LEVELS = {"SILENT": 0, "FATAL": 1, "ERROR": 2, "WARNING": 3, "INFO": 4, "DEBUG": 5, "VERBOSE": 6}


def quiet_video_libraries() -> None:
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:  # already imported (a test runner, a host application): its level setter, where it has one
        logging = getattr(getattr(cv2, "utils", None), "logging", None)
        if logging is not None:
            logging.setLogLevel(_LEVELS.get(os.environ["OPENCV_LOG_LEVEL"].upper(), 2))
