"""The renderers read report data generically: fields they know are shown
as designed, invariants and thresholds they have never heard of are listed
with their verdicts, and missing fields never break them.

The report data here is written by hand so that every verdict shape and
status class appears; the real-run tests are in ``test_reports.py``.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from chaos.report import Progress, junit, summary, timeline


def op(index, *, wave, step, start, end, status, outcome="ok", door="target", kind="deliver",
       body=""):
    return {"index": index, "kind": kind, "door": door, "method": "POST", "path": "/hook",
            "wave": wave, "step": step, "start": start, "end": end, "status": status,
            "outcome": outcome, "body": body, "error": None if status else "no answer", "ref": {}}


SCHEDULE = {"buyers": [{"quantity": 1}],
            "waves": [[{"kind": "deliver", "buyer": 0}, {"kind": "deliver", "buyer": 0, "copy": 1}],
                      [{"kind": "deliver", "buyer": 0, "copy": 2},
                       {"kind": "deliver", "buyer": 0, "copy": 3}]]}

DATA = {
    "verdict": "fail", "examples": 7, "seed": 9, "seconds": 1.5,
    "target": {"kind": "reference", "bugs": ["no-dedup"]},
    "invariants": {
        "one-ticket-set-per-payment": {"verdict": "fail", "evidence": [{"x": 1}]},
        "no-lost-payment": "pass",
        "refund-voids-tickets": {"verdict": "unknown"},
        "no-lost-payment-twice": "flaky",
    },
    "profile": "ci", "stopped": "max-seconds",
    "thresholds": {"http-error-rate": {"verdict": "pass", "value": 0.0, "limit": "< 1%"},
                   "order-rate": {"verdict": "pass", "value": 0.125, "limit": 0.5, "orders": 3},
                   "http-p95": {"verdict": "fail", "value_ms": 6100.5, "limit_ms": 5000}},
    "failures": [{
        "invariant": "one-ticket-set-per-payment", "status": "FAILED", "reproduced": "4/5",
        "phase": "search", "requests": 4, "schedule": SCHEDULE, "note": "not fully shrunk",
        "steps": ["buyer 1 checks out and pays for 1 ticket of type 1", "wave 1 (2 requests):"],
        "violations": [{"message": "payment pi_1 has 2 ticket sets <script>alert(1)</script>",
                        "rows": [{"payment_intent": "pi_1", "orders": 2, "tickets": 2}]}],
        "history": [
            op(0, wave=None, step=None, start=10.000, end=10.004, status=200, door="stripe",
               kind="stripe.create_session"),
            op(1, wave=0, step=0, start=10.010, end=10.050, status=200),
            op(2, wave=0, step=1, start=10.011, end=10.060, status=500),
            op(3, wave=1, step=2, start=10.070, end=10.080, status=409),
            op(4, wave=1, step=3, start=10.071, end=10.200, status=None, outcome="info",
               body="<b>partial</b>"),
        ],
        "replay": "nox -s chaos -- replay tests/regressions/case.json",
    }],
    "http": {"requests": 40, "failed": 2, "error_rate": 0.05, "avg_ms": 12.0, "p50_ms": 10.0,
             "p95_ms": 30.0, "max_ms": 130.0, "retries": 3},
    "concurrency": {"requested": 50, "peak_in_flight": 48, "client_peak_in_flight": 50,
                    "start_skew_ms": 2.5, "start_skew_p50_ms": 0.5},
}


def test_the_summary_lists_every_invariant_and_threshold_with_its_verdict():
    text = summary(DATA, files={"report": "r.json", "junit": None})
    for line in ("payment-chaos: reference with bugs: no-dedup (seed 9, profile ci)",
                 "  examples ......... 7 in 1.5 s (stopped early: max-seconds)",
                 "    FLAKY    no-lost-payment-twice",
                 "  (not fully shrunk)",
                 "    FAIL     one-ticket-set-per-payment",
                 "    PASS     no-lost-payment",
                 "    UNKNOWN  refund-voids-tickets",
                 "    PASS  http-error-rate  value 0.00%, limit < 1%",
                 "    FAIL  http-p95         value 6100.5 ms, limit 5000 ms",
                 "    PASS  order-rate       value 12.50%, limit 50.00%, orders 3",
                 "  requests ......... 40 to the target (2 failed, 5.00%: no answer, 5xx, or a "
                 "4xx it had no reason to get)",
                 "  latency .......... all 40: avg 12.0 ms  p50 10.0 ms  p95 30.0 ms  max 130.0 ms",
                 "  retries .......... 3",
                 "  start skew p50 ... 0.5 ms",
                 "FAILED one-ticket-set-per-payment (reproduced 4/5), shrunk to 4 requests:",
                 "    payment_intent  orders  tickets",
                 "    pi_1            2       2",
                 "  replay: nox -s chaos -- replay tests/regressions/case.json",
                 "verdict: FAIL", "report: r.json"):
        assert line in text.splitlines(), line
    assert "junit:" not in text


def test_the_summary_explains_its_numbers_where_they_are_shown():
    data = {**DATA, "examples": 29, "max_examples": 5,
            "examples_by_phase": {"load": 1, "playbook": 18, "search": 5, "minimize": 0,
                                  "confirm": 5},
            "http": {**DATA["http"], "under_fault": 6, "failed_under_fault": 2},
            "thresholds": {"http-error-rate": {"verdict": "pass", "value": 0.0, "limit": 0.01,
                                               "errors": 0, "requests": 34,
                                               "left_out_under_fault": 6},
                           "http-p95": {"verdict": "pass", "value_ms": 20.0, "limit_ms": 5000,
                                        "requests": 34}}}
    lines = summary(data).splitlines()
    for line in ("  of which ......... 1 load wave + 18 playbook + 5 search + 5 confirming",
                 "  search ........... drew at most 5 scenarios (--examples or the profile); its "
                 "other runs retry races and shrink failures",
                 "  under fault ...... 6 sent while Stripe faults were armed (2 of them failed): "
                 "the thresholds leave these out",
                 "  latency .......... all 40: avg 12.0 ms  p50 10.0 ms  p95 30.0 ms  max 130.0 ms",
                 "  thresholds (judged on 34 requests, 6 under armed faults left out; their p95, "
                 "not the latency line's)"):
        assert line in lines, line
    html = timeline(data)   # the page says the same
    for words in ("1 load wave + 18 playbook + 5 search + 5 confirming",
                  "6 sent while Stripe faults were armed (2 of them failed)",
                  "judged on 34 requests, 6 under armed faults left out"):
        assert words in html, words


@pytest.mark.parametrize("data", [{}, {"verdict": "pass"}, {"failures": [{}]},
                                  {"invariants": ["odd"], "thresholds": 3, "http": {"x": 1}}])
def test_renderers_tolerate_missing_and_odd_fields(data):
    assert "verdict:" in summary(data)
    ET.fromstring(junit(data))
    assert timeline(data).startswith("<!DOCTYPE html>")


def test_junit_has_a_case_per_invariant_and_per_threshold():
    root = ET.fromstring(junit(DATA))
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    assert sorted(cases) == [
        ("payment-chaos.invariants", "no-lost-payment"),
        ("payment-chaos.invariants", "no-lost-payment-twice"),
        ("payment-chaos.invariants", "one-ticket-set-per-payment"),
        ("payment-chaos.invariants", "refund-voids-tickets"),
        ("payment-chaos.thresholds", "http-error-rate"),
        ("payment-chaos.thresholds", "http-p95"),
        ("payment-chaos.thresholds", "order-rate"),
    ]
    broken = cases[("payment-chaos.invariants", "one-ticket-set-per-payment")].find("failure")
    assert broken.get("message").startswith("payment pi_1 has 2 ticket sets")
    assert "replay: nox -s chaos -- replay" in broken.text
    p95 = cases[("payment-chaos.thresholds", "http-p95")].find("failure")
    assert p95.get("message") == "value 6100.5 ms, limit 5000 ms"
    # "unknown": never checked (the run ended in error first): skipped, not passed
    assert cases[("payment-chaos.invariants", "refund-voids-tickets")].find("skipped") is not None
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == \
        ("7", "2", "0", "1")


def test_the_notes_are_in_the_summary_the_junit_and_the_timeline():
    note = {"name": "answered-5xx-after-commit", "message": "every signed delivery answered 5xx"}
    text = summary({**DATA, "notes": [note]})
    assert "  notes\n    NOTE  answered-5xx-after-commit: every signed delivery answered 5xx" in text
    assert "notes" not in summary(DATA)
    root = ET.fromstring(junit({**DATA, "notes": [note]}))
    [suite] = [s for s in root.iter("testsuite") if s.get("name") == "payment-chaos.thresholds"]
    assert suite.find("system-out").text == \
        "NOTE answered-5xx-after-commit: every signed delivery answered 5xx"
    assert ET.fromstring(junit(DATA)).find(".//testsuite/system-out") is None
    page = timeline({**DATA, "notes": [{**note, "message": "5xx <b>after</b> commit"}]})
    assert "<strong>note answered-5xx-after-commit:</strong> 5xx &lt;b&gt;after&lt;/b&gt; commit" \
        in page
    assert "answered-5xx-after-commit" not in timeline(DATA)


def test_promises_checked_and_not_are_listed_with_why_in_summary_and_junit():
    from chaos.promises import Promises
    from chaos.report import Report

    data = Report(target={"kind": "config", "name": "shop"}, seed=1, requested_concurrency=5,
                  verdict="pass", extra_invariants=["one-admission-per-seat"],
                  promises=Promises(idempotency_header="", signatures="refetch")).to_data()
    assert data["invariants"]["one-session-per-idempotency-key"] == "skipped"
    assert data["invariants"]["forged-delivery-rejected"] == "pass"
    by_name = {p["invariant"]: p for p in data["promises"]}
    assert by_name["one-session-per-idempotency-key"] == {
        "invariant": "one-session-per-idempotency-key", "checked": False,
        "promise": "no idempotency key is taken at checkout",
        "why": 'target.checkout.idempotency_header = ""'}
    assert by_name["forged-delivery-rejected"]["why"] == 'promises.signatures = "refetch"'
    assert by_name["one-admission-per-seat"]["checked"] is True
    text = summary(data)
    assert "  invariants and the promise each checks" in text
    assert re.search(r"SKIPPED +one-session-per-idempotency-key +not promised: "
                     r'target.checkout.idempotency_header = ""', text)
    assert re.search(r"PASS +forged-delivery-rejected +forged deliveries may be acknowledged.*"
                     r'\(promises.signatures = "refetch"\)', text)
    assert re.search(r"PASS +one-ticket-set-per-payment +a paid payment holds at most one full "
                     r"ticket set\n", text)
    assert re.search(r"PASS +one-admission-per-seat +its query returns no rows\n", text)
    root = ET.fromstring(junit(data))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    skipped = cases["one-session-per-idempotency-key"].find("skipped")
    assert skipped.get("message") == ("not checked: the target does not promise it "
                                      '(target.checkout.idempotency_header = "")')
    assert cases["no-lost-payment"].find("skipped") is None
    assert root.get("skipped") == "1"


def test_junit_reports_a_run_that_could_not_finish_as_an_error():
    root = ET.fromstring(junit({"verdict": "error", "error": "the target answered none"}))
    [case] = root.iter("testcase")
    assert case.get("name") == "run"
    assert case.find("error").get("message") == "the target answered none"


def test_the_timeline_draws_lanes_bars_by_status_and_wave_barriers():
    html = timeline(DATA)
    for css in ("s2xx", "s5xx", "s4xx", "sinfo"):
        assert f'<rect class="{css}"' in html, css
    assert '<rect class="s2xx setup-bar"' in html       # the set-up call, in its own lane
    assert html.count('class="barrier"') == 2             # one per wave
    assert ">wave 1<" in html and ">wave 2<" in html
    for label in ("1. deliver buyer 1&#x27;s checkout.session.completed (1st copy)",
                  "4. deliver buyer 1&#x27;s checkout.session.completed (4th copy)",
                  "set-up: create session ×1 (fake Stripe)"):
        assert label in html, label
    assert "500 · 49.0 ms" in html and "no answer · 129.0 ms" in html
    assert "not fully shrunk" in html and "stopped early: max-seconds" in html
    assert "<script>" not in html and "&lt;script&gt;" in html   # the target's words are escaped
    assert "<b>partial</b>" not in html


def test_the_timeline_draws_recorded_barriers_and_offsets():
    history = [op(0, wave=0, step=0, start=10.010, end=10.050, status=200),
               {**op(1, wave=0, step=1, start=10.030, end=10.060, status=200), "offset": 0.02},
               op(2, wave=1, step=2, start=10.070, end=10.080, status=200)]
    failure = {**DATA["failures"][0], "history": history,
               "waves": [{"wave": 1, "barrier": 10.065}, {"wave": None, "barrier": 9.0}]}
    html = timeline({**DATA, "failures": [failure]})
    barriers = re.findall(r'<line class="barrier" x1="([\d.]+)"', html)
    bars = re.findall(r'<rect class="s2xx" x="([\d.]+)"', html)
    # wave 1: no record, so its first request (offset 0) marks it; wave 2: the recorded barrier,
    # 5 ms before its request
    assert float(barriers[0]) == float(bars[0])
    assert float(barriers[1]) < float(bars[2])


def test_the_timeline_labels_requests_from_the_op_when_the_schedule_is_unknown():
    failure = {**DATA["failures"][0], "schedule": {"steps": "a future format"}}
    html = timeline({**DATA, "failures": [failure]})
    assert "2. deliver POST /hook" in html


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Result:
    def __init__(self, requests: int, broken: list[str]) -> None:
        self.history = type("H", (), {"ops": [type("Op", (), {"door": "target"})()] * requests})()
        self.violations = [type("V", (), {"invariant": name})() for name in broken]


def test_progress_redraws_one_line_on_a_terminal_at_most_every_interval():
    now = [0.0]
    out = _Terminal()
    progress = Progress(out, interval=0.1, clock=lambda: now[0])
    progress.phase("search")
    progress.example(_Result(3, []))          # within the interval: counted, not drawn
    now[0] = 0.5
    progress.example(_Result(2, ["no-lost-payment"]))
    progress.close()
    frames = out.getvalue().split("\r\x1b[2K")
    assert frames == ["", "  search · 0.0 s · examples run 0 · requests 0 · failures 0",
                      "  search · 0.5 s · examples run 2 · requests 5 · failures 1 (no-lost-payment)",
                      ""]


def test_progress_is_silent_when_not_on_a_terminal():
    out = io.StringIO()
    progress = Progress(out)
    progress.phase("search")
    progress.example(_Result(3, ["x"]))
    progress.close()
    assert out.getvalue() == "" and progress.examples == 1 and progress.requests == 3


def linked_failure() -> dict:
    """A refund that left a ticket valid: an order row and a request row in one violation."""
    refund = {**op(2, wave=0, step=0, start=10.01, end=10.02, status=200),
              "ref": {"buyer": 0, "event": "charge.refunded", "event_id": "evt_9",
                      "payment_intent": "pi_9", "session": "cs_9"}}
    completion = {**op(3, wave=0, step=1, start=10.01, end=10.03, status=200),
                  "ref": {"buyer": 0, "event": "checkout.session.completed", "event_id": "evt_8",
                          "payment_intent": "pi_9", "session": "cs_9"}}
    rows = [{"checkout_session": "cs_9", "payment_intent": "pi_9", "orders": 1, "tickets": 1},
            {"step": 1, "kind": "deliver", "event": "charge.refunded", "event_id": "evt_9",
             "payment_intent": "pi_9", "signature": "valid", "status": 200, "outcome": "ok"}]
    return {**DATA["failures"][0], "invariant": "refund-voids-tickets",
            "violations": [{"message": "payment pi_9 was refunded", "rows": rows}],
            "history": [op(0, wave=None, step=None, start=10.0, end=10.005, status=200),
                        refund, completion],
            "ids": [{"buyer": 1, "ticket_type_no": 1, "ticket_type": "chaos-x-000001-tt1",
                     "checkout_session": "cs_9", "payment_intent": "pi_9"}]}


def test_evidence_rows_are_grouped_by_kind_and_numbered_like_the_steps():
    lines = summary({**DATA, "failures": [linked_failure()]}).splitlines()
    orders = next(i for i, line in enumerate(lines) if line.split()[:2] == ["checkout_session",
                                                                             "payment_intent"])
    assert lines[orders + 1].split() == ["cs_9", "pi_9", "1", "1"]
    assert lines[orders + 2].split()[:4] == ["step", "kind", "event", "event_id"]
    assert lines[orders + 3].split()[:4] == ["1", "deliver", "charge.refunded", "evt_9"]
    assert not any("null" in line for line in lines[orders:orders + 4])
    assert "    buyer 1: session cs_9, payment pi_9, ticket type 1 = chaos-x-000001-tt1" in lines


class Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, str] = {}      # element id -> its tag
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        if "id" in found:
            self.ids[found["id"]] = tag
        if tag == "a" and str(found.get("href", "")).startswith("#"):
            self.links.append(found["href"][1:])


def test_rows_link_to_the_lanes_and_ids_of_their_run():
    html = timeline({**DATA, "failures": [linked_failure()]})
    page = Anchors()
    page.feed(html)
    # the row's event and payment intent: on the lane that delivered them; the step: its
    # lane; the session and ticket type: in the run's ids key; two tables, not one
    assert sorted(set(page.links)) == ["f1-cs_9", "f1-evt_9", "f1-pi_9", "f1-step_1"]
    assert {link: page.ids.get(link) for link in page.links} == \
        {"f1-cs_9": "code", "f1-evt_9": "tspan", "f1-pi_9": "tspan", "f1-step_1": "text"}
    assert html.count("<table><tr><th>") == 2
