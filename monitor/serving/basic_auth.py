"""Basic auth that a stranger cannot use to stall the monitor or to learn its user names.

As in Prometheus' exporter-toolkit (web/handler.go): bcrypt runs one check at a time and off the
event loop (bcrypt costs ~0.2 s by design; on the loop, eight clients sending wrong passwords
delayed every probe); an unknown user is checked against a fake hash of the same cost, so a
name cannot be told apart by timing; and both outcomes are remembered (bounded), keyed by a
digest of user, hash and password, so neither a scraper nor a client repeating a wrong password
pays bcrypt again.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable

import aiohttp
import bcrypt

__all__ = ["BCRYPT_HASH", "BasicAuthUsers"]

BCRYPT_HASH = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
_CACHE_SIZE = 1024


class BasicAuthUsers:
    def __init__(
        self,
        users: dict[str, str],
        checkpw: Callable[[bytes, bytes], bool] = bcrypt.checkpw,
        cache_size: int = _CACHE_SIZE,
    ) -> None:
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        self._checkpw = checkpw
        self._cache_size = cache_size
        self._outcomes: OrderedDict[bytes, bool] = OrderedDict()
        self._one_at_a_time: asyncio.Lock | None = None
        costs = [int(match.group(1)) for hashed in users.values() if (match := BCRYPT_HASH.match(hashed))]
        self._fake_hash = bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds=max(costs, default=12)))

    async def allowed(self, authorization: str) -> bool:
        """Whether the `Authorization` header names a user with the right password."""
        try:
            credentials = aiohttp.BasicAuth.decode(authorization, encoding="utf-8")
        except ValueError:  # not Basic, not base64, no colon, not UTF-8
            return False
        hashed = self._users.get(credentials.login)
        known = hashed is not None
        hashed = hashed or self._fake_hash
        secret = b"\0".join((credentials.login.encode(), hashed, credentials.password.encode()))
        digest = hashlib.sha256(secret).digest()
        outcome = self._remembered(digest)
        if outcome is None:
            if self._one_at_a_time is None:
                self._one_at_a_time = asyncio.Lock()
            async with self._one_at_a_time:
                outcome = self._remembered(digest)  # the check ahead in the queue may have been this one
                if outcome is None:
                    matches = await asyncio.to_thread(self._checkpw, credentials.password.encode(), hashed)
                    outcome = matches and known
                    self._remember(digest, outcome)
        return outcome

    def _remembered(self, digest: bytes) -> bool | None:
        # A lookup by digest leaks nothing by its timing: finding a digest needs the password.
        outcome = self._outcomes.get(digest)
        if outcome is not None:
            self._outcomes.move_to_end(digest)
        return outcome

    def _remember(self, digest: bytes, outcome: bool) -> None:
        self._outcomes[digest] = outcome
        while len(self._outcomes) > self._cache_size:
            self._outcomes.popitem(last=False)
