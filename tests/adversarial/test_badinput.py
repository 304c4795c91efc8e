"""The bad-input sweep: configuration values nobody should give, given anyway.

For every ``ANACONDA_AUTH_*`` variable (and ``ANACONDA_DEFAULT_SITE``, ``ANACONDA_SITES``,
``ANACONDA_CONFIG_TOML``): values of 1 MB, with NUL, with invalid UTF-8, with CR/LF, JSON of the
wrong type (lists, numbers, nested objects, non-string values) where an object is expected,
domains that URL parsers read differently (``evil.com@anaconda.com``), look-alikes
(``anaconda.com.evil.com``, IDN, punycode), IPv6 literals, trailing dots, user names, ports,
paths. Each goes through ``resolve_config`` and ``request`` in process and through the CLI
(``api-key``, ``status``, ``config``, ``sites show``: the commands that make no request).

The rules: the outcome is a Config, or an AnacondaAuthError whose one-line message names the
variable or file it came from (never a bare ValueError, never a 1 MB message, never a line
break from the value); the CLI prints no traceback and exits 0, 2 or 3; every subprocess has a
timeout; a request goes only through a recording proxy that forwards nothing off loopback, and
the key is never in what it received nor in any message.

What a real environment can hold: no NUL (``execve`` refuses it), at most 128 KiB per variable
on Linux (``MAX_ARG_STRLEN``), invalid UTF-8 only as bytes (``os.environb``; Python shows it as
surrogate escapes). So NUL and 1 MB values reach the CLI through ``.env``, ``config.toml`` and
secret files, and the environment of a CLI run gets 100 KiB values and raw bytes; in process,
``resolve_config(environ=...)`` takes them all.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import anaconda_auth as aa
from test_anaconda_auth import reset_caches
from tests.adversarial.helpers import (
    PYTHON,
    QuietRecordingProxy,
    budget,
    clean_env,
    cli,
    leaks,
    new_key,
    recorded_bytes,
    tried,
)
from tests.test_http import fresh_http_state  # noqa: F401 - autouse fixture

PART = "badinput"
MB = "x" * (1 << 20)
VARIABLES = (
    "ANACONDA_AUTH_DOMAIN", "ANACONDA_AUTH_AUTH_DOMAIN_OVERRIDE", "ANACONDA_AUTH_SITE",
    "ANACONDA_AUTH_API_KEY", "ANACONDA_AUTH_KEYRING", "ANACONDA_AUTH_KEYRING_PATH",
    "ANACONDA_AUTH_PREFERRED_TOKEN_STORAGE", "ANACONDA_AUTH_SSL_VERIFY",
    "ANACONDA_AUTH_EXTRA_HEADERS", "ANACONDA_AUTH_PROXY_SERVERS", "ANACONDA_AUTH_CLIENT_CERT",
    "ANACONDA_AUTH_USE_DEVICE_FLOW", "ANACONDA_AUTH_LOGIN_TIMEOUT",
    "ANACONDA_AUTH_EXPIRY_WARNING_DAYS", "ANACONDA_AUTH_REDIRECT_URI",
    "ANACONDA_DEFAULT_SITE", "ANACONDA_SITES", "ANACONDA_CONFIG_TOML", "ANACONDA_SECRETS_DIR",
)
JSON_VARIABLES = ("ANACONDA_AUTH_EXTRA_HEADERS", "ANACONDA_AUTH_PROXY_SERVERS",
                  "ANACONDA_AUTH_KEYRING", "ANACONDA_SITES")
NAMED_VALUES = {
    "1MB": MB,
    "1MB-json": json.dumps({"X-Big": MB}),
    "NUL": "ab\x00cd",
    "invalid-utf8": "ab\udcff\udcfecd",  # b"ab\xff\xfecd" as Python reads it from the OS
    "CRLF": "ab\r\nX-Injected: 1",
    "json-list": '["a", "b"]',
    "json-number": "5",
    "json-nested": '{"a": {"b": "c"}}',
    "json-number-value": '{"a": 1}',
    "json-null-value": '{"a": null}',
    "json-list-value": '{"a": ["x"]}',
    "json-bool": "true",
    "json-string": '"text"',
    "json-broken": '{"a": ',
    "empty": "",
    "spaces": "   ",
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def proxy():
    """Every request of this module goes through it: CONNECT reaches loopback only, plain http
    is answered 502 without being forwarded, and every byte is recorded."""
    recording = QuietRecordingProxy()
    yield recording
    recording.stop()


def _env(home: Path, **values: str) -> dict[str, str]:
    return {"HOME": str(home), "ANACONDA_SECRETS_DIR": str(home / "secrets"), **values}


def _check_error(error: BaseException, names: tuple[str, ...], key: str | None = None) -> None:
    """A clear error: ours, one line, short, naming one of ``names``, never the key."""
    message = str(error)
    assert isinstance(error, aa.AnacondaAuthError), f"{type(error).__name__}: {message[:300]}"
    assert "\n" not in message and "\r" not in message and "\x00" not in message, message[:300]
    assert len(message) < 1200, message[:300]
    assert any(name in message for name in names), (names, message[:300])
    if key:
        assert leaks(key, message=message, repr=repr(error)) == []


def _resolve_and_request(home: Path, proxy: QuietRecordingProxy, variable: str, value: str,
                         names: tuple[str, ...] = ()) -> aa.Config | None:
    """resolve_config with ``variable=value`` (and a fresh key from the environment unless the
    variable is the key), then a request through the proxy. Checks the rules; returns the
    Config, or None after a clear error."""
    key = new_key("opaque")
    environ = _env(home, ANACONDA_AUTH_API_KEY=key)
    environ[variable] = value
    names = names or (variable,)
    if variable == "ANACONDA_AUTH_API_KEY":
        key = ""  # the value under test is the key
    try:
        config = aa.resolve_config(environ=environ, home=str(home), cwd=str(home))
    except Exception as error:  # noqa: BLE001 - whatever it is, it must be ours
        _check_error(error, names, key)
        return None
    before = len(proxy.received)
    try:
        routed = config.replace(proxy_servers={"all": proxy.url})
        response = aa.request("GET", "/x", config=routed, retries=0, timeout=10)
        assert response.status in (403, 502), response.status
    except aa.NetworkError as error:  # the proxy refused the host: the message names the URL
        _check_error(error, ("GET https://",), key)
    except Exception as error:  # noqa: BLE001 - whatever it is, it must be ours
        # A value that only fails when used (a header, the key) still names where it was set.
        _check_error(error, names + ("API key", "extra_headers"), key)
    sent = proxy.received[before:]
    if key:
        assert leaks(key, proxy=sent) == []
    return config


# ------------------------------------------------------------------------------------------
# Every variable, the named cases and generated values (in process)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(NAMED_VALUES))
@pytest.mark.parametrize("variable", VARIABLES)
def test_named_bad_values_give_a_config_or_a_clear_error(home, proxy, variable, case):
    tried(PART)
    names = (variable,)
    if variable in ("ANACONDA_AUTH_SITE", "ANACONDA_DEFAULT_SITE"):
        names += ("site name", "site or domain")  # UnknownSiteName names the site and the file
    if variable == "ANACONDA_CONFIG_TOML":
        names += ("config file",)  # the file it points at is named
    config = _resolve_and_request(home, proxy, variable, NAMED_VALUES[case], names)
    if config is not None and variable in JSON_VARIABLES[:2] and case.startswith("json-"):
        value = getattr(config, variable[len("ANACONDA_AUTH_"):].lower())
        assert value is None or all(isinstance(v, str) for v in value.values()), value


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)
_nasty_text = st.text(st.characters(codec="utf-8") | st.sampled_from(
    ["\x00", "\r", "\n", "\udcff", "\t", "\x7f", "\u2028"]), max_size=20)
_value = (_json.map(json.dumps) | _nasty_text
          | st.sampled_from(list(NAMED_VALUES.values())))


# A generated ssl_verify=false is a value like any other here; its warning is tested elsewhere.
@pytest.mark.filterwarnings("ignore:TLS certificate verification is disabled")
@settings(max_examples=budget(150))
@given(variable=st.sampled_from(VARIABLES), value=_value)
@example(variable="ANACONDA_AUTH_EXTRA_HEADERS", value='{"X": {"nested": "dict"}}')
@example(variable="ANACONDA_AUTH_PROXY_SERVERS", value='{"https": 3128}')
@example(variable="ANACONDA_AUTH_KEYRING_PATH", value="a\x00b")  # was a bare ValueError
@example(variable="ANACONDA_AUTH_USE_DEVICE_FLOW", value=MB)  # was a 1 MB message
@example(variable="ANACONDA_AUTH_DOMAIN", value="\u00a1")  # accepted, then a bare ValueError
@example(variable="ANACONDA_AUTH_DOMAIN", value="-\u00a1")  # idem (no IDNA form)
def test_generated_values_give_a_config_or_a_clear_error(tmp_path_factory, proxy, variable,
                                                         value):
    tried(PART)
    home = tmp_path_factory.mktemp("home")
    names = (variable, "site name", "site or domain", "config file") if variable in (
        "ANACONDA_AUTH_SITE", "ANACONDA_DEFAULT_SITE", "ANACONDA_CONFIG_TOML") else (variable,)
    config = _resolve_and_request(home, proxy, variable, value, names)
    if config is not None:  # what was accepted also reads its key cleanly
        try:
            aa.get_api_key(config)
        except (aa.TokenNotFoundError, aa.TokenExpiredError):
            pass  # an answer about the key (what `status` reports), not a failure
        except aa.AnacondaAuthError as error:
            _check_error(error, (variable, "keyring", str(home)))


# ------------------------------------------------------------------------------------------
# Domains
# ------------------------------------------------------------------------------------------


# domain -> the host:port a request must go to, or None when it must be refused
DOMAINS = {
    "evil.com@anaconda.com": None,
    "user:secret-password@anaconda.com": None,
    "anaconda.com\\@evil.com": None,
    "anaconda.com.evil.com": "anaconda.com.evil.com:443",
    "anacönda.com": "xn--anacnda-d1a.com:443",
    "xn--anacnda-d1a.com": "xn--anacnda-d1a.com:443",
    "\u00a1": None,  # no IDNA 2008 form: was accepted, then a bare ValueError at request time
    "-\u00a1.com": None,
    "anaconda.com.": "anaconda.com.:443",
    "ANACONDA.COM": "anaconda.com:443",
    "anaconda.com:8443": "anaconda.com:8443",
    "https://anaconda.com/some/path?q=1#f": "anaconda.com:443",
    "[::1]:8443": "[::1]:8443",
    "[::1]": "[::1]:443",
    "::1": None,
    "[::1": None,
    "[::1]x": None,
    "anaconda.com:0": None,
    "anaconda.com:99999": None,
    "anaconda.com:": None,
    "anaconda.com:https": None,
    ":443": None,
    "anaconda.com evil.com": None,
    "anaconda.com\r\nX-Injected: 1": None,
    "anaconda.com\x00.evil.com": None,
    "anac\udcffonda.com": None,
    "http://": None,
}


@pytest.mark.parametrize("domain", list(DOMAINS))
def test_domains_are_refused_or_reached_exactly(home, proxy, domain):
    """Accepted domains get their request (and key) at exactly that host, through the proxy;
    the others are a ConfigError naming the variable and never showing a user's password."""
    tried(PART)
    expected = DOMAINS[domain]
    before = len(proxy.request_lines)
    config = _resolve_and_request(home, proxy, "ANACONDA_AUTH_DOMAIN", domain)
    if expected is None:
        assert config is None, f"{domain!r} was accepted as {config.domain!r}"
        with pytest.raises(aa.ConfigError) as info:
            aa.resolve_config(environ=_env(home, ANACONDA_AUTH_DOMAIN=domain), home=str(home))
        assert "secret-password" not in str(info.value)
        return
    assert config is not None
    assert [line.split()[:2] for line in proxy.request_lines[before:]] == [["CONNECT", expected]]
    site = aa._site_for(config)
    host, _, port = expected.rpartition(":")
    assert site.hosts == {(host, int(port))}
    # the key goes to that host only, not to the name it looks like
    for other in ("https://anaconda.com/x", "https://evil.com/x", "http://anaconda.com/x"):
        if aa._host_port(other)[1:] != (host, int(port)):
            assert not aa._may_carry_key(aa._host_port(other), site)


