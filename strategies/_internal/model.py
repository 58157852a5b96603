"""The scenario model: plain, frozen, printable data.

A *scenario* is a story a person can follow: an event with ticket types,
buyers who pay for tickets, and a *schedule* of requests grouped into
*waves*. Requests in one wave are fired together behind a start barrier;
waves run one after another. Steps name things abstractly ("buyer 2's
checkout.session.completed"); the executor resolves them to real ids.

Nothing here imports trio, httpx or asyncpg: this is what Hypothesis draws,
what reports print, and what the regression corpus stores as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: Stripe event types a delivery can carry.
EVENT_TYPES = ("checkout.session.completed",)

#: How a delivery is signed. ``valid`` is the simplest and shrinks first.
SIGNATURES = ("valid",)


@dataclass(frozen=True)
class TicketType:
    """A kind of ticket for the event: price in cents and how many exist."""

    price: int = 2500
    capacity: int = 1000


@dataclass(frozen=True)
class Buyer:
    """A buyer who checks out once and pays once for ``quantity`` tickets."""

    quantity: int = 1
    ticket_type: int = 0  # index into Scenario.ticket_types


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery: a copy of an event Stripe sends to the target.

    ``copy`` counts deliveries of the same event (0 is the first); copies of
    one event carry the same event id and payload, as Stripe's retries do.
    """

    buyer: int  # index into Scenario.buyers
    event: str = "checkout.session.completed"
    copy: int = 0
    signature: str = "valid"

    kind = "deliver"

    def describe(self) -> str:
        ordinal = _ordinal(self.copy + 1)
        signed = "" if self.signature == "valid" else f", signature {self.signature}"
        return f"deliver buyer {self.buyer + 1}'s {self.event} ({ordinal} copy{signed})"


Step = Delivery
Wave = tuple[Step, ...]


@dataclass(frozen=True)
class Scenario:
    """An event, its buyers, and the schedule of waves fired at the target."""

    buyers: tuple[Buyer, ...]
    waves: tuple[Wave, ...]
    ticket_types: tuple[TicketType, ...] = field(default=(TicketType(),))

    @property
    def requests(self) -> int:
        """Requests in the schedule (set-up calls to the fake Stripe excluded)."""
        return sum(len(wave) for wave in self.waves)

    def steps(self) -> list[tuple[int, Step]]:
        """Every step with its wave number, in schedule order."""
        return [(w, step) for w, wave in enumerate(self.waves) for step in wave]

    def render(self) -> list[str]:
        """Numbered steps a person can follow, as printed in reports."""
        lines = []
        for i, tt in enumerate(self.ticket_types):
            lines.append(
                f"event: ticket type {i + 1} at {tt.price / 100:.2f}, capacity {tt.capacity}"
            )
        for i, buyer in enumerate(self.buyers):
            lines.append(
                f"buyer {i + 1} checks out and pays for {buyer.quantity} "
                f"ticket{'s' if buyer.quantity != 1 else ''} of type {buyer.ticket_type + 1}"
            )
        n = 0
        for w, wave in enumerate(self.waves):
            how = "together" if len(wave) > 1 else "alone"
            lines.append(f"wave {w + 1} ({len(wave)} request{'s' if len(wave) != 1 else ''}, {how}):")
            for step in wave:
                n += 1
                lines.append(f"  {n}. {step.describe()}")
        return lines

    def to_data(self) -> dict[str, Any]:
        """JSON-ready form, stable across versions: used by reports and the corpus."""
        return {
            "ticket_types": [asdict(t) for t in self.ticket_types],
            "buyers": [asdict(b) for b in self.buyers],
            "waves": [[{"kind": s.kind, **asdict(s)} for s in wave] for wave in self.waves],
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Scenario:
        """Inverse of :meth:`to_data`; raises ValueError naming the bad field."""
        try:
            ticket_types = tuple(TicketType(**t) for t in data.get("ticket_types", [{}]))
            buyers = tuple(Buyer(**b) for b in data["buyers"])
            waves = tuple(
                tuple(_step_from_data(s) for s in wave) for wave in data["waves"]
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a scenario: {exc}") from None
        scenario = cls(buyers=buyers, waves=waves, ticket_types=ticket_types)
        scenario.validate()
        return scenario

    def validate(self) -> None:
        """Check references between parts; raises ValueError naming the bad step."""
        if not self.buyers:
            raise ValueError("a scenario needs at least one buyer")
        for b, buyer in enumerate(self.buyers):
            if not 0 <= buyer.ticket_type < len(self.ticket_types):
                raise ValueError(f"buyer {b + 1} names ticket type {buyer.ticket_type + 1}, "
                                 f"but the event has {len(self.ticket_types)}")
            if buyer.quantity < 1:
                raise ValueError(f"buyer {b + 1} has quantity {buyer.quantity}; it must be >= 1")
        for w, step in self.steps():
            if not 0 <= step.buyer < len(self.buyers):
                raise ValueError(f"wave {w + 1}: {step.describe()} names a buyer that does not exist")
            if step.event not in EVENT_TYPES:
                raise ValueError(f"wave {w + 1}: unknown event type {step.event!r}")
            if step.signature not in SIGNATURES:
                raise ValueError(f"wave {w + 1}: unknown signature variant {step.signature!r}")


def _step_from_data(data: dict[str, Any]) -> Step:
    data = dict(data)
    kind = data.pop("kind", "deliver")
    if kind != "deliver":
        raise ValueError(f"unknown step kind {kind!r}")
    return Delivery(**data)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def busy_night(buyers: int) -> Scenario:
    """The seed's load test as a scenario: ``buyers`` distinct payments, one
    delivery each, all in one wave. No duplicates: it measures concurrency."""
    return Scenario(
        buyers=tuple(Buyer(quantity=1) for _ in range(buyers)),
        waves=(tuple(Delivery(buyer=b) for b in range(buyers)),),
    )
