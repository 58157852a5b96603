"""A fake Stripe API on loopback: the Stripe the target's own client talks to,
and the source of every webhook event the tester delivers."""

from chaos.fake_stripe.app import create_app

__all__ = ["create_app"]
