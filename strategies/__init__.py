"""Hypothesis strategies for payment-flow chaos scenarios.

The public face: everything is implemented in ``strategies._internal`` and
re-exported here. Strategies are pure: they draw data, they never do I/O.
"""

from strategies._internal.model import (
    EVENT_TYPES,
    SIGNATURES,
    Buyer,
    Delivery,
    Scenario,
    Step,
    TicketType,
    busy_night,
)
from strategies._internal.scenarios import buyers, scenarios

__all__ = [
    "EVENT_TYPES",
    "SIGNATURES",
    "Buyer",
    "Delivery",
    "Scenario",
    "Step",
    "TicketType",
    "busy_night",
    "buyers",
    "scenarios",
]
