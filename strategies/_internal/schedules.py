"""Schedules: each buyer's steps drawn with wave numbers, assembled into waves.

The shape of a draw decides how small a failure shrinks. Chosen for
shrinking, and measured (``tests/test_strategies_shrinking.py``):

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
- A delivery's event is one choice among ``story_slots(event_types)`` slots
  (the story's deliverable events, padded with its first), so the shape of a
  draw does not change when shrinking changes a buyer's outcome, and an
  event keeps its slot across outcomes (``payment_intent.succeeded`` is
  second in every paid story). Events beyond the defaults come after them
  in every story, so allowing them does not move the default ones.
- "Simplest half the time" is one choice from a table that repeats only the
  simplest value.
- :func:`assemble` turns whatever was drawn into a valid schedule
  deterministically (empty waves dropped, copies and attempts numbered in
  firing order, a buyer's deliveries moved after its timed checkout), so
  every draw is usable.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from hypothesis import strategies as st

from strategies._internal.choices import (
    KEY_DRAWS,
    checkout_from,
    checkout_variants,
    offsets,
    simplest_half,
)
from strategies._internal.model import (
    CHECKOUTS,
    DEFAULT_EVENT_TYPES,
    EVENT_TYPES,
    MAX_OFFSET_MS,
    SIGNATURES,
    Buyer,
    Checkout,
    Delivery,
    Step,
    Wave,
    story_slots,
)
from strategies._internal.validation import check_bounded_int, check_names, public_strategy

Placement = tuple[Step, int]  # a step (buyer index not yet bound) and its drawn wave number


@dataclass(frozen=True)
class Bounds:
    """Validated bounds of a schedule; hashable, so strategies built from it cache."""

    max_requests: int = 12
    max_waves: int = 3
    max_copies: int = 3
    max_concurrency: int | None = None
    event_types: tuple[str, ...] = DEFAULT_EVENT_TYPES
    signatures: tuple[str, ...] = SIGNATURES
    checkouts: tuple[str, ...] = CHECKOUTS
    max_offset_ms: int = 100




_MAX_CHECKOUTS_PER_BUYER = 3


def _place_delivery(drawn: tuple[str, str, int, int]) -> Placement:
    event, signature, offset, wave = drawn
    return Delivery(buyer=0, event=event, signature=signature, offset_ms=offset), wave



def _place_checkout(drawn: tuple[Checkout, str, int, int]) -> Placement:
    template, key, offset, wave = drawn
    return checkout_from(template, key, offset), wave


@lru_cache(maxsize=256)
def placements(events: tuple[str, ...],
                bounds: Bounds) -> st.SearchStrategy[tuple[list[Placement], list[Placement]]]:
    """One buyer's schedule steps (as buyer 0) with drawn wave numbers: its
    checkout steps (each: variant, key, offset, wave), then its deliveries
    (each: event slot, signature, offset, wave)."""
    waves = st.integers(0, bounds.max_waves - 1)
    starts = offsets(bounds.max_offset_ms)
    checkouts: st.SearchStrategy[list[Placement]] = st.just([])
    if bounds.checkouts and bounds.max_requests:
        variants = st.sampled_from(checkout_variants(bounds.checkouts))
        checkouts = st.lists(
            st.tuples(variants, st.sampled_from(KEY_DRAWS), starts, waves).map(
                _place_checkout),
            max_size=min(bounds.max_requests, _MAX_CHECKOUTS_PER_BUYER))
    deliveries: st.SearchStrategy[list[Placement]] = st.just([])
    if events and bounds.max_requests:
        slots = events + events[:1] * (story_slots(bounds.event_types) - len(events))
        deliveries = st.lists(
            st.tuples(st.sampled_from(slots), simplest_half(bounds.signatures), starts,
                      waves).map(_place_delivery),
            max_size=bounds.max_requests)
    return st.tuples(checkouts, deliveries)


def deliverable(buyer: Buyer, bounds: Bounds) -> tuple[str, ...]:
    return tuple(e for e in buyer.events if e in bounds.event_types)



def check_bounds(max_requests: int, max_waves: int, max_copies: int,
                 max_concurrency: int | None, event_types: Collection[str],
                 signatures: Collection[str], checkouts: Collection[str],
                 max_offset_ms: int) -> Bounds:
    """Validated schedule bounds (InvalidArgument naming the bad one)."""
    check_bounded_int("max_requests", max_requests, low=0)
    check_bounded_int("max_waves", max_waves, low=1)
    check_bounded_int("max_copies", max_copies, low=1)
    if max_concurrency is not None:
        check_bounded_int("max_concurrency", max_concurrency, low=1)
    return Bounds(
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
              event_types: Collection[str] = DEFAULT_EVENT_TYPES,
              signatures: Collection[str] = SIGNATURES,
              checkouts: Collection[str] = CHECKOUTS,
              max_offset_ms: int = 100) -> st.SearchStrategy[tuple[Wave, ...]]:
    """Waves of requests for ``buyers``' stories: deliveries of their events
    (0..``max_copies`` copies of each, only ``event_types``, by default
    :data:`~strategies._internal.model.DEFAULT_EVENT_TYPES`, signed with
    ``signatures``) and checkout attempts of ``checkouts`` kinds, at most
    ``max_requests`` in all and ``max_concurrency`` per wave, in up to
    ``max_waves`` waves. A wave fires together; the next starts when it ended.

    Events of one payment may be delivered out of their natural order (in a
    later wave), or redelivered while an earlier copy is in flight (same
    wave, later start offset, up to ``max_offset_ms``). Shrinks by deleting
    requests, then toward the first wave (the fewest waves), then each
    request toward its simplest.
    """
    bounds = check_bounds(max_requests, max_waves, max_copies, max_concurrency, event_types,
                          signatures, checkouts, max_offset_ms)
    per_buyer = st.tuples(*(placements(deliverable(buyer, bounds), bounds) for buyer in buyers))
    return per_buyer.map(lambda drawn: assemble([c + d for c, d in drawn], bounds))



def assemble(drawn: list[list[Placement]], bounds: Bounds) -> tuple[Wave, ...]:
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
