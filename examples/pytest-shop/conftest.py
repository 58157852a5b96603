"""The shop's test fixtures: its own PostgreSQL schema, the shop running on loopback
against payment-chaos' fake Stripe (the ``fake_stripe_server`` fixture of its pytest plugin),
and ``chaos_config``: the shop as the plugin's ``chaos_search`` and ``chaos_target`` see it.

Needs ``DATABASE_URL`` (any PostgreSQL server; the tests create a schema of their own
and drop it at the end). ``SHOP_BUG`` passes through to the shop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import uvicorn
from shop import create_app

import chaos

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Database:
    url: str
    schema: str

    def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """The rows of one query in the shop's schema, as dicts."""
        async def fetch() -> list[dict[str, Any]]:
            con = await asyncpg.connect(self.url, server_settings={"search_path": self.schema})
            try:
                return [dict(r) for r in await con.fetch(sql, *args)]
            finally:
                await con.close()
        return asyncio.run(fetch())


@pytest.fixture(scope="session")
def database() -> Iterator[Database]:
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.exit("set DATABASE_URL to a PostgreSQL server: the shop's tests create and drop "
                    "a schema of their own there", returncode=2)
    db = Database(url, f"shop_{secrets.token_hex(4)}")
    db.rows(f"create schema {db.schema}")
    try:
        yield db
    finally:
        db.rows(f"drop schema {db.schema} cascade")


@dataclass
class Shop:
    url: str
    db: Database


@pytest.fixture(scope="session")
def shop(database: Database, fake_stripe_server: Any) -> Iterator[Shop]:
    """The shop on a free loopback port, its Stripe client pointed at the fake Stripe."""
    app = create_app({
        "DATABASE_URL": database.url, "SHOP_SCHEMA": database.schema,
        "STRIPE_API_BASE": fake_stripe_server.api_base,
        "STRIPE_SECRET_KEY": fake_stripe_server.api_key,
        "STRIPE_WEBHOOK_SECRET": fake_stripe_server.webhook_secret,
        "SHOP_BUG": os.environ.get("SHOP_BUG", ""),
    })
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the shop did not start within 30 s", pytrace=False)
        time.sleep(0.02)
    try:
        yield Shop(url=f"http://127.0.0.1:{sock.getsockname()[1]}", db=database)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="session")
def chaos_config(shop: Shop, fake_stripe_server: Any) -> chaos.Config:
    """chaos.toml with what is only known now: the shop's URL, the webhook secret it
    verifies with (the fake Stripe's), its database schema."""
    return chaos.load_config(os.path.join(HERE, "chaos.toml"), overrides=[
        f"target.base_url={shop.url}",
        f"target.webhook.secret={fake_stripe_server.webhook_secret}",
        f"database.url={shop.db.url}", f"database.schema={shop.db.schema}"])
