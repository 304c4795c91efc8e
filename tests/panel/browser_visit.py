#!/usr/bin/env python3
"""Visit a Panel app in real headless Chromium (Debian's, via Playwright) as a person would.

    <browser venv python> tests/panel/browser_visit.py APP_URL [--deny] [--login NAME]

Opens ``APP_URL``; wherever the app sends the browser (Panel's ``/login``, the OpenID provider's
login and consent pages, back to the app) it acts as ``tests/browser_login.py`` does on the
provider's pages (same page handling, same loopback-only gate, certificate errors ignored since
Chromium does not trust the test CA). It stops when the app's page shows "Logged in as ..." (the README's
``app.py``; read from the page's DOM, inside Panel's shadow roots), or Panel's authentication
error page, or after ``--timeout`` seconds. Prints one JSON line: ``state`` (``app`` / ``error``
/ ``timeout``), ``shown`` (that text of the app's page),
``error_text``, ``final_url``, ``title``, ``urls`` (every navigation), ``app_cookies`` (names of
the cookies the app's origin holds at the end). ``--hold``: print it, then keep the page (and so
Panel's session) open until stdin closes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.browser_login import FLAGS, _act, _origin, _state, loopback_gate

APP_TEXT = "Logged in as"  # what the README's app.py shows
ERROR_TITLE = "Panel: Authentication Error"


def visit(url: str, action: str, login_name: str, timeout: float, chromium: str,
          hold: bool = False) -> dict:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    app = _origin(url)
    result: dict = {"state": "timeout", "shown": None, "error_text": None,
                    "final_url": None, "title": None, "urls": [], "app_cookies": [], "blocked": []}

    with tempfile.TemporaryDirectory(prefix="aa-panel-chromium-") as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=FLAGS, ignore_https_errors=True)
        try:
            ctx.route("**/*", loopback_gate(result["blocked"]))
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.on("request", lambda r: r.is_navigation_request() and result["urls"].append(r.url))
            page.goto(url, wait_until="domcontentloaded")
            deadline = time.monotonic() + timeout
            handled: set = set()
            while time.monotonic() < deadline:
                try:
                    if _origin(page.url) == app:
                        if page.title() == ERROR_TITLE:
                            result["state"] = "error"
                            result["error_text"] = page.locator("body").inner_text()
                            break
                        # Playwright's text locators pierce Panel's shadow roots.
                        shown = page.get_by_text(APP_TEXT)
                        text = shown.first.text_content() if shown.count() else None
                        if text:
                            result["state"] = "app"
                            result["shown"] = " ".join(text.split())
                            break
                    else:
                        state = _state(page)
                        key = (page.url, state, len(result["urls"]))
                        if state not in ("wait", "success") and not state.startswith("error:") \
                                and key not in handled:
                            handled.add(key)
                            _act(page, state, action, login_name, "any-password", "", {})
                except PlaywrightError:
                    pass  # the page is navigating; look again
                page.wait_for_timeout(50)  # bounded poll step: the condition is the page's DOM
            result["final_url"] = page.url
            try:
                result["title"] = page.title()
            except PlaywrightError:
                pass
            host = urlsplit(url).hostname
            result["app_cookies"] = sorted(c["name"] for c in ctx.cookies() if c["domain"] == host)
            if hold:  # the page (and its websocket session) stays until stdin closes
                print(json.dumps(result), flush=True)
                sys.stdin.read()
        finally:
            ctx.close()
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--deny", action="store_true", help="cancel on the provider's consent page")
    parser.add_argument("--login", default="alice")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--hold", action="store_true",
                        help="print the result, then keep the page open until stdin closes")
    args = parser.parse_args(argv)
    result = visit(args.url, "deny" if args.deny else "allow", args.login, args.timeout,
                   args.chromium, args.hold)
    if not args.hold:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
