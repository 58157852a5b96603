"""The library API (``chaos/__init__.py``) and user invariants written in Python: the
names it exports load lazily and are the objects of their modules; a Python invariant is
judged like a SQL one (its rows are the evidence, a failed assert breaks it, its own bug
is one line naming it); a config names one as ``python = "module:function"``; a target
described in Python is checked as a config file is."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import chaos
from chaos import invariants as inv
from chaos.config import load, target_config
from chaos.errors import UsageError
from chaos.history import History
from chaos.observation import Observation
from chaos.target import ExampleData, PythonInvariant, SqlInvariant, Target

SECRET = "whsec_" + "a" * 32
DB = "postgresql://chaos@127.0.0.1:5432/shop"


def data(**rows: Any) -> ExampleData:
    asked: list[tuple[str, tuple[Any, ...]]] = []

    def query(sql: str, *args: Any) -> list[dict[str, Any]]:
        asked.append((sql, args))
        return [{"sql": sql}]

    return ExampleData(event_id="chaos-1-000001", observation=Observation(
        history=History(), tickets_per_payment=tuple(rows.get("payments", ()))), query=query)


# -- the exports ----------------------------------------------------------------------------

def test_every_export_is_listed_once_and_is_its_modules_object():
    assert chaos.__all__ == ["__version__", *chaos._EXPORTS]
    for name, module in chaos._EXPORTS.items():
        defined = getattr(importlib.import_module(module), chaos._ALIASES.get(name, name))
        assert getattr(chaos, name) is defined, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        chaos.nope  # noqa: B018


def test_run_search_and_replay_cases_survive_the_submodules_of_the_same_stem():
    importlib.import_module("chaos.run")      # sets chaos.run to the module: hence the names
    importlib.import_module("chaos.replay")
    assert chaos.run_search.__module__ == "chaos.lifecycle"
    assert chaos.replay_cases.__module__ == "chaos.lifecycle"


@pytest.mark.e2e   # a child interpreter
def test_import_chaos_loads_none_of_the_machinery():
    probe = ("import sys, chaos; chaos.__version__; print(sorted(m for m in sys.modules "
             "if m.split('.')[0] in {'chaos', 'strategies', 'stripe', 'httpx', 'trio', "
             "'asyncpg', 'hypothesis'}))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "['chaos']"


# -- Python invariants -----------------------------------------------------------------------

def test_the_rows_a_python_invariant_returns_are_its_evidence():
    def over(d: ExampleData) -> list[dict[str, Any]]:
        return [r for r in d.tickets_per_payment if r["tickets"] > 2]

    check = PythonInvariant("at-most-two", over, message="no payment holds more than two")
    assert check.judge(data(payments=[{"tickets": 2}])) is None
    message, rows = check.judge(data(payments=[{"tickets": 3}, {"tickets": 1}]))  # type: ignore[misc]
    assert message == "no payment holds more than two: 1 row returned by its function, " \
        "which must return none"
    assert rows == ({"tickets": 3},)


def test_none_and_an_empty_result_hold_and_a_failed_assert_breaks_it():
    assert PythonInvariant("a", lambda d: None).judge(data()) is None
    assert PythonInvariant("b", lambda d: iter(())).judge(data()) is None

    def asserting(d: ExampleData) -> None:
        assert d.event_id == "other", f"event {d.event_id} has no admissions"

    message, rows = PythonInvariant("c", asserting).judge(data())  # type: ignore[misc]
    assert message == "c: event chaos-1-000001 has no admissions"
    # the whole text is the evidence (under pytest, its rewritten assert explains itself)
    assert rows[0]["assertion"].startswith("event chaos-1-000001 has no admissions")


def test_the_query_it_is_given_reads_the_targets_database():
    seen = PythonInvariant("q", lambda d: d.query("select 1 as one")).judge(data())
    assert seen is not None and seen[1] == ({"sql": "select 1 as one"},)


@pytest.mark.parametrize(("function", "error"), [
    (lambda d: 1 / 0, "invariant f raised ZeroDivisionError: division by zero: fix the function"),
    (lambda d: 3, "invariant f returned int: return the rows that break it"),
    (lambda d: {"a": 1}, "invariant f returned dict: return the rows"),
    (lambda d: "rows", "invariant f returned str"),
    (lambda d: [1], "invariant f returned a row of type int: each row must be a dict"),
])
def test_a_python_invariant_s_own_bug_is_one_line_naming_it(function: Any, error: str):
    with pytest.raises(UsageError, match="^" + error.replace("(", r"\(")):
        PythonInvariant("f", function).judge(data())


@pytest.mark.parametrize(("name", "check", "error"), [
    ("no spaces", lambda d: None, "invariant name 'no spaces' must be a short name"),
    ("ok", "not callable", "invariant ok: check='not callable' is not a function"),
])
def test_a_python_invariant_is_checked_when_made(name: str, check: Any, error: str):
    with pytest.raises(UsageError, match=error):
        PythonInvariant(name, check)


def test_its_violations_are_checked_with_the_built_in_ones():
    obs = Observation(history=History(), functions=(("mine", "mine: 1 row", ({"id": 1},)),),
                      queries=(("sql-one", "", ({"x": 1},)),))
    found = [(v.invariant, v.message, v.rows) for v in inv.check(obs)]
    assert found == [
        ("sql-one", "sql-one: 1 row returned by its query, which must return none", [{"x": 1}]),
        ("mine", "mine: 1 row", [{"id": 1}]),
    ]


# -- in a config file ------------------------------------------------------------------------

CONFIG = f"""
[target]
base_url = "http://127.0.0.1:8000"
[target.webhook]
secret = "{SECRET}"
[database]
url = "{DB}"
"""


def write(tmp_path: Path, invariants: str, module: str | None = None) -> Path:
    if module is not None:
        (tmp_path / "shop_checks.py").write_text(textwrap.dedent(module))
    path = tmp_path / "chaos.toml"
    path.write_text(CONFIG + textwrap.dedent(invariants))
    return path


def test_a_config_names_a_python_invariant_next_to_it(tmp_path: Path):
    path = write(tmp_path, """
        [[invariants]]
        name = "sold-orders-are-paid"
        python = "shop_checks:sold_orders_are_paid"
        message = "a sold order is paid"

        [[invariants]]
        name = "sql-one"
        sql = "select 1 where false"
        """, module="""
        def sold_orders_are_paid(data):
            return [{"event": data.event_id}]
        """)
    config = load(path)
    python, sql = config.target.invariants
    assert isinstance(python, PythonInvariant) and isinstance(sql, SqlInvariant)
    assert (python.name, python.message) == ("sold-orders-are-paid", "a sold order is paid")
    assert python.check(data()) == [{"event": "chaos-1-000001"}]
    assert str(tmp_path) not in sys.path          # the folder was searched, then left alone


@pytest.mark.parametrize(("entry", "error"), [
    ('name = "x"\npython = "shop_checks"', 'invariants.0.python \'shop_checks\': write it as '
     '"module:function"'),
    ('name = "x"\npython = "no_such_module_here:f"', "invariants.0.python "
     "'no_such_module_here:f': cannot import no_such_module_here \\(ModuleNotFoundError"),
    ('name = "x"\npython = "shop_checks:nope"', "shop_checks has no function nope: fix the name"),
    ('name = "x"\npython = "shop_checks:f"\nsql = "select 1"', "invariants.0 has both sql and "
     "python: keep one"),
    ('name = "x"', "invariants.0.sql is required"),
    ('name = "no-lost-payment"\npython = "shop_checks:f"', "is already an invariant's name"),
    ('python = "shop_checks:f"', "invariants.0.name is required"),
])
def test_a_bad_python_invariant_in_a_config_is_one_line(tmp_path: Path, entry: str, error: str):
    path = write(tmp_path, f"[[invariants]]\n{entry}\n", module="def f(data):\n    return []\n")
    with pytest.raises(UsageError, match=error):
        load(path)


# -- a target described in Python ------------------------------------------------------------

def test_a_target_described_in_python_is_a_config():
    check = PythonInvariant("mine", lambda d: None)
    config = target_config(Target(base_url="http://127.0.0.1:8000", webhook_secret=SECRET,
                                  invariants=(check,)),
                           database_url=DB, database_schema="shop", stripe_port=12112)
    assert config.target.invariants == (check,)
    assert (config.database_url, config.database_schema, config.stripe_port) == (DB, "shop", 12112)
    assert config.report_target() == {"kind": "config", "name": "http://127.0.0.1:8000",
                                      "config": "python"}


@pytest.mark.parametrize(("target", "options", "error"), [
    ({"base_url": "http://shop.example.com"}, {}, "Target.base_url"),
    ({"webhook_secret": "nope"}, {}, r"Target.webhook_secret must be a webhook signing secret"),
    ({"old_secret": "nope"}, {}, r"Target.old_secret must be a webhook signing secret"),
    ({}, {"database_url": "mysql://127.0.0.1/x"}, "database_url is not a PostgreSQL URL"),
    ({}, {"database_url": "postgresql://db.example.com/x"}, "database_url host db.example.com "
     "is not on loopback"),
    ({}, {"stripe_api_key": "sk_live_x"}, "stripe_api_key is a live key"),
    ({}, {"stripe_port": 0}, "stripe_port 0 is outside 1..65535"),
    ({}, {"database_schema": "a b"}, "database_schema 'a b' is not a schema name"),
    ({}, {"allow_hosts": ["api.stripe.com"]}, "live Stripe is never allowed"),
    ({"fixture_event_sql": "delete from events"}, {}, "Target.fixture_event_sql deletes or drops "
     "rows, and database.disposable is not true"),
    ({"invariants": (SqlInvariant("a", "select 1"), PythonInvariant("a", lambda d: None))}, {},
     "Target.invariants.1.name 'a' is already an invariant's name"),
    ({"invariants": (SqlInvariant("no-lost-payment", "select 1"),)}, {},
     "is already an invariant's name"),
])
def test_a_target_described_in_python_is_checked_as_a_config_file_is(
        target: dict[str, Any], options: dict[str, Any], error: str):
    fields = {"base_url": "http://127.0.0.1:8000", "webhook_secret": SECRET, **target}
    with pytest.raises(UsageError, match=error):
        target_config(Target(**fields), **{"database_url": DB, **options})


def test_a_config_s_repr_shows_no_secret():
    config = target_config(Target(base_url="http://127.0.0.1:8000", webhook_secret=SECRET),
                           database_url="postgresql://chaos:hunter22@127.0.0.1/shop",
                           stripe_api_key="sk_test_secretkey")
    for secret in ("hunter22", "sk_test_secretkey", SECRET):
        assert secret not in repr(config)


def test_the_report_says_which_user_invariants_are_python():
    from chaos.report import Report

    report = Report(target={"kind": "config"}, seed=1, requested_concurrency=1,
                    extra_invariants=["sql-one", "mine"], python_invariants=["mine"],
                    verdict="pass")
    promises = {p["invariant"]: p for p in report.to_data()["promises"]}
    assert promises["mine"]["promise"] == "its function returns no rows"
    assert promises["sql-one"]["promise"] == "its query returns no rows"
    assert report.to_data()["invariants"]["mine"] == "pass"


@pytest.mark.parametrize(("call", "error"), [
    (lambda c: chaos_testing().search(c, exampels=3), "search\\(\\): exampels is not a run "
     "option here: use the fields of chaos.lifecycle.RunOptions"),
    (lambda c: chaos_testing().search(c, stripe_url="http://127.0.0.1:1"), "search\\(\\): "
     "stripe_url is not a run option here: .* \\(the fake Stripe is stripe=\\)"),
    (lambda c: chaos_testing().search(c, overrides=["a=1"]), "overrides are for a config file"),
])
def test_search_refuses_what_it_cannot_use_before_anything_starts(call: Any, error: str):
    config = target_config(Target(base_url="http://127.0.0.1:8000", webhook_secret=SECRET),
                           database_url=DB)
    with pytest.raises(UsageError, match=error):
        call(config)


def chaos_testing() -> Any:
    return importlib.import_module("chaos.testing")


def test_a_reference_run_refuses_a_fake_stripe_of_its_own(tmp_path: Path):
    with pytest.raises(UsageError, match="stripe_url is for a run against your own service"):
        chaos.run_search(chaos.RunOptions(stripe_url="http://127.0.0.1:1",
                                          report=tmp_path / "r.json"))
    assert not (tmp_path / "r.json").exists()       # refused before anything was written
