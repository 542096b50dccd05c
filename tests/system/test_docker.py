"""The image, built and run for real: the test's own dockerd (its own data root, no bridge
network), a python:3.11-slim stand-in made by debootstrap (scripts/debootstrap-python-image.sh,
cached between runs on one machine), the project's Dockerfile unchanged, and the container run
with compose's security options and `monitor demo` in `--network none`: the simulated internet
lives on the container's own loopback, so nothing it probes leaves it.

Only the build reaches out (pip installs the package's dependencies from PyPI, as on the host).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"  # the client of the same Debian package as the daemon
CACHE = Path(os.environ.get("MONITOR_TEST_CACHE", "/var/cache/shutdown-monitor"))
IMAGE = "shutdown-monitor:test"

pytestmark = pytest.mark.docker


def _compose_security() -> list[str]:
    """docker-compose.yml's options for the monitor service, as `docker run` flags."""
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["monitor"]
    flags = ["--read-only"] if service["read_only"] else []
    for key, flag in (("tmpfs", "--tmpfs"), ("cap_drop", "--cap-drop"), ("security_opt", "--security-opt")):
        for value in service.get(key, []):
            flags += [flag, value]
    for name, value in service.get("sysctls", {}).items():
        flags += ["--sysctl", f"{name}={value}"]
    return flags


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "not root: the test starts its own dockerd"
    for tool in (DOCKERD, DOCKER, "/usr/sbin/debootstrap"):
        if not os.path.exists(tool):
            return f"{tool} is missing (scripts/setup-debian.sh installs docker.io and debootstrap)"
    return None


@dataclass
class Docker:
    host: str
    timings: dict[str, float]

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [DOCKER, *args],
            env={**os.environ, "DOCKER_HOST": self.host},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            output = f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            raise AssertionError(f"docker {' '.join(args)} failed:\n{output}")
        return done


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("dockerd")
    socket = work / "docker.sock"
    log = work / "dockerd.log"
    command = [
        DOCKERD,
        "--data-root", str(CACHE / "docker-data"),  # kept: the base image and build cache stay
        "--exec-root", str(work / "exec"),
        "--pidfile", str(work / "dockerd.pid"),
        "--host", f"unix://{socket}",
        "--bridge=none",  # no docker0: containers get no private-range addresses
        "--iptables=false",
        "--ip6tables=false",
    ]  # fmt: skip
    (CACHE / "docker-data").mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        daemon = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    client = Docker(f"unix://{socket}", {})
    try:
        deadline = time.monotonic() + 60
        while client.run("info", timeout=10, check=False).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dockerd did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield client
    finally:
        for container in client.run("ps", "-aq", check=False).stdout.split():
            client.run("rm", "-f", "-v", container, check=False)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=10)
        _unmount_under(work)  # dockerd leaves its exec root's netns bind-mounted