_label = st.text("abcxyz019-", min_size=1, max_size=5) | st.sampled_from(
    ["anaconda", "com", "xn--anacnda-d1a", "anacönda", "", "évil"])
_domain = st.one_of(
    st.lists(_label, min_size=1, max_size=4).map(".".join),
    st.tuples(st.lists(_label, min_size=1, max_size=3).map(".".join),
              st.sampled_from(["@", ":", ":443", ":0", ":65536", "/", "\\", "?", "#", " ", "\r\n",
                               "\x00", "%2e", "]", "[", "::"]),
              st.lists(_label, max_size=3).map(".".join)).map("".join),
    st.sampled_from(["[::1]", "[::ffff:127.0.0.1]", "[fe80::1%25eth0]", "[]", "[:]"]).flatmap(
        lambda h: st.sampled_from(["", ":8443", ":x"]).map(lambda p: h + p)),
)


@settings(max_examples=budget(150))
@given(domain=_domain, scheme=st.sampled_from(["", "https://", "http://", "HTTPS://"]))
@example(domain="anaconda.com:99999", scheme="")  # was a bare ValueError at request time
@example(domain="evil.com@anaconda.com", scheme="https://")  # was accepted
@example(domain="[:]", scheme="")  # was accepted, then a bare ValueError at request time
def test_generated_domains_are_refused_or_reached_exactly(tmp_path_factory, proxy, domain,
                                                         scheme):
    tried(PART)
    home = tmp_path_factory.mktemp("home")
    before = len(proxy.request_lines)
    config = _resolve_and_request(home, proxy, "ANACONDA_AUTH_DOMAIN", scheme + domain)
    if config is None:
        return
    lines = proxy.request_lines[before:]
    hosts = {f"{h}:{p}" for h, p in aa._site_for(config).hosts}
    # the one connection made went to the site's own host, the only one that may get the key
    assert len(lines) <= 1 and all(line.split()[1] in hosts for line in lines), (lines, hosts)


