"""Soak: does the tool's memory stay flat over thousands of examples?

    python benchmarks/soak.py [--examples 10000] [--every 5] [--out DIR] [CHAOS OPTIONS...]

Runs ``python -m chaos --examples N`` as a user would (against the correct
reference service, so every example passes and the search never stops
early), on a pseudo-terminal so that the tool draws its live progress line;
that line says how many examples have run. Every ``--every`` seconds it
prints the tool's RSS (``/proc/PID/status`` VmRSS; the tool's own process,
not its services) against the examples run so far.

At the end: the RSS after the first 500 examples, at the end, and the goal
(within 20 MB of the first). Writes ``soak.json`` with every sample. Exit 1
when the goal is missed or the run fails; 2 on bad usage. Other options
(``--database-url URL``, ``--concurrency N``, ...) go to the chaos run.
Figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: The goal: RSS at the end within this many MB of RSS after the first 500 examples.
GOAL_MB = 20.0
BASELINE_EXAMPLES = 500

_EXAMPLES = re.compile(rb"examples run (\d+)")


def rss_mb(pid: int) -> float | None:
    """The resident set of ``pid`` in MB, None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def soak(examples: int, every: float, chaos_args: list[str], workdir: Path) -> dict[str, Any]:
    """Run the tool for ``examples`` examples; sample its RSS every ``every`` seconds."""
    main, child = pty.openpty()
    argv = [sys.executable, "-m", "chaos", "--examples", str(examples), "--seed", "1",
            "--max-seconds", "86400", "--report", str(workdir / "soak-report.json"),
            "--corpus", str(workdir / "corpus"), *chaos_args]
    process = subprocess.Popen(argv, stdout=child, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    os.close(child)
    samples: list[dict[str, float]] = []
    done = 0
    started = next_sample = time.monotonic()
    try:
        while process.poll() is None:
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:
                    chunk = b""
                counts = _EXAMPLES.findall(chunk)
                if counts:
                    done = int(counts[-1])
            if time.monotonic() >= next_sample:
                next_sample += every
                rss = rss_mb(process.pid)
                if rss is not None:
                    sample = {"seconds": round(time.monotonic() - started, 1), "examples": done,
                              "rss_mb": round(rss, 1)}
                    samples.append(sample)
                    print(f"  {sample['seconds']:>7.1f} s  examples {done:>6}  "
                          f"RSS {sample['rss_mb']:>6.1f} MB", flush=True)
    except KeyboardInterrupt:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(120)
        raise
    finally:
        os.close(main)
    err = process.stderr.read().decode(errors="replace") if process.stderr else ""
    report = json.loads((workdir / "soak-report.json").read_text()) \
        if (workdir / "soak-report.json").exists() else {}
    return {"argv": argv[1:], "exit": process.returncode, "stderr": err.strip()[-500:],
            "verdict": report.get("verdict"), "examples": report.get("examples"),
            "seconds": report.get("seconds"), "samples": samples}


def judge(result: dict[str, Any]) -> dict[str, Any]:
    """RSS after the first 500 examples and at the end (the last sample), and the goal."""
    samples = result["samples"]
    first = next((s for s in samples if s["examples"] >= BASELINE_EXAMPLES), None)
    last = samples[-1] if samples else None
    growth = None if first is None or last is None else round(last["rss_mb"] - first["rss_mb"], 1)
    return {"rss_after_500_mb": first and first["rss_mb"], "at_examples": first and first["examples"],
            "rss_at_end_mb": last and last["rss_mb"], "end_examples": last and last["examples"],
            "growth_mb": growth, "goal_mb": GOAL_MB,
            "met": growth is not None and growth <= GOAL_MB and result["exit"] == 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=Path("."))
    args, chaos_args = parser.parse_known_args(argv)
    if args.examples < BASELINE_EXAMPLES or args.every <= 0:
        parser.error(f"--examples must be at least {BASELINE_EXAMPLES} and --every positive")
    if not args.out.is_dir():
        parser.error(f"--out {args.out} is not a directory: create it first")
    with tempfile.TemporaryDirectory(prefix="chaos-soak-") as tmp:
        print(f"soak: {args.examples} examples, RSS of the tool every {args.every:g} s")
        result = soak(args.examples, args.every, chaos_args, Path(tmp))
    result["goal"] = verdict = judge(result)
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nexit {result['exit']}, verdict {result['verdict']}, {result['examples']} examples "
          f"in {result['seconds']} s" + (f": {result['stderr']}" if result["exit"] else ""))
    print(f"RSS after {verdict['at_examples']} examples: {verdict['rss_after_500_mb']} MB; at the "
          f"end ({verdict['end_examples']} examples): {verdict['rss_at_end_mb']} MB; growth "
          f"{verdict['growth_mb']} MB (goal: at most {GOAL_MB:g} MB): "
          f"{'MET' if verdict['met'] else 'NOT MET'}")
    print(f"samples: {args.out / 'soak.json'}")
    return 0 if verdict["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
