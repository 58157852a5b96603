"""The search: play the playbook, let Hypothesis draw scenarios for the whole
budget, then turn every distinct failure into a finding a person can act on.

A run goes through named phases (:class:`Phase`), in order:

0. ``replay``: with an example database (``saved``,
   :class:`chaos.exampledb.SavedFailures`), the failures saved there by other
   shards and earlier runs of the same target, smallest first, each once
   (``tries`` times for a race); one that no longer fails is deleted.
   While drawing, the search looks again every ``POLL_SECONDS`` and replays
   what shards running beside it saved meanwhile (counted as ``replay`` too).
   Every new failure of an invariant is saved there as it is found, and each
   confirmed finding's minimized scenario once it is.
1. ``playbook``: the classic stories (``strategies.playbook()``), each once
   (``tries`` times when a wave fires two or more requests together).
2. ``search``: Hypothesis draws ``examples`` scenarios. A failure does not
   stop it: the property records the failure and returns, so the whole
   budget (``--examples`` / ``--max-seconds``) is spent whatever was found
   and one bug cannot hide another. Hypothesis' own shrinker never runs
   (it shrinks only raised failures, and stops generating soon after the
   first). Races do not reproduce every time: the first failure of each
   invariant is re-run ``tries - 1`` times; while one proved not
   deterministic, later examples whose waves fire requests together are
   tried up to ``tries`` times (amplification).
3. ``minimize``: failures are grouped into *distinct bugs*: the invariant
   plus the shape (``strategies.shape``: the multiset of buyers' outcomes,
   step kinds, event types, signatures, faults) of the smallest scenario that
   breaks it. Failures are taken the playbook's first, then smallest first
   (one per set of parts), those that tell none of the stories found so far
   before those that do; each is minimized on the
   scenario itself (``strategies.simplifications``, applied greedily for at
   most ``shrink_seconds``); one that minimizes to a shape already found is
   the same bug again. After ``max_repeats`` such repeats of an invariant in
   a row, or twice that many minimizations of it in all, its remaining
   failures are left alone: the time goes to other invariants, and a run
   stays bounded however many failures it saw. Once the phase has spent
   ``triage_seconds`` in all, only invariants with no bug found yet are
   minimized: every broken invariant is still reported, and a run with many
   failing stories does not spend minutes telling the same bug again.
4. ``confirm``: each distinct bug is re-run ``confirm_runs`` times: FAILED
   with its reproduction rate (k of n), or FLAKY when it did not fail again
   (a FLAKY minimized scenario falls back to the failure it came from). A
   FLAKY bug of an invariant that also has a FAILED one is left out: one
   lucky failure is no evidence of a second bug.

A bug already known (``known``: a case of the corpus, or ``--known CASE``) is
the same invariant and shape as a recorded case: its failures are confirmed
and reported as known, and do not count against the search for new ones.

Three things stop the search early, cleanly, even in the middle of a phase:
the run's deadline (``--max-seconds``), an error of the target or the
infrastructure, and a stop signal (:class:`chaos.shutdown.Interrupted`:
Ctrl-C, SIGTERM, SIGHUP). What was found until then is still reported: the
smallest failing scenario seen per invariant not yet confirmed, marked as
such; after a signal the caller re-raises it once the report is written.

Settings profiles (``--profile``): ``default`` (100 examples), ``dev``
(20 examples), ``ci`` (derandomized unless a seed is given, no deadline) and
``thorough`` (2,000 examples). With ``saved`` (``--example-db``) any profile
replays the failures saved there first (phase ``replay``). Hypothesis' own
database holds nothing for the search: Hypothesis saves only what raises and
the best examples of ``hypothesis.target``, and the search does neither.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from hypothesis import HealthCheck, Verbosity, given, settings
from hypothesis import Phase as HypothesisPhase
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.internal.conjecture import engine as hypothesis_engine

from chaos.errors import ChaosError
from chaos.events import SearchEvents, Silent
from chaos.example import ExampleResult, OutOfTime
from chaos.invariants import Violation
from chaos.shutdown import Interrupted, interrupt_in
from strategies import Scenario, Shape, shape, simplifications, tells

if TYPE_CHECKING:
    from chaos.exampledb import SavedFailures

T = TypeVar("T")

#: Where a minimized failure slipped (:attr:`Finding.slipped`): a held story that still
#: broke, as its shape and whether it only dropped parts; () none; None not known.
Slipped = tuple[tuple[Shape, bool], ...] | None

_BASE = settings(
    deadline=None, database=None, verbosity=Verbosity.quiet,
    suppress_health_check=list(HealthCheck),
    # no targeting phase: the search does not steer (see _draw_run)
    phases=(HypothesisPhase.explicit, HypothesisPhase.generate),
    print_blob=False,
)

#: Hypothesis settings per ``--profile`` name. Each example costs real HTTP
#: and SQL (about 20 to 100 ms), so example counts are modest.
PROFILES: dict[str, settings] = {
    "default": settings(_BASE, max_examples=100),
    "dev": settings(_BASE, max_examples=20),
    "ci": settings(_BASE, max_examples=100, derandomize=True),
    "thorough": settings(_BASE, max_examples=2000),
}

#: Share of the time left at the start of the search kept for minimizing and confirming
#: (with a ``deadline``): the search phase ends early, once it has failures, to leave it.
RESERVE = 0.25

#: Repeats (failures that minimized to a bug already found) an invariant may cost
#: before its remaining failures are left alone.
MAX_REPEATS = 3

#: Seconds between two looks, while drawing, at the example database for failures that
#: other shards saved meanwhile (each look is one fetch: a Redis round trip).
POLL_SECONDS = 5.0

#: Seconds the minimize phase may spend on invariants that already have a bug (a
#: further story of an invariant is most often the same bug told again); failures
#: of invariants with no bug yet are minimized whatever the time.
TRIAGE_SECONDS = 60.0


class Phase(StrEnum):
    """Where a search is; also which part of the run drew a failure."""

    REPLAY = "replay"
    PLAYBOOK = "playbook"
    SEARCH = "search"
    MINIMIZE = "minimize"
    CONFIRM = "confirm"
    DONE = "done"


class Status(StrEnum):
    """A finding's verdict: it failed again when re-run, or it did not."""

    FAILED = "FAILED"
    FLAKY = "FLAKY"


