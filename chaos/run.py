"""One example end to end, and the infrastructure every example runs on.

An example: install its fixture (database), fire its set-up and waves
(trio), read what the target stored (database), check the invariants.
The trio world and the asyncio world never run at the same time.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import trio

from chaos import invariants
from chaos.client import Attempt, FixtureIds, Plan, plan, ticket_type_id
from chaos.config import Config
from chaos.database import Database, embedded_server, redact_url, throwaway_schema
from chaos.errors import InfrastructureError, TargetError, UsageError
from chaos.executor import Executor, ensure_descriptors
from chaos.history import History, Op, Outcome
from chaos.latency import Durations
from chaos.log import redactor
from chaos.observation import (
    PAYMENT_COLUMNS,
    TICKET_TYPE_COLUMNS,
    Checkout,
    Observation,
    Session,
    StripeCall,
    payment_outcome,
)
from chaos.reference.bugs import parse_bugs
from chaos.safety import check_database_host
from chaos.services import running
from chaos.shutdown import Teardown, cancelling, interrupt_in, received
from chaos.target import Target
from chaos.thresholds import Thresholds, is_error
from chaos.transport import LoopbackTransport
from strategies import Scenario


@dataclass(frozen=True)
class StripeView:
    """What the fake Stripe holds after an example (None: it could not tell)."""

    sessions: list[dict[str, Any]] | None = None
    calls: list[StripeCall] | None = None


class OutOfTime(Exception):
    """The run's whole-run deadline (``--max-seconds``) passed before or during an example."""


@dataclass(frozen=True)
class ExampleResult:
    scenario: Scenario
    history: History
    observation: Observation
    violations: list[invariants.Violation]


@dataclass
class HttpStats:
    """Requests at the target over the whole run (set-up calls excluded), and
    the concurrency achieved: in flight as the client and the target saw it,
    and the start skew of every schedule wave. Durations are histograms
    (:class:`chaos.latency.Durations`): memory stays flat however long the run."""

    requests: int = 0
    failed: int = 0
    unanswered: int = 0
    latencies: Durations = field(default_factory=Durations)
    #: The thresholds judge normal traffic: requests of examples with Stripe faults
    #: armed are left out (a 5xx is how a target asks Stripe to retry).
    under_fault: int = 0
    judged_errors: int = 0
    judged_latencies: Durations = field(default_factory=Durations)
    client_peak_in_flight: int = 0
    target_peak_in_flight: int | None = None
    skews: Durations = field(default_factory=Durations)

    def add(self, history: History) -> None:
        for op in history.at_target():
            self.requests += 1
            self.failed += is_error(op)
            self.unanswered += op.status is None
            self.latencies.add(op.latency)
            if op.ref.get("under_fault"):
                self.under_fault += 1
            else:
                self.judged_errors += is_error(op)
                self.judged_latencies.add(op.latency)
        self.client_peak_in_flight = max(self.client_peak_in_flight,
                                         history.client_peak_in_flight)
        if history.target_peak_in_flight is not None:
            self.target_peak_in_flight = max(self.target_peak_in_flight or 0,
                                             history.target_peak_in_flight)
        for wave in history.schedule_waves():
            if wave.preconnected > 1:
                self.skews.add(wave.skew)

    @property
    def start_skew(self) -> float:
        return self.skews.max()

    def to_data(self) -> dict[str, float | int]:
        latencies = self.latencies
        return {
            "requests": self.requests,
            "failed": self.failed,
            "unanswered": self.unanswered,
            "error_rate": round(self.failed / self.requests, 4) if self.requests else 0.0,
            "avg_ms": round(latencies.mean() * 1000, 2),
            "p50_ms": round(latencies.percentile(50) * 1000, 2),
            "p95_ms": round(latencies.percentile(95) * 1000, 2),
            "max_ms": round(latencies.max() * 1000, 2),
            "under_fault": self.under_fault,
        }

    def concurrency_data(self) -> dict[str, float | int | None]:
        """The ``concurrency`` figures of the report (``requested`` is added by the report)."""
        return {
            "peak_in_flight": self.target_peak_in_flight,
            "client_peak_in_flight": self.client_peak_in_flight,
            "start_skew_ms": round(self.start_skew * 1000, 3),
            "start_skew_p50_ms": round(self.skews.percentile(50) * 1000, 3),
            "waves_measured": len(self.skews),
        }

    def thresholds(self, limits: Thresholds) -> dict[str, dict[str, Any]]:
        return limits.check(requests=self.requests - self.under_fault, errors=self.judged_errors,
                            p95=self.judged_latencies.percentile(95))


