"""The monitor as a process: the one way tests, benchmarks and soak runs start it.

`run_monitor` starts `monitor run` on a free loopback port with its stderr in a log file;
`MonitorProcess` waits for /healthz, stops it by its own pid and checks the log for tracebacks.
Other commands (`check`, `outages`, `validate`) are `monitor_command(...)` argv lists.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MonitorExited", "MonitorProcess", "free_port", "monitor_command", "run_monitor"]


class MonitorExited(RuntimeError):
    """The monitor process is gone when it should be running."""


def monitor_command(*args: str) -> list[str]:
    """`python -m monitor ARGS...` with this interpreter."""
    return [sys.executable, "-m", "monitor", *args]


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET) as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


@dataclass
class MonitorProcess:
    popen: subprocess.Popen[bytes]
    port: int
    config: Path
    log: Path
    tls: ssl.SSLContext | None = None  # the client side, when the monitor serves TLS

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def check_alive(self) -> None:
        if not self.alive():
            code = self.popen.returncode
            raise MonitorExited(f"the monitor exited with {code}; {self.log}:\n{self.tail()}")

    def healthy(self) -> bool:
        """One GET /healthz; raises MonitorExited when the process is gone."""
        self.check_alive()
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=5, context=self.tls) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, timeout: float = 60.0) -> float:
        """Block until /healthz answers; the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.healthy():
                return time.monotonic() - started
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"the monitor did not serve /healthz within {timeout:g}s:\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> float:
        """Send `sig`, wait for the exit (kill after `timeout`); the seconds it took."""
        started = time.monotonic()
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
                raise
        return time.monotonic() - started

    def assert_clean_log(self) -> None:
        log = self.log.read_text(errors="replace")
        clean = "Traceback" not in log and "Logging error" not in log
        assert clean, f"the monitor logged a traceback:\n{log}"


def run_monitor(
    config: Path,
    *extra: str,
    state: Path | None = None,
    log: Path | None = None,
    port: int | None = None,
    tls: ssl.SSLContext | None = None,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> MonitorProcess:
    """Start `monitor run --config CONFIG` on 127.0.0.1 (not yet healthy: see wait_healthy).

    `prefix` runs it under another command (`ip netns exec NS`); `log` defaults to CONFIG.log."""
    port = port or free_port()
    log = log or config.with_suffix(".log")
    argv = [*prefix, *monitor_command("run", "--config", str(config), "--listen", f"127.0.0.1:{port}")]
    if state is not None:
        argv += ["--state", str(state)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:  # the child keeps its own copy of the fd
        popen = subprocess.Popen(
            [*argv, *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=out,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=True,  # a Ctrl-C of the test or benchmark reaches only the caller
        )
    return MonitorProcess(popen, port, config, log, tls)
