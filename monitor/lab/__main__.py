"""Run the lab as its own process: `python -m monitor.lab serve --preset kazakhstan
--config-out targets.yaml [--control 127.0.0.1:PORT] [--hosts N]`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from monitor.lab.control_api import control_app
from monitor.lab.internet import SimulatedInternet
from monitor.lab.loopback import require_loopback
from monitor.lab.presets import kazakhstan, synthetic

PRESETS = {"kazakhstan": kazakhstan}


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        return require_loopback(host), int(port)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc} (want 127.x.y.z:PORT)") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monitor.lab", description="A simulated internet on loopback."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the lab and its control API")
    serve.add_argument("--preset", choices=sorted(PRESETS), default="kazakhstan")
    serve.add_argument(
        "--hosts",
        type=int,
        default=None,
        metavar="N",
        help="N synthetic targets instead of the preset (for benchmarks)",
    )
    serve.add_argument(
        "--config-out", required=True, metavar="FILE", help="where to write the monitor's targets.yaml"
    )
    serve.add_argument(
        "--control",
        type=_host_port,
        default=("127.0.0.1", 0),
        metavar="127.0.0.1:PORT",
        help="control API address (port 0 = any)",
    )
    serve.add_argument(
        "--dns",
        type=_host_port,
        default=("127.0.0.1", 0),
        metavar="127.0.0.1:PORT",
        help="DNS server address (port 0 = any)",
    )
    serve.add_argument("--http-port", type=int, default=0)
    serve.add_argument("--https-port", type=int, default=0)
    serve.add_argument("--interval", default="30s", help="probe interval in the config")
    serve.add_argument("--timeout", default="5s", help="probe timeout in the config")
    asn = serve.add_mutually_exclusive_group()
    asn.add_argument(
        "--with-asn", dest="include_asn", action="store_const", const=True, help="write asn: for every target"
    )
    asn.add_argument(
        "--without-asn",
        dest="include_asn",
        action="store_const",
        const=False,
        help="write no asn: at all (the monitor must look every ASN up)",
    )
    serve.add_argument("--workdir", default=None, help="where the lab CA is written")
    return parser


def _build(args: argparse.Namespace) -> SimulatedInternet:
    options = {
        "dns_ip": args.dns[0],
        "dns_port": args.dns[1],
        "http_port": args.http_port,
        "https_port": args.https_port,
        "workdir": args.workdir,
    }
    if args.hosts is not None:
        return synthetic(args.hosts, **options)
    return PRESETS[args.preset](**options)


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with _build(args) as net:
        net.write_targets_yaml(
            args.config_out, interval=args.interval, timeout=args.timeout, include_asn=args.include_asn
        )
        runner = web.AppRunner(control_app(net), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, args.control[0], args.control[1])
            await site.start()
            print(
                f"lab ready dns={net.dns_address} control={args.control[0]}:{site.port} "
                f"config={args.config_out}",
                flush=True,
            )
            await stop.wait()
        finally:
            await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
