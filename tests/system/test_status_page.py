"""The status page in a real headless Chromium (Debian's chromium and chromium-driver, driven by
selenium): healthy, during a country shutdown and while our vantage is offline, with a screenshot
of each in test-artifacts/ (not committed); the public view and the outage report."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from monitor.lab.harness import monitor_command
from monitor.lab.presets import KAZAKHSTAN_STAYS_UP
from monitor.lab.web import Mode
from tests.system.daemon_harness import Daemon, controls_up, start_daemon, until, write_fast_config

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("MONITOR_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.path.exists(path):
            pytest.skip(f"{path} is missing (Debian package {package}; scripts/setup-debian.sh installs it)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Chromium reaches for Google's hosts at start unless told not to; nothing may leave loopback.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1200,1600",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest_asyncio.fixture(loop_scope="module")
async def daemon(net, tmp_path: Path) -> AsyncIterator[Daemon]:  # type: ignore[no-untyped-def]
    await net.restore_all()
    config = write_fast_config(net, tmp_path / "targets.yaml")
    running = await start_daemon(config, tmp_path / "journal.sqlite")
    await until(lambda: _verdict(running, "normal"), timeout=30, what="KZ to be normal")
    yield running
    await running.stop()
    await net.restore_all()


async def _verdict(daemon: Daemon, verdict: str) -> bool:
    status = await daemon.json("/api/status")
    return bool(status["countries"]) and status["countries"]["KZ"]["verdict"] == verdict


def _look(driver: Any, url: str, screenshot: str) -> dict[str, Any]:
    """Load the page, save a screenshot, and read what a person sees of it."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / screenshot))
    country = driver.find_element(By.ID, "country-KZ")
    badge = country.find_element(By.CSS_SELECTOR, ".headline")
    return {
        "title": driver.title,
        "verdict": country.get_attribute("data-verdict"),
        "headline": badge.text,
        "badge_colour": badge.value_of_css_property("background-color"),
        "share": country.find_element(By.CSS_SELECTOR, ".share").text,
        "open": [
            (row.get_attribute("data-scope"), row.find_element(By.TAG_NAME, "td").text)
            for row in driver.find_elements(By.CSS_SELECTOR, "#open-outages tr.outage")
        ],
        "banner": [element.text for element in driver.find_elements(By.ID, "blind-banner")],
        "targets": len(driver.find_elements(By.CSS_SELECTOR, "#targets tr")) - 1,
        "sparkline": len(country.find_elements(By.CSS_SELECTOR, "svg.sparkline")),
        "refresh": driver.find_element(By.CSS_SELECTOR, "meta[http-equiv=refresh]").get_attribute("content"),
        "scripts": len(driver.find_elements(By.TAG_NAME, "script")),
    }


async def test_the_page_tells_normal_shutdown_and_blind_apart_and_reports_the_shutdown(  # type: ignore[no-untyped-def]
    net, daemon: Daemon, browser: Any, tmp_path: Path
) -> None:
    healthy = await asyncio.to_thread(_look, browser, daemon.base + "/", "status-healthy.png")
    assert healthy["verdict"] == "normal"
    assert healthy["headline"] == "NORMAL"
    assert healthy["badge_colour"] == "rgba(46, 125, 50, 1)"  # green
    assert healthy["open"] == [] and healthy["banner"] == []
    assert healthy["share"].endswith("%") and healthy["sparkline"] == 1
    catalog = (await daemon.json("/api/status"))["targets"]
    assert healthy["targets"] == len(catalog) and healthy["refresh"] == "30" and healthy["scripts"] == 0
    assert "KZ NORMAL" in healthy["title"]

    await net.set_country("KZ", Mode.BLACKHOLE, except_hosts=KAZAKHSTAN_STAYS_UP)
    await until(lambda: _verdict(daemon, "full"), timeout=20, what="a full shutdown of KZ")
    shutdown = await asyncio.to_thread(_look, browser, daemon.base + "/", "status-shutdown.png")
    assert shutdown["headline"] == "SHUTDOWN"
    assert shutdown["badge_colour"] == "rgba(198, 40, 40, 1)"  # red
    assert ("country", "KZ") in shutdown["open"]
    share = int(shutdown["share"].rstrip(" %"))
    assert share < 30

    await net.restore_all()
    await until(lambda: _verdict(daemon, "normal"), timeout=30, what="KZ to be normal again")
    await net.set_vantage_offline(True)
    await until(lambda: _verdict(daemon, "vantage"), timeout=20, what="the vantage to go offline")
    blind = await asyncio.to_thread(_look, browser, daemon.base + "/", "status-vantage-offline.png")
    assert blind["headline"] == "UNKNOWN"  # never "normal" while we cannot see
    assert blind["badge_colour"] == "rgba(117, 117, 117, 1)"  # grey
    assert blind["share"] == "—"
    assert blind["banner"] and "offline" in blind["banner"][0]
    assert ("vantage", "vantage") in blind["open"]
    await net.set_vantage_offline(False)
    await until(lambda: controls_up(daemon), timeout=20, what="the vantage back online")

    status, text = await daemon.get("/")
    assert status == 200 and "report</a>" in text  # the shutdown is in the journal, with its report
    await _the_report_of_the_shutdown_names_what_how_and_when(daemon, tmp_path / "journal.sqlite", tmp_path)


