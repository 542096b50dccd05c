"""MONITOR_TEST_LOOP=uvloop runs the whole suite on uvloop, the daemon's default when installed."""

from __future__ import annotations

import asyncio
import os

import pytest


@pytest.fixture(scope="session")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    if os.environ.get("MONITOR_TEST_LOOP") == "uvloop":
        import uvloop

        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()
