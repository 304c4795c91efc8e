"""Tests of the login (issue 4): OIDC discovery, the device grant, the browser flow with PKCE and a
loopback listener, paste-back, browser launch, the API-key exchange, ``login()`` and the CLI.

Real parts (see tests/conftest.py): the OpenID Provider ``oidc-provider`` over HTTPS, the stand-in
Anaconda API, the stdlib user agent (tests/useragent.py) and headless Chromium as BROWSER hooks,
pseudo-terminals for the TTY behaviours. Faults the provider cannot produce (discovery errors,
token-endpoint errors, ``slow_down``, dropped connections, 5xx) come from the scriptable
``https_server``. Polling is driven by an injected clock and sleeper: nothing here waits for real
except the provider and the browsers themselves, and waits are bounded reads of ready lines.

Sections follow the module: discovery, device grant, browser flow, paste-back, browser launch,
API-key exchange, public API, CLI.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import inspect
import io
import json
import os
import pty
import re
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

import anaconda_auth as aa
from test_anaconda_auth import LONG_LIVED, make_jwt, run_captured, store_entry
from tests.anaconda_api import AUTH_PATH, IAM_PATH
from tests.tools import free_port, stop_process
from tests.useragent import UserAgent

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
API_KEY_SCOPES = ["cloud:read", "cloud:write", "repo:read"]
VERIFIER_ALPHABET = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
DEVICE_CODE = "device-code-is-a-bearer-secret-0123456789"
USER_CODE = "WDJB-MJHT"
PENDING = (400, {}, {"error": "authorization_pending"})
SLOW_DOWN = (400, {}, {"error": "slow_down"})
TOKEN = (200, {}, {"access_token": "fake-access-token", "token_type": "Bearer", "expires_in": 3600})


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock and a sleeper that only moves it (records every sleep)."""

    def __init__(self, start: float = 1000.0, step: float = 0.0) -> None:
        self.now = start
        self.step = step  # added on every read (for timeouts that need time to pass)
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        self.now += self.step
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def _domain(server: Any) -> str:
    return f"127.0.0.1:{server.port}"


def _config(tmp_path: Path, test_ca: Any, **fields: Any) -> aa.Config:
    """A Config isolated from this machine: empty environment, HOME in tmp_path."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    values: dict[str, Any] = {"ssl_verify": test_ca.ca_pem, "client_id": "anaconda-cli-test",
                                  "redirect_uri": "http://127.0.0.1:0/auth/oidc"}
    values.update(fields)
    return aa.resolve_config(environ={"HOME": str(home)}, home=str(home), cwd=str(tmp_path), **values)


def _seams(clock: FakeClock | None = None, open_url: Any = None, stderr: Any = None,
           stdin: Any = None, **more: Any) -> dict[str, Any]:
    """What login() may be given of the outside world: a fake clock and sleeper, an opener
    that opens nothing by default, an empty stdin and a captured stderr."""
    clock = clock or FakeClock()
    seams = {"clock": clock, "sleep": getattr(clock, "sleep", None), "open_url": open_url or (lambda url: False),
             "stdin": stdin if stdin is not None else io.StringIO(),
             "stderr": stderr if stderr is not None else io.StringIO()}
    seams.update(more)
    return seams


def _flow(server: Any, config: aa.Config, flow: str, seams: dict[str, Any], open_browser: bool = True,
          timeout: float | None = None, metadata: dict[str, Any] | None = None) -> str:
    """Run ``login()`` through ``flow`` with discovery and the API-key exchange served by
    ``server`` (``metadata`` defaults to endpoints on it): the access token the flow obtained,
    as the exchange received it."""
    md = metadata or _fake_metadata(server, device=flow == "device")
    server.route("GET", "/.well-known/openid-configuration", (200, {}, md))
    server.route("POST", "/api/auth/api-keys",
                 lambda request: (201, {}, {"api_key": "issued-for:" + request.headers["Authorization"][7:]}))
    key = aa.login(config, force=True, flow=flow, open_browser=open_browser, timeout=timeout, **seams)
    assert key.startswith("issued-for:") and aa.get_api_key(config) == key
    return key[len("issued-for:"):]


def _fake_metadata(server: Any, device: bool = True) -> dict[str, Any]:
    md = {"issuer": server.url, "authorization_endpoint": server.url + "/authorize",
          "token_endpoint": server.url + "/token"}
    if device:
        md["device_authorization_endpoint"] = server.url + "/device/auth"
    return md


def _device_grant(server: Any, **fields: Any) -> dict[str, Any]:
    """Route POST /device/auth to a device authorization response (None values are left out)."""
    grant: dict[str, Any] = {
        "device_code": DEVICE_CODE, "user_code": USER_CODE,
        "verification_uri": server.url + "/device",
        "verification_uri_complete": server.url + "/device?user_code=" + USER_CODE,
        "expires_in": 600,
    }
    grant.update(fields)
    grant = {k: v for k, v in grant.items() if v is not None}
    server.route("POST", "/device/auth", (200, {}, grant))
    return grant


def _posts(server: Any, path: str) -> list[Any]:
    return [r for r in server.requests if r.method == "POST" and r.url_path == path]


def _http_get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One plain-http GET, no redirects followed: (status, headers, body)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""))
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def _auth_params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT, not LISTEN
        try:
            s.bind((host, port))
            s.listen(1)
        except OSError:
            return False
    return True


def _listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp{,6}) of sockets LISTENing on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":
                found.append(address)
    return found


class UserAgentOpener:
    """An ``open_url`` for in-process flows: the stdlib user agent walks the URL at once."""

    def __init__(self, test_ca: Any, **options: Any) -> None:
        self.options = dict(cafile=test_ca.ca_pem, timeout=15, **options)
        self.urls: list[str] = []
        self.results: list[Any] = []
        self.before: Any = None  # called with the URL before the walk (to inject stray requests)

    def __call__(self, url: str) -> bool:
        self.urls.append(url)
        if self.before is not None:
            self.before(url)
        self.results.append(UserAgent(**self.options).run(url))
        return True


# -- The CLI as a subprocess ---------------------------------------------------------------------


def _base_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment minus anything that configures anaconda_auth or a browser."""
    drop_prefixes = ("ANACONDA_", "CONDA_", "SSH_", "USERAGENT_")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(drop_prefixes) and k not in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY",
                                                            "PYTHON_KEYRING_BACKEND")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", TERM="xterm")
    return env


def _site_env(tmp_path: Path, oidc_provider: Any, anaconda_api: Any, test_ca: Any,
              **extra: str) -> dict[str, str]:
    """Environment for a CLI that logs in at the real provider and the stand-in API."""
    env = _base_env(tmp_path)
    env.update(
        ANACONDA_AUTH_DOMAIN=anaconda_api.domain,
        ANACONDA_AUTH_AUTH_DOMAIN_OVERRIDE=f"127.0.0.1:{oidc_provider.port}",
        ANACONDA_AUTH_CLIENT_ID=oidc_provider.client_id,
        ANACONDA_AUTH_SSL_VERIFY=test_ca.ca_pem,
        ANACONDA_AUTH_REDIRECT_URI="http://127.0.0.1:0/auth/oidc",
        ANACONDA_AUTH_TEST_CA=test_ca.ca_pem,
    )
    env.update(extra)
    return env


def _keyring_file(env: dict[str, str]) -> Path:
    return Path(env["HOME"]) / ".anaconda" / "keyring"


def run_cli(args: list[str], env: dict[str, str], input: str | None = None,
            timeout: float = 90) -> subprocess.CompletedProcess:
    return run_captured([PYTHON, "-m", "anaconda_auth", *args], env, env["HOME"], input, timeout)


def _dump_threads(proc: subprocess.Popen) -> None:
    """Make a hung CLI print every thread's stack (PYTHONFAULTHANDLER, set by the runners
    below) to its stderr, so that a failure says where it hung."""
    proc.send_signal(signal.SIGABRT)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


class CLIProcess:
    """The CLI running in the background with pipes; stderr read by a thread (bounded waits)."""

    def __init__(self, args: list[str], env: dict[str, str],
                 command: tuple[str, ...] = (PYTHON, "-m", "anaconda_auth")) -> None:
        self.proc = subprocess.Popen(
            [*command, *args], env={**env, "PYTHONFAULTHANDLER": "1"}, cwd=env["HOME"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.stdout = ""
        self.stderr = ""
        self._changed = threading.Condition()
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, "stdout"), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, "stderr"), daemon=True)]
        for thread in self._threads:
            thread.start()

    def _pump(self, stream: Any, name: str) -> None:
        for raw in iter(stream.readline, b""):
            with self._changed:
                setattr(self, name, getattr(self, name) + raw.decode("utf-8", "replace"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def expect_stderr(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        regex = re.compile(pattern, re.MULTILINE)
        with self._changed:
            ok = self._changed.wait_for(
                lambda: regex.search(self.stderr) or self.proc.poll() is not None, timeout)
            match = regex.search(self.stderr)
        if not match:
            raise AssertionError(f"no {pattern!r} on stderr (ok={ok}, exit {self.proc.poll()}):\n{self.stderr}")
        return match

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 30) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _dump_threads(self.proc)
            for thread in self._threads:
                thread.join(5)
            stop_process(self.proc)
            raise AssertionError(f"the CLI did not exit within {timeout} s:\n{self.stderr}") from None
        for thread in self._threads:
            thread.join(5)
        return rc

    def close(self) -> None:
        stop_process(self.proc)


class PtyCLI:
    """The CLI on a pseudo-terminal (stdin, stdout and stderr all the pty's slave side)."""

    def __init__(self, args: list[str], env: dict[str, str],
                 command: tuple[str, ...] = (PYTHON, "-m", "anaconda_auth")) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [*command, *args], env={**env, "PYTHONFAULTHANDLER": "1"}, cwd=env["HOME"],
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True, close_fds=True,
        )
        os.close(slave)
        self.output = ""
        self.pos = 0

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], max(timeout, 0))
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave fd is closed
            data = b""
        if not data:
            return False
        self.output += data.decode("utf-8", "replace").replace("\r\n", "\n")
        return True

    def expect(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output, self.pos)
            if match:
                self.pos = match.end()
                return match
            left = deadline - time.monotonic()
            if left <= 0 or (not self._read(min(left, 1.0)) and self.proc.poll() is not None
                             and not self._read(0)):
                raise AssertionError(f"no {pattern!r} on the terminal (exit {self.proc.poll()}):\n{self.output}")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                _dump_threads(self.proc)
                while self._read(1.0):
                    pass
                stop_process(self.proc)
                raise AssertionError(f"the CLI did not exit within {timeout} s:\n{self.output}")
            self._read(0.2)
        while self._read(0):
            pass
        return self.proc.returncode

    def close(self) -> None:
        stop_process(self.proc)
        os.close(self.master)


