"""Reports from real runs: a bug switched on produces the summary, the JSON
report, JUnit, the HTML timeline, JSON logs and a corpus case; replaying the
case fails the same way; with the bug off the same scenario passes; and no
output of the run carries a configured secret.

The runs are real (reference service, fake Stripe, PostgreSQL, HTTP on
loopback) and small: a fixed seed and a few examples each.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from chaos.report.corpus import load_case
from tests.helpers import run_tool

pytestmark = pytest.mark.e2e   # whole chaos runs, in processes

WEBHOOK_SECRET = "whsec_" + "reportsTestSecret0123456789abcdef"
API_KEY = "sk_test_" + "reportsTestKey0123456789"
ANON_KEY = "anon_" + "reportsTestAnonKey0123456789"
SIGNATURE_VALUE = re.compile(r"v1=[0-9a-f]{64}")
INVARIANT = "one-ticket-set-per-payment"


@dataclass
class Run:
    dir: Path
    code: int
    terminal: str      # stdout, as a terminal showed it (progress frames included)
    stderr: str

    def file(self, name: str) -> Path:
        return self.dir / "out" / name


def run_on_terminal(*args: str, cwd: Path, env: dict[str, str], timeout: float = 240) -> Run:
    """``python -m chaos ARGS`` with stdout on a pseudo-terminal, as a person sees it."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # 160 columns
    stderr_path = cwd / "stderr.txt"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "chaos", *args], cwd=cwd,
                                   env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                                   stdout=slave, stderr=stderr)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal has closed it
                break
            if not data:
                break
            chunks.append(data)
        else:
            process.kill()
            pytest.fail(f"chaos did not finish within {timeout:g} s")
        code = process.wait(timeout=30)
    finally:
        os.close(master)
    return Run(cwd, code, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n"),
               stderr_path.read_text(errors="replace"))


@pytest.fixture(scope="module")
def bug_run(tmp_path_factory: pytest.TempPathFactory, server_url: str) -> Run:
    """One real run with ``no-dedup`` switched on, every output requested, stdout on a terminal."""
    cwd = tmp_path_factory.mktemp("bug-run")
    (cwd / "out").mkdir()   # outputs go into a folder that exists (the tool creates none)
    return run_on_terminal(
        "--bug", "no-dedup", "--seed", "1", "--examples", "10", "--concurrency", "20",
        "--database-url", server_url, "--verbose",
        "--report", "out/report.json", "--junit", "out/junit.xml", "--html", "out/timeline.html",
        "--log-json", "out/log.jsonl", "--corpus", "out/corpus",
        cwd=cwd, env={"CHAOS_WEBHOOK_SECRET": WEBHOOK_SECRET, "CHAOS_STRIPE_API_KEY": API_KEY,
                      "CHAOS_ANON_KEY": ANON_KEY},
    )


@pytest.fixture(scope="module")
def report(bug_run: Run) -> dict:
    assert bug_run.code == 1, bug_run.terminal + bug_run.stderr
    return json.loads(bug_run.file("report.json").read_text())


@pytest.fixture(scope="module")
def case_path(bug_run: Run, report: dict) -> Path:
    [path] = sorted((bug_run.dir / "out" / "corpus").glob(f"{INVARIANT}-*.json"))
    return path


def the_failure(report: dict) -> dict:
    """The failure of INVARIANT (no-dedup may break more: double tickets can oversell)."""
    [failure] = [f for f in report["failures"] if f["invariant"] == INVARIANT]
    return failure


def test_the_summary_shows_figures_verdicts_steps_rows_rate_and_replay(bug_run: Run,
                                                                      report: dict):
    summary = bug_run.terminal[bug_run.terminal.index("payment-chaos: reference"):]
    for words in ("examples .........", "requests .........", "latency .......... all",
                  "p50", "p95", "max", "in flight ........ ", "invariants",
                  f"FAIL  {INVARIANT}", "PASS  no-lost-payment",
                  f"FAILED {INVARIANT} (reproduced ", "shrunk to 2 requests:",
                  "1. deliver buyer 1's checkout.session.completed (1st copy)",
                  "2. deliver buyer 1's checkout.session.completed (2nd copy)",
                  "replay: python -m chaos replay out/corpus/", "verdict: FAIL",
                  "report: out/report.json", "junit: out/junit.xml", "html: out/timeline.html"):
        assert words in summary, words
    failure = the_failure(report)
    assert f"  broken: {failure['violations'][0]['message']}" in summary
    assert "bought 1 ticket but has 2 in" in failure["violations"][0]["message"]
    row = failure["violations"][0]["rows"][0]      # the rows, as a table under the violation
    assert re.search("^ +" + " +".join(map(re.escape, row)) + "$", summary, re.M), summary
    values = ["null" if v is None else str(v) for v in row.values()]
    assert re.search("^ +" + " +".join(map(re.escape, values)) + "$", summary, re.M), summary
    assert row["tickets"] == 2


