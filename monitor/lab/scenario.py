"""The January 2022 Kazakhstan shutdown as a replayable timeline on a compressed clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from monitor.lab.internet import SimulatedInternet
from monitor.lab.presets import KAZAKHSTAN_STAYS_UP, KCELL, TELE2
from monitor.lab.web import Mode

__all__ = ["KAZAKHSTAN_2022", "Step", "replay"]

log = logging.getLogger(__name__)

Action = Callable[[SimulatedInternet], Awaitable[None]]
WHITELIST = (*KAZAKHSTAN_STAYS_UP, "kaspi", "kazinform", "khabar")


@dataclass(frozen=True)
class Step:
    when: str  # the historical moment (UTC), for the log
    what: str
    action: Action
    weight: float = 1.0  # share of a phase's length on the compressed clock


async def _normal(net: SimulatedInternet) -> None:
    await net.restore_all()


async def _mobile_degraded(net: SimulatedInternet) -> None:
    await net.restore_all()
    for asn in (KCELL, TELE2):
        await net.set_network(asn, Mode.BLACKHOLE)


async def _country_dark(net: SimulatedInternet) -> None:
    await net.restore_all()
    await net.set_country("KZ", Mode.BLACKHOLE, except_hosts=KAZAKHSTAN_STAYS_UP)


async def _whitelist(net: SimulatedInternet) -> None:
    await net.restore_all()
    await net.set_country("KZ", Mode.BLACKHOLE, except_hosts=WHITELIST)


async def _vantage_offline(net: SimulatedInternet) -> None:
    await net.set_vantage_offline(True)


KAZAKHSTAN_2022 = (
    Step("2022-01-03", "a normal day (akorda is geo-blocked from abroad, as usual)", _normal),
    Step("2022-01-04 14:30", "mobile networks Kcell and Tele2 throttled to nothing", _mobile_degraded),
    Step(
        "2022-01-05 10:30",
        "nationwide blackout; DNS abroad still answers, two official sites stay up",
        _country_dark,
        2.0,
    ),
    Step("2022-01-06 12:00", "brief restoration during the president's address", _normal, 0.5),
    Step("2022-01-06 15:00", "dark again", _country_dark),
    Step("2022-01-08", "whitelist only: a few news sites, Kaspi and the official sites", _whitelist),
    Step("2022-01-11 02:15", "connectivity restored", _normal),
    Step(
        "(any day)",
        "our own uplink fails: nothing is reachable, and nobody should be paged",
        _vantage_offline,
    ),
    Step("(any day)", "our uplink is back", _normal),
)


async def replay(
    net: SimulatedInternet,
    phase_seconds: float,
    *,
    loop: bool = True,
    steps: tuple[Step, ...] = KAZAKHSTAN_2022,
    announce: Callable[[Step], None] | None = None,
) -> None:
    """Play `steps`, each for `phase_seconds * weight`; forever when `loop`."""
    while True:
        for step in steps:
            (announce or _log)(step)
            await step.action(net)
            await asyncio.sleep(phase_seconds * step.weight)
        if not loop:
            return


def _log(step: Step) -> None:
    log.warning("scenario: %s: %s", step.when, step.what)
