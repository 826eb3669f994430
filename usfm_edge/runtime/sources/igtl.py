"""``igtl:HOST:PORT?device=Image_Reference``: OpenIGTLink IMAGE messages, the protocol research
scanners and PLUS servers stream ultrasound with (client: pyigtl, the ``igtl`` extra).

pyigtl keeps only the newest message per device name, so a slow pipeline never reads a
backlog. A silence longer than ``timeout`` seconds (default 5) is a stall: the pipeline
reconnects with back-off.
"""

from __future__ import annotations

import time

import numpy as np

from usfm_edge.errors import DependencyError, InputError
from usfm_edge.runtime.frame import Frame
from usfm_edge.runtime.params import Param, ParamSet, number, text
from usfm_edge.runtime.sources.base import Source, SourceError, SourceOptions, register_source

DEFAULT_PORT = 18944  # the IANA-registered OpenIGTLink port


def _pyigtl():
    try:
        import pyigtl
    except ImportError as exc:
        raise DependencyError("the igtl: source needs pyigtl: pip install 'usfm-edge[igtl]'") from exc
    return pyigtl


def image_from_message(pixels: np.ndarray) -> np.ndarray:
    """An IMAGE message's (k, j, i[, components]) voxels -> (H, W) gray or (H, W, 3) RGB,
    uint8/uint16 (wider integers are clipped; floats above 1 are scaled to 0..255)."""
    image = np.asarray(pixels)
    if image.ndim == 4 or (image.ndim == 3 and image.shape[0] == 1):
        image = image[0]  # a 2-D ultrasound frame is one slice
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise InputError(f"OpenIGTLink IMAGE of shape {pixels.shape} is not a 2-D gray or RGB frame")
    if image.dtype in (np.uint8, np.uint16):
        return image
    if np.issubdtype(image.dtype, np.integer):
        image = np.clip(image, 0, 65535)
        return image.astype(np.uint8 if image.max() <= 255 else np.uint16)
    image = image.astype(np.float32)
    peak = float(np.nanmax(image)) if image.size else 0.0
    return np.clip(image * (255.0 / peak), 0, 255).astype(np.uint8) if peak > 1.0 else image


class IgtlSource(Source):
    scheme = "igtl"
    live = True
    reconnects = True

    def __init__(self, host: str, port: int, device: str, timeout_s: float) -> None:
        self.host, self.port, self.device, self.timeout_s = host, port, device, timeout_s
        self.client = None
        self._index = 0

    def open(self) -> None:
        self.client = _pyigtl().OpenIGTLinkClient(host=self.host, port=self.port, start_now=True)

    def read(self) -> Frame | None:
        if self.client is None:
            self.open()
        message = self.client.wait_for_message(self.device, timeout=self.timeout_s)
        if message is None:
            raise SourceError(f"igtl:{self.host}:{self.port}: no IMAGE from device {self.device!r} for "
                              f"{self.timeout_s:g} s (server down, or another device name: ?device=NAME)")
        image = image_from_message(message.image)
        stamp = float(message.timestamp) * 1000.0 if getattr(message, "timestamp", None) else None
        frame = Frame(image, self._index, time.monotonic(), stamp)
        self._index += 1
        return frame

    def close(self) -> None:
        if self.client is not None:
            self.client.stop()
            self.client = None

    def describe(self) -> dict:
        return {**super().describe(), "host": self.host, "port": self.port, "device": self.device}


IGTL_PARAMS = ParamSet(Param("device", text, default="Image_Reference"),
                       Param("timeout", number, default=5.0, low=0.1, high=3600))


@register_source("igtl", params=IGTL_PARAMS)
def _igtl(target: str, params: dict, options: SourceOptions) -> Source:
    target = target.lstrip("/")
    host, _, port = target.rpartition(":") if ":" in target else (target, "", "")
    try:
        port_number = int(port) if port else DEFAULT_PORT
    except ValueError:
        port_number = -1
    if not 0 < port_number < 65536:
        raise InputError(f"igtl:{target}: give igtl:HOST:PORT with a port in 1..65535, e.g. igtl:127.0.0.1:18944")
    return IgtlSource(host or "127.0.0.1", port_number, params["device"], params["timeout"])
