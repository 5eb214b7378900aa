"""OTA end to end: the real driver over a pty, the emulated module's own HTTP(S) client, the
cloud twin (task, ranged HTTPS download, progress) and a real Mosquitto behind it. The link
drops at ~30 %, the module reboots at ~60 %, the process "restarts" (a new Ota on the same
directory): the download resumes, fetches little more than the file, verifies, and hands the
file over; a corrupted file is reported with -3 and never handed over."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import pytest_asyncio

from quecmqtt.aliyun.alink import Thing
from quecmqtt.aliyun.device import login_credentials
from quecmqtt.aliyun.ota import STEP_VERIFY_FAILED, Ota, OtaFailed, OtaTask
from quecmqtt.cloud import DEFAULT_ENDPOINT, CloudTwin
from quecmqtt.cloud.ota import OTA_HOST
from quecmqtt.emulator import EmulatorThread
from quecmqtt.modem import Modem
from quecmqtt.mqtt.session import Backoff, Session
from quecmqtt.secret import Secret
from quecmqtt.services.http import Http, HttpConfig
from quecmqtt.services.network import Network
from quecmqtt.services.tls import Tls
from quecmqtt.transport.serial import SerialTransport
from tests.broker import Broker
from tests.peer import until

pytestmark = pytest.mark.broker

PK, DN, DS = "i2uqc2dloOl", "device001", "c4fa40df9c8078073d75a26be2bc8f58"
MIB = 1 << 20
FAST = Backoff(initial=0.1, maximum=0.5)


@dataclass
class Rig:
    twin: CloudTwin
    emulator: EmulatorThread
    modem: Modem
    network: Network
    session: Session
    thing: Thing
    http: Http

    def ota(self, directory: Path, **options: object) -> Ota:
        return Ota(self.thing, self.http, directory, network=self.network, retry_delay=0.05, **options)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def rig(broker: Broker) -> AsyncIterator[Rig]:
    twin = CloudTwin(broker=("127.0.0.1", broker.port))
    twin.registry.add_product(PK, "not-used-here")
    twin.registry.add_device(PK, DN, DS)
    await twin.start()
    emulator = await asyncio.to_thread(EmulatorThread, model="EC200U", hosts=twin.hosts())
    modem = Modem(SerialTransport(emulator.path))
    stack = contextlib.AsyncExitStack()
    try:
        await modem.open()
        network = await stack.enter_async_context(Network(modem))
        network.watch(timeout=20)
        tls = await stack.enter_async_context(Tls(modem))  # kept: it sets the context up again after a reboot
        await tls.setup(1, ca=twin.ca_pem, clock=None)
        http = await stack.enter_async_context(Http(modem, HttpConfig(ssl_context=1)))
        login = login_credentials(PK, DN, Secret(DS, "device_secret"))
        session = Session(modem, DEFAULT_ENDPOINT, 1883, login.client_id, login.username, login.password, backoff=FAST)
        await session.start(timeout=20)
        stack.push_async_callback(session.stop)
        thing = Thing(session, PK, DN)
        await thing.start()
        stack.push_async_callback(thing.close)
        yield Rig(twin, emulator, modem, network, session, thing, http)
    finally:
        await stack.aclose()
        await modem.close()
        await asyncio.to_thread(emulator.close)
        await twin.stop()


def firmware_file(tmp_path: Path, size: int = MIB) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / "fw-2.0.0.bin"
    path.write_bytes(data)
    return path, data


async def pushed_task(rig: Rig, ota: Ota) -> OtaTask:
    await ota.start()
    await rig.thing.report_version("1.0.0")  # another version than the one offered: the task comes
    return await ota.next_task(timeout=20)


async def test_the_task_names_the_offered_firmware_and_its_digest(rig: Rig, tmp_path: Path) -> None:
    path, _ = firmware_file(tmp_path, 4096)
    offered = rig.twin.firmware.add(PK, "2.0.0", path, "SHA256")
    ota = rig.ota(tmp_path / "ota")
    task = await pushed_task(rig, ota)
    assert (task.version, task.size, task.sign_method, task.sign) == ("2.0.0", 4096, "sha256", offered.sha256)
    assert task.url.startswith(f"https://{OTA_HOST.format(region='cn-shanghai')}/ota/{PK}/")
    assert "Signature=" not in repr(task)  # the link's signature stays out of logs
    # known to the redactor as the push arrived (base64: `/`, `+`, `=` percent-encoded in the link)
    assert offered.signature.encode() in rig.modem.redactor
    assert quote(offered.signature, safe="").encode() in rig.modem.redactor
    assert offered.signature not in rig.modem.redactor.redact_text(task.url)
    again = await ota.request()  # after a restart the device asks; the same task comes back
    assert again is not None and again.identity() == task.identity()
    ota.close()


class ProcessStops(Exception):
    """The program dies here (in the test: raised from the progress callback, after the range
    it reports is on disk)."""


async def test_a_download_resumes_after_a_link_drop_a_reboot_and_a_restart(rig: Rig, tmp_path: Path) -> None:
    path, data = firmware_file(tmp_path)
    rig.twin.firmware.add(PK, "2.0.0", path, "SHA256")
    handed: list[tuple[Path, OtaTask]] = []
    directory = tmp_path / "ota"
    served = rig.twin.firmware
    faults: list[str] = []
    reboot: list[asyncio.Task[None]] = []

    def progress(received: int, size: int) -> None:
        """Faults at given points of the download, whatever the machine's speed."""
        if received >= 0.3 * size and not faults:
            faults.append("link")
            rig.emulator.deactivate_pdp(1)  # the network drops the link: the next range fails
        elif received >= 0.6 * size and faults == ["link"]:
            faults.append("reboot")  # the module restarts, while the next range is under way
            reboot.append(asyncio.ensure_future(asyncio.to_thread(rig.emulator.reboot)))
        elif received >= 0.8 * size:
            raise ProcessStops

    first = rig.ota(directory, on_firmware=lambda p, t: handed.append((p, t)), on_progress=progress)
    task = await pushed_task(rig, first)
    generation = rig.modem.generation
    with pytest.raises(ProcessStops):
        await first.download(task)
    await reboot[0]
    first.close()
    assert faults == ["link", "reboot"] and rig.modem.generation > generation  # the module did restart
    on_disk = (directory / "2.0.0.part").stat().st_size
    assert 0.8 * MIB <= on_disk < MIB

    second = rig.ota(directory, on_firmware=lambda p, t: handed.append((p, t)))  # the restarted process
    task = await pushed_task(rig, second)
    finished = await second.run(task)
    assert finished.read_bytes() == data
    assert handed == [(finished, task)]
    assert second.fetched == MIB - on_disk  # it asked only for what was missing
    print(f"\nOTA: {served.served} bytes served for a {MIB}-byte firmware ({served.served / MIB:.3f})")
    assert served.served <= 1.1 * MIB
    await until(lambda: any(step == 100 for *_, step, _ in rig.twin.responder.progress), timeout=10)
    steps = [step for *_, step, _ in rig.twin.responder.progress]
    assert steps == sorted(steps) and len(steps) <= 12  # at each 10 %, not at each range
    assert not list(directory.glob("*.part")) and not (directory / "ota-task.json").exists()
    second.close()


