"""Attacks on the browser login's loopback listener (RFC 8252): generated callbacks (wrong,
repeated or missing parameters, foreign Host headers), oversized request lines and headers,
non-HTTP bytes, 200 idle connections, two valid callbacks at once.

Invariants: a wrong state is never accepted; the login completes at most once; a request whose
Host is not the listener's own loopback address (DNS rebinding) is refused; the listener binds
only loopback; no page echoes the code or the state; the login never outlives login_timeout.
Everything talks to the module's real listener over real loopback sockets.
"""

from __future__ import annotations

import io
import secrets
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import anaconda_auth as aa
from tests.adversarial.helpers import budget, get_request, raw_exchange, status_of, tried
from tests.test_login import (
    TOKEN,
    _auth_params,
    _config,
    _domain,
    _flow,
    _listening_addresses,
    _port_is_free,
    _posts,
)

PART = "listener"
PATH = "/auth/oidc"
ISSUER = "https://idp.test"
REPEATABLE = ("state", "code", "error", "iss")


class Listener:
    """The module's listener for one login: a fresh state, result and port."""

    def __init__(self, home: Path, host: str = "127.0.0.1") -> None:
        self.config = aa.resolve_config(environ={"HOME": str(home)}, home=str(home), cwd=str(home),
                                        redirect_uri=f"http://{host}:0{PATH}")
        self.state = secrets.token_urlsafe(32)
        self.result = aa._LoginResult()
        self.server, self.redirect_uri = aa._start_listener(
            self.config, self.state, {"issuer": ISSUER}, self.result)
        parts = urlsplit(self.redirect_uri)
        self.port = parts.port
        self.host_header = parts.netloc
        self.connect_host = "::1" if host == "[::1]" else "127.0.0.1"

    def send(self, data: bytes) -> bytes:
        return raw_exchange(self.port, data, host=self.connect_host)

    def get(self, query: str, host: str | None = "", path: str = PATH) -> bytes:
        target = path + (f"?{query}" if query else "")
        return self.send(get_request(target, self.host_header if host == "" else host))

    def valid_query(self, code: str) -> str:
        return f"code={quote(code)}&state={quote(self.state)}&iss={quote(ISSUER)}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener(tmp_path: Path):
    opened: list[Listener] = []

    def start(host: str = "127.0.0.1") -> Listener:
        opened.append(Listener(tmp_path, host))
        return opened[-1]

    def fresh() -> Listener:
        """The first listener, its result reset: one per test, not per generated case."""
        if not opened:
            start()
        opened[0].result.__init__()  # the handler reads the same object at every request
        return opened[0]

    start.fresh = fresh  # type: ignore[attr-defined]
    yield start
    for one in opened:
        one.close()


def _expected(params: list[tuple[str, str]], state: str, host_ok: bool, path_ok: bool) -> str:
    """What the listener must do with one generated callback: the model of the rules."""
    if not host_ok:
        return "400"  # before anything else: a rebound page learns nothing, not even a 404
    if not path_ok:
        return "404"
    names = [k for k, _ in params]
    if any(names.count(name) > 1 for name in REPEATABLE):
        return "400"  # RFC 6749 §3.1: parameters must not be included more than once
    values = dict(params)
    if values.get("state") != state:
        return "400"
    if "iss" in values and values["iss"] != ISSUER:
        return "error"
    if "error" in values or not values.get("code"):
        return "error"
    return "code"


_VALUE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_PARAM = st.one_of(
    st.tuples(st.just("state"), st.sampled_from(["REAL", "st4te-wrong", "REAL "]) | _VALUE),
    st.tuples(st.just("code"), _VALUE.map(lambda v: "c0de-" + v)),
    st.tuples(st.just("error"), st.sampled_from(["access_denied", "server_error"])),
    st.tuples(st.just("iss"), st.sampled_from([ISSUER, "https://evil.test"])),
    st.tuples(st.sampled_from(["error_description", "x", "STATE", "code[]"]), _VALUE),
)


@settings(max_examples=budget(150))
@given(params=st.lists(_PARAM, max_size=7),
       host=st.sampled_from(["own", "own-upper", "evil.test", "evil.test:{port}", "missing",
                             "127.0.0.1", "localhost:{port}", "127.0.0.1:{port}.evil.test"]),
       path_ok=st.booleans())
