"""A throwaway certificate authority (trustme) with a loopback server leaf and an mTLS client leaf.

Everything is written as PEM files under one directory, so the paths can go into config files,
environment variables (``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``) and subprocesses (node, the
browser hook).
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path

import trustme

SERVER_IDENTITIES = ("127.0.0.1", "localhost", "::1")
CLIENT_IDENTITY = "anaconda-test-client@example.test"


class TestCA:
    """The test CA and the files made from it (all attributes are ``str`` paths unless noted).

    - ``ca``: the ``trustme.CA`` object itself.
    - ``ca_pem``: the CA certificate (use as ``ssl_verify``/``cafile``/``SSL_CERT_FILE``).
    - ``ca_dir``: a directory holding only ``<subject hash>.0``, usable as OpenSSL ``capath``.
    - ``server_cert`` / ``server_key``: leaf for 127.0.0.1, localhost and ::1 (chain + key).
    - ``client_cert_pem`` / ``client_key_pem``: a client leaf signed by the same CA, for mTLS.
    - ``client_combined_pem``: that client cert and key in one file (cert-only configs).
    - ``issue(*identities)``: another leaf, returns ``(cert_path, key_path)``.
    - ``server_context(require_client_cert=False)``, ``client_context(with_client_cert=False)``.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._count = 0
        self.ca = trustme.CA(organization_name="anaconda_auth tests")
        self.ca_pem = str(self.directory / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_pem)

        self.server_cert, self.server_key = self.issue(*SERVER_IDENTITIES, name="server")
        self.client_cert_pem, self.client_key_pem = self.issue(
            CLIENT_IDENTITY, name="client", common_name="anaconda-test-client"
        )
        self.client_combined_pem = str(self.directory / "client-combined.pem")
        Path(self.client_combined_pem).write_bytes(
            Path(self.client_cert_pem).read_bytes() + Path(self.client_key_pem).read_bytes()
        )
        self.ca_dir = str(self.directory / "capath")
        self._make_capath()

    def issue(self, *identities: str, name: str = "", common_name: str = "") -> tuple[str, str]:
        """Issue one more leaf for ``identities``; returns ``(cert_chain_path, key_path)``."""
        if not name:
            self._count += 1
            name = f"leaf{self._count}"
        leaf = self.ca.issue_cert(*identities, common_name=common_name or None)
        cert_path = self.directory / f"{name}.pem"
        key_path = self.directory / f"{name}.key"
        with open(cert_path, "wb") as f:
            f.writelines(blob.bytes() for blob in leaf.cert_chain_pems)
        leaf.private_key_pem.write_to_path(str(key_path))
        os.chmod(key_path, 0o600)
        return str(cert_path), str(key_path)

    def _make_capath(self) -> None:
        """``<hash>.0`` named like c_rehash does; the hash needs the openssl tool (no stdlib API)."""
        os.makedirs(self.ca_dir, exist_ok=True)
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RuntimeError("the test CA's capath needs the 'openssl' tool: apt-get install -y openssl")
        digest = subprocess.run(
            [openssl, "x509", "-noout", "-subject_hash", "-in", self.ca_pem],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        shutil.copyfile(self.ca_pem, os.path.join(self.ca_dir, f"{digest}.0"))

    def server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        """A server-side context with the loopback leaf; optionally CERT_REQUIRED against this CA."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=self.ca_pem)
        return ctx

    def client_context(self, with_client_cert: bool = False) -> ssl.SSLContext:
        """A client context that trusts only this CA (optionally presenting the client leaf)."""
        ctx = ssl.create_default_context(cafile=self.ca_pem)
        if with_client_cert:
            ctx.load_cert_chain(self.client_cert_pem, self.client_key_pem)
        return ctx
