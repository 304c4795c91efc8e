"""Small helpers shared by the real-part fixtures: finding tools, waiting without sleeping blindly.

A missing tool is a test FAILURE with a message that says how to install it. Only when
``ANACONDA_AUTH_TEST_ALLOW_SKIP=1`` is set and ``CI`` is not, it becomes a skip (for a developer
who deliberately runs a subset on a machine without, say, Chromium).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Callable

LOOPBACK = "127.0.0.1"
TRUTHY = {"1", "true", "yes", "on"}


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUTHY


def missing_part(message: str) -> None:
    """Fail the current test (or skip it, only when explicitly allowed outside CI)."""
    import pytest

    if _env_true("ANACONDA_AUTH_TEST_ALLOW_SKIP") and not _env_true("CI"):
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


def require_executable(name: str, install_hint: str, candidates: Sequence[str] = ()) -> str:
    """Absolute path of an executable, or fail the test saying how to install it."""
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return found
    missing_part(f"required test tool {name!r} was not found on PATH; install it with: {install_hint}")
    raise AssertionError("unreachable")


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free a moment ago (for programs that cannot listen on port 0 themselves)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    what: str,
    proc: subprocess.Popen | None = None,
    diagnostics: Callable[[], str] = lambda: "",
    step: float = 0.01,
):
    """Poll ``predicate`` until it returns something truthy, bounded by ``timeout`` seconds.

    If ``proc`` exits meanwhile, or time runs out, raise RuntimeError naming ``what`` plus the
    text from ``diagnostics`` (a log tail, say). Returns the predicate's value.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{diagnostics()}")
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{what}: not ready after {timeout:.1f} s\n{diagnostics()}")
        # A bounded poll step, not a synchronisation sleep: the predicate is what we wait on.
        time.sleep(step)


def port_accepts(host: str, port: int) -> bool:
    """True if a TCP connect to host:port succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def die_with_parent() -> None:
    """``preexec_fn`` for daemons we start: on Linux, SIGTERM them when the test process dies.

    Teardown stops them normally; this only covers a pytest that is killed (timeout, Ctrl-C
    twice), so no bus, keyring daemon or proxy outlives the run that started it.
    """
    if _prctl is not None:
        _prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG = 1


def _load_prctl():
    # Looked up in the parent: between fork and exec the child only calls the C function
    # (no imports, no locks), which is what makes this preexec_fn safe with threads around.
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """Terminate a child we started (by its own handle, never by name), then kill if needed."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