@example(params=[("state", "REAL"), ("code", "c0de-a"), ("iss", ISSUER)], host="own", path_ok=True)
@example(params=[("state", "REAL"), ("code", "c0de-a")], host="evil.test:{port}", path_ok=True)
@example(params=[("state", "REAL"), ("state", "REAL"), ("code", "c0de-a")], host="own", path_ok=True)
@example(params=[("state", "REAL"), ("code", "c0de-a"), ("code", "c0de-b")], host="own", path_ok=True)
@example(params=[("state", "REAL")], host="own", path_ok=True)
@example(params=[("state", "st4te-wrong"), ("code", "c0de-a")], host="own", path_ok=True)
def test_generated_callbacks_follow_the_rules_and_never_echo_code_or_state(
        listener, params, host, path_ok):
    tried(PART)
    one = listener.fresh()
    params = [(k, one.state if v == "REAL" else v) for k, v in params]
    own = f"127.0.0.1:{one.port}"
    host_header = {"own": own, "own-upper": own.upper(), "missing": None}.get(
        host, host.format(port=one.port))
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in params)
    answer = one.get(query, host=host_header, path=PATH if path_ok else "/favicon.ico")
    outcome = _expected(params, one.state, host in ("own", "own-upper"), path_ok)
    status = status_of(answer)
    if outcome in ("404", "400"):
        assert status == int(outcome), answer[:300]
        assert not one.result.done.is_set()
    else:
        assert status == 303, answer[:300]
        assert one.result.done.is_set()
        if outcome == "code":
            assert one.result.error is None and one.result.code == dict(params)["code"]
        else:
            assert one.result.code is None and isinstance(one.result.error, aa.AuthenticationError)
        before = (one.result.code, one.result.error)
        one.get(one.valid_query("c0de-second"))  # never completes twice
        assert (one.result.code, one.result.error) == before
    secrets_sent = {v for k, v in params if k in ("code", "state") and len(v) >= 6} | {one.state}
    for value in secrets_sent:
        assert value.encode() not in answer and quote(value).encode() not in answer


def test_a_foreign_host_header_is_refused_even_with_the_right_state(listener):
    """DNS rebinding: a page at http://evil.test:PORT (resolving to 127.0.0.1) must not drive
    the listener, even if it learnt the state."""
    one = listener()
    for host in (f"evil.test:{one.port}", "evil.test", f"127.0.0.1:{one.port + 1}", None,
                 f"127.0.0.1:{one.port}@evil.test"):
        tried(PART)
        answer = one.get(one.valid_query("c0de-rebound"), host=host)
        assert status_of(answer) == 400, (host, answer[:200])
        assert not one.result.done.is_set()
    two_hosts = get_request(f"{PATH}?{one.valid_query('c0de-twice')}", one.host_header,
                            extra=b"Host: evil.test\r\n")
    assert status_of(one.send(two_hosts)) == 400
    assert status_of(one.get(one.valid_query("c0de-good"))) == 303
    assert one.result.code == "c0de-good"


@pytest.mark.parametrize("host, bind_hex", [
    ("127.0.0.1", "0100007F"), ("localhost", "0100007F"), ("[::1]", "00000000000000000000000001000000")])
def test_each_loopback_form_binds_only_loopback_and_answers_its_own_host_header(listener, host, bind_hex):
    tried(PART)
    one = listener(host)
    assert _listening_addresses(one.port) == [bind_hex]
    assert status_of(one.get(one.valid_query("c0de-x"), host="evil.test")) == 400
    assert status_of(one.get(one.valid_query("c0de-x"))) == 303  # the redirect URI's own form
    assert one.result.code == "c0de-x"


def test_oversized_request_line_and_headers_are_refused_and_the_listener_keeps_working(listener):
    one = listener()
    huge_line = get_request(PATH + "?" + one.valid_query("c0de-huge") + "&x=" + "a" * 1_000_000,
                            one.host_header)
    assert status_of(one.send(huge_line)) == 414
    long_header = get_request(f"{PATH}?{one.valid_query('c0de-h1')}", one.host_header,
                              extra=b"X-Big: " + b"b" * 1_000_000 + b"\r\n")
    assert status_of(one.send(long_header)) in (400, 431)
    many = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 10_000) for i in range(101))
    assert status_of(one.send(get_request(f"{PATH}?{one.valid_query('c0de-h2')}",
                                          one.host_header, extra=many))) == 431
    tried(PART, 3)
    assert not one.result.done.is_set()
    assert status_of(one.get(one.valid_query("c0de-after"))) == 303
    assert one.result.code == "c0de-after"


