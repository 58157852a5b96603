"""The catalogue: Products, Prices and Payment Links, and sessions bought through a link.

Shops that sell through Payment Links keep Stripe's ids in their own tables
(an admin pastes the product id next to the ticket type), and their webhook
finds the ticket type by ``line_items.data.price.product``. So the ids must
be knowable before anything is bought: a Product may be created with a
chosen ``id``, as Stripe allows; Prices and Payment Links get fresh ids,
returned when they are created.

Stripe API side (form-encoded, as every ``/v1`` endpoint; see
:mod:`chaos.fake_stripe.app`)::

    POST /v1/products            id?, name, active?, metadata?, description?
    GET  /v1/products            active?, ids[]?, limit/starting_after/ending_before
    POST /v1/products/{id}       name?, active?, metadata?
    POST /v1/prices              product | product_data[name], unit_amount, currency,
                                 active?, metadata?, lookup_key?
    GET  /v1/prices              product?, active?, lookup_keys[]?
    POST /v1/prices/{id}         active?, metadata?
    POST /v1/payment_links       line_items[i][price], line_items[i][quantity],
                                 line_items[i][adjustable_quantity][enabled|minimum|maximum],
                                 metadata?, payment_intent_data[metadata]?
    GET  /v1/payment_links       active?
    GET  /v1/payment_links/{id}  expand[]=line_items, line_items.data.price.product
    POST /v1/payment_links/{id}  active?, metadata?
    GET  /v1/payment_links/{id}/line_items

(``GET /v1/products/{id}`` and ``GET /v1/prices/{id}`` are in
:mod:`chaos.fake_stripe.api`.)

Control side (JSON, for the tester, who plays the shop's admin and the buyer)::

    POST /_chaos/catalogue     {"product": {"id"?, "name", "metadata"?},
                                "unit_amount", "currency"?, "payment_link"?: true,
                                "payment_link_metadata"?: {...}}
                               -> {"product", "price", "payment_link" (or null)}
    POST /_chaos/payment_links/{id}/checkout
                               {"quantity"?, "customer_email"?}
                               -> the open checkout.session the buyer pays next

A session bought through a link carries ``payment_link``, the link's
``metadata`` (Stripe copies it to the sessions a link creates) and the
link's ``payment_intent_data[metadata]`` on its PaymentIntent. An inactive
link sells nothing, as on Stripe.

Objects carry every field stripe-python's resource classes declare (the
tests compare them), most at Stripe's default for a link or product that
uses none of those features; ``line_items`` only when expanded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaos.fake_stripe import objects
from chaos.fake_stripe.api import ApiCall, Handler, expanded, integer, paginate, string_hash, text
from chaos.fake_stripe.control import Control, ControlCall, ControlHandler
from chaos.fake_stripe.errors import StripeError, param_invalid, param_missing
from chaos.fake_stripe.objects import Obj
from chaos.fake_stripe.state import FakeStripe, LineSpec

#: Most units a buyer may choose on a link with an adjustable quantity (Stripe's default).
MAX_ADJUSTABLE = 99


# -- objects ---------------------------------------------------------------------------------------

def payment_link(id_: str, *, currency: str, metadata: Mapping[str, str],
                 intent_metadata: Mapping[str, str]) -> Obj:
    return {"id": id_, "object": "payment_link", "active": True,
            "after_completion": {"type": "hosted_confirmation",
                                 "hosted_confirmation": {"custom_message": None}},
            "allow_promotion_codes": False, "application": None,
            "application_fee_amount": None, "application_fee_percent": None,
            "automatic_tax": {"enabled": False, "liability": None},
            "billing_address_collection": "auto", "consent_collection": None,
            "currency": currency, "custom_fields": [],
            "custom_text": {"after_submit": None, "shipping_address": None, "submit": None,
                            "terms_of_service_acceptance": None},
            "customer_creation": "if_required", "inactive_message": None,
            "invoice_creation": None, "livemode": False, "managed_payments": None,
            "metadata": dict(metadata), "name_collection": None, "on_behalf_of": None,
            "optional_items": None,
            "payment_intent_data": {"capture_method": None, "description": None,
                                    "metadata": dict(intent_metadata),
                                    "setup_future_usage": None,
                                    "statement_descriptor": None,
                                    "statement_descriptor_suffix": None,
                                    "transfer_group": None},
            "payment_method_collection": "always", "payment_method_options": None,
            "payment_method_types": None, "phone_number_collection": {"enabled": False},
            "restrictions": None, "shipping_address_collection": None, "shipping_options": [],
            "submit_type": "auto", "subscription_data": None,
            "tax_id_collection": {"enabled": False, "required": "never"},
            "transfer_data": None, "url": f"https://buy.stripe.test/{id_}"}


def _boolean(params: Mapping[str, Any], name: str) -> bool | None:
    """A form boolean; any case, as Stripe takes it (stripe-python 7.x sends ``False``)."""
    value = text(params, name)
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        raise param_invalid(name, f"Invalid boolean: {value}", code="parameter_invalid_boolean")
    return value.lower() == "true"


# -- state -----------------------------------------------------------------------------------------

def create_product(state: FakeStripe, *, name: str, product_id: str | None = None,
                   metadata: Mapping[str, str] | None = None, active: bool = True,
                   description: str | None = None) -> Obj:
    """A Product, under ``product_id`` when given (Stripe lets the caller choose it)."""
    if product_id is not None:
        if state.find(product_id) is not None:
            raise StripeError(400, f"Product already exists with id: '{product_id}'",
                              code="resource_already_exists", param="id")
    prod = objects.product(product_id or state.new_id("product"), name=name,
                           created=int(state.now()), metadata=metadata or {})
    prod.update(active=active, description=description, default_price=None, images=[],
                marketing_features=[], package_dimensions=None, shippable=None,
                statement_descriptor=None, tax_code=None, tax_details=None, type="service",
                unit_label=None, updated=prod["created"], url=None)
    return state._add(prod)


def create_price(state: FakeStripe, *, product_id: str, unit_amount: int, currency: str,
                 metadata: Mapping[str, str] | None = None, active: bool = True,
                 lookup_key: str | None = None) -> Obj:
    price = objects.price(state.new_id("price"), product_id=product_id, unit_amount=unit_amount,
                          currency=currency, created=int(state.now()))
    price.update(active=active, metadata=dict(metadata or {}), lookup_key=lookup_key,
                 custom_unit_amount=None, nickname=None, recurring=None,
                 tax_behavior="unspecified", tiers_mode=None, transform_quantity=None)
    return state._add(price)


def create_payment_link(state: FakeStripe, *, lines: list[tuple[Obj, int, dict[str, Any] | None]],
                        metadata: Mapping[str, str] | None = None,
                        intent_metadata: Mapping[str, str] | None = None) -> Obj:
    """A Payment Link over ``lines``: (price, quantity, adjustable_quantity or None)."""
    currencies = {price["currency"] for price, _, _ in lines}
    if len(currencies) != 1:
        raise param_invalid("line_items", "All line items must have the same currency, got "
                            f"{', '.join(sorted(currencies))}.")
    link = payment_link(state.new_id("payment_link"), currency=currencies.pop(),
                        metadata=metadata or {}, intent_metadata=intent_metadata or {})
    items = []
    for price, quantity, adjustable in lines:
        product = state.get("product", price["product"])
        item = objects.line_item(state.new_id("item"), price_obj=price, quantity=quantity,
                                 description=product["name"])
        item["adjustable_quantity"] = adjustable or {"enabled": False, "maximum": None,
                                                     "minimum": None}
        items.append(item)
    state.line_items[link["id"]] = items
    return state._add(link)


def link_line_items(state: FakeStripe, link: Obj) -> Obj:
    items = [{k: v for k, v in item.items() if k != "adjustable_quantity"}
             for item in state.line_items.get(link["id"], [])]
    return objects.list_object(items, url=f"/v1/payment_links/{link['id']}/line_items")


def buy_through_link(state: FakeStripe, link_id: str, *, quantity: int | None = None,
                     customer_email: str | None = None) -> Obj:
    """The open Checkout Session a buyer gets on the link's page, for ``quantity``
    units of its (single adjustable) line item, or the link's own quantities."""
    link = state.get("payment_link", link_id, param="payment_link")
    if not link["active"]:
        raise StripeError(400, f"The payment link {link_id} is no longer active.",
                          code="payment_link_inactive", param="payment_link")
    items = state.line_items.get(link_id, [])
    adjustable = [item for item in items if item["adjustable_quantity"]["enabled"]]
    if quantity is not None and len(adjustable) != 1:
        raise param_invalid("quantity", f"The payment link {link_id} has "
                            f"{len(adjustable)} line items with an adjustable quantity; a "
                            "quantity needs exactly one.")
    specs = []
    for item in items:
        qty = item["quantity"]
        if quantity is not None and item is adjustable[0]:
            low = item["adjustable_quantity"]["minimum"] or 1
            high = item["adjustable_quantity"]["maximum"] or MAX_ADJUSTABLE
            if not low <= quantity <= high:
                raise param_invalid("quantity", f"quantity {quantity} is outside {low}..{high}, "
                                    f"the range payment link {link_id} allows.")
            qty = quantity
        price = item["price"]
        specs.append(LineSpec(item["description"], price["unit_amount"], qty, price["currency"],
                              price_id=price["id"]))
    session = state.create_checkout_session(
        line_items=specs, currency=link["currency"], metadata=link["metadata"],
        customer_email=customer_email,
        intent_metadata=link["payment_intent_data"]["metadata"])
    session["payment_link"] = link_id
    return session


