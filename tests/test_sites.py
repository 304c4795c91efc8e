"""Tests for ``sites add / modify / remove`` and the surgical config.toml editor behind them.

The sections follow anaconda_auth.py: first the editor (pure text functions: a realistic
hand-written file where only the touched table may change, default_site, awkward TOML, layouts
refused with a clear error, quoting, the re-parse check), then the command line, run as
subprocesses with a throw-away HOME (new files byte-identical to the reference's, round trips on
the realistic file, interop with the reference package, bad input, the writer's safety,
confirmation, concurrency).

Interop runs the reference anaconda-auth 0.15.3 from the venv named by
``ANACONDA_AUTH_TEST_REFERENCE_PYTHON`` (tests/test-all sets it); it is a failure, not a skip,
when unset. The reference is also called ``anaconda_auth``, so it always runs with ``-I`` from a
directory that does not hold this repository.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import anaconda_auth as aa
from test_anaconda_auth import CLI, drop_file_permission_override, run_captured, run_on_terminal

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 60


# =================================================================================================
# Helpers
# =================================================================================================


def site_data_after(data: dict[str, Any], name: str, values: dict[str, Any]) -> dict[str, Any]:
    """The intended data after ``_toml_set_site``: None removes a key, a dict replaces."""
    data = copy.deepcopy(data)
    site = data.setdefault("sites", {}).setdefault(name, {})
    for key, value in values.items():
        if value is None:
            site.pop(key, None)
        else:
            site[key] = copy.deepcopy(value)
    return data


def set_site_checked(text: str, name: str, values: dict[str, Any]) -> str:
    new = aa._toml_set_site(text, name, values)
    aa._toml_check_edit("config.toml", new, site_data_after(tomllib.loads(text), name, values))
    return new


def remove_site_checked(text: str, name: str) -> str:
    new = aa._toml_remove_site(text, name)
    expected = tomllib.loads(text)
    expected.get("sites", {}).pop(name, None)
    if expected.get("sites") == {} and "[sites]" not in new:
        del expected["sites"]  # an implicit [sites] table goes with its last site
    aa._toml_check_edit("config.toml", new, expected)
    return new


def set_default_checked(text: str, name: str) -> str:
    new = aa._toml_set_default_site(text, name)
    aa._toml_check_edit("config.toml", new, {**tomllib.loads(text), "default_site": name})
    return new


def replaced_once(text: str, old: str, new: str) -> str:
    """``text`` with the one occurrence of ``old`` replaced: the rest must stay byte-identical."""
    assert text.count(old) == 1, f"fixture drift: {old!r} is not in the text exactly once"
    return text.replace(old, new)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The process environment without anything that configures anaconda-auth or conda."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.upper().startswith(("ANACONDA_", "CONDA", "PYTHON", "XDG_", "MAMBA"))
    }  # fmt: skip
    env.update(HOME=str(home), NO_COLOR="1", COLUMNS="200", **extra)
    return env


def run_ours(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m anaconda_auth ARGS`` from this repository, stdin not a terminal."""
    return run_captured([*CLI, *args], clean_env(home, PYTHONPATH=str(REPO), **env), home)


def config_file(home: Path) -> Path:
    return home / ".anaconda" / "config.toml"


def write_config(home: Path, text: str, mode: int = 0o600) -> Path:
    path = config_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    path.chmod(mode)
    return path


def snapshot(path: Path) -> tuple[bytes, int, int] | None:
    """Bytes, mode and mtime of a file (None if missing): 'unchanged' means all three."""
    if not path.exists():
        return None
    st = path.stat()
    return path.read_bytes(), stat.S_IMODE(st.st_mode), st.st_mtime_ns


def leftovers(directory: Path) -> list[str]:
    """Temp files the atomic writer must never leave behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def backups(directory: Path) -> list[Path]:
    return sorted(directory.glob("config.backup.*.toml"), key=lambda p: p.stat().st_mtime_ns)


# =================================================================================================
# The editor: a realistic hand-written file, where only the touched table may change
# =================================================================================================

REALISTIC = """\
# ~/.anaconda/config.toml -- kept by hand, please keep the comments.
#
# Top-level settings come first.

default_site = "work"   # the site `anaconda auth login` uses
future_list = [
  "a",
  ["nested", "array"],
]

# ---------------------------------------------------------------------------
# Plugins
# ---------------------------------------------------------------------------

[plugin.auth]
# Prefer the system keyring on this machine.
preferred_token_storage = "system"
ssl_verify = true

[plugin.auth.proxy_servers]
https = "http://proxy.corp.example:3128"

[telemetry]
enabled = false
note = \"\"\"
A multi-line string that looks like TOML:
[sites.not-a-table]
default_site = "not a key"
\\\"\"\" still inside
\"\"\"
literal = '''
[[also.not.a.table]]
'''

# Work cluster, managed by IT.
[sites.work]
domain = "anaconda.corp.example"
ssl_verify = "truststore"   # corporate CA lives in the OS store
unknown_key = "unknown keys like this one must survive"
client_cert = "/etc/pki/me.pem"
# use_device_flow = false

[sites.work.proxy_servers]
# the corporate proxy
https = "http://proxy.corp.example:3128"
http = "http://proxy.corp.example:3128"   # plain http too

# Public site.
[ sites . "anaconda.com" ]
domain = "anaconda.com"
extra_headers = { X-Client = "me", "X.Dotted" = "yes" }

[sites.'local.dev']   # a literal-string name with a dot
domain = "localhost:8443"
ssl_verify = false
matrix = [
[1, 2],
[3, 4],
]

[[plugin.other.servers]]
url = "https://a.example"

[[plugin.other.servers]]
url = "https://b.example"
"""

WORK_TABLE = """\
[sites.work]
domain = "anaconda.corp.example"
ssl_verify = "truststore"   # corporate CA lives in the OS store
unknown_key = "unknown keys like this one must survive"
client_cert = "/etc/pki/me.pem"
# use_device_flow = false

[sites.work.proxy_servers]
# the corporate proxy
https = "http://proxy.corp.example:3128"
http = "http://proxy.corp.example:3128"   # plain http too
"""

ANACONDA_COM_TABLE = (
    '# Public site.\n[ sites . "anaconda.com" ]\ndomain = "anaconda.com"\n'
    'extra_headers = { X-Client = "me", "X.Dotted" = "yes" }\n\n'
)


def test_realistic_fixture_parses() -> None:
    data = tomllib.loads(REALISTIC)
    assert set(data["sites"]) == {"work", "anaconda.com", "local.dev"}
    assert "not-a-table" not in data["sites"]


def test_modify_touches_only_the_site_table() -> None:
    values = {
        "ssl_verify": False,
        "client_cert": None,
        "use_device_flow": False,
        "proxy_servers": {"https": "http://new.example:8080"},
    }
    assert set_site_checked(REALISTIC, "work", values) == replaced_once(
        REALISTIC,
        WORK_TABLE,
        """\
[sites.work]
domain = "anaconda.corp.example"
ssl_verify = false   # corporate CA lives in the OS store
unknown_key = "unknown keys like this one must survive"
use_device_flow = false
# use_device_flow = false

