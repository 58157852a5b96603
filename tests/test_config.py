"""The config file: loading (TOML, [tool.chaos], ${ENV}, --set), strict
validation, the safety refusals and the preflight, each refusal one line
naming the key, before a single request reaches the target."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos import cli
from chaos.config import load
from chaos.database import Database
from chaos.errors import UsageError
from chaos.invariants import INVARIANTS
from chaos.promises import Promises, checked, judged
from chaos.reference.schema import ddl
from tests.helpers import run_tool

SECRET = "whsec_" + "ab12" * 8

MINIMAL = f"""
[target]
base_url = "http://127.0.0.1:{{port}}"
[target.webhook]
secret = "{SECRET}"
[database]
url = "{{database}}"
"""


class Listener:
    """A TCP server on loopback that accepts connections and records every byte
    sent to it: the preflight may connect, but no request may arrive."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    self.received += conn.recv(4096)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(tmp_path: Path, text: str, name: str = "chaos.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def minimal(port: int = 8000, database: str = "postgresql://127.0.0.1:5432/test") -> str:
    return MINIMAL.replace("{port}", str(port)).replace("{database}", database)


def error_line(capsys, code: int, argv: list[str]) -> str:
    """Run the CLI; the exit code, and its single stderr line, without a traceback."""
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


def run_config(tmp_path: Path, text: str, *extra: str) -> list[str]:
    path = write(tmp_path, text)
    return ["--config", str(path), *extra, "--report", str(tmp_path / "r.json"),
            "--corpus", str(tmp_path / "corpus"), "--examples", "1"]


# -- bad configs: exit 2, one line naming the key -------------------------------------------

BAD = [
    ("unknown-section", "[targte]\nname = 'x'\n", "unknown key targte (did you mean target?)"),
    ("unknown-nested", "[target.checkout]\nbodyy = {}\n",
     "unknown key target.checkout.bodyy (did you mean target.checkout.body?)"),
    ("port-type", "[stripe]\nport = 'abc'\n", "stripe.port must be an integer, not a string"),
    ("bool-type", "[database]\ndisposable = 'yes'\n", "database.disposable must be true or false"),
    ("header-type", "[target.checkout]\nheaders = { apikey = 1 }\n",
     "target.checkout.headers must be a table of strings"),
    ("table-type", "fixtures = 'insert'\n", "fixtures must be a table"),
    ("port-range", "[stripe]\nport = 70000\n", "stripe.port 70000 is outside 1..65535"),
    ("bad-secret", "[target.webhook]\nold_secret = 'not-a-secret'\n",
     "target.webhook.old_secret must be a webhook signing secret (whsec_...)"),
    ("body-name", "[target.checkout]\nbody = { show = '{{show_id}}' }\n",
     "target.checkout.body uses {{show_id}}"),
    ("method", "[target.checkout]\nmethod = 'DELETE'\n", "target.checkout.method 'DELETE'"),
    ("path", "[target.webhook]\npath = 'hooks'\n", "target.webhook.path 'hooks' must be a path"),
    ("invariant-sql", "[[invariants]]\nname = 'mine'\n", "invariants.0.sql is required"),
    ("invariant-clash", "[[invariants]]\nname = 'no-lost-payment'\nsql = 'select 1'\n",
     "invariants.0.name 'no-lost-payment' is already an invariant's name"),
    ("schema-name", "[database]\nschema = 'bad name'\n", "database.schema 'bad name'"),
    ("journey", "[target.checkout]\njourney = 'browser'\n",
     "target.checkout.journey 'browser' is not one of endpoint, stripe-session, payment-link, "
     "payment-intent"),
    ("intent-off-journey", "[target.checkout]\npayment_intent = { amount = '{{total}}' }\n",
     'target.checkout.payment_intent is for journey = "payment-intent", and '
     'target.checkout.journey is "endpoint"'),
    ("intent-not-a-table", "[target.checkout]\njourney = 'payment-intent'\npayment_intent = 5\n",
     "target.checkout.payment_intent must be a table"),
    ("intent-name", "[target.checkout]\njourney = 'payment-intent'\n"
     "payment_intent = { amount = '{{price}}' }\n",
     "target.checkout.payment_intent uses {{price}}, which is not a name the tool fills"),
    ("session-off-journey", "[target.checkout]\nsession = { customer_email = '{{email}}' }\n",
     'target.checkout.session is for journey = "stripe-session", and target.checkout.journey '
     'is "endpoint"'),
    ("session-name", "[target.checkout]\njourney = 'stripe-session'\n"
     "session = { client_reference_id = '{{cart}}' }\n",
     "target.checkout.session uses {{cart}}, which is not a name the tool fills"),
    ("link-metadata-name", "[target.checkout]\njourney = 'payment-link'\n"
     "payment_link = { metadata = { who = '{{email}}' } }\n",
     "target.checkout.payment_link.metadata uses {{email}}: the link is listed before any buyer"),
    ("webhook-path-name", "[target.webhook]\npath = '/{{show}}/hook'\n",
     "target.webhook.path uses {{show}}"),
    ("event-type", "[target.webhook]\nevents = ['Checkout Completed']\n",
     "target.webhook.events.0 'Checkout Completed' is not an event type"),
    ("signatures", "[promises]\nsignatures = 'trust'\n",
     "promises.signatures 'trust' is not one of verify, refetch"),
    ("refunds", "[promises]\nrefunds = 'ignore'\n", "promises.refunds 'ignore' is not one of"),
    ("confirms", "[promises]\nconfirms = ['charge.captured']\n",
     "promises.confirms ['charge.captured'] must list the event types"),
    ("confirms-empty", "[promises]\nconfirms = []\n", "promises.confirms [] must list"),
    ("metadata-key", "[target.stripe]\nsession_metadata_key = ''\n",
     "target.stripe.session_metadata_key is empty"),
]


