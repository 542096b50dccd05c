"""The failure taxonomy: one closed set of strings, and the one place exceptions map onto it.

As in OONI's netxlite (classify.go), each layer has its own classifier that tries the cases
only it knows and falls back to `classify_os_error`; the probes themselves only raise or let
exceptions through, and the prober asks `classify` with the phase that was running:

    classify(exc, phase)
      resolve           -> (the DNS layer asks classify_resolver_error for each resolver it tries)
      connect           -> classify_os_error
      tls               -> classify_tls_error        (ssl, then OS errors)
      processing/transfer -> classify_http_error     (aiohttp, then OS errors)

aiohttp re-raises an OS error as `ClientOSError(*args)`; the classifiers look at its cause.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections.abc import Callable
from enum import StrEnum

import aiohttp
import dns.exception
import dns.rcode
from aiohttp.http_exceptions import LineTooLong

__all__ = [
    "FAILURE_MEANINGS",
    "Failure",
    "Phase",
    "ProbeFailure",
    "classify",
    "classify_http_error",
    "classify_os_error",
    "classify_resolver_error",
    "classify_tls_error",
    "failure_for_rcode",
    "is_local_error",
    "timeout_failure",
    "unexpected_failure",
]


class Phase(StrEnum):
    """Where in a probe time was spent or a failure happened (blackbox_exporter's phases)."""

    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"
    PROCESSING = "processing"
    TRANSFER = "transfer"


class Failure(StrEnum):
    DNS_NXDOMAIN = "dns_nxdomain"
    DNS_NO_ANSWER = "dns_no_answer"
    DNS_SERVFAIL = "dns_servfail"
    DNS_REFUSED = "dns_refused"
    DNS_TIMEOUT = "dns_timeout"
    DNS_BOGON = "dns_bogon"
    DNS_ERROR = "dns_error"
    TCP_REFUSED = "tcp_refused"
    TCP_TIMEOUT = "tcp_timeout"
    TCP_RESET = "tcp_reset"
    TCP_UNREACHABLE = "tcp_unreachable"
    TLS_TIMEOUT = "tls_timeout"
    TLS_RESET = "tls_reset"
    TLS_CERT_INVALID = "tls_cert_invalid"
    TLS_ERROR = "tls_error"
    HTTP_TIMEOUT = "http_timeout"
    HTTP_RESET = "http_reset"
    HTTP_STATUS = "http_status"
    HTTP_BODY_MISMATCH = "http_body_mismatch"
    HTTP_TOO_MANY_REDIRECTS = "http_too_many_redirects"
    HTTP_TOO_LARGE = "http_too_large"
    HTTP_PROTOCOL_ERROR = "http_protocol_error"
    LOCAL_ERROR = "local_error"  # our own shortage (descriptors, buffers, memory, ports): no evidence


# For people reading a report: what each failure string says about the path, in plain words.
FAILURE_MEANINGS: dict[Failure, str] = {
    Failure.DNS_NXDOMAIN: "the resolver says the name does not exist",
    Failure.DNS_NO_ANSWER: "the name exists but has no address of the type asked for",
    Failure.DNS_SERVFAIL: "the resolver could not resolve the name (its upstream failed)",
    Failure.DNS_REFUSED: "the resolver refused to answer",
    Failure.DNS_TIMEOUT: "no answer from the resolver: queries or answers were dropped",
    Failure.DNS_BOGON: "the answer points into reserved address space, a signature of DNS injection",
    Failure.DNS_ERROR: "the resolver's answer was garbage or malformed",
    Failure.TCP_REFUSED: "the host answered the connection attempt with a refusal (nothing listens)",
    Failure.TCP_TIMEOUT: "connection attempts got no answer: packets were dropped on the way",
    Failure.TCP_RESET: "the connection was reset as it opened",
    Failure.TCP_UNREACHABLE: "a router said the host or network cannot be reached",
    Failure.TLS_TIMEOUT: "the connection opened but the TLS handshake never completed",
    Failure.TLS_RESET: "the connection was cut during the TLS handshake, a signature of SNI filtering",
    Failure.TLS_CERT_INVALID: "the certificate was expired, for another name or from an unknown authority",
    Failure.TLS_ERROR: "the TLS handshake failed",
    Failure.HTTP_TIMEOUT: "the server accepted the request and did not answer in time",
    Failure.HTTP_RESET: "the connection was cut while the page was requested or sent",
    Failure.HTTP_STATUS: "the server answered with an error status",
    Failure.HTTP_BODY_MISMATCH: "the page did not hold what it should (a block page or a substitute)",
    Failure.HTTP_TOO_MANY_REDIRECTS: "the server redirected too many times",
    Failure.HTTP_TOO_LARGE: "the answer was larger than the probe accepts",
    Failure.HTTP_PROTOCOL_ERROR: "the answer was not valid HTTP",
    Failure.LOCAL_ERROR: "the monitor itself ran short of resources (never evidence about a target)",
}

_MAX_DETAIL = 300


class ProbeFailure(Exception):
    """Raised inside a probe to end it with one failure string; `detail` is for humans only."""

    def __init__(self, failure: Failure, phase: Phase, detail: str = "") -> None:
        super().__init__(f"{failure}: {detail[:_MAX_DETAIL]}" if detail else str(failure))
        self.failure = failure
        self.phase = phase
        self.detail = detail[:_MAX_DETAIL]  # error text can carry a hostile server's megabyte


_TIMEOUT_BY_PHASE = {
    Phase.RESOLVE: Failure.DNS_TIMEOUT,
    Phase.CONNECT: Failure.TCP_TIMEOUT,
    Phase.TLS: Failure.TLS_TIMEOUT,
    Phase.PROCESSING: Failure.HTTP_TIMEOUT,
    Phase.TRANSFER: Failure.HTTP_TIMEOUT,
}

_RESET_BY_PHASE = {
    Phase.CONNECT: Failure.TCP_RESET,
    Phase.TLS: Failure.TLS_RESET,
    Phase.PROCESSING: Failure.HTTP_RESET,
    Phase.TRANSFER: Failure.HTTP_RESET,
}

_UNREACHABLE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
# The process or the host ran short: says nothing about the world (EADDRNOTAVAIL: no local port).
_LOCAL_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL}
_RESET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}

