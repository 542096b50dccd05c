"""Shared helpers of the benchmarks: process accounting from /proc, subprocesses (the lab, our
daemon through monitor.lab.harness, blackbox_exporter), readiness, Prometheus text parsing,
tables, JSON and py-spy.

Everything listens on and connects to 127.0.0.0/8 only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from monitor.lab.harness import MonitorExited, MonitorProcess, run_monitor

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BLACKBOX = "prometheus-blackbox-exporter"
CLK_TCK = os.sysconf("SC_CLK_TCK")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


# --- the machine -------------------------------------------------------------------------------


def blackbox_binary() -> str | None:
    return shutil.which(BLACKBOX) or (
        f"/usr/bin/{BLACKBOX}" if Path(f"/usr/bin/{BLACKBOX}").exists() else None
    )


def blackbox_version() -> str | None:
    binary = blackbox_binary()
    if binary is None:
        return None
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].strip() if text else None


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def code_version() -> dict[str, Any]:
    """The commit measured, and uncommitted changes under monitor/ (others may be editing it)."""

    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout

    changed = [
        line[3:] for line in git("status", "--porcelain", "--", "monitor").splitlines() if line.strip()
    ]
    return {
        "git_head": git("rev-parse", "--short", "HEAD").strip() or "unknown",
        "monitor_uncommitted": changed,
    }


def machine_info() -> dict[str, Any]:
    packages: dict[str, str] = {}
    for name in ("aiohttp", "prometheus_client", "uvloop"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            packages[name] = version(name)
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "blackbox_exporter": blackbox_version() or "not installed",
        "packages": packages,
        "code": code_version(),
    }


def print_machine(info: dict[str, Any]) -> None:
    packages = ", ".join(f"{name} {version}" for name, version in info["packages"].items())
    print(f"machine: {info['cpu_model']}, {info['cores']} cores, Linux {info['kernel']}")
    print(f"python:  {info['python_implementation']} {info['python']} ({packages})")
    print(f"blackbox_exporter: {info['blackbox_exporter']}")
    code = info["code"]
    dirty = (
        f", uncommitted changes in {', '.join(code['monitor_uncommitted'])}"
        if code["monitor_uncommitted"]
        else ""
    )
    print(f"code: {code['git_head']}{dirty}")


# --- /proc ---------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (its own threads, not its children), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_mib(pid: int) -> float:
    return status_kib(pid, "VmRSS") / 1024


def hwm_mib(pid: int) -> float:
    return status_kib(pid, "VmHWM") / 1024


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def exe_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


@dataclass
class CpuMeter:
    """CPU used by a process between `start()` and `stop()`."""

    pid: int
    wall: float = 0.0
    cpu: float = 0.0
    _t0: float = 0.0
    _c0: float = 0.0

    def start(self) -> CpuMeter:
        self._c0, self._t0 = cpu_seconds(self.pid), time.monotonic()
        return self

    def stop(self) -> CpuMeter:
        self.cpu = cpu_seconds(self.pid) - self._c0
        self.wall = time.monotonic() - self._t0
        return self


class SystemMeter:
    """Whole-machine CPU busy (all processes, all cores) between start() and stop(), in cores,
    from /proc/stat; with the load average, it tells whether something else was running."""

    def __init__(self) -> None:
        self.busy_cores = 0.0
        self.load_start = self.load_end = ""
        self._b0 = self._t0 = 0.0
        self._w0 = 0.0

    @staticmethod
    def _read() -> tuple[float, float]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / CLK_TCK, time.monotonic()

    def start(self) -> SystemMeter:
        self.load_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        self._b0, self._w0 = self._read()
        return self

    def stop(self) -> SystemMeter:
        busy, wall = self._read()
        self.busy_cores = (busy - self._b0) / max(wall - self._w0, 1e-9)
        self.load_end = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine_busy_cores": round(self.busy_cores, 3),
            "loadavg_start": self.load_start,
            "loadavg_end": self.load_end,
        }


# --- ports, HTTP, readiness --------------------------------------------------------------------


def port_is_free(ip: str, port: int, kinds: Sequence[int] = (socket.SOCK_STREAM, socket.SOCK_DGRAM)) -> bool:
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((ip, port))
            except OSError:
                return False
    return True


def http_get(url: str, timeout: float = 30.0) -> tuple[int, bytes]:
    assert url.startswith("http://127."), url  # loopback only
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_post(url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    assert url.startswith("http://127."), url
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, every: float = 0.2) -> float:
    """Poll `check` until it holds; return the seconds it took. Exceptions count as 'not yet'."""
    started = time.monotonic()
    last: BaseException | None = None
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except (OSError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(every)
    raise BenchError(
        f"timed out after {timeout:g}s waiting for {what}" + (f" (last error: {last})" if last else "")
    )


class BenchError(RuntimeError):
    pass


# --- processes -----------------------------------------------------------------------------------


@dataclass
class Proc:
    """A subprocess we started; stopped by its own pid only."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    pid: int = 0

    def __post_init__(self) -> None:
        self.pid = self.pid or self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise BenchError(
                f"{self.name} exited with {self.popen.returncode}; log {self.log}:\n{self.tail()}"
            )

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout)


def start_process(name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Proc:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:  # the child keeps its own copy of the fd
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=True,  # a Ctrl-C of the benchmark reaches only the benchmark
        )
    return Proc(name, popen, log)


class Stack(contextlib.ExitStack):
    """Stops every process it was given, last started first."""

    def add(self, proc: Proc) -> Proc:
        self.callback(proc.stop)
        return proc


