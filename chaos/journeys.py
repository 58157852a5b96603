"""Journeys: how a buyer's payment begins (``[target.checkout] journey``).

- ``endpoint`` (the default): the buyer asks the target's own checkout door,
  which creates the Checkout Session (the seed's shape).
- ``stripe-session``: the shop's checkout lives in the browser; the tool
  creates the Checkout Session itself at the fake Stripe from
  ``target.checkout.session`` (a template: line items with the ticket type's
  Price, metadata, ``customer_email``).
- ``payment-link``: the buyer pays on the ticket type's Payment Link; there
  is no checkout door at all, and the webhook is the target's only door.

On the Stripe journeys the tool lists every ticket type at the fake Stripe
before the example's fixture runs, as the shop's admin would have: a Product
under an id the tool chooses (:func:`chaos.plan.product_id`), its Price
and, on ``payment-link``, a Payment Link whose quantity the buyer chooses.
The ids go to ``fixtures.ticket_type`` ($6 product, $7 price, $8 link id,
$9 link URL) and ``fixtures.buyer``, and are template names
(``{{product_id}}``, ``{{price_id}}``, ``{{payment_link_id}}``,
``{{payment_link_url}}``). The buyer's side of the journey is in
:func:`chaos.plan.plan`. A buyer whose ``fixtures.buyer`` row says
``turned_away`` (the shop's own checkout refused before Stripe, sold out)
opens no session.
"""

from __future__ import annotations

from typing import Any

import httpx

from chaos.errors import InfrastructureError
from chaos.plan import Listing, product_id, ticket_type_id
from chaos.target import DEFAULT_LINK_METADATA, Target, render_body
from strategies import Scenario


def list_catalogue(target: Target, stripe_url: str, scenario: Scenario, event_id: str,
                   event: Any, *, timeout: float) -> list[Listing]:
    """Each ticket type of ``scenario`` listed at the fake Stripe (none on the
    ``endpoint`` journey); ``event`` is the event's id as the fixture returned it."""
    if target.journey == "endpoint":
        return []
    link = target.journey == "payment-link"
    template = DEFAULT_LINK_METADATA if target.link_metadata_template is None \
        else target.link_metadata_template
    listings = []
    with httpx.Client(timeout=timeout, trust_env=False) as http:
        for i, tt in enumerate(scenario.ticket_types):
            chosen = product_id(event_id, i)
            body: dict[str, Any] = {
                "product": {"id": chosen, "name": f"{event_id} ticket type {i + 1}",
                            "metadata": {"ticket_type": ticket_type_id(event_id, i)}},
                "unit_amount": tt.price, "payment_link": link}
            if link:
                body["payment_link_metadata"] = {
                    str(k): str(v) for k, v in
                    render_body(template, {"event_id": event, "product_id": chosen}).items()}
            try:
                answer = http.post(stripe_url + "/_chaos/catalogue", json=body)
                answer.raise_for_status()
                made = answer.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise InfrastructureError(
                    f"the fake Stripe API did not list ticket type {i + 1} of the "
                    f"{target.journey} journey ({exc}): see its log") from None
            plink = made.get("payment_link") or {}
            listings.append(Listing(product_id=made["product"]["id"],
                                    price_id=made["price"]["id"],
                                    payment_link_id=plink.get("id"),
                                    payment_link_url=plink.get("url")))
    return listings