@pytest.mark.parametrize("name, extra, expected", BAD, ids=[b[0] for b in BAD])
def test_a_bad_config_is_one_line_naming_the_key(tmp_path: Path, capsys, name: str, extra: str,
                                                 expected: str, listener: Listener):
    text = _merge(minimal(listener.port), extra)
    line = error_line(capsys, 2, run_config(tmp_path, text))
    assert expected in line, line
    assert listener.received == b""


def _merge(base: str, extra: str) -> str:
    """``extra``'s tables merged into ``base`` (a table both have gets extra's keys)."""
    data = tomllib.loads(base)
    for key, value in tomllib.loads(extra).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            for k, v in value.items():
                if isinstance(v, dict) and isinstance(data[key].get(k), dict):
                    data[key][k].update(v)
                else:
                    data[key][k] = v
        else:
            data[key] = value
    return _dumps(data)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}"
                                for k, v in value.items()) + " }"
    raise TypeError(value)


def _dumps(data: dict) -> str:
    """TOML for the test's own documents: top-level scalars, then one table per section."""
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in data.items()
             if not isinstance(v, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{key}]")
            lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("missing, key", [
    ("base_url = ", "target.base_url"),
    ("secret = ", "target.webhook.secret"),
    ("url = ", "database.url"),
])
def test_a_missing_required_key_is_named(tmp_path: Path, capsys, missing: str, key: str):
    text = "\n".join(line for line in minimal().splitlines() if not line.startswith(missing))
    line = error_line(capsys, 2, run_config(tmp_path, text))
    assert f"{key} is required" in line and f"--set {key}=" in line


def test_a_missing_environment_variable_names_the_key_and_the_variable(tmp_path: Path, capsys,
                                                                        monkeypatch):
    monkeypatch.delenv("CHAOS_TEST_NOT_SET", raising=False)
    text = minimal().replace('secret = "' + SECRET + '"', 'secret = "${CHAOS_TEST_NOT_SET}"')
    line = error_line(capsys, 2, run_config(tmp_path, text))
    assert "target.webhook.secret: environment variable CHAOS_TEST_NOT_SET is not set" in line


def test_a_typo_d_key_is_named_before_an_unset_environment_variable(tmp_path: Path, capsys,
                                                                     monkeypatch):
    # the order a user fixes them in: the typo may be the reason the variable looks unused
    monkeypatch.delenv("CHAOS_TEST_NOT_SET", raising=False)
    text = minimal().replace('secret = "' + SECRET + '"', 'secret = "${CHAOS_TEST_NOT_SET}"')
    text = text.replace("[database]", "[database]\ndisposible = true")
    line = error_line(capsys, 2, run_config(tmp_path, text))
    assert "unknown key database.disposible (did you mean database.disposable?)" in line


