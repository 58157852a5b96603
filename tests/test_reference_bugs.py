"""The bug catalogue, made visible: for each bug, one hand-written scenario of
its class that the correct service survives and the bug breaks, and the
invariant that breaks is the one the catalogue names.

Each scenario returns the violations it saw, as ``"<invariant>: evidence"``
(empty when everything held). Race bugs get a bounded number of tries; the
correct service must survive every one of them.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chaos.database import Database
from chaos.errors import UsageError
from chaos.reference.bugs import CATALOGUE, parse_bugs
from chaos.services import running
from tests.helpers import run_tool
from tests.reference_shop import Shop, StripeOutage, fire, open_shop, stripe_event

INVARIANTS = {
    "one-ticket-set-per-payment", "no-oversold-ticket-type", "no-lost-payment",
    "no-tickets-without-payment", "refund-voids-tickets", "forged-delivery-rejected",
    "charged-database-price", "one-session-per-idempotency-key", "duplicate-delivery-acknowledged",
}

Scenario = Callable[[Shop, StripeOutage], list[str]]


def _one_set(shop: Shop, buyer, bought: int) -> list[str]:
    tickets = shop.tickets(buyer)
    return [] if tickets in (0, bought) else [
        f"one-ticket-set-per-payment: {tickets} tickets for {bought} bought"]


def concurrent_and_sequential_copies(shop: Shop, stripe: StripeOutage) -> list[str]:
    """Stripe delivers a completion twice at once, then once more later."""
    buyer = shop.buy(shop.event(), quantity=2)
    statuses = shop.deliver(buyer.completed, copies=2) + shop.deliver(buyer.completed)
    assert all(s == 200 for s in statuses), statuses
    return _one_set(shop, buyer, 2)


def concurrent_copies(shop: Shop, stripe: StripeOutage) -> list[str]:
    """Two copies of a completion in flight together (a timeout and its retry)."""
    buyer = shop.buy(shop.event())
    assert shop.deliver(buyer.completed, copies=2) == [200, 200]
    return _one_set(shop, buyer, 1)


def sequential_copies(shop: Shop, stripe: StripeOutage) -> list[str]:
    """A completion, then Stripe's retry of it a little later."""
    buyer = shop.buy(shop.event())
    assert shop.deliver(buyer.completed) + shop.deliver(buyer.completed) == [200, 200]
    return _one_set(shop, buyer, 1)


def _lost(shop: Shop, buyer, acknowledged: bool, bought: int) -> list[str]:
    tickets = shop.tickets(buyer)
    return [f"no-lost-payment: acknowledged with 2xx but {tickets} of {bought} tickets"
            ] if acknowledged and tickets < bought else []


def forged_then_valid(shop: Shop, stripe: StripeOutage) -> list[str]:
    """A delivery with a bad signature first (4xx), then the real one."""
    buyer = shop.buy(shop.event(), quantity=2)
    [forged] = shop.deliver(buyer.completed, secret="whsec_forger")
    assert 400 <= forged < 500
    [real] = shop.deliver(buyer.completed)
    return _lost(shop, buyer, 200 <= real < 300, 2)


def stripe_down_while_fulfilling(shop: Shop, stripe: StripeOutage) -> list[str]:
    """Stripe fails the service's GET of the session while a completion arrives."""
    buyer = shop.buy(shop.event(), quantity=2)
    stripe.fail("GET", "/v1/checkout/sessions/")
    try:
        [status] = shop.deliver(buyer.completed)
        shop.settle()   # background work included
    finally:
        stripe.heal()
    return _lost(shop, buyer, 200 <= status < 300, 2)


def last_ticket_race(shop: Shop, stripe: StripeOutage) -> list[str]:
    """Four buyers check out together for the last ticket; whoever got a session pays."""
    event = shop.event(capacity=1)
    answers = fire([shop.checkout_request(event, email=f"b{i}@chaos.test") for i in range(4)])
    assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 200:
            buyer = shop.buy_existing(event, answer.json()["sessionId"])
            assert shop.deliver(buyer.completed) == [200]
    row = shop.ticket_type(event)
    if row["tickets"] > row["capacity"] or row["reserved"] > row["capacity"]:
        return [f"no-oversold-ticket-type: {row['tickets']} tickets, {row['reserved']} taken, "
                f"capacity {row['capacity']}"]
    return []


