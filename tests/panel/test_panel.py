"""The Panel OAuth provider end to end: a real ``panel serve --oauth-provider anaconda_auth``, the
real OpenID provider (tests/idp) on loopback HTTPS and real headless Chromium (see conftest.py).

Runs in the ``panel`` venv only (Python 3.12+, tests/requirements-panel.txt).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import tools
from tests.panel.conftest import CLIENT_ID, REFRESH_CLIENT_ID, ROOT, idp_grants, readme_panel_blocks

PROVIDER = ["--oauth-provider", "anaconda_auth"]


def grants_since(idp, before: int, client_id: str = CLIENT_ID) -> list[str]:
    return [g["grant_type"] for g in idp_grants(idp)[before:] if g["client_id"] == client_id]


def authorization_request(result: dict, idp) -> dict[str, str]:
    """The query of the browser's request to the provider's authorization endpoint."""
    url = next(u for u in result["urls"] if u.startswith(idp.authorization_endpoint + "?"))
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


# -- Logging a visitor in ---------------------------------------------------------------------


def test_readme_commands_log_a_visitor_in_and_the_page_shows_their_email(panel_app):
    """The README's two blocks as written: its app.py (the fixture's), and its shell lines with
    this test's client, site and loopback port filled in (the pip line is what this venv is)."""
    lines = readme_panel_blocks()["bash"].strip().splitlines()
    assert lines[0].split("#")[0].split() == ["pip", "install", "panel", "."]
    script = "\n".join(lines[1:])
    for placeholder, value in (("YOUR-CLIENT-ID", CLIENT_ID), ("YOUR-CLIENT-SECRET", f"{CLIENT_ID}-secret"),
                               ("ANACONDA_AUTH_SITE=my-site", "ANACONDA_AUTH_SITE=idp")):
        assert placeholder in script
        script = script.replace(placeholder, value)
    serve = "panel serve app.py --oauth-provider anaconda_auth"
    assert script.endswith(serve)
    script = script.replace(serve, f"exec {serve} --address 127.0.0.1 --port {panel_app.port}")
    env = panel_app.env(PANEL_OAUTH_KEY=None, PANEL_OAUTH_SECRET=None, PANEL_COOKIE_SECRET=None,
                        ANACONDA_AUTH_SITE=None)
    before = len(idp_grants(panel_app.idp))
    panel_app.start(["bash", "-c", script], env)

    result = panel_app.visit()

    assert result["state"] == "app", result
    assert result["shown"] == "Logged in as alice@example.test (alice@example.test)"
    assert "user" in result["app_cookies"]
    assert grants_since(panel_app.idp, before) == ["authorization_code"]
    query = authorization_request(result, panel_app.idp)
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == f"http://localhost:{panel_app.port}"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["state"] and query["scope"] == "openid email profile offline_access"
    assert "client_secret" not in query


def test_site_from_oauth_extra_params_wins_and_other_params_reach_the_provider(panel_app):
    # ANACONDA_AUTH_SITE names a site nobody listens on: the login works only if 'site' won.
    env = panel_app.env(ANACONDA_AUTH_SITE="elsewhere")
    panel_app.serve([*PROVIDER, "--oauth-extra-params", "{'site': 'idp', 'login_hint': 'bob'}"], env)

    result = panel_app.visit("--login", "bob")

    assert result["state"] == "app", result
    assert result["shown"] == "Logged in as bob@example.test (bob@example.test)"
    query = authorization_request(result, panel_app.idp)
    assert query["login_hint"] == "bob"
    assert "site" not in query


def test_the_predecessors_provider_name_anaconda_cloud_works(panel_app):
    panel_app.serve(["--oauth-provider", "anaconda_cloud"], panel_app.env())

    result = panel_app.visit("--login", "carol")

    assert result["state"] == "app", result
    assert result["shown"] == "Logged in as carol@example.test (carol@example.test)"


def test_a_denied_login_shows_panels_error_page_and_starts_no_session(panel_app):
    panel_app.serve(PROVIDER, panel_app.env())
    before = len(idp_grants(panel_app.idp))

    result = panel_app.visit("--deny")

    assert result["state"] == "error", result
    assert result["title"] == "Panel: Authentication Error"
    assert "access_denied" in result["error_text"]
    assert "user" not in result["app_cookies"] and "access_token" not in result["app_cookies"]
    assert grants_since(panel_app.idp, before) == []


def test_optional_login_lets_an_anonymous_visitor_in(panel_app):
    panel_app.serve(PROVIDER, panel_app.env(PANEL_OAUTH_OPTIONAL="1"))

    result = panel_app.visit()

    assert result["state"] == "app", result
    assert result["shown"] == "Logged in as guest (no email)"
    assert not any(u.startswith(panel_app.idp.issuer) for u in result["urls"])


