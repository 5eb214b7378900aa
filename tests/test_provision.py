"""`quecmqtt provision` provisions four emulated modules in parallel against the cloud twin,
and a second run skips them all."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import stat
import sys
from datetime import datetime, timedelta
from pathlib import Path

from quecmqtt.cloud import DEFAULT_ENDPOINT, CloudTwin
from quecmqtt.cloud.auth import Push
from quecmqtt.emulator import EmulatorThread
from tests.children import default_signals

ROOT = Path(__file__).resolve().parent.parent
IMEIS = [f"86443001000{n:04d}" for n in range(1, 5)]


async def provision(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "quecmqtt", "provision", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=ROOT,
        preexec_fn=default_signals,
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
            # In parallel: every module's work began before any of them had finished.
            starts = [datetime.fromisoformat(r["started"]) for r in rows]
            ends = [s + timedelta(seconds=float(r["seconds"])) for s, r in zip(starts, rows, strict=True)]
            assert max(starts) < min(ends)
            # The emulators' paths differ only in a directory: the progress lines still tell them apart.
            labels = {line.split("]")[0] for line in output.splitlines() if line.startswith("[")}
            assert len(labels) == 4, output
            assert output.count("finished)") == 4 and "(4/4 finished)" in output
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


async def test_a_report_it_did_not_write_is_refused_and_left_alone(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text('{"not": "a report"')
    env = {**os.environ, "FACTORY_PS": "x"}
    status, output = await provision(
        "/dev/null", "--product-key", "pk", "--product-secret-env", "FACTORY_PS", "--endpoint", "example.com",
        "--store", str(tmp_path / "store"), "--report", str(report), env=env,
    )  # fmt: skip
    assert status == 2
    assert f"{report} is not a provisioning report" in output
    assert report.read_text() == '{"not": "a report"'


async def test_a_missing_port_fails_its_row_and_the_run(tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    env = {**os.environ, "FACTORY_PS": "x"}
    status, output = await provision(
        str(tmp_path / "ttyGONE"), "--product-key", "pk", "--product-secret-env", "FACTORY_PS",
        "--endpoint", "example.com", "--store", str(tmp_path / "store"), "--report", str(report), env=env,
    )  # fmt: skip
    assert status == 1, output
    assert "FAILED at open" in output and "done: 0 provisioned, 0 skipped, 1 failed" in output
    (row,) = csv.DictReader(report.open())
    assert row["status"] == "failed" and row["step"] == "open" and "ttyGONE" in row["error"]


async def test_a_result_the_store_refuses_is_rescued_beside_the_report(tmp_path: Path) -> None:
    async with CloudTwin() as twin:
        twin.registry.add_product("pkFactory01", "factory-product-secret")
        twin.registry.add_device("pkFactory01", IMEIS[0])
        ca = tmp_path / "ca.pem"
        ca.write_bytes(twin.ca_pem)
        blocker = tmp_path / "blocker"  # a file where the store's parent directory should be
        blocker.write_text("")
        emulator = await asyncio.to_thread(EmulatorThread, hosts=twin.hosts(), imei=IMEIS[0])
        try:
            report = tmp_path / "out" / "report.json"
            report.parent.mkdir()
            status, output = await provision(
                emulator.path, "--product-key", "pkFactory01", "--product-secret-env", "FACTORY_PS",
                "--endpoint", DEFAULT_ENDPOINT, "--ca", str(ca), "--store", str(blocker / "store"),
                "--report", str(report), env={**os.environ, "FACTORY_PS": "factory-product-secret"},
            )  # fmt: skip
        finally:
            await asyncio.to_thread(emulator.close)
    assert status == 1, output
    rescued = report.parent / "rescue" / f"pkFactory01.{IMEIS[0]}.json"
    (row,) = json.loads(report.read_text())
    assert row["status"] == "failed" and row["step"] == "register" and f"kept in {rescued}" in row["error"]
    secret = json.loads(rescued.read_text())["deviceSecret"]
    assert stat.S_IMODE(rescued.stat().st_mode) == 0o600
    assert secret not in output and secret not in report.read_text()


def test_the_checkout_tool_is_the_same_command() -> None:
    """tools/provision.py stays: the same parser and module, from a checkout without pip."""
    import subprocess

    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "provision.py"), "--help"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and "--product-key PK" in done.stdout and "provision" in done.stdout
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import provision  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "tools"))
    from quecmqtt.cli import provision as module

    assert provision.parse_args is module.parse_args and provision.Report is module.Report
