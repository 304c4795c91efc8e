"""Tests of provisioning a machine (issue 10): keys checked with the server before they are
stored, bad keys refused with one line, expiry told in advance, 401/403 messages that say what
happened to which key, the never-open-a-browser setting, logout's notice, the ``request``
command, ``--quiet``, and the README's bootstrap script run as written.

Real parts (tests/conftest.py): the stand-in Anaconda API over loopback HTTPS (it issues keys,
answers ``/api/account`` for them, refuses revoked and expired ones), the real OpenID provider
behind it, the CLI as a subprocess in a temporary HOME. A network failure is a closed loopback
port, never an outside address.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import anaconda_auth as aa
from test_anaconda_auth import make_jwt, run_captured, store_entry
from tests.test_login import PYTHON, _keyring_file, _site_env, run_cli
from tests.tools import free_port

ROOT = Path(__file__).resolve().parents[1]


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _env(tmp_path: Path, oidc_provider: Any, anaconda_api: Any, test_ca: Any, **extra: str) -> dict[str, str]:
    return _site_env(tmp_path, oidc_provider, anaconda_api, test_ca, **extra)


def _config(env: dict[str, str], **overrides: Any) -> aa.Config:
    """The Config the CLI resolves from ``env``, in this process."""
    return aa.resolve_config(environ=env, home=env["HOME"], cwd=env["HOME"], **overrides)


def _stored(env: dict[str, str]) -> bytes | None:
    path = _keyring_file(env)
    return path.read_bytes() if path.exists() else None


def _account_requests(anaconda_api: Any) -> list[Any]:
    return [r for r in anaconda_api.requests if r.url_path == "/api/account"]


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


# ==========================================================================================
# Checking a key before storing it
# ==========================================================================================


def test_with_token_checks_the_key_with_the_server_then_stores_it_and_names_the_account(
        oidc_provider, anaconda_api, test_ca, tmp_path):
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca)
    key = anaconda_api.issue_key("alice", expires_in=90 * 86400)
    result = run_cli(["login", "--with-token"], env, input=key + "\n")
    assert result.returncode == 0, result.stderr
    [check] = _account_requests(anaconda_api)
    assert check.headers["Authorization"] == f"Bearer {key}"
    expiry = _utc(aa.key_expiry(key))
    assert f"✓ Logged in to {anaconda_api.domain} as alice; the key expires on {expiry}." in result.stderr
    assert key not in result.stdout + result.stderr
    assert run_cli(["api-key"], env).stdout == key + "\n"


def test_with_token_refused_by_the_server_exits_1_and_keeps_the_stored_key(
        oidc_provider, anaconda_api, test_ca, tmp_path):
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca)
    good = anaconda_api.issue_key("alice")
    assert run_cli(["login", "--with-token"], env, input=good).returncode == 0
    before = _stored(env)
    revoked = anaconda_api.issue_key("alice")
    anaconda_api.revoke(revoked)
    result = run_cli(["login", "--with-token"], env, input=revoked + "\n")
    assert result.returncode == 1, result.stderr
    line = _one_line(result.stderr)
    assert f"{anaconda_api.domain} refused the API key (HTTP 401); nothing was stored" in line
    assert "revoked" in line and "create a new key" in line
    assert _stored(env) == before


def test_login_api_key_refused_raises_invalid_token_error_and_stores_nothing(
        oidc_provider, anaconda_api, test_ca, tmp_path):
    config = _config(_env(tmp_path, oidc_provider, anaconda_api, test_ca))
    never_issued = make_jwt({"sub": "mallory", "exp": int(time.time()) + 86400})
    with pytest.raises(aa.InvalidTokenError, match="refused the API key"):
        aa.login(config, api_key=never_issued)
    assert not Path(config.keyring_path).exists()
    key = anaconda_api.issue_key("bob")
    assert aa.login(config, api_key=key) == key == aa.get_api_key(config)


def test_with_token_when_the_server_cannot_be_reached_exits_1_naming_host_and_cause(
        oidc_provider, anaconda_api, test_ca, tmp_path):
    port = free_port()
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca, ANACONDA_AUTH_DOMAIN=f"127.0.0.1:{port}")
    result = run_cli(["login", "--with-token"], env, input=anaconda_api.issue_key() + "\n")
    assert result.returncode == 1, result.stderr
    line = _one_line(result.stderr)
    assert f"127.0.0.1:{port}" in line and "could not connect" in line and "Nothing was stored" in line
    assert "--no-verify" in line and "Traceback" not in line
    assert _stored(env) is None
    with pytest.raises(aa.NetworkError, match=f"127.0.0.1:{port}"):
        aa.login(_config(env), api_key=anaconda_api.issue_key())
    assert _stored(env) is None


def test_verification_honours_the_tls_settings(oidc_provider, anaconda_api, test_ca, tmp_path):
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca)
    del env["ANACONDA_AUTH_SSL_VERIFY"]  # the test CA is not trusted now
    result = run_cli(["login", "--with-token"], env, input=anaconda_api.issue_key() + "\n")
    assert result.returncode == 1 and "certificate" in result.stderr, result.stderr
    assert _account_requests(anaconda_api) == [] and _stored(env) is None


def test_no_verify_stores_without_the_network_after_the_offline_expiry_check(
        oidc_provider, anaconda_api, test_ca, tmp_path):
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca, ANACONDA_AUTH_DOMAIN=f"127.0.0.1:{free_port()}")
    key = make_jwt({"sub": "image", "exp": int(time.time()) + 200 * 86400})
    result = run_cli(["login", "--with-token", "--no-verify"], env, input=key + "\n")
    assert result.returncode == 0, result.stderr
    assert "without checking it with the server" in result.stderr and _utc(aa.key_expiry(key)) in result.stderr
    assert run_cli(["api-key"], env).stdout == key + "\n"
    expired = make_jwt({"sub": "image", "exp": int(time.time()) - 60})
    refused = run_cli(["login", "--with-token", "--no-verify"], env, input=expired + "\n")
    assert refused.returncode == 1 and "expired" in _one_line(refused.stderr)
    opaque = run_cli(["login", "--with-token", "--no-verify"], env, input="opaque-key-123\n")
    assert opaque.returncode == 0 and "expiry unknown" in opaque.stderr, opaque.stderr
    config = _config(env)
    assert aa.login(config, api_key=key, verify=False) == key == aa.get_api_key(config)


def test_no_verify_only_goes_with_with_token(oidc_provider, anaconda_api, test_ca, tmp_path):
    result = run_cli(["login", "--no-verify"], _env(tmp_path, oidc_provider, anaconda_api, test_ca))
    assert result.returncode == 2 and "--with-token" in result.stderr


# ==========================================================================================
# Bad keys: one line, nothing stored changes
# ==========================================================================================

TEN_MB = "k" * (10 * 1024 * 1024)
BAD_KEYS = {
    "empty": ("", 2, "no API key on standard input"),
    "only white space": ("  \n\t\n", 2, "no API key on standard input"),
    "space inside": ("two words\n", 1, "white space"),
    "newline inside": ("first-line\nsecond-line\n", 1, "line break"),
    "tab inside": ("first\tsecond\n", 1, "white space"),
    "control character": ("abc\x07def\n", 1, "characters an API key never has"),
    "10 MB on stdin": (TEN_MB, 2, "more than 64 KiB"),
    "another site's key": (make_jwt({"sub": "x", "iss": "https://auth.elsewhere.example/",
                                     "exp": int(time.time()) + 86400}) + "\n", 1, "auth.elsewhere.example"),
}


@pytest.mark.parametrize("case", list(BAD_KEYS))
def test_a_bad_key_is_one_line_error_and_nothing_stored_changes(oidc_provider, anaconda_api, test_ca, tmp_path, case):
    stdin, code, says = BAD_KEYS[case]
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca)
    good = anaconda_api.issue_key("alice")
    assert run_cli(["login", "--with-token"], env, input=good).returncode == 0
    before = _stored(env)
    checks = len(_account_requests(anaconda_api))
    result = run_cli(["login", "--with-token"], env, input=stdin)
    assert result.returncode == code, result.stderr[:500]
    assert says in _one_line(result.stderr)
    assert _stored(env) == before
    assert len(_account_requests(anaconda_api)) == checks  # refused before asking the server
    assert result.stdout == ""


def test_white_space_around_the_key_and_a_crlf_line_end_are_not_part_of_it(oidc_provider, anaconda_api, test_ca, tmp_path):
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca)
    key = anaconda_api.issue_key("alice")
    result = run_cli(["login", "--with-token"], env, input=f"  {key}\r\n")  # pasted, or a Windows file
    assert result.returncode == 0, result.stderr
    assert run_cli(["api-key"], env).stdout == key + "\n"


@pytest.mark.parametrize("bad", ["", " ", "a b", "a\nb", "a\x00b", "x" * (70 * 1024)])
def test_login_api_key_refuses_a_malformed_key_before_any_request(oidc_provider, anaconda_api, test_ca, tmp_path, bad):
    config = _config(_env(tmp_path, oidc_provider, anaconda_api, test_ca))
    with pytest.raises(aa.AuthenticationError):
        aa.login(config, api_key=bad)
    assert anaconda_api.requests == [] and not Path(config.keyring_path).exists()


def test_a_key_of_the_sites_own_issuer_or_a_subdomain_is_not_another_sites(tmp_path):
    config = aa.resolve_config(environ={"HOME": str(tmp_path)}, home=str(tmp_path), cwd=str(tmp_path))
    exp = int(time.time()) + 86400
    for issuer in ("https://anaconda.com", "https://auth.anaconda.com/api", "https://anaconda.cloud/x"):
        key = make_jwt({"iss": issuer, "exp": exp})
        assert aa.login(config, api_key=key, verify=False) == key
    with pytest.raises(aa.AuthenticationError, match="issued by notanaconda.com"):
        aa.login(config, api_key=make_jwt({"iss": "https://notanaconda.com", "exp": exp}), verify=False)


# ==========================================================================================
# Expiry told in advance
# ==========================================================================================

TEN_DAYS = 10 * 86400 + 3600


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_every_command_warns_once_on_stderr_when_the_key_expires_within_30_days(
        oidc_provider, anaconda_api, test_ca, tmp_path):
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca)
    key = anaconda_api.issue_key("alice", expires_in=TEN_DAYS)
    login = run_cli(["login", "--with-token"], env, input=key)
    assert login.returncode == 0, login.stderr
    date = _utc(aa.key_expiry(key))
    for command in (["api-key"], ["status"], ["whoami"], ["login"], ["request", "/api/account"]):
        result = run_cli(command, env)
        assert result.returncode == 0, result.stderr
        [line] = _warnings(result.stderr)
        assert f"expires on {date}, in 10 days" in line and "login --force" in line, line
        assert "login --with-token for a key you were given" in line, line
        assert key not in result.stderr
    api_key = run_cli(["api-key"], env)
    assert api_key.stdout == key + "\n"  # stdout stays exactly the key
    status = json.loads(run_cli(["status", "--json"], env).stdout)
    assert status["expires_in_days"] == 10 and status["days_left"] == 10


def test_a_configured_key_expiring_soon_says_to_replace_it_where_it_is_set(tmp_path):
    key = make_jwt({"sub": "ci", "exp": int(time.time()) + TEN_DAYS})
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "ANACONDA_AUTH_API_KEY": key}
    result = run_cli(["api-key"], env)
    [line] = _warnings(result.stderr)
    assert "environment variable ANACONDA_AUTH_API_KEY" in line and "Replace it there" in line


@pytest.mark.parametrize("where", ["env", "dotenv", "toml"])
def test_a_configured_key_expiring_soon_warns_in_request_and_the_request_command(
        oidc_provider, anaconda_api, test_ca, tmp_path, where):
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca)
    home = Path(env["HOME"])
    key = anaconda_api.issue_key("ci", expires_in=5 * 86400 + 3600)
    source = {"env": "environment variable ANACONDA_AUTH_API_KEY",
              "dotenv": f"{home / '.env'}: ANACONDA_AUTH_API_KEY",
              "toml": f"{home / '.anaconda' / 'config.toml'} [plugin.auth] api_key"}[where]
    if where == "env":
        env["ANACONDA_AUTH_API_KEY"] = key
    elif where == "dotenv":
        (home / ".env").write_text(f"ANACONDA_AUTH_API_KEY={key}\n")
    else:
        (home / ".anaconda").mkdir(parents=True, exist_ok=True)
        (home / ".anaconda" / "config.toml").write_text(f'[plugin.auth]\napi_key = "{key}"\n')
    date = _utc(aa.key_expiry(key))
    result = run_cli(["request", "/api/account"], env)
    assert result.returncode == 0 and json.loads(result.stdout)["user"]["username"] == "ci", result.stderr
    [line] = _warnings(result.stderr)
    assert f"(from {source}) expires on {date}, in 5 days. Replace it there" in line, line
    assert key not in result.stderr
    config = _config(env)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert aa.request("GET", "/api/account", config=config).ok
        assert aa.request("GET", "/api/account", config=config).ok
    [warning] = [w for w in caught if issubclass(w.category, aa.KeyExpiringWarning)]
    assert str(warning.message) == line[len("warning: "):]


@pytest.mark.parametrize("where, days, warns", [
    ("default", None, True),
    ("plugin.auth", "0", False),
    ("plugin.auth", "11", True),
    ("site", "5", False),
    ("env", "0", False),
    ("env", "45", True),
])
def test_expiry_warning_days_setting(tmp_path, where, days, warns):
    home = tmp_path / "home"
    (home / ".anaconda").mkdir(parents=True)
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    if where == "plugin.auth":
        (home / ".anaconda" / "config.toml").write_text(f"[plugin.auth]\nexpiry_warning_days = {days}\n")
    elif where == "site":
        (home / ".anaconda" / "config.toml").write_text(
            f'[sites.corp]\ndomain = "anaconda.com"\nexpiry_warning_days = {days}\n')
    elif where == "env":
        env["ANACONDA_AUTH_EXPIRY_WARNING_DAYS"] = days
    key = make_jwt({"sub": "a", "exp": int(time.time()) + TEN_DAYS})
    assert run_cli(["login", "--with-token", "--no-verify"], env, input=key).returncode == 0
    result = run_cli(["api-key"], env)
    assert result.returncode == 0 and result.stdout == key + "\n", result.stderr
    assert bool(_warnings(result.stderr)) is warns, result.stderr


@pytest.mark.parametrize("value", ["soon", "-1", "2.5", "true"])
def test_a_bad_expiry_warning_days_is_a_config_error_naming_the_variable(tmp_path, value):
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
           "ANACONDA_AUTH_EXPIRY_WARNING_DAYS": value}
    result = run_cli(["status"], env)
    assert result.returncode == 2, result.stderr
    assert "ANACONDA_AUTH_EXPIRY_WARNING_DAYS" in _one_line(result.stderr)


def test_the_python_api_warns_once_per_process_with_its_own_category(oidc_provider, anaconda_api, test_ca, tmp_path):
    config = _config(_env(tmp_path, oidc_provider, anaconda_api, test_ca))
    key = anaconda_api.issue_key("alice", expires_in=TEN_DAYS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aa.login(config, api_key=key)
        assert aa.get_api_key(config) == key
        assert aa.get_api_key(config) == key
        assert aa.whoami(config)["user"]["username"] == "alice"
        assert aa.request("GET", "/api/account", config=config).ok
        assert aa.login(config) == key
    expiring = [w for w in caught if issubclass(w.category, aa.KeyExpiringWarning)]
    assert len(expiring) == 1, [str(w.message) for w in caught]
    assert _utc(aa.key_expiry(key)) in str(expiring[0].message)
    assert "KeyExpiringWarning" in aa.__all__ and issubclass(aa.KeyExpiringWarning, Warning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=aa.KeyExpiringWarning)  # what a caller may do
        far = anaconda_api.issue_key("alice", expires_in=TEN_DAYS - 86400)
        aa.login(config, api_key=far)
        aa.get_api_key(config)


def test_the_suites_expiry_warning_filter_matches_the_warning_it_is_there_to_catch(tmp_path):
    # pyproject.toml makes an unexpected expiry warning an error by its text (naming the category
    # would import the module while pytest reads its configuration): reworded, it would not.
    [action_and_text] = re.findall(r'filterwarnings = \["([^"]+)"\]',
                                   (ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    action, text = action_and_text.split(":", 1)
    config = aa.resolve_config(environ={"HOME": str(tmp_path)}, home=str(tmp_path), cwd=str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aa.login(config, api_key=make_jwt({"sub": "a", "exp": int(time.time()) + TEN_DAYS}), verify=False)
        aa.get_api_key(config)
    [warning] = [w for w in caught if issubclass(w.category, aa.KeyExpiringWarning)]
    assert action == "error" and re.match(text, str(warning.message), re.IGNORECASE), warning.message


def test_an_interactive_login_prints_the_expiry_of_the_new_key(oidc_provider, anaconda_api, test_ca, tmp_path,
                                                               useragent_browser_env):
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca, **useragent_browser_env.env)
    result = run_cli(["login", "--device"], env)
    assert result.returncode == 0, result.stderr + useragent_browser_env.log_text()
    key = anaconda_api.issued_keys[-1]["api_key"]
    lines = result.stderr.splitlines()
    assert f"✓ Logged in to {anaconda_api.domain}." in lines
    assert f"The API key expires on {_utc(aa.key_expiry(key))}." in lines


# ==========================================================================================
# 401/403: what happened to which key
# ==========================================================================================

KEY_CASES = {
    # case: (where the key is, its state, the error request()/whoami() raise, words that say what happened)
    "stored, revoked": ("store", "revoked", aa.InvalidTokenError, "was revoked, or is a key for another site"),
    "env var, revoked": ("env", "revoked", aa.InvalidTokenError, "was revoked, or is a key for another site"),
    ".env, revoked": ("dotenv", "revoked", aa.InvalidTokenError, "was revoked, or is a key for another site"),
    "config file, revoked": ("toml", "revoked", aa.InvalidTokenError, "was revoked, or is a key for another site"),
    "env var, expired": ("env", "expired", aa.InvalidTokenError, "expired on"),
    "stored, expired": ("store", "expired", aa.LoginRequiredError, "expired on"),
    "never there": ("store", "missing", aa.LoginRequiredError, "No API key for"),
}


def _key_case(tmp_path: Path, oidc_provider: Any, anaconda_api: Any, test_ca: Any, where: str,
              state: str) -> tuple[dict[str, str], str, str]:
    """Set up a key in ``where`` in ``state``: (CLI env, the key, the source the messages must name)."""
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca)
    home = Path(env["HOME"])
    key = anaconda_api.issue_key("alice", expires_in=-60 if state == "expired" else 86400 * 90)
    if state == "revoked":
        anaconda_api.revoke(key)
    config_toml = home / ".anaconda" / "config.toml"
    if where == "store" and state != "missing":
        assert run_cli(["login", "--with-token", "--no-verify"], env, input=key).returncode in (0, 1)
        if state == "expired":  # --with-token refuses an expired key: write it as the reference would
            config = _config(env)
            store_entry(config.keyring_path, config.domain, key)
    elif where == "env":
        env["ANACONDA_AUTH_API_KEY"] = key
    elif where == "dotenv":
        (home / ".env").write_text(f"ANACONDA_AUTH_API_KEY={key}\n")
    elif where == "toml":
        config_toml.parent.mkdir(parents=True, exist_ok=True)
        config_toml.write_text(f'[plugin.auth]\napi_key = "{key}"\n')
    source = {"store": f"file {home / '.anaconda' / 'keyring'}",
              "env": "environment variable ANACONDA_AUTH_API_KEY",
              "dotenv": f"{home / '.env'}: ANACONDA_AUTH_API_KEY",
              "toml": f"{config_toml} [plugin.auth] api_key"}[where]
    return env, key, source


@pytest.mark.parametrize("case", list(KEY_CASES))
def test_401_messages_say_what_happened_to_which_key_in_request_whoami_and_the_cli(
        oidc_provider, anaconda_api, test_ca, tmp_path, case):
    where, state, error, says = KEY_CASES[case]
    env, key, source = _key_case(tmp_path, oidc_provider, anaconda_api, test_ca, where, state)
    config = _config(env)
    fix = "Update or unset it there" if where != "store" else "Log in"
    with pytest.raises(error) as caught:
        aa.request("GET", "/api/account", config=config).raise_for_status()
    message = str(caught.value)
    assert says in message and source in message and fix in message, message
    assert key not in message
    if error is aa.InvalidTokenError:  # whoami() without a key returns the anonymous account
        with pytest.raises(error) as caught:
            aa.whoami(config)
        assert str(caught.value) == message
    result = run_cli(["whoami"], env)
    assert result.returncode == 3, result.stderr
    line = _one_line(result.stderr)
    assert source in line and fix in line and key not in line, line
    assert says in line or (state == "expired" and "expired on" in line) or (
        state == "missing" and "no API key" in line), line
    result = run_cli(["request", "/api/account"], env)
    assert result.returncode == 3, result.stderr
    line = result.stderr.splitlines()[0]  # then the login offer's hint
    assert source in line and fix in line and key not in line, line
    assert says in line or (state == "expired" and "expired on" in line), line


FORBIDDEN = {"error": {"code": "forbidden", "message": "You are not a member of this organization"}}


@pytest.mark.parametrize("where", ["store", "env", "dotenv", "toml"])
def test_403_and_a_bare_401_say_which_key_in_request_whoami_and_the_request_command(
        oidc_provider, anaconda_api, test_ca, tmp_path, where):
    env, key, source = _key_case(tmp_path, oidc_provider, anaconda_api, test_ca, where, "valid")
    config = _config(env)
    anaconda_api.route("GET", "/api/private", (403, {}, FORBIDDEN))
    anaconda_api.route("GET", "/api/bare", (401, {"Content-Type": "text/plain"}, "Unauthorized"))
    fix = "Update or unset it there" if where != "store" else "Log in again"
    # A valid key without the right to a resource: not "revoked", and no re-login advised.
    with pytest.raises(aa.HTTPError) as caught:
        aa.request("GET", "/api/private", config=config).raise_for_status()
    forbidden = str(caught.value)
    assert f"did not allow the API key from {source} to access this resource" in forbidden, forbidden
    assert "revoked" not in forbidden and fix not in forbidden and key not in forbidden
    result = run_cli(["request", "/api/private"], env)
    assert result.returncode == 1 and json.loads(result.stdout) == FORBIDDEN, result.stderr
    line = _one_line(result.stderr)
    assert line.startswith("error: GET ") and "HTTP 403" in line, line
    assert f"did not allow the API key from {source}" in line and "revoked" not in line and key not in line
    # A 401 without the API's error code still names the key, its source and the fix.
    with pytest.raises(aa.HTTPError) as caught:
        aa.request("GET", "/api/bare", config=config).raise_for_status()
    refused = str(caught.value)
    assert f"refused the API key from {source}: it was revoked" in refused and fix in refused, refused
    result = run_cli(["request", "/api/bare"], env)
    assert result.returncode == 1, result.stderr
    line = _one_line(result.stderr)
    assert "HTTP 401" in line and f"refused the API key from {source}" in line and fix in line, line
    assert key not in line
    # whoami: the same words from the Python API and the CLI.
    anaconda_api.route("GET", "/api/account", (403, {}, FORBIDDEN))
    with pytest.raises(aa.HTTPError) as caught:
        aa.whoami(config)
    assert f"did not allow the API key from {source}" in str(caught.value)
    result = run_cli(["whoami"], env)
    assert result.returncode == 1, result.stderr
    line = _one_line(result.stderr)
    assert f"did not allow the API key from {source}" in line and "revoked" not in line, line


# ==========================================================================================
# Never open a browser, as a setting; WSL
# ==========================================================================================

LINUX = "Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12) #1 SMP Debian"
WSL = "Linux version 5.15.153.1-microsoft-standard-WSL2 (root@941d701f84f1) (gcc (GCC) 11.2.0) #1 SMP"
SSH = {"SSH_CONNECTION": "10.0.0.1 50000 10.0.0.2 22"}

BROWSER_TABLE = {
    # case: (environ, stdin is a TTY, /proc/version, executables on PATH, webbrowser's default,
    #        allowed (not --no-browser / open_browser = false), platform, expected (how, detail))
    "graphical desktop": ({"DISPLAY": ":0"}, True, LINUX, (), "firefox", True, "linux", ("webbrowser", "")),
    "wayland desktop": ({"WAYLAND_DISPLAY": "wayland-0"}, True, LINUX, (), "firefox", True, "linux", ("webbrowser", "")),
    "ssh session": ({"DISPLAY": ":0", **SSH}, True, LINUX, (), "firefox", True, "linux", ("none", "this is an SSH session")),
    "ssh tty": ({"DISPLAY": ":0", "SSH_TTY": "/dev/pts/3"}, True, LINUX, (), "firefox", True, "linux", ("none", "this is an SSH session")),
    "no display": ({}, True, LINUX, (), "firefox", True, "linux", ("none", "there is no graphical display")),
    "not a terminal": ({"DISPLAY": ":0"}, False, LINUX, (), "firefox", True, "linux", ("none", "this is not an interactive terminal")),
    "console browser only": ({"DISPLAY": ":0"}, True, LINUX, (), "lynx", True, "linux",
                             ("none", "the only browser is the console browser lynx")),
    "no browser at all": ({"DISPLAY": ":0"}, True, LINUX, (), None, True, "linux", ("none", "no web browser was found")),
    "explicit BROWSER over SSH, no terminal, no display": ({"BROWSER": "mybrowser %s", **SSH}, False, LINUX, (), None, True,
                                                           "linux", ("webbrowser", "")),
    "macOS has no DISPLAY": ({}, True, "", (), "MacOSXOSAScript", True, "darwin", ("webbrowser", "")),
    "WSL (/proc/version) with wslview and explorer.exe": ({}, True, WSL, ("wslview", "explorer.exe"), None, True, "linux",
                                                         ("command", "/usr/bin/wslview")),
    "WSL_DISTRO_NAME with explorer.exe only": ({"WSL_DISTRO_NAME": "Ubuntu"}, True, LINUX, ("explorer.exe",), None, True,
                                               "linux", ("command", "/usr/bin/explorer.exe")),
    "WSL without wslview or explorer.exe": ({"WSL_DISTRO_NAME": "Ubuntu"}, True, WSL, (), None, True, "linux",
                                            ("none", "this is WSL and neither wslview nor explorer.exe was found on PATH")),
    "WSLg display without launchers": ({"WSL_DISTRO_NAME": "Ubuntu", "DISPLAY": ":0"}, True, WSL, (), "firefox", True,
                                       "linux", ("webbrowser", "")),
    "WSL over SSH": ({"WSL_DISTRO_NAME": "Ubuntu", **SSH}, True, WSL, ("wslview",), None, True, "linux",
                     ("none", "this is an SSH session")),
    "WSL, not a terminal": ({"WSL_DISTRO_NAME": "Ubuntu"}, False, WSL, ("wslview",), None, True, "linux",
                            ("none", "this is not an interactive terminal")),
    "WSL with BROWSER set": ({"WSL_DISTRO_NAME": "Ubuntu", "BROWSER": "wslview %s"}, True, WSL, ("wslview",), None, True,
                             "linux", ("webbrowser", "")),
    "open_browser = false": ({"DISPLAY": ":0"}, True, LINUX, (), "firefox", False, "linux", ("none", "opening a browser is turned off")),
    "--no-browser beats BROWSER and WSL": ({"BROWSER": "x %s", "WSL_DISTRO_NAME": "Ubuntu"}, True, WSL, ("wslview",),
                                           "firefox", False, "linux", ("none", "opening a browser is turned off")),
}


@pytest.mark.parametrize("case", list(BROWSER_TABLE))
def test_the_browser_decision_table(case):
    environ, tty, proc_version, found, default, allowed, platform, expected = BROWSER_TABLE[case]
    asked = []

    def default_browser():
        asked.append(True)
        return default

    how, detail = aa._choose_browser(
        environ, stdin_tty=tty, proc_version=proc_version, allowed=allowed, platform=platform,
        which=lambda name: f"/usr/bin/{name}" if name in found else None, default_browser=default_browser)
    assert how == expected[0], (how, detail)
    assert detail.startswith(expected[1]), detail
    # webbrowser (its import and its search of PATH) is asked only when its answer decides
    assert bool(asked) == (case in ("graphical desktop", "wayland desktop", "console browser only",
                                    "no browser at all", "macOS has no DISPLAY", "WSLg display without launchers"))


def _fake_programs(tmp_path: Path, names: list[str], log: Path, then: str = "exit 0") -> Path:
    """Real executables that record their name and argv in ``log``, then run ``then``."""
    import shlex
    import stat

    bindir = tmp_path / "fakebin"
    bindir.mkdir(exist_ok=True)
    for name in names:
        script = bindir / name
        script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$(basename "$0") $*" >> {shlex.quote(str(log))}\n{then}\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bindir


@pytest.mark.parametrize("how", ["--no-browser", "ANACONDA_AUTH_OPEN_BROWSER=0", "[plugin.auth]", "[sites.X]"])
def test_open_browser_false_does_what_no_browser_does(oidc_provider, anaconda_api, test_ca, tmp_path, how):
    from tests.test_login import PtyCLI

    log = tmp_path / "launched.log"
    bindir = _fake_programs(tmp_path, ["firefox", "xdg-open"], log)
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca, PATH=str(bindir), DISPLAY=":0", TERM="xterm")
    args = ["login", "--browser"]
    config_toml = Path(env["HOME"]) / ".anaconda" / "config.toml"
    config_toml.parent.mkdir(parents=True)
    source = {"ANACONDA_AUTH_OPEN_BROWSER=0": "environment variable ANACONDA_AUTH_OPEN_BROWSER",
              "[plugin.auth]": f"{config_toml} [plugin.auth] open_browser",
              "[sites.X]": f"{config_toml} [sites.ci] open_browser"}.get(how)
    if how == "--no-browser":
        args.append(how)
    elif how.startswith("ANACONDA_AUTH"):
        env["ANACONDA_AUTH_OPEN_BROWSER"] = "0"
    elif how == "[plugin.auth]":
        config_toml.write_text("[plugin.auth]\nopen_browser = false\n")
    else:
        config_toml.write_text(f'[sites.ci]\ndomain = "{anaconda_api.domain}"\nopen_browser = false\n')
    if source:
        shown = json.loads(run_cli(["config", "--json"], env).stdout)["values"]["open_browser"]
        assert shown == {"value": False, "source": source}
        assert f"open_browser = false  # {source}" in run_cli(["config"], env).stdout
    cli = PtyCLI(args, env)
    try:
        cli.expect(r"^    (https://\S+/auth\?\S+)$")
        cli.expect("paste here")  # the listener waits: a launch would have come before the URL
        assert "Open this URL in a browser" in cli.output and "Not opening a browser" not in cli.output
        assert not log.exists(), log.read_text()
        os.kill(cli.proc.pid, signal.SIGINT)
        assert cli.finish() == 130
    finally:
        cli.close()


@pytest.mark.parametrize("value, opens", [("1", True), ("yes", True), ("OFF", False), ("f", False)])
def test_open_browser_booleans_are_parsed_as_everywhere(tmp_path, value, opens):
    config = aa.resolve_config(environ={"ANACONDA_AUTH_OPEN_BROWSER": value}, home=str(tmp_path), cwd=str(tmp_path))
    assert config.open_browser is opens


def test_a_bad_open_browser_value_is_a_config_error_naming_the_variable(tmp_path):
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "ANACONDA_AUTH_OPEN_BROWSER": "maybe"}
    result = run_cli(["login"], env)
    assert result.returncode == 2 and "ANACONDA_AUTH_OPEN_BROWSER" in _one_line(result.stderr), result.stderr


def test_on_wsl_without_display_a_real_cli_login_launches_wslview(
        oidc_provider, anaconda_api, test_ca, tmp_path, useragent_browser_env):
    """A fake wslview (a real executable on PATH) records its argv and hands the URL to the stdlib
    user agent, which approves the device login: the CLI logs in with WSL_DISTRO_NAME and no DISPLAY."""
    import shlex

    from tests.test_login import PtyCLI

    log = tmp_path / "wslview.log"
    agent = str(useragent_browser_env).removesuffix(" %s &")
    bindir = _fake_programs(tmp_path, ["wslview"], log, then=f'exec {agent} "$1"')
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca, **useragent_browser_env.env,
               PATH=f"{bindir}:/usr/bin:/bin", WSL_DISTRO_NAME="Ubuntu", TERM="xterm")
    del env["BROWSER"]
    assert "DISPLAY" not in env and "WAYLAND_DISPLAY" not in env
    cli = PtyCLI(["login", "--device"], env)
    try:
        cli.expect("A browser was opened for you to approve this login")
        cli.expect(r"✓ Logged in to ", timeout=60)
        assert cli.finish() == 0, cli.output
    finally:
        cli.close()
    [line] = log.read_text().splitlines()
    name, url = shlex.split(line)
    assert name == "wslview" and url.startswith(f"https://127.0.0.1:{oidc_provider.port}/") and "user_code=" in url
    useragent_browser_env.result()  # the user agent finished without an error (it raises otherwise)
    assert run_cli(["api-key"], env).stdout.strip() == anaconda_api.issued_keys[-1]["api_key"]


# ==========================================================================================
# Logout tells the truth
# ==========================================================================================


def test_logout_says_the_key_stays_valid_on_the_server_and_where_to_revoke_it(
        oidc_provider, anaconda_api, test_ca, tmp_path):
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca)
    key = anaconda_api.issue_key("alice", expires_in=90 * 86400)
    assert run_cli(["login", "--with-token"], env, input=key).returncode == 0
    result = run_cli(["logout"], env)
    assert result.returncode == 0 and result.stdout == "", result.stderr
    assert result.stderr.splitlines() == [
        f"Logged out of {anaconda_api.domain}.",
        (f"The key itself stays valid on the server until it expires (on {_utc(aa.key_expiry(key))}) or is "
        f"revoked. To revoke it, go to your account settings at https://{anaconda_api.domain} (Account "
        "Settings, API Keys)."),
    ]
    assert key not in result.stderr
    assert anaconda_api.domain not in json.loads(_stored(env) or b"{}").get("Anaconda Cloud", {})
    assert run_cli(["api-key"], env).returncode == 3
    # what the notice says: the server still accepts the deleted key
    assert aa.request("GET", "/api/account", config=_config(env), api_key=key).ok
    again = run_cli(["logout"], env)
    assert again.returncode == 0 and again.stderr.splitlines() == [
        f"No stored API key for {anaconda_api.domain}; nothing to do."]


# ==========================================================================================
# The request command
# ==========================================================================================


def _logged_in(tmp_path: Path, oidc_provider: Any, anaconda_api: Any, test_ca: Any, **extra: str) -> tuple[dict[str, str], str]:
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca, **extra)
    key = anaconda_api.issue_key("alice")
    assert run_cli(["login", "--with-token"], env, input=key).returncode == 0
    return env, key


def run_cli_bytes(args: list[str], env: dict[str, str], input: bytes | None = None) -> Any:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "anaconda_auth", *args], env=env, cwd=env["HOME"], input=input,
                          stdin=None if input is not None else subprocess.DEVNULL, capture_output=True,
                          timeout=90, check=False)


def _echo(request: Any) -> tuple[int, dict[str, str], bytes]:
    """The stand-in's echo route: what arrived, as JSON; a body that is not JSON comes back raw."""
    seen = {"method": request.method, "path": request.path, "content_type": request.headers.get("Content-Type"),
            "authorization": request.headers.get("Authorization"), "x_trace": request.headers.get("X-Trace"),
            "body": request.body.decode("utf-8", "replace")}
    return 201, {"Content-Type": "application/json", "X-Echo": "yes"}, json.dumps(seen).encode()


