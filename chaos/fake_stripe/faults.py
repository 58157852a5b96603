"""Faults armed per endpoint and per call: which call misbehaves, and how.

A rule, as the tester arms it (``POST /_chaos/faults``, JSON)::

    {"method": "POST", "path": "/v1/checkout/sessions",     # which endpoint
     "kind": "error", "status": 503,                          # what happens
     "nth": 2}                                                # which call

``path`` is a glob over the request path: ``*`` matches within one segment,
``**`` across segments (``/v1/checkout/sessions/*`` is retrieve, not expire;
``/v1/**`` is every API call). It must start with ``/v1/``: the control API
is never faulted, so a fault can always be cleared. ``method`` is a method
or ``*`` (the default).

Which matching calls (at most one of these; none means every matching call):

- ``nth``: only the n-th matching call after arming (1 is the next one);
- ``times``: the next k matching calls;
- ``probability`` with ``seed``: each matching call with probability p,
  drawn from ``random.Random(seed)`` owned by the rule: the same calls in the
  same order get the same faults. There is no unseeded randomness.

Kinds (what the server does; :mod:`chaos.fake_stripe.app` carries them out):

========== ==================================================== =================
kind       behaviour                                            endpoint ran?
========== ==================================================== =================
error      answer ``status`` (500..599) with an ``api_error``;    no, or yes with
           with ``saved: true`` the error is what the endpoint   ``saved``: the
           returned, so same-key retries replay it (Stripe does  error is saved
           replay 500s)                                          under the key
rate-limit answer 429 ``rate_limit`` with ``Retry-After``        no
           (``retry_after`` seconds, default 1)
latency    wait ``seconds``, then run normally (the key stays    yes
           in use meanwhile: a same-key retry gets 409)
hang       hold the request until the client gives up, at most   no
           ``max_seconds`` (default 30), then drop the
           connection; the key is in use while it hangs
reset      reset the TCP connection (RST) before doing anything  no
lost-answer run the endpoint, save the answer under the key,      yes
           then close the connection without sending a byte
========== ==================================================== =================

When several rules match a call, each counts it (and draws, if seeded), and
the first armed rule that selects it applies: one fault per call.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KINDS = ("error", "rate-limit", "latency", "hang", "reset", "lost-answer")
#: Longest wait a latency or hang fault may ask for, in seconds.
MAX_WAIT = 300.0

_COMMON = {"method", "path", "kind", "nth", "times", "probability", "seed"}
_KIND_FIELDS: dict[str, set[str]] = {
    "error": {"status", "saved"}, "rate-limit": {"retry_after"}, "latency": {"seconds"},
    "hang": {"max_seconds"}, "reset": set(), "lost-answer": set(),
}


class FaultSpecError(ValueError):
    """A rule the tester sent that cannot be armed; the message says how to fix it."""


@dataclass
class FaultRule:
    id: str
    method: str
    path: str
    kind: str
    status: int = 500
    saved: bool = False
    retry_after: int = 1
    seconds: float = 0.0
    max_seconds: float = 30.0
    nth: int | None = None
    times: int | None = None
    probability: float | None = None
    seed: int | None = None
    seen: int = 0
    applied: int = 0
    _regex: re.Pattern[str] = field(init=False, repr=False)
    _random: random.Random | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self._regex = glob_regex(self.path)
        if self.probability is not None:
            self._random = random.Random(self.seed)

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and self._regex.fullmatch(path) is not None

    def selects(self) -> bool:
        """Count one matching call; does this rule pick it?"""
        self.seen += 1
        if self._random is not None:
            assert self.probability is not None
            return self._random.random() < self.probability
        if self.nth is not None:
            return self.seen == self.nth
        if self.times is not None:
            return self.applied < self.times
        return True

    @property
    def spent(self) -> bool:
        """Will this rule never apply again?"""
        return ((self.nth is not None and self.seen >= self.nth)
                or (self.times is not None and self.applied >= self.times))

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "method": self.method, "path": self.path,
                                "kind": self.kind, "seen": self.seen, "applied": self.applied,
                                "spent": self.spent}
        for name in sorted(_KIND_FIELDS[self.kind] | {"nth", "times", "probability", "seed"}):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data


def glob_regex(pattern: str) -> re.Pattern[str]:
    """``*`` within a path segment, ``**`` across segments; everything else literal."""
    parts = re.split(r"(\*\*|\*)", pattern)
    return re.compile("".join(".*" if p == "**" else "[^/]*" if p == "*" else re.escape(p)
                              for p in parts))


class FaultPlan:
    """The armed rules, in arming order."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def arm(self, spec: Mapping[str, Any]) -> FaultRule:
        rule = parse_rule(spec, rule_id=f"flt_{next(self._ids)}")
        self.rules.append(rule)
        return rule

    def clear(self, rule_id: str | None = None) -> int:
        """Disarm one rule (by id) or all; how many were disarmed."""
        before = len(self.rules)
        self.rules = [r for r in self.rules if rule_id is not None and r.id != rule_id]
        return before - len(self.rules)

    def pick(self, method: str, path: str) -> FaultRule | None:
        """The fault for this call, if any; every matching rule counts the call."""
        chosen = None
        for rule in self.rules:
            if rule.matches(method, path) and rule.selects() and chosen is None:
                chosen = rule
        if chosen is not None:
            chosen.applied += 1
        return chosen


