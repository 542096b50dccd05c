from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor.catalog.catalog import (
    DNSSpec,
    HTTPSpec,
    TLSConnectSpec,
    adhoc_target,
    load_catalog,
    parse_catalog,
)
from monitor.catalog.durations import format_duration, parse_duration
from monitor.catalog.problems import ConfigError
from monitor.catalog.schema import SYSTEM, Nameserver
from monitor.cli import main

REPO = Path(__file__).resolve().parents[2]

GOOD = textwrap.dedent("""\
    defaults:
      {interval: 30s, timeout: 10s, resolvers: [system, "127.0.0.1:5353", "[::1]:53"], tls: {ca_file: null}}
    targets:
      - {name: kazinform, url: "https://www.inform.kz.lab.test/", country: KZ, category: state_media,
         http: {body_regex: "Kazinform"}, down_after: 5}
      - {name: kz-registry-dns, dns: {query: "kz.", type: SOA}, country: KZ, category: dns}
      - {name: alaport-tcp, tcp: "alaport.com:443", country: KZ, category: airport, interval: 1m}
      - {name: alaport-tls, tls_connect: "alaport.com:443", country: KZ, category: airport,
         tls: {insecure_skip_verify: true}}
    controls:
      - {name: ripe, url: "https://www.ripe.net.lab.test/", country: NL, category: anything}
""")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_catalog(textwrap.dedent(text), "targets.yaml")
    return [str(problem) for problem in caught.value.problems]


def test_the_issue_example_loads_with_defaults_applied() -> None:
    catalog = parse_catalog(GOOD)
    kazinform = catalog.by_name["kazinform"]
    spec = kazinform.spec_as(HTTPSpec)
    assert (kazinform.kind, spec.host, spec.port) == ("http", "www.inform.kz.lab.test", 443)
    assert kazinform.resolvers == (SYSTEM, Nameserver("127.0.0.1", 5353), Nameserver("::1", 53))
    assert spec.http.body_regex == "Kazinform" and spec.http.max_redirects == 5
    assert (kazinform.down_after, kazinform.up_after) == (5, 2)
    assert catalog.by_name["alaport-tcp"].interval == 60.0
    assert catalog.by_name["alaport-tls"].spec_as(TLSConnectSpec).tls.insecure_skip_verify is True
    assert catalog.by_name["kz-registry-dns"].spec_as(DNSSpec).query.type == "SOA"
    assert catalog.by_name["ripe"].is_control and catalog.by_name["ripe"].category == "control"


def test_a_tls_connect_target_probes_the_handshake_only() -> None:
    assert parse_catalog(GOOD).by_name["alaport-tls"].kind == "tls"


def test_every_problem_is_reported_with_file_line_and_field() -> None:
    found = problems("""\
        defaults:
          interval: 30
          resolvers: ["dns.google"]
        targets:
          - name: a
            url: ftp://x
            country: kz
            category: news
          - name: b
            tcp: "host"
            country: KZ
            category: news
            bogus: 1
        """)
    assert found[0] == "targets.yaml:2: defaults.interval: write durations as strings like 30s, 1m or 1m30s"
    assert found[1].startswith("targets.yaml:3: defaults.resolvers[0]: resolver 'dns.google' must be an IP")
    assert found[2].startswith("targets.yaml:6: targets[0].url: 'ftp://x' is not an http:// or https://")
    assert found[3].startswith("targets.yaml:7: targets[0].country:")
    assert found[4] == "targets.yaml:10: targets[1].tcp: 'host' needs a port, like host:443"
    assert found[5] == "targets.yaml:13: targets[1].bogus: unknown field"


def test_duplicate_names_point_at_both_places() -> None:
    found = problems("""\
        targets:
          - {name: a, tcp: "h:1", country: KZ, category: x}
          - {name: a, tcp: "h:2", country: KZ, category: x}
        """)
    assert found == ["targets.yaml:3: targets[1].name: duplicate name 'a' (first at line 2)"]


def test_a_target_needs_exactly_one_kind() -> None:
    found = problems("""\
        targets:
          - {name: a, tcp: "h:1", url: "http://h/", country: KZ, category: x}
          - {name: b, country: KZ, category: x}
        """)
    assert "exactly one of url, dns, tcp, tls_connect (has url, tcp)" in found[0]
    assert found[1].startswith("targets.yaml:3:") and "(has none)" in found[1]