# -- the Stripe API side ---------------------------------------------------------------------------

def _expanded(state: FakeStripe, obj: Obj, params: Mapping[str, Any]) -> Obj:
    return expanded(state, obj, params, include={
        ("payment_link", "line_items"): lambda link: link_line_items(state, link),
    })


def api_create_product(state: FakeStripe, call: ApiCall) -> Obj:
    params = call.params
    name = text(params, "name", required=True)
    assert name is not None
    active = _boolean(params, "active")
    return create_product(state, name=name, product_id=text(params, "id"),
                          metadata=string_hash(params, "metadata"),
                          active=True if active is None else active,
                          description=text(params, "description"))


def _filtered(items: list[Obj], params: Mapping[str, Any]) -> list[Obj]:
    active = _boolean(params, "active")
    return [item for item in items if active is None or item["active"] is active]


def api_list_products(state: FakeStripe, call: ApiCall) -> Obj:
    products = _filtered(state.all("product"), call.params)
    ids = call.params.get("ids")
    if ids is not None:
        wanted = [ids] if isinstance(ids, str) else list(ids)
        products = [p for p in products if p["id"] in wanted]
    return paginate(state, products[::-1], call.params, url="/v1/products")


def api_update_product(state: FakeStripe, call: ApiCall) -> Obj:
    product = state.get("product", call.path_params["id"])
    params = call.params
    active, name = _boolean(params, "active"), text(params, "name")
    metadata = params.get("metadata")
    changes = string_hash(params, "metadata") if metadata is not None else None
    if active is not None:
        product["active"] = active
    if name is not None:
        product["name"] = name
    if changes is not None:
        product["metadata"] = _merged(product["metadata"], metadata)
    return _expanded(state, product, params)


