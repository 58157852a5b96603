"""Steering: scores that say how race-shaped a scenario is.

:func:`targets` is pure. The search feeds each score to
``hypothesis.target(value, label=name)``; Hypothesis then spends part of its
budget (from half-way through ``max_examples``) mutating the best-scoring
examples to push the scores up, toward the shapes that find races: many
copies of one event fired together, crowded waves, buyers racing for the
last tickets, events of one payment out of order.

The effect is measured, not assumed: ``python tools/measure_steering.py``
(``nox -s steering``) counts how many examples it takes to reach a
race-shaped scenario with and without these targets.
"""

from __future__ import annotations

from strategies._internal.model import Checkout, Delivery, Scenario

#: The labels :func:`targets` returns, in a stable order.
TARGETS = (
    "copies-of-one-event-in-one-wave",
    "requests-in-one-wave",
    "checkouts-racing-for-capacity",
    "redeliveries-in-flight",
    "events-out-of-order",
)


def targets(scenario: Scenario) -> dict[str, float]:
    """Scores for ``hypothesis.target``: higher is more race-shaped.

    - ``copies-of-one-event-in-one-wave``: most copies of one event fired together.
    - ``requests-in-one-wave``: the most crowded wave.
    - ``checkouts-racing-for-capacity``: most buyers' own checkouts fired
      together for one ticket type, plus how much of what the set-up buyers
      left they want (up to 1: more than is left).
    - ``redeliveries-in-flight``: copies fired later in a wave that already
      fired an earlier copy of the same event.
    - ``events-out-of-order``: pairs of one buyer's events delivered (in
      different waves) against the order its story emits them.

    Each score moves with single choices (a step's wave, a capacity, a
    quantity), which is what Hypothesis' optimiser can climb.
    """
    copies = 0
    racing = 0.0
    for w, wave in enumerate(scenario.waves):
        counts: dict[tuple[int, str], int] = {}
        for step in wave:
            if isinstance(step, Delivery):
                key = (step.buyer, step.event)
                counts[key] = counts.get(key, 0) + 1
        copies = max(copies, *counts.values(), 0)
        racing = max(racing, _racing(scenario, w))
    return {
        "copies-of-one-event-in-one-wave": float(copies),
        "requests-in-one-wave": float(max((len(wave) for wave in scenario.waves), default=0)),
        "checkouts-racing-for-capacity": racing,
        "redeliveries-in-flight": float(_in_flight(scenario)),
        "events-out-of-order": float(_inversions(scenario)),
    }


def _racing(scenario: Scenario, wave: int) -> float:
    best = 0.0
    timed = {s.buyer for w, s in scenario.checkouts() if s.attempt == 0}
    in_wave = [s.buyer for s in scenario.waves[wave] if isinstance(s, Checkout) and s.attempt == 0]
    for t, tt in enumerate(scenario.ticket_types):
        racers = [b for b in in_wave if scenario.buyers[b].ticket_type == t]
        if not racers:
            continue
        held = sum(b.quantity for i, b in enumerate(scenario.buyers)
                   if b.ticket_type == t and i not in timed)
        wanted = sum(scenario.buyers[b].quantity for b in racers)
        left = tt.capacity - held
        best = max(best, len(racers) + (1.0 if wanted > left else wanted / (left + 1)))
    return best


def _in_flight(scenario: Scenario) -> int:
    count = 0
    for wave in scenario.waves:
        started: set[tuple[int, str]] = set()
        for step in wave:
            if isinstance(step, Delivery):
                if step.offset_ms and (step.buyer, step.event) in started:
                    count += 1
                started.add((step.buyer, step.event))
    return count


def _inversions(scenario: Scenario) -> int:
    firsts: dict[tuple[int, str], int] = {}  # (buyer, event) -> wave of its first delivery
    for w, step in scenario.deliveries():
        firsts.setdefault((step.buyer, step.event), w)
    pairs = list(firsts.items())
    return sum(
        1
        for i, ((b1, e1), w1) in enumerate(pairs)
        for (b2, e2), w2 in pairs[i + 1:]
        if b1 == b2 and w1 != w2 and (w1 < w2) != (_natural(scenario, b1, e1) < _natural(scenario, b1, e2))
    )


def _natural(scenario: Scenario, buyer: int, event: str) -> int:
    return scenario.buyers[buyer].events.index(event)
