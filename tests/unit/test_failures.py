"""Each classifier as a table: exception in, failure string out (the provoked-for-real cases are in
tests/system/test_probes.py)."""

from __future__ import annotations

import errno
import ssl

import aiohttp
import dns.exception
import pytest
import yarl
from aiohttp.http_exceptions import LineTooLong
from multidict import CIMultiDict, CIMultiDictProxy

from monitor.probing.dnswire import MalformedAnswer
from monitor.probing.failures import (
    Failure,
    Phase,
    ProbeFailure,
    classify,
    classify_http_error,
    classify_os_error,
    classify_resolver_error,
    classify_tls_error,
    failure_for_rcode,
)


def _wrapped_by_aiohttp(exc: OSError) -> aiohttp.ClientOSError:
    """What aiohttp's session raises for an OS error during connect: the args copied, the type lost."""
    wrapper = aiohttp.ClientOSError(*exc.args)
    wrapper.__cause__ = exc
    return wrapper


@pytest.mark.parametrize(
    ("exc", "phase", "failure"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), Phase.CONNECT, Failure.TCP_REFUSED),
        (ConnectionResetError(errno.ECONNRESET, "reset"), Phase.CONNECT, Failure.TCP_RESET),
        (ConnectionResetError(errno.ECONNRESET, "reset"), Phase.TLS, Failure.TLS_RESET),
        (ConnectionResetError(errno.ECONNRESET, "reset"), Phase.TRANSFER, Failure.HTTP_RESET),
        (OSError(errno.EPIPE, "pipe"), Phase.PROCESSING, Failure.HTTP_RESET),
        (OSError(errno.ENETUNREACH, "no route"), Phase.CONNECT, Failure.TCP_UNREACHABLE),
        (OSError(errno.EHOSTUNREACH, "no host"), Phase.CONNECT, Failure.TCP_UNREACHABLE),
        (TimeoutError(), Phase.CONNECT, Failure.TCP_TIMEOUT),
        (TimeoutError(), Phase.TLS, Failure.TLS_TIMEOUT),
        (TimeoutError(), Phase.TRANSFER, Failure.HTTP_TIMEOUT),
        (ssl.SSLCertVerificationError(1, "certificate has expired"), Phase.TLS, Failure.TLS_CERT_INVALID),
        (ssl.SSLError(1, "wrong version number"), Phase.TLS, Failure.TLS_ERROR),
        (EOFError(), Phase.TLS, Failure.TLS_RESET),
        (OSError(errno.EPROTO, "protocol"), Phase.CONNECT, Failure.TCP_UNREACHABLE),
        (OSError(errno.EPROTO, "protocol"), Phase.PROCESSING, Failure.HTTP_PROTOCOL_ERROR),
    ],
)
def test_os_errors_by_phase(exc: BaseException, phase: Phase, failure: Failure) -> None:
    assert classify_os_error(exc, phase) is failure
    if isinstance(exc, OSError):
        assert classify_os_error(_wrapped_by_aiohttp(exc), phase) is failure


@pytest.mark.parametrize("exc", [ValueError("x"), RuntimeError(), KeyError("k")])
def test_what_is_not_an_os_error_is_left_to_the_caller(exc: BaseException) -> None:
    assert classify_os_error(exc, Phase.CONNECT) is None
    assert classify(exc, Phase.CONNECT) is None


@pytest.mark.parametrize(
    ("exc", "failure", "detail"),
    [
        (TimeoutError(), Failure.DNS_TIMEOUT, "10.0.0.1:53 did not answer in time"),
        (dns.exception.Timeout(), Failure.DNS_TIMEOUT, "10.0.0.1:53 did not answer in time"),
        (ConnectionRefusedError(), Failure.DNS_TIMEOUT, "10.0.0.1:53 refused the query"),
        (MalformedAnswer("short"), Failure.DNS_ERROR, "10.0.0.1:53: malformed answer: short"),
        (dns.exception.FormError("bad"), Failure.DNS_ERROR, "10.0.0.1:53: malformed answer: bad"),
        (OSError(errno.ENETUNREACH, "no route"), Failure.DNS_ERROR, "10.0.0.1:53: [Errno"),
    ],
)
def test_resolver_errors(exc: BaseException, failure: Failure, detail: str) -> None:
    classified = classify_resolver_error(exc, "10.0.0.1:53")
    assert classified is not None and classified.failure is failure and classified.phase is Phase.RESOLVE
    assert classified.detail.startswith(detail)


