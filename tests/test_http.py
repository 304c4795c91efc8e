"""Tests of the HTTP layer (issue 3): ``request()``, ``Response``, bearer rules, TLS, proxies,
retries and timeouts, pools and keep-alive, ``whoami`` and the ``whoami`` command.

Every test talks to REAL parts on loopback only (see tests/conftest.py): an HTTPS server whose leaf
comes from a trustme test CA, Debian's tinyproxy, the Anaconda API stand-in. Nothing is mocked
except the host name (``socket.gethostname``, to check the reference's hash) and, for the
certifi / system-store branches of the default CA selection, the ``certifi`` module itself.
The suite runs on urllib3 2.x and 1.26 (``tests/test-all`` runs both).
"""

from __future__ import annotations

import base64
import email.utils
import json
import math
import os
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import types
import warnings
from pathlib import Path
from typing import Any

import pytest
import urllib3

import anaconda_auth as aa
from test_anaconda_auth import (
    CLI,
    LONG_LIVED,
    make_jwt,
    run_captured,
    run_on_terminal,
    store_entry,
    type_line,
)

ROOT = Path(__file__).resolve().parents[1]
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
PROXY_VARIABLES = tuple(
    name
    for base in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    for name in (base, base.upper())
) + ("REQUEST_METHOD",)
HASHED_TEST_HOSTNAME = "gQ3w7KzEFT543NdWZR-TVg"  # the reference's hash of "test-hostname"
LOGIN_REQUIRED = (
    "You must login before using this API endpoint or provide an api_key to your client."
)
INVALID_KEY = "Your API key or login token is invalid."
AUTH_REQUIRED_BODY = {"error": {"code": "auth_required", "message": "Authentication required"}}
URLLIB3_2 = int(urllib3.__version__.split(".")[0]) >= 2


