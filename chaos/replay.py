"""Replaying saved cases: the corpus turned back into runs and verdicts.

Two questions, one mechanism. Without ``expect``: does each case's invariant
still break against the target the case names (FAILED while it does)? With
``expect``: does every expectation written in the case hold (the regression
suite)? Each check runs its case's scenario ``runs`` times. Checks are
grouped by the bugs they switch on, so each group starts the services once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos.log import redactor
from chaos.report.corpus import BREAKS, Case, Expectation
from chaos.report.summary import failure_lines


@dataclass
class Check:
    """One check of one case, and what its runs showed."""

    case: Case
    expectation: Expectation | None     # None: "does the case's invariant still break?"
    runs: int = 0
    broken: int = 0                     # runs in which a counted invariant broke
    violations: list[Any] = field(default_factory=list)   # the last such run's

    @property
    def counts(self) -> str | None:
        """The invariant this check counts; None: any invariant."""
        return self.case.invariant if self.expectation is None else self.expectation.invariant

    @property
    def bugs(self) -> tuple[str, ...]:
        if self.expectation is not None:
            return self.expectation.bugs
        return tuple(sorted(self.case.target.get("bugs") or []))

    @property
    def passed(self) -> bool:
        if self.expectation is None:
            return self.broken == 0
        return self.expectation.met(self.broken, self.runs)


def checks_of(cases: Sequence[Case], *, expect: bool) -> list[list[Check]]:
    """Per case, the checks to run: its expectations, or the one reproduction check."""
    return [[Check(case, e) for e in case.expect] if expect else [Check(case, None)]
            for case in cases]


def run_checks(checks: Sequence[Sequence[Check]], *, runs: int,
               start: Callable[[tuple[str, ...]], contextlib.AbstractContextManager[Any]],
               log: Any) -> None:
    """Run every check ``runs`` times; ``start(bugs)`` gives a runner with those bugs on."""
    groups: dict[tuple[str, ...], list[Check]] = {}
    for check in (c for per_case in checks for c in per_case):
        groups.setdefault(check.bugs, []).append(check)
    for bugs, group in groups.items():
        with start(bugs) as runner:
            for check in group:
                for n in range(runs):
                    result = runner.run_example(check.case.scenario)
                    counted = [v for v in result.violations
                               if check.counts is None or v.invariant == check.counts]
                    check.runs += 1
                    log.info("replay.run", case=str(check.case.path), bugs=list(bugs),
                             run=n + 1, broken=sorted({v.invariant for v in counted}))
                    if counted:
                        check.broken += 1
                        check.violations = counted


def render(checks: Sequence[Sequence[Check]]) -> tuple[str, int]:
    """The replay's report as text, and how many cases did not pass."""
    lines: list[str] = []
    failed = 0
    for per_case in checks:
        case = per_case[0].case
        ok = all(c.passed for c in per_case)
        failed += not ok
        if per_case[0].expectation is None:
            c = per_case[0]
            lines.append(f"{'PASSED' if ok else 'FAILED'} {case.path}: {case.invariant} "
                         f"broke in {c.broken} of {c.runs} runs")
            lines.extend(_violations(c))
            continue
        lines.append(f"{'PASSED' if ok else 'FAILED'} {case.path}: {case.invariant}")
        for c in per_case:
            e = c.expectation
            assert e is not None
            if e.outcome == BREAKS:
                what = f"{e.invariant} broke in {c.broken} of {c.runs} runs"
            elif c.broken:
                what = f"an invariant broke in {c.broken} of {c.runs} runs"
            else:
                what = f"every invariant held in {c.runs} of {c.runs} runs"
            lines.append(f"  {'ok' if c.passed else 'MISSED':<6} {e.against()}: {what} "
                         f"(expected: {e.outcome}; {e.why})")
            if not c.passed:
                lines.extend(f"  {line}" for line in _violations(c))
    if len(checks) > 1:
        lines.append(f"{len(checks) - failed} of {len(checks)} cases passed")
    return redactor.text("\n".join(lines)), failed


def _violations(check: Check) -> list[str]:
    return failure_lines({"violations": [v.to_data() for v in check.violations]})[1:]
