"""Differential, property-based tests: the module's readers against the reference parsers.

- config.toml: generated documents (valid and not) read by the module vs ``tomllib`` (``tomli``
  on 3.9/3.10). The module may refuse more, always with a ConfigError naming the file; it never
  returns another value, never accepts what tomllib rejects, never raises anything else.
- the config.toml editor, through the real CLI: ``sites add/modify/remove`` on generated valid
  files (LF, CRLF or mixed, with or without a final newline) leave a file tomllib parses, change
  exactly the intended keys, keep every byte outside the edited site's tables and the
  ``default_site`` line, or refuse with a one-line message and leave the file byte-identical.
- ``.env`` vs python-dotenv and ``.condarc`` vs PyYAML, for the keys the module reads.
- the token store codec: any bytes in the file give a StorageError naming it and are never
  overwritten; stored values are byte-identical to the reference's encoding (checked against an
  independent encoder written here).
"""

from __future__ import annotations

import io
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import dotenv
import pytest
import yaml
from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st

import anaconda_auth as aa
from tests.adversarial.helpers import KEYRING_SERVICE, budget, cli, encode_entry, tried

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

PART = "differential"

# ------------------------------------------------------------------------------------------
# Generated TOML documents
# ------------------------------------------------------------------------------------------

_KEY_WORDS = ["sites", "a", "b", "domain", "default_site", "plugin", "auth", "x-y", "1", "ssl_verify"]
_bare_key = st.sampled_from(_KEY_WORDS) | st.text("abcXYZ019_-", min_size=1, max_size=4) | st.sampled_from(
    ["", "é", "a b", "a.b"])  # the last ones are not bare keys
_escape = st.sampled_from(["\\n", "\\t", "\\\\", '\\"', "\\u00e9", "\\U0001F600", "\\x41", "\\ud800",
                           "\\u12", "\\e", "\\b", "\\f", "\\r", "\\/"])
_plain = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\"'\\\n\r"),
                 max_size=6)
_basic = st.lists(_plain | _escape, max_size=4).map(lambda parts: '"' + "".join(parts) + '"')
_literal = _plain.map(lambda s: f"'{s}'")
_quoted_key = _basic | _literal
_key = st.lists(_bare_key | _quoted_key, min_size=1, max_size=3).flatmap(
    lambda parts: st.sampled_from([".", " . ", "."]).map(lambda dot: dot.join(parts)))
_number = st.sampled_from([
    "0", "1", "-1", "+7", "00", "01", "1_000", "1__0", "_1", "0x1F", "0o17", "0b101", "0xg", "+0", "-0",
    "9223372036854775807", "99999999999999999999", "1.0", "1.", ".5", "1e5", "1E-2", "6.02e+23", "inf",
    "-inf", "nan", "+nan", "1.2.3", "٣", "true", "false", "True", "FALSE", "yes",
    "1979-05-27", "1979-05-27T07:32:00Z", "1979-05-27 07:32:00-08:00", "07:32:00", "1979-13-45",
    "1979-05-27T07:32:00.999999", "24:00:00", "2020-02-30"])
_multiline = st.sampled_from(['"""a"""', "'''b'''", '"""a\\\n  b"""', '"""\nx"""', "'''\ny'''", '""""""'])


def _value(depth: int = 2) -> st.SearchStrategy[str]:
    scalar = _basic | _literal | _number | _multiline
    if depth == 0:
        return scalar
    inner = _value(depth - 1)
    array = st.lists(inner, max_size=3).flatmap(lambda items: st.sampled_from(["", ","]).map(
        lambda trail: "[" + ", ".join(items) + trail + "]"))
    inline = st.lists(st.tuples(_key, inner), max_size=3).flatmap(
        lambda pairs: st.sampled_from(["", ","]).map(
            lambda trail: "{" + ", ".join(f"{k} = {v}" for k, v in pairs) + trail + "}"))
    return st.one_of(scalar, array, inline)


