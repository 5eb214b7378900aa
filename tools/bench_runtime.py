#!/usr/bin/env python3
"""The runtime over months of uptime, measured in one run (ratios, not seconds, are the
result: the machine's speed cancels out).

1. Long run: 20,000 messages received through a pty, half of them JSON with ``token``,
   ``secret`` and ``password`` keys (values all different, as in real payloads). CPU time
   of the driver's thread per message over the last 2,000 against the first 2,000 (target
   at most 1.2x: no per-message work that grows with uptime), and the growth of the
   process's resident memory (target at most 5 MB).
2. Loop lag: a Session publishes 1,000 QoS 1 messages through the emulator and Mosquitto,
   with a SqliteOutbox (on this disk) and with a MemoryOutbox, in alternating rounds. p99
   of the event loop's lag meanwhile (a 1 ms ticker; target at most 2 ms and at most 2x the
   memory run), and the throughput ratio (target at least 80 %).
3. Receive latency from the emulator's write to the user's callback, the stamp taken before
   the write (no negative sample), against a bare pyserial read loop on the same pty:
   driver p99 minus bare p99 (target at most 0.5 ms). Uses tools/bench_mqtt.py's rounds.

    python tools/bench_runtime.py [--messages 20000] [--publish 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quecmqtt.at.events import MqttMessage
from quecmqtt.emulator import EmulatorThread
from quecmqtt.modem import Modem
from quecmqtt.mqtt.client import MqttClient
from quecmqtt.mqtt.outbox import MemoryOutbox, Outbox, SqliteOutbox
from quecmqtt.mqtt.session import Session
from quecmqtt.transport.serial import SerialTransport
from tools.bench_mqtt import CloudSender, WriteClock, bare_round, driver_round, percentile, subscribe_module
from tools.localbroker import local_mosquitto

WINDOW = 2000


def rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


# -- 1. the long run ---------------------------------------------------------------------------------


def _stream(count: int) -> bytes:
    lines = []
    for n in range(count):
        if n % 2:
            payload = b'{"token":"tok-%06d","secret":"sec-%06d","password":"pw-%06d","v":1}' % (n, n, n)
        else:
            payload = b'{"v":1,"seq":%06d,"unit":"C"}' % n
        lines.append(b'\r\n+QMTRECV: 0,%d,"dev/down",%d,"' % (n % 65535 + 1, len(payload)) + payload + b'"\r\n')
    return b"".join(lines)


async def long_run(count: int) -> tuple[float, float, int, int]:
    """(first window's CPU ms/msg, last window's, RSS growth KiB, redactor pattern rebuilds)."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    modem = Modem(SerialTransport(os.ttyname(slave)), init_script=False, reconcile=False, entry_marker=False)
    await modem.open()
    client = MqttClient(modem, 0, queue_size=64)
    samples: list[float] = []
    received = 0
    done = asyncio.Event()

    def on_message(message: MqttMessage) -> None:
        nonlocal received
        received += 1
        if received % WINDOW == 0:
            samples.append(time.thread_time())
        if received == count:
            done.set()

    client.on_message(on_message)
    data = _stream(count)
    before = rss_kib()
    samples.append(time.thread_time())

    def write() -> None:  # the module, in a thread of its own: its CPU is not the driver's
        chunk = 64 * 1024
        for start in range(0, len(data), chunk):
            view = memoryview(data)[start : start + chunk]
            while view:
                written = os.write(master, view)
                view = view[written:]

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    await asyncio.wait_for(done.wait(), 300)
    writer.join()
    growth = rss_kib() - before
    rebuilds = modem.redactor.rebuilds
    await client.aclose()
    await modem.close()
    os.close(master)
    os.close(slave)
    first = (samples[1] - samples[0]) / WINDOW * 1000
    last = (samples[-1] - samples[-2]) / WINDOW * 1000
    return first, last, growth, rebuilds


# -- 2. loop lag while publishing ----------------------------------------------------------------------


async def publish_round(path: str, outbox: Outbox, messages: int) -> tuple[float, list[float]]:
    """(messages per second, loop lags in ms) for one Session publishing `messages`."""
    modem = Modem(SerialTransport(path))
    await modem.open()
    session = Session(modem, "broker.test", 1883, "bench-lag", outbox=outbox, window=8)
    await session.start(timeout=30)
    await session.publish("bench/warm-up", b"x", qos=1)
    await session.flush(30)
    lags: list[float] = []
    running = True

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while running:
            before = loop.time()
            await asyncio.sleep(0.001)
            lags.append((loop.time() - before - 0.001) * 1000)

    tick = asyncio.create_task(ticker())
    payload = b'{"temperature":21.5,"humidity":40,"seq":%d}'
    started = time.perf_counter()
    for i in range(messages):
        await session.publish("bench/lag", payload % i, qos=1)
    await session.flush(120)
    elapsed = time.perf_counter() - started
    running = False
    await tick
    await session.stop()
    await outbox.aclose()
    await modem.close()
    return messages / elapsed, lags