[sites.work.proxy_servers]
# the corporate proxy
https = "http://new.example:8080"
""",
    )


def test_modify_rewrites_an_inline_table_in_place() -> None:
    new = set_site_checked(REALISTIC, "anaconda.com", {"extra_headers": {"X-Other": "1"}})
    assert new == replaced_once(
        REALISTIC,
        'extra_headers = { X-Client = "me", "X.Dotted" = "yes" }',
        'extra_headers = {X-Other = "1"}',
    )


def test_modify_adds_a_sub_table_after_the_site_not_at_the_end() -> None:
    new = set_site_checked(REALISTIC, "local.dev", {"proxy_servers": {"https": "p"}})
    assert new == replaced_once(
        REALISTIC,
        "[3, 4],\n]\n\n[[plugin.other.servers]]",
        '[3, 4],\n]\n\n[sites."local.dev".proxy_servers]\nhttps = "p"\n\n[[plugin.other.servers]]',
    )


def test_modify_replaces_a_sub_table_by_a_string_and_back() -> None:
    as_string = set_site_checked(REALISTIC, "work", {"proxy_servers": None, "extra_headers": "{}"})
    work = WORK_TABLE.replace('/etc/pki/me.pem"\n', '/etc/pki/me.pem"\nextra_headers = "{}"\n')
    assert as_string == replaced_once(REALISTIC, WORK_TABLE, work.split("\n[sites.work.proxy")[0])
    # A key that already holds a string keeps its place and becomes an inline table.
    back = set_site_checked(as_string, "work", {"extra_headers": {"a": "b"}})
    assert back == as_string.replace('extra_headers = "{}"', 'extra_headers = {a = "b"}')


def test_add_appends_one_table_with_one_blank_line() -> None:
    values = {"domain": "new.example", "proxy_servers": {"https": "p"}}
    assert set_site_checked(REALISTIC, "new.site", values) == REALISTIC + (
        '\n[sites."new.site"]\ndomain = "new.example"\n\n[sites."new.site".proxy_servers]\n'
        'https = "p"\n'
    )


def test_remove_takes_attached_comments_and_sub_tables() -> None:
    new = remove_site_checked(REALISTIC, "work")
    assert new == replaced_once(REALISTIC, "# Work cluster, managed by IT.\n" + WORK_TABLE + "\n", "")


def test_remove_a_quoted_header_with_spaces() -> None:
    assert remove_site_checked(REALISTIC, "anaconda.com") == replaced_once(
        REALISTIC, ANACONDA_COM_TABLE, ""
    )


@pytest.mark.parametrize(
    ("before", "name", "after"),
    [
        pytest.param(
            'x = 1\n\n# Sites below.\n\n[sites.a]\ndomain = "a"\n\n[sites.b]\ndomain = "b"\n', "a",
            'x = 1\n\n# Sites below.\n\n[sites.b]\ndomain = "b"\n',
            id="comment-separated-by-a-blank-line-stays",
        ),
        pytest.param(
            'default_site = "a"\n\n[sites.a]\ndomain = "a"\n\n[sites.b]\ndomain = "b"\n\n\n', "b",
            'default_site = "a"\n\n[sites.a]\ndomain = "a"\n',
            id="last-table-leaves-one-final-newline",
        ),
        pytest.param(
            '[sites.a]\nd = 1\n\n[sites.b]\nd = 2\n\n[sites.a.proxy_servers]\nhttps = "p"\n\n[t]\n',
            "a", "[sites.b]\nd = 2\n\n[t]\n",
            id="sub-tables-not-next-to-the-site",
        ),
        pytest.param(REALISTIC, "nope", REALISTIC, id="unknown-site-changes-nothing"),
    ],
)  # fmt: skip
def test_remove(before: str, name: str, after: str) -> None:
    assert remove_site_checked(before, name) == after


def test_every_edit_of_the_realistic_file_round_trips() -> None:
    # The *_checked helpers parse each result and compare it with the intended data.
    text = REALISTIC
    text = set_site_checked(text, "work", {"domain": "other.example", "api_key": "k"})
    text = set_site_checked(text, "local.dev", {"ssl_verify": None, "matrix": None})
    text = set_site_checked(text, "fresh", {"domain": "fresh.example"})
    text = set_default_checked(text, "fresh")
    text = remove_site_checked(text, "anaconda.com")
    text = remove_site_checked(text, "work")
    assert text.startswith(REALISTIC[: REALISTIC.index("default_site")])
    assert REALISTIC[REALISTIC.index("future_list") : REALISTIC.index("# Work cluster")] in text


def test_a_site_written_without_its_own_header_can_be_modified() -> None:
    # The reference writes a site holding only dicts as [sites.x.proxy_servers] alone.
    text = 'default_site = "x"\n\n[sites.x.proxy_servers]\nhttps = "p"\n'
    assert set_site_checked(text, "x", {"domain": "x.example"}) == (
        'default_site = "x"\n\n[sites.x]\ndomain = "x.example"\n\n'
        '[sites.x.proxy_servers]\nhttps = "p"\n'
    )
    # Removing its only sub-table keeps the site.
    assert set_site_checked(text, "x", {"proxy_servers": None}) == 'default_site = "x"\n\n[sites.x]\n'


def test_nested_dict_is_replaced_as_a_whole() -> None:
    text = '[sites.x]\nd = 1\n\n[sites.x.keyring."Anaconda Cloud"]\nold = "1"\n\n[other]\n'
    new = set_site_checked(text, "x", {"keyring": {"Anaconda Cloud": {"new": "2"}}})
    assert new == '[sites.x]\nd = 1\n\n[sites.x.keyring."Anaconda Cloud"]\nnew = "2"\n\n[other]\n'


def test_new_key_in_a_table_without_blank_lines_and_without_final_newline() -> None:
    text = '[sites.a]\ndomain = "a"\n[sites.b]\ndomain = "b"'
    assert set_site_checked(text, "a", {"x": 1}) == '[sites.a]\ndomain = "a"\nx = 1\n[sites.b]\ndomain = "b"'
    assert set_site_checked(text, "b", {"x": 1}) == '[sites.a]\ndomain = "a"\n[sites.b]\ndomain = "b"\nx = 1\n'


def test_crlf_file_stays_crlf() -> None:
    text = 'default_site = "a"\r\n\r\n[sites.a]\r\ndomain = "a"\r\n'
    text = set_site_checked(text, "a", {"ssl_verify": False})
    text = set_site_checked(text, "b", {"domain": "b"})
    text = set_default_checked(text, "b")
    assert text == (
        'default_site = "b"\r\n\r\n[sites.a]\r\ndomain = "a"\r\nssl_verify = false\r\n'
        '\r\n[sites.b]\r\ndomain = "b"\r\n'
    )


# -- default_site ---------------------------------------------------------------------------------


def test_default_site_replaced_keeps_the_comment() -> None:
    assert set_default_checked(REALISTIC, "local.dev") == replaced_once(
        REALISTIC, 'default_site = "work"   # the', 'default_site = "local.dev"   # the'
    )


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # after the existing top-level keys, then one blank line before what follows
        ('x = 1\n[sites.a]\n', 'x = 1\ndefault_site = "a"\n\n[sites.a]\n'),
        ('x = 1\n\n\n[sites.a]\n', 'x = 1\ndefault_site = "a"\n\n\n[sites.a]\n'),
        ('x = [\n  1,\n]\n# about a\n[sites.a]\n', 'x = [\n  1,\n]\ndefault_site = "a"\n\n# about a\n[sites.a]\n'),
        # no top-level keys: before the first table and the comments attached to it
        ('[sites.a]\n', 'default_site = "a"\n\n[sites.a]\n'),
        ('# file header\n\n# about a\n[sites.a]\n', '# file header\n\ndefault_site = "a"\n\n# about a\n[sites.a]\n'),
        # no tables at all
        ('', 'default_site = "a"\n'),
        ('# only a comment\n', '# only a comment\ndefault_site = "a"\n'),
        ('x = 1', 'x = 1\ndefault_site = "a"\n'),
        # a default_site inside a table is not the top-level one
        ('[plugin.auth]\ndefault_site = "no"\n', 'default_site = "a"\n\n[plugin.auth]\ndefault_site = "no"\n'),
    ],
)  # fmt: skip
def test_default_site_inserted(before: str, after: str) -> None:
    assert set_default_checked(before, "a") == after


# -- Scanner: awkward but valid TOML must not confuse the table boundaries -------------------------

AWKWARD = [
    pytest.param('s = """\n[sites.a]\nd = 1\n"""\n', id="basic-multiline-string"),
    pytest.param("s = '''\n[sites.a]\n'''\n", id="literal-multiline-string"),
    pytest.param('s = """ends with quotes"" """\n', id="quotes-before-closer"),
    pytest.param('s = """x""""\n', id="four-quotes-close"),
    pytest.param('s = """a \\""" b"""\n', id="escaped-quotes"),
    pytest.param('s = """a\\\\"""\n', id="escaped-backslash-before-closer"),
    pytest.param("a = [\n[1],\n# [sites.a]\n[2]\n]\n", id="array-with-brackets-at-line-start"),
    pytest.param('t = { a = [1, 2], "b.c" = { d = "]" } }\n', id="nested-inline-table"),
    pytest.param('s = "# not a comment [sites.a]"  # [a comment]\n', id="hash-in-string"),
    pytest.param('s = "\\u00e9\\U0001F600\\t\\"[x]"\n', id="escapes-in-a-string"),
    pytest.param("d = 1979-05-27 07:32:00Z\nn = -inf\nh = 0xDEAD_BEEF\n", id="bare-values"),
    pytest.param("\"quoted key\" = 1\n'lit' = 2\na . b = 3\n", id="quoted-and-dotted-keys"),
    pytest.param("[[x.y]]\na = 1\n[[x.y]]\na = 2\n", id="array-of-tables"),
    pytest.param("  [plugin.auth]  # indented header\n  k = 1\n", id="indented"),
]