def _merged(current: Mapping[str, str], update: Any) -> dict[str, str]:
    """Stripe's metadata update: keys set to "" are removed, others set."""
    if not isinstance(update, dict):
        return {}  # metadata="" clears it
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged


def api_create_price(state: FakeStripe, call: ApiCall) -> Obj:
    params = call.params
    currency = text(params, "currency", required=True)
    assert currency is not None
    unit_amount = integer(params, "unit_amount", required=True)
    assert unit_amount is not None
    product_id = text(params, "product")
    data = params.get("product_data")
    if product_id is None and not isinstance(data, dict):
        raise param_missing("product")
    if product_id is not None:
        state.get("product", product_id, param="product")
    else:
        assert isinstance(data, dict)
        name = text(data, "name", required=True, where="product_data[name]")
        assert name is not None
        product_id = create_product(state, name=name,
                                    metadata=string_hash(data, "metadata",
                                                         where="product_data[metadata]"))["id"]
    active = _boolean(params, "active")
    return _expanded(state, create_price(
        state, product_id=product_id, unit_amount=unit_amount, currency=currency.lower(),
        metadata=string_hash(params, "metadata"), active=True if active is None else active,
        lookup_key=text(params, "lookup_key")), params)


def api_list_prices(state: FakeStripe, call: ApiCall) -> Obj:
    prices = _filtered(state.all("price"), call.params)
    product = text(call.params, "product")
    if product is not None:
        prices = [p for p in prices if p["product"] == product]
    keys = call.params.get("lookup_keys")
    if keys is not None:
        wanted = [keys] if isinstance(keys, str) else list(keys)
        prices = [p for p in prices if p.get("lookup_key") in wanted]
    return paginate(state, prices[::-1], call.params, url="/v1/prices")


