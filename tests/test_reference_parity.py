"""Parity with the reference's own test suite: every behaviour it pins, and our verdict.

The reference repository (anaconda/anaconda-auth) pins behaviours in ``tests/test_auth.py``,
``tests/test_cli.py``, ``tests/test_config.py``, ``tests/test_token.py`` and
``tests/test_client.py``; the behaviour notes (``shared/reference/anaconda-auth-behaviour.md``)
add what its newer ``login(site=...)`` tests pin. The table lists each behaviour, our verdict,
and the test of ours that pins it: **same** (a test of ours, written from the behaviour),
**different** (deliberately: the section of ``shared/CONTRACT.md`` or the issue that says so)
or **n/a** (a conda plugin, anaconda-client, the async client, or the reference's internal
classes, none of which this module has). Tests named without a file are in this module;
``fast::`` is ``test_anaconda_auth.py``, ``http::`` ``tests/test_http.py``, ``login::``
``tests/test_login.py``, ``interop::`` ``tests/test_reference_interop.py``. The differential
tests here run the reference package (``.venvs/reference``, anaconda-auth 0.15.3) beside ours.

| reference test | behaviour pinned | verdict | ours |
|---|---|---|---|
| auth: test_login_to_api_key | login stores the exchanged key for the default domain (username None, repo_tokens []) | same (bytes of 0.15.3: version 2) | fast::test_login_with_api_key_stores_it_and_returns_it, interop::test_both_write_identical_keyring_bytes |
| auth: test_login_ssl_verify, test_login_no_ssl_verify | login(ssl_verify=True/False) logs in with that setting | same | test_login_ssl_verify_argument_beats_the_setting, login::test_login_takes_the_references_ssl_verify_and_use_device_flow |
| behaviour notes §3.1 (newer test_auth) | kwarg None + env 0 → False; True + env 0 → True; False + env 1 → False | same | test_login_ssl_verify_argument_beats_the_setting |
| behaviour notes §3.1 | login(site=name), login(site=domain), login("name") | same; a domain works too (CONTRACT §8; the reference wants a site key) | test_login_by_site_name_or_domain_talks_to_that_site, fast::test_login_with_a_key_stores_it_under_the_site_however_it_is_named |
| behaviour notes §3.1 | login(config=...) is deprecated; site= and config= together is ValueError | ValueError: same; config= is our own first argument, not deprecated (CONTRACT §1) | fast::test_config_and_site_together_is_an_error |
| behaviour notes §3.6 | login(basic=True) runs the password grant | different: refused, RFC 9700 (CONTRACT §4) | fast::test_login_basic_is_refused_citing_rfc_9700_and_nothing_happens |
| auth: test_get_auth_info | GET /api/account has user, profile, subscriptions | same | http::test_whoami_with_a_key |
| auth: test_login_no_existing_token | without a key, login runs the flow | same | test_login_runs_the_flow_only_without_a_valid_key |
| auth: test_login_has_valid_token | a valid stored key: no flow, key kept | same | test_login_runs_the_flow_only_without_a_valid_key, fast::test_login_returns_an_unexpired_stored_key_without_logging_in_again |
| auth: test_force_login_with_valid_token | force=True runs the flow anyway | same | test_login_runs_the_flow_only_without_a_valid_key |
| auth: test_login_has_expired_token | an expired key: the flow runs | same | test_login_runs_the_flow_only_without_a_valid_key |
| auth: test_get_api_key | the exchange sends Bearer, the reference's scopes and a tag anaconda-auth/v<version> | scopes and Bearer: same; tag names this distribution (CONTRACT §4) | login::test_cli_device_login_with_the_stdlib_user_agent |
| auth: test_get_api_key(_with_aau_token) | X-AAU-CLIENT from anaconda-anon-usage | n/a (conda's anon-usage plugin) | |
| auth: test_is_logged_in | a stored key means logged in | same, except an expired key is not a login (issue 9; CONTRACT §3 expiry) | test_is_logged_in_like_the_reference, fast::test_is_logged_in_is_true_only_for_a_key_that_has_not_expired |
| cli: test_login_required_tty[auth, cloud] | `auth/cloud api-key` without a key on a TTY asks; n: no login, y: login | same | test_groups_on_a_terminal_offer_login_and_no_means_no, login::test_cli_without_a_key_on_a_tty_offers_interactive_login_then_retries |
| cli: test_login_error_handler_no_tty[auth, cloud] | off a TTY: no login, "Login is required" | same, on stderr with exit 3 (CONTRACT §6) | test_groups_off_a_terminal_say_login_is_required |
| cli: test_api_key_prefers_env_var[auth, cloud] | `auth/cloud api-key` prints ANACONDA_AUTH_API_KEY | same | test_api_key_spellings_print_what_the_reference_prints |
| cli: test_http_error_login[auth, cloud] | whoami with a refused key on a TTY says "is invalid" and offers login | same | login::test_cli_whoami_with_a_rejected_key_on_a_tty_offers_login_and_retries |
| cli: test_http_error_general | an HTTP error is "404 Client Error ...", exit 1 | same | http::test_raise_for_status_carries_status_and_a_body_excerpt |
| cli: test_fallback_to_anaconda_client | -n, -o, --strength, --list ... go to anaconda-client | n/a (anaconda-client); here they are usage errors, exit 2 | fast::test_unknown_flags_are_one_line_usage_errors_and_nothing_changes |
| cli plugins (behaviour notes §5.1) | `anaconda token ...` manages conda repo tokens | n/a (conda plugin); `token` here is api-key (issue 9) | fast::test_token_is_api_key |
| config: test_well_known_headers | discovery sends a User-Agent starting anaconda-auth | same | test_discovery_sends_an_anaconda_auth_user_agent |
| config: test_env_variables[ANACONDA_AUTH, ANACONDA_CLOUD] | either prefix sets domain | same (legacy with a deprecation line, CONTRACT §8) | fast::test_auth_variables_beat_legacy_and_legacy_beats_plugin_auth |
| config: test_env_variable_over_default, test_init_arg_over_env_variable | env beats default; argument beats env | same | fast::test_every_source_beats_the_sources_below_it, interop::test_config_resolves_like_the_reference |
| config: test_docker_secret_over_default[ANACONDA_AUTH, ANACONDA_CLOUD] | a secret file (either prefix) beats the default | same | fast::test_every_source_beats_the_sources_below_it (rungs auth_secret, legacy_secret), fast::test_api_key_from_a_secret_file |
| config: test_docker_secret_no_match[ANACONDA_AUTH, ANACONDA_CLOUD] | a secret file naming no setting is ignored | same | fast::test_secret_files_naming_no_setting_are_ignored |
| config: test_env_variable_over_docker[ANACONDA_AUTH, ANACONDA_CLOUD] | the environment beats a secret file | same | fast::test_every_source_beats_the_sources_below_it (rung auth_env over auth_secret) |
| config: test_init_arg_over_all[ANACONDA_AUTH, ANACONDA_CLOUD] | an argument beats the environment and secret files | same | fast::test_every_source_beats_the_sources_below_it (rung explicit) |
| config: test_auth_domain_default_behavior | auth_domain is domain when not overridden | same | fast::test_without_a_config_file_the_default_site_is_anaconda_com, fast::test_derived_urls |
| config: test_override_auth_domain_env_variable | ANACONDA_AUTH_AUTH_DOMAIN_OVERRIDE sets auth_domain | same | fast::test_auth_domain_is_the_domain_unless_the_override_variable_is_set |
| config: test_default_site_no_config | without config.toml the one site is anaconda.com, and loading it by name is the default | same | fast::test_without_a_config_file_the_default_site_is_anaconda_com, fast::test_sites_list_without_a_config_shows_the_implicit_anaconda_com |
| config: test_unknown_site | an unknown site name raises UnknownSiteName | same (the message names the site and config.toml) | fast::test_without_a_config_file_the_default_site_is_anaconda_com, fast::test_unknown_site_name_is_an_error_naming_the_config_file |
| config: test_default_site_with_plugin_config | [plugin.auth] without sites: site anaconda.com with [plugin.auth]'s values | same | fast::test_without_sites_the_implicit_anaconda_com_site_takes_plugin_auth |
| config: test_extra_site_config | a [sites.x] table is a site beside anaconda.com, which stays the default; by name == by domain | same (a domain works wherever a name does, CONTRACT §8) | fast::test_first_site_in_file_order_is_the_default, fast::test_anaconda_com_is_an_implicit_site_even_when_others_are_configured, fast::test_site_argument_selects_by_name_or_by_domain |
| config: test_default_extra_site_config | default_site names an extra site, which then loads by default | same | fast::test_default_site_selects_by_name_or_by_domain |
| config: test_duplicate_domain_lookup_fail | two sites with one domain load by name; by the domain, ValueError | same (ConfigError, a ValueError, naming both sites) | fast::test_sites_sharing_a_domain_resolve_by_name_only, fast::test_ambiguous_domain_is_a_config_error_naming_both_sites |
| config: test_site_inherits_from_plugin_auth | a site takes what it leaves unset from [plugin.auth]; the environment beats both | same | fast::test_a_site_inherits_plugin_auth_and_the_environment_beats_both, fast::test_site_table_without_domain_inherits_plugin_auth_domain |
| config: test_override_site_with_auth_env_vars | ANACONDA_AUTH_* fill what a site leaves unset; the site's own values stay | same | fast::test_the_environment_fills_what_a_site_leaves_unset |
| token: test_expired_token_error | an expired key raises TokenExpiredError | same | fast::test_expired_key_error_says_what_to_run_and_when_it_expired |
| token: test_token_not_found | no key raises TokenNotFoundError | same | fast::test_missing_key_error_says_what_to_run |
| token: test_logout_multiple_okay | logout twice: one real delete, no error | same | fast::test_logout_deletes_the_key_and_is_idempotent |
| token: test_preferred_token_storage, test_anaconda_keyring_name | python-keyring backend priorities and name | n/a (no keyring backend; the store is chosen directly, CONTRACT §3) | fast::test_system_storage_without_a_bus_falls_back_to_the_file_with_one_warning |
| token: test_anaconda_keyring_save_delete | file layout {service: {user: value}} as json.dumps writes it | same bytes | fast::test_file_store_keeps_other_domains_and_services_in_the_reference_layout, interop::test_both_write_identical_keyring_bytes |
| token: test_anaconda_file_priorities | a second (docker) keyring path | n/a (not in 0.15.3, which we interoperate with) | |
| token: test_anaconda_keyring_empty | an empty file holds no keys | same | test_an_empty_token_store_holds_no_key |
| token: test_anaconda_keyring_not_writable, _dir_not_a_dir | such a store is "not viable" (keyring falls back) | different: a clear StorageError naming the file; nothing is lost (CONTRACT §3) | fast::test_keyring_path_that_is_a_directory_is_reported_and_left_alone, fast::test_unreadable_keyring_file_is_reported_and_left_alone |
| token: test_anaconda_keyring_domain_migration | legacy entries (no version, version 1) move to the modern domain as version 2 | same | fast::test_legacy_domain_entry_migrates_to_anaconda_com_on_read, interop::test_legacy_domain_entry_migrates_the_same_way |
| token: test_init_token_info_no_domain, test_load_token_info_* | TokenInfo() defaults and load(create=) | n/a (TokenInfo is internal; get_api_key/login/logout take a site) | |
| token: test_set_repo_token*, test_delete_repo_token | repo tokens per org | n/a (conda plugin); stored repo_tokens survive a re-login (CONTRACT §3) | interop::test_relogin_keeps_reference_username_and_repo_tokens_byte_for_byte |
| token: test_token_reload_after_migration_via_anaconda_cloud_config | a key saved for anaconda.cloud is found for anaconda.com | same | fast::test_legacy_domain_entry_migrates_to_anaconda_com_on_read |
| token: test_logout_removes_anaconda_cloud_tokens | logout of anaconda.com removes anaconda.cloud too | same | fast::test_logout_of_anaconda_com_deletes_the_legacy_entries_too, fast::test_logout_with_only_a_legacy_entry_returns_true |
| client: test_login_required_error | no key, 401 auth_required: "must login" | same message; Client raises LoginRequiredError (issue 9), request() on raise_for_status (CONTRACT §5) | http::test_auth_required_without_a_key_is_login_required, http::test_client_401_or_403_without_a_key_is_login_required |
| client: test_outdated_api_key | a refused key: "is invalid" | same | http::test_client_401_or_403_with_a_key_is_returned_and_raise_for_status_says_invalid |
| client: test_expired_token_ignored | an expired stored key is not sent | same | http::test_client_sends_no_expired_stored_key |
| client: test_client_factory_user_agent, _api_version | client_factory sets User-Agent; Api-Version only when given | same | http::test_client_factory_sets_user_agent_and_api_version_only_when_given, test_client_headers_like_the_reference |
| client: test_client_subclass_api_version | subclasses set _user_agent, _api_version | same | http::test_client_subclass_sets_user_agent_and_api_version_as_in_the_reference |
| client: test_client_base_url | base_url is https://<domain> | same | http::test_client_takes_a_site_name_a_domain_or_site_and_refuses_other_types |
| client: test_client_min_api_version_header | Min-Api-Version newer than ours: DeprecationWarning, the reference's text | same (and versions like 2023.10.0 are compared, CONTRACT §5) | http::test_min_api_version_warning |
| client: test_anonymous_endpoint | no key: no Authorization, the request still goes | same | http::test_missing_stored_key_sends_none_and_does_not_raise |
| client: test_token_included | a valid stored key is sent | same | http::test_client_api_key_argument_beats_the_environment_which_beats_the_store |
| client: test_api_key_env_variable_over_keyring, test_api_key_init_arg_over_variable | argument > env > store | same | http::test_client_api_key_argument_beats_the_environment_which_beats_the_store |
| client: test_name_reverts_to_email, test_first_and_last_name | .name and .email helpers | different: not provided; whoami() returns the account (CONTRACT §1) | |
| client: test_gravatar_missing, test_gravatar_found | .avatar fetches gravatar.com | different: no calls to third parties (CONTRACT §1, §5) | |
| client: test_extra_headers_dict, _string, _env_var | extra headers added, as a dict, JSON text or from the environment | same | http::test_client_extra_headers_are_added_but_never_replace_ours, http::test_client_extra_headers_from_the_environment_apply, test_client_headers_like_the_reference |
| client: test_extra_headers_non_overwrite | extra headers never replace Api-Version | same | http::test_client_extra_headers_are_added_but_never_replace_ours |
| client: test_extra_headers_bad_json | extra_headers that are not JSON: ValueError | same (ConfigError is a ValueError) | http::test_client_extra_headers_that_are_not_json_are_a_value_error |
| client: test_client_ssl_verify_true, test_login_ssl_verify_false | ssl_verify=True fails on an untrusted certificate; False works | same (NetworkError naming the certificate, CONTRACT §5) | http::test_client_ssl_verify_overrides_the_configuration |
| test_async.py (not in the five) | AsyncBaseClient | n/a (async client) | |
| auth whoami (behaviour notes §5.2) | whoami prints the account as JSON, indent 2, keys sorted | same; without a key we exit 3 instead of printing the anonymous account (CONTRACT §6) | test_whoami_prints_what_the_reference_prints, http::test_cli_whoami_prints_the_account |
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import anaconda_auth as aa
from test_anaconda_auth import CLI, LONG_LIVED, make_jwt, run_captured, store_entry
from tests.test_login import PtyCLI
from tests.test_reference_interop import (
    make_sandbox,
    run_cli,
    run_ours,
    run_reference,
)

CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
DISCOVERY = "/.well-known/openid-configuration"


def jwt(expires_in: float) -> str:
    return make_jwt({"sub": "parity", "exp": int(time.time() + expires_in)})


def _config(home: Path, domain: str, **overrides: Any) -> aa.Config:
    environ = {"HOME": str(home), "ANACONDA_SECRETS_DIR": str(home / "no-secrets"),
               **overrides.pop("environ", {})}
    return aa.resolve_config(environ=environ, home=str(home), cwd=str(home), domain=domain,
                             **overrides)


def _discovery_server(https_server: Any) -> Any:
    """A site whose discovery answers 500 once reached: a login stops there, and the server's
    log says whether the login got that far (the flow ran, and TLS was accepted)."""
    server = https_server()
    server.route("GET", DISCOVERY, (500, {}, {"error": "stop here"}))
    return server


def _discovery_requests(server: Any) -> int:
    return sum(1 for r in server.requests if r.url_path == DISCOVERY)


# -- login(): when the flow runs, which site, which TLS setting ----------------------------------


def test_login_runs_the_flow_only_without_a_valid_key(https_server, tmp_path, test_ca):
    server = _discovery_server(https_server)
    config = _config(tmp_path, f"127.0.0.1:{server.port}", ssl_verify=test_ca.ca_pem)
    with pytest.raises(aa.AuthenticationError, match="500"):  # no key: the flow starts
        aa.login(config)
    assert _discovery_requests(server) == 1
    store_entry(config.keyring_path, config.domain, jwt(-60))  # unchecked: login() refuses it
    with pytest.raises(aa.AuthenticationError, match="500"):  # an expired key: it starts too
        aa.login(config)
    assert _discovery_requests(server) == 2
    valid = jwt(LONG_LIVED)
    store_entry(config.keyring_path, config.domain, valid)
    assert aa.login(config) == valid  # a valid key: returned, nothing sent
    assert _discovery_requests(server) == 2
    with pytest.raises(aa.AuthenticationError, match="500"):  # force: the flow starts anyway
        aa.login(config, force=True)
    assert _discovery_requests(server) == 3
    assert aa.get_api_key(config) == valid  # a failed login leaves the stored key


@pytest.mark.parametrize("argument,setting,verifies", [
    (None, "0", False), (True, "0", True), (False, "1", False), (None, "1", True),
], ids=["none-env-0", "true-env-0", "false-env-1", "none-env-1"])
def test_login_ssl_verify_argument_beats_the_setting(https_server, tmp_path, monkeypatch,
                                                     argument, setting, verifies):
    for name in CA_VARIABLES:  # verification then uses certifi, which lacks the test CA
        monkeypatch.delenv(name, raising=False)
    server = _discovery_server(https_server)
    config = _config(tmp_path, f"127.0.0.1:{server.port}",
                     environ={"ANACONDA_AUTH_SSL_VERIFY": setting})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(aa.AuthenticationError) as info:
            aa.login(config, force=True, ssl_verify=argument)
    # Turning verification off always says so (CONTRACT §5).
    assert any("ssl_verify" in str(w.message) for w in caught) is not verifies
    if verifies:
        assert "could not be verified" in str(info.value)
        assert _discovery_requests(server) == 0
    else:
        assert "500" in str(info.value) and _discovery_requests(server) == 1


def test_login_by_site_name_or_domain_talks_to_that_site(https_server, tmp_path, test_ca,
                                                         monkeypatch):
    work, other = _discovery_server(https_server), _discovery_server(https_server)
    home = tmp_path / "home"
    (home / ".anaconda").mkdir(parents=True)
    (home / ".anaconda" / "config.toml").write_text(
        f'[sites.other]\ndomain = "127.0.0.1:{other.port}"\nssl_verify = "{test_ca.ca_pem}"\n\n'
        f'[sites.work]\ndomain = "127.0.0.1:{work.port}"\nssl_verify = "{test_ca.ca_pem}"\n')
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANACONDA_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.chdir(tmp_path)
    for how in ({"config": "work"}, {"site": "work"}, {"site": f"127.0.0.1:{work.port}"}):
        with pytest.raises(aa.AuthenticationError, match="500"):
            aa.login(**how, force=True)  # type: ignore[arg-type]
    assert (_discovery_requests(work), _discovery_requests(other)) == (3, 0)


def test_discovery_sends_an_anaconda_auth_user_agent(https_server, tmp_path, test_ca):
    server = _discovery_server(https_server)
    with pytest.raises(aa.AuthenticationError):
        aa.discover(_config(tmp_path, f"127.0.0.1:{server.port}", ssl_verify=test_ca.ca_pem))
    assert server.requests[-1].headers["User-Agent"].startswith("anaconda-auth")


def test_an_empty_token_store_holds_no_key(tmp_path):
    config = _config(tmp_path, "anaconda.com")
    store = Path(config.keyring_path)
    store.parent.mkdir(parents=True)
    store.write_bytes(b"")
    assert aa.is_logged_in(config) is False
    with pytest.raises(aa.TokenNotFoundError):
        aa.get_api_key(config)
    assert aa.logout(config) is False
    aa.login(config, api_key="new-key", verify=False)
    assert aa.get_api_key(config) == "new-key"


# -- Differential: the reference package beside ours ---------------------------------------------


REFERENCE_IS_LOGGED_IN = """
from anaconda_auth.actions import is_logged_in
out = {"logged_in": is_logged_in()}
"""


@pytest.mark.parametrize("stored,ours,reference", [
    (None, False, False), ("valid", True, True), ("expired", False, True),
])
def test_is_logged_in_like_the_reference(tmp_path, reference_python, stored, ours, reference):
    sandbox = make_sandbox(tmp_path)
    if stored:
        key = jwt(3600 if stored == "valid" else -3600)
        sandbox.store("anaconda.com", key)  # unchecked: login() refuses an expired key
    assert run_ours(sandbox, "out = {'logged_in': aa.is_logged_in()}")["logged_in"] is ours
    assert run_reference(sandbox, reference_python, REFERENCE_IS_LOGGED_IN)["logged_in"] is reference


REFERENCE_CLIENT = """
from anaconda_auth.client import client_factory, BaseClient
client_factory("my-app/1.0").get("/api/x")
client_factory("my-app/1.0", "2023.01.01").get("/api/x")
BaseClient(user_agent="my-app/1.0", api_version="ver",
           extra_headers={"X-Extra": "stuff", "Api-Version": "never"}).get("/api/x")
