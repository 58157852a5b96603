"""``Scenario.render()``: the scenario as lines a person can follow.

First the set-up (the event, faults armed on the fake Stripe, each buyer's
story and which events it makes Stripe emit), then the schedule's waves
with every request numbered 1..N, as reports print them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strategies._internal.model import Checkout

if TYPE_CHECKING:
    from strategies._internal.model import Buyer, Scenario

_STORY = {
    "paid": "{checks} and pays for {tickets}",
    "async-succeeded": "{checks} for {tickets}, pays asynchronously, and the payment succeeds",
    "async-failed": "{checks} for {tickets}, pays asynchronously, and the payment fails",
    "expired": "{checks} for {tickets} and never pays, so the session expires",
    "refunded": "{checks} and pays for {tickets}, then is refunded",
    "disputed": "{checks} and pays for {tickets}, then disputes the charge",
    "partially-refunded": "{checks} and pays for {tickets}, then is refunded in part",
}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def render(scenario: Scenario) -> list[str]:
    """Numbered steps a person can follow: set-up story lines, then waves."""
    lines = []
    demand: dict[int, int] = {}
    for buyer in scenario.buyers:
        demand[buyer.ticket_type] = demand.get(buyer.ticket_type, 0) + buyer.quantity
    for i, tt in enumerate(scenario.ticket_types):
        tight = f" (buyers want {demand[i]})" if demand.get(i, 0) > tt.capacity else ""
        lines.append(f"event: ticket type {i + 1} at {tt.price / 100:.2f}, "
                     f"capacity {tt.capacity}{tight}")
    for fault in scenario.faults:
        lines.append(f"fault: {fault.describe()}")
    numbers: dict[int, tuple[int, int]] = {}  # buyer -> (step number, wave) of its own checkout
    for n, (w, step) in enumerate(scenario.steps(), start=1):
        if isinstance(step, Checkout) and step.attempt == 0:
            numbers[step.buyer] = (n, w)
    for b, buyer in enumerate(scenario.buyers):
        lines.append(_story(b, buyer, numbers.get(b)))
    n = 0
    for w, wave in enumerate(scenario.waves):
        how = "together" if len(wave) > 1 else "alone"
        lines.append(f"wave {w + 1} ({_plural(len(wave), 'request')}, {how}):")
        for step in wave:
            n += 1
            lines.append(f"  {n}. {step.describe()}")
    return lines


def _story(b: int, buyer: Buyer, timed: tuple[int, int] | None) -> str:
    checks = "checks out" if timed is None else f"checks out at step {timed[0]} (wave {timed[1] + 1})"
    tickets = f"{_plural(buyer.quantity, 'ticket')} of type {buyer.ticket_type + 1}"
    template = _STORY.get(buyer.outcome, "{checks} for {tickets}, outcome " + repr(buyer.outcome))
    events = ", ".join(buyer.events) if buyer.outcome in _STORY else "?"
    return f"buyer {b + 1} {template.format(checks=checks, tickets=tickets)} (Stripe emits {events})"