def _unmount_under(directory: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mountpoint in sorted((m for m in mounts if m.startswith(f"{directory}/")), reverse=True):
        subprocess.run(["umount", "--lazy", mountpoint], check=False, timeout=10)


@pytest.fixture(scope="module")
def image(docker: Docker) -> str:
    started = time.monotonic()
    base = subprocess.run(
        [str(ROOT / "scripts" / "debootstrap-python-image.sh"), "python:3.11-slim", str(CACHE)],
        env={**os.environ, "DOCKER_HOST": docker.host, "DOCKER": DOCKER},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert base.returncode == 0, base.stderr[-3000:]
    docker.timings["base image (debootstrap, or the cached tarball)"] = time.monotonic() - started
    started = time.monotonic()
    # The build's RUN steps use the host's network (pip from PyPI); the container will have none.
    docker.run("build", "--network", "host", "-t", IMAGE, str(ROOT), timeout=900)
    docker.timings["docker build"] = time.monotonic() - started
    return IMAGE


def _exec(
    docker: Docker, container: str, *command: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return docker.run("exec", container, *command, timeout=60, check=check)


def _fetch(docker: Docker, container: str, path: str) -> str:
    url = f"http://127.0.0.1:9143{path}"  # inside the container's own network namespace
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    return _exec(docker, container, "python", "-c", code).stdout


def test_the_image_builds_offline_from_its_base_and_runs_the_demo_as_compose_runs_it(
    docker: Docker, image: str, tmp_path: Path
) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "\nFROM python:3.11-slim\n" in dockerfile and "# syntax=" not in dockerfile
    config = json.loads(docker.run("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert list(config["Volumes"]) == ["/var/lib/monitor"]
    assert "http://127.0.0.1:9143/healthz" in " ".join(config["Healthcheck"]["Test"])

    volume = "shutdown-monitor-test-state"
    docker.run("volume", "rm", "-f", volume, check=False)
    started = time.monotonic()
    container = docker.run(
        "run", "-d", "--name", "shutdown-monitor-test", "--network", "none",
        *_compose_security(),
        "--health-interval", "1s", "--health-start-period", "20s",  # the image's command, sooner
        "-v", f"{volume}:/var/lib/monitor",
        image,
        "demo", "--listen", "127.0.0.1:9143", "--phase-seconds", "600", "--interval", "1s",
        "--timeout", "900ms", "--state", "/var/lib/monitor/journal.sqlite",
    ).stdout.strip()  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        health = ""
        while time.monotonic() < deadline:
            state = json.loads(docker.run("inspect", container).stdout)[0]["State"]
            assert state["Running"], docker.run("logs", container, check=False).stderr[-3000:]
            health = state["Health"]["Status"]
            if health == "healthy":
                break
            time.sleep(0.5)
        assert health == "healthy", docker.run("logs", container, check=False).stderr[-3000:]
        docker.timings["start to healthy"] = time.monotonic() - started

        assert _fetch(docker, container, "/healthz").strip() == "ok"
        metrics = _fetch(docker, container, "/metrics")
        assert "monitor_build_info{" in metrics and "probe_success{" in metrics
        assert _exec(docker, container, "id", "-u").stdout.strip() == "10001"
        status = _exec(docker, container, "cat", "/proc/1/status").stdout
        capabilities = {
            line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Cap")
        }
        assert capabilities["CapEff"] == capabilities["CapPrm"] == capabilities["CapBnd"] == "0" * 16
        assert "NoNewPrivs:\t1" in status
        # block liveness without root or CAP_NET_RAW: compose's ping_group_range admits uid 10001
        liveness = (
            "from monitor.probing.liveness import Liveness; print(Liveness.detect('auto', (443,), 1).name)"
        )
        assert _exec(docker, container, "python", "-c", liveness).stdout.strip() == "icmp_datagram"
        echo = (
            "import icmplib; print(icmplib.ping('127.0.0.1', count=1, timeout=2, privileged=False).is_alive)"
        )
        assert _exec(docker, container, "python", "-c", echo).stdout.strip() == "True"
        written = _exec(docker, container, "sh", "-c", "touch /usr/x", check=False)
        assert written.returncode != 0 and "Read-only file system" in written.stderr
        assert _exec(docker, container, "sh", "-c", "touch /etc/monitor/x", check=False).returncode != 0
        mountpoint = Path(json.loads(docker.run("volume", "inspect", volume).stdout)[0]["Mountpoint"])
        deadline = time.monotonic() + 30
        while not (mountpoint / "journal.sqlite").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert (mountpoint / "journal.sqlite").stat().st_uid == 10001  # the journal, in the volume
    finally:
        stopped = time.monotonic()
        docker.run("stop", "-t", "20", container, check=False)
        docker.timings["docker stop"] = time.monotonic() - stopped
        logs = docker.run("logs", container, check=False)
        docker.run("rm", "-f", container, check=False)
        docker.run("volume", "rm", "-f", volume, check=False)
    assert "Traceback" not in logs.stderr, logs.stderr[-3000:]
    size = int(docker.run("image", "inspect", "--format", "{{.Size}}", image).stdout)
    print("\n".join(f"{what}: {seconds:.1f} s" for what, seconds in docker.timings.items()))
    print(f"image size: {size / 1e6:.0f} MB")


def test_the_test_daemon_has_no_bridge_network(docker: Docker) -> None:
    assert "bridge" not in docker.run("network", "ls", "--format", "{{.Driver}}").stdout.split()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=10, check=True)
    assert "docker0" not in links.stdout
