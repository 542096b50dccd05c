"""Where the packets stop: each network's usual path (the most common of its recent traces) and,
for an outage, where its traces now end against it.

A trace ends at its last answering hop. That hop is named by where it is:
    reached   the destination answered: the path is intact, whatever else is dark
    transit   before the country: a network outside it (our transit, its upstream)
    border    the first hop inside the country: its upstream's edge
    inside    further inside the country, short of the destination
    nowhere   no hop answered, not even our first
The country is the ASNs its catalog entries name (networks, blocks, targets).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from monitor.probing.traceroute import Hop, Trace

__all__ = ["WHERE", "PathBook", "public", "stopping_point", "summarize"]

WHERE = ("reached", "transit", "border", "inside", "nowhere")
_SAID = {
    "reached": "The path reaches the destination",
    "transit": "Packets stop before the country",
    "border": "Packets stop at the first hop inside the country",
    "inside": "Packets stop inside the country, short of the destination",
    "nowhere": "No hop answered",
}


class PathBook:
    """The recent traces of each network ("KZ/AS9198"); its usual path is the most common."""

    def __init__(self, recent: int = 5) -> None:
        self.recent = recent
        self.traces: dict[str, deque[Trace]] = {}

    def add(self, network: str, trace: Trace) -> None:
        self.traces.setdefault(network, deque(maxlen=self.recent)).append(trace)

    def set_recent(self, recent: int) -> None:
        self.recent = recent
        for network, traces in self.traces.items():
            self.traces[network] = deque(traces, maxlen=recent)

    def usual(self, network: str) -> Trace | None:
        """The latest trace of the most common path (ties: the most recent path wins), among
        those that reached the destination when some did: a cut or a router's ICMP rate limit
        makes a trace shorter, never a path usual."""
        traces = list(self.traces.get(network, ()))
        traces = [trace for trace in traces if trace.reached] or traces
        if not traces:
            return None
        counts = Counter(trace.path for trace in traces)
        best = max(counts.values())
        return next(trace for trace in reversed(traces) if counts[trace.path] == best)


def stopping_point(trace: Trace, usual: Trace | None, country_asns: Iterable[int]) -> dict[str, Any]:
    """Where `trace` ends, named, and the hop of the usual path that no longer answers."""
    country = set(country_asns)
    last = trace.last_answer
    entry: dict[str, Any] = {"destination": trace.destination, "traced_at": trace.started_at}
    if trace.reached:
        where = "reached"
    elif last is None:
        where = "nowhere"
    elif last.asn in country:
        first_inside = next(hop for hop in trace.hops if hop.asn in country)
        where = "border" if first_inside.ttl == last.ttl else "inside"
    else:
        where = "transit"
    entry["where"] = where
    entry["stops_at"] = _hop(last) if last is not None else None
    entry["hops"] = [_hop(hop) for hop in trace.hops]
    if usual is not None:
        entry["usual_hops"] = [_hop(hop) for hop in usual.hops]
        entry["usual_reached"] = usual.reached
        entry["as_usual"] = trace.path == usual.path  # the same hops: nothing changed on the way
        if where != "reached":
            entry["first_silent_on_usual_path"] = _next_on(usual, last)
    return entry


def _next_on(usual: Trace, last: Hop | None) -> dict[str, Any] | None:
    """The hop of the usual path after `last` (its first hop when nothing answered)."""
    addresses = [hop.address for hop in usual.hops]
    if last is None:
        position = 0
    elif last.address in addresses:
        position = addresses.index(last.address) + 1
    else:
        return None  # the path changed: the usual one says nothing about this hop
    return _hop(usual.hops[position]) if position < len(usual.hops) else None


def _hop(hop: Hop) -> dict[str, Any]:
    return {"ttl": hop.ttl, "address": hop.address, "asn": hop.asn, "reply": hop.reply}


def summarize(entries: Sequence[dict[str, Any]], at: float) -> dict[str, Any]:
    """An outage's path evidence: its traces, and where most of them stop, in one sentence."""
    counts = Counter(entry["where"] for entry in entries)
    where = max(WHERE, key=lambda name: (counts[name], -WHERE.index(name)))
    typical = next(entry for entry in entries if entry["where"] == where)
    return {
        "where": where,
        "stops_at": typical["stops_at"],
        "said": said(typical, counts[where], len(entries)),
        "traced_at": at,
        "traces": list(entries),
    }


def said(entry: Mapping[str, Any], agreeing: int, traced: int) -> str:
    """`Packets stop at 10.0.1.2 (AS9198), hop 3: the first hop inside the country (2 of 3 traces);
    next on the usual path: 10.0.2.2 (AS9198), silent now.`"""
    where = entry["where"]
    text = _SAID[where]
    stop = entry.get("stops_at")
    if stop is not None and where != "reached":
        text = f"{text}: last answer from {_named(stop)}, hop {stop['ttl']}"
    text += f" ({agreeing} of {traced} traces)"
    if entry.get("as_usual") and where != "reached":
        text += ", where the usual path stops too"
    silent = entry.get("first_silent_on_usual_path")
    if silent is not None and silent.get("address"):
        text += f"; next on the usual path: {_named(silent)}"
    return text


def _named(hop: Mapping[str, Any]) -> str:
    asn = hop.get("asn")
    return f"{hop['address']} (AS{asn})" if asn is not None else f"{hop['address']}"


def public(path: Mapping[str, Any]) -> dict[str, Any]:
    """The evidence without its traces: their destinations are the monitor's targets, which a
    public page does not name."""
    return {key: value for key, value in path.items() if key != "traces"}
