"""``run --workers N``: the run as N shard processes on this machine, then merged.

Child ``I`` is ``python -m chaos run --shard I/N`` with the run's options,
``--examples`` split between them (the first ``total % N`` take one more),
its own report and corpus folder in a temporary folder (so no two children
write one file), and its own stack (PostgreSQL, fake Stripe, reference
service) unless ``--database-url`` names a server; then
:func:`chaos.merge.merge` writes the one report, JUnit file, HTML page and
corpus the user asked for, and the temporary folder is removed.

Secrets never go on the children's command lines: the database URL and the
example database URL travel in their environment (``DATABASE_URL``,
``CHAOS_EXAMPLE_DB``), as the target's secrets already do.

Signals: the children share the terminal's process group, so a Ctrl-C
reaches them too; a SIGTERM or SIGHUP sent to this process alone is passed
on to each child, by its handle. Either way each child stops as a run
does (its report written, its processes stopped, its schema dropped), this
process waits for them (bounded: ``STOP_SECONDS``, then kills), merges what
they reported, and exits as the signal asks. A child that does not end
within the run's ``--max-seconds`` and a margin is stopped the same way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.errors import InfrastructureError, UsageError
from chaos.merge import MergeOptions, merge
from chaos.shard import Shard
from chaos.shutdown import Interrupted, deferred

#: Seconds a child may take past ``--max-seconds`` (start-up, minimizing, the report).
MARGIN_SECONDS = 180.0
#: Seconds a child may take to stop after a signal before it is killed.
STOP_SECONDS = 60.0
#: The environment variable that hands ``--example-db`` to a child (and the CLI's default).
EXAMPLE_DB_ENV = "CHAOS_EXAMPLE_DB"
#: The environment variable that hands ``--allow-host`` to a child (and the CLI's default).
ALLOW_HOSTS_ENV = "CHAOS_ALLOW_HOSTS"


@dataclass(frozen=True)
class Child:
    """One shard process: its shard, its handle, its report and corpus, its stderr file."""

    shard: Shard
    process: subprocess.Popen[bytes]
    report: Path
    corpus: Path
    stderr: Path


def child_argv(options: Any, shard: Shard, *, report: Path, corpus: Path,
               examples: int, config: str | None, overrides: Sequence[str],
               known: Sequence[Path]) -> list[str]:
    """The command line of shard ``shard``'s child (``options``: the run's RunOptions).
    No secret is on it (see the module docstring)."""
    argv = [sys.executable, "-m", "chaos", "run", "--shard", str(shard),
            "--examples", str(examples), "--profile", options.profile,
            "--tries", str(options.tries), "--confirm-runs", str(options.confirm_runs),
            "--max-seconds", repr(options.max_seconds),
            "--shrink-seconds", repr(options.shrink_seconds),
            "--max-error-rate", repr(options.max_error_rate),
            "--max-p95", repr(options.max_p95), "--concurrency", str(options.concurrency),
            "--request-timeout", repr(options.request_timeout),
            "--example-timeout", repr(options.example_timeout),
            "--report", str(report), "--corpus", str(corpus)]
    if options.seed is not None:
        argv += ["--seed", str(options.seed)]
    if not options.playbook:
        argv.append("--no-playbook")
    for path in known:
        argv += ["--known", str(path)]
    for bug in options.bugs:
        argv += ["--bug", bug]
    if config is not None:
        argv += ["--config", config]
    for override in overrides:
        argv += ["--set", override]
    return argv


def run_workers(options: Any, workers: int, *, config: str | None = None,
                overrides: Sequence[str] = (), known: Sequence[Path] = ()) -> dict[str, Any]:
    """Run ``options`` (a RunOptions) as ``workers`` shard processes and merge them into
    ``options.report`` / ``junit`` / ``html`` / ``corpus``; the merged report's data.
    A stop signal is re-raised once the merged report is written."""
    if options.reference_port or options.stripe_port:
        raise UsageError("--workers starts a reference service per worker: drop "
                         "--reference-port / --stripe-port (each worker takes free ports)")
    total = options.examples or _profile_examples(options.profile)
    env = dict(os.environ)
    if options.database_url:
        env["DATABASE_URL"] = options.database_url
    if options.example_db:
        env[EXAMPLE_DB_ENV] = options.example_db
    if options.allow_hosts:
        env[ALLOW_HOSTS_ENV] = ",".join(options.allow_hosts)
    env["CHAOS_INVOCATION"] = options.invocation
    folder = Path(tempfile.mkdtemp(prefix="chaos-workers-"))
    children: list[Child] = []
    interrupt: Interrupted | None = None
    try:
        try:
            with deferred():   # a signal while children start is passed on once all have
                for index in range(1, workers + 1):
                    shard = Shard(index, workers)
                    report = folder / f"shard-{index}.json"
                    corpus = folder / f"cases-{index}"
                    stderr = folder / f"shard-{index}.err"
                    argv = child_argv(options, shard, report=report, corpus=corpus,
                                      examples=max(1, shard.split(total)), config=config,
                                      overrides=overrides, known=known)
                    with stderr.open("wb") as err:
                        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                                   stdout=subprocess.DEVNULL, stderr=err)
                    children.append(Child(shard, process, report, corpus, stderr))
            _wait(children, time.monotonic() + options.max_seconds + MARGIN_SECONDS)
        except Interrupted as raised:
            interrupt = raised
            with deferred():
                _stop(children, raised.signum)
        with deferred():
            return _merged(children, options, interrupt)
    finally:
        with deferred():
            _stop(children, signal.SIGTERM)
            shutil.rmtree(folder, ignore_errors=True)


def _profile_examples(profile: str) -> int:
    from chaos.search import PROFILES

    count = PROFILES[profile].max_examples
    return int(count)


def _wait(children: Sequence[Child], deadline: float) -> None:
    """Until every child has ended; past ``deadline`` they are stopped (SIGTERM)."""
    while any(c.process.poll() is None for c in children):
        if time.monotonic() >= deadline:
            _stop(children, signal.SIGTERM)
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            next(c for c in children if c.process.poll() is None).process.wait(timeout=0.5)


def _stop(children: Sequence[Child], signum: int) -> None:
    """Pass ``signum`` to each child still running; kill one that has not ended within
    ``STOP_SECONDS`` (only the processes this run started, by their handles)."""
    for child in children:
        if child.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signum)
    for child in children:
        try:
            child.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait(timeout=STOP_SECONDS)


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _merged(children: Sequence[Child], options: Any,
            interrupt: Interrupted | None) -> dict[str, Any]:
    """Merge the children's reports into the run's outputs; a child's usage error is the
    run's, a child that wrote no report is an InfrastructureError naming it."""
    for child in children:
        if child.process.returncode == 2:
            line = _last_line(child.stderr)
            raise UsageError(line.split("error: ", 1)[-1] or f"worker {child.shard}: bad usage")
    written = [c for c in children if c.report.is_file()]
    if interrupt is None and len(written) < len(children):
        lost = next(c for c in children if not c.report.is_file())
        raise InfrastructureError(f"worker {lost.shard} ended (exit {lost.process.returncode}) "
                                  f"without a report: {_last_line(lost.stderr) or 'no word'}; "
                                  "run it alone with --shard to see why")
    if not written:
        raise interrupt or InfrastructureError("no worker wrote a report")
    data = merge(MergeOptions(reports=tuple(c.report for c in written), report=options.report,
                              junit=options.junit, html=options.html, corpus=options.corpus,
                              cases=tuple(c.corpus for c in written if c.corpus.is_dir()),
                              invocation=options.invocation))
    if interrupt is not None:
        raise interrupt
    return data
