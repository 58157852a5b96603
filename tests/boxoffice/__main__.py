"""``python -m tests.boxoffice --port 0 --database-url URL --stripe-api-base URL``

Prints ``listening on http://127.0.0.1:PORT`` once it serves, and runs until
SIGTERM/SIGINT. Secrets come from the environment: ``BOX_OFFICE_KEY`` (the
``X-Box-Office-Key`` checkout key), ``BOX_OFFICE_WEBHOOK_SECRET`` (whsec_...),
``BOX_OFFICE_STRIPE_KEY`` (sk_test_...). Bugs: ``--bug NAME`` (repeatable) or
``BOX_OFFICE_BUGS=double-admit,oversell`` (or ``answer-500``). Bad arguments: one line, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from typing import NoReturn

from aiohttp import web

from tests.boxoffice.app import BUGS, BoxOffice


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see: python -m tests.boxoffice --help)")


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"boxoffice: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(prog="python -m tests.boxoffice", description=__doc__.split("\n\n")[1])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free)")
    parser.add_argument("--database-url", default=os.environ.get("BOX_OFFICE_DATABASE_URL"),
                        help="postgresql://... (or BOX_OFFICE_DATABASE_URL)")
    parser.add_argument("--schema", default="boxoffice", help="schema it creates and uses")
    parser.add_argument("--stripe-api-base",
                        default=os.environ.get("BOX_OFFICE_STRIPE_API_BASE", "http://127.0.0.1:12111"),
                        help="where its Stripe client sends API calls (the fake Stripe)")
    parser.add_argument("--bug", action="append", default=[], choices=BUGS,
                        help="switch a bug on (repeatable)")
    parser.add_argument("--metadata-key",
                        default=os.environ.get("BOX_OFFICE_METADATA_KEY", "event_id"),
                        help="the Checkout Session metadata key that carries the show id")
    parser.add_argument("--signatures", choices=("verify", "refetch"),
                        default=os.environ.get("BOX_OFFICE_SIGNATURES", "verify"),
                        help="verify Stripe-Signature, or re-fetch every object from Stripe")
    args = parser.parse_args(argv)
    env_bugs = [b.strip() for b in os.environ.get("BOX_OFFICE_BUGS", "").split(",") if b.strip()]
    unknown = [b for b in env_bugs if b not in BUGS]
    if unknown:
        fail(f"BOX_OFFICE_BUGS names unknown bug {unknown[0]!r}: use {', '.join(BUGS)}")
    args.bug = frozenset(args.bug) | frozenset(env_bugs)
    if not args.database_url or not args.database_url.startswith(("postgres://", "postgresql://")):
        fail("--database-url (or BOX_OFFICE_DATABASE_URL) must be a postgresql:// URL")
    if not args.schema.replace("_", "").isalnum():
        fail(f"--schema {args.schema!r} must be letters, digits and _")
    if args.signatures not in ("verify", "refetch"):
        fail(f"BOX_OFFICE_SIGNATURES {args.signatures!r} is not verify or refetch")
    if not args.metadata_key.replace("_", "").isalnum():
        fail(f"--metadata-key {args.metadata_key!r} must be letters, digits and _")
    if not 0 <= args.port <= 65535:
        fail(f"--port {args.port} is not a TCP port: use 0..65535")
    return args


def secrets_from_env() -> dict[str, str]:
    found = {
        "api_key": os.environ.get("BOX_OFFICE_KEY", ""),
        "webhook_secret": os.environ.get("BOX_OFFICE_WEBHOOK_SECRET", ""),
        "stripe_api_key": os.environ.get("BOX_OFFICE_STRIPE_KEY", "sk_test_boxoffice"),
    }
    if not found["api_key"]:
        fail("BOX_OFFICE_KEY is not set: export the checkout key clients send as X-Box-Office-Key")
    if not found["webhook_secret"].startswith("whsec_"):
        fail("BOX_OFFICE_WEBHOOK_SECRET must be set to the webhook secret (whsec_...)")
    if not found["stripe_api_key"].startswith("sk_test_"):
        fail("BOX_OFFICE_STRIPE_KEY must be a test key (sk_test_...): never a live one")
    return found


async def serve(office: BoxOffice, port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        fail(f"port {port} is not available ({exc.strerror}): choose another, or 0")
    runner = web.AppRunner(office.app(), access_log=None)
    await runner.setup()  # runs the app's start-up: pool, schema, Stripe client
    site = web.SockSite(runner, sock, backlog=4096)
    await site.start()
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    found = secrets_from_env()
    office = BoxOffice(database_url=args.database_url, schema=args.schema,
                       stripe_api_base=args.stripe_api_base.rstrip("/"), bugs=args.bug,
                       metadata_key=args.metadata_key, signatures=args.signatures,
                       api_key=found["api_key"], webhook_secret=found["webhook_secret"],
                       stripe_api_key=found["stripe_api_key"])
    try:
        asyncio.run(serve(office, args.port))
    except Exception as exc:  # the database or the socket: one line, exit 3
        fail(f"cannot start: {type(exc).__name__}: {exc}", code=3)


if __name__ == "__main__":
    main()
