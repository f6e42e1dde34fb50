"""A skipped test is a visible event: a pytest plugin that fails the session on any skip that is
not expected on this machine.

Every skip (a ``pytest.skip`` in a test or fixture, an ``importorskip`` at collection) must
match an :class:`ExpectedSkip` whose machine condition holds here; otherwise the session ends
red (exit status 1) with a section naming each unexpected skip and its reason. Expected skips
are listed too, with the condition that made them expected. ``-rs`` (pyproject's addopts)
prints pytest's own line for each skip.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pytest

CAP_SYS_ADMIN = 21  # linux/capability.h: mount(2) needs it


def has_mount_privilege() -> bool:
    """This process may mount file systems (CAP_SYS_ADMIN in its effective capabilities)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:  # not Linux: no tmpfs mounts for the tests either
        return False
    effective = next((line.split()[1] for line in status.splitlines() if line.startswith("CapEff:")), "0")
    return bool(int(effective, 16) >> CAP_SYS_ADMIN & 1)


@dataclass(frozen=True)
class ExpectedSkip:
    """Tests (an fnmatch pattern over node ids) that may skip when ``holds()`` says the machine
    is as ``condition`` describes."""

    test: str
    condition: str
    holds: Callable[[], bool]


@dataclass(frozen=True)
class Skip:
    nodeid: str
    reason: str


def _reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)


class SkipPolicy:
    """Register once per session: ``config.pluginmanager.register(SkipPolicy(expected))``."""

    def __init__(self, expected: Sequence[ExpectedSkip]) -> None:
        self.expected = tuple(expected)
        self.skips: list[Skip] = []
        self.allowed: list[tuple[Skip, ExpectedSkip]] = []
        self.unexpected: list[Skip] = []

    def _record(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skips.append(Skip(report.nodeid, _reason(report)))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def _expectation(self, skip: Skip) -> ExpectedSkip | None:
        return next((e for e in self.expected if fnmatch.fnmatchcase(skip.nodeid, e.test) and e.holds()), None)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        for skip in self.skips:
            expectation = self._expectation(skip)
            if expectation is None:
                self.unexpected.append(skip)
            else:
                self.allowed.append((skip, expectation))
        if self.unexpected and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.allowed:
            terminalreporter.section("skips expected on this machine")
            for skip, expectation in self.allowed:
                terminalreporter.write_line(f"{skip.nodeid}: expected when {expectation.condition}")
        if self.unexpected:
            terminalreporter.section("unexpected skips", red=True)
            for skip in self.unexpected:
                terminalreporter.write_line(f"{skip.nodeid}: {skip.reason}", red=True)
            terminalreporter.write_line(
                f"{len(self.unexpected)} unexpected skip(s): the session fails. Fix what made the test skip, or add it "
                "to EXPECTED_SKIPS in tests/conftest.py with the machine condition under which the skip is expected.",
                red=True,
            )
