"""The load run: virtual users playing buyer journeys, checked while it goes.

Each virtual user (VU) loops: draw a journey (:mod:`chaos.load.mix`), let
the client plan it (``chaos.plan.plan``, as for any example), fire its
calls in order over the VU's two kept-alive connections (the target, the
fake Stripe's control API), with race waves fired by the executor, one
connection per request, behind a start barrier. Every answer is an
:class:`~chaos.history.Op`, folded into the run's metrics at once.

Invariants are checked per *check interval*: every ``check_every`` seconds
(or ``interval_buyers`` journeys, whichever first) the run opens a fresh
fixture event (its own ticket types: a plentiful one and a tight one) for
the journeys that start from then on. Once every journey of a closed
interval has ended, its buyers are observed exactly as an example is
(``Runner._observe``: the target's rows, then ``chaos.observe.observe``) and
checked with every invariant, in a worker thread (the database's asyncio
loop lives on a thread of its own; trio never shares a loop with it). The
ops of an interval are dropped once it is checked, so memory is bounded by
the interval, not by the run's length.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import itertools
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from chaos import invariants
from chaos.errors import ChaosError, InfrastructureError
from chaos.executor import Call, Executor
from chaos.history import CheckoutRef, History, Op, Outcome
from chaos.keepalive import KeepAlive, WireRequest
from chaos.load.metrics import Metrics, endpoint_of
from chaos.load.mix import Mix, draw_journey
from chaos.load.profile import LoadProfile
from chaos.plan import Attempt, BuyerBinding, FixtureIds, Plan, plan
from chaos.run import FAILING_STREAK, Runner
from chaos.transport import LoopbackTransport
from strategies import Buyer, Scenario

_EXCERPT = 300
#: How often the VU controller looks at the profile.
_TICK = 0.05


@dataclass(frozen=True)
class LoadOptions:
    """What a load run does: its shape, its mix, how often it checks."""

    profile: LoadProfile
    mix: Mix = Mix()
    seed: int = 0
    check_every: float = 5.0
    interval_buyers: int = 300
    request_timeout: float = 10.0
    #: Seconds VUs may take to finish their journey once the run is over (k6's gracefulStop).
    graceful_stop: float = 10.0
    #: ``(w, n)``: this process is worker ``w`` of ``n`` and plays VU i when i % n == w
    #: (and 1/n of an arrival rate).
    share: tuple[int, int] = (0, 1)
    #: Reset and read the target's in-flight meter (one process of a run does).
    measure_target: bool = True


class Interval:
    """The buyers of one check interval: one fixture event, their plans, their ops."""

    def __init__(self, number: int, event_id: str, ids: FixtureIds) -> None:
        self.number = number
        self.event_id = event_id
        self.ids = ids
        self.opened = time.monotonic()
        self.buyers: list[Buyer] = []
        self.bindings: list[BuyerBinding] = []
        self.attempts: list[Attempt] = []
        self.history = History()
        self.active = 0
        self.closed = False
        self.done = trio.Event()

    def join(self, scenario: Scenario, the_plan: Plan) -> None:
        """Take a journey's buyer in: renumber it (and its attempts) as this interval's."""
        g = len(self.buyers)
        self.buyers.append(scenario.buyers[0])
        self.bindings.append(the_plan.bindings[0])
        renumbered = {}
        for attempt in the_plan.attempts:
            renumbered[attempt.id] = len(self.attempts)
            attempt.id, attempt.buyer = len(self.attempts), g
            self.attempts.append(attempt)
        tight = scenario.buyers[0].ticket_type == 1
        for phase in the_plan.phases:
            for call in phase.calls:
                ref = call.ref
                if isinstance(ref, CheckoutRef) and ref.attempt_id is not None:
                    # the last tickets are raced for: sold out (409) is an answer
                    call.ref = dataclasses.replace(
                        ref, buyer=g, attempt_id=renumbered[ref.attempt_id],
                        expect=(ref.expect or "any") if tight else ref.expect)
                else:
                    call.ref = ref.evolved(buyer=g)
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
        if self.closed and self.active == 0:
            self.done.set()

    def close(self) -> None:
        self.closed = True
        if self.active == 0:
            self.done.set()


@dataclass
class InvariantTally:
    """One invariant over the run: how many violations, in how many intervals, the first."""

    violations: int = 0
    intervals: int = 0
    first: dict[str, Any] | None = None


@dataclass
class LoadResult:
    """What a load run measured (the summary and the JSON are built from it)."""

    metrics: Metrics
    seconds: float
    journeys: int
    dropped: int
    intervals_checked: int
    buyers_checked: int
    invariants: dict[str, InvariantTally]
    client_peak_in_flight: int
    target_peak_in_flight: int | None
    peak_vus: int
    connections: int
    #: CPU seconds this process (and, merged, every worker) spent on the load itself:
    #: firing, recording, checking; start-up excluded.
    cpu_seconds: float = 0.0
    #: Requests per endpoint answered while the profile ran (before its ``seconds``), not
    #: in the graceful stop after it, when fewer VUs finish their journeys: the rate at
    #: the profile's VUs is these over the profile's seconds.
    in_profile: dict[str, int] = dataclasses.field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        """A plain form another process can send back (``from_data``)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["metrics"] = self.metrics.encoded()
        data["invariants"] = {n: dataclasses.asdict(t) for n, t in self.invariants.items()}
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> LoadResult:
        return cls(**{**data, "metrics": Metrics.decoded(data["metrics"]),
                      "invariants": {n: InvariantTally(**t)
                                     for n, t in data["invariants"].items()}})

    def merge(self, other: LoadResult) -> None:
        """Add another worker's result: sums, merged histograms, the earliest first violation.
        Peaks add up (each worker's own peak: an upper bound of the run's)."""
        self.metrics.merge(other.metrics)
        self.seconds = max(self.seconds, other.seconds)
        for name in ("journeys", "dropped", "intervals_checked", "buyers_checked",
                     "client_peak_in_flight", "peak_vus", "connections", "cpu_seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for endpoint, count in other.in_profile.items():
            self.in_profile[endpoint] = self.in_profile.get(endpoint, 0) + count
        for name, tally in other.invariants.items():
            mine = self.invariants.setdefault(name, InvariantTally())
            mine.violations += tally.violations
            mine.intervals += tally.intervals
            mine.first = mine.first or tally.first


class LoadRun:
    """Drives one load run against the target of ``runner`` (see the module docstring)."""

    def __init__(self, runner: Runner, options: LoadOptions,
                 on_tick: Callable[[LoadRun], None] | None = None) -> None:
        self.runner = runner
        self.options = options
        self.on_tick = on_tick
        self.metrics = Metrics()
        self.tallies = {name: InvariantTally() for name in invariants.INVARIANTS}
        for inv in runner.target.invariants:
            self.tallies[inv.name] = InvariantTally()
        self.journeys = 0
        self.dropped = 0
        self.intervals_checked = 0
        self.buyers_checked = 0
        self.in_flight = 0
        self.client_peak = 0
        self.running_vus = 0
        self.peak_vus = 0
        self.connections = 0
        self.started = 0.0
        self.in_profile: dict[str, int] = {}
        self._numbers = itertools.count()
        self._recent: deque[Op] = deque(maxlen=FAILING_STREAK)
        self._stripe_failing = 0
        self._control = LoopbackTransport()
        self.current: Interval | None = None
        self._rotate_now = trio.Event()
        self._closed_send, self._closed_receive = trio.open_memory_channel[Interval](math.inf)

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> LoadResult:
        """Ramp, hold and stop the VUs as the profile says; check every interval."""
        profile = self.options.profile
        # the first check reads the target's calls to the fake Stripe from here on, not every
        # call of a fake Stripe that served earlier runs (a worker's runner is its own)
        await self.runner.skip_earlier_calls_async()
        if self.options.measure_target:
            await self.runner._metrics(self._control, reset=True)
        self.current = await self._open_interval()
        self.started = trio.current_time()
        async with trio.open_nursery() as checks:
            checks.start_soon(self._checker)
            async with trio.open_nursery() as load:
                load.start_soon(self._rotator)
                if profile.rate is not None:
                    await self._arrivals(load)
                else:
                    await self._ramp(load)
                with trio.move_on_after(self.options.graceful_stop):
                    while self.running_vus:
                        await trio.sleep(_TICK)
                load.cancel_scope.cancel()
            seconds = trio.current_time() - self.started
            self.current.close()
            self._closed_send.send_nowait(self.current)
            self._closed_send.close()
        after = await self.runner._metrics(self._control) if self.options.measure_target else None
        return LoadResult(
            metrics=self.metrics, seconds=seconds, journeys=self.journeys, dropped=self.dropped,
            intervals_checked=self.intervals_checked, buyers_checked=self.buyers_checked,
            invariants=self.tallies, client_peak_in_flight=self.client_peak,
            target_peak_in_flight=(after or {}).get("peak_in_flight"), peak_vus=self.peak_vus,
            connections=self.connections, in_profile=self.in_profile)

    def elapsed(self) -> float:
        return trio.current_time() - self.started if self.started else 0.0

    async def _ramp(self, nursery: trio.Nursery) -> None:
        """k6's ramping-vus: start VU i while i < vus_at(t); a VU above it stops after its
        journey."""
        running: set[int] = set()
        profile = self.options.profile
        while self.elapsed() < profile.seconds:
            want = profile.vus_at(self.elapsed())
            mine, workers = self.options.share
            for i in range(mine, want, workers):
                if i not in running:
                    running.add(i)
                    nursery.start_soon(self._vu, i, running)
            self._tick()
            await trio.sleep(_TICK)

    async def _vu(self, index: int, running: set[int]) -> None:
        rng = random.Random(f"{self.options.seed}-{index}-{next(self._numbers)}")
        doors = {"target": KeepAlive(), "stripe": KeepAlive()}
        self._vus(+1)
        try:
            profile = self.options.profile
            while index < profile.vus_at(self.elapsed()):
                await self._journey(rng, doors)
        finally:
            self._vus(-1)
            running.discard(index)
            self.connections += sum(d.opened for d in doors.values())
            for door in doors.values():
                await door.aclose()

    async def _arrivals(self, nursery: trio.Nursery) -> None:
        """k6's constant-arrival-rate: a journey starts every 1/rate s on a free VU, or is
        dropped (counted) when every VU is busy."""
        profile = self.options.profile
        assert profile.rate is not None
        send, receive = trio.open_memory_channel[None](0)
        mine, workers = self.options.share
        for i in range(mine, profile.max_vus, workers):   # each waiting before the clock starts
            await nursery.start(self._rate_vu, i, receive.clone())
        period = workers / profile.rate
        begin = trio.current_time()
        for arrival in itertools.count(1):
            if self.elapsed() >= profile.seconds:
                break
            try:
                send.send_nowait(None)
            except trio.WouldBlock:
                self.dropped += 1
            self._tick()
            await trio.sleep_until(begin + arrival * period)
        await send.aclose()

    async def _rate_vu(self, index: int, receive: trio.MemoryReceiveChannel[None], *,
                       task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        rng = random.Random(f"{self.options.seed}-{index}")
        doors = {"target": KeepAlive(), "stripe": KeepAlive()}
        task_status.started()
        try:
            async for _ in receive:
                self._vus(+1)
                try:
                    await self._journey(rng, doors)
                finally:
                    self._vus(-1)
        finally:
            self.connections += sum(d.opened for d in doors.values())
            for door in doors.values():
                await door.aclose()

    def _vus(self, delta: int) -> None:
        self.running_vus += delta
        self.peak_vus = max(self.peak_vus, self.running_vus)

    def _tick(self) -> None:
        if self.on_tick is not None:
            self.on_tick(self)

    # -- one journey -----------------------------------------------------------------------

    async def _journey(self, rng: random.Random, doors: dict[str, KeepAlive]) -> None:
        interval = self.current
        assert interval is not None
        scenario = draw_journey(rng, self.options.mix)
        number = self.journeys
        self.journeys += 1
        runner = self.runner
        the_plan = plan(scenario, target=runner.target, stripe_url=runner.stripe_url,
                        event_id=f"{interval.event_id}-j{number}", ids=interval.ids)
        interval.join(scenario, the_plan)
        if len(interval.buyers) >= self.options.interval_buyers:
            self._rotate_now.set()
        try:
            for phase in the_plan.phases:
                if len(phase.calls) == 1:
                    op = await self._send(phase.calls[0], doors, interval)
                    if op is not None and op.door == "stripe" and op.outcome is not Outcome.OK:
                        return  # the payment did not happen: the rest of the story cannot
                else:
                    await self._race(phase.calls, phase.wave, interval)
        finally:
            interval.leave()

    async def _send(self, call: Call, doors: dict[str, KeepAlive], interval: Interval) -> Op | None:
        """One call over the VU's kept-alive connection to its door, recorded as an op."""
        request: httpx.Request | None = None
        if call.build_wire is not None and call.on_answer is None:
            wire = call.build_wire()   # nobody reads the answer: bytes, no httpx objects
        else:
            request = call.build()
            wire = None if request is None else WireRequest.of(request)
        if wire is None:
            return None  # what it needs never came (sold out): skipped, as in an example
        attempt = trio.current_time()
        sent_at: float | None = None
        status: int | None = None
        body, error = "", None
        outcome = Outcome.INFO
        self.in_flight += 1
        if self.in_flight > self.client_peak:
            self.client_peak = self.in_flight
        try:
            answer = await doors[call.door].exchange(wire, timeout=self.options.request_timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
            outcome, error = Outcome.FAIL, f"not delivered: {exc}"
        except httpx.HTTPError as exc:
            sent_at = attempt
            outcome, error = Outcome.INFO, f"{type(exc).__name__}: {exc}"
        else:
            sent_at, status = answer.sent_at, answer.status
            body = answer.body[:_EXCERPT].decode("utf-8", "replace")
            outcome = Outcome.OK if 200 <= status < 300 else Outcome.FAIL
            if outcome is Outcome.OK and call.on_answer is not None and request is not None:
                response = httpx.Response(status, headers=answer.headers, content=answer.body,
                                          request=request,
                                          extensions={"http_version": b"HTTP/1.1"})
                try:
                    call.on_answer(response)
                except (ValueError, KeyError, TypeError) as exc:
                    outcome = Outcome.FAIL
                    error = f"malformed answer: {type(exc).__name__}: {exc}"[:200]
        finally:
            self.in_flight -= 1
        # the call's own ref, not a copy (a tenth of the op's cost): a journey's plan is
        # its own, each of its calls is sent once, and nothing writes the ref afterwards
        op = Op(index=interval.history.next_index(), kind=call.kind, door=call.door,
                method=wire.method, path=wire.path, wave=call.wave, step=call.step,
                start=sent_at if sent_at is not None else attempt, end=trio.current_time(),
                status=status, outcome=outcome, body=body, error=error, ref=call.ref,
                sent=sent_at is not None)
        self._record(op, interval)
        return op

    async def _race(self, calls: list[Call], wave: int | None, interval: Interval) -> None:
        """Copies fired together: the executor's wave, one connection per request."""
        for call in calls:
            call.ref = call.ref.evolved(race=True)
        executor = Executor(concurrency=len(calls), request_timeout=self.options.request_timeout)
        self.in_flight += len(calls)
        self.client_peak = max(self.client_peak, self.in_flight)
        try:
            await executor.fire_wave(calls, wave=wave)
        finally:
            self.in_flight -= len(calls)
        self.connections += len(executor.history.ops)
        for op in executor.history.ops:
            self._record(dataclasses.replace(op, index=interval.history.next_index()), interval)

    def _record(self, op: Op, interval: Interval) -> None:
        interval.history.append(op)
        self.metrics.add(op)
        if op.end - self.started <= self.options.profile.seconds:
            endpoint = endpoint_of(op)
            self.in_profile[endpoint] = self.in_profile.get(endpoint, 0) + 1
        if op.door == "stripe":
            self._stripe_failing = 0 if op.outcome is Outcome.OK else self._stripe_failing + 1
            if self._stripe_failing >= FAILING_STREAK:
                raise InfrastructureError(
                    f"the fake Stripe API failed the last {self._stripe_failing} payments in a "
                    f"row ({op.method} {op.path}: {op.status or op.error}): see its log")
            return
        self._recent.append(op)
        if len(self._recent) == FAILING_STREAK and all(
                o.status is None or o.status >= 500 for o in self._recent):
            self.runner._check_target(History(ops=list(self._recent)))

    # -- intervals and checks ---------------------------------------------------------------

    async def _open_interval(self) -> Interval:
        runner = self.runner
        event_id = f"chaos-{runner.run_id}-{next(runner._ids):06d}"
        shape = Scenario(buyers=(), waves=(), ticket_types=self.options.mix.ticket_types())
        ids = await trio.to_thread.run_sync(runner._install_fixture, shape, event_id)
        return Interval(next(self._numbers), event_id, ids)

    async def _rotator(self) -> None:
        """Close the current interval every ``check_every`` s (or when it is full)."""
        while True:
            assert self.current is not None
            left = self.current.opened + self.options.check_every - time.monotonic()
            with trio.move_on_after(max(0.0, left)):
                await self._rotate_now.wait()
            self._rotate_now = trio.Event()
            fresh = await self._open_interval()
            old, self.current = self.current, fresh
            old.close()
            self._closed_send.send_nowait(old)

    async def _checker(self) -> None:
        async for interval in self._closed_receive:
            await interval.done.wait()
            if not interval.buyers:
                continue
            the_plan = Plan(phases=[], bindings=interval.bindings, attempts=interval.attempts,
                            faults=[])
            stripe = await self.runner._read_stripe(self._control, str(interval.ids.event),
                                                    the_plan)
            found = await trio.to_thread.run_sync(
                functools.partial(self._check, interval, stripe, the_plan))
            self.intervals_checked += 1
            self.buyers_checked += len(interval.buyers)
            broken: set[str] = set()
            for violation in found:
                tally = self.tallies.setdefault(violation.invariant, InvariantTally())
                tally.violations += 1
                if tally.first is None:
                    tally.first = {**violation.to_data(), "interval": interval.event_id}
                broken.add(violation.invariant)
            for name in broken:
                self.tallies[name].intervals += 1
            interval.history = History()  # bounded memory: the interval's ops are done with

    def _check(self, interval: Interval, stripe: Any, the_plan: Plan) -> list[invariants.Violation]:
        scenario = Scenario(buyers=tuple(interval.buyers), waves=(),
                            ticket_types=self.options.mix.ticket_types())
        observation = self.runner._observe(scenario, interval.ids, the_plan, interval.history,
                                           stripe)
        return invariants.check(observation)


def run_load(runner: Runner, options: LoadOptions,
             on_tick: Callable[[LoadRun], None] | None = None) -> LoadResult:
    """Run the load against ``runner``'s target; raises ChaosError when it cannot."""
    load = LoadRun(runner, options, on_tick)
    cpu = time.process_time()
    try:
        with fewer_collections():
            result = trio.run(load.run)
        result.cpu_seconds = time.process_time() - cpu
        return result
    except* ChaosError as group:
        raise _first(group) from None


#: The cyclic garbage collector's first threshold during a load run (CPython's: 700
#: allocations). Every request allocates a dozen objects (its plan's call and reference,
#: the op, the answer), so at 700 the collector ran every few dozen requests and took a
#: sixth of the client's CPU (``nox -s bench``: 0.118 to 0.128 ms of client CPU per
#: request, 0.102 to 0.105 at 50,000). Reference counting frees almost all of it; the
#: cycles (each journey's plan: a call and the closures that set its reference) wait
#: for a collection a few times a second.
GC_THRESHOLD = 50_000


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """The collector's first threshold at :data:`GC_THRESHOLD`, put back afterwards."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], GC_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _first(group: BaseExceptionGroup[ChaosError]) -> ChaosError:
    """The first ChaosError of a (nested) group, to report as one line."""
    inner = group.exceptions[0]
    return _first(inner) if isinstance(inner, BaseExceptionGroup) else inner
