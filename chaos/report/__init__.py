"""The run's verdict as data (the JSON report), and the face of the
package that renders it for people and for CI.

    Report, finding_data    the JSON report (this module)
    summary                 the k6-style terminal summary      (summary.py)
    junit                   JUnit XML, one case per invariant  (junit.py)
    timeline                the self-contained HTML timeline   (timeline.py)
    save_case, load_case    the regression corpus              (corpus.py)
    Progress, Watch         the live line; watching the run    (progress.py, watch.py)
    write_outputs           the files, checked and written     (outputs.py)

The renderers read the JSON data (``Report.to_data()`` or a saved report),
never live objects, and tolerate fields they do not know or that are missing,
so the report can grow without breaking them.

The JSON contract other tools and CI rely on: ``verdict`` ("pass" | "fail" |
"error"), ``examples``, ``failures`` (each with ``invariant``, ``status``,
``reproduced``, ``note``, ``requests``, ``schedule``, ``steps``,
``violations``, ``history``, ``waves``, ``case``, ``replay``), ``seconds``
(the whole run, start-up included), ``first_failure`` (null, or the example
that first broke an invariant: ``example`` (0 is the load wave; the search's
count from 1, re-runs included), ``seconds`` since the run started,
``invariant``, ``phase`` "load" | "search"), ``http``
(``requests``, ``failed``, ``p95_ms``), ``concurrency`` (``requested``,
``peak_in_flight`` as the target saw it, ``client_peak_in_flight``,
``start_skew_ms``), ``invariants`` (name: "pass" | "fail" | "flaky", or "unknown" when the run
ended in error before checking everything), ``database`` (``server``,
``schema`` the run wrote into, ``dropped_after_run``),
``evidence`` (name: violations with their rows) and ``thresholds`` (name:
``verdict``, value, limit).
Every string passes through the redactor before it is written.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos.invariants import INVARIANTS
from chaos.log import redactor
from chaos.report.corpus import CASE_FORMAT, Case, Expectation, load_case, save_case
from chaos.report.junit import junit
from chaos.report.outputs import write_outputs
from chaos.report.progress import Progress
from chaos.report.summary import summary
from chaos.report.timeline import timeline
from chaos.report.watch import Watch
from chaos.shutdown import SIGNALS

if TYPE_CHECKING:  # the search pulls in Hypothesis and the runner; renderers need neither
    from chaos.history import History
    from chaos.search import Finding

__all__ = [
    "CASE_FORMAT", "Case", "Expectation", "Progress", "Report", "Watch", "finding_data", "junit",
    "load_case", "save_case", "summary", "timeline", "write_outputs",
]


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
    database: dict[str, Any] = field(default_factory=dict)
    stopped: str | None = None
    error: str | None = None
    seconds: float = 0.0
    #: The first failing example: ``example``, ``seconds`` since the run started,
    #: ``invariant``, ``phase`` ("load", "playbook" or "search"); None when nothing failed.
    first_failure: dict[str, Any] | None = None
    #: The user's own invariants (a config's ``[[invariants]]``), after the built-in ones.
    extra_invariants: list[str] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        broken = {f["invariant"] for f in self.findings if f["status"] == "FAILED"}
        flaky = {f["invariant"] for f in self.findings} - broken
        # a run that ended in error never finished checking: what did not break is unknown
        # (and one a signal cut short never finished searching either)
        holds = "unknown" if self.verdict == "error" or self.stopped in SIGNALS.values() \
            else "pass"
        evidence: dict[str, list[dict[str, Any]]] = {}
        for f in self.findings:
            evidence.setdefault(f["invariant"], []).extend(f["violations"])
        data = {
            "verdict": self.verdict,
            "examples": self.examples,
            "seed": self.seed,
            "profile": self.profile,
            "seconds": round(self.seconds, 2),
            "first_failure": self.first_failure,
            "target": self.target,
            "invariants": {name: ("fail" if name in broken else "flaky" if name in flaky
                                  else holds) for name in [*INVARIANTS,
                                                           *self.extra_invariants]},
            "evidence": evidence,
            "thresholds": self.thresholds,
            "failures": self.findings,
            "http": self.http,
            "concurrency": {"requested": self.requested_concurrency, **self.concurrency},
            "database": self.database,
        }
        if self.stopped:
            data["stopped"] = self.stopped
        if self.error:
            data["error"] = self.error
        redacted: dict[str, Any] = redactor.value(data)
        return redacted

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_data(), indent=2) + "\n")


def finding_data(finding: Finding, *, replay: str, phase: str = "search",
                 case: Path | None = None, history: History | None = None) -> dict[str, Any]:
    """One finding as the report carries it: the shrunk scenario, the evidence,
    the history of a run that failed (``history``, drawn by the HTML timeline:
    its ops and, where recorded, its waves' barriers) and how to replay it."""
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
        "history": [op.to_data() for op in history.ops] if history else [],
        "waves": [dataclasses.asdict(w) for w in getattr(history, "waves", [])
                  if dataclasses.is_dataclass(w) and not isinstance(w, type)],
        "case": str(case) if case is not None else None,
        "replay": replay,
    }