def test_request_get_prints_the_json_body_as_received(oidc_provider, anaconda_api, test_ca, tmp_path):
    env, key = _logged_in(tmp_path, oidc_provider, anaconda_api, test_ca)
    raw = b'{"b": 1,\n  "a": "\xc3\xa9"}'  # not re-serialised: key order, spacing and UTF-8 as sent
    anaconda_api.route("GET", "/api/raw", (200, {"Content-Type": "application/json"}, raw))
    result = run_cli_bytes(["request", "/api/raw"], env)
    assert result.returncode == 0 and result.stdout == raw and result.stderr == b"", result.stderr
    account = run_cli_bytes(["request", "/api/account"], env)
    assert account.returncode == 0 and json.loads(account.stdout)["user"]["username"] == "alice"
    assert anaconda_api.requests[-1].headers["Authorization"] == f"Bearer {key}"
    assert key.encode() not in account.stdout + account.stderr


def test_request_post_with_data_inline_from_a_file_and_from_stdin(oidc_provider, anaconda_api, test_ca, tmp_path):
    env, key = _logged_in(tmp_path, oidc_provider, anaconda_api, test_ca)
    anaconda_api.route("*", "/api/echo", _echo)
    document = '{"name": "ci", "tags": ["a", "b"]}'
    body_file = tmp_path / "body.json"
    body_file.write_text(document)
    for args, stdin in ((["-d", document], None), (["-d", f"@{body_file}"], None), (["-d", "@-"], document.encode()),
                        (["--data", document, "-X", "put"], None)):
        result = run_cli_bytes(["request", *args, "/api/echo?x=1"], env, input=stdin)
        assert result.returncode == 0, result.stderr
        seen = json.loads(result.stdout)
        assert seen == {"method": "PUT" if "put" in args else "POST", "path": "/api/echo?x=1",
                        "content_type": "application/json", "authorization": f"Bearer {key}", "x_trace": None,
                        "body": document}, args


