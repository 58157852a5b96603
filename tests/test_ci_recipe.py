"""The CI recipe for a user's own repository (examples/ci/), run the way GitHub
Actions runs it: the workflow's ``run:`` steps, read from the YAML and executed
in order by bash (``-eo pipefail``, as GitHub does), a failed step skipping
every later step but the ``if: always()`` ones.

The "user's repository" is a temporary folder holding the box office
(tests/boxoffice/, with its chaos.toml), the workflow and its script where the
recipe says to copy them, and one committed case. The tool is installed by the
recipe's own install step from a copy of this checkout, into its own venv; the
machine's PostgreSQL stands in for the service container.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaos.database import throwaway_schema
from chaos.report.corpus import save_case
from strategies import Buyer, Delivery, Scenario

pytestmark = pytest.mark.e2e   # installs the tool, starts the service, runs searches

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "examples" / "ci"
WORKFLOW = ".github/workflows/payment-chaos.yml"
SCRIPT = ".github/payment-chaos/chaos-ci.sh"
CONFIG = "tests/boxoffice/chaos.toml"
#: the classic duplicate: two copies of one completion, together
DUPLICATE = Scenario(buyers=(Buyer(),), waves=((Delivery(0), Delivery(0, copy=1)),))


@dataclass(frozen=True)
class Step:
    name: str
    run: str
    env: dict[str, str]
    always: bool


def workflow(path: Path) -> tuple[dict[str, Any], dict[str, Any], list[Step]]:
    """The workflow document, its one job, and the job's ``run:`` steps in order."""
    doc = yaml.safe_load(path.read_text())
    job = doc["jobs"]["chaos"]          # the per-change job (the nightly ones: test below)
    steps = [Step(s.get("name", s["run"]), s["run"], {k: str(v) for k, v in s.get("env", {}).items()},
                  "always()" in str(s.get("if", "")))
             for s in job["steps"] if "run" in s]
    return doc, job, steps


def run_steps(steps: list[Step], *, env: dict[str, str], cwd: Path
              ) -> dict[str, subprocess.CompletedProcess[str] | None]:
    """Each step as GitHub runs it; None for a step skipped after a failure."""
    results: dict[str, subprocess.CompletedProcess[str] | None] = {}
    failed = False
    for step in steps:
        if failed and not step.always:
            results[step.name] = None
            continue
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step.run],
                              cwd=cwd, env={**env, **step.env}, capture_output=True, text=True,
                              timeout=600, stdin=subprocess.DEVNULL)
        results[step.name] = done
        failed = failed or done.returncode != 0
    return results


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def user_repo(tmp_path: Path) -> Path:
    """A repository of the user's: their service and chaos.toml, the recipe copied in as
    its header says, one committed case."""
    repo = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "tests" / "boxoffice", repo / "tests" / "boxoffice", ignore=ignore)
    (repo / "tests" / "__init__.py").write_text("")
    (repo / WORKFLOW).parent.mkdir(parents=True)
    shutil.copy(RECIPE / "payment-chaos.yml", repo / WORKFLOW)
    (repo / SCRIPT).parent.mkdir(parents=True)
    shutil.copy(RECIPE / "chaos-ci.sh", repo / SCRIPT)
    save_case(invariant="one-ticket-set-per-payment",
              target={"kind": "config", "name": "box office", "config": CONFIG}, seed=1,
              scenario=DUPLICATE, found={"status": "FAILED", "reproduced": "5/5"},
              directory=repo / "tests" / "chaos-cases")
    return repo


@pytest.fixture
def tool_source(tmp_path: Path) -> Path:
    """This checkout as pip would get it (a copy, so the build leaves nothing here)."""
    source = tmp_path / "payment-chaos"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", ".nox", "build", "*.egg-info", "__pycache__", ".hypothesis",
        ".pytest_cache", "chaos-failures", "reports"))
    return source


def test_the_workflow_runs_once_per_change_and_keeps_its_reports():
    doc, job, steps = workflow(RECIPE / "payment-chaos.yml")
    on = doc[True]                             # YAML 1.1 reads the key `on` as true
    assert on["push"] == {"branches": ["main"]} and "pull_request" in on
    assert doc["concurrency"]["cancel-in-progress"] is True
    assert "github.event.pull_request.number" in doc["concurrency"]["group"]
    assert job["services"]["postgres"]["image"].startswith("postgres:")
    upload = next(s for s in job["steps"] if "upload-artifact" in str(s.get("uses")))
    assert upload["if"] == "always()" and upload["with"]["path"] == "reports/"
    assert [s.run.split()[-1] for s in steps if SCRIPT in s.run] == \
        ["install", "start", "replay", "search", "stop"]
    # this repository's own workflow stays a file of its own
    assert (ROOT / ".github" / "workflows" / "payment-chaos.yml").read_text() != \
        (RECIPE / "payment-chaos.yml").read_text()


