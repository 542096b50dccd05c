"""Just enough of the DNS wire format for address lookups, the hot path of every probe.

dnspython builds and parses full messages; for "what are the A records of this name" that cost
more CPU than the rest of an HTTP probe (bench/per_probe_cpu.py). This module builds the query
and reads the header, the question and the A/AAAA records of the answer, with every length
and compression pointer bounds-checked: anything malformed raises MalformedAnswer.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import struct
from dataclasses import dataclass

__all__ = ["AddressAnswer", "MalformedAnswer", "build_query", "parse_address_answer"]

TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1
FLAG_QR = 0x8000
FLAG_TC = 0x0200
_HEADER = struct.Struct("!HHHHHH")
_RECORD = struct.Struct("!HHIH")
_MAX_POINTERS = 64


class MalformedAnswer(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AddressAnswer:
    rcode: int
    truncated: bool
    addresses: tuple[str, ...]
    records: int


@functools.lru_cache(maxsize=65536)
def _question(qname: str, rdtype: int) -> bytes:
    labels = [label for label in qname.rstrip(".").split(".") if label]
    encoded = b""
    for label in labels:
        raw = label.encode("idna") if not label.isascii() else label.encode()
        if not 0 < len(raw) < 64:
            raise ValueError(f"{qname!r}: a label must be 1 to 63 bytes")
        encoded += bytes([len(raw)]) + raw
    if len(encoded) > 254:
        raise ValueError(f"{qname!r} is longer than 255 bytes")
    return encoded + b"\0" + struct.pack("!HH", rdtype, CLASS_IN)


def build_query(qname: str, rdtype: int) -> bytes:
    """A recursive query for `qname` with a fresh random id."""
    header = os.urandom(2) + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"  # RD; one question
    return header + _question(qname, rdtype)


def _read_name(wire: bytes, offset: int) -> tuple[bytes, int]:
    """The lower-cased name at `offset` (length-prefixed labels, pointers followed) and the
    offset just after it where it stands."""
    labels: list[bytes] = []
    end: int | None = None
    for _ in range(_MAX_POINTERS):
        while True:
            if offset >= len(wire):
                raise MalformedAnswer("name runs past the end")
            length = wire[offset]
            if length & 0xC0 == 0xC0:
                if offset + 2 > len(wire):
                    raise MalformedAnswer("truncated compression pointer")
                end = offset + 2 if end is None else end
                offset = ((length & 0x3F) << 8) | wire[offset + 1]
                break
            if length & 0xC0:
                raise MalformedAnswer("unknown label type")
            if length == 0:
                return b"".join(labels) + b"\0", offset + 1 if end is None else end
            if offset + 1 + length > len(wire):
                raise MalformedAnswer("label runs past the end")
            labels.append(wire[offset : offset + 1 + length].lower())
            offset += 1 + length
    raise MalformedAnswer("compression pointer loop")


def parse_address_answer(reply: bytes, query: bytes) -> AddressAnswer:
    """Read the answer to `query` (built by build_query): rcode, TC, A/AAAA addresses.

    Records of other types (a CNAME chain before the addresses) are counted and skipped, as a
    stub resolver does; addresses are taken whatever their owner name, as getaddrinfo does.
    """
    if len(reply) < _HEADER.size:
        raise MalformedAnswer("shorter than a DNS header")
    _, flags, questions, answers, _, _ = _HEADER.unpack_from(reply)
    if reply[:2] != query[:2] or not flags & FLAG_QR:
        raise MalformedAnswer("not an answer to our query")
    rcode = flags & 0x000F
    question = query[_HEADER.size :]
    rdtype = struct.unpack_from("!H", question, len(question) - 4)[0]
    offset = _HEADER.size
    if questions:
        if questions != 1:
            raise MalformedAnswer("more than one question")
        name, end = _read_name(reply, offset)
        end += 4
        asked_name, asked_type_class = question[:-4], question[-4:]
        if end > len(reply) or reply[end - 4 : end] != asked_type_class or name != asked_name.lower():
            raise MalformedAnswer("the answer does not match the question")
        offset = end
    addresses: list[str] = []
    for _ in range(answers):
        offset = _read_name(reply, offset)[1]
        if offset + _RECORD.size > len(reply):
            raise MalformedAnswer("record header runs past the end")
        kind, klass, _ttl, length = _RECORD.unpack_from(reply, offset)
        offset += _RECORD.size
        if offset + length > len(reply):
            raise MalformedAnswer("record data runs past the end")
        if kind == rdtype == TYPE_A and klass == CLASS_IN:
            if length != 4:
                raise MalformedAnswer("an A record that is not 4 bytes")
            addresses.append(str(ipaddress.IPv4Address(reply[offset : offset + 4])))
        elif kind == rdtype == TYPE_AAAA and klass == CLASS_IN:
            if length != 16:
                raise MalformedAnswer("an AAAA record that is not 16 bytes")
            addresses.append(str(ipaddress.IPv6Address(reply[offset : offset + 16])))
        offset += length
    return AddressAnswer(rcode, bool(flags & FLAG_TC), tuple(addresses), answers)
