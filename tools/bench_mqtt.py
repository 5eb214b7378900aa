#!/usr/bin/env python3
"""MQTT through the real driver, a pty, the emulator and a local Mosquitto.

1. Publish throughput, QoS 1, with the emulator adding a network round-trip time (50 ms by
   default): a Session with an in-flight window of 8 against the same Session with a
   window of 1, alternated in rounds; the best round of each and their ratio.
2. Receive latency: the cloud side publishes at a fixed rate; for each message, the time
   from the emulator writing its +QMTRECV to the pty until the user's callback runs, against
   a bare pyserial read loop on the same pty seeing the same line (the floor: what any
   reader pays for the pty and a thread wake-up). p50/p99 of both, and the difference.
3. CPU time of the driver's thread per message published and per message received.

    python tools/bench_mqtt.py [--rtt 0.05] [--messages 100] [--rate 100] [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import serial

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quecmqtt.emulator import EmulatorThread
from quecmqtt.modem import Modem
from quecmqtt.mqtt.client import MqttClient
from quecmqtt.mqtt.session import Session
from quecmqtt.transport.serial import SerialTransport
from tools.localbroker import local_mosquitto

SEQ = re.compile(rb"seq=(\d{6});")
RX_TOPIC = "bench/rx"


class WriteClock:
    """When the emulator wrote each sequence number to the pty (hooked on the pty's write
    path, in the emulator's thread). The stamp is taken *before* the write: the reader may
    run (in another thread) before the writer's next instruction, so a stamp taken after
    the write can be later than the read and give a negative latency."""

    def __init__(self, emulator: EmulatorThread) -> None:
        self.stamps: dict[int, float] = {}
        port = emulator.emulator.port
        original: Callable[[], None] = port._writable
        carry = b""

        def writable() -> None:
            nonlocal carry
            before = bytes(port._outgoing)
            now = time.perf_counter()
            original()
            written = before[: len(before) - len(port._outgoing)]
            window = carry + written
            for match in SEQ.finditer(window):
                self.stamps.setdefault(int(match.group(1)), now)
            carry = window[-16:]

        port._writable = writable  # type: ignore[method-assign]


class CloudSender:
    """paho on the broker: publishes `seq=NNNNNN;` payloads at a fixed rate."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-cloud")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.next_seq = 0

    def send(self, rate: float, seconds: float) -> list[int]:
        sent = []
        interval = 1.0 / rate
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            target = start + n * interval
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            seq = self.next_seq
            self.next_seq += 1
            self.client.publish(RX_TOPIC, b"seq=%06d;" % seq + b"x" * 100, qos=1)
            sent.append(seq)
        time.sleep(0.5)  # the last ones arrive
        return sent

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latencies(sent: list[int], seen: dict[int, float], written: dict[int, float]) -> list[float]:
    return [(seen[s] - written[s]) * 1000 for s in sent if s in seen and s in written]


# -- the bare read loop --------------------------------------------------------------------------


def bare_round(path: str, clock: WriteClock, cloud: CloudSender, rate: float, seconds: float) -> list[float]:
    """pyserial in a thread, reading whatever is there, spotting sequence numbers."""
    seen: dict[int, float] = {}
    stop = threading.Event()
    port = serial.Serial(path, 115200, timeout=0.2)

    def reader() -> None:
        carry = b""
        while not stop.is_set():
            data = port.read(port.in_waiting or 1)
            if not data:
                continue
            now = time.perf_counter()
            window = carry + data
            for match in SEQ.finditer(window):
                seen.setdefault(int(match.group(1)), now)
            carry = window[-16:]

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    sent = cloud.send(rate, seconds)
    stop.set()
    thread.join(2)
    port.close()
    return latencies(sent, seen, clock.stamps)


async def subscribe_module(path: str, broker_port: int) -> None:
    """Leave the emulated module connected and subscribed (client 5) for the bare loop."""
    modem = Modem(SerialTransport(path), reconcile=False)
    await modem.open()
    client = MqttClient(modem, 5)
    await client.open("broker.test", 1883)
    await client.connect("bench-bare")
    await client.subscribe(RX_TOPIC, 1)
    await client.aclose()
    await modem.close()  # the module keeps the connection: a pty close is no hang-up to it


# -- the driver ----------------------------------------------------------------------------------


async def driver_round(
    path: str, clock: WriteClock, cloud: CloudSender, rate: float, seconds: float
) -> tuple[list[float], float, int]:
    """The driver's callback; (latencies in ms, driver-thread CPU seconds, messages)."""
    seen: dict[int, float] = {}
    modem = Modem(SerialTransport(path))
    await modem.open()  # reconciliation closes the bare loop's client 5
    client = MqttClient(modem, 0)
    await client.open("broker.test", 1883)
    await client.connect("bench-driver")
    await client.subscribe(RX_TOPIC, 1)

    def on_message(message: object) -> None:
        now = time.perf_counter()
        match = SEQ.match(getattr(message, "payload", b""))
        if match:
            seen.setdefault(int(match.group(1)), now)

    client.on_message(on_message)
    cpu = time.thread_time()
    sent = await asyncio.to_thread(cloud.send, rate, seconds)
    cpu = time.thread_time() - cpu
    await client.close()
    await client.aclose()
    await modem.close()
    return latencies(sent, seen, clock.stamps), cpu, len(seen)


