"""What the fake Stripe tests share: one server per test module, the real
stripe-python client pointed at it, and the tester's control API.

Import the fixtures into a test module (``from tests.fake_stripe_helpers
import fake, stripe_server``). Each test starts with no faults armed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import stripe

from chaos.services import Service, running

KEY = "sk_test_chaos_fake_stripe_tests_0001"


def stripe_client(url: str, *, timeout: float = 30.0, key: str = KEY) -> stripe.StripeClient:
    """stripe-python as a target configures it, minus its own retries (tests see every call)."""
    return stripe.StripeClient(key, base_addresses={"api": url}, max_network_retries=0,
                               http_client=stripe.RequestsClient(timeout=timeout))


def session_params(*, quantity: int = 2, unit_amount: int = 2500, name: str = "GA",
                   **extra: Any) -> dict[str, Any]:
    """Checkout Session parameters as a ticketing backend sends them."""
    return {"mode": "payment", "success_url": "http://127.0.0.1/ok",
            "line_items": [{"quantity": quantity, "price_data": {
                "currency": "usd", "unit_amount": unit_amount, "product_data": {"name": name}}}],
            **extra}


class ControlAPI:
    """The tester's side: ``/_chaos/...`` over plain HTTP."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30.0, trust_env=False)

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post(path, json=body or {})
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def arm(self, **rule: Any) -> dict[str, Any]:
        return self.post("/_chaos/faults", rule)

    def records(self, since: int = 0) -> list[dict[str, Any]]:
        return self.get("/_chaos/records", since=since)["data"]

    def last_seq(self) -> int:
        return self.get("/_chaos/records", since=10**12)["last_seq"]

    def objects(self, kind: str, **metadata: str) -> list[dict[str, Any]]:
        params = {f"metadata[{k}]": v for k, v in metadata.items()}
        return self.get(f"/_chaos/objects/{kind}", **params)["data"]

    def checkout(self, amount_total: int = 5000, **body: Any) -> dict[str, Any]:
        return self.post("/_chaos/checkout/sessions", {"amount_total": amount_total, **body})

    def pay(self, session_id: str, outcome: str = "paid") -> dict[str, Any]:
        return self.post(f"/_chaos/checkout/sessions/{session_id}/pay", {"outcome": outcome})


@dataclass
class Fake:
    url: str
    service: Service
    control: ControlAPI

    def client(self, **kwargs: Any) -> stripe.StripeClient:
        return stripe_client(self.url, **kwargs)

    def log(self) -> str:
        return self.service.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def stripe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running("fake-stripe", [], workdir=tmp_path_factory.mktemp("fake-stripe")) as service:
        yield service


@pytest.fixture
def fake(stripe_server: Service) -> Iterator[Fake]:
    control = ControlAPI(stripe_server.url)
    control.http.delete("/_chaos/faults")
    try:
        yield Fake(url=stripe_server.url, service=stripe_server, control=control)
    finally:
        control.http.delete("/_chaos/faults")
        control.http.close()
