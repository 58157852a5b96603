"""One-step simplifications of a scenario, for minimizing a failure the way a
person would: drop a buyer, drop a step, drop a fault, merge two waves, buy
one ticket, sign validly, fire at once.

Hypothesis shrinks the choices behind a scenario; that reaches small
scenarios fast but can stall a step short of the smallest story (deleting a
step from the middle of a schedule is not one of its moves once the step
took several choices), and every attempt at a real target costs a round
trip. These moves work on the scenario itself, so a search can finish the
job in a few dozen runs: apply them greedily while the failure persists.

Pure: no I/O. Every candidate is normalized (copies and extra attempts
renumbered in schedule order, empty waves dropped) and valid; the order is
biggest cut first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from strategies._internal.model import (
    DEFAULT_CAPACITY,
    DEFAULT_PRICE,
    OUTCOMES,
    Buyer,
    Checkout,
    Delivery,
    Scenario,
    Step,
)


def normalize(scenario: Scenario) -> Scenario:
    """Drop empty waves, renumber copies and extra attempts in schedule order."""
    copies: dict[tuple[int, str], int] = {}
    attempts: dict[int, int] = {}
    waves = []
    for wave in scenario.waves:
        steps: list[Step] = []
        for step in wave:
            if isinstance(step, Delivery):
                n = copies.get((step.buyer, step.event), 0)
                copies[(step.buyer, step.event)] = n + 1
                steps.append(replace(step, copy=n))
            elif step.attempt == 0:
                steps.append(step)
            else:
                n = attempts.get(step.buyer, 0) + 1
                attempts[step.buyer] = n
                steps.append(replace(step, attempt=n))
        if steps:
            waves.append(tuple(sorted(steps, key=lambda s: s.offset_ms)))
    return replace(scenario, waves=tuple(waves))


def _valid(scenario: Scenario) -> Scenario | None:
    candidate = normalize(scenario)
    try:
        candidate.validate()
    except ValueError:
        return None
    return candidate


def _without_buyer(scenario: Scenario, b: int) -> Scenario:
    def moved(step: Step) -> Step:
        return replace(step, buyer=step.buyer - (step.buyer > b))

    return replace(
        scenario,
        buyers=scenario.buyers[:b] + scenario.buyers[b + 1:],
        waves=tuple(tuple(moved(s) for s in wave if s.buyer != b) for wave in scenario.waves),
    )


def _with_wave(scenario: Scenario, w: int, wave: tuple[Step, ...]) -> Scenario:
    return replace(scenario, waves=scenario.waves[:w] + (wave,) + scenario.waves[w + 1:])


def _earlier_events(scenario: Scenario) -> Iterator[Scenario]:
    """Every copy of one buyer's event delivered as an event its story emits earlier
    (two copies of async_payment_succeeded become two of the completion)."""
    delivered = dict.fromkeys((s.buyer, s.event) for _, s in scenario.deliveries())
    for b, event in delivered:
        story = scenario.buyers[b].events
        for earlier in story[:story.index(event)] if event in story else ():
            yield replace(scenario, waves=tuple(
                tuple(replace(s, event=earlier) if isinstance(s, Delivery) and s.buyer == b
                      and s.event == event else s for s in wave) for wave in scenario.waves))


def _candidates(scenario: Scenario) -> Iterator[Scenario]:
    """Simpler neighbours of ``scenario``, biggest cut first (maybe invalid). Faults go
    first: each can slow every run of the scenario by seconds (a latency, a client's
    retries after an outage), and the runs after a fault is gone are that much faster."""
    for f in range(len(scenario.faults)):
        yield replace(scenario, faults=scenario.faults[:f] + scenario.faults[f + 1:])
    if len(scenario.buyers) > 1:
        for b in range(len(scenario.buyers)):
            yield _without_buyer(scenario, b)
    for w, wave in enumerate(scenario.waves):
        for i in range(len(wave)):
            yield _with_wave(scenario, w, wave[:i] + wave[i + 1:])
    for w in range(1, len(scenario.waves)):  # fewer waves: fire a wave with the one before
        merged = scenario.waves[w - 1] + scenario.waves[w]
        yield replace(scenario, waves=scenario.waves[:w - 1] + (merged,) + scenario.waves[w + 1:])
    used = {b.ticket_type for b in scenario.buyers}
    for t in range(len(scenario.ticket_types)):
        if t not in used and len(scenario.ticket_types) > 1:
            yield replace(scenario, ticket_types=scenario.ticket_types[:t] + scenario.ticket_types[t + 1:],
                          buyers=tuple(replace(b, ticket_type=b.ticket_type - (b.ticket_type > t))
                                       for b in scenario.buyers))
    for b, buyer in enumerate(scenario.buyers):
        simpler: list[Buyer] = []
        if buyer.quantity > 1:
            simpler += [replace(buyer, quantity=1), replace(buyer, quantity=buyer.quantity - 1)]
        # every simpler outcome (OUTCOMES order): invalid ones, whose story lacks an event
        # the schedule delivers, are dropped by the caller
        simpler += [replace(buyer, outcome=o) for o in OUTCOMES[:OUTCOMES.index(buyer.outcome)]]
        if buyer.ticket_type != 0:
            simpler.append(replace(buyer, ticket_type=0))
        for plainer_buyer in simpler:
            yield replace(scenario, buyers=scenario.buyers[:b] + (plainer_buyer,)
                          + scenario.buyers[b + 1:])
    yield from _earlier_events(scenario)
    for w, wave in enumerate(scenario.waves):
        for i, step in enumerate(wave):
            plainer: list[Step] = []
            if step.offset_ms:
                plainer.append(replace(step, offset_ms=0))
            if isinstance(step, Delivery) and step.signature != "valid":
                plainer.append(replace(step, signature="valid"))
            if isinstance(step, Checkout) and step.tamper != "none":
                plainer.append(replace(step, tamper="none"))
            for plainer_step in plainer:
                yield _with_wave(scenario, w, wave[:i] + (plainer_step,) + wave[i + 1:])
    for f, fault in enumerate(scenario.faults):
        plainer_faults = []
        if fault.times > 1:
            plainer_faults.append(replace(fault, times=1))
        if fault.nth > 1:
            plainer_faults.append(replace(fault, nth=1))
        if fault.kind == "latency" and fault.latency_ms > 1:
            plainer_faults.append(replace(fault, latency_ms=fault.latency_ms // 2))
        for plainer_fault in plainer_faults:
            yield replace(scenario, faults=scenario.faults[:f] + (plainer_fault,)
                          + scenario.faults[f + 1:])
    for t, tt in enumerate(scenario.ticket_types):
        for plainer_type in (replace(tt, capacity=DEFAULT_CAPACITY), replace(tt, price=DEFAULT_PRICE)):
            if plainer_type != tt:
                yield replace(scenario, ticket_types=scenario.ticket_types[:t] + (plainer_type,)
                              + scenario.ticket_types[t + 1:])


def simplifications(scenario: Scenario) -> Iterator[Scenario]:
    """Valid scenarios one step simpler than ``scenario``, biggest cut first.

    Apply greedily: take the first that still fails, start again from it;
    stop when none does. Each move removes something or sets a field to its
    simplest value, so this ends.
    """
    seen = {scenario}
    for candidate in _candidates(scenario):
        valid = _valid(candidate)
        if valid is not None and valid not in seen:
            seen.add(valid)
            yield valid