def test_request_headers_and_include(oidc_provider, anaconda_api, test_ca, tmp_path):
    env, _ = _logged_in(tmp_path, oidc_provider, anaconda_api, test_ca)
    anaconda_api.route("*", "/api/echo", _echo)
    result = run_cli_bytes(["request", "-i", "-H", "X-Trace: abc 123", "-H", "Content-Type: application/vnd.x+json",
                            "-d", "[]", "-X", "PATCH", "/api/echo"], env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert (seen["method"], seen["x_trace"], seen["content_type"]) == ("PATCH", "abc 123", "application/vnd.x+json")
    lines = result.stderr.decode().splitlines()
    assert lines[0] == "HTTP 201 Created" and "X-Echo: yes" in lines and "Content-Type: application/json" in lines
    assert lines[-1] == ""
    assert result.stdout.decode() not in result.stderr.decode()  # body on stdout only


def test_request_non_2xx_prints_the_body_and_exits_1(oidc_provider, anaconda_api, test_ca, tmp_path):
    env, _ = _logged_in(tmp_path, oidc_provider, anaconda_api, test_ca)
    anaconda_api.route("GET", "/api/gone", (404, {"Content-Type": "application/json"}, b'{"error": "not here"}'))
    result = run_cli_bytes(["request", "/api/gone"], env)
    assert result.returncode == 1 and result.stdout == b'{"error": "not here"}'
    assert _one_line(result.stderr.decode()) == f"error: GET {anaconda_api.url}/api/gone answered HTTP 404 Not Found"
    anaconda_api.route("GET", "/api/forbidden", (403, {}, {"error": {"code": "forbidden"}}))
    assert run_cli_bytes(["request", "/api/forbidden"], env).returncode == 1  # not a login problem


@pytest.mark.parametrize("state", ["no key", "expired key", "revoked key"])
def test_request_exits_3_when_a_login_is_needed(oidc_provider, anaconda_api, test_ca, tmp_path, state):
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca)
    if state == "expired key":
        env["ANACONDA_AUTH_API_KEY"] = anaconda_api.issue_key("alice", expires_in=-60)
    elif state == "revoked key":
        key = anaconda_api.issue_key("alice")
        assert run_cli(["login", "--with-token"], env, input=key).returncode == 0
        anaconda_api.revoke(key)
    result = run_cli(["request", "/api/account"], env)
    assert result.returncode == 3 and result.stdout == "", result.stderr
    line = _one_line(result.stderr)
    assert {"no key": "No API key for", "expired key": "expired on", "revoked key": "was revoked"}[state] in line
    assert "Traceback" not in line


