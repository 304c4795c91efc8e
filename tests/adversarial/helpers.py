"""Shared helpers of the adversarial tier: the per-part counters, sandboxed HOMEs, CLI runs, a
raw loopback HTTP client and a recording proxy.

Nothing here fakes the module's parts: CLI runs are real processes with this repository on
PYTHONPATH, sockets are real loopback sockets, the proxy really forwards (CONNECT tunnels to
loopback only) and records every byte it is sent, so a test can look for a key in them.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from test_anaconda_auth import CLI, SUBPROCESS_TIMEOUT, run_captured

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
KEYRING_SERVICE = "Anaconda Cloud"

TRIED: collections.Counter[str] = collections.Counter()
FAILED: collections.Counter[str] = collections.Counter()


def part_of(nodeid: str) -> str:
    """``tests/adversarial/test_listener.py::test_x`` -> ``listener``."""
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return module[len("test_"):-len(".py")] if module.startswith("test_") else module


def tried(part: str, n: int = 1) -> None:
    """Count ``n`` cases tried in ``part`` (shown at the end of the run)."""
    TRIED[part] += n


def budget(n: int) -> int:
    """A test's example budget, times ANACONDA_AUTH_ADVERSARIAL_SCALE (default 1)."""
    return n * max(1, int(os.environ.get("ANACONDA_AUTH_ADVERSARIAL_SCALE", "1") or "1"))


# ------------------------------------------------------------------------------------------
# Sandboxed HOME and the CLI
# ------------------------------------------------------------------------------------------


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI run: nothing of this machine's configuration, HOME = ``home``."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "ANACONDA_SECRETS_DIR": str(home / "no-secrets"),
        "LANG": "C.UTF-8",
    }
    env.update(extra)
    return env


