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


# -- figures that explain themselves (the summary and the HTML page say the same) ----------

#: What each part of a run is, in the words the figures use, in the order it runs.
PHASES = {"load": "load wave", "replay": "saved failures replayed", "playbook": "playbook",
          "search": "search", "minimize": "minimizing", "confirm": "confirming"}


def example_figures(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``examples``: how many, in how long, and where they came from: the load wave, the
    playbook, Hypothesis' search (its draws, with retries of races and its shrinking),
    the step-by-step minimizing and the confirmation runs."""
    stopped = f" (stopped early: {data['stopped']})" if data.get("stopped") else ""
    figures = [("examples", f"{data.get('examples', 0)} in "
                            f"{float(data.get('seconds') or 0):.1f} s{stopped}")]
    phases = data.get("examples_by_phase")
    if isinstance(phases, Mapping) and phases:
        order = [*PHASES, *(k for k in phases if k not in PHASES)]   # in the run's order
        parts = [f"{phases[k]} {PHASES.get(str(k), str(k))}" for k in order
                 if isinstance(phases.get(k), int) and phases[k]]
        figures.append(("of which", " + ".join(parts)))
        drawn = data.get("max_examples")
        if isinstance(drawn, int) and phases.get("search"):
            figures.append(("search", f"drew at most {drawn} scenarios (--examples or the "
                                      "profile); its other runs retry races and shrink failures"))
    return figures


def http_figures(http: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``requests``, errors and latency over every request the run sent to the target
    (set-up calls at the fake Stripe not counted), saying what an error is and which
    requests the thresholds leave out."""
    if not http:
        return []
    requests, failed = http.get("requests", 0), http.get("failed", 0)
    rate = http.get("error_rate")
    rate_text = f", {rate * 100:.2f}%" if isinstance(rate, int | float) else ""
    figures = [("requests", f"{requests} to the target ({failed} failed{rate_text}: no answer, "
                            "5xx, or a 4xx it had no reason to get)")]
    under = http.get("under_fault")
    if isinstance(under, int):
        failed_under = http.get("failed_under_fault")
        of_them = f" ({failed_under} of them failed)" if isinstance(failed_under, int) else ""
        figures.append(("under fault", f"{under} sent while Stripe faults were armed{of_them}: "
                                       "the thresholds leave these out"))
    latency = "  ".join(f"{k.removesuffix('_ms')} {http[k]:.1f} ms"
                        for k in ("avg_ms", "p50_ms", "p95_ms", "max_ms")
                        if isinstance(http.get(k), int | float))
    figures.append(("latency", f"all {requests}: {latency}" if latency else "?"))
    return figures


def thresholds_heading(data: Mapping[str, Any]) -> str:
    """``thresholds``, with the requests they judged when the report says."""
    section = data.get("thresholds")
    rate = section.get("http-error-rate") if isinstance(section, Mapping) else None
    if isinstance(rate, Mapping) and isinstance(rate.get("requests"), int):
        left_out = rate.get("left_out_under_fault")
        out = f", {left_out} under armed faults left out" if isinstance(left_out, int) else ""
        ahead = rate.get("ahead_of_payment_5xx")
        if isinstance(ahead, int) and ahead:
            out += f", {ahead} 5xx ahead of their payment not counted as errors"
        return (f"thresholds (judged on {rate['requests']} requests{out}; "
                "their p95, not the latency line's)")
    return "thresholds"


# -- evidence rows: grouped by kind, linked by id --------------------------------------------

#: Columns whose values are ids that the timeline labels (lanes, or the run's ids key).
ID_COLUMNS = ("checkout_session", "payment_intent", "event_id", "ticket_type", "session")


def row_groups(rows: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """``rows`` split by kind (the same columns: order rows, request rows, ticket type
    rows), each kind in order of first appearance: one table each, no column of nulls."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        if isinstance(row, Mapping):
            groups.setdefault(tuple(str(k) for k in row), []).append(row)
    return list(groups.values())


def ids_line(ids: Any) -> list[str]:
    """The run's ids per buyer (a finding's ``ids``), as text: who is who in the rows."""
    lines = []
    for entry in ids if isinstance(ids, list) else []:
        if not isinstance(entry, Mapping):
            continue
        parts = [f"{label} {entry[key]}" for key, label in (
            ("checkout_session", "session"), ("payment_intent", "payment"))
            if entry.get(key)]
        if entry.get("ticket_type") is not None:
            number = entry.get("ticket_type_no")
            parts.append(f"ticket type {number} = {entry['ticket_type']}" if number
                         else f"ticket type {entry['ticket_type']}")
        who = f"buyer {entry['buyer']}" if entry.get("buyer") else "event"
        lines.append(f"{who}: {', '.join(parts)}")
    return lines
