"""MQTT 3.1/3.1.1 packets for the stand-ins: framing (with a size limit), CONNECT, PUBLISH and
the acknowledgements, as the emulated module's client writes and reads them and as the cloud
twin's auth front and broker do. One codec for both; the driver never uses it (a module's
MQTT is the module's: the driver speaks AT).
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, replace

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14
MAX_PACKET = 1 << 20
MAX_CONNECT = 8 << 10  # a CONNECT: client id, user name, password, a will; Aliyun's are ~300 bytes
BACKEND_USER = "quecmqtt-twin"  # the user name the twin's own parts log in to its broker with


class WireError(Exception):
    """Not MQTT, or a packet too large."""


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def string(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return struct.pack("!H", len(raw)) + raw


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + varint(len(body)) + body


async def read_packet(reader: asyncio.StreamReader, limit: int = MAX_PACKET) -> tuple[int, int, bytes, bytes]:
    """(kind, flags, body, the packet's raw bytes). IncompleteReadError at the end."""
    first = await reader.readexactly(1)
    length, shift, raw_len = 0, 0, bytearray()
    for _ in range(4):
        byte = (await reader.readexactly(1))[0]
        raw_len.append(byte)
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    else:
        raise WireError("remaining length longer than 4 bytes")
    if length > limit:
        raise WireError(f"packet of {length} bytes")
    body = await reader.readexactly(length)
    return first[0] >> 4, first[0] & 0x0F, body, first + bytes(raw_len) + body


class Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise WireError("packet too short")
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self) -> int:
        if self.pos + 2 > len(self.data):
            raise WireError("packet too short")
        self.pos += 2
        return int(struct.unpack_from("!H", self.data, self.pos - 2)[0])

    def string(self) -> bytes:
        n = self.u16()
        if self.pos + n > len(self.data):
            raise WireError("string runs past the packet")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def rest(self) -> bytes:
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


@dataclass(frozen=True)
class Connect:
    client_id: str
    username: str | None
    password: bytes | None
    keepalive: int
    clean_session: bool
    protocol: bytes = b"MQTT"
    level: int = 4
    will_topic: bytes | None = None
    will_message: bytes | None = None
    will_qos: int = 0
    will_retain: bool = False

    def __repr__(self) -> str:  # the password is a credential
        return f"Connect(client_id={self.client_id!r}, username={self.username!r}, keepalive={self.keepalive})"

    @classmethod
    def parse(cls, body: bytes) -> Connect:
        c = Cursor(body)
        protocol = c.string()
        level = c.u8()
        if protocol not in (b"MQTT", b"MQIsdp"):
            raise WireError(f"protocol {protocol!r}")
        flags = c.u8()
        keepalive = c.u16()
        client_id = c.string().decode("utf-8", errors="replace")
        will_topic = will_message = None
        if flags & 0x04:
            will_topic, will_message = c.string(), c.string()
        username = c.string().decode("utf-8", errors="replace") if flags & 0x80 else None
        password = c.string() if flags & 0x40 else None
        return cls(
            client_id, username, password, keepalive, bool(flags & 0x02), protocol, level,
            will_topic, will_message, (flags >> 3) & 3, bool(flags & 0x20),
        )  # fmt: skip

    def encode(self) -> bytes:
        flags = 0x02 if self.clean_session else 0
        payload = string(self.client_id)
        if self.will_topic is not None:
            flags |= 0x04 | (self.will_qos << 3) | (0x20 if self.will_retain else 0)
            payload += string(self.will_topic) + string(self.will_message or b"")
        if self.username is not None:
            flags |= 0x80
            payload += string(self.username)
            if self.password is not None:
                flags |= 0x40
                payload += string(self.password)
        head = string(self.protocol) + bytes([self.level, flags]) + struct.pack("!H", self.keepalive)
        return packet(CONNECT, 0, head + payload)

    def forwarded(self, client_id: str, token: bytes | None = None) -> Connect:
        """The CONNECT the backend broker sees: our client id, and no credentials but the
        front's own (`token`, which the embedded broker requires)."""
        return replace(self, client_id=client_id, username=BACKEND_USER if token else None, password=token)


def connack(code: int, session_present: bool = False) -> bytes:
    return packet(CONNACK, 0, bytes([int(session_present), code]))


def publish(topic: bytes | str, payload: bytes, qos: int = 0, packet_id: int = 0, retain: bool = False) -> bytes:
    body = string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return packet(PUBLISH, (qos << 1) | int(retain), body)


def parse_publish(flags: int, body: bytes) -> tuple[bytes, bytes, int, int, bool]:
    """(topic, payload, qos, packet id, retain)."""
    c = Cursor(body)
    topic = c.string()
    qos = (flags >> 1) & 3
    if qos == 3:
        raise WireError("QoS 3")
    packet_id = c.u16() if qos else 0
    return topic, c.rest(), qos, packet_id, bool(flags & 1)


def ack(kind: int, packet_id: int) -> bytes:
    return packet(kind, 0x02 if kind == PUBREL else 0, struct.pack("!H", packet_id))
