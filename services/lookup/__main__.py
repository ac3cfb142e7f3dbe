"""``python -m services.lookup --registry PATH``: run the mock lookup in this process.

One uvicorn worker, log level warning, no access log (paths under /admin/registry carry
raw ID numbers). The socket is bound here, before uvicorn starts, so that a busy port is
a one-line message and ``--port 0`` prints the port actually chosen.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Sequence
from typing import Final, get_args

import uvicorn
from pydantic import ValidationError

from services.lookup.app import FaultConfig, FaultMode, create_app
from services.lookup.registry import Registry, RegistryError

EXIT_USAGE: Final = 2
# A "timeout" fault parks requests for 30 s; shutdown should not wait for them.
GRACEFUL_SHUTDOWN_S: Final = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m services.lookup", description="simgate mock national ID lookup service"
    )
    p.add_argument("--registry", required=True, help="registry JSON file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    p.add_argument("--fault-mode", choices=get_args(FaultMode), default="none")
    p.add_argument("--failure-rate", type=float, default=1.0)
    p.add_argument("--latency-ms", type=int, default=0)
    p.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="warning",
        help="info logs every verify (ID numbers masked)",
    )
    return p


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        registry = Registry.load(args.registry)
    except RegistryError as exc:
        print(f"lookup: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_USAGE
    try:
        faults = FaultConfig(
            mode=args.fault_mode, failure_rate=args.failure_rate, latency_ms=args.latency_ms
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"lookup: invalid fault options: {problems}", file=sys.stderr)  # noqa: T201
        return EXIT_USAGE
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        print(f"lookup: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)  # noqa: T201
        return 1

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = uvicorn.Config(
        create_app(registry, faults),
        log_level=args.log_level,
        access_log=False,
        workers=1,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    port = sock.getsockname()[1]
    people = "1 person" if len(registry) == 1 else f"{len(registry)} people"
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(  # noqa: T201
        f"lookup listening on http://{host}:{port} ({people} loaded, faults: {faults.mode})",
        flush=True,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
