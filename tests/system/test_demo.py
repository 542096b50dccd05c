"""`monitor demo`, the README's first command, replays the timeline and exits cleanly with --once."""

from __future__ import annotations

import subprocess

from monitor.lab.harness import free_port, monitor_command


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
