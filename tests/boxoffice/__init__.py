"""Box office: a second ticketing service, independent of ``chaos/reference/``.

It exists to prove the tool fits a service it was not written for, driven
purely through a config file (``tests/boxoffice/chaos.toml``): a different
framework (aiohttp), schema (``shows``, ``tiers`` with serial ids,
``purchases``, ``admissions``, ``stripe_events``), paths, auth header and
body shape. Run it with ``python -m tests.boxoffice --help``; the service
itself is ``tests/boxoffice/app.py``.
"""