@settings(max_examples=budget(60))
@given(junk=st.binary(min_size=1, max_size=4096))
@example(junk=b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a TLS ClientHello's start
@example(junk=b"GET /auth/oidc?code=c0de-bad HTTP/1.1 extra words\r\n\r\n")
@example(junk=b"POST /auth/oidc HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nstate")
@example(junk=b"\r\n\r\n\r\n")
def test_non_http_bytes_never_complete_the_login_nor_echo_what_was_sent(listener, junk):
    tried(PART)
    one = listener.fresh()
    answer = one.send(junk)
    assert not one.result.done.is_set()
    # http.server answers a bad request line with a bare error page (HTTP/0.9 style); its
    # DOCTYPE is "<!DOCTYPE HTML>" from Python 3.10 and "<!DOCTYPE HTML PUBLIC ..." before.
    http09_error = answer.startswith(b"<!DOCTYPE HTML") and b"Error code: 400" in answer
    assert answer == b"" or http09_error or status_of(answer) in (400, 404, 414, 431, 501, 505), answer[:200]
    assert b"c0de-bad" not in answer and b"Content-Length: 5" not in answer
    assert status_of(one.get(one.valid_query("c0de-then"))) == 303
    assert one.result.code == "c0de-then"


def _callbacks_at_once(one: Listener, n: int) -> list[int | None]:
    barrier = threading.Barrier(n)
    answers: list[int | None] = []

    def call(i: int) -> None:
        barrier.wait(10)
        answers.append(status_of(one.get(one.valid_query(f"c0de-{i}"))))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answers


def test_two_valid_callbacks_at_once_complete_the_login_exactly_once(listener):
    for _ in range(5):
        one = listener()
        answers = _callbacks_at_once(one, 8)
        tried(PART, 8)
        assert one.result.done.is_set() and one.result.code in {f"c0de-{i}" for i in range(8)}
        assert answers.count(303) >= 1 and len(answers) == 8


def _run_flow(server: Any, config: aa.Config, open_url: Any, timeout: float) -> list[Any]:
    """login() through the browser flow, with discovery, the token and the API-key exchange
    served by ``server`` and the process's own clock: [the access token] or [the error]."""
    outcome: list[Any] = []
    seams = {"open_url": open_url, "stdin": io.StringIO(), "stderr": io.StringIO()}

    def run() -> None:
        try:
            outcome.append(_flow(server, config, "browser", seams, timeout=timeout))
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            outcome.append(e)

    flow = threading.Thread(target=run, daemon=True)
    flow.start()
    flow.join(timeout + 20)  # a bound that only a hang can reach
    assert not flow.is_alive(), "the login outlived its login_timeout"
    return outcome


def test_200_idle_connections_neither_block_the_callback_nor_hold_the_login_past_its_timeout(
        https_server, test_ca, tmp_path):
    server = https_server()
    server.route("POST", "/token", TOKEN)
    config = _config(tmp_path, test_ca, domain=_domain(server))
    idle: list[socket.socket] = []
    ports: list[int] = []

    def open_idle(url: str, then_call: bool) -> bool:
        params = _auth_params(url)
        port = urlsplit(params["redirect_uri"]).port
        ports.append(port)
        for _ in range(200):
            idle.append(socket.create_connection(("127.0.0.1", port)))
        idle[0].sendall(b"GET /auth/oidc?st")  # and one that stopped half-way (slowloris)
        if then_call:
            answer = raw_exchange(port, get_request(
                f"/auth/oidc?code=c0de-idle&state={quote(params['state'])}", f"127.0.0.1:{port}"))
            assert status_of(answer) == 303
        return True

    try:
        outcome = _run_flow(server, config, lambda u: open_idle(u, True), 30)
        assert outcome == ["fake-access-token"], outcome
        assert _posts(server, "/token")[-1].form()["code"] == "c0de-idle"
        outcome = _run_flow(server, config, lambda u: open_idle(u, False), 1)
        assert isinstance(outcome[0], aa.AuthenticationError) and "within 1 s" in str(outcome[0])
        assert _port_is_free(ports[-1])  # closed although 200 connections are still open
        tried(PART, 400)
    finally:
        for sock in idle:
            sock.close()


def test_two_browsers_calling_back_at_once_exchange_one_code_once(https_server, test_ca, tmp_path):
    server = https_server()
    server.route("POST", "/token", TOKEN)
    config = _config(tmp_path, test_ca, domain=_domain(server))
    answers: list[int | None] = []

    def open_url(url: str) -> bool:
        params = _auth_params(url)
        port = urlsplit(params["redirect_uri"]).port
        barrier = threading.Barrier(2)

        def call(code: str) -> None:
            barrier.wait(10)
            answers.append(status_of(raw_exchange(port, get_request(
                f"/auth/oidc?code={code}&state={quote(params['state'])}", f"127.0.0.1:{port}"))))

        for code in ("c0de-one", "c0de-two"):
            threading.Thread(target=call, args=(code,), daemon=True).start()
        return True

    assert _run_flow(server, config, open_url, 30) == ["fake-access-token"]
    tried(PART, 2)
    posts = _posts(server, "/token")
    assert len(posts) == 1 and posts[0].form()["code"] in ("c0de-one", "c0de-two")
