"""Mutation score: does the chaos suite catch every bug of the catalogue?

    python benchmarks/mutants.py [--seeds 3] [--bugs correct,no-dedup,...] [--examples N]
                                 [--out DIR] [--run-timeout 900] [CHAOS OPTIONS...]

For the correct reference service and for each bug of ``CATALOGUE``, one at
a time, over seeds 1..N, it runs the chaos suite as a user would, with its
default settings: ``python -m chaos --bug X --seed S --report ... --corpus
...`` in a fresh process each time (cold start included: the embedded
PostgreSQL, the fake Stripe and the service start every run). Other options
(``--database-url URL``, ``--concurrency N``, ...) go to every run as given.

It prints one line per run, then a table (median and worst over the seeds)
and the goals with whether each is met, and writes ``mutants.json``. Exit 1
on any missed bug (a run that did not catch it, or ended in error) or any
false alarm (the correct service failed a run); 0 otherwise; 2 on bad usage.
Figures, not a test: nothing here times a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chaos.log import redactor  # noqa: E402
from chaos.reference.bugs import CATALOGUE, Bug  # noqa: E402

#: The name of the correct service (no bug switched on) in ``--bugs`` and the table.
CORRECT = "correct"
#: Goals of the issue: race bugs caught this fast (median seconds from a cold start) ...
RACE_SECONDS = 30.0
#: ... and this share of caught runs shrunk to the bug's minimal scenario.
MINIMAL_SHARE = 0.9
#: Options mutants.py sets itself on every run.
OWN_OPTIONS = ("--bug", "--seed", "--report", "--corpus", "--failures-dir")


def run_outcome(name: str, seed: int, code: int | None, report: Mapping[str, Any] | None, *,
                wall: float, error: str | None = None) -> dict[str, Any]:
    """One run, as a row of figures: did it catch the bug (or, for the correct
    service, stay quiet), with what, how soon, and how small the shrunk failure is.

    ``code`` is the tool's exit code (None: killed at --run-timeout); ``report``
    its JSON report (None when it wrote none).
    """
    report = report or {}
    failures = [f for f in report.get("failures") or [] if isinstance(f, Mapping)]
    confirmed = [f for f in failures if f.get("status") == "FAILED"]
    first = report.get("first_failure") if isinstance(report.get("first_failure"), Mapping) else {}
    row: dict[str, Any] = {
        "bug": name, "seed": seed, "exit": code, "wall_seconds": round(wall, 2),
        "seconds": report.get("seconds"), "examples": report.get("examples"),
        "failures": [{"invariant": f.get("invariant"), "status": f.get("status"),
                      "requests": f.get("requests"), "reproduced": f.get("reproduced"),
                      "phase": f.get("phase"), "note": f.get("note")} for f in failures],
        "first_failure": dict(first) if first else None,
    }
    if code not in (0, 1) or not report:
        why = error or report.get("error") or (f"exit {code}" if code is not None else "timeout")
        row.update(result="error", error=why)
        return row
    if name == CORRECT:
        failed_thresholds = sorted(t for t, v in (report.get("thresholds") or {}).items()
                                   if isinstance(v, Mapping) and v.get("verdict") == "fail")
        alarm = code != 0 or bool(failures) or bool(failed_thresholds)
        row.update(result="false alarm" if alarm else "pass", thresholds_failed=failed_thresholds)
        return row
    bug = CATALOGUE[name]
    if not confirmed:
        row.update(result="missed")
        return row
    # a run may report several distinct bugs: judge by the smallest of the expected invariant
    expected = [f for f in confirmed if f.get("invariant") == bug.caught_by]
    chosen = min(expected, key=lambda f: f.get("requests") if isinstance(f.get("requests"), int)
                 else 10**9) if expected else confirmed[0]
    requests = chosen.get("requests")
    done, runs = _rate(chosen.get("reproduced"))
    row.update(
        result="caught", invariant=chosen.get("invariant"),
        expected_invariant=chosen.get("invariant") == bug.caught_by,
        examples_to_first=first.get("example") if first else None,
        seconds_to_first=first.get("seconds") if first else None,
        requests=requests, minimal_requests=bug.minimal_requests,
        minimal=isinstance(requests, int) and requests <= bug.minimal_requests,
        below_minimal=isinstance(requests, int) and requests < bug.minimal_requests,
        reproduced=chosen.get("reproduced"), reproduced_runs=done, confirm_runs=runs,
        phase=chosen.get("phase"),
    )
    return row


def _rate(text: Any) -> tuple[int, int]:
    """``"4/5"`` as (4, 5); (0, 0) when unreadable."""
    try:
        k, n = str(text).split("/")
        return int(k), int(n)
    except ValueError:
        return 0, 0


def _median_worst(values: Sequence[Any], worst=max) -> dict[str, Any] | None:
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        return None
    median = statistics.median(numbers)
    return {"median": round(median, 2) if isinstance(median, float) else median,
            "worst": worst(numbers)}


def summarize(name: str, runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One bug's (or the correct service's) runs over its seeds, as one table row."""
    row: dict[str, Any] = {"bug": name, "runs": len(runs),
                           "results": [r["result"] for r in runs]}
    if name == CORRECT:
        alarms = [r for r in runs if r["result"] != "pass"]
        row.update(false_alarms=sum(r["result"] == "false alarm" for r in alarms),
                   errors=sum(r["result"] == "error" for r in alarms),
                   verdict="pass" if not alarms else
                   "false alarm" if any(r["result"] == "false alarm" for r in alarms) else "error",
                   invariants=sorted({f["invariant"] for r in alarms for f in r["failures"]}),
                   seconds=_median_worst([r.get("seconds") for r in runs]))
        return row
    bug: Bug = CATALOGUE[name]
    caught = [r for r in runs if r["result"] == "caught"]
    done = sum(r["reproduced_runs"] for r in caught)
    tried = sum(r["confirm_runs"] for r in caught)
    row.update(
        caught=len(caught), verdict="caught" if runs and len(caught) == len(runs) else "missed",
        expected_invariant=bug.caught_by, race=bug.race,
        invariants=sorted({r["invariant"] for r in caught}),
        examples_to_first=_median_worst([r["examples_to_first"] for r in caught]),
        seconds_to_first=_median_worst([r["seconds_to_first"] for r in caught]),
        seconds=_median_worst([r["seconds"] for r in caught]),
        requests=_median_worst([r["requests"] for r in caught]),
        minimal_requests=bug.minimal_requests,
        minimal_runs=sum(r["minimal"] for r in caught),
        below_minimal_runs=sum(r["below_minimal"] for r in caught),
        reproduction={"reproduced": done, "runs": tried,
                      "rate": round(done / tried, 3) if tried else None,
                      "worst": min((r["reproduced_runs"] / r["confirm_runs"] for r in caught
                                    if r["confirm_runs"]), default=None)},
    )
    return row


