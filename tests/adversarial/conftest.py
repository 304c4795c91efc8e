"""The adversarial tier: property-based and differential tests, fault injection, listener
attacks, a leak matrix and a bad-input sweep (issue 12). Real parts as in tests/conftest.py.

Hypothesis runs under a registered profile, chosen here unless ``--hypothesis-profile`` is given:

- ``adversarial-ci`` (the default): derandomized, so every run (CI included) tries the same cases
  and a failure reproduces with the same command; no example database is written.
- ``adversarial-seeded``: chosen automatically with ``--hypothesis-seed=N``; the same budgets, but
  the cases come from seed N (another reproducible sample; quote N in a bug report).

``ANACONDA_AUTH_ADVERSARIAL_SCALE=K`` multiplies every test's example budget (and the number of
SIGKILLs) by K for a deeper local run. At the end of the session a table shows, per part, how many
cases were tried and how many tests failed.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings

from tests.adversarial import helpers

_COMMON: dict[str, Any] = {
    "deadline": None,  # real processes and sockets: time per example is not the property
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                              HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
settings.register_profile("adversarial-ci", derandomize=True, **_COMMON)
settings.register_profile("adversarial-seeded", derandomize=False, **_COMMON)


def pytest_configure(config: Any) -> None:
    if not config.getoption("hypothesis_profile", None):
        seeded = config.getoption("hypothesis_seed", None) is not None
        settings.load_profile("adversarial-seeded" if seeded else "adversarial-ci")


def pytest_runtest_logreport(report: Any) -> None:
    if report.failed and "tests/adversarial/" in report.nodeid.replace("\\", "/"):
        helpers.FAILED[helpers.part_of(report.nodeid)] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    parts = sorted(set(helpers.TRIED) | set(helpers.FAILED))
    if not parts:
        return
    terminalreporter.write_sep("-", "adversarial tier: cases tried and failed tests per part")
    for part in parts:
        terminalreporter.write_line(
            f"{part:<14} cases tried {helpers.TRIED[part]:>6}   failed tests {helpers.FAILED[part]:>3}")
    terminalreporter.write_line(
        f"{'total':<14} cases tried {sum(helpers.TRIED.values()):>6}   "
        f"failed tests {sum(helpers.FAILED.values()):>3}")
