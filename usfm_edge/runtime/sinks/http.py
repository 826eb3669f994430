"""``http:[HOST:]PORT``: a browser view for carts without a local display. Serves a small
page at ``/``, the overlay as MJPEG at ``/stream.mjpg`` and live metrics at ``/stats.json``.
Bound to 127.0.0.1 unless another address is asked for: a scanner's network is a hospital's.

JPEG encoding is the expensive part of a browser view (3-5 ms for a 1080p screen, on the
same cores as inference), so a frame is encoded only when a viewer is ready for one: not at
all with nobody connected, once for all viewers, not while every viewer is still sending the
previous frame (a tablet on slow Wi-Fi then gets fewer frames instead of the cart encoding
frames nobody receives), and not faster than the source delivers frames (``?fps=``, default
the source's rate; a replay running faster than real time is shown at its own rate, as no
screen shows more; ``fps=0``: every result). The time from capture to a frame handed to a
viewer's socket is recorded as ``capture_to_viewer``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2

from usfm_edge.errors import InputError
from usfm_edge.runtime.frame import Result
from usfm_edge.runtime.params import Param, ParamSet, integer, number
from usfm_edge.runtime.sinks.base import Sink, SinkContext, SinkError, register_sink

BOUNDARY = "usfmedgeframe"
STATS_EVERY_MS = 1000  # how often the page polls /stats.json
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>usfm-edge</title>
<style>body{{background:#111;color:#ddd;font:14px sans-serif;margin:0}}img{{max-width:100%;display:block;margin:auto}}
#stats{{padding:6px 10px}}</style></head><body>
<div id="stats" data-updates="0">usfm-edge: {task} | waiting for the first frame</div>
<img id="view" src="/stream.mjpg" alt="live overlay">
<script>
const panel=document.getElementById('stats');let updates=0;
function ms(s,k){{const v=s.stages&&s.stages[k];return v&&v.p50_ms!==undefined?v.p50_ms.toFixed(1)+' ms':'-';}}
async function poll(){{try{{const s=await (await fetch('/stats.json',{{cache:'no-store'}})).json();
updates+=1;panel.dataset.updates=updates;
panel.textContent=`usfm-edge: {task} | ${{s.fps_out.toFixed(1)}} fps | latency capture->viewer `+
`${{ms(s,'capture_to_viewer')}} (p50), inference ${{ms(s,'infer')}} | dropped ${{s.dropped.total}} | `+
`frames ${{s.frames_out}}`;}}catch(e){{}} setTimeout(poll,{every});}}
poll();
</script></body></html>"""


class _Broadcast:
    """The newest encoded frame, and the viewers waiting for a newer one."""

    def __init__(self) -> None:
        self.jpeg: bytes | None = None
        self.captured = 0.0  # time.monotonic() of the frame's capture
        self.serial = 0
        self.viewers = 0  # connected stream clients
        self.idle = 0  # of those, waiting for a frame newer than the one they sent
        self.closed = False
        self.cond = threading.Condition()

    def put(self, jpeg: bytes, captured: float) -> None:
        with self.cond:
            self.jpeg, self.captured, self.serial = jpeg, captured, self.serial + 1
            self.cond.notify_all()

    def wait_newer(self, serial: int, timeout: float = 1.0) -> tuple[bytes | None, int, float]:
        with self.cond:
            self.idle += 1
            try:
                self.cond.wait_for(lambda: self.serial > serial or self.closed, timeout)
            finally:
                self.idle -= 1
            return self.jpeg, self.serial, self.captured


