"""The scenario model: plain, frozen, printable data.

A *scenario* is a story a person can follow, and the chaos the tool adds to
it. Nothing here imports trio, httpx, asyncpg or stripe: this is what
Hypothesis draws, what reports print, and what the regression corpus stores
as JSON (:mod:`strategies._internal.data`).

Story and schedule
==================
- The **event** has ticket types (price in cents, capacity; sometimes tight).
- Each **buyer** has a *story*: checks out once at the target's checkout door
  for ``quantity`` tickets of one ticket type, then the payment *outcome*
  happens at the fake Stripe (paid at once, asynchronously succeeded or
  failed, never paid so the session expires, paid then refunded in full or in
  part, paid then disputed). The outcome decides which Stripe events exist
  (:func:`story_events`).
- The **schedule** is waves of requests the tool adds or times. Requests in
  one wave are fired together behind a start barrier; waves run one after
  another. Its steps are :class:`Delivery` (a copy of one story event, sent
  to the webhook door) and :class:`Checkout` (an explicit attempt at the
  checkout door). :attr:`Scenario.requests` counts schedule requests only.
- **Faults** are armed on the fake Stripe API for the *target's own* Stripe
  calls during the example.

Steps name things abstractly ("buyer 2's charge.refunded", "buyer 1's 2nd
checkout attempt"); the executor resolves them to real ids at run time.
Indices in the data are 0-based; rendering numbers from 1.

How the executor interprets a scenario
======================================
``K(b, a)`` below is the Idempotency-Key of buyer ``b``'s checkout attempt
``a``, unique per example (e.g. ``f"{event_id}-b{b+1}-a{a}"``); the ticket
type id of index ``i`` is ``f"{event_id}-tt{i+1}"``.

0. **Fixture.** Install the event and its ticket types with the target's
   fixture SQL (price, capacity as given).
1. **Faults.** Arm every :class:`Fault` on the fake Stripe before the first
   request of the example, disarm after the last: the ``nth`` call (counting
   from 1, from arming) that the *target* makes to ``endpoint`` misbehaves as
   ``kind`` says (see :data:`FAULT_KINDS`). The tester's own control calls
   (``/_chaos/...``) are never faulted.
2. **Set-up story**, for every buyer whose own checkout (``Checkout(b,
   attempt=0)``) is *not* in the schedule, one buyer at a time in buyer order
   (races happen only where the schedule puts them):

   a. *Checkout* at the target's checkout door (``POST
      /functions/v1/create-checkout-session``) with the seed's payload:
      ``eventId``, ``tickets=[{ticketTypeId, quantity, price}]`` with the
      ticket type's price, ``total = price * quantity``, ``customerEmail``
      and ``customerName`` naming buyer ``b``, header ``Idempotency-Key:
      K(b, 0)``. Binds the buyer's session id from ``{sessionId}``.
   b. *Outcome* at the fake Stripe's control API, for that session:
      ``paid``: pay at once; ``async-succeeded`` / ``async-failed``: pay
      asynchronously, then let it succeed / fail; ``expired``: expire the
      session; ``refunded``: pay at once, then refund the charge in full;
      ``disputed``: pay at once, then dispute the charge; ``partially-refunded``:
      pay at once, then refund part of the charge (:func:`partial_refund`: one
      seat's price of a multi-seat purchase, half the price of a single seat). Binds every event
      Stripe emitted, by type (exactly :func:`story_events` of the outcome),
      plus the payment intent and charge ids. No webhook is sent here: the
      fake Stripe emits events, only the schedule delivers them.
3. **Waves**, in order. A wave's steps are resolved when the wave starts
   (from what earlier answers bound), then fired behind one start barrier;
   a step with ``offset_ms > 0`` waits that long after the barrier opens
   (a redelivery fired while an earlier copy is still in flight). Steps of a
   wave are listed in firing order (``offset_ms`` never decreases).

   - ``Checkout(b, attempt=0)``: the buyer's own checkout, as in 2a but at
     this point of the schedule (e.g. buyers racing for the last ticket).
     When the wave has ended, play the buyer's outcome (2b) before the next
     wave starts; validation guarantees the buyer's deliveries come later.
   - ``Checkout(b, attempt=k>0)``: another attempt at the checkout door with
     the body of the buyer's own checkout, except: ``key="same"`` sends
     ``K(b, 0)`` (a double-click when it shares a wave with attempt 0, a
     same-key retry otherwise); ``key="fresh"`` sends ``K(b, k)`` (a retry
     with a new key); ``tamper="price"`` sends each ticket's ``price`` as 1
     cent and ``total`` as ``quantity`` cents (a consistent but forged
     cart); ``tamper="total"`` keeps the prices and sends ``total`` as 1
     cent. Nobody pays for these sessions.
   - ``Delivery(b, event, copy, signature)``: POST the event of type
     ``event`` that buyer ``b``'s story produced to the target's webhook
     door, with the same event id and payload for every copy (as Stripe's
     retries do), signed at firing time by ``chaos.signing.sign(payload,
     secret, now=..., variant=signature)`` (:data:`chaos.signing.VARIANTS` names).

4. **Unresolvable steps.** When an earlier request did not give what a step
   needs (the buyer's checkout was refused, e.g. sold out, or a fault made
   it fail, so there is no session and no events), the step is not fired:
   record it as skipped (no request was sent), never as a failure of the
   target. Skipping follows from what the target answered, so it is part of
   the observed behaviour, not an error of the tool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Payment outcomes of a buyer's story, simplest first (shrinking walks left).
OUTCOMES = ("paid", "async-succeeded", "async-failed", "expired", "refunded", "disputed",
            "partially-refunded")

#: Stripe event types a delivery can carry: those a default run delivers
#: (:data:`DEFAULT_EVENT_TYPES`, in the order a story emits them), then the rest
#: of what Stripe sends for the same payments, for endpoints subscribed to them
#: (e.g. a shop that confirms on ``charge.succeeded`` and re-fetches the charge).
EVENT_TYPES = (
    "checkout.session.completed",
    "payment_intent.succeeded",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
    "charge.dispute.created",
    "charge.succeeded",
    "payment_intent.created",
    "charge.failed",
    "payment_intent.payment_failed",
    "refund.created",
    "charge.pending",
    "payment_intent.processing",
)

#: What ``scenarios()`` and ``schedules()`` deliver unless ``event_types`` says
#: otherwise: the events the seed's webhook and the reference service act on.
DEFAULT_EVENT_TYPES = EVENT_TYPES[:7]

_STORY_EVENTS: dict[str, tuple[str, ...]] = {
    # checkout.session.completed carries payment_status "paid" ...
    "paid": ("checkout.session.completed", "payment_intent.succeeded"),
    # ... or "unpaid" when the payment is asynchronous.
    # (Stripe does not order payment_intent.succeeded and async_payment_succeeded;
    # keeping payment_intent.succeeded second in every paid story lets shrinking
    # move between outcomes without changing which event a step names.)
    "async-succeeded": ("checkout.session.completed", "payment_intent.succeeded",
                        "checkout.session.async_payment_succeeded"),
    "async-failed": ("checkout.session.completed", "checkout.session.async_payment_failed"),
    "expired": ("checkout.session.expired",),
    "refunded": ("checkout.session.completed", "payment_intent.succeeded", "charge.refunded"),
    "disputed": ("checkout.session.completed", "payment_intent.succeeded",
                 "charge.dispute.created"),
    # Stripe sends charge.refunded for a partial refund too (the charge says how much)
    "partially-refunded": ("checkout.session.completed", "payment_intent.succeeded",
                           "charge.refunded"),
}
# The rest of what Stripe sends for each story (chaos.fake_stripe.state emits
# all of it), after the events above so that their slots never move.
for _outcome, _more in {
    "paid": ("charge.succeeded", "payment_intent.created"),
    "async-succeeded": ("charge.succeeded", "payment_intent.created", "charge.pending",
                        "payment_intent.processing"),
    "async-failed": ("charge.failed", "payment_intent.payment_failed", "payment_intent.created",
                     "charge.pending", "payment_intent.processing"),
    "expired": (),
    "refunded": ("charge.succeeded", "refund.created", "payment_intent.created"),
    "disputed": ("charge.succeeded", "payment_intent.created"),
    "partially-refunded": ("charge.succeeded", "refund.created", "payment_intent.created"),
}.items():
    _STORY_EVENTS[_outcome] += _more
del _outcome, _more

#: How a delivery is signed (a signature variant, :mod:`chaos.signing`). ``valid`` is the
#: simplest and shrinks first.
SIGNATURES = ("valid", "tampered", "wrong-secret", "stale", "future", "missing", "rotated")

#: Which Idempotency-Key an extra checkout attempt sends; ``same`` shrinks first.
CHECKOUT_KEYS = ("same", "fresh")

#: What an extra checkout attempt forges in the seed's payload; ``none`` shrinks first.
TAMPERING = ("none", "price", "total")

#: Kinds of schedule checkout the strategies may place (see ``scenarios(checkouts=...)``).
CHECKOUTS = ("timed", "same-key", "fresh-key", "tampered-price", "tampered-total")

#: Faults the fake Stripe can play on one of the target's calls, simplest first.
#: ``5xx``: answers 500 with a Stripe api_error; ``429``: rate limited, with
#: ``Retry-After``; ``latency``: answers correctly after ``latency_ms``;
#: ``hang``: never answers (the target's client must give up); ``lost-answer``:
#: does the work, then drops the connection before answering; ``reset``:
#: drops the connection before doing anything.
FAULT_KINDS = ("5xx", "429", "latency", "hang", "lost-answer", "reset")

#: Stripe API endpoints the target may call, as method and path template.
STRIPE_ENDPOINTS = (
    "POST /v1/checkout/sessions",
    "GET /v1/checkout/sessions/{id}",
    "GET /v1/checkout/sessions/{id}/line_items",
    "GET /v1/events/{id}",
    "GET /v1/payment_intents/{id}",
    "GET /v1/charges/{id}",
)

#: Ticket types default to plenty of tickets: capacity only matters when tight.
DEFAULT_PRICE = 2500
DEFAULT_CAPACITY = 1000

#: Longest start offset a step may have within its wave.
MAX_OFFSET_MS = 10_000


#: The most events one story produces.
MAX_STORY_EVENTS = max(len(events) for events in _STORY_EVENTS.values())


def story_slots(event_types: tuple[str, ...]) -> int:
    """The most events of ``event_types`` one story produces: how many slots a
    delivery's event is drawn from (3 for :data:`DEFAULT_EVENT_TYPES`)."""
    return max(sum(e in event_types for e in events) for events in _STORY_EVENTS.values())


