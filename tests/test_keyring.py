"""The OS keyring through a real Secret Service (gnome-keyring on a private D-Bus bus).

Real part: the ``secret_service`` fixture in ``tests/conftest.py``. The sandbox and the helpers
are the fast suite's own (``test_anaconda_auth.py``), so both suites isolate a test the same way.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from typing import Any

import pytest

import anaconda_auth as aa
import test_anaconda_auth as fast
from test_anaconda_auth import (
    REPO,
    SERVICE,
    SUBPROCESS_TIMEOUT,
    assert_ok,
    decode_entry,
    key_expiring_in,
    payload_b64,
)

# The fast suite's two fixtures, under the same names, so each test reads as it did there.
sandbox = pytest.fixture(fast.sandbox.__wrapped__)  # type: ignore[attr-defined]
_isolated_process = pytest.fixture(autouse=True)(fast._isolated_process.__wrapped__)  # type: ignore[attr-defined]


def _secret_service_backend() -> Any:
    """The backend the ``secret_service`` fixture pinned (the module gets it the same way)."""
    import keyring

    return keyring.get_keyring()


def _without_home(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "HOME"}


def test_system_storage_stores_and_reads_through_the_real_secret_service(sandbox, secret_service):
    config = sandbox.resolve(preferred_token_storage="system")
    key = key_expiring_in(3600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a working keyring means no fallback warning
        warnings.filterwarnings("ignore", category=aa.KeyExpiringWarning)  # the key is short-lived
        assert aa.login(config, api_key=key, verify=False) == key
        assert aa.get_api_key(config) == key
    backend = _secret_service_backend()
    assert "SecretService" in type(backend).__module__
    assert backend.get_password(SERVICE, "anaconda.com") == payload_b64("anaconda.com", key)
    assert sandbox.keyring_bytes() is None  # the file store was not used

    # A CLI process finds the same Secret Service through the environment.
    env = {**_without_home(secret_service), "ANACONDA_AUTH_PREFERRED_TOKEN_STORAGE": "system"}
    result = sandbox.cli("status", "--json", env=env)
    assert_ok(result)
    status = json.loads(result.stdout)
    assert "system keyring" in status["key_source"]
    assert key not in result.stdout + result.stderr
    result = sandbox.cli("api-key", env=env)
    assert_ok(result)
    assert result.stdout == key + "\n"

    assert aa.logout(config) is True
    assert backend.get_password(SERVICE, "anaconda.com") is None
    assert aa.logout(config) is False


def test_system_storage_login_with_token_on_the_cli(sandbox, secret_service):
    env = {**_without_home(secret_service), "ANACONDA_AUTH_PREFERRED_TOKEN_STORAGE": "system"}
    result = sandbox.cli("login", "--with-token", "--no-verify", stdin="cli-system-key\n", env=env)
    assert_ok(result)
    assert "not usable" not in result.stderr
    assert decode_entry(_secret_service_backend().get_password(SERVICE, "anaconda.com")) == {
        "domain": "anaconda.com", "api_key": "cli-system-key", "repo_tokens": [], "version": 2}
    assert sandbox.keyring_bytes() is None


def test_system_storage_keeps_username_and_repo_tokens(sandbox, secret_service):
    backend = _secret_service_backend()
    backend.set_password(SERVICE, "anaconda.com",
                         payload_b64("anaconda.com", "old", username="carol",
                                     repo_tokens=[{"token": "t", "org_name": "o"}]))
    aa.login(sandbox.resolve(preferred_token_storage="system"), api_key="new", verify=False)
    assert decode_entry(backend.get_password(SERVICE, "anaconda.com")) == {
        "domain": "anaconda.com", "api_key": "new", "username": "carol",
        "repo_tokens": [{"token": "t", "org_name": "o"}], "version": 2}


def test_system_storage_still_reads_a_key_from_the_file_store(sandbox, secret_service):
    sandbox.store("anaconda.com", "file-key")
    assert aa.get_api_key(sandbox.resolve(preferred_token_storage="system")) == "file-key"


def test_system_storage_migrates_legacy_entries_in_the_secret_service(sandbox, secret_service):
    backend = _secret_service_backend()
    backend.set_password(SERVICE, "anaconda.cloud", payload_b64("anaconda.cloud", "legacy-key"))
    assert aa.get_api_key(sandbox.resolve(preferred_token_storage="system")) == "legacy-key"
    assert backend.get_password(SERVICE, "anaconda.cloud") is None
    assert decode_entry(backend.get_password(SERVICE, "anaconda.com"))["api_key"] == "legacy-key"


class _HangingBackend:
    """A keyring backend whose every call blocks, like a Secret Service waiting on a prompt."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def _block(self, *args: str) -> None:
        self.release.wait(SUBPROCESS_TIMEOUT)

    get_password = set_password = delete_password = _block


FAILING_KEYRING = """\
import keyring.backend

class Boom(keyring.backend.KeyringBackend):
    priority = 1

    def get_password(self, service, username):
        raise RuntimeError("locked collection")

    def set_password(self, service, username, password):
        raise RuntimeError("locked collection")

    def delete_password(self, service, username):
        raise RuntimeError("locked collection")
"""



def test_a_hanging_system_keyring_times_out_and_the_file_store_is_used(sandbox, monkeypatch):
    import keyring
    hanging = _HangingBackend()
    monkeypatch.setattr(keyring, "get_keyring", lambda: hanging)
    monkeypatch.setattr(aa, "_SYSTEM_KEYRING_TIMEOUT", 0.2)
    config = sandbox.resolve(preferred_token_storage="system")
    try:
        with pytest.warns(UserWarning, match="not usable"):
            aa.login(config, api_key="timeout-key", verify=False)
        assert sandbox.stored_entries()["anaconda.com"]["api_key"] == "timeout-key"
        assert aa.get_api_key(config) == "timeout-key"
    finally:
        hanging.release.set()


def test_logout_fails_loudly_when_the_system_keyring_cannot_be_reached(sandbox):
    (sandbox.root / "failkr.py").write_text(FAILING_KEYRING)
    sandbox.store("anaconda.com", "file-key")
    env = {"PYTHONPATH": f"{REPO}{os.pathsep}{sandbox.root}", "PYTHON_KEYRING_BACKEND": "failkr.Boom",
           "ANACONDA_AUTH_PREFERRED_TOKEN_STORAGE": "system"}
    result = sandbox.cli("logout", env=env)
    assert_ok(result, 1)
    assert "system keyring" in result.stderr and "not" in result.stderr
    assert sandbox.stored_entries() == {}  # the file's copy went all the same
