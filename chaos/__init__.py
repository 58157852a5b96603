"""payment-chaos: a property-based chaos and idempotency tester for payment flows."""

__version__ = "0.1.0"
