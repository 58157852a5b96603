"""An example's result as data: what the runner hands the search, the reports and the
run's observers (``chaos.events``), without the runner's I/O.

Kept apart from ``chaos.run`` (trio, httpx, the database) so that the search,
the reports and the tests of either can name these types without loading the
machinery that makes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaos.history import History
from chaos.invariants import Violation
from chaos.observation import Observation
from strategies import Scenario


class OutOfTime(Exception):
    """The run's whole-run deadline (``--max-seconds``) passed before or during an example."""


@dataclass(frozen=True)
class ExampleResult:
    """One example, run and checked: its scenario, the history of what was sent and
    answered, what the checker observed, and the invariants it broke (none: it held)."""

    scenario: Scenario
    history: History
    observation: Observation
    violations: list[Violation]
