#!/usr/bin/env python3
"""A browserless user agent for the test OpenID Provider (tests/idp/idp.mjs): stdlib only.

It plays the user's browser in login tests: it opens a URL, follows every redirect itself (each
hop visible and logged), keeps cookies, and answers the provider's pages like a person would:

- devInteractions login page (``input[name=login]``): any login (default ``alice``) and password;
- consent page (``input[name=prompt][value=consent]``): submit it, or with ``action="deny"``
  follow the page's ``[ Cancel ]`` link, which makes the provider redirect with
  ``error=access_denied``;
- device pages: the auto-posting page behind ``verification_uri_complete``, the user-code input
  form (``op.deviceInputForm``, given ``user_code``), the confirm form (``op.deviceConfirmForm``:
  Continue, or ``[ Abort ]`` with ``action="deny"``);
- a redirect that leaves the provider is followed into the CLI's loopback listener, and on from
  there (the listener's 303 to the success page).

It never requests a non-loopback host (such a URL is recorded as ``blocked`` and ends the walk),
and it ignores proxy variables (a real browser would not use the test's HTTPS_PROXY either).

Library use::

    ua = UserAgent(cafile=ca_pem)
    result = ua.run(authorization_url)            # auth-code: result.callback_url has code/state
    result = ua.run(verification_uri_complete)    # device flow: result.device_done is True
    result = ua.run(verification_uri, user_code="ABCD-EFGH")

As a BROWSER hook (what ``webbrowser.open`` runs; keep the trailing ``&``)::

    BROWSER="python tests/useragent.py %s &"

Environment for the hook: ``ANACONDA_AUTH_TEST_CA`` (else ``SSL_CERT_FILE``) names the CA file;
``USERAGENT_ACTION=deny`` denies; ``USERAGENT_LOGIN`` sets the login; ``USERAGENT_USER_CODE``
gives a user code for a bare ``verification_uri``; ``USERAGENT_LOG`` names a file that gets one
line per step and a final ``RESULT {json}`` line. Exit status 0 when the walk reached its end.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
MAX_STEPS = 40


# ------------------------------------------------------------------------------------------
# HTML: the forms, buttons and links of a page
# ------------------------------------------------------------------------------------------


class Form:
    def __init__(self, attrs: dict[str, str]) -> None:
        self.id = attrs.get("id", "")
        self.action = attrs.get("action", "")
        self.method = (attrs.get("method") or "get").upper()
        self.fields: list[tuple[str, str]] = []  # inputs that are always submitted
        self.buttons: list[dict[str, str]] = []  # submit buttons (inside or form="id")

    def field(self, name: str) -> str | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.links: list[tuple[str, str]] = []  # (href, text)
        self.title = ""
        self._form: Form | None = None
        self._orphan_buttons: list[dict[str, str]] = []
        self._in_title = False
        self._link: list[str] | None = None
        self.errors: list[str] = []  # text of <p class="red"> (the device pages' error messages)
        self._in_error = False

    def handle_starttag(self, tag: str, attrs_list) -> None:
        attrs = {k: (v if v is not None else "") for k, v in attrs_list}
        if tag == "form":
            self._form = Form(attrs)
            self.forms.append(self._form)
        elif tag == "input" and attrs.get("name"):
            kind = attrs.get("type", "text").lower()
            target = self._form_for(attrs)
            if target is None:
                return
            if kind in ("submit", "button", "image"):
                target.buttons.append(attrs)
            elif kind in ("checkbox", "radio") and "checked" not in attrs:
                return
            else:
                target.fields.append((attrs["name"], attrs.get("value", "")))
        elif tag == "button":
            if attrs.get("type", "submit").lower() != "submit":
                return
            if attrs.get("form"):
                self._orphan_buttons.append(attrs)
            elif self._form is not None:
                self._form.buttons.append(attrs)
        elif tag == "a" and "href" in attrs:
            self._link = [attrs["href"], ""]
        elif tag == "title":
            self._in_title = True
        elif tag == "p" and "red" in attrs.get("class", "").split():
            self._in_error = True
            self.errors.append("")

    def _form_for(self, attrs: dict[str, str]) -> Form | None:
        if attrs.get("form"):
            for form in self.forms:
                if form.id == attrs["form"]:
                    return form
        return self._form

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "a" and self._link is not None:
            self.links.append((self._link[0], self._link[1].strip()))
            self._link = None
        elif tag == "title":
            self._in_title = False
        elif tag == "p":
            self._in_error = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._link is not None:
            self._link[1] += data
        if self._in_error:
            self.errors[-1] += data

    def close(self) -> None:
        super().close()
        for attrs in self._orphan_buttons:
            for form in self.forms:
                if form.id == attrs["form"]:
                    form.buttons.append(attrs)


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


# ------------------------------------------------------------------------------------------
# The user agent
# ------------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # every hop is handled (and logged) by us
        return None


class UserAgentError(RuntimeError):
    pass


class FlowResult:
    """What a walk ended with.

    ``steps`` (list of ``"METHOD url -> status"``), ``final_url``, ``final_status``,
    ``final_body``, ``title`` (of the last HTML page), ``callback_url`` (the first URL the provider
    redirected to outside itself: the CLI's redirect_uri with ``code``/``state`` or ``error``),
    ``callback_params`` (its query, one value per name), ``listener_status`` (what the loopback
    listener answered, or None if it could not be reached), ``blocked`` (a non-loopback URL that
    was not requested), ``device_done`` (the device flow's "Sign-in Success" page was reached),
    ``denied`` (we pressed abort/cancel), ``page_error`` (an error message the provider's device
    page showed, e.g. "The Sign-in request was interrupted" after an abort).
    """

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.final_url = ""
        self.final_status = 0
        self.final_body = ""
        self.title = ""
        self.callback_url: str | None = None
        self.callback_params: dict[str, str] = {}
        self.listener_status: int | None = None
        self.listener_error: str | None = None
        self.blocked: str | None = None
        self.device_done = False
        self.denied = False
        self.page_error: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "final_body"}


class UserAgent:
    """A cookie-keeping, redirect-showing stdlib browser for the test provider's pages.

    ``cafile``: CA bundle for https (default: the process's default trust, which honours
    ``SSL_CERT_FILE``). ``login``/``password``: what the login form gets. ``action``: ``"allow"``
    or ``"deny"``. ``user_code``: for a bare device ``verification_uri``. ``follow_callback``:
    also request the loopback redirect_uri (default True, like a browser). ``log``: a callable
    taking one line. ``connect_retry``: seconds to retry a refused connection to the loopback
    listener (it may still be starting when a detached hook gets there).
    """

    def __init__(self, cafile: str | None = None, login: str = "alice", password: str = "any-password",
                 action: str = "allow", user_code: str | None = None, follow_callback: bool = True,
                 log=None, timeout: float = 30.0, connect_retry: float = 5.0) -> None:
        if action not in ("allow", "deny"):
            raise ValueError(f"action must be 'allow' or 'deny', not {action!r}")
        self.login = login
        self.password = password
        self.action = action
        self.user_code = user_code
        self.follow_callback = follow_callback
        self.timeout = timeout
        self.connect_retry = connect_retry
        self._log = log or (lambda line: None)
        context = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=context),
            urllib.request.HTTPCookieProcessor(self.cookies),
            _NoRedirect(),
        )

    # -- HTTP ----------------------------------------------------------------------------------
    def _fetch(self, method: str, url: str, data: dict[str, str] | None, retry_refused: bool):
        body = urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url, data=body, method=method)
        req.add_header("User-Agent", "anaconda-auth-test-useragent/1")
        req.add_header("Accept", "text/html,application/json;q=0.9,*/*;q=0.8")
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        deadline = time.monotonic() + (self.connect_retry if retry_refused else 0)
        while True:
            try:
                resp = self._opener.open(req, timeout=self.timeout)
            except urllib.error.HTTPError as err:  # 3xx (redirects are not followed) and 4xx/5xx
                resp = err
            except urllib.error.URLError as err:
                refused = isinstance(err.reason, ConnectionRefusedError)
                if refused and time.monotonic() < deadline:
                    time.sleep(0.05)  # bounded retry while the CLI's listener comes up
                    continue
                raise
            with resp:
                return resp.status if hasattr(resp, "status") else resp.code, resp.headers, resp.read()

    # -- the walk ------------------------------------------------------------------------------
    def run(self, url: str, user_code: str | None = None) -> FlowResult:
        """Walk from ``url`` until the flow ends; see :class:`FlowResult`."""
        if user_code:
            self.user_code = user_code
        result = FlowResult()
        provider = _origin(url)
        method, data = "GET", None
        for _ in range(MAX_STEPS):
            split = urlsplit(url)
            if split.hostname not in LOOPBACK_HOSTS:
                result.blocked = url
                self._step(result, f"BLOCKED {url} (not loopback)")
                break
            leaving = _origin(url) != provider
            if leaving and result.callback_url is None:
                result.callback_url = url
                result.callback_params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
                if not self.follow_callback:
                    self._step(result, f"CALLBACK {url} (not followed)")
                    break
            try:
                status, headers, raw = self._fetch(method, url, data, retry_refused=leaving)
            except (urllib.error.URLError, OSError, socket.timeout) as err:
                if leaving:  # the listener is gone or never came: record, like a browser error page
                    result.listener_error = f"{type(err).__name__}: {err}"
                    self._step(result, f"{method} {url} -> {result.listener_error}")
                    break
                raise UserAgentError(f"{method} {url} failed: {err}") from err
            self._step(result, f"{method} {url} -> {status}")
            if leaving and result.listener_status is None:
                result.listener_status = status
            result.final_url, result.final_status = url, status
            text = raw.decode("utf-8", "replace")
            result.final_body = text
            if 300 <= status < 400 and headers.get("Location"):
                url, method, data = urljoin(url, headers["Location"]), "GET", None
                continue
            if leaving or "html" not in (headers.get("Content-Type") or ""):
                break
            page = parse_page(text)
            result.title = page.title.strip()
            step = self._react(url, page, result)
            if step is None:
                break
            method, url, data = step
        else:
            raise UserAgentError(f"no end after {MAX_STEPS} steps: {result.steps}")
        return result

    def _step(self, result: FlowResult, line: str) -> None:
        result.steps.append(line)
        self._log(line)

    def _react(self, url: str, page: PageParser, result: FlowResult):
        """What the user does on this page: (method, url, form data), or None when done."""
        if page.title.strip() == "Sign-in Success":
            result.device_done = True
            return None
        if page.errors:
            result.page_error = " ".join(e.strip() for e in page.errors)
            return None
        for form in page.forms:
            names = {name for name, _ in form.fields}
            if form.field("prompt") == "login" or "login" in names:
                data = dict(form.fields)
                data.update(login=self.login, password=self.password)
                return self._submit(url, form, data)
            if form.field("prompt") == "consent":
                if self.action == "deny":
                    return self._cancel(url, page, result)
                return self._submit(url, form, dict(form.fields))
            if form.id == "op.deviceInputForm":
                if not self.user_code:
                    raise UserAgentError("the device page asks for a user code, but none was given "
                                         "(pass user_code= or USERAGENT_USER_CODE)")
                data = dict(form.fields)
                data["user_code"] = self.user_code
                return self._submit(url, form, data)
            if form.id == "op.deviceConfirmForm":
                data = dict(form.fields)
                if self.action == "deny":
                    result.denied = True
                    data.pop("confirm", None)
                    data["abort"] = "yes"
                return self._submit(url, form, data)
        # The page behind verification_uri_complete posts itself with JavaScript (form_post).
        if len(page.forms) == 1 and page.forms[0].method == "POST" and all(
            not b.get("name") for b in page.forms[0].buttons
        ) and page.forms[0].fields:
            form = page.forms[0]
            return self._submit(url, form, dict(form.fields))
        return None

    def _submit(self, url: str, form: Form, data: dict[str, str]):
        return form.method, urljoin(url, form.action or url), data

    def _cancel(self, url: str, page: PageParser, result: FlowResult):
        for href, text in page.links:
            if "/abort" in href or "Cancel" in text:
                result.denied = True
                return "GET", urljoin(url, href), None
        raise UserAgentError(f"no cancel link on {url}: {page.links}")


def _origin(url: str) -> tuple[str, str, int | None]:
    split = urlsplit(url)
    port = split.port or (443 if split.scheme == "https" else 80)
    return split.scheme, (split.hostname or ""), port


# ------------------------------------------------------------------------------------------
# BROWSER hook
# ------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: useragent.py URL [USER_CODE]", file=sys.stderr)
        return 2
    url = argv[1]
    log = _log_to(os.environ.get("USERAGENT_LOG"))

    cafile = os.environ.get("ANACONDA_AUTH_TEST_CA") or os.environ.get("SSL_CERT_FILE") or None
    ua = UserAgent(
        cafile=cafile,
        login=os.environ.get("USERAGENT_LOGIN", "alice"),
        action=os.environ.get("USERAGENT_ACTION", "allow"),
        user_code=(argv[2] if len(argv) > 2 else None) or os.environ.get("USERAGENT_USER_CODE"),
        log=log,
    )
    log(f"START pid={os.getpid()} useragent {url} (ca={cafile}, action={ua.action})")
    try:
        result = ua.run(url)
    except Exception as err:  # noqa: BLE001 - the hook's caller only sees the exit status: log why
        log(f"ERROR {type(err).__name__}: {err}")
        print(f"useragent: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    log("RESULT " + json.dumps(result.as_dict()))
    return 0


def _log_to(path: str | None):
    """A logger appending one stamped line per call to ``path`` (each write a whole line)."""

    def log(line: str) -> None:
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    return log


if __name__ == "__main__":
    sys.exit(main(sys.argv))
