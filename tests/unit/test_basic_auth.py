"""Basic auth checks: right and wrong passwords, unknown users through a fake hash, outcomes
remembered so bcrypt runs once per distinct credential, malformed headers refused."""

from __future__ import annotations

import base64

import bcrypt
import pytest

from monitor.serving.basic_auth import BCRYPT_HASH, BasicAuthUsers

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class CountingCheck:
    """The real bcrypt.checkpw, counting its calls and the hashes it was given."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.hashes.append(hashed)
        return bcrypt.checkpw(password, hashed)


async def test_the_right_password_is_let_in_and_a_wrong_one_is_not() -> None:
    users = BasicAuthUsers({"prometheus": HASH})
    assert await users.allowed(header("prometheus", "s3cret"))
    assert not await users.allowed(header("prometheus", "guess"))


async def test_each_outcome_costs_bcrypt_once() -> None:
    check = CountingCheck()
    users = BasicAuthUsers({"prometheus": HASH}, checkpw=check)
    for _ in range(5):
        assert await users.allowed(header("prometheus", "s3cret"))
        assert not await users.allowed(header("prometheus", "guess"))
    assert len(check.hashes) == 2


async def test_an_unknown_user_costs_a_bcrypt_check_of_the_same_cost() -> None:
    check = CountingCheck()
    users = BasicAuthUsers({"prometheus": HASH}, checkpw=check)
    assert not await users.allowed(header("mallory", "s3cret"))
    (fake,) = check.hashes
    assert fake != HASH.encode()
    match = BCRYPT_HASH.match(fake.decode())
    assert match is not None and match.group(1) == "04"  # the configured users' cost


async def test_the_cache_is_bounded() -> None:
    check = CountingCheck()
    users = BasicAuthUsers({"prometheus": HASH}, checkpw=check, cache_size=3)
    for attempt in range(10):
        assert not await users.allowed(header("prometheus", f"guess{attempt}"))
    assert len(users._outcomes) == 3
    assert not await users.allowed(header("prometheus", "guess0"))  # forgotten: checked again
    assert len(check.hashes) == 11


@pytest.mark.parametrize(
    "value",
    ["", "Bearer abc", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic " + "\xff"],
)
async def test_malformed_headers_are_refused_without_a_check(value: str) -> None:
    check = CountingCheck()
    users = BasicAuthUsers({"prometheus": HASH}, checkpw=check)
    assert not await users.allowed(value)
    assert check.hashes == []
