"""The load mode's HTTP/1.1 client: one kept-alive connection per virtual user, lean.

A race wave wants a fresh connection per request (:mod:`chaos.transport`);
sustained load wants what browsers and k6 do, one connection kept open per
virtual user, so the cost of connecting is paid once instead of per request.
Requests go one at a time (no pipelining). The connection is (re)opened when
there is none, when the server said it will close, or when it sat idle
longer than ``idle_seconds`` (servers close idle ones: uvicorn after 5 s).

Here the client's own CPU per request is the figure (measured against k6 by
``nox -s bench``), so the path of a request is as short as Python allows:

- a :class:`WireRequest` is the bytes to send and what the history needs to
  know of them (method, path); the load mode builds webhook deliveries as
  such directly (no ``httpx.Request``: its URL parsing and header
  normalisation were a seventh of a load request's CPU), anything else goes
  through :meth:`WireRequest.of` from an ``httpx.Request``;
- the socket is a plain non-blocking one: the request goes out with one
  ``send`` (no task switch when the kernel takes it all, as it does for a
  small request), then the task waits for readability once and reads
  (trio's ``SocketStream`` tries the read first, a wasted syscall, and adds
  a conflict detector and checkpoints per call);
- the answer is parsed by httptools (the C parser uvicorn uses; against h11
  it halves the parsing CPU), one parser per connection, reused.

Failures raise httpx's exceptions, as :mod:`chaos.transport` does:
``ConnectError`` / ``ConnectTimeout`` (never sent), ``WriteError``,
``ReadError``, ``ReadTimeout`` and ``RemoteProtocolError`` (it may have
arrived). Any failure closes the connection; the next request opens another.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Mapping
from dataclasses import dataclass

import httptools
import httpx
import trio

from chaos.transport import DEFAULT_READ_TIMEOUT, open_stream

_READ_SIZE = 65536
_MAX_BODY = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Origin:
    """Where requests go: ``http://host:port``."""

    host: str
    port: int
    #: The Host header's value.
    netloc: bytes


@functools.lru_cache(maxsize=256)
def split_url(url: str) -> tuple[Origin, str, str]:
    """``url`` as ``(origin, request target, path)``, exactly as httpx would send it (the
    target percent-encoded, with the query; the path as the history records it); split
    once per URL. Raises httpx.UnsupportedProtocol for anything but ``http://``."""
    parsed = httpx.URL(url)
    if parsed.scheme != "http":
        raise httpx.UnsupportedProtocol(f"only http:// on loopback is supported, not {url}")
    return (Origin(parsed.host, parsed.port or 80, parsed.netloc),
            parsed.raw_path.decode("ascii"), parsed.path)


@dataclass(frozen=True, slots=True)
class WireRequest:
    """One request as it goes on the wire: ``data`` holds the head and the body."""

    origin: Origin
    method: str
    #: The URL's path, as the history records it.
    path: str
    data: bytes

    @classmethod
    def make(cls, method: str, url: str, headers: Mapping[str, str], body: bytes) -> WireRequest:
        """``method url`` with ``headers`` plus Host and Content-Length, as
        ``httpx.Request(method, url, headers=headers, content=body)`` would send them."""
        origin, target, path = split_url(url)
        head = [f"{method} {target} HTTP/1.1\r\nhost: ".encode(), origin.netloc,
                b"\r\ncontent-length: %d\r\n" % len(body)]
        for name, value in headers.items():
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                raise ValueError(f"header {name!r}: a line break in a header would split the "
                                 "request; remove it from the header")
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        head.append(b"\r\n")
        head.append(body)
        return cls(origin, method, path, b"".join(head))

    @classmethod
    def of(cls, request: httpx.Request) -> WireRequest:
        """An httpx request on the wire (its headers as httpx normalised them, without
        ``connection``: the connection is kept)."""
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"only http:// on loopback is supported, not {url}")
        origin = Origin(url.host, url.port or 80, url.netloc)
        head = [b"%s %s HTTP/1.1" % (request.method.encode(), url.raw_path)]
        head += [k + b": " + v for k, v in request.headers.raw if k.lower() != b"connection"]
        data = b"\r\n".join(head) + b"\r\n\r\n" + request.content
        return cls(origin, request.method, url.path, data)


