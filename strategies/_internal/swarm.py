"""Swarm testing: each scenario switches a random subset of story kinds on.

A uniform draw makes every single kind of story common and every
combination of kinds rare: with six outcomes, four checkout kinds and seven
signature variants, "a refund of a multi-seat purchase" or "two buyers
checking out for the last tickets" is one draw in dozens. Swarm testing
(Groce et al., "Swarm Testing", ISSTA 2012) draws, per scenario, which kinds
are on, so some scenarios are all refunds of multi-seat purchases and others
all races for a tight capacity: skewed mixes where rare combinations are
common.

How it is drawn, and how it shrinks:

- One choice per story kind, first in the scenario, each on half the time
  (tight capacity, the rush and events out of order three times in four;
  :func:`swarms`). Each shrinks to *off*, so shrinking switches kinds off
  and walks toward the plain story (paid at once, one seat, plenty of
  tickets, valid signatures, no extra checkouts, no faults).
- Outcomes, signature variants and checkout kinds are *drawn from* the
  kinds that are on (:meth:`Swarm.story_outcomes`, :meth:`Swarm.bounds`):
  with only stale signatures on, every delivery that is not validly signed
  is stale; a tampered checkout keeps its own key (a fresh one first). A
  kind that is on is as likely as the others on, however many kinds there
  are: folding a value drawn from all of them onto those on made some
  (``stale``) rare, since the fold picks by the value's characters.
- The rest is drawn as without swarm, then *folded* onto what is on (a
  plain ticket type made tight, multi-seat buyers made single-seat,
  :meth:`Swarm.step` for what was not drawn from the kinds on): pure
  functions, so every draw stays usable, the same choices replay the same
  scenario, and the strategies stay cached.
- With tight capacity and a rush both on, each rushing buyer wants no more
  than its ticket type holds (:meth:`Swarm.fitted`): each could have the last
  tickets alone, together they cannot (the race an oversell needs; a buyer
  who wants more than there is is only turned away).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import strategies as st

from strategies._internal.choices import checkout_variants
from strategies._internal.model import (
    DEFAULT_CAPACITY,
    Buyer,
    Checkout,
    Delivery,
    Step,
    TicketType,
)
from strategies._internal.schedules import Bounds


@dataclass(frozen=True)
class Swarm:
    """The story kinds switched on for one scenario (the simplest are always on)."""

    #: outcomes besides the simplest allowed one (always on)
    outcomes: tuple[str, ...]
    #: checkout kinds (``CHECKOUTS`` names)
    checkouts: tuple[str, ...]
    #: signature variants besides the simplest allowed one
    signatures: tuple[str, ...]
    multi_seat: bool = True
    tight_capacity: bool = True
    faults: bool = True
    #: off: each buyer's events are delivered in the order its story emits them
    out_of_order: bool = True
    #: on: each buyer's whole story is delivered, each event once, one per wave (a
    #: completion, then the refund of a multi-seat purchase; reversed when out of order
    #: is on), instead of the drawn copies and waves
    whole_stories: bool = False
    #: on: every buyer's own checkout fires in the first wave, together (a rush for
    #: the tickets: with tight capacity on, buyers race for the last ones)
    rush: bool = False

    def story_outcomes(self, allowed: tuple[str, ...]) -> tuple[str, ...]:
        """The outcomes buyers are drawn from, each as often: the simplest allowed
        one and those on. Drawn from, not folded onto: in a scenario with only
        refunds on, half the buyers are refunded."""
        return allowed[:1] + tuple(o for o in allowed[1:] if o in self.outcomes)

    def bounds(self, bounds: Bounds) -> Bounds:
        """``bounds`` with the signature variants (the simplest one and those on) and
        checkout kinds (those on) a story is drawn from."""
        return replace(bounds, signatures=bounds.signatures[:1] + tuple(
            s for s in bounds.signatures[1:] if s in self.signatures),
            checkouts=tuple(c for c in bounds.checkouts if c in self.checkouts))

    def fitted(self, buyer: Buyer, ticket_types: tuple[TicketType, ...]) -> Buyer:
        """With tight capacity and a rush on, ``buyer`` for at most what its ticket
        type holds (each racer could have the last tickets alone); else ``buyer``."""
        if not (self.tight_capacity and self.rush):
            return buyer
        capacity = ticket_types[buyer.ticket_type].capacity
        return buyer if buyer.quantity <= capacity else replace(buyer, quantity=capacity)

    def buyer(self, buyer: Buyer) -> Buyer:
        """``buyer`` for one seat unless multi-seat buyers are on."""
        return buyer if self.multi_seat or buyer.quantity == 1 else replace(buyer, quantity=1)

    def ticket_type(self, ticket_type: TicketType) -> TicketType:
        """With tight capacity on, every ticket type is tight (its drawn tight
        capacity, else 1); off, none is."""
        tight = ticket_type.capacity < DEFAULT_CAPACITY
        if self.tight_capacity == tight:
            return ticket_type
        return replace(ticket_type, capacity=1 if self.tight_capacity else DEFAULT_CAPACITY)

    def step(self, step: Step, simplest_signature: str) -> Step | None:
        """``step`` folded onto what is on; None when it is a checkout and no
        checkout kind is on."""
        if isinstance(step, Delivery):
            if step.signature == simplest_signature or step.signature in self.signatures:
                return step
            return replace(step, signature=_fold(step.signature, self.signatures,
                                                 simplest_signature))
        kind = checkout_kind(step)
        if kind in self.checkouts:
            return step
        if not self.checkouts:
            return None
        template = checkout_variants((_fold(kind, self.checkouts, kind),))[0]
        key = step.key if template.tamper != "none" else template.key
        return replace(template, key=key, offset_ms=step.offset_ms)


    def deliveries(self, buyer: Buyer, drawn: list[tuple[Step, int]],
                   deliverable: tuple[str, ...], max_waves: int) -> list[tuple[Step, int]]:
        """The buyer's drawn deliveries, or with whole stories on (and one drawn at
        least, so that none drawn is still none) every event of its story once,
        validly signed, one per wave in story order (in reverse order when out of
        order is on: the refund before its completion), then the drawn deliveries
        that are not validly signed: whole stories keep the signature variants on."""
        if not self.whole_stories or not drawn:
            return drawn
        events = list(deliverable)
        if self.out_of_order:
            events.reverse()
        forged = [(step, wave) for step, wave in drawn
                  if isinstance(step, Delivery) and step.signature != "valid"]
        whole: list[tuple[Step, int]] = [(Delivery(buyer=0, event=event),
                                          min(wave, max_waves - 1))
                                         for wave, event in enumerate(events)]
        return whole + forged

    def rushed(self, steps: list[tuple[Step, int]]) -> list[tuple[Step, int]]:
        """``steps`` with, in a rush (and one step drawn at least, so that none drawn
        is still none), the buyer's own checkout first, in the first wave (a
        schedule keeps a buyer's first own checkout only)."""
        return [(Checkout(buyer=0), 0), *steps] if self.rush and steps else steps

    def ordered(self, buyer: Buyer, steps: list[tuple[Step, int]]) -> list[tuple[Step, int]]:
        """``steps`` (a buyer's, with drawn wave numbers), its deliveries' waves
        reassigned in the order its story emits their events unless out of order is on:
        "a completion, then the refund" is drawn as often as both events are."""
        if self.out_of_order:
            return steps
        at = [i for i, (step, _) in enumerate(steps) if isinstance(step, Delivery)]
        waves = sorted(steps[i][1] for i in at)
        natural = sorted(at, key=lambda i: _position(steps[i][0], buyer.events))
        placed = list(steps)
        for i, wave in zip(natural, waves, strict=True):
            placed[i] = (steps[i][0], wave)
        return placed


