"""Preflight: everything a config promises, checked before a single scenario request.

In order: the target answers (its ``health_path`` below 500, else a TCP
connect to ``base_url``), the database accepts a connection, and every
statement of the config is rehearsed in one transaction that is rolled back:
the fixtures run with a rehearsal event, the observe queries must return the
columns the checker reads (and find the ticket type just created), the user
invariants and the cleanup statements must prepare. A failure is one line
naming the key: exit 2 for the config's SQL, exit 3 for a target or database
that is not there.
"""

from __future__ import annotations

import secrets
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx

from chaos.config import Config, template_names_in
from chaos.database import (
    ArgumentError,
    Connection,
    Database,
    Record,
    StatementError,
    error_line,
    fetch_fitted,
    redact_url,
    renumber,
)
from chaos.errors import InfrastructureError, TargetError, UsageError
from chaos.observation import PAYMENT_COLUMNS, TICKET_TYPE_COLUMNS
from chaos.target import TEMPLATE_NAMES, SqlInvariant


def check_target(config: Config, *, timeout: float = 5.0) -> None:
    """The target answers at ``target.base_url`` (its health path, or a TCP connect)."""
    target = config.target
    if target.health_path:
        url = target.base_url + target.health_path
        try:
            response = httpx.get(url, timeout=timeout, trust_env=False)
        except httpx.HTTPError as exc:
            raise TargetError(f"target.base_url {target.base_url}: {target.health_path} did not "
                              f"answer ({error_line(exc)}): start the service, or fix "
                              "target.base_url / target.health_path") from None
        if response.status_code >= 500:
            raise TargetError(f"target.base_url {target.base_url}: {target.health_path} answered "
                              f"HTTP {response.status_code}: the service is not healthy; see "
                              "its log")
        return
    parts = urlsplit(target.base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            pass
    except OSError as exc:
        raise TargetError(f"target.base_url {target.base_url}: nothing answers there "
                          f"({error_line(exc)}): start the service, or fix target.base_url") from None


def connect(config: Config) -> Database:
    """The target's database, on the config's schema (never created, never dropped)."""
    try:
        return Database(config.database_url, schema=config.database_schema)
    except InfrastructureError as exc:
        reason = str(exc).split(" (", 1)[-1].split("): ", 1)[0]
        raise InfrastructureError(f"database.url {redact_url(config.database_url)}: cannot "
                                  f"connect ({reason}): start the database, or fix "
                                  "database.url") from None


class _Rollback(Exception):
    """Ends the rehearsal's transaction once everything ran."""


def rehearse(db: Database, config: Config) -> None:
    """Run the config's statements in a transaction that is rolled back; a UsageError
    naming the key of the first that fails."""
    target = config.target
    event_key = f"chaos-preflight-{secrets.token_hex(3)}"
    current = ["fixtures.event"]

    async def run(conn: Connection) -> None:
        async def fitted(key: str, sql: str, *args: Any) -> list[Record]:
            current[0] = key
            return await fetch_fitted(conn, sql, args)

        async with conn.transaction():
            rows = await fitted("fixtures.event", target.fixture_event_sql, event_key)
            event = rows[0][0] if rows else event_key
            listed: tuple[str | None, ...] = (None,) * 4
            if target.journey != "endpoint":  # ids as the tool lists them (nothing at Stripe)
                listed = (f"prod_{event_key}", f"price_{event_key}", f"plink_{event_key}",
                          f"https://buy.stripe.test/plink_{event_key}")
            rows = await fitted("fixtures.ticket_type", target.fixture_ticket_type_sql,
                                f"{event_key}-tt1", event, "Ticket type 1", 1000, 5, *listed)
            kind = rows[0][0] if rows else f"{event_key}-tt1"
            if target.fixture_buyer_sql:
                current[0] = "fixtures.buyer"
                args = (event, kind, 1, 1, "buyer1@preflight.chaos.test", "Buyer 1",
                        listed[0], listed[1], listed[2])
                statement = await conn.prepare(renumber(target.fixture_buyer_sql, args)[0])
                returned = {a.name for a in statement.get_attributes()}
                await fitted("fixtures.buyer", target.fixture_buyer_sql, *args)
                for key, used in template_names_in(target):
                    unknown = sorted(used - set(TEMPLATE_NAMES) - returned)
                    if unknown:
                        raise UsageError(
                            f"{key} uses {{{{{unknown[0]}}}}}, which is neither a name the tool "
                            f"fills nor a column fixtures.buyer returns "
                            f"({', '.join(sorted(returned)) or 'none'}): fix one of them")
            # what follows only reads: the run executes it read-only too
            await conn.execute("set local transaction_read_only = on")
            for key, sql, columns in (
                    ("observe.tickets_per_payment", target.tickets_per_payment_sql,
                     PAYMENT_COLUMNS),
                    ("observe.tickets_per_ticket_type", target.tickets_per_ticket_type_sql,
                     TICKET_TYPE_COLUMNS)):
                current[0] = key
                statement = await conn.prepare(sql)
                names = [a.name for a in statement.get_attributes()]
                missing = [c for c in columns if c not in names]
                if missing:
                    raise UsageError(f"{key} returns columns {', '.join(names) or 'none'}, "
                                     f"without {', '.join(missing)}: it must return "
                                     f"{', '.join(columns)} (extra columns are allowed)")
                rows = await fitted(key, sql, event)
                if key.endswith("ticket_type"):
                    found = [str(r["ticket_type"]) for r in rows]
                    if found != [str(kind)]:
                        raise UsageError(
                            f"{key} found ticket types {found or 'none'} for an event whose "
                            f"one ticket type fixtures.ticket_type just created ({kind}): it "
                            "must select the ticket types of the event $1")
                    if int(rows[0]["capacity"]) != 5:
                        raise UsageError(f"{key} says capacity {rows[0]['capacity']} for a "
                                         "ticket type created with capacity 5 ($5): fix it")
            for i, invariant in enumerate(target.invariants):
                if isinstance(invariant, SqlInvariant):   # a Python one runs after examples
                    await fitted(f"invariants.{i}.sql", invariant.sql, event)
            for i, sql in enumerate(config.cleanup):
                current[0] = f"fixtures.cleanup.{i}"
                await conn.prepare(sql)
            raise _Rollback

    try:
        db.call(run)
    except _Rollback:
        return
    except StatementError as exc:
        raise UsageError(f"{current[0]}: {error_line(exc)}: fix the statement") from None
    except (ArgumentError, ValueError, TypeError, OverflowError) as exc:
        # asyncpg refuses arguments before sending them (a wrong parameter type or count)
        raise UsageError(f"{current[0]}: {error_line(exc)}: fix the statement's parameters "
                         "($1..$9 as the config format documents)") from None