class StopReason(StrEnum):
    """Why a search ended before its budget: the deadline, or an error."""

    MAX_SECONDS = "max-seconds"
    ERROR = "error"


#: Examples Hypothesis keeps in its cache of results (its default: 10,000). Each
#: holds its whole choice sequence and spans (about 30 kB of ours), so the default
#: made the tool grow by 35 kB per example up to 10,000; the cache only spares
#: re-running a repeated choice sequence, which the shrinker's recent ones cover.
RESULT_CACHE = 256

#: Examples Hypothesis draws in one run; a search is several runs, each seeded from the
#: search's seed and its number. Within a run Hypothesis draws a few scenarios afresh and
#: then mostly mutates those it drew (about five in six of a long run's examples), so a
#: story drawn once in ten scenarios is missed by one seed in eight; each new run starts
#: afresh. Measured on the search's own draws (``tools/measure_steering.py`` predicates,
#: seeds 0..19, 100 examples): in runs of 10 rather than one of 100, the seeds that drew
#: ack-before-commit's outage on a lone completion rose from 11 to 20 of 20 (18 once
#: latencies and hangs became one-call faults, ``--draw-run 10``),
#: unpaid-fulfilled's failed payment's completion from 17 to 20, order-dependent's early
#: refund from 19 to 20, and 81 of 100 scenarios were distinct instead of 67. Short runs
#: also keep memory flat: Hypothesis keeps a tree of every choice of a run until it ends
#: (about 2.5 kB per example of ours; ``benchmarks/draw_memory.py``).
DRAW_RUN = 10


