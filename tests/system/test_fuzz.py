"""Property-based tests: any input gives a clear answer, never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ssl
import time

import dns.message
import dns.rdatatype
import dns.rrset
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.catalog.catalog import parse_catalog
from monitor.catalog.problems import ConfigError
from monitor.catalog.schema import Nameserver
from monitor.outages.asn import parse_cymru_txt
from monitor.probing.dns import query
from monitor.probing.dnswire import TYPE_A, MalformedAnswer, build_query, parse_address_answer
from monitor.probing.failures import (
    Failure,
    Phase,
    ProbeFailure,
    classify,
    timeout_failure,
    unexpected_failure,
)
from monitor.probing.result import ProbeTrace

KEYS = [
    "defaults",
    "targets",
    "controls",
    "analysis",
    "name",
    "url",
    "dns",
    "tcp",
    "tls",
    "tls_connect",
    "country",
    "category",
    "asn",
    "interval",
    "timeout",
    "resolvers",
    "http",
    "query",
    "type",
    "body_regex",
    "max_redirects",
    "down_after",
    "ca_file",
    "bogon_networks",
    "shutdown_ratio",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=True),
    st.sampled_from(
        [
            "30s",
            "1m",
            "KZ",
            "https://x.test/",
            "h:443",
            "system",
            "127.0.0.1:53",
            "(",
            "SOA",
            "",
            "kz.",
            "0s",
            "-1s",
            "1ms",
        ]
    ),
    st.text(max_size=20),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS), children, max_size=6)
    ),
    max_leaves=30,
)


def assert_loads_or_explains(text: str) -> None:
    try:
        parse_catalog(text, "fuzz.yaml")
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file == "fuzz.yaml" and problem.line >= 1 and problem.message
            assert str(problem).startswith("fuzz.yaml:")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_any_yaml_document_gives_a_catalog_or_located_problems(document: object) -> None:
    assert_loads_or_explains(yaml.safe_dump(document))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_catalog_or_located_problems(text: str) -> None:
    assert_loads_or_explains(text)


EXCEPTIONS = st.one_of(
    st.sampled_from(
        [
            ConnectionRefusedError(),
            ConnectionResetError(),
            BrokenPipeError(),
            TimeoutError(),
            TimeoutError(),
            EOFError(),
            ssl.SSLError(),
            ssl.SSLEOFError(),
            ssl.SSLCertVerificationError(),
            ValueError("x"),
            RuntimeError(),
        ]
    ),
    st.builds(lambda code: OSError(code, "os"), st.sampled_from(sorted(errno.errorcode))),
)


@given(EXCEPTIONS, st.sampled_from(list(Phase)))
def test_every_exception_in_every_phase_maps_to_one_failure_string(exc: BaseException, phase: Phase) -> None:
    classified = classify(exc, phase)
    failure = classified.failure if classified is not None else unexpected_failure(phase)
    assert isinstance(failure, Failure)
    assert isinstance(timeout_failure(phase), Failure)
    if isinstance(exc, OSError | EOFError) and phase is not Phase.RESOLVE:
        assert classified is not None, "an OS-level error is always known to the classifiers"


@given(st.text(max_size=200))
def test_cymru_answers_parse_to_an_asn_or_nothing(text: str) -> None:
    asn = parse_cymru_txt(text)
    assert asn is None or asn >= 0


class _Responder(asyncio.DatagramProtocol):
    """A resolver that answers every query with whatever bytes the test chose."""

    def __init__(self) -> None:
        self.reply = b""
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        reply = self.reply
        if reply.startswith(b"ECHO-ID"):  # keep the query id so dnspython parses the rest
            reply = data[:2] + reply[len(b"ECHO-ID") :]
        self.transport.sendto(reply, addr)


def _valid_answer() -> bytes:
    request = dns.message.make_query("fuzz.lab.test.", dns.rdatatype.A)
    response = dns.message.make_response(request)
    return response.to_wire()[2:]


ANSWERS = st.one_of(
    st.binary(max_size=600),
    st.binary(max_size=600).map(lambda data: b"ECHO-ID" + data),
    st.tuples(st.integers(0, len(_valid_answer())), st.binary(max_size=40)).map(
        lambda cut: b"ECHO-ID" + _valid_answer()[: cut[0]] + cut[1]
    ),
)


@pytest.mark.asyncio(loop_scope="function")
async def test_garbage_resolver_answers_are_classified_not_crashed_on() -> None:
    loop = asyncio.get_running_loop()
    transport, responder = await loop.create_datagram_endpoint(_Responder, local_addr=("127.0.0.1", 0))
    server = Nameserver("127.0.0.1", transport.get_extra_info("sockname")[1])
    seen: set[str] = set()

    @settings(max_examples=150, deadline=None)
    @given(ANSWERS)
    def run(reply: bytes) -> None:
        responder.reply = reply
        future = asyncio.run_coroutine_threadsafe(_ask_once(server), loop)
        seen.add(future.result(timeout=5))

    try:
        await asyncio.to_thread(run)
    finally:
        transport.close()
    assert seen <= {"answer", "dns_error", "dns_timeout", "dns_nxdomain", "dns_servfail", "dns_refused"}
    assert "dns_error" in seen


async def _ask_once(server: Nameserver) -> str:
    try:
        await query("fuzz.lab.test.", dns.rdatatype.A, (server,), time.monotonic() + 0.3, ProbeTrace("fuzz"))
    except ProbeFailure as failure:
        return failure.failure.value
    return "answer"


QUERY = build_query("Site00001.kz.lab.test", TYPE_A)


def _answer(records: list[str], extra: bytes = b"", cname: bool = False) -> bytes:
    request = dns.message.from_wire(QUERY)
    response = dns.message.make_response(request)
    if cname:
        response.answer.append(
            dns.rrset.from_text("site00001.kz.lab.test.", 30, "IN", "CNAME", "alias.lab.test.")
        )
    if records:
        response.answer.append(
            dns.rrset.from_text(
                "alias.lab.test." if cname else "site00001.kz.lab.test.", 30, "IN", "A", *records
            )
        )
    return response.to_wire() + extra


ADDRESSES = st.lists(st.ip_addresses(v=4).map(str), min_size=0, max_size=8, unique=True)


@given(ADDRESSES, st.booleans())
def test_the_lean_codec_reads_what_dnspython_writes(addresses: list[str], cname: bool) -> None:
    answer = parse_address_answer(_answer(addresses, cname=cname), QUERY)
    assert sorted(answer.addresses) == sorted(addresses)
    assert answer.rcode == 0 and not answer.truncated
    assert answer.records == len(addresses) + cname


@settings(max_examples=1000)
@given(ADDRESSES, st.integers(0, 400), st.binary(max_size=40), st.integers(0, 255), st.integers(0, 400))
def test_the_lean_codec_never_fails_but_with_malformed_answer(
    addresses: list[str], cut: int, tail: bytes, byte: int, where: int
) -> None:
    wire = bytearray(_answer(addresses))
    if where < len(wire):
        wire[where] = byte
    mangled = bytes(wire[:cut]) + tail
    with contextlib.suppress(MalformedAnswer):
        parse_address_answer(mangled, QUERY)


@given(st.binary(max_size=600))
def test_random_bytes_never_crash_the_lean_codec(data: bytes) -> None:
    with contextlib.suppress(MalformedAnswer):
        parse_address_answer(QUERY[:2] + data, QUERY)
