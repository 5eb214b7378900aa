"""`quecmqtt cloud --tsl/--ota` with its console, `aliyun post --tsl` and `aliyun ota`, each a
real process under a pty (pexpect) against the emulator and the twin."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pexpect

from quecmqtt.emulator import EmulatorThread
from tests.test_cli import ENV, run_cli
from tests.test_cli_module import ENDPOINT, finish, spawn

PK, PS, DS = "pkOta0000001", "ota-product-secret", "ota-device-secret"
TSL = Path(__file__).parent.parent / "fixtures" / "tsl" / "seed-product.json"


def test_thing_model_ota_and_console_through_the_cli(tmp_path: Path) -> None:
    firmware = os.urandom(200_000)
    (tmp_path / "fw.bin").write_bytes(firmware)
    cloud = spawn(
        "cloud", "--product", f"{PK}:$TWIN_PS", "--device", f"{PK}:dev1:$TWIN_DS", "--tsl", f"{PK}={TSL}",
        "--product", "pkNoOffer001:$TWIN_PS", "--device", "pkNoOffer001:dev1:$TWIN_DS",
        "--ota", f"{PK}:2.0.0:{tmp_path / 'fw.bin'}", "--ota-sign-method", "SHA256",
        env={**ENV, "TWIN_PS": PS, "TWIN_DS": DS},
    )  # fmt: skip
    try:
        cloud.expect(f"ota: {PK} offers 2.0.0 \\(200000 bytes, SHA256\\)")
        cloud.expect(r"ca: (\S+)")
        ca = cloud.match.group(1)
        cloud.expect(r"--hosts ([^\r\n]+)\r\n")
        hosts = dict(item.split("=", 1) for item in cloud.match.group(1).split())
        cloud.expect("Ctrl-C stops")
        env = {**ENV, "DS": DS}
        device = ["--product-key", PK, "--device-name", "dev1", "--endpoint", ENDPOINT, "--ca", ca,
                  "--device-secret-env", "DS"]  # fmt: skip

        # refused locally, before the port (one that does not exist) is opened
        status, output = run_cli(
            "aliyun", "post", "--port", "/nonexistent/tty", *device, "--tsl", str(TSL), "--params", '{"Temp": 130}',
            env=env,
        )  # fmt: skip
        assert status == 2 and "Temp: 130 is above the maximum 120" in output, output
        with EmulatorThread(hosts=hosts) as emu:
            status, output = run_cli(
                "aliyun", "post", "--port", emu.path, *device, "--tsl", str(TSL), "--params", '{"Temp": 23.9}', env=env
            )
            assert status == 0 and "post_reply code 200" in output, output
            status, output = run_cli(  # forced through: the twin's thing model answers
                "aliyun", "post", "--port", emu.path, *device, "--params", '{"Temp": 130}', env=env
            )
            assert status == 1 and "post_reply code 6307" in output, output

            directory = tmp_path / "ota"
            child = spawn(
                "aliyun", "ota", "--port", emu.path, *device, "--version", "1.0.0", "--directory", str(directory),
                "--json", env=env, timeout=120,
            )  # fmt: skip
            child.expect(r"task: 2\.0\.0, 200000 bytes, sha256")
            child.expect(r"100% 200000/200000 bytes")  # the bar, on the terminal
            status, output = finish(child)
            assert status == 0, output
            result = json.loads(output.splitlines()[-1])
            assert result["downloaded"] and result["fetched"] == 200_000 and result["digest"] == "sha256"
            assert (directory / "2.0.0.bin").read_bytes() == firmware
            status, output = run_cli(
                "aliyun", "ota", "--port", emu.path, *device, "--version", "2.0.0", "--directory", str(directory),
                env=env,
            )  # fmt: skip
            assert status == 0 and "already at 2.0.0: nothing to do" in output, output
            other = [*device]
            other[1] = "pkNoOffer001"
            status, output = run_cli(
                "aliyun", "ota", "--port", emu.path, *other, "--version", "1.0.0", "--wait", "0.5", env=env
            )
            assert status == 3 and "no upgrade task for 1.0.0 within 0.5 s" in output, output

        cloud.sendline("rrpc pkOta0000001 dev1 ping")
        cloud.expect("rrpc: OFFLINE")  # the device has gone
        cloud.sendline("call pkOta0000001 dev1 SelfDestruct")
        cloud.expect(r'reply: \{"code": 6321, "message": "tsl parse: service not exist -> SelfDestruct"')
        cloud.sendline('set pkOta0000001 dev1 {"LightStatus"')
        cloud.expect("console: not JSON")
        cloud.sendline("launch")
        cloud.expect(r"console: not a command: 'launch' \(help lists them\)")
        cloud.sendline("help")
        cloud.expect("desired PK DN JSON")
    finally:
        cloud.sendintr()
        cloud.expect(pexpect.EOF)


def test_cloud_refuses_a_bad_thing_model_or_firmware_before_it_serves(tmp_path: Path) -> None:
    bad = tmp_path / "tsl.json"
    bad.write_text('{"name": "not a model"}')
    (tmp_path / "empty.bin").write_bytes(b"")
    for args, says in (
        (["--tsl", f"{PK}={bad}"], "not a thing model export"),
        (["--tsl", f"{PK}={tmp_path / 'none.json'}"], "No such file"),
        (["--tsl", str(TSL)], "--tsl wants PRODUCTKEY=FILE"),
        (["--ota", f"{PK}:2.0.0"], "--ota wants PK:VERSION:FILE"),
        (["--ota", f"{PK}:2.0.0:{tmp_path / 'none.bin'}"], "is not a file"),
        (["--ota", f"{PK}:2.0.0:{tmp_path / 'empty.bin'}"], "the firmware is empty"),
        (["--ota", f'{PK}:2"0:{TSL}'], "no quotes"),
    ):
        status, output = run_cli("cloud", *args)
        assert status == 2 and says in output, (args, output)
        assert len(output.strip().splitlines()) == 1, output


def test_the_console_leaves_the_terminal_blocking_for_the_next_program() -> None:
    """The console reads the terminal through a non-blocking pipe transport; after the twin
    stops, the shell's next program must find the terminal as it was (blocking)."""
    import signal
    import sys
    import uuid

    from tests.children import spawn_child

    marker = f"marker-{uuid.uuid4().hex[:8]}.example"
    python = sys.executable
    script = (
        f"{python} -m quecmqtt cloud --endpoint {marker}; "
        f"{python} -c 'import os; print(\"stdin blocking:\", os.get_blocking(0))'"
    )
    shell = spawn_child("bash", ["-c", script], encoding="utf-8", env=ENV, timeout=30)
    try:
        shell.expect("Ctrl-C stops")
        shell.sendline("help")  # the console is reading the terminal
        shell.expect("desired PK DN JSON")
        twin = next(
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and b"quecmqtt\x00cloud\x00" in _cmdline(p) and marker.encode() in _cmdline(p)
        )  # fmt: skip  (the twin, not the shell whose script names the marker too)
        os.kill(twin, signal.SIGTERM)
        shell.expect(r"stdin blocking: (True|False)")
        assert shell.match.group(1) == "True"
    finally:
        shell.close(force=True)


def _cmdline(process: Path) -> bytes:
    try:
        return (process / "cmdline").read_bytes()
    except OSError:
        return b""
