"""Nobody let in: /probe takes catalog names only, TLS and basic auth, no secrets anywhere."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import pytest_asyncio
import trustme
import yaml

from monitor.lab.harness import run_monitor
from monitor.lab.internet import SimulatedInternet
from tests.system.daemon_harness import Daemon, start_daemon, until, write_fast_config

pytestmark = pytest.mark.asyncio(loop_scope="module")

PASSWORD = "hunter2-correct-horse"
URL_PASSWORD = "s3cr3t-in-the-url"
TOKEN = "t0ken-in-the-query"


def config_with(net: SimulatedInternet, path: Path, **top: object) -> Path:
    write_fast_config(net, path)
    document = yaml.safe_load(path.read_text())
    document.update(top)
    url = net.url("vlast").replace("http://", f"http://monitor:{URL_PASSWORD}@") + f"?token={TOKEN}"
    document["targets"].append(
        {
            "name": "secretive",
            "url": url,
            "country": "KZ",
            "category": "media",
            "http": {"body_regex": "never in the page"},
        }
    )
    path.write_text(yaml.safe_dump(document))
    return path


@pytest_asyncio.fixture(loop_scope="module")
async def daemon(net: SimulatedInternet, tmp_path: Path) -> AsyncIterator[Daemon]:
    running = await start_daemon(config_with(net, tmp_path / "targets.yaml"), tmp_path / "journal.sqlite")
    yield running
    await running.stop()


async def test_probe_rejects_urls_unless_the_catalog_allows_adhoc(
    net: SimulatedInternet, daemon: Daemon, tmp_path: Path
) -> None:
    status, text = await daemon.get(f"/probe?target={net.url('kazinform')}")
    assert status == 400 and "allow_adhoc" in text
    adhoc = await start_daemon(
        config_with(net, tmp_path / "adhoc.yaml", allow_adhoc=True), tmp_path / "a.sqlite"
    )
    try:
        status, text = await adhoc.get(f"/probe?target={net.url('kazinform')}")
        assert (
            status == 200
            and 'probe_success{category="adhoc",country="ZZ",target="inform.kz.lab.test"} 1.0' in text
        )
        status, text = await adhoc.get("/probe?target=gopher://x")
        assert status == 400
    finally:
        await adhoc.stop()


async def test_reload_is_off_unless_enabled(daemon: Daemon) -> None:
    status, _ = await daemon.post("/-/reload")
    assert status in (404, 405)


async def test_no_secret_appears_in_metrics_api_debug_output_or_logs(daemon: Daemon) -> None:
    await until(lambda: _failed_twice(daemon), timeout=15, what="the secretive target to fail")
    _, debug = await daemon.get("/probe?target=secretive&debug=true")
    assert "GET http://monitor:<redacted>@vlast.kz.lab.test" in debug and "token=<redacted>" in debug
    seen = [debug]
    for path in ("/metrics", "/api/status", "/api/outages?since=1h", "/probe?target=secretive"):
        seen.append((await daemon.get(path))[1])
    await daemon.stop()
    seen.append(daemon.log.read_text())
    for text in seen:
        assert URL_PASSWORD not in text and TOKEN not in text


async def _failed_twice(daemon: Daemon) -> bool:
    value = await daemon.value(
        "probe_failures_total",
        target="secretive",
        country="KZ",
        category="media",
        reason="http_body_mismatch",
    )
    return (value or 0) >= 2


@pytest.fixture(scope="module")
def server_pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    directory = tmp_path_factory.mktemp("web-pki")
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(directory / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    return ca, directory


async def test_tls_and_basic_auth_protect_everything_but_healthz(
    net: SimulatedInternet, tmp_path: Path, server_pki: tuple[trustme.CA, Path]
) -> None:
    ca, directory = server_pki
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web_config = tmp_path / "web.yaml"
    web_config.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert_file": str(directory / "cert.pem"),
                    "key_file": str(directory / "key.pem"),
                },
                "basic_auth_users": {"prometheus": hashed},
            }
        )
    )
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    daemon = await start_daemon(
        config_with(net, tmp_path / "targets.yaml"),
        tmp_path / "journal.sqlite",
        "--web-config",
        str(web_config),
        tls=client_context,
    )

    async def status(path: str, password: str | None = None) -> int:
        headers = {}
        if password is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"prometheus:{password}".encode()).decode()
        return (await daemon.get(path, headers))[0]

    try:
        assert await status("/metrics") == 401
        assert await status("/metrics", "wrong password") == 401
        assert await status("/metrics", PASSWORD) == 200
        assert await status("/api/status", PASSWORD) == 200
        assert await status("/probe?target=kazinform") == 401
        assert await status("/") == 401  # the status page is the operator's view: behind the same door
        assert await status("/", PASSWORD) == 200
        with pytest.raises(aiohttp.ClientError):
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{daemon.port}/healthz"),
            ):
                pass
    finally:
        await daemon.stop()


async def test_a_web_config_with_a_plain_password_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    web_config = tmp_path / "web.yaml"
    web_config.write_text("basic_auth_users:\n  prometheus: hunter2\n")
    config = tmp_path / "targets.yaml"
    config.write_text("targets: []\n")
    proc = run_monitor(config, "--web-config", str(web_config))
    assert await asyncio.to_thread(proc.popen.wait, 30) == 2
    stderr = proc.log.read_text()
    assert f"{web_config}:2: basic_auth_users.prometheus: must be a bcrypt hash" in stderr


def _basic(password: str, user: str = "prometheus") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_wrong_passwords_from_eight_clients_neither_stall_the_probes_nor_block_scrapes(
    net: SimulatedInternet, tmp_path: Path
) -> None:
    """bcrypt at its usual cost (~0.2 s) ran on the event loop: every probe waited behind it."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=12)).decode()
    web_config = tmp_path / "web.yaml"
    web_config.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed}}))
    config = config_with(net, tmp_path / "targets.yaml")
    daemon = await start_daemon(config, tmp_path / "journal.sqlite", "--web-config", str(web_config))
    stop = asyncio.Event()
    refused: list[int] = []

    async def guess(client: int) -> None:
        async with aiohttp.ClientSession() as session:
            for attempt in range(10_000):
                if stop.is_set():
                    return
                password = f"guess-{client}-{attempt}"
                async with session.get(daemon.base + "/metrics", headers=_basic(password)) as response:
                    refused.append(response.status)

    try:
        assert (await daemon.get("/metrics", _basic(PASSWORD)))[0] == 200
        before = await daemon.schedule_lag(_basic(PASSWORD))
        guessing = [asyncio.create_task(guess(client)) for client in range(8)]
        scrapes = []
        for _ in range(10):
            await asyncio.sleep(0.5)
            scrapes.append((await daemon.get("/metrics", _basic(PASSWORD)))[0])
        stop.set()
        await asyncio.gather(*guessing)
        after = await daemon.schedule_lag(_basic(PASSWORD))
        outages = await daemon.json("/api/outages?since=1h", _basic(PASSWORD))
    finally:
        await daemon.stop()
    assert outages["outages"] == []  # no outage of any scope, our own included
    assert scrapes == [200] * 10
    assert refused and set(refused) == {401}
    probes = after[1] - before[1]
    assert probes > 50 and (after[0] - before[0]) / probes < 0.05, f"mean lag over {probes} probes"
