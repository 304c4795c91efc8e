"""A small stand-in for anaconda.com's own endpoints, on the scriptable HTTPS test server.

What it serves (everything else is 404 unless a test adds a route):

- ``POST /api/iam/api-keys`` and ``POST /api/auth/api-keys`` (which of them answer is
  ``key_endpoints``; a disabled one is 404): the ``Authorization: Bearer <access token>`` is
  checked by calling the real provider's userinfo endpoint (trusting the test CA, ignoring proxy
  variables); a token the provider refuses gets 401 ``{"error": {"code": "auth_required"}}``.
  Otherwise 201 ``{"api_key": <JWT>}``; the JWT is unsigned but well formed: header
  ``{"alg": "RS256", "typ": "JWT"}``, payload ``{"sub", "exp": now + 365 days, "iat"}``, and
  signature bytes that nobody checks.
- ``GET /api/account``: 200 ``{"user": {...}, "profile": {...}, "subscriptions": []}`` for a key
  this server issued (not expired, not revoked), else 401 auth_required.
- ``GET /app/local-login-success`` and ``GET /app/local-login-error``: small HTML pages.
- ``GET /.well-known/openid-configuration``: the provider's discovery document, so a test can
  point ``auth_domain`` at this server too (the endpoints in it still name the provider).
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from test_anaconda_auth import make_jwt  # the one JWT maker

from .httpserver import HTTPTestServer, RecordedRequest

IAM_PATH = "/api/iam/api-keys"
AUTH_PATH = "/api/auth/api-keys"
AUTH_REQUIRED = {"error": {"code": "auth_required", "message": "Authentication required"}}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_payload(token: str) -> dict[str, Any]:
    """The payload of a compact JWT, without any check."""
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class AnacondaAPI:
    """A running stand-in API. See the module docstring for the endpoints.

    Attributes: ``url`` (``https://127.0.0.1:PORT``), ``domain`` (``127.0.0.1:PORT``), ``port``,
    ``server`` (the :class:`~tests.httpserver.HTTPTestServer`, for ``route``/``fail_then``),
    ``requests`` (the server's recorded requests), ``key_requests`` (the JSON bodies of api-key
    requests that were answered 201, with ``path``), ``issued_keys`` (list of dicts: ``api_key``,
    ``sub``, ``claims``, ``exp``, ``path``, ``body``), ``key_endpoints`` (mutable set of the
    paths that issue keys; default both), ``userinfo_calls`` (how often the provider was asked),
    ``login_success_url``, ``login_error_url``.
    Methods: ``issue_key(sub="alice", expires_in=..., **claims)`` makes a key this server will
    accept (``expires_in`` negative for an expired one), ``revoke(key)``, ``route``,
    ``fail_then``, ``stop()``.
    """

    __test__ = False

    def __init__(self, ssl_context: ssl.SSLContext, userinfo_url: str, ca_pem: str,
                 discovery: dict[str, Any] | None = None, key_endpoints=(IAM_PATH, AUTH_PATH)) -> None:
        self.server = HTTPTestServer(ssl_context)
        self.url = self.server.url
        self.port = self.server.port
        self.domain = f"127.0.0.1:{self.port}"
        self.requests: list[RecordedRequest] = self.server.requests
        self.key_endpoints = set(key_endpoints)
        self.issued_keys: list[dict[str, Any]] = []
        self.key_requests: list[dict[str, Any]] = []
        self.revoked: set = set()
        self.userinfo_calls = 0
        self.login_success_url = self.url + "/app/local-login-success"
        self.login_error_url = self.url + "/app/local-login-error"
        self._userinfo_url = userinfo_url
        self._lock = threading.Lock()
        # Never through a proxy: tests set HTTPS_PROXY for the code under test, not for us.
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_pem)),
        )
        s = self.server
        s.route("POST", IAM_PATH, self._api_keys)
        s.route("POST", AUTH_PATH, self._api_keys)
        s.route("GET", "/api/account", self._account)
        s.route("GET", "/app/local-login-success", (200, {"Content-Type": "text/html; charset=utf-8"},
                ("<!DOCTYPE html><html><head><title>Login successful</title></head>"
                "<body><h1>Login successful</h1><p>You can close this window.</p></body></html>")))
        s.route("GET", "/app/local-login-error", (200, {"Content-Type": "text/html; charset=utf-8"},
                ("<!DOCTYPE html><html><head><title>Login failed</title></head>"
                "<body><h1>Login failed</h1></body></html>")))
        if discovery is not None:
            s.route("GET", "/.well-known/openid-configuration", (200, {}, dict(discovery)))

    # -- delegation ----------------------------------------------------------------------------
    def route(self, *args: Any, **kwargs: Any) -> None:
        self.server.route(*args, **kwargs)

    def fail_then(self, *args: Any, **kwargs: Any) -> None:
        self.server.fail_then(*args, **kwargs)

    def stop(self) -> None:
        self.server.stop()

    # -- keys ----------------------------------------------------------------------------------
    def issue_key(self, sub: str = "alice", expires_in: float = 365 * 86400, path: str = "",
                  body: Any = None, **claims: Any) -> str:
        """Make an API key this server accepts at /api/account (no provider involved)."""
        now = int(time.time())
        key = make_jwt({"sub": sub, "exp": int(now + expires_in), "iat": now})
        merged = {"sub": sub, "email": f"{sub}@example.test", "preferred_username": sub,
                  "given_name": sub.capitalize(), "family_name": "Tester"}
        merged.update(claims)
        with self._lock:
            self.issued_keys.append({"api_key": key, "sub": sub, "claims": merged, "exp": int(now + expires_in),
                                     "path": path, "body": body})
        return key

    def revoke(self, key: str) -> None:
        with self._lock:
            self.revoked.add(key)

    def _find_key(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            if key in self.revoked:
                return None
            for entry in self.issued_keys:
                if entry["api_key"] == key:
                    return entry
        return None

    # -- handlers ------------------------------------------------------------------------------
    @staticmethod
    def _bearer(request: RecordedRequest) -> str | None:
        value = request.headers.get("Authorization", "")
        if value[:7].lower() == "bearer " and value[7:].strip():
            return value[7:].strip()
        return None

    def _userinfo(self, token: str) -> dict[str, Any] | None:
        req = urllib.request.Request(self._userinfo_url, headers={"Authorization": f"Bearer {token}"})
        with self._lock:
            self.userinfo_calls += 1
        try:
            with self._opener.open(req, timeout=10) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as err:
            err.close()
            return None

    def _api_keys(self, request: RecordedRequest):
        if request.url_path not in self.key_endpoints:
            return (404, {}, {"error": {"code": "not_found", "message": "Not Found"}})
        token = self._bearer(request)
        claims = self._userinfo(token) if token else None
        if not claims:
            return (401, {}, AUTH_REQUIRED)
        try:
            body = request.json() if request.body else {}
        except ValueError:
            return (400, {}, {"error": {"code": "invalid_json", "message": "body is not JSON"}})
        key = self.issue_key(claims["sub"], path=request.url_path, body=body,
                             **{k: v for k, v in claims.items() if k != "sub"})
        with self._lock:
            self.key_requests.append({"path": request.url_path, "body": body})
        return (201, {}, {"api_key": key})

    def _account(self, request: RecordedRequest):
        key = self._bearer(request)
        entry = self._find_key(key) if key else None
        if entry is None or entry["exp"] <= time.time():
            return (401, {}, AUTH_REQUIRED)
        c = entry["claims"]
        return (200, {}, {
            "user": {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "anaconda-auth-test:" + entry["sub"])),
                "email": c.get("email"),
                "username": c.get("preferred_username", entry["sub"]),
                "first_name": c.get("given_name", ""),
                "last_name": c.get("family_name", ""),
            },
            "profile": {"is_confirmed": True, "is_disabled": False, "is_consented": True},
            "subscriptions": [],
        })

    def __repr__(self) -> str:
        return f"<AnacondaAPI {self.url}>"
