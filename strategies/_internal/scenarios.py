"""Public strategies for the parts of a scenario, and ``scenarios()`` itself.

Every choice is drawn from Hypothesis (a seed replays the same scenarios),
and every choice puts its simplest value first, so shrinking walks toward
fewer buyers, fewer requests, fewer copies, fewer waves, quantity 1, plenty
of tickets, the paid-at-once story, valid signatures, no start offsets, no
faults and the natural order of events. How a draw is shaped so that the
shrinker gets there is explained in :mod:`strategies._internal.schedules`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from functools import lru_cache

from hypothesis import strategies as st

from strategies._internal import choices
from strategies._internal.model import (
    CHECKOUTS,
    DEFAULT_EVENT_TYPES,
    EVENT_TYPES,
    FAULT_KINDS,
    MAX_OFFSET_MS,
    OUTCOMES,
    SIGNATURES,
    STRIPE_ENDPOINTS,
    Buyer,
    Checkout,
    Delivery,
    Fault,
    Scenario,
    TicketType,
)
from strategies._internal.schedules import (
    Bounds,
    Placement,
    assemble,
    check_bounds,
    deliverable,
    placements,
)
from strategies._internal.swarm import Swarm, swarms
from strategies._internal.validation import (
    check_bool,
    check_bounded_int,
    check_names,
    public_strategy,
)

#: Most calls in a row one drawn fault plays on: more than a client's retries (the
#: reference service's Stripe client retries twice, so three calls in a row fail it).
MAX_OUTAGE = 5


@public_strategy
def ticket_types(*, tight_capacity: bool = True,
                 max_tight_capacity: int = choices.MAX_TIGHT_CAPACITY,
                 ) -> st.SearchStrategy[TicketType]:
    """A ticket type: price in cents and capacity.

    With ``tight_capacity``, capacity is sometimes 1..``max_tight_capacity``
    (few enough that buyers compete for the last tickets), otherwise plenty.
    Shrinks toward the default price, then toward plenty of tickets, and a
    tight capacity toward 1.
    """
    check_bool("tight_capacity", tight_capacity)
    check_bounded_int("max_tight_capacity", max_tight_capacity, low=1)
    return choices.ticket_type(tight_capacity, max_tight_capacity)


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
    return choices.buyer(max_quantity, ticket_type_count, check_names("outcomes", outcomes, OUTCOMES))


@public_strategy
def signatures(*, variants: Collection[str] = SIGNATURES) -> st.SearchStrategy[str]:
    """A signature variant name from ``variants``: the simplest
    allowed one (``valid`` first, in :data:`SIGNATURES` order) half the time.

    Shrinks toward that simplest one.
    """
    return choices.simplest_half(check_names("variants", variants, SIGNATURES))


@public_strategy
def faults(*, kinds: Collection[str] = FAULT_KINDS,
           endpoints: Collection[str] = STRIPE_ENDPOINTS, max_nth: int = 3,
           max_latency_ms: int = 3000, max_times: int = MAX_OUTAGE,
           called: Collection[str] = ()) -> st.SearchStrategy[Fault]:
    """One fault for the fake Stripe: the ``nth`` (1..``max_nth``) call the
    target makes to one of ``endpoints``, and in half the faults 1..``max_times - 1``
    calls after it (an outage that outlasts a client's retries), misbehave as one of
    ``kinds``. ``called`` are the endpoints the target was seen calling: three faults
    in four pick one of them (those of ``endpoints``).

    Shrinks toward a 500 on the first call that creates a Checkout Session
    (the first endpoint called), one call; latency toward 1 ms.
    """
    allowed_kinds = check_names("kinds", kinds, FAULT_KINDS)
    allowed_endpoints = check_names("endpoints", endpoints, STRIPE_ENDPOINTS)
    seen = tuple(e for e in check_names("called", called, STRIPE_ENDPOINTS, allow_empty=True)
                 if e in allowed_endpoints)
    check_bounded_int("max_nth", max_nth, low=1)
    check_bounded_int("max_latency_ms", max_latency_ms, low=1, high=choices.MAX_LATENCY_MS)
    check_bounded_int("max_times", max_times, low=1)
    return choices.fault(allowed_kinds, allowed_endpoints, max_nth, max_latency_ms,
                         max_times, seen)


@public_strategy
def deliveries(buyers: Sequence[Buyer], *, event_types: Collection[str] = DEFAULT_EVENT_TYPES,
               signatures: Collection[str] = SIGNATURES,
               max_offset_ms: int = 100) -> st.SearchStrategy[Delivery]:
    """A delivery of one event of one of ``buyers``' stories (only types in
    ``event_types``), with a signature variant and a start offset in its wave.

    ``copy`` is 0: a schedule numbers copies when it places them. Nothing when
    no buyer's story emits an allowed event type. Shrinks toward the first
    buyer, the first event of its story, a valid signature and no offset.
    """
    bounds = Bounds(event_types=check_names("event_types", event_types, EVENT_TYPES,
                                             allow_empty=True),
                     signatures=check_names("signatures", signatures, SIGNATURES),
                     max_offset_ms=check_bounded_int("max_offset_ms", max_offset_ms, low=0,
                                                     high=MAX_OFFSET_MS))
    options = [(b, deliverable(buyer, bounds)) for b, buyer in enumerate(buyers)]
    options = [(b, events) for b, events in options if events]
    if not options:
        return st.nothing()
    return st.sampled_from(options).flatmap(
        lambda option: choices.delivery(option[1], bounds.signatures, bounds.max_offset_ms).map(
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
    return st.tuples(choices.checkout(allowed, max_offset_ms), st.integers(0, len(buyers) - 1)).map(
        lambda pair: replace(pair[0], buyer=pair[1]))


@st.composite
def _scenario(draw: st.DrawFn, bounds: Bounds, max_buyers: int, max_quantity: int,
              max_ticket_types: int, tight_capacity: bool, outcomes: tuple[str, ...],
              faults: st.SearchStrategy[list[Fault]],
              some_faults: st.SearchStrategy[list[Fault]] | None, swarm: bool) -> Scenario:
    kinds = draw(swarms(outcomes, bounds.checkouts, bounds.signatures)) if swarm else None
    ticket_type = choices.ticket_type(tight_capacity, choices.MAX_TIGHT_CAPACITY)
    types = tuple(draw(st.lists(ticket_type, min_size=1, max_size=max_ticket_types)))
    if kinds is not None:
        types = tuple(kinds.ticket_type(tt) for tt in types)
    drawn_outcomes = outcomes if kinds is None else kinds.story_outcomes(outcomes)
    stories = draw(st.lists(_story(bounds, max_quantity, len(types), drawn_outcomes, kinds),
                            min_size=1, max_size=max_buyers))
    # with swarm, the faults flag says whether there are any: on, at least one is armed
    armed = tuple(draw(faults)) if kinds is None else \
        tuple(draw(some_faults)) if kinds.faults and some_faults is not None else ()
    if kinds is not None:
        stories = [(kinds.fitted(buyer, types), steps) for buyer, steps in stories]
    return Scenario(buyers=tuple(buyer for buyer, _ in stories),
                    waves=assemble([steps for _, steps in stories], bounds),
                    ticket_types=types, faults=armed)


@st.composite
def _story_of(draw: st.DrawFn, bounds: Bounds, max_quantity: int, ticket_type_count: int,
              outcomes: tuple[str, ...], kinds: Swarm | None) -> tuple[Buyer, list[Placement]]:
    # with swarm, the outcomes on are few and each is drawn as often as the simplest
    buyer = draw(choices.buyer(max_quantity, ticket_type_count, outcomes,
                               uniform=kinds is not None))
    if kinds is not None:
        buyer = kinds.buyer(buyer)
    events = deliverable(buyer, bounds)
    checkouts, deliveries = draw(placements(events, bounds if kinds is None
                                            else kinds.bounds(bounds)))
    if kinds is not None:
        deliveries = kinds.deliveries(buyer, deliveries, events, bounds.max_waves)
    steps = checkouts + deliveries
    if kinds is not None:
        folded = ((kinds.step(step, bounds.signatures[0]), wave) for step, wave in steps)
        steps = kinds.rushed(kinds.ordered(
            buyer, [(step, wave) for step, wave in folded if step is not None]))
    return buyer, steps


@lru_cache(maxsize=1024)
def _story(bounds: Bounds, max_quantity: int, ticket_type_count: int,
           outcomes: tuple[str, ...], kinds: Swarm | None,
           ) -> st.SearchStrategy[tuple[Buyer, list[Placement]]]:
    """A buyer together with its own schedule steps: deleting it deletes them."""
    return _story_of(bounds, max_quantity, ticket_type_count, outcomes, kinds)


@public_strategy
def scenarios(*, max_buyers: int = 4, max_quantity: int = 4, max_ticket_types: int = 2,
              tight_capacity: bool = True, outcomes: Collection[str] = OUTCOMES,
              max_requests: int = 12, max_waves: int = 3, max_copies: int = 3,
              max_concurrency: int | None = None,
              event_types: Collection[str] = DEFAULT_EVENT_TYPES,
              signatures: Collection[str] = SIGNATURES, checkouts: Collection[str] = CHECKOUTS,
              max_offset_ms: int = 100, max_faults: int = 2,
              fault_kinds: Collection[str] = FAULT_KINDS,
              called_endpoints: Collection[str] = (),
              swarm: bool = False) -> st.SearchStrategy[Scenario]:
    """Whole scenarios: an event with 1..``max_ticket_types`` ticket types,
    1..``max_buyers`` buyers' stories (outcomes from ``outcomes``), a schedule
    (see :func:`schedules` for its bounds) and, in half the examples, 1..
    ``max_faults`` faults of ``fault_kinds`` armed on the fake Stripe, each on its own
    endpoint, most on ``called_endpoints`` (those the target was seen calling) when given
    (see :func:`faults`).

    With ``swarm``, each scenario first switches a random subset of story
    kinds on (outcomes, checkout kinds, signature variants, multi-seat
    buyers, tight capacity, faults; see :mod:`strategies._internal.swarm`),
    so rare combinations (a refund of a multi-seat purchase, buyers racing
    for the last tickets) become common; the search draws this way.

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
    bounds = check_bounds(max_requests, max_waves, max_copies, max_concurrency, event_types,
                          signatures, checkouts, max_offset_ms)
    check_bounded_int("max_faults", max_faults, low=0)
    allowed_faults = check_names("fault_kinds", fault_kinds, FAULT_KINDS, allow_empty=True)
    fault_lists: st.SearchStrategy[list[Fault]] = st.just([])
    some_faults: st.SearchStrategy[list[Fault]] | None = None
    if max_faults and allowed_faults:  # without swarm, half the examples have none
        some_faults = st.lists(faults(kinds=allowed_faults, called=called_endpoints),
                               min_size=1, max_size=max_faults, unique_by=lambda f: f.endpoint)
        fault_lists = st.one_of(fault_lists, some_faults)
    check_bool("swarm", swarm)
    return _scenario(bounds, max_buyers, max_quantity, max_ticket_types, tight_capacity,
                     allowed_outcomes, fault_lists, some_faults, swarm)

