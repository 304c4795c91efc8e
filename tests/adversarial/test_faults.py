"""Fault injection on the token store and the config.toml writer: real processes, real signals,
real file systems (issue 12, part 2). Runs as root, as CI does (tmpfs and bind mounts, chown).

- SIGKILL: a writer (``login --with-token``, ``logout``; ``sites add/modify/remove``) is killed
  at every file-system step of its write (tests/adversarial/pause_writer.py stops it there through
  an audit hook) and at seeded random delays spread over its measured write time. After each kill
  the file parses and holds exactly the old or the new state; the next write removes a killed
  writer's temp file, and after logging out no file holds a key any more.
- ENOSPC: ~/.anaconda on a full 64 KiB tmpfs (and with a few pages free, less than the new file
  needs): a one-line error naming the file, the old file byte-identical, no temp file.
- Read-only ~/.anaconda or HOME (a read-only bind mount): a clear error, nothing lost, reads work.
- Symlinks: the policy of ``_trusted_target`` (README, Token storage) case by case, with links
  chown'd to uid 65534 as "someone else".
- 50 concurrent logins, logouts and api-key reads on the same and different sites.
- umask 000 and 077: the store 0600, its directories 0700, config.toml 0600.
- An OS keyring that never answers: every command ends within its timeout with a clear message.
"""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

import anaconda_auth as aa
from test_anaconda_auth import reset_caches
from tests.adversarial.helpers import (
    KEYRING_SERVICE,
    PYTHON,
    ROOT,
    Mount,
    budget,
    clean_env,
    cli,
    encode_entry,
    stored_keys,
    temp_files,
    tried,
)

PART = "faults"
HERE = Path(__file__).resolve().parent
PAUSE_WRITER = HERE / "pause_writer.py"
SEED = 20261207
NOBODY = 65534  # "someone else"
KEYRING_TIMEOUT = 5.0  # seconds; the README: "Every call runs under a 5 s timeout"
SITES = ("a", "b", "c", "d", "e", "f")


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the fault injection tests need root (mounts, chown), as CI runs them",
                    pytrace=False)


def make_home(base: Path, sites: tuple[str, ...] = SITES) -> Path:
    """A HOME whose config.toml defines ``sites`` (domain ``<name>.example``)."""
    home = base
    (home / ".anaconda").mkdir(parents=True, exist_ok=True, mode=0o700)
    text = "# managed by hand\n" + "".join(f'\n[sites.{s}]\ndomain = "{s}.example"\n' for s in sites)
    (home / ".anaconda" / "config.toml").write_text(text)
    return home


