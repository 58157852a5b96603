"""How fast is the reference service? Figures, not assertions.

    python benchmarks/reference_service.py [--buyers 200] [--workers 50] [--seconds 5]
                                           [--database-url URL] [--bug NAME]...

Starts PostgreSQL (embedded unless ``--database-url``), the fake Stripe and
the reference service, then, through the tester's own transport (one
connection per request, so N fired means N arriving):

1. ``--buyers`` checkouts fired at once (each one a Stripe call);
2. the buyers pay at the fake Stripe;
3. their ``checkout.session.completed`` delivered at once (each one a
   fulfilment: a Stripe re-fetch and one transaction);
4. ``--workers`` loops redelivering those completions for ``--seconds``
   (the duplicate path: verify, one indexed read, 200).

For each phase: requests/s, latency percentiles, and the CPU seconds each
process spent, so the cost per request can be compared across machines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chaos.database import Database, embedded_server  # noqa: E402
from chaos.services import running  # noqa: E402
from chaos.signing import sign  # noqa: E402
from chaos.target import Target  # noqa: E402
from chaos.transport import LoopbackTransport  # noqa: E402

SECRET = "whsec_benchmark"
ANON = "anon_benchmark_key"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000


class Meter:
    def __init__(self, **pids: int) -> None:
        self.pids = pids

    @contextlib.contextmanager
    def phase(self, name: str, count: int) -> Iterator[list[float]]:
        latencies: list[float] = []
        before = {k: cpu_seconds(p) for k, p in self.pids.items()}
        tester = time.process_time()
        start = time.monotonic()
        yield latencies
        wall = time.monotonic() - start
        used = {k: cpu_seconds(p) - before[k] for k, p in self.pids.items()}
        used["tester"] = time.process_time() - tester
        n = len(latencies) or count
        cpu = ", ".join(f"{k} {v:.2f} s ({v / n * 1000:.1f} ms/req)" for k, v in used.items())
        print(f"{name}: {n} in {wall:.2f} s = {n / wall:.0f}/s; p50 {pct(latencies, 50):.0f} ms, "
              f"p95 {pct(latencies, 95):.0f} ms, max {pct(latencies, 100):.0f} ms; CPU {cpu}")


async def at_once(http: httpx.AsyncClient, requests: list[httpx.Request],
                  latencies: list[float]) -> list[httpx.Response]:
    answers: list[httpx.Response] = []
    go = trio.Event()

    async def one(request: httpx.Request, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await go.wait()
        start = trio.current_time()
        answers.append(await http.send(request))
        latencies.append(trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        for request in requests:
            await nursery.start(one, request)
        go.set()
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--database-url")
    parser.add_argument("--bug", action="append", default=[])
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.database_url or stack.enter_context(embedded_server())
        schema = f"bench_{secrets.token_hex(3)}"
        admin = Database(url)
        stack.callback(admin.close)
        admin.execute(f'create schema "{schema}"')
        stack.callback(admin.execute, f'drop schema "{schema}" cascade')
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        stripe = stack.enter_context(running("fake-stripe", [], workdir=work))
        reference = stack.enter_context(running(
            "reference", ["--database-url", url, "--schema", schema, "--stripe-api-base",
                          stripe.url, *[x for b in args.bug for x in ("--bug", b)]],
            workdir=work, env={"CHAOS_WEBHOOK_SECRET": SECRET, "CHAOS_ANON_KEY": ANON,
                               "CHAOS_STRIPE_API_KEY": "sk_test_benchmark"}))
        db = Database(url, schema=schema)
        stack.callback(db.close)
        target = Target(base_url=reference.url, webhook_secret=SECRET, anon_key=ANON)
        db.execute(target.fixture_event_sql, "bench")
        db.execute(target.fixture_ticket_type_sql, "bench-tt1", "bench", "GA", 2500, 10**9)
        meter = Meter(reference=reference.process.pid, fake_stripe=stripe.process.pid)
        print(f"reference service, bugs {args.bug or 'none'}, database "
              f"{'embedded' if not args.database_url else 'given'}, "
              f"load average {os.getloadavg()[0]:.1f}")

        def delivery(event: dict) -> httpx.Request:
            signed = sign(json.dumps(event), SECRET, now=int(time.time()))
            return httpx.Request("POST", reference.url + target.webhook_path,
                                 content=signed.body, headers=signed.headers)

        async def run() -> None:
            async with httpx.AsyncClient(transport=LoopbackTransport(), timeout=120,
                                         trust_env=False) as http:
                body = {"eventId": "bench", "tickets": [{"ticketTypeId": "bench-tt1",
                                                         "quantity": 1, "price": 2500}],
                        "customerEmail": "b@bench.test", "total": 2500}
                with meter.phase(f"{args.buyers} checkouts at once", args.buyers) as lat:
                    answers = await at_once(http, [
                        httpx.Request("POST", reference.url + target.checkout_path, json=body,
                                      headers=target.checkout_headers(f"bench-{i}"))
                        for i in range(args.buyers)], lat)
                assert all(a.status_code == 200 for a in answers), answers[0].text
                paid = await at_once(http, [
                    httpx.Request("POST", f"{stripe.url}/_chaos/checkout/sessions/"
                                  f"{a.json()['sessionId']}/pay") for a in answers], [])
                completions = [e for p in paid for e in p.json()["events"]
                               if e["type"] == "checkout.session.completed"]
                with meter.phase(f"{len(completions)} completions at once (fulfil)",
                                 len(completions)) as lat:
                    answers = await at_once(http, [delivery(e) for e in completions], lat)
                assert all(a.status_code == 200 for a in answers), answers[0].text
                with meter.phase(f"duplicate deliveries, {args.workers} workers for "
                                 f"{args.seconds:g} s", 1) as lat:
                    deadline = time.monotonic() + args.seconds

                    async def worker(i: int) -> None:
                        while time.monotonic() < deadline:
                            start = trio.current_time()
                            answer = await http.send(delivery(completions[i % len(completions)]))
                            lat.append(trio.current_time() - start)
                            assert answer.status_code == 200, answer.text
                            i += args.workers

                    async with trio.open_nursery() as nursery:
                        for i in range(args.workers):
                            nursery.start_soon(worker, i)

        trio.run(run)
        [row] = db.fetch(target.tickets_per_ticket_type_sql, "bench")
        print(f"tickets {row['tickets']}, reserved {row['reserved']} for {args.buyers} buyers")


if __name__ == "__main__":
    main()
