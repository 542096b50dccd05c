"""A tiny JSON HTTP API so another process (demo, benchmarks) can drive a running lab."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from monitor.lab.internet import SimulatedInternet
from monitor.lab.web import Mode

__all__ = ["control_app", "parse_mode"]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_mode(text: str) -> Mode:
    try:
        return Mode(text.lower().replace("-", "_"))
    except ValueError:
        choices = ", ".join(mode.value for mode in Mode)
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"unknown mode {text!r}; use one of {choices}"}),
            content_type="application/json",
        ) from None


@web.middleware
async def _errors_as_json(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except KeyError as exc:
        return web.json_response({"error": str(exc.args[0] if exc.args else exc)}, status=404)
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)


def control_app(net: SimulatedInternet) -> web.Application:
    """POST /network/{asn}/{mode}, /country/{cc}/{mode} (optional JSON body {"except": [...]}),
    /region/{code}/{mode}, /host/{name}/{mode}, /slow/{asn}/{seconds} (0: fast again),
    /dns/{name}/lie/{ip} and /dns/{name}/truth (the national resolver), /vantage/{offline|online},
    /restore; GET /state. Each answers with the lab's state after the change."""

    def state() -> web.Response:
        return web.json_response(net.state())

    async def get_state(request: web.Request) -> web.Response:
        return state()

    def asn(request: web.Request) -> int:
        asn_text = request.match_info["asn"].upper().removeprefix("AS")
        if not asn_text.isdigit():
            raise ValueError(f"{request.match_info['asn']!r} is not an ASN")
        return int(asn_text)

    async def set_network(request: web.Request) -> web.Response:
        await net.set_network(asn(request), parse_mode(request.match_info["mode"]))
        return state()

    async def set_region(request: web.Request) -> web.Response:
        await net.set_region(request.match_info["code"].upper(), parse_mode(request.match_info["mode"]))
        return state()

    async def set_slow(request: web.Request) -> web.Response:
        network = asn(request)
        if network not in net.networks:
            raise KeyError(f"no lab network AS{network}")
        await net.set_slow([network], float(request.match_info["seconds"]))
        return state()

    async def set_dns(request: web.Request) -> web.Response:
        await net.set_dns_tampering([request.match_info["name"]], request.match_info.get("ip"))
        return state()

    async def set_country(request: web.Request) -> web.Response:
        except_hosts: list[str] = []
        if request.can_read_body:
            body = await request.json()
            except_hosts = list(body.get("except", [])) if isinstance(body, dict) else []
        await net.set_country(
            request.match_info["cc"], parse_mode(request.match_info["mode"]), except_hosts=except_hosts
        )
        return state()

    async def set_host(request: web.Request) -> web.Response:
        await net.set_host(request.match_info["name"], parse_mode(request.match_info["mode"]))
        return state()

    async def set_vantage(request: web.Request) -> web.Response:
        wanted = request.match_info["state"]
        if wanted not in ("offline", "online"):
            raise ValueError("vantage is 'offline' or 'online'")
        await net.set_vantage_offline(wanted == "offline")
        return state()

    async def restore(request: web.Request) -> web.Response:
        await net.restore_all()
        return state()

    app = web.Application(middlewares=[_errors_as_json])
    app.router.add_get("/state", get_state)
    app.router.add_post("/network/{asn}/{mode}", set_network)
    app.router.add_post("/country/{cc}/{mode}", set_country)
    app.router.add_post("/region/{code}/{mode}", set_region)
    app.router.add_post("/host/{name}/{mode}", set_host)
    app.router.add_post("/slow/{asn}/{seconds}", set_slow)
    app.router.add_post("/dns/{name}/lie/{ip}", set_dns)
    app.router.add_post("/dns/{name}/truth", set_dns)
    app.router.add_post("/vantage/{state}", set_vantage)
    app.router.add_post("/restore", restore)
    return app
