"""The HTML timeline: what was sent, when, and what came back, for each
shrunk failure, in one self-contained file (inline CSS and SVG, no script,
no network), so it can be attached to a CI run and opened anywhere.

Each failure gets one lane per schedule request, drawn as a start-to-end bar
coloured by its answer (2xx, 4xx, 5xx, no answer, not delivered); the set-up
calls (each buyer's checkout and payment) share a lane per kind; a dashed line
marks each wave's start barrier. Under it: the broken invariant with the
rows that break it, the numbered steps, and the replay command.

Everything in a failure comes from one run (the one its evidence came from).
Each schedule lane shows, under its step, the event and payment intent it
delivered; an "ids in this run" key names each buyer's ticket type, session
and payment intent; the rows' ids and step numbers link to those labels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from chaos.log import redactor
from chaos.report._fields import (
    ID_COLUMNS,
    Verdict,
    example_figures,
    http_figures,
    plural,
    row_groups,
    row_table,
    target_line,
    thresholds_heading,
    verdicts,
)
from strategies import Scenario

LABEL_W = 400
PLOT_W = 720
LANE_H = 34
BAR_H = 14
AXIS_H = 56
PAD_R = 110

_STATUS_CLASSES = (
    ("s2xx", "2xx answer"), ("s4xx", "4xx answer"), ("s5xx", "5xx answer"),
    ("sinfo", "no answer (may have happened)"), ("sfail", "not delivered"),
)

_CSS = """
:root { --ink:#1a202c; --muted:#5a6474; --line:#d8dee8; --bg:#ffffff; --panel:#f6f8fb; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI",
       Roboto, "DejaVu Sans", sans-serif; color: var(--ink); background: var(--bg); }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 6px; padding-top: 16px; border-top: 2px solid var(--line); }
h3 { font-size: 14px; margin: 18px 0 6px; text-transform: uppercase; letter-spacing: .04em;
     color: var(--muted); }
