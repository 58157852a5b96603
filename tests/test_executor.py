"""The executor and its transport against real sockets on loopback: waves
arrive together, outcomes say what the client knows, nothing hangs."""

from __future__ import annotations

import socket

import httpx
import pytest
import trio

from chaos.executor import Call, fire_wave
from chaos.history import History, Outcome
from chaos.transport import LoopbackTransport


class CountingServer:
    """A tiny HTTP server that counts requests in flight; ``hang`` never answers."""

    def __init__(self, *, delay: float = 0.2, hang: bool = False) -> None:
        self.delay = delay
        self.hang = hang
        self.in_flight = 0
        self.peak = 0
        self.port = 0

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=2048)
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
        try:
            if self.hang:
                await trio.sleep_forever()
            await trio.sleep(self.delay)
            await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n"
                                  b"connection: close\r\n\r\nok")
        finally:
            self.in_flight -= 1
            await stream.aclose()


def calls_to(port: int, n: int, wave: int = 0) -> list[Call]:
    return [Call(kind="probe", door="target", wave=wave, step=i,
                 build=lambda: httpx.Request("POST", f"http://127.0.0.1:{port}/x", content=b"{}"))
            for i in range(n)]


async def fire(calls: list[Call], *, concurrency: int,
               timeout: float = 5.0) -> tuple[History, LoopbackTransport]:
    history = History()
    transport = LoopbackTransport()
    async with httpx.AsyncClient(transport=transport, trust_env=False) as http:
        await fire_wave(calls, http=http, limiter=trio.CapacityLimiter(concurrency),
                        history=history, request_timeout=timeout)
    return history, transport


@pytest.mark.parametrize("n", [50, 200])
def test_a_wave_of_n_arrives_together(n):
    async def main():
        server = CountingServer(delay=0.3)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            history, transport = await fire(calls_to(server.port, n), concurrency=n)
            nursery.cancel_scope.cancel()
        return server, history, transport

    server, history, transport = trio.run(main)
    assert server.peak == n
    assert transport.peak_in_flight == n
    assert [op.outcome for op in history.ops] == [Outcome.OK] * n
    assert history.wave_skew() < 0.5


def test_concurrency_is_capped_by_the_limiter():
    async def main():
        server = CountingServer(delay=0.05)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            history, _ = await fire(calls_to(server.port, 30), concurrency=7)
            nursery.cancel_scope.cancel()
        return server, history

    server, history = trio.run(main)
    assert server.peak == 7
    assert len(history.ops) == 30


def test_a_closed_port_is_a_definite_fail():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        history, _ = trio.run(lambda: fire(calls_to(port, 3), concurrency=3))
    assert {op.outcome for op in history.ops} == {Outcome.FAIL}
    assert all(op.status is None and "not delivered" in op.error for op in history.ops)


def test_a_hanging_server_gives_info_within_the_request_timeout():
    async def main():
        server = CountingServer(hang=True)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            start = trio.current_time()
            history, _ = await fire(calls_to(server.port, 5), concurrency=5, timeout=0.5)
            elapsed = trio.current_time() - start
            nursery.cancel_scope.cancel()
        return history, elapsed

    history, elapsed = trio.run(main)
    assert {op.outcome for op in history.ops} == {Outcome.INFO}
    assert elapsed < 3


def test_answers_are_seen_by_on_answer_and_build_runs_at_wave_time():
    seen: list[bytes] = []
    built: list[int] = []

    async def main():
        server = CountingServer(delay=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)

            def build():
                built.append(len(seen))
                return httpx.Request("GET", f"http://127.0.0.1:{server.port}/")

            first = [Call(kind="a", door="target", build=build,
                          on_answer=lambda r: seen.append(r.content))]
            second = [Call(kind="b", door="target", build=build)]
            history = History()
            async with httpx.AsyncClient(transport=LoopbackTransport()) as http:
                for wave in (first, second):
                    await fire_wave(wave, http=http, limiter=trio.CapacityLimiter(2),
                                    history=history, request_timeout=5)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert seen == [b"ok"]
    assert built == [0, 1]  # the second wave was built after the first one's answer
