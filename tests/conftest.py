"""MONITOR_TEST_LOOP=uvloop runs the whole suite on uvloop, the daemon's default when installed.
MONITOR_TEST_NO_SKIP=1 (set by .ci/run as root, after scripts/setup-debian.sh) turns every skip
into a failure: there, each binary and privilege a test needs is present, so a skip is a defect."""

from __future__ import annotations

import asyncio
import os

import pytest


@pytest.fixture(scope="session")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    if os.environ.get("MONITOR_TEST_LOOP") == "uvloop":
        import uvloop

        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()


def _no_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if report.skipped and os.environ.get("MONITOR_TEST_NO_SKIP") == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped where every test must run (MONITOR_TEST_NO_SKIP=1): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    _no_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    """A whole module that skips itself (a missing binary, at import) is caught here, not above."""
    outcome = yield
    _no_skip(outcome.get_result())