_UNEXPECTED_BY_PHASE = {
    Phase.RESOLVE: Failure.DNS_ERROR,
    Phase.CONNECT: Failure.TCP_UNREACHABLE,
    Phase.TLS: Failure.TLS_ERROR,
    Phase.PROCESSING: Failure.HTTP_PROTOCOL_ERROR,
    Phase.TRANSFER: Failure.HTTP_PROTOCOL_ERROR,
}

_RCODE_FAILURES: dict[int, Failure] = {
    dns.rcode.NXDOMAIN: Failure.DNS_NXDOMAIN,
    dns.rcode.SERVFAIL: Failure.DNS_SERVFAIL,
    dns.rcode.REFUSED: Failure.DNS_REFUSED,
}


def timeout_failure(phase: Phase) -> Failure:
    return _TIMEOUT_BY_PHASE[phase]


def unexpected_failure(phase: Phase) -> Failure:
    """The failure for an exception no classifier knows: still one string, never a crash."""
    return _UNEXPECTED_BY_PHASE[phase]


def failure_for_rcode(rcode: int) -> Failure:
    """A DNS answer whose rcode was not accepted (FORMERR, NOTIMP and the rest are dns_error)."""
    return _RCODE_FAILURES.get(rcode, Failure.DNS_ERROR)


def _unwrapped(exc: BaseException) -> BaseException:
    if isinstance(exc, aiohttp.ClientOSError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def is_local_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _LOCAL_ERRNOS


def classify_os_error(exc: BaseException, phase: Phase) -> Failure | None:
    """The generic classifier: a socket-level or TLS error raised during `phase`.

    None for anything that is not an OS-level error (a bug, or an error of a library)."""
    exc = _unwrapped(exc)
    if is_local_error(exc):
        return Failure.LOCAL_ERROR
    if isinstance(exc, ssl.SSLCertVerificationError):  # Test case: HostileKind.EXPIRED_CERT
        return Failure.TLS_CERT_INVALID
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return timeout_failure(phase)
    if not isinstance(exc, (OSError, EOFError)):
        return None
    if isinstance(exc, ConnectionRefusedError):
        return Failure.TCP_REFUSED
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)) or (
        isinstance(exc, OSError) and exc.errno in _RESET_ERRNOS
    ):
        return _RESET_BY_PHASE.get(phase, Failure.TCP_RESET)
    if isinstance(exc, ssl.SSLError):
        return Failure.TLS_ERROR
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS:
        return Failure.TCP_UNREACHABLE
    if phase is Phase.TLS:
        # A peer that closes the connection mid-handshake without a RST (EOF) is a TLS failure.
        return Failure.TLS_RESET if isinstance(exc, (EOFError, ConnectionError)) else Failure.TLS_ERROR
    if phase in (Phase.PROCESSING, Phase.TRANSFER):
        return Failure.HTTP_RESET if isinstance(exc, ConnectionError) else Failure.HTTP_PROTOCOL_ERROR
    return Failure.TCP_UNREACHABLE