# ------------------------------------------------------------------------------------------
# Headers and keys with line breaks (a loopback server records what arrives)
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_site():
    from tests.httpserver import HTTPTestServer

    server = HTTPTestServer(None)
    server.route("GET", "/x", 204)
    yield server
    server.stop()


_header_text = st.text(st.characters(codec="utf-8") | st.sampled_from(
    ["\r", "\n", "\x00", ":", " ", "\t", "é", "\u2028", "\x7f"]), max_size=12)


@settings(max_examples=budget(150))
@given(headers=st.dictionaries(_header_text, _header_text, min_size=1, max_size=3),
       key_tail=st.sampled_from(["", "\r\nX-Injected: 1", "\n", "\x00", "\t", "é", "\u2713", " "]))
@example(headers={"X-Ok": "v\r\nX-Injected: 1"}, key_tail="")
@example(headers={"X-Ok": "v"}, key_tail="\r\nX-Injected: 1")  # was a ValueError quoting the key
@example(headers={"Authorization: Bearer leaked": "v"}, key_tail="")
def test_headers_and_keys_arrive_exactly_or_are_refused(tmp_path_factory, plain_site, headers,
                                                       key_tail):
    tried(PART)
    home = tmp_path_factory.mktemp("home")
    key = new_key("opaque")
    environ = _env(home, ANACONDA_AUTH_DOMAIN=f"127.0.0.1:{plain_site.port}",
                   ANACONDA_AUTH_API_KEY=key + key_tail,
                   ANACONDA_AUTH_EXTRA_HEADERS=json.dumps(headers))
    plain_site.clear()
    try:
        config = aa.resolve_config(environ=environ, home=str(home), cwd=str(home))
        aa.request("GET", f"http://127.0.0.1:{plain_site.port}/x", config=config, retries=0)
    except Exception as error:  # noqa: BLE001 - whatever it is, it must be ours
        _check_error(error, ("ANACONDA_AUTH_EXTRA_HEADERS", "ANACONDA_AUTH_API_KEY"), key)
        assert plain_site.requests == [], "nothing is sent after a refusal"
        return
    [arrived] = plain_site.requests
    names = {n.lower() for n in arrived.headers}
    assert "x-injected" not in names or any("x-injected" == n.lower() for n in headers)
    assert arrived.headers.get("Authorization") == f"Bearer {key}{key_tail}"
    for name, value in headers.items():
        if name.lower() not in ("user-agent", "x-client-hostname", "accept", "authorization",
                                "host", "accept-encoding"):
            assert arrived.headers.get(name) == value.strip(" \t"), (name, value)


