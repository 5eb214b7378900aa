"""tools/provision.py provisions four emulated modules in parallel against the cloud twin,
and a second run skips them all."""

from __future__ import annotations

import asyncio
import csv
import os
import stat
import sys
from pathlib import Path

from quecmqtt.cloud import DEFAULT_ENDPOINT, CloudTwin
from quecmqtt.cloud.auth import Push
from quecmqtt.emulator import EmulatorThread

ROOT = Path(__file__).resolve().parent.parent
IMEIS = [f"86443001000{n:04d}" for n in range(1, 5)]


async def provision(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "tools" / "provision.py"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=ROOT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_four_modules_in_parallel_then_a_rerun_skips_them(tmp_path: Path) -> None:
    async with CloudTwin() as twin:
        twin.registry.add_product("pkFactory01", "factory-product-secret")
        for imei in IMEIS:
            twin.registry.add_device("pkFactory01", imei)
        ca = tmp_path / "ca.pem"
        ca.write_bytes(twin.ca_pem)
        emulators = await asyncio.gather(
            *(asyncio.to_thread(EmulatorThread, hosts=twin.hosts(), imei=imei) for imei in IMEIS)
        )
        try:
            store, report = tmp_path / "store", tmp_path / "report.csv"
            args = [e.path for e in emulators] + [
                "--product-key", "pkFactory01", "--product-secret-env", "FACTORY_PS", "--endpoint", DEFAULT_ENDPOINT,
                "--ca", str(ca), "--store", str(store), "--report", str(report), "--parallel", "4",
            ]  # fmt: skip
            env = {**os.environ, "FACTORY_PS": "factory-product-secret", "PYTHONUNBUFFERED": "1"}
            status, output = await provision(*args, env=env)
            assert status == 0, output
            assert "done: 4 provisioned, 0 skipped, 0 failed" in output
            rows = list(csv.DictReader(report.open()))
            assert sorted(r["imei"] for r in rows) == IMEIS
            assert {r["status"] for r in rows} == {"provisioned"}
            for imei in IMEIS:
                saved = store / f"pkFactory01.{imei}.json"
                assert stat.S_IMODE(saved.stat().st_mode) == 0o600
                assert twin.registry.device("pkFactory01", imei).active  # type: ignore[union-attr]
            registrations = sum(isinstance(d, Push) for _, d in twin.decisions)
            assert registrations == 4
            assert "factory-product-secret" not in output

            status, output = await provision(*args, env=env)
            assert status == 0, output
            assert "done: 0 provisioned, 4 skipped, 0 failed" in output
            assert sum(isinstance(d, Push) for _, d in twin.decisions) == 4  # nothing registered again
            assert {r["status"] for r in csv.DictReader(report.open())} == {"provisioned"}
        finally:
            await asyncio.gather(*(asyncio.to_thread(e.close) for e in emulators))