def test_invalid_toml_and_a_missing_file_are_one_line(tmp_path: Path, capsys):
    line = error_line(capsys, 2, run_config(tmp_path, "[target\nbase_url = 1\n"))
    assert "invalid TOML" in line and "chaos.toml" in line
    line = error_line(capsys, 2, ["--config", str(tmp_path / "nope.toml")])
    assert "nope.toml: no such file" in line


def test_a_pyproject_without_tool_chaos_is_refused(tmp_path: Path, capsys):
    path = write(tmp_path, "[project]\nname = 'x'\n", "pyproject.toml")
    line = error_line(capsys, 2, ["--config", str(path)])
    assert "no [tool.chaos] table" in line


def test_bug_and_reference_options_are_refused_with_a_config(tmp_path: Path, capsys):
    line = error_line(capsys, 2, run_config(tmp_path, minimal(), "--bug", "no-dedup"))
    assert "--bug" in line and "drop --bug" in line
    line = error_line(capsys, 2, run_config(tmp_path, minimal(), "--stripe-port", "9999"))
    assert "--set stripe.port=N" in line
    line = error_line(capsys, 2, run_config(tmp_path, minimal(), "--database-url",
                                            "postgresql://127.0.0.1:5432/elsewhere"))
    assert "--set database.url=URL" in line
    line = error_line(capsys, 2, run_config(tmp_path, minimal(), "--set", "no-equals-sign"))
    assert "--set 'no-equals-sign'" in line and "dotted.key=VALUE" in line
    line = error_line(capsys, 2, ["--set", "stripe.port=1", "--report", str(tmp_path / "r.json")])
    assert "give the config with --config" in line


