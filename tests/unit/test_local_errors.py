"""A probe that failed for a reason of our own is counted and logged once, never evidence."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from monitor.daemon import Monitor
from monitor.probing.failures import Failure, Phase
from monitor.probing.result import ProbeResult

CATALOG = """\
defaults: {interval: 10s, timeout: 5s, resolvers: ['127.0.0.1:1'], down_after: 1}
targets:
  - {name: kazinform, tcp: 'h:1', country: KZ, category: news}
controls:
  - {name: ripe, tcp: 'h:2'}
"""


def failed(name: str, failure: Failure, detail: str) -> ProbeResult:
    return ProbeResult(name, 1_700_000_000.0, 0.001, False, failure, Phase.CONNECT, detail=detail)


def test_local_errors_are_neither_results_nor_states_and_are_logged_once_per_cause(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "targets.yaml"
    config.write_text(CATALOG)
    monitor = Monitor(config)
    assert monitor.reload()
    with caplog.at_level(logging.WARNING, logger="monitor.daemon"):
        for name in ("kazinform", "ripe", "kazinform"):
            monitor.record(failed(name, Failure.LOCAL_ERROR, "[Errno 24] Too many open files"))
        monitor.record(failed("ripe", Failure.LOCAL_ERROR, "[Errno 105] No buffer space available"))
    assert monitor.results.latest == {} and monitor.results.failures == {}
    assert all(state.failures_in_a_row == 0 for state in monitor.analyzer.states.values())
    assert monitor.analyzer.vantage_online
    assert monitor.registry.get_sample_value("monitor_probe_local_errors_total") == 4
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2 and "EMFILE" in warnings[0] and "ENOBUFS" in warnings[1]
    monitor.record(failed("kazinform", Failure.TCP_REFUSED, "[Errno 111] Connection refused"))
    assert monitor.analyzer.states["kazinform"].failures_in_a_row == 1  # real failures still count
