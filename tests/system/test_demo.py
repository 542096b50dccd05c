"""`monitor demo`, the README's first command, replays the timeline and exits cleanly with --once."""

from __future__ import annotations

import subprocess
from pathlib import Path

from monitor.lab.harness import free_port, monitor_command
from monitor.lab.presets import KCELL, TELE2
from monitor.outages.journal import Journal


def test_the_demo_replays_the_timeline_once_and_exits_cleanly() -> None:
    port = free_port()
    run = subprocess.run(
        monitor_command("demo", "--phase-seconds", "2", "--once", "--listen", f"127.0.0.1:{port}"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"http://127.0.0.1:{port}/metrics" in run.stdout
    assert "2022-01-03" in run.stdout and "a normal day" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    assert "stopping" in run.stderr


def test_the_demo_timeline_leaves_exactly_what_happened_in_the_journal(tmp_path: Path) -> None:
    """Two operators cut, then the whole country (the networks become part of it), a brief
    restoration, dark again, a whitelist, restored; then our own uplink fails and comes back."""
    journal = tmp_path / "journal.sqlite"
    run = subprocess.run(
        monitor_command(
            "demo",
            *("--phase-seconds", "16", "--interval", "2s", "--timeout", "1s", "--once"),
            *("--listen", f"127.0.0.1:{free_port()}", "--state", str(journal)),
        ),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    outages = sorted(Journal.read(journal), key=lambda outage: outage.started_at)
    assert sorted((o.scope.value, o.key) for o in outages) == [
        ("country", "KZ"),
        ("country", "KZ"),
        ("network", f"KZ/AS{KCELL}"),
        ("network", f"KZ/AS{TELE2}"),
        ("vantage", "vantage"),
    ], run.stderr
    first_country = next(o for o in outages if o.scope.value == "country")
    networks = [o for o in outages if o.scope.value == "network"]
    assert all(o.absorbed_by == first_country.id for o in networks)  # they became part of it
    assert all(o.ended_at is not None for o in outages)
