"""The leak matrix: where the API key must never go, and where it must never show.

Every test makes its own key (``helpers.new_key``) and searches every channel it captured for
the key, its URL-encoded forms and its base64 forms at each alignment (``helpers.leaks``):

- what other origins received: two loopback HTTPS origins (the site on 127.0.0.1, another on
  ``localhost``), another port of the site's host, a plain-http loopback server; every 301, 302,
  303, 307 and 308 towards each; absolute URLs for them, also spelled to confuse URL parsers;
- what a proxy received (``helpers.RecordingProxy`` records every byte, tunnels included): for
  https targets it only sees TLS records, for plain http it must not see the key at all; a site
  whose domain is not loopback is reached only through the proxy, which forwards nothing off
  loopback, so no test traffic leaves the machine;
- exception messages, ``repr`` of Config, Response, Client and errors, and full tracebacks of
  forced failures (refused connection, untrusted TLS, 401, 5xx, redirect loops, a corrupt store,
  bad configuration), in process and from ``--verbose`` CLI runs;
- the output of ``config``, ``config --json``, ``status``, ``status --json``, ``sites list``
  and ``sites show`` (also ``--show-hidden``, ``--all``) for every place a key can come from;
- the argv of every process a CLI run starts (a PEP 578 audit hook logs them): the browser
  opened by ``login`` in both flows included.

Positive controls make each case able to fail: the site itself does get the key, ``api-key``
does print it, the login does launch the browser.
"""

from __future__ import annotations

import json
import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any

import pytest

import anaconda_auth as aa
from tests.adversarial.helpers import (
    KEYRING_SERVICE,
    RecordingProxy,
    clean_env,
    cli,
    encode_entry,
    exec_log,
    exec_logging_env,
    leaks,
    new_key,
    recorded_bytes,
    tried,
)
from tests.test_http import CA_VARIABLES, fresh_http_state  # noqa: F401 - autouse fixture

PART = "leaks"
REDIRECTS = (301, 302, 303, 307, 308)
OFF_LOOPBACK = "anaconda-leak.test"  # reserved TLD: reached only through the recording proxy


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


class Origins:
    """The site (https, 127.0.0.1), another host (https, localhost), another port of the
    site's host (https) and a plain-http loopback server. Started once for the module (four
    servers per test cost more than the tests); ``fresh()`` forgets what they recorded and
    puts back the routes tests change, each answering 200."""

    PATHS = ("/landing", "/x", "/mine", "/back", "/api/account")  # the server has no wildcard

    def __init__(self, test_ca: Any) -> None:
        from tests.httpserver import HTTPTestServer

        self.site = HTTPTestServer(test_ca.server_context())
        self.other_host = HTTPTestServer(test_ca.server_context(), host="localhost")
        self.other_port = HTTPTestServer(test_ca.server_context())
        self.plain = HTTPTestServer(None)

    def all(self) -> list[Any]:
        return [self.site, self.other_host, self.other_port, self.plain]

    def fresh(self) -> Origins:
        for server in self.all():
            for path in self.PATHS:
                server.route("*", path, (200, {}, {"ok": True}))
            server.clear()
        return self

    def target(self, name: str) -> tuple[Any, str]:
        """(server that must receive the request, URL of ``name``)."""
        s, h, p, plain = self.site, self.other_host, self.other_port, self.plain
        return {
            "other-host": (h, f"{h.url}/landing"),
            "other-port": (p, f"{p.url}/landing"),
            "plain-http-loopback": (plain, f"{plain.url}/landing"),
            "same-host-by-name": (s, f"https://localhost:{s.port}/landing"),
            "userinfo-confusion": (h, f"https://127.0.0.1:{s.port}@localhost:{h.port}/landing"),
            "upper-case-other-host": (h, f"https://LOCALHOST:{h.port}/landing"),
        }[name]


@pytest.fixture(scope="module")
def servers(test_ca):
    started = Origins(test_ca)
    yield started
    for server in started.all():
        server.stop()


@pytest.fixture
def origins(servers: Origins) -> Origins:
    return servers.fresh()