def _written_to_a_terminal(run: Any) -> str:
    """Call ``run(tty)`` with a pseudo-terminal's writing end; returns what it wrote there."""
    master, slave = pty.openpty()
    tty = os.fdopen(slave, "w", encoding="utf-8")
    try:
        run(tty)
        tty.flush()
        out = b""
        while select.select([master], [], [], 0)[0]:
            out += os.read(master, 65536)
    finally:
        tty.close()
        os.close(master)
    return out.decode("utf-8")


def _url_on_stderr(text: str, prefix: str) -> str:
    match = re.search(r"^    (" + re.escape(prefix) + r"\S*)$", text, re.MULTILINE)
    assert match, f"no URL starting {prefix} on its own line:\n{text}"
    return match.group(1)


# ==========================================================================================
# Discovery
# ==========================================================================================


def test_discovery_is_fetched_once_per_process_per_url(https_server, oidc_provider, test_ca, tmp_path):
    server = https_server()
    server.route("GET", "/.well-known/openid-configuration", (200, {}, dict(oidc_provider.discovery)))
    server.route("GET", "/other/openid-configuration", (200, {}, dict(oidc_provider.discovery)))
    config = _config(tmp_path, test_ca, domain=_domain(server))
    first = aa.discover(config)
    assert first["token_endpoint"] == oidc_provider.token_endpoint
    assert aa.discover(config) == first
    assert aa.discover(_config(tmp_path, test_ca, domain=_domain(server))) == first
    assert [r.path for r in server.requests] == ["/.well-known/openid-configuration"]
    aa.discover(_config(tmp_path, test_ca, domain=_domain(server), openid_config_path="/other/openid-configuration"))
    assert [r.path for r in server.requests] == ["/.well-known/openid-configuration", "/other/openid-configuration"]


def test_discovery_sends_no_authorization_even_with_a_stored_key(https_server, oidc_provider, test_ca, tmp_path):
    server = https_server()
    server.route("GET", "/.well-known/openid-configuration", (200, {}, dict(oidc_provider.discovery)))
    config = _config(tmp_path, test_ca, domain=_domain(server))
    aa.login(config, api_key=make_jwt({"sub": "x", "exp": int(time.time()) + 3600}), verify=False)
    aa.discover(config)
    assert "Authorization" not in server.requests[0].headers


def test_discovery_failure_is_not_cached(https_server, oidc_provider, test_ca, tmp_path):
    server = https_server()
    server.fail_then("/.well-known/openid-configuration", [(500, {}, "down")])
    server.route("GET", "/.well-known/openid-configuration", (200, {}, dict(oidc_provider.discovery)))
    config = _config(tmp_path, test_ca, domain=_domain(server))
    with pytest.raises(aa.AuthenticationError):
        aa.discover(config)
    assert aa.discover(config)["issuer"] == oidc_provider.issuer
    assert len(server.requests) == 2


HTML_PAGE = (200, {"Content-Type": "text/html"}, "<!doctype html><html><body>Welcome to our portal</body></html>")


@pytest.mark.parametrize("case, response, says", [
    ("404", (404, {}, {"detail": "Not Found"}), "404"),
    ("500", (500, {}, "Internal Server Error"), "500"),
    ("html instead of json", HTML_PAGE, "not JSON"),
    ("json that is not an object", (200, {}, ["authorization_endpoint"]), "not a JSON object"),
    ("no token_endpoint", (200, {}, {"authorization_endpoint": "https://x/auth"}), "token_endpoint"),
    ("no authorization_endpoint", (200, {}, {"token_endpoint": "https://x/token"}), "authorization_endpoint"),
])
def test_discovery_failure_is_one_clear_error_naming_the_url(https_server, test_ca, tmp_path, case, response, says):
    server = https_server()
    server.route("GET", "/.well-known/openid-configuration", response)
    config = _config(tmp_path, test_ca, domain=_domain(server))
    with pytest.raises(aa.AuthenticationError) as caught:
        aa.discover(config)
    message = str(caught.value)
    assert f"{server.url}/.well-known/openid-configuration" in message
    assert says in message
    assert "\n" not in message.strip()


def test_discovery_connection_refused_is_one_clear_error_naming_the_url(test_ca, tmp_path):
    port = free_port()
    config = _config(tmp_path, test_ca, domain=f"127.0.0.1:{port}")
    with pytest.raises(aa.AuthenticationError) as caught:
        aa.discover(config)
    message = str(caught.value)
    assert f"https://127.0.0.1:{port}/.well-known/openid-configuration" in message
    assert "connect" in message.lower()


def test_cli_login_reports_a_discovery_failure_and_stores_nothing(https_server, test_ca, tmp_path):
    server = https_server()
    server.route("GET", "/.well-known/openid-configuration", HTML_PAGE)
    env = _base_env(tmp_path)
    env.update(ANACONDA_AUTH_DOMAIN=_domain(server), ANACONDA_AUTH_SSL_VERIFY=test_ca.ca_pem)
    result = run_cli(["login", "--device", "--no-browser"], env)
    assert result.returncode == 1, result.stderr
    assert f"{server.url}/.well-known/openid-configuration" in result.stderr
    assert "Traceback" not in result.stderr
    assert not _keyring_file(env).exists()


# ==========================================================================================
# Device authorization grant (RFC 8628), against an in-test token endpoint
# ==========================================================================================


@pytest.fixture
def device_server(https_server):
    server = https_server()
    _device_grant(server)
    return server


