#!/usr/bin/env python3
"""OTA download throughput through the emulated module, in ranges as `Ota` fetches them
(request-header mode, a Range header per piece, each piece appended and synced on disk)
against one plain GET of the same file through the same module, side by side in one process,
rounds alternating. The result is the ratio: the price of being resumable.

Both go: the driver -> pty -> the emulator's HTTP client -> TLS -> the cloud twin's HTTPS, and
the body back over the pty (QHTTPREAD). The firmware is random bytes.

    python tools/bench_ota.py [--size 1048576] [--chunk 32768 --chunk 65536] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quecmqtt.aliyun.alink import Thing
from quecmqtt.aliyun.device import login, login_credentials
from quecmqtt.aliyun.ota import Ota, OtaTask
from quecmqtt.cloud import DEFAULT_ENDPOINT, CloudTwin
from quecmqtt.emulator import EmulatorThread
from quecmqtt.modem import Modem
from quecmqtt.mqtt.client import MqttClient
from quecmqtt.services.http import Http, HttpConfig
from quecmqtt.services.tls import Tls
from quecmqtt.transport.serial import SerialTransport

PK, DN, DS = "a1BenchOta01", "bench", "bench-device-secret-0123456789"


async def bench(size: int, chunks: list[int], rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="quecmqtt-bench-ota-"))
    firmware = work / "fw.bin"
    firmware.write_bytes(os.urandom(size))
    twin = CloudTwin()
    twin.registry.add_product(PK, "unused")
    twin.registry.add_device(PK, DN, DS)
    offered = twin.firmware.add(PK, "2.0.0", firmware, "SHA256")
    await twin.start()
    emulator = await asyncio.to_thread(EmulatorThread, model="EC200U", hosts=twin.hosts())
    try:
        async with Modem(SerialTransport(emulator.path)) as modem, MqttClient(modem, 0) as client:
            await login(client, DEFAULT_ENDPOINT, 1883, login_credentials(PK, DN, DS, tls=False))
            async with (
                Tls(modem) as tls,
                Http(modem, HttpConfig(ssl_context=1)) as http,
                Thing(client, PK, DN) as thing,
            ):
                await tls.setup(1, ca=twin.ca_pem, clock=None)
                task = OtaTask.from_message(offered.task(twin.region))
                results: dict[str, list[float]] = {"single GET": [], **{f"ranges of {c}": [] for c in chunks}}
                for round_number in range(rounds):
                    started = time.perf_counter()
                    response = await http.get(task.url, timeout=120)
                    results["single GET"].append(time.perf_counter() - started)
                    assert response.status == 200 and len(response.body) == size
                    for chunk in chunks:
                        directory = work / f"ota-{round_number}-{chunk}"
                        ota = Ota(thing, http, directory, chunk_size=chunk)
                        started = time.perf_counter()
                        path = await ota.download(task)
                        results[f"ranges of {chunk}"].append(time.perf_counter() - started)
                        assert path.stat().st_size == size
    finally:
        await asyncio.to_thread(emulator.close)
        await twin.stop()
        shutil.rmtree(work, ignore_errors=True)
    baseline = statistics.median(results["single GET"])
    print(f"{size} bytes through the emulated module (TLS), median of {rounds} alternating rounds:")
    for name, times in results.items():
        seconds = statistics.median(times)
        ratio = baseline / seconds
        print(f"  {name:>18}: {seconds * 1000:8.1f} ms  {size / seconds / 1024:8.0f} KiB/s  {ratio:5.2f}x single GET")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1 << 20)
    parser.add_argument("--chunk", type=int, action="append", help="range size (repeatable; default 32768, 65536)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(bench(args.size, args.chunk or [32768, 65536], args.rounds))


if __name__ == "__main__":
    main()