def site_config(home: Path, test_ca: Any, domain: str, key: str, source: str, **more: Any) -> tuple[aa.Config, str | None]:
    """A Config for ``domain`` whose key comes from ``source``: the ``argument`` (returned for
    request(api_key=...)), the ``config`` (api_key setting) or the ``store`` (file store)."""
    env = {"HOME": str(home), "ANACONDA_SECRETS_DIR": str(home / "no-secrets")}
    more.setdefault("ssl_verify", test_ca.ca_pem)
    if source == "config":
        more["api_key"] = key
    config = aa.resolve_config(environ=env, home=str(home), cwd=str(home), domain=domain, **more)
    if source == "store":
        aa.login(config, api_key=key, verify=False)
    return config, key if source == "argument" else None


KEY_SOURCES = ("argument", "config", "store")


def bearer_of(server: Any) -> list[str | None]:
    return [r.headers.get("Authorization") for r in server.requests]


# ------------------------------------------------------------------------------------------
# Where the key goes: redirects, other origins, absolute URLs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("target", ["other-host", "other-port", "plain-http-loopback",
                                    "same-host-by-name", "userinfo-confusion"])
@pytest.mark.parametrize("status", REDIRECTS)
def test_a_redirect_to_another_origin_never_carries_the_key(origins, home, test_ca, status,
                                                            target, method):
    tried(PART)
    # The key's kind and source rotate with the status: each target meets every source.
    key = new_key("opaque" if status % 2 else "jwt")
    config, argument = site_config(home, test_ca, f"127.0.0.1:{origins.site.port}", key,
                                   KEY_SOURCES[status % 3])
    receiver, url = origins.target(target)
    origins.site.redirect("/go", url, status=status)
    response = aa.request(method, "/go", config=config, api_key=argument, json={"a": 1},
                          retries=0)
    assert response.status == 200 and response.url == url
    assert bearer_of(origins.site)[0] == f"Bearer {key}", "control: the site got the key"
    assert receiver.requests[-1].path == "/landing", "the redirect was followed"
    assert not response.sent_auth
    channels = {s.url: recorded_bytes(s) for s in origins.all() if s is not origins.site}
    if receiver is origins.site:  # the same server by another name: the second request
        assert bearer_of(origins.site) == [f"Bearer {key}", None]
    assert leaks(key, **channels) == []


@pytest.mark.parametrize("source", KEY_SOURCES)
@pytest.mark.parametrize("target", ["other-host", "other-port", "plain-http-loopback",
                                    "same-host-by-name", "userinfo-confusion",
                                    "upper-case-other-host"])
def test_an_absolute_url_for_another_origin_never_gets_the_key(origins, home, test_ca, target,
                                                              source):
    tried(PART)
    key = new_key()
    config, argument = site_config(home, test_ca, f"127.0.0.1:{origins.site.port}", key, source)
    receiver, url = origins.target(target)
    response = aa.request("GET", url, config=config, api_key=argument, retries=0)
    assert response.status == 200 and receiver.requests, "the request reached its server"
    assert not response.sent_auth
    assert leaks(key, **{s.url: recorded_bytes(s) for s in origins.all()}) == []
    # control: the same Config sends the key to the site itself
    aa.request("GET", "/mine", config=config, api_key=argument, retries=0)
    assert bearer_of(origins.site)[-1] == f"Bearer {key}"


@pytest.mark.parametrize("status", REDIRECTS)
def test_a_redirect_chain_that_comes_back_to_the_site_does_not_regain_the_key(origins, home,
                                                                            test_ca, status):
    """Once a redirect left the origin the key is gone for good, even if a later hop returns
    to the site: the other origin chose that hop."""
    tried(PART)
    key = new_key()
    config, _ = site_config(home, test_ca, f"127.0.0.1:{origins.site.port}", key, "config")
    origins.site.redirect("/go", f"{origins.other_host.url}/bounce", status=status)
    origins.other_host.redirect("/bounce", f"{origins.site.url}/back", status=status)
    response = aa.request("GET", "/go", config=config, retries=0)
    assert response.url == f"{origins.site.url}/back"
    assert bearer_of(origins.site) == [f"Bearer {key}", None]
    assert leaks(key, other=recorded_bytes(origins.other_host)) == []


# ------------------------------------------------------------------------------------------
# Proxies: the key never travels in clear to a proxy; off-loopback plain http never gets it
# ------------------------------------------------------------------------------------------


