"""Prometheus-style durations: `15s`, `1m30s`, `500ms`, `1h`."""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration"]

_UNITS = {"y": 365 * 86400.0, "w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_ORDER = ("y", "w", "d", "h", "m", "s", "ms")


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError with a hint when it is not a Prometheus duration."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration; write it like 30s, 1m or 1m30s")
    return sum(int(value) * _UNITS[unit] for unit, value in zip(_ORDER, match.groups(), strict=True) if value)


def format_duration(seconds: float) -> str:
    millis = round(seconds * 1000)
    parts = []
    for unit in _ORDER:
        size = round(_UNITS[unit] * 1000)
        if millis >= size:
            parts.append(f"{millis // size}{unit}")
            millis %= size
    return "".join(parts) or "0s"
