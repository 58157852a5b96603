"""The httpx transport seam: trio streams and h11, one connection per request.

httpx's own pool serialises exactly the concurrency this tool exists to
create (measured: 50 requests fired behind a barrier arrived 10 to 12 at a
time). Here every request gets a fresh TCP connection, so 50 fired means 50
arriving. Lower-level errors are mapped to httpx's exception tree; whether
any byte of the request left this process decides between ``ConnectError``
(it certainly never arrived) and the read/write errors (it may have).
"""

from __future__ import annotations

import h11
import httpx
import trio

_READ_SIZE = 65536
_MAX_BODY = 8 * 1024 * 1024


class LoopbackTransport(httpx.AsyncBaseTransport):
    """``handle_async_request`` over trio + h11, a fresh connection each time."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak_in_flight = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        connect_timeout = timeouts.get("connect") or 10.0
        read_timeout = timeouts.get("read") or 30.0
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"only http:// on loopback is supported, not {request.url}")

        try:
            with trio.fail_after(connect_timeout):
                stream = await trio.open_tcp_stream(host, port)
        except trio.TooSlowError:
            raise httpx.ConnectTimeout(f"connect to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(f"connect to {host}:{port}: {exc.strerror or exc}") from None

        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._exchange(stream, request, read_timeout)
        finally:
            self.in_flight -= 1
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _exchange(self, stream: trio.SocketStream, request: httpx.Request,
                        read_timeout: float) -> httpx.Response:
        conn = h11.Connection(our_role=h11.CLIENT)
        body = await request.aread()
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"connection"]
        headers.append((b"connection", b"close"))
        data = conn.send(h11.Request(method=request.method, target=request.url.raw_path,
                                     headers=headers))
        if body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        try:
            await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise httpx.WriteError(f"sending to {request.url.host}: {exc}") from None

        status = 0
        response_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(f"malformed response: {exc}") from None
            if event is h11.NEED_DATA:
                try:
                    with trio.fail_after(read_timeout):
                        chunk = await stream.receive_some(_READ_SIZE)
                except trio.TooSlowError:
                    raise httpx.ReadTimeout(f"no answer within {read_timeout:g} s") from None
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    raise httpx.ReadError(f"connection lost: {exc}") from None
                conn.receive_data(chunk)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                response_headers = list(event.headers)
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > _MAX_BODY:
                    raise httpx.RemoteProtocolError(f"response body over {_MAX_BODY} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError("connection closed before a complete response")
        return httpx.Response(status, headers=response_headers, content=b"".join(chunks),
                              extensions={"http_version": b"HTTP/1.1"})