def goals(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The issue's goals, each with whether it is met (None: not measured in this run)."""
    bugs = [r for r in rows if r["bug"] != CORRECT]
    correct = [r for r in rows if r["bug"] == CORRECT]
    caught = [r for r in bugs if r["verdict"] == "caught"]
    found: list[dict[str, Any]] = []
    partial = f" ({len(bugs)} of {len(CATALOGUE)} bugs run)" if len(bugs) < len(CATALOGUE) else ""
    found.append({"goal": f"{len(CATALOGUE)} of {len(CATALOGUE)} bugs caught, in every seed",
                  "met": None if not bugs or (partial and len(caught) == len(bugs))
                  else len(caught) == len(bugs) == len(CATALOGUE),
                  "value": f"{len(caught)} of {len(bugs)} caught{partial}"})
    if correct:
        alarms = correct[0]["runs"] - correct[0]["results"].count("pass")
        found.append({"goal": "0 false alarms", "met": alarms == 0,
                      "value": f"{alarms} of {correct[0]['runs']} runs of the correct service "
                               "failed"})
    else:
        found.append({"goal": "0 false alarms", "met": None, "value": "correct service not run"})
    races = [r for r in bugs if r["race"]]
    slow = [r["bug"] for r in races if r["verdict"] != "caught" or r["seconds_to_first"] is None
            or r["seconds_to_first"]["median"] >= RACE_SECONDS]
    found.append({"goal": f"race bugs caught in under {RACE_SECONDS:g} s median from a cold start",
                  "met": not slow if races else None,
                  "value": ", ".join(
                      f"{r['bug']} {_fmt(r['seconds_to_first'], 'median')} s"
                      for r in races) or "no race bug run"})
    runs = sum(r["caught"] for r in bugs)
    minimal = sum(r["minimal_runs"] for r in bugs)
    below = sum(r["below_minimal_runs"] for r in bugs)
    found.append({"goal": f"shrunk to the minimal scenario in at least {MINIMAL_SHARE:.0%} of runs",
                  "met": minimal >= MINIMAL_SHARE * runs if runs else None,
                  "value": f"{minimal} of {runs} caught runs"
                           + (f"; {below} BELOW the catalogue's minimum: fix minimal_requests"
                              if below else "")})
    return found


def failed(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """What makes the exit code 1: missed bugs and false alarms (errors included)."""
    return [f"{r['bug']}: {r['verdict']}" for r in rows if r["verdict"] not in ("caught", "pass")]


def _fmt(value: Any, key: str | None = None) -> str:
    if isinstance(value, Mapping):
        if key:
            return _fmt(value.get(key))
        return f"{_fmt(value.get('median'))} / {_fmt(value.get('worst'))}"
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


COLUMNS = ("bug", "caught", "invariant", "examples to 1st", "s to 1st", "s with shrink",
           "requests", "minimal", "reproduced")


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a text table; figures are ``median / worst`` over the seeds."""
    lines = []
    for r in rows:
        if r["bug"] == CORRECT:
            lines.append([CORRECT, r["verdict"], ", ".join(r["invariants"]) or "-", "-", "-",
                          _fmt(r["seconds"]), "-", "-", "-"])
            continue
        names = r["invariants"]
        invariant = ", ".join(n if n == r["expected_invariant"] else f"{n} (expected "
                              f"{r['expected_invariant']})" for n in names) or "-"
        rep = r["reproduction"]
        lines.append([
            r["bug"] + (" (race)" if r["race"] else ""), f"{r['caught']}/{r['runs']}", invariant,
            _fmt(r["examples_to_first"]), _fmt(r["seconds_to_first"]), _fmt(r["seconds"]),
            _fmt(r["requests"]) + f" (min {r['minimal_requests']})",
            f"{r['minimal_runs']}/{r['caught']}" if r["caught"] else "-",
            f"{rep['reproduced']}/{rep['runs']}" if rep["runs"] else "-",
        ])
    widths = [max(len(c), *(len(x[i]) for x in lines)) if lines else len(c)
              for i, c in enumerate(COLUMNS)]
    out = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip(),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(x, widths, strict=True)).rstrip() for x in lines]
    return "\n".join(out)


def goal_lines(found: Sequence[Mapping[str, Any]]) -> list[str]:
    mark = {True: "MET    ", False: "NOT MET", None: "n/a    "}
    return [f"  {mark[g['met']]}  {g['goal']}: {g['value']}" for g in found]


def run_line(row: Mapping[str, Any]) -> str:
    head = f"{row['bug']} seed {row['seed']}: {row['result']}"
    if row["result"] == "caught":
        first = (f"first failure at example {_fmt(row['examples_to_first'])}, "
                 f"{_fmt(row['seconds_to_first'])} s")
        size = f"{row['requests']} requests ({'minimal' if row['minimal'] else 'not minimal'}, " \
               f"min {row['minimal_requests']})"
        return (f"{head} by {row['invariant']}; {first}; {_fmt(row['seconds'])} s with shrinking; "
                f"{size}; reproduced {row['reproduced']}")
    if row["result"] == "error":
        return f"{head}: {row.get('error')}"
    extra = ", ".join(f"{f['invariant']} {f['status']}" for f in row["failures"])
    return f"{head} in {_fmt(row['seconds'])} s" + (f" ({extra})" if extra else "")


# --- running -------------------------------------------------------------------------------


def run_chaos(name: str, seed: int, chaos_args: Sequence[str], *, timeout: float,
              workdir: Path) -> dict[str, Any]:
    """``python -m chaos`` for one bug and seed, in a fresh process; its outcome row."""
    report_path, corpus = workdir / "report.json", workdir / "corpus"
    report_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "chaos", *(["--bug", name] if name != CORRECT else []),
               "--seed", str(seed), "--report", str(report_path), "--corpus", str(corpus),
               *chaos_args]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=timeout)
        code: int | None = process.returncode
        error = stderr.strip().splitlines()[-1] if code not in (0, 1) and stderr.strip() else None
    except subprocess.TimeoutExpired:
        _stop(process)
        code, error = None, f"killed after --run-timeout {timeout:g} s"
    wall = time.monotonic() - started
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        report = None
    return run_outcome(name, seed, code, report, wall=wall, error=error)


def _stop(process: subprocess.Popen[str]) -> None:
    """End the run's process group (it and the services it started), TERM then KILL."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.communicate(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def machine() -> dict[str, Any]:
    model = "?"
    try:
        model = next(line.split(":", 1)[1].strip() for line in
                     Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Options it does not know go to every chaos run (e.g. --database-url URL).",
        allow_abbrev=False)   # --seed must not pass for --seeds
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N per bug (default 3)")
    parser.add_argument("--bugs", default=None,
                        help=f"comma-separated: '{CORRECT}' and bug names (default: all)")
    parser.add_argument("--examples", type=int, default=None,
                        help="examples per run (default: the tool's default profile)")
    parser.add_argument("--out", type=Path, default=Path("."),
                        help="directory for mutants.json (default: here)")
    parser.add_argument("--run-timeout", type=float, default=900.0,
                        help="seconds one chaos run may take before it is killed (default 900)")
    args, rest = parser.parse_known_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    names = [CORRECT, *CATALOGUE] if args.bugs is None else \
        [n.strip() for n in args.bugs.split(",") if n.strip()]
    unknown = [n for n in names if n != CORRECT and n not in CATALOGUE]
    if unknown or not names:
        parser.error(f"--bugs: unknown {unknown[0]!r}; choose from {CORRECT}, "
                     f"{', '.join(CATALOGUE)}" if unknown else "--bugs names no bug")
    own = [a for a in rest if a.split("=", 1)[0] in OWN_OPTIONS]
    if own:
        parser.error(f"{own[0]} is set by mutants.py for each run: leave it out")
    args.names = names
    if args.examples is not None:
        rest = ["--examples", str(args.examples), *rest]
    return args, rest


def main(argv: Sequence[str] | None = None) -> int:
    args, chaos_args = parse(sys.argv[1:] if argv is None else argv)
    seeds = list(range(1, args.seeds + 1))
    print(f"mutants: {len(args.names)} targets x {len(seeds)} seeds, fresh process each; "
          f"chaos options: {redactor.text(' '.join(chaos_args)) or '(defaults)'}", flush=True)
    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chaos-mutants-") as tmp:
        for name in args.names:
            for seed in seeds:
                workdir = Path(tmp) / f"{name}-{seed}"
                workdir.mkdir()
                row = run_chaos(name, seed, chaos_args, timeout=args.run_timeout, workdir=workdir)
                runs.append(row)
                print("  " + run_line(row), flush=True)
    rows = [summarize(name, [r for r in runs if r["bug"] == name]) for name in args.names]
    found = goals(rows)
    bad = failed(rows)
    print()
    print(f"median / worst over {len(seeds)} seed(s); seconds from the run's start, cold start "
          "included")
    print(table(rows))
    print()
    print("goals")
    print("\n".join(goal_lines(found)))
    data = {"seeds": seeds, "chaos_options": chaos_args, "machine": machine(),
            "seconds": round(time.monotonic() - started, 1), "rows": rows, "goals": found,
            "runs": runs, "failed": bad}
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "mutants.json"
    out.write_text(json.dumps(redactor.value(data), indent=2) + "\n")   # URL passwords
    print()
    print(f"{'FAILED: ' + '; '.join(bad) if bad else 'every bug caught, no false alarm'}")
    print(f"written: {out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
