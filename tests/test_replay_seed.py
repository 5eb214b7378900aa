"""Every seed flow replays green through the runtime, however the module output is cut;
a wrong command gives a readable diff; no secret reaches the logs or a recording."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from quecmqtt.at import commands as C
from quecmqtt.modem import Modem
from quecmqtt.secret import Secret
from quecmqtt.transcripts.format import Transcript
from quecmqtt.transcripts.recorder import RecorderTransport
from quecmqtt.transcripts.replay import ReplayMismatch, ReplayTransport
from tests.conftest import SEED
from tests.seed_flows import ALIYUN_FLOWS, DEVICE_SECRET_413, FLOWS, SECRETS, flow_4_1_1, flow_4_1_3_client


def test_every_fixture_has_a_flow() -> None:
    assert sorted(p.name for p in SEED.glob("*.txt")) == sorted(FLOWS)


@pytest.mark.parametrize("chunking", ["whole", "bytes", "random"])
@pytest.mark.parametrize("name", sorted(FLOWS))
async def test_seed_flow_replays_green(name: str, chunking: str) -> None:
    transport = ReplayTransport(str(SEED / name), chunking=chunking, seed=11)  # type: ignore[arg-type]
    async with Modem(transport, init_script=False, reconcile=False) as modem:
        await FLOWS[name](modem)
    transport.assert_complete()
    assert transport.done


@pytest.mark.parametrize("chunking", ["whole", "bytes", "random"])
@pytest.mark.parametrize("name", ["4.1.3-topic.txt", "4.1.3-topic-echo.txt"])
async def test_seed_4_1_3_replays_through_the_mqtt_client(name: str, chunking: str) -> None:
    transport = ReplayTransport(str(SEED / name), chunking=chunking, seed=3)  # type: ignore[arg-type]
    async with Modem(transport, init_script=False, reconcile=False) as modem:
        await flow_4_1_3_client(modem)
    transport.assert_complete()


@pytest.mark.parametrize("chunking", ["whole", "bytes", "random"])
@pytest.mark.parametrize("name", sorted(ALIYUN_FLOWS))
async def test_seed_replays_through_the_aliyun_layer(name: str, chunking: str) -> None:
    transport = ReplayTransport(str(SEED / name), chunking=chunking, seed=7)  # type: ignore[arg-type]
    async with Modem(transport, init_script=False, reconcile=False) as modem:
        await ALIYUN_FLOWS[name](modem)
    transport.assert_complete()


async def test_a_wrong_command_gives_a_readable_diff() -> None:
    transport = ReplayTransport(str(SEED / "4.1.1-aliauth.txt"))
    async with Modem(transport, init_script=False, reconcile=False) as modem:
        with pytest.raises(ReplayMismatch) as info:
            await modem.execute(C.QMTCFG["version"](0, 3))
    text = str(info.value)
    assert "4.1.1-aliauth.txt:8" in text
    assert 'expected: AT+QMTCFG="version",0,4\\r' in text
    assert 'actual:   AT+QMTCFG="version",0,3' in text
    caret = text.splitlines()[-1]
    assert caret.index("^") == text.splitlines()[-3].index("4\\r")


async def test_stopping_early_is_reported_with_the_line() -> None:
    transport = ReplayTransport(str(SEED / "4.1.1-aliauth.txt"))
    async with Modem(transport, init_script=False, reconcile=False) as modem:
        await modem.execute(C.QMTCFG["version"](0, 4))
    with pytest.raises(ReplayMismatch, match=r"4\.1\.1-aliauth\.txt:10: the driver stopped"):
        transport.assert_complete()


@pytest.mark.parametrize("name", sorted(FLOWS))
async def test_no_secret_in_logs_or_recordings(name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    recording = tmp_path / "session.txt"
    replay = ReplayTransport(str(SEED / name), chunking="random", seed=5)
    modem = Modem(replay, init_script=False, reconcile=False, record=recording)
    async with modem:
        await FLOWS[name](modem)
    assert caplog.text
    written = recording.read_text(encoding="utf-8")
    for secret in SECRETS:
        assert secret not in caplog.text, secret
        assert secret not in written, secret
    # the recording itself replays green, the placeholders standing for the secrets
    replay_again = ReplayTransport(str(recording), chunking="bytes")
    async with Modem(replay_again, init_script=False, reconcile=False) as again:
        await FLOWS[name](again)
    replay_again.assert_complete()


async def test_echoed_secret_and_read_back_are_redacted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    unknown = "a1b2c3d4e5f6a7b8c9d0aabbccddeeff"  # set by an earlier process: only the read-back shows it
    transcript = Transcript.loads(
        "# quecmqtt transcript 1\n"
        f'> AT+QMTCFG="aliauth",0,"pk","dev","{DEVICE_SECRET_413}"\\r\n'
        f'< AT+QMTCFG="aliauth",0,"pk","dev","{DEVICE_SECRET_413}"\\r\\r\\nOK\\r\\n\n'
        '> AT+QMTCFG="aliauth",1\\r\n'
        f'< \\r\\n+QMTCFG: "aliauth","pk","dev","{unknown[:10]}\n'
        f'< {unknown[10:]}"\\r\\n\\r\\nOK\\r\\n\n'
    )
    recording = tmp_path / "rec.txt"
    async with Modem(ReplayTransport(transcript), init_script=False, reconcile=False, record=recording) as modem:
        await modem.execute(C.QMTCFG["aliauth"](0, "pk", "dev", Secret(DEVICE_SECRET_413)))
        reply = await modem.execute(C.QMTCFG_READ["aliauth"](1))
    written = recording.read_text()
    assert DEVICE_SECRET_413 not in written and unknown not in written
    assert "{{device_secret:32}}" in written
    assert unknown not in caplog.text and DEVICE_SECRET_413 not in caplog.text
    assert unknown not in repr(reply)


async def test_recorder_keeps_read_boundaries(tmp_path: Path) -> None:
    recording = tmp_path / "rec.txt"
    replay = ReplayTransport(str(SEED / "4.1.1-aliauth.txt"))
    async with Modem(RecorderTransport(replay, recording), init_script=False, reconcile=False) as modem:
        await flow_4_1_1(modem)
    original = Transcript.load(SEED / "4.1.1-aliauth.txt")
    recorded = Transcript.load(recording)
    assert DEVICE_SECRET_413 not in recording.read_text()  # the runtime shares its redactor with the recorder
    assert all(r.time is not None for r in recorded.records)
    assert [r.resolve() for r in recorded.records if not r.is_host] == [
        r.resolve() for r in original.records if not r.is_host
    ]