# ------------------------------------------------------------------------------------------
# Fixtures and helpers
# ------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_http_state(fresh_caches: None, monkeypatch: pytest.MonkeyPatch):
    """Each test starts with no proxy variables from the machine (and, by conftest's
    fresh_caches, with the module's caches empty); gives what request() handed urllib3: one
    (connection pool, urlopen options) pair per attempt sent, recorded by a spy on urllib3's
    public ``HTTPConnectionPool.urlopen`` (every request ends there: request()'s own, and
    PoolManager's and ProxyManager's) that sends for real."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    sent: list[tuple[Any, dict[str, Any]]] = []
    pool_class = urllib3.connectionpool.HTTPConnectionPool
    real_urlopen = pool_class.urlopen

    def urlopen(self: Any, method: str, url: str, *args: Any, **options: Any) -> Any:
        sent.append((self, options))
        return real_urlopen(self, method, url, *args, **options)

    monkeypatch.setattr(pool_class, "urlopen", urlopen)
    return sent


def pools_used(sent: list[tuple[Any, dict[str, Any]]]) -> int:
    """How many connection pools carried the requests in ``sent`` (fresh_http_state's list)."""
    return len({id(pool) for pool, _ in sent})


def handed_to_urllib3(https_server, make_config, sent, **options: Any) -> dict[str, Any]:
    """The urlopen options (``retries``, ``timeout``) that one real GET with request()'s
    ``options`` hands urllib3."""
    server = https_server()
    server.route("GET", "/p", (200, {}, "ok"))
    assert aa.request("GET", "/p", config=make_config(server), **options).status == 200
    return sent[-1][1]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def make_config(home: Path, test_ca):
    """``make_config(server_or_domain, environ=None, **overrides)``: a Config resolved from a
    clean environment and an empty temporary home; ``ssl_verify`` defaults to the test CA."""

    def make(target: Any, environ: dict[str, str] | None = None, **overrides: Any) -> aa.Config:
        domain = target if isinstance(target, str) else f"{target.host}:{target.port}"
        env = {"HOME": str(home), "ANACONDA_SECRETS_DIR": str(home / "no-secrets")}
        env.update(environ or {})
        overrides.setdefault("ssl_verify", test_ca.ca_pem)
        return aa.resolve_config(environ=env, home=str(home), cwd=str(home), domain=domain,
                                 **overrides)

    return make


@pytest.fixture
def no_ca_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine exports REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE and SSL_CERT_FILE; the default
    CA selection can only be tested without them."""
    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def jwt(expires_in: float, sub: str = "alice") -> str:
    now = int(time.time())
    return make_jwt({"sub": sub, "exp": int(now + expires_in), "iat": now})


def echo(request) -> tuple:
    """A route handler that answers 200 with what it saw."""
    return (200, {}, {"path": request.path, "method": request.method,
                      "authorization": request.headers.get("Authorization")})


def bearer(recorded) -> str | None:
    return recorded.headers.get("Authorization")


def wait_for(predicate, timeout: float = 5.0) -> Any:
    """Poll ``predicate`` (bounded): server threads record some facts just after the client
    already saw the outcome (a refused handshake, for one)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


def fail_first_handshake(server) -> list[int]:
    """Make ``server`` drop its first TLS connection after reading the ClientHello, before any
    handshake reply: the client sees the connection fail before it could send its request.
    Returns a list that counts the dropped connections."""
    dropped: list[int] = []
    inner = server._server
    original = inner.finish_request

    def finish_request(sock, address):
        if not dropped:
            dropped.append(1)
            sock.settimeout(5)
            socket.socket.recv(sock, 65536)  # the raw ClientHello, so close sends FIN, not RST
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
            socket.socket.close(sock)
            return
        original(sock, address)

    inner.finish_request = finish_request
    return dropped


# ------------------------------------------------------------------------------------------
# URLs, bodies and request headers
# ------------------------------------------------------------------------------------------


def test_relative_urls_join_the_domain_and_absolute_urls_pass_through(https_server, make_config):
    site = https_server()
    other = https_server()
    site.route("GET", "/api/x", echo)
    other.route("GET", "/elsewhere", echo)
    config = make_config(site)
    assert aa.request("GET", "api/x", config=config).json()["path"] == "/api/x"
    assert aa.request("GET", "/api/x?a=1", config=config).json()["path"] == "/api/x?a=1"
    response = aa.request("GET", f"{other.url}/elsewhere", config=config)
    assert (response.status, response.url) == (200, f"{other.url}/elsewhere")
    assert [r.path for r in site.requests] == ["/api/x", "/api/x?a=1"]
    assert [r.path for r in other.requests] == ["/elsewhere"]


def test_json_form_and_raw_bodies(https_server, make_config):
    server = https_server()
    server.route("*", "/echo", lambda r: (200, {}, {
        "method": r.method, "query": r.query, "body": r.text,
        "type": r.headers.get("Content-Type")}))
    config = make_config(server)
    sent = aa.request("POST", "/echo", config=config, json={"a": [1, "é"]}).json()
    assert sent["type"] == "application/json"
    assert json.loads(sent["body"]) == {"a": [1, "é"]}
    sent = aa.request("POST", "/echo", config=config, fields={"x": "1 2", "y": "&"}).json()
    assert (sent["type"], sent["body"]) == ("application/x-www-form-urlencoded", "x=1+2&y=%26")
    sent = aa.request("GET", "/echo?a=b", config=config, fields={"x": "1"}).json()
    assert (sent["query"], sent["body"]) == ({"a": ["b"], "x": ["1"]}, "")
    sent = aa.request("PUT", "/echo", config=config, body=b"\x00raw",
                      headers={"Content-Type": "application/octet-stream"}).json()
    assert (sent["method"], sent["body"], sent["type"]) == ("PUT", "\x00raw",
                                                            "application/octet-stream")
    assert aa.request("PATCH", "/echo", config=config, body="text é").json()["body"] == "text é"


def test_default_headers_and_the_reference_hostname_hash(https_server, make_config, monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "test-hostname")
    server = https_server()
    server.route("GET", "/h", 204)
    aa.request("GET", "/h", config=make_config(server))
    headers = server.requests[-1].headers
    assert headers["User-Agent"].startswith(f"anaconda-auth/{aa.__version__}")
    assert headers["X-Client-Hostname"] == HASHED_TEST_HOSTNAME
    assert "Api-Version" not in headers
    assert "Authorization" not in headers


def test_hostname_hash_strips_one_local_suffix(https_server, make_config, monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "test-hostname.local")
    server = https_server()
    server.route("GET", "/h", 204)
    aa.request("GET", "/h", config=make_config(server))
    assert server.requests[-1].headers["X-Client-Hostname"] == HASHED_TEST_HOSTNAME


def test_raw_hostname_when_hash_hostname_is_false(https_server, make_config, monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "test-hostname")
    server = https_server()
    server.route("GET", "/h", 204)
    aa.request("GET", "/h", config=make_config(server, hash_hostname=False))
    assert server.requests[-1].headers["X-Client-Hostname"] == "test-hostname"
    env_config = make_config(server, environ={"ANACONDA_AUTH_HASH_HOSTNAME": "false"})
    aa.request("GET", "/h", config=env_config)
    assert server.requests[-1].headers["X-Client-Hostname"] == "test-hostname"


def test_api_version_header_only_when_given(https_server, make_config):
    server = https_server()
    server.route("GET", "/v", 204)
    config = make_config(server)
    aa.request("GET", "/v", config=config, api_version="2023.01.01")
    aa.request("GET", "/v", config=config)
    assert server.requests[0].headers["Api-Version"] == "2023.01.01"
    assert "Api-Version" not in server.requests[1].headers


def test_extra_headers_from_config_never_override(https_server, make_config, monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "test-hostname")
    server = https_server()
    server.route("GET", "/x", 204)
    extra = {"X-Extra": "yes", "user-agent": "evil/1", "X-CLIENT-HOSTNAME": "evil",
             "api-version": "0", "X-Caller": "from-config"}
    config = make_config(server, extra_headers=extra)
    aa.request("GET", "/x", config=config, api_version="2024.01", headers={"X-Caller": "mine"})
    headers = server.requests[-1].headers
    assert headers["X-Extra"] == "yes"
    assert headers["User-Agent"].startswith("anaconda-auth/")
    assert headers["X-Client-Hostname"] == HASHED_TEST_HOSTNAME
    assert headers["Api-Version"] == "2024.01"
    assert headers["X-Caller"] == "mine"


def test_extra_headers_as_a_json_string_from_the_environment(https_server, make_config):
    server = https_server()
    server.route("GET", "/x", 204)
    config = make_config(server, environ={
        "ANACONDA_AUTH_EXTRA_HEADERS": '{"X-From-Env": "1", "User-Agent": "evil/2"}'})
    assert config.extra_headers == {"X-From-Env": "1", "User-Agent": "evil/2"}
    aa.request("GET", "/x", config=config)
    headers = server.requests[-1].headers
    assert headers["X-From-Env"] == "1"
    assert headers["User-Agent"].startswith("anaconda-auth/")


def test_caller_headers_override_ours_whatever_their_case(https_server, make_config):
    """A caller's ``user-agent`` or ``accept`` replaces ours; the header is sent once."""
    server = https_server()
    server.route("GET", "/x", 204)
    config = make_config(server)
    aa.request("GET", "/x", config=config, headers={"User-Agent": "mine/1"})
    assert server.requests[-1].headers["User-Agent"] == "mine/1"
    aa.request("GET", "/x", config=config,
               headers={"user-agent": "mine/2", "accept": "application/json"})
    sent = [(k.lower(), v) for k, v in dict.items(server.requests[-1].headers)]
    assert [v for k, v in sent if k == "user-agent"] == ["mine/2"], sent
    assert [v for k, v in sent if k == "accept"] == ["application/json"], sent


@pytest.mark.parametrize("where", ["headers", "extra_headers"])
def test_header_with_a_line_break_is_refused_clearly(https_server, make_config, where):
    """No header injection, and an error that names the problem (not TLS or truststore)."""
    server = https_server(tls=False)
    server.route("GET", "/x", 204)
    evil = {"X-Evil": "a\r\nX-Injected: 1"}
    config = make_config(server, extra_headers=evil if where == "extra_headers" else None)
    with pytest.raises((ValueError, aa.AnacondaAuthError)) as info:
        aa.request("GET", f"{server.url}/x", config=config,
                   headers=evil if where == "headers" else None)
    message = str(info.value)
    assert "truststore" not in message and "TLS" not in message, message
    assert "X-Evil" in message or "header" in message.lower(), message
    assert not [r for r in server.requests if "X-Injected" in r.headers]


# ------------------------------------------------------------------------------------------
# Response
# ------------------------------------------------------------------------------------------


def test_response_fields(https_server, make_config):
    server = https_server()
    server.route("GET", "/data", (201, {"X-Thing": "1", "Content-Type": "application/json"},
                                  b'{"a": 1}'))
    response = aa.request("GET", "/data", config=make_config(server))
    assert isinstance(response, aa.Response)
    assert (response.status, response.reason, response.ok) == (201, "Created", True)
    assert response.headers["x-thing"] == response.headers["X-THING"] == "1"
    assert response.headers.get("content-type") == "application/json"
    assert response.body == b'{"a": 1}'
    assert response.text == '{"a": 1}'
    assert response.json() == {"a": 1}
    assert response.url == f"{server.url}/data"
    response.raise_for_status()  # no error for 2xx


def test_repeated_response_headers_are_joined(https_server, make_config):
    server = https_server()
    server.route("GET", "/c", (200, [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                                     ("X-One", "x")], ""))
    response = aa.request("GET", "/c", config=make_config(server))
    assert response.headers["set-cookie"] == "a=1, b=2"
    assert response.headers.get("x-one") == "x" and response.headers.get("x-none") is None
    assert "X-ONE" in response.headers


def test_response_text_uses_the_charset(https_server, make_config):
    server = https_server()
    server.route("GET", "/latin", (200, {"Content-Type": "text/plain; charset=ISO-8859-1"},
                                   "café".encode("latin-1")))
    server.route("GET", "/default", (200, {"Content-Type": "text/plain"}, "café".encode()))
    config = make_config(server)
    assert aa.request("GET", "/latin", config=config).text == "café"
    assert aa.request("GET", "/default", config=config).text == "café"


def test_json_of_a_non_json_body_is_a_clear_error(https_server, make_config):
    server = https_server()
    server.route("GET", "/html", (200, {"Content-Type": "text/html"}, "<html>nope</html>"))
    response = aa.request("GET", "/html", config=make_config(server))
    with pytest.raises(aa.HTTPError) as info:
        response.json()
    message = str(info.value)
    assert f"{server.url}/html" in message and "not JSON" in message
    assert "text/html" in message and "<html>nope</html>" in message
    assert info.value.response is response
    assert isinstance(info.value, aa.AnacondaAuthError)


@pytest.mark.parametrize("status,side", [(404, "Client"), (418, "Client"), (500, "Server"),
                                         (503, "Server")])
def test_raise_for_status_carries_status_and_a_body_excerpt(https_server, make_config, status,
                                                            side):
    server = https_server()
    server.route("GET", "/bad", (status, {}, {"detail": "something broke " + "x" * 500}))
    response = aa.request("GET", "/bad", config=make_config(server), retries=0)
    assert response.status == status and not response.ok
    with pytest.raises(aa.HTTPError) as info:
        response.raise_for_status()
    message = str(info.value)
    assert message.startswith(f"{status} {side} Error")
    assert f"{server.url}/bad" in message
    assert "something broke" in message
    assert len(message) < 400  # an excerpt, not the whole body
    assert info.value.response is response


def test_raise_for_status_without_a_body(https_server, make_config):
    server = https_server()
    server.route("GET", "/gone", 410)
    response = aa.request("GET", "/gone", config=make_config(server))
    with pytest.raises(aa.HTTPError, match=r"^410 Client Error: Gone for url: "):
        response.raise_for_status()


# ------------------------------------------------------------------------------------------
# Bearer key
# ------------------------------------------------------------------------------------------


def test_stored_key_is_sent_to_the_site(https_server, make_config):
    server = https_server()
    server.route("GET", "/a", echo)
    config = make_config(server)
    key = jwt(LONG_LIVED)
    aa.login(config, api_key=key, verify=False)
    response = aa.request("GET", "/a", config=config)
    assert response.json()["authorization"] == f"Bearer {key}"
    assert response.sent_auth


def test_explicit_api_key_overrides_and_auth_false_sends_none(https_server, make_config):
    server = https_server()
    server.route("GET", "/a", echo)
    config = make_config(server)
    aa.login(config, api_key=jwt(3600, sub="stored"), verify=False)
    explicit = jwt(3600, sub="explicit")
    assert aa.request("GET", "/a", config=config, api_key=explicit).json()["authorization"] == (
        f"Bearer {explicit}")
    response = aa.request("GET", "/a", config=config, auth=False)
    assert response.json()["authorization"] is None and not response.sent_auth
    response = aa.request("GET", "/a", config=config, auth=False, api_key=explicit)
    assert response.json()["authorization"] is None


def test_missing_stored_key_sends_none_and_does_not_raise(https_server, make_config):
    server = https_server()
    server.route("GET", "/a", echo)
    response = aa.request("GET", "/a", config=make_config(server))
    assert response.status == 200 and response.json()["authorization"] is None


def test_expired_stored_key_sends_none_and_does_not_raise(https_server, make_config, home):
    server = https_server()
    server.route("GET", "/a", echo)
    config = make_config(server)
    store_entry(config.keyring_path, config.domain, jwt(-60))  # login() refuses expired keys; the store may hold one
    response = aa.request("GET", "/a", config=config)
    assert response.status == 200 and response.json()["authorization"] is None


def test_key_from_environment_is_sent_without_expiry_check(https_server, make_config):
    server = https_server()
    server.route("GET", "/a", echo)
    expired = jwt(-60)
    config = make_config(server, environ={"ANACONDA_AUTH_API_KEY": expired})
    assert aa.request("GET", "/a", config=config).json()["authorization"] == f"Bearer {expired}"


def test_stored_key_that_is_not_a_jwt_is_sent_as_is(https_server, make_config):
    server = https_server()
    server.route("GET", "/a", echo)
    config = make_config(server)
    aa.login(config, api_key="opaque-key-123", verify=False)
    assert aa.request("GET", "/a", config=config).json()["authorization"] == (
        "Bearer opaque-key-123")


def test_key_never_goes_to_another_origin(https_server, make_config):
    site = https_server()
    other = https_server()
    other.route("GET", "/steal", echo)
    config = make_config(site, api_key="k-123")
    response = aa.request("GET", f"{other.url}/steal", config=config)
    assert response.json()["authorization"] is None and not response.sent_auth
    # Another port of the site's own host is another origin, too.
    assert aa.request("GET", f"{other.url}/steal", config=config,
                      api_key="explicit").json()["authorization"] is None


def test_key_goes_to_the_auth_domain(https_server, make_config):
    site = https_server()
    auth = https_server()
    auth.route("GET", "/token", echo)
    config = make_config(site, api_key="k-123", auth_domain_override=f"127.0.0.1:{auth.port}")
    assert aa.request("GET", f"{auth.url}/token", config=config).json()["authorization"] == (
        "Bearer k-123")


def test_key_goes_over_plain_http_to_loopback(https_server, make_config):
    server = https_server(tls=False)
    server.route("GET", "/a", echo)
    config = make_config(server, api_key="k-123")
    assert aa.request("GET", f"{server.url}/a", config=config).json()["authorization"] == (
        "Bearer k-123")


@pytest.mark.parametrize("tls", [False, True])
def test_key_goes_to_an_ipv6_loopback_site(https_server, make_config, tls):
    try:
        server = https_server(tls=tls, host="::1")
    except OSError as error:
        pytest.fail(f"IPv6 loopback unavailable: {error}")
    server.route("GET", "/a", echo)
    config = make_config(f"[::1]:{server.port}", api_key="k-123")
    assert aa.request("GET", f"{server.url}/a", config=config).json()["authorization"] == (
        "Bearer k-123")
    if tls:
        assert aa.request("GET", "/a", config=config).json()["authorization"] == "Bearer k-123"


def test_key_never_goes_over_plain_http_to_a_remote_host(make_config):
    config = make_config("anaconda.com", api_key="k-123")
    def may_carry_key(url: str, config: aa.Config) -> bool:
        return aa._may_carry_key(aa._host_port(url), aa._site_for(config))

    assert may_carry_key("https://anaconda.com/api/account", config)
    assert not may_carry_key("http://anaconda.com/api/account", config)
    assert not may_carry_key("https://anaconda.com.evil.test/api", config)
    assert not may_carry_key("https://evil.test/api", config)
    assert not may_carry_key("ftp://anaconda.com/x", config)
    assert may_carry_key("http://localhost:8080/x", make_config("localhost:8080"))


def test_cross_origin_redirect_strips_the_key(https_server, make_config):
    site = https_server()
    other = https_server()
    other.route("GET", "/landing", echo)
    site.redirect("/go", f"{other.url}/landing")
    config = make_config(site, api_key="k-123")
    response = aa.request("GET", "/go", config=config)
    assert response.status == 200 and response.url == f"{other.url}/landing"
    assert bearer(site.requests[-1]) == "Bearer k-123"
    assert bearer(other.requests[-1]) is None
    assert not response.sent_auth


def test_redirect_from_127_0_0_1_to_localhost_strips_the_key(https_server, make_config):
    site = https_server()
    site.route("GET", "/landing", echo)
    site.redirect("/go", f"https://localhost:{site.port}/landing")
    response = aa.request("GET", "/go", config=make_config(site, api_key="k-123"))
    assert response.url == f"https://localhost:{site.port}/landing"
    assert [bearer(r) for r in site.requests] == ["Bearer k-123", None]


def test_redirect_from_https_to_http_on_loopback_strips_the_key(https_server, make_config):
    site = https_server()
    plain = https_server(tls=False)
    plain.route("GET", "/landing", echo)
    site.redirect("/go", f"{plain.url}/landing")
    config = make_config(site, api_key="k-123")
    aa.request("GET", "/go", config=config)
    assert bearer(plain.requests[-1]) is None


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_same_origin_redirect_keeps_the_key(https_server, make_config, status):
    site = https_server()
    site.route("*", "/new", echo)
    site.redirect("/old", "/new", status=status)
    response = aa.request("GET", "/old", config=make_config(site, api_key="k-123"))
    assert (response.status, response.url) == (200, f"{site.url}/new")
    assert [bearer(r) for r in site.requests] == ["Bearer k-123", "Bearer k-123"]
    assert response.sent_auth


def test_redirects_keep_or_drop_the_body_like_browsers(https_server, make_config):
    site = https_server()
    site.route("*", "/new", lambda r: (200, {}, {"method": r.method, "body": r.text}))
    site.redirect("/303", "/new", status=303)
    site.redirect("/307", "/new", status=307)
    config = make_config(site)
    assert aa.request("POST", "/303", config=config, json={"a": 1}).json() == {
        "method": "GET", "body": ""}
    assert aa.request("POST", "/307", config=config, json={"a": 1}).json() == {
        "method": "POST", "body": '{"a": 1}'}


def test_redirects_stop_after_five(https_server, make_config):
    site = https_server()
    for i in range(10):
        site.redirect(f"/r{i}", f"/r{i + 1}")
    with pytest.raises(aa.NetworkError, match="more than 5 redirects"):
        aa.request("GET", "/r0", config=make_config(site))
    assert len(site.requests) == 6  # the request and five redirects followed, then an error


def test_caller_authorization_header_is_stripped_on_cross_origin_redirect(https_server,
                                                                          make_config):
    """urllib3 and requests drop Authorization (and Cookie) when a redirect leaves the host;
    a caller-supplied credential must not follow a redirect to another origin either."""
    site = https_server()
    other = https_server()
    other.route("GET", "/landing", echo)
    site.redirect("/go", f"{other.url}/landing")
    aa.request("GET", "/go", config=make_config(site), auth=False,
               headers={"Authorization": "token caller-secret", "Cookie": "session=s"})
    assert site.requests[-1].headers.get("Authorization") == "token caller-secret"
    assert other.requests[-1].headers.get("Authorization") is None
    assert other.requests[-1].headers.get("Cookie") is None


def test_key_never_goes_where_url_parsers_disagree(https_server, make_config):
    """``http://evil\\@site/`` reads as the site to urllib.parse but urllib3 connects to evil:
    who may get the key is decided with the parser that makes the connection."""
    site = https_server(tls=False, host="localhost")
    evil = https_server(tls=False)
    for server in (site, evil):
        server.route("*", "*", 204)
    config = make_config(f"localhost:{site.port}", api_key="the-key")
    aa.request("GET", f"http://127.0.0.1:{evil.port}\\@localhost:{site.port}/x", config=config,
               retries=0)
    site.redirect("/go", f"http://127.0.0.1:{evil.port}\\@localhost:{site.port}/landing")
    aa.request("GET", f"http://localhost:{site.port}/go", config=config, retries=0)
    assert evil.requests, "the odd URLs really reached the other server"
    assert [r.headers.get("Authorization") for r in evil.requests] == [None] * len(evil.requests)


def test_key_is_not_sent_in_clear_through_a_proxy(https_server, make_config, monkeypatch):
    """Plain http carries the key only to loopback, and a proxy is not loopback."""
    proxy = https_server(tls=False)
    proxy.route("*", "*", 204)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    config = make_config("localhost:8443", api_key="the-key")
    aa.request("GET", "http://localhost:8443/x", config=config, retries=0)
    assert proxy.requests and proxy.requests[0].headers.get("Authorization") is None


def test_key_goes_only_to_the_sites_port(https_server, make_config):
    server = https_server(tls=False, host="localhost")
    server.route("GET", "/x", echo)
    url = f"http://localhost:{server.port}/x"
    no_port = make_config("localhost", api_key="the-key")  # means https on 443
    assert aa.request("GET", url, config=no_port).json()["authorization"] is None
    with_port = make_config(f"localhost:{server.port}", api_key="the-key")
    assert aa.request("GET", url, config=with_port).json()["authorization"] == "Bearer the-key"


def test_lower_case_caller_headers_replace_ours_without_duplicates(https_server, make_config):
    server = https_server()
    server.route("POST", "/x", (401, {}, AUTH_REQUIRED_BODY))
    response = aa.request("POST", "/x", config=make_config(server, api_key="site-key"),
                          json={"a": 1}, api_version="2",
                          headers={"authorization": "Bearer mine", "content-type": "text/plain",
                                   "api-version": "1"})
    sent = server.requests[0].headers
    for name, value in (("authorization", "Bearer mine"), ("content-type", "text/plain"),
                        ("api-version", "1")):
        assert [v for k, v in sent.items() if k.lower() == name] == [value]
    assert response.sent_auth
    with pytest.raises(aa.InvalidTokenError):
        response.raise_for_status()


def test_post_is_not_resent_after_a_tls_failure_once_the_request_was_sent(test_ca, make_config):
    """A TLS error after the server read the request looks like a handshake error to urllib3;
    the body went out, so it must not go out again."""
    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    context = test_ca.server_context()

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            try:
                tls = context.wrap_socket(connection, server_side=True)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += tls.recv(65536)
                received.append(data.split(b"\r\n")[0])
                raw = socket.socket(fileno=tls.detach())  # answer in plain text: a TLS error
                raw.sendall(b"HTTP/1.1 200 OK\r\n\r\nnot TLS" * 10)
                raw.close()
            except OSError:
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(aa.NetworkError):
            aa.request("POST", f"https://localhost:{port}/charge", json={"amount": 1},
                       config=make_config(f"localhost:{port}"))
    finally:
        listener.close()
    assert received == [b"POST /charge HTTP/1.1"]


def test_invalid_redirect_location_is_a_network_error(https_server, make_config):
    server = https_server()
    server.redirect("/go", "http://[::1")
    with pytest.raises(aa.NetworkError, match="invalid location"):
        aa.request("GET", "/go", config=make_config(server))


@pytest.mark.parametrize("headers", [{"X Bad": "v"}, {"X-Ok": "caf\u0113"}, {"": "v"}])
def test_invalid_header_names_and_values_are_config_errors(https_server, make_config, headers):
    server = https_server()
    with pytest.raises(aa.ConfigError, match="header"):
        aa.request("GET", "/x", config=make_config(server), headers=headers)
    assert server.requests == []


@pytest.mark.parametrize("timeout", [0, -1, (1, 2, 3), "5", (1, None), {}, [[1], 2], float("nan")])
def test_invalid_timeouts_are_config_errors(https_server, make_config, timeout):
    server = https_server()
    for _ in range(2):  # the second time too: nothing bad was kept
        with pytest.raises(aa.ConfigError, match="timeout"):
            aa.request("GET", "/x", config=make_config(server), timeout=timeout)
    assert server.requests == []


@pytest.mark.parametrize("retries", [-1, "3", 1.5, True, [3]])
def test_invalid_retries_are_config_errors(https_server, make_config, retries):
    server = https_server()
    with pytest.raises(aa.ConfigError, match="retries"):
        aa.request("GET", "/x", config=make_config(server), retries=retries)
    assert server.requests == []


# ------------------------------------------------------------------------------------------
# 401/403 and Min-Api-Version
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_auth_required_without_a_key_is_login_required(https_server, make_config, status):
    server = https_server()
    server.route("GET", "/p", (status, {}, AUTH_REQUIRED_BODY))
    response = aa.request("GET", "/p", config=make_config(server))
    with pytest.raises(aa.LoginRequiredError) as info:
        response.raise_for_status()
    assert str(info.value).startswith(LOGIN_REQUIRED + " ")  # the reference's words, then ours
    assert f"No API key for 127.0.0.1:{server.port} was found in file " in str(info.value)
    assert "Log in with: python -m anaconda_auth" in str(info.value)
    assert info.value.response is response


@pytest.mark.parametrize("status", [401, 403])
def test_auth_required_with_a_key_is_invalid_token(https_server, make_config, status):
    server = https_server()
    server.route("GET", "/p", (status, {}, AUTH_REQUIRED_BODY))
    response = aa.request("GET", "/p", config=make_config(server, api_key="bad-key"))
    with pytest.raises(aa.InvalidTokenError) as info:
        response.raise_for_status()
    assert str(info.value).startswith(INVALID_KEY + " ")  # the reference's words, then ours
    assert "refused the API key from argument api_key=: it was revoked, or is a key for another site" in str(
        info.value)
    assert isinstance(info.value, aa.AuthenticationError)


def test_other_401_bodies_keep_status_and_excerpt(https_server, make_config):
    server = https_server()
    server.route("GET", "/html", (401, {}, "<h1>Unauthorized</h1>"))
    server.route("GET", "/other", (403, {}, {"error": {"code": "forbidden", "message": "no"}}))
    config = make_config(server)
    with pytest.raises(aa.HTTPError, match=r"^401 Client Error.*Unauthorized"):
        aa.request("GET", "/html", config=config).raise_for_status()
    with pytest.raises(aa.HTTPError, match=r"^403 Client Error.*forbidden"):
        aa.request("GET", "/other", config=config).raise_for_status()


@pytest.mark.parametrize("ours,minimum,warns", [
    ("2023.01.01", "2023.10.0", True),   # the reference silently ignored "2023.10.0"
    ("2024.01", "2024.02", True),        # ... and two-component versions
    ("2024.02", "2024.1.5", False),
    ("2024.02.00", "2024.2", False),
    ("2023.10.0", "2023.10.0", False),
    ("2023.9.30", "2023.10", True),      # numeric, not string, comparison
    ("2025.1.1", "not-a-version", False),
    ("v1", "2023.10", False),            # a client version that is not numeric: no comparison
    ("2024.2", "2024.2.1", True),        # a missing third part counts as 0
])
def test_min_api_version_warning(https_server, make_config, ours, minimum, warns):
    server = https_server()
    server.route("GET", "/v", (200, {"Min-Api-Version": minimum}, {}))
    config = make_config(server)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aa.request("GET", "/v", config=config, api_version=ours)
        aa.request("GET", "/v", config=config)  # no client version: nothing to compare
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    expected = (f"Client API version is {ours}, minimum supported API version is {minimum}. "
                "You may need to update your client.")
    assert messages == ([expected] if warns else [])
    if warns:
        assert [w.filename for w in caught] == [__file__]  # points at the caller


# ------------------------------------------------------------------------------------------
# Pools and keep-alive
# ------------------------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(https_server, make_config, fresh_http_state):
    server = https_server()
    server.route("*", "/k", 204)
    for i in range(4):  # a new, equal Config each time: still the same pool
        config = make_config(server)
        aa.request("POST" if i % 2 else "GET", "/k", config=config, json={"i": i})
    assert [r.connection_id for r in server.requests] == [1, 1, 1, 1]
    assert server.connections == 1
    assert pools_used(fresh_http_state) == 1


def test_more_origins_than_a_pool_manager_keeps_still_reach_the_first(https_server, make_config,
                                                                      fresh_http_state):
    """request() keeps each origin's connection pool between calls (up to 64 origins), so the
    kept-alive connection to the first of 12 origins survives urllib3's manager, which keeps
    10 pools and lets the oldest go. A pool that is closed all the same is replaced by the
    manager's new one, and the request sent once."""
    servers = [https_server(tls=False) for _ in range(12)]
    for server in servers:
        server.route("GET", "/o", 204)
    config = make_config(servers[0])
    first = f"http://{servers[0].host}:{servers[0].port}/o"
    for server in [*servers, servers[0]]:
        assert aa.request("GET", f"http://{server.host}:{server.port}/o", config=config).status == 204
    assert [r.connection_id for r in servers[0].requests] == [1, 1]
    assert all(len(server.requests) == 1 for server in servers[1:])
    for pool, _ in fresh_http_state:  # as a future urllib3 might on letting a pool go
        pool.close()
    assert aa.request("GET", first, config=config).status == 204
    assert [r.connection_id for r in servers[0].requests] == [1, 1, 2]


def test_default_config_reuses_the_pool(default_site, monkeypatch, fresh_http_state):
    monkeypatch.setenv("ANACONDA_AUTH_API_KEY", "env-key")
    for _ in range(3):
        assert aa.request("GET", "/api/x").json()["authorization"] == "Bearer env-key"
    assert [r.connection_id for r in default_site.requests] == [1, 1, 1]
    assert pools_used(fresh_http_state) == 1


def test_one_pool_per_tls_setting(https_server, make_config, test_ca, fresh_http_state):
    server = https_server()
    server.route("GET", "/k", 204)
    aa.request("GET", "/k", config=make_config(server))
    aa.request("GET", "/k", config=make_config(server, ssl_verify=test_ca.ca_dir))
    aa.request("GET", "/k", config=make_config(server, ssl_verify=test_ca.ca_pem))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aa.request("GET", "/k", config=make_config(server, ssl_verify=False))
    assert pools_used(fresh_http_state) == 3
    assert server.connections == 3


# ------------------------------------------------------------------------------------------
# TLS
# ------------------------------------------------------------------------------------------


def assert_verify_failed(info, server) -> None:
    message = str(info.value)
    assert isinstance(info.value, aa.NetworkError) and isinstance(info.value, aa.AnacondaAuthError)
    assert f"127.0.0.1:{server.port}" in message
    assert "could not be verified" in message
    assert "corporate proxy" in message
    assert "ssl_verify" in message and "truststore" in message
    assert "Traceback" not in message and "urllib3" not in message
    assert server.requests == []


def test_untrusted_server_is_refused_with_advice(https_server, make_config, no_ca_variables):
    server = https_server()
    server.route("GET", "/x", 204)
    with pytest.raises(aa.NetworkError) as info:
        aa.request("GET", "/x", config=make_config(server, ssl_verify=True))
    assert_verify_failed(info, server)


def test_verification_failure_is_not_retried(https_server, make_config, no_ca_variables):
    """A certificate that does not verify will not verify on the next attempt either: the
    error comes at once, after one handshake, not after three retries with backoff."""
    server = https_server()
    server.route("GET", "/x", 204)
    started = time.monotonic()
    with pytest.raises(aa.NetworkError):
        aa.request("GET", "/x", config=make_config(server, ssl_verify=True))
    elapsed = time.monotonic() - started
    wait_for(lambda: server.tls_errors)
    time.sleep(0.2)  # any further handshake would have been recorded by now
    assert len(server.tls_errors) == 1, server.tls_errors
    assert elapsed < 1


@pytest.mark.parametrize("variable", CA_VARIABLES)
def test_ca_bundle_variables(https_server, make_config, test_ca, no_ca_variables, monkeypatch,
                             variable):
    server = https_server()
    server.route("GET", "/x", 204)
    monkeypatch.setenv(variable, test_ca.ca_pem)
    assert aa.request("GET", "/x", config=make_config(server, ssl_verify=True)).status == 204


def test_ca_bundle_variables_order(https_server, make_config, test_ca, no_ca_variables,
                                   monkeypatch):
    server = https_server()
    server.route("GET", "/x", 204)
    system_bundle = ssl.get_default_verify_paths().openssl_cafile
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", test_ca.ca_pem)
    monkeypatch.setenv("SSL_CERT_FILE", system_bundle)
    config = make_config(server, ssl_verify=True)
    assert aa.request("GET", "/x", config=config).status == 204
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", system_bundle)
    monkeypatch.setenv("CURL_CA_BUNDLE", test_ca.ca_pem)
    with pytest.raises(aa.NetworkError, match="could not be verified"):
        aa.request("GET", "/x", config=config, retries=0)


def test_default_is_certifi_when_no_variable_is_set(https_server, make_config, test_ca,
                                                   no_ca_variables, monkeypatch):
    server = https_server()
    server.route("GET", "/x", 204)
    # Prove the pool really loads certifi's bundle: a certifi whose bundle is the test CA.
    fake = types.ModuleType("certifi")
    fake.where = lambda: test_ca.ca_pem  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "certifi", fake)
    assert aa.request("GET", "/x", config=make_config(server, ssl_verify=True)).status == 204


