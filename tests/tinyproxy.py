"""A real forward proxy (Debian's ``tinyproxy``) on loopback, run in the foreground per test.

``tinyproxy -d -c <conf>`` with a config written to a temporary directory: ``Listen 127.0.0.1``
on a free port, ``ConnectPort`` lines for the ports a test allows (no lines = every port),
optional ``BasicAuth``, ``LogLevel Connect`` into a log file, so a test can prove a request went
through the proxy and whether it was a ``CONNECT`` tunnel.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from .tools import die_with_parent, port_accepts, stop_process, wait_until

_BASICAUTH_WORD = re.compile(r"[-A-Za-z0-9._]+")


class TinyProxy:
    """A running tinyproxy.

    Attributes: ``url`` (``http://127.0.0.1:PORT``), ``url_with_auth``
    (``http://user:pass@127.0.0.1:PORT``, equal to ``url`` without auth), ``host``, ``port``,
    ``user``, ``password``, ``conf_path``, ``log_path``, ``startup_s``.
    Methods: ``log_text()``, ``connect_lines()`` (log lines of CONNECT tunnels),
    ``request_lines()`` (every ``Request (file descriptor N): METHOD URL`` line), ``stop()``.
    """

    __test__ = False

    def __init__(
        self,
        executable: str,
        directory: Path,
        port: int,
        connect_ports: Iterable[int] = (),
        user: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        for value in (user, password):
            if value is not None and not _BASICAUTH_WORD.fullmatch(value):
                # tinyproxy 1.11's config grammar: BasicAuth takes [-A-Za-z0-9._]+ words only.
                raise ValueError(f"tinyproxy BasicAuth accepts only letters, digits and -._ (got {value!r})")
        self.host = "127.0.0.1"
        self.port = port
        self.user = user
        self.password = password
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.conf_path = str(directory / "tinyproxy.conf")
        self.log_path = str(directory / "tinyproxy.log")
        self.pid_path = str(directory / "tinyproxy.pid")
        lines: list[str] = [
            f"Port {port}",
            f"Listen {self.host}",
            "Timeout 60",
            f'LogFile "{self.log_path}"',
            "LogLevel Connect",  # Connect level logs every request line and each CONNECT
            f'PidFile "{self.pid_path}"',
            "MaxClients 20",
            "Allow 127.0.0.1",
            'ViaProxyName "tinyproxy"',
        ]
        lines += [f"ConnectPort {p}" for p in connect_ports]
        if user is not None:
            lines.append(f"BasicAuth {user} {password}")
        Path(self.conf_path).write_text("\n".join(lines) + "\n")
        Path(self.log_path).touch()
        self.url = f"http://{self.host}:{port}"
        if user is not None:
            self.url_with_auth = f"http://{quote(user, safe='')}:{quote(password or '', safe='')}@{self.host}:{port}"
        else:
            self.url_with_auth = self.url
        started = time.monotonic()
        # -d: stay in the foreground (no daemon), so this Popen owns the process.
        self._proc = subprocess.Popen(
            [executable, "-d", "-c", self.conf_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl
        )
        try:
            wait_until(
                lambda: port_accepts(self.host, port), timeout, f"tinyproxy on {self.url}",
                proc=self._proc, diagnostics=self._diagnostics,
            )
        except Exception:
            stop_process(self._proc)
            raise
        self.startup_s = time.monotonic() - started

    def _diagnostics(self) -> str:
        out = ""
        if self._proc.poll() is not None and self._proc.stdout is not None:
            out = self._proc.stdout.read().decode("utf-8", "replace")
        return f"config:\n{Path(self.conf_path).read_text()}\noutput:\n{out}\nlog:\n{self.log_text()}"

    def log_text(self) -> str:
        """The whole tinyproxy log so far."""
        try:
            return Path(self.log_path).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def request_lines(self) -> list[str]:
        """Log lines ``Request (file descriptor N): GET http://... HTTP/1.1`` (one per request)."""
        return [line for line in self.log_text().splitlines() if "Request (file descriptor" in line]

    def connect_lines(self) -> list[str]:
        """Request lines that opened a CONNECT tunnel (https through the proxy)."""
        return [line for line in self.request_lines() if "): CONNECT " in line]

    def stop(self) -> None:
        stop_process(self._proc)
        if os.path.exists(self.pid_path):
            os.unlink(self.pid_path)

    def __repr__(self) -> str:
        return f"<TinyProxy {self.url}>"
