"""The blocks' and paths' memory across restarts, in the journal's database file: each /24's
hitlist (its responsive addresses and availability, from discovery), each cell's up-count per
round (the samples of its baseline) and each network's recent traces (its usual path). Like the
journal, it never stops probing: a read or write that fails is logged once and tried again next
time.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

from monitor.probing.discovery import Hitlist
from monitor.probing.traceroute import Trace

__all__ = ["BlockStore"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hitlists (
    prefix TEXT PRIMARY KEY,
    addresses TEXT NOT NULL,
    availability REAL NOT NULL,
    discovered_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS path_traces (
    network TEXT NOT NULL,
    at REAL NOT NULL,
    trace TEXT NOT NULL,
    PRIMARY KEY (network, at)
);
CREATE TABLE IF NOT EXISTS block_counts (
    cell TEXT NOT NULL,
    at REAL NOT NULL,
    up INTEGER NOT NULL,
    PRIMARY KEY (cell, at)
);
"""


class BlockStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.healthy = True

    def _run(
        self, action: str, sql: str, params: tuple[object, ...] = (), rows: Iterable[tuple[object, ...]] = ()
    ) -> list[tuple[object, ...]]:
        """One statement (for each of `rows`, when given) in a transaction of its own."""
        try:
            db = sqlite3.connect(self.path, timeout=5.0)
            try:
                with db:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.executescript(_SCHEMA)
                    found = (db.executemany(sql, rows) if rows else db.execute(sql, params)).fetchall()
            finally:
                db.close()
        except (sqlite3.Error, OSError) as exc:
            if self.healthy:
                log.error(
                    "block store %s: cannot %s: %s; blocks are watched from memory", self.path, action, exc
                )
            self.healthy = False
            return []
        self.healthy = True
        return found

    def hitlists(self) -> dict[str, Hitlist]:
        rows = self._run(
            "read the hitlists", "SELECT prefix, addresses, availability, discovered_at FROM hitlists"
        )
        found = {}
        for prefix, addresses, availability, discovered_at in rows:
            pairs = tuple((str(address), str(method)) for address, method in json.loads(str(addresses)))
            found[str(prefix)] = Hitlist(
                str(prefix), pairs, float(str(availability)), float(str(discovered_at))
            )
        return found

    def save_hitlist(self, hitlist: Hitlist) -> None:
        row = (hitlist.prefix, json.dumps(hitlist.addresses), hitlist.availability, hitlist.discovered_at)
        self._run("write a hitlist", "INSERT OR REPLACE INTO hitlists VALUES (?, ?, ?, ?)", rows=[row])

    def samples(self, since: float) -> dict[str, list[tuple[float, int]]]:
        rows = self._run(
            "read the block counts", "SELECT cell, at, up FROM block_counts WHERE at >= ?", (since,)
        )
        found: dict[str, list[tuple[float, int]]] = {}
        for cell, at, up in rows:
            found.setdefault(str(cell), []).append((float(str(at)), int(str(up))))
        return found

    def save_samples(self, at: float, counts: Mapping[str, int], keep_since: float) -> None:
        rows = [(cell, at, up) for cell, up in counts.items()]
        if rows:
            self._run(
                "write the block counts", "INSERT OR REPLACE INTO block_counts VALUES (?, ?, ?)", rows=rows
            )
        self._run("prune the block counts", "DELETE FROM block_counts WHERE at < ?", (keep_since,))

    def traces(self, since: float) -> dict[str, list[Trace]]:
        """Each network's traces since `since`, oldest first."""
        rows = self._run(
            "read the paths", "SELECT network, trace FROM path_traces WHERE at >= ? ORDER BY at", (since,)
        )
        found: dict[str, list[Trace]] = {}
        for network, trace in rows:
            found.setdefault(str(network), []).append(Trace.from_dict(json.loads(str(trace))))
        return found

    def save_trace(self, network: str, trace: Trace, keep_since: float) -> None:
        row = (network, trace.started_at, json.dumps(trace.as_dict()))
        self._run("write a path", "INSERT OR REPLACE INTO path_traces VALUES (?, ?, ?)", rows=[row])
        self._run("prune the paths", "DELETE FROM path_traces WHERE at < ?", (keep_since,))
