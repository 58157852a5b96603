"""``--workers N``: the run's VUs spread over N processes, where one core is not enough.

One trio thread drives a few thousand requests per second at most; a second
process on a second core doubles that. The process the user started is
worker 0: it owns the stack (database, fake Stripe, target), measures the
target's in-flight meter and draws the live line. Workers 1..N-1 are
spawned (never forked: the parent runs threads) with everything they need
passed through a pipe, secrets included, never on a command line; each opens
its own database pool, plays VU i when i % N is its number (and 1/N of an
arrival rate), checks the invariants over its own intervals' buyers, and
sends its result back: counts, tallies and HDR histograms, which merge
exactly. Every worker waits at one start gate, so the profile's clock is
the same everywhere. A worker that fails ends the run with its error; a
worker that does not answer in time is terminated (only the processes this
run started, by their handles).
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

from chaos.errors import ChaosError, InfrastructureError, TargetError, UsageError
from chaos.load.runner import LoadOptions, LoadResult, LoadRun, run_load
from chaos.run import Runner
from chaos.target import Target

#: Seconds a worker may take to start (import, connect) before the run gives up on it.
START_SECONDS = 60.0
#: Event ids per worker: worker w numbers its intervals from w * this.
_IDS_PER_WORKER = 100_000


@dataclass(frozen=True)
class WorkerSpec:
    """What a spawned worker needs to drive its share (sent through a pipe)."""

    index: int
    options: LoadOptions
    target: Target
    stripe_url: str
    database_url: str
    schema: str | None
    run_id: str
    concurrency: int
    request_timeout: float


def _worker(spec: WorkerSpec, conn: Connection, gate: Event) -> None:
    """A spawned worker's life: connect, say ready, wait at the gate, run, report."""
    from chaos.database import Database

    db = None
    try:
        db = Database(spec.database_url, schema=spec.schema, pool_size=2)
        runner = Runner(target=spec.target, stripe_url=spec.stripe_url, db=db,
                        concurrency=spec.concurrency, request_timeout=spec.request_timeout,
                        example_timeout=spec.request_timeout)
        runner.run_id = spec.run_id
        runner._ids = itertools.count(spec.index * _IDS_PER_WORKER + 1)
        conn.send(("ready", None))
        if not gate.wait(START_SECONDS):
            return
        conn.send(("done", run_load(runner, spec.options).to_data()))
    except ChaosError as exc:
        conn.send(("error", (exc.exit_code, isinstance(exc, TargetError), str(exc))))
    except BaseException as exc:  # a bug of the tool: one line to the parent
        conn.send(("error", (3, False, f"worker {spec.index} crashed: "
                                       f"{type(exc).__name__}: {exc}"[:300])))
    finally:
        if db is not None:
            db.close()
        conn.close()


def _raise(payload: tuple[int, bool, str]) -> None:
    code, target, message = payload
    if code == 2:
        raise UsageError(message)
    raise (TargetError if target else InfrastructureError)(message)


def worker_share(share: tuple[int, int], worker: int, workers: int) -> tuple[int, int]:
    """Worker ``worker``'s part of a shard's ``share`` (``(s, S)``: ``--shard s+1/S``):
    part ``s * workers + worker`` of ``S * workers``, so the workers of every shard
    split the VUs without overlap and together play them all."""
    shard, shards = share
    return (shard * workers + worker, shards * workers)


def run_workers(runner: Runner, options: LoadOptions, workers: int,
                on_tick: Callable[[LoadRun], None] | None = None) -> LoadResult:
    """The load over ``workers`` processes (this one included); the merged result.
    Within a shard (``options.share`` (s, S): ``--shard s+1/S``) the workers split the
    shard's part: worker w plays part ``s * workers + w`` of ``S * workers``."""
    if workers == 1:
        return run_load(runner, options, on_tick)
    context = multiprocessing.get_context("spawn")
    gate = context.Event()
    children: list[tuple[Any, Connection]] = []
    try:
        for w in range(1, workers):
            mine, theirs = context.Pipe(duplex=False)
            spec = WorkerSpec(
                index=w, target=runner.target, stripe_url=runner.stripe_url,
                database_url=runner.db.url, schema=runner.db.schema, run_id=runner.run_id,
                concurrency=runner.concurrency, request_timeout=runner.request_timeout,
                options=dataclasses.replace(options, share=worker_share(options.share, w, workers),
                                            measure_target=False))
            process = context.Process(target=_worker, args=(spec, theirs, gate),
                                      name=f"payment-chaos-load-{w}", daemon=True)
            process.start()
            theirs.close()
            children.append((process, mine))
        for process, conn in children:
            _expect(conn, "ready", START_SECONDS, process.name)
        runner._ids = itertools.count(1)
        gate.set()
        result = run_load(runner, dataclasses.replace(
            options, share=worker_share(options.share, 0, workers)), on_tick)
        wait = options.graceful_stop + options.request_timeout + 120
        for process, conn in children:
            result.merge(LoadResult.from_data(_expect(conn, "done", wait, process.name)))
        return result
    finally:
        gate.set()   # a worker still at the gate goes on to its end rather than wait
        for process, conn in children:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            conn.close()


def _expect(conn: Connection, what: str, seconds: float, name: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        try:
            ready = left > 0 and conn.poll(min(left, 1.0))
        except (EOFError, OSError):
            ready = True
        if ready:
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                raise InfrastructureError(f"load worker {name} exited without a word: "
                                          "see the log, or run without --workers") from None
            if kind == "error":
                _raise(payload)
            return payload
        if left <= 0:
            raise InfrastructureError(f"load worker {name} did not report {what} within "
                                      f"{seconds:g} s: the machine is overloaded; use fewer "
                                      "--workers")
