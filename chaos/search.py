"""The search: Hypothesis generates scenarios, shrinks failures, and this
module turns its outcome into findings a person can act on.

Races do not reproduce every time, and Hypothesis needs a failure to happen
again to shrink it. So once any failure has been seen, every later example
is tried up to ``attempts`` times (amplification). At the end each shrunk
failure is re-run ``confirm_runs`` times: FAILED with its reproduction rate
(k of n), or FLAKY when it did not fail again. Hypothesis' own ``Flaky``
errors are caught here and never reach the user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Flaky

from chaos.invariants import INVARIANTS, Violation
from chaos.run import ExampleResult
from strategies import Scenario


@dataclass
class Finding:
    """One distinct failure, shrunk: the invariant it broke and the evidence."""

    invariant: str
    scenario: Scenario
    violations: list[Violation]
    status: str = "FAILED"          # FAILED or FLAKY
    reproduced: int = 0
    attempts: int = 0


@dataclass
class SearchResult:
    examples: int
    findings: list[Finding] = field(default_factory=list)


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


def search(run_example: Callable[[Scenario], ExampleResult], strategy: st.SearchStrategy[Scenario],
           *, examples: int, seed: int | None, attempts: int = 3,
           confirm_runs: int = 5) -> SearchResult:
    seen_failure = False
    count = 0

    def run_amplified(scenario: Scenario) -> ExampleResult:
        nonlocal count
        tries = attempts if seen_failure else 1
        result = None
        for _ in range(tries):
            count += 1
            result = run_example(scenario)
            if result.violations:
                break
        assert result is not None
        return result

    @settings(max_examples=examples, deadline=None, database=None, verbosity=Verbosity.quiet,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=True,
              phases=(Phase.explicit, Phase.generate, Phase.target, Phase.shrink),
              print_blob=False)
    @given(strategy)
    def prop(scenario: Scenario) -> None:
        nonlocal seen_failure
        result = run_amplified(scenario)
        if result.violations:
            seen_failure = True
            raise _BROKEN[result.violations[0].invariant](result)

    if seed is not None:
        prop = hypothesis_seed(seed)(prop)

    broken: list[_InvariantBroken] = []
    flaky: list[_InvariantBroken] = []
    try:
        prop()
    except _InvariantBroken as exc:
        broken.append(exc)
    except Flaky as exc:
        flaky.extend(_leaves(exc))
    except BaseExceptionGroup as group:
        for inner in group.exceptions:
            if isinstance(inner, Flaky):
                flaky.extend(_leaves(inner))
            elif isinstance(inner, _InvariantBroken):
                broken.append(inner)
            else:
                raise
    examples = count
    findings = [_confirm(b, run_example, confirm_runs) for b in [*broken, *flaky]]
    return SearchResult(examples=examples, findings=findings)


def _leaves(group: BaseException) -> list[_InvariantBroken]:
    if isinstance(group, _InvariantBroken):
        return [group]
    if isinstance(group, BaseExceptionGroup):
        return [leaf for exc in group.exceptions for leaf in _leaves(exc)]
    return []


def _confirm(exc: _InvariantBroken, run_example: Callable[[Scenario], ExampleResult],
             runs: int) -> Finding:
    """Re-run the shrunk scenario ``runs`` times to measure how often it fails."""
    scenario = exc.result.scenario
    reproduced = 0
    violations = [v for v in exc.result.violations if v.invariant == exc.invariant]
    for _ in range(runs):
        again = run_example(scenario)
        if any(v.invariant == exc.invariant for v in again.violations):
            reproduced += 1
    return Finding(invariant=exc.invariant, scenario=scenario, violations=violations,
                   status="FAILED" if reproduced else "FLAKY", reproduced=reproduced,
                   attempts=runs)
