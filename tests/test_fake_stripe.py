"""The fake Stripe API as the real stripe-python client sees it, and the
payments the tester drives through its control side.

Each test: what a target (or the tester) does, what must hold, the evidence
read back through Stripe's own endpoints.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stripe._encode import _api_encode

from chaos.fake_stripe.forms import MAX_DEPTH, FormError, decode
from tests import fake_stripe_helpers
from tests.fake_stripe_helpers import KEY, Fake, session_params

fake = fake_stripe_helpers.fake  # the fixtures, for this module
stripe_server = fake_stripe_helpers.stripe_server

# -- the Stripe API side, through stripe-python --------------------------------------------------


def test_create_retrieve_expand_and_list_line_items(fake: Fake):
    sc = fake.client()
    session = sc.v1.checkout.sessions.create(params=session_params(
        quantity=2, unit_amount=2500, metadata={"order_id": "42"}, customer_email="a@b.test"))
    assert session.id.startswith("cs_test_")
    assert (session.amount_total, session.currency, session.status, session.payment_status) == \
        (5000, "usd", "open", "unpaid")
    assert session.metadata["order_id"] == "42"
    assert "line_items" not in session  # only when expanded, as on Stripe

    again = sc.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["line_items", "line_items.data.price.product"]})
    item = again.line_items.data[0]
    assert (item.quantity, item.amount_total, item.price.unit_amount) == (2, 5000, 2500)
    assert item.price.product.object == "product" and item.price.product.name == "GA"

    listed = sc.v1.checkout.sessions.line_items.list(session.id)
    assert [i.id for i in listed.data] == [item.id]
    assert isinstance(listed.data[0].price.product, str)  # not expanded unless asked
    product = sc.v1.products.retrieve(listed.data[0].price.product)
    assert product.name == "GA"


def test_the_account_of_the_keys_has_the_shape_stripe_gives_it(fake: Fake):
    """``GET /v1/account`` (stripe clients and pretix ask it who they are): the spec's
    fields, a test account able to take payments; ``/v1/accounts/{id}`` for its own id."""
    from chaos.fake_stripe.api import ACCOUNT

    sc = fake.client()
    account = sc.v1.accounts.retrieve_current()
    assert account.object == "account" and account.id.startswith("acct_")
    assert account.charges_enabled and account.details_submitted
    assert account.requirements.currently_due == []
    assert account.settings.dashboard.timezone == "Etc/UTC"
    assert isinstance(account.external_accounts, stripe.ListObject)
    # the OpenAPI spec's fields (2023-08-16) less those only custom accounts carry
    assert set(account.to_dict()) == {
        "business_profile", "business_type", "capabilities", "charges_enabled", "controller",
        "country", "created", "default_currency", "details_submitted", "email",
        "external_accounts", "future_requirements", "id", "metadata", "object",
        "payouts_enabled", "requirements", "settings", "tos_acceptance", "type"}
    assert sc.v1.accounts.retrieve(account.id).to_dict() == account.to_dict()
    with pytest.raises(stripe.InvalidRequestError) as missing:
        sc.v1.accounts.retrieve("acct_someone_else")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        sc.v1.accounts.retrieve_current(params={"expand": ["metadata"]})
    assert account.to_dict() == ACCOUNT   # what the fake holds, unchanged by being answered


def test_payment_intent_metadata_comes_from_payment_intent_data_only(fake: Fake):
    sc = fake.client()
    session = sc.v1.checkout.sessions.create(params=session_params(
        metadata={"order_id": "7"}, payment_intent_data={"metadata": {"order_ref": "o-7"}}))
    paid = fake.control.pay(session.id)
    intent = sc.v1.payment_intents.retrieve(paid["payment_intent"]["id"])
    assert intent.metadata.to_dict() == {"order_ref": "o-7"}
    assert sc.v1.checkout.sessions.retrieve(session.id).metadata.to_dict() == {"order_id": "7"}


def refetch(sc: stripe.StripeClient, obj: dict[str, Any]) -> Any:
    """What a webhook handler does with ``event.data.object``: retrieve it by id."""
    retrieve = {
        "checkout.session": sc.v1.checkout.sessions.retrieve,
        "payment_intent": sc.v1.payment_intents.retrieve,
        "charge": sc.v1.charges.retrieve,
        "refund": sc.v1.refunds.retrieve,
        "dispute": sc.v1.disputes.retrieve,
    }[obj["object"]]
    return retrieve(obj["id"])


def assert_events_agree(sc: stripe.StripeClient, events: list[dict[str, Any]]) -> None:
    """Each event is stored as returned, and names an object a handler can re-fetch."""
    for event in events:
        stored = sc.v1.events.retrieve(event["id"])
        assert stored.to_dict() == event
        current = refetch(sc, event["data"]["object"])
        assert (current.id, current.object) == (event["data"]["object"]["id"],
                                                event["data"]["object"]["object"])


def test_paying_emits_the_events_stripe_would_with_consistent_objects(fake: Fake):
    sc = fake.client()
    session = sc.v1.checkout.sessions.create(params=session_params(quantity=3, unit_amount=1500))
    paid = fake.control.pay(session.id)
    events = paid["events"]
    assert [e["type"] for e in events] == [  # in the order Stripe sends them
        "payment_intent.created", "charge.succeeded", "payment_intent.succeeded",
        "checkout.session.completed"]
    assert_events_agree(sc, events)

    completed = events[3]["data"]["object"]
    assert (completed["status"], completed["payment_status"]) == ("complete", "paid")
    intent = sc.v1.payment_intents.retrieve(completed["payment_intent"])
    charge = sc.v1.charges.retrieve(intent.latest_charge)
    assert (intent.status, intent.amount, intent.amount_received) == ("succeeded", 4500, 4500)
    assert (charge.status, charge.paid, charge.amount, charge.payment_intent) == \
        ("succeeded", True, 4500, intent.id)
    assert events[0]["data"]["object"]["status"] == "requires_payment_method"  # as it was
    assert events[2]["data"]["object"]["id"] == intent.id == events[0]["data"]["object"]["id"]
    assert events[1]["data"]["object"]["id"] == charge.id
    assert all(e["request"] == {"id": None, "idempotency_key": None} for e in events)


@pytest.mark.parametrize("outcome, types, session_state, intent_status, charge_status", [
    ("async_succeeded",
     ["payment_intent.created", "charge.pending", "payment_intent.processing",
      "checkout.session.completed", "charge.succeeded", "payment_intent.succeeded",
      "checkout.session.async_payment_succeeded"],
     ("complete", "paid"), "succeeded", "succeeded"),
    ("async_failed",
     ["payment_intent.created", "charge.pending", "payment_intent.processing",
      "checkout.session.completed", "charge.failed", "payment_intent.payment_failed",
      "checkout.session.async_payment_failed"],
     ("complete", "unpaid"), "requires_payment_method", "failed"),
])
def test_delayed_payments_complete_unpaid_then_settle(fake: Fake, outcome, types, session_state,
                                                       intent_status, charge_status):
    sc = fake.client()
    session = sc.v1.checkout.sessions.create(params=session_params())
    events = fake.control.pay(session.id, outcome)["events"]
    assert [e["type"] for e in events] == types
    assert_events_agree(sc, events)
    # the completion event is a snapshot: unpaid when emitted, whatever came after
    assert events[3]["data"]["object"]["payment_status"] == "unpaid"
    now = sc.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert (now.status, now.payment_status) == session_state
    assert now.payment_intent.status == intent_status
    assert sc.v1.charges.retrieve(now.payment_intent.latest_charge).status == charge_status


def test_a_pending_payment_settles_once(fake: Fake):
    session = fake.control.checkout()
    pending = fake.control.pay(session["id"], "async_pending")
    assert [e["type"] for e in pending["events"]] == [
        "payment_intent.created", "charge.pending", "payment_intent.processing",
        "checkout.session.completed"]
    assert pending["payment_intent"]["status"] == "processing"
    settled = fake.control.post(f"/_chaos/checkout/sessions/{session['id']}/settle",
                                {"outcome": "succeeded"})
    assert settled["checkout_session"]["payment_status"] == "paid"
    again = fake.control.http.post(f"/_chaos/checkout/sessions/{session['id']}/settle",
                                   json={"outcome": "failed"})
    assert again.status_code == 400 and "no payment pending" in again.json()["error"]["message"]


def test_expiry_from_the_tester_and_from_the_target(fake: Fake):
    sc = fake.client()
    first = fake.control.checkout()
    expired = fake.control.post(f"/_chaos/checkout/sessions/{first['id']}/expire")
    assert [e["type"] for e in expired["events"]] == ["checkout.session.expired"]
    assert expired["checkout_session"]["status"] == "expired"
    late = fake.control.http.post(f"/_chaos/checkout/sessions/{first['id']}/pay")
    assert late.status_code == 400 and late.json()["error"]["code"] == "checkout_session_not_open"

    second = sc.v1.checkout.sessions.create(params=session_params())
    done = sc.v1.checkout.sessions.expire(second.id, options={"idempotency_key": "expire-2"})
    assert done.status == "expired"
    event = sc.v1.events.list(params={"type": "checkout.session.expired", "limit": 1}).data[0]
    assert event.data.object.id == second.id
    assert event.request.idempotency_key == "expire-2"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sc.v1.checkout.sessions.expire(second.id)
    assert caught.value.code == "checkout_session_not_open"


def test_refunds_full_and_partial_through_stripe_python(fake: Fake):
    sc = fake.client()
    session = sc.v1.checkout.sessions.create(params=session_params(quantity=2, unit_amount=2500))
    intent_id = fake.control.pay(session.id)["payment_intent"]["id"]

    part = sc.v1.refunds.create(params={"payment_intent": intent_id, "amount": 1000},
                                options={"idempotency_key": "refund-part"})
    charge = sc.v1.charges.retrieve(part.charge)
    assert (part.amount, part.status, part.payment_intent) == (1000, "succeeded", intent_id)
    assert (charge.amount_refunded, charge.refunded) == (1000, False)

    rest = sc.v1.refunds.create(params={"charge": charge.id})
    charge = sc.v1.charges.retrieve(charge.id)
    assert rest.amount == 4000
    assert (charge.amount_refunded, charge.refunded) == (5000, True)
    assert [r.id for r in charge.refunds.data] == [rest.id, part.id]
    assert sc.v1.refunds.retrieve(part.id).amount == 1000

    refunded = sc.v1.events.list(params={"type": "charge.refunded"}).data
    mine = [e for e in refunded if e.data.object.id == charge.id]
    assert [e.data.object.amount_refunded for e in mine] == [5000, 1000]  # newest first
    assert mine[1].request.idempotency_key == "refund-part"

    with pytest.raises(stripe.InvalidRequestError) as caught:
        sc.v1.refunds.create(params={"charge": charge.id})
    assert caught.value.code == "charge_already_refunded"


def test_refunds_and_disputes_from_the_tester(fake: Fake):
    sc = fake.client()
    intent_id = fake.control.pay(fake.control.checkout(3000)["id"])["payment_intent"]["id"]
    refunded = fake.control.post("/_chaos/refunds", {"payment_intent": intent_id})
    assert [e["type"] for e in refunded["events"]] == ["refund.created", "charge.refunded"]
    assert refunded["charge"]["refunded"] is True
    assert_events_agree(sc, refunded["events"])

    other = fake.control.pay(fake.control.checkout(3000)["id"])["payment_intent"]["id"]
    disputed = fake.control.post("/_chaos/disputes", {"payment_intent": other})
    assert [e["type"] for e in disputed["events"]] == ["charge.dispute.created"]
    assert_events_agree(sc, disputed["events"])
    dispute = sc.v1.disputes.retrieve(disputed["dispute"]["id"])
    assert (dispute.amount, dispute.payment_intent) == (3000, other)
    assert sc.v1.charges.retrieve(dispute.charge).disputed is True

    unpaid = fake.control.checkout()
    refused = fake.control.http.post("/_chaos/refunds", json={"charge": "ch_nope"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "resource_missing"
    assert fake.control.http.post(f"/_chaos/checkout/sessions/{unpaid['id']}/settle",
                                  json={"outcome": "succeeded"}).status_code == 400


def test_events_and_sessions_list_newest_first_with_pagination(fake: Fake):
    sc = fake.client()
    sessions = [fake.control.checkout(1000 + i) for i in range(3)]
    for s in sessions:
        fake.control.pay(s["id"])
    page = sc.v1.events.list(params={"type": "checkout.session.completed", "limit": 2})
    assert page.has_more is True and len(page.data) == 2
    assert [e.data.object.id for e in page.data] == [sessions[2]["id"], sessions[1]["id"]]
    after = sc.v1.events.list(params={"type": "checkout.session.completed", "limit": 1,
                                      "starting_after": page.data[-1].id})
    assert after.data[0].data.object.id == sessions[0]["id"]
    wildcard = sc.v1.events.list(params={"type": "checkout.session.*", "limit": 100})
    assert {e.type for e in wildcard.data} == {"checkout.session.completed"} | {
        e.type for e in wildcard.data if e.type.startswith("checkout.session.")}

    intent = sc.v1.checkout.sessions.retrieve(sessions[1]["id"]).payment_intent
    found = sc.v1.checkout.sessions.list(params={"payment_intent": intent})
    assert [s.id for s in found.data] == [sessions[1]["id"]]


# -- bad requests: Stripe-shaped errors, never a 500 ---------------------------------------------

AUTH = {"authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize("method, path, kwargs, status, expected", [
    ("GET", "/v1/nothing_here", {}, 404, {"type": "invalid_request_error"}),
    ("DELETE", "/v1/checkout/sessions", {}, 404, {"type": "invalid_request_error"}),
    ("GET", "/v1/checkout/sessions/", {}, 404, {"type": "invalid_request_error"}),
    ("POST", "/v1/checkout/sessions", {"content": "mode=payment"}, 400,
     {"code": "parameter_missing", "param": "line_items"}),
    ("POST", "/v1/checkout/sessions", {"content": "line_items[0][quantity]=1"}, 400,
     {"code": "parameter_missing", "param": "line_items[0][price_data]"}),
    ("POST", "/v1/checkout/sessions",
     {"content": "line_items[0][quantity]=x&line_items[0][price_data][currency]=usd"}, 400,
     {"code": "parameter_invalid_integer", "param": "line_items[0][quantity]"}),
    ("POST", "/v1/checkout/sessions", {"content": "line_items=1&line_items[0][a]=2"}, 400,
     {"code": "parameter_invalid", "param": "line_items[0][a]"}),
    ("POST", "/v1/checkout/sessions", {"content": "a]b[=1"}, 400, {"code": "parameter_invalid"}),
    ("POST", "/v1/checkout/sessions", {"json": {"line_items": []}}, 400,
     {"type": "invalid_request_error"}),
    ("GET", "/v1/checkout/sessions/cs_missing", {}, 404,
     {"code": "resource_missing", "param": "id"}),
    ("GET", "/v1/checkout/sessions?limit=0", {}, 400, {"param": "limit"}),
    ("GET", "/v1/events?expand[0]=data.nope", {}, 400, {"param": "expand[0]"}),
    ("POST", "/v1/refunds", {"content": "amount=5"}, 400, {"code": "parameter_missing"}),
    ("POST", "/_chaos/checkout/sessions", {"content": "{not json"}, 400,
     {"type": "invalid_request_error"}),
    ("POST", "/_chaos/checkout/sessions", {"json": {"amount_total": "lots"}}, 400,
     {"param": "amount_total"}),
    ("POST", "/_chaos/checkout/sessions/cs_missing/pay", {}, 404, {"code": "resource_missing"}),
    ("POST", "/_chaos/checkout/sessions/cs_missing/pay", {"json": {"outcome": "maybe"}}, 400,
     {"param": "outcome"}),
    ("GET", "/_chaos/objects/nonsense", {}, 404, {"param": "kind"}),
    ("GET", "/somewhere/else", {}, 404, {"type": "invalid_request_error"}),
])
def test_bad_requests_get_stripe_shaped_errors(fake: Fake, method, path, kwargs, status,
                                              expected):
    response = fake.control.http.request(method, path, headers=AUTH, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error == {**error, **expected}
    assert error["message"]
    assert "Traceback" not in fake.log()


def test_stripe_python_raises_its_own_error_classes(fake: Fake):
    sc = fake.client()
    with pytest.raises(stripe.InvalidRequestError) as missing:
        sc.v1.checkout.sessions.create(params={"mode": "payment"})
    assert (missing.value.http_status, missing.value.param) == (400, "line_items")
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        sc.v1.charges.retrieve("ch_nope")
    assert (unknown.value.http_status, unknown.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.AuthenticationError):
        fake.client(key="sk_live_nope").v1.checkout.sessions.retrieve("cs_x")
    unsigned = fake.control.http.get("/v1/checkout/sessions")  # no API key at all
    assert unsigned.status_code == 401
    assert "did not provide an API key" in unsigned.json()["error"]["message"]


def test_records_say_who_called_what_and_keep_secrets_out(fake: Fake):
    sc = fake.client()
    since = fake.control.last_seq()
    session = sc.v1.checkout.sessions.create(
        params=session_params(metadata={"order_id": "rec-1", "secret": "s3cr3t-value",
                                        "note": f"key={KEY}"}),
        options={"idempotency_key": "rec-key-1"})
    fake.control.http.get("/v1/not_an_endpoint", headers=AUTH)
    created, unknown = fake.control.records(since)
    assert created["endpoint"] == "POST /v1/checkout/sessions"
    assert (created["idempotency_key"], created["status"], created["outcome"]) == \
        ("rec-key-1", 200, "ok")
    assert created["object_id"] == session.id and created["executed"] is True
    assert created["params"]["line_items"][0]["quantity"] == "2"
    assert created["params"]["metadata"]["secret"] == "[redacted]"
    assert KEY not in str(created) and created["api_key"] == "sk_test_..." + KEY[-4:]
    assert (unknown["endpoint"], unknown["status"]) == ("unrecognized", 404)
    # sessions per order, as an invariant reads them
    assert [s["id"] for s in fake.control.objects("checkout.session", order_id="rec-1")] == \
        [session.id]


def test_the_tester_reads_sessions_by_id_and_charges_by_payment_intent(fake: Fake):
    """How the tool reads Stripe's own records after an example: sessions the target
    created (whatever their metadata) by id, and their charges as they are now."""
    sc = fake.client()
    first, second, other = (sc.v1.checkout.sessions.create(params=session_params())
                            for _ in range(3))
    assert [s["id"] for s in fake.control.get("/_chaos/objects/checkout.session",
                                              **{"ids[]": [first.id, second.id]})["data"]] == \
        [first.id, second.id]
    paid = fake.control.pay(first.id)["payment_intent"]["id"]
    fake.control.pay(other.id)
    fake.control.post("/_chaos/refunds", {"payment_intent": paid})
    [charge] = fake.control.get("/_chaos/objects/charge", **{"payment_intents[]": [paid]})["data"]
    assert (charge["payment_intent"], charge["refunded"]) == (paid, True)
    answer = fake.control.http.get("/_chaos/objects/charge", params={"payment_intents": paid})
    assert answer.status_code == 400 and "payment_intents[]" in answer.text


# -- the form decoder ----------------------------------------------------------------------------


@pytest.mark.parametrize("body, expected", [
    ("a=1", {"a": "1"}),
    ("metadata[order_id]=42&metadata[x]=", {"metadata": {"order_id": "42", "x": ""}}),
    ("line_items[0][price_data][unit_amount]=2500&line_items[0][quantity]=2",
     {"line_items": [{"price_data": {"unit_amount": "2500"}, "quantity": "2"}]}),
    ("expand[]=line_items&expand[]=payment_intent", {"expand": ["line_items", "payment_intent"]}),
    ("expand[0]=line_items", {"expand": ["line_items"]}),
    ("0=a&1=b", {"0": "a", "1": "b"}),  # the top level stays a hash
    ("a[0]=x&a[2]=y", {"a": {"0": "x", "2": "y"}}),  # not a list: a gap
    ("a[0]=x&a[01]=y", {"a": {"0": "x", "01": "y"}}),
])
def test_form_decoding_of_nested_keys(body, expected):
    assert decode(body) == expected


@pytest.mark.parametrize("body, param", [
    ("metadata=1&metadata[a]=2", "metadata[a]"),
    ("metadata[a]=1&metadata=2", "metadata"),
    ("a[b=1", "a[b"),
    ("a" + "[x]" * (MAX_DEPTH + 1) + "=1", "a" + "[x]" * (MAX_DEPTH + 1)),
])
def test_forms_the_encoding_cannot_express_are_refused(body, param):
    with pytest.raises(FormError) as caught:
        decode(body)
    assert caught.value.param == param


@settings(max_examples=300, deadline=None)
@given(st.text() | st.lists(st.sampled_from(["a", "[", "]", "=", "&", "0", "1", "%", "[]", "b"]))
       .map("".join))
def test_any_body_decodes_to_a_hash_or_a_form_error(body):
    try:
        result = decode(body)
    except FormError:
        return
    assert isinstance(result, dict)


KEYS = st.text(st.characters(blacklist_characters="[]", blacklist_categories=("Cs",)),
               min_size=1, max_size=8).filter(lambda k: not k.isdigit())
SCALARS = st.text(max_size=8)
PARAMS = st.recursive(
    SCALARS,
    lambda inner: st.dictionaries(KEYS, inner, min_size=1, max_size=3)
    | st.lists(inner.filter(lambda v: v != {} and v != []), min_size=1, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, PARAMS, max_size=4))
def test_what_stripe_python_encodes_decodes_to_the_same_params(params):
    body = urlencode(list(_api_encode(params))).replace("%5B", "[").replace("%5D", "]")
    assert decode(body) == params


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["mode", "line_items[0][quantity]",
                                        "line_items[0][price_data][currency]",
                                        "line_items[0][price_data][unit_amount]",
                                        "line_items[0][price_data][product_data][name]",
                                        "line_items[0][price]", "line_items[]", "metadata",
                                        "metadata[k]", "expand[]", "expires_at"]),
                       st.sampled_from(["", "1", "-5", "usd", "x" * 300, "payment", "[", "0.5"]))
       .map(urlencode))
def test_the_create_endpoint_answers_any_form_with_200_or_a_stripe_error(fake: Fake, body):
    response = fake.control.http.post("/v1/checkout/sessions", content=body,
                                      headers={**AUTH, "content-type":
                                               "application/x-www-form-urlencoded"})
    assert response.status_code in (200, 400), response.text
    data = response.json()
    assert data.get("object") == "checkout.session" or data["error"]["message"]


def test_the_server_log_has_no_traceback_after_all_that(fake: Fake):
    assert "Traceback" not in fake.log()


def test_unknown_control_routes_and_methods(fake: Fake):
    assert httpx.get(f"{fake.url}/_chaos/health", trust_env=False).json()["ok"] is True
    response = httpx.put(f"{fake.url}/_chaos/faults", trust_env=False)
    assert response.status_code == 404 and response.json()["error"]["message"]