@pytest.mark.parametrize("prefix", AWKWARD)
def test_awkward_toml_before_the_site_is_left_alone(prefix: str) -> None:
    text = prefix + '\n[sites.a]\ndomain = "a"\n'
    new = set_site_checked(text, "a", {"domain": "b", "ssl_verify": False})
    assert new == prefix + '\n[sites.a]\ndomain = "b"\nssl_verify = false\n'
    assert remove_site_checked(text, "a") == prefix
    assert set_site_checked(prefix, "a", {"domain": "a"}) == prefix + '\n[sites.a]\ndomain = "a"\n'


@pytest.mark.parametrize(
    "header", ["[sites.a]", "[ sites . a ]", "[sites.'a']", '[sites."a"]', '["sites".a]']
)
def test_header_spellings_are_recognised(header: str) -> None:
    text = f'{header}\ndomain = "a"\n'
    assert set_site_checked(text, "a", {"domain": "b"}) == f'{header}\ndomain = "b"\n'
    assert remove_site_checked(text, "a") == ""


def test_a_sites_table_with_sub_tables_is_fine() -> None:
    text = '[sites]\n# all my sites\n\n[sites.a]\ndomain = "a"\n'
    assert set_site_checked(text, "a", {"x": True}) == text + "x = true\n"
    assert remove_site_checked(text, "a") == "[sites]\n# all my sites\n"


# -- Layouts that cannot be edited in place: a clear error naming the construct and line ----------


def refused_by_the_cli(home: Path, text: str, *args: str) -> str:
    """``sites ARGS --yes`` on a config.toml holding ``text``: exit 1, one line, nothing written."""
    path = write_config(home, text)
    before = snapshot(path)
    result = run_ours(home, "sites", *args, "--yes")
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert snapshot(path) == before and leftovers(path.parent) == []
    return result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('x = 1\nsites.a.domain = "a"\n', "line 2: sites defined with a dotted key"),
        ('sites = { a = { domain = "a" } }\n', "line 1: sites defined with a dotted key or inline"),
        ('[sites]\na.domain = "a"\n', "line 2: site 'a' is defined by a key inside [sites]"),
        ('[sites]\na = { domain = "a" }\n', "line 2: site 'a' is defined by a key inside [sites]"),
        ('[[sites]]\ndomain = "a"\n', "line 1: [[sites]] arrays of tables"),
    ],
)
def test_unsupported_sites_layouts_are_refused(tmp_path: Path, text: str, message: str) -> None:
    tomllib.loads(text)  # valid TOML, just not editable surgically
    # Under [[sites]] the CLI finds no site "a" to modify: adding one reaches the editor.
    edit = ("add", "--name", "b") if text.startswith("[[") else ("modify", "--name", "a")
    stderr = refused_by_the_cli(tmp_path, text, *edit, "--domain", "b")
    assert f"{config_file(tmp_path)} {message}" in stderr and "Nothing was written" in stderr
    with pytest.raises(ValueError, match=re.escape(message)):
        aa._toml_remove_site(text, "a")  # the CLI refuses earlier: "a" is the only site


def test_dotted_keys_are_refused_only_where_the_edit_needs_them(tmp_path: Path) -> None:
    text = '[sites.a]\ndomain = "a"\nproxy_servers.https = "p"\n'
    stderr = refused_by_the_cli(tmp_path, text, "modify", "--name", "a",
                                "--proxy-servers", '{"https": "q"}')
    assert "line 3: dotted key 'proxy_servers.https'" in stderr
    # Keys the edit does not manage may be dotted: they are left alone.
    assert set_site_checked(text, "a", {"domain": "b"}) == text.replace('"a"', '"b"')
    stderr = refused_by_the_cli(tmp_path, 'default_site.x = 1\n[sites.a]\ndomain = "a"\n',
                                "modify", "--name", "a", "--default")
    assert "line 1: 'default_site' must be a plain key" in stderr


# -- Quoting: every name and value round-trips through a real TOML parser ------------------------

AWKWARD_STRINGS = ["", "plain", 'quo"te', "back\\slash", "tab\tnew\nline\r", "\x00\x1f\x7f",
                   "é ünï 😀", "\u2028 line separator", "a.b", "[x]", "'single'", "# hash"]  # fmt: skip


@pytest.mark.parametrize("value", AWKWARD_STRINGS)
def test_names_keys_and_values_round_trip(value: str) -> None:
    values = {"domain": value, "extra_headers": {value: value}, "n": 3, "b": True}
    text = set_site_checked("# comment\n", value, values)
    text = set_default_checked(text, value)
    assert remove_site_checked(text, value).startswith("# comment\n")


