"""`monitor demo`: the daemon against a simulated Kazakhstan replaying January 2022, on loopback."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from monitor.catalog.durations import parse_duration
from monitor.daemon import Monitor, serve
from monitor.lab.internet import SimulatedInternet
from monitor.lab.presets import kazakhstan
from monitor.lab.scenario import Step, kazakhstan_2022, replay
from monitor.outages.block_store import BlockStore
from monitor.probing.discovery import Hitlist
from monitor.probing.liveness import tcp_method

__all__ = ["run_demo"]


async def run_demo(args: argparse.Namespace, host: str, port: int) -> None:
    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as workdir:
        async with kazakhstan(workdir=workdir, with_blocks=True) as net:
            interval, timeout = parse_duration(args.interval), parse_duration(args.timeout)
            config = net.write_targets_yaml(
                Path(workdir) / "targets.yaml",
                interval=args.interval,
                timeout=args.timeout,
                defaults={"down_after": 2, "up_after": 2},
                # The lab answers in milliseconds; phases last seconds, not days: a shorter grace
                # for sites still dark after their country's outage ended (Almaty, Jan 7).
                analysis={"slow_min_seconds": "200ms", "recovery_grace": f"{3 * interval:g}s"},
            )
            state = args.state or str(Path(workdir) / "journal.sqlite")
            hand_over_hitlists(net, state)
            monitor = Monitor(config, state_path=state)
            async with serve(monitor, host, port, enable_lifecycle=False) as stopping:
                print(
                    _DEMO_BANNER.format(host=host, port=port, config=config, dns=net.dns_address), flush=True
                )

                def announce(step: Step) -> None:
                    print(f"[{time.strftime('%H:%M:%S')}] {step.when:>16}  {step.what}", flush=True)

                def conclude(step: Step) -> None:
                    print(f"{'':28}{_conclusion(monitor, step)}", flush=True)

                scenario = asyncio.create_task(
                    replay(
                        net,
                        args.phase_seconds,
                        loop=not args.once,
                        steps=kazakhstan_2022(slow_seconds=0.4 * timeout),
                        announce=announce,
                        conclude=conclude,
                    )
                )
                stop = asyncio.create_task(stopping.wait())
                await asyncio.wait({scenario, stop}, return_when=asyncio.FIRST_COMPLETED)
                for task in (scenario, stop):
                    task.cancel()
                if scenario.done() and not scenario.cancelled() and (error := scenario.exception()):
                    raise error


def hand_over_hitlists(net: SimulatedInternet, state: str | Path) -> None:
    """The lab blocks' answering hosts, as discovery would find them on a real network (on
    loopback every address answers: monitor.lab.eyeballs), into the journal database."""
    store = BlockStore(state)
    method = tcp_method(net.blocks.port)
    for prefix, hosts in net.blocks.hitlists().items():
        store.save_hitlist(Hitlist(prefix, tuple((host, method) for host in hosts), 1.0, time.time()))


def _conclusion(monitor: Monitor, step: Step) -> str:
    """What the monitor concluded about Kazakhstan, beside what happened."""
    summary = monitor.analyzer.countries.get("KZ")
    verdict = summary.verdict if summary is not None else "unknown"
    mark = "as expected" if verdict == step.expect else f"expected {step.expect}"
    open_now = sorted(
        f"{o.scope.value} {o.key}"
        + (f" [{'+'.join(o.details['signals'])}]" if "signals" in o.details else "")
        for o in monitor.analyzer.open.values()
    )
    return f"-> the monitor: {verdict} ({mark}); open: {', '.join(open_now) or 'nothing'}"


_DEMO_BANNER = """\
Shutdown monitor demo: a simulated Kazakhstan, January 2022, on loopback only (nothing leaves 127.0.0.0/8).
  status page  http://{host}:{port}/  (open it in a browser; each outage has a report to publish)
  metrics      http://{host}:{port}/metrics
  api          http://{host}:{port}/api/status  http://{host}:{port}/api/outages
  catalog      {config}  (lab DNS at {dns})
Point Prometheus at it: prometheus --config.file=deploy/prometheus-local.yml  (scrapes {host}:{port},
loads deploy/rules/); Grafana dashboards are in dashboards/. Ctrl-C stops the demo.
"""
