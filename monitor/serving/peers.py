"""Reading other monitors' outages over their /api/outages, for the view merged across vantages.

A monitor that does not answer, answers too much, or answers something else than outages is
`unavailable` with the reason: never a vote either way.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from monitor.catalog.durations import format_duration
from monitor.catalog.schema import VANTAGE_NAME
from monitor.outages.consensus import VantageOutages
from monitor.outages.outage import Outage

__all__ = ["MAX_ANSWER_BYTES", "NO_PEERS", "Peers", "check_peer_url", "read_vantages"]

MAX_ANSWER_BYTES = 64 * 1024 * 1024
_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class Peers:
    """The other vantages' monitors a daemon merges its outages with (`monitor run --peer`)."""

    urls: Sequence[str] = ()
    ca_file: str | None = None


NO_PEERS = Peers()


def check_peer_url(url: str) -> str:
    """The base URL of a monitor (http or https, a host; user:password@ for basic auth)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r}: a monitor's base URL, such as http://10.0.0.5:9143")
    return url.rstrip("/")


async def read_vantages(
    urls: Sequence[str], since_seconds: float, *, ca_file: str | None = None
) -> list[VantageOutages]:
    """Each monitor's outages open at any time in the last `since_seconds`, read concurrently."""
    context = ssl.create_default_context(cafile=ca_file)
    timeout = aiohttp.ClientTimeout(total=_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
        answers = await asyncio.gather(*(_read(session, url, since_seconds, context) for url in urls))
    return _unique_names(answers)


async def _read(
    session: aiohttp.ClientSession, url: str, since_seconds: float, context: ssl.SSLContext
) -> VantageOutages:
    shown = _without_password(url)
    try:
        since = {"since": format_duration(since_seconds)}
        body = await _get_json(session, f"{url}/api/outages", since, context)
        return _answer(body, shown)
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        return VantageOutages(_host(url), shown, error=_reason(exc))


async def _get_json(
    session: aiohttp.ClientSession, url: str, params: dict[str, str], context: ssl.SSLContext
) -> Any:
    async with session.get(url, params=params, ssl=context) as response:
        if response.status != 200:
            raise ValueError(f"HTTP {response.status} from {_without_password(url)}")
        body = bytearray()
        async for chunk in response.content.iter_chunked(65536):
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise ValueError(f"the answer is larger than {MAX_ANSWER_BYTES // 2**20} MiB")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    except RecursionError:
        raise ValueError("not JSON: nested too deep") from None


def _answer(body: Any, source: str) -> VantageOutages:
    if not isinstance(body, dict) or not isinstance(body.get("outages"), list):
        raise ValueError("not a monitor's /api/outages: no 'outages' list")
    given = body.get("vantage")
    if given and not (isinstance(given, str) and re.fullmatch(VANTAGE_NAME, given)):
        raise ValueError(f"'vantage' is not a vantage name: {str(given)[:80]!r}")
    name = given or _host(source)  # an unnamed monitor goes by its address
    countries = body.get("countries", [])
    if not isinstance(countries, list) or not all(isinstance(code, str) for code in countries):
        raise ValueError("'countries' is not a list of country codes")
    outages = []
    for index, item in enumerate(body["outages"]):
        try:
            outage = Outage.from_dict(item)
        except ValueError as exc:
            raise ValueError(f"outages[{index}]: {exc}") from None
        outage.vantage = name  # the name it answers to now, for every outage it recorded
        outages.append(outage)
    return VantageOutages(name, source, tuple(outages), frozenset(countries))


def _unique_names(answers: list[VantageOutages]) -> list[VantageOutages]:
    """Two monitors with the same name (or none) keep apart by their address."""
    names = [answer.vantage for answer in answers]
    unique = []
    for answer in answers:
        if names.count(answer.vantage) == 1:
            unique.append(answer)
            continue
        name = f"{answer.vantage}@{_host(answer.source)}"
        for outage in answer.outages:
            outage.vantage = name
        unique.append(VantageOutages(name, answer.source, answer.outages, answer.countries, answer.error))
    return unique


def _host(url: str) -> str:
    """host:port of a URL, without its user and password."""
    return urlsplit(url).netloc.rpartition("@")[2]


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=f"{parts.username}:***@{_host(url)}").geturl()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {_TIMEOUT_SECONDS:g}s"
    return " ".join(str(exc).split()) or type(exc).__name__
