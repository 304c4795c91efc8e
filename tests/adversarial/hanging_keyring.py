"""OS keyring backends that never answer, for ``PYTHON_KEYRING_BACKEND`` (tests/adversarial on
PYTHONPATH): ``hanging_keyring.Silent`` blocks in every get/set/delete, ``hanging_keyring.Stuck``
already blocks when keyring builds it. Like a locked Secret Service whose unlock prompt nobody
sees. The block is a wait on an event nobody sets, so only the caller's timeout ends it.
"""

from __future__ import annotations

import threading

from keyring.backend import KeyringBackend

_NEVER = threading.Event()


class Silent(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        _NEVER.wait()
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        _NEVER.wait()

    def delete_password(self, service: str, username: str) -> None:
        _NEVER.wait()


class Stuck(Silent):
    def __init__(self) -> None:
        _NEVER.wait()
        super().__init__()
