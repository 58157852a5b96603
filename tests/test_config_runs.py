"""The reference service driven purely through ``examples/reference.toml``:
the tool, given only the config, passes the correct service and catches the
same bugs as the built-in path; user invariants join the report; cleanup
deletes rows only when the config declares the database disposable."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chaos.database import Database
from chaos.services import running
from tests.helpers import run_tool

pytestmark = pytest.mark.e2e   # whole chaos runs, in processes

CONFIG = str(Path(__file__).parent.parent / "examples" / "reference.toml")


@dataclass
class Started:
    url: str
    schema: str
    stripe_port: int
    secrets: tuple[str, ...]

    def overrides(self, *extra: str) -> list[str]:
        sets = [f"target.base_url={self.url}", f"stripe.port={self.stripe_port}",
                f"database.schema={self.schema}", *extra]
        return [arg for s in sets for arg in ("--set", s)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def reference_service(server_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch,
                      bugs: tuple[str, ...] = ()) -> Iterator[Started]:
    """The reference service on a fresh schema, its Stripe client pointed at
    127.0.0.1:<port> where the tool will start the fake Stripe (as a user's own
    service would be); the config reads its secrets from the environment."""
    schema = f"chaos_cfg_{secrets.token_hex(4)}"
    port = _free_port()
    env = {"CHAOS_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(24),
           "CHAOS_ANON_KEY": "anon_" + secrets.token_hex(12),
           "CHAOS_STRIPE_API_KEY": "sk_test_" + secrets.token_hex(12)}
    for key, value in {**env, "DATABASE_URL": server_url}.items():
        monkeypatch.setenv(key, value)
    admin = Database(server_url)
    admin.execute(f'create schema "{schema}"')
    try:
        args = ["--database-url", server_url, "--schema", schema,
                "--stripe-api-base", f"http://127.0.0.1:{port}"]
        for bug in bugs:
            args += ["--bug", bug]
        with running("reference", args, workdir=workdir, env=env) as service:
            yield Started(url=service.url, schema=schema, stripe_port=port,
                          secrets=tuple(env.values()))
    finally:
        admin.execute(f'drop schema if exists "{schema}" cascade')
        admin.close()


def chaos(tmp_path: Path, started: Started, *args: str, overrides: tuple[str, ...] = ()):
    return run_tool("--config", CONFIG, *started.overrides(*overrides), "--seed", "1",
                    "--report", str(tmp_path / "report.json"), "--corpus",
                    str(tmp_path / "corpus"), "--junit", str(tmp_path / "junit.xml"), *args,
                    cwd=tmp_path)


def _count(server_url: str, schema: str, sql: str, *args: object) -> int:
    db = Database(server_url, schema=schema)
    try:
        return int(db.fetch(sql, *args)[0]["n"])
    finally:
        db.close()


def test_the_correct_service_passes_and_rows_go_only_when_disposable(
        tmp_path: Path, server_url: str, monkeypatch: pytest.MonkeyPatch):
    with reference_service(server_url, tmp_path, monkeypatch) as started:
        result = chaos(tmp_path, started, "--examples", "30")
        assert result.returncode == 0, result.stdout + result.stderr
        text = (tmp_path / "report.json").read_text()
        report = json.loads(text)
        assert report["target"] == {"kind": "config", "name": "reference service (through config)",
                                    "config": CONFIG}
        assert report["examples"] >= 30 and report["failures"] == []
        assert report["invariants"]["order-priced-from-database"] == "pass"
        assert set(report["invariants"].values()) == {"pass"}
        assert report["database"]["dropped_after_run"] is False
        assert report["database"]["cleanup"] == "skipped: database.disposable is not true"
        assert 'name="order-priced-from-database"' in (tmp_path / "junit.xml").read_text()
        for secret in started.secrets:
            assert secret not in text + result.stdout + result.stderr
        # not disposable: the run's rows stay
        kept = _count(server_url, started.schema,
                      "select count(*) as n from events where id like 'chaos-%'")
        assert kept >= 30

        result = chaos(tmp_path, started, "--examples", "5",
                       overrides=("database.disposable=true",))
        assert result.returncode == 0, result.stdout + result.stderr
        cleanup = json.loads((tmp_path / "report.json").read_text())["database"]["cleanup"]
        pattern = re.fullmatch(r"ran 6 statement\(s\) for (chaos-\w+-%)", cleanup)
        assert pattern, cleanup
        assert _count(server_url, started.schema,
                      "select count(*) as n from events where id like $1", pattern.group(1)) == 0
        # only this run's rows went: the first run's are still there
        assert _count(server_url, started.schema,
                      "select count(*) as n from events where id like 'chaos-%'") == kept


def test_no_dedup_is_caught_through_the_config_and_the_case_replays(
        tmp_path: Path, server_url: str, monkeypatch: pytest.MonkeyPatch):
    with reference_service(server_url, tmp_path, monkeypatch, ("no-dedup",)) as started:
        result = chaos(tmp_path, started, "--examples", "30")
        assert result.returncode == 1, result.stdout + result.stderr
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["invariants"]["one-ticket-set-per-payment"] == "fail"
        [failure] = [f for f in report["failures"] if f["phase"] != "load"
                     and f["invariant"] == "one-ticket-set-per-payment"]
        assert failure["status"] == "FAILED"
        case = json.loads(Path(failure["case"]).read_text())
        assert case["target"]["kind"] == "config" and case["target"]["config"] == CONFIG
        # the case re-reads its config; the run-time keys come again with --set
        replay = run_tool("replay", failure["case"], "--runs", "2", *started.overrides(),
                          cwd=tmp_path)
        assert replay.returncode == 1, replay.stdout + replay.stderr
        assert "one-ticket-set-per-payment broke in" in replay.stdout


def test_oversell_is_caught_through_the_config(tmp_path: Path, server_url: str,
                                               monkeypatch: pytest.MonkeyPatch):
    # a race at the last unit: the drawn search reaches it in 6 to 8 examples (the mutants,
    # docs/benchmarks.md); 60 leave room on either path (seed 1)
    with reference_service(server_url, tmp_path, monkeypatch, ("oversell",)) as started:
        result = chaos(tmp_path, started, "--examples", "60", "--shrink-seconds", "5")
        assert result.returncode == 1, result.stdout + result.stderr
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["invariants"]["no-oversold-ticket-type"] == "fail"
        assert {f["invariant"] for f in report["failures"] if f["status"] == "FAILED"} == \
            {"no-oversold-ticket-type"}


def test_a_user_invariant_that_returns_rows_fails_the_run(tmp_path: Path, server_url: str,
                                                         monkeypatch: pytest.MonkeyPatch):
    with reference_service(server_url, tmp_path, monkeypatch) as started:
        result = chaos(tmp_path, started, "--examples", "3", overrides=(
            "invariants.0.sql=select e.id as event from events e where e.id = $1",))
        assert result.returncode == 1, result.stdout + result.stderr
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["invariants"]["order-priced-from-database"] == "fail"
        violation = report["evidence"]["order-priced-from-database"][0]
        assert violation["message"].startswith("an order line is priced differently")
        assert violation["rows"][0]["event"].startswith("chaos-")
        junit = (tmp_path / "junit.xml").read_text()
        assert '<failure message="an order line is priced differently' in junit


def test_a_wrong_answer_path_ends_the_run_naming_it(tmp_path: Path, server_url: str,
                                                    monkeypatch: pytest.MonkeyPatch):
    with reference_service(server_url, tmp_path, monkeypatch) as started:
        result = chaos(tmp_path, started, "--examples", "3",
                       overrides=("target.checkout.session_id=checkout.id",))
    assert result.returncode == 3, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "malformed answer: KeyError: 'checkout.id'" in line
    assert "({url, checkout.id} answers)" in line and "Traceback" not in result.stderr


def test_a_python_invariant_is_judged_reported_shrunk_saved_and_replayed_like_sql(
        tmp_path: Path, server_url: str, monkeypatch: pytest.MonkeyPatch):
    """Through the library API, in this process: the config plus a Python invariant, a
    search that passes, then one whose invariant breaks on every order (found, shrunk to
    one buyer, confirmed, saved), and the saved case replayed with the same Config."""
    import dataclasses

    import chaos
    from chaos.testing import SearchFailed, search

    def orders_of(data: chaos.ExampleData) -> list[dict[str, object]]:
        return data.query("select id, amount_cents from orders where event_id = $1")

    def holds(data: chaos.ExampleData) -> list[dict[str, object]]:
        assert all(op.status is not None for op in data.history.ops), "an unanswered request"
        return [r for r in orders_of(data) if r["amount_cents"] == 0]

    options = dict(examples=3, seed=1, playbook=False, concurrency=4, confirm_runs=2,
                   shrink_seconds=10, corpus=tmp_path / "corpus")
    with reference_service(server_url, tmp_path, monkeypatch) as started:
        loaded = chaos.load_config(CONFIG, [f"target.base_url={started.url}",
                                            f"stripe.port={started.stripe_port}",
                                            f"database.schema={started.schema}"])

        def config(check: chaos.PythonInvariant) -> chaos.Config:
            target = dataclasses.replace(loaded.target,
                                         invariants=(*loaded.target.invariants, check))
            return dataclasses.replace(loaded, target=target)

        report = search(config(chaos.PythonInvariant("orders-cost-something", holds)),
                        **options)
        assert report.verdict == "pass" and report.found == []
        assert report.to_data()["invariants"]["orders-cost-something"] == "pass"

        breaks = config(chaos.PythonInvariant("no-orders-at-all", orders_of,
                                              message="this target takes no orders"))
        with pytest.raises(SearchFailed) as failed:
            search(breaks, **options)
        [found] = failed.value.report.found               # the finding as objects
        assert (found.invariant, found.status, len(found.scenario.buyers)) == \
            ("no-orders-at-all", "FAILED", 1)
        assert found.violations[0].rows and found.result is not None
        text = str(failed.value)
        assert "no-orders-at-all" in text and "this target takes no orders: 1 row returned by " \
            "its function, which must return none" in text
        assert "buyer 1 checks out" in text and "buyer 2" not in text     # shrunk to one buyer
        [case] = (tmp_path / "corpus").glob("no-orders-at-all-*.json")
        saved = json.loads(case.read_text())
        assert saved["invariant"] == "no-orders-at-all"

        replayed = chaos.replay_cases(chaos.ReplayOptions(files=(case,), runs=1), config=breaks)
        assert replayed.failed == 1, replayed.text
        assert "no-orders-at-all broke in" in replayed.text
