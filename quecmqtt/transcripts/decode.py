"""`quecmqtt decode`: run the codec over a transcript (or a raw capture) and describe every
event as one JSON object per line. The output format is a contract (DESIGN section 7,
``docs/decode.md``)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from quecmqtt.at.codec import AtCodec
from quecmqtt.at.events import (
    CommandComplete,
    Event,
    Garbage,
    ModuleReady,
    MqttMessage,
    MqttStatus,
    PoweredDown,
    PsmEntered,
    SimStatus,
    UnsolicitedFinal,
    Urc,
)
from quecmqtt.at.fields import tokenize
from quecmqtt.at.parse import parse_command
from quecmqtt.secret import REDACTED, Secret
from quecmqtt.transcripts.format import Chunking, Transcript, rechunk

JsonObject = dict[str, Any]


def decode_transcript(
    transcript: Transcript, chunking: Chunking = "whole", seed: int = 0, *, reveal: bool = False
) -> Iterator[JsonObject]:
    """Events of a transcript: host records mark the pending command and its data.
    `chunking` re-cuts module records (the output must not depend on it). Secrets the
    recorder could not know of (registration replies, read-backs) are shown as *** unless
    `reveal`."""
    codec = AtCodec()
    host = bytearray()
    rng = random.Random(seed)
    for record in transcript.records:
        data = record.resolve(filler=b"*")
        if record.is_host:
            host += data
            yield from _feed_host(codec, host, reveal)
        else:
            for chunk in rechunk([data], chunking, rng, 16):
                codec.receive(chunk)
                yield from _describe_all(codec, reveal)
    pending = codec.abandon()
    yield from _describe_all(codec, reveal)
    if pending is not None:
        yield {"event": "command", "command": pending.redacted, "final": None, "lines": []}


def decode_raw(data: bytes, *, reveal: bool = False) -> Iterator[JsonObject]:
    """Events of a plain capture of module output: nothing is pending, so every prefixed
    line is a URC and final results appear as ``final`` events. Secret read-backs and
    registration replies are shown as *** unless `reveal`."""
    codec = AtCodec()
    codec.receive(data)
    yield from _describe_all(codec, reveal)


def _feed_host(codec: AtCodec, host: bytearray, reveal: bool) -> Iterator[JsonObject]:
    while host:
        pending = codec.pending
        if codec.awaiting_data:
            assert pending is not None
            phase = pending.spec.data
            assert phase is not None
            need = pending.data_length
            if need is None:  # Ctrl-Z entry: up to the terminator, or ESC to cancel
                ends = [i for i in (host.find(phase.terminator), host.find(b"\x1b")) if i >= 0]
                if not ends:
                    return
                end = min(ends)
                if host[end : end + 1] == b"\x1b":
                    codec.abort_data()
                else:
                    codec.send_data(bytes(host[:end]))
                del host[: end + 1]
                continue
            if len(host) < need:
                return
            codec.send_data(bytes(host[:need]))
            del host[:need]
            continue
        while bytes(host[:1]) in (b"\x1b", b"\n"):  # a sync ESC, or a stray LF, is not a command
            del host[:1]
        end = host.find(b"\r")
        if end < 0:
            return
        line = bytes(host[:end])
        del host[: end + 1]
        if not line:
            continue
        if pending is not None:  # the host gave up on it (a time-out): say so
            codec.abandon()
            yield from _describe_all(codec, reveal)
            yield {"event": "command", "command": pending.redacted, "final": None, "lines": []}
        codec.send(parse_command(line))


def _describe_all(codec: AtCodec, reveal: bool = False) -> Iterator[JsonObject]:
    for event in codec.events():
        described = describe(event, reveal=reveal)
        if described is not None:
            yield described


def describe(event: Event, *, reveal: bool = False) -> JsonObject | None:
    """The JSON object for one codec event (None for events decode does not print)."""
    if isinstance(event, CommandComplete):
        out: JsonObject = {
            "event": "command",
            "command": event.command.redacted,
            "final": event.final.text,
            "lines": [r.text for r in event.responses],
        }
        if event.body is not None:  # a CONNECT download (AT+QHTTPREAD): an extension of the contract
            _put_bytes(out, "body", event.body)
        return out
    if isinstance(event, MqttMessage):
        message: JsonObject = {
            "event": "mqtt_message",
            "client": event.client,
            "msg_id": event.msg_id,
            "topic": event.topic,
        }
        payload = event.payload if reveal else _hide_registration_secret(event.topic, event.payload)
        _put_bytes(message, "payload", payload)
        return message
    if isinstance(event, MqttStatus):
        return {"event": "mqtt_status", "client": event.client, "code": event.code}
    if isinstance(event, ModuleReady):
        return {"event": "module_ready", "banner": event.banner}
    if isinstance(event, PoweredDown):
        return {"event": "powered_down", "banner": event.banner}
    if isinstance(event, Urc):
        fields = [_field(f) for f in event.fields]
        if not reveal:
            _hide_read_back(event.prefix, fields)
        return {"event": "urc", "prefix": event.prefix, "fields": fields}
    if isinstance(event, PsmEntered):  # typed for the runtime; a URC in the decode contract
        return {"event": "urc", "prefix": event.banner, "fields": []}
    if isinstance(event, SimStatus):
        prefix, _, rest = event.text.partition(":")
        return {"event": "urc", "prefix": prefix.strip(), "fields": [_field(v) for _, v in tokenize(rest.lstrip())]}
    if isinstance(event, UnsolicitedFinal):
        return {"event": "final", "final": event.final.text}
    if isinstance(event, Garbage):
        return {"event": "garbage", "hex": event.data.hex()}
    return None


def _put_bytes(out: JsonObject, key: str, data: bytes) -> None:
    """``key`` as text when the bytes are UTF-8, else ``key_hex``."""
    try:
        out[key] = data.decode("utf-8")
    except UnicodeDecodeError:
        out[f"{key}_hex"] = data.hex()


_REGISTRATION_TOPICS = ("/ext/register", "/ext/regnwl")
_SECRET_KEYS = frozenset({"deviceSecret", "deviceToken"})
# read-backs whose field holds a secret: prefix, first field (None: any), index of the secret
# (-1: the last; "aliauth" is read back with or without the client index)
_READ_BACKS = (("+QMTCFG", "aliauth", -1), ("+QMTCFG", "hwauth", -1), ("+QICSGP", None, 3), ("+QHTTPCFG", "auth", -1))


def _hide_registration_secret(topic: str, payload: bytes) -> bytes:
    """A registration reply carries the DeviceSecret or token: shown as ***."""
    if not topic.endswith(_REGISTRATION_TOPICS):
        return payload
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return REDACTED.encode()  # a registration reply that is not JSON: all of it
    if isinstance(data, dict):
        for holder in (data, data.get("data")):
            if isinstance(holder, dict):
                for key in _SECRET_KEYS & holder.keys():
                    holder[key] = REDACTED
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return REDACTED.encode()


def _hide_read_back(prefix: str, fields: list[int | str]) -> None:
    """A setting read back with a secret in it (a raw capture has no command to say so)."""
    for name, first, index in _READ_BACKS:
        matches = prefix == name and (first is None or (bool(fields) and fields[0] == first))
        if matches and len(fields) > max(index, 1) and fields[index] != "":
            fields[index] = REDACTED


def _field(value: int | str | Secret) -> int | str:
    return REDACTED if isinstance(value, Secret) else value