_comment = st.sampled_from(["", "", " # note", "#c", " # é ☃", " #\x01"])
_line = st.one_of(
    st.tuples(_key, _value(), _comment).map(lambda t: f"{t[0]} = {t[1]}{t[2]}"),
    st.tuples(_key, _value(), _comment).map(lambda t: f"{t[0]}={t[1]}{t[2]}"),
    st.tuples(_key, _comment).map(lambda t: f"[{t[0]}]{t[1]}"),
    st.tuples(_key, _comment).map(lambda t: f"[[{t[0]}]]{t[1]}"),
    st.sampled_from(["[sites.a]", "[sites.b]", "[sites]", "[plugin.auth]", "domain = \"a.example\"",
                     'default_site = "a"', "sites.a.domain = \"x\"", "", "   ", "# comment", "[ sites . a ]",
                     "\tkey = 1", "[sites.a.extra_headers]", "key = ", "= 1", "[a", "a = 1 b = 2"]),
    st.text(max_size=8),
)
_newline = st.sampled_from(["\n"] * 8 + ["\r\n"] * 3 + ["\r"])
toml_documents = st.lists(st.tuples(_line, _newline), max_size=10).map(
    lambda lines: "".join(line + nl for line, nl in lines))


def _normal(value: Any) -> Any:
    """Comparable form: NaN equal to NaN, types kept (1 vs 1.0 vs True differ)."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    return (type(value).__name__, value)


def _tomllib(text: str) -> tuple[bool, Any]:
    try:
        return True, tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        return False, e


TOML_EXAMPLES = [
    'a = "x"\n[sites.a]\ndomain = "d"\n',
    "a = {b = 1}\n[a.c]\n",  # extending an inline table: invalid
    "[a]\nb = 1\n[a.b]\n",  # b is not a table
    "[a.b]\n[a]\n",  # valid: an implicit table defined later
    "[a]\n[a]\n",  # duplicate header
    'a = "\\u00e9\\U0001F600"\r\n',
    "a = 1\r",  # a lone CR
    "a = 01\n",
    "a = +0\n",
    "x = {a = 1,}\n",
    "'' = 1\n",
    "[sites.a]\nb = 1\n[[sites.a.c]]\n",
    'a = "\x7f"\n',
    "a = true#c\n",
    "a = 99999999999999999999\n",
]


@settings(max_examples=budget(400))
@given(text=toml_documents)
def test_simple_toml_reader_never_disagrees_with_tomllib(text):
    """The module's own reader of plain config.toml files, against tomllib, in process."""
    _check_simple_reader(text)


@pytest.mark.parametrize("text", TOML_EXAMPLES)
def test_simple_toml_reader_on_kept_examples(text):
    _check_simple_reader(text)


def _check_simple_reader(text: str) -> None:
    tried(PART)
    ok, reference = _tomllib(text)
    ours = aa._parse_simple_toml(text)
    if ours is not None:
        assert ok, f"the simple reader accepts what tomllib rejects ({reference}): {text!r}"
        assert _normal(ours) == _normal(reference), text


@settings(max_examples=budget(250))
@given(text=toml_documents)
@example(text="[a]\n[a]\n")
@example(text="a = 1\r")
@example(text="a = {b = 1}\n[a.c]\n")
def test_config_toml_reading_matches_tomllib_or_is_a_config_error_naming_the_file(tmp_path_factory, text):
    tried(PART)
    path = tmp_path_factory.mktemp("toml") / "config.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    ok, reference = _tomllib(text)
    try:
        ours = aa._read_config_toml(str(path))
    except aa.ConfigError as e:
        assert str(path) in str(e) and "\n" not in str(e).strip(), str(e)
        if not ok:
            assert "line" in str(e), str(e)  # a syntax error says where
        return
    assert ok, f"read what tomllib rejects ({reference}): {text!r}"
    assert _normal(ours) == _normal(reference)


# ------------------------------------------------------------------------------------------
# The config.toml editor, through the CLI
# ------------------------------------------------------------------------------------------

_site_names = st.sampled_from(["a", "b", "work", "lab.example.com"])
_domains = st.sampled_from(["a.example", "b.example.com:8443", "lab.example.com", "anaconda.com"])
_site_table = st.tuples(
    st.sampled_from(["", "# about this site", "# two lines\n# above the header"]), _site_names,
    st.sampled_from(["", " # the header's comment", "  "]), _domains,
    st.lists(st.sampled_from([
        "use_device_flow = false", "ssl_verify = false", "team = \"data\"  # kept", "# a comment",
        "", "   ", 'api_key = "secret-key"', "use_device_flow = true # on", "\tssl_verify = true"]),
        max_size=3))
_other_line = st.sampled_from([
    "# Managed by hand.", "", "\t", 'default_site = "a"', 'default_site = "work"  # mine', "[plugin.auth]",
    'ssl_verify = "truststore"', "[unknown]", "keep = [1, 2,\n  3]", 'note = """multi\nline"""',
    'note2 = """\n# not a comment\n[not.a.header]\n"""', "[sites.a.proxy_servers]", "[sites.b.extra_headers]",
    'https = "http://proxy:3128"', "[[tables]]", "x = 1", "# a comment\n[plugin.auth.x]", "   # indented"])