def test_request_no_auth_sends_no_key(oidc_provider, anaconda_api, test_ca, tmp_path):
    env, _ = _logged_in(tmp_path, oidc_provider, anaconda_api, test_ca)
    anaconda_api.route("*", "/api/echo", _echo)
    result = run_cli(["request", "--no-auth", "/api/echo"], env)
    assert result.returncode == 0 and json.loads(result.stdout)["authorization"] is None
    assert run_cli(["request", "--no-auth", "/api/account"], env).returncode == 3


def test_request_to_another_origin_carries_no_key(oidc_provider, anaconda_api, test_ca, tmp_path, https_server):
    env, _ = _logged_in(tmp_path, oidc_provider, anaconda_api, test_ca)
    other = https_server()
    other.route("*", "/echo", _echo)
    result = run_cli(["request", "-d", "{}", f"{other.url}/echo"], env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["authorization"] is None and seen["method"] == "POST"
    assert all("Authorization" not in r.headers for r in other.requests)


def test_request_with_at_site(oidc_provider, anaconda_api, test_ca, tmp_path):
    env, _ = _logged_in(tmp_path, oidc_provider, anaconda_api, test_ca)
    config_toml = Path(env["HOME"]) / ".anaconda" / "config.toml"
    config_toml.write_text(f'[sites.api]\ndomain = "{anaconda_api.domain}"\n[sites.elsewhere]\n'
                           f'domain = "127.0.0.1:{free_port()}"\n')
    del env["ANACONDA_AUTH_DOMAIN"]
    for args in (["--at", "api", "request", "/api/account"], ["request", "/api/account", "--at", "api"]):
        result = run_cli(args, env)
        assert result.returncode == 0 and json.loads(result.stdout)["user"]["username"] == "alice", result.stderr
    elsewhere = run_cli(["request", "--at", "elsewhere", "/api/account"], env)
    assert elsewhere.returncode == 1 and "could not connect" in _one_line(elsewhere.stderr)


@pytest.mark.parametrize("args, says", [
    (["-H", "NoColon"], "write it as -H 'Name: value'"),
    (["-H", ": value"], "write it as -H 'Name: value'"),
    (["-H", "X-Bad\x01: v"], "is not a valid header name"),
    (["-d", "{not json"], "-d: not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2)"),
    (["-d", "@missing.json"], "-d @missing.json: cannot read the file missing.json: No such file or directory"),
    (["-d", "@bad.json"], "-d @bad.json: not valid JSON"),
    (["-X"], "expected one argument"),
    (["-X", "GE T"], "-X 'GE T' is not an HTTP method"),
    (["-X", "GET\r\nX: y"], "is not an HTTP method; give one word, like -X GET"),
    ([], "the following arguments are required: PATH_OR_URL"),
])
def test_request_usage_errors_exit_2_with_one_line(tmp_path, args, says):
    home = tmp_path / "home"
    home.mkdir()
    (home / "bad.json").write_text('{"secret-looking": ')
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
           "ANACONDA_AUTH_DOMAIN": f"127.0.0.1:{free_port()}"}
    result = run_cli(["request", *args] + (["/api/x"] if args and args != ["-X"] else []), env)
    assert result.returncode == 2, result.stderr
    assert says in _one_line(result.stderr) and "secret-looking" not in result.stderr


