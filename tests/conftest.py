"""Shared pytest fixtures that start REAL parts on loopback, for anaconda_auth's tests.

Nothing here is a mock: a trustme CA, a stdlib HTTPS server, Debian's tinyproxy, a private D-Bus
bus with gnome-keyring (a real Secret Service), the real OpenID Provider ``oidc-provider`` (node),
a stand-in for anaconda.com's API, a stdlib browserless user agent and headless Chromium.

| fixture                 | scope    | gives                                                        |
|-------------------------|----------|--------------------------------------------------------------|
| ``test_ca``             | session  | :class:`tests.tlsca.TestCA` (PEM paths, capath, mTLS client)  |
| ``https_server``        | function | factory -> :class:`tests.httpserver.HTTPTestServer`           |
| ``tinyproxy``           | function | factory -> :class:`tests.tinyproxy.TinyProxy`                 |
| ``secret_service``      | function | env dict; env set and keyring pinned to the Secret Service    |
| ``oidc_provider``       | session  | :class:`tests.oidc.OIDCProvider` (https, real node provider)  |
| ``anaconda_api``        | function | :class:`tests.anaconda_api.AnacondaAPI` (api-keys, account)   |
| ``useragent_browser_env`` | function | BROWSER string running tests/useragent.py (stdlib)         |
| ``chromium_browser_env``| function | BROWSER string running tests/browser_login.py (Chromium)      |
| ``reference_python``    | session  | the reference venv's interpreter (anaconda-auth 0.15.3)       |
| ``fresh_caches``        | autouse  | the module's caches emptied before and after each test        |

The helpers every suite shares (``Sandbox``, ``make_jwt``, ``store_entry``, ``run_captured``,
``reset_caches``) live in the top-level ``test_anaconda_auth.py``, which must run alone beside a
vendored copy; the suites here import them from it.

Rules: a missing tool (node and ``npm ci``, tinyproxy, dbus-daemon, gnome-keyring-daemon,
chromium, the browser venv) is a test FAILURE that says how to install it; only outside CI,
``ANACONDA_AUTH_TEST_ALLOW_SKIP=1`` turns it into a skip. Only loopback addresses are used.
Every process a fixture starts is its own child, stopped at teardown by its handle.
``tests/test-all`` installs everything; see ``test_realparts.py`` for the fixtures' self-tests.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `tests` must import even under --import-mode=importlib
    sys.path.insert(0, str(ROOT))

from test_anaconda_auth import reset_caches
from tests import tools
from tests.httpserver import HTTPTestServer

TIMINGS: dict[str, list[float]] = {}
REFERENCE_PYTHON_VAR = "ANACONDA_AUTH_TEST_REFERENCE_PYTHON"
REFERENCE_VERSION = "0.15.3"


def _timed(name: str, seconds: float) -> None:
    TIMINGS.setdefault(name, []).append(seconds)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line per real part: how long it took to start (``-rA`` not needed)."""
    if not TIMINGS:
        return
    terminalreporter.write_sep("-", "real-part start-up times")
    for name, values in sorted(TIMINGS.items()):
        terminalreporter.write_line(
            f"{name:<18} n={len(values):<3} min={min(values) * 1000:7.1f} ms  "
            f"max={max(values) * 1000:7.1f} ms  total={sum(values):6.2f} s"
        )


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    """Each test starts, and leaves, with the module's caches empty (pools closed, no discovery,
    no proxies found in the environment, no warnings given): a later test's server may reuse a
    port, and a warning given once per process must be given again."""
    reset_caches()
    yield
    reset_caches()


@pytest.fixture(scope="session")
def reference_python() -> str:
    """The reference venv's interpreter, checked to hold anaconda-auth 0.15.3; missing is a
    failure (CI must never skip the comparison with the reference)."""
    path = os.environ.get(REFERENCE_PYTHON_VAR)
    if not path:
        pytest.fail(
            f"{REFERENCE_PYTHON_VAR} is not set. These tests compare against "
            f"anaconda-auth=={REFERENCE_VERSION} in its own venv: run tests/test-all (which "
            f"builds .venvs/reference and sets the variable), or export "
            f"{REFERENCE_PYTHON_VAR}=$PWD/.venvs/reference/bin/python after running it once.",
            pytrace=False,
        )
    if not os.access(path, os.X_OK):
        pytest.fail(f"{REFERENCE_PYTHON_VAR}={path} is not an executable; run tests/test-all")
    probe = subprocess.run(
        [path, "-I", "-c", "import importlib.metadata as m; print(m.version('anaconda-auth'))"],
        capture_output=True, text=True, timeout=60, cwd="/", check=False,
    )
    version = probe.stdout.strip()
    if probe.returncode != 0 or version != REFERENCE_VERSION:
        pytest.fail(
            f"{path} should have anaconda-auth=={REFERENCE_VERSION} installed, found "
            f"{version or 'nothing'}: {probe.stderr.strip()[-500:]}; run tests/test-all",
            pytrace=False,
        )
    return path


