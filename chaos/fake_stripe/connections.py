"""The TCP connections under the fake Stripe, for the faults that act on them.

ASGI gives an app no handle on its connection: the only ways to end one are
to answer, or to raise (uvicorn then answers 500, or closes cleanly once a
response began). Neither is a reset, and neither is an answer that never
comes. So the fake Stripe runs under uvicorn with its own HTTP protocol class
(a subclass of whichever uvicorn picks, httptools or h11) that registers each
connection's transport by the client address, which ASGI does pass
(``scope["client"]``). With the transport in hand:

- :meth:`Connections.reset` sets ``SO_LINGER`` to on with a zero timeout and
  aborts the transport: the kernel discards unsent data and sends RST, so the
  client reads ``ECONNRESET`` (``httpx.ReadError``, stripe-python
  ``APIConnectionError``), exactly as when a load balancer kills a connection.
- :meth:`Connections.drop` closes the transport without writing a byte: the
  client sees the server hang up with no response (FIN), the "did the work,
  lost the answer" case.

Uvicorn then learns of the closed connection (``connection_lost``), marks the
request cycle disconnected and ignores whatever the app still sends, so no
500 is logged and nothing reaches the wire.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

_LINGER_RESET = struct.pack("ii", 1, 0)

Address = tuple[str, int]


class Connections:
    """Open transports by client address, kept by :meth:`protocol`'s instances."""

    def __init__(self) -> None:
        self._open: dict[Address, asyncio.BaseTransport] = {}

    def __len__(self) -> int:
        return len(self._open)

    def protocol(self) -> type[asyncio.Protocol]:
        """Uvicorn's HTTP protocol class, registering each connection here."""
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        registry = self._open

        class TrackedProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
            def connection_made(self, transport: Any) -> None:
                super().connection_made(transport)
                if self.client:
                    registry[_address(self.client)] = transport

            def connection_lost(self, exc: Exception | None) -> None:
                if self.client and registry.get(_address(self.client)) is self.transport:
                    del registry[_address(self.client)]
                super().connection_lost(exc)

        return TrackedProtocol

    def transport(self, client: Any) -> asyncio.BaseTransport | None:
        return self._open.get(_address(client)) if client else None

    def reset(self, client: Any) -> bool:
        """Reset the client's connection (RST); False when it is not known here."""
        transport = self.transport(client)
        if transport is None:
            return False
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        transport.abort()  # type: ignore[attr-defined]
        return True

    def drop(self, client: Any) -> bool:
        """Close the client's connection without a response (FIN); False when unknown."""
        transport = self.transport(client)
        if transport is None:
            return False
        transport.close()
        return True


def _address(client: Any) -> Address:
    host, port = client[0], client[1]
    return str(host), int(port)
