"""pretix as the chaos tool's target: set it up, serve it, tear it down.

Run with the python of pretix's own venv (``build/pretix-venv``); ``run.py``
does, in order:

- ``setup``: create the database of its own, run pretix's migrations, and
  create what an organizer would in pretix's back office: the organizer
  ``chaos``, the event ``chaos/tickets`` with the Stripe plugin switched on
  (card payments, ``sk_test_`` secret and ``pk_test_`` publishable keys, test
  endpoint) and the templates the tool's fixtures copy per example: a product,
  a quota of 0, and an order (canceled, so it holds no quota) with one
  position and a created Stripe payment
  (``examples/pretix/chaos.toml`` copies their rows with
  ``jsonb_populate_record``, so the fixtures never list pretix's many columns).
- ``serve``: pretix's WSGI application under gunicorn on loopback (one
  process, ``THREADS`` threads: concurrent webhooks meet in the database).
- ``summary``: one line of what pretix did with the tool's orders.
- ``drop``: drop the database again.

pretix itself is unchanged: ``pretix_chaos_settings`` points its Stripe client
at the fake Stripe; everything else is pretix's own configuration
(``examples/pretix/pretix.cfg`` and ``PRETIX_*`` variables).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
ORGANIZER, EVENT = "chaos", "tickets"
#: Request threads of the web server (and so pretix's database connections at most).
THREADS = 12
#: What the template rows are called: the fixtures find them by it.
TEMPLATE = "chaos-template"
#: Only databases with this prefix are made and dropped: nothing else is touched.
PREFIX = "pretix_chaos_"


def host_of(database_url: str) -> str:
    """The server's host, or its socket folder (``?host=/tmp/...``, the embedded server's)."""
    url = urlsplit(database_url)
    return url.hostname or parse_qs(url.query).get("host", ["127.0.0.1"])[0]


def database_name(database_url: str) -> str:
    name = urlsplit(database_url).path.strip("/")
    if not name.startswith(PREFIX):
        raise SystemExit(f"the database {name!r} is not pretix's ({PREFIX}...): name one of "
                         "its own in --database-url")
    return name


def configure(database_url: str, data_dir: Path, stripe_api_base: str, site_url: str) -> None:
    """pretix's configuration, as environment variables pretix reads (and Django's settings)."""
    url = urlsplit(database_url)
    if url.scheme not in ("postgresql", "postgres") or not url.path.strip("/"):
        raise SystemExit(f"--database-url {database_url!r} must be postgresql://HOST:PORT/NAME")
    database_name(database_url)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update({
        "PRETIX_CONFIG_FILE": str(HERE / "pretix.cfg"),
        "PRETIX_DATABASE_NAME": url.path.strip("/"),
        "PRETIX_DATABASE_HOST": host_of(database_url),
        "PRETIX_DATABASE_PORT": str(url.port or 5432),
        "PRETIX_DATABASE_USER": url.username or os.environ.get("USER", "postgres"),
        "PRETIX_DATABASE_PASSWORD": url.password or "",
        "PRETIX_PRETIX_DATADIR": str(data_dir),
        "PRETIX_PRETIX_URL": site_url,
        "PRETIX_CHAOS_STRIPE_API_BASE": stripe_api_base,
        "DJANGO_SETTINGS_MODULE": "pretix_chaos_settings",
        "PYTHONPATH": os.pathsep.join([str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]),
    })
    sys.path.insert(0, str(HERE))


def _admin_connection(database_url: str, dbname: str = "postgres"):  # type: ignore[no-untyped-def]
    """A connection to the server's ``postgres`` database (to create or drop ours), or
    to ``dbname``."""
    import psycopg2

    url = urlsplit(database_url)
    try:
        conn = psycopg2.connect(host=host_of(database_url), port=url.port or 5432,
                                user=url.username or os.environ.get("USER", "postgres"),
                                password=url.password or None, dbname=dbname,
                                connect_timeout=10)
    except psycopg2.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SystemExit(f"PostgreSQL at {host_of(database_url)}:{url.port or 5432} refused pretix's "
                         f"set-up ({first}): check --database-url") from None
    conn.autocommit = True
    return conn


def create_database(database_url: str) -> None:
    name = database_name(database_url)
    conn = _admin_connection(database_url)
    with conn.cursor() as cur:
        cur.execute("select 1 from pg_database where datname = %s", (name,))
        if cur.fetchone():
            raise SystemExit(f"the database {name} exists already: drop it "
                             f"(shop.py drop) or name another one")
        cur.execute(f'create database "{name}"')
    conn.close()


def drop_database(database_url: str) -> None:
    name = database_name(database_url)
    conn = _admin_connection(database_url)
    with conn.cursor() as cur:
        cur.execute(f'drop database if exists "{name}" with (force)')
    conn.close()


#: What pretix did during the run, counted over the tool's orders (not the templates).
SUMMARY = """
select (select count(*) from pretixbase_order where comment like 'chaos-%'),
       (select count(*) from pretixbase_order where comment like 'chaos-%' and status = 'p'),
       (select count(*) from pretixbase_orderpayment p join pretixbase_order o on o.id = p.order_id
         where o.comment like 'chaos-%' and p.state = 'confirmed'),
       (select count(*) from pretixbase_orderrefund r join pretixbase_order o on o.id = r.order_id
         where o.comment like 'chaos-%' and r.source = 'external')
