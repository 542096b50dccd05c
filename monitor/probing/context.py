"""What every probe function gets besides its target, and the one signature they share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from monitor.catalog.catalog import Target
from monitor.probing.result import ProbeTrace

if TYPE_CHECKING:
    from monitor.probing.http import HTTPClient

__all__ = ["ProbeContext", "ProbeFn"]


@dataclass(slots=True)
class ProbeContext:
    trace: ProbeTrace  # the probe writes its phases, addresses and findings here
    deadline: float  # monotonic; the prober enforces it, layers share it out (DNS resolvers)
    http: HTTPClient  # shared by all probes of the process
    resolved: dict[str, tuple[str, ...]] = field(default_factory=dict)  # host -> addresses, this probe


ProbeFn = Callable[[Target, ProbeContext], Awaitable[None]]
"""A probe of one kind: returns when the target answered as it should, raises otherwise
(a ProbeFailure for what it judged itself, anything else for the classifiers)."""
