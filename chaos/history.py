"""The history: every request the tester sent and what came back.

Each operation ends in one of three outcomes, as Jepsen records them:
``ok`` (a 2xx answer), ``fail`` (a non-2xx answer, or the request certainly
never arrived), ``info`` (no answer: it may or may not have taken effect).
Checkers must never assume an ``info`` operation failed or succeeded.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    OK = "ok"
    FAIL = "fail"
    INFO = "info"


@dataclass(frozen=True)
class Op:
    index: int
    kind: str              # "deliver", "stripe.create_session", "stripe.pay", ...
    door: str              # "target" (the system under test) or "stripe" (the fake Stripe)
    method: str
    path: str
    wave: int | None       # schedule wave, None for set-up calls
    step: int | None       # index of the scenario step, None for set-up calls
    start: float           # trio.current_time() when sent
    end: float             # when the answer (or the error) came
    status: int | None
    outcome: Outcome
    body: str              # excerpt of the answer
    error: str | None = None
    ref: dict[str, Any] = field(default_factory=dict)   # abstract reference resolved

    @property
    def latency(self) -> float:
        return self.end - self.start

    def to_data(self) -> dict[str, Any]:
        return {
            "index": self.index, "kind": self.kind, "door": self.door,
            "method": self.method, "path": self.path, "wave": self.wave, "step": self.step,
            "start": round(self.start, 6), "end": round(self.end, 6),
            "status": self.status, "outcome": self.outcome.value, "body": self.body,
            "error": self.error, "ref": self.ref,
        }


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    client_peak_in_flight: int = 0

    def append(self, op: Op) -> None:
        self.ops.append(op)

    def next_index(self) -> int:
        return len(self.ops)

    def at_target(self) -> list[Op]:
        return [op for op in self.ops if op.door == "target"]

    def wave_skew(self) -> float:
        """The widest spread of start times within one wave, in seconds."""
        by_wave: dict[int, list[float]] = {}
        for op in self.ops:
            if op.wave is not None:
                by_wave.setdefault(op.wave, []).append(op.start)
        return max((max(s) - min(s) for s in by_wave.values()), default=0.0)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; 0.0 when empty."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]