# A file's newline: LF, CRLF, or LF with CRLF lines among them (the editor writes new lines with
# the first line's ending, and must leave every other line's as it was).
_newlines = st.sampled_from(["\n", "\n", "\r\n", "mixed"])


def _editable_document(parts: list[Any], newline: str, final_newline: bool) -> str:
    """The parts that keep the file valid TOML (a repeated table or key is left out)."""
    lines: list[str] = []
    for part in parts:
        if isinstance(part, tuple):
            lead, name, header_tail, domain, extra = part
            key = f'"{name}"' if "." in name else name
            more = [*([lead] if lead else []), f"[sites.{key}]{header_tail}", f'domain = "{domain}"', *extra]
        else:
            more = [part]
        if _tomllib("\n".join(lines + more))[0]:
            lines += more
    lines = "\n".join(lines).split("\n")
    if newline == "mixed":  # every third line ends in CRLF
        text = "".join(line + ("\r\n" if i % 3 == 2 else "\n") for i, line in enumerate(lines))
    else:
        text = "".join(line + newline for line in lines)
    return text if final_newline else text.rstrip("\r\n")


# Two parts in three are site tables, so that most edits find their site and more than one.
_editable_part = st.integers(0, 2).flatmap(lambda i: _other_line if i == 0 else _site_table)
editable_documents = st.builds(_editable_document, st.lists(_editable_part, max_size=8), _newlines, st.booleans())


def _without(document: dict[str, Any], site: str | None) -> dict[str, Any]:
    rest = {k: v for k, v in document.items() if k != "default_site"}
    if site is not None and isinstance(rest.get("sites"), dict):
        rest["sites"] = {k: v for k, v in rest["sites"].items() if k != site}
        if not rest["sites"]:
            del rest["sites"]
    return rest


# What the editor may change, found here independently of the module (tomllib tells headers and
# where a multi-line value ends). A block is a table from its header (with the comment lines
# directly above it) to the start of the next block: blank lines and loose comments after a
# table's keys belong to it. `sites add/modify/remove NAME` may change the blocks of
# [sites.NAME] and its sub-tables and the top-level `default_site` line (a new one with a blank
# line after it); at the end of the file, blank lines may collapse to one newline (a table
# appended or the last one removed). Every other byte stays.


