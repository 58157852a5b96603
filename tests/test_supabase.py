"""The Supabase example (``examples/supabase.toml``) against the schema reconstructed
from the seed's functions (``examples/supabase/schema.sql``): the preflight rehearses
every statement of the example there and passes, and the schema behaves as the
functions found it (uuid ids; a check-then-claim idempotency that fails open).
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from chaos.config import load
from chaos.database import Database
from chaos.errors import UsageError
from chaos.preflight import connect, rehearse

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "supabase.toml"
SCHEMA = ROOT / "examples" / "supabase" / "schema.sql"
SECRET = "whsec_supabase_example_test"


def example_config(server_url: str, schema: str, *overrides: str):
    """The example as a user runs it, on ``schema`` of the test server."""
    return load(EXAMPLE, [f"database.schema={schema}", *overrides],
                environ={"SUPABASE_ANON_KEY": "anon_supabase_test", "STRIPE_WEBHOOK_SECRET": SECRET,
                         "DATABASE_URL": server_url})


@pytest.fixture
def supabase_schema(db: Database, schema: str) -> str:
    """A throwaway schema holding the reconstructed seed schema."""
    db.execute(SCHEMA.read_text())
    return schema


def test_the_supabase_example_passes_its_preflight_on_the_reconstructed_schema(
        server_url: str, supabase_schema: str, db: Database):
    config = example_config(server_url, supabase_schema, "database.disposable=true")
    database = connect(config)
    try:
        rehearse(database, config)  # raises a UsageError naming the key that does not fit
    finally:
        database.close()
    # rolled back: the rehearsal's event and ticket type are gone
    assert db.fetch("select count(*)::int as n from events") == [{"n": 0}]
    assert db.fetch("select count(*)::int as n from ticket_types") == [{"n": 0}]


def test_the_preflight_names_a_statement_that_does_not_fit_the_schema(
        server_url: str, supabase_schema: str, db: Database):
    """The same rehearsal fails, naming the key, when the schema is not the example's."""
    db.execute("alter table ticket_types rename column total_inventory to capacity")
    config = example_config(server_url, supabase_schema)
    database = connect(config)
    try:
        with pytest.raises(UsageError, match=r"^fixtures\.ticket_type: column \"total_inventory\""):
            rehearse(database, config)
    finally:
        database.close()


def test_the_schema_ids_are_uuid_and_the_rpcs_behave_as_the_functions_found_them(db: Database,
                                                                                supabase_schema):
    [event] = db.fetch("insert into events (name) values ('night') returning id")
    [tt] = db.fetch("insert into ticket_types (event_id, name, price, total_inventory) "
                    "values ($1, 'GA', 25.00, 10) returning id", event["id"])
    assert type(tt["id"]).__name__ == "UUID"
    assert db.fetch("select get_current_tier_price($1) as p", tt["id"])[0]["p"] == 25
    first = db.fetch("select * from check_webhook_idempotency('evt_1', 'stripe')")
    again = db.fetch("select * from check_webhook_idempotency('evt_1', 'stripe')")
    assert first == [{"is_duplicate": False, "previous_status": None}]
    assert again == [{"is_duplicate": True, "previous_status": "processing"}]
    db.execute("select update_webhook_idempotency('evt_1', 'stripe', 'processed')")
    assert db.fetch("select status from webhook_idempotency") == [{"status": "processed"}]
    # nothing in the schema stops a second ticket set for one order
    [order] = db.fetch("insert into orders (event_id, customer_email) values ($1, 'a@b.test') "
                       "returning id", event["id"])
    for _ in range(2):
        db.execute("insert into tickets (order_id, ticket_type_id) values ($1, $2)",
                   order["id"], tt["id"])
    assert db.fetch("select count(*)::int as n from tickets") == [{"n": 2}]


def test_two_concurrent_claims_of_one_event_meet_a_duplicate_key(server_url: str,
                                                                 supabase_schema: str):
    """The check-then-claim race the seed's webhook fails open on: two transactions both
    find nothing; the second insert waits for the first and then hits the primary key."""
    import asyncio

    async def race() -> BaseException | None:
        one = await asyncpg.connect(server_url, server_settings={"search_path": supabase_schema})
        two = await asyncpg.connect(server_url, server_settings={"search_path": supabase_schema})
        watcher = await asyncpg.connect(server_url)
        try:
            t1, t2 = one.transaction(), two.transaction()
            await t1.start()
            await t2.start()
            check = "select * from webhook_idempotency where event_id = 'evt_race'"
            assert await one.fetch(check) == [] and await two.fetch(check) == []
            await one.fetch("select * from check_webhook_idempotency('evt_race', 'stripe')")
            second = asyncio.ensure_future(
                two.fetch("select * from check_webhook_idempotency('evt_race', 'stripe')"))
            # the second claim has found nothing and waits on the first one's row
            deadline = asyncio.get_running_loop().time() + 10
            while not await watcher.fetchval(
                    "select wait_event_type = 'Lock' from pg_stat_activity where pid = $1",
                    two.get_server_pid()):
                assert asyncio.get_running_loop().time() < deadline, "the claim never waited"
                await asyncio.sleep(0.01)
            await t1.commit()
            try:
                await second
            except asyncpg.UniqueViolationError as exc:
                return exc
            finally:
                await t2.rollback()
            return None
        finally:
            for conn in (one, two, watcher):
                await conn.close()

    assert isinstance(asyncio.run(race()), asyncpg.UniqueViolationError)