.sub { color: var(--muted); margin: 0 0 16px; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 10px; font-weight: 700;
         font-size: 12px; letter-spacing: .05em; color: #fff; vertical-align: 2px; }
.pass { background: #2f855a; } .fail { background: #c53030; } .error, .other { background: #975a16; }
.flaky { background: #b7791f; }
.figures { display: grid; grid-template-columns: max-content 1fr; gap: 2px 18px; margin: 0 0 8px;
           padding: 12px 16px; background: var(--panel); border-radius: 6px; }
.figures dt { color: var(--muted); } .figures dd { margin: 0; }
table { border-collapse: collapse; margin: 4px 0 8px; }
th, td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid var(--line);
         font-variant-numeric: tabular-nums; }
th { color: var(--muted); font-weight: 600; }
td.num { text-align: right; }
table.checks td:first-child { min-width: 92px; }
code, pre, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
                   font-size: 13px; }
pre { background: var(--panel); padding: 10px 14px; border-radius: 6px; margin: 4px 0;
      white-space: pre-wrap; }
.broken { border-left: 4px solid #c53030; padding: 2px 0 2px 12px; margin: 8px 0; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 18px; color: var(--muted); font-size: 12px;
          margin: 4px 0 2px; }
.legend span::before { content: ""; display: inline-block; width: 18px; height: 10px;
                       margin-right: 6px; vertical-align: -1px; border-radius: 2px;
                       background: var(--c); }
.legend .barrier-key::before { background: none; height: 0; width: 22px; border-radius: 0;
                              border-top: 2px dashed #2b6cb0; vertical-align: 3px; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
           fill: var(--ink); }
svg .lab { font-size: 12.5px; } svg .setup { fill: var(--muted); }
svg .ids { font: 10.5px ui-monospace, "DejaVu Sans Mono", Menlo, monospace; fill: var(--muted); }
ul.ids { margin: 0 0 6px; padding-left: 18px; color: var(--muted); }
p.ids-title { margin: 0; }
ul.ids strong { color: var(--ink); font-weight: 600; }
td a { color: inherit; text-decoration: underline dotted; }
svg .tick { fill: var(--muted); font-size: 11px; }
svg .stat { font-size: 11px; fill: var(--muted); paint-order: stroke; stroke: #fff;
            stroke-width: 3px; }
svg .barrier-label { paint-order: stroke; stroke: #fff; stroke-width: 3px; }
svg .grid { stroke: #edf0f5; } svg .lane { stroke: #f0f2f6; }
svg .barrier { stroke: #2b6cb0; stroke-width: 1.5; stroke-dasharray: 5 4; }
svg .barrier-label { fill: #2b6cb0; font-weight: 600; font-size: 11.5px; }
svg .band { fill: #f3f6fa; } svg .band.setup-band { fill: #f7f4ec; }
.s2xx { fill: #2f855a; } .s4xx { fill: #dd6b20; } .s5xx { fill: #c53030; }
.sinfo { fill: url(#hatch); stroke: #718096; } .sfail { fill: #4a5568; }
rect.setup-bar { opacity: .55; }
"""

_LEGEND_COLOURS = {"s2xx": "#2f855a", "s4xx": "#dd6b20", "s5xx": "#c53030",
                   "sinfo": "repeating-linear-gradient(45deg,#718096 0 3px,#e2e8f0 3px 6px)",
                   "sfail": "#4a5568"}


def timeline(data: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page with a timeline per failure."""
    failures = list(data.get("failures") or [])
    verdict = str(data.get("verdict", "error"))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>payment-chaos: {escape(verdict.upper())} · {escape(target_line(data))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<h1>payment-chaos <span class="badge {_css_class(verdict)}">'
        f"{escape(verdict.upper())}</span></h1>",
        f'<p class="sub">{escape(target_line(data))} · seed {escape(str(data.get("seed")))}'
        + (f" · profile {escape(str(data['profile']))}" if data.get("profile") else "")
        + f" · {escape(plural(len(failures), 'failure'))}</p>",
        _figures(data),
    ]
    if data.get("error"):
        parts.append(f'<div class="broken"><strong>error:</strong> {escape(str(data["error"]))}'
                     "</div>")
    for note in data.get("notes") or []:  # what the run noticed beyond the verdicts
        if isinstance(note, Mapping):
            parts.append(f'<div class="broken"><strong>note {escape(str(note.get("name", "")))}:'
                         f'</strong> {escape(str(note.get("message", "")))}</div>')
    if not failures and verdict == "pass":
        parts.append(f"<p>No invariant broke in {escape(str(data.get('examples', 0)))} "
                     "examples.</p>")
    for n, failure in enumerate(failures, 1):   # the failures first: they are the news
        parts.append(_failure(n, failure))
    if failures:
        parts.append('<h2 id="checks">every check</h2>')
    for title in ("invariants", "thresholds"):
        parts.append(_checks(thresholds_heading(data) if title == "thresholds" else title,
                             verdicts(data.get(title))))
    parts.append("</body></html>\n")
    return redactor.text("\n".join(p for p in parts if p))


def _css_class(verdict: str) -> str:
    v = verdict.lower()
    return v if v in ("pass", "fail", "error", "flaky") else "other"


def _figures(data: Mapping[str, Any]) -> str:
    http = data.get("http") or {}
    conc = data.get("concurrency") or {}
    rows = example_figures(data) + http_figures(http)
    if conc.get("peak_in_flight") is not None or conc.get("client_peak_in_flight"):
        rows.append(("in flight", f"{conc.get('peak_in_flight', '?')} as the target saw it, "
                                  f"{conc.get('client_peak_in_flight', '?')} as the client saw "
                                  f"it, {conc.get('requested', '?')} requested"))
    cells = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    return f'<dl class="figures">{cells}</dl>'


def _checks(title: str, checks: list[Verdict]) -> str:
    if not checks:
        return ""
    rows = "".join(
        f'<tr><td><span class="badge {_css_class(c.verdict)}">{escape(c.verdict.upper())}'
        f"</span></td><td class=\"mono\">{escape(c.name)}</td><td>{escape(c.scalars())}</td></tr>"
        for c in checks)
    title, _, note = title.partition(" (")   # "thresholds (judged on ...)": the note below
    note_html = f'<p class="sub">{escape(note.removesuffix(")"))}</p>' if note else ""
    return f'<h3>{escape(title)}</h3>{note_html}<table class="checks">{rows}</table>'


def _failure(n: int, f: Mapping[str, Any]) -> str:
    status = str(f.get("status", "FAILED"))
    requests = f.get("requests")
    how = "load phase," if f.get("phase") == "load" else "shrunk to"
    prefix = f"f{n}"
    history = [op for op in f.get("history") or [] if isinstance(op, Mapping)]
    anchors: dict[str, str] = {}    # id (or "step N") -> the element that labels it
    drawing = _svg(history, _describer(f.get("schedule")), _barriers(f.get("waves")),
                   prefix=prefix, anchors=anchors) if history else ""
    key = _ids_key(f.get("ids"), prefix, anchors)
    parts = [
        f'<h2 id="failure-{n}"><span class="badge {_css_class("flaky" if status == "FLAKY" else "fail")}">'
        f"{escape(status)}</span> <span class=\"mono\">{escape(str(f.get('invariant', '?')))}</span></h2>",
        f'<p class="sub">reproduced {escape(str(f.get("reproduced", "?")))}'
        + (f" · {escape(how)} {escape(plural(requests, 'request'))}" if isinstance(requests, int)
           else "") + (f" · {escape(str(f['note']))}" if f.get("note") else "") + "</p>",
    ]
    for v in f.get("violations") or []:
        if not isinstance(v, Mapping):
            continue
        tables = "".join(_rows(group, anchors) for group in row_groups(v.get("rows") or []))
        parts.append(f'<div class="broken"><strong>broken:</strong> '
                     f"{escape(str(v.get('message', '')))}{tables}</div>")
    parts.append(f'<h3 id="{prefix}-timeline">timeline</h3>')
    if key:
        parts.append(key)
    if history:
        parts.append(_legend())
        parts.append(drawing)
    else:
        parts.append("<p>No history was recorded for this failure.</p>")
    if f.get("steps"):
        parts.append("<h3>steps</h3><pre>" + escape("\n".join(map(str, f["steps"]))) + "</pre>")
    if f.get("replay"):
        parts.append(f"<h3>replay</h3><pre>{escape(str(f['replay']))}</pre>")
    return "\n".join(parts)


def _anchor(prefix: str, value: str) -> str:
    """The element id under which ``value`` (an id, or ``step N``) is labelled."""
    return f"{prefix}-" + re.sub(r"[^A-Za-z0-9_-]", "_", value)


def _ids_key(ids: Any, prefix: str, anchors: dict[str, str]) -> str:
    """Who is who in this run (per buyer: ticket type, session, payment intent), the ids
    that no lane carries anchored here: every id of the rows is labelled somewhere."""
    rows = [e for e in ids if isinstance(e, Mapping)] if isinstance(ids, list) else []
    if not rows:
        return ""
    cells = []
    for entry in rows:
        who = f"buyer {entry['buyer']}" if entry.get("buyer") else "event"
        parts = []
        for key, label in (("ticket_type", "ticket type"), ("checkout_session", "session"),
                           ("payment_intent", "payment")):
            value = entry.get(key)
            if value is None:
                continue
            text = str(value)
            number = entry.get("ticket_type_no") if key == "ticket_type" else None
            shown = f"{number} = {text}" if number else text
            attr = ""
            if text not in anchors:
                anchors[text] = _anchor(prefix, text)
                attr = f' id="{anchors[text]}"'
            parts.append(f'{label} <code{attr}>{escape(shown)}</code>')
        cells.append(f"<li><strong>{escape(who)}</strong>: {', '.join(parts)}</li>")
    return f'<p class="sub ids-title">ids in this run</p><ul class="ids">{"".join(cells)}</ul>'


def _rows(rows: Sequence[Mapping[str, Any]], anchors: Mapping[str, str] | None = None) -> str:
    """One kind of evidence rows as a table; ids and step numbers link to their labels."""
    if not rows:
        return ""
    anchors = anchors or {}
    columns, cells = row_table(rows)
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)

    def td(column: str, value: str) -> str:
        css = "num" if _is_number(value) else "mono"
        target = anchors.get(f"step {value}") if column == "step" else anchors.get(value)
        text = escape(value)
        if target and column in (*ID_COLUMNS, "step"):
            text = f'<a href="#{target}">{text}</a>'
        return f'<td class="{css}">{text}</td>'

    body = "".join("<tr>" + "".join(td(c, v) for c, v in zip(columns, row, strict=True))
                   + "</tr>" for row in cells)
    return f"<table><tr>{head}</tr>{body}</table>"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _legend() -> str:
    items = "".join(f'<span style="--c:{_LEGEND_COLOURS[c]}">{escape(label)}</span>'
                    for c, label in _STATUS_CLASSES)
    return f'<div class="legend">{items}<span class="barrier-key">wave start barrier</span></div>'


def _describer(schedule: Any) -> Callable[[Mapping[str, Any]], str]:
    """A function op -> lane label, from the schedule when it parses, else from the op."""
    steps: list[str] = []
    if isinstance(schedule, Mapping):
        try:
            steps = [step.describe() for _, step in Scenario.from_data(dict(schedule)).steps()]
        except (ValueError, TypeError, KeyError, AttributeError):
            steps = []

    def describe(op: Mapping[str, Any]) -> str:
        step = op.get("step")
        if isinstance(step, int) and 0 <= step < len(steps):
            return f"{step + 1}. {steps[step]}"
        where = f"{step + 1}. " if isinstance(step, int) else ""
        return f"{where}{op.get('kind', '?')} {op.get('method', '')} {op.get('path', '')}".strip()
    return describe


def _status_class(op: Mapping[str, Any]) -> str:
    status = op.get("status")
    if isinstance(status, int):
        return "s2xx" if status < 300 else "s4xx" if status < 500 else "s5xx"
    return "sinfo" if op.get("outcome") == "info" else "sfail"


def _status_text(op: Mapping[str, Any], ms: float) -> str:
    status = op.get("status")
    what = str(status) if isinstance(status, int) else (
        "no answer" if op.get("outcome") == "info" else "not delivered")
    return f"{what} · {ms:.1f} ms"


def _nice_step(span_ms: float) -> float:
    raw = span_ms / 8 if span_ms > 0 else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    return float(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))


def _barriers(waves: Any) -> dict[int, float]:
    """Barrier time per schedule wave, where the executor recorded it."""
    found: dict[int, float] = {}
    for w in waves if isinstance(waves, list) else []:
        if isinstance(w, Mapping) and isinstance(w.get("wave"), int) \
                and isinstance(w.get("barrier"), int | float):
            found[w["wave"]] = float(w["barrier"])
    return found


def _lane_ids(op: Mapping[str, Any]) -> list[str]:
    """The ids a schedule request carries: its event and payment intent (the session is
    in the ids key above the lanes: three ids do not fit under a label)."""
    ref = op.get("ref")
    if not isinstance(ref, Mapping):
        return []
    return [str(ref[k]) for k in ("event_id", "payment_intent") if ref.get(k)]


def _svg(history: list[Mapping[str, Any]], describe: Callable[[Mapping[str, Any]], str],
         barriers: Mapping[int, float], *, prefix: str = "f0",
         anchors: dict[str, str] | None = None) -> str:
    """The timeline. Each schedule lane is labelled with its step and, under it, the ids
    it carried; the first lane carrying an id (or a step) is its anchor in ``anchors``."""
    anchors = {} if anchors is None else anchors
    def t(op: Mapping[str, Any], key: str) -> float:
        value = op.get(key)
        return float(value) if isinstance(value, int | float) else 0.0

    t0 = min([t(op, "start") for op in history] + list(barriers.values()))
    span_ms = max(max(t(op, "end") for op in history) - t0, 1e-6) * 1000
    step_ms = _nice_step(span_ms)
    axis_ms = step_ms * math.ceil(span_ms / step_ms)

    def x(seconds: float) -> float:
        return LABEL_W + (seconds - t0) * 1000 / axis_ms * PLOT_W

    setup: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    schedule: list[Mapping[str, Any]] = []
    for op in history:
        if op.get("wave") is None:
            setup.setdefault((str(op.get("door", "")), str(op.get("kind", "?"))), []).append(op)
        else:
            schedule.append(op)
    schedule.sort(key=lambda op: (op.get("wave") or 0, op.get("step") if isinstance(
        op.get("step"), int) else 1 << 30, op.get("index") or 0))
    lanes: list[tuple[str, list[Mapping[str, Any]], bool]] = [
        (f"set-up: {kind.removeprefix('stripe.').replace('_', ' ')} ×{len(ops)}"
         f" ({'fake Stripe' if door == 'stripe' else 'at the target'})", ops, True)
        for (door, kind), ops in setup.items()
    ] + [(describe(op), [op], False) for op in schedule]

    height = AXIS_H + len(lanes) * LANE_H + 12
    width = LABEL_W + PLOT_W + PAD_R
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-label="request timeline">',
           '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="6" height="6" fill="#e2e8f0"/>'
           '<rect width="3" height="6" fill="#718096"/></pattern></defs>']

    # Bands: set-up, then each wave from its barrier to its last answer.
    bottom = AXIS_H + len(lanes) * LANE_H
    if setup:
        ops = [op for group in setup.values() for op in group]
        out.append(_band(x(min(t(o, "start") for o in ops)), x(max(t(o, "end") for o in ops)),
                         AXIS_H, bottom, "band setup-band"))
    waves: dict[int, list[Mapping[str, Any]]] = {}
    for op in schedule:
        waves.setdefault(int(op.get("wave") or 0), []).append(op)
    for ops in waves.values():
        out.append(_band(x(min(t(o, "start") for o in ops)), x(max(t(o, "end") for o in ops)),
                         AXIS_H, bottom, "band"))

    # Axis, grid and lanes.
    tick = 0.0
    while tick <= axis_ms + 1e-9:
        tx = LABEL_W + tick / axis_ms * PLOT_W
        out.append(f'<line class="grid" x1="{tx:.1f}" y1="{AXIS_H - 6}" x2="{tx:.1f}" '
                   f'y2="{bottom}"/>')
        out.append(f'<text class="tick" x="{tx:.1f}" y="{AXIS_H - 10}" text-anchor="middle">'
                   f"{_ms_label(tick, step_ms)}</text>")
        tick += step_ms
    out.append(f'<text class="tick" x="{LABEL_W - 8}" y="{AXIS_H - 10}" text-anchor="end">'
               "ms since the first call</text>")
    for i, (label, ops, is_setup) in enumerate(lanes):
        y = AXIS_H + i * LANE_H
        out.append(f'<line class="lane" x1="0" y1="{y + LANE_H}" x2="{width}" y2="{y + LANE_H}"/>')
        step = ops[0].get("step") if not is_setup else None
        attr = ""
        if isinstance(step, int) and f"step {step + 1}" not in anchors:
            anchors[f"step {step + 1}"] = _anchor(prefix, f"step {step + 1}")
            attr = f' id="{anchors[f"step {step + 1}"]}"'
        ids = [] if is_setup else _lane_ids(ops[0])
        out.append(f'<text class="lab{" setup" if is_setup else ""}"{attr} x="4" '
                   f'y="{y + (LANE_H / 2 - 2 if ids else LANE_H / 2 + 4)}">'
                   f"{escape(_clip(label, 58))}<title>{escape(label)}</title></text>")
        if ids:
            spans = []
            for value in ids:
                span_attr = ""
                if value not in anchors:
                    anchors[value] = _anchor(prefix, value)
                    span_attr = f' id="{anchors[value]}"'
                spans.append(f"<tspan{span_attr}>{escape(value)}</tspan>")
            out.append(f'<text class="ids" x="14" y="{y + LANE_H / 2 + 11}">'
                       + " · ".join(spans) + "</text>")
        for op in ops:
            out.append(_bar(op, x(t(op, "start")), x(t(op, "end")), y, is_setup))
        if not is_setup:
            op = ops[0]
            ms = (t(op, "end") - t(op, "start")) * 1000
            out.append(f'<text class="stat" x="{x(t(op, "end")) + 6:.1f}" '
                       f'y="{y + LANE_H / 2 + 4}">{escape(_status_text(op, ms))}</text>')

    # Barriers last, over the bars.
    last_label, level = -1e9, 0
    for w, ops in sorted(waves.items()):
        # The recorded barrier, else the earliest start less the offset it was asked for.
        bx = x(barriers.get(w, min(t(o, "start") - t(o, "offset") for o in ops)))
        level = 1 - level if bx - last_label < 56 else 0   # stagger labels that would touch
        last_label = bx
        out.append(f'<line class="barrier" x1="{bx:.1f}" y1="{AXIS_H - 4 - 12 * level}" '
                   f'x2="{bx:.1f}" y2="{bottom + 6}"/>')
        out.append(f'<text class="barrier-label" x="{bx + 4:.1f}" y="{AXIS_H - 26 - 12 * level}">'
                   f"wave {w + 1}</text>")
    out.append("</svg>")
    return "\n".join(out)


def _band(x1: float, x2: float, y1: float, y2: float, css: str) -> str:
    return (f'<rect class="{css}" x="{x1:.1f}" y="{y1}" width="{max(x2 - x1, 2):.1f}" '
            f'height="{y2 - y1}"/>')


def _bar(op: Mapping[str, Any], x1: float, x2: float, y: float, is_setup: bool) -> str:
    start, end = op.get("start") or 0.0, op.get("end") or 0.0
    ms = (float(end) - float(start)) * 1000
    tip = f"{op.get('method', '')} {op.get('path', '')}\n{_status_text(op, ms)}"
    if op.get("error"):
        tip += f"\n{op['error']}"
    if op.get("body"):
        tip += f"\n{str(op['body'])[:200]}"
    css = _status_class(op) + (" setup-bar" if is_setup else "")
    return (f'<rect class="{css}" x="{x1:.1f}" y="{y + (LANE_H - BAR_H) / 2}" '
            f'width="{max(x2 - x1, 2):.1f}" height="{BAR_H}" rx="2">'
            f"<title>{escape(tip)}</title></rect>")


def _ms_label(value: float, step: float) -> str:
    return f"{value:.0f}" if step >= 1 else f"{value:.{max(1, -math.floor(math.log10(step)))}f}"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
