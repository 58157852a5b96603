"""The catalogue of switchable, real-world bugs in the reference service.

Each entry names the failure it mirrors in real Stripe integrations and the
invariant that must catch it. ``--bug NAME`` switches one on; names are
exact and unknown names are refused before anything starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chaos.errors import UsageError


@dataclass(frozen=True)
class Bug:
    name: str
    summary: str
    real_world: str
    caught_by: str


CATALOGUE: dict[str, Bug] = {
    bug.name: bug
    for bug in [
        Bug(
            name="no-dedup",
            summary="every delivery is processed; no event dedup, no unique constraint",
            real_world=(
                "Stripe delivers at least once and retries on timeouts; handlers that "
                "insert an order per delivery issue two ticket sets for one payment"
            ),
            caught_by="one-ticket-set-per-payment",
        ),
    ]
}


def parse_bugs(names: Iterable[str]) -> frozenset[str]:
    """The set of bug names, or a UsageError naming the unknown one and the choices."""
    chosen = frozenset(names)
    unknown = sorted(chosen - CATALOGUE.keys())
    if unknown:
        raise UsageError(
            f"unknown bug {unknown[0]!r}: choose from {', '.join(sorted(CATALOGUE))}"
        )
    return chosen
