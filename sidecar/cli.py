"""`pdex-sidecar`: the command line of the product."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import uvloop
from aiohttp import web

from sidecar import logs
from sidecar.app import create_app
from sidecar.config import ConfigError, load_settings

log = logging.getLogger("sidecar")


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    logs.configure(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log.info("starting", extra={"public_url": settings.public_url, "upstream_url": settings.upstream_url,
                                "listen": f"{settings.host}:{settings.port}"})
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, access_log=None,
                loop=uvloop.new_event_loop())
    return 0


def _demo_load(args: argparse.Namespace) -> int:
    from sidecar.demo.load import load_demo_data

    settings = load_settings(args.config)
    logs.configure(settings.log_level)
    summary = asyncio.run(load_demo_data(args.upstream or settings.upstream_url))
    print(summary)
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="YAML settings file (environment variables override it)")
    parser = argparse.ArgumentParser(prog="pdex-sidecar", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the sidecar", parents=[common]).set_defaults(run=_serve)
    demo = commands.add_parser("demo", help="demo data").add_subparsers(dest="demo_command", required=True)
    load = demo.add_parser("load", help="load demo members straight into HAPI (idempotent)", parents=[common])
    load.add_argument("--upstream", help="HAPI FHIR base URL (default: SIDECAR_UPSTREAM_URL)")
    load.set_defaults(run=_demo_load)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as exc:
        print(f"pdex-sidecar: configuration error: {exc}", file=sys.stderr)
        return 2
