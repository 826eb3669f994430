"""A browser stand-in for the pipeline benchmark: it holds ``/stream.mjpg`` of an ``http:``
sink open and reads it as fast as frames arrive, so the benchmark times the display path a
cart runs with somebody watching (JPEG encoding and socket writes), not an idle server.

It only reads: recv into one preallocated buffer and a count of part boundaries, so it takes
next to no CPU from what it measures. Loopback only, and every wait is bounded.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import urllib.parse

from usfm_edge.errors import InputError
from usfm_edge.runtime.sinks.http import BOUNDARY

CONNECT_TIMEOUT_S = 5.0


class MjpegViewer:
    """``with MjpegViewer(sink.url) as viewer: ...``; ``viewer.frames`` parts received."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise InputError(f"the benchmark's viewer reads only loopback addresses, not {host}")
        self.address = (host, parts.port or 80)
        self.frames = 0
        self.bytes = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._read, name="bench-viewer", daemon=True)
        self._started = 0.0

    def __enter__(self) -> MjpegViewer:
        self._sock = socket.create_connection(self.address, timeout=CONNECT_TIMEOUT_S)
        self._sock.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: {self.address[0]}\r\n\r\n".encode())
        self._started = time.monotonic()
        self._thread.start()
        return self

    def _read(self) -> None:
        marker = f"--{BOUNDARY}".encode()
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        tail = b""
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                n = self._sock.recv_into(view)
            except TimeoutError:
                continue
            except OSError as exc:
                self.error = str(exc)
                return
            if n == 0:
                return
            chunk = tail + bytes(view[:n]) if tail else bytes(view[:n])
            self.frames += chunk.count(marker)
            self.bytes += n
            tail = chunk[-(len(marker) - 1):]

    @property
    def fps(self) -> float:
        elapsed = time.monotonic() - self._started
        return self.frames / elapsed if elapsed > 0 else 0.0

    def __exit__(self, *exc) -> None:
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join(timeout=2.0)
        self._sock.close()
