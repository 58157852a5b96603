"""A fake Stripe API on loopback: the Stripe the target's own client talks to,
and the source of every webhook event the tester delivers.

Layout: :mod:`.app` (HTTP, the call pipeline, the control API's list),
:mod:`.api` (the ``/v1`` endpoints), :mod:`.control` (the ``/_chaos``
endpoints), :mod:`.state` (objects and transitions), :mod:`.objects`
(shapes, lists, ``expand[]``), :mod:`.forms` (form decoding),
:mod:`.idempotency`, :mod:`.faults`, :mod:`.records`, :mod:`.connections`
(the TCP seam for connection faults), :mod:`.errors` (Stripe's error shape).
"""

from chaos.fake_stripe.app import FakeStripeServer, create_app
from chaos.fake_stripe.connections import Connections

__all__ = ["Connections", "FakeStripeServer", "create_app"]
