"""The search: Hypothesis generates scenarios, shrinks failures, and this
module turns its outcome into findings a person can act on.

Races do not reproduce every time, and Hypothesis needs a failure to happen
again to shrink it. So once any failure has been seen, every later example
is tried up to ``attempts`` times (amplification). At the end each shrunk
failure is re-run ``confirm_runs`` times: FAILED with its reproduction rate
(k of n), or FLAKY when it did not fail again. Hypothesis' own ``Flaky``
errors are caught here and never reach the user.

Three things stop the search early, cleanly, even in the middle of
generating or shrinking: the run's deadline (``--max-seconds``), an
error of the target or the infrastructure, and a stop signal
(:class:`chaos.shutdown.Interrupted`: Ctrl-C, SIGTERM, SIGHUP). Both are raised inside the
property as a ``BaseException`` that Hypothesis does not treat as a test
failure, so it stops at once instead of trying to shrink them. What was
found until then is still reported: the smallest failing scenario seen for
each invariant, marked as not fully shrunk (and, after a signal, not
confirmed); the caller re-raises the signal once the report is written.

Settings profiles (``--profile``): ``default`` (100 examples), ``dev``
(20 examples, Hypothesis' example database on, to replay the last failure
first; Hypothesis ignores its database when a seed is given, so pass
none), ``ci`` (derandomized unless a seed is given, no example database,
no deadline) and ``thorough`` (2,000 examples).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import Flaky
from hypothesis.internal.conjecture import engine as hypothesis_engine

import strategies
from chaos.errors import ChaosError
from chaos.invariants import INVARIANTS, Violation
from chaos.run import ExampleResult, OutOfTime
from chaos.shutdown import Interrupted, interrupt_in
from strategies import Scenario, simplifications

_BASE = settings(
    deadline=None, database=None, verbosity=Verbosity.quiet,
    suppress_health_check=list(HealthCheck), report_multiple_bugs=True,
    phases=(Phase.explicit, Phase.generate, Phase.target, Phase.shrink), print_blob=False,
)

#: Hypothesis settings per ``--profile`` name. Each example costs real HTTP
#: and SQL (about 20 to 100 ms), so example counts are modest.
PROFILES: dict[str, settings] = {
    "default": settings(_BASE, max_examples=100),
    "dev": settings(_BASE, max_examples=20,
                    database=DirectoryBasedExampleDatabase(".hypothesis/chaos-examples"),
                    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target,
                            Phase.shrink)),
    "ci": settings(_BASE, max_examples=100, derandomize=True),
    "thorough": settings(_BASE, max_examples=2000),
}


#: Examples Hypothesis keeps in its cache of results (its default: 10,000). Each
#: holds its whole choice sequence and spans (about 30 kB of ours), so the default
#: made the tool grow by 35 kB per example up to 10,000; the cache only spares
#: re-running a repeated choice sequence, which the shrinker's recent ones cover.
RESULT_CACHE = 256


@dataclass
class Finding:
    """One distinct failure, shrunk: the invariant it broke and the evidence.

    ``reproduced`` of ``attempts`` confirmation runs broke the invariant
    again. ``note`` says when the figures are partial (the search was cut
    short, so the scenario may not be fully shrunk or confirmed).
    """

    invariant: str
    scenario: Scenario
    violations: list[Violation]
    status: str = "FAILED"          # FAILED or FLAKY
    reproduced: int = 0
    attempts: int = 0
    note: str | None = None


@dataclass(frozen=True)
class FirstFailure:
    """The first example that broke an invariant: its number (1-based, counting every
    example the search ran, re-runs included), when it ended (``time.monotonic()``)
    and the first invariant it broke."""

    example: int
    at: float
    invariant: str
    #: "playbook" or "search": which part of the run drew it.
    phase: str = "search"


@dataclass
class SearchResult:
    """What the search found, how many examples it ran, and why it stopped early."""

    examples: int
    findings: list[Finding] = field(default_factory=list)
    #: None: it ran its course; "max-seconds": the deadline stopped it; "error": see
    #: ``error``; a signal's name ("SIGINT", "SIGTERM", "SIGHUP"): see ``interrupt``.
    stopped: str | None = None
    error: ChaosError | None = None
    #: The stop signal that cut the search short; the caller re-raises it after reporting.
    interrupt: Interrupted | None = None
    #: The first failing example, None when every example passed.
    first_failure: FirstFailure | None = None


class _InvariantBroken(Exception):
    """Raised inside the property; one subclass per invariant, so Hypothesis
    shrinks each invariant's failure on its own."""

    invariant = ""

    def __init__(self, result: ExampleResult) -> None:
        super().__init__(result.violations[0].message)
        self.result = result