def cli(home: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None,
        cwd: Path | None = None, timeout: float = SUBPROCESS_TIMEOUT,
        prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``python -m anaconda_auth ARGS`` (run by ``prefix``, e.g. setpriv, when given) with a
    clean environment (plus ``env``), stdin /dev/null unless ``input``; output that is not
    UTF-8 fails the test."""
    full = clean_env(home)
    full.update(env or {})
    return run_captured([*prefix, *CLI, *args], full, cwd or home, stdin=input, timeout=timeout,
                        errors="strict")


def encode_entry(domain: str, api_key: str, username: str | None = None,
                 repo_tokens: list[Any] | None = None) -> str:
    """The reference's stored value, built independently of the module."""
    payload: dict[str, Any] = {"domain": domain, "api_key": api_key}
    if username is not None:
        payload["username"] = username
    payload["repo_tokens"] = repo_tokens or []
    payload["version"] = 2
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def stored_keys(path: Path) -> dict[str, str]:
    """{domain: api_key} of a token store file (raises if it is not one)."""
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    entries = data.get(KEYRING_SERVICE, {})
    return {d: json.loads(base64.b64decode(v))["api_key"] for d, v in entries.items()}


# ------------------------------------------------------------------------------------------
# Raw loopback HTTP
# ------------------------------------------------------------------------------------------


def raw_exchange(port: int, data: bytes, host: str = "127.0.0.1", timeout: float = 10.0) -> bytes:
    """Send ``data`` on a fresh connection, half-close, read until the peer closes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the listener may refuse early (e.g. a 414 before the whole line is read)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int | None:
    """The status code of a raw HTTP answer, None if it is not one."""
    first = answer.split(b"\r\n", 1)[0].split()
    return int(first[1]) if len(first) >= 2 and first[0].startswith(b"HTTP/") and first[1].isdigit() else None


def get_request(target: str, host: str | None, extra: bytes = b"") -> bytes:
    lines = [f"GET {target} HTTP/1.1".encode()]
    if host is not None:
        lines.append(b"Host: " + host.encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n" + extra + b"\r\n"


# ------------------------------------------------------------------------------------------
# A recording forward proxy (loopback only)
# ------------------------------------------------------------------------------------------


class RecordingProxy:
    """An HTTP proxy on 127.0.0.1 that records every byte clients send it.

    ``CONNECT 127.0.0.1:PORT`` opens a tunnel (to loopback only; anything else gets 403); a
    plain-http request in absolute form gets a 502 answer without being forwarded anywhere, so
    nothing ever leaves loopback. ``received`` is all the bytes clients sent, tunnels included
    (there they are TLS records: a key found in them was sent in clear).
    """

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self.request_lines: list[str] = []
        self._stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def received(self) -> bytes:
        with self._lock:
            return b"".join(self._chunks)

    def _record(self, data: bytes) -> None:
        with self._lock:
            self._chunks.append(data)

    def _serve(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                self._record(chunk)
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            self.request_lines.append(line)
            method, target = (line.split() + ["", ""])[:2]
            if method != "CONNECT":
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            host, _, port = target.rpartition(":")
            if host not in ("127.0.0.1", "localhost", "[::1]") or not port.isdigit():
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=30)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            leftover = head.split(b"\r\n\r\n", 1)[1]
            if leftover:
                upstream.sendall(leftover)
            with upstream:
                threading.Thread(target=self._pump, args=(upstream, conn, False), daemon=True).start()
                self._pump(conn, upstream, True)

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if record:
                    self._record(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def stop(self) -> None:
        self._stopped = True
        self._sock.close()


# ------------------------------------------------------------------------------------------
# File systems for fault injection (root: CI runs the tier as root)
# ------------------------------------------------------------------------------------------


def temp_files(directory: Path) -> list[str]:
    """Names of writers' temp files (``.<name>.XXXXXXXX.tmp``) in ``directory``."""
    return sorted(n for n in os.listdir(directory) if n.startswith(".") and n.endswith(".tmp"))


class Mount:
    """``mount ARGS... DIR`` for the life of a ``with`` block, unmounted (lazily if busy) after.

    Needs root (CAP_SYS_ADMIN); without it the test fails saying so, it is never skipped."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.directory = directory
        self.args = args

    def __enter__(self) -> Mount:  # noqa: PYI034
        result = subprocess.run(["mount", *self.args, str(self.directory)], capture_output=True,
                                text=True, check=False)
        if result.returncode != 0:
            import pytest

            pytest.fail(f"mount {' '.join(self.args)} failed ({result.stderr.strip()}): the fault "
                        "injection tests need root, as CI runs them", pytrace=False)
        return self

    def remount(self, *options: str) -> None:
        subprocess.run(["mount", "-o", ",".join(("remount", *options)), str(self.directory)],
                       check=True, capture_output=True)

    def __exit__(self, *exc: object) -> None:
        if subprocess.run(["umount", str(self.directory)], capture_output=True,
                          check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(self.directory)], capture_output=True, check=False)


# ------------------------------------------------------------------------------------------
# Secrets and where they may show up (the leak matrix and the bad-input sweep)
# ------------------------------------------------------------------------------------------


def new_key(kind: str = "jwt") -> str:
    """A fresh API key for one test: a JWT valid for a year (``jwt``), or an opaque key with
    the characters URL encoding and base64 change (``opaque``), so each encoded form differs."""
    import secrets
    import time

    if kind == "opaque":
        return "ak+" + base64.b64encode(secrets.token_bytes(24)).decode() + "/=" + secrets.token_hex(4)

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    now = int(time.time())
    claims = {"sub": "leak-" + secrets.token_hex(8), "exp": now + 365 * 86400, "iat": now}
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{secrets.token_urlsafe(32)}"


def secret_forms(secret: str) -> list[bytes]:
    """The byte strings that betray ``secret``: itself, URL-encoded (both ways), and base64 /
    URL-safe base64 at each of the three alignments it can have inside a longer encoded text
    (``Bearer <key>`` in a Basic header, a stored token); the edge characters that depend on
    the neighbours are cut off."""
    from urllib.parse import quote, quote_plus

    forms = {secret.encode(), quote(secret, safe="").encode(), quote_plus(secret).encode()}
    for pad in ("", "x", "xx"):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode((pad + secret).encode())
            start = (len(pad) * 4 + 2) // 3
            forms.add(encoded[start:-4])
    return [form for form in forms if len(form) >= 16]


def leaks(secret: str, **channels: Any) -> list[str]:
    """The names of the channels (bytes, text, or lists of them) holding any form of
    ``secret``; empty when none does."""
    forms = secret_forms(secret)
    found = []
    for name, data in channels.items():
        items = data if isinstance(data, (list, tuple)) else [data]
        blob = b"\n".join(x if isinstance(x, bytes) else str(x).encode("utf-8", "surrogateescape")
                          for x in items)
        if any(form in blob for form in forms):
            found.append(name)
    return found


def recorded_bytes(server: Any) -> bytes:
    """Everything a tests.httpserver server was sent, as text: request lines, headers, bodies."""
    out = []
    for r in list(server.requests):
        out.append(f"{r.method} {r.path}\n".encode())
        out += [f"{k}: {v}\n".encode("utf-8", "surrogateescape") for k, v in r.headers.items()]
        out.append(r.body)
    return b"".join(out)


_EXEC_HOOK = '''\
# Written by tests/adversarial/helpers.py: logs every process this interpreter starts (PEP 578
# audit events), so a test can check the argv of whatever the module launches.
import json, os, sys

_log = os.environ.get("ANACONDA_AUTH_TEST_EXEC_LOG")
if _log:
    def _hook(event, args):
        if event in ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system"):
            with open(_log, "a", encoding="utf-8") as f:
                f.write(json.dumps([event, repr(args)]) + "\\n")
    sys.addaudithook(_hook)
'''


def exec_logging_env(directory: Path) -> tuple[dict[str, str], Path]:
    """Env additions that make a CLI run log the argv of every process it starts (a
    sitecustomize with an audit hook, first on PYTHONPATH), and the log's path."""
    hook_dir = directory / "exec-hook"
    hook_dir.mkdir(exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(_EXEC_HOOK, encoding="utf-8")
    log = directory / "exec.log"
    return {"PYTHONPATH": f"{hook_dir}{os.pathsep}{ROOT}", "ANACONDA_AUTH_TEST_EXEC_LOG": str(log)}, log


def exec_log(path: Path) -> list[tuple[str, str]]:
    """(event, repr of its arguments) for every process start logged at ``path``."""
    if not path.exists():
        return []
    return [tuple(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]  # type: ignore[misc]


class QuietRecordingProxy(RecordingProxy):
    """A RecordingProxy whose CONNECT to a closed loopback port is answered (502) instead of
    ending its thread with an exception (the bad-input sweep tries such ports on purpose)."""

    def _handle(self, conn: socket.socket) -> None:
        try:
            super()._handle(conn)
        except OSError:
            try:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
