"""Tests of anaconda_auth.py, in the module's own order: errors, configuration, token storage,
public API, command line (and, last, what importing and running it pulls in).

Isolation rules every test follows:

* configuration is resolved with explicit ``environ=``, ``home=`` and ``cwd=`` pointing into a
  temporary directory (the ``sandbox`` fixture); an autouse fixture also points ``HOME`` at a
  temporary directory and removes every ``ANACONDA_*`` / ``CONDA_*`` variable, so a forgotten
  argument can never reach the real ``~/.anaconda``;
* the CLI runs as a subprocess, ``python -m anaconda_auth ...``, in the temporary working
  directory, with a clean copy of the environment (no ``ANACONDA_*``, ``CONDA_*``, D-Bus or XDG
  variables of the machine), ``HOME`` = the temporary home and ``ANACONDA_SECRETS_DIR`` = an empty
  temporary directory;
* nothing sleeps: waiting is on pipes, ``select`` on a pseudo-terminal, or process exit.

This module runs alone, beside a vendored copy of the module, with only urllib3 and pytest:
the real Secret Service, the OpenID provider, HTTPS, proxies, browsers and the reference
package are exercised by the suites under ``tests/`` (see ``tests/README.md``).
"""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import pytest

import anaconda_auth as aa

REPO = Path(__file__).resolve().parent
SERVICE = "Anaconda Cloud"
CLI = [sys.executable, "-m", "anaconda_auth"]
SUBPROCESS_TIMEOUT = 60.0
MASK = "********"

# The reference's own example (behaviour notes §2.1): TokenInfo(domain="anaconda.com",
# api_key="abc").save() stores exactly this value.
REFERENCE_ABC_PAYLOAD = (
    "eyJkb21haW4iOiJhbmFjb25kYS5jb20iLCJhcGlfa2V5IjoiYWJjIiwicmVwb190b2tlbnMiOltdLCJ2ZXJzaW9uIjoyfQ=="
)

# Variables of the machine that would leak its configuration into a subprocess.
_LEAKY_VARS = (
    "CONDARC", "MAMBARC", "DBUS_SESSION_BUS_ADDRESS", "PYTHON_KEYRING_BACKEND", "PYTHONSTARTUP",
    "PYTHONHOME", "PYTHONPATH", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR",
    "XDG_CACHE_HOME", "BROWSER",
)

# Modules that only the paths needing them may import (CONTRACT §1, issue item 8).
HEAVY_MODULES = ("urllib3", "keyring", "http.server", "webbrowser", "tomllib", "tomli")

TWO_SITES = """\
[sites.alpha]
domain = "alpha.example"
ssl_verify = false

[sites.beta]
domain = "beta.example:8443"
use_device_flow = false
"""


# =================================================================================================
# Helpers and fixtures: sandboxes, tokens, subprocesses, pseudo-terminals
# =================================================================================================


