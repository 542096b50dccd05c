"""What the status page and the outage report are built from: the share history, the SVG charts,
the report's text and the journal's lookup of one outage with its context."""

from __future__ import annotations

import base64
import re
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from monitor.outages.history import ShareHistory
from monitor.outages.journal import Journal, JournalError
from monitor.outages.outage import Outage, Scope
from monitor.outages.rules import CountryState
from monitor.probing.failures import FAILURE_MEANINGS, Failure
from monitor.serving.report import render_report
from monitor.serving.svg import Bar, sparkline, timeline

T0 = 1_641_340_800.0  # 2022-01-05 00:00 UTC


def _state(verdict: str, ratio: float | None) -> CountryState:
    return CountryState(verdict=verdict, ratio=ratio)


def test_a_step_keeps_its_worst_share_and_blind_steps_hold_no_share() -> None:
    history = ShareHistory(step=60, window=600)
    history.record(T0 + 1, {"KZ": _state("normal", 1.0)})
    history.record(T0 + 20, {"KZ": _state("full", 0.1)})
    history.record(T0 + 40, {"KZ": _state("normal", 0.9)})
    history.record(T0 + 61, {"KZ": _state("vantage", 0.0)})  # what a blind monitor counts is no share
    assert [(p.at, p.ratio) for p in history.points("KZ")] == [(T0, 0.1), (T0 + 60, None)]


def test_the_history_keeps_its_window_and_forgets_countries_gone_from_the_catalog() -> None:
    history = ShareHistory(step=60, window=600)
    for minute in range(30):
        history.record(T0 + minute * 60, {"KZ": _state("normal", 1.0), "KG": _state("normal", 1.0)})
    assert len(history.points("KZ")) == 11
    assert history.points("KZ")[0].at == T0 + 19 * 60
    history.record(T0 + 31 * 60, {"KZ": _state("normal", 1.0)})
    assert history.points("KG") == []


def test_the_sparkline_breaks_its_line_where_the_monitor_was_blind() -> None:
    history = ShareHistory(step=60)
    for minute, (verdict, ratio) in enumerate(
        [("normal", 1.0), ("normal", 0.5), ("vantage", None), ("normal", 1.0), ("normal", 1.0)]
    ):
        history.record(T0 + minute * 60, {"KZ": _state(verdict, ratio)})
    svg = sparkline(history.points("KZ"), T0, T0 + 300, history.step, width=300, height=36)
    lines = re.findall(r'<polyline points="([^"]+)"', svg)
    assert lines == ["0.0,1.0 60.0,18.0", "180.0,1.0 240.0,1.0"]  # top is 100 %, the middle 50 %
    assert svg.count('fill="#bdbdbd"') == 1  # the blind minute, shaded


def test_the_timeline_draws_one_bar_per_outage_and_escapes_labels() -> None:
    bars = [
        Bar("KZ", T0 + 3600, T0 + 7200, "full"),
        Bar("<script>alert(1)</script>", T0, None, "site"),
    ]
    svg = timeline(bars, T0, T0 + 4 * 3600)
    assert svg.count('class="bar"') == 2
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert re.findall(r">(\d\d:\d\d)</text>", svg) == ["01:00", "02:00", "03:00", "04:00"]
    assert 'fill="#c62828"' in svg  # a shutdown is red


def test_every_failure_string_has_a_meaning_for_the_report() -> None:
    assert set(FAILURE_MEANINGS) == set(Failure)


def _shutdown() -> Outage:
    return Outage(
        scope=Scope.COUNTRY,
        key="KZ",
        country="KZ",
        started_at=T0 + 600,
        ended_at=T0 + 3 * 86400,
        evidence=Counter({"tcp_timeout": 90, "dns_servfail": 10}),
        targets=["kazinform", "egov|gov"],
        verdict="whitelist",
        details={"survivors": ["nationalbank", "halykbank", "kaspi"], "survivors_total": 3,
                 "regions": {"KZ-75": 8}},
        phases=[{"verdict": "full", "at": T0 + 600}, {"verdict": "whitelist", "at": T0 + 86400}],
    )


def test_the_report_says_what_how_and_when_in_html_and_markdown() -> None:
    outage = _shutdown()
    network = Outage(Scope.NETWORK, "KZ/AS9198", T0, country="KZ", ended_at=T0 + 600, absorbed_by=outage.id)
    html = render_report(outage, [network], "html", now=T0 + 4 * 86400)
    assert "KZ: WHITELIST" in html
    assert "It began at 2022-01-05 00:10:00 UTC and ended at 2022-01-08 00:00:00 UTC" in html
    assert "it lasted 2d23h50m." in html
    assert "<code>tcp_timeout</code></td><td class=\"num\">90</td><td class=\"num\">90 %" in html
    assert FAILURE_MEANINGS[Failure.TCP_TIMEOUT] in html
    assert "Still reachable while it lasted (3): nationalbank, halykbank, kaspi." in html
    assert html.count('class="bar"') == 3  # two phases and the network that went dark first
    markdown = render_report(outage, [network], "markdown", now=T0 + 4 * 86400)
    assert markdown.startswith("# KZ: WHITELIST\n")
    assert "| targets | 2: kazinform, egov\\|gov |" in markdown  # a pipe cannot break the table
    assert "| regions | KZ-75: 8 |" in markdown
    uri = re.search(r"\(data:image/svg\+xml;base64,([^)]+)\)", markdown)
    assert uri is not None and base64.b64decode(uri.group(1)).startswith(b"<svg")


def test_an_open_outage_is_reported_as_still_going_on() -> None:
    outage = Outage(Scope.MOBILE, "KZ/mobile", T0, country="KZ", verdict="mobile_only")
    html = render_report(outage, [], "html", now=T0 + 5400)
    assert "MOBILE SHUTDOWN" in html and "was still going on at 2022-01-05 01:30:00 UTC, after 1h30m" in html


def test_the_journal_finds_an_outage_by_a_prefix_of_its_id_with_its_context(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    shutdown = _shutdown()
    before = Outage(Scope.NETWORK, "KZ/AS9198", T0, country="KZ", ended_at=T0 + 600, absorbed_by=shutdown.id)
    during = Outage(Scope.SITE, "akorda", T0 + 7200, country="KZ", ended_at=T0 + 9000)
    elsewhere = Outage(Scope.COUNTRY, "KG", T0 + 7200, country="KG")
    later = Outage(Scope.SITE, "zakon", T0 + 4 * 86400, country="KZ")
    journal = Journal(path)
    assert journal.sync([shutdown, before, during, elsewhere, later], {})
    journal.close()

    outage, context = Journal.read_with_context(path, shutdown.id[:8])
    assert outage.id == shutdown.id and outage.phases == shutdown.phases
    assert [other.key for other in context] == ["KZ/AS9198", "akorda"]
    with pytest.raises(JournalError, match="no outage with id ffffff"):
        Journal.read_with_context(path, "ffffff")
    with pytest.raises(JournalError, match="is not an outage id"):
        Journal.read_with_context(path, "abc")
    with pytest.raises(JournalError, match="is not an outage id"):
        Journal.read_with_context(path, "%%%%%%")


def test_an_ambiguous_prefix_asks_for_more_digits(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    assert journal.sync([Outage(Scope.SITE, name, T0, id=f"abcdef{i}" + "0" * 25) for i, name in
                         enumerate(["a", "b"])], {})
    journal.close()
    with pytest.raises(JournalError, match="2 outages have ids starting with abcdef; give more"):
        Journal.read_with_context(path, "abcdef")
    assert sqlite3.connect(path).execute("SELECT count(*) FROM outages").fetchone() == (2,)
