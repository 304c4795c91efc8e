"""A private, unlocked GNOME Keyring (a real Secret Service) on a private D-Bus session bus.

- ``dbus-daemon`` runs in the foreground (``--nofork``, owned by our Popen, so teardown reaps it)
  with a config of our own: a session bus on a socket in a temporary directory, and **no service
  directories**, so nothing is ever auto-activated (the system's ``org.freedesktop.secrets``
  service file would start a second, *locked* keyring; a prompter would hang without a display).
- ``gnome-keyring-daemon --foreground --unlock --components=secrets`` gets the password on stdin;
  it creates (or unlocks) the ``login`` collection in ``$XDG_DATA_HOME/keyrings``, which must be a
  temporary directory: a keyring written with another password could never be unlocked again.
- Ready = the bus name ``org.freedesktop.secrets`` has an owner (asked with jeepney, which comes
  with keyring on Linux), then a real set/get/delete round trip works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .tools import die_with_parent, stop_process, wait_until

DBUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

SECRETS_NAME = "org.freedesktop.secrets"


def _name_has_owner(address: str, name: str) -> bool:
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    bus = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus", interface="org.freedesktop.DBus")
    try:
        with open_dbus_connection(address) as conn:
            reply = conn.send_and_get_reply(new_method_call(bus, "NameHasOwner", "s", (name,)), timeout=2)
            return bool(reply.body[0])
    except (OSError, ConnectionError):
        return False


class SecretServiceSession:
    """A running private bus + unlocked gnome-keyring.

    Attributes: ``env`` (dict: ``DBUS_SESSION_BUS_ADDRESS``, ``HOME``, ``XDG_DATA_HOME``,
    ``XDG_RUNTIME_DIR``, ``XDG_CONFIG_HOME``, ``XDG_CACHE_HOME``, ``PYTHON_KEYRING_BACKEND``),
    ``bus_address``, ``password``, ``keyring_file`` (the login.keyring path), ``startup_s``.
    Methods: ``backend()`` (a fresh ``keyring.backends.SecretService.Keyring``), ``stop()``.
    """

    __test__ = False

    def __init__(self, dbus_daemon: str, keyring_daemon: str, directory: Path,
                 password: str = "test-keyring-password", timeout: float = 15.0) -> None:
        started = time.monotonic()
        directory = Path(directory)
        self.password = password
        dirs = {name: directory / sub for name, sub in (
            ("HOME", "home"), ("XDG_DATA_HOME", "data"), ("XDG_RUNTIME_DIR", "run"),
            ("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache"),
        )}
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o700)
        # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer than that.
        self._socket_dir = tempfile.mkdtemp(prefix="aa-dbus-")
        socket_path = Path(self._socket_dir) / "bus"
        config = directory / "session.conf"
        config.write_text(DBUS_CONFIG.format(socket=socket_path))
        self.bus_address = f"unix:path={socket_path}"
        self.keyring_file = str(dirs["XDG_DATA_HOME"] / "keyrings" / "login.keyring")
        self.env: dict[str, str] = {k: str(v) for k, v in dirs.items()}
        self.env["DBUS_SESSION_BUS_ADDRESS"] = self.bus_address
        self.env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.SecretService.Keyring"

        child_env = dict(os.environ)
        child_env.update(self.env)
        child_env.pop("DISPLAY", None)
        child_env.pop("WAYLAND_DISPLAY", None)
        self._log_dir = directory
        self._bus_log = open(directory / "dbus-daemon.log", "wb")  # noqa: SIM115 - daemon lifetime
        self._gk_log = open(directory / "gnome-keyring.log", "wb")  # noqa: SIM115 - daemon lifetime
        self._bus: subprocess.Popen | None = None
        self._gk: subprocess.Popen | None = None
        try:
            self._bus = subprocess.Popen(
                [dbus_daemon, f"--config-file={config}", "--nofork", "--nopidfile", "--print-address=1"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._bus_log, env=child_env,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl
            )
            # The printed address is the ready signal of dbus-daemon; it is written once listening.
            assert self._bus.stdout is not None
            line = self._bus.stdout.readline().decode().strip()
            if not line.startswith("unix:"):
                raise RuntimeError(f"dbus-daemon did not print its address (got {line!r})\n{self._logs()}")
            self.bus_address = self.env["DBUS_SESSION_BUS_ADDRESS"] = child_env["DBUS_SESSION_BUS_ADDRESS"] = line
            self._gk = subprocess.Popen(
                [keyring_daemon, "--foreground", "--unlock", "--components=secrets",
                 f"--control-directory={Path(self._socket_dir) / 'keyring'}"],
                stdin=subprocess.PIPE, stdout=self._gk_log, stderr=subprocess.STDOUT, env=child_env,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl
            )
            assert self._gk.stdin is not None
            self._gk.stdin.write(password.encode())
            self._gk.stdin.close()
            wait_until(lambda: _name_has_owner(self.bus_address, SECRETS_NAME), timeout,
                       "gnome-keyring-daemon on the private bus", proc=self._gk, diagnostics=self._logs,
                       step=0.02)
            self._round_trip()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started

    def _logs(self) -> str:
        parts = []
        for name in ("dbus-daemon.log", "gnome-keyring.log"):
            try:
                parts.append(f"--- {name}:\n" + (self._log_dir / name).read_text(errors="replace"))
            except OSError:
                pass
        return "\n".join(parts)

    def backend(self):
        """A SecretService keyring backend bound to this bus (read from the env at call time)."""
        from keyring.backends import SecretService

        return SecretService.Keyring()

    def _round_trip(self) -> None:
        """Prove the default collection exists and is unlocked (a locked one would prompt)."""
        saved = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = self.bus_address
        try:
            kr = self.backend()
            kr.set_password("anaconda-auth-fixture-check", "probe", "ok")
            if kr.get_password("anaconda-auth-fixture-check", "probe") != "ok":
                raise RuntimeError(f"secret service round trip failed\n{self._logs()}")
            kr.delete_password("anaconda-auth-fixture-check", "probe")
        finally:
            if saved is None:
                os.environ.pop("DBUS_SESSION_BUS_ADDRESS", None)
            else:
                os.environ["DBUS_SESSION_BUS_ADDRESS"] = saved

    def stop(self) -> None:
        """Stop gnome-keyring, then the bus (both are our own children)."""
        for proc in (self._gk, self._bus):
            if proc is not None:
                stop_process(proc)
        for log in (self._bus_log, self._gk_log):
            log.close()
        shutil.rmtree(self._socket_dir, ignore_errors=True)
