"""Watching a run for people: the progress line and the log, through the run's events.

A :class:`Watch` is a :class:`chaos.events.RunEvents` observer: the run
(``chaos.lifecycle``) and the search call it as things happen. It advances
the progress line, logs the target, each finding, and (JSON log, DEBUG) each
example and request. It keeps no example: a finding carries the run its
evidence came from (``Finding.result``), so memory stays flat however long
the run goes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos.log import LOGGER_NAME, get_logger
from chaos.report.progress import Progress

if TYPE_CHECKING:  # annotations only: reports import no runner
    from chaos.example import ExampleResult
    from chaos.search import Finding
    from chaos.target import Target

#: What the progress line calls each phase of the run (``chaos.events``).
PHASE_LABELS = {"load": "load wave", "replay": "saved failures"}


class Watch:
    """Feeds the progress line and the log from the run's events; remembers nothing."""

    def __init__(self, progress: Progress, log: Any | None = None) -> None:
        self.progress = progress
        self._log = log

    @property
    def log(self) -> Any:
        """The logger given, else the run's (``command=run``), looked up when first used:
        the run sets logging up (``chaos.log.configure``) after this Watch is made, and a
        structlog logger bound before that would write past the configured outputs."""
        if self._log is None:
            self._log = get_logger(command="run")
        return self._log

    def target_ready(self, target: Target, stripe_url: str) -> None:
        self.log.info("target.ready", stripe_url=stripe_url, target=_described(target))

    def phase_started(self, phase: str) -> None:
        self.progress.phase(PHASE_LABELS.get(phase, phase))

    def example_done(self, result: ExampleResult, phase: str) -> None:
        self.progress.example(result)
        if logging.getLogger(LOGGER_NAME).isEnabledFor(logging.DEBUG):
            n = self.progress.examples
            self.log.debug("example", n=n, phase=phase, requests=result.scenario.requests,
                           broken=sorted({v.invariant for v in result.violations}),
                           schedule=result.scenario.to_data())
            for op in result.history.ops:
                self.log.debug("request", n=n, **op.to_data())

    def finding(self, finding: Finding, *, phase: str, case: Path | None,
                new_case: bool) -> None:
        self.log.info("finding", invariant=finding.invariant, status=finding.status,
                      reproduced=f"{finding.reproduced}/{finding.runs}", phase=phase,
                      requests=finding.scenario.requests, case=str(case) if case else None,
                      new_case=new_case)

    def run_ended(self) -> None:
        self.progress.close()


def _described(target: Any) -> dict[str, Any] | None:
    """The target's fields for the log, its SQL left out (the redactor hides its secret)."""
    if target is None:
        return None
    fields = getattr(target, "__dataclass_fields__", {})
    return {name: getattr(target, name) for name in fields if not name.endswith("_sql")}