def test_unsupported_value_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="cannot write a list"):
        aa._toml_set_site("", "a", {"x": [1]})


# -- The re-parse check the writer runs before replacing the file ---------------------------------


def test_check_edit_accepts_the_intended_data_and_names_differences() -> None:
    aa._toml_check_edit("c.toml", 'a = 1\n[sites.x]\nd = "y"\n', {"a": 1, "sites": {"x": {"d": "y"}}})
    with pytest.raises(aa.AnacondaAuthError, match=r"differs at sites\.x\.d, sites\.x\.b\)\. Nothing"):
        aa._toml_check_edit("c.toml", '[sites.x]\nd = "y"\nb = 2\n', {"sites": {"x": {"d": "z"}}})
    with pytest.raises(aa.AnacondaAuthError, match="does not parse .*line 2"):
        aa._toml_check_edit("c.toml", "a = 1\nb = \n", {"a": 1})


def test_secrets_are_masked_for_display() -> None:
    text = (
        'api_key = "k1"\n[sites.a]\napi_key = "k2"\nextra_headers = {X = "1"}\n'
        '[sites.a.keyring."Anaconda Cloud"]\n"a.com" = "k3"\n[sites.b.extra_headers]\n'
        'Authorization = "k4"\nX-Plain = "shown"\n[sites.b.proxy_servers]\nhttps = "http://u:k5@p"\n'
    )
    masked = aa._toml_masked(text)
    assert not re.search("k[1-5]", masked)
    assert 'X-Plain = "shown"' in masked
    assert masked.count('"********"') == 6


# =================================================================================================
# Command line: a file that does not exist yet gets exactly the reference's bytes.
# Each expected value was captured from anaconda-auth 0.15.3 (anaconda-cli-base 0.9.1, tomlkit
# 0.15.2) running ``anaconda <command> --yes`` with a HOME that has no ~/.anaconda/config.toml;
# test_new_file_bytes_equal_the_live_reference checks them against the reference venv too.
# =================================================================================================

NEW_FILE_CASES = [
    pytest.param(
        ["sites", "add", "--domain", "foo.local"],
        b'default_site = "foo.local"\n\n[sites."foo.local"]\ndomain = "foo.local"\n',
        id="domain-only",
    ),
    pytest.param(
        ["sites", "add", "--domain", "foo.local", "--default"],
        b'default_site = "foo.local"\n\n[sites."foo.local"]\ndomain = "foo.local"\n',
        id="default",
    ),
    pytest.param(
        ["sites", "add", "--domain", "foo.local", "--name", "short-name"],
        b'default_site = "short-name"\n\n[sites.short-name]\ndomain = "foo.local"\n',
        id="short-name",
    ),
    pytest.param(
        ["sites", "add", "--domain", "foo.local", "--name", "my.site"],
        b'default_site = "my.site"\n\n[sites."my.site"]\ndomain = "foo.local"\n',
        id="name-with-dot",
    ),
    pytest.param(
        ["sites", "add", "--domain", "https://foo.local/", "--name", 'we ird"name'],
        b'default_site = "we ird\\"name"\n\n[sites."we ird\\"name"]\ndomain = "foo.local"\n',
        id="name-with-space-and-quote",
    ),
    pytest.param(
        # keys come out in the model's field order, not the option order
        ["sites", "add", "--domain", "foo.local", "--no-ssl-verify", "--no-use-device-flow",
         "--use-unified-repo-api-key"],
        b'default_site = "foo.local"\n\n[sites."foo.local"]\ndomain = "foo.local"\n'
        b"ssl_verify = false\nuse_unified_repo_api_key = true\nuse_device_flow = false\n",
        id="booleans",
    ),
    pytest.param(
        ["sites", "add", "--domain", "foo.local", "--use-truststore"],
        b'default_site = "foo.local"\n\n[sites."foo.local"]\ndomain = "foo.local"\n'
        b'ssl_verify = "truststore"\n',
        id="truststore",
    ),
    pytest.param(
        # values equal to the defaults are not written
        ["sites", "add", "--domain", "foo.local", "--ssl-verify", "--use-device-flow"],
        b'default_site = "foo.local"\n\n[sites."foo.local"]\ndomain = "foo.local"\n',
        id="defaults-not-written",
    ),
    pytest.param(
        ["sites", "add", "--domain", "foo.local", "--proxy-servers",
         '{"https": "http://p:3128", "http": "http://p:3128"}'],
        b'default_site = "foo.local"\n\n[sites."foo.local"]\ndomain = "foo.local"\n\n'
        b'[sites."foo.local".proxy_servers]\nhttps = "http://p:3128"\nhttp = "http://p:3128"\n',
        id="proxy-servers-sub-table",
    ),
    pytest.param(
        ["sites", "add", "--domain", "foo.local", "--extra-headers",
         '{"X-Foo": "bar", "Authorization-X": "a b"}'],
        b'default_site = "foo.local"\n\n[sites."foo.local"]\ndomain = "foo.local"\n\n'
        b'[sites."foo.local".extra_headers]\nX-Foo = "bar"\nAuthorization-X = "a b"\n',
        id="extra-headers-sub-table",
    ),
    pytest.param(
        ["sites", "add", "--domain", "foo.local", "--extra-headers",
         '{"X.Dot": "a\\tb\\u0001", "with space": "\\u00e9", "": "empty"}'],
        b'default_site = "foo.local"\n\n[sites."foo.local"]\ndomain = "foo.local"\n\n'
        b'[sites."foo.local".extra_headers]\n"X.Dot" = "a\\tb\\u0001"\n'
        b'"with space" = "\xc3\xa9"\n"" = "empty"\n',
        id="quoted-dict-keys-and-escapes",
    ),
    pytest.param(
        ["sites", "add", "--domain", "foo.local", "--api-key", "a\x1bb"],
        b'default_site = "foo.local"\n\n[sites."foo.local"]\ndomain = "foo.local"\n'
        b'api_key = "a\\u001bb"\n',
        id="control-character",
    ),
    pytest.param(
        ["sites", "add", "--domain", "foo.local", "--name", "full", "--api-key", 'k"ey\\x',
         "--use-truststore", "--extra-headers", '{"X-Foo": "bar"}', "--proxy-servers",
         '{"https": "http://p:3128"}', "--client-cert", "/c.pem", "--client-cert-key", "/k.pem",
         "--no-use-device-flow", "--use-unified-repo-api-key", "--preferred-token-storage",
         "system", "--auth-domain-override", "auth.foo.local", "--client-id", "cid",
         "--redirect-uri", "http://127.0.0.1:9/x", "--openid-config-path", "/oc",
         "--login-success-path", "/ok", "--login-error-path", "/err", "--no-hash-host-name"],
        b'default_site = "full"\n\n[sites.full]\npreferred_token_storage = "system"\n'
        b'domain = "foo.local"\nauth_domain_override = "auth.foo.local"\n'
        b'api_key = "k\\"ey\\\\x"\nssl_verify = "truststore"\nclient_id = "cid"\n'
        b'redirect_uri = "http://127.0.0.1:9/x"\nopenid_config_path = "/oc"\n'
        b'login_success_path = "/ok"\nlogin_error_path = "/err"\nuse_unified_repo_api_key = true\n'
        b'hash_hostname = false\nclient_cert = "/c.pem"\nclient_cert_key = "/k.pem"\n'
        b'use_device_flow = false\n\n[sites.full.extra_headers]\nX-Foo = "bar"\n\n'
        b'[sites.full.proxy_servers]\nhttps = "http://p:3128"\n',
        id="every-option",
    ),
    pytest.param(
        # a dict holding only dicts gets no header of its own
        ["sites", "add", "--domain", "foo.local", "--keyring",
         '{"Anaconda Cloud": {"foo.local": "abc"}}', "--oidc-request-headers",
         '{"User-Agent": "me"}'],
        b'default_site = "foo.local"\n\n[sites."foo.local"]\ndomain = "foo.local"\n\n'
        b'[sites."foo.local".keyring."Anaconda Cloud"]\n"foo.local" = "abc"\n\n'
        b'[sites."foo.local".oidc_request_headers]\nUser-Agent = "me"\n',
        id="nested-dict",
    ),
    pytest.param(
        # the domain equals the default, so the site has no scalars and no header
        ["sites", "add", "--domain", "anaconda.com", "--name", "x", "--proxy-servers",
         '{"https": "p"}'],
        b'default_site = "x"\n\n[sites.x.proxy_servers]\nhttps = "p"\n',
        id="only-a-dict",
    ),
    pytest.param(
        # an empty table is just its header
        ["sites", "add", "--domain", "anaconda.com", "--name", "x"],
        b'default_site = "x"\n\n[sites.x]\n',
        id="empty-site",
    ),
    pytest.param(
        # keeping the implicit anaconda.com site writes it down, and it stays the default
        ["sites", "add", "--domain", "foo.local", "--no-remove-anaconda-com"],
        b'default_site = "anaconda.com"\n\n[sites."anaconda.com"]\n\n[sites."foo.local"]\n'
        b'domain = "foo.local"\n',
        id="keep-anaconda-com",
    ),
    pytest.param(
        ["sites", "add", "--domain", "foo.local", "--no-remove-anaconda-com", "--default"],
        b'default_site = "foo.local"\n\n[sites."anaconda.com"]\n\n[sites."foo.local"]\n'
        b'domain = "foo.local"\n',
        id="keep-anaconda-com-default",
    ),
    pytest.param(
        # the implicit anaconda.com site can be modified: it is written down
        ["sites", "modify", "--name", "anaconda.com", "--no-ssl-verify"],
        b'default_site = "anaconda.com"\n\n[sites."anaconda.com"]\nssl_verify = false\n',
        id="modify-implicit-anaconda-com",
    ),
]


