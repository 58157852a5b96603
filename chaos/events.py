"""What a run tells whoever watches it: the hook for progress lines and logs.

The run (``chaos.lifecycle``) and the search (``chaos.search``) call these
methods as things happen; they never wait for an answer and never hand over
anything to keep. An observer that keeps state keeps it bounded: a run may
make millions of examples (``chaos.report.Watch`` keeps none of them).

Phases, in the order a run enters them: ``load`` (the load wave), then the
search's (``chaos.search.Phase``): ``playbook``, ``search``, ``minimize``,
``confirm``; minimizing and confirming alternate, one distinct bug at a
time. A phase is announced when its first example starts, so a phase that
runs no example is never announced.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # for the annotations only: observers import no runner
    from chaos.example import ExampleResult
    from chaos.search import Finding
    from chaos.target import Target

#: The load wave's phase name; the search's are ``chaos.search.Phase`` values.
LOAD = "load"


class SearchEvents(Protocol):
    """What the search tells: each phase as it starts, each example as it ends."""

    def phase_started(self, phase: str) -> None:
        """The run's first example of ``phase`` is about to start."""

    def example_done(self, result: ExampleResult, phase: str) -> None:
        """One example ended (re-runs, minimizing and confirming included)."""


class RunEvents(SearchEvents, Protocol):
    """What a whole run tells, besides the search's events."""

    def target_ready(self, target: Target, stripe_url: str) -> None:
        """Everything the run needs is started; the first example comes next."""

    def finding(self, finding: Finding, *, phase: str, case: Path | None,
                new_case: bool) -> None:
        """A finding was recorded: saved as ``case`` (None: a FLAKY one, not saved);
        ``new_case`` False when the corpus already had it."""

    def run_ended(self) -> None:
        """The run is over (whatever its verdict); the report is written next."""


class Silent:
    """Observes nothing: for library callers that only want the report."""

    def phase_started(self, phase: str) -> None:
        pass

    def example_done(self, result: ExampleResult, phase: str) -> None:
        pass

    def target_ready(self, target: Target, stripe_url: str) -> None:
        pass

    def finding(self, finding: Finding, *, phase: str, case: Path | None,
                new_case: bool) -> None:
        pass

    def run_ended(self) -> None:
        pass