_BROKEN: dict[str, type[_InvariantBroken]] = {
    name: type(f"Broken_{name.replace('-', '_')}", (_InvariantBroken,), {"invariant": name})
    for name in INVARIANTS
}


def _broken(name: str) -> type[_InvariantBroken]:
    """The exception class of ``name``; a user's SQL invariant (a config's) gets its own."""
    if name not in _BROKEN:
        _BROKEN[name] = type(f"Broken_{re.sub(r'[^A-Za-z0-9_]', '_', name)}",
                             (_InvariantBroken,), {"invariant": name})
    return _BROKEN[name]


class _Stop(BaseException):
    """Stops Hypothesis at once: the deadline passed, the shrink budget ran out
    (``why`` says which; ``error`` None), or the target failed (``error``)."""

    def __init__(self, error: ChaosError | None = None, why: str = "max-seconds") -> None:
        super().__init__(str(error) if error else why)
        self.error = error
        self.why = "error" if error else why


def _size(scenario: Scenario) -> tuple[int, int, int]:
    return (scenario.requests, len(scenario.buyers), len(scenario.waves))


def steer(result: ExampleResult) -> None:
    """Tell Hypothesis what finds races: scores of the scenario itself, never of
    timing, so a seed replays the same generation."""
    history = result.history
    own = getattr(strategies, "targets", None)
    if callable(own):
        for label, value in dict(own(result.scenario)).items():
            hypothesis.target(float(value), label=str(label))
    else:
        hypothesis.target(float(history.largest_wave()), label="requests in the largest wave")


