"""A minimal stand-in for a CLI's loopback redirect listener (RFC 8252), for fixture self-tests.

``LoopbackListener()`` binds ``127.0.0.1`` port 0 at once (so a browser that arrives early is
queued by the kernel, not refused), serves in a thread, records every request, answers the
redirect path with 303 to ``success_url`` (or a small page), and anything else with 404.
``redirect_uri`` is ``http://127.0.0.1:PORT/auth/oidc``; ``wait(timeout)`` returns the query of
the first request to that path (``{name: value}``).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class LoopbackListener:
    __test__ = False

    def __init__(self, path: str = "/auth/oidc", success_url: str | None = None) -> None:
        owner = self
        self.path = path
        self.success_url = success_url
        self.requests: list[str] = []
        self._got = threading.Event()
        self.params: dict[str, str] = {}

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append(self.path)
                split = urlsplit(self.path)
                if split.path != owner.path:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if not owner._got.is_set():
                    owner.params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
                    owner._got.set()
                if owner.success_url:
                    self.send_response(303)
                    self.send_header("Location", owner.success_url)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    body = b"<html><head><title>Done</title></head><body>You can close this window.</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.redirect_uri = f"http://127.0.0.1:{self.port}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def wait(self, timeout: float = 30.0) -> dict[str, str]:
        if not self._got.wait(timeout):
            raise AssertionError(f"no request to {self.redirect_uri} within {timeout} s (got {self.requests})")
        return self.params

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LoopbackListener:  # noqa: PYI034 - typing.Self is 3.11+
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
