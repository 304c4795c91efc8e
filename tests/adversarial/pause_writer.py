"""Run ``python -m anaconda_auth ARGS`` and report each file-system step of its write, so the
fault-injection tests can SIGKILL it exactly there (no strace, no sleeps as synchronisation).

    python pause_writer.py REPORT_FD WAIT_FD WATCH_DIR PAUSE_AT -- ARGS...

An audit hook (PEP 578) sees every open, mkstemp, chmod, rename, unlink and flock the module does
in WATCH_DIR from the moment it opens a ``*.lock`` file there. Each such step is numbered from 0
and written to REPORT_FD as ``N event`` *before* the step runs; at step PAUSE_AT (-1: never) the
process then blocks reading WAIT_FD, which the test never writes to: it kills the process there.
The module itself runs unchanged (runpy, as ``-m`` does).
"""

from __future__ import annotations

import os
import runpy
import sys

STEPS = frozenset({"open", "os.mkdir", "os.listdir", "os.remove", "os.chmod", "os.chown",
                   "os.rename", "tempfile.mkstemp", "fcntl.flock"})


def main() -> None:
    report_fd, wait_fd, watch_dir, pause_at = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                               int(sys.argv[4]))
    args = sys.argv[sys.argv.index("--") + 1:]
    state = {"armed": False, "step": 0}

    def hook(event: str, hook_args: tuple[object, ...]) -> None:
        if event not in STEPS:
            return
        first = hook_args[0] if hook_args else None
        in_dir = isinstance(first, str) and first.startswith(watch_dir)
        if not state["armed"]:
            if not (event == "open" and in_dir and str(first).endswith(".lock")):
                return
            state["armed"] = True
        elif not (in_dir or event == "fcntl.flock"):
            return
        step = state["step"]
        state["step"] += 1
        os.write(report_fd, f"{step} {event}\n".encode())  # os.write raises no audit event
        if step == pause_at:
            os.read(wait_fd, 1)  # never answered: the test kills us here

    sys.addaudithook(hook)
    sys.argv = ["anaconda_auth", *args]
    runpy.run_module("anaconda_auth", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