def test_default_is_the_system_store_without_certifi(https_server, make_config, test_ca,
                                                     no_ca_variables, monkeypatch):
    monkeypatch.setitem(sys.modules, "certifi", None)  # import certifi -> ImportError
    server = https_server()
    server.route("GET", "/x", 204)
    config = make_config(server, ssl_verify=True)
    # The system store is OpenSSL's default paths, which honour SSL_CERT_DIR.
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(aa.NetworkError) as info:
        aa.request("GET", "/x", config=config, retries=0)
    assert_verify_failed(info, server)
    monkeypatch.setenv("SSL_CERT_DIR", test_ca.ca_dir)
    assert aa.request("GET", "/x", config=config).status == 204


def test_ssl_verify_a_ca_file_or_directory(https_server, make_config, test_ca, home):
    server = https_server()
    server.route("GET", "/x", 204)
    assert aa.request("GET", "/x", config=make_config(server, ssl_verify=test_ca.ca_pem)).ok
    assert aa.request("GET", "/x", config=make_config(server, ssl_verify=test_ca.ca_dir)).ok
    env_config = make_config(server, ssl_verify=None,
                             environ={"ANACONDA_AUTH_SSL_VERIFY": test_ca.ca_dir})
    assert env_config.ssl_verify == test_ca.ca_dir
    assert aa.request("GET", "/x", config=env_config).ok
    # Under the given home (issue 8 §4), a CA directory with a tilde is a directory still.
    shutil.copytree(test_ca.ca_dir, home / "certs")
    tilde_config = make_config(server, ssl_verify=None, environ={"ANACONDA_AUTH_SSL_VERIFY": "~/certs"})
    assert aa.request("GET", "/x", config=tilde_config).ok


