"""Does steering with ``hypothesis.target`` find race-shaped scenarios sooner?

For each synthetic "race-shaped" predicate and each seed, run the scenario
search twice with the same budget (the chaos run's default of 100 examples
unless ``--examples`` says otherwise): once plain, once feeding
``strategies.targets(scenario)`` to ``hypothesis.target`` as the engine does.
Print, per predicate, in how many seeds the predicate was reached within the
budget and the median example number of the first hit.

    python tools/measure_steering.py [--examples 100] [--seeds 20] [--swarm] [--only WORDS]

``--swarm`` draws as the search does (``scenarios(swarm=True)``); the first
predicates are the stories of the four catalogue bugs the drawn search used to
miss (oversell, order-dependent, unpaid-fulfilled, trust-client-price).

Pure generation (no target service): it measures the strategies, not a run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings, target
from hypothesis.errors import InvalidArgument

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strategies import Checkout, Delivery, Scenario, scenarios, targets  # noqa: E402


def _valid_deliveries(s: Scenario, buyer: int) -> list[tuple[int, str]]:
    return [(w, d.event) for w, d in s.deliveries() if d.buyer == buyer and d.signature == "valid"]


def refund_before_completion(s: Scenario) -> bool:
    """order-dependent's story: a refund delivered with no completion delivered before it."""
    for b, buyer in enumerate(s.buyers):
        sent = _valid_deliveries(s, b)
        refunds = [w for w, e in sent if e == "charge.refunded"]
        completions = [w for w, e in sent if e == "checkout.session.completed"]
        if buyer.outcome == "refunded" and refunds and not any(
                w < refunds[0] for w in completions):
            return True
    return False


def unpaid_completion(s: Scenario) -> bool:
    """unpaid-fulfilled's story: a failed delayed payment's completion, validly signed."""
    return any(buyer.outcome == "async-failed" and any(
        e == "checkout.session.completed" for _, e in _valid_deliveries(s, b))
        for b, buyer in enumerate(s.buyers))


def tampered_price(s: Scenario) -> bool:
    """trust-client-price's story: a repeated checkout with a forged price and a fresh key."""
    return any(c.tamper == "price" and c.key == "fresh" for _, c in s.checkouts())


def stale_delivery(s: Scenario) -> bool:
    """no-signature-tolerance's story: a delivery signed long ago (a captured replay)."""
    return any(d.signature == "stale" for _, d in s.deliveries())


def fitting_race(s: Scenario) -> bool:
    """oversell's story: buyers' own checkouts fired together for one tight ticket type,
    each wanting no more than it holds, together more (each could win alone)."""
    for wave in s.waves:
        for t, ticket_type in enumerate(s.ticket_types):
            wants = [s.buyers[c.buyer].quantity for c in wave if isinstance(c, Checkout)
                     and c.attempt == 0 and s.buyers[c.buyer].ticket_type == t]
            fit = [q for q in wants if q <= ticket_type.capacity]
            if len(fit) >= 2 and sum(fit) > ticket_type.capacity:
                return True
    return False


def multi_seat_refund(s: Scenario) -> bool:
    """A completion, then the refund of a purchase of several seats."""
    for b, buyer in enumerate(s.buyers):
        sent = _valid_deliveries(s, b)
        completions = [w for w, e in sent if e == "checkout.session.completed"]
        if buyer.outcome == "refunded" and buyer.quantity > 1 and completions and any(
                e == "charge.refunded" and w > completions[0] for w, e in sent):
            return True
    return False


def partial_refund_after_completion(s: Scenario) -> bool:
    """A completion, then a refund of part of the amount (one seat of several, or half)."""
    for b, buyer in enumerate(s.buyers):
        sent = _valid_deliveries(s, b)
        completions = [w for w, e in sent if e == "checkout.session.completed"]
        if buyer.outcome == "partially-refunded" and completions and any(
                e == "charge.refunded" and w > completions[0] for w, e in sent):
            return True
    return False


def both_payment_events_together(s: Scenario) -> bool:
    """checkout.session.completed and payment_intent.succeeded of one payment in one wave."""
    return any({(d.buyer, "checkout.session.completed"), (d.buyer, "payment_intent.succeeded")}
               <= {(x.buyer, x.event) for x in wave if isinstance(x, Delivery)}
               for wave in s.waves for d in wave if isinstance(d, Delivery))


#: The Stripe endpoints the reference service calls (its load wave shows the search these).
REFERENCE_CALLS = ("POST /v1/checkout/sessions", "GET /v1/checkout/sessions/{id}")
#: Fault kinds one call of which fails a call the reference service's client retries: a
#: 429 (stripe-python does not retry it); the others must outlast its two retries.
_FAILS_ONCE, _FAILS_IN_A_ROW = {"429"}, {"5xx", "reset", "lost-answer", "hang"}


