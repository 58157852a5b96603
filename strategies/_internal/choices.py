"""Single Hypothesis choices for the parts of a scenario, built once and cached.

Each builder here is one or two Hypothesis choices, with the simplest value
first, so the list elements built from them stay within the 5 choices the
shrinker can delete (see :mod:`strategies._internal.schedules`). Building a
Hypothesis strategy costs far more than drawing from it, hence the caches.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from hypothesis import strategies as st

from strategies._internal.model import (
    DEFAULT_CAPACITY,
    DEFAULT_PRICE,
    Buyer,
    Checkout,
    Delivery,
    Fault,
    TicketType,
)

MAX_PRICE = 100_000  # cents
MAX_LATENCY_MS = 60_000
MAX_TIGHT_CAPACITY = 4
#: Start offsets a step may get (readable values), capped by ``max_offset_ms``.
OFFSETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000)


def simplest_half(values: tuple) -> st.SearchStrategy:  # type: ignore[type-arg]
    """The first (simplest) value half the time, else any other: one choice,
    shrinking to the first.

    Keeps most deliveries valid and most stories plain, so the chaos that
    finds duplicates and races is not drowned in forged requests.
    """
    return st.sampled_from(values[:1] * max(1, len(values) - 1) + values[1:])


@lru_cache(maxsize=64)
def offsets(max_offset_ms: int) -> st.SearchStrategy[int]:
    """0 (start with the wave) half the time, else a readable offset up to
    ``max_offset_ms``; one choice, shrinking toward 0."""
    return simplest_half((0, *(o for o in OFFSETS if o < max_offset_ms), max_offset_ms)
                         if max_offset_ms else (0,))


@lru_cache(maxsize=64)
def ticket_type(tight_capacity: bool, max_tight_capacity: int) -> st.SearchStrategy[TicketType]:
    prices = st.one_of(st.just(DEFAULT_PRICE), st.integers(50, MAX_PRICE))
    capacities = st.just(DEFAULT_CAPACITY)
    if tight_capacity:
        capacities = st.one_of(capacities, st.integers(1, max_tight_capacity))
    return st.builds(TicketType, price=prices, capacity=capacities)


@lru_cache(maxsize=256)
def buyer(max_quantity: int, ticket_type_count: int, outcomes: tuple[str, ...], *,
          uniform: bool = False) -> st.SearchStrategy[Buyer]:
    """Two choices: ticket type and quantity packed in one (ticket type major,
    so shrinking reaches the first ticket type, then quantity 1), and the outcome
    (the simplest half the time, or with ``uniform`` each as often; shrinking
    toward the first either way)."""
    drawn = st.sampled_from(outcomes) if uniform else simplest_half(outcomes)
    return st.tuples(st.integers(0, ticket_type_count * max_quantity - 1), drawn).map(
        lambda pair: Buyer(quantity=pair[0] % max_quantity + 1,
                           ticket_type=pair[0] // max_quantity, outcome=pair[1]))


@lru_cache(maxsize=256)
def delivery(events: tuple[str, ...], variants: tuple[str, ...],
              max_offset_ms: int) -> st.SearchStrategy[Delivery]:
    """A delivery by buyer 0 of one of ``events`` (its story's, in natural order)."""
    return st.builds(Delivery, buyer=st.just(0), event=st.sampled_from(events),
                     signature=simplest_half(variants), offset_ms=offsets(max_offset_ms))


def checkout_variants(kinds: tuple[str, ...]) -> tuple[Checkout, ...]:
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
def checkout(kinds: tuple[str, ...], max_offset_ms: int) -> st.SearchStrategy[Checkout]:
    """A checkout attempt by buyer 0 of one of ``kinds``."""
    return st.tuples(st.sampled_from(checkout_variants(kinds)), st.sampled_from(KEY_DRAWS),
                     offsets(max_offset_ms)).map(lambda t: checkout_from(*t))



#: A tampered attempt's key, by the key drawn: its simplest is a fresh key. With the
#: buyer's own key it races the buyer's checkout for that key (whichever arrives first
#: decides), so a failure found that way would shrink toward a race, not a proof.
_TAMPERED_KEY = {"same": "fresh", "fresh": "same"}

#: The key choice of a checkout step, simplest first. Only a tampered attempt reads it
#: (the other kinds name their key), so it is weighted for them: a fresh key three
#: times in four, since only a cart the target prices afresh shows what it charges.
KEY_DRAWS = ("same", "same", "same", "fresh")


def checkout_from(template: Checkout, key: str, offset: int) -> Checkout:
    if template.tamper != "none":  # tampered attempts come with a fresh or the same key
        template = replace(template, key=_TAMPERED_KEY[key])
    return replace(template, offset_ms=offset)



#: Fault kinds that play one call only: each call they play on waits (up to a latency, or
#: until the client gives up), so five in a row would cost an example many seconds of
#: waiting (the client's retries of a hang reach its deadline) for a story a failing
#: outage tells as well.
_SLOW = ("latency", "hang")


@st.composite
def fault(draw: st.DrawFn, kinds: tuple[str, ...], endpoints: tuple[str, ...], max_nth: int,
          max_latency_ms: int, max_times: int = 1, called: tuple[str, ...] = ()) -> Fault:
    """The endpoint comes from ``called`` (those the target was seen calling) three times
    in four when there are any: a fault on an endpoint the target never calls plays on
    nothing. Half the failing faults are an outage: ``max_times`` calls from the first
    on (the endpoint down, whatever the client retries); the others, and every latency
    or hang, one call, the first half the time."""
    kind = draw(st.sampled_from(kinds))
    pool = draw(st.sampled_from((called,) * 3 + (endpoints,))) if called else endpoints
    endpoint = draw(st.sampled_from(pool))
    times = draw(st.sampled_from((1, max_times)))
    times = 1 if kind in _SLOW else times
    nth = draw(simplest_half(tuple(range(1, max_nth + 1))))   # drawn either way: shrinks
    nth = 1 if times > 1 else nth                              # alike whatever times is
    latency = draw(st.integers(1, max_latency_ms)) if kind == "latency" else 0
    return Fault(kind=kind, endpoint=endpoint, nth=nth, latency_ms=latency, times=times)