def test_options_of_another_kind_are_located_errors_not_ignored() -> None:
    found = problems("""\
        targets:
          - {name: a, tcp: "h:1", country: KZ, category: x}
          - name: b
            tcp: "h:1"
            country: KZ
            category: x
            http: {max_redirects: 1}
          - {name: c, dns: {query: "kz."}, country: KZ, category: x, tls: {insecure_skip_verify: true}}
          - {name: d, url: "http://h/", country: KZ, category: x, colour: red}
        """)
    assert found == [
        "targets.yaml:7: targets[1].http: not valid for a tcp target",
        "targets.yaml:8: targets[2].tls: not valid for a dns target",
        "targets.yaml:9: targets[3].colour: unknown field",
    ]


def test_a_control_needs_neither_country_nor_category_but_a_target_does() -> None:
    catalog = parse_catalog("controls:\n  - {name: ripe, tcp: 'h:1'}\n")
    control = catalog.by_name["ripe"]
    assert (control.category, control.country, control.is_control) == ("control", "ZZ", True)
    found = problems("targets:\n  - {name: a, tcp: 'h:1', country: KZ}\n")
    assert found == ["targets.yaml:2: targets[0].category: required field is missing"]


def test_timeout_longer_than_interval_is_rejected() -> None:
    found = problems("""\
        targets:
          - {name: a, tcp: "h:1", country: KZ, category: x, interval: 5s, timeout: 10s}
        """)
    assert found == ["targets.yaml:2: targets[0].timeout: timeout (10s) must not exceed the interval (5s)"]


def test_yaml_syntax_errors_and_duplicate_keys_have_lines() -> None:
    assert problems("targets:\n  - {name: a\n")[0].startswith("targets.yaml:3: yaml: invalid YAML")
    assert problems("defaults: {}\ndefaults: {}\n") == ["targets.yaml:2: yaml: duplicate key 'defaults'"]


def test_bad_regex_rcode_and_record_type_are_named() -> None:
    found = problems("""\
        targets:
          - {name: a, url: "http://h/", country: KZ, category: x, http: {body_regex: "("}}
          - {name: b, dns: {query: "kz.", type: BOGUS}, country: KZ, category: x}
          - {name: c, dns: {query: "kz.", valid_rcodes: [NOPE]}, country: KZ, category: x}
        """)
    assert "targets[0].http.body_regex: invalid regular expression" in found[0]
    assert "targets[1].dns.type: unknown DNS record type 'BOGUS'" in found[1]
    assert "targets[2].dns.valid_rcodes: unknown DNS rcode 'NOPE'" in found[2]


def test_analysis_thresholds_must_be_ordered() -> None:
    found = problems("analysis: {shutdown_ratio: 0.9, degraded_ratio: 0.8}\n")
    assert found == ["targets.yaml:1: analysis: shutdown_ratio must be lower than degraded_ratio"]


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_catalog(tmp_path / "missing.yaml")


def test_adhoc_url_gets_the_catalog_defaults() -> None:
    catalog = parse_catalog(GOOD)
    target = adhoc_target(catalog, "http://example.test:8080/x")
    assert (target.name, target.spec_as(HTTPSpec).port, target.timeout, target.kind) == (
        "example.test",
        8080,
        10.0,
        "http",
    )
    with pytest.raises(ValueError, match="is not an http"):
        adhoc_target(catalog, "gopher://x")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15), ("1m", 60), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("2d", 172800)],
)
def test_prometheus_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "15", "1.5s", "s", "1x", "m1"])
def test_bad_durations_say_how_to_write_them(text: str) -> None:
    with pytest.raises(ValueError, match="write it like 30s"):
        parse_duration(text)


def test_the_shipped_catalog_is_valid_and_has_what_the_issue_asks_for() -> None:
    catalog = load_catalog(REPO / "targets.yaml")
    categories = {target.category for target in catalog.targets}
    assert {
        "state_media",
        "government",
        "police_security",
        "airport",
        "telecom",
        "bank",
        "cctld_dns",
        "media",
    } <= categories
    assert len(catalog.controls) >= 4
    assert len({target.asn for target in catalog.controls}) == len(catalog.controls)
    assert all(target.source for target in catalog.targets)
    assert any(target.kind == "dns" for target in catalog.targets)
    mobile = {asn for asn, network in catalog.networks.items() if network.kind == "mobile"}
    assert {29355, 48503, 21299, 35104} <= mobile and catalog.network_kind(9198) == "fixed"
    assert all(network.source for network in catalog.networks.values())
    assert {"KZ-75", "KZ-71"} <= set(catalog.regions["KZ"])