# ------------------------------------------------------------------------------------------
# TLS
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory):
    """A throwaway CA (trustme) and files made from it; all paths are ``str``.

    - ``ca_pem``: CA certificate PEM (for ``ssl_verify``, ``cafile``, ``SSL_CERT_FILE``...).
    - ``ca_dir``: directory with only ``<subject_hash>.0`` (c_rehash style), usable as capath.
    - ``server_cert`` / ``server_key``: leaf for 127.0.0.1, localhost and ::1.
    - ``client_cert_pem`` / ``client_key_pem``: client leaf (same CA) for mTLS;
      ``client_combined_pem``: both in one file.
    - ``ca`` (the ``trustme.CA``), ``issue(*identities) -> (cert, key)``,
      ``server_context(require_client_cert=False)``, ``client_context(with_client_cert=False)``.
    """
    from tests.tlsca import TestCA

    started = time.monotonic()
    ca = TestCA(tmp_path_factory.mktemp("test-ca"))
    _timed("test_ca", time.monotonic() - started)
    return ca


# ------------------------------------------------------------------------------------------
# HTTPS server
# ------------------------------------------------------------------------------------------


@pytest.fixture
def https_server(test_ca) -> Iterator[Callable[..., HTTPTestServer]]:
    """Factory: ``https_server(tls=True, require_client_cert=False, host="127.0.0.1")``.

    Starts a loopback ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive, TCP_NODELAY) over TLS with the
    test CA's leaf (or plain http with ``tls=False``; ``host`` may be ``"localhost"`` or ``"::1"``).
    ``require_client_cert=True``: CERT_REQUIRED against the test CA (see ``tls_errors`` for
    refused handshakes). Returns a :class:`tests.httpserver.HTTPTestServer`:

    - ``url`` (``https://127.0.0.1:PORT``), ``port``, ``host``, ``scheme``;
    - ``requests``: recorded requests with ``method``, ``path``, ``url_path``, ``query``,
      ``headers`` (case-insensitive dict), ``body`` (bytes), ``json()``, ``form()``,
      ``connection_id`` (equal ids = same kept-alive connection), ``client_cert``, ``tls_version``;
    - ``route(method, path, handler)``: ``handler(request) -> (status, headers, body)`` or a fixed
      response; body bytes/str/dict (dict = JSON); method ``"*"`` = any;
    - ``fail_then(path, [resp1, resp2, ...])``: one per request, then back to the route;
    - actions usable anywhere a response is: ``server.RESET`` (connection reset),
      ``server.CLOSE`` (closed without answer), ``server.delay(seconds, then)`` (sleeps, then
      answers), ``server.Truncate(response, keep)``; ``redirect(path, location, status=302)``;
    - ``wait_for_requests(n, timeout)``, ``clear()``, ``connections``, ``errors``, ``tls_errors``.

    All servers are stopped at teardown.
    """
    servers: list[HTTPTestServer] = []

    def start(tls: bool = True, require_client_cert: bool = False, host: str = "127.0.0.1") -> HTTPTestServer:
        started = time.monotonic()
        ctx = test_ca.server_context(require_client_cert=require_client_cert) if tls else None
        server = HTTPTestServer(ctx, host=host)
        servers.append(server)
        _timed("https_server", time.monotonic() - started)
        return server

    yield start
    for server in servers:
        server.stop()


# ------------------------------------------------------------------------------------------
# Proxy
# ------------------------------------------------------------------------------------------


