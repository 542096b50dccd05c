"""Checks of the deployment files: alert rules, Prometheus/Alertmanager configs, dashboards.

promtool and amtool come from Debian's prometheus and prometheus-alertmanager packages; the
tests that run them skip when they are missing.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.catalog.catalog import load_catalog
from monitor.catalog.durations import parse_duration
from monitor.outages.analysis import Analyzer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "rules" / "monitor-alerts.yml"
RULE_TESTS = DEPLOY / "rules" / "monitor-alerts.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus.yml"
PROMETHEUS_LOCAL_CONFIG = DEPLOY / "prometheus-local.yml"
PROMETHEUS_PROBE_CONFIG = DEPLOY / "prometheus-probe.yml"
PROMETHEUS_AGENT_CONFIG = DEPLOY / "prometheus-agent.yml"
PROMETHEUS_CENTRAL_CONFIG = DEPLOY / "prometheus-central.yml"
GLOBAL_RULES = DEPLOY / "rules" / "global.yml"
GLOBAL_RULE_TESTS = DEPLOY / "rules" / "global.test.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager.yml"
DASHBOARDS = ROOT / "dashboards"
METRICS_DOC = ROOT / "docs" / "metrics.md"

EXPECTED_UIDS = {
    "country-overview.json": "shutdown-country-overview",
    "target-detail.json": "shutdown-target-detail",
    "monitor-health.json": "shutdown-monitor-health",
}
PANEL_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# What Grafana's own variables become before promtool parses an expr (the end-to-end test, with
# only seconds of data, passes shorter windows to _substitute).
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
OUTAGE_SCOPES = {"site", "network", "mobile", "region", "country", "throttling", "dns"}
STANDARD_METRICS = {"up", "ALERTS", "ALERTS_FOR_STATE"}
STANDARD_PREFIXES = ("process_",)
PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "inf", "nan",
}  # fmt: skip


# ------------------------------------------------------------------------------------ helpers


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: apt-get install prometheus prometheus-alertmanager)")
    return path


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def _assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _rules(path: Path = RULES) -> list[dict[str, Any]]:
    return [rule for group in _yaml(path)["groups"] for rule in group["rules"]]


def _alerts(path: Path = RULES) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in _rules(path) if "alert" in rule}


def _test_cases(path: Path) -> Iterator[dict[str, Any]]:
    for group in _yaml(path)["tests"]:
        yield from group.get("alert_rule_test", [])


def _seconds(alert: str, key: str) -> float:
    return parse_duration(_alerts()[alert].get(key, "0s"))


def _alertnames(matcher: str) -> list[str]:
    """The alerts an `alertname="A"` or `alertname=~"A|B"` matcher selects; [] for other labels."""
    found = re.fullmatch(r'alertname=~?"([\w|]+)"', matcher)
    return found.group(1).split("|") if found else []


def _dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        if panel.get("type") == "row":
            yield from _panels(panel.get("panels", []))
        else:
            yield panel


def _all_panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, board in _dashboards().items():
        for panel in _panels(board["panels"]):
            yield f"{name}: {panel.get('title')!r}", panel


def _exprs(node: Any) -> Iterator[str]:
    """Every `expr` in a dashboard: panel targets and annotation queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _exprs(value)


def _dashboard_exprs() -> list[tuple[str, str]]:
    return [(name, expr) for name, board in _dashboards().items() for expr in _exprs(board)]



def _variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in board["templating"]["list"]}


def _variable_query(var: dict[str, Any]) -> str:
    query = var.get("query", "")
    return query.get("query", "") if isinstance(query, dict) else query


def _substitute(expr: str, grafana_variables: dict[str, str] = GRAFANA_VARIABLES) -> str:
    """What Grafana sends with every template variable at All (`.*`)."""
    for variable, value in grafana_variables.items():
        expr = expr.replace(variable, value)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def _metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or labels."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|`[^`]*`', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", expr):
        if expr[match.end() :].lstrip().startswith("(") or match.group().lower() in PROMQL_KEYWORDS:
            continue
        names.add(match.group())
    return names


