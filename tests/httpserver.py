"""A scriptable loopback HTTP(S) server for tests (stdlib ``ThreadingHTTPServer``).

HTTP/1.1 with keep-alive and TCP_NODELAY, TLS from the test CA (optionally requiring a client
certificate), every request recorded (with the id of the TCP connection it came on, so tests can
assert connection reuse), routes registered by the test, and fault actions: a sequence of
responses per path (``fail_then``), connection reset, close without answer, truncated body, and a
delay before answering. Requests with no route get 404 ``{"error": "no route"}``.

A response is any of:
- ``(status, headers, body)`` or ``(status, body)`` or ``status``; ``headers`` a dict or a list of
  pairs; ``body`` bytes, str (text/plain) or a dict/list (JSON, ``Content-Type: application/json``);
- one of the actions ``RESET``, ``CLOSE``, ``Delay(seconds, then)``, ``Truncate(response, keep)``;
- a callable ``handler(request) -> response`` (routes may register either).
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
import traceback
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union
from urllib.parse import parse_qs, urlsplit

# --------------------------------------------------------------------------------------------
# Requests and responses
# --------------------------------------------------------------------------------------------


class Headers(dict):
    """A plain dict of request headers (original spelling kept) with case-insensitive lookups.

    A header sent several times is joined with ``", "`` (HTTP field-combining rule).
    """

    def _key(self, name: str) -> str | None:
        lname = name.lower()
        for key in dict.keys(self):
            if key.lower() == lname:
                return key
        return None

    def __getitem__(self, name: str) -> str:
        key = self._key(name)
        if key is None:
            raise KeyError(name)
        return dict.__getitem__(self, key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) is not None

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        key = self._key(name)
        return default if key is None else dict.__getitem__(self, key)


class RecordedRequest:
    """One request as the server saw it.

    Attributes: ``method``, ``path`` (request target, with query), ``url_path`` (without query),
    ``query`` (``{name: [values]}``), ``headers`` (:class:`Headers`), ``body`` (bytes, de-chunked),
    ``connection_id`` (same number = same TCP connection), ``client_address``, ``client_cert``
    (``getpeercert()`` dict when the client presented one), ``tls_version`` (or None over http),
    ``time`` (monotonic). Methods ``json()``, ``form()`` (``{name: value}``), ``text``.
    """

    def __init__(self, method, path, headers, body, connection_id, client_address, client_cert, tls_version):
        self.method: str = method
        self.path: str = path
        split = urlsplit(path)
        self.url_path: str = split.path
        self.query: dict[str, list[str]] = parse_qs(split.query, keep_blank_values=True)
        self.headers: Headers = headers
        self.body: bytes = body
        self.connection_id: int = connection_id
        self.client_address = client_address
        self.client_cert: dict | None = client_cert
        self.tls_version: str | None = tls_version
        self.time = time.monotonic()

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8"), keep_blank_values=True).items()}

    def __repr__(self) -> str:
        return f"<RecordedRequest {self.method} {self.path} conn={self.connection_id} body={len(self.body)}B>"


class _Action:
    pass


class _Reset(_Action):
    """Abort the TCP connection (SO_LINGER 0 -> RST) without answering."""

    def __repr__(self) -> str:
        return "RESET"


class _Close(_Action):
    """Close the connection cleanly (FIN) without answering: 'server disconnected'."""

    def __repr__(self) -> str:
        return "CLOSE"


RESET = _Reset()
CLOSE = _Close()


class Delay(_Action):
    """Wait ``seconds`` (interrupted when the server stops), then answer with ``then``."""

    def __init__(self, seconds: float, then: Any = 200) -> None:
        self.seconds = seconds
        self.then = then

    def __repr__(self) -> str:
        return f"Delay({self.seconds}, {self.then!r})"


class Truncate(_Action):
    """Send ``response``'s status, headers (with the full Content-Length) and only ``keep`` body
    bytes, then close: a body cut short mid-transfer."""

    def __init__(self, response: Any, keep: int = 0) -> None:
        self.response = response
        self.keep = keep


Response = Union[int, tuple, _Action, Callable[[RecordedRequest], Any]]


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> tuple:
    """``(status, headers, body)`` with a JSON body."""
    return (status, dict(headers or {}), obj)


def _normalise(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Turn the lenient response forms into (status, header pairs, body bytes)."""
    if isinstance(response, int):
        status, headers, body = response, {}, b""
    elif isinstance(response, tuple) and len(response) == 2:
        (status, body), headers = response, {}
    elif isinstance(response, tuple) and len(response) == 3:
        status, headers, body = response
    else:
        raise TypeError(f"not a response: {response!r}")
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in pairs}
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        if "content-type" not in names:
            pairs.append(("Content-Type", "application/json"))
    elif isinstance(body, str):
        body = body.encode("utf-8")
        if "content-type" not in names:
            pairs.append(("Content-Type", "text/plain; charset=utf-8"))
    elif body is None:
        body = b""
    return int(status), pairs, bytes(body)


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    disable_nagle_algorithm = True  # TCP_NODELAY on each accepted connection
    timeout = 60  # idle keep-alive connections give up eventually
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection_id = self.server.owner._new_connection(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._forget_connection(self.connection)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        owner = self.server.owner
        headers = Headers()
        for name, value in self.headers.items():
            headers[name] = f"{dict.__getitem__(headers, name)}, {value}" if name in dict.keys(headers) else value
        body = self._read_body()
        conn = self.connection
        client_cert = None
        tls_version = None
        if isinstance(conn, ssl.SSLSocket):
            tls_version = conn.version()
            client_cert = conn.getpeercert() or None
        request = RecordedRequest(
            self.command, self.path, headers, body, self.connection_id,
            self.client_address, client_cert, tls_version,
        )
        owner._record(request)
        response = owner._select(request)
        self._respond(request, response)

    def _respond(self, request: RecordedRequest, response: Any) -> None:
        owner = self.server.owner
        while callable(response) and not isinstance(response, _Action):
            try:
                response = response(request)
            except Exception:  # noqa: BLE001 - a test's handler bug becomes a 500 + server.errors
                owner.errors.append(traceback.format_exc())
                response = (500, {}, {"error": "handler raised", "detail": owner.errors[-1]})
        if isinstance(response, Delay):
            owner._stopping.wait(response.seconds)
            return self._respond(request, response.then)
        if isinstance(response, (_Reset, _Close)):
            self.close_connection = True
            if isinstance(response, _Reset):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.connection.close()
            return None
        keep = None
        if isinstance(response, Truncate):
            keep = response.keep
            response = response.response
        status, pairs, body = _normalise(response)
        self.send_response(status)
        names = {k.lower() for k, _ in pairs}
        for name, value in pairs:
            self.send_header(name, value)
        if "content-length" not in names and status not in (204, 304) and status >= 200:
            self.send_header("Content-Length", str(len(body)))
        if "connection" in names and {k.lower(): v for k, v in pairs}["connection"].lower() == "close":
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            if keep is not None:
                self.wfile.write(body[:keep])
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return None
            self.wfile.write(body)
        return None

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: HTTPTestServer
    ssl_context: ssl.SSLContext | None = None

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.ssl_context is not None:
            # Handshake later, in the worker thread: a client that connects and stalls (or fails
            # the handshake) must not block the accept loop.
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request, client_address) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(10)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                self.owner.tls_errors.append(f"{type(exc).__name__}: {exc}")
                return
            request.settimeout(None)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address) -> None:
        # Clients that hang up mid-request are normal in fault tests; keep stderr clean but
        # remember what happened.
        self.owner.errors.append(traceback.format_exc())