def story_events(outcome: str) -> tuple[str, ...]:
    """The Stripe events a buyer's story produces for ``outcome``: those of
    :data:`DEFAULT_EVENT_TYPES` in natural order, then the others Stripe sends."""
    try:
        return _STORY_EVENTS[outcome]
    except KeyError:
        raise ValueError(f"unknown outcome {outcome!r}: choose from {', '.join(OUTCOMES)}") from None


def partial_refund(price: int, quantity: int) -> int:
    """Cents refunded in a ``partially-refunded`` story of ``quantity`` tickets at
    ``price``: one seat's price of a multi-seat purchase, else half the price (at
    least 1 cent): always less than the whole charge."""
    return price if quantity > 1 else max(1, price // 2)


@dataclass(frozen=True)
class TicketType:
    """A kind of ticket for the event: price in cents and how many exist."""

    price: int = DEFAULT_PRICE
    capacity: int = DEFAULT_CAPACITY


@dataclass(frozen=True)
class Buyer:
    """A buyer's story: checks out once for ``quantity`` tickets of one type,
    then the payment ``outcome`` (one of :data:`OUTCOMES`) happens at Stripe."""

    quantity: int = 1
    ticket_type: int = 0  # index into Scenario.ticket_types
    outcome: str = "paid"

    @property
    def events(self) -> tuple[str, ...]:
        """The Stripe events this story produces (see :func:`story_events`)."""
        return story_events(self.outcome)


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery: a copy of an event of a buyer's story, sent to
    the target's webhook door.

    ``copy`` counts deliveries of the same event in schedule order (0 is the
    first); copies carry the same event id and payload, as Stripe's retries
    do. ``offset_ms`` delays the start within the wave.
    """

    buyer: int  # index into Scenario.buyers
    event: str = "checkout.session.completed"
    copy: int = 0
    signature: str = "valid"
    offset_ms: int = 0

    kind: ClassVar[str] = "deliver"

    def describe(self) -> str:
        """One line a person can follow, e.g. for a numbered report step."""
        extras = [f"{ordinal(self.copy + 1)} copy"]
        if self.signature != "valid":
            extras.append(f"signature {self.signature}")
        if self.offset_ms:
            extras.append(f"fired {self.offset_ms} ms into the wave")
        return f"deliver buyer {self.buyer + 1}'s {self.event} ({', '.join(extras)})"


@dataclass(frozen=True)
class Checkout:
    """A checkout attempt at the target's checkout door, placed in the schedule.

    ``attempt=0`` is the buyer's own checkout (its story's), timed explicitly;
    later attempts repeat it with the ``same`` or a ``fresh`` Idempotency-Key,
    optionally with a forged ``price`` or ``total`` (:data:`TAMPERING`).
    """

    buyer: int  # index into Scenario.buyers
    attempt: int = 0
    key: str = "same"
    tamper: str = "none"
    offset_ms: int = 0

    kind: ClassVar[str] = "checkout"

    def describe(self) -> str:
        """One line a person can follow, e.g. for a numbered report step."""
        who = f"buyer {self.buyer + 1}"
        if self.attempt == 0:
            line = f"{who} checks out"
        else:
            key = "the same" if self.key == "same" else "a fresh"
            line = f"{who} checks out again with {key} idempotency key"
            if self.tamper != "none":
                line += f", sending a tampered {self.tamper}"
        extras = [f"{ordinal(self.attempt + 1)} attempt"]
        if self.offset_ms:
            extras.append(f"fired {self.offset_ms} ms into the wave")
        return f"{line} ({', '.join(extras)})"


@dataclass(frozen=True)
class Fault:
    """A fault armed on the fake Stripe API: the ``nth`` call the target makes
    to ``endpoint``, and the ``times - 1`` calls after it (an outage that outlasts a
    client's retries), misbehave as ``kind`` (:data:`FAULT_KINDS`) says."""

    kind: str = "5xx"
    endpoint: str = STRIPE_ENDPOINTS[0]
    nth: int = 1
    latency_ms: int = 0  # only for kind "latency"
    times: int = 1

    @property
    def calls(self) -> range:
        """The numbers of the calls it plays on (1 is the first)."""
        return range(self.nth, self.nth + self.times)

    def describe(self) -> str:
        """One line a person can follow."""
        what = {
            "5xx": "answers 500",
            "429": "answers 429 (rate limited, with Retry-After)",
            "latency": f"answers after {self.latency_ms} ms",
            "hang": "never answers",
            "lost-answer": "does the work, then drops the connection without answering",
            "reset": "drops the connection before doing anything",
        }.get(self.kind, f"misbehaves as {self.kind!r}")
        if self.times == 1:
            return f"the target's {ordinal(self.nth)} call to {self.endpoint} {what}"
        last = self.nth + self.times - 1
        return (f"the target's {ordinal(self.nth)} to {ordinal(last)} calls to "
                f"{self.endpoint} (an outage) each {what.replace('answers', 'answer', 1)}")


Step = Delivery | Checkout
Wave = tuple[Step, ...]

STEP_KINDS = ("deliver", "checkout")


@dataclass(frozen=True)
class Scenario:
    """An event, its buyers' stories, the schedule of waves fired at the
    target, and the faults armed on the fake Stripe."""

    buyers: tuple[Buyer, ...]
    waves: tuple[Wave, ...]
    ticket_types: tuple[TicketType, ...] = field(default=(TicketType(),))
    faults: tuple[Fault, ...] = ()

    @property
    def requests(self) -> int:
        """Requests in the schedule (set-up calls excluded)."""
        return sum(len(wave) for wave in self.waves)

    def steps(self) -> list[tuple[int, Step]]:
        """Every step with its wave number (0-based), in schedule order."""
        return [(w, step) for w, wave in enumerate(self.waves) for step in wave]

    def deliveries(self) -> Iterator[tuple[int, Delivery]]:
        """Every delivery with its wave number, in schedule order."""
        return ((w, s) for w, s in self.steps() if isinstance(s, Delivery))

    def checkouts(self) -> Iterator[tuple[int, Checkout]]:
        """Every schedule checkout with its wave number, in schedule order."""
        return ((w, s) for w, s in self.steps() if isinstance(s, Checkout))

    def timed_checkout_wave(self, buyer: int) -> int | None:
        """The wave holding ``buyer``'s own checkout, or None when the story's
        checkout runs in set-up."""
        for w, step in self.checkouts():
            if step.buyer == buyer and step.attempt == 0:
                return w
        return None

    def render(self) -> list[str]:
        """Numbered steps a person can follow, as printed in reports."""
        from strategies._internal.rendering import render

        return render(self)

    def to_data(self) -> dict[str, Any]:
        """JSON-ready form, stable across versions: used by reports and the corpus."""
        from strategies._internal.data import to_data

        return to_data(self)

    @classmethod
    def from_data(cls, data: Any) -> Scenario:
        """Inverse of :meth:`to_data`, validated; raises ValueError naming the bad field.

        Fields added since the first version may be absent (their defaults apply).
        """
        from strategies._internal.data import from_data

        return from_data(data)

    def validate(self) -> None:
        """Check that the parts agree; raises ValueError naming the bad part."""
        from strategies._internal.consistency import validate

        validate(self)


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def busy_night(buyers: int) -> Scenario:
    """The seed's two load tests as one scenario: ``buyers`` checkouts fired
    together (wave 1), each paid at once, then their ``buyers`` completions
    delivered together (wave 2). No duplicates: it measures concurrency."""
    return Scenario(
        buyers=tuple(Buyer(quantity=1) for _ in range(buyers)),
        waves=(tuple(Checkout(buyer=b) for b in range(buyers)),
               tuple(Delivery(buyer=b) for b in range(buyers))),
    )