def _run_closed(args: list[str], env: dict[str, str], closed: str) -> Any:
    """The real CLI with a standard stream closed (``<&-``, ``>&-``, ``2>&-``): not /dev/null,
    closed, which Python shows as ``sys.stdin``/``stdout``/``stderr`` being None."""
    import shlex

    command = " ".join(shlex.quote(a) for a in [PYTHON, "-m", "anaconda_auth", *args])
    return run_captured(["sh", "-c", f"exec {command} {closed}"], env, env["HOME"])


@pytest.mark.parametrize("args, closed, code, says", [
    (["login", "--with-token"], "<&-", 2, "error: no API key on standard input"),
    (["login", "--with-token", "--no-verify"], "<&-", 2, "error: no API key on standard input"),
    (["request", "-d", "@-", "/api/x"], "<&-", 2, "error: -d @-: standard input is empty or closed"),
    (["request", "/api/x"], ">&-", 1, "error: standard output is closed"),
    (["status"], ">&-", 1, "error: standard output is closed"),
    (["api-key"], ">&-", 1, "error: standard output is closed"),
    (["status"], "2>&-", 0, None),
    (["request", "/api/x"], "2>&- >&-", 1, None),
])
def test_a_closed_standard_stream_is_a_one_line_error_not_a_crash(tmp_path, args, closed, code, says):
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
           "ANACONDA_AUTH_DOMAIN": f"127.0.0.1:{free_port()}",  # nothing listens: no request is sent
           "ANACONDA_AUTH_API_KEY": make_jwt({"sub": "ci", "exp": int(time.time()) + 90 * 86400})}
    result = _run_closed(args, env, closed)
    assert result.returncode == code, result.stderr
    if says is None:
        assert result.stderr == "" and "Traceback" not in result.stdout
    else:
        assert _one_line(result.stderr).startswith(says), result.stderr
    assert _stored(env) is None


