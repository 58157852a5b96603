"""The end-of-run summary on the terminal, k6-style: the figures, every
invariant and threshold with its verdict, then each failure as numbered
steps with the rows that break it, how often it reproduced, and the command
that replays it. Meant to be read in a minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaos.log import redactor
from chaos.report._fields import (
    Verdict,
    example_figures,
    http_figures,
    ids_line,
    plural,
    row_groups,
    row_table,
    target_line,
    thresholds_heading,
    verdicts,
)

_KNOWN_HTTP = {"requests", "failed", "error_rate", "avg_ms", "p50_ms", "p95_ms", "max_ms",
               "under_fault", "failed_under_fault"}
_KNOWN_CONCURRENCY = {"requested", "peak_in_flight", "client_peak_in_flight", "start_skew_ms"}


def summary(data: Mapping[str, Any], *, files: Mapping[str, Any] | None = None) -> str:
    """The summary of a report (``Report.to_data()`` or a saved JSON report).

    ``files`` names the outputs written (``{"report": path, "junit": path}``),
    listed at the end so a person knows where to look next.
    """
    profile = f", profile {data['profile']}" if data.get("profile") else ""
    seed = "no seed" if data.get("seed") is None else f"seed {data['seed']}"
    if data.get("shard"):
        seed = f"shard {data['shard']}, {seed}"
    merged = [m for m in data.get("merged") or [] if isinstance(m, Mapping)]
    if merged:
        seed = f"merged from {plural(len(merged), 'report')}"
    lines = [f"payment-chaos: {target_line(data)} ({seed}{profile})", ""]
    lines.extend(_figure(name, text) for name, text in example_figures(data))
    first = data.get("first_failure")
    if isinstance(first, Mapping):
        seconds = first.get("seconds")
        at = f" at {seconds:.1f} s" if isinstance(seconds, int | float) else ""
        which = "the load wave" if first.get("phase") == "load" \
            else f"example {first.get('example', '?')}" + (
                " (playbook)" if first.get("phase") == "playbook" else
                " (saved in the example database)" if first.get("phase") == "replay" else "")
        if first.get("report"):
            which += f" of {first['report']}"
        lines.append(_figure("first failure", f"{which}{at} ({first.get('invariant', '?')})"))
    lines.extend(_http(data.get("http") or {}))
    lines.extend(_concurrency(data.get("concurrency") or {}))
    promised = {str(p["invariant"]): p for p in data.get("promises") or []
                if isinstance(p, Mapping) and p.get("invariant")}
    for title in ("invariants", "thresholds"):
        checks = verdicts(data.get(title))
        if checks:
            held = promised if title == "invariants" else {}
            heading = thresholds_heading(data) if title == "thresholds" else \
                title + (" and the promise each checks" if held else "")
            lines.append(f"  {heading}")
            widths = (max(4, *(len(c.verdict) for c in checks)), max(len(c.name) for c in checks))
            lines.extend(_check(c, widths) + _promise(held.get(c.name)) for c in checks)
    notes = [n for n in data.get("notes") or [] if isinstance(n, Mapping)]
    if notes:
        lines.append("  notes")
        lines.extend(f"    NOTE  {n.get('name', '?')}: {n.get('message', '')}" for n in notes)
    for failure in data.get("failures") or []:
        lines.append("")
        lines.extend(failure_lines(failure))
    lines.append("")
    if data.get("error"):
        lines.append(f"verdict: ERROR: {data['error']}")
    else:
        lines.append(f"verdict: {str(data.get('verdict', 'error')).upper()}")
    for name, path in (files or {}).items():
        if path:
            lines.append(f"{name}: {path}")
    return redactor.text("\n".join(line.rstrip() for line in lines))


def _figure(name: str, text: str) -> str:
    return f"  {name} {'.' * max(3, 17 - len(name))} {text}"


def _extra(key: str, value: Any) -> str:
    """A figure the summary has no special line for, as ``name ... value [ms]``."""
    unit = " ms" if key.endswith("_ms") else ""
    return _figure(key.removesuffix("_ms").replace("_", " "), f"{value}{unit}")


def _http(http: Mapping[str, Any]) -> list[str]:
    if not http:
        return []
    lines = [_figure(name, text) for name, text in http_figures(http)]
    lines.extend(_extra(k, v) for k, v in http.items()
                 if k not in _KNOWN_HTTP and not isinstance(v, Mapping | list))
    return lines


def _concurrency(conc: Mapping[str, Any]) -> list[str]:
    if conc.get("peak_in_flight") is None and not conc.get("client_peak_in_flight"):
        return []
    def show(key: str) -> str:
        value = conc.get(key)
        return "?" if value is None else str(value)
    skew = conc.get("start_skew_ms")
    lines = [_figure("in flight",
                     f"{show('peak_in_flight')} as the target saw it, "
                     f"{show('client_peak_in_flight')} as the client saw it, "
                     f"{show('requested')} requested"
                     + (f"; start skew {skew:.1f} ms" if isinstance(skew, int | float) else ""))]
    lines.extend(_extra(k, v) for k, v in conc.items()
                 if k not in _KNOWN_CONCURRENCY and not isinstance(v, Mapping | list))
    return lines


def _promise(promise: Mapping[str, Any] | None) -> str:
    """The promise an invariant checks, after its verdict: why it was not checked, or
    the declaration that shaped it (a config's ``[promises]`` or checkout header)."""
    if promise is None:
        return ""
    why = str(promise.get("why", ""))
    if not promise.get("checked"):
        return f"  not promised: {why}"
    declared = why.startswith(("promises.", "target."))
    return f"  {promise.get('promise', '')}" + (f" ({why})" if declared else "")


def _check(check: Verdict, widths: tuple[int, int]) -> str:
    extra = check.scalars()
    return (f"    {check.verdict.upper():<{widths[0]}}  {check.name:<{widths[1]}}"
            f"{'  ' + extra if extra else ''}")


def failure_lines(f: Mapping[str, Any]) -> list[str]:
    """One failure as text: verdict and rate, numbered steps, broken rows, replay."""
    requests = f.get("requests")
    how = "load phase," if f.get("phase") == "load" else "shrunk to"
    size = f" {how} {plural(requests, 'request')}" if isinstance(requests, int) else ""
    known = " (known)" if f.get("known") else ""
    lines = [f"{f.get('status', 'FAILED')}{known} {f.get('invariant', '?')} "
             f"(reproduced {f.get('reproduced', '?')}),{size}:"]
    if f.get("known"):
        lines.append(f"  known bug: recorded in {f['known']}")
    if f.get("shape"):
        lines.append(f"  story: {f['shape']}")
    if f.get("note"):
        lines.append(f"  ({f['note']})")
    lines.extend(f"  {step}" for step in _elide(list(f.get("steps") or [])))
    who = ids_line(f.get("ids"))
    if who:   # the ids of the run the rows below come from, by buyer as the steps name them
        lines.append("  ids in this run:")
        lines.extend(f"    {line}" for line in who)
    for v in f.get("violations") or []:
        lines.append(f"  broken: {v.get('message', v)}" if isinstance(v, Mapping)
                     else f"  broken: {v}")
        rows = v.get("rows") if isinstance(v, Mapping) else None
        for group in row_groups(rows or []):   # one table per kind of row
            lines.extend(f"    {line}" for line in _table(group))
    if f.get("replay"):
        lines.append(f"  replay: {f['replay']}")
    return lines


def _elide(steps: list[Any], keep: int = 24) -> list[Any]:
    """Long step lists (an unshrunk load wave of 50 buyers) cut to their head and
    tail; the JSON report, the HTML timeline and the case keep every step."""
    if len(steps) <= keep:
        return steps
    head, tail = steps[: keep - 4], steps[-3:]
    return [*head, f"... {len(steps) - len(head) - len(tail)} more steps (all in the JSON "
                   "report) ...", *tail]


def _table(rows: list[Mapping[str, Any]]) -> list[str]:
    columns, cells = row_table(rows)
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()
    return [line(columns), *(line(r) for r in cells)]