def test_ssl_verify_a_ca_of_someone_else_fails(https_server, make_config, test_ca,
                                               tmp_path):
    import trustme

    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    server = https_server()
    server.route("GET", "/x", 204)
    with pytest.raises(aa.NetworkError) as info:
        aa.request("GET", "/x", config=make_config(server, ssl_verify=str(other_ca)))
    assert_verify_failed(info, server)


def test_truststore_missing_is_a_config_error(https_server, make_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "truststore", None)
    server = https_server()
    server.route("GET", "/x", 204)
    with pytest.raises(aa.ConfigError, match="truststore") as info:
        aa.request("GET", "/x", config=make_config(server, ssl_verify="truststore"))
    assert "pip install truststore" in str(info.value)
    assert server.requests == []


def test_truststore_uses_the_os_trust_store(https_server, make_config, test_ca,
                                            no_ca_variables, monkeypatch):
    """On Linux truststore loads OpenSSL's default paths, which honour SSL_CERT_FILE: so the
    test CA can be put in the "OS store" of this process without touching /etc. (Python 3.9
    has no truststore: there the setting must say which package it needs.)"""
    server = https_server(host="localhost")
    server.route("GET", "/x", 204)
    config = make_config(server, ssl_verify="truststore")
    if sys.version_info < (3, 10):
        with pytest.raises(aa.ConfigError, match="pip install truststore"):
            aa.request("GET", "/x", config=config, retries=0)
        assert server.requests == []
        return
    import truststore  # noqa: F401  (tests/requirements-test.txt installs it for 3.10+)

    # First without: the real system store does not hold the test CA. (In this order because
    # an SSLContext only ever adds CA certificates: truststore re-loads the default paths into
    # the same context at each handshake.)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(aa.NetworkError, match="could not be verified"):
        aa.request("GET", "/x", config=config, retries=0)
    monkeypatch.setenv("SSL_CERT_FILE", test_ca.ca_pem)
    assert aa.request("GET", "/x", config=config).status == 204


def test_truststore_with_an_ip_address_host(https_server, make_config, test_ca,
                                            no_ca_variables, monkeypatch):
    """urllib3 1.26 passes no server_hostname for an IP address, which truststore's context
    refuses with a ValueError: whatever happens, request() raises no raw ValueError."""
    server = https_server()  # https://127.0.0.1:PORT
    server.route("GET", "/x", 204)
    monkeypatch.setenv("SSL_CERT_FILE", test_ca.ca_pem)
    try:
        response = aa.request("GET", "/x", config=make_config(server, ssl_verify="truststore"),
                              retries=0)
    except aa.AnacondaAuthError as error:
        if sys.version_info < (3, 10):  # no truststore for Python 3.9: the setting says so
            assert isinstance(error, aa.ConfigError) and "truststore" in str(error)
        else:
            assert f"127.0.0.1:{server.port}" in str(error)
    else:
        assert sys.version_info >= (3, 10) and response.status == 204


