"""Command line: run | check | validate (and the outage and demo commands)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import yaml

from monitor import __version__
from monitor.catalog.blocks_import import BlockImport, read_delegated, read_ipasn
from monitor.catalog.catalog import Catalog, Target, adhoc_target, load_catalog
from monitor.catalog.durations import format_duration, parse_duration
from monitor.catalog.problems import ConfigError
from monitor.catalog.schema import VANTAGE_NAME, BlockEntry, parse_host_port
from monitor.catalog.sharding import Shard, parse_shard
from monitor.outages.block_store import BlockStore
from monitor.outages.consensus import MIN_VANTAGES, MergedOutage, merge
from monitor.outages.journal import Journal, JournalError
from monitor.probing.discovery import Hitlist, discover_all
from monitor.probing.failures import Phase
from monitor.probing.liveness import Liveness
from monitor.probing.pacing import PacketBudget
from monitor.probing.result import ProbeResult
from monitor.serving.peers import Peers, check_peer_url, read_vantages
from monitor.serving.report import REPORT_FORMATS, render_report
from monitor.serving.webconfig import load_web_config

__all__ = ["main"]

_T = TypeVar("_T")

log = logging.getLogger("monitor")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.command(args))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitor", description="Internet-shutdown monitor")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--event-loop",
        default="auto",
        choices=["auto", "uvloop", "asyncio"],
        help="auto: uvloop when installed (about 10%% less CPU per probe), else asyncio",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="probe the catalog on schedule and serve /metrics")
    run.add_argument("--config", required=True, help="targets.yaml")
    run.add_argument("--listen", default="127.0.0.1:9143", help="HOST:PORT to serve on")
    run.add_argument("--max-concurrency", type=int, default=512, help="probes running at once, at most")
    run.add_argument(
        "--max-connections", type=int, default=512, help="web clients served at once, at most (others wait)"
    )
    run.add_argument("--state", help="SQLite outage journal (default: outages kept in memory only)")
    run.add_argument(
        "--vantage",
        type=_vantage,
        default=os.environ.get("MONITOR_VANTAGE") or None,
        help="where this monitor runs (e.g. fra1), in its journal and API; overrides the catalog's "
        "vantage: (default: $MONITOR_VANTAGE)",
    )
    run.add_argument(
        "--peer",
        dest="peers",
        metavar="URL",
        action="append",
        type=_peer_url,
        default=[],
        help="another vantage's monitor (repeat it): /api/outages/merged merges its outages with ours",
    )
    run.add_argument("--peer-ca-file", help="CA certificates for https:// peers (default: the system's)")
    run.add_argument("--shard", type=_shard, help="probe only shard I of N of the catalog (e.g. 0/3)")
    run.add_argument("--web-config", help="TLS and basic auth for the web endpoints (see README)")
    run.add_argument("--enable-lifecycle", action="store_true", help="allow POST /-/reload")
    run.add_argument(
        "--web.public",
        "--web-public",
        dest="web_public",
        action="store_true",
        help="face the public: the status page shows verdicts and the journal only; no /api/status or /probe",
    )
    run.set_defaults(command=_run)

    check = commands.add_parser("check", help="probe targets once and print a table")
    check.add_argument("--config", required=True)
    check.add_argument("targets", nargs="*", help="target names from the catalog, or URLs (default: all)")
    check.set_defaults(command=_check)

    outages = commands.add_parser("outages", help="list outages from the journal, or merged across vantages")
    source = outages.add_mutually_exclusive_group(required=True)
    source.add_argument("--state", help="the SQLite journal written by `monitor run --state`")
    source.add_argument(
        "--from",
        dest="sources",
        metavar="URL",
        action="append",
        type=_peer_url,
        help="a monitor's base URL (repeat it, one per vantage): its outages merged with the others'",
    )
    outages.add_argument("--ca-file", help="CA certificates for https:// monitors (default: the system's)")
    outages.add_argument(
        "--min-vantages",
        type=int,
        default=MIN_VANTAGES,
        help=f"vantages that must see an outage for it to be confirmed (default {MIN_VANTAGES})",
    )
    outages.add_argument(
        "--since", default="24h", help="outages open at any time in this window (default 24h)"
    )
    outages.add_argument("--json", action="store_true", help="print JSON instead of a table")
    outages.set_defaults(command=_outages)

    report = commands.add_parser("report", help="one outage as a report to publish (HTML or Markdown)")
    report.add_argument("outage_id", metavar="OUTAGE_ID", help="its id, or the first 6 or more of its digits")
    report.add_argument("--state", required=True, help="the SQLite journal written by `monitor run --state`")
    report.add_argument("--format", default="html", choices=REPORT_FORMATS)
    report.add_argument("--output", "-o", help="write it to this file (default: standard output)")
    report.set_defaults(command=_report)

    demo = commands.add_parser("demo", help="replay the 2022 Kazakhstan shutdown on a simulated internet")
    demo.add_argument("--listen", default="127.0.0.1:9143", help="HOST:PORT to serve on")
    demo.add_argument("--phase-seconds", type=float, default=150.0, help="seconds per timeline phase")
    demo.add_argument("--interval", default="5s", help="probe interval (default 5s)")
    demo.add_argument("--timeout", default="3s", help="probe timeout (default 3s)")
    demo.add_argument("--state", help="keep the outage journal in this file (default: a temporary one)")
    demo.add_argument("--once", action="store_true", help="play the timeline once and exit")
    demo.set_defaults(command=_demo)

    blocks = commands.add_parser("blocks", help="end-user address blocks for the catalog's blocks:")
    blocks_commands = blocks.add_subparsers(required=True, metavar="COMMAND")
    blocks_import = blocks_commands.add_parser(
        "import", help="blocks: from a downloaded RIR delegated file and/or pyasn IPASN file (never fetched)"
    )
    blocks_import.add_argument("--country", required=True, type=str.upper, help="ISO code, e.g. KZ")
    blocks_import.add_argument("--ripe-delegated", metavar="FILE", help="RIR delegated(-extended) stats file")
    blocks_import.add_argument("--ipasn", metavar="FILE", help="pyasn IPASN file (prefix, origin ASN)")
    blocks_import.add_argument("--asn", type=int, action="append", default=[], help="keep only this network")
    blocks_import.add_argument("--output", "-o", help="write the YAML here (default: standard output)")
    blocks_import.set_defaults(command=_blocks_import)
    blocks_discover = blocks_commands.add_parser(
        "discover",
        help="find each block's responsive addresses (its hitlist) now, at the catalog's discovery rate",
    )
    blocks_discover.add_argument("--config", required=True)
    blocks_discover.add_argument(
        "--state",
        required=True,
        help="the journal database of `monitor run --state`, where hitlists are kept",
    )
    blocks_discover.add_argument("--prefix", action="append", default=[], help="only this /24 (repeat it)")
    blocks_discover.set_defaults(command=_blocks_discover)

    validate = commands.add_parser("validate", help="check targets.yaml without touching the network")
    validate.add_argument("--config", required=True)
    validate.set_defaults(command=_validate)
    return parser


def _shard(text: str) -> Shard:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _peer_url(text: str) -> str:
    try:
        return check_peer_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _vantage(text: str) -> str:
    if not re.fullmatch(VANTAGE_NAME, text):
        raise argparse.ArgumentTypeError(f"{text!r}: letters, digits, '.', '_' or '-', at most 63")
    return text


def _run_async(args: argparse.Namespace, main: Coroutine[Any, Any, _T]) -> _T:
    loop_factory = None
    if args.event_loop != "asyncio":
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            if args.event_loop == "uvloop":
                raise
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main)


def _validate(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.config)
    controls = len(catalog.controls)
    slash24s = sum(block.size for block in catalog.blocks)
    blocks = f", {len(catalog.blocks)} blocks ({slash24s} /24s)" if catalog.blocks else ""
    print(f"{args.config}: OK, {len(catalog.targets) - controls} targets and {controls} controls{blocks}")
    return 0


def _run(args: argparse.Namespace) -> int:
    host, port = parse_host_port(args.listen)
    _run_async(args, _serve(args, host, port))
    return 0


async def _serve(args: argparse.Namespace, host: str, port: int) -> None:
    from monitor.daemon import Monitor, serve

    web_config = load_web_config(args.web_config) if args.web_config else None
    monitor = Monitor(
        args.config,
        state_path=args.state,
        max_concurrency=args.max_concurrency,
        shard=args.shard,
        vantage=args.vantage,
    )
    async with serve(
        monitor,
        host,
        port,
        args.enable_lifecycle,
        web_config,
        max_connections=args.max_connections,
        public=args.web_public,
        peers=Peers(args.peers, args.peer_ca_file),
    ) as stopping:
        await stopping.wait()


def _demo(args: argparse.Namespace) -> int:
    host, port = parse_host_port(args.listen)
    from monitor.demo import run_demo

    _run_async(args, run_demo(args, host, port))
    return 0


def _outages(args: argparse.Namespace) -> int:
    try:
        window = parse_duration(args.since)
        outages = [] if args.sources else Journal.read(args.state, time.time() - window)
    except (ValueError, JournalError) as exc:
        print(f"monitor outages: {exc}", file=sys.stderr)
        return 2
    if args.sources:
        return _merged_outages(args, window)
    if args.json:
        print(json.dumps([outage.as_dict() for outage in outages], indent=1))
        return 0
    header = ["id", "scope", "key", "started (UTC)", "ended (UTC)", "duration", "failures", "evidence"]
    rows = [[*header, "packets stop"]]
    for outage in outages:
        duration = (outage.ended_at or time.time()) - outage.started_at
        evidence = ", ".join(f"{reason}={count}" for reason, count in outage.evidence.most_common(3))
        rows.append(
            [
                outage.id[:8],
                outage.scope.value,
                outage.key,
                _utc(outage.started_at),
                _utc(outage.ended_at) if outage.ended_at else "ongoing",
                format_duration(duration),
                str(outage.failures),
                evidence,
                _stop(outage.path),
            ]
        )
    print(_columns(rows))
    return 0


def _stop(path: dict[str, Any]) -> str:
    """`border: 95.59.170.1 AS9198`: where an outage's traces stopped ("-" when not traced)."""
    if not path:
        return "-"
    stop = path.get("stops_at") or {}
    if path["where"] == "reached" or not stop.get("address"):
        return str(path["where"])
    asn = f" AS{stop['asn']}" if stop.get("asn") is not None else ""
    return f"{path['where']}: {stop['address']}{asn}"


