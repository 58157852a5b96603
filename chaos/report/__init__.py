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
"error"), ``examples`` (every example the run ran: the load wave, the playbook,
the search, minimizing and confirming), ``examples_by_phase`` (``load``, ``playbook``,
``search``, ``minimize``, ``confirm``: how many of each), ``max_examples`` (the
scenarios Hypothesis could draw: ``--examples`` or the profile's), ``failures``
(each with ``invariant``, ``status``,
``reproduced``, ``note``, ``requests``, ``schedule``, ``steps``,
``shape`` (what makes it a distinct bug: its scenario's parts, ``strategies.shape``),
``known`` (null, or the case that recorded it before), ``failing_examples``,
``violations``, ``history``, ``waves``, ``ids``, ``case``, ``replay``: the
violations, history, waves and ids all of the one run the evidence came from), ``seconds``
(the whole run, start-up included), ``first_failure`` (null, or the example
that first broke an invariant: ``example`` (0 is the load wave; the search's
count from 1, re-runs included), ``seconds`` since the run started,
``invariant``, ``phase`` "load" | "replay" | "playbook" | "search"), ``http``
(``requests``, ``failed``, ``under_fault``, ``p95_ms``: every request to the target),
``concurrency`` (``requested``,
``peak_in_flight`` as the target saw it, ``client_peak_in_flight``,
``start_skew_ms``), ``invariants`` (name: "pass" | "fail" | "flaky", "skipped" when the
target does not make the promise it checks, or "unknown" when the run ended in error before
checking everything), ``promises`` (one entry per invariant: ``invariant``, the
``promise`` it checks, ``checked``, and ``why``: the declaration that decides it), ``database`` (``server``,
``schema`` the run wrote into, ``dropped_after_run``),
``evidence`` (name: violations with their rows), ``thresholds`` (name:
``verdict``, value, limit, ``requests`` judged and ``left_out_under_fault``: requests
sent while Stripe faults were armed are not judged; on the error rate
``ahead_of_payment_5xx``: 5xx answers judged but not counted as errors) and ``notes``
(what the run noticed beyond the verdicts, each with ``name`` and ``message``:
``answered-5xx-after-commit``, deliveries the target answered 5xx although their
work committed; ``answered-5xx-ahead-of-payment``, refunds and disputes answered 5xx
before the target had acknowledged their payment's earlier events: Stripe retries them),
``run_id`` (event ids are ``chaos-<run_id>-NNNNNN``),
``histograms`` (HDR histograms, base64: ``latencies``, ``judged_latencies``,
``skews``, which ``payment-chaos merge`` sums across shards), and when set
``shard`` ("I/N"), ``example_db`` (its URL, redacted) and, in a merged report,
``merged`` (the shards' reports: ``report``, ``shard``, ``verdict``,
``examples``, ``seed``, ``run_id``).
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
from chaos.promises import Promises, judged
from chaos.report.corpus import CASE_FORMAT, Case, Expectation, load_case, save_case
from chaos.report.junit import junit
from chaos.report.outputs import write_outputs
from chaos.report.progress import Progress
from chaos.report.summary import summary
from chaos.report.timeline import timeline
from chaos.report.watch import Watch
from chaos.shutdown import SIGNALS
from strategies import describe_shape, shape

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
    #: Those of them written in Python (``chaos.target.PythonInvariant``).
    python_invariants: list[str] = field(default_factory=list)
    #: ``examples`` per part of the run: "load", "playbook", "search", "minimize", "confirm".
    examples_by_phase: dict[str, int] = field(default_factory=dict)
    #: The scenarios Hypothesis may draw (``--examples`` or the profile's count).
    max_examples: int | None = None
    #: What the run noticed beyond the verdicts (``chaos.retries``): each ``name``, ``message``.
    notes: list[dict[str, Any]] = field(default_factory=list)
    #: What the target promises: which built-in invariants were checked.
    promises: Promises = field(default_factory=Promises)
    #: The findings as objects, in the order of ``findings`` (a library caller's view:
    #: ``scenario``, ``violations``, ``status``, ``reproduced`` of ``runs``, and
    #: ``result``, the run the evidence came from: its history and observation); not
    #: part of the JSON, which ``findings`` is.
    found: list[Finding] = field(default_factory=list)
    #: ``--shard I/N`` ("1/4"), None for a whole run.
    shard: str | None = None
    #: The ``--example-db`` URL (redacted), None without one.
    example_db: str | None = None
    #: The run's id: its event ids are ``chaos-<run_id>-NNNNNN`` (a shard's ends ``sI``).
    run_id: str | None = None
    #: HDR histograms, encoded (``chaos.latency.Durations.encoded``): ``latencies``,
    #: ``judged_latencies``, ``skews``: what ``payment-chaos merge`` sums.
    histograms: dict[str, str] = field(default_factory=dict)

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
        promises = [j.to_data() for j in judged(self.promises)] + [
            {"invariant": name, "checked": True,
             **({"promise": "its function returns no rows",
                 "why": "the target's Python invariants"} if name in self.python_invariants
                else {"promise": "its query returns no rows",
                      "why": "the config's [[invariants]]"})}
            for name in self.extra_invariants]
        skipped = {p["invariant"] for p in promises if not p["checked"]}
        data = {
            "verdict": self.verdict,
            "examples": self.examples,
            "examples_by_phase": self.examples_by_phase,
            "max_examples": self.max_examples,
            "seed": self.seed,
            "profile": self.profile,
            "seconds": round(self.seconds, 2),
            "first_failure": self.first_failure,
            "target": self.target,
            "invariants": {name: ("fail" if name in broken else "flaky" if name in flaky
                                  else "skipped" if name in skipped else holds)
                           for name in [*INVARIANTS, *self.extra_invariants]},
            "promises": promises,
            "evidence": evidence,
            "thresholds": self.thresholds,
            "notes": self.notes,
            "failures": self.findings,
            "http": self.http,
            "concurrency": {"requested": self.requested_concurrency, **self.concurrency},
            "database": self.database,
            "run_id": self.run_id,
            "histograms": self.histograms,
        }
        if self.shard:
            data["shard"] = self.shard
        if self.example_db:
            data["example_db"] = self.example_db
        if self.stopped:
            data["stopped"] = self.stopped
        if self.error:
            data["error"] = self.error
        redacted: dict[str, Any] = redactor.value(data)
        return redacted

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_data(), indent=2) + "\n")


def run_ids(result: Any) -> list[dict[str, Any]]:
    """Who is who in the run a finding's evidence came from: per buyer, its ticket type
    (number in the steps, and id) and each Checkout Session with its payment intent,
    then the ticket types no buyer took. The rows name these ids; the steps name buyers."""
    observation = getattr(result, "observation", None)
    if observation is None:
        return []
    buyers = getattr(result.scenario, "buyers", ())
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for c in observation.checkouts:
        number = buyers[c.buyer].ticket_type + 1 if c.buyer < len(buyers) else None
        found.setdefault(("buyer", c.buyer), {"buyer": c.buyer + 1, "ticket_type_no": number,
                                              "ticket_type": c.ticket_type})
    for s in observation.sessions:
        entry = found.get(("buyer", s.buyer), {"buyer": None if s.buyer is None else s.buyer + 1,
                                               "ticket_type": s.ticket_type})
        key = ("buyer", s.buyer) if "checkout_session" not in entry else ("session", s.id)
        found[key] = {**entry, "checkout_session": s.id, "payment_intent": s.payment_intent}
    named = {str(e.get("ticket_type")) for e in found.values()}
    for row in observation.tickets_per_ticket_type:
        if str(row.get("ticket_type")) not in named:
            named.add(str(row.get("ticket_type")))
            found[("type", row.get("ticket_type"))] = {"ticket_type": row.get("ticket_type")}
    return list(found.values())


def finding_data(finding: Finding, *, replay: str, phase: str = "search",
                 case: Path | None = None, history: History | None = None) -> dict[str, Any]:
    """One finding as the report carries it: the shrunk scenario, the evidence,
    the history of a run that failed (``history``, drawn by the HTML timeline:
    its ops and, where recorded, its waves' barriers) and how to replay it."""
    return {
        "invariant": finding.invariant,
        "status": finding.status,
        "reproduced": f"{finding.reproduced}/{finding.runs}",
        "note": finding.note,
        "phase": phase,
        "requests": finding.scenario.requests,
        # what makes it a distinct bug: the shape of its scenario (strategies.shape)
        "shape": describe_shape(finding.shape or shape(finding.scenario)),
        "known": finding.known,
        "failing_examples": finding.failures,
        "schedule": finding.scenario.to_data(),
        "steps": finding.scenario.render(),
        "violations": [v.to_data() for v in finding.violations],
        "history": [op.to_data() for op in history.ops] if history else [],
        "ids": run_ids(finding.result),
        "waves": [dataclasses.asdict(w) for w in getattr(history, "waves", [])
                  if dataclasses.is_dataclass(w) and not isinstance(w, type)],
        "case": str(case) if case is not None else None,
        "replay": replay,
    }
