"""One example end to end, and the infrastructure every example runs on.

An example: install its fixture (database), fire its set-up and waves
(trio), read what the target stored (database), check the invariants.
The trio world and the asyncio world never run at the same time.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio

from chaos import invariants
from chaos.client import Plan, plan, ticket_type_id
from chaos.database import Database, embedded_server
from chaos.errors import InfrastructureError, TargetError
from chaos.executor import fire_wave
from chaos.history import History, Outcome, percentile
from chaos.log import redactor
from chaos.reference.bugs import parse_bugs
from chaos.services import running
from chaos.target import Target
from chaos.transport import LoopbackTransport
from strategies import Scenario


@dataclass(frozen=True)
class ExampleResult:
    scenario: Scenario
    history: History
    observation: invariants.Observation
    violations: list[invariants.Violation]


@dataclass
class HttpStats:
    """Requests at the target over the whole run (set-up calls excluded)."""

    requests: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    client_peak_in_flight: int = 0
    start_skew: float = 0.0

    def add(self, history: History) -> None:
        for op in history.at_target():
            self.requests += 1
            self.failed += op.outcome is not Outcome.OK
            self.latencies.append(op.latency)
        self.client_peak_in_flight = max(self.client_peak_in_flight,
                                         history.client_peak_in_flight)
        self.start_skew = max(self.start_skew, history.wave_skew())

    def to_data(self) -> dict[str, float | int]:
        ms = [x * 1000 for x in self.latencies]
        return {
            "requests": self.requests,
            "failed": self.failed,
            "error_rate": round(self.failed / self.requests, 4) if self.requests else 0.0,
            "avg_ms": round(sum(ms) / len(ms), 2) if ms else 0.0,
            "p50_ms": round(percentile(ms, 50), 2),
            "p95_ms": round(percentile(ms, 95), 2),
            "max_ms": round(max(ms), 2) if ms else 0.0,
        }


class Runner:
    """Runs examples against one target; counts them and the HTTP they cost."""

    def __init__(self, *, target: Target, stripe_url: str, db: Database, concurrency: int,
                 request_timeout: float, example_timeout: float) -> None:
        self.target = target
        self.stripe_url = stripe_url
        self.db = db
        self.concurrency = concurrency
        self.request_timeout = request_timeout
        self.example_timeout = example_timeout
        self.run_id = secrets.token_hex(3)
        self.examples = 0
        self.stats = HttpStats()
        self._ids = itertools.count(1)

    def run_example(self, scenario: Scenario) -> ExampleResult:
        self.examples += 1
        event_id = f"chaos-{self.run_id}-{next(self._ids):06d}"
        self._install_fixture(scenario, event_id)
        the_plan = plan(scenario, target=self.target, stripe_url=self.stripe_url,
                        event_id=event_id)
        history = trio.run(self._execute, the_plan)
        self.stats.add(history)
        self._check_setup(history)
        self._check_target_answered(history)
        rows = self.db.fetch(self.target.tickets_per_payment_sql, event_id)
        payments = [
            invariants.Payment(buyer=b, payment_intent=binding.payment_intent,
                               quantity=scenario.buyers[b].quantity)
            for b, binding in enumerate(the_plan.bindings) if binding.payment_intent
        ]
        observation = invariants.Observation(payments=payments, history=history,
                                             tickets_per_payment=rows)
        return ExampleResult(scenario, history, observation, invariants.check(observation))

    def _install_fixture(self, scenario: Scenario, event_id: str) -> None:
        self.db.execute(self.target.fixture_event_sql, event_id)
        self.db.executemany(self.target.fixture_ticket_type_sql, [
            (ticket_type_id(event_id, i), event_id, f"Ticket type {i + 1}", tt.price, tt.capacity)
            for i, tt in enumerate(scenario.ticket_types)
        ])

    async def _execute(self, the_plan: Plan) -> History:
        history = History()
        transport = LoopbackTransport()
        limiter = trio.CapacityLimiter(self.concurrency)
        async with httpx.AsyncClient(transport=transport, timeout=self.request_timeout,
                                     trust_env=False) as http:
            with trio.move_on_after(self.example_timeout) as deadline:
                for phase in the_plan.setup:
                    await fire_wave(phase, http=http, limiter=limiter, history=history,
                                    request_timeout=self.request_timeout)
                    if any(op.outcome is not Outcome.OK for op in history.ops):
                        return history
                for wave in the_plan.waves:
                    await fire_wave(wave, http=http, limiter=limiter, history=history,
                                    request_timeout=self.request_timeout)
        history.client_peak_in_flight = transport.peak_in_flight
        if deadline.cancelled_caught:
            raise TargetError(
                f"an example did not finish within {self.example_timeout:g} s: "
                "the target or the fake Stripe hung; raise --example-timeout if it is just slow"
            )
        return history

    def _check_setup(self, history: History) -> None:
        for op in history.ops:
            if op.door == "stripe" and op.outcome is not Outcome.OK:
                raise InfrastructureError(
                    f"the fake Stripe API failed a set-up call ({op.method} {op.path}: "
                    f"{op.status or op.error}): see its log"
                )
            if op.door == "target" and op.wave is None and op.outcome is not Outcome.OK:
                answer = f"HTTP {op.status} {op.body[:160]}".strip() if op.status else op.error
                raise TargetError(
                    f"buyer {op.ref.get('buyer', 0) + 1}'s checkout at the target failed "
                    f"({op.method} {op.path}: {answer}): check its checkout door and its log"
                )

    def _check_target_answered(self, history: History) -> None:
        at_target = history.at_target()
        if at_target and all(op.status is None for op in at_target):
            raise TargetError(
                f"the target at {self.target.base_url} answered none of {len(at_target)} "
                f"requests ({at_target[0].error}): is it running?"
            )

    def read_target_metrics(self) -> dict[str, int] | None:
        """The target's own in-flight counters, where it exposes them."""
        if not self.target.metrics_path:
            return None
        try:
            response = httpx.get(self.target.base_url + self.target.metrics_path,
                                 timeout=5.0, trust_env=False)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError):
            return None

    def reset_target_metrics(self) -> None:
        if self.target.metrics_path:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(self.target.base_url + self.target.metrics_path + "/reset",
                           timeout=5.0, trust_env=False)