@pytest.mark.parametrize(("args", "reference_bytes"), NEW_FILE_CASES)
def test_new_file_bytes_equal_the_reference(
    tmp_path: Path, args: list[str], reference_bytes: bytes
) -> None:
    result = run_ours(tmp_path, *args, "--yes")
    assert result.returncode == 0, result.stderr
    assert config_file(tmp_path).read_bytes() == reference_bytes
    assert stat.S_IMODE(config_file(tmp_path).stat().st_mode) == 0o600
    assert not backups(config_file(tmp_path).parent)  # nothing existed to back up


def test_command_sequences_match_the_reference(tmp_path: Path) -> None:
    def step(*args: str) -> bytes:
        result = run_ours(tmp_path, *args, "--yes")
        assert result.returncode == 0, result.stderr
        return config_file(tmp_path).read_bytes()

    step("sites", "add", "--domain", "foo.local", "--name", "a", "--proxy-servers", '{"https": "x"}')
    assert step("sites", "add", "--domain", "bar.example", "--name", "b") == (
        b'default_site = "a"\n\n[sites.a]\ndomain = "foo.local"\n\n[sites.a.proxy_servers]\n'
        b'https = "x"\n\n[sites.b]\ndomain = "bar.example"\n'
    )
    step("sites", "modify", "--name", "a", "--client-cert", "/c.pem", "--no-ssl-verify")
    assert step("sites", "modify", "--name", "b", "--extra-headers", '{"k":"v"}', "--default") == (
        b'default_site = "b"\n\n[sites.a]\ndomain = "foo.local"\nssl_verify = false\n'
        b'client_cert = "/c.pem"\n\n[sites.a.proxy_servers]\nhttps = "x"\n\n[sites.b]\n'
        b'domain = "bar.example"\n\n[sites.b.extra_headers]\nk = "v"\n'
    )
    # The reference then makes the first remaining site the default.
    assert step("sites", "remove", "b") == (
        b'default_site = "a"\n\n[sites.a]\ndomain = "foo.local"\nssl_verify = false\n'
        b'client_cert = "/c.pem"\n\n[sites.a.proxy_servers]\nhttps = "x"\n'
    )


# =================================================================================================
# Command line: round trips on the realistic file; every byte not in the touched table stays
# =================================================================================================


def test_add_appends_and_removes_anaconda_com_by_default(tmp_path: Path) -> None:
    write_config(tmp_path, REALISTIC)
    result = run_ours(tmp_path, "sites", "add", "--name", "new", "--domain", "https://new.example/",
                      "--proxy-servers", '{"https": "p"}', "--yes")
    assert result.returncode == 0, result.stderr
    assert config_file(tmp_path).read_text() == replaced_once(REALISTIC, ANACONDA_COM_TABLE, "") + (
        '\n[sites.new]\ndomain = "new.example"\n\n[sites.new.proxy_servers]\nhttps = "p"\n'
    )


def test_add_with_no_remove_anaconda_com_only_appends(tmp_path: Path) -> None:
    write_config(tmp_path, REALISTIC)
    result = run_ours(tmp_path, "sites", "add", "--domain", "new.example", "--default",
                      "--no-remove-anaconda-com", "--yes")
    assert result.returncode == 0, result.stderr
    expected = replaced_once(REALISTIC, 'default_site = "work"', 'default_site = "new.example"')
    assert config_file(tmp_path).read_text() == expected + (
        '\n[sites."new.example"]\ndomain = "new.example"\n'
    )


def test_modify_changes_only_the_given_values(tmp_path: Path) -> None:
    write_config(tmp_path, REALISTIC)
    result = run_ours(tmp_path, "sites", "modify", "--domain", "anaconda.corp.example",
                      "--no-ssl-verify", "--no-use-device-flow", "--client-cert", "/new.pem",
                      "--proxy-servers", '{"https": "http://new:1"}', "--yes")
    assert result.returncode == 0, result.stderr
    assert config_file(tmp_path).read_text() == replaced_once(REALISTIC, WORK_TABLE, """\
[sites.work]
domain = "anaconda.corp.example"
ssl_verify = false   # corporate CA lives in the OS store
unknown_key = "unknown keys like this one must survive"
client_cert = "/new.pem"
use_device_flow = false
# use_device_flow = false

[sites.work.proxy_servers]
# the corporate proxy
https = "http://new:1"
""")