@pytest.fixture
def tinyproxy(tmp_path: Path):
    """Factory: ``tinyproxy(connect_ports=(), user=None, password=None)`` -> TinyProxy.

    Runs Debian's ``tinyproxy -d -c <conf>`` (foreground, our child) on ``127.0.0.1`` and a free
    port, ``LogLevel Connect`` into a log file. ``connect_ports``: ports (or servers with a
    ``.port``) that CONNECT may reach; empty means any port. ``user``/``password``: ``BasicAuth``
    (requests without ``Proxy-Authorization`` get 407). Returns an object with ``url``
    (``http://127.0.0.1:PORT``), ``url_with_auth`` (``http://user:pass@127.0.0.1:PORT``),
    ``port``, ``log_text()``, ``request_lines()`` (one per proxied request), ``connect_lines()``
    (CONNECT tunnels, i.e. https), ``startup_s``. Plain-http requests it forwards carry
    ``Via: 1.1 tinyproxy (tinyproxy/1.11.1)`` and ``Connection: close`` at the origin. A CONNECT
    to a port not allowed gets 403. Stopped at teardown.
    """
    from tests.tinyproxy import TinyProxy

    exe = tools.require_executable(
        "tinyproxy", "apt-get install -y tinyproxy (tests/test-all does)", ("/usr/bin/tinyproxy", "/usr/sbin/tinyproxy")
    )
    proxies: list[TinyProxy] = []

    def start(connect_ports: Iterable[int | Any] = (), user: str | None = None,
              password: str | None = None) -> TinyProxy:
        ports = [p if isinstance(p, int) else p.port for p in connect_ports]
        proxy = TinyProxy(exe, tmp_path / f"tinyproxy{len(proxies)}", tools.free_port(), ports, user, password)
        proxies.append(proxy)
        _timed("tinyproxy", proxy.startup_s)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


# ------------------------------------------------------------------------------------------
# System keyring
# ------------------------------------------------------------------------------------------


