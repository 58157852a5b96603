"""What a virtual user's journey holds: a real buyer, and the chaos Stripe adds.

A *journey* is one buyer's story as the scenario model tells it (checkout,
payment at the fake Stripe, the events that follow), with a schedule drawn
from the run's :class:`Mix`:

- ``duplicates``: extra copies of each event, on average (0.2: one event in
  five is redelivered once; 50: about fifty redeliveries each, as a webhook
  soak test wants). Later copies go out one after another, as Stripe retries.
- ``races``: share of completions delivered as two copies fired together
  (one connection each, behind a start barrier: the executor's race wave).
- ``reorder``: share of journeys whose events arrive newest first.
- ``forged``: share of events that first get a mis-signed copy (tampered,
  wrong secret, stale or missing signature), which must be refused.
- ``refunds``: share of buyers refunded after paying.
- ``sellout``: share of buyers of the event's tight ticket type
  (``capacity`` tickets per check interval): the last tickets are raced for.

A journey is a one-buyer :class:`~strategies.Scenario`, so the client
(``chaos.plan.plan``) plays it exactly as a chaos example: waves of one step
are sequential requests, a wave of two is a race. Draws come from a seeded
``random.Random``, so a seed replays the same mix.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields

from strategies import DEFAULT_EVENT_TYPES, Buyer, Delivery, Scenario, TicketType

#: Mis-signed variants a forged copy uses: all must be refused by a correct target.
FORGED = ("tampered", "wrong-secret", "stale", "missing")

#: Tickets of the plentiful ticket type: never sold out in a run.
PLENTY = 1_000_000


@dataclass(frozen=True)
class Mix:
    """The chaos ratios of a load run (see the module docstring)."""

    duplicates: float = 0.2
    races: float = 0.05
    reorder: float = 0.1
    forged: float = 0.05
    refunds: float = 0.05
    sellout: float = 0.2
    capacity: int = 10

    def to_data(self) -> dict[str, float | int]:
        return asdict(self)

    def ticket_types(self) -> tuple[TicketType, ...]:
        """Plenty of tickets (type 1) and a tight ticket type (type 2)."""
        return (TicketType(capacity=PLENTY), TicketType(capacity=self.capacity))


def parse_mix(text: str) -> Mix:
    """``"duplicates=0.5,forged=0"`` -> a Mix (unnamed keys keep their defaults).

    Raises ValueError naming the key and the fix.
    """
    known = {f.name: f.type for f in fields(Mix)}
    values: dict[str, float | int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise ValueError(f"mix entry {part!r}: write KEY=VALUE with KEY one of "
                             f"{', '.join(known)}")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"mix entry {part!r}: {raw!r} is not a number") from None
        if key == "capacity":
            if value != int(value) or not 1 <= value <= 1_000_000:
                raise ValueError(f"mix entry {part!r}: capacity must be a whole number 1..1000000")
            values[key] = int(value)
        elif key == "duplicates":
            if not 0 <= value <= 1000:
                raise ValueError(f"mix entry {part!r}: duplicates (copies per event) must be 0..1000")
            values[key] = value
        else:
            if not 0 <= value <= 1:
                raise ValueError(f"mix entry {part!r}: {key} is a share, 0..1")
            values[key] = value
    return Mix(**values)  # type: ignore[arg-type]


def _copies(rng: random.Random, mean: float) -> int:
    """A whole number of extra copies whose average is ``mean``."""
    whole = int(mean)
    return whole + (rng.random() < mean - whole)


def draw_journey(rng: random.Random, mix: Mix) -> Scenario:
    """One buyer's journey with the mix's chaos, as a one-buyer scenario."""
    outcome = "refunded" if rng.random() < mix.refunds else "paid"
    tight = rng.random() < mix.sellout
    buyer = Buyer(quantity=1, ticket_type=1 if tight else 0, outcome=outcome)
    # the events a chaos run delivers by default (the story's others, charge.succeeded
    # and the like, only where a config subscribes to them)
    events = [event for event in buyer.events if event in DEFAULT_EVENT_TYPES]
    if rng.random() < mix.reorder:
        events.reverse()
    waves: list[tuple[Delivery, ...]] = []
    for event in events:
        copy = 0
        if rng.random() < mix.forged:
            waves.append((Delivery(0, event, copy, rng.choice(FORGED)),))
            copy += 1
        if event == "checkout.session.completed" and rng.random() < mix.races:
            waves.append((Delivery(0, event, copy), Delivery(0, event, copy + 1)))
            copy += 2
        else:
            waves.append((Delivery(0, event, copy),))
            copy += 1
        for _ in range(_copies(rng, mix.duplicates)):
            waves.append((Delivery(0, event, copy),))
            copy += 1
    return Scenario(buyers=(buyer,), waves=tuple(waves), ticket_types=mix.ticket_types())