def _documented_metrics() -> set[str]:
    names = set(re.findall(r"^\| `([a-zA-Z_:][\w:]*)` \| (\w+)", METRICS_DOC.read_text(), re.M))
    documented = {name for name, _ in names}
    for name, kind in names:
        if kind == "histogram":
            documented |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return documented


def _is_known_metric(name: str, documented: set[str]) -> bool:
    return name in documented or name in STANDARD_METRICS or name.startswith(STANDARD_PREFIXES)


# ------------------------------------------------------------------------------- alert rules


def test_alert_rules_pass_promtool_check() -> None:
    _assert_ok(_run(_tool("promtool"), "check", "rules", RULES))


def test_alert_rule_unit_tests_pass() -> None:
    _assert_ok(_run(_tool("promtool"), "test", "rules", RULE_TESTS))


def test_global_rules_pass_promtool_check_and_their_unit_tests() -> None:
    _assert_ok(_run(_tool("promtool"), "check", "rules", GLOBAL_RULES))
    _assert_ok(_run(_tool("promtool"), "test", "rules", GLOBAL_RULE_TESTS))


@pytest.mark.parametrize(("rules", "tests"), [(RULES, RULE_TESTS), (GLOBAL_RULES, GLOBAL_RULE_TESTS)])
def test_every_alert_has_a_firing_case_and_a_silent_case(rules: Path, tests: Path) -> None:
    cases: dict[str, set[bool]] = {}
    for case in _test_cases(tests):
        cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    for alert in _alerts(rules):
        assert cases.get(alert) == {True, False}, f"{alert}: needs a firing and an exp_alerts: [] case"


def test_global_alerts_carry_no_vantage_and_keep_the_per_vantage_names_and_scopes() -> None:
    per_vantage = _alerts()
    for name, rule in _alerts(GLOBAL_RULES).items():
        assert "vantage" not in rule["labels"], name
        assert rule["annotations"]["summary"].strip() and len(rule["annotations"]["description"]) > 80, name
        if name in per_vantage:
            assert rule["labels"] == per_vantage[name]["labels"], name
        else:
            assert rule["labels"]["scope"] in {"path", "monitor"}, name  # routed to the operator


def test_the_global_rules_k_is_the_merged_views_default() -> None:
    """`monitor outages --from` confirms an outage as the global rules do."""
    from monitor.outages.consensus import MIN_VANTAGES

    for name in ("CountryShutdown", "RegionalShutdown", "MobileShutdown", "NetworkOutage"):
        expr = _alerts(GLOBAL_RULES)[name]["expr"]
        assert re.findall(r":count >= (\d+)", expr) == [str(MIN_VANTAGES)], name
        assert ":count * 2 >" in expr, f"{name}: and a majority of the voting vantages"


def test_required_alerts_exist() -> None:
    required = {
        "TargetDown", "NetworkOutage", "CountryShutdown", "CountryDegraded", "VantageOffline",
        "CertificateExpiringSoon", "ProbeSlow", "ConfigReloadFailed", "MonitorDown",
        "MonitorNoScrapes", "JournalUnhealthy", "ScheduleLagHigh", "MonitorBlind",
    }  # fmt: skip
    assert required <= set(_alerts())


def test_every_alert_has_severity_scope_and_actionable_annotations() -> None:
    for name, rule in [*_alerts().items(), *_alerts(GLOBAL_RULES).items()]:
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["labels"]["scope"] in OUTAGE_SCOPES | {"vantage", "monitor", "self", "path"}, name
        assert rule["annotations"]["summary"].strip(), name
        assert len(rule["annotations"]["description"]) > 80, name


def test_outage_alerts_are_gated_on_the_vantage_being_online() -> None:
    for name, rule in _alerts().items():
        if rule["labels"]["scope"] in OUTAGE_SCOPES:
            assert re.search(r"and on\s*\((vantage)?\)\s*monitor_vantage_online == 1", rule["expr"]), (
                f"{name} must be gated with `and on(vantage) monitor_vantage_online == 1`"
            )