#: Requests at the target failing in a row (5xx, no answer, refused) that end the run.
FAILING_STREAK = 20


class Runner:
    """Runs examples against one target; counts them and the HTTP they cost.

    Each example is bounded by ``example_timeout`` and by the run's
    ``deadline`` (``time.monotonic()`` seconds, None: none), whichever comes
    first. A target that refuses every connection, hangs, or fails
    ``FAILING_STREAK`` requests in a row ends the run with a TargetError.
    """

    def __init__(self, *, target: Target, stripe_url: str, db: Database, concurrency: int,
                 request_timeout: float, example_timeout: float,
                 deadline: float | None = None) -> None:
        self.target = target
        self.stripe_url = stripe_url
        self.db = db
        self.concurrency = concurrency
        self.request_timeout = request_timeout
        self.example_timeout = example_timeout
        self.deadline = deadline
        self.run_id = secrets.token_hex(3)
        self.examples = 0
        self.stats = HttpStats()
        self._ids = itertools.count(1)
        self._faults_armed = False
        #: Where the target's rows live, for the report (set by whoever started the target).
        self.database: dict[str, Any] = {}
        self._failing: list[Op] = []
        self._records_seq = 0

    def run_example(self, scenario: Scenario) -> ExampleResult:
        """Install the scenario's fixture, fire it, observe, check: one example.

        Raises OutOfTime when the run's deadline passes first, TargetError
        when the target is down, hangs or fails everything, InfrastructureError
        when the fake Stripe or the database fails.
        """
        budget = self.example_timeout
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise OutOfTime("the run's deadline passed")
            budget = min(budget, left)
        self.examples += 1
        event_id = f"chaos-{self.run_id}-{next(self._ids):06d}"
        ids = self._install_fixture(scenario, event_id)
        the_plan = plan(scenario, target=self.target, stripe_url=self.stripe_url,
                        event_id=event_id, ids=ids)
        history, finished, stripe = _stoppable(self._execute, the_plan, str(ids.event), budget)
        if not finished:
            if budget < self.example_timeout:
                raise OutOfTime("the run's deadline passed during an example")
            raise TargetError(
                f"an example did not finish within {self.example_timeout:g} s: "
                "the target or the fake Stripe hung; raise --example-timeout if it is just slow"
            )
        self.stats.add(history)
        self._check_target(history)
        self._check_setup(history)
        observation = self._observe(scenario, ids, the_plan, history, stripe)
        return ExampleResult(scenario, history, observation, invariants.check(observation))

    def _install_fixture(self, scenario: Scenario, event_id: str) -> FixtureIds:
        """Create the example's event and ticket types; the ids they ended up with
        (a statement that returns a row names the id from then on)."""
        event: Any = event_id
        rows = self.db.fetch_fitted(self.target.fixture_event_sql, event_id)
        if rows:
            event = next(iter(rows[0].values()))
        kinds = []
        for i, tt in enumerate(scenario.ticket_types):
            kind: Any = ticket_type_id(event_id, i)
            rows = self.db.fetch_fitted(self.target.fixture_ticket_type_sql, kind, event,
                                        f"Ticket type {i + 1}", tt.price, tt.capacity)
            if rows:
                kind = next(iter(rows[0].values()))
            kinds.append(kind)
        return FixtureIds(event, tuple(kinds))

    async def _execute(self, the_plan: Plan, event_id: str,
                       budget: float) -> tuple[History, bool, StripeView]:
        """Set-up, then the schedule's waves, then what Stripe holds; False when the
        budget ran out first."""
        history = History()
        stripe = StripeView()
        executor = Executor(concurrency=self.concurrency, request_timeout=self.request_timeout,
                            history=history)
        last_wave = max((i for i, p in enumerate(the_plan.phases) if p.wave is not None),
                        default=-1)
        window_open = counting = False  # the target's metrics window around the waves
        try:
            with trio.move_on_after(budget) as scope:
                await self._faults(executor.transport, the_plan.faults)
                for i, phase in enumerate(the_plan.phases):
                    if phase.wave is not None and not window_open:
                        window_open = True
                        counting = await self._metrics(executor.transport, reset=True) is not None
                    await executor.fire_wave(phase.calls, wave=phase.wave)
                    if any(op.door == "stripe" and op.outcome is not Outcome.OK
                           for op in history.ops):
                        return history, True, stripe  # _check_setup names the failed call
                    if i == last_wave and counting:
                        after = await self._metrics(executor.transport)
                        history.target_peak_in_flight = (after or {}).get("peak_in_flight")
                stripe = await self._read_stripe(executor.transport, event_id)
        finally:
            if the_plan.faults:  # whatever happened, the next example starts without them
                with trio.CancelScope(shield=True), trio.move_on_after(self.request_timeout):
                    await self._faults(executor.transport, [])
        return history, not scope.cancelled_caught, stripe

    async def _faults(self, transport: LoopbackTransport, rules: list[dict[str, Any]]) -> None:
        """Arm ``rules`` on the fake Stripe, or disarm every rule when there are none."""
        if not rules and not self._faults_armed:
            return
        requests = [httpx.Request("POST", self.stripe_url + "/_chaos/faults", json=rule)
                    for rule in rules] or [httpx.Request("DELETE", self.stripe_url + "/_chaos/faults")]
        for request in requests:
            try:
                with trio.fail_after(self.request_timeout):
                    response = await transport.handle_async_request(request)
                response.raise_for_status()
            except (httpx.HTTPError, trio.TooSlowError) as exc:
                raise InfrastructureError(
                    f"the fake Stripe API refused to {'arm' if rules else 'clear'} a fault "
                    f"({exc}): see its log") from None
        self._faults_armed = bool(rules)

    async def _read_stripe(self, transport: LoopbackTransport, event_id: str) -> StripeView:
        """The example's sessions as the fake Stripe holds them (every session whose
        metadata names the event) and the calls the target made to it since the
        last example; None where this fake Stripe cannot tell."""
        sessions = await self._control_get(transport, "/_chaos/objects/checkout.session",
                                           {"metadata[event_id]": event_id})
        records = await self._control_get(transport, "/_chaos/records",
                                          {"since": str(self._records_seq)})
        calls = None
        if records is not None:
            self._records_seq = int(records.get("last_seq") or self._records_seq)
            calls = [StripeCall.from_record(r) for r in records.get("data", [])
                     if r.get("path", "").startswith("/v1/")]
        return StripeView(sessions=None if sessions is None else list(sessions.get("data", [])),
                          calls=calls)

    async def _control_get(self, transport: LoopbackTransport, path: str,
                           params: dict[str, str]) -> dict[str, Any] | None:
        request = httpx.Request("GET", self.stripe_url + path, params=params)
        try:
            with trio.fail_after(self.request_timeout):
                response = await transport.handle_async_request(request)
            if response.status_code == 404:
                return None
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, trio.TooSlowError, ValueError) as exc:
            raise InfrastructureError(
                f"the fake Stripe API did not answer {path} ({exc}): see its log") from None
        return data if isinstance(data, dict) else None

    async def _metrics(self, transport: LoopbackTransport, *,
                       reset: bool = False) -> dict[str, int] | None:
        """The target's own in-flight counters (or a reset of them), where it exposes them."""
        if not self.target.metrics_path:
            return None
        url = self.target.base_url + self.target.metrics_path
        request = httpx.Request("POST", url + "/reset") if reset else httpx.Request("GET", url)
        try:
            with trio.fail_after(self.request_timeout):
                response = await transport.handle_async_request(request)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, trio.TooSlowError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _check_setup(self, history: History) -> None:
        """End the run when the fake Stripe failed a set-up call, or when the target's
        checkout door refuses what no retry would change.

        A checkout that fails under load (5xx, no answer) is a finding: the buyer's
        story stops there, thresholds count it, and _check_target ends the run if the
        target is broken. But 400/401/403/404 to an honest checkout, any other 4xx
        where no refusal was expected (not sold out, no contested key, not tampered),
        or an answer the tool cannot read, mean the door and the tool disagree on the
        contract: every further example would test nothing.
        """
        for op in history.ops:
            if op.door == "stripe" and op.outcome is not Outcome.OK:
                raise InfrastructureError(
                    f"the fake Stripe API failed a set-up call ({op.method} {op.path}: "
                    f"{op.status or op.error}): see its log"
                )
            if op.kind != "checkout" or op.outcome is Outcome.OK or op.ref.get("tampered"):
                continue
            malformed = (op.error or "").startswith("malformed answer")
            status = op.status or 0
            refused = status in (400, 401, 403, 404) or (
                400 <= status < 500 and status != 409 and not op.ref.get("expect"))
            if malformed or refused:
                answer = op.error if malformed else f"HTTP {op.status} {op.body[:160]}".strip()
                raise TargetError(
                    f"buyer {op.ref.get('buyer', 0) + 1}'s checkout at the target failed "
                    f"({op.method} {op.path}: {answer}): check its checkout door, the headers "
                    f"and payload it expects ({{{self._answer_fields()}}} answers), and its log"
                )

    def _answer_fields(self) -> str:
        """The answer fields the tool reads: ``url, sessionId`` for the reference service."""
        return ", ".join(p for p in (self.target.url_path, self.target.session_id_path) if p)

    def _check_target(self, history: History) -> None:
        """End the run when the target is down, hangs, or fails everything."""
        at_target = sorted(history.at_target(), key=lambda op: op.start)
        if not at_target:
            return
        url = self.target.base_url
        if not any(op.sent for op in at_target):
            raise TargetError(
                f"the target at {url} refused all {len(at_target)} connections "
                f"({at_target[0].error}): is it running? It may have crashed"
            )
        if all(op.status is None for op in at_target):
            timeouts = sum(op.sent and (op.error or "").startswith("no answer") for op in at_target)
            if timeouts == len(at_target):
                raise TargetError(
                    f"the target at {url} accepted connections but answered none of "
                    f"{len(at_target)} requests within {self.request_timeout:g} s: it hangs "
                    "(raise --request-timeout if it is only slow)"
                )
            refused = sum(not op.sent for op in at_target)
            dropped = len(at_target) - timeouts - refused
            parts = [f"{dropped} dropped without an answer" if dropped else "",
                     f"{timeouts} unanswered within {self.request_timeout:g} s" if timeouts else "",
                     f"{refused} refused" if refused else ""]
            raise TargetError(
                f"the target at {url} answered none of {len(at_target)} requests "
                f"({', '.join(p for p in parts if p)}): it crashed or hangs; see its log"
            )
        for op in at_target:
            if op.status is not None and op.status < 500:
                self._failing.clear()
            else:
                self._failing.append(op)
        if len(self._failing) >= FAILING_STREAK:
            kinds = Counter(f"HTTP {op.status}" if op.status else
                            ("not delivered" if not op.sent else "no answer") for op in self._failing)
            what = ", ".join(f"{k} x {n}" for k, n in kinds.most_common())
            raise TargetError(
                f"the target at {url} failed the last {len(self._failing)} requests in a row "
                f"({what}): it is failing, not just refusing bad input; see its log"
            )

    def _observe(self, scenario: Scenario, ids: FixtureIds, the_plan: Plan, history: History,
                 stripe: StripeView) -> Observation:
        """What the checker needs: Stripe's sessions, the attempts, the target's rows.

        Sessions come from the fake Stripe (every session of the event, the
        target's own included), plus any a buyer was bound to that it did not
        list; each is attributed to its buyer by id, else by its metadata.
        """
        # ticket type ids as text throughout: the metadata Stripe keeps is text
        kinds = [str(k) for k in ids.ticket_types]
        prices = {kinds[i]: tt.price for i, tt in enumerate(scenario.ticket_types)}
        op_of = {op.ref.get("attempt_id"): op.index for op in history.ops if op.kind == "checkout"}
        checkouts = []
        answered: dict[str, Attempt] = {}  # session id -> the first attempt answered with it
        for attempt in the_plan.attempts:
            buyer = scenario.buyers[attempt.buyer]
            tt_id = kinds[buyer.ticket_type]
            checkouts.append(Checkout(
                buyer=attempt.buyer, ticket_type=tt_id, quantity=buyer.quantity,
                unit_price=prices[tt_id], idempotency_key=attempt.idempotency_key,
                sent_unit_price=attempt.unit_price, sent_total=attempt.total,
                op=op_of.get(attempt.id), session=attempt.session_id))
            if attempt.session_id:
                answered.setdefault(attempt.session_id, attempt)
        owner_of = {b.session_id: i for i, b in enumerate(the_plan.bindings) if b.session_id}
        listed = {obj["id"]: obj for obj in stripe.sessions or []}
        for binding in the_plan.bindings:
            completed = binding.events.get("checkout.session.completed")
            if binding.session_id and binding.session_id not in listed and completed:
                listed[binding.session_id] = completed["data"]["object"]
        sessions = []
        for session_id, obj in listed.items():
            meta = obj.get("metadata") or {}
            first = answered.get(session_id)
            owner = owner_of.get(session_id, first.buyer if first else None)
            kind: str | None
            quantity: int | None
            if owner is not None:
                buyer = scenario.buyers[owner]
                kind = kinds[buyer.ticket_type]
                quantity = buyer.quantity
            else:
                kind = None if meta.get("ticket_type_id") is None else str(meta["ticket_type_id"])
                quantity = int(meta["quantity"]) if str(meta.get("quantity", "")).isdigit() else None
            # only the buyer's own session was paid; the events tell refunds and disputes
            events = list(the_plan.bindings[owner].events) \
                if owner is not None and owner_of.get(session_id) == owner else []
            sessions.append(Session(
                id=session_id, amount_total=int(obj.get("amount_total") or 0),
                outcome=payment_outcome(obj, events), payment_intent=obj.get("payment_intent"),
                buyer=owner, ticket_type=kind, quantity=quantity,
                unit_price=prices.get(kind) if kind else None,
                idempotency_key=first.idempotency_key if first else None,
            ))
        return Observation(
            history=history, sessions=tuple(sessions), checkouts=tuple(checkouts),
            tickets_per_payment=tuple(self._rows("tickets_per_payment_sql", PAYMENT_COLUMNS,
                                                 ids.event)),
            tickets_per_ticket_type=tuple(
                {**row, "ticket_type": None if row["ticket_type"] is None
                 else str(row["ticket_type"])}
                for row in self._rows("tickets_per_ticket_type_sql", TICKET_TYPE_COLUMNS,
                                      ids.event)),
            stripe_calls=tuple(stripe.calls or ()),
            queries=tuple((inv.name, inv.message, tuple(plain(row) for row in self.db.fetch_fitted(
                inv.sql, ids.event, readonly=True))) for inv in self.target.invariants),
        )

    def _rows(self, query: str, columns: tuple[str, ...], event: Any) -> list[dict[str, Any]]:
        rows = [plain(row) for row in
                self.db.fetch_fitted(getattr(self.target, query), event, readonly=True)]
        for row in rows:
            missing = [c for c in columns if c not in row]
            if missing:
                raise TargetError(
                    f"the observation query {query} returned columns {sorted(row)}, without "
                    f"{', '.join(missing)}: it must return {', '.join(columns)}"
                )
        return rows


