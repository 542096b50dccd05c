"""`monitor demo`: the daemon against a simulated Kazakhstan replaying January 2022, on loopback."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from monitor.daemon import Monitor, serve
from monitor.lab.presets import kazakhstan
from monitor.lab.scenario import Step, replay

__all__ = ["run_demo"]


async def run_demo(args: argparse.Namespace, host: str, port: int) -> None:
    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as workdir:
        async with kazakhstan(workdir=workdir) as net:
            config = net.write_targets_yaml(
                Path(workdir) / "targets.yaml",
                interval=args.interval,
                timeout=args.timeout,
                defaults={"down_after": 2, "up_after": 2},
            )
            state = args.state or str(Path(workdir) / "journal.sqlite")
            monitor = Monitor(config, state_path=state)
            async with serve(monitor, host, port, enable_lifecycle=False) as stopping:
                print(
                    _DEMO_BANNER.format(host=host, port=port, config=config, dns=net.dns_address), flush=True
                )

                def announce(step: Step) -> None:
                    print(f"[{time.strftime('%H:%M:%S')}] {step.when:>16}  {step.what}", flush=True)

                scenario = asyncio.create_task(
                    replay(net, args.phase_seconds, loop=not args.once, announce=announce)
                )
                stop = asyncio.create_task(stopping.wait())
                await asyncio.wait({scenario, stop}, return_when=asyncio.FIRST_COMPLETED)
                for task in (scenario, stop):
                    task.cancel()
                if scenario.done() and not scenario.cancelled() and (error := scenario.exception()):
                    raise error


_DEMO_BANNER = """\
Shutdown monitor demo: a simulated Kazakhstan, January 2022, on loopback only (nothing leaves 127.0.0.0/8).
  metrics      http://{host}:{port}/metrics
  status       http://{host}:{port}/api/status
  outages      http://{host}:{port}/api/outages
  catalog      {config}  (lab DNS at {dns})
Point Prometheus at it: prometheus --config.file=deploy/prometheus-local.yml  (scrapes {host}:{port},
loads deploy/rules/); Grafana dashboards are in dashboards/. Ctrl-C stops the demo.
"""