@pytest.fixture
def secret_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A real, unlocked Secret Service (gnome-keyring on a private D-Bus bus) for one test.

    Yields the env dict ``DBUS_SESSION_BUS_ADDRESS``, ``HOME``, ``XDG_DATA_HOME``,
    ``XDG_RUNTIME_DIR``, ``XDG_CONFIG_HOME``, ``XDG_CACHE_HOME`` (all in ``tmp_path``) and
    ``PYTHON_KEYRING_BACKEND=keyring.backends.SecretService.Keyring``, and sets all of them in
    ``os.environ`` (monkeypatch; a subprocess inherits them and uses the same keyring). In
    process, ``keyring.set_keyring(SecretService.Keyring())`` pins the backend (keyring caches
    its backend list once per process, so re-detection is unreliable); the previous backend is
    restored at teardown, then gnome-keyring and the bus are stopped. The login keyring file is
    ``$XDG_DATA_HOME/keyrings/login.keyring``. Note ``HOME`` moves to ``tmp_path/secret-service/home``.
    """
    dbus = tools.require_executable("dbus-daemon", "apt-get install -y dbus (tests/test-all does)")
    gk = tools.require_executable("gnome-keyring-daemon", "apt-get install -y gnome-keyring (tests/test-all does)")
    try:
        import keyring
        import keyring.core
        from keyring.backends import SecretService  # noqa: F401
    except ImportError as err:
        tools.missing_part(f"the secret_service fixture needs the keyring package ({err}); pip install keyring")
        raise
    from tests.secretservice import SecretServiceSession

    session = SecretServiceSession(dbus, gk, tmp_path / "secret-service")
    _timed("secret_service", session.startup_s)
    for name, value in session.env.items():
        monkeypatch.setenv(name, value)
    previous = getattr(keyring.core, "_keyring_backend", None)
    keyring.set_keyring(session.backend())
    try:
        yield dict(session.env)
    finally:
        if previous is not None:
            keyring.set_keyring(previous)
        else:
            keyring.core._keyring_backend = None  # back to "not yet chosen"
        session.stop()


# ------------------------------------------------------------------------------------------
# OpenID Provider and the Anaconda API stand-in
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def oidc_provider(test_ca, tmp_path_factory: pytest.TempPathFactory):
    """The real OpenID Provider (panva oidc-provider 9.x, ``tests/idp/idp.mjs``) over HTTPS.

    Issuer ``https://127.0.0.1:PORT`` (test CA leaf). One native public client, ``client_id``
    ``anaconda-cli-test``: no secret, PKCE S256 required, grants authorization_code,
    refresh_token and device_code, redirect URI ``http://127.0.0.1:8000/auth/oidc`` where any
    loopback port matches (RFC 8252 §7.3; also ``localhost`` and ``[::1]``), scopes ``openid email
    profile offline_access`` (``offline_access`` needs ``prompt=consent`` in the auth-code flow),
    devInteractions (any login/password) and the device flow. Access tokens are opaque;
    ``/me`` returns the claims; refresh tokens rotate and reuse revokes the grant.

    Attributes: ``issuer``, ``port``, ``client_id``, ``redirect_uri``, ``discovery_url``,
    ``discovery`` (dict), ``authorization_endpoint``, ``token_endpoint``,
    ``device_authorization_endpoint``, ``userinfo_url``, ``jwks_uri``, ``revocation_endpoint``,
    ``introspection_endpoint``, ``ca_pem``, ``startup_s``; ``ssl_context()``.
    """
    from tests.oidc import IDP_DIR, OIDCProvider

    node = tools.require_executable("node", "apt-get install -y nodejs (Node 20+), then npm ci in tests/idp")
    if not (IDP_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        tools.missing_part(f"the test OpenID Provider is not installed: run `npm ci` in {IDP_DIR} "
                           "(tests/test-all does that)")
    provider = OIDCProvider(node, test_ca.server_cert, test_ca.server_key, test_ca.ca_pem,
                            tmp_path_factory.mktemp("oidc-provider"))
    _timed("oidc_provider", provider.startup_s)
    yield provider
    provider.stop()


@pytest.fixture
def anaconda_api(test_ca, oidc_provider):
    """A stand-in for anaconda.com's API over HTTPS (test CA leaf); see tests/anaconda_api.py.

    - ``POST /api/iam/api-keys`` and ``POST /api/auth/api-keys`` -> 201 ``{"api_key": JWT}`` when
      the bearer access token passes the provider's userinfo, else 401 auth_required; which paths
      work is ``key_endpoints`` (a set: assign e.g. ``{"/api/iam/api-keys"}``; others 404).
      ``key_requests`` holds the JSON bodies (scopes, tags), ``issued_keys`` what was issued.
      The key is an unsigned well-formed JWT: header ``{"alg": "RS256", "typ": "JWT"}``, payload
      ``{"sub", "exp": now + 365 days, "iat"}``.
    - ``GET /api/account`` -> ``{"user": {"id", "email", "username", "first_name",
      "last_name"}, "profile": {...}, "subscriptions": []}`` for a key it issued, else 401
      ``{"error": {"code": "auth_required", ...}}``.
    - ``GET /app/local-login-success`` / ``/app/local-login-error``: small HTML pages
      (``login_success_url``, ``login_error_url``).
    - ``GET /.well-known/openid-configuration``: the provider's discovery document.

    Attributes: ``url``, ``domain`` (``127.0.0.1:PORT``), ``port``, ``issued_keys``,
    ``key_requests``, ``requests``, ``server`` (``route``/``fail_then`` are delegated),
    ``userinfo_calls``; ``issue_key(sub="alice", expires_in=...)`` makes an accepted key
    directly, ``revoke(key)``.
    """
    from tests.anaconda_api import AnacondaAPI

    started = time.monotonic()
    api = AnacondaAPI(test_ca.server_context(), oidc_provider.userinfo_url, test_ca.ca_pem,
                      discovery=oidc_provider.discovery)
    _timed("anaconda_api", time.monotonic() - started)
    yield api
    api.stop()


# ------------------------------------------------------------------------------------------
# Browsers (BROWSER hooks for webbrowser.open)
# ------------------------------------------------------------------------------------------


class BrowserCommand(str):
    """The BROWSER string itself (``"<python> <script> %s &"``), plus helpers.

    ``env``: what a CLI subprocess needs besides the string (``BROWSER`` and the hook's own
    variables: ``USERAGENT_LOG``, ``ANACONDA_AUTH_TEST_CA``); ``log_path``; ``log_text()``;
    ``result(timeout)`` waits (bounded) for the hook's final log line and returns the parsed
    ``RESULT`` dict (raising with the log if it ended in ``ERROR`` or never ended). The fixture
    also sets ``USERAGENT_LOG`` and ``ANACONDA_AUTH_TEST_CA`` in ``os.environ`` (monkeypatch), so
    an in-process ``webbrowser`` gets them too; it does not set ``BROWSER`` itself.
    """

    env: dict[str, str]
    log_path: str

    def log_text(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _final(self) -> str | None:
        for line in reversed(self.log_text().splitlines()):
            if " RESULT " in line or " ERROR " in line:
                return line
        return None

    def result(self, timeout: float = 60.0) -> dict[str, Any]:
        import json

        line = tools.wait_until(self._final, timeout, f"BROWSER hook ({self.log_path})",
                                diagnostics=self.log_text, step=0.05)
        if " ERROR " in line:
            raise AssertionError(f"the BROWSER hook failed:\n{self.log_text()}")
        return json.loads(line.split(" RESULT ", 1)[1])

    def _pids(self) -> list[int]:
        pids = []
        for line in self.log_text().splitlines():
            if " START pid=" in line:
                pids.append(int(line.split(" START pid=", 1)[1].split()[0]))
        return pids

    def _cleanup(self, grace: float) -> None:
        """Wait (bounded) for started hooks to finish; terminate any still running (by pid)."""
        import signal

        deadline = time.monotonic() + grace
        for pid in self._pids():
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)  # bounded poll on the hook process's exit
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass


def _alive(pid: int) -> bool:
    """True if ``pid`` is a running (not zombie) BROWSER hook of ours (checked by its cmdline)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().split(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and (b"useragent.py" in cmdline or b"browser_login.py" in cmdline)


def _browser_command(argv: list[str], tmp_path: Path, name: str, extra_env: dict[str, str],
                     monkeypatch: pytest.MonkeyPatch) -> BrowserCommand:
    cmd = BrowserCommand(" ".join(shlex.quote(a) for a in argv) + " %s &")
    cmd.log_path = str(tmp_path / f"{name}.log")
    cmd.env = {"BROWSER": str(cmd), "USERAGENT_LOG": cmd.log_path}
    cmd.env.update(extra_env)
    for key, value in cmd.env.items():
        if key != "BROWSER":
            monkeypatch.setenv(key, value)
    return cmd


@pytest.fixture
def useragent_browser_env(test_ca, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BrowserCommand]:
    """BROWSER string for the stdlib user agent: ``"<this python> tests/useragent.py %s &"``.

    About 0.2 s per login. Set ``USERAGENT_ACTION=deny`` (monkeypatch or the subprocess env) to
    make it cancel on the consent page (``error=access_denied``) or abort the device
    confirmation. ``.env`` has ``ANACONDA_AUTH_TEST_CA`` (the test CA) and ``USERAGENT_LOG``;
    ``.result()`` returns what the walk ended with (see ``tests.useragent.FlowResult``).
    """
    cmd = _browser_command([sys.executable, str(ROOT / "tests" / "useragent.py")], tmp_path, "useragent",
                           {"ANACONDA_AUTH_TEST_CA": test_ca.ca_pem}, monkeypatch)
    yield cmd
    cmd._cleanup(grace=10)


def _browser_python() -> str:
    """The python that has playwright: $ANACONDA_AUTH_TEST_BROWSER_PYTHON, else .venvs/browser."""
    candidates = [os.environ.get("ANACONDA_AUTH_TEST_BROWSER_PYTHON", ""), str(ROOT / ".venvs" / "browser" / "bin" / "python")]
    if os.environ.get("ANACONDA_AUTH_TEST_BROWSER_PYTHON"):
        candidates = candidates[:1]  # an explicit choice is never silently replaced
    for python in candidates:
        if python and os.access(python, os.X_OK):
            probe = subprocess.run([python, "-c", "import playwright.sync_api"], capture_output=True, text=True, check=False)
            if probe.returncode == 0:
                return python
            tools.missing_part(f"{python} cannot import playwright ({probe.stderr.strip().splitlines()[-1:]}); "
                               "pip install -r tests/requirements-browser.txt into it (never `playwright install`)")
    explicit = os.environ.get("ANACONDA_AUTH_TEST_BROWSER_PYTHON")
    where = f"ANACONDA_AUTH_TEST_BROWSER_PYTHON={explicit} is not an executable" if explicit else (
        "ANACONDA_AUTH_TEST_BROWSER_PYTHON is not set and .venvs/browser does not exist")
    tools.missing_part(f"no Python with playwright for the Chromium tests: {where}; "
                       "tests/test-all creates .venvs/browser and sets the variable")
    raise AssertionError("unreachable")


@pytest.fixture
def chromium_browser_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BrowserCommand]:
    """BROWSER string for real headless Chromium: ``"<browser python> tests/browser_login.py %s &"``.

    Uses Debian's ``/usr/bin/chromium`` through Playwright from the python named by
    ``ANACONDA_AUTH_TEST_BROWSER_PYTHON`` (tests/test-all sets it; else ``.venvs/browser``).
    Certificate errors are ignored (Chromium does not trust the test CA), non-loopback requests
    are aborted. 2-4 s per login. Same ``USERAGENT_*`` variables and helpers as
    ``useragent_browser_env``. Fails clearly if chromium or that python is missing.
    """
    chromium = tools.require_executable(
        "chromium", "apt-get install -y chromium chromium-driver (tests/test-all does)", ("/usr/bin/chromium",)
    )
    python = _browser_python()
    cmd = _browser_command([python, str(ROOT / "tests" / "browser_login.py")], tmp_path, "chromium",
                           {"CHROMIUM": chromium}, monkeypatch)
    yield cmd
    cmd._cleanup(grace=30)
