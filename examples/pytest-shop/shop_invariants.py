"""The shop's own invariant, in Python: judged after every example of a chaos search and
every scenario ``chaos_target`` runs, next to payment-chaos' built-in ones (chaos.toml
names it: ``python = "shop_invariants:acknowledged_events_are_recorded"``)."""

from __future__ import annotations

from typing import Any

from chaos import ExampleData
from chaos.signing import ACCEPTED


def acknowledged_events_are_recorded(data: ExampleData) -> list[dict[str, Any]]:
    """Every event the webhook acknowledged with 2xx (correctly signed) is in
    ``stripe_events``: that row is what keeps Stripe's redelivery of it from being
    processed twice. Returns the events that are missing (none: it holds)."""
    acknowledged = sorted({
        ref.event_id for op in data.history.ops
        if (ref := op.delivery) is not None and op.door == "target" and op.status is not None
        and 200 <= op.status < 300 and ref.event_id
        and ref.signature_variant in ACCEPTED})
    if not acknowledged:
        return []
    recorded = {row["id"] for row in data.query(
        "select id from stripe_events where id = any($1::text[])", acknowledged)}
    return [{"event_id": event, "recorded": False} for event in acknowledged
            if event not in recorded]
