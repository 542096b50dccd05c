"""Where the packets stop: usual paths, the stopping point named against them, the evidence's
sentence, its round trip through the journal and the report, and the tracer's answer parsing."""

from __future__ import annotations

import socket
import struct
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.catalog.catalog import parse_catalog
from monitor.catalog.problems import ConfigError
from monitor.outages.analysis import Analyzer
from monitor.outages.journal import Journal
from monitor.outages.outage import Outage, Scope
from monitor.outages.path_evidence import PathEvidence, _spread
from monitor.outages.paths import PathBook, public, stopping_point, summarize
from monitor.probing.latest import LatestResults
from monitor.probing.traceroute import Hop, Trace, _reply, _sockaddr
from monitor.serving.report import render_report

TRANSIT, KAZAKHTELECOM, HOME = 64600, 9198, 64501
COUNTRY = {KAZAKHTELECOM, HOME}
ROUTE = [("10.0.0.1", TRANSIT), ("10.0.1.2", KAZAKHTELECOM), ("10.0.2.2", KAZAKHTELECOM), ("10.0.3.2", HOME)]
DESTINATION = "10.96.1.1"


def _trace(
    answering: int, *, reached: bool = False, at: float = 0.0, last_reply: str = "time_exceeded"
) -> Trace:
    """A trace to DESTINATION answered by the first `answering` routers of ROUTE, then one silent hop
    (or the destination, when `reached`)."""
    hops = [
        Hop(ttl, address, 0.001, "time_exceeded", asn)
        for ttl, (address, asn) in enumerate(ROUTE[:answering], 1)
    ]
    if hops and last_reply != "time_exceeded":
        hops[-1] = Hop(hops[-1].ttl, hops[-1].address, 0.001, last_reply, hops[-1].asn)
    if reached:
        hops.append(Hop(len(hops) + 1, DESTINATION, 0.002, "reached", HOME))
    else:
        hops.append(Hop(len(hops) + 1, None, None, "silent"))
    return Trace(DESTINATION, at, tuple(hops), packets=len(hops))


USUAL = _trace(4, reached=True)


@pytest.mark.parametrize(
    ("answering", "where", "silent_next"),
    [
        (1, "transit", "10.0.1.2"),  # the border silent: stops at our transit
        (2, "border", "10.0.2.2"),  # the core silent: stops at the country's first hop
        (3, "inside", "10.0.3.2"),
        (4, "inside", DESTINATION),  # the network's own router answers, its hosts not
        (0, "nowhere", "10.0.0.1"),
    ],
)
def test_where_a_trace_stops_is_named_by_the_asn_of_its_last_answer(
    answering: int, where: str, silent_next: str
) -> None:
    entry = stopping_point(_trace(answering), USUAL, COUNTRY)
    assert entry["where"] == where
    assert entry["first_silent_on_usual_path"]["address"] == silent_next
    last = ROUTE[answering - 1] if answering else None
    assert entry["stops_at"] == (
        None
        if last is None
        else {"ttl": answering, "address": last[0], "asn": last[1], "reply": "time_exceeded"}
    )


def test_a_trace_that_reaches_says_the_path_is_intact_and_names_no_silent_hop() -> None:
    entry = stopping_point(USUAL, USUAL, COUNTRY)
    assert entry["where"] == "reached" and "first_silent_on_usual_path" not in entry and entry["as_usual"]


def test_a_path_that_stopped_there_before_says_so() -> None:
    """A network whose hosts never answered a trace: its stop is no news."""
    entry = stopping_point(_trace(3), _trace(3), COUNTRY)
    assert entry["as_usual"] and entry["first_silent_on_usual_path"]["address"] is None
    assert summarize([entry], at=0.0)["said"].endswith("(1 of 1 traces), where the usual path stops too")
    assert not stopping_point(_trace(2), USUAL, COUNTRY)["as_usual"]


def test_a_router_that_refuses_is_where_it_stops_with_its_answer() -> None:
    entry = stopping_point(_trace(2, last_reply="prohibited"), USUAL, COUNTRY)
    assert entry["where"] == "border" and entry["stops_at"]["reply"] == "prohibited"


def test_without_a_usual_path_the_asns_still_name_the_stop() -> None:
    entry = stopping_point(_trace(1), None, COUNTRY)
    assert entry["where"] == "transit" and "usual_hops" not in entry


def test_a_changed_path_names_no_silent_hop_of_the_usual_one() -> None:
    detour = Trace(
        DESTINATION,
        0.0,
        (Hop(1, "10.9.9.9", 0.001, "time_exceeded", TRANSIT), Hop(2, None, None, "silent")),
        3,
    )
    assert stopping_point(detour, USUAL, COUNTRY)["first_silent_on_usual_path"] is None


def test_the_usual_path_is_the_most_common_that_reached() -> None:
    book = PathBook(recent=5)
    book.add("KZ/AS64501", _trace(4, reached=True, at=1))
    book.add("KZ/AS64501", _trace(1, at=2))  # a cut, or a router's ICMP rate limit
    book.add("KZ/AS64501", _trace(1, at=3))
    assert book.usual("KZ/AS64501") == _trace(4, reached=True, at=1)
    assert book.usual("KZ/AS9198") is None


def test_among_paths_that_never_reach_the_most_common_and_latest_is_usual() -> None:
    book = PathBook(recent=3)
    for at, answering in enumerate((2, 3, 3, 2, 2)):
        book.add("KZ/AS64501", _trace(answering, at=at))
    assert book.usual("KZ/AS64501") == _trace(2, at=4)  # (3, 2, 2) kept: two of three
    book.set_recent(1)
    assert list(book.traces["KZ/AS64501"]) == [_trace(2, at=4)]


