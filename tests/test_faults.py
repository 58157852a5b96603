"""Faults of the target itself: a target that refuses connections, hangs or
crashes mid-run ends the run with a one-line TargetError (verdict ``error``,
exit 3) well within the run's deadline. A target that answers, 500 to
everything included, is no infrastructure failure: it is judged.
Each target is a real server in its own process on loopback."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from chaos import cli
from chaos import run as run_module
from chaos.database import Database
from chaos.errors import TargetError
from chaos.reference.schema import ddl
from chaos.run import FAILING_STREAK, Runner
from chaos.search import search
from chaos.services import Service
from chaos.target import Target
from chaos.transport import LoopbackTransport
from strategies import busy_night, scenarios
from tests.fake_stripe_helpers import session_params, stripe_client

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 60.0


@contextlib.contextmanager
def misbehaving(mode: str, n: int = 0, stripe_url: str = "") -> Iterator[str]:
    """Run ``tests/misbehaving.py MODE N [STRIPE_URL]``; its base URL."""
    process = subprocess.Popen([sys.executable, "-m", "tests.misbehaving", mode, str(n),
                                *([stripe_url] if stripe_url else [])],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on "), line
        yield line.split()[-1]
    finally:
        process.kill()
        process.wait(10)


@contextlib.contextmanager
def refusing() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening: every connection is refused
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def tables(db: Database) -> Database:
    """The test schema with the reference service's tables, for the fixture SQL."""
    db.execute(ddl(frozenset()))
    return db


def runner_for(url: str, db: Database, stripe: Service) -> Runner:
    return Runner(target=Target(base_url=url, webhook_secret="whsec_" + "0" * 32, metrics_path=None),
                  stripe_url=stripe.url, db=db, concurrency=10, request_timeout=0.5,
                  example_timeout=10, deadline=time.monotonic() + DEADLINE)


@pytest.mark.parametrize("target, words", [
    (lambda stripe: refusing(), "refused all"),
    (lambda stripe: misbehaving("hang"), "answered none of"),
    (lambda stripe: misbehaving("crash", 3, stripe), "crashed"),
], ids=["refuse", "hang", "crash"])
def test_a_broken_target_ends_the_search_with_an_error(tables, fake_stripe, target, words):
    with target(fake_stripe.url) as url:
        runner = runner_for(url, tables, fake_stripe)
        started = time.monotonic()
        outcome = search(runner.run_example, scenarios(), examples=500, seed=1,
                         deadline=runner.deadline)
        elapsed = time.monotonic() - started
    assert outcome.stopped == "error"
    assert isinstance(outcome.error, TargetError)
    message = str(outcome.error)
    assert words in message and url in message and "\n" not in message
    assert elapsed < DEADLINE
    # whatever it found before the target broke is kept, marked unconfirmed
    assert all(f.note and f.note.startswith("not confirmed") for f in outcome.findings)
    print(f"{words!r}: {elapsed:.1f} s, {outcome.examples} examples: {message}")


@pytest.mark.e2e
def test_a_target_that_answers_500_to_everything_is_judged_not_written_off(tables, fake_stripe):
    """Every answer a 500 (its checkout door too, so no buyer ever pays): no error ends
    the search, and the thresholds count every request as failed."""
    with misbehaving("500") as url:
        runner = runner_for(url, tables, fake_stripe)
        outcome = search(runner.run_example, scenarios(), examples=25, seed=1,
                         deadline=runner.deadline)
    assert outcome.error is None and outcome.stopped != "error", outcome.error
    assert outcome.examples >= 25
    stats = runner.stats
    assert stats.requests > FAILING_STREAK and stats.unanswered == 0
    assert stats.failed == stats.requests


@pytest.mark.e2e
def test_a_webhook_door_that_stops_answering_ends_the_run_after_a_streak(tables, fake_stripe):
    """The checkout door answers, the webhook door never does: after FAILING_STREAK
    requests in a row without an answer, the run ends (exit 3) naming the streak."""
    with misbehaving("hang-webhooks", 0, fake_stripe.url) as url:
        runner = runner_for(url, tables, fake_stripe)
        with pytest.raises(TargetError) as caught:
            runner.run_example(busy_night(FAILING_STREAK + 5))
    message = str(caught.value)
    assert message.startswith(f"the target at {url} left the last {FAILING_STREAK + 5} "
                              "requests in a row without an answer (no answer x ")
    assert "\n" not in message


def test_a_crash_mid_run_keeps_the_failures_seen_before_it(tables, fake_stripe):
    # answers 200 but stores nothing: payments are lost until it dies
    with misbehaving("crash", 30, fake_stripe.url) as url:
        runner = runner_for(url, tables, fake_stripe)
        # paid buyers and valid completions only: its 30 answers surely include a lost payment
        space = scenarios(max_copies=1, max_waves=1, outcomes=("paid",), checkouts=(),
                          max_faults=0, event_types=("checkout.session.completed",),
                          signatures=("valid",))
        outcome = search(runner.run_example, space, examples=200, seed=1,
                         deadline=runner.deadline)
    assert isinstance(outcome.error, TargetError)
    assert [f.invariant for f in outcome.findings] == ["no-lost-payment"]


def test_the_cli_reports_verdict_error_and_exits_3(tables, fake_stripe, tmp_path, monkeypatch,
                                                   capsys):
    with misbehaving("hang") as url:
        @contextlib.contextmanager
        def broken_target_run(**kwargs):
            yield runner_for(url, tables, fake_stripe)

        monkeypatch.setattr("chaos.lifecycle.reference_run", broken_target_run)
        code = cli.main(["--concurrency", "10", "--examples", "200",
                         "--report", str(tmp_path / "report.json"),
                         "--failures-dir", str(tmp_path / "cases")])
    err = capsys.readouterr().err
    assert code == 3
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"payment-chaos: error: the target at {url} accepted connections but answered none")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verdict"] == "error" and "it hangs" in report["error"]


def test_objects_read_back_by_id_are_asked_for_in_batches(db, fake_stripe, monkeypatch):
    """A load interval names thousands of sessions; asked for in one URL, httpx refused the
    query ('URL component query too long') and the run ended in a traceback."""
    client = stripe_client(fake_stripe.url)
    made = [client.checkout.sessions.create(params=session_params()).id for _ in range(5)]
    runner = runner_for("http://127.0.0.1:9", db, fake_stripe)
    monkeypatch.setattr(run_module, "CONTROL_BATCH", 2)
    asked: list[int] = []
    get = runner._control_get

    async def counting(transport, path, params):
        asked.append(len(params["ids[]"]))
        return await get(transport, path, params)

    monkeypatch.setattr(runner, "_control_get", counting)
    wanted = [made[4], "cs_test_missing", *made[:3]]
    found = trio.run(runner._control_list, LoopbackTransport(), "/_chaos/objects/checkout.session",
                     "ids[]", wanted)
    assert asked == [2, 2, 1]
    assert sorted(obj["id"] for obj in found) == sorted([made[4], *made[:3]])
    # the real batch fits a URL with room to spare: ids as long as the fake Stripe mints
    query = "&".join(f"ids%5B%5D={made[0]}" for _ in range(run_module.CONTROL_BATCH))
    assert len(query) < 65_536 // 4
