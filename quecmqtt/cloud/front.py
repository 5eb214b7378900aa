"""The auth front: one port for plain MQTT and TLS (a first byte of 0x16 is a TLS
handshake, as the seed's 4.2.1 uses TLS on 1883), reads the CONNECT, lets `auth.decide`
judge it, and then refuses, answers a registration, or pipes the session to the broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import replace

from quecmqtt.cloud.auth import SERVER_UNAVAILABLE, Forward, Push, Refuse, decide, split_client_id
from quecmqtt.cloud.autosub import QOS, topics_for, wants_auto_subscription
from quecmqtt.cloud.pipe import DevicePipe
from quecmqtt.cloud.registry import Registry
from quecmqtt.cloud.topics import may_publish
from quecmqtt.wire.mqtt import (
    CONNACK,
    CONNECT,
    MAX_CONNECT,
    SUBACK,
    SUBSCRIBE,
    Connect,
    WireError,
    connack,
    packet,
    publish,
    read_packet,
    string,
)

log = logging.getLogger("quecmqtt.cloud")
TLS_HANDSHAKE = 0x16
AUTO_SUB_ID = 1  # the packet id of the front's own SUBSCRIBE, sent before any of the device's


class AuthFront:
    def __init__(
        self,
        registry: Registry,
        backend: Callable[[], tuple[str, int]],
        tls_context: ssl.SSLContext,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_decision: Callable[[str, object], None] | None = None,
        broker_token: bytes | None = None,
    ) -> None:
        self.registry = registry
        self.broker_token = broker_token
        self.backend = backend
        self.tls_context = tls_context
        self.host = host
        self.port = port
        self.on_decision = on_decision
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._online: dict[tuple[str, str], int] = {}  # piped sessions per device (a takeover overlaps)

    def is_online(self, product_key: str, device_name: str) -> bool:
        return self._online.get((product_key, device_name), 0) > 0

    async def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(64)
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._accept_loop(), name="cloud-front")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            conn, _ = await loop.sock_accept(self._sock)
            task = asyncio.create_task(self._serve(conn))
            self._sessions.add(task)
            task.add_done_callback(self._sessions.discard)

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(30):
                readable: asyncio.Future[None] = loop.create_future()

                def wake() -> None:
                    if not readable.done():
                        readable.set_result(None)

                loop.add_reader(conn.fileno(), wake)
                try:
                    await readable
                finally:
                    loop.remove_reader(conn.fileno())
                first = conn.recv(1, socket.MSG_PEEK)
                if not first:
                    conn.close()
                    return
                tls = first[0] == TLS_HANDSHAKE
                reader = asyncio.StreamReader()
                protocol = asyncio.StreamReaderProtocol(reader)
                transport, _ = await loop.connect_accepted_socket(
                    lambda: protocol, conn, ssl=self.tls_context if tls else None
                )
                writer = asyncio.StreamWriter(transport, protocol, reader, loop)
                kind, _, body, _ = await read_packet(reader, MAX_CONNECT)  # 300 big CONNECTs: 300 x 8 KiB
                if kind != CONNECT:
                    raise WireError("the first packet is not CONNECT")
                connect = Connect.parse(body)
        except (OSError, ssl.SSLError, WireError, asyncio.IncompleteReadError, TimeoutError) as exc:
            log.info("front: connection dropped before CONNECT: %s", type(exc).__name__)
            conn.close()
            return
        try:
            await self._handle(connect, tls, reader, writer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, WireError) as exc:
            log.debug("front: session ended: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(
        self, connect: Connect, tls: bool, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        decision = decide(connect, self.registry, tls=tls)
        transport_name = "TLS" if tls else "TCP"
        if self.on_decision is not None:
            self.on_decision(connect.client_id.split("|")[0], decision)
        if isinstance(decision, Refuse):
            log.info("front: %s over %s refused with %d: %s", connect.client_id.split("|")[0], transport_name,
                     decision.code, decision.reason)  # fmt: skip
            writer.write(connack(decision.code))
            await writer.drain()
            return
        if isinstance(decision, Push):
            log.info("front: %s over %s: %s answered, closing", connect.username, transport_name, decision.what)
            writer.write(connack(0) + publish(decision.topic, decision.payload))
            await writer.drain()
            return  # the platform closes after the push
        assert isinstance(decision, Forward)
        await self._pipe(connect, decision, reader, writer)

    async def _auto_subscribe(
        self,
        decision: Forward,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Subscribe the device to the platform's system topics on its behalf, before any of its
        own packets go up (so no packet id of ours meets one of its), and keep the SUBACK from
        it: a device that never sent SUBSCRIBE must not get one."""
        kind, _, body, raw = await read_packet(up_reader)
        writer.write(raw)  # the CONNACK, as the broker sent it
        if kind != CONNACK or body[1:2] != b"\x00":
            return
        topics = topics_for(decision.product_key, decision.device_name)
        up_writer.write(
            packet(SUBSCRIBE, 2, AUTO_SUB_ID.to_bytes(2, "big") + b"".join(string(t) + bytes([QOS]) for t in topics))
        )
        while True:
            kind, _, body, raw = await read_packet(up_reader)
            if kind == SUBACK and body[:2] == AUTO_SUB_ID.to_bytes(2, "big"):
                log.info("front: %s/%s auto-subscribed to %d topics", decision.product_key, decision.device_name,
                         len(topics))  # fmt: skip
                return
            writer.write(raw)  # a retained message on one of them: the device's

    async def _pipe(
        self, connect: Connect, decision: Forward, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, port = self.backend()
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            log.warning("front: broker %s:%d unreachable: CONNACK 3", host, port)
            writer.write(connack(SERVER_UNAVAILABLE))
            await writer.drain()
            return
        log.info("front: %s/%s logged in as %s", decision.product_key, decision.device_name, decision.client_id)
        device = (decision.product_key, decision.device_name)
        self._online[device] = self._online.get(device, 0) + 1
        try:
            await self._forward(connect, decision, reader, writer, up_reader, up_writer)
        finally:
            left = self._online.pop(device, 1) - 1
            if left:
                self._online[device] = left

    async def _forward(
        self,
        connect: Connect,
        decision: Forward,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        will = connect.will_topic
        pk, dn = decision.product_key, decision.device_name
        if will is not None and not may_publish(pk, dn, will.decode("utf-8", "replace")):
            # a will is a publish, later: to another device's topic it would set its properties
            log.info("front: %s/%s's will on %r dropped", pk, dn, will[:128])
            connect = replace(connect, will_topic=None, will_message=None, will_qos=0, will_retain=False)
        up_writer.write(connect.forwarded(decision.client_id, self.broker_token).encode())
        split = split_client_id(connect.client_id)
        auto = split is not None and wants_auto_subscription(split[1])
        if auto:
            try:
                async with asyncio.timeout(10):  # a broker that never answers does not hold the session
                    await self._auto_subscribe(decision, up_reader, up_writer, writer)
            except BaseException:
                up_writer.close()
                raise

        try:
            pipe = DevicePipe(pk, dn, (reader, writer), (up_reader, up_writer), connack_passed=auto)
            await pipe.run()
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()
