"""The simulated internet shared by the system tests of one module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from monitor.lab.internet import SimulatedInternet
from monitor.lab.presets import kazakhstan


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def net(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimulatedInternet]:
    """The simulated Kazakhstan of January 2022 on loopback (a module may override it)."""
    async with kazakhstan(workdir=tmp_path_factory.mktemp("lab")) as internet:
        yield internet