def _toml_lines(text: str) -> list[str]:
    """Lines with their endings; not str.splitlines, which also splits at \\r, \\x0b, U+2028."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def _parses(text: str) -> bool:
    return _tomllib(text)[0]


def _header_path(line: str) -> tuple[str, ...]:
    node: Any = tomllib.loads(line)
    path: list[str] = []
    while isinstance(node, dict) and len(node) == 1:
        key = next(iter(node))
        path.append(key)
        node = node[key]
    return tuple(path)


def _blocks(text: str) -> list[tuple[tuple[str, ...], int, int, list[tuple[str, int]]]]:
    """(header path, start, end, [(entry text, start)]) of the top level, then of each table."""
    lines = _toml_lines(text)
    blocks: list[list[Any]] = [[(), 0, 0, []]]
    pos, i, attached = 0, 0, None
    while i < len(lines):
        word, n = lines[i].strip(" \t\r\n"), 1
        if not word:
            attached = None
        elif word.startswith("#"):
            attached = pos if attached is None else attached
        elif word.startswith("["):
            start = pos if attached is None else attached
            blocks[-1][2] = start
            blocks.append([_header_path(lines[i]), start, 0, []])
            attached = None
        else:  # a key = value entry, over as many lines as its value takes
            n = next((k for k in range(1, len(lines) - i + 1) if _parses("".join(lines[i : i + k]))), len(lines) - i)
            blocks[-1][3].append(("".join(lines[i : i + n]), pos))
            attached = None
        pos += sum(map(len, lines[i : i + n]))
        i += n
    blocks[-1][2] = len(text)
    return [(path, start, end, entries) for path, start, end, entries in blocks]


def _cut_edited(text: str, sites: set[str], blank_after_default: bool = False) -> tuple[str, bool]:
    """``text`` without what the edit of ``sites`` may change, and whether that reached its end."""
    blocks = _blocks(text)
    spans = [(start, end) for path, start, end, _ in blocks if path[:1] == ("sites",) and path[1:2] in
             {(site,) for site in sites}]
    for entry, start in blocks[0][3]:
        if list(tomllib.loads(entry)) == ["default_site"]:
            end = start + len(entry)
            following = _toml_lines(text[end:])[:1]
            if blank_after_default and following and not following[0].strip(" \t\r\n"):
                end += len(following[0])
            spans.append((start, end))
    at_end = any(end == len(text) for _, end in spans)
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + text[end:]
    return text, at_end


def _has_default_line(text: str) -> bool:
    return any(list(tomllib.loads(entry)) == ["default_site"] for entry, _ in _blocks(text)[0][3])


def _assert_every_other_byte_kept(old: str, new: str, sites: set[str]) -> None:
    kept, old_at_end = _cut_edited(old, sites)
    variants = [False] if _has_default_line(old) else [False, True]
    for blank_after_default in variants:
        rest, new_at_end = _cut_edited(new, sites, blank_after_default)
        if rest == kept:
            return
        if (old_at_end or new_at_end) and _end_collapsed(rest) == _end_collapsed(kept):
            return
    pytest.fail(f"bytes outside the edited tables changed:\n{kept!r}\n{rest!r}")


def _end_collapsed(text: str) -> str:
    """Without the blank lines at its end; a file of only blanks is treated as empty."""
    return re.sub(r"(?:\r?\n[ \t]*)*\Z", "", text) if text.strip(" \t\r\n") else ""


@settings(max_examples=budget(160))
@given(text=editable_documents, verb=st.sampled_from(["add", "modify", "remove"]), name=_site_names,
       domain=_domains, default=st.booleans())
@example(text='[sites.a]\ndomain = "a.example"\n', verb="remove", name="a", domain="a.example", default=False)
@example(text='default_site = "a"\n[sites.a]\ndomain = "a.example"\n[sites.b]\ndomain = "b.example.com:8443"\n',
         verb="remove", name="a", domain="a.example", default=False)
@example(text="[[tables]]\nx = 1\n", verb="add", name="a", domain="a.example", default=True)
@example(text='# top\r\n[sites.a]\r\ndomain = "a.example"\r\n# loose\r\n\r\n[sites.b]\r\ndomain = "x"',
         verb="remove", name="b", domain="a.example", default=False)
@example(text='x = 1\n[sites.a]\r\ndomain = "a.example"\r\n[plugin.auth]\nssl_verify = false',
         verb="modify", name="a", domain="a.example", default=True)
@example(text='[sites.a]\ndomain = "lab.example.com"\n[sites.b]\n', verb="remove", name="lab.example.com",
         domain="a.example", default=False)
def test_sites_editor_changes_only_its_site_and_keeps_every_other_byte(
        tmp_path_factory, text, verb, name, domain, default):
    ok, before = _tomllib(text)
    assume(ok)
    tried(PART)
    home = tmp_path_factory.mktemp("editor")
    config = home / ".anaconda" / "config.toml"
    config.parent.mkdir()
    config.write_bytes(text.encode())
    if verb == "add":
        args = ["sites", "add", "--name", name, "--domain", domain, "--no-remove-anaconda-com"]
    elif verb == "modify":
        args = ["sites", "modify", "--name", name, "--no-use-device-flow"]
    else:
        args = ["sites", "remove", name]
    result = cli(home, *args, *(["--default"] if default and verb != "remove" else []), "--yes")
    assert "Traceback" not in result.stderr, result.stderr
    new = config.read_bytes().decode()  # bytes: newline style and the final newline count
    event(f"sites {verb}: {'refused' if result.returncode else 'written'}")
    if result.returncode != 0:
        assert new == text, "a refused edit changed the file"
        assert result.stderr.strip() and len(result.stderr.strip().splitlines()) <= 2, result.stderr
        return
    after = tomllib.loads(new)  # the edited file parses
    sites = after.get("sites", {})
    if verb != "add" and name not in before.get("sites", {}):  # found by its domain
        (name,) = [site for site, table in before["sites"].items() if table.get("domain") == name]
    edited = {name}
    if verb == "add":
        assert sites[name].get("domain", "anaconda.com") == domain  # the default is not written
        assert _without(after, name) == _without(before, name) or "anaconda.com" in sites
        if "anaconda.com" in sites and "anaconda.com" not in before.get("sites", {}):
            edited.add("anaconda.com")  # the implicit site, written down as the reference does
        if default:
            assert after["default_site"] == name
    elif verb == "modify":
        assert sites[name]["use_device_flow"] is False
        changed = {k: v for k, v in sites[name].items() if k != "use_device_flow"}
        assert changed == {k: v for k, v in before.get("sites", {}).get(name, {}).items()
                           if k != "use_device_flow"}
        assert _without(after, name) == _without(before, name)
    else:
        assert name not in sites and sites
        assert _without(after, name) == _without(before, name)
        assert after.get("default_site") != name
    _assert_every_other_byte_kept(text, new, edited)


# ------------------------------------------------------------------------------------------
# .env vs python-dotenv
# ------------------------------------------------------------------------------------------

_env_value = st.one_of(
    st.text("abcXYZ019_-./:@%+,", max_size=10),
    st.text("abc XYZ019_-./:@#=", max_size=10).map(lambda s: f"'{s}'"),
    st.text("abc XYZ019_-./:@#='", max_size=10).map(lambda s: f'"{s}"'),
    st.sampled_from(["", "value # comment", "'quoted' # c", '"x"#c', "a#b", "  spaced  ", "x=y=z",
                     "https://example.com/a?b=c"]),
)
_env_line = st.one_of(
    st.tuples(st.sampled_from(["ANACONDA_AUTH_DOMAIN", "ANACONDA_AUTH_SSL_VERIFY", "ANACONDA_AUTH_API_KEY",
                               "ANACONDA_DEFAULT_SITE", "OTHER"]),
              st.sampled_from(["=", " = ", "= ", " ="]), _env_value,
              st.sampled_from(["", "export "]), st.sampled_from(["", "  "])).map(
        lambda t: f"{t[4]}{t[3]}{t[0]}{t[1]}{t[2]}"),
    st.sampled_from(["", "# comment", "   ", "#ANACONDA_AUTH_DOMAIN=x"]),
)


@settings(max_examples=budget(300))
@given(lines=st.lists(_env_line, max_size=6), newline=st.sampled_from(["\n", "\r\n"]))
@example(lines=["ANACONDA_AUTH_DOMAIN='a b' # c"], newline="\n")
@example(lines=['ANACONDA_AUTH_DOMAIN="x"#c'], newline="\n")
def test_dotenv_reading_matches_python_dotenv(tmp_path_factory, lines, newline):
    tried(PART)
    text = newline.join(lines) + newline
    path = tmp_path_factory.mktemp("dotenv") / ".env"
    path.write_bytes(text.encode())
    reference = dotenv.dotenv_values(stream=io.StringIO(text), interpolate=False)
    ours = aa._read_dotenv(str(path))
    for key, value in reference.items():
        if key.startswith("ANACONDA_") and value is not None:
            assert ours.get(key) == value, (text, key)
    assert {k for k in ours if k.startswith("ANACONDA_")} <= set(reference), text


# ------------------------------------------------------------------------------------------
# .condarc vs PyYAML
# ------------------------------------------------------------------------------------------

_yaml_word = st.text("abcXYZ019_-./:@", min_size=1, max_size=10).filter(
    lambda s: not s.startswith((":", "-", "@")) and ": " not in s and not s.endswith(":"))
_yaml_scalar = st.one_of(_yaml_word, _yaml_word.map(lambda s: f"'{s}'"), _yaml_word.map(lambda s: f'"{s}"'))
_condarc_line = st.one_of(
    st.tuples(st.sampled_from(["ssl_verify", "client_ssl_cert", "client_ssl_cert_key", "channels_x"]),
              _yaml_scalar, st.sampled_from(["", "  # note"])).map(lambda t: f"{t[0]}: {t[1]}{t[2]}"),
    st.lists(st.tuples(st.sampled_from(["http", "https", "'https'"]), _yaml_scalar), min_size=1, max_size=2,
             unique_by=lambda t: t[0].strip("'")).map(
        lambda items: "proxy_servers:\n" + "\n".join(f"  {k}: {v}" for k, v in items)),
    st.lists(st.tuples(st.sampled_from(["http", "https"]), _yaml_word), min_size=1, max_size=2,
             unique_by=lambda t: t[0]).map(
        lambda items: "proxy_servers: {" + ", ".join(f"{k}: {v}" for k, v in items) + "}"),
    st.sampled_from(["# comment", "", "channels:\n  - defaults", "auto_update_conda: false"]),
)


@settings(max_examples=budget(300))
@given(lines=st.lists(_condarc_line, max_size=5, unique_by=lambda line: line.split(":", 1)[0]))
@example(lines=["proxy_servers: {https: http://p:3128}"])
@example(lines=["ssl_verify: 'a:b'"])
def test_condarc_reading_matches_pyyaml(tmp_path_factory, lines):
    text = "\n".join(lines) + "\n"
    try:
        reference = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        assume(False)
    tried(PART)
    path = tmp_path_factory.mktemp("condarc") / ".condarc"
    path.write_text(text)
    ours = aa._read_condarc(str(path))
    for key in ("ssl_verify", "client_ssl_cert", "client_ssl_cert_key", "proxy_servers"):
        if key not in reference:
            assert key not in ours, text
            continue
        want = reference[key]
        # YAML types what the module keeps as text: strings must match exactly, booleans as
        # the module reads the word, and numbers or dates (meaningless for these keys) are text.
        if isinstance(want, dict):
            assert {k: v for k, v in ours[key].items() if isinstance(want.get(k), str)} == {
                str(k): v for k, v in want.items() if isinstance(v, str)}, text
        elif isinstance(want, bool):
            assert aa._parse_bool(ours[key], key) is want, text
        elif isinstance(want, str):
            assert ours[key] == want, text


# ------------------------------------------------------------------------------------------
# The token store codec
# ------------------------------------------------------------------------------------------


def _file_config(home: Path) -> aa.Config:
    return aa.resolve_config(environ={"HOME": str(home)}, home=str(home), cwd=str(home))


_store_bytes = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"{", b"[]", b"null", b'{"Anaconda Cloud": []}', b'{"Anaconda Cloud": {"anaconda.com": 1}}',
                     b'{"Anaconda Cloud": {"anaconda.com": "bm90IGpzb24="}}', b"\xff\xfe{}",
                     b'{"Anaconda Cloud": {"anaconda.com": "!!"}}', b'{"a": "b"}', b'"str"', b"1e999999",
                     b'{"Anaconda Cloud": {"anaconda.com": "e30="}}']),
    st.builds(lambda value: json.dumps({KEYRING_SERVICE: {"anaconda.com": value}}).encode(),
              st.text(max_size=40)),
    st.builds(lambda good, cut: good[:cut], st.just(json.dumps(
        {KEYRING_SERVICE: {"anaconda.com": encode_entry("anaconda.com", "k" * 40)}}).encode()),
        st.integers(1, 90)),
)


@settings(max_examples=budget(120))
@given(data=_store_bytes)
@example(data=b"\0" * 10)
@example(data=b"{}" + b" " * 1_000_000)
def test_any_bytes_in_the_token_store_are_read_or_refused_by_name_and_never_overwritten(tmp_path_factory, data):
    tried(PART)
    home = tmp_path_factory.mktemp("store")
    store = home / ".anaconda" / "keyring"
    store.parent.mkdir()
    store.write_bytes(data)
    config = _file_config(home)
    try:
        key = aa.get_api_key(config)
    except aa.TokenNotFoundError:
        return  # an empty or absent entry
    except aa.StorageError as e:
        assert str(store) in str(e), str(e)
        if "entry anaconda.com" in str(e):  # the file is sound, one entry is not: replaced on login
            aa.login(config, api_key="new-key-after-damage", verify=False)
            assert aa.get_api_key(config) == "new-key-after-damage"
            before, after = json.loads(data), json.loads(store.read_bytes())
            assert before[KEYRING_SERVICE].keys() <= after[KEYRING_SERVICE].keys()
            assert {k: v for k, v in before.items() if k != KEYRING_SERVICE} == {
                k: v for k, v in after.items() if k != KEYRING_SERVICE}
        else:  # a damaged file is never overwritten
            with pytest.raises(aa.StorageError):
                aa.login(config, api_key="new-key-after-damage", verify=False)
            assert store.read_bytes() == data
        return
    assert isinstance(key, str)


_texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
_entries = st.tuples(
    st.sampled_from(["anaconda.com", "repo.example.com:8443", "xn--bcher-kva.example", "ünï.example"]),
    _texts.filter(bool), st.none() | _texts,
    st.lists(st.fixed_dictionaries({"token": _texts, "org_name": _texts}), max_size=2))


@settings(max_examples=budget(300))
@given(entry=_entries)
def test_stored_values_are_byte_identical_to_the_reference_encoding(entry):
    tried(PART)
    domain, key, username, repo_tokens = entry
    ours = aa._encode_token(domain, key, username, repo_tokens)
    assert ours == encode_entry(domain, key, username, repo_tokens)
    decoded = aa._decode_token(ours, "test")
    assert (decoded["domain"], decoded["api_key"], decoded.get("username"), decoded["repo_tokens"]) == (
        domain, key, username, repo_tokens)
