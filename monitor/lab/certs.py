"""The lab's certificate authority and the good and bad server certificates it hands out."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Sequence
from pathlib import Path

import trustme

__all__ = ["DAYS_LEFT", "LIFETIME_DAYS", "WRONG_HOST_NAME", "LabPKI"]

# A name no lab host ever has, so a certificate for it is wrong for everyone.
WRONG_HOST_NAME = "wrong-host.invalid"


def _server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


LIFETIME_DAYS = 90.0
DAYS_LEFT = 60.0  # a site's certificate, issued a month ago


class LabPKI:
    """One lab CA that clients trust (via `ca_file`), plus an unknown CA nobody trusts."""

    def __init__(self) -> None:
        self.ca = trustme.CA(organization_name="Shutdown Monitor Lab CA")
        self._unknown_ca: trustme.CA | None = None

    def write_ca_pem(self, path: str | Path) -> Path:
        """Write the lab CA certificate as PEM to `path`, for a client's `ca_file`."""
        path = Path(path)
        self.ca.cert_pem.write_to_path(str(path))
        return path

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the lab CA only."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        return context

    def issue(self, hostnames: Sequence[str], days_left: float = DAYS_LEFT) -> trustme.LeafCert:
        """A certificate for `hostnames` that expires in `days_left` days, from a 90-day lifetime
        as Let's Encrypt issues them (trustme's default, valid until the year 3000, would leave
        certificate expiry untested)."""
        now = datetime.datetime.now(datetime.UTC)
        return self.ca.issue_cert(
            *hostnames,
            not_before=now - datetime.timedelta(days=max(LIFETIME_DAYS - days_left, 1)),
            not_after=now + datetime.timedelta(days=days_left),
        )

    def server_context(self, hostnames: Sequence[str], days_left: float = DAYS_LEFT) -> ssl.SSLContext:
        """A server context with a valid lab certificate for all of `hostnames`."""
        return _server_context(self.issue(hostnames, days_left))

    def reissue(
        self, context: ssl.SSLContext, hostnames: Sequence[str], days_left: float = DAYS_LEFT
    ) -> None:
        """Give a live server context a new certificate; new handshakes use it."""
        self.issue(hostnames, days_left).configure_cert(context)

    def expired_context(self, hostnames: Sequence[str]) -> ssl.SSLContext:
        """Signed by the lab CA for the right names, but it expired yesterday."""
        now = datetime.datetime.now(datetime.UTC)
        cert = self.ca.issue_cert(
            *hostnames,
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )
        return _server_context(cert)

    def wrong_host_context(self) -> ssl.SSLContext:
        """Signed by the lab CA, valid in time, but for a name no client asks for."""
        return self.server_context([WRONG_HOST_NAME])

    def unknown_ca_context(self, hostnames: Sequence[str]) -> ssl.SSLContext:
        """Right names, valid in time, but signed by a CA that no client trusts."""
        if self._unknown_ca is None:
            self._unknown_ca = trustme.CA(organization_name="Unknown Rogue CA")
        return _server_context(self._unknown_ca.issue_cert(*hostnames))
