"""Fixtures of the Panel tier: a real ``panel serve`` with ``--oauth-provider anaconda_auth``.

Runs only in the ``panel`` venv (tests/requirements-panel.txt, Python 3.13; Panel 1.10 needs 3.12+);
tests/test-all runs ``pytest tests/panel`` there and ``--ignore=tests/panel`` everywhere else.
The shared real parts (the test CA, Chromium through the browser venv) come from tests/conftest.py.

| fixture          | scope    | gives                                                               |
|------------------|----------|---------------------------------------------------------------------|
| ``panel_wheel``  | session  | a directory holding the wheel built from this checkout, installed    |
|                  |          | with ``pip --target`` (its dist-info carries the panel.auth entry    |
|                  |          | points); on PYTHONPATH after the checkout, so the module itself is   |
|                  |          | the checkout's ``anaconda_auth.py``                                  |
| ``panel_port``   | session  | the one loopback port every ``panel serve`` of the session listens on |
| ``panel_idp``    | session  | :class:`tests.oidc.OIDCProvider` whose confidential clients          |
|                  |          | ``panel-app-test`` / ``panel-app-refresh-test`` (secrets             |
|                  |          | ``<id>-secret``) accept ``http://localhost:<panel_port>`` exactly    |
| ``panel_app``    | function | :class:`PanelApp`: a temporary HOME whose config.toml names the       |
|                  |          | provider as site ``idp``, the README's ``app.py``, ``env()``,        |
|                  |          | ``serve(args, env)`` (waits until the port accepts, or the process   |
|                  |          | ends), ``run(args, env)`` (a start that must fail), ``visit(...)``   |
|                  |          | (Chromium, ``tests/panel/browser_visit.py``)                         |
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import tools
from tests.conftest import _browser_python

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PANEL_BIN = Path(sys.executable).parent / "panel"
CLIENT_ID = "panel-app-test"
REFRESH_CLIENT_ID = "panel-app-refresh-test"
START_TIMEOUT = 60.0


def readme_panel_blocks() -> dict[str, str]:
    """The fenced blocks of the README's "Panel apps" section, by language (the first of each)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Panel apps\n", 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, str] = {}
    for language, body in re.findall(r"```(\w+)\n(.*?)```", section, flags=re.DOTALL):
        blocks.setdefault(language, body)
    return blocks


@pytest.fixture(scope="session")
def panel_wheel(tmp_path_factory: pytest.TempPathFactory) -> str:
    if not PANEL_BIN.exists():
        tools.missing_part(f"no `panel` next to {sys.executable}: run tests/panel in the panel venv "
                           "(pip install -r tests/requirements-panel.txt on Python 3.12+)")
    out = tmp_path_factory.mktemp("panel-wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "-q", "--no-deps",
         "--no-build-isolation", "-w", str(out / "dist"), str(ROOT)],
        capture_output=True, text=True, check=False, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = (out / "dist").glob("anaconda_auth_module-*.whl")
    target = out / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps",
         "--target", str(target), str(wheel)], capture_output=True, text=True, check=False, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    return str(target)


@pytest.fixture(scope="session")
def panel_port() -> int:
    return tools.free_port()