def test_modify_writes_a_default_value_only_over_an_existing_key(tmp_path: Path) -> None:
    write_config(tmp_path, REALISTIC)
    result = run_ours(tmp_path, "sites", "modify", "--name", "local.dev", "--ssl-verify",
                      "--use-device-flow", "--default", "--yes")
    assert result.returncode == 0, result.stderr
    expected = replaced_once(REALISTIC, 'default_site = "work"', 'default_site = "local.dev"')
    # ssl_verify = false was on file: set to true (so [plugin.auth] cannot take over);
    # use_device_flow was not: the default is not written.
    expected = replaced_once(expected, 'domain = "localhost:8443"\nssl_verify = false',
                             'domain = "localhost:8443"\nssl_verify = true')
    assert config_file(tmp_path).read_text() == expected


def test_modify_renames_the_domain_when_found_by_name(tmp_path: Path) -> None:
    write_config(tmp_path, REALISTIC)
    result = run_ours(tmp_path, "sites", "modify", "--name", "work", "--domain",
                      "https://moved.example/x", "--yes")
    assert result.returncode == 0, result.stderr
    assert config_file(tmp_path).read_text() == replaced_once(
        REALISTIC, 'domain = "anaconda.corp.example"', 'domain = "moved.example"')


def test_remove_moves_the_default_to_the_first_remaining_site(tmp_path: Path) -> None:
    write_config(tmp_path, REALISTIC)
    result = run_ours(tmp_path, "sites", "remove", "work", "--yes")
    assert result.returncode == 0, result.stderr
    expected = replaced_once(REALISTIC, "# Work cluster, managed by IT.\n" + WORK_TABLE + "\n", "")
    expected = replaced_once(expected, 'default_site = "work"', 'default_site = "anaconda.com"')
    assert config_file(tmp_path).read_text() == expected


def test_remove_by_domain_keeps_the_default(tmp_path: Path) -> None:
    write_config(tmp_path, REALISTIC)
    result = run_ours(tmp_path, "sites", "remove", "localhost:8443", "--yes")
    assert result.returncode == 0, result.stderr
    removed = "[sites.'local.dev']   # a literal-string name with a dot\n"
    removed += 'domain = "localhost:8443"\nssl_verify = false\nmatrix = [\n[1, 2],\n[3, 4],\n]\n\n'
    assert config_file(tmp_path).read_text() == replaced_once(REALISTIC, removed, "")


def test_no_change_says_so_and_writes_nothing(tmp_path: Path) -> None:
    path = write_config(tmp_path, REALISTIC.replace('default_site = "work"', "default_site = 'work'"))
    before = snapshot(path)
    for args in (["--dry-run"], ["--yes"], []):
        result = run_ours(tmp_path, "sites", "modify", "--domain", "localhost:8443",
                          "--no-ssl-verify", *args)
        assert result.returncode == 0, result.stderr
        assert f"No change to {path}" in result.stderr
        result = run_ours(tmp_path, "sites", "modify", "--name", "work", "--default", *args)
        assert result.returncode == 0, result.stderr
        assert f"No change to {path}" in result.stderr
        assert result.stdout == ""
    assert snapshot(path) == before
    assert not backups(path.parent)


# =================================================================================================
# Interop: after each of our writes the reference resolves the same sites, default and values
# =================================================================================================

COMPARED_FIELDS = (
    "domain", "auth_domain_override", "api_key", "keyring", "ssl_verify", "extra_headers",
    "client_id", "redirect_uri", "openid_config_path", "login_success_path", "login_error_path",
    "use_unified_repo_api_key", "hash_hostname", "proxy_servers", "client_cert",
    "client_cert_key", "use_device_flow", "preferred_token_storage",
)  # fmt: skip

REFERENCE_PROBE = """
import json, sys
from anaconda_auth.config import AnacondaAuthConfig, AnacondaAuthSitesConfig
names = list(AnacondaAuthSitesConfig().sites.root)
sites = {n: AnacondaAuthConfig(site=n).model_dump(mode="json") for n in names}
fields = json.loads(sys.argv[1])
print(json.dumps({"names": names, "default": AnacondaAuthConfig().site,
                  "sites": {n: {f: v[f] for f in fields} for n, v in sites.items()}}))
"""


def resolved_by_reference(reference_python: str, home: Path) -> dict[str, Any]:
    result = run_captured([reference_python, "-I", "-c", REFERENCE_PROBE,
                           json.dumps(COMPARED_FIELDS)], clean_env(home), home)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def resolved_by_us(home: Path) -> dict[str, Any]:
    where = {"environ": clean_env(home), "home": str(home), "cwd": str(home)}
    names = aa.configured_sites(**where)[0]
    sites = {}
    for name in names:
        config = aa.resolve_config(name, **where)
        values = {f: getattr(config, f) for f in COMPARED_FIELDS}
        sites[name] = json.loads(json.dumps(values, default=dict))
    return {"names": names, "default": aa.resolve_config(**where).site, "sites": sites}


def assert_reference_agrees(reference_python: str, home: Path) -> None:
    assert resolved_by_reference(reference_python, home) == resolved_by_us(home)


INTEROP_STEPS = [
    pytest.param(["sites", "add", "--name", "new", "--domain", "new.example", "--use-truststore",
                  "--extra-headers", '{"X-A": "1"}', "--api-key", "k", "--default"], id="add"),
    pytest.param(["sites", "add", "--domain", "kept.example", "--no-remove-anaconda-com",
                  "--proxy-servers", '{"https": "http://p:1"}'], id="add-keep-anaconda-com"),
    pytest.param(["sites", "modify", "--name", "work", "--no-ssl-verify", "--client-cert-key",
                  "/k.pem", "--keyring", '{"Anaconda Cloud": {"x": "y"}}'], id="modify"),
    pytest.param(["sites", "modify", "--domain", "localhost:8443", "--ssl-verify",
                  "--no-hash-host-name", "--default"], id="modify-by-domain-default"),
    pytest.param(["sites", "modify", "--name", "anaconda.com", "--extra-headers", "{}"],
                 id="modify-inline-table"),
    pytest.param(["sites", "remove", "work"], id="remove-default"),
    pytest.param(["sites", "remove", "anaconda.com"], id="remove"),
]


@pytest.mark.parametrize("args", INTEROP_STEPS)
def test_reference_resolves_what_we_wrote(
    reference_python: str, tmp_path: Path, args: list[str]
) -> None:
    write_config(tmp_path, REALISTIC)
    assert_reference_agrees(reference_python, tmp_path)  # the fixture itself
    before = config_file(tmp_path).read_text()
    result = run_ours(tmp_path, *args, "--yes")
    assert result.returncode == 0, result.stderr
    assert config_file(tmp_path).read_text() != before
    assert_reference_agrees(reference_python, tmp_path)


def test_reference_resolves_a_sequence_of_our_writes(reference_python: str, tmp_path: Path) -> None:
    steps = [
        ["sites", "add", "--domain", "one.example", "--no-use-device-flow"],
        ["sites", "add", "--domain", "two.example", "--name", "two", "--default"],
        ["sites", "modify", "--name", "one.example", "--proxy-servers", '{"http": "http://p:2"}'],
        ["sites", "remove", "two"],
    ]
    for args in steps:
        result = run_ours(tmp_path, *args, "--yes")
        assert result.returncode == 0, result.stderr
        assert_reference_agrees(reference_python, tmp_path)