def test_ssl_verify_false_works_and_warns_once(https_server, make_config, no_ca_variables):
    server = https_server()
    server.route("GET", "/x", 204)
    config = make_config(server, ssl_verify=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert aa.request("GET", "/x", config=config).status == 204
        assert aa.request("GET", "/x", config=config).status == 204
    assert [w.category for w in caught] == [UserWarning], [str(w.message) for w in caught]
    assert "verification is disabled" in str(caught[0].message)


def test_ssl_verify_false_prints_one_line_on_stderr(https_server, home, test_ca):
    server = https_server()
    server.route("GET", "/x", 204)
    script = textwrap.dedent("""
        import anaconda_auth as aa
        for _ in range(3):
            assert aa.request("GET", "/x").status == 204
        print("done")
    """)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(ROOT),
           "ANACONDA_SECRETS_DIR": str(home / "none"),
           "ANACONDA_AUTH_DOMAIN": f"127.0.0.1:{server.port}", "ANACONDA_AUTH_SSL_VERIFY": "false"}
    done = run_captured([sys.executable, "-c", script], env, home)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
    warning_lines = [line for line in done.stderr.splitlines() if "Warning" in line]
    assert len(warning_lines) == 1, done.stderr
    assert "verification is disabled" in warning_lines[0]
    assert "InsecureRequestWarning" not in done.stderr


def test_client_certificate_required_by_the_server(https_server, make_config, test_ca):
    server = https_server(require_client_cert=True)
    server.route("GET", "/mtls", echo)
    with_key = make_config(server, client_cert=test_ca.client_cert_pem,
                           client_cert_key=test_ca.client_key_pem)
    assert aa.request("GET", "/mtls", config=with_key).status == 200
    subject = dict(pair[0] for pair in server.requests[-1].client_cert["subject"])
    assert subject["commonName"] == "anaconda-test-client"
    combined = make_config(server, client_cert=test_ca.client_combined_pem)
    assert aa.request("GET", "/mtls", config=combined).status == 200
    assert len(server.requests) == 2
    with pytest.raises(aa.NetworkError) as info:
        aa.request("GET", "/mtls", config=make_config(server), retries=0)
    assert f"127.0.0.1:{server.port}" in str(info.value)
    assert wait_for(lambda: server.tls_errors) and len(server.requests) == 2


def test_client_certificate_paths_expand_home_and_variables_like_every_other_path(
        https_server, make_config, test_ca, home):
    import shutil

    server = https_server(require_client_cert=True)
    server.route("GET", "/mtls", echo)
    (home / "certs").mkdir()
    shutil.copy(test_ca.client_cert_pem, home / "certs" / "me.pem")
    shutil.copy(test_ca.client_key_pem, home / "certs" / "me.key")
    config = make_config(server, environ={"CERTS": str(home / "certs")},
                         client_cert="~/certs/me.pem", client_cert_key="$CERTS/me.key")
    assert config.client_cert == str(home / "certs" / "me.pem")
    assert config.client_cert_key == str(home / "certs" / "me.key")
    assert aa.request("GET", "/mtls", config=config).status == 200
    subject = dict(pair[0] for pair in server.requests[-1].client_cert["subject"])
    assert subject["commonName"] == "anaconda-test-client"


# ------------------------------------------------------------------------------------------
# Proxies (Debian's tinyproxy)
# ------------------------------------------------------------------------------------------


def assert_tunnelled(proxy, server) -> None:
    lines = proxy.connect_lines()
    assert any(f"CONNECT 127.0.0.1:{server.port}" in line for line in lines), proxy.log_text()


def assert_forwarded(proxy, server, path: str) -> None:
    assert any(f"GET {server.url}{path}" in line for line in proxy.request_lines()), (
        proxy.log_text())
    assert "tinyproxy" in server.requests[-1].headers.get("Via", "")


def test_https_through_a_configured_proxy_uses_connect(https_server, tinyproxy, make_config):
    server = https_server()
    server.route("GET", "/p", echo)
    proxy = tinyproxy(connect_ports=[server])
    config = make_config(server, api_key="k-123", proxy_servers={"https": proxy.url})
    response = aa.request("GET", "/p", config=config)
    assert response.status == 200
    assert response.json()["authorization"] == "Bearer k-123"  # inside the tunnel
    assert_tunnelled(proxy, server)
    assert proxy.request_lines() == proxy.connect_lines()  # nothing went through in clear


def test_http_through_a_configured_proxy_is_forwarded(https_server, tinyproxy, make_config):
    server = https_server(tls=False)
    server.route("GET", "/p", 204)
    proxy = tinyproxy()
    config = make_config(server, proxy_servers={"http": proxy.url})
    assert aa.request("GET", f"{server.url}/p", config=config).status == 204
    assert_forwarded(proxy, server, "/p")
    assert proxy.connect_lines() == []


@pytest.mark.parametrize("key", ["https://127.0.0.1", "https", "all://127.0.0.1", "all"])
def test_proxy_servers_keys(https_server, tinyproxy, make_config, key):
    server = https_server()
    server.route("GET", "/p", 204)
    proxy = tinyproxy(connect_ports=[server])
    assert aa.request("GET", "/p", config=make_config(server, proxy_servers={key: proxy.url})).ok
    assert_tunnelled(proxy, server)


def test_proxy_servers_for_other_hosts_are_not_used(https_server, tinyproxy, make_config):
    server = https_server()
    server.route("GET", "/p", 204)
    proxy = tinyproxy()
    config = make_config(server, proxy_servers={"https://other.example": proxy.url,
                                                "http": proxy.url})
    assert aa.request("GET", "/p", config=config).ok
    assert proxy.request_lines() == []
    assert server.requests[-1].headers.get("Via") is None


def test_configured_proxy_wins_over_the_environment(https_server, tinyproxy, make_config,
                                                    monkeypatch):
    server = https_server()
    server.route("GET", "/p", 204)
    used = tinyproxy(connect_ports=[server])
    ignored = tinyproxy(connect_ports=[server])
    monkeypatch.setenv("HTTPS_PROXY", ignored.url)
    config = make_config(server, proxy_servers={"https": used.url})
    assert aa.request("GET", "/p", config=config).ok
    assert_tunnelled(used, server)
    assert ignored.request_lines() == []


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])
def test_environment_proxy_for_https(https_server, tinyproxy, make_config, monkeypatch,
                                     variable):
    server = https_server()
    server.route("GET", "/p", 204)
    proxy = tinyproxy(connect_ports=[server])
    monkeypatch.setenv(variable, proxy.url)
    assert aa.request("GET", "/p", config=make_config(server)).ok
    assert_tunnelled(proxy, server)


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
def test_environment_proxy_for_http(https_server, tinyproxy, make_config, monkeypatch,
                                    variable):
    server = https_server(tls=False)
    server.route("GET", "/p", 204)
    proxy = tinyproxy()
    monkeypatch.setenv(variable, proxy.url)
    assert aa.request("GET", f"{server.url}/p", config=make_config(server)).ok
    assert_forwarded(proxy, server, "/p")


def test_proxy_variables_changed_after_a_request(https_server, tinyproxy, make_config,
                                                 monkeypatch):
    """The environment is read for every request: a program (or a test) that sets, changes or
    removes a proxy variable gets what it set, in either case."""
    server = https_server()
    server.route("GET", "/p", 204)
    first = tinyproxy(connect_ports=[server])
    second = tinyproxy(connect_ports=[server])
    config = make_config(server)
    assert aa.request("GET", "/p", config=config).ok  # no proxy yet
    for variable in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(variable, first.url)
        assert aa.request("GET", "/p", config=config).ok
        assert len(first.connect_lines()) == 1, variable
        monkeypatch.setenv(variable, second.url)
        assert aa.request("GET", "/p", config=config).ok
        assert len(second.connect_lines()) == 1, variable
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert aa.request("GET", "/p", config=config).ok
        monkeypatch.delenv("NO_PROXY")
        monkeypatch.delenv(variable)
        assert aa.request("GET", "/p", config=config).ok
        assert (len(first.connect_lines()), len(second.connect_lines())) == (1, 1), variable
        first, second = tinyproxy(connect_ports=[server]), tinyproxy(connect_ports=[server])


def test_https_proxy_variable_is_not_used_for_http(https_server, tinyproxy, make_config,
                                                   monkeypatch):
    server = https_server(tls=False)
    server.route("GET", "/p", 204)
    proxy = tinyproxy()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    assert aa.request("GET", f"{server.url}/p", config=make_config(server)).ok
    assert proxy.request_lines() == []


@pytest.mark.parametrize("variable,value", [
    ("NO_PROXY", "127.0.0.1"), ("no_proxy", "127.0.0.1"), ("NO_PROXY", "example.test, 127.0.0.1"),
    ("no_proxy", "*"),
])
def test_no_proxy_bypasses_the_proxy(https_server, tinyproxy, make_config, monkeypatch,
                                     variable, value):
    server = https_server()
    server.route("GET", "/p", 204)
    proxy = tinyproxy(connect_ports=[server])
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv(variable, value)
    assert aa.request("GET", "/p", config=make_config(server)).ok
    assert proxy.request_lines() == []
    assert len(server.requests) == 1
    # The same request without NO_PROXY does go through the proxy.
    monkeypatch.delenv(variable)
    assert aa.request("GET", "/p", config=make_config(server)).ok
    assert_tunnelled(proxy, server)


def test_no_proxy_for_other_hosts_does_not_bypass(https_server, tinyproxy, make_config,
                                                  monkeypatch):
    server = https_server()
    server.route("GET", "/p", 204)
    proxy = tinyproxy(connect_ports=[server])
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.test")
    assert aa.request("GET", "/p", config=make_config(server)).ok
    assert_tunnelled(proxy, server)


def test_authenticated_proxy_for_https(https_server, tinyproxy, make_config):
    server = https_server()
    server.route("GET", "/p", 204)
    proxy = tinyproxy(connect_ports=[server], user="proxyuser", password="s3cret.pass-1")
    config = make_config(server, proxy_servers={"https": proxy.url_with_auth})
    assert aa.request("GET", "/p", config=config).status == 204
    assert_tunnelled(proxy, server)
    # The credentials went to the proxy only, never to the origin.
    assert "Proxy-Authorization" not in server.requests[-1].headers