def test_progress_is_drawn_on_a_terminal(bug_run: Run):
    frames = [f for f in bug_run.terminal.split("\r\x1b[2K") if f.strip().startswith(("load", "search"))]
    assert frames, bug_run.terminal[:500]
    counts = [tuple(map(int, re.search(r"examples run (\d+) · requests (\d+) · failures (\d+)",
                                       f).groups())) for f in frames]
    assert counts == sorted(counts), "progress only goes forward"
    assert counts[-1][0] >= 10 and counts[-1][1] >= 20
    assert any(INVARIANT in f for f in frames), "failures so far are named"


def test_the_json_report_carries_the_failure_history_and_its_case(report: dict, case_path: Path):
    failure = the_failure(report)
    assert failure["status"] == "FAILED"
    at_target = [op for op in failure["history"] if op["wave"] is not None]   # the schedule
    assert sorted((op["wave"], op["step"], op["status"]) for op in at_target) == \
        [(0, 0, 200), (0, 1, 200)]
    assert all(op["end"] >= op["start"] for op in failure["history"])
    assert failure["case"] == str(Path("out/corpus") / case_path.name)


def test_the_json_report_records_the_first_failure(bug_run: Run, report: dict):
    first = report["first_failure"]
    # the playbook's first story is two copies of one delivery fired together
    assert (first["invariant"], first["phase"], first["example"]) == (INVARIANT, "playbook", 1)
    assert first["example"] < report["examples"]   # the search, shrinking and confirming came after
    assert 0 < first["seconds"] < report["seconds"]
    assert "first failure .... example 1 (playbook) at " in bug_run.terminal


def test_junit_has_one_case_per_invariant_and_the_failure_evidence(bug_run: Run, report: dict):
    root = ET.parse(bug_run.file("junit.xml")).getroot()
    cases = root.findall(".//testcase")
    by_kind: dict[str, list[str]] = {}
    for c in cases:
        by_kind.setdefault(c.get("classname"), []).append(c.get("name"))
    assert sorted(by_kind.pop("payment-chaos.invariants")) == sorted(report["invariants"])
    assert sorted(by_kind.pop("payment-chaos.thresholds", [])) == \
        sorted(report.get("thresholds") or {})
    assert by_kind == {}
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    # one case per invariant, however many distinct bugs broke it
    assert sorted(failed) == sorted({f["invariant"] for f in report["failures"]})
    failure = failed[INVARIANT]
    assert failure.get("message") == the_failure(report)["violations"][0]["message"]
    assert "2. deliver buyer 1's checkout.session.completed (2nd copy)" in failure.text
    assert "replay: python -m chaos replay" in failure.text
    assert root.get("tests") == str(len(cases)) and root.get("failures") == str(len(failed))


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_the_html_timeline_is_self_contained_with_a_lane_per_request(bug_run: Run,
                                                                     report: dict):
    html = bug_run.file("timeline.html").read_text()
    parser = _Tags()
    parser.feed(html)
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    assert not any(k == "src" for _, attrs in parser.tags for k in attrs)
    # links only within the page (a row's id to its lane), never out of it
    assert all(str(attrs["href"]).startswith("#") for _, attrs in parser.tags if "href" in attrs)
    # nothing is fetched: no resource attributes, no CSS urls or imports (URLs the target
    # answered with may appear as text, in a tooltip)
    assert not re.search(r"url\((?!#)|@import", html)
    assert {a.get("xmlns") for t, a in parser.tags if t == "svg"} == {"http://www.w3.org/2000/svg"}
    lanes = [a for t, a in parser.tags if t == "rect" and a.get("class") == "s2xx"]
    assert len(lanes) == sum(f["requests"] for f in report["failures"])
    failure = the_failure(report)
    assert failure["requests"] == 2
    assert len([a for t, a in parser.tags if t == "line" and a.get("class") == "barrier"]) == \
        sum(len(f["schedule"]["waves"]) for f in report["failures"])
    assert "wave 1" in html and failure["violations"][0]["message"] in html
    assert failure["violations"][0]["rows"][0]["payment_intent"] in html


def test_the_corpus_case_is_readable_and_says_what_a_replay_must_show(case_path: Path,
                                                                      report: dict):
    data = json.loads(case_path.read_text())
    assert data["invariant"] == INVARIANT
    assert data["target"] == {"kind": "reference", "bugs": ["no-dedup"]}
    assert data["seed"] == 1
    assert data["scenario"] == the_failure(report)["schedule"]
    assert data["steps"] == the_failure(report)["steps"]
    assert [(e["bugs"], e["outcome"]) for e in data["expect"]] == [(["no-dedup"], "breaks"),
                                                                  ([], "holds")]
    assert load_case(case_path).scenario.requests == 2