@pytest.mark.parametrize(("args", "reference_bytes"), NEW_FILE_CASES[:3] + NEW_FILE_CASES[-3:])
def test_new_file_bytes_equal_the_live_reference(
    reference_python: str, tmp_path: Path, args: list[str], reference_bytes: bytes
) -> None:
    anaconda = Path(reference_python).parent / "anaconda"
    ref_home, our_home = tmp_path / "ref", tmp_path / "ours"
    ref_home.mkdir()
    our_home.mkdir()
    result = run_captured([str(anaconda), *args, "--yes"], clean_env(ref_home), ref_home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert run_ours(our_home, *args, "--yes").returncode == 0
    assert config_file(our_home).read_bytes() == config_file(ref_home).read_bytes() == reference_bytes


# =================================================================================================
# Bad input: a clear message, the reference's exit code, and the file unchanged
# =================================================================================================

# REALISTIC plus a second site on work's domain, so that domain is ambiguous.
WITH_TWIN = REALISTIC + '\n[sites.twin]\ndomain = "anaconda.corp.example"\n'

BAD_INPUT = [
    pytest.param(["add", "--domain", "x.example", "--extra-headers", "{bad"], 2,
                 "extra-headers={bad could not be parsed as JSON", id="extra-headers-json"),
    pytest.param(["add", "--domain", "x.example", "--proxy-servers", "nope"], 2,
                 "proxy-servers=nope could not be parsed as JSON", id="proxy-servers-json"),
    pytest.param(["add", "--domain", "x.example", "--keyring", "{"], 2,
                 "The keyring argument could not be parsed as JSON", id="keyring-json"),
    pytest.param(["modify", "--name", "work", "--oidc-request-headers", "["], 2,
                 "The oidc-request-headers argument could not be parsed as JSON", id="oidc-json"),
    pytest.param(["add", "--domain", "x.example", "--no-ssl-verify", "--use-truststore"], 2,
                 "Cannot set both --use-truststore and --no-ssl-verify", id="ssl-conflict"),
    pytest.param(["add", "--name", "x"], 2, "You must supply at least --domain", id="no-domain"),
    pytest.param(["modify", "--no-ssl-verify"], 2,
                 "You must supply at least one of --domain or --name to modify a site",
                 id="modify-nothing"),
    pytest.param(["modify", "--name", "nope", "--no-ssl-verify"], 1,
                 "UnknownSiteName: The site or domain nope has not been configured in",
                 id="modify-unknown"),
    pytest.param(["remove", "nope"], 1, "The site or domain nope has not been configured in",
                 id="remove-unknown"),
    pytest.param(["modify", "--domain", "anaconda.corp.example", "--no-ssl-verify"], 1,
                 "The domain anaconda.corp.example matches more than one configured site "
                 "(work, twin)", id="modify-ambiguous"),
    pytest.param(["remove", "https://anaconda.corp.example/"], 1,
                 "matches more than one configured site (work, twin)", id="remove-ambiguous"),
    pytest.param(["add", "--domain", "http://"], 1, "'http://' does not look like a domain name",
                 id="add-bad-domain"),
    pytest.param(["modify", "--name", "work", "--domain", "http://"], 1,
                 "'http://' does not look like a domain name", id="modify-bad-domain"),
    pytest.param(["add", "--name", "work", "--domain", "w.example"], 1,
                 "A site with name work already exists, use the modify subcommand to alter it",
                 id="add-existing"),
    pytest.param(["add", "--domain", "x.example", "--extra-headers", "[1]"], 1,
                 "expected a JSON object", id="headers-not-an-object"),
    pytest.param(["add", "--domain", "x.example", "--preferred-token-storage", "vault"], 1,
                 "'vault' is not a token storage", id="bad-token-storage"),
]


@pytest.mark.parametrize(("args", "code", "message"), BAD_INPUT)
@pytest.mark.parametrize("confirm", ["--yes", "--dry-run"])
def test_bad_input_is_refused_and_the_file_is_unchanged(
    tmp_path: Path, args: list[str], code: int, message: str, confirm: str
) -> None:
    path = write_config(tmp_path, WITH_TWIN, mode=0o640)
    before = snapshot(path)
    result = run_ours(tmp_path, "sites", *args, confirm)
    assert (result.returncode, result.stdout) == (code, "")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml"]


@pytest.mark.parametrize("text", ["", '[sites.a]\ndomain = "a.example"\n'])
def test_the_only_site_cannot_be_removed(tmp_path: Path, text: str) -> None:
    # With no site on file, the implicit anaconda.com site is the only one.
    name = "a" if text else "anaconda.com"
    path = write_config(tmp_path, text) if text else config_file(tmp_path)
    before = snapshot(path)
    for wanted in (name, "a.example" if text else "https://anaconda.com"):
        result = run_ours(tmp_path, "sites", "remove", wanted, "--yes")
        assert result.returncode == 1
        assert f"{wanted} is the only configured site and cannot be removed" in result.stderr
    assert snapshot(path) == before


@pytest.mark.parametrize(
    "args",
    [["add", "--domain", "x.example"], ["modify", "--name", "a", "--no-ssl-verify"],
     ["remove", "a"], ["list"]],
)  # fmt: skip
def test_a_config_that_does_not_parse_exits_2_naming_the_line(
    tmp_path: Path, args: list[str]
) -> None:
    path = write_config(tmp_path, 'default_site = "a"\n[sites.a]\ndomain =\n[sites.b]\n')
    before = snapshot(path)
    result = run_ours(tmp_path, "sites", *args, *(["--yes"] if args[0] != "list" else []))
    assert result.returncode == 2
    assert str(path) in result.stderr and "line 3" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(path) == before


def test_a_layout_that_cannot_be_edited_in_place_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'x = 1\nsites.a.domain = "a.example"\n')
    before = snapshot(path)
    result = run_ours(tmp_path, "sites", "modify", "--name", "a", "--no-ssl-verify", "--yes")
    assert result.returncode == 1
    assert f"{path} line 2: sites defined with a dotted key" in result.stderr
    assert snapshot(path) == before


# =================================================================================================
# The writer: symlinks, backups, mode, read-only files, failures at the write step
# =================================================================================================