def refund_before_completion(shop: Shop, stripe: StripeOutage) -> list[str]:
    """The refund's event overtakes the completion's."""
    buyer = shop.buy(shop.event(), quantity=2)
    [refund] = shop.deliver(buyer.refund())
    assert shop.deliver(buyer.completed) == [200]
    assert shop.deliver(buyer.events["payment_intent.succeeded"]) == [200]
    tickets = shop.tickets(buyer)
    return [f"refund-voids-tickets: refund acknowledged, {tickets} tickets still valid"
            ] if refund == 200 and tickets else []


def unpaid_completion_then_failure(shop: Shop, stripe: StripeOutage) -> list[str]:
    """A bank debit: the session completes unpaid, then the payment fails."""
    buyer = shop.buy(shop.event(), quantity=2, pay=False)
    session = shop.stripe_session(buyer.session_id)
    unpaid = {**session, "status": "complete", "payment_status": "unpaid"}
    assert shop.deliver(stripe_event("checkout.session.completed", unpaid)) == [200]
    assert shop.deliver(stripe_event("checkout.session.async_payment_failed", unpaid)) == [200]
    tickets = shop.tickets(buyer)
    return [f"no-tickets-without-payment: an unpaid session has {tickets} tickets"
            ] if tickets else []


def stale_signature(shop: Shop, stripe: StripeOutage) -> list[str]:
    """A correctly signed completion, replayed 400 s after it was signed."""
    buyer = shop.buy(shop.event())
    [status] = shop.deliver(buyer.completed, age=400)
    tickets = shop.tickets(buyer)
    if 400 <= status < 500 and tickets == 0:
        return []
    return [f"forged-delivery-rejected: a stale delivery answered {status}, {tickets} tickets"]


def tampered_price(shop: Shop, stripe: StripeOutage) -> list[str]:
    """The client sends price 1 and total 1 for a 25.00 ticket."""
    event = shop.event(price=2500)
    answer = shop.checkout(event, price=1, total=1)
    if answer.status_code != 200:
        assert 400 <= answer.status_code < 500
        return []
    charged = shop.stripe_session(answer.json()["sessionId"])["amount_total"]
    return [] if charged == 2500 else [
        f"charged-database-price: charged {charged} for a ticket priced 2500"]


def double_click(shop: Shop, stripe: StripeOutage) -> list[str]:
    """Two checkouts with one Idempotency-Key, at once."""
    event = shop.event()
    answers = fire([shop.checkout_request(event, key="double-click") for _ in range(2)])
    sessions = {a.json()["sessionId"] for a in answers if a.status_code == 200}
    return [f"one-session-per-idempotency-key: {len(sessions)} sessions for one key"
            ] if len(sessions) > 1 else []


def duplicate_answer(shop: Shop, stripe: StripeOutage) -> list[str]:
    """A completion delivered twice, one after the other."""
    buyer = shop.buy(shop.event())
    statuses = shop.deliver(buyer.completed) + shop.deliver(buyer.completed)
    bad = [s for s in statuses if not 200 <= s < 300]
    return [f"duplicate-delivery-acknowledged: a duplicate answered {bad[0]}"] if bad else []


#: bug -> (its scenario, tries: 1 when deterministic, more for a race)
SCENARIOS: dict[str, tuple[Scenario, int]] = {
    "no-dedup": (concurrent_and_sequential_copies, 1),
    "check-then-insert": (concurrent_copies, 5),
    "fail-open-dedup": (sequential_copies, 1),
    "dedup-before-verify": (forged_then_valid, 1),
    "ack-before-commit": (stripe_down_while_fulfilling, 1),
    "oversell": (last_ticket_race, 5),
    "order-dependent": (refund_before_completion, 1),
    "unpaid-fulfilled": (unpaid_completion_then_failure, 1),
    "no-signature-tolerance": (stale_signature, 1),
    "trust-client-price": (tampered_price, 1),
    "checkout-not-idempotent": (double_click, 1),
    "500-on-duplicate": (duplicate_answer, 1),
}


def run_until_broken(shop: Shop, stripe: StripeOutage, bug: str) -> tuple[list[str], int]:
    """Run ``bug``'s scenario up to its number of tries; the first violations and the try."""
    scenario, tries = SCENARIOS[bug]
    for attempt in range(1, tries + 1):
        violations = scenario(shop, stripe)
        if violations:
            return violations, attempt
    return [], tries


#: Bugs on at once, on different steps (each still breaks its own scenario).
COMBINED = ("no-dedup", "no-signature-tolerance", "trust-client-price")


