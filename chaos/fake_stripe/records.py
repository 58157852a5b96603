"""A record of every call the target made to the Stripe API (``/v1/...``).

What invariants and reports read about the target's side of the payment: how
many Checkout Sessions it created per order (by ``metadata``), whether it
retried with the same ``Idempotency-Key``, which calls a fault took and
whether the endpoint still ran. Read with ``GET /_chaos/records?since=N``.

Secrets never get in: the API key is kept as ``sk_test_...`` plus its last
four characters, and parameters pass :class:`chaos.log.Redactor` (values of
secret-named keys, and the API key wherever it appears, are replaced).

``outcome``: ``ok`` (2xx from the endpoint), ``error`` (a Stripe error,
validation and idempotency errors included), ``replayed`` (the saved answer
of an earlier call with the same key), ``fault`` (see ``fault`` for the
kind; ``executed`` tells whether the endpoint ran all the same). ``status``
is what the client received, or null when it received nothing.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from chaos.log import Redactor

#: Records kept at most; the oldest are dropped first (``dropped`` counts them).
MAX_RECORDS = 200_000


@dataclass
class CallRecord:
    seq: int
    request_id: str
    started: float
    method: str
    path: str
    endpoint: str
    api_key: str | None
    idempotency_key: str | None
    params: dict[str, Any]
    ended: float | None = None
    status: int | None = None
    outcome: str = "pending"
    fault: str | None = None
    fault_id: str | None = None
    executed: bool = False
    replayed: bool = False
    object_id: str | None = None
    error_type: str | None = None
    error_code: str | None = None

    def to_data(self) -> dict[str, Any]:
        return asdict(self)


def mask_key(api_key: str) -> str:
    """``sk_test_...abcd``: enough to tell keys apart, never the key."""
    prefix = api_key[:8] if api_key.startswith(("sk_test_", "rk_test_")) else ""
    return f"{prefix}...{api_key[-4:]}" if len(api_key) > 12 else "..."


class Records:
    """Every call, in arrival order, numbered from 1."""

    def __init__(self, max_records: int = MAX_RECORDS) -> None:
        self._records: deque[CallRecord] = deque(maxlen=max_records)
        self._seq = itertools.count(1)
        self.dropped = 0

    def start(self, *, request_id: str, started: float, method: str, path: str, endpoint: str,
              api_key: str | None, idempotency_key: str | None,
              params: dict[str, Any]) -> CallRecord:
        redactor = Redactor([api_key] if api_key else [])
        record = CallRecord(seq=next(self._seq), request_id=request_id, started=started,
                            method=method, path=path, endpoint=endpoint,
                            api_key=mask_key(api_key) if api_key else None,
                            idempotency_key=idempotency_key, params=redactor.value(params))
        if len(self._records) == self._records.maxlen:
            self.dropped += 1
        self._records.append(record)
        return record

    def since(self, seq: int = 0) -> Iterator[CallRecord]:
        """Records numbered above ``seq``, skipping older ones without scanning them."""
        if not self._records:
            return iter(())
        skip = max(0, seq - self._records[0].seq + 1)
        return itertools.islice(self._records, skip, None)

    @property
    def last_seq(self) -> int:
        return self._records[-1].seq if self._records else 0