async def test_a_corrupted_file_is_reported_and_never_handed_over(rig: Rig, tmp_path: Path) -> None:
    path, data = firmware_file(tmp_path, 100_000)
    rig.twin.firmware.add(PK, "2.0.0", path, "Md5")
    path.write_bytes(data[:50_000] + bytes([data[50_000] ^ 0xFF]) + data[50_001:])  # changed on the server
    handed: list[Path] = []
    ota = rig.ota(tmp_path / "ota", on_firmware=lambda p, t: handed.append(p))
    task = await pushed_task(rig, ota)
    with pytest.raises(OtaFailed) as failed:
        await ota.run(task)
    assert failed.value.step == STEP_VERIFY_FAILED and "md5" in str(failed.value)
    assert handed == []
    assert [p.name for p in (tmp_path / "ota").iterdir()] == [".ota.lock"]  # nothing like firmware is left
    await until(lambda: any(step == -3 for *_, step, _ in rig.twin.responder.progress), timeout=10)
    ota.close()


async def test_a_partial_file_of_another_task_is_not_resumed(rig: Rig, tmp_path: Path) -> None:
    path, data = firmware_file(tmp_path, 70_000)
    rig.twin.firmware.add(PK, "2.0.0", path, "Md5")
    directory = tmp_path / "ota"
    directory.mkdir()
    (directory / "ota-task.json").write_text(json.dumps({"version": "2.0.0", "size": 70_000, "sign": "0" * 32,
                                                         "signMethod": "md5"}))  # fmt: skip
    (directory / "2.0.0.part").write_bytes(b"\x00" * 40_000)  # a build of 2.0.0 that was withdrawn
    ota = rig.ota(directory)
    task = await pushed_task(rig, ota)
    finished = await ota.run(task)
    assert finished.read_bytes() == data
    assert ota.fetched == 70_000
    ota.close()