def make_jwt(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """A compact JWT with these claims and a dummy signature: neither this module nor the
    reference checks signatures (the suites under tests/ use this one too)."""

    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part(header or {'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


# Beyond the 30-day expiry warning, which pyproject.toml makes an error when no test expects it.
LONG_LIVED = 90 * 86400


def key_expiring_in(seconds: float, **claims: Any) -> str:
    return make_jwt({"sub": "someone", "exp": int(time.time() + seconds), **claims})


def payload_json(domain: str, api_key: str, username: str | None = None,
                 repo_tokens: list | None = None) -> str:
    """The reference's TokenInfo JSON: compact, None fields omitted, in its field order."""
    payload: dict[str, Any] = {"domain": domain, "api_key": api_key}
    if username is not None:
        payload["username"] = username
    payload["repo_tokens"] = repo_tokens or []
    payload["version"] = 2
    return json.dumps(payload, separators=(",", ":"))


def payload_b64(domain: str, api_key: str, **kw: Any) -> str:
    return base64.b64encode(payload_json(domain, api_key, **kw).encode()).decode()


def decode_entry(value: str) -> dict[str, Any]:
    return json.loads(base64.b64decode(value))


def clean_environ() -> dict[str, str]:
    """os.environ without anything that selects configuration or a keyring."""
    return {
        k: v for k, v in os.environ.items()
        if not k.upper().startswith(("ANACONDA_", "CONDA_")) and k not in _LEAKY_VARS
    }


def store_entry(path: Path | str, domain: str, api_key: str, **kw: Any) -> bytes:
    """Write one entry straight into the file store at ``path`` (``Config.keyring_path``), as
    the reference would: no checks, so a test can store what login() refuses (expired, say)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_bytes()) if path.exists() else {}
    data.setdefault(SERVICE, {})[domain] = payload_b64(domain, api_key, **kw)
    # A new file renamed over the old one, as writers do: its inode changes, which is how the
    # module's cache of the parsed store notices a change within one clock tick.
    new = path.with_name("keyring.test-new")
    new.write_bytes(json.dumps(data).encode())
    os.rename(new, path)
    return path.read_bytes()


def reset_caches() -> None:
    """Forget what the module remembers between calls (pools, discovery, warnings given...),
    so a test starts as a fresh process would; every suite's fixtures call this one."""
    aa._caches.reset()


def run_captured(argv: Sequence[str], env: dict[str, str], cwd: Path | str,
                 stdin: str | None = None, timeout: float = SUBPROCESS_TIMEOUT,
                 errors: str = "replace") -> subprocess.CompletedProcess:
    """Run a command to its end with output captured as UTF-8 text; ``stdin`` None is
    /dev/null; ``errors="strict"`` fails on output that is not UTF-8 (the adversarial tier).
    Every suite's command-line runner comes down to this one."""
    return subprocess.run(
        list(argv), check=False, cwd=str(cwd), env=env, capture_output=True, text=True,
        encoding="utf-8", errors=errors, timeout=timeout,
        **({"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}),
    )


class Sandbox:
    """A temporary HOME, working directory and secrets dir; resolves configs and runs the CLI."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.cwd = root / "work"
        self.secrets = root / "secrets"
        self.run_dir = root / "run"
        for d in (self.home, self.cwd, self.secrets, self.run_dir):
            d.mkdir(parents=True)
        os.chmod(self.run_dir, 0o700)
        # What resolve_config sees in-process (never the machine's environment).
        self.environ: dict[str, str] = {"HOME": str(self.home),
                                        "ANACONDA_SECRETS_DIR": str(self.secrets)}

    # -- files --------------------------------------------------------------------------------

    @property
    def anaconda_dir(self) -> Path:
        return self.home / ".anaconda"

    @property
    def config_toml(self) -> Path:
        return self.anaconda_dir / "config.toml"

    @property
    def keyring_file(self) -> Path:
        return self.anaconda_dir / "keyring"

    def write_config(self, text: str) -> Path:
        self.anaconda_dir.mkdir(exist_ok=True)
        self.config_toml.write_text(textwrap.dedent(text), encoding="utf-8")
        return self.config_toml

    def write_dotenv(self, text: str) -> None:
        (self.cwd / ".env").write_text(textwrap.dedent(text), encoding="utf-8")

    def write_secret(self, name: str, value: str) -> None:
        (self.secrets / name).write_text(value, encoding="utf-8")

    def write_keyring(self, content: Any) -> bytes:
        """The file store with ``content`` (a dict is JSON-encoded as the reference does)."""
        self.anaconda_dir.mkdir(exist_ok=True)
        if isinstance(content, (dict, list)):
            data = json.dumps(content).encode()
        elif isinstance(content, str):
            data = content.encode()
        else:
            data = content
        self.keyring_file.write_bytes(data)
        return data

    def store(self, domain: str, api_key: str, **kw: Any) -> bytes:
        """Write one entry directly into the file store, as the reference would."""
        return store_entry(self.keyring_file, domain, api_key, **kw)

    def keyring_bytes(self) -> bytes | None:
        try:
            return self.keyring_file.read_bytes()
        except FileNotFoundError:
            return None

    def read_keyring(self) -> dict[str, Any] | None:
        data = self.keyring_bytes()
        return None if data is None else json.loads(data)

    def stored_entries(self) -> dict[str, dict[str, Any]]:
        return {d: decode_entry(v) for d, v in (self.read_keyring() or {}).get(SERVICE, {}).items()}

    def expand(self, text: str) -> str:
        """Fill in ``<ROOT>`` and ``<HOME>`` in a case's texts."""
        return text.replace("<ROOT>", str(self.root)).replace("<HOME>", str(self.home))

    def write(self, path: Path, text: str) -> Path:
        """A file anywhere (parents made), its text dedented and ``<ROOT>``/``<HOME>`` filled in."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(self.expand(text)).lstrip("\n"), encoding="utf-8")
        return path

    def leftover_files(self) -> list[str]:
        """Anything in ~/.anaconda besides the store, its lock and the config."""
        expected = {"keyring", "keyring.lock", "config.toml"}
        return sorted(p.name for p in self.anaconda_dir.iterdir() if p.name not in expected)

    # -- configuration --------------------------------------------------------------------------

    def resolve(self, site: str | None = None, env: dict[str, str] | None = None,
                **overrides: Any) -> aa.Config:
        environ = {**self.environ, **(env or {})}
        return aa.resolve_config(site, environ=environ, home=str(self.home), cwd=str(self.cwd),
                                 **overrides)

    # -- the command line -----------------------------------------------------------------------

    def cli_env(self, env: dict[str, str] | None = None) -> dict[str, str]:
        full = clean_environ()
        full.update(
            HOME=str(self.home),
            ANACONDA_SECRETS_DIR=str(self.secrets),
            PYTHONPATH=str(REPO),
            PYTHONIOENCODING="utf-8",
            PYTHONDONTWRITEBYTECODE="1",
            XDG_RUNTIME_DIR=str(self.run_dir),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_DATA_HOME=str(self.home / ".local" / "share"),
        )
        full.update(env or {})
        return full

    def cli(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
            prefix: Sequence[str] = (), python_args: Sequence[str] = ()
            ) -> subprocess.CompletedProcess:
        argv = [*prefix, sys.executable, *python_args, "-m", "anaconda_auth", *args]
        return run_captured(argv, self.cli_env(env), self.cwd, stdin if stdin is not None else "")

    def python(self, code: str, env: dict[str, str] | None = None,
               args: Sequence[str] = ()) -> subprocess.CompletedProcess:
        return run_captured([sys.executable, "-c", code, *args], self.cli_env(env), self.cwd)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "sandbox")


@pytest.fixture(autouse=True)
def _isolated_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Belt and braces: even a default argument must not reach the real ~/.anaconda."""
    safety_home = tmp_path / "safety-home"
    safety_home.mkdir()
    monkeypatch.setenv("HOME", str(safety_home))
    for name in list(os.environ):
        if name.upper().startswith(("ANACONDA_", "CONDA_")) or name in ("CONDARC", "MAMBARC"):
            monkeypatch.delenv(name)
    # Warnings shown once per process: each test starts with none shown yet.
    reset_caches()


def assert_ok(result: subprocess.CompletedProcess, code: int = 0) -> None:
    assert result.returncode == code, (
        f"exit {result.returncode}, expected {code}\nstdout:\n{result.stdout}\n"
        f"stderr:\n{result.stderr}"
    )


def assert_no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr


def run_on_terminal(
    argv: Sequence[str], env: dict[str, str], cwd: Path,
    script: Sequence[tuple[str, Callable[[subprocess.Popen, int], None]]],
    timeout: float = SUBPROCESS_TIMEOUT,
) -> tuple[int, str]:
    """Run ``argv`` with stdin/stdout/stderr on a pseudo-terminal (so isatty() is true).

    ``script``: (text to wait for, action(proc, master_fd)) pairs, in order. Returns the exit
    code and everything the program wrote to the terminal (including echoed input).
    """
    master, slave = pty.openpty()
    proc = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave, env=env,
                            cwd=str(cwd), close_fds=True)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout

    def read_some() -> bytes:
        nonlocal output
        ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"timed out waiting on the terminal; output so far:\n{output!r}")
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: every process holding the terminal has exited
            chunk = b""
        output += chunk
        return chunk

    try:
        seen = 0
        for wait_for, action in script:
            while wait_for.encode() not in output[seen:]:
                if not read_some():
                    raise AssertionError(f"{wait_for!r} never appeared; output:\n{output!r}")
            seen = output.index(wait_for.encode(), seen) + len(wait_for)
            action(proc, master)
        while read_some():
            pass
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, output.decode("utf-8", "replace").replace("\r\n", "\n")


def type_line(text: str) -> Callable[[subprocess.Popen, int], None]:
    return lambda proc, master: os.write(master, text.encode() + b"\n")


def free_port() -> int:
    """A loopback port that was free a moment ago (nothing listens there afterwards)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def modes_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def drop_file_permission_override() -> list[str]:
    """A command prefix under which a mode-000 file is really unreadable.

    Root ignores file modes (CAP_DAC_OVERRIDE); ``setpriv`` (util-linux) starts the child
    without that capability, so an unreadable token file is unreadable to it, as to a user.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.fail("running as root needs setpriv (Debian package util-linux) to drop "
                    "CAP_DAC_OVERRIDE for the tests where file modes must bind", pytrace=False)
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", "--"]


def mutated(rng: Any, bases: list[str], alphabet: list[str], count: int, edits: int) -> Any:
    """``count`` random edits of the texts in ``bases`` (1 to ``edits`` inserts, deletes or
    replacements of characters from ``alphabet`` each), for differential tests of the readers."""
    for _ in range(count):
        chars = list(rng.choice(bases))
        for _ in range(rng.randint(1, edits)):
            i = rng.randrange(len(chars))
            op = rng.random()
            if op < 0.4:
                chars.insert(i, rng.choice(alphabet))
            elif op < 0.8:
                del chars[i]
            else:
                chars[i] = rng.choice(alphabet)
        yield "".join(chars)

# =================================================================================================
# Errors
# =================================================================================================

EXCEPTION_NAMES = (
    "AnacondaAuthError", "AuthenticationError", "InvalidTokenError", "TokenNotFoundError",
    "LoginRequiredError", "TokenExpiredError", "UnknownSiteName", "DeviceFlowError",
    "DeviceFlowTimeout", "DeviceFlowDenied", "ConfigError", "StorageError", "HTTPError",
)


def test_every_public_name_in_all_exists():
    missing = [name for name in aa.__all__ if not hasattr(aa, name)]
    assert missing == []


def test_contract_names_are_public():
    contract = {"resolve_config", "login", "get_api_key", "logout", "request", "whoami", "Config",
                "Response", *EXCEPTION_NAMES}
    assert contract <= set(aa.__all__)


def test_the_references_other_public_names_are_public():
    # Issue 9: what ported code calls besides the contract's names.
    assert {"is_logged_in", "Client", "client_factory"} <= set(aa.__all__)


@pytest.mark.parametrize("name", EXCEPTION_NAMES)
def test_every_error_derives_from_anaconda_auth_error(name):
    assert issubclass(getattr(aa, name), aa.AnacondaAuthError)


def test_error_hierarchy_follows_the_reference():
    assert issubclass(aa.InvalidTokenError, aa.AuthenticationError)
    assert issubclass(aa.DeviceFlowTimeout, aa.DeviceFlowError)
    assert issubclass(aa.DeviceFlowDenied, aa.DeviceFlowError)


def test_config_error_is_a_value_error_and_covers_unknown_sites():
    assert issubclass(aa.ConfigError, ValueError)
    assert issubclass(aa.UnknownSiteName, aa.ConfigError)


def test_http_error_carries_the_response():
    response = object()
    error = aa.HTTPError("404 Not Found", response)  # type: ignore[arg-type]
    assert error.response is response
    assert str(error) == "404 Not Found"


# =================================================================================================
# Configuration
# =================================================================================================

REFERENCE_FIELDS = (
    "site", "preferred_token_storage", "domain", "auth_domain_override", "api_key", "keyring",
    "keyring_path", "ssl_verify", "extra_headers", "client_id", "redirect_uri",
    "openid_config_path", "oidc_request_headers", "login_success_path", "login_error_path",
    "use_unified_repo_api_key", "hash_hostname", "proxy_servers", "client_cert",
    "client_cert_key", "use_device_flow", "env_manager_channel", "env_manager_package",
    "env_manager_version",
)


def test_config_has_every_reference_field(sandbox):
    config = sandbox.resolve()
    for name in REFERENCE_FIELDS:
        getattr(config, name)


def test_defaults_match_the_reference(sandbox):
    config = sandbox.resolve()
    assert config.site == "anaconda.com"
    assert config.domain == "anaconda.com"
    assert config.preferred_token_storage == "anaconda-keyring"
    assert config.ssl_verify is True
    assert config.client_id == "b4ad7f1d-c784-46b5-a9fe-106e50441f5a"
    assert config.redirect_uri == "http://127.0.0.1:8000/auth/oidc"
    assert config.openid_config_path == "/.well-known/openid-configuration"
    assert config.login_success_path == "/app/local-login-success"
    assert config.login_error_path == "/app/local-login-error"
    assert config.use_device_flow is True
    assert config.hash_hostname is True
    assert config.use_unified_repo_api_key is False
    assert config.env_manager_channel == "anaconda-cloud"
    assert config.env_manager_package == "anaconda-env-manager"
    assert dict(config.oidc_request_headers or {})["User-Agent"].startswith("anaconda-auth/")
    # CONTRACT §8: what the reference defaults to None is None here too.
    for name in ("api_key", "extra_headers", "proxy_servers", "keyring", "client_cert",
                 "client_cert_key", "auth_domain_override", "env_manager_version"):
        assert getattr(config, name) is None, name
    assert config.keyring_path == str(sandbox.home / ".anaconda" / "keyring")
    assert config.sources["domain"] == "default"
    assert config.config_path == str(sandbox.config_toml)


# -- Precedence: every source beats the ones below it ---------------------------------------------
# One field (ssl_verify, which every source can set, conda included) gets a different CA file from
# each source. Step k keeps the sources from k downwards: the value must be source k's.

LADDER = (
    ("explicit", ("argument ssl_verify",)),
    ("auth_env", ("environment variable", "ANACONDA_AUTH_SSL_VERIFY")),
    ("auth_secret", ("secret", "anaconda_auth_ssl_verify")),
    ("auth_dotenv", (".env", "ANACONDA_AUTH_SSL_VERIFY")),
    ("site_table", ("[sites.main]",)),
    ("legacy_env", ("environment variable", "ANACONDA_CLOUD_SSL_VERIFY")),
    ("legacy_secret", ("secret", "anaconda_cloud_ssl_verify")),
    ("legacy_dotenv", (".env", "ANACONDA_CLOUD_SSL_VERIFY")),
    ("legacy_toml", ("[plugin.cloud]",)),
    ("plugin_auth", ("[plugin.auth]",)),
    ("conda_env", ("CONDA_SSL_VERIFY",)),
    ("condarc", (".condarc",)),
    ("default", ("default",)),
)


# Where each rung of the ladder puts its value: (kind, variable or file name or text).
LADDER_PLACES = {
    "explicit": ("argument", "ssl_verify"),
    "auth_env": ("env", "ANACONDA_AUTH_SSL_VERIFY"),
    "auth_secret": ("secret", "anaconda_auth_ssl_verify"),
    "auth_dotenv": (".env", "ANACONDA_AUTH_SSL_VERIFY"),
    "site_table": ("config.toml", '[sites.main]\ndomain = "main.example"\nssl_verify = "{}"\n'),
    "legacy_env": ("env", "ANACONDA_CLOUD_SSL_VERIFY"),
    "legacy_secret": ("secret", "anaconda_cloud_ssl_verify"),
    "legacy_dotenv": (".env", "ANACONDA_CLOUD_SSL_VERIFY"),
    "legacy_toml": ("config.toml", '[plugin.cloud]\nssl_verify = "{}"\n'),
    "plugin_auth": ("config.toml", '[plugin.auth]\nssl_verify = "{}"\n'),
    "conda_env": ("env", "CONDA_SSL_VERIFY"),
    "condarc": (".condarc", "channels:\n  - defaults\nssl_verify: {}\n"),
}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("step", range(len(LADDER)), ids=[name for name, _ in LADDER])
def test_every_source_beats_the_sources_below_it(sandbox, step):
    ca = {}
    for name, _ in LADDER[:-1]:
        ca[name] = sandbox.root / f"ca-{name}.pem"
        ca[name].write_text("not checked here\n")
    env: dict[str, str] = {}
    dotenv, toml = [], []
    overrides = {}
    for name, _ in LADDER[step:-1]:  # in the ladder's order: .env and config.toml keep it too
        kind, where = LADDER_PLACES[name]
        value = str(ca[name])
        if kind == "argument":
            overrides[where] = value
        elif kind == "env":
            env[where] = value
        elif kind == "secret":
            sandbox.write_secret(where, value)
        elif kind == ".env":
            dotenv.append(f"{where}={value}")
        elif kind == "config.toml":
            toml.append(where.format(value))
        else:
            (sandbox.home / ".condarc").write_text(where.format(value))
    if dotenv:
        sandbox.write_dotenv("\n".join(dotenv) + "\n")
    if toml:
        sandbox.write_config("\n".join(toml))

    config = sandbox.resolve(env=env, **overrides)

    name, markers = LADDER[step]
    expected = True if name == "default" else str(ca[name])
    assert config.ssl_verify == expected
    for marker in markers:
        assert marker in config.sources["ssl_verify"], config.sources["ssl_verify"]


def test_conda_settings_supply_proxies_and_client_certificates(sandbox):
    cert, key = sandbox.root / "client.pem", sandbox.root / "client.key"
    (sandbox.home / ".condarc").write_text(textwrap.dedent(f"""\
        # conda's own settings
        proxy_servers:
          http: http://proxy.example:3128
          https: 'http://proxy.example:3129'
        client_ssl_cert: {cert}
        client_ssl_cert_key: "{key}"
        ssl_verify: false
    """))
    config = sandbox.resolve()
    assert dict(config.proxy_servers or {}) == {"http": "http://proxy.example:3128",
                                                "https": "http://proxy.example:3129"}
    assert config.client_cert == str(cert)
    assert config.client_cert_key == str(key)
    assert config.ssl_verify is False
    assert ".condarc" in config.sources["client_cert"]


def test_conda_env_variable_beats_condarc(sandbox):
    (sandbox.home / ".condarc").write_text("ssl_verify: true\n")
    config = sandbox.resolve(env={"CONDA_SSL_VERIFY": "false"})
    assert config.ssl_verify is False
    assert config.sources["ssl_verify"] == "environment variable CONDA_SSL_VERIFY"


@pytest.mark.parametrize("where", ["environment", "config.toml"])
def test_a_ca_path_with_a_tilde_is_expanded_with_the_given_home(sandbox, where):
    """Issue 8 §4: ``~`` in ssl_verify is the home resolve_config was given (not this
    process's HOME, which the autouse fixture points elsewhere): a file is the CA bundle, a
    directory the CA directory."""
    (sandbox.home / "ca.pem").write_text("not read here\n")
    (sandbox.home / "certs").mkdir()
    for raw in ("~/ca.pem", "~/certs"):
        if where == "environment":
            config = sandbox.resolve(env={"ANACONDA_AUTH_SSL_VERIFY": raw})
        else:
            sandbox.write_config(f'[plugin.auth]\nssl_verify = "{raw}"\n')
            config = sandbox.resolve()
        assert config.ssl_verify == str(sandbox.home / raw[2:])  # a real handshake: test_http


def test_plugin_auth_beats_conda(sandbox):
    (sandbox.home / ".condarc").write_text("ssl_verify: false\n")
    sandbox.write_config("[plugin.auth]\nssl_verify = true\n")
    assert sandbox.resolve().ssl_verify is True


def test_real_environment_beats_dotenv_and_dotenv_is_not_exported(sandbox):
    sandbox.write_dotenv('ANACONDA_AUTH_DOMAIN="dotenv.example"\nANACONDA_AUTH_CLIENT_ID=from-dotenv\n')
    config = sandbox.resolve(env={"ANACONDA_AUTH_DOMAIN": "env.example"})
    assert config.domain == "env.example"
    assert config.client_id == "from-dotenv"
    assert "ANACONDA_AUTH_CLIENT_ID" not in os.environ


def test_dotenv_understands_export_quotes_and_comments(sandbox):
    sandbox.write_dotenv("""\
        # a comment
        export ANACONDA_AUTH_DOMAIN=exported.example
        ANACONDA_AUTH_CLIENT_ID='single quoted'
        ANACONDA_AUTH_REDIRECT_URI=http://127.0.0.1:9000/cb  # trailing comment
        NOT_OURS=ignored
    """)
    config = sandbox.resolve()
    assert config.domain == "exported.example"
    assert config.client_id == "single quoted"
    assert config.redirect_uri == "http://127.0.0.1:9000/cb"


@pytest.mark.parametrize("name", ["anaconda_auth_domain", "Anaconda_Auth_Domain",
                                  "ANACONDA_AUTH_DOMAIN", "ANACONDA_auth_DOMAIN"])
def test_environment_names_are_case_insensitive(sandbox, name):
    assert sandbox.resolve(env={name: "case.example"}).domain == "case.example"


@pytest.mark.parametrize("name", ["anaconda_auth_client_id", "ANACONDA_AUTH_CLIENT_ID"])
def test_secret_file_names_match_in_any_case(sandbox, name):
    sandbox.write_secret(name, "secret-client\n")
    config = sandbox.resolve()
    assert config.client_id == "secret-client"
    assert name in config.sources["client_id"]


def test_double_underscore_nests_into_dict_fields(sandbox):
    config = sandbox.resolve(env={
        "ANACONDA_AUTH_PROXY_SERVERS__HTTPS": "http://p2:3128",
        "ANACONDA_AUTH_EXTRA_HEADERS__X_FOO": "bar",
    })
    assert dict(config.proxy_servers or {}) == {"https": "http://p2:3128"}
    assert dict(config.extra_headers or {}) == {"x_foo": "bar"}  # key lowercased, as the reference


def test_json_and_nested_forms_deep_merge_with_nested_winning(sandbox):
    config = sandbox.resolve(env={
        "ANACONDA_AUTH_PROXY_SERVERS": '{"http": "http://p1:1", "https": "http://json:2"}',
        "ANACONDA_AUTH_PROXY_SERVERS__HTTPS": "http://nested:3",
    })
    assert dict(config.proxy_servers or {}) == {"http": "http://p1:1", "https": "http://nested:3"}


@pytest.mark.parametrize("variable, example", [
    ("ANACONDA_AUTH_PROXY_SERVERS", '"https": "http://proxy:3128"'),
    ("ANACONDA_AUTH_EXTRA_HEADERS", '"X-Team": "data-science"'),
    ("ANACONDA_AUTH_OIDC_REQUEST_HEADERS", '"X-Team": "data-science"'),
])
def test_a_dict_value_of_the_wrong_type_gets_an_example_of_its_own_field(sandbox, variable, example):
    with pytest.raises(aa.ConfigError) as info:
        sandbox.resolve(env={variable: '{"a": 1}'})
    message = str(info.value)
    assert variable in message and "wrong type" in message and example in message, message
    assert "\n" not in message


@pytest.mark.parametrize("method", ["GE T", "GET\r\nX-Injected: 1", "", "GET\x00"])
def test_request_refuses_a_method_that_is_not_an_http_token_before_any_connection(sandbox, method):
    config = sandbox.resolve(env={"ANACONDA_AUTH_DOMAIN": "127.0.0.1:9"})
    with pytest.raises(aa.ConfigError) as info:
        aa.request(method, "/api/x", config=config)
    message = str(info.value)
    assert "request(method=...)" in message and "is not an HTTP method" in message
    assert "\n" not in message and "\r" not in message


def test_dict_fields_deep_merge_across_sources(sandbox):
    sandbox.write_config('[plugin.auth.proxy_servers]\nhttp = "http://toml-http:1"\n')
    config = sandbox.resolve(env={"ANACONDA_AUTH_PROXY_SERVERS": '{"https": "http://env-https:2"}'})
    assert dict(config.proxy_servers or {}) == {"http": "http://toml-http:1",
                                                "https": "http://env-https:2"}
    assert "[plugin.auth]" in config.sources["proxy_servers"]
    assert "ANACONDA_AUTH_PROXY_SERVERS" in config.sources["proxy_servers"]


@pytest.mark.parametrize("word,value", [
    ("1", True), ("true", True), ("TRUE", True), ("yes", True), ("On", True), ("y", True),
    ("0", False), ("false", False), ("False", False), ("no", False), ("OFF", False), ("n", False),
])
def test_boolean_words_are_read_in_any_case(sandbox, word, value):
    config = sandbox.resolve(env={"ANACONDA_AUTH_USE_DEVICE_FLOW": word,
                                  "ANACONDA_AUTH_SSL_VERIFY": word})
    assert config.use_device_flow is value
    # CONTRACT §2: unlike the reference, "false" in the environment is not a CA path.
    assert config.ssl_verify is value


def test_toml_string_false_for_ssl_verify_means_false(sandbox):
    sandbox.write_config('[plugin.auth]\nssl_verify = "false"\n')
    assert sandbox.resolve().ssl_verify is False


def test_ssl_verify_keeps_truststore_and_existing_ca_paths(sandbox):
    ca = sandbox.root / "ca.pem"
    ca.write_text("pem\n")
    assert sandbox.resolve(env={"ANACONDA_AUTH_SSL_VERIFY": "truststore"}).ssl_verify == "truststore"
    assert sandbox.resolve(env={"ANACONDA_AUTH_SSL_VERIFY": str(ca)}).ssl_verify == str(ca)


def test_empty_api_key_variable_means_not_set(sandbox):
    assert sandbox.resolve(env={"ANACONDA_AUTH_API_KEY": ""}).api_key is None


def test_unknown_keys_and_variables_are_ignored(sandbox):
    sandbox.write_config('unknown_root = 1\n[plugin.auth]\nno_such_field = "x"\ndomain = "ok.example"\n')
    config = sandbox.resolve(env={"ANACONDA_AUTH_NO_SUCH_FIELD": "x"})
    assert config.domain == "ok.example"


def test_conda_and_navigator_only_fields_are_accepted(sandbox):
    sandbox.write_config('[plugin.auth]\nenv_manager_channel = "mine"\n'
                         '[plugin.auth.oidc_request_headers]\nX-Test = "1"\n')
    config = sandbox.resolve()
    assert config.env_manager_channel == "mine"


@pytest.mark.parametrize("given,stored", [("1.2.3", "=1.2.3"), ("==1.2.3", "==1.2.3"),
                                          (">1.2.3", ">1.2.3"), ("<=1.2.3", "<=1.2.3"),
                                          ("!=1.0", "!=1.0")])
def test_env_manager_version_gets_an_equals_sign_like_the_reference(sandbox, given, stored):
    assert sandbox.resolve(env={"ANACONDA_AUTH_ENV_MANAGER_VERSION": given}).env_manager_version == stored


def test_keyring_path_expands_variables_and_tilde(sandbox):
    config = sandbox.resolve(env={"ANACONDA_AUTH_KEYRING_PATH": "$STORE_DIR/kr",
                                  "STORE_DIR": str(sandbox.root / "elsewhere")})
    assert config.keyring_path == str(sandbox.root / "elsewhere" / "kr")
    config = sandbox.resolve(env={"ANACONDA_AUTH_KEYRING_PATH": "~/custom/kr"})
    assert config.keyring_path == str(sandbox.home / "custom" / "kr")


def test_config_file_location_comes_from_anaconda_config_toml(sandbox):
    other = sandbox.root / "other.toml"
    other.write_text('[plugin.auth]\ndomain = "other-file.example"\n')
    sandbox.write_config('[plugin.auth]\ndomain = "default-file.example"\n')
    config = sandbox.resolve(env={"ANACONDA_CONFIG_TOML": str(other)})
    assert config.domain == "other-file.example"
    assert config.config_path == str(other)
    assert str(other) in config.sources["domain"]


def test_config_file_is_read_again_on_every_resolve(sandbox):
    sandbox.write_config('[plugin.auth]\ndomain = "first.example"\n')
    assert sandbox.resolve().domain == "first.example"
    sandbox.write_config('[plugin.auth]\ndomain = "second.example"\n')
    assert sandbox.resolve().domain == "second.example"


def test_explicit_argument_that_is_no_setting_is_a_config_error(sandbox):
    with pytest.raises(aa.ConfigError, match="no_such_setting"):
        sandbox.resolve(no_such_setting=1)


# -- Legacy names ---------------------------------------------------------------------------------


def test_legacy_settings_warn_on_stderr_and_with_a_deprecation_warning_naming_the_fields(
        sandbox, capsys):
    sandbox.write_config('[plugin.cloud]\nssl_verify = false\n')
    with pytest.warns(DeprecationWarning) as recorded:
        config = sandbox.resolve(env={"ANACONDA_CLOUD_DOMAIN": "legacy.example"})
    assert config.domain == "legacy.example"
    assert config.ssl_verify is False
    messages = [str(w.message) for w in recorded if issubclass(w.category, DeprecationWarning)]
    assert len(messages) == 1
    assert '"domain", "ssl_verify"' in messages[0]  # sorted and double-quoted, as the reference
    assert "ANACONDA_CLOUD_" in messages[0]
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err_lines) == 1
    assert '"domain", "ssl_verify"' in err_lines[0]


def test_no_deprecation_warning_without_legacy_settings(sandbox, capsys):
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always")
        sandbox.resolve(env={"ANACONDA_AUTH_DOMAIN": "new.example"})
    assert [w for w in recorded if issubclass(w.category, DeprecationWarning)] == []
    assert capsys.readouterr().err == ""


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_auth_variables_beat_legacy_and_legacy_beats_plugin_auth(sandbox):
    sandbox.write_config('[plugin.auth]\nclient_id = "plugin-auth"\ndomain = "plugin.example"\n')
    config = sandbox.resolve(env={"ANACONDA_CLOUD_CLIENT_ID": "legacy",
                                  "ANACONDA_CLOUD_DOMAIN": "legacy.example",
                                  "ANACONDA_AUTH_DOMAIN": "auth.example"})
    assert config.domain == "auth.example"
    assert config.client_id == "legacy"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_legacy_domain_does_not_select_a_site(sandbox):
    sandbox.write_config(TWO_SITES)
    config = sandbox.resolve(env={"ANACONDA_CLOUD_DOMAIN": "beta.example:8443"})
    assert config.site == "alpha"
    assert config.domain == "alpha.example"  # the site table beats legacy values


# -- Site selection -------------------------------------------------------------------------------


def test_first_site_in_file_order_is_the_default(sandbox):
    sandbox.write_config(TWO_SITES)
    config = sandbox.resolve()
    assert (config.site, config.domain, config.ssl_verify) == ("alpha", "alpha.example", False)
    assert "[sites.alpha]" in config.sources["domain"]


def test_default_site_selects_by_name_or_by_domain(sandbox):
    sandbox.write_config('default_site = "beta"\n' + TWO_SITES)
    config = sandbox.resolve()
    assert (config.site, config.domain, config.use_device_flow) == ("beta", "beta.example:8443", False)
    sandbox.write_config('default_site = "beta.example:8443"\n' + TWO_SITES)
    assert sandbox.resolve().site == "beta"


def test_anaconda_default_site_variable_beats_the_file(sandbox):
    sandbox.write_config('default_site = "alpha"\n' + TWO_SITES)
    assert sandbox.resolve(env={"ANACONDA_DEFAULT_SITE": "beta"}).site == "beta"


def test_anaconda_default_site_from_secret_file_and_dotenv(sandbox):
    sandbox.write_config(TWO_SITES)
    sandbox.write_dotenv("ANACONDA_DEFAULT_SITE=beta\n")
    assert sandbox.resolve().site == "beta"
    sandbox.write_dotenv("")
    sandbox.write_secret("anaconda_default_site", "beta")
    assert sandbox.resolve().site == "beta"


def test_site_argument_selects_by_name_or_by_domain(sandbox):
    sandbox.write_config(TWO_SITES)
    assert sandbox.resolve("beta").domain == "beta.example:8443"
    # CONTRACT §8: a configured site's domain is accepted where a name is.
    by_domain = sandbox.resolve("beta.example:8443")
    assert (by_domain.site, by_domain.use_device_flow) == ("beta", False)


def test_site_variable_selects_a_site(sandbox):
    sandbox.write_config(TWO_SITES)
    assert sandbox.resolve(env={"ANACONDA_AUTH_SITE": "beta"}).site == "beta"


def test_domain_variable_selects_the_site_with_that_domain(sandbox):
    sandbox.write_config(TWO_SITES)
    config = sandbox.resolve(env={"ANACONDA_AUTH_DOMAIN": "beta.example:8443"})
    assert config.site == "beta"
    assert config.use_device_flow is False  # the site table applies


def test_domain_matching_no_site_uses_only_plugin_auth_and_defaults(sandbox):
    sandbox.write_config(TWO_SITES + '\n[plugin.auth]\nclient_id = "from-plugin-auth"\n')
    config = sandbox.resolve(env={"ANACONDA_AUTH_DOMAIN": "https://unlisted.example/"})
    assert config.domain == "unlisted.example"
    assert config.site == "unlisted.example"
    assert config.ssl_verify is True  # alpha's table did not apply
    assert config.client_id == "from-plugin-auth"


def test_anaconda_com_is_an_implicit_site_even_when_others_are_configured(sandbox):
    sandbox.write_config(TWO_SITES)
    config = sandbox.resolve("anaconda.com")
    assert (config.site, config.domain, config.ssl_verify) == ("anaconda.com", "anaconda.com", True)


def test_without_sites_the_implicit_anaconda_com_site_takes_plugin_auth(sandbox):
    # Reference behaviour notes §1.4: [plugin.auth] domain="localhost" with no sites gives
    # domain "localhost" while site stays "anaconda.com".
    sandbox.write_config('[plugin.auth]\ndomain = "localhost"\n')
    config = sandbox.resolve()
    assert config.domain == "localhost"
    assert config.site == "anaconda.com"
    # The same when other sites exist and the default names the implicit one.
    sandbox.write_config(TWO_SITES + '\n[plugin.auth]\ndomain = "localhost:8000"\n')
    config = sandbox.resolve(env={"ANACONDA_DEFAULT_SITE": "anaconda.com"})
    assert (config.site, config.domain) == ("anaconda.com", "localhost:8000")


def test_site_table_without_domain_inherits_plugin_auth_domain(sandbox):
    sandbox.write_config('[sites.nodomain]\nclient_id = "c"\n\n[plugin.auth]\ndomain = "pa.example"\n')
    config = sandbox.resolve()
    assert (config.site, config.domain, config.client_id) == ("nodomain", "pa.example", "c")


def test_a_site_inherits_plugin_auth_and_the_environment_beats_both(sandbox):
    sandbox.write_config('[plugin.auth]\nclient_id = "foo"\nssl_verify = false\n\n'
                         '[sites.local]\ndomain = "localhost"\nauth_domain_override = "auth-local"\n')
    config = sandbox.resolve("local")
    assert (config.client_id, config.ssl_verify, config.auth_domain) == ("foo", False, "auth-local")
    config = sandbox.resolve("local", env={"ANACONDA_AUTH_CLIENT_ID": "bar"})
    assert (config.client_id, config.ssl_verify) == ("bar", False)


def test_the_environment_fills_what_a_site_leaves_unset(sandbox):
    sandbox.write_config('[plugin.auth]\ndomain = "foo.example"\nclient_id = "baz"\n\n'
                         '[sites.local]\ndomain = "localhost"\nauth_domain_override = "auth-local"\n'
                         'ssl_verify = false\nclient_id = "bar"\n')
    config = sandbox.resolve("local", env={"ANACONDA_AUTH_API_KEY": "from-env"})
    assert config.api_key == "from-env"
    assert (config.domain, config.auth_domain_override, config.client_id, config.ssl_verify) == (
        "localhost", "auth-local", "bar", False)


def test_without_a_config_file_the_default_site_is_anaconda_com(sandbox):
    config = sandbox.resolve()
    assert (config.site, config.domain, config.auth_domain) == ("anaconda.com", "anaconda.com",
                                                                "anaconda.com")
    assert sandbox.resolve("anaconda.com").as_dict() == config.as_dict()
    with pytest.raises(aa.UnknownSiteName):
        sandbox.resolve("unknown-site")


def test_auth_domain_is_the_domain_unless_the_override_variable_is_set(sandbox):
    config = sandbox.resolve(env={"ANACONDA_AUTH_AUTH_DOMAIN_OVERRIDE": "another-auth.anaconda.com"})
    assert (config.domain, config.auth_domain) == ("anaconda.com", "another-auth.anaconda.com")


def test_sites_sharing_a_domain_resolve_by_name_only(sandbox):
    sandbox.write_config('[sites.local1]\ndomain = "localhost"\nssl_verify = false\n\n'
                         '[sites.local2]\ndomain = "localhost"\nssl_verify = true\n')
    assert sandbox.resolve("local1").ssl_verify is False
    assert sandbox.resolve("local2").ssl_verify is True
    with pytest.raises(ValueError, match="local1"):  # ConfigError, as the reference's ValueError
        sandbox.resolve("localhost")


@pytest.mark.parametrize("prefix", ["anaconda_auth", "anaconda_cloud"])
def test_secret_files_naming_no_setting_are_ignored(sandbox, prefix):
    before = sandbox.resolve()
    sandbox.write_secret(f"{prefix}_nonexistent", "set-in-docker-secret")
    config = sandbox.resolve()
    assert not hasattr(config, "nonexistent")
    assert "nonexistent" not in repr(config) + repr(dict(config.sources))
    assert config.as_dict() == before.as_dict()


def test_sites_from_the_environment(sandbox):
    config = sandbox.resolve("gamma", env={"ANACONDA_SITES__GAMMA__DOMAIN": "gamma.example"})
    assert (config.site, config.domain) == ("gamma", "gamma.example")
    config = sandbox.resolve("delta", env={"ANACONDA_SITES": '{"delta": {"domain": "d.example"}}'})
    assert config.domain == "d.example"


def test_unknown_site_name_is_an_error_naming_the_config_file(sandbox):
    sandbox.write_config(TWO_SITES)
    with pytest.raises(aa.UnknownSiteName) as info:
        sandbox.resolve("nope")
    assert "nope" in str(info.value)
    assert str(sandbox.config_toml) in str(info.value)


# -- Domain normalisation (behaviour notes §1.6) -------------------------------------------------

DOMAIN_EXAMPLES = [
    ("foo.com", "foo.com"), ("foo.com/", "foo.com"), ("foo.com/api/barhttps://foo.com/", "foo.com"),
    ("http://foo.com/", "foo.com"), ("https://foo.com/api/bar", "foo.com"),
    ("http://foo.com/api/bar", "foo.com"), ("localhost:8000", "localhost:8000"),
    ("http://localhost:8000", "localhost:8000"), ("http://localhost:8000/", "localhost:8000"),
    ("https://Foo.COM:8443/path", "Foo.COM:8443"),
]


@pytest.mark.parametrize("given,normalised", DOMAIN_EXAMPLES)
def test_domains_are_normalised_like_the_reference(sandbox, given, normalised):
    config = sandbox.resolve(env={"ANACONDA_AUTH_DOMAIN": given,
                                  "ANACONDA_AUTH_AUTH_DOMAIN_OVERRIDE": given})
    assert config.domain == normalised
    assert config.auth_domain_override == normalised
    assert config.site == normalised
    assert sandbox.resolve(domain=given).domain == normalised


@pytest.mark.parametrize("how", ["argument", "environment"])
@pytest.mark.parametrize("bad", ["http://", ""])
def test_a_domain_that_is_not_a_domain_is_a_config_error(sandbox, bad, how):
    with pytest.raises(aa.ConfigError):
        if how == "argument":
            sandbox.resolve(domain=bad)
        else:
            sandbox.resolve(env={"ANACONDA_AUTH_DOMAIN": bad})


def test_a_non_ascii_domain_without_an_idna_form_is_refused_when_read(sandbox):
    """Found by the adversarial tier: such a name was accepted, then request() raised a bare
    ValueError from the URL parser."""
    with pytest.raises(aa.ConfigError, match="ANACONDA_AUTH_DOMAIN.*(idna|IDNA)"):
        sandbox.resolve(env={"ANACONDA_AUTH_DOMAIN": "\u00a1"})


def test_a_non_ascii_domain_without_the_idna_package_says_what_to_do(sandbox):
    """urllib3 encodes such a name only with the idna package; without it (a vendored copy
    beside urllib3 alone), the name is refused when read, with the two ways out."""
    script = ("import sys; sys.modules['idna'] = None\n"  # as if it were not installed
              "import anaconda_auth as aa\n"
              "try:\n"
              "    aa.resolve_config(environ={'HOME': sys.argv[1], 'ANACONDA_AUTH_DOMAIN': "
              "'anac\\u00f6nda.com'}, home=sys.argv[1], cwd=sys.argv[1])\n"
              "except aa.ConfigError as e:\n"
              "    print(e)\n")
    done = run_captured([sys.executable, "-c", script, str(sandbox.home)], {
        "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(Path(__file__).resolve().parent)},
        str(sandbox.home))
    assert done.returncode == 0, done.stderr
    assert "ANACONDA_AUTH_DOMAIN" in done.stdout
    assert "install idna" in done.stdout and "xn--" in done.stdout


# -- The Config value -----------------------------------------------------------------------------


def test_config_is_immutable(sandbox):
    config = sandbox.resolve(env={"ANACONDA_AUTH_PROXY_SERVERS": '{"https": "http://p:1"}'})
    with pytest.raises(AttributeError, match="replace"):
        config.domain = "other.example"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.proxy_servers["http"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        config.sources["domain"] = "x"  # type: ignore[index]
    assert config.domain == "anaconda.com"


def test_replace_returns_a_validated_copy_and_records_the_source(sandbox):
    config = sandbox.resolve()
    changed = config.replace(domain="https://changed.example/path", use_device_flow="no")
    assert (changed.domain, changed.use_device_flow) == ("changed.example", False)
    assert "argument" in changed.sources["domain"]
    assert (config.domain, config.use_device_flow) == ("anaconda.com", True)
    assert changed != config
    assert config.replace() == config
    with pytest.raises(aa.ConfigError):
        config.replace(use_device_flow="maybe")
    with pytest.raises(aa.ConfigError):
        config.replace(no_such_field=1)


def test_repr_masks_secrets(sandbox):
    config = sandbox.resolve(env={
        "ANACONDA_AUTH_API_KEY": "sekrit-api-key-123",
        "ANACONDA_AUTH_KEYRING": json.dumps({SERVICE: {"anaconda.com": "c2VrcmV0LWtleXJpbmc="}}),
        "ANACONDA_AUTH_PROXY_SERVERS": '{"https": "http://user:proxy-pass-456@proxy:3128"}',
        "ANACONDA_AUTH_EXTRA_HEADERS": '{"Authorization": "Bearer header-secret-789"}',
    })
    text = repr(config)
    for secret in ("sekrit-api-key-123", "c2VrcmV0LWtleXJpbmc=", "proxy-pass-456", "header-secret-789"):
        assert secret not in text
    assert MASK in text
    assert "user:" in text  # the proxy user is shown, only its password is masked
    assert config.api_key == "sekrit-api-key-123"  # masked in repr only


def test_sources_say_where_each_value_came_from(sandbox):
    sandbox.write_config('[plugin.auth]\nclient_id = "toml-client"\n')
    config = sandbox.resolve(env={"ANACONDA_AUTH_DOMAIN": "env.example"})
    assert config.sources["domain"] == "environment variable ANACONDA_AUTH_DOMAIN"
    assert str(sandbox.config_toml) in config.sources["client_id"]
    assert "[plugin.auth]" in config.sources["client_id"]
    assert config.sources["redirect_uri"] == "default"
    assert set(config.sources) >= set(REFERENCE_FIELDS)


def test_derived_urls(sandbox):
    config = sandbox.resolve(domain="example.com", auth_domain_override="auth.example.com")
    assert config.auth_domain == "auth.example.com"
    assert config.well_known_url == "https://auth.example.com/.well-known/openid-configuration"
    # The success and error pages live on the domain, not on the auth domain.
    assert config.login_success_url == "https://example.com/app/local-login-success"
    assert config.login_error_url == "https://example.com/app/local-login-error"
    plain = sandbox.resolve(domain="localhost:8000", openid_config_path="/custom/.well-known")
    assert plain.auth_domain == "localhost:8000"
    assert plain.well_known_url == "https://localhost:8000/custom/.well-known"


# -- Bad configuration input: ConfigError naming the source ---------------------------------------


def test_malformed_config_toml_error_names_the_file_and_line(sandbox):
    sandbox.write_config('[plugin.auth]\ndomain = "ok.example"\nbroken = = 2\nother = 3\n')
    with pytest.raises(aa.ConfigError) as info:
        sandbox.resolve()
    assert str(sandbox.config_toml) in str(info.value)
    assert "line 3" in str(info.value), str(info.value)


def test_default_site_naming_no_site_is_a_config_error(sandbox):
    sandbox.write_config('default_site = "missing"\n' + TWO_SITES)
    with pytest.raises(aa.ConfigError) as info:
        sandbox.resolve()
    assert "missing" in str(info.value)
    assert str(sandbox.config_toml) in str(info.value)
    sandbox.write_config(TWO_SITES)
    with pytest.raises(aa.ConfigError, match="missing"):
        sandbox.resolve(env={"ANACONDA_DEFAULT_SITE": "missing"})


def test_ambiguous_domain_is_a_config_error_naming_both_sites(sandbox):
    sandbox.write_config('[sites.one]\ndomain = "dup.example"\n\n[sites.two]\ndomain = "dup.example"\n')
    with pytest.raises(aa.ConfigError) as info:
        sandbox.resolve("dup.example")
    assert "one" in str(info.value) and "two" in str(info.value)


def test_ssl_verify_pointing_to_a_missing_file_is_a_config_error_naming_the_source(sandbox):
    missing = str(sandbox.root / "no-such-ca.pem")
    with pytest.raises(aa.ConfigError) as info:
        sandbox.resolve(env={"ANACONDA_AUTH_SSL_VERIFY": missing})
    assert "ANACONDA_AUTH_SSL_VERIFY" in str(info.value) and missing in str(info.value)
    sandbox.write_config(f'[plugin.auth]\nssl_verify = "{missing}"\n')
    with pytest.raises(aa.ConfigError) as info:
        sandbox.resolve()
    assert str(sandbox.config_toml) in str(info.value)


@pytest.mark.parametrize("variable", ["ANACONDA_AUTH_EXTRA_HEADERS", "ANACONDA_AUTH_PROXY_SERVERS",
                                      "ANACONDA_AUTH_KEYRING"])
def test_bad_json_in_a_json_valued_variable_is_a_config_error_naming_it(sandbox, variable):
    with pytest.raises(aa.ConfigError) as info:
        sandbox.resolve(env={variable: "{not json"})
    assert variable in str(info.value)


@pytest.mark.parametrize("variable", ["ANACONDA_AUTH_USE_DEVICE_FLOW", "ANACONDA_AUTH_HASH_HOSTNAME",
                                      "ANACONDA_AUTH_USE_UNIFIED_REPO_API_KEY"])
def test_boolean_variable_that_is_no_boolean_word_is_a_config_error(sandbox, variable):
    with pytest.raises(aa.ConfigError) as info:
        sandbox.resolve(env={variable: "maybe"})
    assert variable in str(info.value) and "maybe" in str(info.value)


def test_unknown_token_storage_is_a_config_error(sandbox):
    with pytest.raises(aa.ConfigError) as info:
        sandbox.resolve(env={"ANACONDA_AUTH_PREFERRED_TOKEN_STORAGE": "vault"})
    assert "vault" in str(info.value) and "ANACONDA_AUTH_PREFERRED_TOKEN_STORAGE" in str(info.value)
    sandbox.write_config('[plugin.auth]\npreferred_token_storage = "vault"\n')
    with pytest.raises(aa.ConfigError, match="vault"):
        sandbox.resolve()


def test_ssl_verify_that_is_neither_bool_nor_string_is_a_config_error(sandbox):
    sandbox.write_config("[plugin.auth]\nssl_verify = 0\n")
    with pytest.raises(aa.ConfigError, match="ssl_verify"):
        sandbox.resolve()


def test_plain_config_toml_is_read_even_without_a_toml_parser(sandbox):
    sandbox.write_config('[plugin.auth]\ndomain = "toml.example"\n')
    code = ("import sys; sys.modules['tomli'] = None; sys.modules['tomllib'] = None\n"
            "import anaconda_auth as aa\nprint(aa.resolve_config().domain)\n")
    result = sandbox.python(code)
    assert_ok(result)
    assert result.stdout.strip() == "toml.example"


def test_config_toml_needs_tomli_only_before_python_3_11(sandbox):
    """Without tomllib or tomli a config.toml beyond the plain subset is a clear error."""
    sandbox.write_config('[plugin.auth]\ndomain = "toml.example"\nlisted = ["a", "b"]\n')
    code = ("import sys; sys.modules['tomli'] = None\n"
            "import anaconda_auth as aa\n"
            "try:\n    print(aa.resolve_config().domain)\n"
            "except aa.ConfigError as e:\n    print('ConfigError', e)\n")
    result = sandbox.python(code)
    assert_ok(result)
    if sys.version_info >= (3, 11):
        assert result.stdout.strip() == "toml.example"
    else:
        assert result.stdout.startswith("ConfigError")
        assert "tomli" in result.stdout and str(sandbox.config_toml) in result.stdout


def test_dotenv_quoted_value_followed_by_a_comment_loses_its_quotes(sandbox):
    sandbox.write_dotenv('ANACONDA_AUTH_DOMAIN="example.com" # prod\n'
                         "ANACONDA_AUTH_API_KEY='abc' # ci\n")
    config = sandbox.resolve()
    assert (config.domain, config.api_key) == ("example.com", "abc")


def test_dotenv_that_is_not_utf8_is_a_config_error_naming_it(sandbox):
    (sandbox.cwd / ".env").write_bytes(b"ANACONDA_AUTH_DOMAIN=caf\xe9.com\n")
    with pytest.raises(aa.ConfigError, match=r"\.env.*UTF-8"):
        sandbox.resolve()
    result = sandbox.cli("api-key")
    assert_ok(result, 2)
    assert str(sandbox.cwd / ".env") in result.stderr
    assert_no_traceback(result)


def test_condarc_that_is_not_utf8_is_ignored_with_a_warning(sandbox):
    (sandbox.home / ".condarc").write_bytes(b"ssl_verify: false # caf\xe9\n")
    sandbox.store("anaconda.com", "k")
    result = sandbox.cli("api-key")
    assert_ok(result)
    assert result.stdout == "k\n"
    assert ".condarc" in result.stderr and "ignored" in result.stderr


@pytest.mark.parametrize("host, port, no_proxy, bypass", [
    ("anaconda.com", 443, "*", True),
    ("anaconda.com", 443, " * ", True),
    ("anaconda.com", 443, "", False),
    ("anaconda.com", 443, "anaconda.com", True),
    ("repo.anaconda.com", 443, "anaconda.com", True),
    ("repo.anaconda.com", 443, ".anaconda.com", True),
    ("repo.anaconda.com", 443, "example.test, ANACONDA.COM", True),
    ("notanaconda.com", 443, "anaconda.com", False),
    ("anaconda.com.evil.test", 443, "anaconda.com", False),
    ("anaconda.com", 443, "anaconda.com:443", True),
    ("anaconda.com", 8443, "anaconda.com:443", False),
    ("127.0.0.1", 8080, "127.0.0.1", True),
    ("127.0.0.10", 8080, "127.0.0.1", False),
    ("anaconda.com", 443, ",, ,", False),
])
def test_no_proxy_matching(host, port, no_proxy, bypass):
    """Issue 8 §2: our own NO_PROXY reading (urllib's is undocumented); the requests through a
    real proxy are in tests/test_http.py."""
    assert aa._no_proxy_matches(host, port, no_proxy) is bypass


@pytest.mark.parametrize("system", ["missing", "bypass", "no-bypass"])
def test_system_proxy_exceptions_and_their_absence(sandbox, monkeypatch, system):
    """The system's proxy settings (macOS, Windows) come with exceptions that only
    urllib.request.proxy_bypass reads; without it every host uses the proxy."""
    import urllib.request

    proxies = ({"https": "http://proxy.example:3128"}, False)  # False: not from the environment
    monkeypatch.setattr(aa, "_discovered_proxies", lambda: proxies)
    if system == "missing":
        monkeypatch.delattr(urllib.request, "proxy_bypass")
    else:
        monkeypatch.setattr(urllib.request, "proxy_bypass", lambda host: system == "bypass")
    config = sandbox.resolve()
    want = None if system == "bypass" else "http://proxy.example:3128"
    assert aa._proxy_for(("https", "anaconda.com", 443), config) == want


def test_condarc_flow_mapping_for_proxy_servers_is_read(sandbox):
    (sandbox.home / ".condarc").write_text(
        'proxy_servers: {http: "http://p:3128", https: http://q:3128}\n')
    assert dict(sandbox.resolve().proxy_servers or {}) == {
        "http": "http://p:3128", "https": "http://q:3128"}


def test_invalid_conda_setting_is_skipped_with_a_warning(sandbox):
    (sandbox.home / ".condarc").write_text("ssl_verify: /no/such/ca.pem\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = sandbox.resolve()
    assert config.ssl_verify is True  # conda's bad value did not stop anything
    assert any("/no/such/ca.pem" in str(w.message) for w in caught)


def test_client_cert_key_without_client_cert_is_accepted_as_the_reference_does(sandbox):
    config = sandbox.resolve(client_cert_key="/tmp/key.pem")
    assert (config.client_cert, config.client_cert_key) == (None, "/tmp/key.pem")


def test_tilde_user_paths_are_not_glued_to_home(sandbox):
    config = sandbox.resolve(env={"ANACONDA_AUTH_KEYRING_PATH": "~root/kr"})
    assert config.keyring_path == os.path.expanduser("~root/kr")
    config = sandbox.resolve(env={"ANACONDA_AUTH_KEYRING_PATH": "~/kr"})
    assert config.keyring_path == str(sandbox.home / "kr")


def test_secret_file_source_names_the_file_exactly(sandbox):
    sandbox.write_secret("anaconda_auth_client_id", "from-secret")
    config = sandbox.resolve()
    assert config.client_id == "from-secret"
    assert config.sources["client_id"] == f"secret file {sandbox.secrets}/anaconda_auth_client_id"


def test_network_calls_without_urllib3_say_what_to_install(sandbox):
    code = ("import sys; sys.modules['urllib3'] = None\n"
            "import anaconda_auth as aa\n"
            "try:\n    aa.request('GET', '/x')\n"
            "except aa.AnacondaAuthError as e:\n    print(e)\n")
    result = sandbox.python(code, env={"ANACONDA_SECRETS_DIR": str(sandbox.secrets)})
    assert_ok(result)
    assert "pip install urllib3" in result.stdout


def test_sites_from_the_environment_name_the_variable_as_their_source(sandbox):
    env = {"ANACONDA_SITES__x__domain": "x.example",
           "ANACONDA_SITES__x__proxy_servers__https": "http://p:3128"}
    config = sandbox.resolve(env=env)
    assert config.site == "x" and dict(config.proxy_servers or {}) == {"https": "http://p:3128"}
    assert "ANACONDA_SITES" in config.sources["domain"]
    assert "config.toml" not in config.sources["domain"]
    with pytest.raises(aa.ConfigError, match="ANACONDA_SITES"):
        sandbox.resolve(env={"ANACONDA_SITES": '{"x": "oops"}'})


# =================================================================================================
# Token storage
# =================================================================================================


def test_stored_value_is_byte_identical_to_the_reference(sandbox):
    aa.login(sandbox.resolve(), api_key="abc", verify=False)
    assert sandbox.keyring_bytes() == (
        b'{"Anaconda Cloud": {"anaconda.com": "' + REFERENCE_ABC_PAYLOAD.encode() + b'"}}'
    )


def test_resaving_keeps_username_and_repo_tokens_in_the_reference_field_order(sandbox):
    tokens = [{"token": "repo-t", "org_name": "org"}, {"token": "repo-u"}]
    sandbox.store("anaconda.com", "old-key", username="alice", repo_tokens=tokens)
    aa.login(sandbox.resolve(), api_key="new-key", verify=False)
    value = sandbox.read_keyring()[SERVICE]["anaconda.com"]  # type: ignore[index]
    assert base64.b64decode(value).decode() == (
        '{"domain":"anaconda.com","api_key":"new-key","username":"alice",'
        '"repo_tokens":[{"token":"repo-t","org_name":"org"},{"token":"repo-u"}],"version":2}'
    )


def test_file_store_keeps_other_domains_and_services_in_the_reference_layout(sandbox):
    a_value = payload_b64("a.example", "key-a")
    sandbox.write_keyring({"other service": {"u": "p"}, SERVICE: {"a.example": a_value}})
    aa.login(sandbox.resolve(domain="b.example"), api_key="key-b", verify=False)
    b_value = payload_b64("b.example", "key-b")
    assert sandbox.keyring_bytes() == (
        f'{{"other service": {{"u": "p"}}, "Anaconda Cloud": {{"a.example": "{a_value}", "b.example": "{b_value}"}}}}'
    ).encode()
    assert aa.logout(sandbox.resolve(domain="b.example")) is True
    assert aa.logout(sandbox.resolve(domain="a.example")) is True
    # An emptied service object is kept, as in the reference.
    assert sandbox.keyring_bytes() == b'{"other service": {"u": "p"}, "Anaconda Cloud": {}}'


def test_file_store_is_created_0600_in_a_new_0700_directory(sandbox):
    old_umask = os.umask(0o022)
    try:
        aa.login(sandbox.resolve(), api_key="abc", verify=False)
    finally:
        os.umask(old_umask)
    assert modes_of(sandbox.anaconda_dir) == 0o700
    assert modes_of(sandbox.keyring_file) == 0o600


def test_a_world_readable_store_from_the_reference_becomes_0600_on_save(sandbox):
    sandbox.store("anaconda.com", "old")
    os.chmod(sandbox.keyring_file, 0o644)
    aa.login(sandbox.resolve(), api_key="new", verify=False)
    assert modes_of(sandbox.keyring_file) == 0o600


def test_saving_leaves_no_temporary_files(sandbox):
    for index in range(5):
        aa.login(sandbox.resolve(domain=f"host{index}.example"), api_key=f"k{index}", verify=False)
    aa.logout(sandbox.resolve(domain="host0.example"))
    assert sandbox.leftover_files() == []
    assert len(sandbox.stored_entries()) == 4


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_failure_during_the_write_leaves_the_old_file_intact(sandbox, monkeypatch, failing):
    before = sandbox.store("anaconda.com", "old-key")

    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(aa.StorageError) as info:
        aa.login(sandbox.resolve(), api_key="new-key", verify=False)
    monkeypatch.undo()
    assert str(sandbox.keyring_file) in str(info.value)
    assert sandbox.keyring_bytes() == before
    assert sandbox.leftover_files() == []


def test_saving_through_a_symlink_updates_its_target(sandbox):
    target = sandbox.root / "dotfiles" / "keyring"
    target.parent.mkdir()
    sandbox.anaconda_dir.mkdir()
    sandbox.keyring_file.symlink_to(target)
    aa.login(sandbox.resolve(), api_key="abc", verify=False)
    assert sandbox.keyring_file.is_symlink()
    assert json.loads(target.read_bytes())[SERVICE]["anaconda.com"] == REFERENCE_ABC_PAYLOAD


CONCURRENT_WRITER = r"""
import sys
import anaconda_auth as aa
home, secrets, index, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
environ = {"HOME": home, "ANACONDA_SECRETS_DIR": secrets}
configs = [aa.resolve_config(domain=f"host{index}-{j}.example", environ=environ, home=home, cwd=home)
           for j in range(count)]
print("ready", flush=True)
sys.stdin.readline()  # the start line: every writer is loaded before any of them writes
for config in configs:
    aa.login(config, api_key=f"key-{config.domain}", verify=False)
"""


def test_ten_processes_storing_keys_concurrently_lose_nothing(sandbox):
    processes, per_process = 10, 5
    env = sandbox.cli_env()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_WRITER, str(sandbox.home), str(sandbox.secrets),
             str(index), str(per_process)],
            cwd=sandbox.cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        for index in range(processes)
    ]
    try:
        for writer in writers:
            assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
        for writer in writers:  # start them all at once
            writer.stdin.write("go\n")
            writer.stdin.flush()
        for writer in writers:
            _, err = writer.communicate(timeout=SUBPROCESS_TIMEOUT)
            assert writer.returncode == 0, err
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    entries = sandbox.stored_entries()
    expected = {f"host{i}-{j}.example" for i in range(processes) for j in range(per_process)}
    assert set(entries) == expected
    assert all(entries[d]["api_key"] == f"key-{d}" for d in expected)
    assert sandbox.leftover_files() == []


# -- A damaged store is reported, never overwritten -----------------------------------------------

CORRUPT_FILES = {
    "invalid-json": b'{"Anaconda Cloud": {"anaconda.com": ',
    "json-list": b'["Anaconda Cloud"]',
    "service-not-an-object": b'{"Anaconda Cloud": "eyJ9"}',
    "not-utf8": b"\xff\xfe\x00garbage",
}


@pytest.mark.parametrize("content", CORRUPT_FILES.values(), ids=list(CORRUPT_FILES))
def test_corrupt_keyring_file_is_never_overwritten(sandbox, content):
    sandbox.write_keyring(content)
    config = sandbox.resolve()
    with pytest.raises(aa.StorageError) as info:
        aa.login(config, api_key="new-key", verify=False)
    assert str(sandbox.keyring_file) in str(info.value)
    assert "mv " in str(info.value) or "Move" in str(info.value)  # says how to recover
    with pytest.raises(aa.StorageError):
        aa.get_api_key(config)
    with pytest.raises(aa.StorageError):
        aa.logout(config)
    assert sandbox.keyring_bytes() == content
    assert sandbox.leftover_files() == []


@pytest.mark.parametrize("content", CORRUPT_FILES.values(), ids=list(CORRUPT_FILES))
def test_cli_with_a_corrupt_keyring_file_exits_1_and_keeps_it(sandbox, content):
    sandbox.write_keyring(content)
    for args, stdin in ((("api-key",), None), (("login", "--with-token", "--no-verify"), "new-key\n"),
                        (("logout",), None)):
        result = sandbox.cli(*args, stdin=stdin)
        assert_ok(result, 1)
        assert "StorageError" in result.stderr and str(sandbox.keyring_file) in result.stderr
        assert_no_traceback(result)
    assert sandbox.keyring_bytes() == content


def test_entry_that_is_not_base64_is_reported_and_other_entries_survive(sandbox):
    good = payload_b64("other.example", "other-key")
    sandbox.write_keyring({SERVICE: {"anaconda.com": "%%% not base64 %%%", "other.example": good}})
    with pytest.raises(aa.StorageError) as info:
        aa.get_api_key(sandbox.resolve())
    assert "anaconda.com" in str(info.value) and str(sandbox.keyring_file) in str(info.value)
    assert "login" in str(info.value)  # says how to recover
    # Storing for another site leaves the damaged entry exactly as it was.
    aa.login(sandbox.resolve(domain="third.example"), api_key="third-key", verify=False)
    stored = sandbox.read_keyring()[SERVICE]  # type: ignore[index]
    assert stored["anaconda.com"] == "%%% not base64 %%%"
    assert stored["other.example"] == good
    # Logging in again for the damaged site is the recovery the message names.
    aa.login(sandbox.resolve(), api_key="fresh-key", verify=False)
    assert aa.get_api_key(sandbox.resolve()) == "fresh-key"


def test_entry_that_is_base64_but_not_json_is_a_storage_error(sandbox):
    sandbox.write_keyring({SERVICE: {"anaconda.com": base64.b64encode(b"not json").decode()}})
    with pytest.raises(aa.StorageError, match="anaconda.com"):
        aa.get_api_key(sandbox.resolve())


def test_cli_with_a_non_base64_entry_exits_1(sandbox):
    before = sandbox.write_keyring({SERVICE: {"anaconda.com": "!!!"}})
    result = sandbox.cli("api-key")
    assert_ok(result, 1)
    assert "StorageError" in result.stderr
    assert_no_traceback(result)
    assert sandbox.keyring_bytes() == before


def test_keyring_path_that_is_a_directory_is_reported_and_left_alone(sandbox):
    sandbox.keyring_file.mkdir(parents=True)
    (sandbox.keyring_file / "inside").write_text("x")
    config = sandbox.resolve()
    with pytest.raises(aa.StorageError, match="directory"):
        aa.get_api_key(config)
    with pytest.raises(aa.StorageError, match="directory"):
        aa.login(config, api_key="new-key", verify=False)
    assert (sandbox.keyring_file / "inside").read_text() == "x"
    result = sandbox.cli("login", "--with-token", "--no-verify", stdin="new-key\n")
    assert_ok(result, 1)
    assert "directory" in result.stderr and str(sandbox.keyring_file) in result.stderr
    assert_no_traceback(result)
    assert sandbox.keyring_file.is_dir()


def test_unreadable_keyring_file_is_reported_and_left_alone(sandbox):
    before = sandbox.store("anaconda.com", "stored-key")
    os.chmod(sandbox.keyring_file, 0)
    prefix = drop_file_permission_override()
    try:
        for args, stdin in ((("api-key",), None), (("login", "--with-token", "--no-verify"), "new-key\n")):
            result = sandbox.cli(*args, stdin=stdin, prefix=prefix)
            assert_ok(result, 1)
            assert "permission denied" in result.stderr.lower()
            assert str(sandbox.keyring_file) in result.stderr
            assert "stored-key" not in result.stdout
            assert_no_traceback(result)
        assert modes_of(sandbox.keyring_file) == 0
    finally:
        os.chmod(sandbox.keyring_file, 0o600)
    assert sandbox.keyring_bytes() == before


def test_stored_payload_without_optional_fields_is_read(sandbox):
    minimal = base64.b64encode(b'{"domain":"anaconda.com","api_key":"minimal-key"}').decode()
    sandbox.write_keyring({SERVICE: {"anaconda.com": minimal}})
    assert aa.get_api_key(sandbox.resolve()) == "minimal-key"
    result = sandbox.cli("api-key")
    assert_ok(result)
    assert result.stdout == "minimal-key\n"


def test_stored_payload_without_api_key_is_a_storage_error(sandbox):
    broken = base64.b64encode(b'{"domain":"anaconda.com","version":2}').decode()
    before = sandbox.write_keyring({SERVICE: {"anaconda.com": broken}})
    with pytest.raises(aa.StorageError, match="api_key"):
        aa.get_api_key(sandbox.resolve())
    result = sandbox.cli("api-key")
    assert_ok(result, 1)
    assert "api_key" in result.stderr
    assert_no_traceback(result)
    assert sandbox.keyring_bytes() == before


# -- Legacy domains -------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", ["anaconda.cloud", "id.anaconda.cloud"])
def test_legacy_domain_entry_migrates_to_anaconda_com_on_read(sandbox, legacy):
    legacy_value = base64.b64encode(json.dumps(
        {"domain": legacy, "api_key": "legacy-key", "username": "bob", "repo_tokens": [],
         "version": 1}, separators=(",", ":")).encode()).decode()
    sandbox.write_keyring({SERVICE: {legacy: legacy_value, "other.example": "b3RoZXI="}})
    assert aa.get_api_key(sandbox.resolve()) == "legacy-key"
    stored = sandbox.read_keyring()[SERVICE]  # type: ignore[index]
    assert legacy not in stored
    assert stored["other.example"] == "b3RoZXI="
    assert stored["anaconda.com"] == payload_b64("anaconda.com", "legacy-key", username="bob")


def test_id_anaconda_cloud_is_tried_before_anaconda_cloud(sandbox):
    sandbox.write_keyring({SERVICE: {
        "anaconda.cloud": payload_b64("anaconda.cloud", "older"),
        "id.anaconda.cloud": payload_b64("id.anaconda.cloud", "newer"),
    }})
    assert aa.get_api_key(sandbox.resolve()) == "newer"


def test_legacy_entries_belong_only_to_anaconda_com(sandbox):
    sandbox.write_keyring({SERVICE: {"anaconda.cloud": payload_b64("anaconda.cloud", "legacy")}})
    with pytest.raises(aa.TokenNotFoundError):
        aa.get_api_key(sandbox.resolve(domain="other.example"))
    assert "anaconda.cloud" in sandbox.read_keyring()[SERVICE]  # type: ignore[index]


def test_system_storage_without_a_bus_falls_back_to_the_file_with_one_warning(sandbox):
    env = {"ANACONDA_AUTH_PREFERRED_TOKEN_STORAGE": "system"}  # cli_env has no D-Bus address
    started = time.monotonic()
    result = sandbox.cli("login", "--with-token", "--no-verify", stdin="fallback-key\n", env=env)
    elapsed = time.monotonic() - started
    print(f"login --with-token with 'system' storage and no bus took {elapsed:.2f} s")
    assert_ok(result)
    assert result.stderr.count("system keyring is not usable") == 1, result.stderr
    assert sandbox.stored_entries()["anaconda.com"]["api_key"] == "fallback-key"

    result = sandbox.cli("api-key", env=env)
    assert_ok(result)
    assert result.stdout == "fallback-key\n"
    assert result.stderr.count("system keyring is not usable") == 1, result.stderr


def test_truncated_keyring_file_is_reported_as_damaged_not_as_a_keyring_problem(sandbox):
    content = b'{"Anaconda Cloud": {"anaconda.com": "eyJkb21h'  # a half-written file
    sandbox.write_keyring(content)
    result = sandbox.cli("api-key")  # json is not imported on this path: the C scanner's errors
    assert_ok(result, 1)
    assert "StorageError" in result.stderr and "not valid JSON" in result.stderr
    assert "system keyring" not in result.stderr
    assert sandbox.keyring_bytes() == content


def test_jwt_shaped_key_with_a_bad_payload_has_unknown_expiry(sandbox):
    result = sandbox.cli("api-key", env={"ANACONDA_AUTH_API_KEY": "a.e2JhZA.c"})
    assert_ok(result)
    assert result.stdout == "a.e2JhZA.c\n"


def test_store_on_a_file_that_cannot_be_renamed_over_is_rewritten_in_place(sandbox, monkeypatch):
    """A keyring bind-mounted on its own (docker -v file:file) refuses rename with EBUSY."""
    import errno

    sandbox.store("other.example", "other-key")
    real_replace = os.replace

    def busy(src: str, dst: str) -> None:
        if dst == str(sandbox.keyring_file):
            raise OSError(errno.EBUSY, "Device or resource busy")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", busy)
    inode = sandbox.keyring_file.stat().st_ino
    aa.login(sandbox.resolve(), api_key="new-key", verify=False)
    assert sandbox.keyring_file.stat().st_ino == inode  # the same file, rewritten
    assert {d: e["api_key"] for d, e in sandbox.stored_entries().items()} == {
        "other.example": "other-key", "anaconda.com": "new-key"}
    assert sandbox.leftover_files() == []


def test_root_rewriting_a_users_store_keeps_the_user_as_owner(sandbox):
    """``sudo -E ... login --with-token``: the new file must stay readable by its user."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root to own files as another user (CI runs as root)",
                    pytrace=False)
    sandbox.store("other.example", "other-key")
    os.chown(sandbox.keyring_file.parent, 65534, 65534)  # the user's ~/.anaconda and store
    os.chown(sandbox.keyring_file, 65534, 65534)
    aa.login(sandbox.resolve(), api_key="new-key", verify=False)
    info = sandbox.keyring_file.stat()
    assert (info.st_uid, info.st_gid) == (65534, 65534)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert set(sandbox.stored_entries()) == {"other.example", "anaconda.com"}


def test_legacy_entry_is_returned_even_when_it_cannot_be_moved(sandbox):
    """A read-only store (~/.anaconda and the file not writable, as for a user, not root)."""
    before = sandbox.store("anaconda.cloud", "legacy-key")
    os.chmod(sandbox.keyring_file, 0o444)
    os.chmod(sandbox.anaconda_dir, 0o555)
    try:
        result = sandbox.cli("api-key", prefix=drop_file_permission_override())
    finally:
        os.chmod(sandbox.anaconda_dir, 0o700)
        os.chmod(sandbox.keyring_file, 0o600)
    assert_ok(result)
    assert result.stdout == "legacy-key\n"
    assert "anaconda.cloud" in result.stderr and "\n" not in result.stderr.strip()
    assert sandbox.keyring_bytes() == before



PLAIN_JSON_CORPUS = [
    '{}', '[]', ' {"a": "b"} ', '{"a": [1, -2, 0, true, false, null, {"b": []}]}', '"x"', "7",
    '{"a": "\\u00e9\\n\\t\\"\\\\\\/"}', '{"a": 1, "a": 2}', '{"a": "\u2028\xa0"}',
    # Beyond the plain subset or invalid: json.loads decides.
    "1.5", "1e3", "-0", "01", "-", "Infinity", '"\\ud83d\\ude00"', '"\\ud800"', '{"a": 1,}', "[1,]",
    '{"a" 1}', '"tab\there"', '"\\x41"', "", "  ", '{"a": 1} x', "[1] [2]", '"unterminated',
    "tru", "nul", "[" * 3000 + "]" * 3000,
]


@pytest.mark.parametrize("text", PLAIN_JSON_CORPUS, ids=range(len(PLAIN_JSON_CORPUS)))
@pytest.mark.parametrize("shortcut", ["on", "forced off"])
def test_json_reader_agrees_with_json_loads(text, shortcut, monkeypatch):
    """The start-up shortcut reads what json.loads reads, the same way; anything it does not
    read goes to json.loads, with json's own errors (forced here for every text)."""
    if shortcut == "forced off":
        def decline(text: str, pos: int) -> Any:
            raise ValueError("not plain")

        monkeypatch.setattr(aa, "_plain_json_value", decline)
    try:
        expected: Any = json.loads(text)
    except (ValueError, RecursionError) as e:
        expected = type(e)
    try:
        got: Any = aa._json_loads(text)
    except (ValueError, RecursionError) as e:
        got = type(e)
    assert got == expected


def test_json_reader_never_disagrees_with_json_loads_on_mutated_documents(monkeypatch):
    """What the shortcut reads (with json made unimportable, the shortcut alone can answer),
    it reads as json.loads does."""
    import random

    rng = random.Random(20261203)
    bases = ['{"Anaconda Cloud": {"anaconda.com": "eyJkb21haW4iOiJhIn0="}, "x": {}}',
             ('{"domain":"a.b","api_key":"k","repo_tokens":[{"token":"t","org_name":"o"}],'
              '"version":2}'), '{"sub": "u\\u00e9", "exp": 1700000000, "aud": ["a", "b"]}']
    alphabet = list('{}[]":,\\ \t\nabu0123456789-.eEtrfnl/') + ["\x01", "\u00e9"]
    cases: list[tuple[str, Any]] = []
    for text in mutated(rng, bases, alphabet, 20000, edits=3):
        try:
            cases.append((text, json.loads(text)))
        except ValueError:
            cases.append((text, ValueError))
    # Only now: json's own error path imports lazily on 3.13, so json.loads must run before.
    monkeypatch.setitem(sys.modules, "json", None)  # `import json` now raises ImportError
    plain = 0
    for text, expected in cases:
        try:
            value = aa._json_loads(text)
        except ImportError:
            continue  # not plain JSON: the module would have asked json
        plain += 1
        assert value == expected, text
    assert plain > 1000  # the check above really ran


def test_stored_keys_are_read_with_the_json_shortcut_forced_off(sandbox, monkeypatch):
    sandbox.store("anaconda.com", "key-1", username="alice", repo_tokens=[{"token": "t"}])

    def decline(text: str, pos: int) -> Any:
        raise ValueError("not plain")

    monkeypatch.setattr(aa, "_plain_json_value", decline)
    assert aa.get_api_key(sandbox.resolve()) == "key-1"

# =================================================================================================
# Public API
# =================================================================================================


def test_get_api_key_lookup_order(sandbox):
    sandbox.store("anaconda.com", "stored-key")
    keyring_setting = json.dumps({SERVICE: {"anaconda.com": payload_b64("anaconda.com", "setting-key")}})
    env = {"ANACONDA_AUTH_API_KEY": "env-key", "ANACONDA_AUTH_KEYRING": keyring_setting}
    assert aa.get_api_key(sandbox.resolve(env=env, api_key="explicit-key")) == "explicit-key"
    assert aa.get_api_key(sandbox.resolve(env=env)) == "env-key"
    del env["ANACONDA_AUTH_API_KEY"]
    sandbox.write_dotenv("ANACONDA_AUTH_API_KEY=dotenv-key\n")
    assert aa.get_api_key(sandbox.resolve(env=env)) == "dotenv-key"
    sandbox.write_dotenv("")
    sandbox.write_config('[plugin.auth]\napi_key = "toml-key"\n')
    assert aa.get_api_key(sandbox.resolve(env=env)) == "toml-key"
    sandbox.config_toml.unlink()
    assert aa.get_api_key(sandbox.resolve(env=env)) == "setting-key"
    assert aa.get_api_key(sandbox.resolve()) == "stored-key"


def test_api_key_from_a_secret_file(sandbox):
    sandbox.write_secret("anaconda_auth_api_key", "secret-file-key\n")
    assert aa.get_api_key(sandbox.resolve()) == "secret-file-key"


def test_keyring_setting_is_read_only_and_never_creates_the_file(sandbox):
    setting = json.dumps({SERVICE: {"anaconda.com": payload_b64("anaconda.com", "setting-key")}})
    config = sandbox.resolve(env={"ANACONDA_AUTH_KEYRING": setting})
    assert aa.get_api_key(config) == "setting-key"
    assert sandbox.keyring_bytes() is None


def test_missing_key_error_says_what_to_run(sandbox):
    with pytest.raises(aa.TokenNotFoundError) as info:
        aa.get_api_key(sandbox.resolve())
    assert "python -m anaconda_auth login" in str(info.value)
    sandbox.write_config(TWO_SITES)
    with pytest.raises(aa.TokenNotFoundError) as info:
        aa.get_api_key(sandbox.resolve("beta"))
    assert "--at beta login" in str(info.value)


def test_expired_key_error_says_what_to_run_and_when_it_expired(sandbox):
    expired_at = int(time.time()) - 7200
    sandbox.store("anaconda.com", make_jwt({"exp": expired_at}))
    with pytest.raises(aa.TokenExpiredError) as info:
        aa.get_api_key(sandbox.resolve())
    message = str(info.value)
    # Both ways to replace it: a new login, or the key a provisioned machine was handed again.
    assert "python -m anaconda_auth login --force (or python -m anaconda_auth login --with-token" in message
    assert time.strftime("%Y-%m-%d %H:%M", time.gmtime(expired_at)) in message
    assert "UTC" in message


@pytest.mark.parametrize("zone,offset", [("Asia/Tokyo", "+0900"), ("America/New_York", None)])
@pytest.mark.parametrize("seconds_left,expected_exit", [(3600, 0), (-3600, 3)])
def test_expiry_is_compared_in_real_utc_whatever_the_time_zone(sandbox, zone, offset, seconds_left,
                                                              expected_exit):
    probe = sandbox.python("import time; print(time.strftime('%z'))", env={"TZ": zone})
    if offset is not None:  # the zone really applies (tzdata present), or the test proves nothing
        assert probe.stdout.strip() == offset
    else:
        assert probe.stdout.strip() in ("-0500", "-0400")
    key = key_expiring_in(seconds_left)
    sandbox.store("anaconda.com", key)
    result = sandbox.cli("api-key", env={"TZ": zone})
    assert_ok(result, expected_exit)
    if expected_exit == 0:
        assert result.stdout == key + "\n"
    else:
        assert "TokenExpiredError" in result.stderr and key not in result.stdout


UNKNOWN_EXPIRY_KEYS = {
    "not-a-jwt": "plain-opaque-api-key",
    "jwt-without-exp": make_jwt({"sub": "x"}),
    "non-numeric-exp": make_jwt({"exp": "tomorrow"}),
    "boolean-exp": make_jwt({"exp": True}),
    "three-parts-not-json": "abc.def.ghi",
}


@pytest.mark.parametrize("key", UNKNOWN_EXPIRY_KEYS.values(), ids=list(UNKNOWN_EXPIRY_KEYS))
def test_key_with_unknown_expiry_is_used_as_is(sandbox, key):
    config = sandbox.resolve()
    assert aa.login(config, api_key=key, verify=False) == key
    assert aa.get_api_key(config) == key
    result = sandbox.cli("api-key")
    assert_ok(result)
    assert result.stdout == key + "\n"
    status = sandbox.cli("status", "--json")
    assert_ok(status)
    reported = json.loads(status.stdout)
    assert reported["expires_at"] is None and reported["logged_in"] is True
    assert key not in status.stdout + status.stderr


def test_status_of_a_key_expiring_beyond_the_platform_clock_does_not_crash(sandbox):
    key = make_jwt({"exp": 1e20})
    sandbox.store("anaconda.com", key)
    assert aa.get_api_key(sandbox.resolve()) == key
    result = sandbox.cli("status")
    assert_ok(result)
    assert_no_traceback(result)
    assert "Unexpected error" not in result.stderr


def test_login_with_api_key_stores_it_and_returns_it(sandbox):
    key = key_expiring_in(LONG_LIVED)
    config = sandbox.resolve()
    assert aa.login(config, api_key=key, verify=False) == key
    assert sandbox.stored_entries()["anaconda.com"] == json.loads(payload_json("anaconda.com", key))
    assert aa.get_api_key(config) == key


def test_login_with_api_key_stores_under_the_selected_sites_domain(sandbox):
    sandbox.write_config(TWO_SITES)
    aa.login(sandbox.resolve("beta"), api_key="beta-key", verify=False)
    assert set(sandbox.stored_entries()) == {"beta.example:8443"}


def test_login_refuses_an_expired_key_and_stores_nothing(sandbox):
    before = sandbox.store("anaconda.com", "still-good")
    with pytest.raises(aa.AuthenticationError, match="expired"):
        aa.login(sandbox.resolve(), api_key=key_expiring_in(-60), verify=False)
    assert sandbox.keyring_bytes() == before


@pytest.mark.parametrize("bad", ["", "   ", "two words"])
def test_login_refuses_an_empty_or_spaced_key(sandbox, bad):
    with pytest.raises(aa.AuthenticationError):
        aa.login(sandbox.resolve(), api_key=bad, verify=False)
    assert sandbox.keyring_bytes() is None


def test_login_returns_an_unexpired_stored_key_without_logging_in_again(sandbox):
    key = key_expiring_in(LONG_LIVED)
    sandbox.store("anaconda.com", key)
    assert aa.login(sandbox.resolve()) == key


def test_logout_deletes_the_key_and_is_idempotent(sandbox):
    sandbox.store("anaconda.com", "k1")
    sandbox.store("other.example", "k2")
    config = sandbox.resolve()
    assert aa.logout(config) is True
    assert set(sandbox.stored_entries()) == {"other.example"}
    assert aa.logout(config) is False
    with pytest.raises(aa.TokenNotFoundError):
        aa.get_api_key(config)


def test_logout_of_anaconda_com_deletes_the_legacy_entries_too(sandbox):
    sandbox.write_keyring({SERVICE: {
        "anaconda.com": payload_b64("anaconda.com", "new"),
        "anaconda.cloud": payload_b64("anaconda.cloud", "legacy"),
        "other.example": payload_b64("other.example", "other"),
    }})
    assert aa.logout(sandbox.resolve()) is True
    assert set(sandbox.stored_entries()) == {"other.example"}


def test_logout_with_only_a_legacy_entry_returns_true(sandbox):
    sandbox.write_keyring({SERVICE: {"anaconda.cloud": payload_b64("anaconda.cloud", "legacy")}})
    assert aa.logout(sandbox.resolve()) is True
    assert sandbox.stored_entries() == {}


def test_logout_without_a_store_returns_false_and_creates_nothing(sandbox):
    assert aa.logout(sandbox.resolve()) is False
    assert not sandbox.anaconda_dir.exists()


def test_logout_warns_when_a_configured_key_still_applies(sandbox):
    sandbox.store("anaconda.com", "stored")
    config = sandbox.resolve(env={"ANACONDA_AUTH_API_KEY": "env-key"})
    with pytest.warns(UserWarning) as recorded:
        assert aa.logout(config) is True
    message = " ".join(str(w.message) for w in recorded)
    assert "ANACONDA_AUTH_API_KEY" in message
    assert "env-key" not in message
    assert sandbox.stored_entries() == {}


# -- What names a site: a Config, a site name, a configured domain, or None ----------------------
# The reference's login(site=...), logout(site=...): the same calls work here (issue 9).


@pytest.fixture
def process_sandbox(sandbox, monkeypatch):
    """The sandbox as this process's own HOME and working directory, for functions given a site
    name (which resolve the configuration of the process)."""
    monkeypatch.setenv("HOME", str(sandbox.home))
    monkeypatch.setenv("ANACONDA_SECRETS_DIR", str(sandbox.secrets))
    monkeypatch.chdir(sandbox.cwd)
    sandbox.write_config(TWO_SITES)
    sandbox.store("alpha.example", "alpha-key")
    sandbox.store("beta.example:8443", "beta-key")
    return sandbox


SITE_SPELLINGS = {
    "config": lambda sb: sb.resolve("beta"),
    "name": lambda sb: "beta",
    "domain": lambda sb: "beta.example:8443",
}


@pytest.mark.parametrize("keyword", [False, True], ids=["positional", "site="])
@pytest.mark.parametrize("spelling", SITE_SPELLINGS.values(), ids=list(SITE_SPELLINGS))
def test_get_api_key_is_logged_in_and_logout_take_any_spelling_of_a_site(process_sandbox, spelling,
                                                                         keyword):
    site = spelling(process_sandbox)

    def call(function: Callable[..., Any]) -> Any:
        return function(site=site) if keyword else function(site)

    assert call(aa.get_api_key) == "beta-key"
    assert call(aa.is_logged_in) is True
    assert call(aa.logout) is True
    assert set(process_sandbox.stored_entries()) == {"alpha.example"}
    assert call(aa.is_logged_in) is False


@pytest.mark.parametrize("spelling", SITE_SPELLINGS.values(), ids=list(SITE_SPELLINGS))
def test_login_with_a_key_stores_it_under_the_site_however_it_is_named(process_sandbox, spelling):
    key = key_expiring_in(3600)
    assert aa.login(spelling(process_sandbox), api_key=key, verify=False) == key
    assert aa.login(site=spelling(process_sandbox), api_key=key, verify=False) == key
    assert process_sandbox.stored_entries()["beta.example:8443"]["api_key"] == key
    assert process_sandbox.stored_entries()["alpha.example"]["api_key"] == "alpha-key"


def test_none_means_the_default_site(process_sandbox):
    assert aa.get_api_key() == aa.get_api_key(None) == aa.get_api_key(site=None) == "alpha-key"
    assert aa.is_logged_in() is True


PUBLIC_SITE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "get_api_key": aa.get_api_key,
    "is_logged_in": aa.is_logged_in,
    "logout": aa.logout,
    "login": lambda *a, **kw: aa.login(*a, api_key="some-key", verify=False, **kw),
    "whoami": aa.whoami,
    "request": lambda *a, **kw: aa.request("GET", "/api/account", *a, **kw),
}


def _call_with_site(name: str, value: Any, keyword: bool) -> Any:
    function = PUBLIC_SITE_FUNCTIONS[name]
    if name == "request":  # its config is keyword-only, as before
        return function(**{"site" if keyword else "config": value})
    return function(site=value) if keyword else function(value)


@pytest.mark.parametrize("keyword", [False, True], ids=["config", "site="])
@pytest.mark.parametrize("value", [1, b"beta", ["beta"], True], ids=["int", "bytes", "list", "bool"])
@pytest.mark.parametrize("name", list(PUBLIC_SITE_FUNCTIONS))
def test_anything_but_a_config_a_string_or_none_is_a_type_error_naming_the_accepted_types(
        process_sandbox, name, value, keyword):
    before = process_sandbox.keyring_bytes()
    with pytest.raises(TypeError) as info:
        _call_with_site(name, value, keyword)
    message = str(info.value)
    assert message.startswith(f"{name}(): ")
    assert "Config" in message and "site name" in message and "None" in message
    assert type(value).__name__ in message
    assert process_sandbox.keyring_bytes() == before


@pytest.mark.parametrize("name", list(PUBLIC_SITE_FUNCTIONS))
def test_an_unknown_or_empty_site_is_unknown_site_name_and_nothing_changes(process_sandbox, name):
    before = process_sandbox.keyring_bytes()
    for value in ("nope", "nope.example", "", "  "):
        with pytest.raises(aa.UnknownSiteName):
            _call_with_site(name, value, keyword=value == "nope")
    assert process_sandbox.keyring_bytes() == before


@pytest.mark.parametrize("name", list(PUBLIC_SITE_FUNCTIONS))
def test_a_domain_two_sites_share_is_a_config_error_naming_both(process_sandbox, name):
    process_sandbox.write_config(TWO_SITES + '\n[sites.gamma]\ndomain = "beta.example:8443"\n')
    before = process_sandbox.keyring_bytes()
    with pytest.raises(aa.ConfigError) as info:
        _call_with_site(name, "beta.example:8443", keyword=False)
    assert "beta" in str(info.value) and "gamma" in str(info.value)
    assert process_sandbox.keyring_bytes() == before


def test_config_and_site_together_is_an_error(process_sandbox):
    with pytest.raises(ValueError, match="not both"):
        aa.get_api_key("alpha", site="beta")
    with pytest.raises(ValueError, match="not both"):
        aa.logout(process_sandbox.resolve("alpha"), site="alpha")
    assert set(process_sandbox.stored_entries()) == {"alpha.example", "beta.example:8443"}


# -- login(): the reference's keywords --------------------------------------------------------------


def test_login_basic_is_refused_citing_rfc_9700_and_nothing_happens(process_sandbox):
    before = process_sandbox.keyring_bytes()
    for kwargs in ({}, {"force": True}, {"api_key": "k"}):
        with pytest.raises(aa.ConfigError) as info:
            aa.login("beta", basic=True, **kwargs)
        assert "RFC 9700" in str(info.value) and "password" in str(info.value)
    assert process_sandbox.keyring_bytes() == before


def test_login_use_device_flow_that_contradicts_flow_is_an_error(process_sandbox):
    with pytest.raises(aa.ConfigError, match="disagree"):
        aa.login("beta", force=True, flow="browser", use_device_flow=True)
    with pytest.raises(aa.ConfigError, match="disagree"):
        aa.login("beta", force=True, flow="device", use_device_flow=False)


def test_login_ssl_verify_is_validated_like_any_setting(process_sandbox):
    with pytest.raises(aa.ConfigError, match="ssl_verify"):
        aa.login("beta", api_key="k", ssl_verify=str(process_sandbox.root / "missing-ca.pem"))
    assert process_sandbox.stored_entries()["beta.example:8443"]["api_key"] == "beta-key"


def test_login_without_force_returns_the_valid_stored_key_whatever_the_flow_keywords(process_sandbox):
    key = key_expiring_in(LONG_LIVED)
    process_sandbox.store("beta.example:8443", key)
    assert aa.login("beta", use_device_flow=False, ssl_verify=False) == key
    assert aa.login(site="beta", use_device_flow=True) == key


# -- is_logged_in(): offline ---------------------------------------------------------------------------


@pytest.mark.parametrize("key,expected", [
    (key_expiring_in(3600), True),
    (key_expiring_in(-3600), False),
    ("opaque-key-of-unknown-expiry", True),
], ids=["valid", "expired", "unknown-expiry"])
def test_is_logged_in_is_true_only_for_a_key_that_has_not_expired(sandbox, key, expected):
    sandbox.store("anaconda.com", key)
    assert aa.is_logged_in(sandbox.resolve()) is expected
    configured = sandbox.resolve(env={"ANACONDA_AUTH_API_KEY": key})
    sandbox.keyring_file.unlink()
    assert aa.is_logged_in(configured) is expected


def test_is_logged_in_without_a_key_is_false_and_creates_nothing(sandbox):
    assert aa.is_logged_in(sandbox.resolve()) is False
    assert not sandbox.anaconda_dir.exists()


def test_is_logged_in_never_touches_the_network(sandbox):
    # A subprocess in which every socket fails: the answer still comes (and urllib3 is not even
    # imported).
    sandbox.store("anaconda.com", key_expiring_in(3600))
    code = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise AssertionError('network used')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "import anaconda_auth as aa\n"
        "print(aa.is_logged_in(), aa.is_logged_in('anaconda.com'), 'urllib3' in sys.modules)\n"
    )
    result = sandbox.python(code)
    assert_ok(result)
    assert result.stdout.split() == ["True", "True", "False"]


def test_is_logged_in_reports_a_damaged_store_instead_of_guessing(sandbox):
    sandbox.write_keyring(b"{not json")
    with pytest.raises(aa.StorageError):
        aa.is_logged_in(sandbox.resolve())
    assert sandbox.keyring_bytes() == b"{not json"


# =================================================================================================
# Panel OAuth provider (the parts that need no Panel; tests/panel/ runs it in `panel serve`)
# =================================================================================================


def panel_site(sandbox: Sandbox, key: Any = "client", secret: Any = "secret",
               extra: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Any:
    # (What one Panel server checked is cached per process; each test starts with reset_caches.)
    return aa._panel_site(key, secret, extra, environ={**sandbox.environ, **(env or {})})


@pytest.mark.parametrize(("key", "secret", "setting"), [
    (None, "s", "PANEL_OAUTH_KEY"), ("", "s", "PANEL_OAUTH_KEY"), ("k", None, "PANEL_OAUTH_SECRET"),
    ("k", "  ", "PANEL_OAUTH_SECRET")])
def test_panel_settings_without_key_or_secret_name_the_variable(sandbox, key, secret, setting):
    with pytest.raises(aa.ConfigError) as error:
        panel_site(sandbox, key, secret)
    assert setting in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(("extra", "env", "source"), [
    ({"site": "gamma"}, {}, "--oauth-extra-params"),
    (None, {"ANACONDA_AUTH_SITE": "gamma"}, "ANACONDA_AUTH_SITE")])
def test_panel_settings_with_an_unknown_site_name_it_and_where_it_came_from(sandbox, extra, env, source):
    sandbox.write_config(TWO_SITES)
    with pytest.raises(aa.ConfigError) as error:
        panel_site(sandbox, extra=extra, env=env)
    message = str(error.value)
    assert "gamma" in message and source in message and "\n" not in message


def test_panel_settings_with_a_site_that_is_not_a_name_are_refused(sandbox):
    with pytest.raises(aa.ConfigError, match="'site' must be a site name"):
        panel_site(sandbox, extra={"site": 3})


@pytest.mark.parametrize(("claims", "claim"), [
    ({"email": "a@x", "preferred_username": "a", "sub": "1"}, "email"),
    ({"email": "", "preferred_username": "a", "sub": "1"}, "preferred_username"),
    ({"sub": "1"}, "sub"), ({"name": "A"}, None)])
def test_panel_user_is_named_by_email_then_preferred_username_then_sub(claims, claim):
    assert aa._panel_user_claim(claims) == claim


def test_panel_handler_is_listed_where_panel_is_importable_but_never_exported(tmp_path, monkeypatch):
    # `from anaconda_auth import *` must not import Panel; where Panel can be imported, dir()
    # and tab completion show the handler (a package named panel on the path is enough to say so).
    import importlib

    assert "AnacondaLoginHandler" not in aa.__all__
    assert "AnacondaLoginHandler" not in dir(aa)  # this venv has no Panel
    (tmp_path / "panel").mkdir()
    (tmp_path / "panel" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert "AnacondaLoginHandler" in dir(aa)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        aa.NoSuchName  # noqa: B018


# =================================================================================================
# Command line
# =================================================================================================


def test_version_prints_the_version(sandbox):
    result = sandbox.cli("--version")
    assert_ok(result)
    assert aa.__version__ in result.stdout


def test_help_lists_every_command_and_the_global_options(sandbox):
    result = sandbox.cli("--help")
    assert_ok(result)
    for word in ("login", "logout", "api-key", "status", "config", "sites", "--at", "--verbose",
                 "--version"):
        assert word in result.stdout, word
    bare = sandbox.cli()
    assert_ok(bare)
    assert "api-key" in bare.stdout


def test_login_help_offers_with_token(sandbox):
    result = sandbox.cli("login", "--help")
    assert_ok(result)
    assert "--with-token" in result.stdout


def test_unknown_command_is_a_usage_error(sandbox):
    result = sandbox.cli("no-such-command")
    assert_ok(result, 2)


def test_api_key_prints_only_the_key_on_stdout(sandbox):
    key = key_expiring_in(90 * 86400)  # beyond expiry_warning_days: nothing at all on stderr
    sandbox.store("anaconda.com", key)
    result = sandbox.cli("api-key")
    assert_ok(result)
    assert result.stdout == key + "\n"
    assert result.stderr == ""


def test_api_key_from_the_environment(sandbox):
    result = sandbox.cli("api-key", env={"ANACONDA_AUTH_API_KEY": "env-key"})
    assert_ok(result)
    assert result.stdout == "env-key\n"


def test_api_key_without_a_key_exits_3_with_a_hint_and_no_prompt_off_a_terminal(sandbox):
    result = sandbox.cli("api-key")
    assert_ok(result, 3)
    assert "TokenNotFoundError" in result.stderr
    assert "python -m anaconda_auth login" in result.stderr
    assert "Continue with interactive login" not in result.stderr + result.stdout
    assert result.stdout == ""
    assert_no_traceback(result)


def test_api_key_with_an_expired_key_exits_3(sandbox):
    sandbox.store("anaconda.com", key_expiring_in(-3600))
    result = sandbox.cli("api-key")
    assert_ok(result, 3)
    assert "TokenExpiredError" in result.stderr and "--force" in result.stderr
    assert result.stdout == ""


def test_at_selects_the_site_by_name_or_domain(sandbox):
    sandbox.write_config(TWO_SITES)
    sandbox.store("alpha.example", "alpha-key")
    sandbox.store("beta.example:8443", "beta-key")
    assert sandbox.cli("api-key").stdout == "alpha-key\n"
    assert sandbox.cli("--at", "beta", "api-key").stdout == "beta-key\n"
    assert sandbox.cli("--at", "beta.example:8443", "api-key").stdout == "beta-key\n"
    assert sandbox.cli("--at=beta", "api-key").stdout == "beta-key\n"


def test_api_key_with_extra_arguments_is_a_usage_error(sandbox):
    sandbox.store("anaconda.com", "some-key")
    for args in (("api-key", "extra"), ("api-key", "--json"), ("--at",)):
        result = sandbox.cli(*args)
        assert_ok(result, 2)
        assert "some-key" not in result.stdout


# -- --at before or after the command; the reference's auth/cloud groups and token ---------------
# Each command that acts on a site, with what it shows for the site "beta" of TWO_SITES (whose
# key is stored) and no network: the output must name beta's key or domain, never alpha's.
SITE_COMMANDS: dict[str, tuple[list[str], str | None, int]] = {
    # name: (argv without --at, stdin, exit code)
    "login": (["login", "--with-token", "--no-verify"], "new-beta-key\n", 0),
    "logout": (["logout"], None, 0),
    "api-key": (["api-key"], None, 0),
    "status": (["status", "--json"], None, 0),
    "config": (["config", "--json"], None, 0),
    "sites show": (["sites", "show"], None, 0),
    "whoami": (["whoami"], None, 3),  # beta's key is removed first: login required, offline
}


def _prepare_site_command(sandbox: Sandbox, name: str) -> bytes:
    """TWO_SITES with alpha's and (but for whoami) beta's keys stored; the store's bytes."""
    sandbox.write_config(TWO_SITES)
    sandbox.write_keyring({})
    sandbox.store("alpha.example", "alpha-key")
    if name != "whoami":
        sandbox.store("beta.example:8443", "beta-key")
    return sandbox.keyring_bytes() or b""


def _run_site_command(sandbox: Sandbox, name: str, at: list[str]) -> tuple[Any, dict]:
    """Run the command with the --at words placed as ``at`` says ("<" = the command)."""
    argv, stdin, _ = SITE_COMMANDS[name]
    cut = at.index("<") if "<" in at else -1
    before, after = at[:cut] if cut >= 0 else [], at[cut + 1:]
    result = sandbox.cli(*before, *argv, *after, stdin=stdin)
    return result, sandbox.stored_entries()


def _assert_acted_on_beta(name: str, result: Any, stored: dict) -> None:
    assert_ok(result, SITE_COMMANDS[name][2])
    out = result.stdout + result.stderr
    assert "alpha" not in out.replace("alpha-key", ""), out  # alpha's key never shown either
    if name == "login":
        assert stored["beta.example:8443"]["api_key"] == "new-beta-key"
    elif name == "logout":
        assert set(stored) == {"alpha.example"}
    elif name == "api-key":
        assert result.stdout == "beta-key\n"
    elif name in ("status", "sites show"):
        assert json.loads(result.stdout)["site"] == "beta"
    elif name == "config":
        assert json.loads(result.stdout)["values"]["site"]["value"] == "beta"
    else:
        assert "beta.example:8443" in result.stderr and "TokenNotFoundError" in result.stderr
    if name not in ("login", "logout"):
        assert stored["alpha.example"]["api_key"] == "alpha-key"


@pytest.mark.parametrize("placement", [
    ["--at", "beta", "<"], ["<", "--at", "beta"], ["<", "--at=beta"], ["--at=beta", "<"],
    ["--at", "beta", "<", "--at", "beta.example:8443"],  # the same site twice is fine
], ids=["before", "after", "after=", "before=", "both-same-site"])
@pytest.mark.parametrize("name", list(SITE_COMMANDS))
def test_at_before_or_after_the_command_selects_the_site(sandbox, name, placement):
    _prepare_site_command(sandbox, name)
    result, stored = _run_site_command(sandbox, name, placement)
    if placement[-1] == "beta.example:8443":  # a name and a domain are different words
        assert_ok(result, 2)
        return
    _assert_acted_on_beta(name, result, stored)


@pytest.mark.parametrize("placement", [
    ["--at", "alpha", "<", "--at", "beta"], ["<", "--at", "alpha", "--at", "beta"],
    ["--at", "alpha", "--at", "beta", "<"],
], ids=["before-and-after", "after-twice", "before-twice"])
@pytest.mark.parametrize("name", list(SITE_COMMANDS))
def test_at_twice_with_different_sites_is_a_usage_error_naming_both(sandbox, name, placement):
    before = _prepare_site_command(sandbox, name)
    result, _ = _run_site_command(sandbox, name, placement)
    assert_ok(result, 2)
    assert "'alpha'" in result.stderr and "'beta'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == ""
    assert sandbox.keyring_bytes() == before


def test_sites_show_with_a_site_and_a_different_at_is_a_usage_error(sandbox):
    sandbox.write_config(TWO_SITES)
    result = sandbox.cli("sites", "show", "alpha", "--at", "beta")
    assert_ok(result, 2)
    assert "'alpha'" in result.stderr and "'beta'" in result.stderr
    assert json.loads(sandbox.cli("sites", "show", "beta", "--at", "beta").stdout)["site"] == "beta"


@pytest.mark.parametrize("at", [["--at", ""], ["--at="], ["--at", "  "]], ids=["empty", "empty=", "blank"])
@pytest.mark.parametrize("name", list(SITE_COMMANDS))
@pytest.mark.parametrize("where", ["before", "after"])
def test_an_empty_at_is_a_one_line_usage_error_and_nothing_changes(sandbox, name, at, where):
    placement = [*at, "<"] if where == "before" else ["<", *at]
    before = _prepare_site_command(sandbox, name)
    result, _ = _run_site_command(sandbox, name, placement)
    assert_ok(result, 2)
    assert "--at" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sandbox.keyring_bytes() == before
    assert_no_traceback(result)


@pytest.mark.parametrize("args", [
    ("login", "--bogus"), ("--bogus", "login"), ("api-key", "--bogus"), ("--bogus", "api-key"),
    ("logout", "--force"), ("auth", "logout", "--bogus"), ("token", "extra"),
])
def test_unknown_flags_are_one_line_usage_errors_and_nothing_changes(sandbox, args):
    before = sandbox.store("anaconda.com", "the-key")
    result = sandbox.cli(*args, stdin="another-key\n")
    assert_ok(result, 2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "--help" in lines[0], result.stderr
    assert result.stdout == "" and sandbox.keyring_bytes() == before


def test_a_domain_two_sites_share_is_a_one_line_error_exit_2_and_nothing_changes(sandbox):
    sandbox.write_config(TWO_SITES + '\n[sites.gamma]\ndomain = "beta.example:8443"\n')
    before = sandbox.store("beta.example:8443", "beta-key")
    for args in (["logout", "--at", "beta.example:8443"], ["--at", "beta.example:8443", "api-key"],
                 ["auth", "login", "--with-token", "--at", "beta.example:8443"]):
        result = sandbox.cli(*args, stdin="new-key\n")
        assert_ok(result, 2)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "beta" in lines[0] and "gamma" in lines[0], result.stderr
        assert result.stdout == "" and sandbox.keyring_bytes() == before


@pytest.mark.parametrize("group", ["auth", "cloud"])
@pytest.mark.parametrize("name", ["login", "logout", "api-key", "status", "whoami"])
def test_auth_and_cloud_groups_do_what_the_plain_command_does(sandbox, group, name):
    _prepare_site_command(sandbox, name)
    plain, plain_stored = _run_site_command(sandbox, name, ["<", "--at", "beta"])
    argv, stdin, _ = SITE_COMMANDS[name]
    for words in ([group, *argv, "--at", "beta"], ["--at", "beta", group, *argv],
                  [group, "--at", "beta", *argv]):
        _prepare_site_command(sandbox, name)
        grouped = sandbox.cli(*words, stdin=stdin)
        assert (grouped.returncode, grouped.stdout, grouped.stderr) == (
            plain.returncode, plain.stdout, plain.stderr), words
        assert sandbox.stored_entries() == plain_stored
    _assert_acted_on_beta(name, plain, plain_stored)


@pytest.mark.parametrize("words", [["token"], ["auth", "token"], ["--at", "beta", "token"],
                                   ["token", "--at", "beta"], ["cloud", "token", "--at=beta"]])
def test_token_is_api_key(sandbox, words):
    sandbox.write_config(TWO_SITES)
    sandbox.store("alpha.example", "alpha-key")
    sandbox.store("beta.example:8443", "beta-key")
    result = sandbox.cli(*words)
    assert_ok(result)
    assert result.stdout == ("beta-key\n" if "beta" in " ".join(words) else "alpha-key\n")
    assert result.stderr == ""


def test_a_group_without_a_command_prints_the_help(sandbox):
    for group in ("auth", "cloud"):
        result = sandbox.cli(group)
        assert_ok(result)
        assert "login" in result.stdout


def test_a_group_with_a_command_it_does_not_have_is_a_one_line_usage_error(sandbox):
    result = sandbox.cli("auth", "sites", "list")
    assert_ok(result, 2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "'sites'" in lines[0] and "login" in lines[0]


def test_help_lists_each_command_once_and_mentions_the_aliases(sandbox):
    result = sandbox.cli("--help")
    assert_ok(result)
    # "options:" is "optional arguments:" before Python 3.10.
    text = result.stdout.replace("optional arguments:", "options:")
    commands_block = text.split("positional arguments:")[1].split("options:")[0]
    listed = [line.split()[0] for line in commands_block.splitlines()
              if line.startswith("    ") and not line.startswith("     ")]
    assert listed == ["login", "logout", "api-key", "whoami", "status", "request", "config", "sites"]
    epilog = text.split("options:")[1]
    for mention in ("auth COMMAND", "cloud COMMAND", "token", "--at SITE may also follow"):
        assert mention in epilog, mention
    assert "token" in result.stdout.split("api-key", 1)[1].split("whoami")[0]  # next to api-key
    for command in ("login", "logout", "whoami", "api-key", "status", "config"):
        assert "--at SITE" in sandbox.cli(command, "--help").stdout, command
    assert "--at SITE" in sandbox.cli("sites", "show", "--help").stdout


def test_at_an_unknown_site_exits_2(sandbox):
    sandbox.write_config(TWO_SITES)
    result = sandbox.cli("--at", "nope", "api-key")
    assert_ok(result, 2)
    assert "nope" in result.stderr and str(sandbox.config_toml) in result.stderr
    assert_no_traceback(result)


def test_status_reports_site_domain_source_storage_and_expiry_but_never_the_key(sandbox):
    key = key_expiring_in(10.5 * 86400)
    sandbox.store("anaconda.com", key)
    result = sandbox.cli("status")
    assert_ok(result)
    assert key not in result.stdout + result.stderr
    for text in ("anaconda.com", str(sandbox.keyring_file), "anaconda-keyring", "10 days left"):
        assert text in result.stdout, text

    result = sandbox.cli("status", "--json")
    assert_ok(result)
    assert key not in result.stdout + result.stderr
    status = json.loads(result.stdout)
    assert status["site"] == "anaconda.com" and status["domain"] == "anaconda.com"
    assert status["logged_in"] is True and status["expired"] is False
    assert str(sandbox.keyring_file) in status["key_source"]
    assert status["storage"] == "anaconda-keyring"
    assert status["days_left"] == 10
    assert status["expires_at"].endswith("UTC")


def test_status_with_a_key_from_the_environment_names_the_variable(sandbox):
    result = sandbox.cli("status", "--json", env={"ANACONDA_AUTH_API_KEY": "env-secret-key"})
    assert_ok(result)
    assert "env-secret-key" not in result.stdout + result.stderr
    assert "ANACONDA_AUTH_API_KEY" in json.loads(result.stdout)["key_source"]


def test_status_without_a_key_exits_3(sandbox):
    result = sandbox.cli("status", "--json")
    assert_ok(result, 3)
    status = json.loads(result.stdout)
    assert status["logged_in"] is False and status["key_source"] is None


def test_status_with_an_expired_key_exits_3(sandbox):
    key = key_expiring_in(-3600)
    sandbox.store("anaconda.com", key)
    result = sandbox.cli("status")
    assert_ok(result, 3)
    assert "expired" in result.stdout
    assert key not in result.stdout + result.stderr


def test_config_shows_values_with_sources_and_masks_secrets(sandbox):
    secrets_ = {
        "ANACONDA_AUTH_API_KEY": "cfg-secret-key-1",
        "ANACONDA_AUTH_EXTRA_HEADERS": '{"Authorization": "Bearer cfg-header-2", "X-Plain": "shown"}',
        "ANACONDA_AUTH_PROXY_SERVERS": '{"https": "http://u:cfg-proxy-pass-3@proxy:3128"}',
        "ANACONDA_AUTH_DOMAIN": "cfg.example",
    }
    for args in (("config",), ("config", "--json")):
        result = sandbox.cli(*args, env=secrets_)
        assert_ok(result)
        output = result.stdout + result.stderr
        for secret in ("cfg-secret-key-1", "cfg-header-2", "cfg-proxy-pass-3"):
            assert secret not in output
        assert MASK in result.stdout and "shown" in result.stdout
        assert "ANACONDA_AUTH_DOMAIN" in result.stdout and "cfg.example" in result.stdout
    shown = json.loads(result.stdout)
    assert shown["config_path"] == str(sandbox.config_toml)
    assert shown["values"]["domain"] == {"value": "cfg.example",
                                         "source": "environment variable ANACONDA_AUTH_DOMAIN"}
    assert shown["values"]["api_key"]["value"] == MASK
    assert shown["values"]["client_id"]["source"] == "default"


def test_sites_list_shows_every_site_the_default_and_who_is_logged_in(sandbox):
    sandbox.write_config('default_site = "beta"\n' + TWO_SITES)
    sandbox.store("alpha.example", "alpha-key")
    result = sandbox.cli("sites", "list")
    assert_ok(result)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["Site", "name", "Domain", "name", "Default", "site", "Logged", "in"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows["alpha"] == ["alpha.example", "✔︎"]
    assert rows["beta"] == ["beta.example:8443", "✔︎"]
    # Column positions: alpha is logged in (last column), beta is the default (third column).
    header = lines[0]
    alpha_line = next(line for line in lines if line.startswith("alpha"))
    beta_line = next(line for line in lines if line.startswith("beta"))
    assert alpha_line.index("✔") >= header.index("Logged in")
    assert header.index("Default site") <= beta_line.index("✔") < header.index("Logged in")
    assert "sites show" in result.stderr
    assert "alpha-key" not in result.stdout + result.stderr


def test_sites_list_without_a_config_shows_the_implicit_anaconda_com(sandbox):
    result = sandbox.cli("sites", "list")
    assert_ok(result)
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    assert rows == [["anaconda.com", "anaconda.com", "✔︎"]]


VISIBLE_SITE_FIELDS = {"site", "domain", "ssl_verify", "extra_headers", "use_unified_repo_api_key",
                       "proxy_servers", "client_cert", "client_cert_key", "use_device_flow"}


def test_sites_show_prints_the_reference_fields_of_the_default_site(sandbox):
    sandbox.write_config('default_site = "beta"\n' + TWO_SITES)
    result = sandbox.cli("sites", "show")
    assert_ok(result)
    shown = json.loads(result.stdout)
    assert set(shown) == VISIBLE_SITE_FIELDS
    assert (shown["site"], shown["domain"], shown["use_device_flow"]) == (
        "beta", "beta.example:8443", False)


def test_sites_show_by_name_or_domain(sandbox):
    sandbox.write_config(TWO_SITES)
    assert json.loads(sandbox.cli("sites", "show", "beta").stdout)["site"] == "beta"
    assert json.loads(sandbox.cli("sites", "show", "beta.example:8443").stdout)["site"] == "beta"
    assert json.loads(sandbox.cli("--at", "beta", "sites", "show").stdout)["site"] == "beta"


def test_sites_show_hidden_adds_fields_but_still_masks_the_api_key(sandbox):
    sandbox.write_config(TWO_SITES.replace('domain = "alpha.example"',
                                           'domain = "alpha.example"\napi_key = "site-secret-key"'))
    result = sandbox.cli("sites", "show", "alpha", "--show-hidden")
    assert_ok(result)
    shown = json.loads(result.stdout)
    assert {"api_key", "client_id", "keyring_path", "redirect_uri",
            "preferred_token_storage"} <= set(shown)
    assert shown["api_key"] == MASK
    assert "site-secret-key" not in result.stdout + result.stderr


def test_sites_show_all_prints_the_raw_site_tables(sandbox):
    sandbox.write_config(
        TWO_SITES.replace('domain = "alpha.example"', 'domain = "alpha.example"\napi_key = "raw-secret"')
        + '\n[plugin.auth]\nclient_id = "plugin-client"\n')
    result = sandbox.cli("sites", "show", "--all", env={"ANACONDA_AUTH_DOMAIN": "env.example"})
    assert_ok(result)
    shown = json.loads(result.stdout)
    assert shown == {
        "alpha": {"domain": "alpha.example", "api_key": MASK, "ssl_verify": False},
        "beta": {"domain": "beta.example:8443", "use_device_flow": False},
    }
    assert "raw-secret" not in result.stdout + result.stderr


def test_sites_show_unknown_site_exits_2(sandbox):
    sandbox.write_config(TWO_SITES)
    result = sandbox.cli("sites", "show", "nope")
    assert_ok(result, 2)
    assert "UnknownSiteName" in result.stderr and "nope" in result.stderr
    assert_no_traceback(result)


@pytest.mark.parametrize("args", [["list"], ["add", "--name", "gamma", "--domain", "gamma.example"],
                                  ["modify", "--use-device-flow"], ["modify", "--name", "alpha", "--no-ssl-verify"],
                                  ["remove", "alpha"]])
@pytest.mark.parametrize("where", ["before", "equals"])
def test_at_before_a_sites_subcommand_that_takes_no_site_exits_2_and_changes_nothing(sandbox, args, where):
    """Issue 9: `--at beta sites modify ...` was ignored (editing what --name/--domain said,
    or asking for them); now one usage line saying what the subcommand takes instead."""
    sandbox.write_config(TWO_SITES)
    before = sandbox.config_toml.read_bytes()
    at = ["--at", "beta"] if where == "before" else ["--at=beta"]
    result = sandbox.cli(*at, "sites", *args)
    assert_ok(result, 2)
    assert f"--at does not apply to 'sites {args[0]}'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == "" and sandbox.config_toml.read_bytes() == before
    assert_no_traceback(result)


def test_at_before_sites_show_still_chooses_the_site(sandbox):
    sandbox.write_config(TWO_SITES)
    result = sandbox.cli("--at", "beta", "sites", "show")
    assert_ok(result)
    assert "beta.example:8443" in result.stdout and "alpha.example" not in result.stdout


def test_main_in_process_leaves_the_warning_display_and_quiet_as_it_found_them(sandbox, monkeypatch, capsys):
    """Issue 8: main() set warnings.showwarning for the whole process and kept it; run
    in-process (tests, a program embedding the CLI) it now puts it back, on success, on a
    failure it reports and on one --verbose re-raises."""
    monkeypatch.setenv("HOME", str(sandbox.home))
    monkeypatch.chdir(sandbox.cwd)
    sandbox.write_config(TWO_SITES)
    original = warnings.showwarning
    assert aa.main(["-q", "sites", "list"]) == 0
    assert aa.main(["--at", "nope", "api-key"]) == 2
    with pytest.raises(aa.UnknownSiteName):
        aa.main(["--verbose", "--at", "nope", "whoami"])
    assert warnings.showwarning is original
    assert "alpha" in capsys.readouterr().out
    assert aa.main(["--at", "alpha", "logout"]) == 0  # not quiet any more: it says so
    assert "nothing to do" in capsys.readouterr().err


def test_sites_without_a_subcommand_prints_usage(sandbox):
    result = sandbox.cli("sites")
    assert result.returncode in (0, 2)
    assert "list" in result.stdout + result.stderr


# -- login --with-token and logout ----------------------------------------------------------------


def test_login_with_token_stores_the_key_from_stdin(sandbox):
    key = key_expiring_in(86400)
    result = sandbox.cli("login", "--with-token", "--no-verify", stdin=key + "\n")
    assert_ok(result)
    assert sandbox.stored_entries()["anaconda.com"]["api_key"] == key
    assert key not in result.stdout + result.stderr
    assert "anaconda.com" in result.stderr
    assert modes_of(sandbox.keyring_file) == 0o600


def test_login_with_token_at_a_site(sandbox):
    sandbox.write_config(TWO_SITES)
    result = sandbox.cli("--at", "beta", "login", "--with-token", "--no-verify", stdin="beta-key\n")
    assert_ok(result)
    assert set(sandbox.stored_entries()) == {"beta.example:8443"}


def test_login_with_token_refuses_an_expired_key_with_exit_1_and_stores_nothing(sandbox):
    before = sandbox.store("anaconda.com", "good-key")
    expired = key_expiring_in(-3600)
    result = sandbox.cli("login", "--with-token", "--no-verify", stdin=expired + "\n")
    assert_ok(result, 1)
    assert "expired" in result.stderr
    assert expired not in result.stdout + result.stderr
    assert sandbox.keyring_bytes() == before
    assert_no_traceback(result)


@pytest.mark.parametrize("stdin", ["", "\n", "   \n\n"])
def test_login_with_token_and_empty_stdin_exits_2(sandbox, stdin):
    before = sandbox.store("anaconda.com", "good-key")
    result = sandbox.cli("login", "--with-token", "--no-verify", stdin=stdin)
    assert_ok(result, 2)
    assert "stdin" in result.stderr.lower() or "standard input" in result.stderr.lower()
    assert sandbox.keyring_bytes() == before


@pytest.mark.parametrize("argv", [("login", "--with-token", "argv-key"), ("login", "argv-key"),
                                  ("login", "--with-token=argv-key")])
def test_login_never_takes_the_key_from_argv(sandbox, argv):
    result = sandbox.cli(*argv, stdin="")
    assert_ok(result, 2)
    assert sandbox.keyring_bytes() is None


def test_login_with_token_keeps_username_and_repo_tokens(sandbox):
    sandbox.store("anaconda.com", "old", username="dora", repo_tokens=[{"token": "t"}])
    assert_ok(sandbox.cli("login", "--with-token", "--no-verify", stdin="new\n"))
    assert sandbox.stored_entries()["anaconda.com"] == {
        "domain": "anaconda.com", "api_key": "new", "username": "dora",
        "repo_tokens": [{"token": "t"}], "version": 2}


def test_login_with_token_says_when_a_configured_key_still_wins(sandbox):
    result = sandbox.cli("login", "--with-token", "--no-verify", stdin="stored-key\n",
                         env={"ANACONDA_AUTH_API_KEY": "env-key"})
    assert_ok(result)
    assert "ANACONDA_AUTH_API_KEY" in result.stderr
    assert "env-key" not in result.stderr


def test_cli_logout_is_idempotent(sandbox):
    sandbox.store("anaconda.com", "k")
    first = sandbox.cli("logout")
    assert_ok(first)
    assert sandbox.stored_entries() == {}
    second = sandbox.cli("logout")
    assert_ok(second)
    assert first.stderr != second.stderr  # it says whether there was anything to delete


def test_cli_logout_warns_when_the_environment_key_still_applies(sandbox):
    sandbox.store("anaconda.com", "k")
    result = sandbox.cli("logout", env={"ANACONDA_AUTH_API_KEY": "env-key"})
    assert_ok(result)
    assert "ANACONDA_AUTH_API_KEY" in result.stderr
    assert "env-key" not in result.stderr
    assert sandbox.stored_entries() == {}


# -- Bad configuration: exit 2 from every command, nothing stored lost ----------------------------

COMMANDS = [
    (("api-key",), None), (("status",), None), (("status", "--json"), None), (("config",), None),
    (("config", "--json"), None), (("sites", "list"), None), (("sites", "show"), None),
    (("sites", "show", "--all"), None), (("logout",), None), (("login", "--with-token", "--no-verify"), "k\n"),
]
BAD_CONFIGS = {
    "malformed-toml": ({}, '[plugin.auth]\ndomain = "x"\nbroken = = 2\nother = 3\n'),
    "default-site-names-no-site": ({}, 'default_site = "missing"\n' + TWO_SITES),
    "unknown-token-storage": ({}, '[plugin.auth]\npreferred_token_storage = "vault"\n'),
    "missing-ca-file": ({"ANACONDA_AUTH_SSL_VERIFY": "/no/such/ca.pem"}, None),
    "bad-json-extra-headers": ({"ANACONDA_AUTH_EXTRA_HEADERS": "{nope"}, None),
    "bad-json-proxy-servers": ({"ANACONDA_AUTH_PROXY_SERVERS": "[1,"}, None),
    "bad-json-keyring": ({"ANACONDA_AUTH_KEYRING": "{{"}, None),
    "not-a-boolean": ({"ANACONDA_AUTH_USE_DEVICE_FLOW": "maybe"}, None),
    "storage-vault-env": ({"ANACONDA_AUTH_PREFERRED_TOKEN_STORAGE": "vault"}, None),
}
SOURCE_NAMED = {
    "malformed-toml": "config.toml", "default-site-names-no-site": "missing",
    "unknown-token-storage": "config.toml", "missing-ca-file": "ANACONDA_AUTH_SSL_VERIFY",
    "bad-json-extra-headers": "ANACONDA_AUTH_EXTRA_HEADERS",
    "bad-json-proxy-servers": "ANACONDA_AUTH_PROXY_SERVERS",
    "bad-json-keyring": "ANACONDA_AUTH_KEYRING", "not-a-boolean": "ANACONDA_AUTH_USE_DEVICE_FLOW",
    "storage-vault-env": "ANACONDA_AUTH_PREFERRED_TOKEN_STORAGE",
}
# `sites show --all` prints raw tables and resolves no site, so only a file it cannot parse
# stops it; every other command resolves the configuration.
_RAW_ONLY = {("sites", "show", "--all")}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_configuration_exits_2_from_every_command_and_loses_nothing(sandbox, case):
    env, toml = BAD_CONFIGS[case]
    if toml is not None:
        sandbox.write_config(toml)
    before = sandbox.store("anaconda.com", "precious-key")
    for args, stdin in COMMANDS:
        result = sandbox.cli(*args, stdin=stdin, env=env)
        if tuple(args) in _RAW_ONLY and case != "malformed-toml":
            continue
        assert_ok(result, 2)
        assert "ConfigError" in result.stderr or "UnknownSiteName" in result.stderr, result.stderr
        assert SOURCE_NAMED[case] in result.stderr, (args, result.stderr)
        assert "precious-key" not in result.stdout
        assert_no_traceback(result)
    assert sandbox.keyring_bytes() == before


def test_malformed_config_toml_message_on_the_cli_has_file_and_line(sandbox):
    sandbox.write_config('[plugin.auth]\ndomain = "x"\nbroken = = 2\nother = 3\n')
    result = sandbox.cli("api-key")
    assert_ok(result, 2)
    assert str(sandbox.config_toml) in result.stderr
    assert "line 3" in result.stderr, result.stderr


def test_ambiguous_domain_on_the_cli_exits_2_naming_both_sites(sandbox):
    sandbox.write_config('[sites.one]\ndomain = "dup.example"\n\n[sites.two]\ndomain = "dup.example"\n')
    result = sandbox.cli("--at", "dup.example", "api-key")
    assert_ok(result, 2)
    assert "one" in result.stderr and "two" in result.stderr
    assert_no_traceback(result)


def test_errors_have_a_traceback_only_with_verbose(sandbox):
    sandbox.write_config('default_site = "missing"\n' + TWO_SITES)
    quiet = sandbox.cli("api-key")
    assert_ok(quiet, 2)
    assert_no_traceback(quiet)
    loud = sandbox.cli("--verbose", "api-key")
    assert loud.returncode != 0
    assert "Traceback (most recent call last)" in loud.stderr
    assert "UnknownSiteName" in loud.stderr


# -- On a terminal: the login prompt and interrupts -----------------------------------------------


def test_terminal_prompt_answered_no_prints_the_hint_block_and_exits_3(sandbox):
    code, output = run_on_terminal(
        [*CLI, "api-key"], sandbox.cli_env(), sandbox.cwd,
        [("Continue with interactive login? [y/n]", type_line("n"))],
    )
    assert code == 3, output
    assert "TokenNotFoundError" in output
    assert "To configure your credentials you can run" in output
    assert "python -m anaconda_auth login" in output
    assert "ANACONDA_AUTH_API_KEY" in output
    assert "[plugin.auth]" in output and 'api_key = "<api-key>"' in output
    assert str(sandbox.config_toml) in output


def test_terminal_prompt_for_an_expired_key_too(sandbox):
    sandbox.store("anaconda.com", key_expiring_in(-3600))
    code, output = run_on_terminal(
        [*CLI, "api-key"], sandbox.cli_env(), sandbox.cwd,
        [("Continue with interactive login? [y/n]", type_line("n"))],
    )
    assert code == 3, output
    assert "TokenExpiredError" in output

# Answering "y" starts the interactive login for the site. The site here is a loopback port with
# nothing listening, so the login fails at its first step (OpenID discovery) without any network:
# what is pinned is that the answer led to a login attempt for the right site, and a clean exit 1.


def test_terminal_prompt_answered_yes_starts_the_login(sandbox):
    domain = f"127.0.0.1:{free_port()}"
    env = sandbox.cli_env({"ANACONDA_AUTH_DOMAIN": domain, "ANACONDA_AUTH_SSL_VERIFY": "false"})
    code, output = run_on_terminal(
        [*CLI, "api-key"], env, sandbox.cwd,
        [("Continue with interactive login? [y/n]", type_line("y"))],
    )
    assert f"https://{domain}/.well-known/openid-configuration" in output, output
    assert code == 1, output
    assert "Traceback" not in output
    assert "To configure your credentials" not in output


def test_login_with_token_on_a_terminal_reads_one_pasted_line(sandbox):
    code, output = run_on_terminal(
        [*CLI, "login", "--with-token", "--no-verify"], sandbox.cli_env(), sandbox.cwd,
        [("Paste the API key", type_line("pasted-key"))],
    )
    assert code == 0, output
    assert sandbox.stored_entries()["anaconda.com"]["api_key"] == "pasted-key"


def test_interrupt_exits_130_without_a_traceback(sandbox):
    code, output = run_on_terminal(
        [*CLI, "login", "--with-token", "--no-verify"], sandbox.cli_env(), sandbox.cwd,
        [("Paste the API key", lambda proc, master: proc.send_signal(signal.SIGINT))],
    )
    assert code == 130, output
    assert "Traceback" not in output
    assert sandbox.keyring_bytes() is None


def test_the_expiry_warning_points_at_the_callers_line_not_into_the_module(sandbox):
    import warnings

    sandbox.store("anaconda.com", make_jwt({"exp": int(time.time()) + 10 * 86400}))
    config = sandbox.resolve()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        aa.get_api_key(config)
    [warning] = [w for w in caught if issubclass(w.category, aa.KeyExpiringWarning)]
    assert (warning.filename, warning.lineno) == (__file__, line)
    message = str(warning.message)
    assert "login --force" in message and "login --with-token" in message  # both ways to renew


def test_expired_key_from_the_environment_says_to_fix_the_variable_not_to_log_in(sandbox):
    key = make_jwt({"exp": 1000})
    result = sandbox.cli("api-key", env={"ANACONDA_AUTH_API_KEY": key})
    assert_ok(result, 3)
    assert "ANACONDA_AUTH_API_KEY" in result.stderr and "unset" in result.stderr
    assert "login --force" not in result.stderr
    assert key not in result.stderr


def test_sites_list_on_a_legacy_encoding_console_uses_plain_marks(sandbox):
    result = sandbox.cli("sites", "list", env={"PYTHONIOENCODING": "ascii"})
    assert_ok(result)
    assert "anaconda.com" in result.stdout and "yes" in result.stdout


def test_a_removed_working_directory_means_no_dotenv(sandbox):
    sandbox.store("anaconda.com", "k")
    gone = sandbox.root / "gone"
    gone.mkdir()
    code = (f"import os; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r})\n"
            "import anaconda_auth as aa; print(aa.get_api_key())")
    result = sandbox.python(code)
    assert_ok(result)
    assert result.stdout == "k\n"


def test_sites_dry_run_masks_secrets_inside_inline_tables_and_json_strings(sandbox):
    sandbox.write_config("""\
        [plugin]
        auth = {api_key = "SECRET_INLINE"}

        [sites.x]
        domain = "x.com"
        extra_headers = '{"Authorization": "Bearer SECRET_STR"}'
        """)
    result = sandbox.cli("sites", "add", "--domain", "y.com", "--dry-run")
    assert_ok(result)
    assert "SECRET" not in result.stdout + result.stderr


# =================================================================================================
# Imports: what `import anaconda_auth` and `api-key` pull in
# =================================================================================================

LOADED_MODULES = """
import json, sys
print(json.dumps(sorted(sys.modules)))
"""


def loaded_after(sandbox: Sandbox, statement: str, env: dict[str, str] | None = None) -> list[str]:
    result = sandbox.python(statement + "\n" + LOADED_MODULES, env=env)
    assert_ok(result)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_pulls_in_nothing_heavy_or_optional(sandbox):
    loaded = loaded_after(sandbox, "import anaconda_auth")
    assert [m for m in HEAVY_MODULES if m in loaded] == []


PANEL_PACKAGES = ("panel", "tornado", "bokeh", "param")


def test_import_star_and_dir_import_nothing_of_panel(sandbox):
    """The Panel handler is made on first access only (PEP 562): importing the module, a star
    import, dir() and every exported name leave Panel, Tornado and Bokeh unimported."""
    loaded = loaded_after(sandbox, "import anaconda_auth\nfrom anaconda_auth import *\n"
                                   "dir(anaconda_auth)\n"
                                   "[getattr(anaconda_auth, n) for n in anaconda_auth.__all__]")
    assert [m for m in loaded if m.split(".")[0] in PANEL_PACKAGES] == []


PANEL_ABSENT = """
import inspect, json, pydoc, sys
sys.modules['panel'] = None  # as on a machine without Panel, even where it is installed
import anaconda_auth as aa
seen = {"dir": "AnacondaLoginHandler" in dir(aa),
        "getmembers": "AnacondaLoginHandler" in dict(inspect.getmembers(aa)),
        "help": "\\n    login(" in pydoc.render_doc(aa, renderer=pydoc.plaintext)}
try:
    aa.AnacondaLoginHandler
except ImportError as e:
    seen["attribute"] = [type(e).__name__, str(e)]
try:
    from anaconda_auth import AnacondaLoginHandler
except ImportError as e:
    seen["from_import"] = [type(e).__name__, str(e)]
print(json.dumps(seen))
"""


def test_panel_handler_without_panel_says_what_to_install_and_stays_out_of_help(sandbox):
    """Issue 11: without Panel, reading AnacondaLoginHandler (as an attribute or with
    ``from anaconda_auth import``) raises an ImportError that says to install Panel; dir(),
    help() and inspect.getmembers() leave the name out, so they work on such a machine."""
    result = sandbox.python(PANEL_ABSENT)
    assert_ok(result)
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["dir"] is False and seen["getmembers"] is False and seen["help"] is True
    for kind, message in (seen["attribute"], seen["from_import"]):
        assert kind == "ImportError" and "pip install panel" in message


def test_import_needs_only_the_standard_library(sandbox):
    """Vendoring (CONTRACT §1): the copied file must import with no third-party package."""
    blocked = ("typing_extensions", "urllib3", "certifi", "keyring", "tomli", "truststore")
    code = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
    result = sandbox.python(code + "import anaconda_auth\nprint('imported')")
    assert_ok(result)
    assert result.stdout.strip() == "imported"


RUN_CLI_AND_LIST_MODULES = """
import json, runpy, sys
sys.argv = ["anaconda_auth"] + sys.argv[1:]
try:
    runpy.run_module("anaconda_auth", run_name="__main__", alter_sys=True)
except SystemExit as e:
    code = e.code
else:
    code = 0
sys.stderr.write("MODULES " + json.dumps(sorted(sys.modules)) + "\\n")
sys.stderr.write("EXIT %s\\n" % code)
"""


def run_cli_listing_modules(sandbox: Sandbox, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    result = sandbox.python(RUN_CLI_AND_LIST_MODULES, args=args)
    lines = result.stderr.splitlines()
    modules = json.loads(next(line for line in lines if line.startswith("MODULES "))[8:])
    assert "EXIT 0" in lines, result.stderr
    return result, modules


def test_api_key_from_the_file_store_without_config_imports_nothing_heavy(sandbox):
    sandbox.store("anaconda.com", "lazy-key")
    result, modules = run_cli_listing_modules(sandbox, "api-key")
    assert result.stdout == "lazy-key\n"
    assert [m for m in HEAVY_MODULES if m in modules] == []


def test_api_key_with_a_plain_config_file_imports_no_toml_parser(sandbox):
    sandbox.write_config('default_site = "s"\n[sites.s]\ndomain = "anaconda.com"\n'
                         '[plugin.auth]\nclient_id = "c"\nproxy_servers = { https = "p" }\n')
    sandbox.store("anaconda.com", "lazy-key")
    result, modules = run_cli_listing_modules(sandbox, "api-key")
    assert result.stdout == "lazy-key\n"
    assert [m for m in HEAVY_MODULES if m in modules] == []


def test_api_key_with_a_config_file_beyond_the_plain_subset_uses_the_toml_parser(sandbox):
    sandbox.write_config('[plugin.auth]\nclient_id = "c"\nunknown_list = [1, 2]\n')
    sandbox.store("anaconda.com", "lazy-key")
    result, modules = run_cli_listing_modules(sandbox, "api-key")
    assert result.stdout == "lazy-key\n"
    assert "tomllib" in modules or "tomli" in modules  # the control: this file needs TOML
    assert [m for m in ("urllib3", "keyring", "http.server", "webbrowser") if m in modules] == []


SIMPLE_TOML_CORPUS = [
    "", "# only a comment\n", "a = 1", 'a = "x"', "a = 'lit\\eral'", "a = true\nb = false",
    'default_site = "x"\n\n[sites.x]\ndomain = "foo.local" # c\n',
    '[sites."foo.local"]\ndomain = "a"\n[sites."foo.local".proxy_servers]\nhttps = "p"\n',
    '[plugin.auth]\nproxy_servers = { https = "http://p:3128", "all" = \'x\' }\n',
    'a = "\\u00e9\\t\\"q\\"\\\\"', "a = +5\nb = -0", 'k = "v"\r\nj = true\r\n',
    'a = "b" # comment with "quote"', 'a = {b = {c = "d"}}', '[sites]\n[sites.x]\ndomain="d"\n',
    # Beyond the subset or invalid: must be left to tomllib.
    "a = 01", "a = 1.5", "a = [1]", "a.b = 1", "[a]\nb=1\n[a]\nc=2", "a = {x=1}\n[a]\ny=2",
    "a = {x=1,}", 'a = "unterminated', "[[x]]\na=1", 'a = """m"""', "x = 1\nx = 2",
    'a = "\\ud800"', 'a = "\\x41"', "a = 1 x", "[a] x", "a = 1979-05-27", "a = inf",
    'a = "ctl\x01"', "a = 1_000", "[a]\nb = {c=1}\n[a.b.d]",
]


def toml_library() -> Any:
    """What the module falls back to: tomllib, or tomli before Python 3.11 (needed there)."""
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    import tomli

    return tomli


@pytest.mark.parametrize("text", SIMPLE_TOML_CORPUS)
def test_plain_toml_reader_agrees_with_tomllib_or_defers_to_it(text):
    toml = toml_library()
    try:
        expected: Any = toml.loads(text)
    except toml.TOMLDecodeError:
        expected = "invalid"
    parsed = aa._parse_simple_toml(text)
    assert parsed is None or parsed == expected


def test_plain_toml_reader_reads_the_common_layout_itself():
    text = ('default_site = "s"\n\n[sites.s]\ndomain = "x.example"  # note\nssl_verify = false\n'
            '\n[sites.s.proxy_servers]\nhttps = "http://p:3128"\n')
    assert aa._parse_simple_toml(text) == {
        "default_site": "s",
        "sites": {"s": {"domain": "x.example", "ssl_verify": False,
                        "proxy_servers": {"https": "http://p:3128"}}},
    }


def test_plain_toml_reader_never_disagrees_with_tomllib_on_mutated_files():
    """Random edits of realistic files: whatever the fast reader accepts, tomllib reads the
    same way (and whatever is invalid, the fast reader refuses)."""
    import random

    toml = toml_library()
    rng = random.Random(20261123)
    bases = [('default_site = "x"\n\n[sites.x]\ndomain = "foo.local" # c\nssl_verify = false\n'
             '[sites."a.b".proxy_servers]\nhttps = "p"\n'),
             '[plugin.auth]\nproxy_servers = { https = "http://p:3128", "all" = \'x\' }\nn = -12\n',
             'a = "\\u00e9\\t\\"q\\"\\\\"\n[t]\nk=1']
    alphabet = list('[]{}"\'=.,#\\ \t\nabcu0123456789-+_tfrue')
    accepted = 0
    for text in mutated(rng, bases, alphabet, 20000, edits=4):
        parsed = aa._parse_simple_toml(text)
        if parsed is None:
            continue
        accepted += 1
        try:
            expected: Any = toml.loads(text)
        except toml.TOMLDecodeError:
            expected = "invalid"
        assert parsed == expected, text
    assert accepted > 1000  # the check above really ran