# ------------------------------------------------------------------------------------------
# Files: .env, config.toml and secret files can hold what an environment cannot
# ------------------------------------------------------------------------------------------


FILE_CASES = {
    # name: (file, bytes, the source the error must name or None when accepted)
    "dotenv-NUL-in-domain": (".env", b"ANACONDA_AUTH_DOMAIN=ana\x00conda.com\n", ".env"),
    "dotenv-NUL-in-keyring-path": (".env", b"ANACONDA_AUTH_KEYRING_PATH=/tmp/a\x00b\n", ".env"),
    "dotenv-NUL-in-key": (".env", b"ANACONDA_AUTH_API_KEY=k\x00ey\n", None),
    "dotenv-invalid-utf8": (".env", b"ANACONDA_AUTH_DOMAIN=ab\xff\xfe.com\n", ".env"),
    "dotenv-1MB-domain": (".env", b"ANACONDA_AUTH_DOMAIN=" + MB.encode() + b"\n", ".env"),
    "dotenv-1MB-bool": (".env", b"ANACONDA_AUTH_USE_DEVICE_FLOW=" + MB.encode() + b"\n", ".env"),
    "dotenv-1MB-path": (".env", b"ANACONDA_AUTH_KEYRING_PATH=" + MB.encode() + b"\n", ".env"),
    "dotenv-CRLF-lines": (".env", b"ANACONDA_AUTH_DOMAIN=anaconda.com\r\nANACONDA_AUTH_SSL_VERIFY=1\r\n", None),
    "dotenv-json-list-headers": (".env", b'ANACONDA_AUTH_EXTRA_HEADERS=["a"]\n', ".env"),
    "toml-NUL-byte": ("config.toml", b'[plugin.auth]\ndomain = "a\x00b"\n', "config.toml"),
    "toml-NUL-escape-domain": ("config.toml", b'[plugin.auth]\ndomain = "a\\u0000b"\n', "config.toml"),
    "toml-NUL-escape-key": ("config.toml", b'[plugin.auth]\napi_key = "k\\u0000ey"\n', None),
    "toml-CRLF-escape-header": ("config.toml", b'[plugin.auth.extra_headers]\nX-A = "v\\r\\nX-B: 1"\n', None),
    "toml-invalid-utf8": ("config.toml", b'[plugin.auth]\ndomain = "\xff"\n', "config.toml"),
    "toml-wrong-types": ("config.toml", b"[plugin.auth]\nextra_headers = [1, 2]\n", "config.toml"),
    "toml-nested-proxy": ("config.toml", b'[plugin.auth.proxy_servers]\nhttps = { a = "b" }\n', "config.toml"),
    "toml-number-key": ("config.toml", b"[plugin.auth]\napi_key = 5\n", "config.toml"),
    "toml-1MB-site": ("config.toml", b'default_site = "' + MB.encode() + b'"\n', "config.toml"),
    "toml-userinfo-domain": ("config.toml", b'[sites.s]\ndomain = "me:pw@anaconda.com"\n', "config.toml"),
    "secret-invalid-utf8": ("no-secrets/ANACONDA_AUTH_DOMAIN", b"\xff\xfe", "ANACONDA_AUTH_DOMAIN"),
    "secret-NUL": ("no-secrets/ANACONDA_AUTH_DOMAIN", b"a\x00b", "ANACONDA_AUTH_DOMAIN"),
}


