"""The history: every request the tester sent and what came back.

Each operation ends in one of three outcomes, as Jepsen records them:

- ``ok``: a 2xx answer;
- ``fail``: a non-2xx answer, or the request certainly never arrived (the
  connection was refused: ``sent`` is false);
- ``info``: no answer: it may or may not have taken effect.

Checkers must never assume an ``info`` operation failed or succeeded. They
should not assume a non-2xx answer changed nothing either: a service can
commit and then answer 500. Only a request that was never sent is certain
to have had no effect (:func:`may_have_taken_effect`).

Times are ``trio.current_time()`` (monotonic seconds). ``start`` is when the
request's bytes were handed to the kernel (or, when it was never sent, when
the attempt began); ``end`` is when the answer was complete or the attempt
gave up.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Self


class Outcome(StrEnum):
    """What the client knows about an operation: it happened, it did not, or unknown."""

    OK = "ok"
    FAIL = "fail"
    INFO = "info"


@dataclass(frozen=True)
class Ref:
    """The abstract reference a request was built from, with the real ids it resolved to.

    One frozen class per kind of request: :class:`CheckoutRef` for a buyer's checkout
    attempt at the target, :class:`DeliveryRef` for a webhook delivery, and this base
    class for the calls the tool makes at the fake Stripe itself (paying, refunding,
    disputing). The plan writes them (:mod:`chaos.plan`, the load mode's runner),
    the checkers read them after narrowing with ``isinstance``, so ``mypy --strict``
    refuses a misspelt field, or one read on a request that has no such thing, instead
    of an invariant silently reading nothing. The history's JSON carries the fields
    that are not None (:meth:`to_data`), as it did when this was one dict.
    """

    buyer: int | None = None            # the scenario's buyer the request belongs to
    # how it was fired
    under_fault: bool | None = None     # a Stripe fault was armed when it went out
    race: bool | None = None            # the load mode fired it as part of a race

    def to_data(self) -> dict[str, Any]:
        """The fields that apply, as the history's JSON carries them."""
        return {f.name: value for f in fields(self)
                if (value := getattr(self, f.name)) is not None}

    @property
    def signature_variant(self) -> str:
        """The signature variant; a request that is not a delivery counts as ``valid``."""
        return "valid"

    def evolved(self, **changes: Any) -> Self:
        """A copy with ``changes``, as ``dataclasses.replace`` makes it, at a quarter of its
        cost (every field is a plain value, nothing runs in ``__init__``): the load mode
        makes one or two per request. A name that is not a field raises TypeError."""
        unknown = changes.keys() - self.__dataclass_fields__.keys()
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(sorted(unknown))}")
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__, **changes)
        return new


@dataclass(frozen=True)
class CheckoutRef(Ref):
    """A buyer's checkout attempt at the target."""

    attempt: int = 0                    # 0 for the buyer's first attempt, then 1, 2, ...
    attempt_id: int | None = None       # the attempt's index among the example's attempts
    idempotency_key: str | None = None  # the key the attempt carried
    tampered: bool = False              # it sent a price or total that is not the database's
    expect: str | None = None           # "4xx": meant to be refused; "any": may be refused


@dataclass(frozen=True)
class DeliveryRef(Ref):
    """A webhook delivery; the event's real ids are filled in when it is built."""

    event: str = ""                     # the event type
    event_id: str | None = None
    copy: int = 0                       # 0 for an event's first delivery, then 1, 2, ...
    signature: str | None = None        # the signature variant (chaos.signing)
    session: str | None = None          # the buyer's Checkout Session, when it has one
    payment_intent: str | None = None
    payment_status: str | None = None   # of a checkout.session.* event's payload

    @property
    def signature_variant(self) -> str:
        return self.signature or "valid"


@dataclass(frozen=True)
class Op:
    """One request and its answer, as the client saw it.

    ``ref`` carries the abstract reference the request was built from, with
    the real ids it resolved to (:class:`Ref`).
    """

    index: int
    kind: str              # "deliver", "checkout", "stripe.create_session", "stripe.pay", ...
    door: str              # "target" (the system under test) or "stripe" (the fake Stripe)
    method: str
    path: str
    wave: int | None       # schedule wave, None for set-up calls
    step: int | None       # index of the scenario step, None for set-up calls
    start: float           # when sent (see module docstring)
    end: float             # when the answer (or the error) came
    status: int | None
    outcome: Outcome
    body: str              # excerpt of the answer
    error: str | None = None
    ref: Ref = field(default_factory=lambda: Ref())   # abstract reference resolved
    offset: float = 0.0    # seconds after the wave's barrier the step asked to be fired
    sent: bool = True      # False: the request certainly never reached the target

    @property
    def latency(self) -> float:
        return self.end - self.start

    @property
    def delivery(self) -> DeliveryRef | None:
        """The reference of a webhook delivery; None for any other request."""
        return self.ref if isinstance(self.ref, DeliveryRef) else None

    @property
    def checkout(self) -> CheckoutRef | None:
        """The reference of a checkout attempt; None for any other request."""
        return self.ref if isinstance(self.ref, CheckoutRef) else None

    def to_data(self) -> dict[str, Any]:
        return {
            "index": self.index, "kind": self.kind, "door": self.door,
            "method": self.method, "path": self.path, "wave": self.wave, "step": self.step,
            "start": round(self.start, 6), "end": round(self.end, 6),
            "offset": self.offset, "sent": self.sent,
            "status": self.status, "outcome": self.outcome.value, "body": self.body,
            "error": self.error, "ref": self.ref.to_data(),
        }


def may_have_taken_effect(op: Op) -> bool:
    """Could this request have changed the target's state? Yes unless it was
    never sent: an answer of any status, or no answer at all, leaves it open."""
    return op.sent


@dataclass(frozen=True)
class WaveRecord:
    """How one wave went out: its barrier, how tight the start was, what was in flight.

    ``skew`` is the spread of send times among the requests that were
    connected before the barrier and asked for no offset: the figure that
    says whether "together" really was together.
    """

    wave: int | None        # schedule wave, None for a set-up phase
    barrier: float          # when the barrier opened
    requests: int
    preconnected: int       # connections opened before the barrier
    skew: float             # seconds
    client_peak_in_flight: int


@dataclass
class History:
    """Every operation of one example, in the order the answers came, and its waves."""

    ops: list[Op] = field(default_factory=list)
    waves: list[WaveRecord] = field(default_factory=list)
    client_peak_in_flight: int = 0
    #: The target's own count of requests in flight at its peak, where it exposes one.
    target_peak_in_flight: int | None = None

    def append(self, op: Op) -> None:
        self.ops.append(op)

    def next_index(self) -> int:
        return len(self.ops)

    def at_target(self) -> list[Op]:
        return [op for op in self.ops if op.door == "target"]

    def schedule_waves(self) -> list[WaveRecord]:
        return [w for w in self.waves if w.wave is not None]

    def wave_skew(self) -> float:
        """The widest start skew of any schedule wave, in seconds."""
        return max((w.skew for w in self.schedule_waves()), default=0.0)

    def largest_wave(self) -> int:
        return max((w.requests for w in self.schedule_waves()), default=0)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; 0.0 when empty."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]