def test_gated_alerts_keep_firing_until_vantage_offline_can_inhibit_them() -> None:
    """Else the gate resolves them when our uplink dies, and "resolved" goes out before VantageOffline."""
    vantage_offline = parse_duration(_alerts()["VantageOffline"]["for"])
    for name, rule in _alerts().items():
        if "monitor_vantage_online == 1" in rule["expr"]:
            assert parse_duration(rule.get("keep_firing_for", "0s")) > vantage_offline, name


def test_only_vantage_offline_has_the_vantage_scope() -> None:
    vantage = [name for name, rule in _alerts().items() if rule["labels"]["scope"] == "vantage"]
    assert vantage == ["VantageOffline"]


# ------------------------------------------------------------------------------- prometheus


@pytest.mark.parametrize(
    "config",
    [PROMETHEUS_CONFIG, PROMETHEUS_LOCAL_CONFIG, PROMETHEUS_PROBE_CONFIG, PROMETHEUS_CENTRAL_CONFIG],
    ids=lambda path: path.name,
)
def test_prometheus_config_passes_promtool_check(config: Path) -> None:
    _assert_ok(_run(_tool("promtool"), "check", "config", config))


def test_the_agent_config_passes_promtool_check_in_agent_mode() -> None:
    argv = [_tool("promtool"), "check", "config", "--agent", str(PROMETHEUS_AGENT_CONFIG)]
    environment = {**os.environ, "VANTAGE": "fra1"}
    result = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False, env=environment
    )
    _assert_ok(result)


def test_each_vantage_agent_labels_its_samples_and_writes_them_to_the_central_prometheus() -> None:
    agent = _yaml(PROMETHEUS_AGENT_CONFIG)
    assert agent["global"]["external_labels"] == {"vantage": "${VANTAGE}"}
    assert "rule_files" not in agent and "alerting" not in agent  # an agent evaluates nothing
    (job,) = agent["scrape_configs"]
    assert (job["job_name"], job["static_configs"][0]["targets"]) == ("shutdown-monitor", ["monitor:9143"])
    (write,) = agent["remote_write"]
    assert write["url"] == "http://prometheus-central:9090/api/v1/write"
    central = _yaml(PROMETHEUS_CENTRAL_CONFIG)
    rule_files = [(PROMETHEUS_CENTRAL_CONFIG.parent / path).resolve() for path in central["rule_files"]]
    assert rule_files == [RULES.resolve(), GLOBAL_RULES.resolve()]
    assert "external_labels" not in central.get("global", {})  # `vantage` comes with the samples
    assert "shutdown-monitor" not in {job["job_name"] for job in central["scrape_configs"]}
    services = _yaml(ROOT / "docker-compose.yml")["services"]
    assert services["prometheus-agent"]["profiles"] == ["vantage"]
    assert "--enable-feature=agent,expand-external-labels" in services["prometheus-agent"]["command"]
    assert services["prometheus-central"]["profiles"] == ["central"]
    assert "--web.enable-remote-write-receiver" in services["prometheus-central"]["command"]
    assert services["monitor"]["environment"]["MONITOR_VANTAGE"] == "${VANTAGE:-}"


def test_prometheus_loads_the_alert_rules_and_sends_to_alertmanager() -> None:
    config = _yaml(PROMETHEUS_CONFIG)
    rule_files = [(PROMETHEUS_CONFIG.parent / path).resolve() for path in config["rule_files"]]
    assert rule_files == [RULES.resolve()]
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]


