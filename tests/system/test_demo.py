"""`monitor demo`, the README's first command, replays the timeline and exits cleanly with --once."""

from __future__ import annotations

import subprocess
from pathlib import Path

from monitor.lab.harness import free_port, monitor_command
from monitor.lab.presets import ALMATY, MOBILE_NETWORKS
from monitor.lab.scenario import KAZAKHSTAN_2022
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
    """The mobile networks throttled, then cut, then the whole country (the mobile outage becomes
    part of it), a brief restoration, dark again, Almaty alone, a whitelist (Almaty's outage
    becomes part of it), restored; a resolver lying; our own uplink failing and coming back. Each
    phase prints what the monitor concluded: the verdict it was built to give."""
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
    conclusions = [line for line in run.stdout.splitlines() if "-> the monitor:" in line]
    assert len(conclusions) == len(KAZAKHSTAN_2022)
    assert all("(as expected)" in line for line in conclusions), "\n".join(conclusions)
    outages = sorted(Journal.read(journal), key=lambda outage: outage.started_at)
    assert sorted((o.scope.value, o.key, o.verdict) for o in outages) == sorted(
        [
            *(("throttling", f"KZ/AS{asn}", "throttled") for asn in MOBILE_NETWORKS),
            ("mobile", "KZ/mobile", "mobile_only"),
            ("country", "KZ", "full"),
            ("country", "KZ", "full"),
            ("region", f"KZ/{ALMATY}", "regional"),
            ("country", "KZ", "whitelist"),
            ("dns", "KZ", "dns_tampering"),
            ("vantage", "vantage", "vantage"),
        ]
    ), run.stderr
    countries = [o for o in outages if o.scope.value == "country"]
    by_scope = {o.scope.value: o for o in outages}
    assert by_scope["mobile"].absorbed_by == countries[0].id  # they became part of the shutdown
    assert by_scope["region"].absorbed_by == countries[2].id
    assert all(o.ended_at is not None for o in outages)
