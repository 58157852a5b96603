"""Hypothesis strategies for scenarios.

Every choice is drawn from Hypothesis, so a seed replays the same scenarios,
and every choice puts its simplest value first, so shrinking walks toward
fewer buyers, fewer copies, quantity 1 and a single wave.
"""

from __future__ import annotations

from hypothesis import strategies as st

from strategies._internal.model import Buyer, Delivery, Scenario
from strategies._internal.validation import check_bounded_int


def buyers(*, max_quantity: int = 4) -> st.SearchStrategy[Buyer]:
    """A buyer paying once for 1..``max_quantity`` tickets.

    Shrinks toward quantity 1.
    """
    check_bounded_int("max_quantity", max_quantity, low=1)
    return st.builds(Buyer, quantity=st.integers(1, max_quantity))


@st.composite
def _scenarios(draw, max_buyers: int, max_copies: int, max_waves: int, max_quantity: int):
    drawn_buyers = draw(st.lists(buyers(max_quantity=max_quantity), min_size=1,
                                 max_size=max_buyers))
    placed: list[tuple[int, int]] = []  # (wave, buyer)
    for b in range(len(drawn_buyers)):
        copies = draw(st.integers(1, max_copies), label=f"copies of buyer {b + 1}'s event")
        for _ in range(copies):
            placed.append((draw(st.integers(0, max_waves - 1)), b))
    # Empty waves are dropped; copies are numbered in the order they are sent.
    waves = []
    sent: dict[int, int] = {}
    for w in sorted({w for w, _ in placed}):
        wave = []
        for _, b in (p for p in placed if p[0] == w):
            wave.append(Delivery(buyer=b, copy=sent.get(b, 0)))
            sent[b] = sent.get(b, 0) + 1
        waves.append(tuple(wave))
    return Scenario(buyers=tuple(drawn_buyers), waves=tuple(waves))


def scenarios(*, max_buyers: int = 4, max_copies: int = 3, max_waves: int = 3,
              max_quantity: int = 4) -> st.SearchStrategy[Scenario]:
    """Buyers who each pay once, and 1..``max_copies`` deliveries of each
    buyer's ``checkout.session.completed``, spread over up to ``max_waves``
    waves (same wave: concurrent; later wave: after the earlier one ended).

    Shrinks toward one buyer, one copy, quantity 1, and everything in the
    first wave (the fewest waves).
    """
    check_bounded_int("max_buyers", max_buyers, low=1)
    check_bounded_int("max_copies", max_copies, low=1)
    check_bounded_int("max_waves", max_waves, low=1)
    check_bounded_int("max_quantity", max_quantity, low=1)
    return _scenarios(max_buyers, max_copies, max_waves, max_quantity)