def test_a_symlinked_config_is_written_through_to_its_target(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "anaconda.toml"
    target.write_text(REALISTIC)
    link = config_file(tmp_path)
    link.parent.mkdir()
    link.symlink_to(target)
    result = run_ours(tmp_path, "sites", "add", "--domain", "new.example", "--yes")
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and link.resolve() == target
    assert target.read_text().endswith('[sites."new.example"]\ndomain = "new.example"\n')
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    [backup] = backups(link.parent)  # beside the link, where the user looks for it
    assert backup.read_text() == REALISTIC
    assert leftovers(dotfiles) == leftovers(link.parent) == []


def test_backups_keep_the_newest_five(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[sites.a]\ndomain = "a.example"\n', mode=0o644)
    texts = []
    for i in range(7):
        texts.append(path.read_text())
        result = run_ours(tmp_path, "sites", "modify", "--name", "a", "--client-id", f"c{i}",
                          "--yes")
        assert result.returncode == 0, result.stderr
        assert "previous version: " in result.stderr
    kept = backups(path.parent)
    assert len(kept) == 5
    assert all(re.fullmatch(r"config\.backup\.\d{8}_\d{6}_\d{6}\.toml", p.name) for p in kept)
    assert [p.read_text() for p in kept] == texts[2:]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in kept)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # was 0644: it may hold an API key


def test_a_read_only_file_is_not_replaced(tmp_path: Path) -> None:
    # Checked by mode bits as well as access(2), so this holds for root too.
    path = write_config(tmp_path, REALISTIC, mode=0o444)
    before = snapshot(path)
    result = run_ours(tmp_path, "sites", "add", "--domain", "x.example", "--yes")
    assert result.returncode == 1
    assert f"{path} is read-only. Nothing was written" in result.stderr
    assert snapshot(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml", "config.toml.lock"]


def test_a_read_only_directory_is_a_clear_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, REALISTIC)
    before = snapshot(path)
    path.parent.chmod(0o500)
    try:
        result = run_captured([*drop_file_permission_override(), *CLI, "sites", "add", "--domain",
                               "x.example", "--yes"], clean_env(tmp_path, PYTHONPATH=str(REPO)),
                              tmp_path)
    finally:
        path.parent.chmod(0o700)
    assert result.returncode == 1
    assert f"Cannot write {path}: Permission denied" in result.stderr
    assert "Nothing was changed" in result.stderr
    assert snapshot(path) == before


def test_a_file_where_the_directory_should_be_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("precious\n")
    path = blocker / "config.toml"
    result = run_ours(tmp_path, "sites", "add", "--domain", "x.example", "--yes",
                      ANACONDA_CONFIG_TOML=str(path))
    assert result.returncode == 1
    assert f"Cannot write {path}" in result.stderr and "Nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert blocker.read_text() == "precious\n"


@pytest.fixture
def in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """Run ``main(args)`` in this process with a clean environment and HOME = tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith(("ANACONDA_", "CONDA")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return lambda *args: aa.main(list(args))


@pytest.mark.parametrize("fail", ["rename", "fsync"])
def test_a_failure_at_the_write_step_leaves_the_file_and_no_temp_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    in_process: Callable[..., int], fail: str,
) -> None:
    path = write_config(tmp_path, REALISTIC, mode=0o640)
    before = snapshot(path)
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:  # the rename onto config.toml fails
        if os.path.basename(dst) == "config.toml":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    def fsync(fd: int) -> None:  # every write fails, the backup's first
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if fail == "rename":
        monkeypatch.setattr(os, "replace", replace)
    else:
        monkeypatch.setattr(os, "fsync", fsync)
    assert in_process("sites", "add", "--domain", "x.example", "--yes") == 1
    err = capsys.readouterr().err
    assert f"Cannot write {path}: No space left on device. Nothing was changed." in err
    assert snapshot(path) == before
    assert leftovers(path.parent) == []
    # The backup made before a failed rename is a copy of the unchanged file.
    assert [p.read_text() for p in backups(path.parent)] == ([REALISTIC] if fail == "rename" else [])


def test_an_edit_that_would_not_parse_back_is_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    in_process: Callable[..., int],
) -> None:
    path = write_config(tmp_path, REALISTIC)
    before = snapshot(path)
    monkeypatch.setattr(aa, "_toml_set_site", lambda text, name, values: text + "[broken\n")
    assert in_process("sites", "add", "--domain", "x.example", "--yes") == 1
    assert "does not parse" in capsys.readouterr().err
    assert snapshot(path) == before
    assert not backups(path.parent)


# =================================================================================================
# Confirmation: --dry-run, not a terminal, and the prompt on a terminal
# =================================================================================================


def test_dry_run_prints_a_unified_diff_with_secrets_masked(tmp_path: Path) -> None:
    path = write_config(tmp_path, REALISTIC)
    before = snapshot(path)
    result = run_ours(tmp_path, "sites", "add", "--domain", "x.example", "--api-key", "sekrit",
                      "--no-remove-anaconda-com", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"Your API Key will be stored in {path} and may not be secure" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"--- {path}\t") and lines[1].startswith(f"+++ {path}\t")
    assert [ln for ln in lines if ln.startswith("+") and not ln.startswith("+++")] == [
        "+", '+[sites."x.example"]', '+domain = "x.example"', '+api_key = "********"']
    assert "sekrit" not in result.stdout
    assert snapshot(path) == before


def test_without_yes_and_without_a_terminal_nothing_is_written(tmp_path: Path) -> None:
    path = write_config(tmp_path, REALISTIC)
    before = snapshot(path)
    result = run_ours(tmp_path, "sites", "remove", "work")
    assert result.returncode == 1
    assert "-[sites.work]" in result.stdout
    assert "--yes" in result.stderr
    assert snapshot(path) == before


def run_on_a_terminal(home: Path, answer: bytes, *args: str) -> tuple[int, str]:
    """Run our CLI with a pseudo-terminal as stdin/stdout/stderr; answer the prompt."""
    return run_on_terminal([*CLI, *args], clean_env(home, PYTHONPATH=str(REPO)), home,
                           [("Confirm: [y/n]: ", lambda proc, master: os.write(master, answer))])


@pytest.mark.parametrize(("answer", "written"), [(b"y\n", True), (b"n\n", False)])
def test_on_a_terminal_the_diff_is_confirmed(
    tmp_path: Path, answer: bytes, written: bool
) -> None:
    path = write_config(tmp_path, REALISTIC)
    code, output = run_on_a_terminal(tmp_path, answer, "sites", "modify", "--name", "work",
                                     "--no-use-device-flow")
    assert code == 0, output
    assert "+use_device_flow = false" in output and "Confirm: [y/n]: " in output
    assert ("use_device_flow = false\n# use_device_flow" in path.read_text()) is written
    assert ("Updated" if written else "Nothing was written") in output


def test_on_a_terminal_a_new_file_is_written_after_confirmation(tmp_path: Path) -> None:
    code, output = run_on_a_terminal(tmp_path, b"y\n", "sites", "add", "--domain", "foo.local")
    assert code == 0, output
    assert '+[sites."foo.local"]' in output
    assert config_file(tmp_path).read_bytes() == NEW_FILE_CASES[0].values[1]


# =================================================================================================
# Concurrency: every writer's edit lands
# =================================================================================================


def test_ten_concurrent_adds_all_land(tmp_path: Path) -> None:
    env = clean_env(tmp_path, PYTHONPATH=str(REPO))
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "anaconda_auth", "sites", "add", "--name", f"s{i}",
             "--domain", f"s{i}.example", "--yes"],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        for i in range(10)
    ]  # fmt: skip
    for process in processes:
        err = process.communicate(timeout=TIMEOUT)[1]
        assert process.returncode == 0, err
    data = tomllib.loads(config_file(tmp_path).read_text())
    assert set(data["sites"]) == {f"s{i}" for i in range(10)}
    assert all(data["sites"][f"s{i}"] == {"domain": f"s{i}.example"} for i in range(10))
    assert data["default_site"] in data["sites"]  # the first writer's: it was the only site
    assert len(backups(config_file(tmp_path).parent)) == 5
    assert leftovers(config_file(tmp_path).parent) == []