@dataclass(slots=True)
class Answer:
    """A whole response: when the request went out, and what came back."""

    sent_at: float
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class _Reader:
    """httptools' callbacks for one connection: collects the current response."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.complete = False
        self.keep_alive = False

    def reset(self) -> None:
        self.headers = []
        self.chunks = []
        self.size = 0
        self.complete = False

    def on_headers_complete(self) -> None:
        # asked here: once the message is complete, httptools has forgotten (it says False)
        self.keep_alive = self.parser.should_keep_alive()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > _MAX_BODY:
            raise httpx.RemoteProtocolError(f"response body over {_MAX_BODY} bytes")
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class KeepAlive:
    """One HTTP/1.1 connection reused request after request (see the module docstring)."""

    def __init__(self, *, idle_seconds: float = 4.0) -> None:
        self.idle_seconds = idle_seconds
        self._sock: socket.socket | None = None
        self._reader: _Reader | None = None
        self._origin: Origin | None = None
        self._last_used = 0.0
        #: Connections opened so far (1 for a VU that never lost its connection).
        self.opened = 0

    async def _connect(self, origin: Origin, timeout: float) -> socket.socket:
        self.close()
        stream = await open_stream(origin.host, origin.port, timeout)
        # the plain socket under trio's (TCP_NODELAY and non-blocking stay set on it)
        sock = socket.socket(fileno=stream.socket.detach())
        sock.setblocking(False)
        self._sock, self._reader, self._origin = sock, _Reader(), origin
        self.opened += 1
        return sock

    async def exchange(self, request: WireRequest, *,
                       timeout: float = DEFAULT_READ_TIMEOUT) -> Answer:
        """Send ``request`` on the kept connection and read the whole answer."""
        sock = self._sock
        now = trio.current_time()
        if sock is None or self._origin != request.origin or now - self._last_used > self.idle_seconds:
            sock = await self._connect(request.origin, timeout)
        reader = self._reader
        assert reader is not None
        reader.reset()
        data = request.data
        sent_at = trio.current_time()
        try:
            await self._send(sock, data, request.origin.host)
            with trio.move_on_after(timeout) as scope:
                await self._read(sock, reader)
            if scope.cancelled_caught:
                raise httpx.ReadTimeout(f"no answer within {timeout:g} s")
        except BaseException:
            self.close()
            raise
        self._last_used = trio.current_time()
        if not reader.keep_alive:
            self.close()
        return Answer(sent_at, reader.parser.get_status_code(), reader.headers,
                      b"".join(reader.chunks))

    async def exchange_httpx(self, request: httpx.Request, *,
                             timeout: float = DEFAULT_READ_TIMEOUT) -> tuple[float, httpx.Response]:
        """:meth:`exchange` for an httpx request: ``(sent_at, response)``."""
        answer = await self.exchange(WireRequest.of(request), timeout=timeout)
        return answer.sent_at, httpx.Response(
            answer.status, headers=answer.headers, content=answer.body, request=request,
            extensions={"http_version": b"HTTP/1.1"})

    @staticmethod
    async def _send(sock: socket.socket, data: bytes, host: str) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
                continue
            except OSError as exc:
                raise httpx.WriteError(f"sending to {host}: {exc}") from None
            view = view[sent:]

    @staticmethod
    async def _read(sock: socket.socket, reader: _Reader) -> None:
        while not reader.complete:
            await trio.lowlevel.wait_readable(sock)
            try:
                chunk = sock.recv(_READ_SIZE)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise httpx.ReadError(f"connection lost: {exc}") from None
            if not chunk:
                raise httpx.RemoteProtocolError("connection closed before a complete response")
            try:
                reader.parser.feed_data(chunk)
            except httptools.HttpParserError as exc:
                raise httpx.RemoteProtocolError(f"malformed response: {exc}") from None

    def close(self) -> None:
        """Close the connection (the next request opens another)."""
        sock, self._sock = self._sock, None
        self._reader = None
        if sock is not None:
            trio.lowlevel.notify_closing(sock)
            sock.close()

    async def aclose(self) -> None:
        self.close()