def api_update_price(state: FakeStripe, call: ApiCall) -> Obj:
    price = state.get("price", call.path_params["id"])
    active = _boolean(call.params, "active")
    if active is not None:
        price["active"] = active
    if call.params.get("metadata") is not None:
        string_hash(call.params, "metadata")
        price["metadata"] = _merged(price["metadata"], call.params["metadata"])
    return _expanded(state, price, call.params)


def api_create_payment_link(state: FakeStripe, call: ApiCall) -> Obj:
    params = call.params
    raw = params.get("line_items")
    if raw is None or raw == "":
        raise param_missing("line_items")
    if not isinstance(raw, list) or not raw:
        raise param_invalid("line_items", "line_items must be an array "
                            "(line_items[0][price]=price_...&line_items[0][quantity]=1).",
                            code="parameter_invalid_array")
    lines = []
    for i, item in enumerate(raw):
        where = f"line_items[{i}]"
        if not isinstance(item, dict):
            raise param_invalid(where, f"{where} must be a hash with price and quantity.")
        price_id = text(item, "price", required=True, where=f"{where}[price]")
        assert price_id is not None
        price = state.get("price", price_id, param=f"{where}[price]")
        if not price["active"]:
            raise param_invalid(f"{where}[price]", f"The price {price_id} is not active.")
        quantity = integer(item, "quantity", low=1, high=999_999, required=True,
                           where=f"{where}[quantity]")
        assert quantity is not None
        lines.append((price, quantity, _adjustable(item.get("adjustable_quantity"), where)))
    intent_data = params.get("payment_intent_data") or {}
    if not isinstance(intent_data, dict):
        raise param_invalid("payment_intent_data", "payment_intent_data must be a hash.")
    link = create_payment_link(state, lines=lines, metadata=string_hash(params, "metadata"),
                               intent_metadata=string_hash(
                                   intent_data, "metadata", where="payment_intent_data[metadata]"))
    return _expanded(state, link, params)