async def main(args: argparse.Namespace) -> int:
    verdicts: list[bool] = []

    print(f"1. long run: {args.messages} messages, half with token/secret/password keys", flush=True)
    first, last, growth, rebuilds = await long_run(args.messages)
    ratio = last / first
    print(f"   driver CPU per message: first {WINDOW} {first:.4f} ms, last {WINDOW} {last:.4f} ms: {ratio:.2f}x")
    print(f"   resident memory growth {growth / 1024:.1f} MB; redactor pattern rebuilds {rebuilds}")
    verdicts += [ratio <= 1.2, growth <= 5 * 1024]
    print(f"   target: at most 1.2x and 5 MB: {'met' if verdicts[-2] and verdicts[-1] else 'MISSED'}")

    with local_mosquitto() as broker_port:
        emulator = EmulatorThread(hosts={"broker.test": f"127.0.0.1:{broker_port}"})
        scratch = Path(tempfile.mkdtemp(prefix="quecmqtt-bench-", dir=Path.cwd()))  # on this disk, not tmpfs
        try:
            print(f"\n2. a Session publishing {args.publish} QoS 1 messages: SQLite against memory outbox")
            rates: dict[str, list[float]] = {"memory": [], "sqlite": []}
            lags: dict[str, list[float]] = {"memory": [], "sqlite": []}
            for round_no in range(1, args.rounds + 1):
                for kind in ("memory", "sqlite"):
                    outbox: Outbox = MemoryOutbox() if kind == "memory" else SqliteOutbox(scratch / f"{round_no}.db")
                    rate, lag = await publish_round(emulator.path, outbox, args.publish)
                    rates[kind].append(rate)
                    lags[kind] += lag
                    print(
                        f"   round {round_no}, {kind:6}: {rate:7.1f} msg/s, loop lag p99 {percentile(lag, 0.99):.3f} ms"
                    )
            memory_p99, sqlite_p99 = percentile(lags["memory"], 0.99), percentile(lags["sqlite"], 0.99)
            throughput = max(rates["sqlite"]) / max(rates["memory"])
            times = sqlite_p99 / memory_p99
            print(f"   loop lag p99: memory {memory_p99:.3f} ms, SQLite {sqlite_p99:.3f} ms ({times:.2f}x)")
            print(f"   throughput (best rounds): SQLite {throughput * 100:.0f} % of memory")
            verdicts += [sqlite_p99 <= 2.0, sqlite_p99 <= 2 * memory_p99, throughput >= 0.8]
            met = all(verdicts[-3:])
            print(f"   target: p99 at most 2 ms and 2x memory, throughput at least 80 %: {'met' if met else 'MISSED'}")

            print("\n3. receive latency, emulator write (stamped before it) to the callback, 100 msg/s")
            clock = WriteClock(emulator)
            cloud = CloudSender(broker_port)
            bare: list[float] = []
            driver: list[float] = []
            try:
                for _ in range(args.rounds):
                    await subscribe_module(emulator.path, broker_port)
                    bare += await asyncio.to_thread(bare_round, emulator.path, clock, cloud, 100.0, 3.0)
                    driver += (await driver_round(emulator.path, clock, cloud, 100.0, 3.0))[0]
            finally:
                cloud.close()
            b99, d99 = percentile(bare, 0.99), percentile(driver, 0.99)
            negative = sum(1 for x in bare + driver if x < 0)
            print(f"   bare p50 {percentile(bare, 0.5):.3f} p99 {b99:.3f} ms | driver p50 {percentile(driver, 0.5):.3f}"
                  f" p99 {d99:.3f} ms | {len(bare)}/{len(driver)} samples, {negative} negative")  # fmt: skip
            print(f"   driver p99 - bare p99 = {d99 - b99:+.3f} ms (target at most 0.5 ms)")
            verdicts += [negative == 0, d99 - b99 <= 0.5]
        finally:
            emulator.close()
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{sum(verdicts)} of {len(verdicts)} targets met")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000, help="messages in the long run (20000)")
    parser.add_argument("--publish", type=int, default=1000, help="messages per publish round (1000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of sections 2 and 3 (3)")
    sys.exit(asyncio.run(main(parser.parse_args())))
