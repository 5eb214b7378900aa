"""Drive an AtCodec through a script of host actions and module output, cut three ways."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from quecmqtt.at.codec import AtCodec
from quecmqtt.at.events import (
    CommandComplete,
    Event,
    Garbage,
    ModuleReady,
    MqttMessage,
    MqttStatus,
    PoweredDown,
    Prompt,
    PsmEntered,
    SimStatus,
    UnsolicitedFinal,
    Urc,
)
from quecmqtt.at.spec import Command
from quecmqtt.secret import Secret
from quecmqtt.transcripts.format import rechunk


@dataclass(frozen=True)
class Send:
    command: Command


@dataclass(frozen=True)
class Data:
    data: bytes


@dataclass(frozen=True)
class Recv:
    data: bytes


Step = Send | Data | Recv
MODES = ("whole", "bytes", "random")


def run(steps: Sequence[Step], mode: str = "whole", seed: int = 0, **codec_options: int) -> list[Event]:
    codec = AtCodec(**codec_options)
    rng = random.Random(seed)
    events: list[Event] = []
    for step in steps:
        if isinstance(step, Send):
            codec.send(step.command)
        elif isinstance(step, Data):
            codec.send_data(step.data)
        else:
            for chunk in rechunk([step.data], mode, rng, 16):  # type: ignore[arg-type]
                codec.receive(chunk)
                events.extend(codec.events())
    return events


def run_all_ways(steps: Sequence[Step], **codec_options: int) -> list[Event]:
    """Events of the script, asserting they are the same however the output is cut."""
    reference = run(steps, "whole", **codec_options)
    assert run(steps, "bytes", **codec_options) == reference, "byte-by-byte feeding differs"
    for seed in range(3):
        assert run(steps, "random", seed, **codec_options) == reference, f"random chunks (seed {seed}) differ"
    return reference


def simple(event: Event) -> tuple[object, ...]:
    """A compact, comparable form of an event."""
    if isinstance(event, CommandComplete):
        return ("cmd", event.command.line.decode(), event.final.text, event.lines, event.body)
    if isinstance(event, Urc):
        return ("urc", event.prefix, tuple(f.reveal() if isinstance(f, Secret) else f for f in event.fields))
    if isinstance(event, MqttMessage):
        return ("msg", event.client, event.msg_id, event.topic, event.payload, event.buffered)
    if isinstance(event, MqttStatus):
        return ("stat", event.client, event.code)
    if isinstance(event, ModuleReady):
        return ("ready", event.banner)
    if isinstance(event, PoweredDown):
        return ("down", event.banner)
    if isinstance(event, PsmEntered):
        return ("psm", event.banner)
    if isinstance(event, SimStatus):
        return ("sim", event.inserted, event.ready)
    if isinstance(event, Prompt):
        return ("prompt", event.marker)
    if isinstance(event, UnsolicitedFinal):
        return ("final", event.final.text)
    if isinstance(event, Garbage):
        return ("garbage", event.reason)
    raise AssertionError(f"unexpected event {event!r}")