def test_a_resolver_bug_is_not_called_an_answer() -> None:
    assert classify_resolver_error(RuntimeError("bug"), "10.0.0.1:53") is None


@pytest.mark.parametrize(
    ("rcode", "failure"),
    [(3, Failure.DNS_NXDOMAIN), (2, Failure.DNS_SERVFAIL), (5, Failure.DNS_REFUSED), (1, Failure.DNS_ERROR)],
)
def test_rcodes(rcode: int, failure: Failure) -> None:
    assert failure_for_rcode(rcode) is failure


@pytest.mark.parametrize(
    ("exc", "failure"),
    [
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), Failure.TLS_RESET),
        (ssl.SSLZeroReturnError(6, "closed"), Failure.TLS_RESET),
        (EOFError(), Failure.TLS_RESET),
        (ConnectionResetError(errno.ECONNRESET, "reset"), Failure.TLS_RESET),
        (ssl.SSLCertVerificationError(1, "Hostname mismatch"), Failure.TLS_CERT_INVALID),
        (ssl.SSLError(1, "handshake failure"), Failure.TLS_ERROR),
    ],
)
def test_tls_errors(exc: OSError | EOFError, failure: Failure) -> None:
    for raised in (exc, _wrapped_by_aiohttp(exc)) if isinstance(exc, OSError) else (exc,):
        classified = classify_tls_error(raised)
        assert classified is not None and (classified.failure, classified.phase) == (failure, Phase.TLS)
        by_phase = classify(raised, Phase.TLS)
        assert by_phase is not None and by_phase.failure is failure


_REQUEST = aiohttp.RequestInfo(yarl.URL("http://h.lab.test/"), "GET", CIMultiDictProxy(CIMultiDict()))


def _response_error(message: str) -> aiohttp.ClientResponseError:
    return aiohttp.ClientResponseError(_REQUEST, (), message=message)


def _too_long() -> aiohttp.ClientResponseError:
    error = _response_error("Got more than 8190 bytes")
    error.__cause__ = LineTooLong("header", "8190")
    return error


@pytest.mark.parametrize(
    ("exc", "phase", "failure"),
    [
        (_too_long(), Phase.PROCESSING, Failure.HTTP_TOO_LARGE),
        (aiohttp.ServerDisconnectedError(), Phase.PROCESSING, Failure.HTTP_RESET),
        (aiohttp.ClientPayloadError("cut"), Phase.TRANSFER, Failure.HTTP_RESET),
        (_wrapped_by_aiohttp(ConnectionResetError(errno.ECONNRESET, "")), Phase.TRANSFER, Failure.HTTP_RESET),
        (_response_error("bad status line"), Phase.PROCESSING, Failure.HTTP_PROTOCOL_ERROR),
        (aiohttp.InvalidURL("x"), Phase.CONNECT, Failure.HTTP_PROTOCOL_ERROR),
    ],
)
def test_http_errors(exc: BaseException, phase: Phase, failure: Failure) -> None:
    classified = classify(exc, phase)
    assert classified is not None and classified.failure is failure
    assert classified.phase in (Phase.PROCESSING, Phase.TRANSFER)
    assert classify_http_error(exc, phase) is not None


def test_a_probe_failure_is_its_own_classification() -> None:
    failure = ProbeFailure(Failure.HTTP_STATUS, Phase.PROCESSING, "unexpected status 503")
    assert all(classify(failure, phase) is failure for phase in Phase)


def test_errors_in_resolve_are_the_dns_layers_to_name() -> None:
    assert classify(OSError(errno.ENETUNREACH, "no route"), Phase.RESOLVE) is None


LOCAL_ERRNOS = [errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL]


@pytest.mark.parametrize("code", LOCAL_ERRNOS)
@pytest.mark.parametrize("phase", [Phase.CONNECT, Phase.TLS, Phase.PROCESSING, Phase.TRANSFER])
def test_our_own_shortages_are_local_errors_in_every_phase(code: int, phase: Phase) -> None:
    exc = OSError(code, "short of something")
    assert classify_os_error(exc, phase) is Failure.LOCAL_ERROR
    classified = classify(_wrapped_by_aiohttp(exc), phase)
    assert classified is not None and classified.failure is Failure.LOCAL_ERROR
    resolver = classify_resolver_error(exc, "10.0.0.1:53")
    assert resolver is not None and resolver.failure is Failure.LOCAL_ERROR
