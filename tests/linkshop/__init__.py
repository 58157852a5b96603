"""Link shop: a webhook-only ticket shop that sells through Stripe Payment Links.

The second service written for the tests (after ``tests/boxoffice``), in
another shape: no checkout door at all. It proves the tool drives a shop
whose buyers pay on a Payment Link, whose webhook re-fetches the session
with ``line_items.data.price.product`` expanded and finds the ticket type
by its Stripe product id, purely through ``tests/linkshop/chaos.toml``.
Run it with ``python -m tests.linkshop --help``; the service itself is
``tests/linkshop/app.py``.
"""
