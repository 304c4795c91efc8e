"""Interop with the reference package, anaconda-auth 0.15.3, run side by side with our module.

Every test builds a throw-away HOME, working directory and secrets dir, then runs BOTH packages as
subprocesses against the same files and environment:

* ours: ``sys.executable`` with this repository on ``PYTHONPATH``;
* the reference: the interpreter named by ``ANACONDA_AUTH_TEST_REFERENCE_PYTHON`` (the
  ``.venvs/reference`` venv that ``tests/test-all`` builds), run with ``-I`` from the temporary
  working directory, so our ``anaconda_auth.py`` (same import name!) can never shadow it.

What is pinned here (CONTRACT.md §2, §3, §8):

* token storage: a key either side stores is read by the other, and both write the same bytes;
* configuration: for each case both resolve the same site, domain, ssl_verify and API key, except
  where the contract deliberately differs; those cases state both values explicitly.

The reference's values in the case table were probed with anaconda-auth 0.15.3 (pydantic 2.14,
pydantic-settings 2.16; see tests/requirements-reference.txt), not copied from the behaviour notes.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import test_anaconda_auth as fast
from test_anaconda_auth import make_jwt, run_captured

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT_MARK = "INTEROP-RESULT:"
KEYRING_SERVICE = "Anaconda Cloud"
SUBPROCESS_TIMEOUT = 60.0


# ------------------------------------------------------------------------------------------------
# Running both sides
# ------------------------------------------------------------------------------------------------


class Sandbox(fast.Sandbox):
    """The fast suite's sandbox, plus ``env``: the environment both sides run in (a mutable dict
    the cases add to). Our repository is not on its PYTHONPATH: only our interpreter gets it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.env = self.cli_env({"NO_COLOR": "1", "TERM": "dumb"})
        del self.env["PYTHONPATH"]


def make_sandbox(root: Path) -> Sandbox:
    return Sandbox(root)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return make_sandbox(tmp_path)


# The printing tail shared by both sides: one marked JSON line (the reference prints its legacy
# warning to stdout through rich, so stdout may hold more than our line).
_EMIT = f"""
import json as _json
print({RESULT_MARK!r} + _json.dumps(out, default=str))
"""

OURS_PRELUDE = "import warnings; warnings.simplefilter('ignore')\nimport anaconda_auth as aa\n"
REFERENCE_PRELUDE = (
    "import warnings; warnings.simplefilter('ignore')\n"
    "import anaconda_auth, sys\n"
    # Never our module: the reference's package must come from its venv's site-packages.
    "assert 'site-packages' in anaconda_auth.__file__, anaconda_auth.__file__\n"
)


def _start(argv: list[str], sandbox: Sandbox, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv,
        cwd=sandbox.cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], side: str) -> dict[str, Any]:
    try:
        stdout, stderr = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"{side} side timed out\nstdout:\n{stdout}\nstderr:\n{stderr}")
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    pytest.fail(
        f"{side} side printed no result (exit {proc.returncode})\n"
        f"stdout:\n{stdout}\nstderr:\n{stderr[-4000:]}",
        pytrace=False,
    )


def start_ours(sandbox: Sandbox, code: str) -> subprocess.Popen[str]:
    env = dict(sandbox.env, PYTHONPATH=str(REPO_ROOT))
    return _start([sys.executable, "-c", OURS_PRELUDE + code + _EMIT], sandbox, env)


def start_reference(sandbox: Sandbox, reference_python: str, code: str) -> subprocess.Popen[str]:
    # -I: no PYTHONPATH, no user site, no script dir / cwd on sys.path.
    return _start(
        [reference_python, "-I", "-c", REFERENCE_PRELUDE + code + _EMIT], sandbox, sandbox.env
    )


def run_ours(sandbox: Sandbox, code: str) -> dict[str, Any]:
    return _finish(start_ours(sandbox, code), "our")


def run_reference(sandbox: Sandbox, reference_python: str, code: str) -> dict[str, Any]:
    return _finish(start_reference(sandbox, reference_python, code), "reference")