# ==========================================================================================
# --quiet
# ==========================================================================================

QUIET_COMMANDS = {
    # name: (argv, stdin, stdout is the same data as without --quiet)
    "login --with-token": (["login", "--with-token"], "KEY", True),
    "login, already logged in": (["login"], None, True),
    "api-key": (["api-key"], None, True),
    "token": (["token"], None, True),
    "whoami": (["whoami"], None, True),
    "status": (["status"], None, True),
    "status --json": (["status", "--json"], None, True),
    "config": (["config"], None, True),
    "request": (["request", "/api/account"], None, True),
    "sites list": (["sites", "list"], None, True),
    "sites show": (["sites", "show"], None, True),
    "sites add": (["sites", "add", "--domain", "extra.example", "--name", "extra", "--yes"], None, False),
    "sites modify": (["sites", "modify", "--name", "extra", "--no-use-device-flow", "--yes"], None, False),
    "sites remove": (["sites", "remove", "extra", "--yes"], None, False),
    "logout": (["logout"], None, False),
}


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("name", list(QUIET_COMMANDS))
def test_quiet_leaves_only_data_on_stdout_and_nothing_on_stderr(
        oidc_provider, anaconda_api, test_ca, tmp_path, name, where):
    argv, stdin, same_data = QUIET_COMMANDS[name]
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca)
    key = anaconda_api.issue_key("alice", expires_in=TEN_DAYS)  # every command has a warning to give
    assert run_cli(["login", "--with-token"], env, input=key).returncode == 0
    add_extra = ["sites", "add", "--domain", "extra.example", "--name", "extra", "--yes"]
    if name.startswith(("sites modify", "sites remove")):
        assert run_cli(["sites", "add", "--domain", anaconda_api.domain, "--name", "keep", "--yes"], env).returncode == 0
        assert run_cli(add_extra, env).returncode == 0
    stdin = key if stdin == "KEY" else stdin
    quiet_argv = ["-q", *argv] if where == "before" else [*argv, "--quiet"]
    quiet = run_cli(quiet_argv, env, input=stdin)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    if name == "logout":
        assert run_cli(["api-key"], env).returncode == 3  # it did log out
    elif name in ("sites add", "sites modify", "sites remove"):
        toml = (Path(env["HOME"]) / ".anaconda" / "config.toml").read_text()
        assert ("extra.example" in toml) is (name != "sites remove")
        assert ("use_device_flow = false" in toml) is (name == "sites modify")
    if name == "sites add":
        argv = ["sites", "add", "--domain", "other.example", "--name", "other", "--yes"]
    elif name == "sites remove":
        assert run_cli(add_extra, env).returncode == 0
    loud = run_cli(argv, env, input=stdin)
    assert loud.returncode == 0, (name, loud.stderr)
    if name not in ("config", "sites show"):  # these two say nothing but their data anyway
        assert loud.stderr.strip(), name  # there was something to silence
    if same_data:
        assert quiet.stdout == loud.stdout
    assert key not in quiet.stdout or name in ("api-key", "token")


