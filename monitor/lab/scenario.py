"""The January 2022 Kazakhstan shutdown as a replayable timeline on a compressed clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from monitor.lab.internet import SimulatedInternet
from monitor.lab.presets import ALMATY, KAZAKHSTAN_STAYS_UP, MOBILE_NETWORKS
from monitor.lab.web import Mode

__all__ = ["KAZAKHSTAN_2022", "Step", "kazakhstan_2022", "replay"]

log = logging.getLogger(__name__)

Action = Callable[[SimulatedInternet], Awaitable[None]]
WHITELIST = (*KAZAKHSTAN_STAYS_UP, "kaspi", "kazinform", "khabar")


@dataclass(frozen=True)
class Step:
    when: str  # the historical moment (UTC), for the log
    what: str
    action: Action
    expect: str  # the country verdict this shape should give (rules.VERDICTS)
    weight: float = 1.0  # share of a phase's length on the compressed clock


async def _normal(net: SimulatedInternet) -> None:
    await net.restore_all()


def _throttled(seconds: float) -> Action:
    async def throttle(net: SimulatedInternet) -> None:
        await net.restore_all()
        await net.set_slow(MOBILE_NETWORKS, seconds)

    return throttle


async def _mobile_dark(net: SimulatedInternet) -> None:
    await net.restore_all()
    for asn in MOBILE_NETWORKS:
        await net.set_network(asn, Mode.BLACKHOLE)


async def _country_dark(net: SimulatedInternet) -> None:
    await net.restore_all()
    await net.set_country("KZ", Mode.BLACKHOLE, except_hosts=KAZAKHSTAN_STAYS_UP)


async def _almaty_dark(net: SimulatedInternet) -> None:
    await net.restore_all()
    await net.set_region(ALMATY, Mode.BLACKHOLE)


async def _whitelist(net: SimulatedInternet) -> None:
    await net.restore_all()
    await net.set_country("KZ", Mode.BLACKHOLE, except_hosts=WHITELIST)


async def _resolver_lies(net: SimulatedInternet) -> None:
    await net.restore_all()
    await net.set_dns_tampering(["kaspi", "tengrinews", "vlast"], "10.10.34.35")


async def _vantage_offline(net: SimulatedInternet) -> None:
    await net.set_vantage_offline(True)


def kazakhstan_2022(slow_seconds: float = 1.0) -> tuple[Step, ...]:
    """The timeline; the mobile networks' throttle adds `slow_seconds` to every answer."""
    return (
        Step("2022-01-03", "a normal day (akorda is geo-blocked from abroad, as usual)", _normal, "normal"),
        Step(
            "2022-01-04 14:30",
            "the mobile networks Kcell, Tele2 and Beeline throttled: slow, not dark",
            _throttled(slow_seconds),
            "throttled",
        ),
        Step("2022-01-04 18:00", "the mobile networks dead, fixed lines up", _mobile_dark, "mobile_only"),
        Step(
            "2022-01-05 10:30",
            "nationwide blackout; DNS abroad still answers, two official sites stay up",
            _country_dark,
            "full",
            2.0,
        ),
        Step("2022-01-06 12:00", "brief restoration during the president's address", _normal, "normal", 0.5),
        Step("2022-01-06 15:00", "dark again", _country_dark, "full"),
        Step(
            "2022-01-07",
            "data centres and Astana back; Almaty, the largest city, still dark",
            _almaty_dark,
            "regional",
            2.0,
        ),
        Step("2022-01-08", "whitelist only: some news sites, Kaspi, official sites", _whitelist, "whitelist"),
        Step("2022-01-11 02:15", "connectivity restored", _normal, "normal"),
        Step(
            "(another day)",
            "the national resolver answers a block page for independent media and Kaspi",
            _resolver_lies,
            "dns_tampering",
        ),
        Step(
            "(any day)",
            "our own uplink fails: nothing is reachable, and nobody should be paged",
            _vantage_offline,
            "vantage",
        ),
        Step("(any day)", "our uplink is back", _normal, "normal"),
    )


KAZAKHSTAN_2022 = kazakhstan_2022()


async def replay(
    net: SimulatedInternet,
    phase_seconds: float,
    *,
    loop: bool = True,
    steps: tuple[Step, ...] = KAZAKHSTAN_2022,
    announce: Callable[[Step], None] | None = None,
    conclude: Callable[[Step], None] | None = None,
) -> None:
    """Play `steps`, each for `phase_seconds * weight`, calling `conclude` at the end of each;
    forever when `loop`."""
    while True:
        for step in steps:
            (announce or _log)(step)
            await step.action(net)
            await asyncio.sleep(phase_seconds * step.weight)
            if conclude is not None:
                conclude(step)
        if not loop:
            return


def _log(step: Step) -> None:
    log.warning("scenario: %s: %s", step.when, step.what)