def test_the_nightly_search_is_sharded_over_a_matrix_and_merged():
    doc, _, _ = workflow(RECIPE / "payment-chaos.yml")
    assert doc[True]["schedule"][0]["cron"]
    assert doc["jobs"]["chaos"]["if"] == "github.event_name != 'schedule'"
    nightly, merge = doc["jobs"]["nightly"], doc["jobs"]["merge-nightly"]
    shards = nightly["strategy"]["matrix"]["shard"]
    assert nightly["strategy"]["fail-fast"] is False and len(shards) > 1
    assert nightly["env"]["CHAOS_SHARD"] == f"${{{{ matrix.shard }}}}/{len(shards)}"
    database = nightly["env"]["CHAOS_EXAMPLE_DB"]
    assert "secrets.CHAOS_EXAMPLE_DB" in database and "github://" in database
    runs = [s["run"].split()[-1] for s in nightly["steps"] if SCRIPT in s.get("run", "")]
    assert runs == ["install", "start", "shard", "stop"]
    assert merge["needs"] == "nightly"
    assert [s["run"].split()[-1] for s in merge["steps"] if SCRIPT in s.get("run", "")] == \
        ["install", "merge"]
    uploads = {s["with"]["name"] for s in merge["steps"] if "upload-artifact" in str(s.get("uses"))}
    assert "payment-chaos-examples" in uploads and "/payment-chaos-examples'" in database


def test_the_recipe_runs_against_the_box_office_as_a_users_repository(
        user_repo: Path, tool_source: Path, server_url: str):
    _, job, steps = workflow(user_repo / WORKFLOW)
    service_port, stripe_port = free_port(), free_port()
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}   # the user's code only
    env = {**base, "PATH": path, **{k: str(v) for k, v in job["env"].items()}}

    def with_schema(schema: str, **extra: str) -> dict[str, str]:
        # what differs from GitHub: the tool's source, free ports, this machine's server
        overrides = {"CHAOS_TOOL": str(tool_source), "SERVICE_PORT": str(service_port),
                     "SERVICE_URL": f"http://127.0.0.1:{service_port}",
                     "CHAOS_STRIPE_PORT": str(stripe_port),
                     "BOX_OFFICE_DATABASE_URL": server_url, "BOX_OFFICE_SCHEMA": schema,
                     "CHAOS_EXAMPLES": "30", "CHAOS_MAX_SECONDS": "180"}
        assert set(overrides) <= set(job["env"]), "override only what the workflow sets"
        return {**env, **overrides, "CHAOS_OPTIONS": f"--set database.schema={schema}", **extra}

    def show(results: dict[str, Any]) -> str:
        log = reports / "service.log"
        return "\n".join(f"--- {name}: exit {r.returncode}\n{r.stdout[-1500:]}{r.stderr[-1500:]}"
                         for name, r in results.items() if r is not None) + (
            f"\n--- service.log\n{log.read_text()[-1500:]}" if log.exists() else "")

    reports = user_repo / "reports"
    try:
        with throwaway_schema(server_url, "chaos_ci") as schema:
            results = run_steps(steps, env=with_schema(schema), cwd=user_repo)
        assert all(r is not None and r.returncode == 0 for r in results.values()), show(results)
        report = json.loads((reports / "chaos-report.json").read_text())
        assert report["verdict"] == "pass" and report["failures"] == []
        assert report["target"]["kind"] == "config" and report["examples"] >= 30
        for name in ("chaos-junit.xml", "chaos-timeline.html", "chaos-log.jsonl",
                     "service.log", "replay-log.jsonl"):
            assert (reports / name).stat().st_size > 0, name
        replayed = [json.loads(line) for line in (reports / "replay-log.jsonl").read_text()
                    .splitlines()]
        assert [e["broken"] for e in replayed if e.get("event") == "replay.run"] == [[]] * 3
        assert not answers(service_port), "the stop step stopped the service"

        # the same repository with a duplicate-delivery bug: the committed case catches
        # it, the search is skipped, the service is still stopped and the reports kept
        for name in ("chaos-report.json", "replay-log.jsonl"):
            (reports / name).unlink()
        with throwaway_schema(server_url, "chaos_ci") as schema:
            results = run_steps(steps[2:], env=with_schema(schema, BOX_OFFICE_BUGS="double-admit"),
                                cwd=user_repo)
        by_step = {name.split()[0].lower(): r for name, r in results.items()}
        assert by_step["replay"] is not None and by_step["replay"].returncode == 1, show(results)
        assert "FAILED" in by_step["replay"].stdout
        assert "an invariant broke in" in by_step["replay"].stdout
        assert by_step["chaos"] is None                  # the search: skipped after a failure
        assert by_step["stop"] is not None and by_step["stop"].returncode == 0
        assert not answers(service_port) and (reports / "replay-log.jsonl").exists()
    finally:
        pid_file = reports / "service.pid"
        if pid_file.exists():       # a step failed before stopping it
            subprocess.run(["kill", "-9", pid_file.read_text().strip()], check=False)
