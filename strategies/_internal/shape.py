"""The shape of a story: what a scenario is made of, without order or timing.

The search groups failures into distinct bugs by the invariant and the
shape of the smallest scenario that breaks it. Two minimized scenarios that
differ only in which wave a step fires in, its start offset, which buyer is
numbered first, a price or the exact capacity are one story told twice; two
that need different things (a refund instead of a second completion, a
forged signature, a tampered price, a second buyer) are two stories.

The shape is the sorted multiset of *atoms*, one per part:

- per buyer: ``buyer <outcome>``, plus `` x2+`` when it buys several seats;
- per schedule step: ``deliver <event type>`` (plus `` <signature>`` when
  not validly signed); ``checkout`` for a buyer's own timed checkout,
  ``checkout again <key>-key`` (plus `` <tamper>`` when forged) for a repeat;
- per fault: ``fault <kind> <endpoint>``;
- ``tight capacity`` once per ticket type with fewer tickets than the default.

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
    for _, step in scenario.steps():
        if isinstance(step, Delivery):
            signed = "" if step.signature == "valid" else f" {step.signature}"
            atoms.append(f"deliver {step.event}{signed}")
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