def test_device_request_is_a_form_post_without_authorization_even_with_a_stored_key(device_server, test_ca, tmp_path):
    config = _config(tmp_path, test_ca, domain=_domain(device_server), client_id="cli-42")
    aa.login(config, api_key=make_jwt({"sub": "x", "exp": int(time.time()) + LONG_LIVED}), verify=False)
    aa.request("GET", device_server.url + "/probe", config=config)
    assert "Authorization" in device_server.requests[-1].headers  # the key could go there
    device_server.fail_then("/token", [PENDING, TOKEN])
    assert _flow(device_server, config, "device", _seams(), False) == "fake-access-token"
    [device] = _posts(device_server, "/device/auth")
    assert device.form() == {"client_id": "cli-42", "scope": "openid"}
    assert device.headers["Content-Type"] == "application/x-www-form-urlencoded"
    polls = _posts(device_server, "/token")
    assert [p.form() for p in polls] == [{"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                          "device_code": DEVICE_CODE, "client_id": "cli-42"}] * 2
    assert all("Authorization" not in r.headers for r in device_server.requests
               if r.url_path in ("/device/auth", "/token", "/.well-known/openid-configuration"))


def test_device_flow_prints_url_and_code_on_their_own_lines_and_never_the_device_code(device_server, test_ca, tmp_path):
    config = _config(tmp_path, test_ca, domain=_domain(device_server))
    device_server.route("POST", "/token", TOKEN)
    stderr = io.StringIO()
    _flow(device_server, config, "device", _seams(stderr=stderr), False)
    lines = stderr.getvalue().splitlines()
    assert f"    {device_server.url}/device" in lines  # the plain URI, alone on its line
    assert f"    {USER_CODE}" in lines  # the code exactly as received, alone on its line
    url_line = lines.index(f"    {device_server.url}/device")
    code_line = lines.index(f"    {USER_CODE}")
    assert code_line > url_line and lines[url_line - 1] == lines[url_line + 1] == "" == lines[code_line + 1]
    assert DEVICE_CODE not in stderr.getvalue()


@pytest.mark.parametrize("complete, open_browser, expected", [
    (True, True, "complete"), (False, True, "plain"), (True, False, None)])
def test_device_flow_opens_verification_uri_complete_when_a_browser_can_be_opened(
        device_server, test_ca, tmp_path, complete, open_browser, expected):
    grant = _device_grant(device_server, verification_uri_complete=None if not complete else
                          device_server.url + "/device?user_code=" + USER_CODE)
    device_server.route("POST", "/token", TOKEN)
    opened: list[str] = []
    _flow(device_server, _config(tmp_path, test_ca, domain=_domain(device_server)), "device",
          _seams(open_url=lambda url: opened.append(url) or True), open_browser)
    want = {"complete": [grant.get("verification_uri_complete")], "plain": [grant["verification_uri"]], None: []}
    assert opened == want[expected]


def _poll(device_server: Any, test_ca: Any, tmp_path: Path, responses: list[Any], clock: FakeClock | None = None,
          **grant: Any) -> tuple[FakeClock, Any]:
    """Run the device flow with ``responses`` queued at /token; returns (clock, result or error)."""
    if grant:
        _device_grant(device_server, **grant)
    device_server.fail_then("/token", responses)
    clock = clock or FakeClock()
    config = _config(tmp_path, test_ca, domain=_domain(device_server))
    try:
        outcome: Any = _flow(device_server, config, "device", _seams(clock), False)
    except aa.AnacondaAuthError as e:
        outcome = e
    return clock, outcome


def test_device_poll_waits_the_default_5_s_interval_when_none_is_given(device_server, test_ca, tmp_path):
    clock, token = _poll(device_server, test_ca, tmp_path, [PENDING, PENDING, TOKEN])
    assert token == "fake-access-token"
    assert clock.sleeps == [5, 5, 5]
    assert len(_posts(device_server, "/token")) == 3


def test_device_poll_uses_the_interval_the_server_gives(device_server, test_ca, tmp_path):
    clock, token = _poll(device_server, test_ca, tmp_path, [PENDING, TOKEN], interval=7)
    assert token == "fake-access-token"
    assert clock.sleeps == [7, 7]


def test_device_poll_slow_down_adds_5_s_to_every_later_poll(device_server, test_ca, tmp_path):
    clock, token = _poll(device_server, test_ca, tmp_path, [PENDING, SLOW_DOWN, PENDING, PENDING, SLOW_DOWN, TOKEN])
    assert token == "fake-access-token"
    assert clock.sleeps == [5, 5, 10, 10, 10, 15]


def test_device_poll_backs_off_on_a_connection_drop_then_succeeds(device_server, test_ca, tmp_path):
    reset = device_server.RESET
    clock, token = _poll(device_server, test_ca, tmp_path, [PENDING, reset, reset, reset, PENDING, TOKEN])
    assert token == "fake-access-token"
    waits = clock.sleeps
    assert waits[:2] == [5, 5]
    extra = [w - 5 for w in waits[2:5]]  # the waits after each dropped connection
    assert extra[0] > 0 and extra[1] >= 2 * extra[0] and extra[2] >= 2 * extra[1], waits
    assert waits[5] == 5  # a real answer resets the backoff
    assert len(_posts(device_server, "/token")) == 6


def test_device_poll_backs_off_on_5xx_then_succeeds(device_server, test_ca, tmp_path):
    clock, token = _poll(device_server, test_ca, tmp_path,
                         [(503, {}, "busy"), (500, {}, {"error": "server_error"}), (502, {}, ""), TOKEN])
    assert token == "fake-access-token"
    waits = clock.sleeps
    assert waits[0] == 5 and waits[1] > 5 and waits[2] > waits[1] and waits[3] > waits[2], waits
    assert len(_posts(device_server, "/token")) == 4


def test_device_poll_timeout_after_network_errors_says_the_polls_failed(device_server, test_ca, tmp_path):
    reset = device_server.RESET
    _, error = _poll(device_server, test_ca, tmp_path, [reset] * 10, expires_in=30)
    assert isinstance(error, aa.DeviceFlowTimeout)
    assert "the last poll failed" in str(error) and str(device_server.port) in str(error)


@pytest.mark.parametrize("interval, expected", [("soon", None), (-3, 1.0), (0.01, 1.0)])
def test_device_grant_values_are_checked(device_server, test_ca, tmp_path, interval, expected):
    clock, outcome = _poll(device_server, test_ca, tmp_path, [TOKEN], interval=interval)
    if expected is None:
        assert isinstance(outcome, aa.DeviceFlowError) and "interval" in str(outcome)
    else:
        assert outcome == "fake-access-token" and clock.sleeps == [expected]


def test_server_error_text_cannot_drive_the_terminal(device_server, test_ca, tmp_path):
    _, error = _poll(device_server, test_ca, tmp_path,
                     [(400, {}, {"error": "invalid_grant\x1b[2J", "error_description": "x\x1b]0;pwned\x07"})])
    assert isinstance(error, aa.DeviceFlowError) and "invalid_grant" in str(error)
    assert not any(c < " " for c in str(error)), repr(str(error))
    response = aa.Response(500, "Oops", {}, b"oops \x1b[31mred", "https://idp.test/x", False)
    with pytest.raises(aa.HTTPError) as info:
        response.raise_for_status()
    assert "oops" in str(info.value) and "\x1b" not in str(info.value)


def test_discovery_refuses_plain_http_endpoints_off_loopback(https_server, oidc_provider, test_ca, tmp_path):
    server = https_server()
    document = dict(oidc_provider.discovery, token_endpoint="http://auth.example.test/token")
    server.route("GET", "/.well-known/openid-configuration", (200, {}, document))
    with pytest.raises(aa.AuthenticationError, match="token_endpoint.*https"):
        aa.discover(_config(tmp_path, test_ca, domain=_domain(server)))


def test_device_poll_access_denied_raises_device_flow_denied(device_server, test_ca, tmp_path):
    _, error = _poll(device_server, test_ca, tmp_path,
                     [PENDING, (400, {}, {"error": "access_denied", "error_description": "the user said no"})])
    assert isinstance(error, aa.DeviceFlowDenied)


def test_device_poll_expired_token_raises_device_flow_timeout(device_server, test_ca, tmp_path):
    _, error = _poll(device_server, test_ca, tmp_path, [PENDING, (400, {}, {"error": "expired_token"})])
    assert isinstance(error, aa.DeviceFlowTimeout)


def test_device_poll_stops_at_expires_in_on_the_monotonic_clock(device_server, test_ca, tmp_path):
    device_server.route("POST", "/token", PENDING)
    clock, error = _poll(device_server, test_ca, tmp_path, [], expires_in=12)
    assert isinstance(error, aa.DeviceFlowTimeout)
    assert clock.sleeps == [5, 5, 2]  # never sleeps past the deadline
    assert len(_posts(device_server, "/token")) == 2
    defaults = inspect.signature(aa.login).parameters
    assert defaults["clock"].default is time.monotonic and defaults["sleep"].default is time.sleep


def test_device_poll_other_error_raises_device_flow_error_with_the_description(device_server, test_ca, tmp_path):
    _, error = _poll(device_server, test_ca, tmp_path,
                     [PENDING, (400, {}, {"error": "invalid_client", "error_description": "client is disabled"})])
    assert type(error) is aa.DeviceFlowError
    assert "invalid_client" in str(error) and "client is disabled" in str(error)


def test_device_authorization_request_error_names_the_server_description(device_server, test_ca, tmp_path):
    device_server.route("POST", "/device/auth", (400, {}, {"error": "invalid_client", "error_description": "unknown client"}))
    with pytest.raises(aa.DeviceFlowError, match="unknown client"):
        _flow(device_server, _config(tmp_path, test_ca, domain=_domain(device_server)), "device", _seams(), False)


@pytest.mark.parametrize("missing", ["device_code", "user_code", "verification_uri", "expires_in"])
def test_device_authorization_response_without_a_required_field_is_an_error(device_server, test_ca, tmp_path, missing):
    _device_grant(device_server, **{missing: None})
    with pytest.raises(aa.DeviceFlowError, match=missing):
        _flow(device_server, _config(tmp_path, test_ca, domain=_domain(device_server)), "device", _seams(), False)
    assert _posts(device_server, "/token") == []


def test_device_countdown_is_one_line_on_a_tty_and_absent_otherwise(device_server, test_ca, tmp_path):
    config = _config(tmp_path, test_ca, domain=_domain(device_server))
    _device_grant(device_server, interval=2)
    device_server.fail_then("/token", [PENDING, TOKEN])
    clock = FakeClock()
    text = _written_to_a_terminal(lambda tty: _flow(device_server, config, "device", _seams(clock, stderr=tty), False))
    assert "Waiting for approval; the code expires in 9:59" in text
    tail = re.sub(r"^(\r*\n)+", "", text.split(USER_CODE, 1)[1])
    assert tail.startswith("\r\x1b[KWaiting for approval")
    assert "\n" not in tail  # the countdown rewrites one line
    assert tail.endswith("\r\x1b[K")  # and clears it when done
    assert clock.sleeps == [1, 1, 1, 1]  # ticks of a second so the line stays current

    device_server.clear()
    device_server.fail_then("/token", [PENDING, TOKEN])
    plain = io.StringIO()
    clock = FakeClock()
    _flow(device_server, config, "device", _seams(clock, stderr=plain), False)
    assert "Waiting for approval" not in plain.getvalue() and "\r" not in plain.getvalue()
    assert clock.sleeps == [2, 2]


@pytest.mark.parametrize("ending", ["access_denied", "expired_token", "invalid_client", "deadline", "ctrl-c"])
def test_device_countdown_line_is_ended_before_an_error_is_shown(device_server, test_ca, tmp_path, ending):
    """Whatever stops the polling, the countdown line is cleared (or ended) first, so the
    error message that follows (or "Interrupted.") is not glued to "... (Ctrl-C to cancel)"."""
    config = _config(tmp_path, test_ca, domain=_domain(device_server))
    _device_grant(device_server, interval=2, expires_in=5 if ending == "deadline" else 600)
    if ending in ("access_denied", "expired_token", "invalid_client"):
        device_server.fail_then("/token", [PENDING, (400, {}, {"error": ending})])
    else:
        device_server.route("POST", "/token", PENDING)
    clock = FakeClock()
    sleep = clock.sleep
    if ending == "ctrl-c":
        def sleep(seconds: float) -> None:
            if len(clock.sleeps) == 3:
                raise KeyboardInterrupt
            clock.sleep(seconds)

    def run(tty: Any) -> None:
        with pytest.raises((aa.DeviceFlowError, KeyboardInterrupt)):
            _flow(device_server, config, "device", _seams(clock, stderr=tty, sleep=sleep), False)

    text = _written_to_a_terminal(run)
    assert "Waiting for approval" in text
    assert text.endswith(("\r\x1b[K", "\n")), repr(text[-120:])


def test_missing_device_endpoint_falls_back_to_the_browser_flow(https_server, oidc_provider, anaconda_api, test_ca, tmp_path):
    no_device = {k: v for k, v in oidc_provider.discovery.items() if k != "device_authorization_endpoint"}
    discovery = https_server()
    discovery.route("GET", "/.well-known/openid-configuration", (200, {}, no_device))
    config = _config(tmp_path, test_ca, domain=anaconda_api.domain, auth_domain_override=_domain(discovery),
                     client_id=oidc_provider.client_id)
    assert config.use_device_flow
    opener = UserAgentOpener(test_ca)
    stderr = io.StringIO()
    key = aa.login(config, force=True, flow=None, open_browser=True, timeout=30,
                                **_seams(open_url=opener, stderr=stderr))
    assert "offers no device login; using the browser instead" in stderr.getvalue()
    assert opener.urls[0].startswith(oidc_provider.authorization_endpoint + "?")
    assert opener.results[0].listener_status == 303
    assert key == anaconda_api.issued_keys[-1]["api_key"] == aa.get_api_key(config)


def test_device_login_in_process_through_the_real_provider(oidc_provider, anaconda_api, test_ca, tmp_path):
    config = _config(tmp_path, test_ca, domain=anaconda_api.domain, client_id=oidc_provider.client_id)
    opener = UserAgentOpener(test_ca)
    clock = FakeClock()
    key = aa.login(config, force=True, flow="device", open_browser=True, timeout=None,
                                **_seams(clock, open_url=opener))
    assert opener.urls[0].startswith(oidc_provider.issuer + "/device?user_code=")
    assert opener.results[0].device_done
    assert key == anaconda_api.issued_keys[-1]["api_key"] == aa.get_api_key(config)
    assert clock.sleeps == [5]  # the provider sends no interval


# ==========================================================================================
# Browser flow: PKCE, state, the loopback listener (RFC 7636, 8252, 9207)
# ==========================================================================================


def test_pkce_pair_is_s256_with_a_fresh_verifier_of_43_to_128_allowed_characters(https_server, test_ca, tmp_path):
    """Eight browser logins (each ~0.4 s: the listener's shutdown waits for serve_forever's
    poll): the challenge each sent in the authorization URL and the verifier it sent with the
    code."""
    server = https_server()
    server.route("POST", "/token", TOKEN)
    config = _config(tmp_path, test_ca, domain=_domain(server))
    challenges: list[str] = []

    def open_url(url: str) -> bool:
        params = _auth_params(url)
        challenges.append(params["code_challenge"])
        _http_get(params["redirect_uri"] + "?" + urlencode(
            {"code": "c", "state": params["state"], "iss": server.url}))
        return True

    for _ in range(8):
        _flow(server, config, "browser", _seams(open_url=open_url), timeout=30)
    pairs = [(post.form()["code_verifier"], challenge)
             for post, challenge in zip(_posts(server, "/token"), challenges)]
    assert len(pairs) == 8
    for verifier, challenge in pairs:
        assert VERIFIER_ALPHABET.match(verifier), verifier
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        assert challenge == base64.urlsafe_b64encode(digest).decode().rstrip("=")
        assert "=" not in challenge and len(challenge) == 43
    assert len({v for v, _ in pairs}) == len(pairs)


def test_browser_flow_sends_pkce_state_and_the_real_port_in_both_requests(https_server, test_ca, tmp_path):
    server = https_server()
    server.route("POST", "/token", TOKEN)
    config = _config(tmp_path, test_ca, domain=_domain(server), client_id="cli-7",
                     redirect_uri="http://127.0.0.1:0/auth/oidc")
    md = _fake_metadata(server, device=False)
    urls: list[str] = []
    answers: list[tuple[int, dict[str, str], bytes]] = []

    def open_url(url: str) -> bool:
        urls.append(url)
        params = _auth_params(url)
        callback = params["redirect_uri"] + "?" + urlencode(
            {"code": f"code-{len(urls)}", "state": params["state"], "iss": server.url})
        answers.append(_http_get(callback))
        return True

    tokens = [_flow(server, config, "browser", _seams(open_url=open_url), timeout=30) for _ in range(2)]
    assert tokens == ["fake-access-token"] * 2
    polls = _posts(server, "/token")
    assert len(polls) == 2
    states, challenges = set(), set()
    for n, (url, token_request) in enumerate(zip(urls, polls), 1):
        assert url.startswith(md["authorization_endpoint"] + "?")
        pairs = parse_qsl(urlsplit(url).query)
        assert [k for k, _ in pairs] == ["client_id", "response_type", "scope", "state", "redirect_uri",
                                         "code_challenge", "code_challenge_method"]  # the reference's order
        params = dict(pairs)
        assert params["client_id"] == "cli-7" and params["response_type"] == "code"
        assert params["scope"] == "openid email profile offline_access"
        assert params["code_challenge_method"] == "S256"
        assert len(params["state"]) >= 32
        redirect = urlsplit(params["redirect_uri"])
        assert (redirect.scheme, redirect.hostname, redirect.path) == ("http", "127.0.0.1", "/auth/oidc")
        assert redirect.port and redirect.port != 0
        form = token_request.form()
        assert form["grant_type"] == "authorization_code" and form["client_id"] == "cli-7"
        assert form["code"] == f"code-{n}"
        assert form["redirect_uri"] == params["redirect_uri"]  # the same URI, with the real port
        assert VERIFIER_ALPHABET.match(form["code_verifier"])
        digest = hashlib.sha256(form["code_verifier"].encode()).digest()
        assert base64.urlsafe_b64encode(digest).decode().rstrip("=") == params["code_challenge"]
        assert "Authorization" not in token_request.headers
        assert _port_is_free(redirect.port)  # closed once the response arrived
        states.add(params["state"])
        challenges.add(params["code_challenge"])
    assert len(states) == 2 and len(challenges) == 2  # fresh per login
    for status, headers, _ in answers:
        assert status == 303
        assert headers["Location"] == config.login_success_url
        assert headers.get("Referrer-Policy") == "no-referrer"
        assert "no-store" in headers.get("Cache-Control", "")


@pytest.mark.parametrize("response, says", [
    ((400, {}, {"error": "invalid_grant", "error_description": "PKCE verification failed"}), "PKCE verification failed"),
    ((200, {}, {"token_type": "Bearer"}), "access_token"),
    ((502, {"Content-Type": "text/html"}, "<html>Bad gateway</html>"), "502"),
])
def test_code_exchange_error_is_a_clear_authentication_error(https_server, test_ca, tmp_path, response, says):
    server = https_server()
    server.route("POST", "/token", response)
    config = _config(tmp_path, test_ca, domain=_domain(server))

    def open_url(url: str) -> bool:
        params = _auth_params(url)
        _http_get(params["redirect_uri"] + "?" + urlencode({"code": "c", "state": params["state"]}))
        return True

    with pytest.raises(aa.AuthenticationError) as caught:
        _flow(server, config, "browser", _seams(open_url=open_url), timeout=30)
    assert says in str(caught.value) and f"{server.url}/token" in str(caught.value)
    assert len(_posts(server, "/token")) == 1  # a code is used once: never resent


def test_a_server_without_s256_pkce_is_not_used_silently(https_server, test_ca, tmp_path):
    """RFC 9700 §2.1.1 / RFC 8414 §2 (peers.md §2.3): metadata whose code_challenge_methods_supported
    lacks S256 means PKCE may be ignored by the server: warn, or refuse, never proceed silently."""
    import warnings

    server = https_server()
    server.route("GET", "/.well-known/openid-configuration",
                 (200, {}, dict(_fake_metadata(server, device=False), code_challenge_methods_supported=["plain"])))
    server.route("POST", "/token", TOKEN)
    server.route("POST", "/api/auth/api-keys", (201, {}, {"api_key": "k"}))
    config = _config(tmp_path, test_ca, domain=_domain(server))

    def open_url(url: str) -> bool:
        params = _auth_params(url)
        _http_get(params["redirect_uri"] + "?" + urlencode({"code": "c", "state": params["state"]}))
        return True

    stderr = io.StringIO()
    refused: BaseException | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            aa.login(config, force=True, flow="browser", open_browser=True, timeout=30,
                                  **_seams(open_url=open_url, stderr=stderr))
        except aa.AnacondaAuthError as e:
            refused = e
    prose = [line for line in stderr.getvalue().splitlines() if "://" not in line]  # not the auth URL
    said = " ".join(prose + [str(refused or "")] + [str(w.message) for w in caught])
    assert "S256" in said or "PKCE" in said, said


@pytest.mark.parametrize("host, bind_hex", [
    ("127.0.0.1", "0100007F"), ("localhost", "0100007F"), ("[::1]", "00000000000000000000000001000000")])
def test_listener_binds_only_the_loopback_interface(https_server, test_ca, tmp_path, host, bind_hex):
    server = https_server()
    server.route("POST", "/token", TOKEN)
    config = _config(tmp_path, test_ca, domain=_domain(server), redirect_uri=f"http://{host}:0/auth/oidc")
    seen: dict[str, Any] = {}

    def open_url(url: str) -> bool:
        params = _auth_params(url)
        redirect = urlsplit(params["redirect_uri"])
        seen["redirect"] = params["redirect_uri"]
        seen["listening"] = _listening_addresses(redirect.port)
        _http_get(params["redirect_uri"] + "?" + urlencode({"code": "c", "state": params["state"]}))
        return True

    _flow(server, config, "browser", _seams(open_url=open_url), timeout=30)
    assert seen["listening"] == [bind_hex], seen
    assert urlsplit(seen["redirect"]).netloc.startswith(host + ":")


@pytest.mark.parametrize("redirect_uri", [
    "http://0.0.0.0:8000/auth/oidc", "http://192.168.1.10:8000/auth/oidc", "http://example.com:8000/auth/oidc",
    "http://[::]:8000/auth/oidc", "https://127.0.0.1:8000/auth/oidc"])
def test_non_loopback_redirect_uri_is_a_config_error(https_server, oidc_provider, test_ca, tmp_path, redirect_uri):
    server = https_server()
    server.route("GET", "/.well-known/openid-configuration", (200, {}, dict(oidc_provider.discovery)))
    config = _config(tmp_path, test_ca, domain=_domain(server), redirect_uri=redirect_uri)
    opened: list[str] = []
    with pytest.raises(aa.ConfigError, match="loopback"):
        aa.login(config, force=True, flow="browser", open_browser=True, timeout=5,
                              **_seams(open_url=lambda u: opened.append(u) or True))
    assert opened == []


def test_cli_non_loopback_redirect_uri_exits_2(oidc_provider, anaconda_api, test_ca, tmp_path):
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca,
                    ANACONDA_AUTH_REDIRECT_URI="http://0.0.0.0:8000/auth/oidc")
    result = run_cli(["login", "--browser", "--no-browser"], env)
    assert result.returncode == 2, result.stderr
    assert "ConfigError" in result.stderr and "0.0.0.0" in result.stderr


def _real_config(tmp_path: Path, test_ca: Any, oidc_provider: Any, anaconda_api: Any, **fields: Any) -> aa.Config:
    """In-process config: discovery and /api/auth/api-keys at the stand-in API, login at the provider."""
    return _config(tmp_path, test_ca, domain=anaconda_api.domain, client_id=oidc_provider.client_id, **fields)


def test_stray_requests_get_404_and_a_wrong_state_400_while_the_listener_keeps_waiting(
        oidc_provider, anaconda_api, test_ca, tmp_path):
    config = _real_config(tmp_path, test_ca, oidc_provider, anaconda_api)
    stray: list[tuple[int, dict[str, str], bytes]] = []

    def before(url: str) -> None:
        redirect = _auth_params(url)["redirect_uri"]
        origin = redirect.rsplit("/auth/oidc", 1)[0]
        stray.append(_http_get(origin + "/favicon.ico"))
        stray.append(_http_get(redirect + "?" + urlencode({"code": "forged", "state": "not-the-state"})))
        stray.append(_http_get(redirect + "?" + urlencode({"error": "access_denied", "state": "not-the-state"})))
        stray.append(_http_get(redirect))

    opener = UserAgentOpener(test_ca)
    opener.before = before
    key = aa.login(config, force=True, flow="browser", open_browser=True, timeout=30,
                                **_seams(open_url=opener))
    assert [s for s, _, _ in stray] == [404, 400, 400, 400]
    for _, headers, body in stray[1:]:
        assert headers["Content-Type"].startswith("text/html") and b"state" in body
    result = opener.results[0]
    assert result.listener_status == 303 and result.final_url == config.login_success_url
    assert key == anaconda_api.issued_keys[-1]["api_key"]


def test_access_denied_redirect_raises_with_the_description_and_303_to_the_error_page(
        oidc_provider, anaconda_api, test_ca, tmp_path):
    config = _real_config(tmp_path, test_ca, oidc_provider, anaconda_api)
    opener = UserAgentOpener(test_ca, action="deny")
    with pytest.raises(aa.AuthenticationError) as caught:
        aa.login(config, force=True, flow="browser", open_browser=True, timeout=30,
                              **_seams(open_url=opener))
    result = opener.results[0]
    assert result.denied and result.callback_params["error"] == "access_denied"
    assert "access_denied" in str(caught.value)
    assert result.callback_params["error_description"] in str(caught.value)
    assert result.listener_status == 303 and result.final_url == config.login_error_url
    assert anaconda_api.issued_keys == []
    with pytest.raises(aa.TokenNotFoundError):
        aa.get_api_key(config)


def test_authorization_response_from_another_issuer_is_rejected(oidc_provider, anaconda_api, test_ca, tmp_path):
    config = _real_config(tmp_path, test_ca, oidc_provider, anaconda_api)
    metadata = dict(oidc_provider.discovery, issuer="https://other-issuer.example")
    opener = UserAgentOpener(test_ca)
    with pytest.raises(aa.AuthenticationError, match="issuer"):
        _flow(anaconda_api, config, "browser", _seams(open_url=opener), timeout=30, metadata=metadata)
    result = opener.results[0]
    assert result.callback_params["iss"] == oidc_provider.issuer
    assert result.listener_status == 303 and result.final_url == config.login_error_url


@pytest.mark.parametrize("query, metadata, outcome", [
    ({"code": "c", "state": "S", "iss": "https://idp"}, {"issuer": "https://idp"}, "code"),
    ({"code": "c", "state": "S", "iss": "https://evil"}, {"issuer": "https://idp"}, "error"),
    ({"code": "c", "state": "S"}, {"issuer": "https://idp", "authorization_response_iss_parameter_supported": True}, "error"),
    ({"code": "c", "state": "S"}, {"issuer": "https://idp"}, "code"),
    ({"code": "c", "state": "T", "iss": "https://idp"}, {"issuer": "https://idp"}, "ignored"),
    ({"error": "access_denied", "state": "T"}, {"issuer": "https://idp"}, "ignored"),
    ({"code": "c"}, {"issuer": "https://idp"}, "ignored"),
    ({"error": "access_denied", "error_description": "no thanks", "state": "S"}, {}, "error"),
])
def test_the_listener_checks_state_and_issuer(https_server, test_ca, tmp_path, query, metadata, outcome):
    """A callback carrying ``query`` (state "S" is the login's own, "T" another) reaches the
    real loopback listener: its code is used, the login fails, or it is ignored (the listener
    keeps waiting, and a good callback after it ends the login)."""
    server = https_server()
    server.route("POST", "/token", TOKEN)
    config = _config(tmp_path, test_ca, domain=_domain(server))
    md = {**_fake_metadata(server, device=False), **metadata}

    def open_url(url: str) -> bool:
        params = _auth_params(url)
        state = {"S": params["state"], "T": "not-" + params["state"]}
        sent = {k: state.get(v, v) if k == "state" else v for k, v in query.items()}
        _http_get(params["redirect_uri"] + "?" + urlencode(sent))
        if outcome == "ignored":
            _http_get(params["redirect_uri"] + "?" + urlencode(
                {"code": "good", "state": params["state"], "iss": md["issuer"]}))
        return True

    if outcome == "error":
        with pytest.raises(aa.AuthenticationError):
            _flow(server, config, "browser", _seams(open_url=open_url), timeout=30, metadata=md)
        assert _posts(server, "/token") == []
    else:
        assert _flow(server, config, "browser", _seams(open_url=open_url), timeout=30,
                     metadata=md) == "fake-access-token"
        assert [r.form()["code"] for r in _posts(server, "/token")] == [
            "good" if outcome == "ignored" else "c"]


def test_listener_timeout_is_a_clear_error_and_frees_the_port(https_server, test_ca, tmp_path):
    server = https_server()
    config = _config(tmp_path, test_ca, domain=_domain(server))
    urls: list[str] = []
    clock = FakeClock(step=5)  # time passes on every read: no real waiting
    with pytest.raises(aa.AuthenticationError) as caught:
        _flow(server, config, "browser", _seams(clock, open_url=lambda u: urls.append(u) or True), timeout=1)
    assert "No login response arrived within 1 s" in str(caught.value)
    assert "login --device" in str(caught.value)
    assert _port_is_free(urlsplit(_auth_params(urls[0])["redirect_uri"]).port)
    assert _posts(server, "/token") == []


def test_login_takes_the_references_ssl_verify_and_use_device_flow(
        oidc_provider, anaconda_api, test_ca, tmp_path, useragent_browser_env, monkeypatch):
    """login(ssl_verify=...) replaces the site's TLS setting for this login, and
    use_device_flow=False runs the browser flow although the setting says device (issue 9)."""
    import certifi

    monkeypatch.setenv("BROWSER", str(useragent_browser_env))
    config = _real_config(tmp_path, test_ca, oidc_provider, anaconda_api, ssl_verify=certifi.where())
    assert config.use_device_flow is True
    with pytest.raises(aa.AuthenticationError, match="certificate"):  # certifi lacks the test CA
        aa.login(config, force=True, use_device_flow=False, timeout=30)
    key = aa.login(config, force=True, use_device_flow=False, ssl_verify=test_ca.ca_pem, timeout=30)
    walk = useragent_browser_env.result(10)
    assert walk["listener_status"] == 303 and not walk["device_done"]  # the browser flow ran
    assert key == anaconda_api.issued_keys[-1]["api_key"] == aa.get_api_key(config)
    assert config.ssl_verify == certifi.where()  # the caller's Config is unchanged


def test_login_timeout_argument_reaches_the_listener(oidc_provider, anaconda_api, test_ca, tmp_path, capsys):
    config = _real_config(tmp_path, test_ca, oidc_provider, anaconda_api)
    with pytest.raises(aa.AuthenticationError, match="within 0.2 s"):
        aa.login(config, flow="browser", open_browser=False, timeout=0.2)
    assert "Open this URL" in capsys.readouterr().err


def test_port_already_in_use_is_a_clear_error_suggesting_device(oidc_provider, anaconda_api, test_ca, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        config = _real_config(tmp_path, test_ca, oidc_provider, anaconda_api,
                              redirect_uri=f"http://127.0.0.1:{port}/auth/oidc")
        with pytest.raises(aa.AuthenticationError) as caught:
            aa.login(config, flow="browser", open_browser=False)
        assert f"127.0.0.1:{port}" in str(caught.value) and "login --device" in str(caught.value)
        env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca,
                        ANACONDA_AUTH_REDIRECT_URI=f"http://127.0.0.1:{port}/auth/oidc")
        result = run_cli(["login", "--browser", "--no-browser"], env)
    assert result.returncode == 1, result.stderr
    assert f"Cannot listen on 127.0.0.1:{port}" in result.stderr and "login --device" in result.stderr
    assert "Traceback" not in result.stderr


def test_interrupt_while_waiting_closes_the_listener_and_stores_nothing(https_server, test_ca, tmp_path):
    server = https_server()
    config = _config(tmp_path, test_ca, domain=_domain(server))
    urls: list[str] = []

    def ctrl_c() -> float:
        raise KeyboardInterrupt

    seams = _seams(open_url=lambda u: urls.append(u) or True, clock=ctrl_c, sleep=lambda s: None)
    with pytest.raises(KeyboardInterrupt):
        _flow(server, config, "browser", seams, timeout=30)
    port = urlsplit(_auth_params(urls[0])["redirect_uri"]).port
    assert _listening_addresses(port) == [] and _port_is_free(port)
    with pytest.raises(aa.TokenNotFoundError):
        aa.get_api_key(config)


def test_ctrl_c_while_the_cli_waits_exits_130_with_the_listener_closed_and_nothing_stored(
        oidc_provider, anaconda_api, test_ca, tmp_path):
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca)
    cli = CLIProcess(["login", "--browser", "--no-browser"], env)
    try:
        url = cli.expect_stderr(r"^    (https://\S+/auth\?\S+)$").group(1)
        port = urlsplit(_auth_params(url)["redirect_uri"]).port
        assert _listening_addresses(port)  # the listener is up
        cli.interrupt()
        assert cli.finish() == 130, cli.stderr
    finally:
        cli.close()
    assert "Interrupted." in cli.stderr and "Traceback" not in cli.stderr
    assert _port_is_free(port)
    assert not _keyring_file(env).exists()
    assert anaconda_api.issued_keys == []