def _run_seed(seed: int | None, run: int, *, derandomized: bool) -> int | None:
    """The seed of the search's ``run``-th Hypothesis run: the search's seed for the
    first, one derived from it (and the run) for the others, so a seed replays the whole
    search; with no seed, derandomized profiles get fixed ones, others none (random)."""
    if run == 0:
        return seed
    if seed is None and not derandomized:
        return None
    digest = hashlib.sha256(f"payment-chaos:{seed}:{run}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass
class Finding:
    """One distinct bug, minimized: the invariant it broke, the scenario, the evidence.

    ``reproduced`` of ``runs`` confirmation runs broke the invariant
    again. ``note`` says when the figures are partial (the search was cut
    short, so the scenario may not be minimized or confirmed). ``shape`` is
    the scenario's (what makes the bug distinct); ``known`` names the case
    that recorded it before, None for a new bug; ``phase`` is where its
    first failure was drawn (``replay``, ``playbook`` or ``search``); ``failures`` counts
    the failing examples that turned out to be this bug.
    """

    invariant: str
    scenario: Scenario
    violations: list[Violation]
    status: Status = Status.FAILED
    reproduced: int = 0
    runs: int = 0
    note: str | None = None
    shape: Shape = ()
    known: str | None = None
    phase: Phase = Phase.SEARCH
    failures: int = 1
    #: The run the evidence comes from (its violations, history and observation): the
    #: last confirmation run that broke the invariant, else the run that found it. The
    #: reports draw rows, timeline and steps from this one run, so their ids match.
    result: ExampleResult | None = None
    #: A found bug's story minimizing held it off that still broke the invariant one
    #: step away (see :func:`_minimize`): its shape, and whether that step only dropped
    #: parts (a buyer, a request) rather than changed one; () when none did, None when
    #: minimizing ran out of ``shrink_seconds`` before it knew.
    slipped: Slipped = ()


@dataclass(frozen=True)
class KnownBug:
    """A bug recorded before: a case's invariant and scenario, and where it is (``case``)."""

    invariant: str
    scenario: Scenario
    case: str

    @property
    def shape(self) -> Shape:
        return shape(self.scenario)


@dataclass(frozen=True)
class FirstFailure:
    """The first example that broke an invariant: its number (1-based, counting every
    example the search ran, re-runs included), when it ended (``time.monotonic()``)
    and the first invariant it broke."""

    example: int
    at: float
    invariant: str
    #: which part of the run drew it: ``replay`` (saved in the example database), ``playbook`` or ``search``.
    phase: str = Phase.SEARCH


@dataclass
class SearchResult:
    """What the search found, how many examples it ran, and why it stopped early."""

    examples: int
    findings: list[Finding] = field(default_factory=list)
    #: None: it ran its course; else why it stopped early (``error``: see ``error``; a
    #: signal's name, "SIGINT", "SIGTERM" or "SIGHUP": see ``interrupt``).
    stopped: StopReason | str | None = None
    error: ChaosError | None = None
    #: The stop signal that cut the search short; the caller re-raises it after reporting.
    interrupt: Interrupted | None = None
    #: The first failing example, None when every example passed.
    first_failure: FirstFailure | None = None
    #: Examples run per part of the search: "playbook", "search" (Hypothesis' draws and
    #: their re-runs), "minimize" (step by step, after it), "confirm".
    by_phase: dict[str, int] = field(default_factory=dict)


@dataclass
class _Failure:
    """A failing example of one invariant, waiting to be minimized."""

    invariant: str
    result: ExampleResult
    phase: Phase
    order: int


class _DrawnEnough(BaseException):
    """Ends Hypothesis' generation when the time kept for minimizing has come."""


class _Stop(BaseException):
    """Stops Hypothesis at once (it does not treat a BaseException as a failure):
    the deadline passed (``error`` None) or the target failed (``error``)."""

    def __init__(self, error: ChaosError | None = None) -> None:
        super().__init__(str(error) if error else StopReason.MAX_SECONDS)
        self.error = error
        self.why = StopReason.ERROR if error else StopReason.MAX_SECONDS


def _size(scenario: Scenario) -> tuple[int, int, int]:
    return (scenario.requests, len(scenario.buyers), len(scenario.waves))


def _races(scenario: Scenario) -> bool:
    return any(len(wave) > 1 for wave in scenario.waves)


class Search:
    """One search over ``strategy`` with ``run_example``: :meth:`run` walks the phases.

    The state a person debugging it wants is on the object: ``phase``,
    ``examples`` (every run, re-runs included), ``failures`` (the failing
    examples waiting to be minimized, one per invariant and scenario) and
    ``deterministic`` (per invariant: did its first failure break on every re-run).
    """

    def __init__(self, run_example: Callable[[Scenario], ExampleResult],
                 strategy: st.SearchStrategy[Scenario], *, chosen: settings, seed: int | None,
                 tries: int, confirm_runs: int, deadline: float | None,
                 shrink_seconds: float, playbook: Sequence[Scenario],
                 known: Sequence[KnownBug], max_repeats: int,
                 triage_seconds: float = TRIAGE_SECONDS,
                 events: SearchEvents | None = None,
                 saved: SavedFailures | None = None,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self.run_example = run_example
        self.events: SearchEvents = events if events is not None else Silent()
        self._announced: Phase | None = None
        self.strategy = strategy
        self.chosen = chosen
        self.seed = seed
        self.tries = tries
        self.confirm_runs = confirm_runs
        self.deadline = deadline
        self.shrink_seconds = shrink_seconds
        self.playbook = tuple(playbook)
        self.known = {(k.invariant, k.shape): k for k in known}
        self.max_repeats = max_repeats
        self.triage_seconds = triage_seconds
        self.saved = saved
        #: the first failure of each invariant, saved as it was found (not minimized)
        self._saved_first: list[tuple[str, Scenario]] = []
        #: saved failures replayed (or saved by this search): each is replayed once
        self._replayed: set[tuple[str, Scenario]] = set()
        #: seconds between looks at the example database for other shards' failures
        self.poll_seconds = poll_seconds
        self._next_poll = 0.0
        self.phase = Phase.REPLAY
        self.examples = 0
        self.by_phase: Counter[str] = Counter()
        self.first: FirstFailure | None = None
        self.failures: dict[tuple[str, Scenario], _Failure] = {}
        self.deterministic: dict[str, bool] = {}
        #: every confirmation run, by scenario: a bug's runs are all of its scenario's
        self.confirmations: dict[Scenario, list[ExampleResult]] = {}
        self.outcome = SearchResult(examples=0)
        #: when the search phase ends to leave time for minimizing (with a deadline)
        self.draw_until: float | None = None
        if deadline is not None:
            now = time.monotonic()
            self.draw_until = deadline - RESERVE * max(0.0, deadline - now)
        #: set when the deadline stopped an example (the runner's OutOfTime)
        self.time_up = False

    # -- the phases ----------------------------------------------------------------------

    def run(self) -> SearchResult:
        """Play, search, minimize, confirm; what was found, even when cut short."""
        try:
            self._replay_new()
            self.phase = Phase.PLAYBOOK
            for scenario in self.playbook:
                self._play(scenario)
            self.phase = Phase.SEARCH
            cache_size = hypothesis_engine.CACHE_SIZE   # read when Hypothesis' engine starts
            hypothesis_engine.CACHE_SIZE = RESULT_CACHE
            try:
                self._draw()
            finally:
                hypothesis_engine.CACHE_SIZE = cache_size
        except _DrawnEnough:
            self.outcome.stopped = StopReason.MAX_SECONDS
        except _Stop as stop:
            self.outcome.stopped, self.outcome.error = stop.why, stop.error
        except (Interrupted, BaseExceptionGroup) as raised:  # a stop signal, maybe in a group
            self._interrupted(raised)
        self.phase = Phase.MINIMIZE
        self._triage()
        self.phase = Phase.DONE
        self.outcome.examples = self.examples
        self.outcome.first_failure = self.first
        self.outcome.by_phase = dict(self.by_phase)
        return self.outcome

    def _replay_new(self) -> None:
        """Replay the saved failures not replayed yet (every one at the start; later, those
        other shards saved meanwhile), in the ``replay`` phase."""
        if self.saved is None:
            return
        self._next_poll = time.monotonic() + self.poll_seconds
        new = [f for f in self._stored(self.saved.fetch) if f not in self._replayed]
        if not new:
            return
        phase, self.phase = self.phase, Phase.REPLAY
        for invariant, scenario in new:
            self._replayed.add((invariant, scenario))
            self._replay(invariant, scenario)
        self.phase = phase

    def _replay(self, invariant: str, scenario: Scenario) -> None:
        """A saved failure, run again; deleted from the database when it broke nothing."""
        assert self.saved is not None
        for _ in range(self.tries if _races(scenario) else 1):
            result = self._run(scenario)
            self._record(result)
            if _violations_of(invariant, result):
                return
        self._stored(self.saved.delete, invariant, scenario)

    def _play(self, scenario: Scenario) -> None:
        for _ in range(self.tries if _races(scenario) else 1):
            if self._record(self._run(scenario)):
                return

    def _draw(self) -> None:
        """Hypothesis draws the examples, in runs of at most :data:`DRAW_RUN` (its
        bookkeeping grows with every example of a run and is freed when it ends); it
        stops early when a run draws fewer than asked (the strategy is exhausted)."""
        budget = self.chosen.max_examples
        for run in itertools.count():
            size = min(DRAW_RUN, budget)
            if size <= 0 or self._draw_run(size, run) < size:
                return
            budget -= size

    def _draw_run(self, size: int, run: int) -> int:
        """One Hypothesis run of ``size`` examples; how many it drew.

        It does not steer (``hypothesis.target``): with targets, Hypothesis spends half
        the budget hill-climbing them, and of the other half most examples are its
        mutations of earlier ones, leaving about 20 independent draws in 100. Measured
        with ``tools/measure_steering.py --swarm --seeds 20`` (100 examples, seeds
        0..19; in how many seeds a story was drawn at all, plain / steered): oversell's
        race 20 / 20, order-dependent's early refund 20 / 18, unpaid-fulfilled's
        completion 19 / 18, trust-client-price's forged price 20 / 18, a stale
        delivery 20 / 20, a dispute 20 / 17, events out of order 14 / 9, a wave of 10+
        13 / 12; steering found none more often."""
        drawn = 0

        @settings(self.chosen, max_examples=size)
        @given(self.strategy)
        def prop(scenario: Scenario) -> None:
            nonlocal drawn
            drawn += 1
            if self.failures and self.draw_until is not None \
                    and time.monotonic() >= self.draw_until:
                raise _DrawnEnough()
            if self.saved is not None and time.monotonic() >= self._next_poll:
                self._replay_new()   # what shards running beside this one saved meanwhile
            amplify = _races(scenario) and not all(self.deterministic.values())
            for _ in range(self.tries if amplify else 1):
                result = self._run(scenario)
                if self._record(result):
                    break

        seed = _run_seed(self.seed, run, derandomized=self.chosen.derandomize)
        if seed is not None:
            prop = hypothesis_seed(seed)(prop)   # Hypothesis' database is off then
        prop()
        return drawn

    def _triage(self) -> None:
        """Minimize the failures, smallest first, into distinct bugs, and confirm each."""
        bugs: dict[tuple[str, Shape], Finding] = {}
        repeats: Counter[str] = Counter()
        minimized: Counter[str] = Counter()
        pending = _worth_minimizing(self.failures.values())
        spent_by = time.monotonic() + self.triage_seconds
        while pending:
            # next: the first failure that tells none of its invariant's found stories
            # (likely a new bug), else the first (likely a repeat)
            n = next((i for i, f in enumerate(pending) if not any(
                tells(shape(f.result.scenario), told) for (name, told) in bugs
                if name == f.invariant)), 0)
            failure = pending.pop(n)
            invariant, result = failure.invariant, failure.result
            seen = bugs.get((invariant, shape(result.scenario)))
            if seen is not None:
                seen.failures += 1
                continue
            if repeats[invariant] >= self.max_repeats \
                    or minimized[invariant] >= self.max_repeats * 2:
                continue
            if time.monotonic() >= spent_by and any(name == invariant for name, _ in bugs):
                continue   # the phase's time is spent: new invariants only
            minimized[invariant] += 1
            if self.outcome.error is not None or self.outcome.interrupt is not None \
                    or self._out_of_time():
                self._cut_short([failure, *pending], bugs)
                return
            found = frozenset(told for name, told in bugs if name == invariant)
            try:
                self.phase = Phase.MINIMIZE
                finding = self._minimized_and_confirmed(failure, found)
            except _Stop as stop:
                self.outcome.stopped, self.outcome.error = stop.why, stop.error
                self._cut_short([failure, *pending], bugs)
                return
            except (Interrupted, BaseExceptionGroup) as raised:
                self._interrupted(raised)
                self._cut_short([failure, *pending], bugs)
                return
            key = (invariant, finding.shape)
            if key not in bugs and finding.slipped != ():   # one broke, or unknown
                key = _slipped_into(invariant, finding, bugs) or key
            if key in bugs:
                repeats[invariant] += 1
                bugs[key].failures += 1
                if bugs[key].status is Status.FLAKY and finding.status is Status.FAILED \
                        and key[1] == finding.shape:   # the same story, and this one reproduced
                    bugs[key] = replace(finding, failures=bugs[key].failures,
                                        phase=bugs[key].phase, known=bugs[key].known)
                continue
            if finding.known is None:
                repeats[invariant] = 0  # a new bug: its invariant may hide more
            bugs[key] = finding
        self.outcome.findings += _without_lucky(self._every_run(bugs.values()))
        if self.saved is not None:
            try:
                self._stored(self._save, self.outcome.findings)
            except _Stop as stop:    # the findings stand; the run ends in error after them
                self.outcome.stopped, self.outcome.error = stop.why, stop.error

    @staticmethod
    def _stored(do: Callable[..., T], *args: Any) -> T:
        """A call of the example database; its failure stops the search (:class:`_Stop`,
        which Hypothesis lets through) with the error, rather than failing an example."""
        try:
            return do(*args)
        except ChaosError as exc:
            raise _Stop(exc) from None

    def _save(self, findings: Sequence[Finding]) -> None:
        """Save each FAILED finding's scenario in the example database; a first failure
        saved as it was found is deleted once its invariant has one (the minimized
        scenario stands for it): a night adds a bug's smallest story, not every draw."""
        assert self.saved is not None
        failed = [f for f in findings if f.status is Status.FAILED]
        for finding in failed:
            self.saved.save(finding.invariant, finding.scenario)
        kept = {(f.invariant, f.scenario) for f in failed}
        for name, scenario in self._saved_first:
            if (name, scenario) not in kept and any(f.invariant == name for f in failed):
                self.saved.delete(name, scenario)

    def _minimized_and_confirmed(self, failure: _Failure, found: frozenset[Shape]) -> Finding:
        invariant, result = failure.invariant, failure.result
        known = self.known.get((invariant, shape(result.scenario)))
        smaller, slipped = (result, ()) if known else self._minimize(invariant, result, found)
        self.phase = Phase.CONFIRM
        finding = self._confirm(invariant, smaller)
        finding.slipped = slipped
        if finding.status is Status.FLAKY and smaller is not result and not self._out_of_time():
            again = self._confirm(invariant, result)
            finding = again if again.status is Status.FAILED else finding
        finding.phase = failure.phase
        known = self.known.get((invariant, finding.shape))
        if known is not None:
            finding.known = known.case
        return finding

    def _cut_short(self, pending: Sequence[_Failure], bugs: dict[tuple[str, Shape], Finding],
                   ) -> None:
        """Report what was confirmed, and the smallest failure of each invariant that
        has no confirmed bug yet, as not confirmed."""
        why = "the run ended with an error" if self.outcome.error \
            else f"interrupted by {self.outcome.interrupt.name}" if self.outcome.interrupt \
            else "the search reached --max-seconds"
        found = _without_lucky(self._every_run(bugs.values()))
        broken = {f.invariant for f in found}
        for failure in pending:  # smallest first
            if failure.invariant in broken:
                continue
            broken.add(failure.invariant)
            found.append(_unconfirmed(failure.invariant, failure.result, why, failure.phase))
        self.outcome.findings += found

    def _every_run(self, bugs: Iterable[Finding]) -> list[Finding]:
        """The bugs, each counted over every confirmation run of its scenario: two
        invariants a race breaks by turns (two ticket sets, or a duplicate answered 500)
        share one scenario, and the runs that confirmed one also tell of the other."""
        counted = []
        for bug in bugs:
            runs = self.confirmations.get(bug.scenario, [])
            if bug.runs == 0 or len(runs) <= bug.runs:   # not confirmed (cut short)
                counted.append(bug)
                continue
            broke = [run for run in runs if _violations_of(bug.invariant, run)]
            evidence = broke[-1] if broke else bug.result
            counted.append(replace(
                bug, runs=len(runs), reproduced=len(broke),
                status=Status.FAILED if broke else Status.FLAKY, result=evidence,
                violations=_violations_of(bug.invariant, broke[-1]) if broke else bug.violations))
        return counted

    def _interrupted(self, raised: BaseException) -> None:
        """Keep the stop signal in ``raised`` for the caller (it re-raises it once the
        report is written); anything else is not ours to swallow."""
        interrupt = interrupt_in(raised)
        if interrupt is None:
            raise raised
        self.outcome.stopped, self.outcome.interrupt = interrupt.name, interrupt

    # -- running examples ----------------------------------------------------------------

    def _example(self, scenario: Scenario) -> ExampleResult:
        """One more example, counted in the part of the run that runs it (also when it
        raises), and told to ``events``: its phase when it is the phase's first, its
        result when it ends."""
        self.examples += 1
        self.by_phase[self.phase.value] += 1
        if self.phase is not self._announced:
            self._announced = self.phase
            self.events.phase_started(self.phase.value)
        result = self.run_example(scenario)
        self.events.example_done(result, self.phase.value)
        return result

    def _out_of_time(self) -> bool:
        return self.time_up or self.deadline is not None and time.monotonic() >= self.deadline

    def _run(self, scenario: Scenario) -> ExampleResult:
        """One example; the deadline or an error stops the search (:class:`_Stop`)."""
        if self._out_of_time():
            self.time_up = True
            raise _Stop()
        try:
            return self._example(scenario)
        except OutOfTime:
            self.time_up = True
            raise _Stop() from None
        except ChaosError as exc:
            raise _Stop(exc) from None

    def _record(self, result: ExampleResult) -> bool:
        """Keep a failing example, once per invariant and scenario; True when it failed.
        The first failure of each invariant is re-run to see whether it is a race."""
        if not result.violations:
            return False
        if self.first is None:
            self.first = FirstFailure(example=self.examples, at=time.monotonic(),
                                      invariant=result.violations[0].invariant,
                                      phase=self.phase)
        for name in dict.fromkeys(v.invariant for v in result.violations):
            key = (name, result.scenario)
            if key not in self.failures:
                self.failures[key] = _Failure(name, result, self.phase, len(self.failures))
            if name not in self.deterministic:
                if self.saved is not None and self.phase is not Phase.REPLAY:
                    self._stored(self.saved.save, name, result.scenario)  # shards see it
                    self._saved_first.append((name, result.scenario))
                    self._replayed.add((name, result.scenario))
                self.deterministic[name] = True  # until a re-run says otherwise
                self.deterministic[name] = all(
                    _violations_of(name, self._run(result.scenario))
                    for _ in range(self.tries - 1))
        return True

    def _minimize(self, invariant: str, result: ExampleResult, found: frozenset[Shape] = frozenset(),
                  ) -> tuple[ExampleResult, Slipped]:
        until = time.monotonic() + self.shrink_seconds
        if self.deadline is not None:
            until = min(until, self.deadline)
        tries = 1 if self.deterministic.get(invariant, True) else self.tries

        def rerun(scenario: Scenario) -> ExampleResult:
            try:
                return self._example(scenario)
            except OutOfTime:
                self.time_up = True
                raise
            except ChaosError as exc:
                raise _Stop(exc) from None

        return _minimize(invariant, result, rerun, tries=tries, until=until, avoid=found)

    def _confirm(self, invariant: str, result: ExampleResult) -> Finding:
        """Re-run the scenario up to ``confirm_runs`` times to measure how often it fails."""
        reproduced = done = 0
        evidence = result   # the last run that broke it: the one the reports show
        for _ in range(self.confirm_runs):
            if self._out_of_time():
                break
            try:
                again = self._example(result.scenario)
            except OutOfTime:
                self.time_up = True
                break
            except ChaosError as exc:
                raise _Stop(exc) from None
            done += 1
            self.confirmations.setdefault(result.scenario, []).append(again)
            if _violations_of(invariant, again):
                reproduced += 1
                evidence = again
        if done == 0:
            return _unconfirmed(invariant, result, "no time was left to re-run it "
                                "(--max-seconds)", Phase.SEARCH)
        note = None if done == self.confirm_runs else \
            f"only {done} of {self.confirm_runs} confirmation runs fitted in --max-seconds"
        return Finding(invariant=invariant, scenario=result.scenario,
                       violations=_violations_of(invariant, evidence),
                       status=Status.FAILED if reproduced else Status.FLAKY,
                       reproduced=reproduced, runs=done, note=note,
                       shape=shape(result.scenario), result=evidence)


def search(run_example: Callable[[Scenario], ExampleResult], strategy: st.SearchStrategy[Scenario],
           *, examples: int | None = None, seed: int | None = None, tries: int = 3,
           confirm_runs: int = 5, profile: str = "default",
           deadline: float | None = None, shrink_seconds: float | None = 20.0,
           playbook: Sequence[Scenario] = (), known: Sequence[KnownBug] = (),
           max_repeats: int = MAX_REPEATS, events: SearchEvents | None = None,
           triage_seconds: float = TRIAGE_SECONDS,
           saved: SavedFailures | None = None,
           poll_seconds: float = POLL_SECONDS) -> SearchResult:
    """Search ``strategy``'s scenarios for invariant violations with ``run_example``
    (see the module docstring for the phases).

    ``examples`` overrides the profile's example count; ``deadline`` is a
    ``time.monotonic()`` value after which nothing new starts;
    ``shrink_seconds`` bounds the minimizing of each distinct bug (None: 30 s);
    ``events`` hears of each phase and example (:class:`chaos.events.SearchEvents`);
    ``saved`` is the example database's failures (replayed first, kept up to date), and
    Hypothesis' own database for the draws when no ``seed`` is given.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose from {', '.join(PROFILES)}")
    if tries < 1 or confirm_runs < 1:
        raise ValueError(f"tries={tries} and confirm_runs={confirm_runs} must be >= 1")
    chosen = PROFILES[profile]
    if examples is not None:
        chosen = settings(chosen, max_examples=examples)
    return Search(run_example, strategy, chosen=chosen, seed=seed, tries=tries,
                  confirm_runs=confirm_runs, deadline=deadline,
                  shrink_seconds=30.0 if shrink_seconds is None else shrink_seconds,
                  playbook=playbook, known=known, max_repeats=max_repeats,
                  triage_seconds=triage_seconds,
                  events=events, saved=saved, poll_seconds=poll_seconds).run()


def _worth_minimizing(failures: Iterable[_Failure]) -> list[_Failure]:
    """The failures in the order they are minimized: the saved ones' and the playbook's
    first (each is a different story), then the drawn ones smallest first; of drawn failures
    made of the same set of parts (``shape`` without counts), only the smallest."""
    ordered = sorted(failures, key=lambda f: (f.phase not in (Phase.REPLAY, Phase.PLAYBOOK),
                                              _size(f.result.scenario), f.order))
    kept: list[_Failure] = []
    parts: set[tuple[str, frozenset[str]]] = set()
    for failure in ordered:
        key = (failure.invariant, frozenset(shape(failure.result.scenario)))
        if failure.phase in (Phase.REPLAY, Phase.PLAYBOOK) or key not in parts:
            kept.append(failure)
            parts.add(key)
    return kept


def _without_lucky(findings: list[Finding]) -> list[Finding]:
    """Leave out a FLAKY bug of an invariant that has a FAILED one."""
    failed = {f.invariant for f in findings if f.status is Status.FAILED}
    return [f for f in findings if f.status is Status.FAILED or f.invariant not in failed]


def _minimize(invariant: str, result: ExampleResult,
              run: Callable[[Scenario], ExampleResult], *, tries: int,
              until: float, avoid: frozenset[Shape] = frozenset(),
              ) -> tuple[ExampleResult, Slipped]:
    """Greedy minimization: take the first simpler scenario that still breaks
    ``invariant``, start again from it, stop when none does or at ``until``;
    the smallest failure, and where it *slipped*: a simpler scenario that
    would still break it but was held off because it tells a story of
    ``avoid`` (its shape, and whether it only dropped parts), or None when
    ``until`` came before that was known.

    ``avoid`` are the shapes of the invariant's bugs found already: a simpler
    scenario that tells one of them is not taken (what Hypothesis calls
    slippage: a failure shrinking into another bug's). So a second bug whose story holds
    the first's (a refund after its completion voiding one seat of two, behind
    a refund before its completion dropped) stays its own; a failure that
    only tells a found bug with more around it, or that a found bug's story
    is one changed part away from (an outcome, a signature), is that bug again,
    which the caller decides (:func:`_slipped_into`).

    One held scenario that still breaks decides it, so the held ones are run
    only until one does, and only those that can decide: a held scenario that
    dropped parts says "that bug again" only when the failure's own story tells
    a found one (else the found story is inside it, and the part it needs
    around it is what makes it a bug of its own). Out of time before one broke
    or all were run, nothing was learnt (None): not "none broke", which would
    make the found bug with more around it a bug of its own.

    A race (``tries`` > 1) may break in any of ``tries`` runs. A failure that
    proved deterministic (``tries`` == 1) only gives way to a simpler scenario
    that breaks twice in a row: one failure of a simpler scenario can be timing
    (work still running when the rows were read), and the confirmation runs
    would then report a deterministic bug as FLAKY."""
    current = result
    improved = True
    held: list[Scenario] = []

    def breaks(candidate: Scenario) -> ExampleResult | None:
        verdicts = []
        for _ in range(tries if tries > 1 else 2):
            if time.monotonic() >= until:
                raise OutOfTime()
            again = run(candidate)
            verdicts.append(bool(_violations_of(invariant, again)))
            if tries > 1 and verdicts[-1] or tries == 1 and not verdicts[-1]:
                break
        return again if (all(verdicts) if tries == 1 else any(verdicts)) else None

    try:
        while improved:
            improved, held = False, []
            for candidate in simplifications(current.scenario):
                if any(tells(shape(candidate), told) for told in avoid):
                    held.append(candidate)
                    continue
                again = breaks(candidate)
                if again is not None:
                    current, improved = again, True
                    break
        # at the smallest failure: does a found bug's story lie one step away?
        size = (current.scenario.requests, len(current.scenario.buyers))
        own = any(tells(shape(current.scenario), told) for told in avoid)
        for candidate in held:
            dropped = (candidate.requests, len(candidate.buyers)) < size
            if (own or not dropped) and breaks(candidate) is not None:
                return current, ((shape(candidate), dropped),)
        return current, ()
    except OutOfTime:
        return current, None


def _slipped_into(invariant: str, finding: Finding,
                  bugs: dict[tuple[str, Shape], Finding]) -> tuple[str, Shape] | None:
    """The found bug a finding held off a found story is, if any: the one a held
    story that changed a part (an outcome, a signature: the same story told
    differently) tells, else one the finding's own story tells (the found story
    with more around it, after a held story that only dropped parts, or when
    minimizing ran out of time before it knew: ``slipped`` None). None: a bug
    of its own (a refund after its completion is not one before it)."""
    found = [(name, told) for name, told in bugs if name == invariant]
    for held, dropped in finding.slipped or ():
        if not dropped:
            return next((key for key in found if tells(held, key[1])), None)
    return next((key for key in found if tells(finding.shape, key[1])), None)


def _violations_of(invariant: str, result: ExampleResult) -> list[Violation]:
    return [v for v in result.violations if v.invariant == invariant]


def _unconfirmed(invariant: str, result: ExampleResult, why: str, phase: Phase) -> Finding:
    return Finding(invariant=invariant, scenario=result.scenario,
                   violations=_violations_of(invariant, result), status=Status.FAILED,
                   reproduced=1, runs=1, note=f"not confirmed: {why}",
                   shape=shape(result.scenario), phase=phase, result=result)