def test_authenticated_proxy_for_http_and_from_the_environment(https_server, tinyproxy,
                                                               make_config, monkeypatch):
    server = https_server(tls=False)
    server.route("GET", "/p", lambda r: (200, {}, {"proxy-auth": r.headers.get(
        "Proxy-Authorization"), "via": r.headers.get("Via")}))
    proxy = tinyproxy(user="proxyuser", password="s3cret.pass-1")
    monkeypatch.setenv("http_proxy", proxy.url_with_auth)
    response = aa.request("GET", f"{server.url}/p", config=make_config(server))
    assert response.status == 200
    seen = response.json()
    assert seen["proxy-auth"] is None  # tinyproxy consumed it
    assert "tinyproxy" in seen["via"]


def test_wrong_proxy_credentials_for_https(https_server, tinyproxy, make_config):
    server = https_server()
    server.route("GET", "/p", 204)
    proxy = tinyproxy(connect_ports=[server], user="proxyuser", password="s3cret.pass-1")
    wrong = f"http://proxyuser:Wr0ng-pass@127.0.0.1:{proxy.port}"
    config = make_config(server, proxy_servers={"https": wrong})
    with pytest.raises(aa.NetworkError) as info:
        aa.request("GET", "/p", config=config, retries=0)
    message = str(info.value)
    assert "Wr0ng-pass" not in message
    assert "401 Unauthorized" in message or "407" in message  # tinyproxy 1.11 answers 401
    assert f"127.0.0.1:{proxy.port}" in message  # names the proxy
    assert server.requests == []
    no_credentials = make_config(server, proxy_servers={"https": proxy.url})
    with pytest.raises(aa.NetworkError, match="40[17]"):
        aa.request("GET", "/p", config=no_credentials, retries=0)


@pytest.mark.parametrize("credentials", ["", "proxyuser:Wr0ng-pass@"])
def test_proxy_refusing_credentials_is_not_retried(https_server, tinyproxy, make_config,
                                                   credentials):
    """A proxy that refuses the credentials (tinyproxy: 407 without any, 401 for wrong ones)
    will refuse them again: one CONNECT, not four, and no backoff."""
    server = https_server()
    server.route("GET", "/p", 204)
    proxy = tinyproxy(connect_ports=[server], user="proxyuser", password="s3cret.pass-1")
    config = make_config(server, proxy_servers={
        "https": f"http://{credentials}127.0.0.1:{proxy.port}"})
    started = time.monotonic()
    with pytest.raises(aa.NetworkError):
        aa.request("GET", "/p", config=config)
    assert len(proxy.connect_lines()) == 1, proxy.connect_lines()
    assert time.monotonic() - started < 1


def test_proxy_refusing_the_port(https_server, tinyproxy, make_config):
    """tinyproxy's ConnectPort list does not hold the server's port: CONNECT gets 403. A clear
    error naming the proxy, at once (the next attempt would be refused alike)."""
    server = https_server()
    server.route("GET", "/p", 204)
    proxy = tinyproxy(connect_ports=[443])
    started = time.monotonic()
    with pytest.raises(aa.NetworkError) as info:
        aa.request("GET", "/p", config=make_config(server, proxy_servers={"https": proxy.url}))
    message = str(info.value)
    assert f"127.0.0.1:{proxy.port}" in message and "403" in message
    assert server.requests == []
    assert len(proxy.connect_lines()) == 1, proxy.connect_lines()
    assert time.monotonic() - started < 1


def test_wrong_proxy_credentials_for_http(https_server, tinyproxy, make_config):
    server = https_server(tls=False)
    server.route("GET", "/p", 204)
    proxy = tinyproxy(user="proxyuser", password="s3cret.pass-1")
    wrong = f"http://proxyuser:Wr0ng-pass@127.0.0.1:{proxy.port}"
    response = aa.request("GET", f"{server.url}/p",
                          config=make_config(server, proxy_servers={"http": wrong}))
    assert response.status in (401, 407)  # tinyproxy 1.11 answers 401
    with pytest.raises(aa.HTTPError) as info:
        response.raise_for_status()
    assert "Wr0ng-pass" not in str(info.value)
    assert server.requests == []


def test_unreachable_proxy_names_it_without_the_password(https_server, make_config):
    server = https_server()
    server.route("GET", "/p", 204)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = dead.getsockname()[1]
    try:
        config = make_config(server, proxy_servers={"https": f"http://u:Pa55word@127.0.0.1:{port}"})
        with pytest.raises(aa.NetworkError) as info:
            aa.request("GET", "/p", config=config, retries=0)
    finally:
        dead.close()
    message = str(info.value)
    assert "Pa55word" not in message
    assert f"127.0.0.1:{port}" in message and "proxy" in message
    assert server.requests == []


def test_proxy_credentials_are_percent_decoded(https_server, make_config):
    """The recording server stands in for a plain-http proxy: it sees the absolute-form request
    (so it was proxied) and the Proxy-Authorization made from the URL's decoded user and
    password; a proxy without a scheme is http://, and without credentials sends none."""
    proxy = https_server(tls=False)
    proxy.route("GET", "/p", 204)
    target = f"http://127.0.0.1:{proxy.port}/p"
    basic = "Basic " + base64.b64encode(b"us@er:p:ss").decode()
    for proxy_url, sent in ((f"http://us%40er:p%3Ass@127.0.0.1:{proxy.port}", basic),
                            (f"127.0.0.1:{proxy.port}", None)):
        config = make_config(proxy, proxy_servers={"http": proxy_url})
        assert aa.request("GET", target, config=config).status == 204
        seen = proxy.requests[-1]
        assert (seen.path, seen.headers.get("Proxy-Authorization")) == (target, sent)


# ------------------------------------------------------------------------------------------
# Retries, timeouts and network errors
# ------------------------------------------------------------------------------------------


def test_503_with_retry_after_seconds_then_200(https_server, make_config):
    server = https_server()
    server.route("GET", "/r", (200, {}, "ok"))
    server.fail_then("/r", [(503, {"Retry-After": "1"}, "busy")])
    response = aa.request("GET", "/r", config=make_config(server))
    assert (response.status, response.text) == (200, "ok")
    first, second = server.requests
    assert second.time - first.time >= 0.9


def test_503_with_retry_after_http_date_then_200(https_server, make_config):
    server = https_server()
    server.route("GET", "/r", (200, {}, "ok"))
    waits: list[float] = []

    def busy(request):
        now = time.time()
        until = math.floor(now) + 2  # a whole second 1-2 s ahead (HTTP dates have no fractions)
        waits.append(until - now)
        return (503, {"Retry-After": email.utils.formatdate(until, usegmt=True)}, "busy")

    server.fail_then("/r", [busy])
    response = aa.request("GET", "/r", config=make_config(server))
    assert response.status == 200
    first, second = server.requests
    assert second.time - first.time >= waits[0] - 0.15


def test_malformed_retry_after_does_not_turn_a_response_into_a_network_error(https_server,
                                                                            make_config):
    """``Retry-After: 1.5`` is not valid HTTP (whole seconds or a date): ignore it and back
    off as usual, rather than failing with 'Invalid Retry-After header'."""
    server = https_server()
    server.route("GET", "/r", (200, {}, "ok"))
    server.fail_then("/r", [(503, {"Retry-After": "1.5"}, "busy")])
    assert aa.request("GET", "/r", config=make_config(server)).text == "ok"
    server.fail_then("/r", [(503, {"Retry-After": "soon"}, "busy")])
    response = aa.request("GET", "/r", config=make_config(server), retries=0)
    assert (response.status, response.text) == (503, "busy")


def test_truncated_body_is_an_error_not_a_short_body(https_server, make_config):
    """A body cut short of its Content-Length is a failed transfer on urllib3 1.26 as on 2.x
    (1.26 does not enforce Content-Length unless asked): GET retries, POST fails."""
    server = https_server()
    full = (200, {"Content-Type": "text/plain"}, "0123456789" * 10)
    server.route("*", "/t", full)
    server.fail_then("/t", [server.Truncate(full, 10)])
    response = aa.request("GET", "/t", config=make_config(server))
    assert (response.status, len(response.body)) == (200, 100)
    assert len(server.requests) == 2
    server.fail_then("/t", [server.Truncate(full, 10)])
    with pytest.raises(aa.NetworkError) as info:
        aa.request("POST", "/t", config=make_config(server), json={})
    assert f"127.0.0.1:{server.port}" in str(info.value)
    assert len(server.requests) == 3


def test_retry_after_is_capped(https_server, make_config, fresh_http_state):
    """A server asking for an hour does not get request() to sleep an hour."""
    retry = handed_to_urllib3(https_server, make_config, fresh_http_state)["retries"]
    for value in ("3600", email.utils.formatdate(time.time() + 86400, usegmt=True)):
        response = urllib3.HTTPResponse(body=b"", headers={"Retry-After": value}, status=503)
        assert retry.get_retry_after(response) <= 60
    response = urllib3.HTTPResponse(body=b"", headers={"Retry-After": "2"}, status=503)
    assert retry.get_retry_after(response) == 2


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retried_statuses(https_server, make_config, status):
    server = https_server()
    server.route("GET", "/r", (200, {}, "ok"))
    server.fail_then("/r", [(status, {}, "try again")])
    response = aa.request("GET", "/r", config=make_config(server))
    assert response.status == 200
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [400, 404, 500, 501])
def test_other_statuses_are_not_retried(https_server, make_config, status):
    server = https_server()
    server.route("GET", "/r", (200, {}, "ok"))
    server.fail_then("/r", [(status, {}, "no")])
    assert aa.request("GET", "/r", config=make_config(server)).status == status
    assert len(server.requests) == 1


def test_at_most_three_retries_then_the_last_response(https_server, make_config):
    server = https_server()
    server.route("GET", "/r", (200, {}, "ok"))
    server.fail_then("/r", [(503, {}, f"busy {i}") for i in range(5)])
    started = time.monotonic()
    response = aa.request("GET", "/r", config=make_config(server))
    elapsed = time.monotonic() - started
    assert (response.status, response.text) == (503, "busy 3")
    assert len(server.requests) == 4
    # Exponential backoff with jitter: 0, then about 1 s and 2 s (each times 0.5-1.5).
    gaps = [b.time - a.time for a, b in zip(server.requests, server.requests[1:])]
    assert gaps[0] < 0.5 and 0.4 <= gaps[1] <= 1.7 and 0.9 <= gaps[2] <= 3.2, gaps
    assert elapsed < 6