def test_ctrl_c_while_the_cli_polls_the_device_grant_exits_130_and_stores_nothing(
        oidc_provider, anaconda_api, test_ca, tmp_path):
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca)
    cli = CLIProcess(["login", "--device", "--no-browser"], env)
    try:
        cli.expect_stderr(r"^    [A-Z]{4}-[A-Z]{4}$")
        cli.interrupt()
        assert cli.finish() == 130, cli.stderr
    finally:
        cli.close()
    assert "Interrupted." in cli.stderr and "Traceback" not in cli.stderr
    assert not _keyring_file(env).exists()


def test_idle_connection_to_the_listener_does_not_block_the_login(https_server, test_ca, tmp_path):
    """A client that connects and sends nothing (a browser preconnect, a port scanner) must not
    stop the listener from answering the real redirect, nor the login from finishing."""
    server = https_server()
    server.route("POST", "/token", TOKEN)
    config = _config(tmp_path, test_ca, domain=_domain(server))
    idle: list[socket.socket] = []
    answers: list[Any] = []

    def open_url(url: str) -> bool:
        params = _auth_params(url)
        port = urlsplit(params["redirect_uri"]).port
        idle.append(socket.create_connection(("127.0.0.1", port)))

        def redirect() -> None:
            try:
                answers.append(_http_get(params["redirect_uri"] + "?" + urlencode(
                    {"code": "c", "state": params["state"]}), timeout=3)[0])
            except OSError as e:
                answers.append(e)

        threading.Thread(target=redirect, daemon=True).start()
        return True

    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(_flow(server, config, "browser", _seams(open_url=open_url, clock=time.monotonic,
                                                                   sleep=time.sleep), timeout=4))
        except BaseException as e:  # noqa: BLE001 - reported below
            outcome.append(e)

    flow = threading.Thread(target=run, daemon=True)
    flow.start()
    try:
        flow.join(6)
        assert not flow.is_alive(), f"the login hangs (listener blocked by an idle connection); redirect got {answers}"
        assert answers == [303] and outcome == ["fake-access-token"], (answers, outcome)
    finally:
        for sock in idle:
            sock.close()  # unblocks a stuck listener so nothing is left behind
        flow.join(10)


