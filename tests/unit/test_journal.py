"""The journal's schema: outages round-trip with their verdict, details and phases, and a journal
written before those columns existed opens, keeps its rows and gains them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from monitor.outages.journal import Journal
from monitor.outages.outage import Outage, Scope

FIRST_SCHEMA = """
CREATE TABLE outages (
    id TEXT PRIMARY KEY, scope TEXT NOT NULL, key TEXT NOT NULL, country TEXT, asn INTEGER,
    started_at REAL NOT NULL, ended_at REAL, failures INTEGER NOT NULL DEFAULT 0,
    evidence TEXT NOT NULL DEFAULT '{}', targets TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE target_baseline (name TEXT PRIMARY KEY, last_up_at REAL NOT NULL);
INSERT INTO outages (id, scope, key, country, started_at, evidence, targets)
    VALUES ('old', 'country', 'KZ', 'KZ', 100.0, '{"tcp_timeout": 3}', '["khabar"]');
"""


def test_an_outage_round_trips_with_its_verdict_details_and_phases(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    outage = Outage(
        Scope.COUNTRY, "KZ", 100.0, country="KZ", targets=["khabar"], verdict="whitelist", vantage="fra1"
    )
    outage.details = {"survivors": ["kaspi", "nationalbank", "primeminister"], "regions": {"KZ-75": 4}}
    outage.phases = [{"verdict": "full", "at": 100.0}, {"verdict": "whitelist", "at": 200.0}]
    journal = Journal(path)
    assert journal.sync([outage], {"khabar": 90.0})
    journal.close()
    (read,) = Journal.read(path)
    assert read == outage
    assert read.as_dict()["verdict"] == "whitelist" and read.as_dict()["vantage"] == "fra1"


def test_a_journal_of_the_first_schema_opens_and_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.executescript(FIRST_SCHEMA)
    db.close()
    journal = Journal(path)
    (old,), _ = journal.load()
    assert (old.id, old.verdict, old.details, old.phases, old.absorbed_by, old.vantage) == (
        "old", "", {}, [], None, ""
    )
    assert old.as_dict()["verdict"] == "full" and old.evidence["tcp_timeout"] == 3
    old.ended_at = 300.0
    assert journal.sync([old], {})
    journal.close()
    assert Journal.read(path)[0].ended_at == 300.0