def classify_resolver_error(exc: BaseException, server: str) -> ProbeFailure | None:
    """One attempt at one resolver (`server`, for the detail) that raised `exc`."""
    if isinstance(exc, ProbeFailure):
        return exc
    if is_local_error(exc):
        return ProbeFailure(Failure.LOCAL_ERROR, Phase.RESOLVE, f"asking {server}: {exc}")
    if isinstance(exc, (TimeoutError, dns.exception.Timeout)):
        return ProbeFailure(Failure.DNS_TIMEOUT, Phase.RESOLVE, f"{server} did not answer in time")
    if isinstance(exc, (dns.exception.DNSException, ValueError, EOFError)):  # ValueError: our codec
        return ProbeFailure(Failure.DNS_ERROR, Phase.RESOLVE, f"{server}: malformed answer: {exc}")
    if isinstance(exc, ConnectionRefusedError):  # ICMP port unreachable: nobody serves DNS there
        return ProbeFailure(Failure.DNS_TIMEOUT, Phase.RESOLVE, f"{server} refused the query")
    if isinstance(exc, OSError):
        return ProbeFailure(Failure.DNS_ERROR, Phase.RESOLVE, f"{server}: {exc}")
    return None


def classify_tls_error(exc: BaseException) -> ProbeFailure | None:
    """A failed handshake. A close without alert (EOF) is what SNI filtering looks like."""
    exc = _unwrapped(exc)
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | EOFError):
        return ProbeFailure(Failure.TLS_RESET, Phase.TLS, f"connection closed during handshake: {exc}")
    failure = classify_os_error(exc, Phase.TLS)
    return None if failure is None else ProbeFailure(failure, Phase.TLS, str(exc))


def classify_http_error(exc: BaseException, phase: Phase) -> ProbeFailure | None:
    """An error while waiting for or reading a response (aiohttp's, or the socket's)."""
    if phase not in (Phase.PROCESSING, Phase.TRANSFER):
        phase = Phase.PROCESSING
    if isinstance(exc, aiohttp.ClientResponseError) and (
        _caused_by(exc, LineTooLong) or "Too many headers" in str(exc)
    ):
        return ProbeFailure(Failure.HTTP_TOO_LARGE, phase, f"response headers too large: {exc.message}")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return ProbeFailure(Failure.HTTP_RESET, phase, f"connection closed mid-response: {exc}")
    failure = classify_os_error(exc, phase)
    if failure is not None:
        return ProbeFailure(failure, phase, str(exc))
    if isinstance(exc, aiohttp.ClientError):
        return ProbeFailure(Failure.HTTP_PROTOCOL_ERROR, phase, str(exc))
    return None


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """aiohttp wraps parser errors twice; look down the whole chain."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _classify_connect_error(exc: BaseException) -> ProbeFailure | None:
    failure = classify_os_error(exc, Phase.CONNECT)
    return None if failure is None else ProbeFailure(failure, Phase.CONNECT, str(_unwrapped(exc)))


_BY_PHASE: dict[Phase, Callable[[BaseException], ProbeFailure | None]] = {
    Phase.RESOLVE: lambda exc: None,  # the DNS layer classifies each resolver's answer itself
    Phase.CONNECT: _classify_connect_error,
    Phase.TLS: classify_tls_error,
    Phase.PROCESSING: lambda exc: classify_http_error(exc, Phase.PROCESSING),
    Phase.TRANSFER: lambda exc: classify_http_error(exc, Phase.TRANSFER),
}


def classify(exc: BaseException, phase: Phase) -> ProbeFailure | None:
    """The failure for `exc`, raised while `phase` ran; None when no classifier knows it.

    An aiohttp error that no earlier phase claims is an HTTP failure whatever the phase."""
    if isinstance(exc, ProbeFailure):
        return exc
    failure = _BY_PHASE[phase](exc)
    if failure is None and isinstance(exc, aiohttp.ClientError):
        return classify_http_error(exc, phase)
    return failure
