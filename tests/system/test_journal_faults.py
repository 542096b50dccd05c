"""The journal under faults: deleted, locked, corrupt, full disk. Probing never depends on it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.outages.journal import Journal
from monitor.outages.outage import Outage, Scope


def outage(key: str = "kazinform") -> Outage:
    return Outage(Scope.SITE, key, 1_700_000_000.0, country="KZ", targets=[key])


def stored(path: Path) -> list[str]:
    return [item.key for item in Journal.read(path)]


def test_a_deleted_journal_is_recreated_with_what_is_open(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    assert journal.sync([outage()], {})
    path.unlink()
    assert not journal.sync([outage()], {}) and not journal.healthy and journal.errors == 1
    assert journal.sync([outage()], {}) and journal.healthy
    assert stored(path) == ["kazinform"]


def test_a_locked_journal_recovers_when_the_lock_goes(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    assert journal.sync([outage("a")], {})
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        assert not journal.sync([outage("b")], {}) and not journal.healthy
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert journal.sync([outage("b")], {}) and journal.healthy
    assert sorted(stored(path)) == ["a", "b"]


def test_a_corrupt_journal_is_set_aside_and_a_new_one_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"this is not a database, it is garbage " * 100)
    journal = Journal(path)
    open_outages, baselines = journal.load()
    assert (open_outages, baselines) == ([], {}) and journal.healthy
    assert journal.sync([outage()], {})
    assert stored(path) == ["kazinform"]
    aside = list(tmp_path.glob("journal.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert "is corrupt" in caplog.text


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs to fill the disk needs root (CI runs as root)")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_reported_and_the_journal_catches_up_when_space_returns(tiny_filesystem: Path) -> None:
    journal = Journal(tiny_filesystem / "journal.sqlite")
    assert journal.sync([outage("before")], {})
    filler = tiny_filesystem / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    many = [outage(f"site{index:04d}") for index in range(400)]
    assert not journal.sync(many, {"kazinform": 1.0}) and not journal.healthy
    filler.unlink()
    assert journal.sync(many, {"kazinform": 1.0}) and journal.healthy
    assert len(stored(tiny_filesystem / "journal.sqlite")) == 401