# ==========================================================================================
# Paste-back (SSH without port forwarding)
# ==========================================================================================


@pytest.mark.parametrize("paste", ["url", "query"])
def test_paste_back_on_a_tty_completes_the_login(oidc_provider, anaconda_api, test_ca, tmp_path, paste):
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca)
    cli = PtyCLI(["login", "--browser", "--no-browser"], env)
    try:
        url = cli.expect(r"^    (https://\S+/auth\?\S+)$").group(1)
        cli.expect(r"paste here the address")
        walk = UserAgent(cafile=test_ca.ca_pem, follow_callback=False).run(url)
        assert walk.callback_url and walk.listener_status is None  # never delivered to the listener
        params = _auth_params(walk.callback_url)
        forged = walk.callback_url.replace(params["state"], "forged-state")
        cli.send(forged + "\n")
        cli.expect(r"That address was not accepted: its state does not match")
        cli.send((walk.callback_url if paste == "url" else urlsplit(walk.callback_url).query) + "\n")
        cli.expect(rf"✓ Logged in to {re.escape(anaconda_api.domain)}\.")
        assert cli.finish() == 0, cli.output
    finally:
        cli.close()
    key = run_cli(["api-key"], env)
    assert key.returncode == 0 and key.stdout.strip() == anaconda_api.issued_keys[-1]["api_key"]