async def _the_report_of_the_shutdown_names_what_how_and_when(
    daemon: Daemon, journal: Path, tmp_path: Path
) -> None:
    outages = (await daemon.json("/api/outages?since=1h"))["outages"]
    country = next(outage for outage in outages if outage["scope"] == "country")
    status, html = await daemon.get(f"/api/outages/{country['id']}/report")
    assert status == 200
    assert "KZ: SHUTDOWN" in html and "tcp_timeout" in html and "packets were dropped" in html
    assert "<svg" in html and "<script" not in html
    status, markdown = await daemon.get(f"/api/outages/{country['id']}/report?format=markdown")
    assert status == 200 and markdown.startswith("# KZ: SHUTDOWN")
    assert "![Timeline of KZ](data:image/svg+xml;base64," in markdown
    assert (await daemon.get("/api/outages/0123456789abcdef/report"))[0] == 404
    assert (await daemon.get(f"/api/outages/{country['id']}/report?format=pdf"))[0] == 400

    # the CLI reads the same journal, by a prefix of the id as git takes a commit's
    written = tmp_path / "report.md"
    run = subprocess.run(
        monitor_command("report", country["id"][:8], "--state", str(journal), "--format",
                        "markdown", "--output", str(written)),
        capture_output=True, text=True, timeout=30,
    )
    assert run.returncode == 0, run.stderr
    assert written.read_text().startswith("# KZ: SHUTDOWN")
    missing = subprocess.run(
        monitor_command("report", "ffffffff", "--state", str(journal)),
        capture_output=True, text=True, timeout=30,
    )
    assert missing.returncode == 2 and "no outage with id ffffffff" in missing.stderr


async def test_the_public_view_shows_verdicts_and_the_journal_only(net, tmp_path: Path, browser: Any) -> None:  # type: ignore[no-untyped-def]
    await net.restore_all()
    public = await start_daemon(
        write_fast_config(net, tmp_path / "targets.yaml"), tmp_path / "journal.sqlite", "--web.public"
    )
    try:
        await until(lambda: _public_verdict(public, "normal"), timeout=30, what="KZ to be normal")
        seen = await asyncio.to_thread(_look, browser, public.base + "/", "status-public.png")
        assert seen["headline"] == "NORMAL" and seen["targets"] == -1  # no target table at all
        _, page = await public.get("/")
        assert "kazinform" not in page and "/api/status" not in page
        assert (await public.get("/api/status"))[0] == 404
        assert (await public.get("/probe?target=kazinform"))[0] == 404
        assert (await public.get("/metrics"))[0] == 200
    finally:
        await public.stop()


async def _public_verdict(daemon: Daemon, verdict: str) -> bool:
    _, text = await daemon.get("/")
    return f'id="country-KZ" data-verdict="{verdict}"' in text

