"""The executor and its transport against real sockets on loopback: waves
arrive together, outcomes say what the client knows, nothing hangs."""

from __future__ import annotations

import socket

import httpx
import pytest
import trio

from chaos.errors import UsageError
from chaos.executor import Call, Executor, ensure_descriptors
from chaos.history import History, Outcome
from chaos.transport import LoopbackTransport


class CountingServer:
    """A tiny HTTP server that counts requests in flight (headers read, not yet answered).

    ``hold_until``: answer nobody until that many requests are in flight at
    once (or ``hold_limit`` seconds passed), so "they were all in flight
    together" is a fact the server establishes, not a timing guess.
    ``hang``: never answer. ``crash``: read the request, then drop the
    connection without a word.
    """

    def __init__(self, *, hold_until: int = 0, hold_limit: float = 20.0, hang: bool = False,
                 crash: bool = False) -> None:
        self.hold_until = hold_until
        self.hold_limit = hold_limit
        self.hang = hang
        self.crash = crash
        self.in_flight = 0
        self.peak = 0
        self.port = 0
        self._enough = trio.Event()

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=4096)
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self.handle, listeners)

    async def handle(self, stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.in_flight >= self.hold_until:
            self._enough.set()
        try:
            if self.hang:
                await trio.sleep_forever()
            if self.crash:
                return
            with trio.move_on_after(self.hold_limit):
                await self._enough.wait()
            await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n"
                                  b"connection: close\r\n\r\nok")
        finally:
            self.in_flight -= 1
            await stream.aclose()


def calls_to(port: int, n: int, wave: int = 0, offset: float = 0.0) -> list[Call]:
    return [Call(kind="probe", door="target", wave=wave, step=i, offset=offset,
                 build=lambda: httpx.Request("POST", f"http://127.0.0.1:{port}/x", content=b"{}"))
            for i in range(n)]


def against(server: CountingServer, calls_for, *, concurrency: int, timeout: float = 10.0):
    """Serve, fire one wave built by ``calls_for(port)``, stop serving; the executor."""

    async def main() -> Executor:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            executor = Executor(concurrency=concurrency, request_timeout=timeout)
            await executor.fire_wave(calls_for(server.port), wave=0)
            nursery.cancel_scope.cancel()
        return executor

    return trio.run(main)


@pytest.mark.parametrize("n", [50, 200, 1000])
def test_a_wave_of_n_arrives_together(n):
    server = CountingServer(hold_until=n)
    executor = against(server, lambda port: calls_to(port, n), concurrency=n)
    history = executor.history
    assert server.peak == n                      # the server had all n in flight at once
    assert history.client_peak_in_flight == n
    assert [op.outcome for op in history.ops] == [Outcome.OK] * n
    [wave] = history.waves
    assert wave.requests == n and wave.preconnected == n
    assert all(wave.barrier <= op.start for op in history.ops)
    assert wave.skew == max(op.start for op in history.ops) - min(op.start for op in history.ops)


def test_concurrency_is_capped_by_the_limiter():
    server = CountingServer(hold_until=7)
    executor = against(server, lambda port: calls_to(port, 30), concurrency=7)
    assert server.peak == 7
    assert executor.history.client_peak_in_flight == 7
    assert executor.history.waves[0].preconnected == 7
    assert [op.outcome for op in executor.history.ops] == [Outcome.OK] * 30


def test_a_closed_port_is_a_definite_fail():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        executor = Executor(concurrency=3, request_timeout=5)
        trio.run(executor.fire_wave, calls_to(port, 3))
    ops = executor.history.ops
    assert {op.outcome for op in ops} == {Outcome.FAIL}
    assert all(op.status is None and not op.sent and "not delivered" in op.error for op in ops)


def test_a_hanging_server_gives_info_within_the_request_timeout():
    async def main():
        server = CountingServer(hang=True)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            start = trio.current_time()
            executor = Executor(concurrency=5, request_timeout=0.5)
            await executor.fire_wave(calls_to(server.port, 5))
            elapsed = trio.current_time() - start
            nursery.cancel_scope.cancel()
        return executor.history, elapsed

    history, elapsed = trio.run(main)
    assert {op.outcome for op in history.ops} == {Outcome.INFO}
    assert all(op.sent and "no answer within 0.5 s" in op.error for op in history.ops)
    assert elapsed < 30  # bounded: it gave up, it did not wait forever


def test_a_dropped_connection_after_sending_is_info():
    executor = against(CountingServer(crash=True), lambda port: calls_to(port, 2), concurrency=2)
    ops = executor.history.ops
    assert {op.outcome for op in ops} == {Outcome.INFO}
    assert all(op.sent and op.status is None for op in ops)


def test_an_offset_step_is_redelivered_while_the_first_is_in_flight():
    """The server holds the first request until the second one arrives: both
    answered means the second went out while the first was in flight."""
    server = CountingServer(hold_until=2)
    executor = against(server, lambda port: calls_to(port, 1) + calls_to(port, 1, offset=0.05),
                       concurrency=2)
    history = executor.history
    assert server.peak == 2
    assert [op.outcome for op in history.ops] == [Outcome.OK, Outcome.OK]
    late = next(op for op in history.ops if op.offset)
    assert late.offset == 0.05
    assert late.start >= history.waves[0].barrier + 0.05


def test_answers_are_seen_by_on_answer_and_build_runs_at_wave_time():
    seen: list[bytes] = []
    built: list[int] = []

    async def main():
        server = CountingServer()
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)

            def build():
                built.append(len(seen))
                return httpx.Request("GET", f"http://127.0.0.1:{server.port}/")

            first = [Call(kind="a", door="target", build=build,
                          on_answer=lambda r: seen.append(r.content))]
            second = [Call(kind="b", door="target", build=build)]
            executor = Executor(concurrency=2, request_timeout=5)
            for wave in (first, second):
                await executor.fire_wave(wave)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert seen == [b"ok"]
    assert built == [0, 1]  # the second wave was built after the first one's answer


def test_the_transport_also_serves_plain_httpx():
    async def main():
        server = CountingServer()
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            async with httpx.AsyncClient(transport=LoopbackTransport(), trust_env=False) as http:
                response = await http.get(f"http://127.0.0.1:{server.port}/")
            nursery.cancel_scope.cancel()
        return response

    response = trio.run(main)
    assert (response.status_code, response.text) == (200, "ok")


def test_a_history_without_schedule_waves_has_no_skew():
    assert History().wave_skew() == 0.0


def test_too_few_file_descriptors_is_a_usage_error(monkeypatch):
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _: (256, 1024))
    with pytest.raises(UsageError, match="ulimit -n"):
        ensure_descriptors(10_000)
