"""How fast the fake Stripe creates Checkout Sessions under 50-way load.

    python benchmarks/fake_stripe.py [--requests 3000] [--concurrency 50] [--rounds 3] [--baseline]

Starts ``python -m chaos fake-stripe`` as the chaos run does, then fires
``POST /v1/checkout/sessions`` (stripe-python's form encoding, a fresh
``Idempotency-Key`` each, as stripe-python sends) from trio, ``concurrency``
in flight, one TCP connection per request (the tester's own transport).
Prints requests/s, latency percentiles and the server process's CPU time per
request (from /proc), so the figure says whether the fake or the client is
the bottleneck. ``--baseline`` fires ``GET /_chaos/health`` instead (a
trivial endpoint: the floor set by uvicorn, TCP set-up and the client).
A figure, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import httpx
import trio
from stripe._encode import _api_encode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chaos.services import running  # noqa: E402
from chaos.transport import LoopbackTransport  # noqa: E402

KEY = "sk_test_benchmark_0000000000"
PARAMS = {"mode": "payment", "success_url": "http://127.0.0.1/ok",
          "metadata": {"event_id": "bench", "quantity": "2"},
          "line_items": [{"quantity": 2, "price_data": {
              "currency": "usd", "unit_amount": 2500, "product_data": {"name": "GA"}}}]}
BODY = urlencode(list(_api_encode(PARAMS))).replace("%5B", "[").replace("%5D", "]")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def fire(url: str, requests: int, concurrency: int,
               baseline: bool = False) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    failed = 0
    limiter = trio.CapacityLimiter(concurrency)
    async with httpx.AsyncClient(transport=LoopbackTransport(), timeout=30.0) as http:
        async def one() -> None:
            nonlocal failed
            async with limiter:
                started = time.perf_counter()
                if baseline:
                    response = await http.get(f"{url}/_chaos/health")
                else:
                    response = await http.post(
                        f"{url}/v1/checkout/sessions", content=BODY,
                        headers={"authorization": f"Bearer {KEY}",
                                 "idempotency-key": str(uuid.uuid4()),
                                 "content-type": "application/x-www-form-urlencoded"})
                latencies.append(time.perf_counter() - started)
                failed += response.status_code != 200

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(requests):
                nursery.start_soon(one)
        return time.perf_counter() - started, latencies, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", action="store_true",
                        help="fire GET /_chaos/health instead of session creates")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, running("fake-stripe", [],
                                                          workdir=Path(workdir)) as fake:
        trio.run(fire, fake.url, 200, args.concurrency)  # warm-up
        for round_ in range(1, args.rounds + 1):
            cpu_before = cpu_seconds(fake.process.pid)
            seconds, latencies, failed = trio.run(fire, fake.url, args.requests, args.concurrency,
                                                  args.baseline)
            cpu = cpu_seconds(fake.process.pid) - cpu_before
            ms = sorted(x * 1000 for x in latencies)
            what = "health checks" if args.baseline else "session creates"
            print(f"round {round_}: {args.requests} {what}, {args.concurrency} in flight: "
                  f"{args.requests / seconds:,.0f} req/s; p50 {statistics.median(ms):.1f} ms, "
                  f"p95 {ms[int(len(ms) * 0.95) - 1]:.1f} ms; failed {failed}; "
                  f"server CPU {cpu / args.requests * 1e6:.0f} us/request "
                  f"(= {args.requests / cpu if cpu else float('inf'):,.0f} req/s per core)")


if __name__ == "__main__":
    main()