def _paste_on_a_pty(server: Any, config: aa.Config, pasted: Any) -> tuple[str, str]:
    """The browser flow in-process with a pseudo-terminal as stdin: when the browser would
    open, ``pasted(state)``'s lines are typed. Returns the access token and what went to stderr."""
    master, slave = pty.openpty()
    stdin = os.fdopen(slave, "r", encoding="utf-8")
    try:
        def open_url(url: str) -> bool:
            lines = pasted(_auth_params(url)["state"])
            os.write(master, "".join(line + "\n" for line in lines).encode())
            return True

        stderr = io.StringIO()
        token = _flow(server, config, "browser", _seams(open_url=open_url, stdin=stdin, stderr=stderr), timeout=30)
    finally:
        stdin.close()
        os.close(master)
    return token, stderr.getvalue()


def test_pasted_query_string_in_process_on_a_pty(https_server, test_ca, tmp_path):
    server = https_server()
    server.route("POST", "/token", TOKEN)
    config = _config(tmp_path, test_ca, domain=_domain(server))
    token, stderr = _paste_on_a_pty(server, config, lambda state: [
        "?" + urlencode({"code": "pasted", "state": state, "iss": server.url})])
    assert token == "fake-access-token"
    assert _posts(server, "/token")[0].form()["code"] == "pasted"
    assert "paste here" in stderr


def test_pasted_address_without_scheme_works_and_bad_pastes_keep_waiting(https_server, test_ca, tmp_path):
    server = https_server()
    server.route("POST", "/token", TOKEN)
    config = _config(tmp_path, test_ca, domain=_domain(server))
    token, stderr = _paste_on_a_pty(server, config, lambda state: [
        "not an address at all",
        f"127.0.0.1:1234/auth/oidc?state={state}",  # no code: ignored
        "127.0.0.1:1234/auth/oidc?" + urlencode({"code": "pasted", "state": state, "iss": server.url})])
    assert token == "fake-access-token"
    assert stderr.count("was not accepted") == 2


# ==========================================================================================
# Browser launch
# ==========================================================================================


@pytest.mark.parametrize("environ, stdin_tty, reason", [
    ({"BROWSER": "mybrowser %s &", "SSH_CONNECTION": "10.0.0.1 5 10.0.0.2 22"}, False, None),
    ({"BROWSER": "mybrowser"}, False, None),
    ({"SSH_CONNECTION": "10.0.0.1 5 10.0.0.2 22", "DISPLAY": ":0"}, True, "SSH"),
    ({"SSH_TTY": "/dev/pts/3", "DISPLAY": ":0"}, True, "SSH"),
    ({}, True, "display"),
    ({"TERM": "xterm"}, True, "display"),
    ({"DISPLAY": ":0"}, False, "not an interactive terminal"),
    ({"WAYLAND_DISPLAY": "wayland-0"}, False, "not an interactive terminal"),
])
def test_browser_unusable_reason_from_the_environment(device_server, test_ca, tmp_path, environ, stdin_tty,
                                                     reason):
    got = _why_no_browser(device_server, test_ca, tmp_path, environ, _Stdin(stdin_tty))
    if reason is None:
        assert got == "it could not be started"  # the opener failed although one was usable
    else:
        assert reason.lower() in got.lower(), got


@pytest.mark.parametrize("name", ["lynx", "w3m", "www-browser"])
def test_console_browser_is_never_used(monkeypatch, device_server, test_ca, tmp_path, name):
    import webbrowser

    monkeypatch.setattr(webbrowser, "get", lambda using=None: webbrowser.GenericBrowser(name))
    assert name in _why_no_browser(device_server, test_ca, tmp_path, {"DISPLAY": ":0", "TERM": "xterm"},
                                  _Stdin(True))


def _why_no_browser(device_server: Any, test_ca: Any, tmp_path: Path, environ: dict[str, str],
                    stdin: io.StringIO) -> str:
    """A device login given ``environ`` and ``stdin`` (not this process's), whose opener opens
    nothing: the reason it gives in "Not opening a browser (...)."."""
    device_server.route("POST", "/token", TOKEN)
    stderr = io.StringIO()
    _flow(device_server, _config(tmp_path, test_ca, domain=_domain(device_server)), "device",
          _seams(open_url=lambda url: False, stderr=stderr, stdin=stdin, environ=environ))
    [reason] = re.findall(r"^Not opening a browser \((.*)\)\.$", stderr.getvalue(), re.MULTILINE)
    return str(reason)


class _Stdin(io.StringIO):
    """A terminal input that says whether it is a TTY, whatever this process's stdin is."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_login_decides_on_a_browser_from_the_stdin_and_environment_it_is_given(
        device_server, test_ca, tmp_path, tty):
    """Issue 8 §5: login(stdin=..., environ=...) decides whether a browser can open from what it
    is given, not from this process (whose stdin under pytest is no TTY): on WSL a TTY means
    the launcher is run, anything else means the URL is shown with the reason."""
    bindir, log = _fake_browsers(tmp_path, ["wslview"])
    grant = _device_grant(device_server)
    device_server.route("POST", "/token", TOKEN)
    stderr = io.StringIO()
    seams = _seams(stderr=stderr, stdin=_Stdin(tty),
                   environ={"WSL_DISTRO_NAME": "Ubuntu", "PATH": str(bindir)})
    seams["open_url"] = None  # the module's own opener, as a person's login uses
    _flow(device_server, _config(tmp_path, test_ca, domain=_domain(device_server)), "device", seams)
    if tty:
        assert log.read_text().split() == ["wslview", grant["verification_uri_complete"]]
        assert "Not opening a browser" not in stderr.getvalue()
    else:
        assert not log.exists(), log.read_text()
        assert "Not opening a browser (this is not an interactive terminal)." in stderr.getvalue()


def _fake_browsers(tmp_path: Path, names: list[str]) -> tuple[Path, Path]:
    """A directory of fake browsers that log their arguments and exit 0: (bin dir, log file)."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir(exist_ok=True)
    log = tmp_path / "launched.log"
    for name in names:
        script = bindir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit 0\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bindir, log


@pytest.mark.parametrize("case", ["ssh session", "no display", "console browser only", "not a tty", "graphical"])
def test_cli_prints_the_url_and_launches_nothing_without_a_usable_browser(
        oidc_provider, anaconda_api, test_ca, tmp_path, case):
    names = ["lynx"] if case == "console browser only" else ["firefox", "lynx"]
    bindir, log = _fake_browsers(tmp_path, names)
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, PATH=str(bindir), TERM="xterm")
    if case != "no display":
        env["DISPLAY"] = ":0"
    if case == "ssh session":
        env["SSH_CONNECTION"] = "10.0.0.1 50000 10.0.0.2 22"
    reasons = {"ssh session": "this is an SSH session", "no display": "there is no graphical display",
               "console browser only": "the only browser is the console browser lynx",
               "not a tty": "this is not an interactive terminal"}
    if case == "not a tty":
        cli: Any = CLIProcess(["login", "--browser"], env)
        url = cli.expect_stderr(r"^    (https://\S+/auth\?\S+)$").group(1)
        text = cli.stderr
    else:
        cli = PtyCLI(["login", "--browser"], env)
        url = cli.expect(r"^    (https://\S+/auth\?\S+)$").group(1)
        cli.expect("paste here")  # the listener is waiting: interrupt it there
        text = cli.output
    try:
        # A launch would have happened (synchronously: fake browsers exit at once) before the URL.
        if case == "graphical":
            assert "A browser was opened" in text
            assert log.read_text().split() == ["firefox", url]
        else:
            assert f"Not opening a browser ({reasons[case]})." in text
            assert "Open this URL in a browser" in text
            assert not log.exists(), log.read_text()
        os.kill(cli.proc.pid, signal.SIGINT)
        assert cli.finish() == 130
    finally:
        cli.close()


def test_ctrl_c_during_a_browser_login_can_only_reach_the_main_thread(oidc_provider, anaconda_api, test_ca,
                                                                     tmp_path):
    """The kernel hands a process-wide SIGINT to any thread that does not block it, and Python
    acts on it only in the main thread: when the listener's thread took it, the main thread
    slept on in select() and Ctrl-C was ignored (one cause of a rare hang of the SIGINT tests
    above; the other, a signal landing just before select(), is the next test's). Every thread
    but the main one must block SIGINT while the login waits."""
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, PATH="/nonexistent")
    cli = PtyCLI(["login", "--browser", "--no-browser"], env)
    try:
        cli.expect("paste here")
        pid = cli.proc.pid
        blocked = {}
        for tid in os.listdir(f"/proc/{pid}/task"):
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
            name = re.search(r"^Name:\s*(.*)$", status, re.MULTILINE).group(1)
            mask = int(re.search(r"^SigBlk:\s*([0-9a-f]+)$", status, re.MULTILINE).group(1), 16)
            blocked[(int(tid), name)] = bool(mask & (1 << (signal.SIGINT - 1)))
        helpers = {key: value for key, value in blocked.items() if key[0] != pid}
        assert helpers, blocked  # the listener's thread at least
        assert all(helpers.values()), blocked
        assert blocked[(pid, next(name for tid, name in blocked if tid == pid))] is False
        os.kill(pid, signal.SIGINT)
        assert cli.finish() == 130
    finally:
        cli.close()


