"""The run's verdict as data (the JSON report), as text (the terminal
summary), and each finding as a replayable case file.

The JSON contract other tools and CI rely on: ``verdict`` ("pass" | "fail" |
"error"), ``examples``, ``failures`` (each with ``invariant``, ``requests``,
``schedule``, ``replay``), ``http`` (``requests``, ``failed``, ``p95_ms``),
``concurrency`` (``requested``, ``peak_in_flight`` as the target saw it,
``client_peak_in_flight``, ``start_skew_ms``), ``invariants`` (name: "pass" |
"fail" | "flaky"), ``evidence`` (name: violations with their rows) and
``thresholds`` (name: ``verdict``, value, limit).
Every string passes through the redactor before it is written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.invariants import INVARIANTS
from chaos.log import redactor
from chaos.search import Finding
from strategies import Scenario

CASE_FORMAT = 1


@dataclass
class Report:
    target: dict[str, Any]
    seed: int | None
    requested_concurrency: int
    verdict: str = "error"
    examples: int = 0
    findings: list[dict[str, Any]] = field(default_factory=list)
    http: dict[str, Any] = field(default_factory=dict)
    concurrency: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)
    profile: str = "default"
    stopped: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def to_data(self) -> dict[str, Any]:
        broken = {f["invariant"] for f in self.findings if f["status"] == "FAILED"}
        flaky = {f["invariant"] for f in self.findings} - broken
        evidence: dict[str, list[dict[str, Any]]] = {}
        for f in self.findings:
            evidence.setdefault(f["invariant"], []).extend(f["violations"])
        data = {
            "verdict": self.verdict,
            "examples": self.examples,
            "seed": self.seed,
            "profile": self.profile,
            "seconds": round(self.seconds, 2),
            "target": self.target,
            "invariants": {name: ("fail" if name in broken else "flaky" if name in flaky
                                  else "pass") for name in INVARIANTS},
            "evidence": evidence,
            "thresholds": self.thresholds,
            "failures": self.findings,
            "http": self.http,
            "concurrency": {"requested": self.requested_concurrency, **self.concurrency},
        }
        if self.stopped:
            data["stopped"] = self.stopped
        if self.error:
            data["error"] = self.error
        return redactor.value(data)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_data(), indent=2) + "\n")


def save_case(finding: Finding, *, target: dict[str, Any], seed: int | None,
              directory: Path) -> Path:
    """Write the finding as a case file that ``python -m chaos replay`` re-runs."""
    scenario = finding.scenario.to_data()
    digest = hashlib.sha256(json.dumps([finding.invariant, target, scenario],
                                       sort_keys=True).encode()).hexdigest()[:10]
    path = directory / f"{finding.invariant}-{digest}.json"
    case = {
        "format": CASE_FORMAT,
        "invariant": finding.invariant,
        "target": target,
        "seed": seed,
        "steps": finding.scenario.render(),
        "scenario": scenario,
    }
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(redactor.value(case), indent=2) + "\n")
    return path


def load_case(path: Path) -> dict[str, Any]:
    """A case file's content, with its scenario parsed; ValueError names the problem."""
    try:
        case = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(case, dict) or case.get("format") != CASE_FORMAT:
        raise ValueError(f"{path} is not a chaos case file (format {CASE_FORMAT})")
    try:
        case["scenario"] = Scenario.from_data(case["scenario"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    return case


def finding_data(finding: Finding, *, replay: str, phase: str = "search") -> dict[str, Any]:
    return {
        "invariant": finding.invariant,
        "status": finding.status,
        "reproduced": f"{finding.reproduced}/{finding.attempts}",
        "note": finding.note,
        "phase": phase,
        "requests": finding.scenario.requests,
        "schedule": finding.scenario.to_data(),
        "steps": finding.scenario.render(),
        "violations": [v.to_data() for v in finding.violations],
        "replay": replay,
    }


def summary(report: Report) -> str:
    """The terminal summary, k6-style: figures, invariants, then each failure."""
    data = report.to_data()
    http, conc = data["http"], data["concurrency"]
    bugs = data["target"].get("bugs") or []
    lines = [
        f"payment-chaos: {data['target'].get('kind', 'target')}"
        f"{' with bugs: ' + ', '.join(bugs) if bugs else ''} (seed {data['seed']})",
        f"  examples ......... {data['examples']} in {data['seconds']:.1f} s",
    ]
    if http:
        lines.append(
            f"  requests ......... {http['requests']} ({http['failed']} failed)  "
            f"avg {http['avg_ms']:.1f} ms  p50 {http['p50_ms']:.1f} ms  "
            f"p95 {http['p95_ms']:.1f} ms  max {http['max_ms']:.1f} ms"
        )
    if conc.get("peak_in_flight") is not None or conc.get("client_peak_in_flight"):
        lines.append(
            f"  in flight ........ {conc.get('peak_in_flight', '?')} as the target saw it, "
            f"{conc.get('client_peak_in_flight', '?')} as the client saw it, "
            f"{conc['requested']} requested; start skew {conc.get('start_skew_ms', 0):.1f} ms"
        )
    for name, verdict in data["invariants"].items():
        lines.append(f"  {name:<32} {verdict.upper()}")
    for name, limit in data["thresholds"].items():
        lines.append(f"  {name:<32} {limit['verdict'].upper()}")
    if data.get("stopped") == "max-seconds":
        lines.append("  stopped early: --max-seconds reached")
    for f in data["failures"]:
        lines.append("")
        lines.append(f"{f['status']} {f['invariant']} (reproduced {f['reproduced']}), "
                     f"{'shrunk to' if f['phase'] == 'search' else 'load phase,'} "
                     f"{f['requests']} request{'s' if f['requests'] != 1 else ''}:")
        if f.get("note"):
            lines.append(f"  ({f['note']})")
        lines.extend(f"  {step}" for step in f["steps"])
        for v in f["violations"]:
            lines.append(f"  broken: {v['message']}")
            lines.extend(f"    row: {json.dumps(row, default=str)}" for row in v["rows"])
        lines.append(f"  replay: {f['replay']}")
    lines.append("")
    if data.get("error"):
        lines.append(f"verdict: ERROR: {data['error']}")
    else:
        lines.append(f"verdict: {data['verdict'].upper()}")
    return redactor.text("\n".join(lines))