@pytest.mark.parametrize("argv", [["-q", "api-key"], ["api-key", "--quiet"], ["--quiet", "token", "--at", "anaconda.com"]])
def test_quiet_api_key_keeps_the_fast_path(tmp_path, argv):
    import subprocess
    import sys

    key = make_jwt({"sub": "a", "exp": int(time.time()) + TEN_DAYS})
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "ANACONDA_AUTH_API_KEY": key}
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "anaconda_auth", *argv], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout == key + "\n"
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert "time" in imported and "argparse" not in imported  # no parser: the fast path
    assert not [line for line in result.stderr.splitlines() if not line.startswith("import time:")]  # no warning


@pytest.mark.parametrize("argv", [["api-key"], ["config"]])
def test_quiet_silences_the_legacy_settings_line_too(tmp_path, argv):
    """The deprecation line for ANACONDA_CLOUD_* settings is said while the config is read,
    below the CLI; --quiet (the fast api-key path and argparse's) silences it all the same."""
    key = make_jwt({"sub": "a", "exp": int(time.time()) + TEN_DAYS})
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
           "ANACONDA_CLOUD_API_KEY": key}
    loud = run_cli(argv, env)
    assert loud.returncode == 0, loud.stderr
    assert "deprecated" in loud.stderr and "ANACONDA_CLOUD_" in loud.stderr
    quiet = run_cli(["--quiet", *argv], env)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "" and quiet.stdout == loud.stdout