class _Server6(_Server):
    address_family = socket.AF_INET6


class HTTPTestServer:
    """A running loopback test server. See the module docstring for response forms.

    Attributes: ``url`` (``https://127.0.0.1:PORT``, no trailing slash), ``port``, ``host``,
    ``scheme``, ``requests`` (list of :class:`RecordedRequest`, in arrival order),
    ``connections`` (number of TCP connections accepted), ``tls_errors`` (failed handshakes, e.g.
    a client that did not trust the CA or sent no client cert), ``errors`` (handler tracebacks).

    Methods: ``route(method, path, handler)``, ``fail_then(path, responses, method="*")``,
    ``redirect(path, location, status=302, method="*")``, ``delay(seconds, then)``,
    ``wait_for_requests(n, timeout)``, ``clear()``, ``stop()``. Actions: ``RESET``, ``CLOSE``,
    ``Delay``, ``Truncate`` (also importable from this module).
    """

    RESET = RESET
    CLOSE = CLOSE
    Delay = Delay
    Truncate = Truncate
    __test__ = False

    def __init__(self, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        bind_host = "127.0.0.1" if host == "localhost" else host
        cls = _Server6 if ":" in bind_host else _Server
        self._server = cls((bind_host, 0), _Handler)
        self._server.owner = self
        self._server.ssl_context = ssl_context
        self.host = host
        self.port: int = self._server.server_address[1]
        self.scheme = "https" if ssl_context is not None else "http"
        url_host = f"[{host}]" if ":" in host else host
        self.url = f"{self.scheme}://{url_host}:{self.port}"
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        self.tls_errors: list[str] = []
        self.connections = 0
        self._routes: dict[tuple[str, str], Any] = {}
        self._queues: dict[tuple[str, str], list[Any]] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._open: set = set()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"test-server-{self.port}", daemon=True,
        )
        self._thread.start()

    # -- registering behaviour ---------------------------------------------------------------
    def route(self, method: str, path: str, handler: Response) -> None:
        """Answer ``method path`` (``"*"`` = any method; path without query) with ``handler``:
        a callable ``handler(request) -> response`` or a fixed response/action."""
        with self._lock:
            self._routes[(method.upper(), path)] = handler

    def fail_then(self, path: str, responses: Iterable[Response], method: str = "*") -> None:
        """Answer the next requests to ``path`` with ``responses`` in order, one each (e.g.
        ``[(503, {"Retry-After": "1"}, ""), (200, {}, {"ok": True})]`` or ``[RESET, 200]``). When
        the list is used up, requests go to the route for the path again (404 if none)."""
        with self._lock:
            self._queues.setdefault((method.upper(), path), []).extend(responses)

    def redirect(self, path: str, location: str, status: int = 302, method: str = "*") -> None:
        """Answer ``path`` with ``status`` and ``Location: location`` (absolute or relative)."""
        self.route(method, path, (status, {"Location": location}, b""))

    @staticmethod
    def delay(seconds: float, then: Response = 200) -> Delay:
        """An action: wait ``seconds``, then answer ``then`` (the server sleeping is the fault)."""
        return Delay(seconds, then)

    def clear(self) -> None:
        """Forget recorded requests and errors (routes stay)."""
        with self._lock:
            self.requests.clear()
            self.errors.clear()
            self.tls_errors.clear()

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests were recorded (bounded by ``timeout``)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"{self.url}: expected {count} requests, got {self.requests!r}")
            return list(self.requests)

    # -- internals used by the handler -------------------------------------------------------
    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

    def _select(self, request: RecordedRequest) -> Any:
        with self._lock:
            for key in ((request.method, request.url_path), ("*", request.url_path)):
                queue = self._queues.get(key)
                if queue:
                    return queue.pop(0)
            for key in ((request.method, request.url_path), ("*", request.url_path)):
                if key in self._routes:
                    return self._routes[key]
        return (404, {}, {"error": "no route", "method": request.method, "path": request.url_path})

    def _new_connection(self, conn) -> int:
        with self._lock:
            self.connections += 1
            self._open.add(conn)
            return self.connections

    def _forget_connection(self, conn) -> None:
        with self._lock:
            self._open.discard(conn)

    # -- lifecycle -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop accepting, wake delayed handlers, close kept-alive connections."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            still_open = list(self._open)
        for conn in still_open:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)

    def __enter__(self) -> HTTPTestServer:  # noqa: PYI034 - typing.Self is 3.11+
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<HTTPTestServer {self.url}>"
