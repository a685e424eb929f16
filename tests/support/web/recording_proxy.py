"""A reverse proxy between fractal-web and fractal-like that records every refused call.

fractal-web calls the server from two places: the browser (through its own `/api/*`
proxy) and its server-side page loaders, which the browser never sees. Pointing
`FRACTAL_SERVER_HOST` at this proxy catches both, with the bodies needed to fix them.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

# Headers that belong to one connection, or that httpx has already undone (it decodes
# gzip and joins chunks): never passed on as they came. `Host` does pass, as through a
# reverse proxy that keeps it: the server's redirects (a path without its slash, 307) then
# lead back here, as they would to the server itself; a redirect to another origin makes
# fractal-web's fetch drop the cookie.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-encoding",
}
EXCERPT_CHARS = 400


@dataclass
class RefusedCall:
    method: str
    path: str
    status: int
    request_excerpt: str
    response_excerpt: str

    @property
    def route(self) -> str:
        """The path without its query and with numbers as `{id}`, to group repeats."""
        return re.sub(r"/\d+(?=/|$)", "/{id}", self.path.split("?", 1)[0])

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "route": self.route}


def _excerpt(body: bytes) -> str:
    text = body[:EXCERPT_CHARS].decode("utf-8", errors="replace")
    return text + ("…" if len(body) > EXCERPT_CHARS else "")


class RecordingProxy:
    """Forwards every request to `upstream`; keeps each answer of status 400 or more."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.refused: list[RefusedCall] = []
        self.calls = 0
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=self.upstream, timeout=120.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RecordingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> httpx.Response:
        response = self._client.request(method, path, headers=headers, content=body)
        with self._lock:
            self.calls += 1
            if response.status_code >= 400:
                self.refused.append(
                    RefusedCall(
                        method,
                        path,
                        response.status_code,
                        _excerpt(body),
                        _excerpt(response.content),
                    )
                )
        return response

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self) -> None:
                body = self._read_body()
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in _HOP_BY_HOP
                }
                try:
                    response = proxy.forward(self.command, self.path, headers, body)
                except httpx.HTTPError as error:
                    self.send_error(502, f"fractal-like did not answer: {error!r}")
                    return
                self.send_response(response.status_code)
                for name, value in response.headers.multi_items():
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.content)

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()  # the CRLF after each chunk
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            # http.server dispatches on these names: every method is relayed the same way.
            do_GET = do_POST = do_PUT = do_PATCH = _relay  # noqa: N815
            do_DELETE = do_HEAD = do_OPTIONS = _relay  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:
                pass  # the server's own log has every line; ours would only repeat it

        return Handler
