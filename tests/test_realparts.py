"""Self-tests of the real-part fixtures in tests/conftest.py (they prove the fixtures, not the module).

Run just these with ``python -m pytest -q tests/test_realparts.py``; the Chromium test needs
``ANACONDA_AUTH_TEST_BROWSER_PYTHON`` (or ``.venvs/browser``) and Debian's chromium.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.anaconda_api import jwt_payload
from tests.loopback import LoopbackListener
from tests.useragent import UserAgent

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


# ------------------------------------------------------------------------------------------
# Small stdlib OAuth client pieces used by these self-tests
# ------------------------------------------------------------------------------------------


def _post_form(url: str, fields: dict[str, str], ca_pem: str) -> dict[str, Any]:
    """POST a form, return (status, JSON) without raising on 4xx."""
    req = urllib.request.Request(url, data=urlencode(fields).encode(), method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_pem)))
    try:
        with opener.open(req, timeout=10) as resp:
            return {"status": resp.status, **json.load(resp)}
    except urllib.error.HTTPError as err:
        with err:
            return {"status": err.code, **json.load(err)}


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _auth_url(provider, redirect_uri: str, state: str, challenge: str) -> str:
    return provider.authorization_endpoint + "?" + urlencode({
        "client_id": provider.client_id, "response_type": "code",
        "scope": "openid email profile offline_access", "state": state, "redirect_uri": redirect_uri,
        "code_challenge": challenge, "code_challenge_method": "S256", "prompt": "consent",
    })


def _get(url: str, ca_pem: str | None, headers: dict[str, str] | None = None):
    ctx = ssl.create_default_context(cafile=ca_pem) if ca_pem else ssl.create_default_context()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()


# ------------------------------------------------------------------------------------------
# TLS and the HTTPS server
# ------------------------------------------------------------------------------------------


def test_https_server_is_refused_by_the_default_trust_store(https_server, test_ca, monkeypatch):
    for var in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    server = https_server()
    server.route("GET", "/hello", (200, {}, {"hello": "world"}))
    with pytest.raises(urllib.error.URLError) as info:
        _get(server.url + "/hello", None)
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)
    assert server.requests == []
    assert _get(server.url + "/hello", test_ca.ca_pem) == (200, b'{"hello": "world"}')
    # The c_rehash-style directory works as a capath.
    ctx = ssl.create_default_context(capath=test_ca.ca_dir)
    with socket.create_connection(("127.0.0.1", server.port)) as raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
        pass
    assert os.listdir(test_ca.ca_dir)[0].endswith(".0")


def test_https_server_keeps_connections_alive_and_records_requests(https_server, test_ca):
    server = https_server()
    server.route("POST", "/echo", lambda req: (200, {"X-Seen": req.headers["x-test"]}, req.json()))
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=test_ca.client_context())
    for i in range(3):
        conn.request("POST", f"/echo?i={i}", body=json.dumps({"i": i}), headers={"X-Test": str(i)})
        resp = conn.getresponse()
        assert (resp.status, resp.getheader("X-Seen"), json.loads(resp.read())) == (200, str(i), {"i": i})
    conn.close()
    assert [r.connection_id for r in server.requests] == [1, 1, 1]
    first = server.requests[0]
    assert (first.method, first.url_path, first.query, first.body) == ("POST", "/echo", {"i": ["0"]}, b'{"i": 0}')
    assert first.tls_version in ("TLSv1.2", "TLSv1.3")


def test_https_server_fault_sequence(https_server, test_ca):
    server = https_server()
    server.route("GET", "/flaky", (200, {}, "finally"))
    server.fail_then("/flaky", [(503, {"Retry-After": "1"}, "busy"), server.RESET, server.CLOSE,
                                server.delay(0.3, (429, {"Retry-After": "0"}, ""))])
    statuses = []
    for _ in range(5):
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=test_ca.client_context(), timeout=5)
        started = time.monotonic()
        try:
            conn.request("GET", "/flaky")
            resp = conn.getresponse()
            statuses.append((resp.status, resp.getheader("Retry-After"), resp.read()))
        except (ConnectionError, http.client.HTTPException) as err:
            statuses.append(type(err).__name__)
        finally:
            conn.close()
        elapsed = time.monotonic() - started
    assert statuses[0] == (503, "1", b"busy")
    assert statuses[1] in ("ConnectionResetError", "RemoteDisconnected")
    assert statuses[2] == "RemoteDisconnected"
    assert statuses[3] == (429, "0", b"")
    assert statuses[4] == (200, None, b"finally")
    assert elapsed < 1
    server.redirect("/old", "/flaky", status=307)
    assert _get(server.url + "/old", test_ca.ca_pem) == (200, b"finally")


def test_https_server_requires_a_client_certificate(https_server, test_ca):
    server = https_server(require_client_cert=True)
    server.route("GET", "/", (200, {}, "mtls"))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=test_ca.client_context(), timeout=5)
        conn.request("GET", "/")
        conn.getresponse().read()
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=test_ca.client_context(with_client_cert=True))
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"mtls"
    conn.close()
    subject = dict(pair[0] for pair in server.requests[-1].client_cert["subject"])
    assert subject["commonName"] == "anaconda-test-client"
    assert server.tls_errors  # the first, certificate-less handshake was refused


def test_plain_http_server_on_ipv6_loopback(https_server):
    try:
        server = https_server(tls=False, host="::1")
    except OSError as err:
        pytest.fail(f"IPv6 loopback unavailable: {err}")
    server.route("GET", "/", 204)
    assert server.url.startswith("http://[::1]:")
    assert _get(server.url + "/", None)[0] == 204


# ------------------------------------------------------------------------------------------
# Proxy
# ------------------------------------------------------------------------------------------


def test_tinyproxy_tunnels_https_with_connect_and_requires_auth(https_server, tinyproxy, test_ca):
    server = https_server()
    server.route("GET", "/via-proxy", (200, {}, "tunnelled"))
    proxy = tinyproxy(connect_ports=[server], user="proxyuser", password="s3cret.pass-1")
    assert proxy.url_with_auth == f"http://proxyuser:s3cret.pass-1@127.0.0.1:{proxy.port}"
    token = base64.b64encode(b"proxyuser:s3cret.pass-1").decode()

    conn = http.client.HTTPSConnection("127.0.0.1", proxy.port, context=test_ca.client_context(), timeout=5)
    conn.set_tunnel("127.0.0.1", server.port, headers={"Proxy-Authorization": f"Basic {token}"})
    conn.request("GET", "/via-proxy")
    assert conn.getresponse().read() == b"tunnelled"
    conn.close()
    assert any(f"CONNECT 127.0.0.1:{server.port}" in line for line in proxy.connect_lines())

    conn = http.client.HTTPSConnection("127.0.0.1", proxy.port, context=test_ca.client_context(), timeout=5)
    conn.set_tunnel("127.0.0.1", server.port)
    with pytest.raises(OSError, match="407"):
        conn.request("GET", "/via-proxy")
    conn.close()


def test_tinyproxy_forwards_plain_http_with_a_via_header(https_server, tinyproxy):
    server = https_server(tls=False)
    server.route("GET", "/plain", (200, {}, "forwarded"))
    proxy = tinyproxy()
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    conn.request("GET", f"{server.url}/plain")
    assert conn.getresponse().read() == b"forwarded"
    conn.close()
    assert "tinyproxy" in server.requests[-1].headers["Via"]
    assert any(f"GET {server.url}/plain" in line for line in proxy.request_lines())
    assert proxy.connect_lines() == []


# ------------------------------------------------------------------------------------------
# System keyring
# ------------------------------------------------------------------------------------------


def test_secret_service_round_trips_a_password(secret_service):
    import keyring
    from keyring.backends import SecretService

    assert isinstance(keyring.get_keyring(), SecretService.Keyring)
    assert os.environ["DBUS_SESSION_BUS_ADDRESS"] == secret_service["DBUS_SESSION_BUS_ADDRESS"]
    keyring.set_password("Anaconda Cloud", "example.test", "c2VjcmV0")
    assert keyring.get_password("Anaconda Cloud", "example.test") == "c2VjcmV0"
    # A subprocess inherits the environment and sees the same keyring.
    out = subprocess.run(
        [sys.executable, "-c", "import keyring; print(keyring.get_password('Anaconda Cloud', 'example.test'))"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert out.stdout.strip() == "c2VjcmV0", out.stderr
    keyring.delete_password("Anaconda Cloud", "example.test")
    assert keyring.get_password("Anaconda Cloud", "example.test") is None
    assert os.path.exists(os.path.join(secret_service["XDG_DATA_HOME"], "keyrings", "login.keyring"))


# ------------------------------------------------------------------------------------------
# OpenID Provider, user agent, API stand-in
# ------------------------------------------------------------------------------------------


def test_oidc_discovery_lists_the_endpoints(oidc_provider):
    d = oidc_provider.discovery
    assert d["issuer"] == oidc_provider.issuer and oidc_provider.issuer.startswith("https://127.0.0.1:")
    for key, path in [("authorization_endpoint", "/auth"), ("token_endpoint", "/token"),
                      ("device_authorization_endpoint", "/device/auth"), ("userinfo_endpoint", "/me")]:
        assert d[key] == oidc_provider.issuer + path
    assert d["code_challenge_methods_supported"] == ["S256"]
    assert set(d["scopes_supported"]) >= {"openid", "email", "profile", "offline_access"}
    assert oidc_provider.userinfo_url == d["userinfo_endpoint"]


def test_useragent_completes_auth_code_with_pkce(oidc_provider, anaconda_api, test_ca):
    verifier, challenge = _pkce()
    state = secrets.token_urlsafe(16)
    with LoopbackListener(success_url=anaconda_api.login_success_url) as listener:
        result = UserAgent(cafile=test_ca.ca_pem).run(_auth_url(oidc_provider, listener.redirect_uri, state, challenge))
        params = listener.wait(5)
    assert params["state"] == state and params["iss"] == oidc_provider.issuer
    assert result.callback_params["code"] == params["code"]
    assert result.listener_status == 303
    assert result.final_url == anaconda_api.login_success_url and result.final_status == 200
    tokens = _post_form(oidc_provider.token_endpoint, {
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": listener.redirect_uri,
        "client_id": oidc_provider.client_id, "code_verifier": verifier}, test_ca.ca_pem)
    assert tokens["status"] == 200 and "refresh_token" in tokens, tokens
    assert set(tokens["scope"].split()) == {"openid", "email", "profile", "offline_access"}
    status, body = _get(oidc_provider.userinfo_url, test_ca.ca_pem, {"Authorization": f"Bearer {tokens['access_token']}"})
    assert status == 200 and json.loads(body)["email"] == "alice@example.test"


def test_useragent_completes_the_device_flow(oidc_provider, test_ca):
    start = _post_form(oidc_provider.device_authorization_endpoint,
                       {"client_id": oidc_provider.client_id, "scope": "openid email profile offline_access"},
                       test_ca.ca_pem)
    poll = {"grant_type": DEVICE_GRANT, "device_code": start["device_code"], "client_id": oidc_provider.client_id}
    assert _post_form(oidc_provider.token_endpoint, poll, test_ca.ca_pem)["error"] == "authorization_pending"
    result = UserAgent(cafile=test_ca.ca_pem).run(start["verification_uri_complete"])
    assert result.device_done, result.steps
    tokens = _post_form(oidc_provider.token_endpoint, poll, test_ca.ca_pem)
    assert tokens["status"] == 200 and "access_token" in tokens and "refresh_token" in tokens


def test_useragent_denies_device_and_auth_code(oidc_provider, test_ca):
    start = _post_form(oidc_provider.device_authorization_endpoint,
                       {"client_id": oidc_provider.client_id, "scope": "openid"}, test_ca.ca_pem)
    result = UserAgent(cafile=test_ca.ca_pem, action="deny").run(start["verification_uri"], user_code=start["user_code"])
    assert result.denied and result.page_error
    poll = {"grant_type": DEVICE_GRANT, "device_code": start["device_code"], "client_id": oidc_provider.client_id}
    assert _post_form(oidc_provider.token_endpoint, poll, test_ca.ca_pem)["error"] == "access_denied"

    _, challenge = _pkce()
    with LoopbackListener() as listener:
        UserAgent(cafile=test_ca.ca_pem, action="deny").run(_auth_url(oidc_provider, listener.redirect_uri, "s", challenge))
        assert listener.wait(5)["error"] == "access_denied"


def test_useragent_works_as_a_browser_hook_for_webbrowser(oidc_provider, useragent_browser_env, test_ca):
    """A stand-in CLI in a subprocess: bind the listener, webbrowser.open(), then serve."""
    _, challenge = _pkce()
    script = textwrap.dedent("""
        import sys, webbrowser
        from urllib.parse import quote
        from urllib.parse import urlsplit, parse_qs
        from http.server import HTTPServer, BaseHTTPRequestHandler
        got = {}
        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                got.update(parse_qs(urlsplit(self.path).query))
                self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
            def log_message(self, *a): pass
        srv = HTTPServer(("127.0.0.1", 0), H)
        redirect = "http://127.0.0.1:%d/auth/oidc" % srv.server_port
        print(webbrowser.open(sys.argv[1] + "&redirect_uri=" + quote(redirect, safe="")), flush=True)
        srv.timeout = 20
        srv.handle_request()
        print(got.get("state"), got.get("code", ["-"])[0][:4] != "-")
    """)
    url = _auth_url(oidc_provider, "", "hook-state", challenge).replace("&redirect_uri=", "")
    env = dict(os.environ, **useragent_browser_env.env)
    env.pop("DISPLAY", None)
    out = subprocess.run([sys.executable, "-c", script, url], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.stdout.split() == ["True", "['hook-state']", "True"], (out.stdout, out.stderr, useragent_browser_env.log_text())
    assert useragent_browser_env.result(10)["callback_params"]["state"] == "hook-state"


def test_anaconda_api_exchanges_an_access_token_for_a_key(oidc_provider, anaconda_api, test_ca):
    start = _post_form(oidc_provider.device_authorization_endpoint,
                       {"client_id": oidc_provider.client_id, "scope": "openid email profile"}, test_ca.ca_pem)
    assert UserAgent(cafile=test_ca.ca_pem, login="bob").run(start["verification_uri_complete"]).device_done
    tokens = _post_form(oidc_provider.token_endpoint, {"grant_type": DEVICE_GRANT, "device_code": start["device_code"],
                                                       "client_id": oidc_provider.client_id}, test_ca.ca_pem)
    body = json.dumps({"scopes": ["cloud:read", "cloud:write", "repo:read"], "tags": ["anaconda-auth/v0"]})

    def post(path: str, token: str):
        conn = http.client.HTTPSConnection("127.0.0.1", anaconda_api.port, context=test_ca.client_context())
        conn.request("POST", path, body=body, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        result = resp.status, json.loads(resp.read())
        conn.close()
        return result

    assert post("/api/iam/api-keys", "not-a-token") == (401, {"error": {"code": "auth_required", "message": "Authentication required"}})
    anaconda_api.key_endpoints = {"/api/auth/api-keys"}
    assert post("/api/iam/api-keys", tokens["access_token"])[0] == 404
    status, issued = post("/api/auth/api-keys", tokens["access_token"])
    assert status == 201
    key = issued["api_key"]
    claims = jwt_payload(key)
    assert claims["sub"] == "bob" and 364 * 86400 < claims["exp"] - time.time() <= 365 * 86400
    assert json.loads(base64.urlsafe_b64decode(key.split(".")[0] + "=="))["alg"] == "RS256"
    assert anaconda_api.key_requests == [{"path": "/api/auth/api-keys", "body": json.loads(body)}]

    status, account = _get(anaconda_api.url + "/api/account", test_ca.ca_pem, {"Authorization": f"Bearer {key}"})
    assert status == 200
    assert json.loads(account)["user"]["email"] == "bob@example.test"
    assert json.loads(account)["user"]["first_name"] == "Bob"
    assert _get(anaconda_api.url + "/api/account", test_ca.ca_pem, {"Authorization": f"Bearer {tokens['access_token']}"})[0] == 401
    expired = anaconda_api.issue_key("carol", expires_in=-60)
    assert _get(anaconda_api.url + "/api/account", test_ca.ca_pem, {"Authorization": f"Bearer {expired}"})[0] == 401
    assert _get(anaconda_api.url + "/app/local-login-success", test_ca.ca_pem)[0] == 200
    status, doc = _get(anaconda_api.url + "/.well-known/openid-configuration", test_ca.ca_pem)
    assert json.loads(doc)["issuer"] == oidc_provider.issuer


# ------------------------------------------------------------------------------------------
# Real browser
# ------------------------------------------------------------------------------------------


def test_chromium_completes_an_auth_code_login(oidc_provider, anaconda_api, chromium_browser_env):
    _, challenge = _pkce()
    with LoopbackListener(success_url=anaconda_api.login_success_url) as listener:
        argv = [a.replace("%s", _auth_url(oidc_provider, listener.redirect_uri, "chromium-state", challenge))
                for a in __import__("shlex").split(str(chromium_browser_env))[:-1]]
        proc = subprocess.Popen(argv, env=dict(os.environ, **chromium_browser_env.env))
        try:
            params = listener.wait(60)
            result = chromium_browser_env.result(60)
        finally:
            proc.wait(60)
    assert params["state"] == "chromium-state" and "code" in params
    assert result["listener_status"] == 303
    assert result["final_url"] == anaconda_api.login_success_url
    assert proc.returncode == 0