@pytest.mark.parametrize("retries,attempts", [(0, 1), (1, 2)])
def test_retries_argument(https_server, make_config, retries, attempts):
    server = https_server()
    server.route("GET", "/r", (200, {}, "ok"))
    server.fail_then("/r", [(502, {}, "bad gateway")] * 3)
    assert aa.request("GET", "/r", config=make_config(server), retries=retries).status == 502
    assert len(server.requests) == attempts


def test_post_is_not_retried_on_503(https_server, make_config):
    server = https_server()
    server.route("POST", "/p", (201, {}, "created"))
    server.fail_then("/p", [(503, {"Retry-After": "1"}, "busy")])
    assert aa.request("POST", "/p", config=make_config(server), json={"n": 1}).status == 503
    assert len(server.requests) == 1


def test_post_is_not_resent_after_the_server_read_it(https_server, make_config):
    server = https_server()
    server.route("POST", "/p", (201, {}, "created"))
    server.fail_then("/p", [server.RESET])  # the body was read, then the connection reset
    with pytest.raises(aa.NetworkError) as info:
        aa.request("POST", "/p", config=make_config(server), json={"n": 1})
    assert f"127.0.0.1:{server.port}" in str(info.value)
    assert len(server.requests) == 1 and server.requests[0].json() == {"n": 1}


def test_get_is_retried_after_a_dropped_tls_handshake(https_server, make_config):
    server = https_server()
    server.route("GET", "/p", (200, {}, "ok"))
    dropped = fail_first_handshake(server)
    assert aa.request("GET", "/p", config=make_config(server)).text == "ok"
    assert dropped == [1]
    assert len(server.requests) == 1


def test_post_is_not_retried_after_a_dropped_tls_handshake(https_server, make_config):
    """urllib3 reports a TLS error in the handshake and one after the body went out alike
    (SSLError), so a POST takes neither for safe to resend."""
    server = https_server()
    server.route("POST", "/p", lambda r: (201, {}, r.json()))
    dropped = fail_first_handshake(server)
    with pytest.raises(aa.NetworkError, match=f"TLS error talking to 127.0.0.1:{server.port}"):
        aa.request("POST", "/p", config=make_config(server), json={"n": 1})
    assert dropped == [1]
    assert server.requests == []


def test_the_safe_retry_rule_from_urllib3s_public_exceptions(https_server, make_config,
                                                             fresh_http_state):
    """POST retries only a connection that was never opened (NewConnectionError and
    ConnectTimeoutError, also behind a ProxyError); GET retries those and later failures."""
    import urllib3.exceptions as ue

    refused = ue.NewConnectionError(None, "Failed to establish a new connection: refused")
    cases = [
        (refused, True),
        (ue.ConnectTimeoutError(None, "timed out"), True),
        (ue.ProxyError("Unable to connect to proxy", refused), True),
        (ue.SSLError("EOF occurred in violation of protocol"), False),
        (ue.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")), False),
        (ue.ReadTimeoutError(None, "/p", "Read timed out."), False),
    ]
    # Retry.increment returns a new Retry: the one request() handed over serves every case.
    retry = handed_to_urllib3(https_server, make_config, fresh_http_state, retries=3)["retries"]
    for error, post_retried in cases:
        for method, retried in (("POST", post_retried), ("GET", True)):
            if retried:
                assert retry.increment(method, "/p", error=error).total == 2, (method, error)
            else:
                with pytest.raises(ue.MaxRetryError):
                    retry.increment(method, "/p", error=error)


def test_get_is_retried_after_a_connection_reset(https_server, make_config):
    server = https_server()
    server.route("GET", "/r", (200, {}, "ok"))
    server.fail_then("/r", [server.RESET, server.CLOSE])
    assert aa.request("GET", "/r", config=make_config(server)).text == "ok"
    assert len(server.requests) == 3


def test_connection_reset_is_a_network_error_naming_the_host(https_server, make_config):
    server = https_server()
    server.fail_then("/r", [server.RESET])
    with pytest.raises(aa.NetworkError) as info:
        aa.request("GET", "/r", config=make_config(server), retries=0)
    message = str(info.value)
    assert f"127.0.0.1:{server.port}" in message
    assert "reset" in message.lower() or "aborted" in message.lower()
    assert "Traceback" not in message and "MaxRetryError" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_refused_connection_is_a_network_error(make_config):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    try:
        with pytest.raises(aa.NetworkError) as info:
            aa.request("GET", "/x", config=make_config(f"127.0.0.1:{port}"), retries=0)
    finally:
        closed.close()
    message = str(info.value)
    assert f"could not connect to 127.0.0.1:{port}" in message
    assert "refused" in message.lower()


def test_slow_response_past_the_timeout(https_server, make_config):
    server = https_server()
    server.route("GET", "/slow", server.delay(3, 200))
    started = time.monotonic()
    with pytest.raises(aa.NetworkError) as info:
        aa.request("GET", "/slow", config=make_config(server), timeout=0.5, retries=0)
    assert time.monotonic() - started < 2
    message = str(info.value)
    assert "read timeout" in message and f"127.0.0.1:{server.port}" in message


def test_read_timeout_is_retried_for_get_but_not_for_post(https_server, make_config):
    server = https_server()
    server.route("*", "/slow", 200)
    server.fail_then("/slow", [server.delay(2, 200)])
    config = make_config(server)
    assert aa.request("GET", "/slow", config=config, timeout=0.5).status == 200
    assert len(server.requests) == 2
    server.clear()
    server.fail_then("/slow", [server.delay(2, 200)])
    with pytest.raises(aa.NetworkError, match="read timeout"):
        aa.request("POST", "/slow", config=config, timeout=(5, 0.5), json={})
    assert len(server.requests) == 1


def test_default_timeouts_and_retry_policy(https_server, make_config, fresh_http_state):
    def handed(**options: Any) -> dict[str, Any]:
        return handed_to_urllib3(https_server, make_config, fresh_http_state, **options)

    timeout = handed()["timeout"]
    assert (timeout.connect_timeout, timeout.read_timeout) == (10.0, 60.0)
    timeout = handed(timeout=2.5)["timeout"]
    assert (timeout.connect_timeout, timeout.read_timeout) == (2.5, 2.5)
    timeout = handed(timeout=(1, 30))["timeout"]
    assert (timeout.connect_timeout, timeout.read_timeout) == (1, 30)
    retry = handed()["retries"]
    assert (retry.total, retry.connect, retry.read, retry.status) == (3, 3, 3, 3)
    assert set(retry.status_forcelist) == {429, 502, 503, 504}
    assert retry.respect_retry_after_header and not retry.raise_on_status
    assert retry.is_retry("GET", 503) and not retry.is_retry("POST", 503)
    assert not retry.is_retry("GET", 500)
    assert handed(retries=0)["retries"].total == 0


# ------------------------------------------------------------------------------------------
# Client and client_factory: settings held once, every call one request()
# ------------------------------------------------------------------------------------------


@pytest.fixture
def default_site(https_server, home, test_ca, monkeypatch):
    """A server that is this process's default site (for client_factory, which takes no site)."""
    server = https_server()
    server.route("*", "/api/x", echo)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANACONDA_SECRETS_DIR", str(home / "no-secrets"))
    monkeypatch.setenv("ANACONDA_AUTH_DOMAIN", f"{server.host}:{server.port}")
    monkeypatch.setenv("ANACONDA_AUTH_SSL_VERIFY", test_ca.ca_pem)
    monkeypatch.chdir(home)
    return server


def test_client_factory_sets_user_agent_and_api_version_only_when_given(default_site):
    aa.client_factory("my-app/1.0").get("/api/x")
    headers = default_site.requests[-1].headers
    assert headers["User-Agent"] == "my-app/1.0"
    assert "Api-Version" not in headers
    aa.client_factory(user_agent="my-app/1.0", api_version="2023.01.01").get("/api/x")
    headers = default_site.requests[-1].headers
    assert (headers["User-Agent"], headers["Api-Version"]) == ("my-app/1.0", "2023.01.01")
    # Without a user agent, request()'s own; our hostname header is always there.
    aa.client_factory(None).get("/api/x")
    headers = default_site.requests[-1].headers
    assert headers["User-Agent"].startswith(f"anaconda-auth/{aa.__version__}")
    assert headers["X-Client-Hostname"]


def test_client_subclass_sets_user_agent_and_api_version_as_in_the_reference(default_site):
    class MyClient(aa.Client):
        _user_agent = "my-app/2.0"
        _api_version = "2024.02.02"

    MyClient().get("/api/x")
    headers = default_site.requests[-1].headers
    assert (headers["User-Agent"], headers["Api-Version"]) == ("my-app/2.0", "2024.02.02")
    MyClient(user_agent="other/1", api_version="2025.1.1").get("/api/x")
    headers = default_site.requests[-1].headers
    assert (headers["User-Agent"], headers["Api-Version"]) == ("other/1", "2025.1.1")


@pytest.mark.parametrize("extra", [{"X-Extra": "stuff", "Api-Version": "never", "User-Agent": "no"},
                                   '{"X-Extra": "stuff", "Api-Version": "never", "User-Agent": "no"}'],
                         ids=["dict", "json-text"])
def test_client_extra_headers_are_added_but_never_replace_ours(default_site, extra):
    aa.Client(user_agent="my-app/1.0", api_version="ver", extra_headers=extra).get("/api/x")
    headers = default_site.requests[-1].headers
    assert (headers["X-Extra"], headers["Api-Version"], headers["User-Agent"]) == (
        "stuff", "ver", "my-app/1.0")  # a header sent twice would read "ver, never"


def test_client_extra_headers_that_are_not_json_are_a_value_error(default_site):
    with pytest.raises(ValueError, match="extra_headers"):
        aa.Client(extra_headers="nope")
    assert default_site.requests == []


def test_client_extra_headers_from_the_environment_apply(default_site, monkeypatch):
    monkeypatch.setenv("ANACONDA_AUTH_EXTRA_HEADERS", '{"X-Extra": "from-env"}')
    aa.Client(api_key="k").get("/api/x")
    assert default_site.requests[-1].headers["X-Extra"] == "from-env"


def test_client_methods_and_the_references_argument_names(https_server, make_config):
    server = https_server()
    server.route("*", "/echo", lambda r: (200, {}, {
        "method": r.method, "path": r.path, "body": r.text, "type": r.headers.get("Content-Type")}))
    client = aa.Client(make_config(server))
    for name in ("get", "post", "put", "patch", "delete"):
        assert getattr(client, name)("/echo").json()["method"] == name.upper()
    assert client.head("/echo").status == 200 and server.requests[-1].method == "HEAD"
    assert client.get("/echo", params={"q": "a b"}).json()["path"] == "/echo?q=a+b"
    assert client.get("/echo?x=1", params={"q": "2"}).json()["path"] == "/echo?x=1&q=2"
    sent = client.post("/echo", data={"a": "1"}).json()
    assert (sent["type"], sent["body"]) == ("application/x-www-form-urlencoded", "a=1")
    assert client.put("/echo", data=b"raw").json()["body"] == "raw"
    assert json.loads(client.post("/echo", json={"k": [1]}).json()["body"]) == {"k": [1]}
    assert client.request("OPTIONS", "/echo").json()["method"] == "OPTIONS"


def test_client_calls_go_through_request_and_share_its_pool(https_server, make_config,
                                                           fresh_http_state):
    server = https_server()
    server.route("*", "/k", 204)
    config = make_config(server)
    aa.Client(config, user_agent="a/1").get("/k")
    aa.request("GET", "/k", config=config)
    aa.Client(config, api_version="v").post("/k")
    assert pools_used(fresh_http_state) == 1
    assert len({r.connection_id for r in server.requests}) == 1


def test_client_caller_headers_replace_the_clients_in_any_case(https_server, make_config):
    server = https_server()
    server.route("GET", "/h", 204)
    aa.Client(make_config(server), user_agent="my-app/1.0").get("/h", headers={"user-agent": "x/2"})
    headers = server.requests[-1].headers
    assert headers["User-Agent"] == "x/2"  # a header sent twice would read "x/2, my-app/1.0"
    assert [name for name in headers if name.lower() == "user-agent"] == ["user-agent"]


def test_client_api_key_argument_beats_the_environment_which_beats_the_store(https_server,
                                                                            make_config):
    server = https_server()
    server.route("GET", "/api/x", echo)
    stored = make_config(server)
    aa.login(stored, api_key="stored-key", verify=False)
    assert aa.Client(stored).get("/api/x").json()["authorization"] == "Bearer stored-key"
    from_env = make_config(server, environ={"ANACONDA_AUTH_API_KEY": "env-key"})
    assert aa.Client(from_env).config.api_key == "env-key"
    assert aa.Client(from_env).get("/api/x").json()["authorization"] == "Bearer env-key"
    client = aa.Client(from_env, api_key="init-key")
    assert client.config.api_key == "init-key"
    assert client.get("/api/x").json()["authorization"] == "Bearer init-key"


def test_client_sends_no_expired_stored_key(https_server, make_config, home):
    server = https_server()
    server.route("GET", "/api/x", echo)
    config = make_config(server)
    store_entry(config.keyring_path, config.domain, jwt(-3600))
    assert aa.Client(config).get("/api/x").json()["authorization"] is None


@pytest.mark.parametrize("status", [401, 403])
def test_client_401_or_403_without_a_key_is_login_required(https_server, make_config, status):
    server = https_server()
    server.route("GET", "/p", (status, {}, {"detail": "who are you"}))
    server.route("GET", "/auth", (status, {}, AUTH_REQUIRED_BODY))
    client = aa.Client(make_config(server))
    for path in ("/p", "/auth"):
        with pytest.raises(aa.LoginRequiredError) as info:
            client.get(path)
        assert info.value.response is not None and info.value.response.status == status
        assert "login" in str(info.value)
    # auth=False asked for no key: the answer is returned as it is.
    assert client.get("/p", auth=False).status == status


@pytest.mark.parametrize("status", [401, 403])
def test_client_401_or_403_with_a_key_is_returned_and_raise_for_status_says_invalid(
        https_server, make_config, status):
    server = https_server()
    server.route("GET", "/p", (status, {}, AUTH_REQUIRED_BODY))
    response = aa.Client(make_config(server), api_key="bad-key").get("/p")
    assert response.status == status and response.sent_auth
    with pytest.raises(aa.InvalidTokenError, match=INVALID_KEY):
        response.raise_for_status()


def test_client_takes_a_site_name_a_domain_or_site_and_refuses_other_types(https_server, home,
                                                                          test_ca, monkeypatch):
    server = https_server()
    server.route("GET", "/api/x", echo)
    domain = f"{server.host}:{server.port}"
    anaconda = home / ".anaconda"
    anaconda.mkdir()
    (anaconda / "config.toml").write_text(
        f'[sites.other]\ndomain = "other.invalid"\n\n[sites.mine]\ndomain = "{domain}"\n'
        f'ssl_verify = "{test_ca.ca_pem}"\n')
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANACONDA_SECRETS_DIR", str(home / "no-secrets"))
    monkeypatch.chdir(home)
    for client in (aa.Client("mine"), aa.Client(site="mine"), aa.Client(domain)):
        assert client.config.site == "mine" and client.base_url == f"https://{domain}"
        assert client.get("/api/x").status == 200
    assert aa.Client().config.site == "other"
    assert aa.Client("other", domain=domain).base_url == f"https://{domain}"
    with pytest.raises(TypeError, match="Client\\(\\): config must be a Config"):
        aa.Client(1)  # type: ignore[arg-type]
    with pytest.raises(aa.UnknownSiteName):
        aa.Client("nope")


def test_client_ssl_verify_overrides_the_configuration(https_server, make_config, no_ca_variables):
    server = https_server()
    server.route("GET", "/api/x", echo)
    with pytest.raises(aa.NetworkError, match="certificate"):
        aa.Client(make_config(server, ssl_verify=True)).get("/api/x")
    with pytest.warns(UserWarning, match="ssl_verify"):
        assert aa.Client(make_config(server, ssl_verify=True), ssl_verify=False).get(
            "/api/x").status == 200
    client = aa.Client(make_config(server), ssl_verify=True)
    assert client.config.ssl_verify is True
    with pytest.raises(aa.NetworkError, match="certificate"):
        client.get("/api/x")



# ------------------------------------------------------------------------------------------
# whoami and the whoami command
# ------------------------------------------------------------------------------------------

ANONYMOUS = {
    "user": {"id": None, "email": None, "username": "", "first_name": "", "last_name": ""},
    "profile": {"is_confirmed": False, "is_disabled": False, "is_consented": False},
    "subscriptions": [],
}


def test_whoami_without_a_key_is_anonymous(anaconda_api, make_config):
    config = make_config(anaconda_api.domain)
    account = aa.whoami(config)
    assert account == {**ANONYMOUS, "domain": anaconda_api.domain}
    assert anaconda_api.requests[-1].url_path == "/api/account"
    assert "Authorization" not in anaconda_api.requests[-1].headers


def test_whoami_with_a_key(anaconda_api, make_config):
    config = make_config(anaconda_api.domain)
    aa.login(config, api_key=anaconda_api.issue_key("alice"), verify=False)
    account = aa.whoami(config)
    assert account["domain"] == anaconda_api.domain
    assert account["user"]["username"] == "alice"
    assert account["user"]["email"] == "alice@example.test"
    assert set(account) == {"user", "profile", "subscriptions", "domain"}


def test_whoami_with_a_refused_key(anaconda_api, make_config):
    key = anaconda_api.issue_key("alice")
    anaconda_api.revoke(key)
    config = make_config(anaconda_api.domain, api_key=key)
    with pytest.raises(aa.InvalidTokenError, match="invalid"):
        aa.whoami(config)


def cli(args: list[str], home: Path, environ: dict[str, str]) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(ROOT),
           "ANACONDA_SECRETS_DIR": str(home / "no-secrets"), **environ}
    return run_captured([*CLI, *args], env, home)