def outage_on_a_lone_completion(s: Scenario) -> bool:
    """A paid buyer's completion delivered once (validly signed), while the session fetch
    it makes the service do fails past the client's retries: ack-before-commit's story
    (the buyer's only confirming delivery, so no later one recovers it)."""
    fetch = "GET /v1/checkout/sessions/{id}"
    fails = any(f.endpoint == fetch and f.nth == 1 and (
        f.kind in _FAILS_ONCE or f.kind in _FAILS_IN_A_ROW and f.times >= 3) for f in s.faults)
    if not fails:
        return False
    for b, buyer in enumerate(s.buyers):
        confirming = [event for _, event in _valid_deliveries(s, b)
                      if event in ("checkout.session.completed",
                                   "checkout.session.async_payment_succeeded")]
        if buyer.outcome == "paid" and len(confirming) == 1:
            return True
    return False


def dispute_delivered(s: Scenario) -> bool:
    return any(d.event == "charge.dispute.created" for _, d in s.deliveries())


PREDICATES: dict[str, Callable[[Scenario], bool]] = {
    "oversell: 2+ buyers race past a capacity":
        lambda s: targets(s)["checkouts-racing-for-capacity"] >= 3,
    "oversell: 2+ racers who each fit": fitting_race,
    "order-dependent: a refund before its completion": refund_before_completion,
    "unpaid-fulfilled: a failed payment's completion": unpaid_completion,
    "trust-client-price: a forged price, fresh key": tampered_price,
    "no-signature-tolerance: a stale delivery": stale_delivery,
    "completion, then refund of 2+ seats": multi_seat_refund,
    "completion, then a partial refund": partial_refund_after_completion,
    "both payment events in one wave": both_payment_events_together,
    "a dispute delivered": dispute_delivered,
    "ack-before-commit: an outage on a lone completion": outage_on_a_lone_completion,
    "3 copies of one event fired together":
        lambda s: targets(s)["copies-of-one-event-in-one-wave"] >= 3,
    "2+ redeliveries while a copy is in flight":
        lambda s: targets(s)["redeliveries-in-flight"] >= 2,
    "a wave of 10+ requests":
        lambda s: targets(s)["requests-in-one-wave"] >= 10,
    "3+ event pairs of one payment out of order":
        lambda s: targets(s)["events-out-of-order"] >= 3,
}


def first_hit(predicate: Callable[[Scenario], bool], *, steered: bool, examples: int,
              run_seed: int, swarm: bool = False, draw_run: int | None = None) -> int | None:
    """The 1-based example number where ``predicate`` first held, or None. With
    ``draw_run``, the examples are drawn in Hypothesis runs of that many, each seeded
    as the search seeds its runs (``chaos.search._run_seed``)."""
    from chaos.search import _run_seed

    seen = 0
    hit: int | None = None
    size = draw_run or examples

    def search(scenario: Scenario) -> None:
        nonlocal seen, hit
        seen += 1
        if steered:
            for label, score in targets(scenario).items():
                target(score, label=label)
        if hit is None and predicate(scenario):
            hit = seen

    strategy = scenarios(swarm=swarm, called_endpoints=REFERENCE_CALLS)
    for run in range((examples + size - 1) // size):
        run_seed_ = _run_seed(run_seed, run, derandomized=False)
        one = settings(max_examples=min(size, examples - run * size), database=None,
                       deadline=None, phases=(Phase.generate, Phase.target),
                       suppress_health_check=list(HealthCheck))(given(strategy)(search))
        seed(run_seed_)(one)()
    return hit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--swarm", action="store_true",
                        help="draw with scenarios(swarm=True), as the search does")
    parser.add_argument("--draw-run", type=int, default=None,
                        help="draw in Hypothesis runs of N examples, as the search does "
                             "(chaos.search.DRAW_RUN); default: one run")
    parser.add_argument("--only", default="",
                        help="comma-separated words: measure only the predicates naming one")
    args = parser.parse_args(argv)
    if args.examples < 1 or args.seeds < 1:
        raise InvalidArgument("--examples and --seeds must be >= 1")
    started = time.perf_counter()
    print(f"budget {args.examples} examples, seeds 0..{args.seeds - 1}"
          + (", swarm" if args.swarm else ""))
    print(f"{'predicate':46s} {'plain: found, median':>22s} {'steered: found, median':>24s}")
    words = [w.strip() for w in args.only.split(",") if w.strip()]
    for name, predicate in PREDICATES.items():
        if words and not any(w in name for w in words):
            continue
        cells = []
        for steered in (False, True):
            hits = [first_hit(predicate, steered=steered, examples=args.examples, run_seed=s,
                              swarm=args.swarm, draw_run=args.draw_run)
                    for s in range(args.seeds)]
            found = [h for h in hits if h is not None]
            median = f"{statistics.median(found):.0f}" if found else "-"
            cells.append(f"{len(found):>3d}/{args.seeds}, {median:>4s}")
        print(f"{name:46s} {cells[0]:>22s} {cells[1]:>24s}")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