def _write_case(home: Path, case: str) -> str | None:
    name, data, source = FILE_CASES[case]
    path = home / ".anaconda" / name if name == "config.toml" else home / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return source


CLI_COMMANDS = (("api-key",), ("status",), ("config", "--json"), ("sites", "show"))


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_files_holding_bad_values_through_the_cli(home, case):
    """Real CLI processes (each with a timeout): no traceback, exit 0/2/3 (1 for a stored
    file that cannot be read), a short stderr naming the file or variable."""
    source = _write_case(home, case)
    for command in CLI_COMMANDS:
        tried(PART)
        run = cli(home, *command, timeout=30)
        assert "Traceback" not in run.stderr, run.stderr[-2000:]
        assert run.returncode in (0, 1, 2, 3), (command, run.returncode, run.stderr[:500])
        assert len(run.stderr) < 1500 and len(run.stderr.splitlines()) <= 3, run.stderr[:500]
        if run.returncode in (1, 2):
            assert source is not None and source in run.stderr, (command, run.stderr[:500])
        elif source is not None and command != ("api-key",):
            pytest.fail(f"{case}: {command} accepted it: {run.stdout[:300]}")


def test_a_key_with_a_nul_from_a_file_is_refused_when_sent(home, proxy):
    """Accepted by the readers (api-key prints what was configured), refused at the one place
    it would do harm: the Authorization header."""
    tried(PART)
    (home / ".env").write_bytes(b"ANACONDA_AUTH_API_KEY=k\x00ey\nANACONDA_AUTH_DOMAIN=127.0.0.1:9\n")
    run = cli(home, "whoami", env={"HTTPS_PROXY": proxy.url}, timeout=30)
    assert run.returncode == 2, run.stderr
    assert "API key from" in run.stderr and ".env" in run.stderr and "Traceback" not in run.stderr