def _merged_outages(args: argparse.Namespace, window: float) -> int:
    answers = _run_async(args, read_vantages(args.sources, window, ca_file=args.ca_file))
    for answer in answers:
        if answer.error is not None:
            print(f"monitor outages: {answer.source}: {answer.error}", file=sys.stderr)
    merged = merge(answers, args.min_vantages)
    if args.json:
        vantages = [answer.as_dict() for answer in answers]
        print(json.dumps({"vantages": vantages, "outages": [entry.as_dict() for entry in merged]}, indent=1))
    else:
        print(_merged_table(merged))
    return 0 if any(answer.error is None for answer in answers) else 1


def _merged_table(merged: Sequence[MergedOutage]) -> str:
    rows = [["scope", "key", "consensus", "seen by", "not seen by", "first seen (UTC)", "last seen (UTC)",
             "evidence per vantage"]]  # fmt: skip
    for entry in merged:
        evidence = "; ".join(
            f"{outage.vantage}: "
            + (", ".join(f"{reason}={count}" for reason, count in outage.evidence.most_common(2)) or "-")
            for outage in entry.sightings
        )
        last = entry.last_seen
        rows.append(
            [
                entry.scope.value,
                entry.key,
                entry.consensus,
                ",".join(entry.seen_by),
                ",".join(entry.not_seen_by + [f"{name} (blind)" for name in entry.blind]) or "-",
                _utc(entry.first_seen),
                _utc(last) if last is not None else "ongoing",
                evidence,
            ]
        )
    return _columns(rows)


