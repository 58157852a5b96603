"""``python -m tests.linkshop --port 0 --database-url URL --stripe-api-base URL``

Prints ``listening on http://127.0.0.1:PORT`` once it serves, and runs until
SIGTERM/SIGINT. Secrets come from the environment: ``LINKSHOP_WEBHOOK_SECRET``
(whsec_...), ``LINKSHOP_STRIPE_KEY`` (sk_test_...). Bugs: ``--bug no-dedup``
or ``LINKSHOP_BUGS=no-dedup``. Bad arguments: one line, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from typing import NoReturn

import uvicorn

from tests.linkshop.app import BUGS, LinkShop


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see: python -m tests.linkshop --help)")


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"linkshop: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(prog="python -m tests.linkshop", description=__doc__.split("\n\n")[1])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free)")
    parser.add_argument("--database-url", default=os.environ.get("LINKSHOP_DATABASE_URL"),
                        help="postgresql://... (or LINKSHOP_DATABASE_URL)")
    parser.add_argument("--schema", default="linkshop", help="schema it creates and uses")
    parser.add_argument("--stripe-api-base", default="http://127.0.0.1:12111",
                        help="where its Stripe client sends API calls (the fake Stripe)")
    parser.add_argument("--bug", action="append", default=[], choices=BUGS,
                        help="switch a bug on (repeatable)")
    args = parser.parse_args(argv)
    env_bugs = [b.strip() for b in os.environ.get("LINKSHOP_BUGS", "").split(",") if b.strip()]
    unknown = [b for b in env_bugs if b not in BUGS]
    if unknown:
        fail(f"LINKSHOP_BUGS names unknown bug {unknown[0]!r}: use {', '.join(BUGS)}")
    args.bug = frozenset(args.bug) | frozenset(env_bugs)
    if not args.database_url or not args.database_url.startswith(("postgres://", "postgresql://")):
        fail("--database-url (or LINKSHOP_DATABASE_URL) must be a postgresql:// URL")
    if not args.schema.replace("_", "").isalnum():
        fail(f"--schema {args.schema!r} must be letters, digits and _")
    if not 0 <= args.port <= 65535:
        fail(f"--port {args.port} is not a TCP port: use 0..65535")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    secret = os.environ.get("LINKSHOP_WEBHOOK_SECRET", "")
    key = os.environ.get("LINKSHOP_STRIPE_KEY", "sk_test_linkshop")
    if not secret.startswith("whsec_"):
        fail("LINKSHOP_WEBHOOK_SECRET must be set to the webhook secret (whsec_...)")
    if not key.startswith("sk_test_"):
        fail("LINKSHOP_STRIPE_KEY must be a test key (sk_test_...): never a live one")
    shop = LinkShop(database_url=args.database_url, schema=args.schema,
                    stripe_api_base=args.stripe_api_base.rstrip("/"), stripe_api_key=key,
                    webhook_secret=secret, bugs=args.bug)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", args.port))
    except OSError as exc:
        fail(f"port {args.port} is not available ({exc.strerror}): choose another, or 0")
    server = uvicorn.Server(uvicorn.Config(shop.app(), log_level="warning", access_log=False,
                                           lifespan="on", backlog=4096))

    async def serve() -> None:  # uvicorn's own serve(), with the line a test waits for
        config = server.config
        config.load()
        server.lifespan = config.lifespan_class(config)
        with server.capture_signals():
            await server.startup(sockets=[sock])  # exits 3 when the start-up fails
            print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
            await server.main_loop()
            await server.shutdown(sockets=[sock])

    asyncio.run(serve())


if __name__ == "__main__":
    main()