def test_prometheus_scrapes_the_monitor_every_15s() -> None:
    jobs = {job["job_name"]: job for job in _yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    job = jobs["shutdown-monitor"]
    assert job["scrape_interval"] == "15s"
    assert job["static_configs"][0]["targets"] == ["monitor:9143"]


def test_local_prometheus_scrapes_the_monitor_on_loopback_with_the_rules_and_alertmanager() -> None:
    config = _yaml(PROMETHEUS_LOCAL_CONFIG)
    rule_files = [(PROMETHEUS_LOCAL_CONFIG.parent / path).resolve() for path in config["rule_files"]]
    assert rule_files == [RULES.resolve()]
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["127.0.0.1:9093"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "shutdown-monitor"
    assert job["scrape_interval"] == "5s"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9143"]


def test_the_two_ways_to_scrape_are_two_prometheus_configs_never_both_in_one() -> None:
    jobs = {job["job_name"] for job in _yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    assert "shutdown-monitor" in jobs and "shutdown-monitor-probe" not in jobs
    (probe,) = _yaml(PROMETHEUS_PROBE_CONFIG)["scrape_configs"]
    assert probe["job_name"] == "shutdown-monitor-probe"
    assert "rule_files" not in _yaml(PROMETHEUS_PROBE_CONFIG)  # no outage state: the rules need /metrics
    services = _yaml(ROOT / "docker-compose.yml")["services"]
    assert "profiles" not in services["prometheus"]
    assert services["prometheus-probe"]["profiles"] == ["probe"]
    mount = "./deploy/prometheus-probe.yml:/etc/prometheus/prometheus.yml:ro"
    assert mount in services["prometheus-probe"]["volumes"]


def test_probe_job_uses_the_multi_target_pattern() -> None:
    jobs = {job["job_name"]: job for job in _yaml(PROMETHEUS_PROBE_CONFIG)["scrape_configs"]}
    job = jobs["shutdown-monitor-probe"]
    assert job["metrics_path"] == "/probe"
    names = job["static_configs"][0]["targets"]
    assert names and all(":" not in name and "/" not in name for name in names)
    steps = [
        (tuple(step.get("source_labels", ())), step["target_label"], step.get("replacement"))
        for step in job["relabel_configs"]
    ]
    assert steps == [
        (("__address__",), "__param_target", None),
        (("__param_target",), "instance", None),
        ((), "__address__", "monitor:9143"),
    ]


def test_probe_job_targets_are_names_in_the_catalog() -> None:
    catalog_path = ROOT / "targets.yaml"
    if not catalog_path.exists():
        pytest.skip("no targets.yaml in the repository")
    catalog = _yaml(catalog_path)
    names = {entry["name"] for key in ("targets", "controls") for entry in catalog.get(key) or []}
    jobs = {job["job_name"]: job for job in _yaml(PROMETHEUS_PROBE_CONFIG)["scrape_configs"]}
    probed = set(jobs["shutdown-monitor-probe"]["static_configs"][0]["targets"])
    assert probed <= names, f"not in targets.yaml: {sorted(probed - names)}"


# ------------------------------------------------------------------------------ alertmanager


def test_alertmanager_config_passes_amtool_check() -> None:
    _assert_ok(_run(_tool("amtool"), "check-config", ALERTMANAGER_CONFIG))


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=CountryShutdown", "scope=country", "country=KZ"], "outages"),
        (["alertname=TargetDown", "scope=site", "country=KZ"], "outages"),
        (["alertname=VantageOffline", "scope=vantage"], "operator"),
        (["alertname=MonitorDown", "scope=monitor"], "operator"),
        (["alertname=MonitorBlind", "scope=self"], "operator"),
        # several vantages: one vantage's view, what they agree on, and a path problem
        (["alertname=CountryShutdown", "scope=country", "country=KZ", "vantage=fra1"], "vantages"),
        (["alertname=TargetDown", "scope=site", "country=KZ", "vantage=fra1"], "vantages"),
        (["alertname=VantageOffline", "scope=vantage", "vantage=fra1"], "operator"),
        (["alertname=PartialVisibility", "scope=path", "country=KZ"], "operator"),
        (["alertname=VantageNotReporting", "scope=monitor", "vantage=fra1"], "operator"),
    ],
)
def test_outages_and_operator_alerts_reach_their_own_receivers(labels: list[str], receiver: str) -> None:
    result = _run(
        _tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels
    )
    _assert_ok(result)
    assert result.stdout.split() == [receiver]


def test_alertmanager_groups_by_alertname_and_country() -> None:
    assert _yaml(ALERTMANAGER_CONFIG)["route"]["group_by"] == ["alertname", "country"]


def test_vantage_offline_inhibits_site_network_and_country_alerts() -> None:
    rules = _yaml(ALERTMANAGER_CONFIG)["inhibit_rules"]
    assert {
        "source_matchers": ['alertname="VantageOffline"'],
        "target_matchers": ['scope=~"site|network|mobile|region|country|throttling|dns"'],
        "equal": ["vantage"],
    } in rules


def test_country_shutdown_inhibits_the_alerts_it_explains() -> None:
    rules = _yaml(ALERTMANAGER_CONFIG)["inhibit_rules"]
    inhibited = {
        alert
        for rule in rules
        if rule["source_matchers"] == ['alertname="CountryShutdown"']
        for matcher in rule["target_matchers"]
        for alert in _alertnames(matcher)
    }
    assert inhibited == {
        "TargetDown",
        "NetworkOutage",
        "CountryDegraded",
        "RegionalShutdown",
        "MobileShutdown",
        "Throttling",
        "BlocksBelowBaseline",
    }


def test_country_shutdown_inhibits_only_its_own_country_from_the_same_vantage() -> None:
    rules = [
        rule
        for rule in _yaml(ALERTMANAGER_CONFIG)["inhibit_rules"]
        if rule["source_matchers"] == ['alertname="CountryShutdown"']
    ]
    assert rules and all(sorted(rule["equal"]) == ["country", "vantage"] for rule in rules)


def test_network_outage_inhibits_only_its_own_sites_and_blocks_from_the_same_vantage() -> None:
    rules = [
        rule
        for rule in _yaml(ALERTMANAGER_CONFIG)["inhibit_rules"]
        if rule["source_matchers"] == ['alertname="NetworkOutage"']
    ]
    assert [(rule["target_matchers"], sorted(rule["equal"])) for rule in rules] == [
        (['alertname=~"TargetDown|BlocksBelowBaseline"'], ["asn", "country", "vantage"])
    ]


def test_an_inhibiting_alert_fires_before_and_resolves_after_the_alerts_it_inhibits() -> None:
    """Else the alerts it explains are sent when they start before it, or outlive it at the end.
    (Across vantages the per-vantage alerts go to their own receiver: there the inhibition only
    quiets it once the vantages agree.)"""
    for rule in _yaml(ALERTMANAGER_CONFIG)["inhibit_rules"]:
        if any("vantage" in matcher for matcher in rule["source_matchers"] + rule["target_matchers"]):
            continue
        sources = [name for matcher in rule["source_matchers"] for name in _alertnames(matcher)]
        targets = [name for matcher in rule["target_matchers"] for name in _alertnames(matcher)]
        for source, target in itertools.product(sources, targets):
            assert _seconds(target, "for") > _seconds(source, "for"), (source, target)
            assert _seconds(target, "keep_firing_for") < _seconds(source, "keep_firing_for"), (source, target)


def test_network_outage_fires_before_and_resolves_after_its_sites_despite_the_monitors_settle() -> None:
    """The monitor opens a network outage only once every target of the network has failed for
    `settle`; the first of them is down after `down_after` probes, up to an interval before the last
    starts failing. TargetDown's longer `for:` must cover that lag, with a scrape and an evaluation
    of Prometheus on top. At the end the first target back closes the outage and the others are back
    within an interval: NetworkOutage's longer `keep_firing_for:` must cover that."""
    catalog = load_catalog(ROOT / "targets.yaml")
    analyzer = Analyzer()
    analyzer.set_catalog(catalog)
    sites = [target for target in catalog.targets if not target.is_control]
    interval = max(target.interval for target in sites)
    first_down = min((target.down_after - 1) * target.interval for target in sites)
    prometheus = _yaml(PROMETHEUS_CONFIG)["global"]
    rounding = sum(parse_duration(prometheus[key]) for key in ("scrape_interval", "evaluation_interval"))
    opens_after_down = interval + analyzer.settle - first_down + rounding
    assert _seconds("TargetDown", "for") - _seconds("NetworkOutage", "for") > opens_after_down
    assert _seconds("NetworkOutage", "keep_firing_for") - _seconds("TargetDown", "keep_firing_for") >= (
        interval + rounding
    )


def test_inhibitions_match_on_labels_the_alerts_carry_in_their_rule_tests() -> None:
    """`equal` labels missing on both sides match as empty == empty: an inhibiting alert without
    them would silence every target alert without them too, not only the ones it explains. So
    every firing case of a source carries them, and some firing case of each target does (a
    target alert without one, such as TargetDown of a site with no `region`, is never silenced
    by that rule). `vantage` is empty by design."""
    labels: dict[str, list[set[str]]] = {}
    for test in itertools.chain(_test_cases(RULE_TESTS), _test_cases(GLOBAL_RULE_TESTS)):
        for alert in test.get("exp_alerts") or []:
            labels.setdefault(test["alertname"], []).append(set(alert["exp_labels"]))
    for rule in _yaml(ALERTMANAGER_CONFIG)["inhibit_rules"]:
        equal = set(rule["equal"]) - {"vantage"}
        for matcher in rule["source_matchers"]:
            for alert in _alertnames(matcher):
                assert labels.get(alert), f"{alert}: no firing case in {RULE_TESTS.name}"
                for case in labels[alert]:
                    assert equal <= case, (alert, sorted(equal - case), rule["source_matchers"])
        for matcher in rule["target_matchers"]:
            for alert in _alertnames(matcher):
                assert any(equal <= case for case in labels.get(alert, [])), (alert, sorted(equal))


def test_alert_labels_used_by_alertmanager_exist_on_the_alerts() -> None:
    alerts = _alerts()
    assert {"VantageOffline", "CountryShutdown"} <= set(alerts)
    scopes = {rule["labels"]["scope"] for rule in alerts.values()}
    assert scopes >= OUTAGE_SCOPES


# -------------------------------------------------------------------------------- dashboards


def test_dashboards_have_unique_stable_uids() -> None:
    uids = {name: board.get("uid") for name, board in _dashboards().items()}
    assert uids == EXPECTED_UIDS
    assert len(set(uids.values())) == len(uids)


def test_dashboards_use_the_datasource_variable_not_import_placeholders() -> None:
    for name, board in _dashboards().items():
        text = json.dumps(board)
        assert "__inputs" not in board and "${DS_" not in text, name
        variable = _variables(board)["datasource"]
        assert (variable["type"], variable["query"]) == ("datasource", "prometheus"), name


def test_every_panel_and_query_uses_the_datasource_variable() -> None:
    for where, panel in _all_panels():
        assert panel.get("datasource") == PANEL_DATASOURCE, where
        for target in panel.get("targets", []):
            assert target.get("datasource", PANEL_DATASOURCE) == PANEL_DATASOURCE, where


def test_every_panel_has_a_query() -> None:
    for where, panel in _all_panels():
        exprs = [target.get("expr", "").strip() for target in panel.get("targets", [])]
        assert exprs and all(exprs), where


def test_dashboards_have_chained_multi_select_country_category_target_variables() -> None:
    for name, board in _dashboards().items():
        variables = _variables(board)
        for var_name in ("country", "category", "target"):
            var = variables[var_name]
            assert var["type"] == "query", (name, var_name)
            assert var["datasource"] == PANEL_DATASOURCE, (name, var_name)
            assert var["multi"], (name, var_name)
            # target detail opens on one target (the first), not on all of them at once
            one_target = name == "target-detail.json" and var_name == "target"
            assert var["includeAll"] is not one_target, (name, var_name)
            if one_target:
                assert var["current"] == {}, name
            assert _variable_query(var).startswith("label_values("), (name, var_name)
        assert '=~"$country"' in _variable_query(variables["category"]), name
        assert {'=~"$country"', '=~"$category"'} <= {
            m.group() for m in re.finditer(r'=~"\$\w+"', _variable_query(variables["target"]))
        }, name


def _recorded_across_vantages() -> set[str]:
    """The recorded series aggregated over the vantages: their level (level:metric:operations) is
    not `vantage`."""
    recorded = [rule["record"] for rule in _rules(GLOBAL_RULES) if "record" in rule]
    return {name for name in recorded if not name.startswith("vantage:")}


def test_every_dashboard_query_picks_its_vantage() -> None:
    """On the central Prometheus of several vantages every series has a `vantage` (README,
    "Scaling beyond one box"); with one monitor there is none, the variable is All and `.*`
    matches the absent label. The votes recorded across vantages have none."""
    for name, board in _dashboards().items():
        variable = _variables(board)["vantage"]
        assert _variable_query(variable) == "label_values(monitor_vantage_online, vantage)", name
        assert (variable["includeAll"], variable["allValue"], variable["multi"]) == (True, ".*", True), name
        selectors = [
            re.fullmatch(r"label_values\((.+),\s*\w+\)", _variable_query(v))
            for v in board["templating"]["list"]
            if v["name"] not in {"vantage", "datasource"}
        ]
        for expr in [*(found[1] for found in selectors if found), *_exprs(board)]:
            for metric in _metric_names(expr) - _recorded_across_vantages():
                for found in re.finditer(rf"\b{re.escape(metric)}\b(\{{)?", expr):
                    picked = found.group(1) and expr[found.end() :].startswith('vantage=~"$vantage"')
                    assert picked, (name, expr)


def test_the_country_state_tile_reads_unknown_in_grey_and_counts_are_whole_numbers() -> None:
    panels = {
        (name, panel["title"]): panel for name, board in _dashboards().items() for panel in board["panels"]
    }
    state = panels[("country-overview.json", "Country state")]["fieldConfig"]["defaults"]["mappings"][0]
    assert state["options"]["3"] == {"text": "UNKNOWN", "color": "#757575", "index": 3}
    for (name, title), panel in panels.items():
        for target in panel.get("targets", []):
            if "increase(" in target["expr"]:  # extrapolated: 6.7016 failures means nothing to a reader
                assert "round(" in target["expr"], (name, title)
                assert panel["fieldConfig"]["defaults"]["decimals"] == 0, (name, title)


def test_dashboard_queries_use_only_defined_and_known_grafana_variables() -> None:
    for name, board in _dashboards().items():
        defined = set(_variables(board))
        for expr in _exprs(board):
            assert "${" not in expr, (name, expr)
            for match in re.finditer(r"\$(\w+)", expr):
                if match.group(1).startswith("__"):
                    assert match.group() in GRAFANA_VARIABLES, (name, expr)
                else:
                    assert match.group(1) in defined, (name, expr)
                    assert expr[: match.start()].endswith('=~"'), (name, expr)


def test_dashboard_queries_parse_as_promql_with_every_variable_at_all(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    exprs = sorted({_substitute(expr) for _, expr in _dashboard_exprs()})
    rules = [{"record": f"dashboard:expr_{i}", "expr": expr} for i, expr in enumerate(exprs)]
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    _assert_ok(_run(promtool, "check", "rules", path))


def test_datasource_provisioning_points_at_prometheus_with_uid_prometheus() -> None:
    provisioning = _yaml(DASHBOARDS / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = provisioning["datasources"]
    assert (source["type"], source["uid"], source["url"]) == (
        "prometheus", "prometheus", "http://prometheus:9090"
    )  # fmt: skip


def test_dashboard_provider_reads_the_directory_compose_mounts_the_dashboards_at() -> None:
    provisioning = _yaml(DASHBOARDS / "provisioning" / "dashboards" / "monitor.yml")
    (provider,) = provisioning["providers"]
    assert provider["type"] == "file"
    grafana = _yaml(ROOT / "docker-compose.yml")["services"]["grafana"]
    assert f"./dashboards:{provider['options']['path']}:ro" in grafana["volumes"]


# ------------------------------------------------------------------------------ metric names


def test_metric_name_parser_skips_functions_keywords_labels_and_durations() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, job) (rate(a_bucket{x=~"$y"}[$__rate_interval])))'
        " > 5 and on(vantage) b == 1 or topk by (target) (1, c offset 5m) * 1e3"
    )
    assert _metric_names(expr) == {"a_bucket", "b", "c"}


