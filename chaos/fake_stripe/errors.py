"""Stripe's error shape, raised anywhere in the fake Stripe and answered in one place.

    {"error": {"type": "invalid_request_error", "code": "resource_missing",
               "message": "No such checkout.session: 'cs_x'", "param": "id",
               "doc_url": "https://stripe.com/docs/error-codes/resource-missing"}}

The HTTP status and ``error.type`` are what the official clients map to their
exception classes (stripe-python: 400/404 -> ``InvalidRequestError`` or
``IdempotencyError`` by type, 401 -> ``AuthenticationError``, 429 ->
``RateLimitError``, anything else -> ``APIError``).

``validation`` separates the two kinds Stripe's idempotency layer treats
differently: a request whose parameters fail validation never began to
execute, so no result is saved under its ``Idempotency-Key``; an error raised
while executing (refund of a refunded charge, say) is saved and replayed.
"""

from __future__ import annotations

from typing import Any

INVALID_REQUEST = "invalid_request_error"
API_ERROR = "api_error"
IDEMPOTENCY_ERROR = "idempotency_error"


class StripeError(Exception):
    """An answer in Stripe's error shape with its HTTP status."""

    def __init__(self, status: int, message: str, *, type_: str = INVALID_REQUEST,
                 code: str | None = None, param: str | None = None,
                 validation: bool = False, extra: dict[str, Any] | None = None,
                 events: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.validation = validation
        #: More fields of the error (a card decline's ``decline_code``, ``payment_intent``).
        self.extra = dict(extra or {})
        #: Events the failed call still caused (a declined card's ``charge.failed``).
        self.events = list(events or [])

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def missing(kind: str, object_id: str, *, param: str = "id") -> StripeError:
    """No object of ``kind`` has ``object_id`` (404 on retrieve, 400 when it is a parameter)."""
    status = 404 if param == "id" else 400
    return StripeError(status, f"No such {kind}: '{object_id}'", code="resource_missing",
                       param=param)


def param_missing(param: str) -> StripeError:
    return StripeError(400, f"Missing required param: {param}.", code="parameter_missing",
                       param=param, validation=True)


def param_invalid(param: str, message: str, *, code: str = "parameter_invalid") -> StripeError:
    return StripeError(400, message, code=code, param=param, validation=True)


def unrecognized_url(method: str, path: str) -> StripeError:
    """What Stripe answers for an unknown path, and for a known path with the wrong method."""
    hint = ""
    if path.endswith("/") and path != "/":
        hint = (" If you are trying to list objects, remove the trailing slash. If you are "
                "trying to retrieve an object, make sure you passed a valid (non-empty) "
                "identifier in your code.")
    return StripeError(404, f"Unrecognized request URL ({method}: {path}).{hint} "
                       "This is the fake Stripe API of payment-chaos.", validation=True)
