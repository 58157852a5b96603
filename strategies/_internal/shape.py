"""The shape of a story: what a scenario is made of, without timing.

The search groups failures into distinct bugs by the invariant and the
shape of the smallest scenario that breaks it. Two minimized scenarios that
differ only in which wave a step fires in, its start offset, which buyer is
numbered first, a price or the exact capacity are one story told twice; two
that need different things (a refund instead of a second completion, a
forged signature, a tampered price, a second buyer, a refund after its
completion instead of before it) are two stories.

The shape is the sorted multiset of *atoms*, one per part:

- per buyer: ``buyer <outcome>``, plus `` x2+`` when it buys several seats;
- per schedule step: ``deliver <event type>`` (plus `` <signature>`` when
  not validly signed, and `` after <first event>`` when a validly signed
  delivery of the first event of the buyer's story, its completion, came in
  an earlier wave: the one order a story's meaning hangs on); ``checkout`` for a buyer's own
  timed checkout, ``checkout again <key>-key`` (plus `` <tamper>`` when
  forged) for a repeat;
- per fault: ``fault <kind> <endpoint>``;
- ``tight capacity`` once per ticket type with fewer tickets than the default.

One shape *tells* another (:func:`tells`) when it has each of the other's
atoms, as often, a multi-seat buyer standing for a buyer of the same outcome:
the other story is told in it, with more around it.

Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter

from strategies._internal.model import DEFAULT_CAPACITY, Delivery, Scenario

#: A shape: sorted atoms, repeated as often as the part occurs.
Shape = tuple[str, ...]


def shape(scenario: Scenario) -> Shape:
    """The sorted multiset of the scenario's atoms (see the module docstring)."""
    atoms: list[str] = []
    for buyer in scenario.buyers:
        atoms.append(f"buyer {buyer.outcome}" + (" x2+" if buyer.quantity > 1 else ""))
    firsts = {(step.buyer, w) for w, step in scenario.deliveries()
              if step.buyer < len(scenario.buyers) and step.signature == "valid"
              and step.event == scenario.buyers[step.buyer].events[0]}
    for wave, step in scenario.steps():
        if isinstance(step, Delivery):
            signed = "" if step.signature == "valid" else f" {step.signature}"
            first = scenario.buyers[step.buyer].events[0] \
                if step.buyer < len(scenario.buyers) else step.event
            after = f" after {first}" if step.event != first and any(
                b == step.buyer and w < wave for b, w in firsts) else ""
            atoms.append(f"deliver {step.event}{signed}{after}")
        elif step.attempt == 0:
            atoms.append("checkout")
        else:
            forged = "" if step.tamper == "none" else f" {step.tamper}"
            atoms.append(f"checkout again {step.key}-key{forged}")
    atoms += [f"fault {fault.kind} {fault.endpoint}" for fault in scenario.faults]
    atoms += ["tight capacity" for tt in scenario.ticket_types if tt.capacity < DEFAULT_CAPACITY]
    return tuple(sorted(atoms))


def describe_shape(atoms: Shape) -> str:
    """A shape in one line, e.g. ``buyer paid, 2x deliver checkout.session.completed``."""
    counts = Counter(atoms)
    return ", ".join(f"{n}x {atom}" if n > 1 else atom for atom, n in sorted(counts.items()))


#: What marks a buyer atom of a multi-seat buyer (it stands for one of one seat too).
_MULTI_SEAT = " x2+"


def tells(story: Shape, part: Shape) -> bool:
    """Is ``part`` told in ``story``: each of its atoms in ``story`` as often, a
    ``buyer <outcome> x2+`` standing for a ``buyer <outcome>`` when no buyer of
    one seat is left for it? (A story that only moves or drops the order of its
    events, or changes an outcome or a signature, tells a different one.)"""
    have = Counter(story)
    for atom, n in sorted(Counter(part).items(), key=lambda kv: _MULTI_SEAT in kv[0],
                          reverse=True):
        if have[atom] >= n:
            have[atom] -= n
            continue
        if atom.startswith("buyer ") and not atom.endswith(_MULTI_SEAT) \
                and have[atom] + have[atom + _MULTI_SEAT] >= n:
            have[atom + _MULTI_SEAT] -= n - have[atom]
            have[atom] = 0
            continue
        return False
    return True
