"""The monitor running inside a test's network namespaces, read from inside them; and the skip
when namespaces cannot be made here."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from monitor.lab.harness import MonitorProcess


def skip_without_namespaces(what: str = "network namespaces") -> None:
    """Skip, naming what is missing, unless this process may build namespaces (CI runs as root
    after scripts/setup-debian.sh, which installs iproute2)."""
    if os.geteuid() != 0:
        pytest.skip(f"{what} need root (CI runs as root)")
    if shutil.which("ip") is None:
        pytest.skip(f"{what} need iproute2, not installed here; scripts/setup-debian.sh installs it")


class Namespaces(Protocol):
    def get(self, url: str, timeout: float = 30.0) -> str: ...


@dataclass
class NamespacedMonitor:
    world: Namespaces
    monitor: MonitorProcess

    def serving(self) -> bool:
        try:
            return self.get("/healthz") is not None
        except OSError:
            return False

    def get(self, path: str) -> Any:
        """The monitor's `path` (read from inside the prober namespace); JSON under /api/."""
        text = self.text(path)
        return json.loads(text) if path.startswith("/api/") else text

    def text(self, path: str) -> str:
        self.monitor.check_alive()
        return self.world.get(f"http://127.0.0.1:{self.monitor.port}{path}")

    def open_outages(self) -> list[dict[str, Any]]:
        return list(self.get("/api/status")["open_outages"])

    def metric(self, name: str) -> list[tuple[str, float]]:
        return [
            (line.partition(" ")[0], float(line.rpartition(" ")[2]))
            for line in self.get("/metrics").splitlines()
            if line.startswith(name + "{") or line.startswith(name + " ")
        ]

    def until(self, what: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = what()
            if found:
                return found
            time.sleep(every)
        raise AssertionError(f"not within {timeout:g}s; open: {self.open_outages()}\n{self.monitor.tail()}")