def test_validate_command_exits_non_zero_with_the_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("targets:\n  - {name: a, tcp: nope, country: KZ, category: x}\n")
    assert main(["validate", "--config", str(config)]) == 2
    assert f"{config}:2: targets[0].tcp: 'nope' needs a port, like nope:443" in capsys.readouterr().err
    assert main(["validate", "--config", str(REPO / "targets.yaml")]) == 0
    assert "OK" in capsys.readouterr().out


PLACES = """\
    regions:
      KZ: {KZ-75: Almaty, KZ-71: Astana}
    networks:
      29355: {name: Kcell, kind: mobile, regions: [KZ-75], source: "RIPE (H)"}
      9198: {name: Kazakhtelecom, kind: fixed}
    targets:
      - {name: kcell, url: "https://k.lab.test/", country: KZ, category: telecom, asn: 29355, region: KZ-75}
"""


def test_regions_and_network_kinds_load() -> None:
    catalog = parse_catalog(textwrap.dedent(PLACES))
    assert catalog.by_name["kcell"].region == "KZ-75"
    assert catalog.network_kind(29355) == "mobile" and catalog.network_kind(1) is None
    assert catalog.regions == {"KZ": {"KZ-75": "Almaty", "KZ-71": "Astana"}}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("kind: mobile", "kind: cellular"), "targets.yaml:4: networks.29355.kind: Input should be 'mobile'"),
        (
            ("regions: [KZ-75]", "regions: [KZ-19]"),
            "targets.yaml:4: networks.29355.regions[0]: 'KZ-19' is not",
        ),
        (
            ("region: KZ-75}", "region: KZ-99}"),
            "targets.yaml:7: targets[0].region: 'KZ-99' is not a region of KZ",
        ),
        (("region: KZ-75}", "region: Almaty}"), "targets.yaml:7: targets[0].region: String should match"),
        (("29355: {", "kcell: {"), "targets.yaml:4: networks.kcell: networks are keyed by their ASN"),
    ],
)
def test_places_are_validated_with_their_line(change: tuple[str, str], expected: str) -> None:
    (problem,) = problems(PLACES.replace(*change))
    assert problem.startswith(expected), problem


def test_comparing_resolvers_needs_two_of_them_and_address_records() -> None:
    target = (
        '  - {{name: d, dns: {{query: "kz.", type: {type}, compare_resolvers: true}}, '
        "country: KZ, category: dns{extra}}}"
    )
    assert problems("targets:\n" + target.format(type="A", extra="")) == [
        "targets.yaml:2: targets[0].dns: compare_resolvers needs at least two resolvers"
    ]
    (problem,) = problems(
        "targets:\n" + target.format(type="SOA", extra=", resolvers: ['127.0.0.1', '127.0.0.2']")
    )
    assert "the type must be A or AAAA" in problem
    parse_catalog("targets:\n" + target.format(type="A", extra=", resolvers: ['127.0.0.1', '127.0.0.2']"))


def test_liveness_options_load_with_their_defaults() -> None:
    catalog = parse_catalog("liveness: {round: 5m, packets_per_second: 50, tcp_ports: [443]}\n")
    assert catalog.liveness.round == 300.0 and catalog.liveness.packets_per_second == 50
    assert catalog.liveness.max_probes_per_block == 15 and catalog.liveness.tcp_ports == [443]
    assert parse_catalog("").liveness.round == 600.0


def test_bad_liveness_options_are_located() -> None:
    found = problems("liveness:\n  discovery: every sunday\n  round: 2s\n  timeout: 3s\n")
    assert any(
        problem.startswith("targets.yaml:2: liveness.discovery") and "crontab" in problem for problem in found
    ), found
    found = problems("liveness:\n  round: 2s\n  timeout: 3s\n")
    assert any("timeout must be shorter than round" in problem for problem in found), found
    assert any("packets_per_second" in problem for problem in problems("liveness: {packets_per_second: 0}\n"))