async def publish_round(path: str, window: int, messages: int) -> tuple[float, float]:
    """(messages per second, driver-thread CPU seconds per message) for one Session."""
    modem = Modem(SerialTransport(path))
    await modem.open()
    session = Session(modem, "broker.test", 1883, f"bench-pub-{window}", window=window)
    await session.start(timeout=30)
    await session.publish("bench/warm-up", b"x", qos=1)
    await session.flush(30)
    payload = b'{"temperature":21.5,"humidity":40,"seq":%d}'
    cpu = time.thread_time()
    started = time.perf_counter()
    for i in range(messages):
        await session.publish("bench/tx", payload % i, qos=1)
    await session.flush(120)
    elapsed = time.perf_counter() - started
    cpu = time.thread_time() - cpu
    await session.stop()
    await modem.close()
    return messages / elapsed, cpu / messages


async def main(args: argparse.Namespace) -> None:
    with local_mosquitto() as broker_port:
        emulator = EmulatorThread(hosts={"broker.test": f"127.0.0.1:{broker_port}"})
        try:
            print(f"emulator on {emulator.path}, Mosquitto on 127.0.0.1:{broker_port}", flush=True)

            emulator.set_rtt(args.rtt)
            print(f"\n1. QoS 1 publish throughput, RTT {args.rtt * 1000:.0f} ms, {args.messages} messages per round")
            best: dict[int, tuple[float, float]] = {}
            for round_no in range(1, args.rounds + 1):
                for window in (1, 8):
                    rate, cpu = await publish_round(emulator.path, window, args.messages)
                    print(f"   round {round_no}, window {window}: {rate:7.1f} msg/s  ({cpu * 1e3:.2f} ms CPU/msg)")
                    if window not in best or rate > best[window][0]:
                        best[window] = (rate, cpu)
            ratio = best[8][0] / best[1][0]
            print(f"   best: window 8 {best[8][0]:.1f} msg/s, window 1 {best[1][0]:.1f} msg/s: ratio {ratio:.2f}x")

            emulator.set_rtt(0.0)
            clock = WriteClock(emulator)
            cloud = CloudSender(broker_port)
            print(f"\n2. receive latency at {args.rate:g} msg/s for {args.seconds:g} s per round")
            bare: list[float] = []
            driver: list[float] = []
            cpu_total, received = 0.0, 0
            try:
                for round_no in range(1, args.rounds + 1):
                    await subscribe_module(emulator.path, broker_port)
                    b = await asyncio.to_thread(bare_round, emulator.path, clock, cloud, args.rate, args.seconds)
                    d, cpu, count = await driver_round(emulator.path, clock, cloud, args.rate, args.seconds)
                    bare += b
                    driver += d
                    cpu_total += cpu
                    received += count
                    print(
                        f"   round {round_no}: bare p50 {percentile(b, 0.5):.3f} p99 {percentile(b, 0.99):.3f} ms"
                        f" | driver p50 {percentile(d, 0.5):.3f} p99 {percentile(d, 0.99):.3f} ms"
                        f" ({len(b)}/{len(d)} messages)"
                    )
            finally:
                cloud.close()
            b50, b99 = percentile(bare, 0.5), percentile(bare, 0.99)
            d50, d99 = percentile(driver, 0.5), percentile(driver, 0.99)
            print(f"   bare read loop: p50 {b50:.3f} ms, p99 {b99:.3f} ms, mean {statistics.fmean(bare):.3f} ms")
            print(f"   driver:         p50 {d50:.3f} ms, p99 {d99:.3f} ms, mean {statistics.fmean(driver):.3f} ms")
            print(f"   p99 difference {d99 - b99:+.3f} ms (target: within 2 ms); p50 ratio {d50 / b50:.2f}x")

            print("\n3. CPU time of the driver's thread")
            print(f"   publish (window 8): {best[8][1] * 1e3:.3f} ms per message")
            print(f"   receive:            {cpu_total / max(1, received) * 1e3:.3f} ms per message")
        finally:
            emulator.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rtt", type=float, default=0.05, help="network round-trip time in seconds (0.05)")
    parser.add_argument("--messages", type=int, default=100, help="QoS 1 messages per publish round (100)")
    parser.add_argument("--rate", type=float, default=100.0, help="cloud-to-device messages per second (100)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of a receive round (3)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each measurement (3)")
    asyncio.run(main(parser.parse_args()))