def test_the_evidence_says_where_most_traces_stop_in_one_sentence() -> None:
    entries = [stopping_point(_trace(n), USUAL, COUNTRY) for n in (2, 2, 1)]
    path = summarize(entries, at=100.0)
    assert path["where"] == "border" and path["traced_at"] == 100.0 and len(path["traces"]) == 3
    assert path["said"] == (
        "Packets stop at the first hop inside the country: last answer from 10.0.1.2 (AS9198), hop 2 "
        "(2 of 3 traces); next on the usual path: 10.0.2.2 (AS9198)"
    )


def test_an_outage_is_traced_across_its_networks_in_turn() -> None:
    addresses = {"KZ/AS1": ["a1", "a2", "a3"], "KZ/AS2": ["b1"], "KZ/AS3": ["c1", "c2"]}
    assert _spread(addresses, 4) == [("KZ/AS1", "a1"), ("KZ/AS2", "b1"), ("KZ/AS3", "c1"), ("KZ/AS1", "a2")]
    assert _spread({}, 3) == []


def test_the_path_evidence_survives_the_journal_and_shows_in_the_report(tmp_path: Path) -> None:
    outage = Outage(Scope.NETWORK, "KZ/AS64501", 1_000.0, country="KZ", asn=HOME, targets=["site-1"])
    outage.path = summarize([stopping_point(_trace(2), USUAL, COUNTRY)], at=1_010.0)
    journal = Journal(tmp_path / "journal.sqlite")
    assert journal.sync([outage], {})
    journal.close()
    (loaded,) = Journal.read(tmp_path / "journal.sqlite")
    assert loaded.path == outage.path and Outage.from_dict(loaded.as_dict()).path == outage.path
    markdown = render_report(loaded, [], "markdown", now=2_000.0)
    assert "## Where the packets stop" in markdown and outage.path["said"] in markdown
    assert "| 10.96.1.1 | border | 1 10.0.0.1 AS64600 · 2 10.0.1.2 AS9198 · 3 * |" in markdown
    shown = render_report(replace(loaded, path=public(loaded.path)), [], "markdown", now=2_000.0)
    assert outage.path["said"] in shown and DESTINATION not in shown  # public: no target's address
    html = render_report(loaded, [], "html", now=2_000.0)
    assert '<p id="path">' in html
    assert "Where the packets stop" not in render_report(
        Outage(Scope.SITE, "x", 1.0), [], "markdown", now=2.0
    )


def test_hops_and_traces_round_trip_and_name_their_path() -> None:
    trace = _trace(2).with_asns({"10.0.0.1": 1, "10.0.1.2": 2})
    assert Trace.from_dict(trace.as_dict()) == trace
    assert trace.path == ("10.0.0.1", "10.0.1.2", None) and trace.last_answer == trace.hops[1]
    assert [hop.asn for hop in trace.hops] == [1, 2, None] and not trace.reached


@pytest.mark.parametrize(
    ("origin", "icmp_type", "code", "from_destination", "reply"),
    [
        (2, 11, 0, False, "time_exceeded"),
        (2, 3, 3, True, "reached"),  # port unreachable from the destination
        (2, 3, 0, False, "net_unreachable"),
        (2, 3, 1, False, "host_unreachable"),
        (2, 3, 13, False, "prohibited"),
        (2, 3, 5, False, "unreachable"),
        (3, 3, 0, False, "time_exceeded"),  # ICMPv6
        (3, 1, 1, False, "prohibited"),
        (3, 1, 4, True, "reached"),
    ],
)
def test_each_icmp_answer_has_its_reply(
    origin: int, icmp_type: int, code: int, from_destination: bool, reply: str
) -> None:
    assert _reply(origin, icmp_type, code, from_destination) == reply


def test_the_offender_is_read_from_either_family_of_sockaddr() -> None:
    v4 = struct.pack("=HH4s8x", socket.AF_INET, 0, socket.inet_aton("192.0.2.7"))
    v6 = struct.pack("=HHI16sI", socket.AF_INET6, 0, 0, socket.inet_pton(socket.AF_INET6, "2001:db8::7"), 0)
    assert _sockaddr(v4) == "192.0.2.7" and _sockaddr(v6) == "2001:db8::7"
    assert _sockaddr(struct.pack("=H6x", socket.AF_UNIX)) is None


def test_the_paths_options_have_defaults_and_a_missing_ipasn_file_is_named(tmp_path: Path) -> None:
    catalog = parse_catalog("targets: []\n")
    assert catalog.paths.enabled and catalog.paths.interval == 3600 and catalog.paths.traces_per_outage == 3
    with pytest.raises(ConfigError) as caught:
        parse_catalog(
            textwrap.dedent(f"""\
            targets: []
            paths: {{ipasn_file: {tmp_path / "missing.dat"}}}
        """),
            "targets.yaml",
        )
    (problem,) = [str(problem) for problem in caught.value.problems]
    assert (
        problem.startswith("targets.yaml:2")
        and "paths.ipasn_file" in problem
        and "not a readable file" in problem
    )


def test_an_unreadable_ipasn_file_is_logged_and_the_lookup_falls_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "ipasn.dat"
    bad.write_text("not a prefix\n")
    catalog = parse_catalog(f"targets: []\npaths: {{enabled: false, ipasn_file: {bad}}}\n")
    evidence = PathEvidence(
        AsyncIOScheduler(), Analyzer(None), LatestResults(), dict, lambda start, end: False
    )
    evidence.apply(catalog)
    assert evidence.ipasn is None
    assert f"paths.ipasn_file {bad}" in caplog.text and "the Team Cymru lookup" in caplog.text