def test_every_metric_in_rules_and_dashboards_is_documented() -> None:
    documented = _documented_metrics()
    assert "monitor_target_up" in documented and "monitor_schedule_lag_seconds_bucket" in documented
    rules = _rules() + _rules(GLOBAL_RULES)
    exprs = [(f"rule {rule.get('alert', rule.get('record'))}", rule["expr"]) for rule in rules]
    for rule in rules:
        for annotation in rule.get("annotations", {}).values():
            exprs += [(f"rule {rule['alert']}", q) for q in re.findall(r"printf `([^`]*)`", annotation)]
    exprs += _dashboard_exprs()
    for name, board in _dashboards().items():
        for var in board["templating"]["list"]:
            query = re.match(r"label_values\(\s*([\w:]+(\{[^}]*\})?)", _variable_query(var))
            if query:
                exprs.append((name, query.group(1)))
    unknown = {
        (where, metric)
        for where, expr in exprs
        for metric in _metric_names(expr)
        if not _is_known_metric(metric, documented)
    }
    assert not unknown, f"not in docs/metrics.md: {sorted(unknown)}"


# ------------------------------------------------------------------------- image and compose


def test_image_runs_as_uid_10001_and_checks_healthz_on_the_exposed_port() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "# syntax=" not in dockerfile  # it makes every BuildKit build pull a frontend: no offline build
    assert re.findall(r"^VOLUME (.+)$", dockerfile, re.M) == ['["/var/lib/monitor"]']  # not /etc/monitor
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert re.search(r"^USER 10001(:10001)?$", dockerfile, re.M)
    assert re.search(r"^EXPOSE 9143$", dockerfile, re.M)
    assert "http://127.0.0.1:9143/healthz" in dockerfile
    assert re.search(r'^ENTRYPOINT \["monitor"\]$', dockerfile, re.M)