def test_cli_whoami_without_a_key_exits_3(anaconda_api, home, test_ca):
    env = {"ANACONDA_AUTH_DOMAIN": anaconda_api.domain, "ANACONDA_AUTH_SSL_VERIFY": test_ca.ca_pem}
    for args in (["whoami"], ["whoami", "--json"], ["whoami", "--short"]):
        done = cli(args, home, env)
        assert done.returncode == 3, done
        assert done.stdout == ""
        assert "login" in done.stderr.lower() and "Traceback" not in done.stderr
    assert not [r for r in anaconda_api.requests if r.url_path == "/api/account"]


def test_cli_whoami_prints_the_account(anaconda_api, home, make_config, test_ca):
    aa.login(make_config(anaconda_api.domain), api_key=anaconda_api.issue_key("bob"), verify=False)
    env = {"ANACONDA_AUTH_DOMAIN": anaconda_api.domain, "ANACONDA_AUTH_SSL_VERIFY": test_ca.ca_pem}
    # As the reference prints it: the account, pretty JSON (indent 2, sorted keys), on stdout;
    # --json (the old spelling) prints the same.
    for args in (["whoami"], ["whoami", "--json"], ["auth", "whoami"]):
        done = cli(args, home, env)
        assert done.returncode == 0, done.stderr
        account = json.loads(done.stdout)
        assert done.stdout == json.dumps(account, indent=2, sort_keys=True) + "\n"
        assert account["domain"] == anaconda_api.domain
        assert account["user"]["username"] == "bob"
        assert account["user"]["email"] == "bob@example.test"
        assert set(account) == {"user", "profile", "subscriptions", "domain"}
        assert done.stderr == ""
    # --short: one line for a person.
    done = cli(["whoami", "--short"], home, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1
    assert anaconda_api.domain in done.stdout and "bob" in done.stdout
    assert "bob@example.test" in done.stdout and "{" not in done.stdout


def test_cli_whoami_with_a_refused_key_exits_3(anaconda_api, home, test_ca):
    key = anaconda_api.issue_key("carol")
    anaconda_api.revoke(key)
    env = {"ANACONDA_AUTH_DOMAIN": anaconda_api.domain, "ANACONDA_AUTH_SSL_VERIFY": test_ca.ca_pem,
           "ANACONDA_AUTH_API_KEY": key}
    done = cli(["whoami"], home, env)
    assert done.returncode == 3, done
    assert INVALID_KEY in done.stderr and "Traceback" not in done.stderr


def test_cli_whoami_on_a_terminal_offers_login(anaconda_api, home, test_ca):
    """On a TTY, a missing key gets the same offer as api-key; answering no exits 3 with the
    instructions."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(ROOT),
           "ANACONDA_SECRETS_DIR": str(home / "no-secrets"), "TERM": "dumb",
           "ANACONDA_AUTH_DOMAIN": anaconda_api.domain, "ANACONDA_AUTH_SSL_VERIFY": test_ca.ca_pem}
    code, text = run_on_terminal([*CLI, "whoami"], env, home,
                                 [("Continue with interactive login? [y/n]", type_line("n"))])
    assert code == 3, text
    assert "login" in text and "ANACONDA_AUTH_API_KEY" in text
    assert not [r for r in anaconda_api.requests if r.url_path == "/api/account"]