def login(home: Path, site: str, key: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return cli(home, "--at", site, "login", "--with-token", "--no-verify", input=key + "\n", **kw)


def store_entries(path: Path) -> dict[str, str]:
    """{domain: stored value} of a token store file; raises unless it is exactly one."""
    data = json.loads(path.read_bytes()) if path.exists() else {}
    assert set(data) <= {KEYRING_SERVICE}, data
    return dict(data.get(KEYRING_SERVICE, {}))


def module_keys(home: Path) -> dict[str, str]:
    """{domain: key} as get_api_key answers for each site of ``home`` (no key: left out), read
    as a fresh process would (the in-process cache of the store forgotten)."""
    reset_caches()
    keys = {}
    for site in SITES:
        config = aa.resolve_config(site, environ={"HOME": str(home)}, home=str(home), cwd=str(home))
        try:
            keys[config.domain] = aa.get_api_key(config)
        except aa.TokenNotFoundError:
            continue
    return keys


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A failure with a single-line message holding ``needles`` and no traceback."""
    assert result.returncode != 0, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# =================================================================================================
# SIGKILL at every step and at random points
# =================================================================================================


class Run:
    """One writer run under pause_writer.py: completed, or SIGKILLed at a step or after a delay."""

    def __init__(self, home: Path, args: list[str], stdin: str = "", pause_at: int = -1,
                 delay: float | None = None) -> None:
        report_r, report_w = os.pipe()
        wait_r, wait_w = os.pipe()
        command = [PYTHON, str(PAUSE_WRITER), str(report_w), str(wait_r),
                   str(home / ".anaconda"), str(pause_at), "--", *args]
        proc = subprocess.Popen(command, env=clean_env(home), cwd=str(home), pass_fds=(report_w, wait_r),
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        os.close(report_w)
        os.close(wait_r)
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.write(stdin.encode())
        proc.stdin.close()
        self.steps: list[str] = []
        with os.fdopen(report_r, "rb") as report:
            line = report.readline()  # step 0: the writer opened the lock file
            started = time.perf_counter()
            if line and delay is not None:
                time.sleep(delay)  # the kill point, drawn from a seeded RNG; not synchronisation
                proc.send_signal(signal.SIGKILL)
            elif line and pause_at >= 0:
                while line and not line.startswith(f"{pause_at} ".encode()):
                    self.steps.append(line.decode().split()[1])
                    line = report.readline()
                if line:  # the writer reported step pause_at and now waits there: kill it
                    proc.send_signal(signal.SIGKILL)
            else:
                while line:
                    self.steps.append(line.decode().split()[1])
                    line = report.readline()
            self.write_time = time.perf_counter() - started
        proc.wait(timeout=60)
        os.close(wait_w)
        self.stderr = proc.stderr.read().decode()
        proc.stderr.close()
        self.returncode = proc.returncode
        self.killed = proc.returncode == -signal.SIGKILL
        assert self.killed or proc.returncode == 0, (args, proc.returncode, self.stderr)


class KillCampaign:
    """Kills one writer ``n`` times: every other run stops at a step (cycling through all of
    them), the others at a seeded random delay over the measured write time. Tallies outcomes."""

    def __init__(self, home: Path, rng: random.Random) -> None:
        self.home = home
        self.rng = rng
        self.steps: dict[str, int] = {}
        self.durations: dict[str, float] = {}
        self.pauses: dict[str, int] = {}
        self.outcomes = {"old": 0, "new": 0, "temp file left": 0, "completed": 0}

    def calibrate(self, kind: str, run: Run) -> None:
        assert not run.killed
        self.steps[kind] = len(run.steps)
        self.durations[kind] = max(self.durations.get(kind, 0.0), run.write_time)

    def kill(self, kind: str, args: list[str], stdin: str, i: int) -> Run:
        if i % 2 == 0:
            k = self.pauses[kind] = self.pauses.get(kind, -1) + 1
            run = Run(self.home, args, stdin, pause_at=k % (self.steps[kind] + 1))
        else:
            run = Run(self.home, args, stdin, delay=self.rng.uniform(0, self.durations[kind] * 1.2))
        self.outcomes["completed"] += not run.killed
        return run


def test_sigkill_the_token_store_writer_leaves_old_or_new_never_a_mix(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    path = home / ".anaconda" / "keyring"
    rng = random.Random(SEED)
    campaign = KillCampaign(home, rng)
    # Calibration: the steps and time of a complete login and logout (also the first state).
    campaign.calibrate("login", Run(home, ["--at", "a", "login", "--with-token", "--no-verify"],
                                    "seed-a\n"))
    campaign.calibrate("logout", Run(home, ["--at", "a", "logout"]))
    assert store_entries(path) == {}
    state: dict[str, str] = {}
    written: set[str] = set()
    n = budget(120)
    for i in range(n):
        site = rng.choice(SITES[:4])
        domain = f"{site}.example"
        new = dict(state)
        if domain in state and rng.random() < 0.4:
            kind, args, stdin = "logout", ["--at", site, "logout"], ""
            del new[domain]
        else:
            key = f"key-{i}-{rng.getrandbits(32):08x}"
            kind, args, stdin = "login", ["--at", site, "login", "--with-token", "--no-verify"], key + "\n"
            new[domain] = encode_entry(domain, key)
            written.add(new[domain])
        complete = i % 10 == 9  # a write that runs to the end: it must clear every leftover
        run = Run(home, args, stdin) if complete else campaign.kill(kind, args, stdin, i)
        if complete:
            campaign.calibrate(kind, run)
        now = store_entries(path)
        assert now in (state, new), (i, kind, run.steps, now)
        assert module_keys(home) == stored_keys(path)  # the module reads the store, never a leftover
        campaign.outcomes["new" if now == new and now != state else "old"] += 1
        leftovers = temp_files(path.parent)
        campaign.outcomes["temp file left"] += bool(leftovers)
        if not run.killed:
            assert now == new and leftovers == [], (i, leftovers)
        state = now
    # Every state was reached: kills before, during and after the rename, with temp files left.
    assert campaign.outcomes["old"] and campaign.outcomes["new"], campaign.outcomes
    assert campaign.outcomes["temp file left"], campaign.outcomes
    # Log out of every site: no file anywhere under ~/.anaconda holds a key written above.
    for site in SITES[:4]:
        assert cli(home, "--at", site, "logout").returncode == 0
    assert store_entries(path) == {} and temp_files(path.parent) == []
    for file in path.parent.iterdir():
        data = file.read_bytes()
        assert not any(value.encode() in data for value in written), file
    tried(PART, n)
    print(f"token store writer: {n} runs, {campaign.outcomes}; steps per write {campaign.steps}")


def test_sigkill_the_config_writer_leaves_old_or_new_never_a_mix(tmp_path: Path) -> None:
    home = make_home(tmp_path, sites=("base",))
    path = home / ".anaconda" / "config.toml"
    rng = random.Random(SEED + 1)
    campaign = KillCampaign(home, rng)
    model: dict[str, dict[str, Any]] = {"base": {"domain": "base.example"}}
    campaign.calibrate("edit", Run(home, ["sites", "modify", "--name", "base",
                                          "--extra-headers", '{"x-rev": "0"}', "--yes"]))
    model["base"]["extra_headers"] = {"x-rev": "0"}
    old_text = path.read_text()
    n = budget(100)
    for i in range(n):
        new = json.loads(json.dumps(model))
        extra = [name for name in model if name != "base"]
        choice = rng.random() if extra else 0.0
        if choice < 0.4:
            name = f"s{i}"
            args = ["sites", "add", "--name", name, "--domain", f"{name}.example", "--yes"]
            new[name] = {"domain": f"{name}.example"}
        elif choice < 0.7:
            name = rng.choice(["base", *extra])
            args = ["sites", "modify", "--name", name, "--extra-headers",
                    json.dumps({"x-rev": str(i)}), "--yes"]
            new[name]["extra_headers"] = {"x-rev": str(i)}
        else:
            name = rng.choice(extra)
            args = ["sites", "remove", name, "--yes"]
            del new[name]
        complete = i % 10 == 9
        run = Run(home, args) if complete else campaign.kill("edit", args, "", i)
        if complete:
            campaign.calibrate("edit", run)
        text = path.read_text()
        parsed = tomllib.loads(text)  # always parses
        assert text.startswith("# managed by hand\n")
        assert parsed["sites"] in (model, new), (i, args, run.steps, text)
        if parsed["sites"] == new and text != old_text:
            campaign.outcomes["new"] += 1
            model = new
        else:
            assert text == old_text, (i, args, run.steps)  # old state: byte for byte
            campaign.outcomes["old"] += 1
        leftovers = temp_files(path.parent)
        campaign.outcomes["temp file left"] += bool(leftovers)
        if not run.killed:
            assert parsed["sites"] == new and leftovers == [], (i, leftovers)
        old_text = text
    assert campaign.outcomes["old"] and campaign.outcomes["new"], campaign.outcomes
    assert campaign.outcomes["temp file left"], campaign.outcomes
    tried(PART, n)
    print(f"config writer: {n} runs, {campaign.outcomes}; steps per write {campaign.steps}")


# =================================================================================================
# ENOSPC: ~/.anaconda on a full tmpfs
# =================================================================================================

PAGE = 4096


def fill(directory: Path, leave_pages: int) -> Path:
    """Fill the file system of ``directory`` to the last byte, then free ``leave_pages`` pages."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (PAGE, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError:
                    break
        f.truncate(max(0, f.tell() - leave_pages * PAGE))
    return filler


def test_enospc_during_a_save_is_a_clear_error_and_the_old_store_stays(tmp_path: Path) -> None:
    home = make_home(tmp_path, sites=("a",))
    anaconda = home / ".anaconda"
    config = (anaconda / "config.toml").read_bytes()
    outcomes = {"refused": 0, "saved": 0}
    # The new store needs 3 pages (a long username); 0 to 4 pages free: some saves cannot fit,
    # some fit partly (a short write), the last ones fit.
    for free in range(5):
        with Mount(anaconda, "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"):
            (anaconda / "config.toml").write_bytes(config)
            seeded = {"a.example": encode_entry("a.example", "old-key", "u" * 9000)}
            (anaconda / "keyring").write_text(json.dumps({KEYRING_SERVICE: seeded}))
            os.chmod(anaconda / "keyring", 0o600)
            before = (anaconda / "keyring").read_bytes()
            fill(anaconda, free)
            result = login(home, "a", f"new-key-{free}")
            if result.returncode == 0:
                outcomes["saved"] += 1
                assert stored_keys(anaconda / "keyring") == {"a.example": f"new-key-{free}"}
            else:
                outcomes["refused"] += 1
                one_line_error(result, str(anaconda / "keyring"), "No space left on device",
                               "Nothing was changed", "Free some space on that file system")
                assert result.returncode == 1
                assert (anaconda / "keyring").read_bytes() == before
                assert cli(home, "--at", "a", "api-key").stdout == "old-key\n"
                logout = cli(home, "--at", "a", "logout")  # a smaller file: it may fit
                if free == 0 or logout.returncode != 0:
                    one_line_error(logout, str(anaconda / "keyring"), "No space left on device")
                    assert (anaconda / "keyring").read_bytes() == before
                else:
                    assert stored_keys(anaconda / "keyring") == {}
            assert temp_files(anaconda) == []
    assert outcomes["refused"] >= 3 and outcomes["saved"] >= 1, outcomes
    tried(PART, 5)


def test_enospc_during_a_config_edit_is_a_clear_error_and_the_old_file_stays(
        tmp_path: Path) -> None:
    home = make_home(tmp_path, sites=("a",))
    anaconda = home / ".anaconda"
    config = (anaconda / "config.toml").read_bytes()
    with Mount(anaconda, "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"):
        (anaconda / "config.toml").write_bytes(config)
        fill(anaconda, 0)
        result = cli(home, "sites", "add", "--name", "b", "--domain", "b.example", "--yes")
        one_line_error(result, f"Cannot write {anaconda / 'config.toml'}", "No space left on device",
                       "Nothing was changed")
        assert result.returncode == 1
        assert (anaconda / "config.toml").read_bytes() == config
        assert temp_files(anaconda) == []
    tried(PART, 1)


# =================================================================================================
# A read-only home
# =================================================================================================


def test_a_read_only_anaconda_directory_refuses_writes_and_still_reads(tmp_path: Path) -> None:
    home = make_home(tmp_path, sites=("a",))
    anaconda = home / ".anaconda"
    assert login(home, "a", "old-key").returncode == 0
    snapshot = {p.name: p.read_bytes() for p in anaconda.iterdir()}
    with Mount(anaconda, "--bind", str(anaconda)) as mount:
        mount.remount("bind", "ro")
        for args, stdin in ((["--at", "a", "login", "--with-token", "--no-verify"], "new-key\n"),
                            (["--at", "a", "logout"], None),
                            (["sites", "add", "--name", "b", "--domain", "b.example", "--yes"], None)):
            result = cli(home, *args, input=stdin)
            assert result.returncode == 1, result
            one_line_error(result, "Read-only file system", "Nothing was changed")
            assert "move that path aside" not in result.stderr  # advice that fits the fault
            assert str(anaconda) in result.stderr
        read = cli(home, "--at", "a", "api-key")
        assert (read.returncode, read.stdout, read.stderr) == (0, "old-key\n", "")
        status = cli(home, "--at", "a", "status")
        assert status.returncode == 0 and "Logged in:   yes" in status.stdout
        assert {p.name: p.read_bytes() for p in anaconda.iterdir()} == snapshot
    tried(PART, 5)


def test_a_read_only_home_without_anaconda_directory_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with Mount(home, "--bind", str(home)) as mount:
        mount.remount("bind", "ro")
        result = login(home, "anaconda.com", "new-key")
        one_line_error(result, str(home / ".anaconda" / "keyring"), "Read-only file system")
        assert result.returncode == 1
        assert list(home.iterdir()) == []
    tried(PART, 1)


# =================================================================================================
# Symlinks: whose link, which directory
# =================================================================================================


def refused(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    one_line_error(result, "Refusing to write", "Nothing was written", *needles)
    assert result.returncode == 1


def test_own_symlinks_are_followed(tmp_path: Path) -> None:
    home = make_home(tmp_path, sites=("a",))
    dotfiles = home / "dotfiles"
    dotfiles.mkdir(mode=0o700)
    link = home / ".anaconda" / "keyring"
    link.symlink_to(dotfiles / "keyring")  # ours (root's): followed
    assert login(home, "a", "k1").returncode == 0
    assert link.is_symlink() and stored_keys(dotfiles / "keyring") == {"a.example": "k1"}
    assert stat.S_IMODE((dotfiles / "keyring").stat().st_mode) == 0o600
    # ~/.anaconda itself a link to a private directory, and to a sticky world-writable one
    for mode in (0o700, 0o1777):
        target = home / f"elsewhere-{mode:o}"
        target.mkdir()
        target.chmod(mode)
        (target / "config.toml").write_text('[sites.a]\ndomain = "a.example"\n')
        other = home / f"home-{mode:o}"
        other.mkdir()
        (other / ".anaconda").symlink_to(target)
        assert login(other, "a", "k2").returncode == 0
        assert stored_keys(target / "keyring") == {"a.example": "k2"}
    # sudo -E: root writes in a user's home through the user's own link
    user_home = make_home(tmp_path / "user", sites=("a",))
    user_dotfiles = user_home / "dotfiles"
    user_dotfiles.mkdir(mode=0o700)
    user_link = user_home / ".anaconda" / "keyring"
    user_link.symlink_to(user_dotfiles / "keyring")
    for path in (user_home / ".anaconda", user_dotfiles):
        os.chown(path, NOBODY, NOBODY)
    os.lchown(user_link, NOBODY, NOBODY)
    assert login(user_home, "a", "k3").returncode == 0
    assert stored_keys(user_dotfiles / "keyring") == {"a.example": "k3"}
    tried(PART, 4)


def test_a_symlink_owned_by_someone_else_is_not_written_through(tmp_path: Path) -> None:
    home = make_home(tmp_path, sites=("a",))
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    (theirs / "keyring").write_text(json.dumps({KEYRING_SERVICE: {}}))
    before = (theirs / "keyring").read_bytes()
    link = home / ".anaconda" / "keyring"
    link.symlink_to(theirs / "keyring")
    os.lchown(link, NOBODY, NOBODY)
    result = login(home, "a", "secret-key")
    refused(result, f"{link} is a symlink owned by uid {NOBODY}")
    refused(cli(home, "--at", "a", "logout"), f"{link} is a symlink owned by uid {NOBODY}")
    assert (theirs / "keyring").read_bytes() == before
    assert sorted(p.name for p in theirs.iterdir()) == ["keyring"]  # not even a lock file
    # Reads follow it (the policy is about where a secret is written): a key put there reads.
    (theirs / "keyring").write_text(json.dumps({KEYRING_SERVICE: {
        "a.example": encode_entry("a.example", "their-key")}}))
    assert cli(home, "--at", "a", "api-key").stdout == "their-key\n"
    # ~/.anaconda a link owned by someone else: the token store and config.toml are refused
    other = tmp_path / "other"
    other.mkdir()
    (theirs / "config.toml").write_text('[sites.a]\ndomain = "a.example"\n')
    (other / ".anaconda").symlink_to(theirs)
    os.lchown(other / ".anaconda", NOBODY, NOBODY)
    snapshot = {p.name: p.read_bytes() for p in theirs.iterdir()}
    refused(login(other, "a", "secret-key"), f"{other / '.anaconda'} is a symlink owned by uid")
    refused(cli(other, "sites", "add", "--name", "b", "--domain", "b.example", "--yes"),
            f"{other / '.anaconda'} is a symlink owned by uid")
    assert {p.name: p.read_bytes() for p in theirs.iterdir()} == snapshot
    tried(PART, 4)


def test_a_world_writable_directory_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    home = make_home(tmp_path, sites=("a",))
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (home / ".anaconda" / "keyring").symlink_to(shared / "keyring")
    refused(login(home, "a", "secret-key"), f"{shared} is writable by everyone without the sticky")
    # the same directory named directly by keyring_path
    result = login(home, "a", "secret-key", env={"ANACONDA_AUTH_KEYRING_PATH": str(shared / "k")})
    refused(result, f"{shared} is writable by everyone")
    assert list(shared.iterdir()) == []
    tried(PART, 2)


def test_root_never_hands_a_store_in_a_shared_directory_to_its_previous_owner(
        tmp_path: Path) -> None:
    """keyring_path in a sticky shared directory where someone else made the file first: root's
    save must not chown the new file (with root's key) to them, as it does for a user's home."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    planted = shared / "keyring"
    planted.write_text("")
    os.chown(planted, NOBODY, NOBODY)
    home = make_home(tmp_path / "home", sites=("a",))
    result = login(home, "a", "root-key", env={"ANACONDA_AUTH_KEYRING_PATH": str(planted)})
    assert result.returncode == 0, result.stderr
    info = planted.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600)
    tried(PART, 1)


def test_a_user_does_not_write_into_another_users_directory(tmp_path: Path) -> None:
    """As uid 65534 (setpriv): ~/.anaconda links to a sticky world-writable directory that
    belongs to another user (uid 65533), who could replace the file there."""
    base = Path(tempfile.mkdtemp(prefix="anaconda-auth-faults-"))  # /tmp: reachable by 65534
    try:
        base.chmod(0o755)
        home = make_home(base / "home", sites=("a",))
        foreign = base / "foreign"
        foreign.mkdir()
        foreign.chmod(0o1777)
        os.chown(foreign, NOBODY - 1, NOBODY - 1)
        os.unlink(home / ".anaconda" / "config.toml")
        os.rmdir(home / ".anaconda")
        (home / ".anaconda").symlink_to(foreign)
        (foreign / "config.toml").write_text('[sites.a]\ndomain = "a.example"\n')
        for path in (home, home / ".anaconda"):
            os.lchown(path, NOBODY, NOBODY)
        # The right to read and search directories (CAP_DAC_READ_SEARCH, nothing more) lets uid
        # 65534 start an interpreter installed under /root (pyenv's, as the 3.9 venv has); it
        # grants no write, and the refusal tested is the module's own ownership rule.
        result = cli(home, "--at", "a", "login", "--with-token", "--no-verify",
                     input="secret-key\n", prefix=("setpriv", f"--reuid={NOBODY}",
                                                   f"--regid={NOBODY}", "--clear-groups",
                                                   "--inh-caps=+dac_read_search",
                                                   "--ambient-caps=+dac_read_search"))
        refused(result, f"{foreign} belongs to uid {NOBODY - 1}")
        assert sorted(p.name for p in foreign.iterdir()) == ["config.toml"]
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=True)
    tried(PART, 1)


# =================================================================================================
# 50 concurrent logins, logouts and reads
# =================================================================================================


class Op:
    def __init__(self, kind: str, site: str, key: str | None = None) -> None:
        self.kind, self.site, self.key = kind, site, key
        self.start = self.end = 0.0
        self.result: subprocess.CompletedProcess[str] | None = None

    def run(self, home: Path, go: threading.Barrier) -> None:
        go.wait()  # all 50 start together
        self.start = time.monotonic()
        if self.kind == "login":
            assert self.key is not None
            self.result = login(home, self.site, self.key)
        else:
            self.result = cli(home, "--at", self.site, self.kind)
        self.end = time.monotonic()


def test_fifty_concurrent_processes_lose_and_resurrect_nothing(tmp_path: Path) -> None:
    """Sites a, b: only logins (8 each); c, d: stored, only logouts (5 each); e: stored, 6
    logins and 4 logouts; f: stored, never touched; 14 api-key reads of a, c, e, f.

    Invariants: a and b end with a key one of their logins wrote (no update lost); c and d end
    logged out (no entry resurrected by a writer that read the file before a logout); f is
    byte-identical; e ends in the state of an operation no other operation on e started after
    (a possible last one in any serialisation); every read prints a key written for that very
    site, or says it is not logged in (exit 3), never a torn file."""
    home = make_home(tmp_path)
    path = home / ".anaconda" / "keyring"
    preseed = {f"{s}.example": encode_entry(f"{s}.example", f"seed-{s}") for s in "cdef"}
    path.write_text(json.dumps({KEYRING_SERVICE: preseed}))
    path.chmod(0o600)
    ops = [Op("login", s, f"key-{s}-{i}") for s in "ab" for i in range(8)]
    ops += [Op("logout", s) for s in "cd" for _ in range(5)]
    ops += [Op("login", "e", f"key-e-{i}") for i in range(6)] + [Op("logout", "e") for _ in range(4)]
    ops += [Op("api-key", s) for s in "acef" for _ in range(3)] + [Op("api-key", s) for s in "ef"]
    random.Random(SEED).shuffle(ops)
    assert len(ops) == 50
    go = threading.Barrier(len(ops))
    threads = [threading.Thread(target=op.run, args=(home, go)) for op in ops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    final = store_entries(path)
    written = {s: {op.key for op in ops if op.site == s and op.kind == "login"} for s in "abcdef"}
    for op in ops:
        assert op.result is not None
        if op.kind != "api-key":
            assert op.result.returncode == 0, (op.kind, op.site, op.result.stderr)
        elif op.result.returncode == 3:
            assert op.site != "f", op.result.stderr  # f is never touched: always readable
        else:
            assert op.result.returncode == 0, op.result.stderr
            key = op.result.stdout.strip()
            assert key in written[op.site] | {f"seed-{op.site}"}, (op.site, key)
    for site in "ab":
        assert final[f"{site}.example"] in {encode_entry(f"{site}.example", k) for k in written[site]}
    assert "c.example" not in final and "d.example" not in final
    assert final["f.example"] == preseed["f.example"]
    on_e = [op for op in ops if op.site == "e" and op.kind != "api-key"]
    last = [op for op in on_e if not any(other.start > op.end for other in on_e)]
    allowed = {None if op.kind == "logout" else encode_entry("e.example", str(op.key)) for op in last}
    assert final.get("e.example") in allowed, (final.get("e.example"), [(o.kind, o.key) for o in last])
    assert set(final) <= {"a.example", "b.example", "e.example", "f.example"}
    assert temp_files(path.parent) == []
    tried(PART, len(ops))


# =================================================================================================
# umask
# =================================================================================================


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_modes_do_not_depend_on_the_umask(tmp_path: Path, umask: int) -> None:
    home = tmp_path / "home"
    home.mkdir()
    old = os.umask(umask)  # inherited by the CLI processes below
    try:
        assert login(home, "anaconda.com", "k1").returncode == 0
        nested = home / "deep" / "er" / "keyring"
        assert login(home, "anaconda.com", "k2",
                     env={"ANACONDA_AUTH_KEYRING_PATH": str(nested)}).returncode == 0
        assert cli(home, "sites", "add", "--name", "a", "--domain", "a.example",
                   "--yes").returncode == 0
        config = home / ".anaconda" / "config.toml"
        config.chmod(0o644)
        assert cli(home, "sites", "modify", "--name", "a", "--no-ssl-verify",
                   "--yes").returncode == 0
    finally:
        os.umask(old)
    anaconda = home / ".anaconda"
    assert mode(anaconda) == 0o700
    assert mode(anaconda / "keyring") == mode(anaconda / "keyring.lock") == 0o600
    assert mode(home / "deep") == mode(home / "deep" / "er") == 0o700  # makedirs' parents too
    assert mode(nested) == 0o600
    # config.toml is 0600 when new and after an edit (it may hold an API key; README, Sites)
    assert mode(config) == mode(anaconda / "config.toml.lock") == 0o600
    backups = [p for p in anaconda.iterdir() if p.name.startswith("config.backup.")]
    assert len(backups) == 1 and mode(backups[0]) == 0o600
    tried(PART, 4)


# =================================================================================================
# An OS keyring that never answers
# =================================================================================================


def test_every_command_ends_within_its_timeout_when_the_os_keyring_hangs(tmp_path: Path) -> None:
    """``Silent`` blocks in every get/set/delete, ``Stuck`` already when keyring builds it.

    Reads and saves fall back to the file store with one warning; logout deletes the file's
    entry and fails (exit 1) saying the OS keyring could not be reached, since a key there would
    log the user in again once it answers."""
    limit = KEYRING_TIMEOUT * 2 + 10  # at most two keyring waits, plus start-up
    runs: list[tuple[str, str, Path, dict[str, Any]]] = []
    commands = (["login", "--with-token", "--no-verify"], ["api-key"], ["status"], ["logout"])
    for backend in ("Silent", "Stuck"):
        for command in commands:
            home = tmp_path / f"{backend}-{command[0]}"
            (home / ".anaconda").mkdir(parents=True)
            (home / ".anaconda" / "config.toml").write_text(
                '[plugin.auth]\npreferred_token_storage = "system"\n')
            (home / ".anaconda" / "keyring").write_text(json.dumps(
                {KEYRING_SERVICE: {"anaconda.com": encode_entry("anaconda.com", "file-key")}}))
            runs.append((backend, command[0], home, {}))

    def run(backend: str, home: Path, command: list[str], out: dict[str, Any]) -> None:
        env = {"PYTHON_KEYRING_BACKEND": f"hanging_keyring.{backend}",
               "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}"}
        started = time.monotonic()
        out["result"] = cli(home, *command, env=env, input="new-key\n", timeout=limit + 30)
        out["elapsed"] = time.monotonic() - started

    threads = [threading.Thread(target=run, args=(b, h, next(c for c in commands if c[0] == n), o))
               for b, n, h, o in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(limit + 60)
    warning = "The system keyring is not usable (TimeoutError: no answer within"
    for backend, name, home, out in runs:
        result, elapsed = out["result"], out["elapsed"]
        where = (backend, name, result.returncode, result.stderr)
        assert elapsed < limit, where
        assert "Traceback" not in result.stderr, where
        keys = stored_keys(home / ".anaconda" / "keyring")
        if name == "login":
            assert result.returncode == 0 and warning in result.stderr, where
            assert keys == {"anaconda.com": "new-key"}, where
        elif name == "api-key":
            assert (result.returncode, result.stdout) == (0, "file-key\n"), where
            assert warning in result.stderr, where
        elif name == "status":
            assert result.returncode == 0 and "Logged in:   yes" in result.stdout, where
        else:
            assert result.returncode == 1, where
            assert "Could not reach the system keyring" in result.stderr, where
            assert "The file store's entry was deleted." in result.stderr, where
            assert keys == {}, where
    print({(b, n): round(o["elapsed"], 1) for b, n, _, o in runs})
    tried(PART, len(runs))
