"""A minimal RFC 6455 websocket client as a bare asyncio Protocol.

Why not the ``websockets`` library: a load generator holding 10,000+ sockets in
one process pays per-connection tasks, queues and per-frame coroutine switches
there. Here a connection is one Protocol object; received frames are parsed in
``data_received`` and handed to a plain callback, with no task per socket.

Only what a socket.io client needs: the HTTP/1.1 upgrade, masked text frames out,
text/binary frames in (fragmented messages reassembled), ping -> pong, close.
No extensions are offered, so the server never compresses (permessage-deflate
would cost the tool more CPU than the server).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import struct
import time
from collections.abc import Callable
from typing import cast

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HANDSHAKE = 16 * 1024

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

# Handler of one complete data message: (payload, receive time in ns since epoch).
MessageHandler = Callable[[bytes, int], None]
# Called once when the connection is gone, with a short reason.
CloseHandler = Callable[[str], None]


class HandshakeError(Exception):
    """The server did not accept the websocket upgrade."""


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept value the server must answer for ``key``."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def mask_payload(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask`` repeated.

    One big-int XOR is far cheaper in CPython than a per-byte loop.
    """
    n = len(payload)
    if n == 0:
        return b""
    repeated = (mask * (n // 4 + 1))[:n]
    value = int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")
    return value.to_bytes(n, "little")


def encode_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final client frame; clients must mask (RFC 6455 5.3)."""
    if mask is None:
        mask = random.getrandbits(32).to_bytes(4, "little")
    n = len(payload)
    head = bytes((0x80 | opcode,))
    if n < 126:
        head += bytes((0x80 | n,))
    elif n < 1 << 16:
        head += struct.pack("!BH", 0x80 | 126, n)
    else:
        head += struct.pack("!BQ", 0x80 | 127, n)
    return head + mask + mask_payload(payload, mask)


class FrameParser:
    """Incremental parser of server-to-client frames.

    ``feed`` returns complete (opcode, payload) pairs; data messages split across
    continuation frames are joined. Server frames are normally unmasked, but a
    masked one is unmasked rather than rejected.
    """

    __slots__ = ("_buf", "_frag", "_frag_op")

    def __init__(self) -> None:
        self._buf = b""
        self._frag_op = 0
        self._frag: list[bytes] = []

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf + data if self._buf else data
        out: list[tuple[int, bytes]] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            hdr = 2
            if n == 126:
                if end - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                hdr = 4
            elif n == 127:
                if end - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hdr = 10
            masked = b1 & 0x80
            if masked:
                hdr += 4
            if end - pos < hdr + n:
                break
            payload = buf[pos + hdr : pos + hdr + n]
            if masked:
                payload = mask_payload(payload, buf[pos + hdr - 4 : pos + hdr])
            pos += hdr + n
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode >= OP_CLOSE:  # control frames are never fragmented
                out.append((opcode, payload))
            elif opcode == OP_CONT:
                self._frag.append(payload)
                if fin:
                    out.append((self._frag_op, b"".join(self._frag)))
                    self._frag = []
            elif fin:
                out.append((opcode, payload))
            else:
                self._frag_op = opcode
                self._frag = [payload]
        self._buf = buf[pos:] if pos < end else b""
        return out


def new_read_buffer(size: int = 256 * 1024) -> memoryview:
    """A receive buffer that many connections of one event loop may share."""
    return memoryview(bytearray(size))


class WebSocketProtocol(asyncio.BufferedProtocol):
    """Client side of one websocket connection.

    ``opened`` resolves when the upgrade succeeded; data messages go to
    ``on_message`` with the receive time (taken once per read, since all frames
    of one read arrived together); ``on_close`` runs once.

    A BufferedProtocol, because plain ``Protocol`` makes asyncio call
    ``sock.recv(256 KiB)``, which allocates a 256 KiB bytes object per read: that
    costs ~17 µs per read, measured, against ~0.5 µs for ``recv_into`` a reused
    buffer. The buffer can be shared by every connection of the loop (pass the
    same ``read_buffer``): each read is consumed synchronously in
    ``buffer_updated`` before the loop reads another socket.
    """

    def __init__(
        self,
        host: str,
        resource: str,
        on_message: MessageHandler,
        on_close: CloseHandler,
        read_buffer: memoryview | None = None,
    ) -> None:
        self._read_buffer = read_buffer if read_buffer is not None else new_read_buffer(65536)
        self._host = host
        self._resource = resource
        self._on_message = on_message
        self._on_close = on_close
        self._key = base64.b64encode(os.urandom(16))
        self._transport: asyncio.Transport | None = None
        self._handshake_buf = b""
        self._parser: FrameParser | None = None
        self._closed = False
        self._close_sent = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport; uvloop's is not a subclass of asyncio.Transport
        self._transport = cast(asyncio.Transport, transport)
        request = (
            f"GET {self._resource} HTTP/1.1\r\n"
            f"Host: {self._host}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self._key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n"
        )
        self._transport.write(request.encode())

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._read_buffer[:nbytes]))

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            data = self._read_handshake(data)
            parser = self._parser
            if parser is None or not data:
                return
        now = time.time_ns()
        for opcode, payload in parser.feed(data):
            if opcode in (OP_TEXT, OP_BINARY):
                self._on_message(payload, now)
            elif opcode == OP_PING:
                self._write(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                self._handle_close_frame(payload)
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during handshake"))
        self._finish(f"connection lost: {exc}" if exc else "connection closed")

    # -- API --------------------------------------------------------------
    def send_text(self, payload: bytes) -> None:
        self._write(OP_TEXT, payload)

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake; the server then closes TCP, so the
        TIME_WAIT state lands on the server's side and churn does not exhaust the
        tool's ephemeral ports."""
        if self._transport is None or self._closed:
            return
        if not self._close_sent and self._parser is not None:
            self._close_sent = True
            self._write(OP_CLOSE, struct.pack("!H", code))
        else:
            self.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.close()

    @property
    def is_open(self) -> bool:
        return self._parser is not None and not self._closed and not self._close_sent

    # -- internals --------------------------------------------------------
    def _write(self, opcode: int, payload: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(encode_frame(opcode, payload))

    def _read_handshake(self, data: bytes) -> bytes:
        buf = self._handshake_buf + data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HANDSHAKE:
                self._fail_handshake("handshake response too large")
            else:
                self._handshake_buf = buf
            return b""
        head = buf[:end].decode("latin-1").split("\r\n")
        status = head[0].split(" ", 2)
        if len(status) < 2 or status[1] != "101":
            self._fail_handshake(f"upgrade refused: {head[0]}")
            return b""
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("sec-websocket-accept", "").encode() != accept_key(self._key):
            self._fail_handshake("bad Sec-WebSocket-Accept")
            return b""
        self._handshake_buf = b""
        self._parser = FrameParser()
        self.opened.set_result(None)
        return buf[end + 4 :]

    def _fail_handshake(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(reason))
        self.abort()

    def _handle_close_frame(self, payload: bytes) -> None:
        if not self._close_sent:
            self._close_sent = True
            self._write(OP_CLOSE, payload[:2])
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        self._finish(f"closed by peer ({code})")
        self.abort()

    def _finish(self, reason: str) -> None:
        if not self._closed:
            self._closed = True
            self._on_close(reason)
