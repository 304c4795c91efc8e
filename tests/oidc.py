"""Start the real OpenID Provider (``tests/idp/idp.mjs``, panva/oidc-provider 9.x) over HTTPS.

The node script listens on 127.0.0.1 port 0 and prints one JSON ready line; it exits when its
stdin closes, so even a killed test run leaves no provider behind.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from .tools import stop_process

IDP_DIR = Path(__file__).resolve().parent / "idp"
CLIENT_ID = "anaconda-cli-test"
REDIRECT_URI = "http://127.0.0.1:8000/auth/oidc"


class OIDCProvider:
    """A running provider.

    Attributes: ``issuer`` (``https://127.0.0.1:PORT``), ``port``, ``client_id``
    (``anaconda-cli-test``), ``redirect_uri`` (the registered one; any loopback port works),
    ``discovery_url``, ``discovery`` (the parsed document), ``authorization_endpoint``,
    ``token_endpoint``, ``device_authorization_endpoint``, ``userinfo_url``, ``jwks_uri``,
    ``revocation_endpoint``, ``introspection_endpoint``, ``ca_pem``, ``startup_s`` (spawn to
    ready line), ``node_startup_ms`` (as the script measured itself), ``stderr_path``.
    Methods: ``ssl_context()`` (trusting the test CA), ``stop()``. ``extra_env``: more variables
    for idp.mjs (``PANEL_REDIRECT_URIS``).
    """

    __test__ = False

    def __init__(self, node: str, cert: str, key: str, ca_pem: str, log_dir: Path, timeout: float = 30.0,
                 extra_env: dict[str, str] | None = None) -> None:
        self.client_id = CLIENT_ID
        self.redirect_uri = REDIRECT_URI
        self.ca_pem = ca_pem
        self.stderr_path = str(Path(log_dir) / "idp.stderr.log")
        env = dict(os.environ)
        env.update(TLS_CERT=cert, TLS_KEY=key, CLIENT_ID=CLIENT_ID, QUIET="1", NODE_ENV="test")
        env.pop("PORT", None)
        env.update(extra_env or {})
        started = time.monotonic()
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - open while node runs
        self._proc = subprocess.Popen(
            [node, str(IDP_DIR / "idp.mjs")], cwd=str(IDP_DIR), env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
        )
        line = self._ready_line(timeout)
        self.startup_s = time.monotonic() - started
        try:
            ready = json.loads(line)
            self.issuer: str = ready["issuer"]
            self.port: int = ready["port"]
            self.node_startup_ms = ready.get("startup_ms")
            self.discovery_url = self.issuer + "/.well-known/openid-configuration"
            with urllib.request.urlopen(self.discovery_url, context=self.ssl_context(), timeout=10) as resp:
                self.discovery = json.load(resp)
        except Exception:
            self.stop()
            raise
        d = self.discovery
        self.authorization_endpoint: str = d["authorization_endpoint"]
        self.token_endpoint: str = d["token_endpoint"]
        self.device_authorization_endpoint: str = d["device_authorization_endpoint"]
        self.userinfo_url: str = d["userinfo_endpoint"]
        self.jwks_uri: str = d["jwks_uri"]
        self.revocation_endpoint: str | None = d.get("revocation_endpoint")
        self.introspection_endpoint: str | None = d.get("introspection_endpoint")

    def _ready_line(self, timeout: float) -> str:
        """The first stdout line, read in a thread so the wait is bounded."""
        box = []
        assert self._proc.stdout is not None
        reader = threading.Thread(target=lambda: box.append(self._proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not box or not box[0].strip():
            self.stop()
            raise RuntimeError(
                f"the test OpenID Provider did not print its ready line within {timeout} s "
                f"(exit status {self._proc.poll()}); stderr:\n{self.stderr_text()}"
            )
        return box[0].decode()

    def stderr_text(self) -> str:
        try:
            return Path(self.stderr_path).read_text(errors="replace")
        except OSError:
            return ""

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_pem)

    def stop(self) -> None:
        stop_process(self._proc)
        self._stderr.close()

    def __repr__(self) -> str:
        return f"<OIDCProvider {getattr(self, 'issuer', '?')}>"
