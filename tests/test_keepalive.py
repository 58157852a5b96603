"""The load mode's kept-alive client against real loopback servers: one connection
reused request after request, reopened when the server closes it or it sat idle, a
timeout, a chunked answer, an answer cut short, and the bytes it sends."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import h11
import httpx
import pytest
import trio

from chaos.keepalive import KeepAlive, WireRequest, split_url

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"

#: What a server does with one request: gets the stream, the request's number on its
#: connection (from 1) and the request as h11 read it; writes an answer (or not).
Behaviour = Callable[[trio.SocketStream, int, "Received"], Awaitable[bool]]


class Received:
    def __init__(self, request: h11.Request, body: bytes) -> None:
        self.method = request.method.decode()
        self.target = request.target.decode()
        self.headers = [(k.decode(), v.decode()) for k, v in request.headers]
        self.body = body


async def answer_ok(stream: trio.SocketStream, n: int, received: Received) -> bool:
    await stream.send_all(OK)
    return True


class Server:
    """A loopback HTTP/1.1 server that parses requests with h11 (as a server would)
    and answers each with ``behaviour``; counts connections and requests."""

    def __init__(self, behaviour: Behaviour = answer_ok) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self.received: list[Received] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self.handle, listeners)

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        parser = h11.Connection(h11.SERVER)
        n = 0
        async with stream:
            while True:
                request, body = None, b""
                while True:
                    event = parser.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        if not data:
                            return
                        parser.receive_data(data)
                    elif isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                assert request is not None
                n += 1
                received = Received(request, body)
                self.received.append(received)
                if not await self.behaviour(stream, n, received):
                    return
                # the answer was written by hand: let h11 forget this cycle
                parser = h11.Connection(h11.SERVER)


def run_with(server: Server, client: Callable[[], Awaitable[object]]) -> object:
    async def main() -> object:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            try:
                return await client()
            finally:
                nursery.cancel_scope.cancel()
    return trio.run(main)


def post(url: str, n: int) -> WireRequest:
    return WireRequest.make("POST", url, {"content-type": "application/json"},
                            b'{"n": %d}' % n)


@pytest.mark.parametrize("close_after, connections", [(0, 1), (4, 3)])
def test_one_connection_is_kept_until_the_server_says_it_closes(close_after, connections):
    async def behaviour(stream: trio.SocketStream, n: int, received: Received) -> bool:
        last = bool(close_after) and n >= close_after
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n"
                              + (b"connection: close\r\n" if last else b"") + b"\r\nok")
        return not last

    server = Server(behaviour)
    door = KeepAlive()

    async def client() -> list[tuple[int, bytes]]:
        answers = [await door.exchange(post(server.url, i), timeout=5) for i in range(10)]
        await door.aclose()
        return [(a.status, a.body) for a in answers]

    assert run_with(server, client) == [(200, b"ok")] * 10
    assert len(server.received) == 10
    assert server.connections == connections == door.opened
    assert [r.body for r in server.received] == [b'{"n": %d}' % i for i in range(10)]


def test_a_connection_idle_too_long_is_reopened_before_the_next_request():
    server = Server()
    door = KeepAlive(idle_seconds=0.05)

    async def client() -> None:
        await door.exchange(post(server.url, 0), timeout=5)
        await door.exchange(post(server.url, 1), timeout=5)   # at once: same connection
        await trio.sleep(0.2)
        await door.exchange(post(server.url, 2), timeout=5)   # idle: a fresh one
        await door.aclose()

    run_with(server, client)
    assert server.connections == door.opened == 2


def test_a_server_that_closes_without_answering_is_an_error_and_the_next_request_reconnects():
    async def behaviour(stream: trio.SocketStream, n: int, received: Received) -> bool:
        if n == 2:
            return False          # read the request, close without a word
        await stream.send_all(OK)
        return True

    server = Server(behaviour)
    door = KeepAlive()

    async def client() -> list[object]:
        outcomes: list[object] = []
        for i in range(3):
            try:
                outcomes.append((await door.exchange(post(server.url, i), timeout=5)).status)
            except httpx.HTTPError as exc:
                outcomes.append(type(exc))
        await door.aclose()
        return outcomes

    assert run_with(server, client) == [200, httpx.RemoteProtocolError, 200]
    assert server.connections == 2


def test_no_answer_within_the_timeout_is_a_read_timeout():
    async def behaviour(stream: trio.SocketStream, n: int, received: Received) -> bool:
        await trio.sleep_forever()
        return False

    server = Server(behaviour)
    door = KeepAlive()

    async def client() -> float:
        began = trio.current_time()
        with pytest.raises(httpx.ReadTimeout, match="no answer within 0.2 s"):
            await door.exchange(post(server.url, 0), timeout=0.2)
        return trio.current_time() - began

    waited = run_with(server, client)
    assert isinstance(waited, float) and 0.2 <= waited < 5


def test_a_chunked_answer_in_pieces_is_read_whole_and_the_connection_kept():
    async def behaviour(stream: trio.SocketStream, n: int, received: Received) -> bool:
        await stream.send_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for part in (b'{"received"', b": true, ", b'"n": %d}' % n):
            await stream.send_all(b"%x\r\n%s\r\n" % (len(part), part))
            await trio.sleep(0.01)
        await stream.send_all(b"0\r\n\r\n")
        return True

    server = Server(behaviour)
    door = KeepAlive()

    async def client() -> list[bytes]:
        bodies = [(await door.exchange(post(server.url, i), timeout=5)).body for i in range(3)]
        await door.aclose()
        return bodies

    assert run_with(server, client) == [b'{"received": true, "n": %d}' % n for n in (1, 2, 3)]
    assert server.connections == 1


def test_a_large_answer_over_many_reads_arrives_whole():
    big = bytes(range(256)) * 2000     # 512 kB: many reads

    async def behaviour(stream: trio.SocketStream, n: int, received: Received) -> bool:
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(big) + big)
        return True

    server = Server(behaviour)

    async def client() -> bytes:
        door = KeepAlive()
        body = (await door.exchange(post(server.url, 0), timeout=5)).body
        await door.aclose()
        return body

    assert run_with(server, client) == big


def test_a_malformed_answer_is_a_protocol_error():
    async def behaviour(stream: trio.SocketStream, n: int, received: Received) -> bool:
        await stream.send_all(b"HTTP/1.1 two hundred\r\n\r\n")
        return True

    server = Server(behaviour)

    async def client() -> None:
        with pytest.raises(httpx.RemoteProtocolError, match="malformed response"):
            await KeepAlive().exchange(post(server.url, 0), timeout=5)

    run_with(server, client)


def test_a_refused_connection_is_never_sent():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # bound, not listening: refused

        async def main() -> None:
            await KeepAlive().exchange(post(f"http://127.0.0.1:{port}/", 0), timeout=2)

        with pytest.raises(httpx.ConnectError, match="Connection refused"):
            trio.run(main)


def test_a_wire_request_arrives_as_the_same_httpx_request_would():
    server = Server()
    url_path = "/functions/v1/stripe-webhook?x=a b"
    headers = {"content-type": "application/json", "stripe-signature": "t=1,v1=ab"}
    body = b'{"id": "evt_1"}'

    async def client() -> None:
        door = KeepAlive()
        await door.exchange(WireRequest.make("POST", server.url + url_path, headers, body),
                            timeout=5)
        await door.exchange(WireRequest.of(httpx.Request(
            "POST", server.url + url_path, headers=headers, content=body)), timeout=5)
        await door.aclose()

    run_with(server, client)
    lean, via_httpx = server.received
    assert (lean.method, lean.target, lean.body) == (via_httpx.method, via_httpx.target, body)
    assert sorted(lean.headers) == sorted(via_httpx.headers)
    assert dict(lean.headers)["content-length"] == str(len(body))
    _, target, path = split_url(server.url + url_path)
    assert (target, path) == ("/hook/functions/v1/stripe-webhook?x=a%20b",
                              "/hook/functions/v1/stripe-webhook")


@pytest.mark.parametrize("bad", [{"x-a": "1\r\nx-b: 2"}, {"x-a\n": "1"}])
def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(bad):
    with pytest.raises(ValueError, match="line break"):
        WireRequest.make("POST", "http://127.0.0.1:1/", bad, b"")


def test_only_http_urls_are_sent():
    with pytest.raises(httpx.UnsupportedProtocol, match="only http://"):
        WireRequest.make("POST", "https://127.0.0.1:1/", {}, b"")