def _position(step: Step, story: tuple[str, ...]) -> int:
    return story.index(step.event) if isinstance(step, Delivery) and step.event in story else 0


def checkout_kind(step: Checkout) -> str:
    """The ``CHECKOUTS`` name of a schedule checkout."""
    if step.attempt == 0:
        return "timed"
    if step.tamper != "none":
        return f"tampered-{step.tamper}"
    return f"{step.key}-key"


def _fold(value: str, on: tuple[str, ...], simplest: str) -> str:
    """An ``on`` value for ``value`` (by its own characters: the same value always
    folds the same way), or ``simplest`` when nothing is on."""
    if not on:
        return simplest
    return on[sum(map(ord, value)) % len(on)]


def _subset(values: tuple[str, ...]) -> st.SearchStrategy[tuple[str, ...]]:
    """Each value on half the time; shrinks toward none."""
    return st.tuples(*(st.booleans() for _ in values)).map(
        lambda flags: tuple(v for v, on in zip(values, flags, strict=True) if on))


def swarms(outcomes: tuple[str, ...], checkouts: tuple[str, ...],
           signatures: tuple[str, ...]) -> st.SearchStrategy[Swarm]:
    """Which story kinds are on: each of ``outcomes`` and ``signatures`` but the
    first (simplest, always on), each of ``checkouts``, multi-seat buyers, tight
    capacity, faults, events out of order, whole stories and a rush for the
    tickets, each on half the time (tight capacity, the rush and events out of
    order three times in four). Shrinks toward all off."""
    return st.builds(Swarm, outcomes=_subset(outcomes[1:]), checkouts=_subset(checkouts),
                     signatures=_subset(signatures[1:]), multi_seat=st.booleans(),
                     tight_capacity=_mostly_on(), faults=st.booleans(),
                     out_of_order=_mostly_on(), whole_stories=st.booleans(),
                     rush=_mostly_on())


def _mostly_on() -> st.SearchStrategy[bool]:
    """On three times in four; one choice, shrinking toward off. For the kinds a
    catalogue story needs together with others: an oversell needs tight capacity and
    a rush at once (half the time each made it one swarm in four), a refund before
    its completion needs events out of order besides a refunded buyer."""
    return st.integers(0, 3).map(bool)