def run_cli(sandbox: Sandbox, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """A command line in the sandbox; our repository is importable only for our interpreter."""
    env = dict(sandbox.env, PYTHONPATH=str(REPO_ROOT)) if argv[0] == sys.executable else sandbox.env
    return run_captured(argv, env, sandbox.cwd)


# ------------------------------------------------------------------------------------------------
# Token storage: the same keyring file, read and written by both
# ------------------------------------------------------------------------------------------------


def interop_key(exp: float, sub: str = "interop") -> str:
    """An HS256-looking JWT with a dummy signature: the reference decodes it unverified."""
    return make_jwt({"sub": sub, "exp": int(exp)}, {"alg": "HS256", "typ": "JWT"})


A_YEAR = 365 * 24 * 3600
REPO_TOKENS = [{"token": "repo-t1", "org_name": "org1"}, {"token": "repo-t2"}]

OURS_LOGIN = """
key = {key!r}
out = {{"returned": aa.login(aa.resolve_config(), api_key=key, force=True, verify=False)}}
"""
OURS_GET_KEY = """
try:
    cfg = aa.resolve_config()
    out = {"domain": cfg.domain, "api_key": aa.get_api_key(cfg)}
except aa.AnacondaAuthError as e:
    out = {"error": type(e).__name__, "message": str(e)}
"""
OURS_LOGOUT = """
out = {"deleted": aa.logout(aa.resolve_config())}
"""
REFERENCE_LOAD = """
import keyring
from anaconda_auth.config import AnacondaAuthConfig
from anaconda_auth.exceptions import TokenNotFoundError
from anaconda_auth.token import TokenInfo
backend = keyring.get_keyring()
out = {"backend": [backend.name, backend.priority], "domain": AnacondaAuthConfig().domain}
try:
    t = TokenInfo.load()
    out.update(api_key=t.api_key, expired=t.expired, get_access_token=t.get_access_token(),
               username=t.username, repo_tokens=[r.model_dump() for r in t.repo_tokens])
except TokenNotFoundError as e:
    out["error"] = type(e).__name__
"""
REFERENCE_SAVE = """
from anaconda_auth.token import TokenInfo
TokenInfo(
    domain={domain!r}, api_key={key!r}, username={username!r}, repo_tokens={repo_tokens!r}
).save()
out = {{"saved": True}}
"""
REFERENCE_LOGOUT = """
from anaconda_auth.actions import logout
logout()
out = {"logged_out": True}
"""

SITE_CORP = """
default_site = "corp"

[sites.corp]
domain = "corp.example.com"
"""


def keyring_entries(where: Sandbox | Path) -> dict[str, dict[str, Any]]:
    """A keyring file (a sandbox's default one, or the given path), each payload decoded."""
    path = where.keyring_file if isinstance(where, Sandbox) else where
    data = json.loads(path.read_text())
    return {
        service: {user: json.loads(base64.b64decode(value)) for user, value in users.items()}
        for service, users in data.items()
    }


@pytest.mark.parametrize(
    ("config", "env", "domain", "keyring_file"),
    [
        (None, {}, "anaconda.com", "<HOME>/.anaconda/keyring"),
        (SITE_CORP, {}, "corp.example.com", "<HOME>/.anaconda/keyring"),
        (
            None,
            {"ANACONDA_AUTH_KEYRING_PATH": "<ROOT>/elsewhere/keyring"},
            "anaconda.com",
            "<ROOT>/elsewhere/keyring",
        ),
    ],
    ids=["anaconda.com", "site-corp", "keyring-path"],
)
def test_key_we_store_is_loaded_by_the_reference(
    sandbox: Sandbox,
    reference_python: str,
    config: str | None,
    env: dict[str, str],
    domain: str,
    keyring_file: str,
) -> None:
    if config:
        sandbox.write(sandbox.config_toml, config)
    sandbox.env.update({k: sandbox.expand(v) for k, v in env.items()})
    key = interop_key(time.time() + A_YEAR)

    assert run_ours(sandbox, OURS_LOGIN.format(key=key)) == {"returned": key}
    assert keyring_entries(Path(sandbox.expand(keyring_file))) == {
        KEYRING_SERVICE: {
            domain: {"domain": domain, "api_key": key, "repo_tokens": [], "version": 2}
        }
    }

    loaded = run_reference(sandbox, reference_python, REFERENCE_LOAD)
    assert loaded == {
        "backend": ["token AnacondaKeyring", 11.0],  # its file store
        "domain": domain,
        "api_key": key,
        "expired": False,
        "get_access_token": key,
        "username": None,
        "repo_tokens": [],
    }


def test_each_cli_prints_the_key_the_other_side_stored(
    tmp_path: Path, reference_python: str
) -> None:
    """``api-key`` on the command line: the reference's CLI and ours (``python -m``)."""
    ours_first, theirs_first = make_sandbox(tmp_path / "ours"), make_sandbox(tmp_path / "theirs")
    key = interop_key(time.time() + A_YEAR)

    run_ours(ours_first, OURS_LOGIN.format(key=key))
    theirs_cli = run_cli(ours_first, [reference_python, "-I", "-m", "anaconda_auth", "api-key"])
    assert (theirs_cli.returncode, theirs_cli.stdout) == (0, key + "\n"), theirs_cli.stderr

    run_reference(
        theirs_first,
        reference_python,
        REFERENCE_SAVE.format(domain="anaconda.com", key=key, username=None, repo_tokens=[]),
    )
    ours_cli = run_cli(theirs_first, [sys.executable, "-m", "anaconda_auth", "api-key"])
    assert (ours_cli.returncode, ours_cli.stdout) == (0, key + "\n"), ours_cli.stderr


def test_key_the_reference_stores_is_returned_by_get_api_key(
    sandbox: Sandbox, reference_python: str
) -> None:
    key = interop_key(time.time() + A_YEAR)
    save = REFERENCE_SAVE.format(
        domain="anaconda.com", key=key, username="u", repo_tokens=REPO_TOKENS
    )
    assert run_reference(sandbox, reference_python, save) == {"saved": True}

    assert run_ours(sandbox, OURS_GET_KEY) == {"domain": "anaconda.com", "api_key": key}


def test_both_write_identical_keyring_bytes(tmp_path: Path, reference_python: str) -> None:
    ours, theirs = make_sandbox(tmp_path / "ours"), make_sandbox(tmp_path / "theirs")
    key = interop_key(time.time() + A_YEAR)

    run_ours(ours, OURS_LOGIN.format(key=key))
    run_reference(
        theirs,
        reference_python,
        REFERENCE_SAVE.format(domain="anaconda.com", key=key, username=None, repo_tokens=[]),
    )
    expected_payload = base64.b64encode(
        json.dumps(
            {"domain": "anaconda.com", "api_key": key, "repo_tokens": [], "version": 2},
            separators=(",", ":"),
        ).encode()
    ).decode()
    expected = json.dumps({KEYRING_SERVICE: {"anaconda.com": expected_payload}})
    assert theirs.keyring_file.read_text() == expected  # what the reference really writes
    assert ours.keyring_file.read_bytes() == theirs.keyring_file.read_bytes()


def test_relogin_keeps_reference_username_and_repo_tokens_byte_for_byte(
    tmp_path: Path, reference_python: str
) -> None:
    """Our re-login keeps username and repo_tokens (CONTRACT §3); the bytes are the reference's."""
    ours, theirs = make_sandbox(tmp_path / "ours"), make_sandbox(tmp_path / "theirs")
    old, new = interop_key(time.time() + A_YEAR, "old"), interop_key(time.time() + A_YEAR, "new")

    run_reference(
        ours,
        reference_python,
        REFERENCE_SAVE.format(
            domain="anaconda.com", key=old, username="u", repo_tokens=REPO_TOKENS
        ),
    )
    run_ours(ours, OURS_LOGIN.format(key=new))
    run_reference(
        theirs,
        reference_python,
        REFERENCE_SAVE.format(
            domain="anaconda.com", key=new, username="u", repo_tokens=REPO_TOKENS
        ),
    )
    assert ours.keyring_file.read_bytes() == theirs.keyring_file.read_bytes()

    loaded = run_reference(ours, reference_python, REFERENCE_LOAD)
    assert (loaded["api_key"], loaded["username"]) == (new, "u")
    assert loaded["repo_tokens"] == [
        {"token": "repo-t1", "org_name": "org1"},
        {"token": "repo-t2", "org_name": None},
    ]


def test_legacy_domain_entry_migrates_the_same_way(tmp_path: Path, reference_python: str) -> None:
    """An ``anaconda.cloud`` entry is moved to ``anaconda.com`` by both, leaving the same file."""
    key = interop_key(time.time() + A_YEAR)
    legacy_payload = json.dumps(
        {"domain": "anaconda.cloud", "api_key": key, "username": "u", "repo_tokens": []},
        separators=(",", ":"),
    )
    legacy = {
        KEYRING_SERVICE: {"anaconda.cloud": base64.b64encode(legacy_payload.encode()).decode()}
    }
    ours, theirs = make_sandbox(tmp_path / "ours"), make_sandbox(tmp_path / "theirs")
    for box in (ours, theirs):
        box.write(box.keyring_file, json.dumps(legacy))

    assert run_ours(ours, OURS_GET_KEY) == {"domain": "anaconda.com", "api_key": key}
    assert run_reference(theirs, reference_python, REFERENCE_LOAD)["api_key"] == key
    assert keyring_entries(theirs) == {
        KEYRING_SERVICE: {
            "anaconda.com": {
                "domain": "anaconda.com",
                "api_key": key,
                "username": "u",
                "repo_tokens": [],
                "version": 2,
            }
        }
    }
    assert ours.keyring_file.read_bytes() == theirs.keyring_file.read_bytes()


def test_logout_on_either_side_is_seen_by_the_other(
    sandbox: Sandbox, reference_python: str
) -> None:
    key = interop_key(time.time() + A_YEAR)
    run_ours(sandbox, OURS_LOGIN.format(key=key))
    assert run_reference(sandbox, reference_python, REFERENCE_LOGOUT) == {"logged_out": True}
    assert run_ours(sandbox, OURS_GET_KEY)["error"] == "TokenNotFoundError"

    run_reference(
        sandbox,
        reference_python,
        REFERENCE_SAVE.format(domain="anaconda.com", key=key, username=None, repo_tokens=[]),
    )
    assert run_ours(sandbox, OURS_LOGOUT) == {"deleted": True}
    assert run_reference(sandbox, reference_python, REFERENCE_LOAD)["error"] == "TokenNotFoundError"
    # Both leave the emptied service object in place, as the reference's file keyring does.
    assert json.loads(sandbox.keyring_file.read_text()) == {KEYRING_SERVICE: {}}


# ------------------------------------------------------------------------------------------------
# Configuration: the same sources and precedence
# ------------------------------------------------------------------------------------------------

OURS_RESOLVE = """
try:
    cfg = aa.resolve_config()
    out = {"site": cfg.site, "domain": cfg.domain, "ssl_verify": cfg.ssl_verify,
           "api_key": cfg.api_key}
    try:
        out["key"] = aa.get_api_key(cfg)
    except aa.TokenNotFoundError:
        out["key"] = None
except aa.AnacondaAuthError as e:
    out = {"error": type(e).__name__, "message": str(e)}
"""
REFERENCE_RESOLVE = """
from anaconda_auth.config import AnacondaAuthConfig
from anaconda_auth.exceptions import TokenNotFoundError
from anaconda_auth.token import TokenInfo
try:
    cfg = AnacondaAuthConfig()
    out = {"site": cfg.site, "domain": cfg.domain, "ssl_verify": cfg.ssl_verify,
           "api_key": cfg.api_key}
    try:
        out["key"] = TokenInfo.load(cfg.domain).api_key
    except TokenNotFoundError:
        out["key"] = None
except Exception as e:
    out = {"error": type(e).__name__, "message": str(e)}
"""


@dataclass
class Case:
    """One configuration: files and environment, what the reference resolves, where we differ.

    ``reference`` is the reference's resolved ``site, domain, ssl_verify, api_key`` (``key`` is the
    key its token lookup returns), or ``{"error": <class name>}``. ``ours`` overrides the keys
    where CONTRACT.md deliberately differs. ``<ROOT>``/``<HOME>`` stand for the sandbox paths.
    """

    id: str
    reference: dict[str, Any]
    toml: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    dotenv: str | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    ours: dict[str, Any] = field(default_factory=dict)
    why: str = ""


def resolved(
    site: str, domain: str | None = None, ssl_verify: Any = True, api_key: str | None = None
) -> dict[str, Any]:
    return {
        "site": site,
        "domain": domain or site,
        "ssl_verify": ssl_verify,
        "api_key": api_key,
        "key": api_key,
    }


TWO_SITES = """
[sites.a]
domain = "a.example.com"

[sites.b]
domain = "b.example.com"
ssl_verify = false
"""

CASES = [
    Case("no-config", resolved("anaconda.com")),
    Case(
        "plugin-auth-domain-applies-to-implicit-anaconda.com-site",
        resolved("anaconda.com", "localhost"),
        toml="""
        [plugin.auth]
        domain = "localhost"
        """,
    ),
    Case(
        "plugin-auth-api-key-and-ssl-verify",
        resolved("anaconda.com", ssl_verify=False, api_key="toml-key"),
        toml="""
        [plugin.auth]
        api_key = "toml-key"
        ssl_verify = false
        """,
    ),
    Case("sites-first-site-is-default", resolved("a", "a.example.com"), toml=TWO_SITES),
    Case(
        "sites-default-site-by-name",
        resolved("b", "b.example.com", ssl_verify=False),
        toml='default_site = "b"\n' + TWO_SITES,
    ),
    Case(
        "sites-default-site-by-domain",
        resolved("b", "b.example.com", ssl_verify=False),
        toml='default_site = "b.example.com"\n' + TWO_SITES,
    ),
    Case(
        "env-ANACONDA_DEFAULT_SITE-beats-toml-default-site",
        resolved("a", "a.example.com"),
        toml='default_site = "b"\n' + TWO_SITES,
        env={"ANACONDA_DEFAULT_SITE": "a"},
    ),
    Case(
        "env-ANACONDA_AUTH_SITE-selects-site",
        resolved("b", "b.example.com", ssl_verify=False),
        toml=TWO_SITES,
        env={"ANACONDA_AUTH_SITE": "b"},
    ),
    Case(
        "env-ANACONDA_AUTH_DOMAIN-matching-a-site-selects-it",
        resolved("b", "b.example.com", ssl_verify=False),
        toml=TWO_SITES,
        env={"ANACONDA_AUTH_DOMAIN": "b.example.com"},
    ),
    Case(
        "env-ANACONDA_AUTH_DOMAIN-matching-no-site-gets-plugin-auth",
        resolved("c.example.com", ssl_verify="truststore"),
        toml=TWO_SITES
        + """
        [plugin.auth]
        ssl_verify = "truststore"
        """,
        env={"ANACONDA_AUTH_DOMAIN": "c.example.com"},
    ),
    Case(
        "env-ANACONDA_AUTH_DOMAIN-is-normalised",
        resolved("Foo.COM:8443"),
        env={"ANACONDA_AUTH_DOMAIN": "https://Foo.COM:8443/path"},
    ),
    Case(
        "legacy-plugin-cloud-beats-plugin-auth",
        resolved("anaconda.com", "cloud.example.com"),
        toml="""
        [plugin.auth]
        domain = "auth.example.com"

        [plugin.cloud]
        domain = "cloud.example.com"
        """,
    ),
    Case(
        "legacy-ANACONDA_CLOUD-env-beats-plugin-auth",
        resolved("anaconda.com", "cloud-env.example.com", ssl_verify=False),
        toml="""
        [plugin.auth]
        domain = "auth.example.com"
        """,
        env={"ANACONDA_CLOUD_DOMAIN": "cloud-env.example.com", "ANACONDA_CLOUD_SSL_VERIFY": "0"},
    ),
    Case(
        "ANACONDA_AUTH-env-beats-legacy-env",
        resolved("auth-env.example.com"),
        env={
            "ANACONDA_AUTH_DOMAIN": "auth-env.example.com",
            "ANACONDA_CLOUD_DOMAIN": "cloud-env.example.com",
        },
    ),
    Case(
        "site-table-beats-legacy",
        resolved("b", "b.example.com", ssl_verify=False),
        toml='default_site = "b"\n' + TWO_SITES,
        env={"ANACONDA_CLOUD_SSL_VERIFY": "1", "ANACONDA_CLOUD_DOMAIN": "cloud-env.example.com"},
    ),
    Case(
        "dotenv-ANACONDA_DEFAULT_SITE",
        resolved("b", "b.example.com", ssl_verify=False),
        toml=TWO_SITES,
        dotenv="ANACONDA_DEFAULT_SITE=b\n",
    ),
    Case(
        "dotenv-api-key",
        resolved("anaconda.com", api_key="dotenv-key"),
        dotenv="ANACONDA_AUTH_API_KEY=dotenv-key\n",
    ),
    Case(
        "secrets-dir-api-key",
        resolved("anaconda.com", api_key="secret-key"),
        secrets={"anaconda_auth_api_key": "secret-key"},
    ),
    Case(
        "secrets-beat-dotenv",
        resolved("anaconda.com", api_key="secret-key"),
        secrets={"anaconda_auth_api_key": "secret-key"},
        dotenv="ANACONDA_AUTH_API_KEY=dotenv-key\n",
    ),
    Case(
        "env-beats-secrets-and-dotenv",
        resolved("anaconda.com", api_key="env-key"),
        env={"ANACONDA_AUTH_API_KEY": "env-key"},
        secrets={"anaconda_auth_api_key": "secret-key"},
        dotenv="ANACONDA_AUTH_API_KEY=dotenv-key\n",
    ),
    Case(
        "dotenv-beats-site-table",
        resolved("b", "b.example.com", api_key="dotenv-key"),
        toml=TWO_SITES.replace("ssl_verify = false", 'api_key = "site-key"'),
        dotenv="ANACONDA_DEFAULT_SITE=b\nANACONDA_AUTH_API_KEY=dotenv-key\n",
    ),
    Case(
        "secrets-dir-ANACONDA_DEFAULT_SITE",
        resolved("b", "b.example.com", ssl_verify=False),
        toml=TWO_SITES,
        secrets={"anaconda_default_site": "b"},
    ),
    Case(
        "env-ssl-verify-0",
        resolved("anaconda.com", ssl_verify=False),
        env={"ANACONDA_AUTH_SSL_VERIFY": "0"},
    ),
    Case(
        "env-ssl-verify-1-beats-toml-false",
        resolved("anaconda.com", ssl_verify=True),
        toml="[plugin.auth]\nssl_verify = false\n",
        env={"ANACONDA_AUTH_SSL_VERIFY": "1"},
    ),
    Case(
        "toml-ssl-verify-truststore",
        resolved("anaconda.com", ssl_verify="truststore"),
        toml='[plugin.auth]\nssl_verify = "truststore"\n',
    ),
    Case(
        "toml-ssl-verify-ca-path",
        resolved("anaconda.com", ssl_verify="<ROOT>/corp-ca.pem"),
        toml='[plugin.auth]\nssl_verify = "<ROOT>/corp-ca.pem"\n',
        files={"corp-ca.pem": "-----BEGIN CERTIFICATE-----\n"},
    ),
    Case(
        "site-without-domain-inherits-plugin-auth-domain",
        resolved("nodomain", "inherited.example.com", ssl_verify=False),
        toml="""
        default_site = "nodomain"

        [sites.nodomain]
        ssl_verify = false

        [plugin.auth]
        domain = "inherited.example.com"
        """,
    ),
    Case(
        "ANACONDA_DEFAULT_SITE-anaconda.com-is-implicit-site",
        resolved("anaconda.com", "localhost:8000"),
        toml=TWO_SITES + '\n[plugin.auth]\ndomain = "localhost:8000"\n',
        env={"ANACONDA_DEFAULT_SITE": "anaconda.com"},
    ),
    Case(
        "ANACONDA_CONFIG_TOML-points-elsewhere",
        resolved("elsewhere", "elsewhere.example.com"),
        env={"ANACONDA_CONFIG_TOML": "<ROOT>/elsewhere.toml"},
        files={"elsewhere.toml": '[sites.elsewhere]\ndomain = "elsewhere.example.com"\n'},
        toml='[sites.home]\ndomain = "home.example.com"\n',
    ),
    Case(
        "api-key-in-site-table",
        resolved("b", "b.example.com", api_key="site-key"),
        toml='default_site = "b"\n'
        + TWO_SITES.replace("ssl_verify = false", 'api_key = "site-key"'),
    ),
    Case(
        "env-ANACONDA_AUTH_DOMAIN-as-url-selects-the-site",
        resolved("b.example.com"),
        toml=TWO_SITES,
        env={"ANACONDA_AUTH_DOMAIN": "https://b.example.com/"},
        ours={"site": "b", "ssl_verify": False},
        why="behaviour.md §1.4 QUIRK: the reference compares the raw string, so the URL form of a "
        "site's domain selects no site; we compare normalised domains (a careful user's reading)",
    ),
    Case(
        "env-names-are-case-insensitive",
        resolved("b", "b.example.com", ssl_verify=False, api_key="lower-key"),
        toml=TWO_SITES,
        env={"anaconda_auth_site": "b", "Anaconda_Auth_Api_Key": "lower-key"},
    ),
    Case(
        "env-empty-api-key-is-not-a-key",
        dict(resolved("anaconda.com"), api_key=""),
        env={"ANACONDA_AUTH_API_KEY": ""},
        ours={"api_key": None},
        why="an empty optional setting is None for us (CONTRACT §8 defaults), '' for the "
        "reference; both mean no key",
    ),
    Case(
        "env-ANACONDA_SITES-json",
        resolved("envsite", "env.example.com", ssl_verify=False),
        env={
            "ANACONDA_SITES": '{"envsite": {"domain": "env.example.com", "ssl_verify": false}}',
            "ANACONDA_DEFAULT_SITE": "envsite",
        },
    ),
    Case(
        "env-ANACONDA_SITES-nested-keys",
        resolved("nested", "nested.example.com"),
        toml=TWO_SITES,
        env={
            "ANACONDA_SITES__NESTED__DOMAIN": "nested.example.com",
            "ANACONDA_DEFAULT_SITE": "nested",
        },
    ),
    Case(
        "env-keyring-json-serves-the-key",
        dict(resolved("anaconda.com"), key="kr-key"),
        env={
            "ANACONDA_AUTH_KEYRING": json.dumps(
                {
                    KEYRING_SERVICE: {
                        "anaconda.com": base64.b64encode(
                            json.dumps({"domain": "anaconda.com", "api_key": "kr-key"}).encode()
                        ).decode()
                    }
                }
            )
        },
    ),
    Case(
        "ANACONDA_DEFAULT_SITE-anaconda.com-without-sites",
        resolved("anaconda.com"),
        env={"ANACONDA_DEFAULT_SITE": "anaconda.com"},
    ),
    Case(
        "explicit-anaconda.com-site-table",
        resolved("anaconda.com", ssl_verify=False),
        toml='[sites."anaconda.com"]\nssl_verify = false\n\n[sites.a]\ndomain = "a.example.com"\n',
    ),
    Case(
        "legacy-plugin-cloud-api-key-with-site-without-it",
        resolved("a", "a.example.com", api_key="cloud-key"),
        toml=TWO_SITES + '\n[plugin.cloud]\napi_key = "cloud-key"\n',
    ),
    # --- where CONTRACT.md deliberately differs -------------------------------------------------
    Case(
        "env-ssl-verify-word-false",
        resolved("anaconda.com", ssl_verify="false"),
        env={"ANACONDA_AUTH_SSL_VERIFY": "false"},
        ours={"ssl_verify": False},
        why="CONTRACT §2: env booleans accept true/false...; the reference keeps the string",
    ),
    Case(
        "env-ssl-verify-word-No",
        resolved("anaconda.com", ssl_verify="No"),
        env={"ANACONDA_AUTH_SSL_VERIFY": "No"},
        ours={"ssl_verify": False},
        why="CONTRACT §2: any case of yes/no is a boolean",
    ),
    Case(
        "toml-ssl-verify-string-false",
        resolved("anaconda.com", ssl_verify="false"),
        toml='[plugin.auth]\nssl_verify = "false"\n',
        ours={"ssl_verify": False},
        why='CONTRACT §8: the TOML string "false" for ssl_verify means false',
    ),
    # --- errors --------------------------------------------------------------------------------
    Case(
        "unknown-default-site-fails",
        {"error": "UnknownSiteName"},
        toml='default_site = "nope"\n' + TWO_SITES,
    ),
    Case(
        "unknown-ANACONDA_AUTH_SITE-fails",
        {"error": "UnknownSiteName"},
        toml=TWO_SITES,
        env={"ANACONDA_AUTH_SITE": "nope"},
    ),
    Case(
        "default-site-without-sites-fails-unless-anaconda.com",
        {"error": "UnknownSiteName"},
        env={"ANACONDA_DEFAULT_SITE": "other"},
    ),
    Case(
        "domain-matching-two-sites-fails",
        {"error": "ValueError"},
        toml=TWO_SITES.replace("b.example.com", "a.example.com"),
        env={"ANACONDA_AUTH_DOMAIN": "a.example.com"},
        ours={"error": "ConfigError"},
        why="CONTRACT §8: ConfigError (a ValueError) where the reference raises a bare ValueError",
    ),
]


def _set_up(sandbox: Sandbox, case: Case) -> None:
    if case.toml is not None:
        sandbox.write(sandbox.config_toml, case.toml)
    if case.dotenv is not None:
        sandbox.write(sandbox.cwd / ".env", case.dotenv)
    for name, text in case.secrets.items():
        sandbox.write(sandbox.secrets / name, text)
    for name, text in case.files.items():
        sandbox.write(sandbox.root / name, text)
    sandbox.env.update({k: sandbox.expand(v) for k, v in case.env.items()})


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    """Errors compare by class name only; messages are checked separately."""
    return {"error": result["error"]} if "error" in result else result


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_config_resolves_like_the_reference(
    sandbox: Sandbox, reference_python: str, case: Case
) -> None:
    _set_up(sandbox, case)
    theirs_proc = start_reference(sandbox, reference_python, REFERENCE_RESOLVE)
    ours_proc = start_ours(sandbox, OURS_RESOLVE)
    theirs, ours = _finish(theirs_proc, "reference"), _finish(ours_proc, "our")

    expect_theirs = json.loads(sandbox.expand(json.dumps(case.reference)))
    assert _comparable(theirs) == expect_theirs, "the reference no longer behaves as probed"
    expect_ours = dict(expect_theirs, **case.ours)
    assert _comparable(ours) == expect_ours, case.why or "should match the reference"


def test_unknown_site_messages_name_the_site_and_config_file(
    sandbox: Sandbox, reference_python: str
) -> None:
    _set_up(sandbox, CASES[[c.id for c in CASES].index("unknown-default-site-fails")])
    theirs = run_reference(sandbox, reference_python, REFERENCE_RESOLVE)
    ours = run_ours(sandbox, OURS_RESOLVE)
    assert theirs["message"] == (
        f"The site or domain nope has not been configured in {sandbox.config_toml}"
    )
    assert "nope" in ours["message"] and str(sandbox.config_toml) in ours["message"]
