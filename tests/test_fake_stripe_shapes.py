"""What the fake Stripe's objects and ``expand[]`` are checked against,
without a server: Stripe's own spec (the generated table of expandable
fields and the script that writes it) and stripe-python's resource classes
(generated from that spec), and ``expand[]`` as a property over drawn paths.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest
import stripe
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chaos.fake_stripe.expandable import EXPANDABLE

ROOT = Path(__file__).resolve().parent.parent


# -- where the table of expandable fields comes from -------------------------------------------------


def test_the_table_generator_reads_x_expandable_fields_from_a_spec(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    tool = runpy.run_path(str(ROOT / "tools" / "stripe_expandable.py"))
    spec = {"info": {"version": "2099-01-01"}, "components": {"schemas": {
        "charge": {"x-expandableFields": ["payment_intent", "balance_transaction"]},
        "payment_intent": {"x-expandableFields": ["latest_charge"]},
        "unrelated": {"x-expandableFields": ["x"]}}}}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    assert tool["main"]([str(path)]) == 0
    out = capsys.readouterr().out
    table = runpy.run_path(str(_written(tmp_path, out)))["EXPANDABLE"]
    assert table["charge"] == {"payment_intent", "balance_transaction", "dispute"}  # + not in spec
    assert table["payment_intent"] == {"latest_charge"} and table["list"] == {"data"}
    assert "unrelated" not in table and "2099-01-01" in out
    assert tool["main"]([]) == 2 and capsys.readouterr().err.startswith("Usage: ")


def _written(where: Path, text: str) -> Path:
    path = where / "expandable.py"
    path.write_text(text)
    return path


# -- the shapes against stripe-python's resource classes (generated from Stripe's spec) ------------

#: Fields the fake serves that the current API dropped but the versions its clients
#: pin still have: a charge's ``dispute`` (pretix expands it), a PaymentIntent's
#: ``invoice`` (removed in 2025).
OLDER_API_FIELDS = {"charge": {"dispute"}, "payment_intent": {"invoice"}}

RESOURCES = {"charge": stripe.Charge, "payment_intent": stripe.PaymentIntent,
             "refund": stripe.Refund, "dispute": stripe.Dispute,
             "balance_transaction": stripe.BalanceTransaction,
             "checkout.session": stripe.checkout.Session, "event": stripe.Event,
             "product": stripe.Product, "price": stripe.Price, "item": stripe.LineItem,
             "payment_method": stripe.PaymentMethod}


def _declared(cls: type) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        fields.update(getattr(klass, "__annotations__", {}))
    return fields


@pytest.mark.parametrize("kind", sorted(RESOURCES))
def test_the_table_allows_every_expansion_stripe_python_declares(kind):
    declared = _declared(RESOURCES[kind])
    links = {name for name, hint in declared.items()
             if "ExpandableField" in str(hint) or "ListObject" in str(hint)}
    assert links <= EXPANDABLE[kind], sorted(links - EXPANDABLE[kind])


def test_the_objects_carry_only_fields_stripe_python_knows():
    from chaos.fake_stripe.state import FakeStripe, LineSpec

    state = FakeStripe(prefix="shape")
    session = state.create_checkout_session(line_items=[LineSpec("GA", 2500, 1)],
                                            customer_email="a@b.test")
    state.pay(session["id"])
    intent = state.get("checkout.session", session["id"])["payment_intent"]
    state.refund(payment_intent=intent, amount=100)
    state.dispute(payment_intent=intent)
    items = state.session_line_items(session)["data"]
    for kind, cls in RESOURCES.items():
        objs = items if kind == "item" else state.all(kind)
        assert objs, kind
        unknown = set(objs[-1]) - set(_declared(cls)) - OLDER_API_FIELDS.get(kind, set())
        assert not unknown, (kind, sorted(unknown))


# -- expand[] as a property: any path, any object ----------------------------------------------------

def _paid_state() -> Any:
    from chaos.fake_stripe.state import FakeStripe, LineSpec

    state = FakeStripe(prefix="prop")
    session = state.create_checkout_session(line_items=[LineSpec("GA", 2500, 2)])
    state.pay(session["id"])
    intent = state.get("checkout.session", session["id"])["payment_intent"]
    state.refund(payment_intent=intent, amount=100)
    state.dispute(payment_intent=intent)
    return state


_SEGMENTS = sorted(set().union(*EXPANDABLE.values()) | {"metadata", "id", "amount", "object"})


@settings(max_examples=300, database=None, suppress_health_check=list(HealthCheck))
@example(kind="charge", path=["refunds", "data", "charge"])
@example(kind="charge", path=["refunds", "data", "metadata"])
@example(kind="charge", path=["payment_intent", "latest_charge", "dispute"])
@example(kind="checkout.session", path=["line_items", "data", "price", "product"])
@example(kind="checkout.session", path=["line_items", "data", "price", "metadata"])
@example(kind="event", path=["data", "object"])
@example(kind="event", path=["data", "amount"])
@given(kind=st.sampled_from(["charge", "payment_intent", "refund", "dispute", "checkout.session",
                             "balance_transaction", "event"]),
       path=st.lists(st.sampled_from(_SEGMENTS), min_size=1, max_size=4))
def test_expansion_follows_the_table_and_never_touches_stored_objects(kind, path):
    from chaos.fake_stripe.errors import StripeError
    from chaos.fake_stripe.expansion import expand
    from chaos.fake_stripe.objects import snapshot

    state = _PAID_STATE
    obj = state.all(kind)[-1]
    before = snapshot(state.objects)
    include = {("checkout.session", "line_items"): state.session_line_items}
    try:
        result = expand(obj, [".".join(path)], resolve=state.find, include=include)
    except StripeError as exc:
        assert (exc.status, exc.param) == (400, "expand[0]")
        assert exc.message.startswith("This property cannot be expanded (")
        refused = exc.message[len("This property cannot be expanded ("):].split(")")[0]
        assert ".".join(path).startswith(refused)
        # the refused segment was not expandable on what it was asked of
        node: Any = obj
        for segment in refused.split(".")[:-1]:
            node = node[segment] if segment in node else include[(node["object"], segment)](node)
            node = state.find(node) if isinstance(node, str) else node
            node = node[0] if isinstance(node, list) else node
        last, kind_there = refused.split(".")[-1], node.get("object") if isinstance(node, dict) \
            else None
        assert not isinstance(kind_there, str) or last not in EXPANDABLE.get(kind_there, {last}) \
            or (isinstance(node.get(last), str) and state.find(node[last]) is None)
    else:
        head = path[0]
        assert head in EXPANDABLE[kind]
        if isinstance(obj.get(head), str):
            assert isinstance(result[head], dict) and result[head]["id"] == obj[head]
    assert state.objects == before  # expansions are fresh dicts


_PAID_STATE = _paid_state()
