#!/usr/bin/env python3
"""Codec throughput against a naive line splitter and a public peer's line reader.

Generates a realistic module output stream (>= 10 MB by default): +QMTRECV with JSON
payloads of 50 to 1,000 bytes under the length field (some with raw quotes and CR LF in
them), +QMTSTAT, +QMTPUBEX results and command exchanges (the command is sent to the codec
before its answer is read, as the runtime does). Each reader gets the same bytes in reads
of 4 KiB, 64 B and 16 B, in the same process, and the best of several runs is reported:

* quecmqtt: `AtCodec.receive` + draining events;
* naive: ``buffer += data; while b"\\r\\n" in buffer: split; regex`` (what most drivers do);
* pyserial: `serial.threaded.LineReader` (pyserial's own line reader), if installed.

Then the codec is fed 100 MB with no line break and its peak memory is reported.

    python tools/bench_codec.py [--megabytes 10] [--repeat 3] [--flood-megabytes 100]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import re
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quecmqtt.at import commands as C
from quecmqtt.at.codec import AtCodec
from quecmqtt.at.events import MqttMessage, MqttStatus
from quecmqtt.at.spec import Command

Segment = tuple[Command | None, bytes]
READ_SIZES = (4096, 64, 16)
UART_921600 = 921_600 / 10 / 1e6  # MB/s of a 921,600-baud UART (8N1: 10 bits a byte)


def make_stream(megabytes: float, seed: int = 1) -> tuple[list[Segment], int, int, int]:
    """Segments (command to send first, module output) and the counts of messages,
    events and +QMTSTAT lines they must give."""
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    segments: list[Segment] = []
    run = bytearray()
    size = messages = events = stats = 0
    while size < target:
        roll = rng.random()
        if roll < 0.70:
            payload = _payload(rng)
            topic = f"/sys/a1b2c3d4e5f/dev{rng.randrange(100):03d}/thing/service/property/set".encode()
            run += b'\r\n+QMTRECV: 0,%d,"%s",%d,"' % (rng.randrange(65536), topic, len(payload)) + payload + b'"\r\n'
            messages += 1
            events += 1
        elif roll < 0.80:
            run += b"\r\n+QMTSTAT: %d,%d\r\n" % (rng.randrange(6), rng.randrange(1, 8))
            events += 1
            stats += 1
        elif roll < 0.95:
            run += b"\r\n+QMTPUBEX: 0,%d,0\r\n" % rng.randrange(1, 65536)
            events += 1
        else:
            if run:
                segments.append((None, bytes(run)))
                size += len(run)
                run = bytearray()
            command, answer = _exchange(rng)
            segments.append((command, answer))
            size += len(answer)
            events += 1
    if run:
        segments.append((None, bytes(run)))
    return segments, messages, events, stats


def _payload(rng: random.Random) -> bytes:
    size = rng.randint(50, 1000)
    note = "".join(rng.choice("abcdefghij klmnop,") for _ in range(size))
    doc = {"id": str(rng.randrange(10**12)), "version": "1.0", "params": {"Temp": 23.9, "note": note}}
    payload = json.dumps(doc).encode()[:size]
    if rng.random() < 0.3:  # raw quotes and CR LF in the payload: only a length field frames it
        middle = len(payload) // 2
        payload = payload[:middle] + b'"q",\r\nOK\r\n+QMTSTAT: 0,1\r\n' + payload[middle:]
    return payload


def _exchange(rng: random.Random) -> tuple[Command, bytes]:
    kind = rng.randrange(3)
    if kind == 0:
        return C.CSQ(), b"\r\n+CSQ: %d,99\r\n\r\nOK\r\n" % rng.randrange(32)
    if kind == 1:
        return C.QMTCONN_READ(), b"\r\n+QMTCONN: 0,3\r\n+QMTCONN: 1,3\r\n\r\nOK\r\n"
    return C.ATI(), b"\r\nQuectel\r\nEC200U\r\nRevision: EC200UCNAAR02A09M08\r\n\r\nOK\r\n"


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- the readers ----------------------------------------------------------------------------


Result = tuple[int, int, int]  # events, intact messages, +QMTSTAT reports
Prepared = list[tuple[Command | None, list[bytes]]]


def run_codec(prepared: Prepared) -> Result:
    codec = AtCodec()
    events = messages = stats = 0
    for command, reads in prepared:
        if command is not None:
            codec.send(command)
        for data in reads:
            codec.receive(data)
            for event in codec.events():
                events += 1
                kind = type(event)
                if kind is MqttMessage:
                    messages += 1
                elif kind is MqttStatus:
                    stats += 1
    return events, messages, stats


NAIVE_URC = re.compile(rb"^\+(\w+): ?(.*)$")
NAIVE_RECV = re.compile(rb'^\+QMTRECV: (\d+),(\d+),"([^"]*)",(\d+),"(.*)"$')


def run_naive(prepared: Prepared) -> Result:
    buffer = b""
    events = messages = stats = 0
    for _, reads in prepared:
        for data in reads:
            buffer += data
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                if not line:
                    continue
                if NAIVE_RECV.match(line):
                    messages += 1
                    events += 1
                elif NAIVE_URC.match(line) or line == b"OK":
                    events += 1
                    stats += line.startswith(b"+QMTSTAT:")
    return events, messages, stats


def make_pyserial_reader() -> Callable[[Prepared], Result] | None:
    try:
        from serial.threaded import LineReader
    except ImportError:
        return None

    recv = re.compile(NAIVE_RECV.pattern.decode())

    def run_pyserial(prepared: Prepared) -> Result:
        counts = [0, 0, 0]

        class Reader(LineReader):  # type: ignore[misc]
            def handle_line(self, line: str) -> None:
                if line:
                    counts[0] += 1
                    if recv.match(line):
                        counts[1] += 1
                    elif line.startswith("+QMTSTAT:"):
                        counts[2] += 1

        reader = Reader()
        for _, reads in prepared:
            for data in reads:
                reader.data_received(data)
        return counts[0], counts[1], counts[2]

    return run_pyserial


def measure(fn: Callable[[Prepared], Result], prepared: Prepared, repeat: int) -> tuple[float, Result]:
    best = float("inf")
    result = (0, 0, 0)
    for _ in range(repeat):
        gc.collect()
        gc.disable()  # as timeit does: the same for every reader
        try:
            start = time.perf_counter()
            result = fn(prepared)
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return best, result


def flood_peak(megabytes: int, read_size: int = 4096) -> tuple[int, int]:
    """Peak traced memory of the codec fed `megabytes` with no line break; the garbage
    events it reported."""
    codec = AtCodec()
    block = b"A" * read_size
    reads = megabytes * 1_000_000 // read_size
    tracemalloc.start()
    events = 0
    for _ in range(reads):
        codec.receive(block)
        events += sum(1 for _ in codec.events())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=10.5, help="size of the generated stream (default 10.5)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    parser.add_argument("--flood-megabytes", type=int, default=100, help="size of the no-line-break flood")
    args = parser.parse_args()

    print(f"generating {args.megabytes:g} MB of module output ...", flush=True)
    segments, want_messages, want_events, want_stats = make_stream(args.megabytes)
    total = sum(len(data) for _, data in segments)
    print(
        f"stream: {total / 1e6:.2f} MB: {want_messages} +QMTRECV messages, {want_stats} +QMTSTAT, "
        f"{want_events} events in all\n"
    )

    readers: list[tuple[str, Callable[[Prepared], Result]]] = [
        ("quecmqtt", run_codec),
        ("naive", run_naive),
    ]
    peer = make_pyserial_reader()
    if peer is not None:
        readers.append(("pyserial", peer))

    print(f"{'read':>6} {'reader':<10} {'MB/s':>8} {'lines/events/s':>15}  correctness")
    failures = []
    for read_size in READ_SIZES:
        prepared = [(command, chunks(data, read_size)) for command, data in segments]
        rates: dict[str, float] = {}
        for name, fn in readers:
            seconds, (events, messages, stats) = measure(fn, prepared, args.repeat)
            rates[name] = total / seconds / 1e6
            note = f"{messages}/{want_messages} messages intact, {stats - want_stats:+d} phantom +QMTSTAT"
            if name == "quecmqtt" and (events, messages, stats) != (want_events, want_messages, want_stats):
                failures.append(f"codec gave {events} events / {messages} messages at {read_size} B reads")
                note += "  WRONG"
            print(f"{read_size:>6} {name:<10} {rates[name]:>8.1f} {events / seconds:>15,.0f}  {note}")
        ratios = ", ".join(f"quecmqtt/{n} = {rates['quecmqtt'] / rates[n]:.2f}" for n in rates if n != "quecmqtt")
        print(f"{'':>6} ratios: {ratios}; quecmqtt = {rates['quecmqtt'] / UART_921600:.0f}x a 921,600-baud UART\n")

    print(f"flood: {args.flood_megabytes} MB without a line break, 4 KiB reads ...", flush=True)
    peak, garbage = flood_peak(args.flood_megabytes)
    print(f"codec peak traced memory: {peak / 1024:.0f} KiB (max_line 64 KiB), {garbage} garbage event(s)")
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