def _blocks_import(args: argparse.Namespace) -> int:
    if not args.ipasn:
        print("monitor blocks import: --ipasn is needed: it says which network announces each block "
              "(the delegated file names none)", file=sys.stderr)  # fmt: skip
        return 2
    if not re.fullmatch(r"[A-Z]{2}", args.country):
        print(f"monitor blocks import: --country {args.country!r} is not an ISO code", file=sys.stderr)
        return 2
    try:
        job = BlockImport(args.country, asns=frozenset(args.asn))
        with open(args.ipasn, encoding="utf-8") as lines:
            job.announced = read_ipasn(lines, args.ipasn)
        if args.ripe_delegated:
            with open(args.ripe_delegated, encoding="utf-8") as lines:
                job.registered = read_delegated(lines, args.country, args.ripe_delegated)
        sources = [os.path.basename(path) for path in (args.ripe_delegated, args.ipasn) if path]
        entries = job.blocks(" + ".join(sources))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"monitor blocks import: {exc}", file=sys.stderr)
        return 2
    slash24s = sum(BlockEntry.model_validate(entry).size for entry in entries)
    text = yaml.safe_dump({"blocks": entries}, sort_keys=False, default_flow_style=None, width=200)
    _write(text, args.output)
    summary = f"{len(entries)} blocks, {slash24s} /24s on {len({e['asn'] for e in entries})} networks"
    if job.unannounced:
        summary += f"; {job.unannounced} /24s registered to {args.country} but announced by nobody, left out"
    print(summary, file=sys.stderr)
    return 0