@dataclass
class Lab:
    proc: Proc
    dns: str
    control: str
    config: Path
    workdir: Path

    @property
    def ca_file(self) -> Path:
        return self.workdir / "lab-ca.pem"

    def post(self, path: str, body: Any = None) -> Any:
        status, answer = http_post(f"http://{self.control}{path}", body)
        if status != 200:
            raise BenchError(f"lab control POST {path}: {status} {answer}")
        return answer

    def state(self) -> Any:
        status, body = http_get(f"http://{self.control}/state")
        if status != 200:
            raise BenchError(f"lab control GET /state: {status}")
        return json.loads(body)


def start_lab(workdir: Path, *args: str, timeout: float = 180.0) -> Lab:
    """`python -m monitor.lab serve` in its own process; returns once it printed 'lab ready'."""
    config = workdir / "targets.yaml"
    log = workdir / "lab.log"
    proc = start_process(
        "lab",
        [
            sys.executable,
            "-m",
            "monitor.lab",
            "serve",
            "--config-out",
            str(config),
            "--workdir",
            str(workdir),
            *args,
        ],
        log,
    )
    ready: dict[str, str] = {}

    def is_ready() -> bool:
        proc.check_alive()
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("lab ready "):
                ready.update(part.split("=", 1) for part in line.split()[2:])  # type: ignore[arg-type]
                return True
        return False

    try:
        wait_until(is_ready, timeout=timeout, what="the lab to print 'lab ready'")
    except BaseException:
        proc.stop()
        raise
    return Lab(proc, ready["dns"], ready["control"], config, workdir)


@dataclass
class Daemon:
    """Our daemon (started by monitor.lab.harness), read with blocking HTTP."""

    proc: MonitorProcess

    @property
    def port(self) -> int:
        return self.proc.port

    @property
    def base(self) -> str:
        return self.proc.base

    @property
    def pid(self) -> int:
        return self.proc.pid

    def metrics(self) -> Samples:
        status, body = http_get(self.base + "/metrics", timeout=60)
        if status != 200:
            raise BenchError(f"daemon /metrics answered {status}")
        return parse_samples(body.decode())

    def status(self) -> Any:
        status, body = http_get(self.base + "/api/status", timeout=60)
        if status != 200:
            raise BenchError(f"daemon /api/status answered {status}")
        return json.loads(body)

    def reload(self) -> None:
        os.kill(self.pid, signal.SIGHUP)

    def check_alive(self) -> None:
        try:
            self.proc.check_alive()
        except MonitorExited as exc:
            raise BenchError(str(exc)) from None

    def stop(self) -> None:
        self.proc.stop()


def start_daemon(config: Path, log: Path, *extra: str, timeout: float = 120.0) -> Daemon:
    proc = run_monitor(config, *extra, log=log)
    try:
        proc.wait_healthy(timeout)
    except MonitorExited as exc:
        raise BenchError(str(exc)) from None
    return Daemon(proc)


# --- Prometheus text -----------------------------------------------------------------------------


def parse_samples(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and wanted <= set(lab))


def histogram_buckets(samples: Samples, name: str) -> list[tuple[float, float]]:
    """[(le, cumulative count)] of an unlabelled histogram, sorted by le."""
    buckets = []
    for (n, labels), count in samples.items():
        if n == name + "_bucket":
            le = dict(labels)["le"]
            buckets.append((math.inf if le in ("+Inf", "inf") else float(le), count))
    return sorted(buckets)


def bucket_delta(
    after: list[tuple[float, float]], before: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    old = dict(before)
    return [(le, count - old.get(le, 0.0)) for le, count in after]


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Like PromQL's histogram_quantile: linear interpolation inside the bucket holding rank q.

    The lowest bucket interpolates from 0; a rank in the +Inf bucket returns the highest finite
    bound (as Prometheus does). None when there are no observations.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    count = buckets[-1][1]
    rank = q * count
    lower_bound, lower_count = 0.0, 0.0
    for le, cumulative in buckets:
        if cumulative >= rank:
            if math.isinf(le):
                return lower_bound
            if cumulative == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (cumulative - lower_count)
        lower_bound, lower_count = le, cumulative
    return lower_bound


def probe_succeeded(text: str) -> bool:
    """probe_success of a /probe answer (ours or blackbox_exporter's) is 1."""
    for family in text_string_to_metric_families(text):
        if family.name == "probe_success":
            return any(sample.value == 1 for sample in family.samples)
    return False


# --- output --------------------------------------------------------------------------------------


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(h) for h in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for index, row in enumerate(cells):
        parts = [
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "FAIL")


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    return path


def default_json(name: str) -> Path:
    return RESULTS / f"{name}.json"


# --- py-spy --------------------------------------------------------------------------------------


@dataclass
class Profiler:
    """`py-spy record --nonblocking` attached to `pid`, writing py-spy's own flame graph (SVG)."""

    pid: int
    out: Path
    proc: Proc | None = None
    error: str | None = None

    def start(self, rate: int = 200) -> Profiler:
        binary = shutil.which("py-spy")
        if binary is None:
            self.error = "py-spy is not installed (pip install py-spy)"
            return self
        argv = [binary, "record", "--pid", str(self.pid), "--nonblocking", "--rate", str(rate)]
        argv += ["--format", "flamegraph", "--output", str(self.out)]
        self.proc = start_process("py-spy", argv, self.out.with_suffix(".log"))
        return self

    def stop(self) -> Profiler:
        if self.proc is None:
            return self
        if self.proc.alive():
            self.proc.popen.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                self.proc.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.stop()
        if not self.out.exists():
            self.error = f"py-spy wrote nothing: {self.proc.tail(5)}"
        return self

    def as_dict(self) -> dict[str, Any]:
        return {"file": str(self.out), "error": self.error}


def print_profile(title: str, profile: dict[str, Any]) -> None:
    print(f"\n{title}: {profile['error'] or 'flame graph in ' + profile['file']}")