def test_docker_build_context_includes_what_the_dockerfile_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().split()
    for path in ("pyproject.toml", "README.md", "monitor/"):
        assert f"!{path}" in ignore


def test_monitor_container_runs_read_only_without_capabilities() -> None:
    monitor = _yaml(ROOT / "docker-compose.yml")["services"]["monitor"]
    assert monitor["read_only"] is True
    assert monitor["cap_drop"] == ["ALL"]
    assert monitor["security_opt"] == ["no-new-privileges:true"]
    assert "/tmp" in monitor["tmpfs"]
    assert "./targets.yaml:/etc/monitor/targets.yaml:ro" in monitor["volumes"]


def test_compose_mounts_deploy_and_dashboard_files_that_exist() -> None:
    services = _yaml(ROOT / "docker-compose.yml")["services"]
    sources = [
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if volume.startswith(("./deploy", "./dashboards"))
    ]
    assert len(sources) >= 5
    for source in sources:
        assert (ROOT / source).exists(), source


def test_prometheus_scrapes_the_compose_services_by_name() -> None:
    services = set(_yaml(ROOT / "docker-compose.yml")["services"])
    config = _yaml(PROMETHEUS_CONFIG)
    hosts = {
        target.split(":")[0]
        for job in config["scrape_configs"]
        if job["job_name"] != "shutdown-monitor-probe"
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert hosts - {"localhost"} <= services
    assert {"monitor", "alertmanager", "prometheus", "grafana"} <= services
