"""Start-up cost of anaconda_auth: ``api-key`` and ``import``, next to a bare interpreter.

    python tests/bench/bench_startup.py [--runs 30] [--import-runs 10]

Runs everything with the interpreter that runs this script (use a venv without ``.pth`` noise for
stable numbers) in a temporary HOME with a stored key in the file store, and prints in one table:

* median wall time and median peak RSS (GNU ``/usr/bin/time``; shown as n/a without it) over
  ``--runs`` runs (interleaved, after one warm-up run each) of ``python -c pass``, ``python -m
  anaconda_auth api-key`` without a config.toml, the same with a config.toml, every other
  spelling of the command that takes the fast path (``auth api-key``, ``--at SITE api-key``,
  ``api-key --at SITE``, ``token``), and ``--verbose api-key``, which goes through argparse, to
  show what the fast path saves; the ratio of each to ``python -c pass``;
* the median over ``--import-runs`` runs of the cumulative ``python -X importtime`` figure for
  ``import anaconda_auth``.

Targets (issue 2): api-key <= 2.0x ``python -c pass``; import <= 15 ms. This is a measurement to
read, not a test: it exits 0 whatever the numbers are (and 1 only if a command fails).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GNU_TIME = "/usr/bin/time"
API_KEY_TARGET_RATIO = 2.0
IMPORT_TARGET_MS = 15.0
CONFIG_TOML = """\
default_site = "anaconda.com"

[sites."anaconda.com"]
domain = "anaconda.com"

