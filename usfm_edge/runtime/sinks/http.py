"""``http:[HOST:]PORT``: a browser view for carts without a local display. Serves a small
page at ``/``, the overlay as MJPEG at ``/stream.mjpg`` and live metrics at ``/stats.json``.
Bound to 127.0.0.1 unless another address is asked for: a scanner's network is a hospital's."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2

from usfm_edge.errors import InputError
from usfm_edge.runtime.frame import Result
from usfm_edge.runtime.sinks.base import Sink, SinkContext, register_sink

BOUNDARY = "usfmedgeframe"
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>usfm-edge</title>
<style>body{{background:#111;color:#ddd;font:14px sans-serif;margin:0}}img{{max-width:100%;display:block;margin:auto}}
#stats{{padding:6px 10px}}</style></head><body><div id="stats">usfm-edge: {task}</div>
<img id="view" src="/stream.mjpg" alt="live overlay">
<script>
async function poll(){{try{{const s=await (await fetch('/stats.json')).json();
document.getElementById('stats').textContent=`usfm-edge: {task} | ${{s.fps_out.toFixed(1)}} fps | `+
`dropped ${{s.dropped.total}} | frames ${{s.frames_out}}`;}}catch(e){{}} setTimeout(poll,1000);}}
poll();
</script></body></html>"""


class _Latest:
    """The newest JPEG, and a condition clients wait on for the next one."""

    def __init__(self) -> None:
        self.jpeg: bytes | None = None
        self.serial = 0
        self.closed = False
        self.cond = threading.Condition()

    def put(self, jpeg: bytes) -> None:
        with self.cond:
            self.jpeg, self.serial = jpeg, self.serial + 1
            self.cond.notify_all()

    def wait_newer(self, serial: int, timeout: float = 1.0) -> tuple[bytes | None, int]:
        with self.cond:
            self.cond.wait_for(lambda: self.serial > serial or self.closed, timeout)
            return self.jpeg, self.serial


def _handler(latest: _Latest, context: SinkContext) -> type[BaseHTTPRequestHandler]:
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
            if self.path in ("/", "/index.html"):
                self._send(PAGE.format(task=context.task or "live").encode(), "text/html; charset=utf-8")
            elif self.path == "/stats.json":
                stats = context.stats() if context.stats else {}
                self._send(json.dumps(stats, default=str).encode(), "application/json")
            elif self.path.startswith("/stream.mjpg"):
                self._stream()
            else:
                self.send_error(404)

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            serial = 0
            try:
                while not latest.closed:
                    jpeg, serial_now = latest.wait_newer(serial)
                    if jpeg is None or serial_now == serial:
                        continue
                    serial = serial_now
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                                     "\r\n\r\n".encode() + jpeg + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser went away

    return Handler


class HttpSink(Sink):
    scheme = "http"

    def __init__(self, host: str, port: int, context: SinkContext, quality: int = 80) -> None:
        self.latest, self.quality = _Latest(), quality
        try:
            self.server = ThreadingHTTPServer((host, port), _handler(self.latest, context))
        except OSError as exc:
            raise InputError(f"http sink: cannot listen on {host}:{port} ({exc.strerror}); pick another port") from None
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="http-sink", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def write(self, result: Result) -> None:
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(result.overlay, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if ok:
            self.latest.put(jpeg.tobytes())

    def close(self) -> None:
        with self.latest.cond:
            self.latest.closed = True
            self.latest.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    def describe(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "url": self.url}


def parse_address(target: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``//HOST:PORT`` -> (host, port); the host defaults to 127.0.0.1."""
    target = target.lstrip("/").rstrip("/")
    host, _, port = target.rpartition(":")
    try:
        number = int(port or 8080)
    except ValueError:
        raise InputError(f"http sink: {target!r}: give [HOST:]PORT, e.g. http:127.0.0.1:8080") from None
    return host or "127.0.0.1", number


@register_sink("http")
def _http(target: str, params: dict[str, str], context: SinkContext) -> Sink:
    host, port = parse_address(target)
    return HttpSink(host, port, context, int(params.get("quality", 80)))