@pytest.fixture(scope="session")
def panel_idp(test_ca, panel_port: int, tmp_path_factory: pytest.TempPathFactory):
    from tests.oidc import IDP_DIR, OIDCProvider

    node = tools.require_executable("node", "apt-get install -y nodejs (Node 20+), then npm ci in tests/idp")
    if not (IDP_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        tools.missing_part(f"the test OpenID Provider is not installed: run `npm ci` in {IDP_DIR}")
    provider = OIDCProvider(node, test_ca.server_cert, test_ca.server_key, test_ca.ca_pem,
                            tmp_path_factory.mktemp("panel-idp"),
                            extra_env={"PANEL_REDIRECT_URIS": f"http://localhost:{panel_port}"})
    yield provider
    provider.stop()


def idp_grants(idp: Any) -> list[dict[str, Any]]:
    """The grants the provider's token endpoint issued so far (idp.mjs logs one line each)."""
    grants = []
    for line in idp.stderr_text().splitlines():
        if line.startswith('{"event":"grant.success"'):
            grants.append(json.loads(line))
    return grants


class PanelApp:
    """One Panel app directory with its own HOME; starts ``panel serve`` and visits it."""

    def __init__(self, root: Path, port: int, idp: Any, wheel_site: str, ca_pem: str) -> None:
        self.root = root
        self.port = port
        self.idp = idp
        self.wheel_site = wheel_site
        self.url = f"http://localhost:{port}/"
        self.home = root / "home"
        (self.home / ".anaconda").mkdir(parents=True)
        self.config_toml = self.home / ".anaconda" / "config.toml"
        # The provider as a configured site; default_site is one that cannot be reached, so a
        # login that works proves the site was selected.
        self.config_toml.write_text(
            'default_site = "elsewhere"\n\n'
            f'[sites.idp]\ndomain = "127.0.0.1:{idp.port}"\nssl_verify = "{ca_pem}"\n\n'
            f'[sites.elsewhere]\ndomain = "127.0.0.1:{tools.free_port()}"\nssl_verify = "{ca_pem}"\n',
            encoding="utf-8")
        self.app_dir = root / "app"
        self.app_dir.mkdir()
        (self.app_dir / "app.py").write_text(readme_panel_blocks()["python"], encoding="utf-8")
        self.processes: list[subprocess.Popen] = []
        self.log_paths: list[Path] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": f"{PANEL_BIN.parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            # The checkout's module first; the built wheel's dist-info for the entry points.
            "PYTHONPATH": f"{ROOT}{os.pathsep}{self.wheel_site}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PANEL_OAUTH_KEY": CLIENT_ID,
            "PANEL_OAUTH_SECRET": f"{CLIENT_ID}-secret",
            "PANEL_COOKIE_SECRET": "panel-test-cookie-secret",
            "ANACONDA_AUTH_SITE": "idp",
        }
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def _command(self, args: list[str]) -> list[str]:
        return [str(PANEL_BIN), "serve", "app.py", "--address", "127.0.0.1", "--port",
                str(self.port), *args]

    def serve(self, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        """Start ``panel serve app.py ARGS`` (bound to loopback) and wait until it listens."""
        return self.start(self._command(args), env)

    def start(self, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        log_path = self.root / f"serve{len(self.log_paths)}.log"
        self.log_paths.append(log_path)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(command, cwd=self.app_dir, env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(proc)
        tools.wait_until(lambda: tools.port_accepts("127.0.0.1", self.port), START_TIMEOUT,
                         "panel serve", proc=proc, diagnostics=lambda: self.log_text(log_path))
        return proc

    def run(self, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
        """A ``panel serve`` that must stop by itself (bad settings): its exit and output."""
        return subprocess.run(self._command(args), cwd=self.app_dir, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, check=False, timeout=START_TIMEOUT)

    @staticmethod
    def log_text(path: Path) -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    def visit(self, *args: str, hold: bool = False) -> Any:
        """Chromium visits the app (tests/panel/browser_visit.py); the result dict. With
        ``hold``: (result, process) and the page stays open until the process's stdin closes."""
        command = [_browser_python(), str(Path(__file__).with_name("browser_visit.py")), self.url,
                   *args, *(["--hold"] if hold else [])]
        chromium = tools.require_executable("chromium", "apt-get install -y chromium", ("/usr/bin/chromium",))
        command += ["--chromium", chromium]
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.processes.append(proc)
        if hold:
            line = tools.wait_until(proc.stdout.readline, 90, "browser_visit", proc=proc)
            return json.loads(line), proc
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])

    def stop(self) -> None:
        for proc in reversed(self.processes):
            tools.stop_process(proc)


@pytest.fixture
def panel_app(tmp_path: Path, panel_port: int, panel_idp, panel_wheel: str, test_ca) -> Iterator[PanelApp]:
    app = PanelApp(tmp_path / "panel", panel_port, panel_idp, panel_wheel, test_ca.ca_pem)
    try:
        yield app
    finally:
        app.stop()
    shutil.rmtree(app.app_dir, ignore_errors=True)
