"""Hypothesis strategies for scenarios and their parts.

Every choice is drawn from Hypothesis (a seed replays the same scenarios),
and every choice puts its simplest value first, so shrinking walks toward
fewer buyers, fewer requests, fewer copies, fewer waves, quantity 1, plenty
of tickets, the paid-at-once story, valid signatures, no start offsets, no
faults and the natural order of events.

Shape of a draw, chosen for shrinking (measured, see the tests):

- Each buyer is drawn *together with its own schedule steps* (each with a
  wave number), so deleting a buyer deletes its requests and no reference
  to another buyer shifts.
- Hypothesis' shrinker deletes an element from the middle of a list only
  when the element takes at most 5 choices (its ``node_program`` passes
  delete 1..5 consecutive choices; with 6-choice elements the "refund
  before completion" example shrank to 3..11 steps instead of 2). So every
  list element here takes at most 5 choices, the list's own "one more"
  flag included: a delivery is (event, signature, offset, wave), a checkout
  (variant, key, offset, wave), a buyer without steps (ticket type and
  quantity in one choice, outcome, end of checkouts, end of deliveries), a
  fault (kind, endpoint, nth[, latency]), a ticket type (price, capacity:
  one or two choices each).
- Deliveries and checkouts are separate lists, so equal steps have equal
  choices and the shrinker can lower them together (two copies of
  ``payment_intent.succeeded`` become two of ``checkout.session.completed``).
  Checkouts are drawn first and take as many choices as deliveries, so where
  either would do, the shrunk scenario keeps the deliveries.
- A delivery's event is one choice among :data:`MAX_STORY_EVENTS` slots (the
  story's events, padded with its first), so the shape of a draw does not
  change when shrinking changes a buyer's outcome, and an event keeps its
  slot across outcomes (``payment_intent.succeeded`` is second in every
  paid story).
- "Simplest half the time" is one choice from a table that repeats only the
  simplest value.
- :func:`_assemble` turns whatever was drawn into a valid schedule
  deterministically (empty waves dropped, copies and attempts numbered in
  firing order, a buyer's deliveries moved after its timed checkout), so
  every draw is usable.

Strategies for the parts are built once per set of bounds and cached
(building a Hypothesis strategy costs far more than drawing from it).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from hypothesis import strategies as st

from strategies._internal.model import (
    CHECKOUT_KEYS,
    CHECKOUTS,
    DEFAULT_CAPACITY,
    DEFAULT_PRICE,
    EVENT_TYPES,
    FAULT_KINDS,
    MAX_OFFSET_MS,
    MAX_STORY_EVENTS,
    OUTCOMES,
    SIGNATURES,
    STRIPE_ENDPOINTS,
    Buyer,
    Checkout,
    Delivery,
    Fault,
    Scenario,
    Step,
    TicketType,
    Wave,
)
from strategies._internal.validation import (
    check_bool,
    check_bounded_int,
    check_names,
    public_strategy,
)

_MAX_PRICE = 100_000  # cents
_MAX_LATENCY_MS = 60_000
_MAX_TIGHT_CAPACITY = 4
#: Start offsets a step may get (readable values), capped by ``max_offset_ms``.
_OFFSETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000)

Placement = tuple[Step, int]  # a step (buyer index not yet bound) and its drawn wave number


# --- cached builders, shared by the public strategies and scenarios() -----------------------

def _simplest_half(values: tuple) -> st.SearchStrategy:  # type: ignore[type-arg]
    """The first (simplest) value half the time, else any other: one choice,
    shrinking to the first.

    Keeps most deliveries valid and most stories plain, so the chaos that
    finds duplicates and races is not drowned in forged requests.
    """
    return st.sampled_from(values[:1] * max(1, len(values) - 1) + values[1:])


@lru_cache(maxsize=64)
def _offsets(max_offset_ms: int) -> st.SearchStrategy[int]:
    """0 (start with the wave) half the time, else a readable offset up to
    ``max_offset_ms``; one choice, shrinking toward 0."""
    return _simplest_half((0, *(o for o in _OFFSETS if o < max_offset_ms), max_offset_ms)
                          if max_offset_ms else (0,))


@lru_cache(maxsize=64)
def _ticket_type(tight_capacity: bool, max_tight_capacity: int) -> st.SearchStrategy[TicketType]:
    prices = st.one_of(st.just(DEFAULT_PRICE), st.integers(50, _MAX_PRICE))
    capacities = st.just(DEFAULT_CAPACITY)
    if tight_capacity:
        capacities = st.one_of(capacities, st.integers(1, max_tight_capacity))
    return st.builds(TicketType, price=prices, capacity=capacities)


@lru_cache(maxsize=256)
def _buyer(max_quantity: int, ticket_type_count: int,
           outcomes: tuple[str, ...]) -> st.SearchStrategy[Buyer]:
    """Two choices: ticket type and quantity packed in one (ticket type major,
    so shrinking reaches the first ticket type, then quantity 1), and the outcome."""
    return st.tuples(st.integers(0, ticket_type_count * max_quantity - 1),
                     _simplest_half(outcomes)).map(
        lambda pair: Buyer(quantity=pair[0] % max_quantity + 1,
                           ticket_type=pair[0] // max_quantity, outcome=pair[1]))


@lru_cache(maxsize=256)
def _delivery(events: tuple[str, ...], variants: tuple[str, ...],
              max_offset_ms: int) -> st.SearchStrategy[Delivery]:
    """A delivery by buyer 0 of one of ``events`` (its story's, in natural order)."""
    return st.builds(Delivery, buyer=st.just(0), event=st.sampled_from(events),
                     signature=_simplest_half(variants), offset_ms=_offsets(max_offset_ms))


def _checkout_variants(kinds: tuple[str, ...]) -> tuple[Checkout, ...]:
    """One template per allowed kind; a tampered one's key is drawn on its own."""
    variants: list[Checkout] = []
    for kind in kinds:
        if kind == "timed":
            variants.append(Checkout(buyer=0))
        elif kind in ("same-key", "fresh-key"):
            variants.append(Checkout(buyer=0, attempt=1, key=kind.removesuffix("-key")))
        else:
            variants.append(Checkout(buyer=0, attempt=1, tamper=kind.removeprefix("tampered-")))
    return tuple(variants)


@lru_cache(maxsize=64)
def _checkout(kinds: tuple[str, ...], max_offset_ms: int) -> st.SearchStrategy[Checkout]:
    """A checkout attempt by buyer 0 of one of ``kinds``."""
    return st.tuples(st.sampled_from(_checkout_variants(kinds)), st.sampled_from(CHECKOUT_KEYS),
                     _offsets(max_offset_ms)).map(lambda t: _checkout_from(*t))


@dataclass(frozen=True)
class _Bounds:
    """Validated bounds of a schedule; hashable, so strategies built from it cache."""

    max_requests: int = 12
    max_waves: int = 3
    max_copies: int = 3
    max_concurrency: int | None = None
    event_types: tuple[str, ...] = EVENT_TYPES
    signatures: tuple[str, ...] = SIGNATURES
    checkouts: tuple[str, ...] = CHECKOUTS
    max_offset_ms: int = 100


#: At most this many checkout steps per buyer: its own (timed), a double-click, a retry.
_MAX_CHECKOUTS_PER_BUYER = 3


def _place_delivery(drawn: tuple[str, str, int, int]) -> Placement:
    event, signature, offset, wave = drawn
    return Delivery(buyer=0, event=event, signature=signature, offset_ms=offset), wave


def _checkout_from(template: Checkout, key: str, offset: int) -> Checkout:
    if template.tamper != "none":  # tampered attempts come with the same or a fresh key
        template = replace(template, key=key)
    return replace(template, offset_ms=offset)


def _place_checkout(drawn: tuple[Checkout, str, int, int]) -> Placement:
    template, key, offset, wave = drawn
    return _checkout_from(template, key, offset), wave


@lru_cache(maxsize=256)
def _placements(events: tuple[str, ...],
                bounds: _Bounds) -> st.SearchStrategy[tuple[list[Placement], list[Placement]]]:
    """One buyer's schedule steps (as buyer 0) with drawn wave numbers: its
    checkout steps (each: variant, key, offset, wave), then its deliveries
    (each: event slot, signature, offset, wave)."""
    waves = st.integers(0, bounds.max_waves - 1)
    offsets = _offsets(bounds.max_offset_ms)
    checkouts: st.SearchStrategy[list[Placement]] = st.just([])
    if bounds.checkouts and bounds.max_requests:
        variants = st.sampled_from(_checkout_variants(bounds.checkouts))
        checkouts = st.lists(
            st.tuples(variants, st.sampled_from(CHECKOUT_KEYS), offsets, waves).map(
                _place_checkout),
            max_size=min(bounds.max_requests, _MAX_CHECKOUTS_PER_BUYER))
    deliveries: st.SearchStrategy[list[Placement]] = st.just([])
    if events and bounds.max_requests:
        slots = events + events[:1] * (MAX_STORY_EVENTS - len(events))
        deliveries = st.lists(
            st.tuples(st.sampled_from(slots), _simplest_half(bounds.signatures), offsets,
                      waves).map(_place_delivery),
            max_size=bounds.max_requests)
    return st.tuples(checkouts, deliveries)


def _deliverable(buyer: Buyer, bounds: _Bounds) -> tuple[str, ...]:
    return tuple(e for e in buyer.events if e in bounds.event_types)


# --- public strategies ------------------------------------------------------------------------

@public_strategy
def ticket_types(*, tight_capacity: bool = True,
                 max_tight_capacity: int = _MAX_TIGHT_CAPACITY) -> st.SearchStrategy[TicketType]:
    """A ticket type: price in cents and capacity.

    With ``tight_capacity``, capacity is sometimes 1..``max_tight_capacity``
    (few enough that buyers compete for the last tickets), otherwise plenty.
    Shrinks toward the default price, then toward plenty of tickets, and a
    tight capacity toward 1.
    """
    check_bool("tight_capacity", tight_capacity)
    check_bounded_int("max_tight_capacity", max_tight_capacity, low=1)
    return _ticket_type(tight_capacity, max_tight_capacity)


@public_strategy
def buyers(*, max_quantity: int = 4, ticket_type_count: int = 1,
           outcomes: Collection[str] = OUTCOMES) -> st.SearchStrategy[Buyer]:
    """A buyer's story: 1..``max_quantity`` tickets of one of the first
    ``ticket_type_count`` ticket types, and a payment outcome from ``outcomes``
    (the simplest allowed one half the time).

    Shrinks toward quantity 1, the first ticket type, and the simplest allowed
    outcome (``paid`` first, in :data:`OUTCOMES` order).
    """
    check_bounded_int("max_quantity", max_quantity, low=1)
    check_bounded_int("ticket_type_count", ticket_type_count, low=1)
    return _buyer(max_quantity, ticket_type_count, check_names("outcomes", outcomes, OUTCOMES))


@public_strategy
def signatures(*, variants: Collection[str] = SIGNATURES) -> st.SearchStrategy[str]:
    """A signature variant name (contract 3) from ``variants``: the simplest
    allowed one (``valid`` first, in :data:`SIGNATURES` order) half the time.

    Shrinks toward that simplest one.
    """
    return _simplest_half(check_names("variants", variants, SIGNATURES))


@st.composite
def _fault_of(draw: st.DrawFn, kinds: tuple[str, ...], endpoints: tuple[str, ...], max_nth: int,
              max_latency_ms: int) -> Fault:
    kind = draw(st.sampled_from(kinds))
    endpoint = draw(st.sampled_from(endpoints))
    nth = draw(st.integers(1, max_nth))
    latency = draw(st.integers(1, max_latency_ms)) if kind == "latency" else 0
    return Fault(kind=kind, endpoint=endpoint, nth=nth, latency_ms=latency)


@public_strategy
def faults(*, kinds: Collection[str] = FAULT_KINDS,
           endpoints: Collection[str] = STRIPE_ENDPOINTS, max_nth: int = 3,
           max_latency_ms: int = 3000) -> st.SearchStrategy[Fault]:
    """One fault for the fake Stripe: the ``nth`` (1..``max_nth``) call the
    target makes to one of ``endpoints`` misbehaves as one of ``kinds``.

    Shrinks toward a 500 on the first call that creates a Checkout Session;
    latency toward 1 ms.
    """
    allowed_kinds = check_names("kinds", kinds, FAULT_KINDS)
    allowed_endpoints = check_names("endpoints", endpoints, STRIPE_ENDPOINTS)
    check_bounded_int("max_nth", max_nth, low=1)
    check_bounded_int("max_latency_ms", max_latency_ms, low=1, high=_MAX_LATENCY_MS)
    return _fault_of(allowed_kinds, allowed_endpoints, max_nth, max_latency_ms)


@public_strategy
def deliveries(buyers: Sequence[Buyer], *, event_types: Collection[str] = EVENT_TYPES,
               signatures: Collection[str] = SIGNATURES,
               max_offset_ms: int = 100) -> st.SearchStrategy[Delivery]:
    """A delivery of one event of one of ``buyers``' stories (only types in
    ``event_types``), with a signature variant and a start offset in its wave.

    ``copy`` is 0: a schedule numbers copies when it places them. Nothing when
    no buyer's story emits an allowed event type. Shrinks toward the first
    buyer, the first event of its story, a valid signature and no offset.
    """
    bounds = _Bounds(event_types=check_names("event_types", event_types, EVENT_TYPES,
                                             allow_empty=True),
                     signatures=check_names("signatures", signatures, SIGNATURES),
                     max_offset_ms=check_bounded_int("max_offset_ms", max_offset_ms, low=0,
                                                     high=MAX_OFFSET_MS))
    options = [(b, _deliverable(buyer, bounds)) for b, buyer in enumerate(buyers)]
    options = [(b, events) for b, events in options if events]
    if not options:
        return st.nothing()
    return st.sampled_from(options).flatmap(
        lambda option: _delivery(option[1], bounds.signatures, bounds.max_offset_ms).map(
            lambda d: replace(d, buyer=option[0])))


@public_strategy
def checkouts(buyers: Sequence[Buyer], *, kinds: Collection[str] = CHECKOUTS,
              max_offset_ms: int = 100) -> st.SearchStrategy[Checkout]:
    """A checkout attempt of one of ``buyers`` at the checkout door, of one of
    ``kinds`` (:data:`CHECKOUTS`): ``timed`` places the buyer's own checkout
    in the schedule; ``same-key`` / ``fresh-key`` repeat it with the same or a
    new Idempotency-Key; ``tampered-price`` / ``tampered-total`` repeat it
    with a forged price or total (same or new key).

    Extra attempts come with ``attempt=1``: a schedule numbers them when it
    places them. Nothing when ``kinds`` is empty or there are no buyers.
    Shrinks toward the first buyer's timed own checkout with no offset.
    """
    allowed = check_names("kinds", kinds, CHECKOUTS, allow_empty=True)
    check_bounded_int("max_offset_ms", max_offset_ms, low=0, high=MAX_OFFSET_MS)
    if not allowed or not buyers:
        return st.nothing()
    return st.tuples(_checkout(allowed, max_offset_ms), st.integers(0, len(buyers) - 1)).map(
        lambda pair: replace(pair[0], buyer=pair[1]))


def _bounds(max_requests: int, max_waves: int, max_copies: int, max_concurrency: int | None,
            event_types: Collection[str], signatures: Collection[str],
            checkouts: Collection[str], max_offset_ms: int) -> _Bounds:
    check_bounded_int("max_requests", max_requests, low=0)
    check_bounded_int("max_waves", max_waves, low=1)
    check_bounded_int("max_copies", max_copies, low=1)
    if max_concurrency is not None:
        check_bounded_int("max_concurrency", max_concurrency, low=1)
    return _Bounds(
        max_requests=max_requests, max_waves=max_waves, max_copies=max_copies,
        max_concurrency=max_concurrency,
        event_types=check_names("event_types", event_types, EVENT_TYPES, allow_empty=True),
        signatures=check_names("signatures", signatures, SIGNATURES),
        checkouts=check_names("checkouts", checkouts, CHECKOUTS, allow_empty=True),
        max_offset_ms=check_bounded_int("max_offset_ms", max_offset_ms, low=0,
                                        high=MAX_OFFSET_MS),
    )


@public_strategy
def schedules(buyers: Sequence[Buyer], *, max_requests: int = 12, max_waves: int = 3,
              max_copies: int = 3, max_concurrency: int | None = None,
              event_types: Collection[str] = EVENT_TYPES,
              signatures: Collection[str] = SIGNATURES,
              checkouts: Collection[str] = CHECKOUTS,
              max_offset_ms: int = 100) -> st.SearchStrategy[tuple[Wave, ...]]:
    """Waves of requests for ``buyers``' stories: deliveries of their events
    (0..``max_copies`` copies of each, only ``event_types``, signed with
    ``signatures``) and checkout attempts of ``checkouts`` kinds, at most
    ``max_requests`` in all and ``max_concurrency`` per wave, in up to
    ``max_waves`` waves. A wave fires together; the next starts when it ended.

    Events of one payment may be delivered out of their natural order (in a
    later wave), or redelivered while an earlier copy is in flight (same
    wave, later start offset, up to ``max_offset_ms``). Shrinks by deleting
    requests, then toward the first wave (the fewest waves), then each
    request toward its simplest.
    """
    bounds = _bounds(max_requests, max_waves, max_copies, max_concurrency, event_types,
                     signatures, checkouts, max_offset_ms)
    per_buyer = st.tuples(*(_placements(_deliverable(buyer, bounds), bounds) for buyer in buyers))
    return per_buyer.map(lambda drawn: _assemble([c + d for c, d in drawn], bounds))


def _assemble(drawn: list[list[Placement]], bounds: _Bounds) -> tuple[Wave, ...]:
    """Turn each buyer's drawn (step, wave number) pairs into one valid schedule.

    A buyer's own checkout counts once (its first draw); its other attempts
    move to that wave or later and its deliveries to a later wave (dropped if
    there is none). Steps fire in wave order, then by start offset, then by
    buyer and as drawn; requests beyond ``max_requests``, copies beyond
    ``max_copies`` and requests beyond ``max_concurrency`` in a wave are
    dropped; empty waves vanish; offsets count from the wave's first start;
    copies and attempts are numbered in firing order.
    """
    placed: list[tuple[int, int, int, Step]] = []  # (wave, offset, position, step)
    for b, placements in enumerate(drawn):
        timed = next((w for s, w in placements if isinstance(s, Checkout) and s.attempt == 0),
                     None)
        seen_timed = False
        for step, wave in placements:
            if isinstance(step, Checkout):
                if step.attempt == 0:
                    if seen_timed:
                        continue
                    seen_timed = True
                elif timed is not None:
                    wave = max(wave, timed)
            elif timed is not None:
                wave = max(wave, timed + 1)
                if wave >= bounds.max_waves:
                    continue
            placed.append((wave, step.offset_ms, len(placed), replace(step, buyer=b)))
    placed.sort(key=lambda p: p[:3])

    waves: dict[int, list[Step]] = {}
    copies: dict[tuple[int, str], int] = {}
    attempts: dict[int, int] = {}
    kept = 0
    for wave, _, _, step in placed:
        members = waves.setdefault(wave, [])
        if kept >= bounds.max_requests or (bounds.max_concurrency is not None
                                           and len(members) >= bounds.max_concurrency):
            continue
        if isinstance(step, Delivery):
            sent = copies.get((step.buyer, step.event), 0)
            if sent >= bounds.max_copies:
                continue
            copies[(step.buyer, step.event)] = sent + 1
            step = replace(step, copy=sent)
        elif step.attempt > 0:
            attempts[step.buyer] = attempts.get(step.buyer, 0) + 1
            step = replace(step, attempt=attempts[step.buyer])
        members.append(step)
        kept += 1
    return tuple(_from_first_start(members) for _, members in sorted(waves.items()) if members)


def _from_first_start(members: list[Step]) -> Wave:
    first = members[0].offset_ms
    return tuple(replace(step, offset_ms=step.offset_ms - first) if first else step
                 for step in members)


@st.composite
def _scenario(draw: st.DrawFn, bounds: _Bounds, max_buyers: int, max_quantity: int,
              max_ticket_types: int, tight_capacity: bool, outcomes: tuple[str, ...],
              faults: st.SearchStrategy[list[Fault]]) -> Scenario:
    types = tuple(draw(st.lists(_ticket_type(tight_capacity, _MAX_TIGHT_CAPACITY), min_size=1,
                                max_size=max_ticket_types)))
    stories = draw(st.lists(_story(bounds, max_quantity, len(types), outcomes), min_size=1,
                            max_size=max_buyers))
    return Scenario(buyers=tuple(buyer for buyer, _ in stories),
                    waves=_assemble([placements for _, placements in stories], bounds),
                    ticket_types=types, faults=tuple(draw(faults)))


@st.composite
def _story_of(draw: st.DrawFn, bounds: _Bounds, max_quantity: int, ticket_type_count: int,
              outcomes: tuple[str, ...]) -> tuple[Buyer, list[Placement]]:
    buyer = draw(_buyer(max_quantity, ticket_type_count, outcomes))
    checkouts, deliveries = draw(_placements(_deliverable(buyer, bounds), bounds))
    return buyer, checkouts + deliveries


@lru_cache(maxsize=256)
def _story(bounds: _Bounds, max_quantity: int, ticket_type_count: int,
           outcomes: tuple[str, ...]) -> st.SearchStrategy[tuple[Buyer, list[Placement]]]:
    """A buyer together with its own schedule steps: deleting it deletes them."""
    return _story_of(bounds, max_quantity, ticket_type_count, outcomes)


@public_strategy
def scenarios(*, max_buyers: int = 4, max_quantity: int = 4, max_ticket_types: int = 2,
              tight_capacity: bool = True, outcomes: Collection[str] = OUTCOMES,
              max_requests: int = 12, max_waves: int = 3, max_copies: int = 3,
              max_concurrency: int | None = None, event_types: Collection[str] = EVENT_TYPES,
              signatures: Collection[str] = SIGNATURES, checkouts: Collection[str] = CHECKOUTS,
              max_offset_ms: int = 100, max_faults: int = 2,
              fault_kinds: Collection[str] = FAULT_KINDS) -> st.SearchStrategy[Scenario]:
    """Whole scenarios: an event with 1..``max_ticket_types`` ticket types,
    1..``max_buyers`` buyers' stories (outcomes from ``outcomes``), a schedule
    (see :func:`schedules` for its bounds) and, in half the examples, 1..
    ``max_faults`` faults of ``fault_kinds`` armed on the fake Stripe.

    Every bound is checked here, when the strategy is built. Shrinks toward
    one ticket type with plenty of tickets, one buyer paying at once for one
    ticket, the fewest requests, copies and waves, valid signatures, natural
    order and no faults.
    """
    check_bounded_int("max_buyers", max_buyers, low=1)
    check_bounded_int("max_quantity", max_quantity, low=1)
    check_bounded_int("max_ticket_types", max_ticket_types, low=1)
    check_bool("tight_capacity", tight_capacity)
    allowed_outcomes = check_names("outcomes", outcomes, OUTCOMES)
    bounds = _bounds(max_requests, max_waves, max_copies, max_concurrency, event_types,
                     signatures, checkouts, max_offset_ms)
    check_bounded_int("max_faults", max_faults, low=0)
    allowed_faults = check_names("fault_kinds", fault_kinds, FAULT_KINDS, allow_empty=True)
    fault_lists: st.SearchStrategy[list[Fault]] = st.just([])
    if max_faults and allowed_faults:  # half the examples have none
        fault_lists = st.one_of(fault_lists, st.lists(
            faults(kinds=allowed_faults), min_size=1, max_size=max_faults,
            unique_by=lambda f: (f.endpoint, f.nth)))
    return _scenario(bounds, max_buyers, max_quantity, max_ticket_types, tight_capacity,
                     allowed_outcomes, fault_lists)