def _adjustable(raw: Any, where: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    param = f"{where}[adjustable_quantity]"
    if not isinstance(raw, dict):
        raise param_invalid(param, f"{param} must be a hash (enabled, minimum, maximum).")
    enabled = _boolean(raw, "enabled")
    if enabled is None:
        raise param_missing(f"{param}[enabled]")
    low = integer(raw, "minimum", low=0, high=MAX_ADJUSTABLE, where=f"{param}[minimum]")
    high = integer(raw, "maximum", low=1, high=999_999, where=f"{param}[maximum]")
    if low is not None and high is not None and low > high:
        raise param_invalid(param, f"{param}[minimum] {low} is above its maximum {high}.")
    return {"enabled": enabled, "maximum": high, "minimum": low}


def api_list_payment_links(state: FakeStripe, call: ApiCall) -> Obj:
    links = _filtered(state.all("payment_link"), call.params)
    return paginate(state, links[::-1], call.params, url="/v1/payment_links")


def api_retrieve_payment_link(state: FakeStripe, call: ApiCall) -> Obj:
    return _expanded(state, state.get("payment_link", call.path_params["id"]), call.params)


def api_update_payment_link(state: FakeStripe, call: ApiCall) -> Obj:
    link = state.get("payment_link", call.path_params["id"])
    active = _boolean(call.params, "active")
    if active is not None:
        link["active"] = active
    if call.params.get("metadata") is not None:
        string_hash(call.params, "metadata")
        link["metadata"] = _merged(link["metadata"], call.params["metadata"])
    return _expanded(state, link, call.params)


def api_link_line_items(state: FakeStripe, call: ApiCall) -> Obj:
    link = state.get("payment_link", call.path_params["id"])
    return paginate(state, link_line_items(state, link)["data"], call.params,
                    url=f"/v1/payment_links/{link['id']}/line_items")


#: ``(method, path template, handler)``: the catalogue's Stripe API endpoints.
ENDPOINTS: list[tuple[str, str, Handler]] = [
    ("POST", "/v1/products", api_create_product),
    ("GET", "/v1/products", api_list_products),
    ("POST", "/v1/products/{id}", api_update_product),
    ("POST", "/v1/prices", api_create_price),
    ("GET", "/v1/prices", api_list_prices),
    ("POST", "/v1/prices/{id}", api_update_price),
    ("POST", "/v1/payment_links", api_create_payment_link),
    ("GET", "/v1/payment_links", api_list_payment_links),
    ("GET", "/v1/payment_links/{id}", api_retrieve_payment_link),
    ("POST", "/v1/payment_links/{id}", api_update_payment_link),
    ("GET", "/v1/payment_links/{id}/line_items", api_link_line_items),
]


# -- the control side ------------------------------------------------------------------------------

def _json_field(body: Mapping[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = body.get(name, default)
    if value is None or isinstance(value, bool) and kind is not bool \
            or not isinstance(value, kind):
        if value is None and default is None:
            return None
        raise param_invalid(name, f"{name} must be a JSON {kind.__name__}, not {value!r}.")
    return value


def control_catalogue(ctl: Control, call: ControlCall) -> Obj:
    """One ticket type's listing, as the shop's admin sets it up: a Product (under a
    chosen id), its Price and, with ``"payment_link": true``, a Payment Link whose
    one line item's quantity the buyer chooses."""
    body = call.body
    product = _json_field(body, "product", dict) or {}
    name = _json_field(product, "name", str) or "Chaos ticket"
    unit_amount = _json_field(body, "unit_amount", int)
    if unit_amount is None or unit_amount < 0:
        raise param_invalid("unit_amount", f"unit_amount must be cents >= 0, not {unit_amount!r}.")
    currency = _json_field(body, "currency", str, "usd")
    made_product = create_product(ctl.state, name=name,
                                  product_id=_json_field(product, "id", str),
                                  metadata={str(k): str(v) for k, v in
                                            (_json_field(product, "metadata", dict) or {}).items()})
    price = create_price(ctl.state, product_id=made_product["id"], unit_amount=unit_amount,
                         currency=currency)
    made_product["default_price"] = price["id"]
    link = None
    if _json_field(body, "payment_link", bool, False):
        metadata = {str(k): str(v) for k, v in
                    (_json_field(body, "payment_link_metadata", dict) or {}).items()}
        link = create_payment_link(ctl.state, lines=[(price, 1, {
            "enabled": True, "maximum": MAX_ADJUSTABLE, "minimum": 1})], metadata=metadata,
            intent_metadata=metadata)
    return {"product": made_product, "price": price, "payment_link": link}


def control_buy(ctl: Control, call: ControlCall) -> Obj:
    """The buyer opens the link and chooses a quantity: the open session to pay."""
    quantity = _json_field(call.body, "quantity", int)
    return buy_through_link(ctl.state, call.path_params["id"], quantity=quantity,
                            customer_email=_json_field(call.body, "customer_email", str))


#: ``(method, path template, handler)``: the catalogue's control endpoints.
CONTROL_ENDPOINTS: list[tuple[str, str, ControlHandler]] = [
    ("POST", "/_chaos/catalogue", control_catalogue),
    ("POST", "/_chaos/payment_links/{id}/checkout", control_buy),
]