"""


def summary(database_url: str) -> str:
    """One line: the tool's orders in pretix, paid, confirmed payments, external refunds."""
    conn = _admin_connection(database_url, dbname=urlsplit(database_url).path.strip("/"))
    with conn.cursor() as cur:
        cur.execute(SUMMARY)
        orders, paid, confirmed, refunds = cur.fetchone()
    conn.close()
    return (f"pretix rows: {orders} orders ({paid} paid), {confirmed} confirmed Stripe "
            f"payments, {refunds} external refunds flagged for an admin")


def create_shop(secret_key: str, publishable_key: str) -> None:
    """The organizer, the event with Stripe switched on, and the template rows."""
    import django

    django.setup()
    from datetime import timedelta
    from decimal import Decimal

    from django.db import transaction
    from django.utils.timezone import now
    from django_scopes import scopes_disabled
    from pretix.base.models import Event, Order, OrderPayment, Organizer

    with scopes_disabled(), transaction.atomic():
        organizer = Organizer.objects.create(name="Chaos", slug=ORGANIZER)
        event = Event.objects.create(
            organizer=organizer, name="Chaos tickets", slug=EVENT, currency="EUR",
            date_from=now(), live=True, plugins="pretix.plugins.stripe,pretix.plugins.banktransfer")
        for key, value in {
            "payment_stripe__enabled": True, "payment_stripe_method_card": True,
            "payment_stripe_endpoint": "test", "payment_stripe_secret_key": secret_key,
            "payment_stripe_publishable_key": publishable_key,
        }.items():
            event.settings.set(key, value)
        item = event.items.create(name="Ticket", internal_name=TEMPLATE,
                                  default_price=Decimal("25.00"), admission=True)
        quota = event.quotas.create(name=TEMPLATE, size=0)
        quota.items.add(item)
        order = Order.objects.create(
            event=event, status=Order.STATUS_CANCELED, email="template@example.test",
            locale="en", total=Decimal("25.00"), comment=TEMPLATE,
            expires=now() + timedelta(days=30),
            sales_channel=organizer.sales_channels.get(identifier="web"))
        order.positions.create(item=item, price=Decimal("25.00"), positionid=1)
        order.payments.create(provider="stripe", amount=Decimal("25.00"),
                              state=OrderPayment.PAYMENT_STATE_CREATED)
        order.create_transactions()
        print(f"pretix shop: organizer {organizer.slug} (id {organizer.pk}), event "
              f"{event.slug} (id {event.pk}), templates: item {item.pk}, quota {quota.pk}, "
              f"order {order.code}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shop.py", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("setup", "serve", "summary", "drop"))
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--data-dir", type=Path, default=Path("build/pretix-data"))
    parser.add_argument("--stripe-api-base", default="http://127.0.0.1:12117")
    parser.add_argument("--port", type=int, default=8345)
    args = parser.parse_args(argv)
    site = f"http://127.0.0.1:{args.port}"
    configure(args.database_url, args.data_dir.resolve(), args.stripe_api_base, site)
    if args.step == "drop":
        drop_database(args.database_url)
        return 0
    if args.step == "summary":
        print(summary(args.database_url), flush=True)
        return 0
    from django.core.management import call_command

    if args.step == "setup":
        started = time.monotonic()
        create_database(args.database_url)
        try:
            import django

            django.setup()
            call_command("migrate", interactive=False, verbosity=0)
            migrated = time.monotonic()
            create_shop(os.environ.get("PRETIX_CHAOS_STRIPE_SECRET_KEY", "sk_test_pretix_chaos"),
                        os.environ.get("PRETIX_CHAOS_STRIPE_PUBLISHABLE_KEY",
                                       "pk_test_pretix_chaos"))
        except BaseException:
            from django.db import connections

            connections.close_all()
            drop_database(args.database_url)   # nothing half-made is left behind
            raise
        print(f"pretix set-up: migrations {migrated - started:.1f} s, shop "
              f"{time.monotonic() - migrated:.1f} s", flush=True)
        return 0
    # gunicorn, as pretix's own deployment guide runs it; one process of THREADS threads:
    # concurrent webhooks meet in the database, and pretix keeps one connection per thread
    # (CONN_MAX_AGE), so the shop never holds more than THREADS of the server's connections.
    print(f"pretix listening on {site}", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "pretix.wsgi",
                              "--bind", f"127.0.0.1:{args.port}", "--workers", "1",
                              "--worker-class", "gthread", "--threads", str(THREADS),
                              "--timeout", "60", "--graceful-timeout", "5",
                              "--error-logfile", "-", "--log-level", "warning"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