@pytest.fixture
def proxy():
    recording = RecordingProxy()
    yield recording
    recording.stop()


def _use_proxy(how: str, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    if how == "environment":
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.setenv(name, proxy.url)
        return {}
    return {"proxy_servers": {"http": proxy.url, "https": proxy.url}}


@pytest.mark.parametrize("how", ["config", "environment"])
@pytest.mark.parametrize("source", KEY_SOURCES)
@pytest.mark.parametrize("target", ["https-loopback", "http-loopback", "http-off-loopback",
                                    "https-off-loopback", "redirect-to-http-off-loopback"])
def test_through_a_proxy_the_key_never_travels_in_clear(origins, home, test_ca, proxy,
                                                        monkeypatch, how, source, target):
    tried(PART)
    key = new_key("opaque")
    more = _use_proxy(how, proxy, monkeypatch)
    domain = {"https-loopback": f"127.0.0.1:{origins.site.port}",
              "http-loopback": f"127.0.0.1:{origins.plain.port}",
              "redirect-to-http-off-loopback": f"127.0.0.1:{origins.site.port}"}.get(target, OFF_LOOPBACK)
    config, argument = site_config(home, test_ca, domain, key, source, **more)
    url = {"https-loopback": "/x", "http-loopback": f"http://{domain}/x",
           "http-off-loopback": f"http://{OFF_LOOPBACK}/x", "https-off-loopback": "/x",
           "redirect-to-http-off-loopback": "/go"}[target]
    origins.site.redirect("/go", f"http://{OFF_LOOPBACK}/landing")
    error: BaseException | None = None
    try:
        response = aa.request("GET", url, config=config, api_key=argument, retries=0)
    except aa.NetworkError as e:
        error = e
    assert proxy.request_lines, "the request went through the proxy"
    if target == "https-off-loopback":
        assert isinstance(error, aa.NetworkError)  # the proxy refuses CONNECT off loopback
    elif target in ("https-loopback", "redirect-to-http-off-loopback"):
        assert proxy.request_lines[0].startswith(f"CONNECT 127.0.0.1:{origins.site.port}")
        assert bearer_of(origins.site)[0] == f"Bearer {key}", "control: tunnelled to the site"
    else:
        assert error is None and response.status == 502 and not response.sent_auth
    if target == "redirect-to-http-off-loopback":
        assert f"GET http://{OFF_LOOPBACK}/landing HTTP/1.1" in proxy.request_lines
    text = "" if error is None else "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert leaks(key, proxy=proxy.received, error=text, plain=recorded_bytes(origins.plain)) == []


def test_a_proxy_password_is_not_the_key_and_neither_shows(origins, home, test_ca, proxy):
    """Basic proxy credentials go to the proxy (that is their purpose); the API key does not,
    and a failure names the proxy without its password."""
    tried(PART)
    key, password = new_key(), new_key("opaque")
    from urllib.parse import quote

    config, _ = site_config(home, test_ca, OFF_LOOPBACK, key, "config", proxy_servers={
        "https": f"http://user:{quote(password, safe='')}@127.0.0.1:{proxy.port}"})
    with pytest.raises(aa.NetworkError) as info:
        aa.request("GET", "/x", config=config, retries=0)
    assert leaks(password, proxy=proxy.received) == ["proxy"], "control: the proxy got it"
    assert leaks(key, proxy=proxy.received) == []
    shown = [str(info.value), repr(info.value), repr(config), repr(aa.Client(config))]
    assert leaks(key, shown=shown) == [] and leaks(password, shown=shown) == []


# ------------------------------------------------------------------------------------------
# Messages, reprs and tracebacks of forced failures (in process)
# ------------------------------------------------------------------------------------------


def _everything_shown(error: BaseException | None, *objects: Any) -> list[str]:
    shown = [repr(o) for o in objects] + [str(o) for o in objects if isinstance(o, aa.Config)]
    if error is not None:
        shown += [str(error), repr(error),
                  "".join(traceback.format_exception(type(error), error, error.__traceback__))]
        response = getattr(error, "response", None)
        if response is not None:
            shown.append(repr(response))
    return shown


FAILURES = ("refused", "untrusted-tls", "auth-required", "server-error", "redirect-loop",
            "bad-location", "read-timeout", "reset")


@pytest.mark.parametrize("source", KEY_SOURCES)
@pytest.mark.parametrize("failure", FAILURES)
def test_errors_reprs_and_tracebacks_never_show_the_key(origins, home, test_ca, monkeypatch,
                                                        failure, source):
    tried(PART)
    key = new_key("opaque")
    site = origins.site
    domain = f"127.0.0.1:{site.port}"
    more: dict[str, Any] = {}
    if failure == "refused":
        import socket

        with socket.socket() as s:  # a port nothing listens on (bound, never listening)
            s.bind(("127.0.0.1", 0))
            domain = f"127.0.0.1:{s.getsockname()[1]}"
            config, argument = site_config(home, test_ca, domain, key, source)
            with pytest.raises(aa.NetworkError) as info:
                aa.request("GET", "/x", config=config, api_key=argument, retries=0)
    else:
        if failure == "untrusted-tls":
            for name in CA_VARIABLES:
                monkeypatch.delenv(name, raising=False)
            more["ssl_verify"] = True  # certifi: does not know the test CA
        config, argument = site_config(home, test_ca, domain, key, source, **more)
        site.route("GET", "/x", {
            "auth-required": (401, {}, {"error": {"code": "auth_required", "message": "no"}}),
            "server-error": (500, {}, "boom " * 50),
            "redirect-loop": (302, {"Location": "/x"}, b""),
            "bad-location": (302, {"Location": "http://[::1/x"}, b""),
            "read-timeout": site.delay(2.0),
            "reset": site.RESET,
        }.get(failure, 200))
        with pytest.raises(aa.AnacondaAuthError) as info:
            aa.request("GET", "/x", config=config, api_key=argument, retries=0,
                       timeout=(5.0, 0.5)).raise_for_status()
    assert leaks(key, shown=_everything_shown(info.value, config, aa.Client(config))) == []


def test_a_key_with_a_line_break_is_refused_without_quoting_it(origins, home, test_ca):
    """Bug found by this tier: http.client refused the header with a ValueError quoting
    ``Bearer <key>``; a NUL went out as is. Now the module refuses the key itself, naming
    where it came from and nothing of the key."""
    tried(PART, 3)
    key = new_key("opaque")
    site = origins.site
    for bad, source in ((key + "\r\nX-Injected: 1", "config"), (key + "\x00", "argument"),
                        (key + "\u2713", "config")):
        config, argument = site_config(home, test_ca, f"127.0.0.1:{site.port}", bad, source)
        with pytest.raises(aa.ConfigError, match="contains a line break") as info:
            aa.request("GET", "/x", config=config, api_key=argument, retries=0)
        assert ("argument" if source == "argument" else "api_key") in str(info.value)
        assert leaks(key, shown=_everything_shown(info.value, config)) == []
    assert site.requests == []


def test_a_non_string_api_key_in_config_toml_is_not_echoed(home):
    """Bug found by this tier: ``api_key = ["<key>"]`` gave "['<key>'] is not a string"."""
    tried(PART)
    key = new_key()
    toml = home / "config.toml"
    toml.write_text(f'[plugin.auth]\napi_key = ["{key}"]\n', encoding="utf-8")
    with pytest.raises(aa.ConfigError, match=r"plugin.auth\] api_key: a list is not a string") as info:
        aa.resolve_config(environ={"HOME": str(home), "ANACONDA_CONFIG_TOML": str(toml)},
                          home=str(home), cwd=str(home))
    assert leaks(key, shown=_everything_shown(info.value)) == []


def test_a_key_typed_into_a_header_name_is_not_echoed(home):
    """Bug found by this tier: ``{"Authorization: Bearer <key>": ""}`` was echoed whole."""
    tried(PART)
    key = new_key()
    config = aa.resolve_config(environ={"HOME": str(home)}, home=str(home), cwd=str(home),
                               extra_headers={f"Authorization: Bearer {key}": "x"})
    with pytest.raises(aa.ConfigError, match=r"'Authorization\*\*\*\*\*\*\*\*' is not a valid header name") as info:
        aa.request("GET", "https://127.0.0.1:9/x", config=config, retries=0)
    assert leaks(key, shown=_everything_shown(info.value, config)) == []


# ------------------------------------------------------------------------------------------
# CLI output for every place a key can come from
# ------------------------------------------------------------------------------------------


KEY_PLACES = ("environment", "dotenv", "secrets-dir", "plugin-auth", "site-table",
              "sites-env", "file-store", "keyring-setting", "extra-header", "proxy-password")
SHOW_COMMANDS = (("config",), ("config", "--json"), ("status",), ("status", "--json"),
                 ("sites", "list"), ("sites", "show"), ("sites", "show", "--show-hidden"),
                 ("sites", "show", "--all"))


def _place_key(home: Path, place: str, key: str, domain: str) -> dict[str, str]:
    """Put ``key`` in ``place`` for the default site on ``domain``; the CLI env to use."""
    env = {"ANACONDA_AUTH_DOMAIN": domain}
    anaconda = home / ".anaconda"
    anaconda.mkdir(exist_ok=True)
    if place == "environment":
        env["ANACONDA_AUTH_API_KEY"] = key
    elif place == "dotenv":
        (home / ".env").write_text(f"ANACONDA_AUTH_API_KEY={key}\n", encoding="utf-8")
    elif place == "secrets-dir":
        (home / "no-secrets").mkdir()
        (home / "no-secrets" / "ANACONDA_AUTH_API_KEY").write_text(key + "\n", encoding="utf-8")
    elif place == "plugin-auth":
        (anaconda / "config.toml").write_text(f'[plugin.auth]\napi_key = "{key}"\n', encoding="utf-8")
    elif place in ("site-table", "sites-env"):
        del env["ANACONDA_AUTH_DOMAIN"]
        if place == "site-table":
            (anaconda / "config.toml").write_text(textwrap.dedent(f"""\
                default_site = "leak"

                [sites.leak]
                domain = "{domain}"
                api_key = "{key}"
                """), encoding="utf-8")
        else:
            env["ANACONDA_SITES"] = json.dumps({"leak": {"domain": domain, "api_key": key}})
    elif place == "file-store":
        (anaconda / "keyring").write_text(json.dumps(
            {KEYRING_SERVICE: {domain: encode_entry(domain, key)}}), encoding="utf-8")
    elif place == "keyring-setting":
        env["ANACONDA_AUTH_KEYRING"] = json.dumps({KEYRING_SERVICE: {domain: encode_entry(domain, key)}})
    elif place == "extra-header":
        env["ANACONDA_AUTH_EXTRA_HEADERS"] = json.dumps({"Authorization": f"Bearer {key}",
                                                         "X-Api-Token": key})
    elif place == "proxy-password":
        env["ANACONDA_AUTH_PROXY_SERVERS"] = json.dumps({"https": f"http://me:{key}@127.0.0.1:9"})
    return env


@pytest.mark.parametrize("place", KEY_PLACES)
def test_show_commands_never_print_the_key(home, place):
    """config, status and sites, plain and JSON, for each place a key can be set; api-key
    (the one command that prints it) is the control."""
    key = new_key("opaque")
    env = _place_key(home, place, key, "127.0.0.1:9")
    outputs = {}
    for command in SHOW_COMMANDS:
        tried(PART)
        run = cli(home, *command, env=env)
        assert run.returncode in (0, 3), (command, run.stderr)  # 3: status, not logged in
        assert "Traceback" not in run.stderr
        outputs[" ".join(command)] = run.stdout + run.stderr
    assert leaks(key, **outputs) == []
    if place not in ("extra-header", "proxy-password"):
        control = cli(home, "api-key", env=env)
        assert leaks(key, stdout=control.stdout) == ["stdout"], control.stderr


# ------------------------------------------------------------------------------------------
# --verbose tracebacks of forced failures (real CLI processes)
# ------------------------------------------------------------------------------------------


CLI_FAILURES = ("refused", "untrusted-tls", "invalid-key", "server-error", "corrupt-store",
                "corrupt-entry", "bad-toml-on-the-key-line", "key-of-the-wrong-type",
                "key-with-a-line-break", "proxy-refuses")


def _force(failure: str, home: Path, key: str, site: Any, test_ca: Any,
           proxy: RecordingProxy) -> tuple[list[str], dict[str, str]]:
    """(command, env) of a CLI run that fails by ``failure`` with ``key`` configured."""
    domain = f"127.0.0.1:{site.port}"
    env = {"ANACONDA_AUTH_DOMAIN": domain, "ANACONDA_AUTH_API_KEY": key,
           "ANACONDA_AUTH_SSL_VERIFY": test_ca.ca_pem}
    anaconda = home / ".anaconda"
    anaconda.mkdir(exist_ok=True)
    command = ["whoami"]
    if failure == "refused":
        env["ANACONDA_AUTH_DOMAIN"] = "127.0.0.1:9"  # discard port: nothing listens
    elif failure == "untrusted-tls":
        del env["ANACONDA_AUTH_SSL_VERIFY"]  # certifi does not know the test CA
    elif failure == "invalid-key":
        site.route("GET", "/api/account", (401, {}, {"error": {"code": "auth_required"}}))
    elif failure == "server-error":
        site.route("GET", "/api/account", (500, {}, "<html>" + "x" * 500))
    elif failure in ("corrupt-store", "corrupt-entry"):
        del env["ANACONDA_AUTH_API_KEY"]
        command = ["api-key"]
        entry = encode_entry(domain, key)
        text = (json.dumps({KEYRING_SERVICE: {domain: entry}})[:-7] if failure == "corrupt-store"
                else json.dumps({KEYRING_SERVICE: {domain: entry[:-6] + "!!"}}))
        (anaconda / "keyring").write_text(text, encoding="utf-8")
    elif failure in ("bad-toml-on-the-key-line", "key-of-the-wrong-type"):
        del env["ANACONDA_AUTH_API_KEY"]
        line = (f'api_key = "{key}\n' if failure == "bad-toml-on-the-key-line"
                else f'api_key = {{ value = "{key}" }}\n')
        (anaconda / "config.toml").write_text("[plugin.auth]\n" + line, encoding="utf-8")
    elif failure == "key-with-a-line-break":
        del env["ANACONDA_AUTH_API_KEY"]
        (home / ".env").write_text(f'ANACONDA_AUTH_API_KEY="{key}\\r\\nX: y"\n', encoding="utf-8")
        (anaconda / "config.toml").write_text(f'[plugin.auth]\napi_key = "{key}\\r\\nX: y"\n',
                                              encoding="utf-8")
    elif failure == "proxy-refuses":
        env["ANACONDA_AUTH_DOMAIN"] = OFF_LOOPBACK
        env["HTTPS_PROXY"] = proxy.url
    return command, env


@pytest.mark.parametrize(("failure", "verbose"), [
    pytest.param(failure, verbose, id=f"{failure}-{'verbose' if verbose else 'plain'}")
    for failure in CLI_FAILURES for verbose in (False, True)
    if verbose or failure != "refused"])  # whoami retries a refused connection for seconds
def test_cli_failures_never_show_the_key_even_with_verbose(origins, home, test_ca, proxy,
                                                           failure, verbose):
    tried(PART)
    key = new_key("opaque")
    command, env = _force(failure, home, key, origins.site, test_ca, proxy)
    run = cli(home, *(["--verbose"] if verbose else []), *command, env=env)
    assert run.returncode != 0, run.stdout
    if verbose:
        assert "Traceback" in run.stderr, "control: --verbose shows the traceback"
    else:
        assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) <= 2, run.stderr
    assert leaks(key, stdout=run.stdout, stderr=run.stderr, proxy=proxy.received,
                 off_site=recorded_bytes(origins.other_host)) == []


