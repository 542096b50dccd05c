"""The outage journal in SQLite: survives restarts, and never stops probing when it cannot write.

Writes are idempotent upserts of in-memory outages, so after any failure (file deleted, locked,
corrupt, disk full) the next successful sync brings the file back up to date.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

from monitor.outages.outage import Outage, Scope

__all__ = ["Journal", "JournalError"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outages (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    country TEXT,
    asn INTEGER,
    started_at REAL NOT NULL,
    ended_at REAL,
    failures INTEGER NOT NULL DEFAULT 0,
    evidence TEXT NOT NULL DEFAULT '{}',
    targets TEXT NOT NULL DEFAULT '[]',
    absorbed_by TEXT,
    verdict TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}',
    phases TEXT NOT NULL DEFAULT '[]',
    vantage TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS outages_started ON outages (started_at);
CREATE TABLE IF NOT EXISTS target_baseline (
    name TEXT PRIMARY KEY,
    last_up_at REAL NOT NULL
);
"""


_COLUMNS = (
    "id, scope, key, country, asn, started_at, ended_at, failures, evidence, targets, absorbed_by, "
    "verdict, details, phases, vantage, path"
)
_UPDATED = (
    "ended_at",
    "failures",
    "evidence",
    "targets",
    "absorbed_by",
    "verdict",
    "details",
    "phases",
    "path",
)
# Columns added since the first journals, with their definitions: added on open when missing.
_ADDED_COLUMNS = {
    "absorbed_by": "TEXT",
    "verdict": "TEXT NOT NULL DEFAULT ''",
    "details": "TEXT NOT NULL DEFAULT '{}'",
    "phases": "TEXT NOT NULL DEFAULT '[]'",
    "vantage": "TEXT NOT NULL DEFAULT ''",
    "path": "TEXT NOT NULL DEFAULT '{}'",
}


class JournalError(Exception):
    pass


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.healthy = True
        self.errors = 0
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._db = self._open()
            except sqlite3.DatabaseError as exc:
                if not _is_corruption(exc):
                    raise
                self._set_aside(exc)
                self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=1.0, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            _migrate(db)
            db.execute("SELECT count(*) FROM outages").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self, exc: Exception) -> None:
        """A corrupt journal is kept for forensics under another name; a fresh one takes its place."""
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.error("outage journal %s is corrupt (%s): moved to %s, starting a new one", self.path, exc, aside)
        self.path.replace(aside)
        for suffix in ("-wal", "-shm"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)

    def _failed(self, action: str, exc: Exception) -> None:
        self.errors += 1
        if self.healthy:
            log.error(
                "outage journal %s: cannot %s: %s; probing goes on, outages are kept in memory "
                "and written when the journal works again",
                self.path,
                action,
                exc,
            )
        self.healthy = False
        if self._db is not None:
            try:
                self._db.close()
            finally:
                self._db = None

    def _recovered(self) -> None:
        if not self.healthy:
            log.warning("outage journal %s is writable again", self.path)
        self.healthy = True

    def load(self) -> tuple[list[Outage], dict[str, float]]:
        """Open outages and per-target baselines saved by an earlier run."""
        try:
            db = self._connection()
            rows = db.execute(f"SELECT {_COLUMNS} FROM outages WHERE ended_at IS NULL").fetchall()
            baselines = dict(db.execute("SELECT name, last_up_at FROM target_baseline").fetchall())
        except (sqlite3.Error, OSError) as exc:
            self._failed("read", exc)
            return [], {}
        self._recovered()
        return [_outage(row) for row in rows], baselines

    def sync(self, outages: list[Outage], baselines: dict[str, float]) -> bool:
        """Write these outages and baselines in one transaction; False (and logged once) on failure."""
        try:
            db = self._connection()
            # The file can be deleted under us: sqlite would go on writing to the unlinked inode.
            if not self.path.exists():
                raise JournalError("the journal file was removed")
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_UPSERT, [_row(outage) for outage in outages])
                db.executemany(
                    "INSERT INTO target_baseline (name, last_up_at) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET last_up_at = excluded.last_up_at",
                    list(baselines.items()),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError, JournalError) as exc:
            self._failed("write", exc)
            return False
        self._recovered()
        return True

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @staticmethod
    def read(path: str | Path, since: float | None = None) -> list[Outage]:
        """Outages that were open at any time after `since`, newest first (read-only)."""
        return _query(
            path,
            "ended_at IS NULL OR ended_at >= ? ORDER BY started_at DESC",
            (since if since is not None else 0.0,),
        )

    @staticmethod
    def read_with_context(path: str | Path, outage_id: str) -> tuple[Outage, list[Outage]]:
        """The outage whose id is or starts with `outage_id` (at least 6 characters, as git takes
        a commit), and the other outages of its country that overlapped it, oldest first."""
        if len(outage_id) < 6 or not all(c in "0123456789abcdef" for c in outage_id):
            raise JournalError(f"{outage_id!r} is not an outage id (at least 6 of its hex digits)")
        found = _query(path, "id LIKE ? ORDER BY started_at", (outage_id + "%",))
        if not found:
            raise JournalError(f"{path}: no outage with id {outage_id}")
        if len(found) > 1:
            raise JournalError(f"{path}: {len(found)} outages have ids starting with {outage_id}; give more")
        outage = found[0]
        return outage, outage.context(Journal.read(path, since=outage.started_at))


def _query(path: str | Path, where: str, parameters: tuple[object, ...]) -> list[Outage]:
    path = Path(path)
    if not path.exists():
        raise JournalError(f"{path}: no such journal")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
        try:
            rows = db.execute(f"SELECT {_COLUMNS} FROM outages WHERE {where}", parameters).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise JournalError(f"{path}: {exc}") from None
    return [_outage(row) for row in rows]


_UPSERT = (
    f"INSERT INTO outages ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMNS.split(',')))}) "
    f"ON CONFLICT(id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _UPDATED)}"
)


def _migrate(db: sqlite3.Connection) -> None:
    """Journals written by earlier versions lack the columns added since."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(outages)")}
    for column, definition in _ADDED_COLUMNS.items():
        if column not in columns:
            db.execute(f"ALTER TABLE outages ADD COLUMN {column} {definition}")


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    message = str(exc).lower()
    return "not a database" in message or "malformed" in message


def _row(outage: Outage) -> tuple[object, ...]:
    return (
        outage.id,
        outage.scope.value,
        outage.key,
        outage.country,
        outage.asn,
        outage.started_at,
        outage.ended_at,
        outage.failures,
        json.dumps(dict(outage.evidence)),
        json.dumps(outage.targets),
        outage.absorbed_by,
        outage.verdict,
        json.dumps(outage.details),
        json.dumps(outage.phases),
        outage.vantage,
        json.dumps(outage.path),
    )


def _outage(row: tuple[Any, ...]) -> Outage:
    (id_, scope, key, country, asn, started_at, ended_at, failures, evidence, targets, absorbed_by) = row[:11]
    verdict, details, phases, vantage, path = row[11:]
    return Outage(
        scope=Scope(scope),
        key=key,
        country=country,
        asn=asn,
        started_at=float(started_at),
        ended_at=None if ended_at is None else float(ended_at),
        failures=int(failures),
        evidence=Counter(json.loads(evidence)),
        targets=list(json.loads(targets)),
        absorbed_by=absorbed_by,
        verdict=verdict,
        details=json.loads(details),
        phases=list(json.loads(phases)),
        vantage=vantage,
        path=json.loads(path),
        id=id_,
    )