def _handler(latest: _Broadcast, context: SinkContext, counts: dict[str, int]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # no per-request lines on the cart's console
            pass

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802  (http.server's name)
            try:
                if self.path in ("/", "/index.html"):
                    page = PAGE.format(task=context.task or "live", every=STATS_EVERY_MS)
                    self._send(page.encode(), "text/html; charset=utf-8")
                elif self.path == "/stats.json":
                    stats = context.stats() if context.stats else {}
                    self._send(json.dumps(stats, default=str).encode(), "application/json")
                elif self.path.startswith("/stream.mjpg"):
                    self._stream()
                else:
                    self.send_error(404)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                pass  # the browser went away

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with latest.cond:
                latest.viewers += 1
            serial = 0
            try:
                while not latest.closed:
                    jpeg, serial_now, captured = latest.wait_newer(serial)
                    if jpeg is None or serial_now == serial:
                        continue
                    serial = serial_now
                    part = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    self.wfile.write(b"".join((part.encode(), jpeg, b"\r\n")))  # one send: no Nagle wait
                    counts["sent"] += 1
                    if context.record is not None:
                        context.record("capture_to_viewer", (time.monotonic() - captured) * 1000.0)
            finally:
                with latest.cond:
                    latest.viewers -= 1

    return Handler


# A frame is sent once this share of the frame period has passed since the last one: frames
# from a source at the cap's own rate arrive with jitter and must not be skipped for it.
RATE_TOLERANCE = 0.8


class HttpSink(Sink):
    scheme = "http"
    display = True

    def __init__(self, host: str, port: int, context: SinkContext, quality: int = 80, fps: float = 0.0) -> None:
        self.latest, self.quality = _Broadcast(), quality
        self.min_interval = RATE_TOLERANCE / fps if fps > 0 else 0.0
        self._last_sent = float("-inf")
        self.counts = {"encoded": 0, "unviewed": 0, "sent": 0, "over_rate": 0}
        try:
            self.server = ThreadingHTTPServer((host, port), _handler(self.latest, context, self.counts))
        except (OSError, OverflowError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise InputError(f"http sink: cannot listen on {host}:{port} ({why}); pick another address or port") \
                from None
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="http-sink", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def viewers(self) -> int:
        return self.latest.viewers

    def wants_overlay(self) -> bool:
        # nobody connected, every viewer still sending the last frame, or faster than the source's rate
        return self.latest.idle > 0 and time.monotonic() - self._last_sent >= self.min_interval

    def write(self, result: Result) -> None:
        if result.overlay is None or not self.latest.idle:
            self.counts["unviewed"] += 1
            return
        now = time.monotonic()
        if now - self._last_sent < self.min_interval:
            self.counts["over_rate"] += 1
            return
        self._last_sent = now
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(result.overlay, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise SinkError(f"http sink: OpenCV could not encode a {result.overlay.shape} frame as JPEG")
        self.counts["encoded"] += 1
        self.latest.put(jpeg.tobytes(), result.frame.captured)

    def close(self) -> None:
        with self.latest.cond:
            self.latest.closed = True
            self.latest.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    def describe(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "url": self.url, "max_fps": RATE_TOLERANCE / self.min_interval
                if self.min_interval else None, "frames_encoded": self.counts["encoded"],
                "frames_sent": self.counts["sent"], "frames_not_encoded": self.counts["unviewed"],
                "frames_over_rate": self.counts["over_rate"]}


def parse_address(target: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``//HOST:PORT`` -> (host, port); the host defaults to
    127.0.0.1, the port to 8080; port 0 takes any free port."""
    target = target.lstrip("/").rstrip("/")
    host, _, port = target.rpartition(":")
    try:
        number = int(port or 8080)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise InputError(f"http sink: {target!r}: give [HOST:]PORT with a port in 0..65535, e.g. http:127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", number


HTTP_PARAMS = ParamSet(Param("quality", integer, default=80, low=1, high=100, help="JPEG quality"),
                       Param("fps", number, low=0, high=1000, help="most frames a second sent (default: the "
                             "source's rate; 0: every result)"))


@register_sink("http", params=HTTP_PARAMS)
def _http(target: str, params: dict[str, Any], context: SinkContext) -> Sink:
    host, port = parse_address(target)
    fps = params["fps"] if params["fps"] is not None else context.fps
    return HttpSink(host, port, context, params["quality"], fps or 0.0)
