"""A monitor's vantage name in its journal, API and page; and the merged view across vantages when
some of them are gone, hostile or not monitors at all (the happy path with three real vantages is
in test_e2e_vantages.py)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from monitor.lab.harness import monitor_command
from monitor.lab.internet import SimulatedInternet
from monitor.lab.web import Mode
from monitor.serving.peers import MAX_ANSWER_BYTES
from tests.system.daemon_harness import Daemon, free_port, start_daemon, until, write_fast_config

pytestmark = pytest.mark.asyncio(loop_scope="module")

DARKENED = "zakon"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def daemon(net: SimulatedInternet, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Daemon]:
    workdir = tmp_path_factory.mktemp("vantage")
    config = write_fast_config(net, workdir / "targets.yaml")
    config.write_text(config.read_text() + "vantage: from-the-catalog\n")
    running = await start_daemon(config, workdir / "journal.sqlite", "--vantage", "fra1")
    await until(lambda: _target_up(running, DARKENED), timeout=30, what=f"{DARKENED} up")
    await net.set_host(DARKENED, Mode.REFUSE)
    await until(lambda: _site_outage_recorded(running), timeout=30, what=f"the outage of {DARKENED}")
    yield running
    await running.stop()
    await net.restore_all()


async def _target_up(daemon: Daemon, name: str) -> bool:
    samples = await daemon.metrics()
    return any(
        metric == "monitor_target_up" and dict(labels)["target"] == name and value == 1
        for (metric, labels), value in samples.items()
    )


async def _site_outage_recorded(daemon: Daemon) -> bool:
    body = await daemon.json("/api/outages")
    return any(outage["key"] == DARKENED for outage in body["outages"]) and body["source"] == "journal"


async def test_the_vantage_flag_names_the_monitor_in_its_api_journal_page_and_log(daemon: Daemon) -> None:
    status = await daemon.json("/api/status")
    assert status["vantage"] == "fra1"  # --vantage wins over the catalog's
    listed = await daemon.json("/api/outages")
    assert (listed["vantage"], listed["countries"]) == ("fra1", ["KZ"])
    assert {outage["vantage"] for outage in listed["outages"]} == {"fra1"}
    _, page = await daemon.get("/")
    assert 'Seen from vantage <b id="vantage">fra1</b>' in page
    db = sqlite3.connect(f"file:{daemon.config.parent / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        assert {row[0] for row in db.execute("SELECT vantage FROM outages")} == {"fra1"}
    finally:
        db.close()
    assert "from vantage fra1" in daemon.log.read_text()


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *monitor_command(*args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_vantage_name_that_cannot_be_a_label_value_is_refused_with_what_is_allowed(
    tmp_path: Path,
) -> None:
    code, _, err = await _run("run", "--config", str(tmp_path / "none.yaml"), "--vantage", "two words")
    assert code == 2 and "'two words': letters, digits" in err
    code, _, err = await _run(
        "run", "--config", str(tmp_path / "none.yaml"), env={**os.environ, "MONITOR_VANTAGE": "a/b"}
    )
    assert code == 2 and "'a/b': letters, digits" in err
    code, _, err = await _run("outages", "--from", "ftp://fra1:9143")
    assert code == 2 and "a monitor's base URL" in err


@pytest_asyncio.fixture(loop_scope="module")
async def hostile_peers() -> AsyncIterator[dict[str, str]]:
    """Base URLs of servers that are no monitor's /api/outages: each answers one way wrong."""

    async def not_json(request: web.Request) -> web.Response:
        return web.Response(text="<html>a login page</html>")

    async def wrong_shape(request: web.Request) -> web.Response:
        return web.json_response({"outages": [{"key": "KZ"}]})

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"[" * 1_048_576
        for _ in range(MAX_ANSWER_BYTES // len(chunk) + 2):
            await response.write(chunk)
        return response

    async def forbidden(request: web.Request) -> web.Response:
        return web.Response(status=401)

    async def deep(request: web.Request) -> web.Response:
        return web.Response(body=b"[" * 200_000, content_type="application/json")

    async def impostor(request: web.Request) -> web.Response:
        return web.json_response({"vantage": "<script>", "outages": []})

    async with AsyncExitStack() as exits:
        urls = {}
        for name, handler in [("not_json", not_json), ("wrong_shape", wrong_shape), ("endless", endless),
                              ("forbidden", forbidden), ("deep", deep), ("impostor", impostor)]:  # fmt: skip
            app = web.Application()
            app.router.add_get("/api/outages", handler)
            runner = web.AppRunner(app)
            await runner.setup()
            exits.push_async_callback(runner.cleanup)
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            urls[name] = f"http://127.0.0.1:{port}"
        urls["nobody"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        yield urls


async def test_peers_that_are_gone_or_hostile_are_unavailable_with_the_reason_never_a_vote(
    daemon: Daemon, hostile_peers: dict[str, str]
) -> None:
    sources = [arg for url in [daemon.base, *hostile_peers.values()] for arg in ("--from", url)]
    code, out, err = await _run("outages", "--json", *sources)
    assert code == 0, err
    merged = json.loads(out)
    errors = {v["source"]: v["error"] for v in merged["vantages"]}
    assert errors.pop(daemon.base) is None
    reasons = {name: errors[url] for name, url in hostile_peers.items()}
    assert reasons["not_json"].startswith("not JSON")
    assert reasons["wrong_shape"] == "outages[0]: an outage needs 'scope'"
    assert reasons["endless"] == "the answer is larger than 64 MiB"
    assert reasons["forbidden"].startswith("HTTP 401")
    assert reasons["deep"] == "not JSON: nested too deep"
    assert reasons["impostor"] == "'vantage' is not a vantage name: '<script>'"
    assert "Connect" in reasons["nobody"] or "refused" in reasons["nobody"].lower()
    for url in hostile_peers.values():
        assert url in err  # one stderr line each
    site = next(o for o in merged["outages"] if o["key"] == DARKENED)
    assert (site["seen_by"], site["consensus"]) == (["fra1"], "single_vantage")
    assert len(site["unavailable"]) == len(hostile_peers)

    table_code, table, _ = await _run("outages", *sources)
    assert table_code == 0 and table.splitlines()[0].split()[:3] == ["scope", "key", "consensus"]
    only_bad = [arg for url in hostile_peers.values() for arg in ("--from", url)]
    assert (await _run("outages", *only_bad))[0] == 1  # nobody answered: nothing to merge