# ------------------------------------------------------------------------------------------
# The argv of every process the module starts
# ------------------------------------------------------------------------------------------


BROWSER_SCRIPT = '''\
import json, os, sys, urllib.parse, urllib.request
with open(sys.argv[1], "a", encoding="utf-8") as f:
    f.write(json.dumps(sys.argv) + "\\n")
with open(sys.argv[1] + ".env.json", "w", encoding="utf-8") as f:
    json.dump(dict(os.environ), f)
url = urllib.parse.urlsplit(sys.argv[2])
query = dict(urllib.parse.parse_qsl(url.query))
if "redirect_uri" in query:  # the browser flow: deny, so the login ends at once
    back = query["redirect_uri"] + "?" + urllib.parse.urlencode(
        {"error": "access_denied", "state": query["state"]})
    try:
        urllib.request.urlopen(back, timeout=10).read()
    except Exception:
        pass  # the 303 to the error page (https with the test CA) is not our business
'''


def _oidc_routes(site: Any) -> None:
    base = site.url
    site.route("GET", "/.well-known/openid-configuration", (200, {}, {
        "issuer": base, "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "device_authorization_endpoint": f"{base}/device"}))
    site.route("POST", "/device", (200, {}, {
        "device_code": "dc", "user_code": "ABCD-EFGH", "verification_uri": f"{base}/activate",
        "verification_uri_complete": f"{base}/activate?user_code=ABCD-EFGH",
        "expires_in": 60, "interval": 1}))
    site.route("POST", "/token", (400, {}, {"error": "access_denied"}))


def _stored_key_and_browser(origins: Any, home: Path, test_ca: Any,
                            tmp_path: Path) -> tuple[str, dict[str, str], Path, Path]:
    """A fresh key stored for the OpenID stand-in's site, and the CLI environment for it whose
    BROWSER runs BROWSER_SCRIPT: (key, environment, exec log, browser log)."""
    key = new_key()
    site = origins.site
    _oidc_routes(site)
    domain = f"127.0.0.1:{site.port}"
    hook_env, log = exec_logging_env(tmp_path)
    script = tmp_path / "browser.py"
    script.write_text(BROWSER_SCRIPT, encoding="utf-8")
    browser_log = tmp_path / "browser.log"
    env = {**hook_env, "ANACONDA_AUTH_DOMAIN": domain, "ANACONDA_AUTH_SSL_VERIFY": test_ca.ca_pem,
           "ANACONDA_AUTH_CLIENT_ID": "leak-test", "ANACONDA_AUTH_REDIRECT_URI":
           "http://127.0.0.1:0/auth/oidc", "ANACONDA_AUTH_LOGIN_TIMEOUT": "30",
           "BROWSER": f"{sys.executable} {script} {browser_log} %s"}
    anaconda = home / ".anaconda"
    anaconda.mkdir()
    (anaconda / "keyring").write_text(json.dumps(
        {KEYRING_SERVICE: {domain: encode_entry(domain, key)}}), encoding="utf-8")
    return key, env, log, browser_log


@pytest.mark.parametrize("run", ["login-device", "login-browser", "login-with-token", "whoami",
                                 "api-key", "logout", "status"])
def test_no_process_the_module_starts_gets_the_key_in_its_argv(origins, home, test_ca, tmp_path,
                                                               run):
    tried(PART)
    key, env, log, browser_log = _stored_key_and_browser(origins, home, test_ca, tmp_path)
    stdin = None
    command = {"login-device": ["login", "--force", "--device"],
               "login-browser": ["login", "--force", "--browser"],
               "login-with-token": ["login", "--with-token", "--no-verify"]}.get(run, [run])
    if run == "login-with-token":
        stdin = key + "\n"
    result = cli(home, *command, env=env, input=stdin)
    started = exec_log(log)
    if run.startswith("login-") and run != "login-with-token":
        assert result.returncode == 1, result.stderr  # denied at once by the test's browser
        assert browser_log.exists() and started, "control: the browser was launched"
    assert leaks(key, argv=[args for _, args in started],
                 browser_argv=browser_log.read_text() if browser_log.exists() else "") == []
    if run not in ("api-key",):
        assert leaks(key, stdout=result.stdout, stderr=result.stderr) == []


def test_the_process_environment_is_what_the_user_gave(origins, home, test_ca, tmp_path):
    """The browser a real ``login --browser`` starts inherits the environment: the module adds
    nothing to it (no key in a variable the user did not set)."""
    tried(PART)
    key, env, log, browser_log = _stored_key_and_browser(origins, home, test_ca, tmp_path)
    result = cli(home, "login", "--force", "--browser", env=env)
    assert result.returncode == 1, result.stderr  # denied at once by the test's browser
    seen = json.loads(Path(f"{browser_log}.env.json").read_text())
    full = {**clean_env(home), **env}
    assert set(seen) - set(full) <= {"PWD", "SHLVL", "_", "LC_CTYPE"}, set(seen) - set(full)
    assert leaks(key, env=json.dumps(seen), argv=[a for _, a in exec_log(log)]) == []
