"""The real daemon as a subprocess against the simulated Kazakhstan on loopback."""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from monitor.lab.harness import monitor_command
from monitor.lab.presets import KAZAKHSTAN_STAYS_UP, KCELL
from monitor.lab.web import Mode
from tests.system.daemon_harness import Daemon, judging_with_all_up, start_daemon, until, write_fast_config

pytestmark = pytest.mark.asyncio(loop_scope="module")

GEO_BLOCKED = "akorda"


@pytest_asyncio.fixture(loop_scope="module")
async def daemon(net, tmp_path: Path) -> AsyncIterator[Daemon]:  # type: ignore[no-untyped-def]
    await net.restore_all()
    running = await start_daemon(
        write_fast_config(net, tmp_path / "targets.yaml"), tmp_path / "journal.sqlite", "--enable-lifecycle"
    )
    await until(lambda: judging_with_all_up(running), timeout=20, what="every reachable lab target to be up")
    yield running
    await running.stop()
    await net.restore_all()


async def open_outages(daemon: Daemon) -> list[str]:
    status = await daemon.json("/api/status")
    return sorted(f"{outage['scope']}:{outage['key']}" for outage in status["open_outages"])


async def test_metrics_pass_promtool_check_metrics(daemon: Daemon) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus); .ci/run installs it")
    await until(lambda: _has_failures(daemon, GEO_BLOCKED), timeout=10, what="the geo-blocked site to fail")
    _, text = await daemon.get("/metrics")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0 and check.stdout + check.stderr == "", check.stdout + check.stderr
    for name in (
        "probe_success",
        "probe_duration_seconds",
        "probe_http_duration_seconds",
        "probe_dns_lookup_time_seconds",
        "probe_http_status_code",
        "probe_ssl_earliest_cert_expiry",
        "probe_failures_total",
        "monitor_target_up",
        "monitor_vantage_online",
        "monitor_country_state",
        "monitor_group_reachable_ratio",
        "monitor_schedule_lag_seconds_bucket",
    ):
        assert f"\n{name}{{" in text or f"\n{name} " in text, name


async def _has_failures(daemon: Daemon, target: str) -> bool:
    return any(
        name == "probe_failures_total" and dict(labels)["target"] == target
        for name, labels in await daemon.metrics()
    )


async def test_the_geo_blocked_site_fails_with_a_timeout_and_a_counted_reason(daemon: Daemon) -> None:
    await until(lambda: _has_failures(daemon, GEO_BLOCKED), timeout=10, what="the geo-blocked site to fail")
    assert await daemon.value("probe_success", target=GEO_BLOCKED, country="KZ", category="government") == 0
    metrics = await daemon.metrics()
    reasons = {
        dict(labels)["reason"]
        for (name, labels), _ in metrics.items()
        if name == "probe_failures_total" and dict(labels)["target"] == GEO_BLOCKED
    }
    assert reasons == {"tcp_timeout"}


async def test_asns_come_from_the_catalog_or_the_cymru_lookup(daemon: Daemon) -> None:
    status = await daemon.json("/api/status")
    asns = {target["name"]: target["asn"] for target in status["targets"]}
    assert asns["kcell"] == KCELL
    assert asns["kaspi"] is not None  # kaspi has no asn: in its catalog entry; the lookup found it


async def test_each_network_has_a_usual_path_its_hops_named_by_the_cymru_lookup(daemon: Daemon) -> None:
    async def kcell_traced() -> bool:
        return f"KZ/AS{KCELL}" in (await daemon.json("/api/paths"))["networks"]

    await until(kcell_traced, timeout=20, what="a usual path to Kcell's network")
    usual = (await daemon.json("/api/paths"))["networks"][f"KZ/AS{KCELL}"]["usual"]
    assert usual["destination"].startswith("127.")  # the lab is on loopback: one hop
    assert [(hop["address"], hop["asn"], hop["reply"]) for hop in usual["hops"]] == [
        (usual["destination"], KCELL, "reached")
    ]


async def test_probe_endpoint_answers_with_that_probe_only(daemon: Daemon) -> None:
    status, text = await daemon.get("/probe?target=kazinform")
    assert (
        status == 200 and 'probe_success{category="state_media",country="KZ",target="kazinform"} 1.0' in text
    )
    assert "monitor_" not in text and "probe_failures_total" not in text
    status, text = await daemon.get("/probe?target=kazinform&debug=true")
    assert "Logs for the probe:" in text and "TLS handshake" in text
    status, text = await daemon.get("/probe?target=http://evil.example/")
    assert status == 400 and "unknown target" in text