def _stoppable(execute: Any, *args: Any) -> Any:
    """``trio.run(execute, *args)``, cancelled by a stop signal (SIGINT, SIGTERM, SIGHUP),
    which is then raised as :class:`chaos.shutdown.Interrupted` once trio has returned."""
    token: list[trio.lowlevel.TrioToken] = []
    scope = trio.CancelScope()

    def cancel() -> None:
        if token:
            with contextlib.suppress(trio.RunFinishedError):  # it just returned: nothing to stop
                token[0].run_sync_soon(scope.cancel)  # safe from a signal handler

    async def run() -> Any:
        token.append(trio.lowlevel.current_trio_token())
        if received() is not None:                # it came before the token was known
            scope.cancel()
        with scope:
            return await execute(*args)
        return None                               # cancelled: the signal is raised next

    with cancelling(cancel):
        try:
            return trio.run(run)
        except BaseException as exc:              # a signal that reached a task anyway
            interrupt = interrupt_in(exc)
            if interrupt is not None and interrupt is not exc:
                raise interrupt from None
            raise


def plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row of the target's database as JSON-ready values (reports carry them):
    whole numbers (``sum()`` gives numeric) as ints, anything else not JSON as text."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Decimal) and value == value.to_integral_value():
            value = int(value)
        elif not isinstance(value, (str, int, float, bool, type(None))):
            value = str(value)
        out[key] = value
    return out


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
    if database_url:   # before anything connects: reference runs stay on loopback
        check_database_host(database_url, what="--database-url / DATABASE_URL")
    ensure_descriptors(concurrency)
    webhook_secret = "whsec_" + secrets.token_hex(24)
    stripe_key = "sk_test_" + secrets.token_hex(12)
    anon_key = "anon_" + secrets.token_hex(12)
    redactor.add(webhook_secret)
    redactor.add(stripe_key)
    redactor.add(anon_key)
    with Teardown() as stack:
        # The service's secrets as the user set them (the CLI checked them), else the fresh ones.
        webhook_secret = os.environ.get("CHAOS_WEBHOOK_SECRET") or webhook_secret
        stripe_key = os.environ.get("CHAOS_STRIPE_API_KEY") or stripe_key
        anon_key = os.environ.get("CHAOS_ANON_KEY") or anon_key
        for secret in (webhook_secret, stripe_key, anon_key):
            redactor.add(secret)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chaos-run-")))
        server_url = database_url or stack.enter_context(embedded_server())
        schema = stack.enter_context(throwaway_schema(server_url))

        stripe = stack.enter_context(running("fake-stripe", [], workdir=workdir, port=stripe_port))
        reference = stack.enter_context(running(
            "reference",
            ["--schema", schema, "--stripe-api-base", stripe.url,
             *itertools.chain.from_iterable(("--bug", b) for b in sorted(bugs))],
            workdir=workdir, port=reference_port,
            # the URL may carry a password: the environment, not the command line
            env={"DATABASE_URL": server_url, "CHAOS_WEBHOOK_SECRET": webhook_secret,
                 "CHAOS_STRIPE_API_KEY": stripe_key, "CHAOS_ANON_KEY": anon_key},
        ))
        db = Database(server_url, schema=schema)
        stack.callback(db.close)
        target = Target(base_url=reference.url, webhook_secret=webhook_secret, anon_key=anon_key)
        runner = Runner(target=target, stripe_url=stripe.url, db=db, concurrency=concurrency,
                        request_timeout=request_timeout, example_timeout=example_timeout)
        runner.database = {"server": redact_url(database_url) if database_url else "embedded",
                           "schema": schema, "dropped_after_run": True}
        yield runner