@pytest.fixture(scope="module")
def stripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeOutage]:
    """The fake Stripe, behind a forwarder that can make it fail."""
    with running("fake-stripe", [], workdir=tmp_path_factory.mktemp("stripe")) as service, \
            StripeOutage(service.url) as outage:
        yield outage


@pytest.fixture(scope="module")
def shops(server_url: str, stripe: StripeOutage,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, ...], Shop]]:
    """The correct service, one per bug, and one with COMBINED: each on its own
    schema, started (and stopped) in parallel, since starting one takes about a second."""
    variants = [(), *((bug,) for bug in sorted(CATALOGUE)), COMBINED]
    admin = Database(server_url)
    schemas = {bugs: f"chaos_test_{secrets.token_hex(4)}" for bugs in variants}

    def start(bugs: tuple[str, ...]) -> tuple[contextlib.ExitStack, Shop]:
        stack = contextlib.ExitStack()
        try:
            shop = stack.enter_context(open_shop(
                *bugs, server_url=server_url, schema=schemas[bugs], stripe_url=stripe.url,
                workdir=tmp_path_factory.mktemp("reference")))
        except BaseException:
            stack.close()
            raise
        return stack, shop

    started: list[contextlib.ExitStack] = []
    try:
        for schema in schemas.values():
            admin.execute(f'create schema "{schema}"')
        with ThreadPoolExecutor(max_workers=len(variants)) as pool:
            futures = {bugs: pool.submit(start, bugs) for bugs in variants}
            opened: dict[tuple[str, ...], Shop] = {}
            failures = []
            for bugs, future in futures.items():
                try:
                    stack, opened[bugs] = future.result()
                    started.append(stack)
                except Exception as exc:
                    failures.append(exc)
        if failures:
            raise failures[0]
        yield opened
    finally:
        with ThreadPoolExecutor(max_workers=max(1, len(started))) as pool:
            list(pool.map(lambda stack: stack.close(), started))
        for schema in schemas.values():
            admin.execute(f'drop schema if exists "{schema}" cascade')
        admin.close()


def test_the_catalogue_has_the_twelve_bugs_each_documented_and_tested():
    assert set(CATALOGUE) == {
        "no-dedup", "check-then-insert", "fail-open-dedup", "dedup-before-verify",
        "ack-before-commit", "oversell", "order-dependent", "unpaid-fulfilled",
        "no-signature-tolerance", "trust-client-price", "checkout-not-idempotent",
        "500-on-duplicate"}
    assert set(SCENARIOS) == set(CATALOGUE)
    for bug in CATALOGUE.values():
        assert bug.caught_by in INVARIANTS, bug.name
        assert bug.summary and bug.real_world and bug.breaks_with and bug.step, bug.name
        assert "#" in bug.real_world, f"{bug.name}: cite a public report"


@pytest.mark.parametrize("bug", sorted(CATALOGUE))
def test_the_correct_service_survives_the_scenario_of(bug: str, shops, stripe):
    scenario, tries = SCENARIOS[bug]
    for _ in range(tries):
        assert scenario(shops[()], stripe) == []


@pytest.mark.parametrize("bug", sorted(CATALOGUE))
def test_the_bug_breaks_its_scenario_and_its_invariant_says_so(bug: str, shops, stripe):
    violations, attempt = run_until_broken(shops[(bug,)], stripe, bug)
    assert violations, f"{bug} survived {attempt} tries of {SCENARIOS[bug][0].__name__}"
    assert {v.split(":")[0] for v in violations} == {CATALOGUE[bug].caught_by}


def test_check_then_insert_still_catches_a_sequential_retry(shops, stripe):
    assert sequential_copies(shops[("check-then-insert",)], stripe) == []


def test_several_bugs_can_be_on_at_once(shops, stripe):
    for bug in COMBINED:
        violations, _ = run_until_broken(shops[COMBINED], stripe, bug)
        assert violations and violations[0].startswith(CATALOGUE[bug].caught_by)


def test_two_bugs_on_one_step_are_refused_before_anything_starts(tmp_path: Path):
    with pytest.raises(UsageError, match="both replace the event dedup"):
        parse_bugs(["no-dedup", "500-on-duplicate"])
    result = run_tool("reference", "--port", "0", "--database-url", "postgresql://127.0.0.1:1/x",
                      "--bug", "no-dedup", "--bug", "check-then-insert", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "choose one" in line and "Traceback" not in result.stderr
