"""Tolerant readers of the JSON report, shared by the renderers.

The report grows (per-invariant evidence, thresholds, new concurrency
figures); renderers must show what they know, list what they do not, and
never fail on a field that is missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """One named check (invariant or threshold) with its verdict and any details."""

    name: str
    verdict: str                    # "pass", "fail", or whatever the report says ("unknown", ...)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def failed(self) -> bool:
        return self.verdict == "fail"

    def scalars(self) -> str:
        """The scalar details as ``key value, ...`` (nested evidence is left to the caller);
        a key ending in ``_ms`` reads as ``key 12.5 ms``."""
        parts = []
        for key, value in self.details.items():
            if not (isinstance(value, str | int | float | bool) or value is None):
                continue
            if self.name.endswith("rate") and key in ("value", "limit") \
                    and isinstance(value, int | float) and not isinstance(value, bool):
                parts.append(f"{key} {value * 100:.2f}%")   # a rate reads as a percentage
                continue
            unit = " ms" if key.endswith("_ms") else ""
            parts.append(f"{key.removesuffix('_ms').replace('_', ' ')} {_scalar(value)}{unit}")
        return ", ".join(parts)


def verdicts(section: Any) -> list[Verdict]:
    """Read ``invariants`` or ``thresholds``: ``{name: "pass"}``, ``{name: {"verdict": ...}}``
    or ``[{"name": ..., "verdict": ...}]``; anything else is skipped."""
    items: list[tuple[str, Any]]
    if isinstance(section, Mapping):
        items = [(str(k), v) for k, v in section.items()]
    elif isinstance(section, Sequence) and not isinstance(section, str):
        items = [(str(v.get("name", "?")), v) for v in section if isinstance(v, Mapping)]
    else:
        return []
    found = []
    for name, value in items:
        if isinstance(value, Mapping):
            details = {k: v for k, v in value.items() if k not in ("name", "verdict", "status")}
            verdict = value.get("verdict", value.get("status", "unknown"))
        else:
            details, verdict = {}, value
        found.append(Verdict(name, str(verdict).lower(), details))
    return found


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def cell(value: Any) -> str:
    """A table cell: scalars as they read, anything else as compact JSON."""
    if isinstance(value, str | int | float | bool) or value is None:
        return _scalar(value)
    return json.dumps(value, default=str, separators=(",", ":"))


def row_table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Column names (in order of first appearance) and cells of ``rows``."""
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(str(key))
    return columns, [[cell(row.get(c)) for c in columns] for row in rows]


def target_line(data: Mapping[str, Any]) -> str:
    """``reference with bugs: no-dedup`` or the target's kind, name or URL."""
    target = data.get("target") or {}
    if not isinstance(target, Mapping):
        return str(target)
    what = str(target.get("name") or target.get("kind") or target.get("base_url") or "target")
    bugs = target.get("bugs") or []
    return what + (f" with bugs: {', '.join(map(str, bugs))}" if bugs else "")


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