# The CLI, with one thread of the caller's own that takes a SIGINT sent to it alone once the
# test writes to the FIFO: Python then knows of the signal, but the main thread, asleep in
# select(), is not interrupted by it. That is the state a Ctrl-C landing just before select()
# starts leaves too (the rare hang CI saw even with every helper thread blocking SIGINT).
_SIGNAL_TAKEN_BY_ANOTHER_THREAD = """
import signal, sys, threading
import anaconda_auth

def take_sigint():
    with open(sys.argv[1]) as fifo:
        fifo.read()
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)

threading.Thread(target=take_sigint, daemon=True).start()
sys.exit(anaconda_auth.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("stdin", ["terminal", "not a terminal"])
def test_ctrl_c_ends_the_login_wait_even_when_python_saw_it_outside_select(
        oidc_provider, anaconda_api, test_ca, tmp_path, stdin):
    """The login waits in select() on a pipe that every signal writes a byte to (Python's
    wakeup fd), so a Ctrl-C that Python noted while the main thread was not in a bytecode
    (a thread of the caller's took it, or it landed just before select() began) still ends
    the wait at once, with exit 130, instead of at the login timeout."""
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, PATH="/nonexistent")
    fifo = tmp_path / "fire"
    os.mkfifo(fifo)
    command = (PYTHON, "-c", _SIGNAL_TAKEN_BY_ANOTHER_THREAD, str(fifo))
    args = ["login", "--browser", "--no-browser"]
    cli: Any = PtyCLI(args, env, command) if stdin == "terminal" else CLIProcess(args, env, command)
    try:
        if stdin == "terminal":
            cli.expect("paste here")
        else:
            cli.expect_stderr(r"^    https://\S+/auth\?\S+$")
        fifo.write_text("now")
        assert cli.finish(timeout=30) == 130
        text = cli.output if stdin == "terminal" else cli.stderr
        assert "Interrupted." in text, text
    finally:
        cli.close()


# A program with a wakeup fd of its own (asyncio sets one, a socket) runs the CLI in process.
_PROGRAM_WITH_ITS_OWN_WAKEUP_FD = """
import signal, socket, sys
import anaconda_auth

reader, writer = socket.socketpair()
reader.setblocking(False)
writer.setblocking(False)
signal.set_wakeup_fd(writer.fileno())
signal.signal(signal.SIGUSR1, lambda number, frame: None)
code = anaconda_auth.main(sys.argv[1:])
restored = signal.set_wakeup_fd(-1) == writer.fileno()
print("heard", sorted(reader.recv(64)), "restored", restored, file=sys.stderr)
sys.exit(code)
"""


def test_the_login_wait_passes_signals_on_to_the_wakeup_fd_it_borrowed(
        oidc_provider, anaconda_api, test_ca, tmp_path):
    """While the login waits, the signal wakeup fd is its own pipe; the signals that arrive
    then still reach the program's own wakeup fd (an asyncio loop learns of them that way),
    and that fd is put back when the login ends."""
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, PATH="/nonexistent")
    cli = PtyCLI(["login", "--browser", "--no-browser"], env,
                 (PYTHON, "-c", _PROGRAM_WITH_ITS_OWN_WAKEUP_FD))
    try:
        cli.expect("paste here")
        os.kill(cli.proc.pid, signal.SIGUSR1)
        os.kill(cli.proc.pid, signal.SIGINT)
        assert cli.finish(timeout=30) == 130
    finally:
        cli.close()
    heard = re.search(r"^heard \[([0-9, ]*)\] restored (\w+)$", cli.output, re.MULTILINE)
    assert heard, cli.output
    assert {int(n) for n in heard.group(1).split(",")} == {signal.SIGUSR1, signal.SIGINT}
    assert heard.group(2) == "True"


def test_cli_device_login_says_why_no_browser_was_opened(oidc_provider, anaconda_api, test_ca, tmp_path):
    """CONTRACT §4: without a usable browser the module says so (here: an SSH session)."""
    bindir, log = _fake_browsers(tmp_path, ["firefox"])
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, PATH=str(bindir), DISPLAY=":0",
                    SSH_CONNECTION="10.0.0.1 50000 10.0.0.2 22")
    cli = PtyCLI(["login", "--device"], env)
    try:
        cli.expect(r"^    [A-Z]{4}-[A-Z]{4}$")
        text = cli.output
        os.kill(cli.proc.pid, signal.SIGINT)
        assert cli.finish() == 130
    finally:
        cli.close()
    assert not log.exists()
    assert f"    {oidc_provider.issuer}/device" in text.splitlines()
    assert "Not opening a browser (this is an SSH session)." in text, text


@pytest.mark.parametrize("flow", ["--browser", "--device"])
def test_cli_no_browser_opens_nothing_and_browser_is_honoured_otherwise(
        oidc_provider, anaconda_api, test_ca, tmp_path, flow):
    bindir, log = _fake_browsers(tmp_path, ["recorder"])
    browser = f"{bindir / 'recorder'} %s"  # no "&": webbrowser waits, so the log is written first
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, BROWSER=browser)
    shown = r"^    (https://\S+/auth\?\S+)$" if flow == "--browser" else r"^    [A-Z]{4}-[A-Z]{4}$"
    for no_browser in (True, False):
        cli = CLIProcess(["login", flow] + (["--no-browser"] if no_browser else []), env)
        try:
            cli.expect_stderr(shown)
            if no_browser:
                assert not log.exists(), log.read_text()
                assert "Not opening" not in cli.stderr  # the user chose it; no excuse to print
            else:
                launched = log.read_text().split()
                assert launched[0] == "recorder" and launched[1].startswith(oidc_provider.issuer)
                if flow == "--device":
                    assert launched[1].startswith(oidc_provider.issuer + "/device?user_code=")
            cli.interrupt()
            assert cli.finish() == 130
        finally:
            cli.close()


# ==========================================================================================
# Access token -> API key
# ==========================================================================================


def test_api_key_exchange_sends_the_reference_body_and_the_access_token_first_201_wins(
        oidc_provider, anaconda_api, test_ca, tmp_path):
    config = _real_config(tmp_path, test_ca, oidc_provider, anaconda_api)
    key = aa.login(config, force=True, flow="device", open_browser=True, timeout=None,
                                **_seams(open_url=UserAgentOpener(test_ca)))
    key_posts = [r for r in anaconda_api.requests if r.url_path in (AUTH_PATH, IAM_PATH)]
    assert [r.url_path for r in key_posts] == [AUTH_PATH]  # the auth service answered 201: done
    assert anaconda_api.key_requests == [{"path": AUTH_PATH, "body": {
        "scopes": API_KEY_SCOPES, "tags": [f"anaconda-auth-module/v{aa.__version__}"]}}]
    request = key_posts[0]
    assert request.headers["Content-Type"] == "application/json"
    bearer = request.headers["Authorization"]
    assert bearer.startswith("Bearer ") and bearer[7:] != key
    assert key == anaconda_api.issued_keys[-1]["api_key"] == aa.get_api_key(config)


def test_api_key_exchange_falls_back_to_iam_when_the_auth_service_fails(oidc_provider, anaconda_api, test_ca, tmp_path):
    anaconda_api.key_endpoints = {IAM_PATH}
    config = _real_config(tmp_path, test_ca, oidc_provider, anaconda_api)
    key = aa.login(config, force=True, flow="device", open_browser=True, timeout=None,
                                **_seams(open_url=UserAgentOpener(test_ca)))
    key_posts = [r for r in anaconda_api.requests if r.url_path in (AUTH_PATH, IAM_PATH)]
    assert [r.url_path for r in key_posts] == [AUTH_PATH, IAM_PATH]
    assert key_posts[0].headers["Authorization"] == key_posts[1].headers["Authorization"]
    assert key_posts[0].json() == key_posts[1].json()
    assert [k["path"] for k in anaconda_api.issued_keys] == [IAM_PATH]
    assert key == anaconda_api.issued_keys[-1]["api_key"] == aa.get_api_key(config)


def test_api_key_exchange_fails_naming_both_endpoints_and_stores_nothing(oidc_provider, anaconda_api, test_ca, tmp_path):
    anaconda_api.key_endpoints = set()
    config = _real_config(tmp_path, test_ca, oidc_provider, anaconda_api)
    with pytest.raises(aa.AuthenticationError) as caught:
        aa.login(config, force=True, flow="device", open_browser=True, timeout=None,
                              **_seams(open_url=UserAgentOpener(test_ca)))
    message = str(caught.value)
    assert f"https://{anaconda_api.domain}{AUTH_PATH}" in message
    assert f"https://{anaconda_api.domain}{IAM_PATH}" in message
    assert "404" in message
    with pytest.raises(aa.TokenNotFoundError):
        aa.get_api_key(config)


def test_the_fake_api_rejects_a_bad_access_token_so_a_broken_exchange_fails(oidc_provider, anaconda_api, test_ca, tmp_path):
    config = _real_config(tmp_path, test_ca, oidc_provider, anaconda_api)
    with pytest.raises(aa.AuthenticationError) as caught:
        aa._exchange_for_api_key(config, "not-an-access-token")
    assert str(caught.value).count("HTTP 401") == 2  # not "401": a port can hold those digits
    assert anaconda_api.userinfo_calls == 2  # each endpoint asked the provider, which refused
    assert anaconda_api.issued_keys == []


# ==========================================================================================
# Public API: login()
# ==========================================================================================


def test_login_signature():
    params = inspect.signature(aa.login).parameters
    for name in ("force", "flow", "open_browser", "timeout"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["force"].default is False and params["flow"].default is None
    assert params["open_browser"].default is True


def test_login_is_a_no_op_with_an_unexpired_stored_key_unless_forced(https_server, test_ca, tmp_path):
    server = https_server()
    server.route("GET", "/.well-known/openid-configuration", (500, {}, "down"))
    config = _config(tmp_path, test_ca, domain=_domain(server))
    key = make_jwt({"sub": "alice", "exp": int(time.time()) + LONG_LIVED})
    assert aa.login(config, api_key=key, verify=False) == key
    assert aa.login(config) == key
    assert aa.login(config, flow="browser") == key
    assert server.requests == []  # nothing was asked of the network
    with pytest.raises(aa.AuthenticationError, match="discovery"):
        aa.login(config, force=True)
    assert len(server.requests) == 1
    assert aa.get_api_key(config) == key  # a failed login keeps the old key


def test_login_runs_again_when_the_stored_key_expired(https_server, test_ca, tmp_path):
    server = https_server()
    server.route("GET", "/.well-known/openid-configuration", (500, {}, "down"))
    config = _config(tmp_path, test_ca, domain=_domain(server))
    store_entry(config.keyring_path, config.domain, make_jwt({"sub": "alice", "exp": int(time.time()) - 60}))
    with pytest.raises(aa.AuthenticationError, match="discovery"):
        aa.login(config)
    assert [r.url_path for r in server.requests] == ["/.well-known/openid-configuration"]


# ==========================================================================================
# CLI: full logins through the real provider
# ==========================================================================================


def _check_logged_in(env: dict[str, str], anaconda_api: Any) -> None:
    """``api-key`` prints the key the stand-in API issued and ``whoami`` shows its account."""
    key = run_cli(["api-key"], env)
    assert key.returncode == 0, key.stderr
    assert key.stdout.strip() == anaconda_api.issued_keys[-1]["api_key"]
    who = run_cli(["whoami", "--short"], env)
    assert who.returncode == 0, who.stderr
    assert who.stdout.strip() == f"Logged in to {anaconda_api.domain} as alice (Alice Tester) <alice@example.test>"
    who = run_cli(["whoami"], env)  # the reference's output: the account as JSON
    assert who.returncode == 0, who.stderr
    account = json.loads(who.stdout)
    assert (account["domain"], account["user"]["username"], account["user"]["email"]) == (
        anaconda_api.domain, "alice", "alice@example.test")


def test_cli_device_login_with_the_stdlib_user_agent(oidc_provider, anaconda_api, test_ca, tmp_path,
                                                     useragent_browser_env):
    # An explicit BROWSER is honoured even over SSH, without a display and without a TTY.
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, SSH_CONNECTION="10.0.0.1 5 10.0.0.2 22",
                    **useragent_browser_env.env)
    result = run_cli(["login", "--device"], env)
    assert result.returncode == 0, result.stderr + useragent_browser_env.log_text()
    lines = result.stderr.splitlines()
    assert f"    {oidc_provider.issuer}/device" in lines
    assert any(re.fullmatch(r"    [A-Z]{4}-[A-Z]{4}", line) for line in lines), result.stderr
    assert f"✓ Logged in to {anaconda_api.domain}." in lines
    assert result.stdout == ""
    assert useragent_browser_env.result(10)["device_done"]
    assert anaconda_api.key_requests[-1]["body"]["tags"] == [f"anaconda-auth-module/v{aa.__version__}"]
    _check_logged_in(env, anaconda_api)


def test_cli_browser_login_with_the_stdlib_user_agent(oidc_provider, anaconda_api, test_ca, tmp_path,
                                                      useragent_browser_env):
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, **useragent_browser_env.env)
    result = run_cli(["login", "--browser"], env)
    assert result.returncode == 0, result.stderr + useragent_browser_env.log_text()
    assert f"✓ Logged in to {anaconda_api.domain}." in result.stderr.splitlines()
    walk = useragent_browser_env.result(10)
    assert walk["listener_status"] == 303 and walk["final_url"] == anaconda_api.login_success_url
    assert walk["callback_params"]["iss"] == oidc_provider.issuer
    _check_logged_in(env, anaconda_api)


def test_cli_login_ssl_verify_options_override_the_configuration(oidc_provider, anaconda_api, test_ca, tmp_path,
                                                                 useragent_browser_env):
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, **useragent_browser_env.env)
    del env["ANACONDA_AUTH_SSL_VERIFY"]  # the test CA is not trusted now
    refused = run_cli(["login", "--browser", "--no-browser"], env)
    assert refused.returncode == 1 and "certificate" in refused.stderr, refused.stderr
    env["ANACONDA_AUTH_SSL_VERIFY"] = "false"
    still_refused = run_cli(["login", "--browser", "--no-browser", "--ssl-verify"], env)
    assert still_refused.returncode == 1 and "certificate" in still_refused.stderr, still_refused.stderr
    env["ANACONDA_AUTH_SSL_VERIFY"] = test_ca.server_cert  # a wrong bundle: only --no-ssl-verify helps
    result = run_cli(["login", "--browser", "--no-ssl-verify"], env)
    assert result.returncode == 0, result.stderr + useragent_browser_env.log_text()
    assert f"✓ Logged in to {anaconda_api.domain}." in result.stderr.splitlines()


def test_cli_browser_login_denied_in_the_browser_exits_1_and_the_browser_sees_the_error_page(
        oidc_provider, anaconda_api, test_ca, tmp_path, useragent_browser_env):
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, USERAGENT_ACTION="deny",
                    **useragent_browser_env.env)
    result = run_cli(["login", "--browser"], env)
    assert result.returncode == 1, result.stderr
    walk = useragent_browser_env.result(10)
    assert walk["denied"] and walk["callback_params"]["error"] == "access_denied"
    assert "access_denied" in result.stderr and walk["callback_params"]["error_description"] in result.stderr
    assert walk["listener_status"] == 303 and walk["final_url"] == anaconda_api.login_error_url, walk
    assert not _keyring_file(env).exists()


def test_cli_browser_login_through_real_chromium(oidc_provider, anaconda_api, test_ca, tmp_path, chromium_browser_env):
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, **chromium_browser_env.env)
    result = run_cli(["login", "--browser"], env, timeout=120)
    assert result.returncode == 0, result.stderr + chromium_browser_env.log_text()
    assert f"✓ Logged in to {anaconda_api.domain}." in result.stderr.splitlines()
    walk = chromium_browser_env.result(60)
    assert walk["callback_params"].get("code") and walk["listener_status"] == 303
    _check_logged_in(env, anaconda_api)


def test_cli_device_login_through_real_chromium(oidc_provider, anaconda_api, test_ca, tmp_path, chromium_browser_env):
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, **chromium_browser_env.env)
    result = run_cli(["login", "--device"], env, timeout=120)
    assert result.returncode == 0, result.stderr + chromium_browser_env.log_text()
    assert f"✓ Logged in to {anaconda_api.domain}." in result.stderr.splitlines()
    assert chromium_browser_env.result(60)["device_done"]
    _check_logged_in(env, anaconda_api)


# ==========================================================================================
# CLI: already logged in, and the interactive-login offer
# ==========================================================================================


def _store_key(env: dict[str, str], key: str) -> None:
    result = run_cli(["login", "--with-token", "--no-verify"], env, input=key + "\n")
    assert result.returncode == 0, result.stderr


def test_cli_login_when_already_logged_in_says_so_with_the_expiry(oidc_provider, anaconda_api, test_ca, tmp_path):
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca)
    key = anaconda_api.issue_key("alice")
    _store_key(env, key)
    result = run_cli(["login"], env)
    assert result.returncode == 0, result.stderr
    until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(aa.key_expiry(key)))
    assert f"Already logged in to {anaconda_api.domain} until {until}" in result.stderr
    assert "--force" in result.stderr
    assert "[y/n]" not in result.stderr and result.stdout == ""
    assert anaconda_api.requests == []  # nothing asked of the network


@pytest.mark.parametrize("answer", ["n", "y"])
def test_cli_login_on_a_tty_asks_whether_to_force_a_new_login(oidc_provider, anaconda_api, test_ca, tmp_path,
                                                              useragent_browser_env, answer):
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, ANACONDA_AUTH_USE_DEVICE_FLOW="false",
                    **useragent_browser_env.env)
    old = anaconda_api.issue_key("alice", expires_in=30 * 86400)  # unlike the key a login issues
    _store_key(env, old)
    cli = PtyCLI(["login"], env)
    try:
        cli.expect(rf"You are already logged into Anaconda \({re.escape(anaconda_api.domain)}\).*"
                   r"Would you like to force a new login\? \[y/n\] \(n\): ")
        cli.send(answer + "\n")
        if answer == "n":
            cli.expect(rf"Already logged in to {re.escape(anaconda_api.domain)}")
        else:
            cli.expect(rf"✓ Logged in to {re.escape(anaconda_api.domain)}\.")
        assert cli.finish() == 0, cli.output
    finally:
        cli.close()
    printed = run_cli(["api-key"], env).stdout.strip()
    assert printed == (old if answer == "n" else anaconda_api.issued_keys[-1]["api_key"])
    assert (printed != old) == (answer == "y")


@pytest.mark.parametrize("command", ["api-key", "whoami"])
def test_cli_without_a_key_on_a_tty_offers_interactive_login_then_retries(
        oidc_provider, anaconda_api, test_ca, tmp_path, useragent_browser_env, command):
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, ANACONDA_AUTH_USE_DEVICE_FLOW="false",
                    **useragent_browser_env.env)
    cli = PtyCLI([command], env)
    try:
        cli.expect(r"TokenNotFoundError: ")
        cli.expect(r"Continue with interactive login\? \[y/n\]: ")
        cli.send("y\n")
        if command == "api-key":
            cli.expect(r"^eyJ[\w-]+\.[\w-]+\.[\w-]+$")
        else:  # the account as JSON, keys sorted: domain comes before user
            cli.expect(rf'^  "domain": "{re.escape(anaconda_api.domain)}",$')
            cli.expect(r'^    "username": "alice"$')
        assert cli.finish() == 0, cli.output
    finally:
        cli.close()
    key = anaconda_api.issued_keys[-1]["api_key"]
    if command == "api-key":
        assert re.search(rf"^{re.escape(key)}$", cli.output, re.MULTILINE), cli.output
    else:
        assert f'"domain": "{anaconda_api.domain}"' in cli.output
    assert run_cli(["api-key"], env).stdout.strip() == key


def test_cli_whoami_with_a_rejected_key_on_a_tty_offers_login_and_retries(
        oidc_provider, anaconda_api, test_ca, tmp_path, useragent_browser_env):
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, ANACONDA_AUTH_USE_DEVICE_FLOW="false",
                    **useragent_browser_env.env)
    revoked = anaconda_api.issue_key("alice", expires_in=30 * 86400)  # unlike the key a login issues
    anaconda_api.revoke(revoked)
    _store_key(env, revoked)
    cli = PtyCLI(["whoami", "--short"], env)
    try:
        cli.expect(r"InvalidTokenError: ")
        cli.expect(r"Continue with interactive login\? \[y/n\]: ")
        cli.send("y\n")
        cli.expect(rf"Logged in to {re.escape(anaconda_api.domain)} as alice")
        assert cli.finish() == 0, cli.output
    finally:
        cli.close()
    assert run_cli(["api-key"], env).stdout.strip() == anaconda_api.issued_keys[-1]["api_key"] != revoked


def test_cli_declining_the_interactive_login_prints_the_hint_and_exits_3(oidc_provider, anaconda_api, test_ca, tmp_path):
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca)
    cli = PtyCLI(["api-key"], env)
    try:
        cli.expect(r"Continue with interactive login\? \[y/n\]: ")
        cli.send("n\n")
        cli.expect(r"To configure your credentials you can run")
        assert cli.finish() == 3, cli.output
    finally:
        cli.close()
    assert "ANACONDA_AUTH_API_KEY" in cli.output
    assert anaconda_api.issued_keys == []


@pytest.mark.parametrize("command", ["api-key", "whoami"])
def test_cli_without_a_key_and_no_tty_exits_3_without_a_prompt(oidc_provider, anaconda_api, test_ca, tmp_path, command):
    env = _site_env(tmp_path, oidc_provider, anaconda_api, test_ca)
    result = run_cli([command], env)
    assert result.returncode == 3, result.stderr
    assert "TokenNotFoundError" in result.stderr and "[y/n]" not in result.stderr
    assert result.stdout == ""