out = {}
"""
OURS_CLIENT = """
aa.client_factory("my-app/1.0").get("/api/x")
aa.client_factory("my-app/1.0", "2023.01.01").get("/api/x")
aa.Client(user_agent="my-app/1.0", api_version="ver",
          extra_headers={"X-Extra": "stuff", "Api-Version": "never"}).get("/api/x")
out = {}
"""
COMPARED_HEADERS = ("User-Agent", "Api-Version", "X-Client-Hostname", "X-Extra", "Authorization")


def test_client_headers_like_the_reference(https_server, tmp_path, test_ca, reference_python):
    server = https_server()
    server.route("GET", "/api/x", (200, {}, {}))
    seen = {}
    for side in ("ours", "reference"):
        sandbox = make_sandbox(tmp_path / side)
        sandbox.env.update(ANACONDA_AUTH_DOMAIN=f"127.0.0.1:{server.port}",
                           ANACONDA_AUTH_SSL_VERIFY=test_ca.ca_pem,
                           ANACONDA_AUTH_API_KEY=jwt(3600))
        before = len(server.requests)
        if side == "ours":
            run_ours(sandbox, OURS_CLIENT)
        else:
            run_reference(sandbox, reference_python, REFERENCE_CLIENT)
        seen[side] = [{name: r.headers.get(name) for name in COMPARED_HEADERS}
                      for r in server.requests[before:]]
        for request in seen[side]:
            request["Authorization"] = request["Authorization"] == (
                f"Bearer {sandbox.env['ANACONDA_AUTH_API_KEY']}")
    assert seen["ours"] == seen["reference"]
    assert [r["Api-Version"] for r in seen["ours"]] == [None, "2023.01.01", "ver"]
    assert seen["ours"][-1]["X-Extra"] == "stuff"


def _reference_cli(reference_python: str) -> list[str]:
    return [str(Path(reference_python).parent / "anaconda")]


@pytest.mark.parametrize("words", [
    ["auth", "api-key"], ["cloud", "api-key"], ["auth", "api-key", "--at", "beta"],
    ["--at", "beta", "auth", "api-key"], ["cloud", "api-key", "--at", "beta"],
])
def test_api_key_spellings_print_what_the_reference_prints(tmp_path, reference_python, words):
    sandbox = make_sandbox(tmp_path)
    sandbox.write(sandbox.config_toml, """
        [sites.alpha]
        domain = "alpha.example"

        [sites.beta]
        domain = "beta.example"
        """)
    keys = {"alpha.example": jwt(3600), "beta.example": jwt(7200)}
    for domain, key in keys.items():
        run_ours(sandbox, f"aa.login(aa.resolve_config({domain!r}), api_key={key!r}, verify=False)\nout = {{}}")
    ours = run_cli(sandbox, [sys.executable, "-m", "anaconda_auth", *words])
    reference = run_cli(sandbox, [*_reference_cli(reference_python), *words])
    assert (ours.returncode, reference.returncode) == (0, 0), (ours.stderr, reference.stdout)
    expected = keys["beta.example" if "beta" in words else "alpha.example"]
    assert ours.stdout == reference.stdout == expected + "\n"
    # The environment's key wins on both sides (cli: test_api_key_prefers_env_var).
    sandbox.env["ANACONDA_AUTH_API_KEY"] = env_key = jwt(600)
    ours = run_cli(sandbox, [sys.executable, "-m", "anaconda_auth", *words])
    reference = run_cli(sandbox, [*_reference_cli(reference_python), *words])
    assert ours.stdout == reference.stdout == env_key + "\n"


def test_whoami_prints_what_the_reference_prints(anaconda_api, tmp_path, test_ca,
                                                 reference_python):
    sandbox = make_sandbox(tmp_path)
    sandbox.write(sandbox.config_toml, f"""
        [sites.api]
        domain = "{anaconda_api.domain}"
        ssl_verify = "{test_ca.ca_pem}"
        """)
    key = anaconda_api.issue_key("alice")
    run_ours(sandbox, f"aa.login(aa.resolve_config(), api_key={key!r}, verify=False)\nout = {{}}")
    ours = run_cli(sandbox, [sys.executable, "-m", "anaconda_auth", "auth", "whoami"])
    reference = run_cli(sandbox, [*_reference_cli(reference_python), "auth", "whoami"])
    assert (ours.returncode, reference.returncode) == (0, 0), (ours.stderr, reference.stdout)
    assert json.loads(ours.stdout) == json.loads(reference.stdout)
    assert ours.stdout == json.dumps(json.loads(ours.stdout), indent=2, sort_keys=True) + "\n"
    assert [line.strip() for line in ours.stdout.splitlines()] == [
        line.strip() for line in reference.stdout.splitlines()]


# -- The auth and cloud groups on and off a terminal ---------------------------------------------


def _group_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANACONDA_", "CONDA_")) and k != "BROWSER"}
    env.update(HOME=str(home), ANACONDA_SECRETS_DIR=str(tmp_path / "no-secrets"),
               PYTHONPATH=str(Path(__file__).resolve().parents[1]), TERM="dumb")
    return env


@pytest.mark.parametrize("group", ["auth", "cloud"])
def test_groups_on_a_terminal_offer_login_and_no_means_no(tmp_path, group):
    env = _group_env(tmp_path)
    cli = PtyCLI([group, "api-key"], env)
    try:
        cli.expect(r"TokenNotFoundError: ")
        cli.expect(r"Continue with interactive login\? \[y/n\]: ")
        cli.send("n\n")
        cli.expect(r"To configure your credentials you can run")
        assert cli.finish() == 3, cli.output
    finally:
        cli.close()
    assert not (Path(env["HOME"]) / ".anaconda").exists()  # no login, nothing stored


@pytest.mark.parametrize("group", ["auth", "cloud"])
def test_groups_off_a_terminal_say_login_is_required(tmp_path, group):
    done = run_captured([*CLI, group, "api-key"], _group_env(tmp_path), tmp_path)
    assert done.returncode == 3 and done.stdout == ""
    assert "Login is required" in done.stderr and "Continue with" not in done.stderr