def test_refresh_tokens_are_refreshed_through_the_providers_token_endpoint(panel_app):
    """With PANEL_OAUTH_REFRESH_TOKENS=1 Panel refreshes 60 s before expiry; this client's access
    tokens live 62 s, so the open page's session refreshes within seconds, again and again. Two
    refreshes in a row prove the rotated refresh token was kept (the provider revokes the grant
    when an old one is reused)."""
    env = panel_app.env(PANEL_OAUTH_KEY=REFRESH_CLIENT_ID, PANEL_OAUTH_SECRET=f"{REFRESH_CLIENT_ID}-secret",
                        PANEL_OAUTH_REFRESH_TOKENS="1")
    # oidc-provider issues a refresh token for offline_access only after an explicit consent.
    panel_app.serve([*PROVIDER, "--oauth-extra-params", "{'prompt': 'consent'}"], env)
    before = len(idp_grants(panel_app.idp))

    result, browser = panel_app.visit(hold=True)
    try:
        assert result["state"] == "app", result
        assert result["shown"] == "Logged in as alice@example.test (alice@example.test)"
        assert "refresh_token" in result["app_cookies"]
        grants = tools.wait_until(
            lambda: (g := grants_since(panel_app.idp, before, REFRESH_CLIENT_ID)).count("refresh_token") >= 2 and g,
            30, "two refreshes", diagnostics=lambda: panel_app.log_text(panel_app.log_paths[-1]))
    finally:
        browser.stdin.close()
        browser.wait(30)
    assert grants[:3] == ["authorization_code", "refresh_token", "refresh_token"]


# -- Bad settings: one line at start ----------------------------------------------------------


@pytest.mark.parametrize(("env", "args", "named"), [
    ({"PANEL_OAUTH_KEY": None}, [], "PANEL_OAUTH_KEY"),
    ({"PANEL_OAUTH_SECRET": None}, [], "PANEL_OAUTH_SECRET"),
    ({"ANACONDA_AUTH_SITE": "nosuch"}, [], "ANACONDA_AUTH_SITE"),
    ({}, ["--oauth-extra-params", "{'site': 'nosuch'}"], "--oauth-extra-params"),
    ({"ANACONDA_AUTH_SITE": "elsewhere"}, [], "OpenID discovery failed"),
], ids=["no-key", "no-secret", "unknown-site-variable", "unknown-site-param", "unreachable-discovery"])
def test_bad_settings_stop_the_start_with_one_line_naming_the_setting(panel_app, env, args, named):
    result = panel_app.run([*PROVIDER, *args], panel_app.env(**env))

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, output
    assert named in errors[0]
    assert "Traceback" not in output
    if "nosuch" in str(env) + str(args):
        assert "nosuch" in errors[0] and "config.toml" in errors[0]


# -- The installed wheel's entry points -------------------------------------------------------

ENTRY_POINTS = """
import importlib.metadata as md, json, sys
first = sys.argv[1]
if first == "panel":
    import panel.auth
import anaconda_auth
handler = anaconda_auth.AnacondaLoginHandler
import panel.auth
eps = [ep for ep in md.entry_points(group="panel.auth") if ep.dist.name == "anaconda-auth-module"]
print(json.dumps({
    "entry_points": sorted(f"{ep.name} = {ep.value}" for ep in eps),
    "one_class": len({id(ep.load()) for ep in eps} | {id(handler), id(panel.auth.AUTH_PROVIDERS["anaconda_auth"]),
                                                       id(panel.auth.AUTH_PROVIDERS["anaconda_cloud"])}) == 1,
    "subclass": issubclass(handler, panel.auth.OAuthLoginHandler),
    "name": f"{handler.__module__}.{handler.__qualname__}",
    "module": anaconda_auth.__file__,
}))
"""


@pytest.mark.parametrize("first", ["panel", "anaconda_auth"])
def test_the_wheels_entry_points_resolve_to_the_one_handler_class(panel_app, first):
    result = subprocess.run([sys.executable, "-c", ENTRY_POINTS, first], env=panel_app.env(),
                            capture_output=True, text=True, check=False, timeout=120, cwd=panel_app.root)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["entry_points"] == ["anaconda_auth = anaconda_auth:AnacondaLoginHandler",
                                     "anaconda_cloud = anaconda_auth:AnacondaLoginHandler"]
    assert found["one_class"] and found["subclass"]
    assert found["name"] == "anaconda_auth.AnacondaLoginHandler"
    # The module under test is this checkout's, not the wheel's copy.
    assert os.path.samefile(found["module"], ROOT / "anaconda_auth.py")