def parse_rule(spec: Mapping[str, Any], *, rule_id: str) -> FaultRule:
    """A :class:`FaultRule` from the tester's JSON; :class:`FaultSpecError` naming the fix."""
    if not isinstance(spec, Mapping):
        raise FaultSpecError("a fault is a JSON object such as "
                             '{"path": "/v1/checkout/sessions", "kind": "error"}')
    kind = spec.get("kind")
    if kind not in KINDS:
        raise FaultSpecError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    unknown = set(spec) - _COMMON - _KIND_FIELDS[kind]
    if unknown:
        allowed = ", ".join(sorted(_COMMON | _KIND_FIELDS[kind]))
        raise FaultSpecError(f"unknown field(s) {', '.join(sorted(unknown))} for kind {kind}: "
                             f"use {allowed}")
    path = spec.get("path")
    if not isinstance(path, str) or not path.startswith("/v1/"):
        raise FaultSpecError(f"path {path!r} must be a glob starting with /v1/ (the control API "
                             "/_chaos/... is never faulted)")
    method = spec.get("method", "*")
    if not isinstance(method, str) or not (method == "*" or method.isalpha()):
        raise FaultSpecError(f"method {method!r} must be an HTTP method such as POST, or *")
    selectors = [name for name in ("nth", "times", "probability") if spec.get(name) is not None]
    if len(selectors) > 1:
        raise FaultSpecError(f"give at most one of nth, times, probability (got "
                             f"{', '.join(selectors)})")
    kwargs: dict[str, Any] = {"nth": _int(spec, "nth", 1), "times": _int(spec, "times", 1)}
    if spec.get("probability") is not None:
        p = spec["probability"]
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p <= 1:
            raise FaultSpecError(f"probability {p!r} must be a number in (0, 1]")
        seed = spec.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise FaultSpecError("probability needs an integer seed: faults are never drawn "
                                 "from unseeded randomness")
        kwargs.update(probability=float(p), seed=seed)
    elif spec.get("seed") is not None:
        raise FaultSpecError("seed only goes with probability")
    if kind == "error":
        status = _int(spec, "status", 500, 599)
        saved = spec.get("saved", False)
        if not isinstance(saved, bool):
            raise FaultSpecError(f"saved {saved!r} must be true or false")
        kwargs.update(status=500 if status is None else status, saved=saved)
    elif kind == "rate-limit":
        retry_after = _int(spec, "retry_after", 0, 3600)
        kwargs["retry_after"] = 1 if retry_after is None else retry_after
    elif kind == "latency":
        kwargs["seconds"] = _seconds(spec, "seconds", required=True)
    elif kind == "hang":
        kwargs["max_seconds"] = _seconds(spec, "max_seconds", default=30.0)
    return FaultRule(id=rule_id, method=method.upper(), path=path, kind=kind, **kwargs)


def _int(spec: Mapping[str, Any], name: str, low: int, high: int | None = None) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultSpecError(f"{name} {value!r} must be a whole number")
    if value < low or (high is not None and value > high):
        upper = "" if high is None else str(high)
        raise FaultSpecError(f"{name} {value} must be in {low}..{upper}")
    return value


def _seconds(spec: Mapping[str, Any], name: str, *, required: bool = False,
             default: float = 0.0) -> float:
    value = spec.get(name)
    if value is None:
        if required:
            raise FaultSpecError(f"kind {spec.get('kind')} needs {name} (a number of seconds)")
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_WAIT:
        raise FaultSpecError(f"{name} {value!r} must be a number of seconds in 0..{MAX_WAIT:g}")
    return float(value)