@contextlib.contextmanager
def configured_run(config: Config, *, concurrency: int = 50, request_timeout: float = 10.0,
                   example_timeout: float = 60.0) -> Iterator[Runner]:
    """A run against the user's own service, as ``config`` describes it.

    Preflight first (the target answers, the database connects, every statement
    of the config rehearsed in a rolled-back transaction), then only the fake
    Stripe API is started, on ``stripe.port`` where the target's Stripe client
    sends its calls. The target's database is used as it is, on its schema: no
    schema is created or dropped, and rows are deleted only by the config's
    ``[fixtures].cleanup``, after the run, when it declares ``disposable = true``.
    """
    from chaos.preflight import check_target, connect, rehearse

    ensure_descriptors(concurrency)
    check_target(config)
    with Teardown() as stack:
        db = connect(config)
        stack.callback(db.close)
        rehearse(db, config)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chaos-run-")))
        try:
            stripe = stack.enter_context(running("fake-stripe", [], workdir=workdir,
                                                 port=config.stripe_port))
        except UsageError as exc:
            raise UsageError(f"stripe.port {config.stripe_port}: {exc}: free the port or "
                             "choose another (and point the target's Stripe client there)"
                             ) from None
        runner = Runner(target=config.target, stripe_url=stripe.url, db=db,
                        concurrency=concurrency, request_timeout=request_timeout,
                        example_timeout=example_timeout)
        runner.database = {"server": redact_url(config.database_url),
                           "schema": config.database_schema, "dropped_after_run": False,
                           "disposable": config.disposable,
                           "cleanup": "none" if not config.cleanup else
                           "pending" if config.disposable else
                           "skipped: database.disposable is not true"}
        try:
            yield runner
        except BaseException:
            with contextlib.suppress(Exception):
                _cleanup(db, config, runner)
            raise
        _cleanup(db, config, runner)


def _cleanup(db: Database, config: Config, runner: Runner) -> None:
    """``[fixtures].cleanup`` with $1 = ``chaos-<run>-%``, only on a disposable database."""
    if not config.cleanup or not config.disposable:
        return
    pattern = f"chaos-{runner.run_id}-%"
    for i, sql in enumerate(config.cleanup):
        try:
            db.fetch_fitted(sql, pattern)
        except InfrastructureError:
            raise
        except Exception as exc:  # the database refused the statement
            runner.database["cleanup"] = f"failed at fixtures.cleanup.{i}"
            raise UsageError(f"fixtures.cleanup.{i}: {str(exc).strip()[:200]}: fix the "
                             "statement") from None
    runner.database["cleanup"] = f"ran {len(config.cleanup)} statement(s) for {pattern}"
