"""One example end to end, and the infrastructure every example runs on.

An example: install its fixture (database), fire its set-up and waves
(trio), read what the target stored (database), check the invariants.
The trio world and the asyncio world never run at the same time. What is
decided from what was read is pure and lives elsewhere: whether the target is
fit to be judged (``chaos.health``), the observation (``chaos.observe``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import trio

from chaos import invariants
from chaos.config import Config
from chaos.database import Database, embedded_server, redact_url, throwaway_schema
from chaos.errors import InfrastructureError, TargetError, UsageError
from chaos.example import ExampleResult as ExampleResult  # re-exported: named here before
from chaos.example import OutOfTime as OutOfTime
from chaos.executor import Executor, ensure_descriptors
from chaos.health import FAILING_STREAK as FAILING_STREAK  # re-exported: named here before
from chaos.health import FailingStreak, setup_failure, target_down
from chaos.history import History, Op, Outcome
from chaos.journeys import list_catalogue
from chaos.latency import Durations
from chaos.log import redactor
from chaos.observation import PAYMENT_COLUMNS, TICKET_TYPE_COLUMNS, Observation, StripeCall
from chaos.observe import StripeView, TargetRows, intent_as_session, observe
from chaos.plan import (
    FixtureIds,
    Plan,
    checkout_values,
    drawn_event_types,
    plan,
    ticket_type_id,
)
from chaos.reference.bugs import parse_bugs
from chaos.retries import PAYMENT_EVENTS, RetriedDeliveries, ahead_of_payment
from chaos.safety import check_database_host, check_url
from chaos.services import running
from chaos.shutdown import Teardown, cancelling, interrupt_in, received
from chaos.target import ExampleData, PythonInvariant, SqlInvariant, Target
from chaos.thresholds import Thresholds, is_error
from chaos.transport import LoopbackTransport
from chaos.watchdog import temporary_folder
from strategies import Scenario

#: Ids per control-API request when the run reads objects back by id (each id is about
#: 30 characters in the query; httpx refuses a query over 65,536).
CONTROL_BATCH = 200


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
    #: 5xx answers to refunds and disputes ahead of their payment, which Stripe
    #: retries (:func:`chaos.retries.ahead_of_payment`): judged, not errors.
    ahead_of_payment: int = 0
    judged_latencies: Durations = field(default_factory=Durations)
    client_peak_in_flight: int = 0
    target_peak_in_flight: int | None = None
    skews: Durations = field(default_factory=Durations)

    def add(self, history: History, *, ahead: Sequence[Op] = ()) -> None:
        """Count one example's requests; ``ahead`` are its deliveries answered 5xx
        ahead of their payment."""
        early = {op.index for op in ahead}
        for op in history.at_target():
            self.requests += 1
            self.failed += is_error(op)
            self.unanswered += op.status is None
            self.latencies.add(op.latency)
            if op.ref.under_fault:
                self.under_fault += 1
            elif op.index in early:
                self.ahead_of_payment += 1
                self.judged_latencies.add(op.latency)
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
            # every 5xx ahead of its payment failed, and none was under a fault
            "failed_under_fault": self.failed - self.judged_errors - self.ahead_of_payment,
        }

    def histograms(self) -> dict[str, str]:
        """The report's ``histograms``: every latency histogram, encoded, so the reports of
        shards merge exactly (``chaos.report.merge``)."""
        return {"latencies": self.latencies.encoded(),
                "judged_latencies": self.judged_latencies.encoded(),
                "skews": self.skews.encoded()}

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
                            p95=self.judged_latencies.percentile(95), under_fault=self.under_fault,
                            ahead_of_payment=self.ahead_of_payment)


class Runner:
    """Runs examples against one target; counts them and the HTTP they cost.

    Each example is bounded by ``example_timeout`` and by the run's
    ``deadline`` (``time.monotonic()`` seconds, None: none), whichever comes
    first. A target that refuses every connection, hangs, or leaves
    ``FAILING_STREAK`` requests in a row without an answer ends the run with a
    TargetError; a target that answers, 5xx however often, is judged.
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
        #: Deliveries answered 5xx after their work committed: the report's note.
        self.retried = RetriedDeliveries()
        self._ids = itertools.count(1)
        self._faults_armed = False
        #: Where the target's rows live, for the report (set by whoever started the target).
        self.database: dict[str, Any] = {}
        self._streak = FailingStreak()
        self._records_seq = 0

    def skip_earlier_calls(self) -> None:
        """Start the fake Stripe's call records (``/_chaos/records``) from now: calls made
        before this run (a fake Stripe shared with other tests) are not its examples'."""
        trio.run(self.skip_earlier_calls_async)

    async def skip_earlier_calls_async(self) -> None:
        """:meth:`skip_earlier_calls` inside a trio run (a load run, a worker's too)."""
        found = await self._control_get(LoopbackTransport(), "/_chaos/records",
                                        {"since": str(10**12)})
        self._records_seq = int((found or {}).get("last_seq") or 0)

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
        ahead = ahead_of_payment(history, self._earlier_events(the_plan))
        self.stats.add(history, ahead=ahead)
        self._check_target(history)
        self._check_setup(history)
        observation = self._observe(scenario, ids, the_plan, history, stripe)
        self.retried.add(observation, ahead=ahead)
        return ExampleResult(scenario, history, observation, invariants.check(observation))

    def _earlier_events(self, the_plan: Plan) -> dict[int, list[str]]:
        """Per buyer, the events of its payment Stripe created before any refund or
        dispute, that the run delivers to this endpoint (:func:`ahead_of_payment`)."""
        sent = set(drawn_event_types(self.target))
        return {b: [t for t in binding.events if t in PAYMENT_EVENTS and t in sent]
                for b, binding in enumerate(the_plan.bindings)}

    def _install_fixture(self, scenario: Scenario, event_id: str) -> FixtureIds:
        """Create the example's event and ticket types; the ids they ended up with
        (a statement that returns a row names the id from then on). An id of any
        type (text, bigint, uuid) is kept as its JSON value (a uuid as its text):
        it goes into checkout bodies, reports and the corpus, and back into SQL,
        where the driver reads a uuid parameter from its text."""
        event: Any = event_id
        rows = self.db.fetch_fitted(self.target.fixture_event_sql, event_id)
        if rows:
            event = plain_value(next(iter(rows[0].values())))
        listings = list_catalogue(self.target, self.stripe_url, scenario, event_id, event,
                                  timeout=self.request_timeout)
        kinds = []
        for i, tt in enumerate(scenario.ticket_types):
            kind: Any = ticket_type_id(event_id, i)
            listed = listings[i] if listings else None
            rows = self.db.fetch_fitted(
                self.target.fixture_ticket_type_sql, kind, event, f"Ticket type {i + 1}",
                tt.price, tt.capacity, listed and listed.product_id, listed and listed.price_id,
                listed and listed.payment_link_id, listed and listed.payment_link_url)
            if rows:
                kind = plain_value(next(iter(rows[0].values())))
            kinds.append(kind)
        ids = FixtureIds(event, tuple(kinds), tuple(listings))
        if not self.target.fixture_buyer_sql:
            return ids
        buyers = []
        for b, who in enumerate(scenario.buyers):
            values = checkout_values(scenario, event_id, b, ids=ids)
            rows = self.db.fetch_fitted(
                self.target.fixture_buyer_sql, event, kinds[who.ticket_type], b + 1,
                who.quantity, values["email"], values["name"], values.get("product_id"),
                values.get("price_id"), values.get("payment_link_id"))
            buyers.append(plain(rows[0]) if rows else {})
        return FixtureIds(event, tuple(kinds), tuple(listings), tuple(buyers))

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
                stripe = await self._read_stripe(executor.transport, event_id, the_plan)
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

    async def _read_stripe(self, transport: LoopbackTransport, event_id: str,
                           the_plan: Plan) -> StripeView:
        """The example's sessions and their charges as the fake Stripe holds them now,
        and the calls the target made to it since the last example; None where this
        fake Stripe cannot tell.

        The example's sessions: every session whose metadata names the event (under
        the target's ``session_metadata_key``), every session the target's own
        recorded calls created during the example, and every session a buyer was
        answered with."""
        key = self.target.session_metadata_key
        # a bare PaymentIntent is the payment itself on the payment-intent journey
        kind = "payment_intent" if self.target.journey == "payment-intent" \
            else "checkout.session"
        listed = await self._control_get(transport, f"/_chaos/objects/{kind}",
                                         {f"metadata[{key}]": event_id})
        records = await self._control_get(transport, "/_chaos/records",
                                          {"since": str(self._records_seq)})
        calls = None
        if records is not None:
            self._records_seq = int(records.get("last_seq") or self._records_seq)
            calls = [StripeCall.from_record(r) for r in records.get("data", [])
                     if r.get("path", "").startswith("/v1/")]
        if listed is None:
            return StripeView(calls=calls)
        sessions = list(listed.get("data", []))
        answered = {b.session_id for b in the_plan.bindings} | {
            a.session_id for a in the_plan.attempts}
        created = {c.object_id for c in calls or () if c.method == "POST" and 200 <= c.status < 300
                   and c.path.rstrip("/") == "/v1/checkout/sessions"}
        missing = sorted(i for i in (answered | created) - {obj["id"] for obj in sessions} if i)
        if missing:
            more = await self._control_list(transport, f"/_chaos/objects/{kind}", "ids[]",
                                            missing)
            # a session a late call of the example before created names its own event
            sessions += [obj for obj in more if obj["id"] in missing
                         and (obj["id"] in answered
                              or (obj.get("metadata") or {}).get(key, event_id) == event_id)]
        if kind == "payment_intent":
            sessions = [intent_as_session(obj) for obj in sessions]
        intents = sorted({obj["payment_intent"] for obj in sessions if obj.get("payment_intent")})
        charges: list[dict[str, Any]] = []
        if intents:
            found = await self._control_list(transport, "/_chaos/objects/charge",
                                             "payment_intents[]", intents)
            charges = [c for c in found if c.get("payment_intent") in intents]
        return StripeView(sessions=sessions, calls=calls, charges=charges)

    async def _control_list(self, transport: LoopbackTransport, path: str, key: str,
                            values: list[str]) -> list[dict[str, Any]]:
        """The objects at ``path`` for every one of ``values`` (a list parameter ``key``),
        asked for ``CONTROL_BATCH`` at a time: a load interval can name thousands of ids,
        more than one URL holds."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(values), CONTROL_BATCH):
            page = await self._control_get(transport, path,
                                           {key: values[start:start + CONTROL_BATCH]})
            found += (page or {}).get("data", [])
        return found

    async def _control_get(self, transport: LoopbackTransport, path: str,
                           params: dict[str, str | list[str]]) -> dict[str, Any] | None:
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
        """End the run when the fake Stripe failed a set-up call or the target's checkout
        endpoint refuses what no retry would change (:func:`chaos.health.setup_failure`)."""
        error = setup_failure(history, journey=self.target.journey,
                              answer_fields=self._answer_fields())
        if error is not None:
            raise error

    def _answer_fields(self) -> str:
        """The answer fields the tool reads: ``url, sessionId`` for the reference service."""
        return ", ".join(p for p in (self.target.url_path, self.target.session_id_path) if p)

    def _check_target(self, history: History) -> None:
        """End the run when the target is down or hangs (:func:`chaos.health.target_down`):
        no answer at all, in this example or ``FAILING_STREAK`` requests in a row."""
        error = target_down(history, url=self.target.base_url,
                            request_timeout=self.request_timeout, streak=self._streak)
        if error is not None:
            raise error

    def _observe(self, scenario: Scenario, ids: FixtureIds, the_plan: Plan, history: History,
                 stripe: StripeView) -> Observation:
        """What the checker needs: the target's rows read here, the rest mapped by
        :func:`chaos.observe.observe` (pure)."""
        rows = TargetRows(
            tickets_per_payment=tuple(self._rows("tickets_per_payment_sql", PAYMENT_COLUMNS,
                                                 ids.event)),
            tickets_per_ticket_type=tuple(self._rows("tickets_per_ticket_type_sql",
                                                     TICKET_TYPE_COLUMNS, ids.event)),
            queries=tuple((inv.name, inv.message, tuple(plain(row) for row in self.db.fetch_fitted(
                inv.sql, ids.event, readonly=True))) for inv in self.target.invariants
                if isinstance(inv, SqlInvariant)))
        observation = observe(scenario, ids.ticket_types, the_plan, history, stripe, rows,
                              promises=self.target.promises)
        functions = [inv for inv in self.target.invariants if isinstance(inv, PythonInvariant)]
        if not functions:
            return observation
        data = ExampleData(event_id=ids.event, observation=observation,
                           query=lambda sql, *args: self.query(sql, *(args or (ids.event,))))
        broken = [(inv.name, *judged) for inv in functions
                  for judged in [inv.judge(data)] if judged is not None]
        return dataclasses.replace(observation, functions=tuple(broken))

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """A read-only statement on the target's database, its rows as JSON-ready dicts
        (what a Python invariant's ``data.query`` runs)."""
        return [plain(row) for row in self.db.fetch_fitted(sql, *args, readonly=True)]

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
    which is then raised as :class:`chaos.shutdown.Interrupted` once trio has returned.

    A signal recorded before it started is raised too: Python runs the handler wherever
    the main thread is, in a ``__del__`` or a gc callback as well, and what it raises
    there is printed and dropped (a CI run saw it in trio's ``Nursery.__del__`` and in
    Hypothesis' gc callback); the next example is where it surfaces."""
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
            result = trio.run(run)
        except BaseException as exc:              # a signal that reached a task anyway
            interrupt = interrupt_in(exc)
            if interrupt is not None and interrupt is not exc:
                raise interrupt from None
            raise
    if scope.cancelled_caught:                    # by a signal whose raise was dropped
        interrupt = received()
        if interrupt is not None:
            raise interrupt
    return result


def plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row of the target's database as JSON-ready values (reports carry them)."""
    return {key: plain_value(value) for key, value in row.items()}


def plain_value(value: Any) -> Any:
    """A value of the target's database as JSON carries it: whole numbers (``sum()``
    gives numeric) as ints, anything else not JSON (a uuid, a timestamp) as its text."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if not isinstance(value, (str, int, float, bool, type(None))):
        return str(value)
    return value


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
        workdir = stack.enter_context(temporary_folder("chaos-run-"))
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
                   example_timeout: float = 60.0, stripe_url: str | None = None
                   ) -> Iterator[Runner]:
    """A run against the user's own service, as ``config`` describes it.

    Preflight first (the target answers, the database connects, every statement
    of the config rehearsed in a rolled-back transaction), then only the fake
    Stripe API is started, on ``stripe.port`` where the target's Stripe client
    sends its calls; or, with ``stripe_url``, the fake Stripe already running there
    is used (the pytest plugin's, which the service under test was pointed at), and
    only the calls made from now on are the run's. The target's database is used as
    it is, on its schema: no schema is created or dropped, and rows are deleted only
    by the config's ``[fixtures].cleanup``, after the run, when it declares
    ``disposable = true``.
    """
    from chaos.preflight import check_target, connect, rehearse

    if stripe_url is not None:
        check_url(stripe_url, what="the fake Stripe's URL")
    ensure_descriptors(concurrency)
    check_target(config)
    with Teardown() as stack:
        db = connect(config)
        stack.callback(db.close)
        rehearse(db, config)
        if stripe_url is None:
            workdir = stack.enter_context(temporary_folder("chaos-run-"))
            try:
                stripe_url = stack.enter_context(running("fake-stripe", [], workdir=workdir,
                                                         port=config.stripe_port)).url
            except UsageError as exc:
                raise UsageError(f"stripe.port {config.stripe_port}: {exc}: free the port or "
                                 "choose another (and point the target's Stripe client there)"
                                 ) from None
        runner = Runner(target=config.target, stripe_url=stripe_url, db=db,
                        concurrency=concurrency, request_timeout=request_timeout,
                        example_timeout=example_timeout)
        runner.skip_earlier_calls()
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