@contextlib.contextmanager
def reference_run(*, bugs: frozenset[str] | list[str] = frozenset(),
                  database_url: str | None = None, concurrency: int = 50,
                  request_timeout: float = 10.0, example_timeout: float = 60.0,
                  reference_port: int = 0, stripe_port: int = 0) -> Iterator[Runner]:
    """Everything the embedded default needs, started here and stopped after:
    PostgreSQL (embedded unless a URL is given), the fake Stripe API and the
    reference service (with ``bugs`` switched on), each in its own process.

    On a server the tool did not create, all writes go to a new schema
    ``chaos_<run>`` that the tool drops afterwards; nothing else is touched.
    """
    bugs = parse_bugs(bugs)
    webhook_secret = "whsec_" + secrets.token_hex(24)
    stripe_key = "sk_test_" + secrets.token_hex(12)
    anon_key = "anon_" + secrets.token_hex(12)
    redactor.add(webhook_secret)
    redactor.add(stripe_key)
    redactor.add(anon_key)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chaos-run-")))
        server_url = database_url or stack.enter_context(embedded_server())
        schema = f"chaos_{secrets.token_hex(4)}"
        admin = Database(server_url)
        stack.callback(admin.close)
        admin.execute(f'create schema "{schema}"')
        stack.callback(admin.execute, f'drop schema if exists "{schema}" cascade')

        stripe = stack.enter_context(running("fake-stripe", [], workdir=workdir, port=stripe_port))
        reference = stack.enter_context(running(
            "reference",
            ["--database-url", server_url, "--schema", schema, "--stripe-api-base", stripe.url,
             *itertools.chain.from_iterable(("--bug", b) for b in sorted(bugs))],
            workdir=workdir, port=reference_port,
            env={"CHAOS_WEBHOOK_SECRET": webhook_secret, "CHAOS_STRIPE_API_KEY": stripe_key,
                 "CHAOS_ANON_KEY": anon_key},
        ))
        db = Database(server_url, schema=schema)
        stack.callback(db.close)
        target = Target(base_url=reference.url, webhook_secret=webhook_secret, anon_key=anon_key)
        runner = Runner(target=target, stripe_url=stripe.url, db=db, concurrency=concurrency,
                        request_timeout=request_timeout, example_timeout=example_timeout)
        runner.reset_target_metrics()
        yield runner