def test_the_json_log_has_every_event_and_no_secret(bug_run: Run):
    events = [json.loads(line) for line in bug_run.file("log.jsonl").read_text().splitlines()]
    names = [e["event"] for e in events]
    for name in ("run.start", "target.ready", "example", "request", "finding", "run.end"):
        assert name in names, name
    ready = next(e for e in events if e["event"] == "target.ready")
    assert ready["target"]["webhook_secret"] == "[redacted]"
    assert ready["target"].get("anon_key", "[redacted]") == "[redacted]"


def test_no_output_of_the_run_carries_a_secret(bug_run: Run, report: dict):
    outputs = {"terminal": bug_run.terminal, "stderr": bug_run.stderr}
    for path in (bug_run.dir / "out").rglob("*"):
        if path.is_file():
            outputs[str(path)] = path.read_text()
    cases = len(report["failures"])
    assert len(outputs) == 2 + 4 + cases, sorted(outputs)   # report, junit, html, log, cases
    assert "[redacted]" in bug_run.stderr, "the verbose log shows where a secret was"
    for name, text in outputs.items():
        for secret in (WEBHOOK_SECRET, API_KEY, ANON_KEY):
            assert secret not in text, f"{name} leaks {secret[:8]}..."
        assert not SIGNATURE_VALUE.search(text), f"{name} leaks a Stripe-Signature value"


def test_replaying_the_case_fails_the_same_way(bug_run: Run, case_path: Path, server_url: str):
    result = run_tool("replay", str(case_path), "--database-url", server_url, cwd=bug_run.dir)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAILED {case_path}: {INVARIANT} broke in 3 of 3 runs" in result.stdout
    assert re.search(r"broken: payment \S+ \(buyer 1\) bought 1 ticket but has 2 in", result.stdout)


def test_with_the_bug_off_the_case_passes_and_the_bug_is_still_caught(bug_run: Run,
                                                                      case_path: Path,
                                                                      server_url: str):
    result = run_tool("replay", "--expect", str(case_path), "--database-url", server_url,
                      cwd=bug_run.dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"PASSED {case_path}: {INVARIANT}" in result.stdout
    assert f"ok     with no-dedup: {INVARIANT} broke in 3 of 3 runs" in result.stdout
    assert "ok     without bugs: every invariant held in 3 of 3 runs" in result.stdout


def test_an_expectation_that_is_not_met_fails_the_replay(tmp_path: Path, case_path: Path,
                                                        server_url: str):
    data = json.loads(case_path.read_text())
    data["expect"] = [{"bugs": [], "outcome": "breaks", "invariant": INVARIANT,
                       "why": "a wrong expectation: the correct service does not break"}]
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(data))
    result = run_tool("replay", "--expect", "--runs", "1", str(wrong), "--database-url",
                      server_url, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAILED {wrong}" in result.stdout
    assert f"MISSED without bugs: {INVARIANT} broke in 0 of 1 runs" in result.stdout


def test_a_passing_run_writes_passing_outputs_and_no_case(tmp_path: Path, server_url: str):
    result = run_tool("--examples", "5", "--seed", "2", "--concurrency", "10",
                      "--database-url", server_url, "--junit", "junit.xml",
                      "--html", "timeline.html", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\r" not in result.stdout and "\x1b" not in result.stdout, "no progress off a terminal"
    assert "verdict: PASS" in result.stdout
    assert json.loads((tmp_path / "chaos-report.json").read_text())["first_failure"] is None
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert root.get("failures") == "0" and root.get("errors") == "0"
    assert int(root.get("tests")) == len(root.findall(".//testcase")) >= 2
    html = (tmp_path / "timeline.html").read_text()
    assert "No invariant broke in" in html and ">PASS<" in html
    assert not (tmp_path / "tests" / "regressions").exists()


def test_a_run_that_cannot_start_still_writes_its_reports(tmp_path: Path):
    result = run_tool("--database-url", "postgresql://127.0.0.1:1/x", "--junit", "junit.xml",
                      "--html", "timeline.html", cwd=tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    root = ET.parse(tmp_path / "junit.xml").getroot()
    [case] = [c for c in root.iter("testcase") if c.get("name") == "run"]
    assert root.get("errors") == "1" and root.get("failures") == "0"
    # the invariants were never checked: skipped, not passed
    invariants = [c for c in root.iter("testcase") if c.get("classname", "").endswith("invariants")]
    assert invariants and all(c.find("skipped") is not None for c in invariants)
    assert "cannot connect to the database" in case.find("error").get("message")
    html = (tmp_path / "timeline.html").read_text()
    assert ">ERROR<" in html and "cannot connect to the database" in html