# ------------------------------------------------------------------------------------------
# The environment of real CLI runs: raw bytes and 100 KiB values
# ------------------------------------------------------------------------------------------


def _cli_bytes(home: Path, command: tuple[str, ...], extra: dict[bytes, bytes]) -> subprocess.CompletedProcess[bytes]:
    env = {k.encode(): v.encode() for k, v in clean_env(home).items()}
    env.update(extra)
    return subprocess.run([PYTHON, "-m", "anaconda_auth", *command], env=env, cwd=str(home),
                          capture_output=True, timeout=30, check=False)


ENV_CASES = {
    "invalid-utf8": b"ab\xff\xfecd",
    "100KiB": b"y" * (100 * 1024),
    "CRLF": b"ab\r\nX-Injected: 1",
    "json-nested": b'{"a": {"b": "c"}}',
}
CLI_VARIABLES = ("ANACONDA_AUTH_DOMAIN", "ANACONDA_AUTH_SITE", "ANACONDA_AUTH_API_KEY",
                 "ANACONDA_AUTH_EXTRA_HEADERS", "ANACONDA_AUTH_PROXY_SERVERS",
                 "ANACONDA_AUTH_SSL_VERIFY", "ANACONDA_AUTH_KEYRING_PATH",
                 "ANACONDA_AUTH_USE_DEVICE_FLOW", "ANACONDA_DEFAULT_SITE", "ANACONDA_SITES")


@pytest.mark.parametrize("case", list(ENV_CASES))
@pytest.mark.parametrize("variable", CLI_VARIABLES)
def test_the_real_environment_through_the_cli(home, variable, case):
    for command in (("status",), ("config", "--json")):
        tried(PART)
        run = _cli_bytes(home, command, {variable.encode(): ENV_CASES[case]})
        stderr = run.stderr.decode("utf-8", "replace")
        assert "Traceback" not in stderr, stderr[-2000:]
        assert run.returncode in (0, 2, 3), (command, run.returncode, stderr[:500])
        assert len(stderr) < 1500 and len(stderr.splitlines()) <= 3, stderr[:500]
        if run.returncode == 2:
            assert variable in stderr or "site" in stderr, stderr[:500]


# ------------------------------------------------------------------------------------------
# The same sweep through main() in process (fast, so every variable meets every named case)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [c for c in NAMED_VALUES if c != "NUL"])
def test_every_variable_and_case_through_main(home, monkeypatch, case):
    """``main(argv)`` in this process with the variable in os.environ (NUL cannot be there):
    the same code as the CLI after start-up, for every variable and command."""
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it
    for name in list(os.environ):
        if name.startswith(("ANACONDA_", "CONDA")):
            monkeypatch.delenv(name)
    for name, value in clean_env(home).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(home)
    for variable in VARIABLES:
        monkeypatch.setenv(variable, NAMED_VALUES[case])
        for command in CLI_COMMANDS:
            tried(PART)
            reset_caches()
            # A real process's streams in a UTF-8 locale outside the UTF-8 mode: stdout strict,
            # stderr backslashreplace.
            out, err_bytes = io.BytesIO(), io.BytesIO()
            monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out, "utf-8", errors="strict"))
            monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(
                err_bytes, "utf-8", errors="backslashreplace", write_through=True))
            code = aa.main(list(command))
            err = err_bytes.getvalue().decode("utf-8", "replace")
            assert code in (0, 1, 2, 3), (variable, command, code, err[:300])
            assert "Unexpected error" not in err and len(err) < 1500, (variable, command, err[:300])
            assert len(err.splitlines()) <= 3, (variable, command, err[:500])
        monkeypatch.delenv(variable)


def test_recorded_bytes_helper_sees_headers(plain_site):
    """The helper the sweep relies on to see what arrived does see a header."""
    tried(PART)
    plain_site.clear()
    aa.request("GET", f"http://127.0.0.1:{plain_site.port}/x", auth=False,
               headers={"X-Probe": "probe-value-123"}, retries=0,
               config=aa.resolve_config(environ={"HOME": "/nonexistent"}, home="/nonexistent",
                                        cwd="/nonexistent"))
    assert b"probe-value-123" in recorded_bytes(plain_site)