[plugin.auth]
ssl_verify = true
"""


def _jwt(exp: int) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part({'sub': 'bench', 'exp': exp})}.c2ln"


def _stored_value(domain: str, api_key: str) -> str:
    payload = {"domain": domain, "api_key": api_key, "repo_tokens": [], "version": 2}
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def _sandbox(root: Path, with_config: bool, api_key: str) -> dict[str, str]:
    """A HOME with the key in ~/.anaconda/keyring (and maybe a config.toml); returns its env."""
    home, secrets = root / "home", root / "secrets"
    (home / ".anaconda").mkdir(parents=True)
    secrets.mkdir()
    keyring = home / ".anaconda" / "keyring"
    keyring.write_text(json.dumps({"Anaconda Cloud": {"anaconda.com": _stored_value("anaconda.com", api_key)}}))
    os.chmod(keyring, 0o600)
    if with_config:
        (home / ".anaconda" / "config.toml").write_text(CONFIG_TOML)
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("ANACONDA_", "CONDA_", "PYTHON", "XDG_"))
           and k not in ("CONDARC", "MAMBARC", "DBUS_SESSION_BUS_ADDRESS")}
    # Bytecode caching stays on: the warm-up run writes __pycache__/anaconda_auth.*.pyc, as
    # installing the wheel would; without it every run would include compiling the module.
    env.update(HOME=str(home), ANACONDA_SECRETS_DIR=str(secrets), PYTHONPATH=str(REPO))
    return env


def _run_once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, bytes]:
    """(wall seconds, stdout) of one run; exits the bench if the command fails."""
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            capture_output=True, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"bench: {' '.join(argv)} exited {result.returncode}:\n"
                 f"{result.stderr.decode(errors='replace')}")
    return wall, result.stdout


def _peak_rss_kib(argv: list[str], env: dict[str, str], cwd: Path, out: Path) -> int | None:
    """Peak RSS of one run, in KiB, measured by GNU time; None without /usr/bin/time.

    Not getrusage/wait4 from here: on Linux a child's ru_maxrss includes the memory of the
    process it was forked from (this Python) as it was before exec, so every command would
    show this script's own size. GNU time is small, so its child's figure is the command's.
    """
    if not os.access(GNU_TIME, os.X_OK):
        return None
    subprocess.run([GNU_TIME, "-f", "%M", "-o", str(out), *argv], env=env, cwd=cwd,
                   stdin=subprocess.DEVNULL, capture_output=True, check=True)
    return int(out.read_text().split()[-1])


def _import_time_us(env: dict[str, str], cwd: Path) -> int:
    """Cumulative microseconds of ``import anaconda_auth`` from -X importtime."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import anaconda_auth"],
                            env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"bench: import anaconda_auth failed:\n{result.stderr}")
    for line in result.stderr.splitlines():
        # "import time:       123 |        456 | anaconda_auth"
        if line.startswith("import time:") and line.rsplit("|", 1)[-1].strip() == "anaconda_auth":
            return int(line.split("|")[1].strip())
    sys.exit("bench: no importtime line for anaconda_auth")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per command (default 30)")
    parser.add_argument("--import-runs", type=int, default=10,
                        help="runs of python -X importtime (default 10)")
    args = parser.parse_args()

    api_key = _jwt(int(time.time()) + 365 * 86400)
    with tempfile.TemporaryDirectory(prefix="aa-bench-") as tmp:
        root = Path(tmp)
        plain = _sandbox(root / "plain", with_config=False, api_key=api_key)
        configured = _sandbox(root / "configured", with_config=True, api_key=api_key)
        cwd = root / "cwd"
        cwd.mkdir()
        module = [sys.executable, "-m", "anaconda_auth"]
        cli = [*module, "api-key"]
        # The cost of ``python -m`` itself (runpy; on 3.9 it imports typing): a second
        # baseline, so the module's own share can be read off.
        (cwd / "aa_bench_empty.py").write_text("")
        cases = [
            ("python -c pass", [sys.executable, "-c", "pass"], plain),
            ("python -m <empty module>", [sys.executable, "-m", "aa_bench_empty"], plain),
            ("api-key, no config.toml", cli, plain),
            ("api-key, with config.toml", cli, configured),
            ("auth api-key", [*module, "auth", "api-key"], plain),
            ("--at anaconda.com api-key", [*module, "--at", "anaconda.com", "api-key"], plain),
            ("api-key --at anaconda.com", [*cli, "--at", "anaconda.com"], plain),
            ("token", [*module, "token"], plain),
            ("--verbose api-key (argparse)", [*module, "--verbose", "api-key"], plain),
        ]
        for label, argv, env in cases:  # warm-up, and a check that api-key really works
            _, out = _run_once(argv, env, cwd)
            if argv[:3] == module and out.decode().strip() != api_key:
                sys.exit(f"bench: {label} printed {out!r}, not the stored key")
        walls: dict[str, list[float]] = {label: [] for label, _, _ in cases}
        rss: dict[str, list[int]] = {label: [] for label, _, _ in cases}
        for _ in range(args.runs):  # interleaved, so drift hits every case alike
            for label, argv, env in cases:
                walls[label].append(_run_once(argv, env, cwd)[0])
                peak = _peak_rss_kib(argv, env, cwd, root / "time.out")
                if peak is not None:
                    rss[label].append(peak)
        import_us = [_import_time_us(plain, cwd) for _ in range(args.import_runs)]

    baseline = statistics.median(walls["python -c pass"])
    print(f"interpreter: {sys.executable} (Python {sys.version.split()[0]}, {sys.platform})")
    print(f"runs: {args.runs} per command, interleaved; medians shown\n")
    print(f"{'command':30} {'wall ms':>9} {'peak RSS MiB':>13} {'x python -c pass':>17}  target")
    for label, _, _ in cases:
        wall = statistics.median(walls[label])
        ratio = wall / baseline
        target = "" if label.startswith("python") or "argparse" in label else (
            f"<= {API_KEY_TARGET_RATIO:.1f}x  {'ok' if ratio <= API_KEY_TARGET_RATIO else 'MISSED'}")
        peak = f"{statistics.median(rss[label]) / 1024:13.1f}" if rss[label] else f"{'n/a':>13}"
        print(f"{label:30} {wall * 1000:9.1f} {peak} {ratio:17.2f}  {target}")
    import_ms = statistics.median(import_us) / 1000
    verdict = "ok" if import_ms <= IMPORT_TARGET_MS else "MISSED"
    print(f"\nimport anaconda_auth (-X importtime cumulative, median of {args.import_runs}): "
          f"{import_ms:.2f} ms   target <= {IMPORT_TARGET_MS:.0f} ms  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
