"""``Idempotency-Key`` as Stripe documents it for API v1 (docs.stripe.com/api/idempotent_requests).

- Stripe saves the status code and body of the first request made with a key
  once the endpoint began to execute; a retry with the same key and the same
  parameters gets that saved response back, errors (500s included) too, with
  ``Idempotent-Replayed: true``.
- The same key with other parameters, or on another endpoint, is an
  ``idempotency_error`` (HTTP 400; stripe-python raises ``IdempotencyError``).
- A request that arrives while the first one with its key is still executing
  is a conflict: HTTP 409, code ``idempotency_key_in_use``. Nothing is saved
  for it, so it may be retried.
- A request that fails validation, or that a fault rejected before it
  reached the endpoint (429, a reset), never began to execute: nothing is
  saved and the key stays free.
- Keys are scoped to the API key that sent them, are ignored on GET, and are
  kept for 24 hours (and at most :data:`MAX_KEYS` of them, oldest dropped
  first).

Pure bookkeeping: the caller reserves a key, runs the endpoint, and saves or
releases. Nothing awaits in here, so under one event loop a check and a
reservation are one step.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.fake_stripe.errors import IDEMPOTENCY_ERROR, StripeError

#: How long Stripe keeps a key, in seconds.
KEY_TTL = 24 * 3600
#: Keys kept at most; the oldest are forgotten first.
MAX_KEYS = 200_000
#: Longest key Stripe accepts.
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Saved:
    """The first response given under a key."""

    status: int
    body: bytes
    request_id: str


@dataclass
class _Entry:
    fingerprint: str
    endpoint: str
    created: float
    saved: Saved | None = None  # None while the first request is executing


@dataclass(frozen=True)
class Reserved:
    """The key is new: run the endpoint, then :meth:`Keys.save` or :meth:`Keys.release`."""

    scope: str
    key: str


@dataclass(frozen=True)
class Replay:
    saved: Saved


Decision = Reserved | Replay


def fingerprint(method: str, path: str, params: Mapping[str, Any]) -> str:
    """What two requests must share to count as the same request."""
    return json.dumps([method, path, params], sort_keys=True, separators=(",", ":"))


@dataclass
class Keys:
    """Idempotency keys per API key: reserved while executing, then saved."""

    now: Callable[[], float] = time.monotonic
    ttl: float = KEY_TTL
    max_keys: int = MAX_KEYS
    _entries: OrderedDict[tuple[str, str], _Entry] = field(default_factory=OrderedDict)

    def begin(self, scope: str, key: str, *, endpoint: str, fingerprint: str) -> Decision:
        """Reserve ``key`` for a request, or tell how the earlier one with it answers.

        Raises the Stripe errors for a key reused with other parameters or
        still in use; neither is saved.
        """
        if len(key) > MAX_KEY_LENGTH:
            raise StripeError(400, f"Idempotency-Key is {len(key)} characters long; at most "
                              f"{MAX_KEY_LENGTH} are allowed.", param="Idempotency-Key",
                              validation=True)
        self._prune()
        entry = self._entries.get((scope, key))
        if entry is None:
            self._entries[(scope, key)] = _Entry(fingerprint=fingerprint, endpoint=endpoint,
                                                 created=self.now())
            return Reserved(scope, key)
        if entry.fingerprint != fingerprint:
            where = (f"the same endpoint they were first used for ({entry.endpoint!r} vs "
                     f"{endpoint!r})" if entry.endpoint != endpoint
                     else "the same parameters they were first used with")
            raise StripeError(400, f"Keys for idempotent requests can only be used with {where}. "
                              f"Try using a key other than '{key}' if you meant to execute a "
                              "different request.", type_=IDEMPOTENCY_ERROR, validation=True)
        if entry.saved is None:
            raise StripeError(409, f"There is currently another in-progress request using this "
                              f"Idempotency-Key ('{key}'); try again later.",
                              code="idempotency_key_in_use", validation=True)
        return Replay(entry.saved)

    def save(self, reserved: Reserved, saved: Saved) -> None:
        entry = self._entries.get((reserved.scope, reserved.key))
        if entry is not None:
            entry.saved = saved

    def release(self, reserved: Reserved) -> None:
        """The request never executed: forget the key so a retry runs afresh."""
        entry = self._entries.get((reserved.scope, reserved.key))
        if entry is not None and entry.saved is None:
            del self._entries[(reserved.scope, reserved.key)]

    def __len__(self) -> int:
        return len(self._entries)

    def _prune(self) -> None:
        horizon = self.now() - self.ttl
        while self._entries:
            entry = next(iter(self._entries.values()))
            if entry.created >= horizon and len(self._entries) < self.max_keys:
                break
            self._entries.popitem(last=False)
