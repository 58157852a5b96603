"""JUnit XML for CI: one test case per invariant and one per threshold.

CI systems (GitHub, GitLab, Jenkins) show JUnit results without any plugin
of ours, so a broken invariant appears as a failed test named after it, with
the shrunk steps, the rows and the replay command as its failure text. A run
that could not finish (verdict ``error``) is one test case in error. The
report's ``notes`` are the thresholds suite's ``system-out``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from chaos.log import redactor
from chaos.report._fields import Verdict, target_line, verdicts
from chaos.report.summary import failure_lines

SUITE = "payment-chaos"


def junit(data: Mapping[str, Any]) -> str:
    """The report as a JUnit XML document (a ``<testsuites>`` root, UTF-8)."""
    failures_by_invariant: dict[str, list[Mapping[str, Any]]] = {}
    for f in data.get("failures") or []:
        failures_by_invariant.setdefault(str(f.get("invariant")), []).append(f)

    promises = {str(p["invariant"]): p for p in data.get("promises") or []
                if isinstance(p, Mapping) and p.get("invariant")}
    root = ET.Element("testsuites", name=SUITE)
    seconds = f"{float(data.get('seconds') or 0):.3f}"
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for title in ("invariants", "thresholds"):
        checks = verdicts(data.get(title))
        if title == "invariants":
            listed = {c.name for c in checks}
            checks += [Verdict(name, "fail") for name in failures_by_invariant
                       if name not in listed and any(f.get("status") == "FAILED"
                                                     for f in failures_by_invariant[name])]
        if not checks:
            continue
        suite = ET.SubElement(root, "testsuite", name=f"{SUITE}.{title}", time=seconds)
        _properties(suite, data)
        for check in checks:
            kind = _case(suite, title, check, failures_by_invariant.get(check.name, []),
                         promises.get(check.name))
            totals["tests"] += 1
            if kind:
                totals[kind] += 1
        _counts(suite)
        notes = [n for n in data.get("notes") or [] if isinstance(n, Mapping)]
        if title == "thresholds" and notes:
            ET.SubElement(suite, "system-out").text = "\n".join(
                f"NOTE {n.get('name', '?')}: {n.get('message', '')}" for n in notes)
    if data.get("verdict") == "error" or data.get("error"):
        suite = ET.SubElement(root, "testsuite", name=f"{SUITE}.run", time=seconds)
        _properties(suite, data)
        case = ET.SubElement(suite, "testcase", classname=f"{SUITE}.run", name="run", time=seconds)
        ET.SubElement(case, "error", message=str(data.get("error") or "the run did not finish"),
                      type="error")
        _counts(suite)
        totals["tests"] += 1
        totals["errors"] += 1
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", seconds)
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode", xml_declaration=False)
    return redactor.text('<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n")


def _properties(suite: ET.Element, data: Mapping[str, Any]) -> None:
    props = ET.SubElement(suite, "properties")
    for name, value in (("target", target_line(data)), ("seed", data.get("seed")),
                        ("examples", data.get("examples")), ("verdict", data.get("verdict"))):
        ET.SubElement(props, "property", name=name, value="" if value is None else str(value))


def _case(suite: ET.Element, title: str, check: Verdict, failures: list[Mapping[str, Any]],
          promise: Mapping[str, Any] | None = None) -> str | None:
    """Add one test case; return "failures", "errors", "skipped" or None (passed).
    An invariant's case carries the promise it checks as a property."""
    case = ET.SubElement(suite, "testcase", classname=f"{SUITE}.{title}", name=check.name,
                         time="0")
    if promise is not None:
        props = ET.SubElement(case, "properties")
        for key in ("promise", "why"):
            ET.SubElement(props, "property", name=key, value=str(promise.get(key, "")))
    if check.verdict == "skipped":  # the target does not make the promise it checks
        why = promise.get("why", "") if promise is not None else ""
        ET.SubElement(case, "skipped", message=f"not checked: the target does not promise it "
                                               f"({why})")
        return "skipped"
    text = "\n\n".join("\n".join(failure_lines(f)) for f in failures)
    scalars = check.scalars()
    if check.failed:
        first = next((v for f in failures for v in f.get("violations") or []), None)
        message = (first.get("message") if isinstance(first, Mapping) else None) \
            or scalars or f"{check.name} failed"
        element = ET.SubElement(case, "failure", message=str(message), type=check.name)
        element.text = text or scalars
        return "failures"
    if check.passed or check.verdict == "flaky":
        if text:  # a flaky failure was seen but did not reproduce: pass, with the evidence
            ET.SubElement(case, "system-out").text = text
        elif scalars:
            ET.SubElement(case, "system-out").text = scalars
        return None
    if check.verdict == "unknown":  # the run ended in error before checking it
        ET.SubElement(case, "skipped", message="not checked: the run ended in error")
        return "skipped"
    element = ET.SubElement(case, "error", message=f"{check.name}: verdict {check.verdict}",
                            type=check.verdict)
    element.text = text or scalars
    return "errors"


def _counts(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
