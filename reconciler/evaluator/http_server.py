"""A small asyncio HTTP/1.1 server: asyncio streams, with h11 (httpx's own parser) doing the protocol.

Why not http.server: Envoy may forward a mirrored body chunked, and http.server does not decode
chunked request bodies; and the intake must decide "queue or drop" on the event loop the
workers run on. Why not a web framework: three routes do not need one, and h11 already comes
with httpx. Keep-alive, chunked bodies and `Expect: 100-continue` are h11's; a body larger than
`max_body` is refused with 413 and the connection closed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import h11

log = logging.getLogger(__name__)
READ_SIZE = 65536
DEFAULT_MAX_BODY = 8 * 1024 * 1024
LINGER_S = 2.0


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


class BodyTooLarge(Exception):
    pass


async def start_server(handler: Handler, host: str, port: int, *,
                       max_body: int = DEFAULT_MAX_BODY) -> asyncio.Server:
    """Serve `handler` on host:port (port 0: a free one; read it from server.sockets)."""
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _serve_connection(handler, reader, writer, max_body)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(connection, host, port)


async def _serve_connection(handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            max_body: int) -> None:
    conn = h11.Connection(h11.SERVER)
    while True:
        try:
            request = await _read_request(conn, reader, writer, max_body)
        except BodyTooLarge:
            await _send(conn, writer, Response(413, b'{"error": "body too large"}', headers={"connection": "close"}))
            await _linger(reader, writer)
            return
        except h11.RemoteProtocolError as exc:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await _send(conn, writer, Response(exc.error_status_hint, b'{"error": "bad request"}'))
            return
        if request is None:
            return
        try:
            response = await handler(request)
        except Exception:  # a handler bug answers 500 and keeps the server up
            log.exception("handler failed for %s %s", request.method, request.path)
            response = Response(500, b'{"error": "internal error"}')
        await _send(conn, writer, response)
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
            return
        conn.start_next_cycle()


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        max_body: int) -> Request | None:
    """The next whole request on the connection, or None when the client closed it."""
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if conn.they_are_waiting_for_100_continue:
                writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
            conn.receive_data(await reader.read(READ_SIZE))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_body:
                raise BodyTooLarge
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            path = head.target.decode("ascii", "replace").split("?", 1)[0]
            return Request(head.method.decode("ascii", "replace"), path, bytes(body))
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Drop what the client is still sending for up to LINGER_S before closing.

    Closing a socket with unread data sends a reset, and a client still writing its body can lose
    the 413 it has not read yet (nginx's `lingering_close` exists for the same reason).
    """
    if writer.can_write_eof():
        writer.write_eof()
    try:
        async with asyncio.timeout(LINGER_S):
            while await reader.read(READ_SIZE):
                pass
    except TimeoutError:
        pass


async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, response: Response) -> None:
    headers = [("content-type", response.content_type), ("content-length", str(len(response.body))),
               *response.headers.items()]
    writer.write(conn.send(h11.Response(status_code=response.status, headers=headers)))
    writer.write(conn.send(h11.Data(data=response.body)))
    writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()
