"""pretix's own settings, with its Stripe client pointed at the tool's fake Stripe.

pretix's Stripe plugin calls the module-level ``stripe`` client (stripe-python
7.x, which pretix pins) with the event's secret key; nothing in pretix sets
``stripe.api_base``, so setting it here, once, when Django loads its settings,
sends every Stripe call of the shop to ``PRETIX_CHAOS_STRIPE_API_BASE`` without
touching pretix's code. Used as ``DJANGO_SETTINGS_MODULE`` by
``examples/pretix/shop.py``; pretix reads the rest from ``PRETIX_CONFIG_FILE``.
"""

import os
from urllib.parse import urlsplit

import stripe
from pretix.settings import *  # noqa: F403 (pretix's settings, unchanged)

_API_BASE = os.environ.get("PRETIX_CHAOS_STRIPE_API_BASE", "")
if urlsplit(_API_BASE).hostname not in ("127.0.0.1", "localhost", "::1"):
    raise SystemExit("PRETIX_CHAOS_STRIPE_API_BASE must be the fake Stripe on loopback "
                     f"(http://127.0.0.1:PORT), not {_API_BASE!r}: set it")
stripe.api_base = _API_BASE

#: The shop mails every buyer on payment; here nobody reads them.
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