async def test_an_expired_link_fails_at_once_and_is_reported(
    rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, _ = firmware_file(tmp_path, 10_000)
    offered = rig.twin.firmware.add(PK, "2.0.0", path, "Md5")
    task = OtaTask.from_message(offered.task(rig.twin.region))
    expired = OtaTask(task.version, re.sub(r"Expires=\d+", "Expires=1", task.url), task.size, task.sign, "md5")
    ota = rig.ota(tmp_path / "ota")
    await ota.start()
    with pytest.raises(OtaFailed) as failed:
        await ota.run(expired)  # OSS answers 403: asking again would not help
    assert failed.value.step == -2 and "HTTP status 403" in str(failed.value)
    assert not [r for r in caplog.records if "again in" in r.getMessage()]  # no range was asked for twice
    await until(lambda: any(step == -2 for *_, step, _ in rig.twin.responder.progress), timeout=10)
    ota.close()


async def test_two_runs_of_one_task_share_the_directory_and_the_file(rig: Rig, tmp_path: Path) -> None:
    path, data = firmware_file(tmp_path, 200_000)
    rig.twin.firmware.add(PK, "2.0.0", path, "SHA256")
    first, second = rig.ota(tmp_path / "ota"), rig.ota(tmp_path / "ota")
    task = await pushed_task(rig, first)
    done = await asyncio.gather(first.run(task), second.run(task))  # one waits for the other
    assert done[0] == done[1] and done[0].read_bytes() == data
    assert first.fetched + second.fetched == 200_000  # the second found the file already verified
    first.close()


async def test_another_process_downloading_into_the_directory_is_waited_for(
    rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import subprocess
    import sys

    path, data = firmware_file(tmp_path, 50_000)
    rig.twin.firmware.add(PK, "2.0.0", path, "Md5")
    directory = tmp_path / "ota"
    directory.mkdir()
    holder = await asyncio.create_subprocess_exec(  # another `aliyun ota` in the same working directory
        sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
        " fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()", str(directory / ".ota.lock"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and await holder.stdout.readline() == b"held\n"
        ota = rig.ota(directory)
        task = await pushed_task(rig, ota)
        download = asyncio.create_task(ota.run(task))
        await until(lambda: "another process is downloading" in caplog.text, timeout=10)
        assert ota.fetched == 0 and not download.done()
        assert holder.stdin is not None
        holder.stdin.close()  # the other process ends: its lock with it
        assert (await download).read_bytes() == data
        ota.close()
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()


async def test_a_module_that_times_out_is_not_taken_for_a_full_disk(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quecmqtt.errors import CommandTimeout

    path, _ = firmware_file(tmp_path, 1000)
    rig.twin.firmware.add(PK, "2.0.0", path, "Md5")
    ota = rig.ota(tmp_path / "ota")
    task = await pushed_task(rig, ota)

    async def silent() -> None:
        raise CommandTimeout('AT+QHTTPCFG="sslctxid",1', 10.0)

    monkeypatch.setattr(rig.http, "configure", silent)
    with pytest.raises(CommandTimeout):  # an OSError too in Python 3.11, but the module's, not the disk's
        await ota.download(task)
    ota.close()