async def test_a_site_down_opens_one_site_outage(net, daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    await net.set_host("zakon", Mode.REFUSE)
    await until(lambda: _opened(daemon, ["site:zakon"]), timeout=15, what="a site outage for zakon")
    await net.restore_all()
    await until(lambda: _opened(daemon, []), timeout=15, what="the site outage to close")
    outages = (await daemon.json("/api/outages?since=1h"))["outages"]
    assert [(o["scope"], o["key"], o["evidence"]) for o in outages] == [
        ("site", "zakon", {"tcp_refused": 2})
    ] or (outages[0]["evidence"].get("tcp_refused", 0) >= 2)


async def test_one_network_down_is_a_network_outage(net, daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    await net.set_network(KCELL, Mode.REFUSE)
    await until(lambda: _opened(daemon, [f"network:KZ/AS{KCELL}"]), timeout=15, what="a network outage")
    await asyncio.sleep(2)
    assert await open_outages(daemon) == [f"network:KZ/AS{KCELL}"]


async def test_a_country_shutdown_is_detected_and_two_official_sites_stay_up(net, daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    await net.set_country("KZ", Mode.BLACKHOLE, except_hosts=KAZAKHSTAN_STAYS_UP)
    seconds = await until(lambda: _opened(daemon, ["country:KZ"]), timeout=15, what="a country shutdown")
    assert seconds < 8  # interval 1s, 2 failures to go down, 1s settle: a handful of intervals
    assert await daemon.value("monitor_country_state", country="KZ", state="shutdown") == 1
    assert await daemon.value("monitor_target_up", target="nationalbank", country="KZ", category="bank") == 1
    await asyncio.sleep(2)
    assert await open_outages(daemon) == ["country:KZ"]
    await net.restore_all()
    await until(lambda: _opened(daemon, []), timeout=15, what="the shutdown to end")


async def test_our_vantage_offline_raises_only_the_vantage_outage(net, daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    await net.set_vantage_offline(True)
    await until(lambda: _opened(daemon, ["vantage:vantage"]), timeout=15, what="a vantage outage")
    await asyncio.sleep(5)
    assert await open_outages(daemon) == ["vantage:vantage"]
    assert await daemon.value("monitor_vantage_online") == 0
    assert await daemon.value("monitor_country_state", country="KZ", state="unknown") == 1
    await net.set_vantage_offline(False)
    await until(lambda: _opened(daemon, []), timeout=15, what="the vantage outage to end")
    assert (await daemon.value("monitor_outages_total", scope="country")) == 0


async def test_a_broken_config_on_sighup_keeps_the_running_one(daemon: Daemon) -> None:
    good = daemon.config.read_text()
    daemon.config.write_text(good.replace("interval: 1s", "interval: soon", 1))
    daemon.process.send_signal(signal.SIGHUP)
    await until(
        lambda: _equals(daemon, "monitor_config_last_reload_successful", 0),
        timeout=10,
        what="the failed reload to show",
    )
    probes = await daemon.value("monitor_probes_total", result="success")
    await asyncio.sleep(1.5)
    assert (await daemon.value("monitor_probes_total", result="success") or 0) > (probes or 0)
    renamed = good.replace("{name: zakon,", "{name: zakon-renamed,")
    assert renamed != good
    daemon.config.write_text(renamed)
    status, _ = await daemon.post("/-/reload")
    assert status == 200
    assert await daemon.value("monitor_config_last_reload_successful") == 1
    assert await daemon.value("probe_success", target="zakon", country="KZ", category="media") is None


async def test_restart_during_an_outage_keeps_its_start_time(net, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    await net.restore_all()
    config = write_fast_config(net, tmp_path / "targets.yaml")
    state = tmp_path / "journal.sqlite"
    first = await start_daemon(config, state)
    await until(lambda: judging_with_all_up(first), timeout=20, what="every target up")
    await net.set_host("zakon", Mode.REFUSE)
    await until(lambda: _opened(first, ["site:zakon"]), timeout=15, what="a site outage")
    started = (await first.json("/api/status"))["open_outages"][0]["started_at"]
    assert await first.stop() < 5
    second = await start_daemon(config, state)
    try:
        await asyncio.sleep(4)
        outages = (await second.json("/api/status"))["open_outages"]
        assert [(o["key"], o["started_at"]) for o in outages] == [("zakon", started)]
    finally:
        await second.stop()
        await net.restore_all()
    listing = await asyncio.create_subprocess_exec(
        *monitor_command("outages"),
        "--state",
        str(state),
        "--json",
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await listing.communicate()
    assert [(o["scope"], o["key"], o["started_at"]) for o in json.loads(stdout)] == [
        ("site", "zakon", started)
    ]


async def test_check_command_prints_a_table_and_fails_when_a_target_fails(net, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = write_fast_config(net, tmp_path / "targets.yaml")
    process = await asyncio.create_subprocess_exec(
        *monitor_command("check"),
        "--config",
        str(config),
        "kazinform",
        GEO_BLOCKED,
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await process.communicate()
    lines = stdout.decode().splitlines()
    assert lines[0].split()[:3] == ["target", "result", "failure"]
    assert lines[1].split()[:2] == ["kazinform", "ok"] and lines[2].split()[:3] == [
        GEO_BLOCKED,
        "FAIL",
        "tcp_timeout",
    ]
    assert process.returncode == 1
    process = await asyncio.create_subprocess_exec(
        *monitor_command("check"),
        "--config",
        str(config),
        "kazinform",
        stdout=asyncio.subprocess.PIPE,
    )
    await process.communicate()
    assert process.returncode == 0


async def _opened(daemon: Daemon, expected: list[str]) -> bool:
    return await open_outages(daemon) == sorted(expected)


async def _equals(daemon: Daemon, name: str, value: float) -> bool:
    return await daemon.value(name) == value


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) is not installed")
async def test_the_soft_limit_of_open_files_is_raised_to_the_hard_one(net, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hard = min(8192, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    daemon = await start_daemon(
        write_fast_config(net, tmp_path / "targets.yaml"),
        tmp_path / "journal.sqlite",
        prefix=("prlimit", f"--nofile=1024:{hard}"),
    )
    try:
        limits = Path(f"/proc/{daemon.proc.pid}/limits").read_text().splitlines()
        open_files = next(line for line in limits if line.startswith("Max open files")).split()
        assert open_files[3:5] == [str(hard), str(hard)]
        assert f"soft 1024 raised to {hard}" in daemon.log.read_text()
    finally:
        await daemon.stop()