def _blocks_discover(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.config)
    prefixes = [str(subnet) for block in catalog.blocks for subnet in block.network.subnets(new_prefix=24)]
    unknown = sorted(set(args.prefix) - set(prefixes))
    if not prefixes or unknown:
        what = f"{', '.join(unknown)} is not a /24 of its blocks:" if unknown else "no blocks:"
        print(f"monitor blocks discover: {args.config}: {what}", file=sys.stderr)
        return 2
    options = catalog.liveness
    liveness = Liveness.detect(options.method, tuple(options.tcp_ports), options.timeout)
    print(f"block liveness: {liveness.reason}", file=sys.stderr)
    store = BlockStore(args.state)
    wanted = [prefix for prefix in prefixes if not args.prefix or prefix in args.prefix]
    budget = PacketBudget(options.discovery_packets_per_second)
    found: list[Hitlist] = []

    async def save(hitlist: Hitlist) -> None:
        await asyncio.to_thread(store.save_hitlist, hitlist)
        found.append(hitlist)
        responsive = f"{len(hitlist.addresses):3d} responsive"
        print(f"{hitlist.prefix}  {responsive}  availability {hitlist.availability:.2f}")

    started = time.monotonic()
    asyncio.run(discover_all(wanted, liveness, budget, save))
    usable = sum(1 for hitlist in found if hitlist.addresses)
    print(
        f"{len(found)} blocks in {time.monotonic() - started:.0f}s, {usable} with responsive addresses, "
        f"{budget.sent} packets; hitlists in {args.state}",
        file=sys.stderr,
    )
    return 0 if store.healthy else 1


def _report(args: argparse.Namespace) -> int:
    try:
        outage, context = Journal.read_with_context(args.state, args.outage_id)
    except JournalError as exc:
        print(f"monitor report: {exc}", file=sys.stderr)
        return 2
    _write(render_report(outage, context, args.format), args.output)
    return 0


def _write(text: str, path: str | None) -> None:
    """To the file `--output` names, else to standard output."""
    if path:
        with open(path, "w", encoding="utf-8") as output:
            output.write(text)
    else:
        sys.stdout.write(text)


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp))


def _check(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.config)
    try:
        targets = _select(catalog, args.targets)
    except ValueError as exc:
        print(f"monitor check: {exc}", file=sys.stderr)
        return 2
    results = _run_async(args, _probe_all(targets))
    print(format_table(results))
    return 0 if all(result.success for result in results) else 1


def _select(catalog: Catalog, wanted: Sequence[str]) -> list[Target]:
    if not wanted:
        return list(catalog.targets)
    selected = []
    for item in wanted:
        if item in catalog.by_name:
            selected.append(catalog.by_name[item])
        elif "://" in item:
            selected.append(adhoc_target(catalog, item))
        else:
            raise ValueError(f"{item!r} is neither a target in {catalog.source} nor a URL")
    return selected


async def _probe_all(targets: list[Target]) -> list[ProbeResult]:
    from monitor.probing.prober import Prober

    prober = Prober()
    try:
        return list(await asyncio.gather(*(prober.probe(target) for target in targets)))
    finally:
        with contextlib.suppress(Exception):
            await prober.close()


def format_table(results: Sequence[ProbeResult]) -> str:
    phases = tuple(Phase)
    header = ["target", "result", "failure", *(f"{phase.value}_ms" for phase in phases), "status"]
    rows = [header]
    for result in results:
        failure = f"{result.failure.value}" if result.failure else ""
        rows.append(
            [
                result.target,
                "ok" if result.success else "FAIL",
                failure,
                *(
                    f"{result.phases[phase] * 1000:.1f}" if phase in result.phases else "-"
                    for phase in phases
                ),
                str(result.http_status) if result.http_status else "-",
            ]
        )
    return _columns(rows)


def _columns(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )
