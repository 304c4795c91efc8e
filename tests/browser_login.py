#!/usr/bin/env python3
"""Complete a login at the test OpenID Provider in real headless Chromium (Debian's), via Playwright.

The same job as ``useragent.py``, done by a real browser: run it as a BROWSER hook, detached::

    BROWSER="<browser venv python> tests/browser_login.py %s &"

The python must have ``playwright`` (pip only; never ``playwright install``: it drives
``/usr/bin/chromium``). Chromium does not trust the test CA, so certificate errors are ignored
(``ignore_https_errors=True``); every request to a non-loopback host is aborted (the provider's
pages ``@import`` Google Fonts, and this machine has no such network anyway).

It handles the provider's login and consent pages, the device pages (auto-posting
``verification_uri_complete`` page, user-code input, confirm), and ends when the provider shows
"Sign-in Success" (device flow) or after a navigation left the provider (the redirect into the
CLI's loopback listener, and what that listener redirects to).

Environment (same names as useragent.py): ``USERAGENT_LOG`` (a file: one line per step and a final
``RESULT {json}`` or ``ERROR`` line; the first line carries ``pid=``), ``USERAGENT_ACTION=deny``,
``USERAGENT_LOGIN``, ``USERAGENT_USER_CODE``; ``BROWSER_LOGIN_TIMEOUT`` (seconds, default 60);
``CHROMIUM`` (default ``/usr/bin/chromium``). Exit status 0 when the flow reached its end.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
# Playwright adds --headless and --no-sandbox itself; without the background-networking flags
# Chromium keeps trying to reach Google's hosts, which this machine refuses.
FLAGS = [
    "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run",
    "--disable-sync", "--disable-quic", "--disable-dev-shm-usage", "--disable-default-apps",
    "--disable-features=Translate,OptimizationHints,MediaRouter", "--no-default-browser-check",
]


def _origin(url: str):
    s = urlsplit(url)
    return s.scheme, s.hostname, s.port or (443 if s.scheme == "https" else 80)


def loopback_gate(blocked: list) -> Callable[[Any], None]:
    """A Playwright route handler: loopback requests go through, others are aborted and noted."""

    def gate(route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK_HOSTS:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    return gate


def login(url: str, action: str = "allow", login_name: str = "alice", password: str = "any-password",
          user_code: str = "", timeout: float = 60.0, chromium: str = "/usr/bin/chromium", log=print) -> dict:
    """Drive Chromium from ``url`` to the end of the flow; returns a result dict (see useragent)."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    provider = _origin(url)
    result = {"steps": [], "callback_url": None, "callback_params": {}, "listener_status": None,
              "listener_error": None, "device_done": False, "denied": False, "final_url": None,
              "blocked": [], "page_error": None, "title": ""}
    navigations = []

    def step(line: str) -> None:
        result["steps"].append(line)
        log(line)

    def on_request(request) -> None:
        if request.is_navigation_request():
            navigations.append(request.url)
            if _origin(request.url) != provider and result["callback_url"] is None:
                result["callback_url"] = request.url
                q = parse_qs(urlsplit(request.url).query, keep_blank_values=True)
                result["callback_params"] = {k: v[-1] for k, v in q.items()}
            step(f"{request.method} {request.url}")

    def on_response(response) -> None:
        if response.request.url == result["callback_url"] and result["listener_status"] is None:
            result["listener_status"] = response.status

    def on_failed(request) -> None:
        if request.url == result["callback_url"]:
            result["listener_error"] = request.failure or "failed"

    gate = loopback_gate(result["blocked"])

    with tempfile.TemporaryDirectory(prefix="aa-chromium-") as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=FLAGS, ignore_https_errors=True,
        )
        try:
            ctx.route("**/*", gate)
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.on("request", on_request)
            page.on("response", on_response)
            page.on("requestfailed", on_failed)
            try:
                page.goto(url, wait_until="domcontentloaded")
            except PlaywrightError as err:
                step(f"goto: {err}")
            deadline = time.monotonic() + timeout
            handled = set()
            while time.monotonic() < deadline:
                if result["callback_url"] is not None:
                    # Left the provider: wait until that navigation (the listener's answer and
                    # whatever it redirects to) has committed and loaded, or failed.
                    try:
                        page.wait_for_url(lambda u: _origin(u) != provider, wait_until="load", timeout=15000)
                    except PlaywrightError as err:
                        step(f"after the callback: {str(err).splitlines()[0]}")
                    break
                try:
                    state = _state(page)
                except PlaywrightError:  # the page is navigating (e.g. the auto-posting device page)
                    page.wait_for_timeout(50)
                    continue
                if state == "success":
                    result["device_done"] = True
                    break
                if state.startswith("error:"):
                    result["page_error"] = state[6:]
                    break
                key = (page.url, state, len(navigations))
                if state != "wait" and key not in handled:
                    handled.add(key)
                    step(f"page {state} at {page.url}")
                    try:
                        _act(page, state, action, login_name, password, user_code, result)
                    except PlaywrightError as err:
                        step(f"action {state} failed: {err}")
                page.wait_for_timeout(50)  # bounded poll step: the condition is the page state
            else:
                raise TimeoutError(f"login did not finish within {timeout} s: {result['steps']}")
            try:
                result["final_url"] = page.url
                result["title"] = page.title()
            except PlaywrightError:
                pass
        finally:
            ctx.close()
    return result


def _state(page) -> str:
    title = page.title().strip()
    if title == "Sign-in Success":
        return "success"
    if page.locator("p.red").count():
        return "error:" + page.locator("p.red").first.inner_text().strip()
    if page.locator("input[name=login]").count():
        return "login"
    if page.locator("input[name=prompt][value=consent]").count():
        return "consent"
    if page.locator("button[form='op.deviceConfirmForm']").count():
        return "device-confirm"
    if page.locator("button[form='op.deviceInputForm']").count():
        return "device-input"
    return "wait"


def _act(page, state: str, action: str, login_name: str, password: str, user_code: str, result: dict) -> None:
    if state == "login":
        page.fill("input[name=login]", login_name)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]", no_wait_after=True)
    elif state == "consent":
        if action == "deny":
            result["denied"] = True
            page.click("a[href*='/abort']", no_wait_after=True)
        else:
            page.click("button[type=submit]", no_wait_after=True)
    elif state == "device-input":
        field = page.locator("input[name=user_code]")
        if not field.input_value():
            if not user_code:
                raise RuntimeError("the device page asks for a user code, but none was given (USERAGENT_USER_CODE)")
            field.fill(user_code)
        page.click("button[form='op.deviceInputForm']", no_wait_after=True)
    elif state == "device-confirm":
        if action == "deny":
            result["denied"] = True
            page.click("button[form='op.deviceConfirmForm'][name=abort]", no_wait_after=True)
        else:
            page.click("button[form='op.deviceConfirmForm'][autofocus]", no_wait_after=True)


def main(argv) -> int:
    if len(argv) < 2:
        print("usage: browser_login.py URL", file=sys.stderr)
        return 2
    log_path = os.environ.get("USERAGENT_LOG")

    def log(line: str) -> None:
        if log_path:
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    action = os.environ.get("USERAGENT_ACTION", "allow")
    log(f"START pid={os.getpid()} chromium {argv[1]} (action={action})")
    started = time.monotonic()
    try:
        result = login(
            argv[1], action=action, login_name=os.environ.get("USERAGENT_LOGIN", "alice"),
            user_code=os.environ.get("USERAGENT_USER_CODE", ""),
            timeout=float(os.environ.get("BROWSER_LOGIN_TIMEOUT", "60")),
            chromium=os.environ.get("CHROMIUM", "/usr/bin/chromium"), log=log,
        )
    except Exception as err:  # noqa: BLE001 - the hook's caller only sees the exit status: log why
        log(f"ERROR {type(err).__name__}: {err}")
        print(f"browser_login: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    result["seconds"] = round(time.monotonic() - started, 3)
    log("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