def test_quiet_still_says_errors(oidc_provider, anaconda_api, test_ca, tmp_path):
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca)
    missing = run_cli(["-q", "whoami"], env)
    assert missing.returncode == 3 and "no API key for" in _one_line(missing.stderr)
    anaconda_api.route("GET", "/api/gone", (404, {}, b"gone"))
    gone = run_cli(["request", "-q", "--no-auth", "/api/gone"], env)
    assert gone.returncode == 1 and gone.stdout == "gone" and "HTTP 404" in _one_line(gone.stderr)
    bad = run_cli(["-q", "login", "--with-token"], env, input="two words")
    assert bad.returncode == 1 and "white space" in _one_line(bad.stderr)


def test_quiet_interactive_login_shows_only_what_the_user_must_act_on(
        oidc_provider, anaconda_api, test_ca, tmp_path, useragent_browser_env):
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca, **useragent_browser_env.env)
    result = run_cli(["login", "--device", "-q"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    text = result.stderr
    assert "enter the code" in text and any(line.strip() and line.strip().replace("-", "").isalpha()
                                            and line.startswith("    ") for line in text.splitlines())
    for chatter in ("A browser was opened", "To log in, use a browser", "✓", "expires", "Waiting for approval"):
        assert chatter not in text, text
    assert run_cli(["api-key"], env).stdout.strip() == anaconda_api.issued_keys[-1]["api_key"]


# ==========================================================================================
# The README's bootstrap script, as written
# ==========================================================================================


def readme_provisioning_script() -> str:
    """The one ``sh`` block of the README's "Provisioning a machine" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Provisioning a machine\n", 1)[1].split("\n## ", 1)[0]
    [script] = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return script


def _run_script(tmp_path: Path, env: dict[str, str], **extra: str) -> Any:
    import subprocess
    import sys

    script = tmp_path / "provision.sh"
    script.write_text(readme_provisioning_script())
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    # `python` is the interpreter running the tests; the environment names the site (the stand-in).
    run_env = {**env, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", **extra}
    return subprocess.run(["sh", str(script)], env=run_env, cwd=work, capture_output=True, text=True,
                          timeout=120, check=False)


def test_readme_bootstrap_script_provisions_checks_and_calls_the_api(oidc_provider, anaconda_api, test_ca, tmp_path):
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca)
    key = anaconda_api.issue_key("alice", expires_in=90 * 86400)
    result = _run_script(tmp_path, env, ANACONDA_PROVISIONING_KEY=key)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""  # --quiet: nothing but errors
    work = tmp_path / "work"
    assert json.loads((work / "account.json").read_text())["user"]["username"] == "alice"
    status = json.loads((work / "provision-status.json").read_text())
    assert status["logged_in"] is True and status["expires_in_days"] == 89
    assert run_cli(["api-key"], env).stdout == key + "\n"
    config = _config(env)
    assert config.open_browser is False and "[plugin.auth] open_browser" in config.sources["open_browser"]
    assert [r.headers.get("Authorization") for r in _account_requests(anaconda_api)] == [f"Bearer {key}"] * 2
    assert not any(key in r.path for r in anaconda_api.requests)


def test_readme_bootstrap_script_offline_stores_the_key_unchecked(oidc_provider, anaconda_api, test_ca, tmp_path):
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca, ANACONDA_AUTH_DOMAIN=f"127.0.0.1:{free_port()}")
    key = make_jwt({"sub": "image", "exp": int(time.time()) + 200 * 86400})
    result = _run_script(tmp_path, env, ANACONDA_PROVISIONING_KEY=key, OFFLINE="1")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert json.loads((tmp_path / "work" / "provision-status.json").read_text())["logged_in"] is True
    assert not (tmp_path / "work" / "account.json").exists()
    assert run_cli(["api-key"], env).stdout == key + "\n"


@pytest.mark.parametrize("case, code, says", [
    ("refused", 1, "refused the API key"),
    ("unreachable", 1, "could not connect"),
    ("empty", 2, "no API key on standard input"),
])
def test_readme_bootstrap_script_fails_with_one_line_and_stores_nothing(
        oidc_provider, anaconda_api, test_ca, tmp_path, case, code, says):
    extra = {"ANACONDA_AUTH_DOMAIN": f"127.0.0.1:{free_port()}"} if case == "unreachable" else {}
    env = _env(tmp_path, oidc_provider, anaconda_api, test_ca, **extra)
    key = {"refused": make_jwt({"sub": "x", "exp": int(time.time()) + 86400}),
           "unreachable": anaconda_api.issue_key("alice"), "empty": ""}[case]
    result = _run_script(tmp_path, env, ANACONDA_PROVISIONING_KEY=key)
    assert result.returncode == code, result.stderr
    assert says in _one_line(result.stderr)
    assert _stored(env) is None and not (tmp_path / "work" / "provision-status.json").exists()
