"""`blocks:` in the catalog, and building them from an RIR delegated file and a pyasn IPASN file
(tiny synthetic files in those formats; the addresses are documentation and test ranges)."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from monitor.catalog.blocks_import import BlockImport, SourceFormatError, read_delegated, read_ipasn
from monitor.catalog.catalog import parse_catalog
from monitor.catalog.problems import ConfigError

DELEGATED = """\
2|ripencc|1735772400|4|19830705|20260101|+0000
ripencc|*|ipv4|*|3|summary
ripencc|KZ|ipv4|198.18.0.0|768|20100101|allocated|org-1
ripencc|KZ|ipv4|203.0.113.0|256|20120101|assigned|org-2
ripencc|UZ|ipv4|192.0.2.0|256|20120101|allocated|org-3
ripencc|KZ|ipv6|2001:db8::|32|20120101|allocated|org-1
ripencc|KZ|asn|9198|1|19950101|allocated|org-1
ripencc|KZ|ipv4|198.51.100.0|256|20120101|reserved|
"""
IPASN = """\
; IP-ASN32-DAT file
; Original source:\tsynthetic
198.18.0.0/23\t9198
198.18.1.128/25\t29355
203.0.113.0/24\t29355
198.18.4.0/24\t9198
198.18.5.0/24\t9198
192.0.2.0/24\t12345
2001:db8::/32\t9198
"""


def _lines(text: str) -> list[str]:
    return text.splitlines()


def test_the_delegated_file_gives_the_countrys_allocated_and_assigned_ipv4_space() -> None:
    prefixes = read_delegated(_lines(DELEGATED), "KZ", "delegated")
    # 768 addresses from 198.18.0.0 are a /23 and a /24; reserved space and other countries are not
    assert prefixes == [
        IPv4Network("198.18.0.0/23"),
        IPv4Network("198.18.2.0/24"),
        IPv4Network("203.0.113.0/24"),
    ]


def test_each_slash24_goes_to_its_longest_announcement_and_unannounced_ones_are_left_out() -> None:
    job = BlockImport("KZ", registered=read_delegated(_lines(DELEGATED), "KZ", "d"))
    job.announced = read_ipasn(_lines(IPASN), "ipasn")
    blocks = job.blocks("d + ipasn")
    assert [(b["prefix"], b["asn"]) for b in blocks] == [
        ("198.18.0.0/24", 9198),
        ("198.18.1.0/24", 29355),  # its /25 is announced by Kcell, more specific than the /23
        ("203.0.113.0/24", 29355),
    ]
    assert job.unannounced == 1  # 198.18.2.0/24: registered, not announced
    assert {b["country"] for b in blocks} == {"KZ"} and blocks[0]["source"] == "d + ipasn"


def test_one_network_alone_from_the_announcements_and_its_neighbours_merged_back() -> None:
    job = BlockImport("KZ", announced=read_ipasn(_lines(IPASN), "ipasn"), asns=frozenset({9198}))
    assert [(b["prefix"], b["asn"]) for b in job.blocks("ipasn")] == [
        ("198.18.0.0/24", 9198),  # 198.18.1.0/24 is Kcell's by its more specific /25
        ("198.18.4.0/23", 9198),  # two announced /24s, one block
    ]
    with pytest.raises(ValueError, match="name the networks"):
        BlockImport("KZ", announced={}).blocks("ipasn")


@pytest.mark.parametrize(
    ("reader", "text", "message"),
    [
        (read_ipasn, "198.18.0.0/23 9198 extra\n", "ipasn:1: not 'prefix<TAB>asn'"),
        (read_ipasn, "; header\nnot-a-prefix\t9198\n", "ipasn:2: not 'prefix<TAB>asn'"),
        (lambda lines, source: read_delegated(lines, "KZ", source),
         "ripencc|KZ|ipv4|198.18.0.300|256|20100101|allocated\n", "ipasn:1: not an ipv4 record"),
    ],
)  # fmt: skip
def test_a_malformed_line_is_named_by_file_and_line(reader, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SourceFormatError, match=message):
        reader(_lines(text), "ipasn")


def test_blocks_in_the_catalog_are_ipv4_prefixes_of_whole_slash24s_with_located_errors() -> None:
    catalog = parse_catalog(
        "regions: {KZ: {KZ-75: Almaty}}\nblocks:\n"
        "  - {prefix: 198.18.0.0/23, asn: 9198, country: KZ}\n"
        "  - {prefix: 203.0.113.0/24, asn: 29355, country: KZ, region: KZ-75, kind: mobile}\n"
    )
    assert [(b.prefix, b.size) for b in catalog.blocks] == [("198.18.0.0/23", 2), ("203.0.113.0/24", 1)]
    for entry, message in [
        ("{prefix: 198.18.0.1/24, asn: 9198, country: KZ}", "has host bits set"),
        ("{prefix: '2001:db8::/32', asn: 9198, country: KZ}", "only IPv4 blocks"),
        ("{prefix: 198.18.0.0/25, asn: 9198, country: KZ}", "smaller than a /24"),
        ("{prefix: 198.18.0.0/24, asn: 0, country: KZ}", "greater than or equal to 1"),
    ]:
        with pytest.raises(ConfigError, match=f"targets.yaml:3: blocks\\[0\\]\\.(prefix|asn): .*{message}"):
            parse_catalog(f"regions: {{KZ: {{KZ-75: Almaty}}}}\nblocks:\n  - {entry}\n", "targets.yaml")


def test_overlapping_blocks_a_region_not_listed_and_too_many_slash24s_are_errors() -> None:
    text = (
        "regions: {KZ: {KZ-75: Almaty}}\nblocks:\n"
        "  - {prefix: 198.18.0.0/16, asn: 9198, country: KZ}\n"
        "  - {prefix: 198.18.5.0/24, asn: 9198, country: KZ, region: KZ-99}\n"
        "  - {prefix: 16.0.0.0/4, asn: 9198, country: KZ}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_catalog(text, "targets.yaml")
    assert [str(problem) for problem in caught.value.problems] == [
        "targets.yaml:2: blocks: 1048833 /24s, more than 262144: a few countries' end-user space, not more",
        "targets.yaml:4: blocks[1].region: 'KZ-99' is not a region of KZ listed in regions",
        "targets.yaml:4: blocks[1].prefix: 198.18.5.0/24 overlaps 198.18.0.0/16 (line 3): "
        "each /24 belongs to one block",
    ]