def test_a_bad_config_from_the_command_line_has_no_traceback(tmp_path: Path):
    path = write(tmp_path, _merge(minimal(), "[stripe]\nport = 'abc'\n"))
    result = run_tool("--config", str(path), cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("payment-chaos: error: stripe.port") and "Traceback" not in result.stderr


# -- safety ----------------------------------------------------------------------------------

def test_live_stripe_keys_are_refused_wherever_they_are(tmp_path: Path, capsys):
    live = "sk_live_" + "x" * 24
    line = error_line(capsys, 2, run_config(tmp_path, _merge(minimal(),
                                                             f"[stripe]\napi_key = '{live}'\n")))
    assert "stripe.api_key" in line and "live" in line and live not in line
    text = _merge(minimal(), f"[target.checkout]\nheaders = {{ authorization = 'Bearer {live}' }}\n")
    line = error_line(capsys, 2, run_config(tmp_path, text))
    assert "target.checkout.headers.authorization" in line and live not in line


def test_live_stripe_is_never_a_target(tmp_path: Path, capsys):
    text = minimal().replace("http://127.0.0.1:8000", "https://api.stripe.com")
    line = error_line(capsys, 2, run_config(tmp_path, text))
    assert "target.base_url" in line and "live Stripe" in line
    text = _merge(minimal(), "[target]\nallow_hosts = ['api.stripe.com']\n")
    line = error_line(capsys, 2, run_config(tmp_path, text))
    assert "live Stripe" in line


def test_hosts_off_loopback_only_when_listed_in_allow_hosts(tmp_path: Path, capsys):
    text = minimal().replace("127.0.0.1:8000", "shop.internal:8000")
    line = error_line(capsys, 2, run_config(tmp_path, text))
    assert "target.base_url shop.internal is not on loopback" in line and "allow_hosts" in line
    text = minimal(database="postgresql://db.internal:5432/shop")
    line = error_line(capsys, 2, run_config(tmp_path, text))
    assert "database.url host db.internal is not on loopback" in line
    # listed: the config is valid (and the run would go there)
    allowed = _merge(text.replace("127.0.0.1:8000", "shop.internal:8000"),
                     "[target]\nallow_hosts = ['shop.internal', 'db.internal']\n")
    config = load(write(tmp_path, allowed))
    assert config.target.base_url == "http://shop.internal:8000"
    assert config.allow_hosts == ("shop.internal", "db.internal")


def test_statements_that_delete_need_a_disposable_database(tmp_path: Path, capsys):
    text = _merge(minimal(), "[fixtures]\nevent = \"delete from events; insert into events "
                             "(id, name) values ($1, 'x')\"\n")
    line = error_line(capsys, 2, run_config(tmp_path, text))
    assert "fixtures.event deletes or drops rows" in line and "disposable" in line
    # a word inside a string literal is not a statement
    ok = _merge(minimal(), "[fixtures]\nevent = \"insert into events (id, name) values "
                           "($1, 'drop-in night')\"\n")
    assert load(write(tmp_path, ok)).target.fixture_event_sql.endswith("'drop-in night')")
    disposable = _merge(text, "[database]\ndisposable = true\n")
    assert load(write(tmp_path, disposable)).disposable is True


def test_secrets_of_the_config_are_registered_with_the_redactor(tmp_path: Path):
    from chaos.log import redactor

    anon = "anon_" + secrets.token_hex(8)
    text = _merge(minimal(), f"[target.checkout]\nheaders = {{ apikey = '{anon}', "
                             f"'content-type' = 'application/json' }}\n")
    load(write(tmp_path, text))
    assert redactor.text(f"key {anon} and {SECRET}") == "key [redacted] and [redacted]"
    assert "application/json" in redactor.text("application/json")


# -- ${ENV} and --set ------------------------------------------------------------------------

def test_environment_variables_are_interpolated_and_dollar_dollar_escapes(tmp_path: Path):
    text = minimal().replace(f'"{SECRET}"', '"${CHAOS_T_SECRET}"') + (
        "[target.checkout]\nheaders = { apikey = '${CHAOS_T_KEY}', x-note = 'cost $${price}' }\n")
    config = load(write(tmp_path, text),
                  environ={"CHAOS_T_SECRET": "whsec_fromenv1234", "CHAOS_T_KEY": "anon_k1"})
    assert config.target.webhook_secret == "whsec_fromenv1234"
    assert config.target.checkout_extra_headers == {"apikey": "anon_k1",
                                                     "x-note": "cost ${price}"}


def test_set_overrides_any_key_parsing_toml_values(tmp_path: Path):
    path = write(tmp_path, minimal() + "[[invariants]]\nname = 'mine'\nsql = 'select 1'\n")
    config = load(path, ["target.base_url=http://127.0.0.1:9000", "stripe.port=12999",
                         "database.disposable=true", "target.checkout.session_id=checkout.id",
                         "fixtures.cleanup=['delete from events where id like $1']",
                         "invariants.0.sql=select 2", "target.name=my shop",
                         "database.url=${CHAOS_T_DB}"],
                  environ={"CHAOS_T_DB": "postgresql://127.0.0.1:5433/other"})
    assert config.target.base_url == "http://127.0.0.1:9000"
    assert config.stripe_port == 12999 and config.disposable is True
    assert config.target.session_id_path == "checkout.id"
    assert config.cleanup == ("delete from events where id like $1",)
    assert config.target.invariants[0].sql == "select 2"
    assert config.name == "my shop"
    assert config.database_url == "postgresql://127.0.0.1:5433/other"
    with pytest.raises(UsageError, match="unknown key stripe.prot"):
        load(path, ["stripe.prot=1"])
    with pytest.raises(UsageError, match="stripe.port must be an integer"):
        load(path, ["stripe.port=twelve"])


def test_pyproject_tool_chaos_is_read(tmp_path: Path):
    text = "[project]\nname = 'shop'\n" + minimal().replace("[target", "[tool.chaos.target") \
        .replace("[database]", "[tool.chaos.database]")
    config = load(write(tmp_path, text, "pyproject.toml"))
    assert config.target.base_url == "http://127.0.0.1:8000"
    assert config.database_url == "postgresql://127.0.0.1:5432/test"


def test_the_examples_load(tmp_path: Path):
    env = {"CHAOS_WEBHOOK_SECRET": SECRET, "CHAOS_ANON_KEY": "anon_x1", "DATABASE_URL":
           "postgresql://127.0.0.1:5432/test", "SUPABASE_ANON_KEY": "anon_supa",
           "STRIPE_WEBHOOK_SECRET": SECRET}
    root = Path(__file__).parent.parent / "examples"
    reference = load(root / "reference.toml", environ=env)
    assert reference.target.invariants[0].name == "order-priced-from-database"
    supabase = load(root / "supabase.toml", environ=env)
    assert supabase.target.base_url == "http://127.0.0.1:54321"
    assert supabase.target.checkout_extra_headers == {"apikey": "anon_supa",
                                                       "authorization": "Bearer anon_supa"}
    # the reference's config keeps every promise, so every built-in invariant is checked
    assert checked(reference.target.promises) == set(INVARIANTS)


def test_promises_are_declared_with_the_seeds_defaults(tmp_path: Path):
    base = minimal()
    default = load(write(tmp_path, base)).target
    assert default.promises == Promises(idempotency_header="Idempotency-Key")
    assert default.session_metadata_key == "event_id"
    declared = load(write(tmp_path, _merge(base, """
[target.checkout]
idempotency_header = ""
[target.stripe]
session_metadata_key = "shop_key"
[promises]
signatures = "refetch"
confirms = ["charge.succeeded", "charge.succeeded"]
refunds = "flag"
"""))).target
    assert declared.promises == Promises(idempotency_header="", signatures="refetch",
                                         confirms=("charge.succeeded",), refunds="flag")
    assert declared.session_metadata_key == "shop_key"
    assert checked(declared.promises) == set(INVARIANTS) - {"one-session-per-idempotency-key",
                                                            "refund-voids-tickets"}
    why = {j.invariant: j.why for j in judged(declared.promises) if not j.checked}
    assert why == {"one-session-per-idempotency-key":
                   'target.checkout.idempotency_header = ""',
                   "refund-voids-tickets": 'promises.refunds = "flag"'}


# -- preflight: the target, the database, the SQL rehearsed -----------------------------------

@pytest.fixture
def shop_schema(server_url: str, schema: str) -> str:
    """A fresh schema holding the reference service's tables (no service running)."""
    db = Database(server_url, schema=schema)
    db.execute(ddl(frozenset()))
    db.close()
    return schema


def _preflight_config(listener: Listener, server_url: str, schema: str, extra: str = "") -> str:
    return _merge(minimal(listener.port, server_url) + f"schema = '{schema}'\n", extra)


def test_an_unreachable_target_is_exit_3_naming_base_url(tmp_path: Path, capsys):
    port = closed_port()
    line = error_line(capsys, 3, run_config(tmp_path, minimal(port)))
    assert f"target.base_url http://127.0.0.1:{port}: nothing answers there" in line


def test_an_unhealthy_health_path_is_exit_3(tmp_path: Path, capsys, listener: Listener):
    text = _merge(minimal(listener.port), "[target]\nhealth_path = '/health'\n")
    line = error_line(capsys, 3, run_config(tmp_path, text))
    assert "target.base_url" in line and "/health did not answer" in line


def test_an_unreachable_database_is_exit_3_naming_database_url(tmp_path: Path, capsys,
                                                              listener: Listener):
    text = minimal(listener.port, f"postgresql://user:hunter2pass@127.0.0.1:{closed_port()}/x")
    line = error_line(capsys, 3, run_config(tmp_path, text))
    assert "database.url postgresql://user:" in line and "cannot connect" in line
    assert "hunter2pass" not in line
    assert listener.received == b""


REHEARSED = [
    ("fixture-column",
     "[fixtures]\nticket_type = 'insert into ticket_types (id, event_id, name, price, capacity) "
     "values ($1, $2, $3, $4, $5)'\n",
     'fixtures.ticket_type: column "price" of relation "ticket_types" does not exist: '
     "fix the statement"),
    ("fixture-fails",
     "[fixtures]\nevent = 'insert into events (id, name) values ($1, null)'\n",
     'fixtures.event: null value in column "name"'),
    ("observe-columns",
     "[observe]\ntickets_per_payment = 'select stripe_session_id, 0 as orders from orders "
     "where event_id = $1'\n",
     "observe.tickets_per_payment returns columns stripe_session_id, orders, without "
     "checkout_session, payment_intent, tickets"),
    ("observe-wrong-rows",
     "[observe]\ntickets_per_ticket_type = \"select id as ticket_type, capacity, 0 as tickets, "
     "reserved from ticket_types where event_id = $1 || 'x'\"\n",
     "observe.tickets_per_ticket_type found ticket types none"),
    ("observe-writes",
     "[observe]\ntickets_per_payment = \"update orders set status = 'x' where event_id = $1 "
     "returning stripe_session_id as checkout_session, payment_intent_id as payment_intent, "
     "1 as orders, 1 as tickets\"\n",
     "observe.tickets_per_payment: cannot execute UPDATE in a read-only transaction"),
    ("invariant-sql",
     "[[invariants]]\nname = 'mine'\nsql = 'selec * from tickets'\n",
     'invariants.0.sql: syntax error at or near "selec"'),
    ("too-many-parameters",
     "[fixtures]\nevent = 'insert into events (id, name) values ($1, $6)'\n",
     "fixtures.event: it uses $6, but only 1 parameter(s) are offered"),
    ("buyer-column",
     "[target.checkout]\njourney = 'stripe-session'\n"
     "session = { client_reference_id = '{{cart_ref}}' }\n"
     "[fixtures]\nbuyer = \"select 'cart-' || $3 as cart\"\n",
     "target.checkout.session uses {{cart_ref}}, which is neither a name the tool fills nor a "
     "column fixtures.buyer returns (cart)"),
    ("buyer-fixture-fails", "[fixtures]\nbuyer = 'insert into carts (event) values ($1)'\n",
     'fixtures.buyer: relation "carts" does not exist'),
    ("cleanup-sql",
     "[database]\ndisposable = true\n[fixtures]\ncleanup = ['delete from no_such_table']\n",
     'fixtures.cleanup.0: relation "no_such_table" does not exist'),
]


@pytest.mark.parametrize("name, extra, expected", REHEARSED, ids=[r[0] for r in REHEARSED])
def test_the_config_sql_is_rehearsed_before_any_request(tmp_path: Path, capsys, name: str,
                                                        extra: str, expected: str,
                                                        listener: Listener, server_url: str,
                                                        shop_schema: str):
    text = _preflight_config(listener, server_url, shop_schema, extra)
    line = error_line(capsys, 2, run_config(tmp_path, text))
    assert expected in line, line
    assert listener.received == b""
    # the rehearsal was rolled back: nothing stays in the target's database
    db = Database(server_url, schema=shop_schema)
    try:
        assert db.fetch("select id from events") == []
        assert db.fetch("select id from ticket_types") == []
    finally:
        db.close()


def test_a_good_config_passes_the_rehearsal_and_leaves_no_rows(server_url: str,
                                                               shop_schema: str,
                                                               listener: Listener, tmp_path: Path):
    from chaos.preflight import check_target, connect, rehearse

    config = load(write(tmp_path, _preflight_config(listener, server_url, shop_schema)))
    check_target(config)
    db = connect(config)
    try:
        rehearse(db, config)
        assert db.fetch("select id from events") == []
    finally:
        db.close()
    assert listener.received == b""


def test_user_statements_get_only_the_parameters_they_use_in_their_types(db: Database):
    # a statement may use fewer parameters than offered; ids cross text <-> integer
    assert db.fetch_fitted("select $1::text as a", "x", 2, "unused") == [{"a": "x"}]
    assert db.fetch_fitted("select $1::int + 1 as n", "41") == [{"n": 42}]
    assert db.fetch_fitted("select $1::text || '!' as t, $2::bigint as b", 7, "8") == \
        [{"t": "7!", "b": 8}]
    assert db.fetch_fitted("select 1 as one") == [{"one": 1}]
    with pytest.raises(Exception, match="read-only transaction"):
        db.fetch_fitted("create table nope (a int)", readonly=True)


def test_a_fixture_with_fewer_parameters_and_serial_ids_passes_the_rehearsal(
        server_url: str, schema: str, listener: Listener, tmp_path: Path):
    from chaos.preflight import connect, rehearse

    db = Database(server_url, schema=schema)
    db.execute("create table shows (id serial primary key, code text not null); "
               "create table tiers (id serial primary key, show_id int not null "
               "references shows(id), capacity int not null)")
    db.close()
    text = _merge(minimal(listener.port, server_url) + f"schema = '{schema}'\n", """
[fixtures]
event = "insert into shows (code) values ($1) returning id"
ticket_type = "insert into tiers (show_id, capacity) values ($2, $5) returning id"
[observe]
tickets_per_payment = '''select null::text as checkout_session, null::text as payment_intent,
    0 as orders, 0 as tickets where $1::int is null'''
tickets_per_ticket_type = '''select id as ticket_type, capacity, 0 as tickets,
    null::int as reserved from tiers where show_id = $1'''
""")
    config = load(write(tmp_path, text))
    database = connect(config)
    try:
        rehearse(database, config)
        assert database.fetch("select count(*) as n from shows") == [{"n": 0}]
    finally:
        database.close()
