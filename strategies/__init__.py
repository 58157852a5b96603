"""Hypothesis strategies for payment-flow chaos scenarios.

The public face: everything is implemented in ``strategies._internal`` and
re-exported here. Strategies are pure: they draw data, they never do I/O
(no trio, httpx, asyncpg or stripe imports under this package).

- The scenario model: :class:`Scenario` (stories of :class:`Buyer` for an
  event of :class:`TicketType`, a schedule of waves of :class:`Delivery` and
  :class:`Checkout` steps, :class:`Fault` armed on the fake Stripe); its
  module docstring says how the executor interprets each step.
- Strategies: :func:`scenarios` and its parts :func:`ticket_types`,
  :func:`buyers`, :func:`schedules`, :func:`deliveries`, :func:`checkouts`,
  :func:`signatures`, :func:`faults`.
- Steering: :func:`targets` scores for ``hypothesis.target``.
- The playbook: :func:`playbook`, the classic failure stories as small
  scenarios, played before the search draws its own.
- Minimizing: :func:`simplifications`, one-step simpler scenarios, applied
  greedily to reach the smallest story; :func:`shape`, what a story is made
  of, which tells distinct bugs apart, and :func:`tells`, whether one story
  is told inside another.
"""

from strategies._internal.model import (
    CHECKOUT_KEYS,
    CHECKOUTS,
    DEFAULT_EVENT_TYPES,
    EVENT_TYPES,
    FAULT_KINDS,
    OUTCOMES,
    SIGNATURES,
    STEP_KINDS,
    STRIPE_ENDPOINTS,
    TAMPERING,
    Buyer,
    Checkout,
    Delivery,
    Fault,
    Scenario,
    Step,
    TicketType,
    Wave,
    busy_night,
    partial_refund,
    story_events,
)
from strategies._internal.playbook import PLAYBOOK, playbook
from strategies._internal.scenarios import (
    buyers,
    checkouts,
    deliveries,
    faults,
    scenarios,
    signatures,
    ticket_types,
)
from strategies._internal.schedules import schedules
from strategies._internal.shape import Shape, describe_shape, shape, tells
from strategies._internal.simplify import simplifications
from strategies._internal.steering import TARGETS, targets
from strategies._internal.validation import PUBLIC_STRATEGIES as _PUBLIC_STRATEGIES

__all__ = [
    "CHECKOUTS",
    "CHECKOUT_KEYS",
    "DEFAULT_EVENT_TYPES",
    "EVENT_TYPES",
    "FAULT_KINDS",
    "OUTCOMES",
    "PLAYBOOK",
    "SIGNATURES",
    "STEP_KINDS",
    "STRIPE_ENDPOINTS",
    "TAMPERING",
    "TARGETS",
    "Buyer",
    "Checkout",
    "Delivery",
    "Fault",
    "Scenario",
    "Shape",
    "Step",
    "TicketType",
    "Wave",
    "busy_night",
    "buyers",
    "checkouts",
    "deliveries",
    "describe_shape",
    "faults",
    "partial_refund",
    "playbook",
    "scenarios",
    "schedules",
    "shape",
    "signatures",
    "simplifications",
    "story_events",
    "targets",
    "tells",
    "ticket_types",
]

# As Hypothesis does: every public strategy is exported, and nothing else sneaks in.
# A raise, not an assert: pytest rewrites this package's asserts once the tool's
# pytest plugin is installed (it rewrites a plugin's whole distribution), and a
# rewritten module-level assert leaves ``@py_assert`` names in the public namespace.
if not _PUBLIC_STRATEGIES <= set(__all__):
    raise ImportError(f"strategies.__all__ lacks {sorted(_PUBLIC_STRATEGIES - set(__all__))}")
del _PUBLIC_STRATEGIES