def search(run_example: Callable[[Scenario], ExampleResult], strategy: st.SearchStrategy[Scenario],
           *, examples: int | None = None, seed: int | None = None, attempts: int = 3,
           confirm_runs: int = 5, profile: str = "default",
           deadline: float | None = None, shrink_seconds: float | None = 20.0,
           minimize_seconds: float = 30.0,
           playbook: Sequence[Scenario] = ()) -> SearchResult:
    """Search ``strategy``'s scenarios for invariant violations with ``run_example``.

    ``examples`` overrides the profile's example count; ``deadline`` is a
    ``time.monotonic()`` value after which nothing new starts. Once a first
    failure is seen, shrinking gets ``shrink_seconds``: a race that flips
    between failing and passing can otherwise keep the shrinker busy for
    many minutes. Then the smallest failure seen per invariant is confirmed
    and reported, noted as possibly not minimal.

    Each failure Hypothesis hands back is then minimized on the scenario
    itself (``strategies.simplifications``, applied greedily for at most
    ``minimize_seconds``): Hypothesis shrinks the choices behind a scenario,
    and can stall one step short of the smallest story.

    ``playbook`` scenarios (``strategies.playbook()``) are played first, each
    once (``attempts`` times when a wave fires two or more requests together:
    a race), before Hypothesis draws its own. A failure there is reported like
    a drawn one, unless the search found a smaller one for the same invariant;
    when its shrink proves FLAKY, the playbook's other stories that broke the
    same invariant are confirmed in turn.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose from {', '.join(PROFILES)}")
    if attempts < 1 or confirm_runs < 1:
        raise ValueError(f"attempts={attempts} and confirm_runs={confirm_runs} must be >= 1")
    chosen = PROFILES[profile]
    if examples is not None:
        chosen = settings(chosen, max_examples=examples)
    seen_failure = False
    tries_after_failure = attempts  # 1 once the first failure proved deterministic
    shrink_deadline: float | None = None
    count = 0
    first: FirstFailure | None = None
    smallest: dict[str, ExampleResult] = {}

    def out_of_time() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    def run_amplified(scenario: Scenario) -> ExampleResult:
        nonlocal count, first
        tries = tries_after_failure if seen_failure else 1
        result = None
        for _ in range(tries):
            count += 1
            result = run_example(scenario)
            if result.violations:
                if first is None:
                    first = FirstFailure(example=count, at=time.monotonic(),
                                         invariant=result.violations[0].invariant)
                break
        assert result is not None
        return result

    def rerun(scenario: Scenario) -> ExampleResult:
        nonlocal count
        count += 1
        return run_example(scenario)

    @chosen
    @given(strategy)
    def prop(scenario: Scenario) -> None:
        nonlocal seen_failure, shrink_deadline, tries_after_failure
        if out_of_time():
            raise _Stop()
        if shrink_deadline is not None and time.monotonic() >= shrink_deadline:
            raise _Stop(why="shrink-seconds")
        try:
            result = run_amplified(scenario)
            if result.violations and not seen_failure:
                # Amplify only what needs it: a failure that happens again on every re-run
                # is deterministic, and its shrink candidates need one run each.
                if all(_violations_of(result.violations[0].invariant, rerun(scenario))
                       for _ in range(attempts - 1)):
                    tries_after_failure = 1
                if shrink_seconds is not None:
                    shrink_deadline = time.monotonic() + shrink_seconds
        except OutOfTime:
            raise _Stop() from None
        except ChaosError as exc:
            raise _Stop(exc) from None
        steer(result)
        if result.violations:
            seen_failure = True
            for name in {v.invariant for v in result.violations}:
                best = smallest.get(name)
                if best is None or _size(scenario) < _size(best.scenario):
                    smallest[name] = result
            raise _broken(result.violations[0].invariant)(result)

    if seed is not None:
        prop = hypothesis_seed(seed)(prop)

    def play(scenario: Scenario) -> None:
        nonlocal count, first
        races = any(len(wave) > 1 for wave in scenario.waves)
        for _ in range(attempts if races else 1):
            if out_of_time():
                raise _Stop()
            count += 1
            try:
                result = run_example(scenario)
            except OutOfTime:
                raise _Stop() from None
            except ChaosError as exc:
                raise _Stop(exc) from None
            if result.violations:
                if first is None:
                    first = FirstFailure(example=count, at=time.monotonic(),
                                         invariant=result.violations[0].invariant,
                                         phase="playbook")
                for name in {v.invariant for v in result.violations}:
                    played.setdefault(name, []).append(result)
                return

    #: every playbook failure per invariant, in the order played
    played: dict[str, list[ExampleResult]] = {}
    broken: list[_InvariantBroken] = []
    flaky: list[_InvariantBroken] = []
    outcome = SearchResult(examples=0)
    cache_size = hypothesis_engine.CACHE_SIZE   # read when Hypothesis' engine starts
    hypothesis_engine.CACHE_SIZE = RESULT_CACHE
    try:
        for scenario in playbook:
            play(scenario)
        prop()
    except _Stop as stop:
        outcome.stopped = stop.why
        outcome.error = stop.error
    except (_InvariantBroken, Flaky, BaseExceptionGroup, Interrupted) as raised:
        interrupt = interrupt_in(raised)
        if interrupt is not None:
            outcome.stopped, outcome.interrupt = interrupt.name, interrupt
        else:
            _classify(raised, broken, flaky, in_flaky=False)
    finally:
        hypothesis_engine.CACHE_SIZE = cache_size
    # the smallest playbook failure of each invariant, the first played among equals
    played_best = {name: min(results, key=lambda r: _size(r.scenario))
                   for name, results in played.items()}

    def minimized(invariant: str, result: ExampleResult) -> ExampleResult:
        until = time.monotonic() + minimize_seconds
        if deadline is not None:
            until = min(until, deadline)
        return _minimize(invariant, result, rerun, tries=tries_after_failure, until=until)

    todo: list[tuple[str, ExampleResult, str | None]]
    if outcome.stopped == "shrink-seconds":
        # Hypothesis ran out of shrink time: carry on from the smallest failure seen
        todo = [(name, result, f"Hypothesis' shrinking stopped after --shrink-seconds "
                 f"{shrink_seconds:g}; minimized from the smallest failure seen")
                for name, result in smallest.items()]
        outcome.stopped = None
    elif outcome.stopped:
        why = ("the run ended with an error" if outcome.error
               else f"interrupted by {outcome.interrupt.name}" if outcome.interrupt
               else "the search reached --max-seconds")
        outcome.findings += [_unconfirmed(name, result, f"{why} while shrinking")
                             for name, result in smallest.items()]
        outcome.findings += [_unconfirmed(name, result, why)
                             for name, result in played_best.items() if name not in smallest]
        todo = [] if outcome.error or outcome.interrupt else \
            [(b.invariant, b.result, None) for b in [*broken, *flaky]]
    else:
        todo = [(b.invariant, b.result, None) for b in [*broken, *flaky]]
        # Hypothesis reports one invariant per failing example: one that only ever broke
        # alongside another would go unreported, so it is minimized on its own too
        reported = {invariant for invariant, _, _ in todo}
        todo += [(name, result, None) for name, result in smallest.items() if name not in reported]
    todo = _with_played(todo, played_best, unconfirmed=bool(outcome.stopped))
    for invariant, result, note in todo:
        if outcome.error is not None:
            outcome.findings.append(_unconfirmed(invariant, result, "the run ended with an error"))
            continue
        if outcome.interrupt is not None:
            outcome.findings.append(_unconfirmed(
                invariant, result, f"interrupted by {outcome.interrupt.name} before confirming"))
            continue
        try:
            smaller = minimized(invariant, result)
            finding = _confirm(invariant, smaller, run_example, confirm_runs, out_of_time)
            # a FLAKY shrink may have broken by chance (timing): confirm what was found,
            # then the playbook's other stories that broke the invariant
            fallbacks = [result] if smaller is not result else []
            fallbacks += [r for r in played.get(invariant, []) if r is not result]
            for found in fallbacks:
                if finding.status != "FLAKY" or out_of_time():
                    break
                again = _confirm(invariant, found, run_example, confirm_runs, out_of_time)
                finding = again if again.status == "FAILED" else finding
        except ChaosError as error:
            outcome.stopped, outcome.error = "error", error
            outcome.findings.append(_unconfirmed(invariant, result, "the run ended with an error"))
            continue
        except Interrupted as interrupt:
            outcome.stopped, outcome.interrupt = interrupt.name, interrupt
            outcome.findings.append(_unconfirmed(
                invariant, result, f"interrupted by {interrupt.name} while confirming"))
            continue
        finding.note = "; ".join(filter(None, [note, finding.note])) or None
        outcome.findings.append(finding)
    outcome.examples = count
    outcome.first_failure = first
    return outcome


def _with_played(todo: list[tuple[str, ExampleResult, str | None]],
                 played: dict[str, ExampleResult], *, unconfirmed: bool,
                 ) -> list[tuple[str, ExampleResult, str | None]]:
    """The search's failures, each replaced by the playbook's failure of the same
    invariant when that one is as small (a known story reads best), plus the
    playbook's failures of invariants the search did not break (those go
    unconfirmed when the search was cut short)."""
    played = dict(played)
    merged = []
    for invariant, result, note in todo:
        mine = played.pop(invariant, None)
        if mine is not None and _size(mine.scenario) <= _size(result.scenario):
            result, note = mine, None
        merged.append((invariant, result, note))
    if not unconfirmed:
        merged += [(invariant, result, None) for invariant, result in played.items()]
    return merged


def _minimize(invariant: str, result: ExampleResult,
              run: Callable[[Scenario], ExampleResult], *, tries: int,
              until: float) -> ExampleResult:
    """Greedy minimization: take the first simpler scenario that still breaks
    ``invariant``, start again from it, stop when none does or at ``until``.

    A race (``tries`` > 1) may break in any of ``tries`` runs. A failure that
    proved deterministic (``tries`` == 1) only gives way to a simpler scenario
    that breaks twice in a row: one failure of a simpler scenario can be timing
    (work still running when the rows were read), and the confirmation runs
    would then report a deterministic bug as FLAKY."""
    current = result
    improved = True
    while improved:
        improved = False
        for candidate in simplifications(current.scenario):
            verdicts = []
            for _ in range(tries if tries > 1 else 2):
                if time.monotonic() >= until:
                    return current
                try:
                    again = run(candidate)
                except OutOfTime:
                    return current
                verdicts.append(bool(_violations_of(invariant, again)))
                if tries > 1 and verdicts[-1] or tries == 1 and not verdicts[-1]:
                    break
            if all(verdicts) if tries == 1 else any(verdicts):
                current, improved = again, True
                break
    return current


def _classify(exc: BaseException, broken: list[_InvariantBroken],
              flaky: list[_InvariantBroken], *, in_flaky: bool) -> None:
    """Sort what Hypothesis raised into shrunk failures and flaky ones."""
    if isinstance(exc, _InvariantBroken):
        (flaky if in_flaky else broken).append(exc)
    elif isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            _classify(inner, broken, flaky, in_flaky=in_flaky or isinstance(exc, Flaky))
    elif isinstance(exc, Flaky):
        return  # Hypothesis' own bookkeeping (e.g. a strategy that drew differently): nothing to report
    else:
        raise exc


def _violations_of(invariant: str, result: ExampleResult) -> list[Violation]:
    return [v for v in result.violations if v.invariant == invariant]


def _unconfirmed(invariant: str, result: ExampleResult, why: str) -> Finding:
    return Finding(invariant=invariant, scenario=result.scenario,
                   violations=_violations_of(invariant, result), status="FAILED",
                   reproduced=1, attempts=1, note=f"not confirmed: {why}")


def _confirm(invariant: str, result: ExampleResult,
             run_example: Callable[[Scenario], ExampleResult], runs: int,
             out_of_time: Callable[[], bool]) -> Finding:
    """Re-run the shrunk scenario up to ``runs`` times to measure how often it fails."""
    reproduced = done = 0
    for _ in range(runs):
        if out_of_time():
            break
        try:
            again = run_example(result.scenario)
        except OutOfTime:
            break
        done += 1
        reproduced += bool(_violations_of(invariant, again))
    if done == 0:
        return _unconfirmed(invariant, result, "no time was left to re-run it (--max-seconds)")
    note = None if done == runs else f"only {done} of {runs} confirmation runs fitted in --max-seconds"
    return Finding(invariant=invariant, scenario=result.scenario,
                   violations=_violations_of(invariant, result),
                   status="FAILED" if reproduced else "FLAKY", reproduced=reproduced,
                   attempts=done, note=note)
