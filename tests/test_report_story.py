"""Every failure is one coherent story, told the same way by every output.

One real run with two bugs switched on (``no-dedup`` and ``order-dependent``:
two broken invariants). For each failure, the rows come from the same run as
its timeline: every id the evidence names (checkout session, payment intent,
event, ticket type) is labelled in that failure's timeline, the rows link to
those labels, and the terminal summary, the JSON report, the JUnit file and
the HTML page carry the same violations with the same ids. Then headless
Chromium renders the page: a non-empty screenshot, and in the DOM it built
every link of a row lands on a lane's label or the run's ids key.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from chaos.report._fields import ID_COLUMNS
from tests.helpers import run_tool

pytestmark = pytest.mark.e2e   # a whole chaos run in a process; Chromium


@dataclass
class Outputs:
    stdout: str
    report: dict[str, Any]
    junit: ET.Element
    html: str
    html_path: Path


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory, server_url: str) -> Outputs:
    cwd = tmp_path_factory.mktemp("story")
    (cwd / "out").mkdir()   # outputs go into a folder that exists (the tool creates none)
    result = run_tool("--bug", "no-dedup", "--bug", "order-dependent", "--seed", "1",
                      "--examples", "5", "--concurrency", "20", "--database-url", server_url,
                      "--report", "out/report.json", "--junit", "out/junit.xml",
                      "--html", "out/timeline.html", "--corpus", "out/corpus", cwd=cwd)
    assert result.returncode == 1, result.stdout + result.stderr
    out = cwd / "out"
    return Outputs(result.stdout, json.loads((out / "report.json").read_text()),
                   ET.parse(out / "junit.xml").getroot(), (out / "timeline.html").read_text(),
                   out / "timeline.html")


def evidence_ids(failure: dict[str, Any]) -> set[str]:
    """The ids the failure's rows name (sessions, payment intents, events, ticket types)."""
    return {str(row[column]) for v in failure["violations"] for row in v["rows"]
            for column in ID_COLUMNS if row.get(column) is not None}


def html_sections(html: str) -> list[str]:
    """The HTML page cut into its failures' sections, in order."""
    parts = re.split(r'<h2 id="failure-\d+">', html)[1:]
    return [part.split('<h2 id="checks">')[0] for part in parts]


def terminal_blocks(stdout: str) -> dict[str, str]:
    """The summary's failure blocks, by invariant."""
    blocks = re.findall(r"^(?:FAILED|FLAKY) (\S+) \(.*?(?=^\n|\Z)", stdout, re.M | re.S)
    texts = re.split(r"^(?=FAILED |FLAKY )", stdout, flags=re.M)[1:]
    return {name: text.split("\n\n")[0] for name, text in zip(blocks, texts, strict=True)}


class Page(HTMLParser):
    """Element ids (with their tags) and in-page links of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, str] = {}
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids[str(found["id"])] = tag
        if tag == "a" and str(found.get("href", "")).startswith("#"):
            self.links.append(str(found["href"])[1:])


def test_both_bugs_break_their_invariants(outputs: Outputs):
    broken = {f["invariant"] for f in outputs.report["failures"] if f["status"] == "FAILED"}
    assert {"one-ticket-set-per-payment", "refund-voids-tickets"} <= broken


def test_every_id_of_a_failure_s_evidence_is_in_that_failure_s_timeline(outputs: Outputs):
    sections = html_sections(outputs.html)
    assert len(sections) == len(outputs.report["failures"])
    for failure, section in zip(outputs.report["failures"], sections, strict=True):
        ids = evidence_ids(failure)
        assert ids, failure["violations"]
        # the JSON: the history and ids of the same run
        told = json.dumps([failure["history"], failure["ids"]])
        assert {i for i in ids if i not in told} == set(), failure["invariant"]
        # the HTML: the lanes and the ids key under "timeline"
        timeline = section[section.index('-timeline">'):]
        assert {i for i in ids if escape(i) not in timeline} == set(), failure["invariant"]


def test_the_terminal_json_junit_and_html_tell_the_same_story(outputs: Outputs):
    blocks = terminal_blocks(outputs.stdout)
    cases = {c.get("name"): c for c in outputs.junit.iter("testcase")}
    for failure, section in zip(outputs.report["failures"], html_sections(outputs.html),
                                strict=True):
        name = failure["invariant"]
        junit_text = cases[name].find("failure").text
        for v in failure["violations"]:
            for told in (blocks[name], junit_text):
                assert f"broken: {v['message']}" in told, name
            assert escape(v["message"]) in section, name
        for i in evidence_ids(failure):
            assert i in blocks[name] and i in junit_text, (name, i)
        # steps as printed, in every output
        for step in failure["steps"]:
            assert step in blocks[name] and step in junit_text and escape(step) in section
        # one kind of row per table: order rows and request rows never share one
        for table in re.findall(r"<table><tr>(.*?)</tr>", section):
            headers = set(re.findall(r"<th>(.*?)</th>", table))
            assert not ({"orders", "capacity"} & headers and "step" in headers), headers


def test_every_id_in_a_row_links_to_its_label(outputs: Outputs):
    page = Page()
    page.feed(outputs.html)
    assert page.links and all(link in page.ids for link in page.links), \
        [link for link in page.links if link not in page.ids]
    for n, failure in enumerate(outputs.report["failures"], 1):
        for i in evidence_ids(failure):
            anchor = f"f{n}-" + re.sub(r"[^A-Za-z0-9_-]", "_", i)
            assert anchor in page.links, (failure["invariant"], i)


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Chromium is missing: apt-get install -y chromium (nox -s timeline "
                           "installs it)")
def test_chromium_renders_the_page_and_its_rows_link_to_lanes(outputs: Outputs, tmp_path: Path):
    # Chromium's singleton socket path must be short: its scratch folder is one in /tmp
    with tempfile.TemporaryDirectory(prefix="cr-", dir="/tmp") as short:
        check_in_chromium(outputs, png=tmp_path / "timeline.png", profile=Path(short) / "p",
                          scratch=Path(short))


def check_in_chromium(outputs: Outputs, *, png: Path, profile: Path, scratch: Path) -> None:
    browser = str(shutil.which("chromium"))
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars"]
    env = {**os.environ, "TMPDIR": str(scratch)}   # Chromium's scratch files stay here
    shot = subprocess.run([*flags, "--window-size=1280,1000", f"--screenshot={png}",
                           outputs.html_path.as_uri()], capture_output=True, text=True,
                          timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert png.exists(), shot.stderr[-800:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 1000) and len(data) > 20_000   # a page, not a blank
    # the DOM as Chromium built it: every row's link lands on a lane label (SVG text or
    # tspan) or on the run's ids key, and the lanes carry the rows' payment intents
    dom = subprocess.run([*flags, "--dump-dom", outputs.html_path.as_uri()],
                         capture_output=True, text=True, timeout=120, env=env,
                         stdin=subprocess.DEVNULL).stdout
    page = Page()
    page.feed(dom)
    assert page.links
    assert {page.ids.get(link) for link in page.links} <= {"text", "tspan", "code"}
    for n, failure in enumerate(outputs.report["failures"], 1):
        for row in (r for v in failure["violations"] for r in v["rows"]):
            if row.get("payment_intent") and f"f{n}-{row['payment_intent']}" in page.ids:
                assert page.ids[f"f{n}-{row['payment_intent']}"] in ("tspan", "code")
