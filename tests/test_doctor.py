"""`quecmqtt doctor`: a read-only probe whose profile file turns a module into an emulator
profile. For every shipped profile: doctor against the emulator writes a file; an emulator
loaded from that file answers every probe byte for byte as the original did; and the doctor
sent only test, read and identity commands (checked in its transcript)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import pexpect
import pytest

from quecmqtt.doctor import PROBES, SAFE_LINE, DoctorReport, doctor
from quecmqtt.emulator import EmulatorThread
from quecmqtt.emulator.families import PROFILES
from quecmqtt.emulator.profiles import Profile, load_profile
from quecmqtt.runtime import Modem
from quecmqtt.transcripts.format import Transcript
from quecmqtt.transport.serial import SerialTransport


async def _probe(emulator: EmulatorThread, record: Path) -> DoctorReport:
    modem = Modem(SerialTransport(emulator.path), init_script=False, reconcile=False, record=record)
    await modem.open()
    try:
        return await doctor(modem)
    finally:
        await modem.close()


@pytest.mark.parametrize("model", sorted(PROFILES))
async def test_doctor_round_trip_answers_byte_for_byte(model: str, tmp_path: Path) -> None:
    first = await asyncio.to_thread(EmulatorThread, model=model)
    try:
        report = await _probe(first, tmp_path / "first.txt")
    finally:
        await asyncio.to_thread(first.close)
    profile_file = tmp_path / "profile.json"
    profile_file.write_text(report.profile().to_json())
    learned = load_profile(profile_file)
    assert learned.based_on == model  # the closest shipped profile is the one it came from
    assert learned.imei == PROFILES[model].imei

    second = await asyncio.to_thread(EmulatorThread, profile=profile_file)
    try:
        again = await _probe(second, tmp_path / "second.txt")
    finally:
        await asyncio.to_thread(second.close)

    assert [key for key, _, _ in PROBES] == list(report.answers)
    for key in report.answers:
        a, b = report.answers[key], again.answers[key]
        assert (a.final, a.lines) == (b.final, b.lines), key
    # the module's bytes, whole: identical (a doctor profile answers as its module did)
    one = Transcript.load(tmp_path / "first.txt").module_bytes()
    two = Transcript.load(tmp_path / "second.txt").module_bytes()
    assert one == two
    assert again.profile().to_json() == report.profile().to_json()

    # read-only: nothing but test, read and identity commands went out
    sent = Transcript.load(tmp_path / "first.txt").host_bytes().split(b"\r")
    lines = [line for line in sent if line]
    # every probe once; after a time-out (BG95's silent AT+QMTOPEN?) the runtime's late-answer
    # guard (AT, AT+CMEE?), read-only too
    guard = (b"AT", b"AT+CMEE?")
    assert [line for line in lines if line not in guard] == [c.line for _, c, _ in PROBES if c.line not in guard]
    assert all(SAFE_LINE.match(line) for line in lines), [line for line in lines if not SAFE_LINE.match(line)]


async def test_doctor_says_what_the_driver_will_use(tmp_path: Path) -> None:
    emulator = await asyncio.to_thread(EmulatorThread, model="BG96")
    try:
        report = await _probe(emulator, tmp_path / "t.txt")
    finally:
        await asyncio.to_thread(emulator.close)
    findings = dict(report.findings())
    assert "AT+QMTPUBEX: none" in findings["publish"]
    assert "AT+QMTPUB: length up to 1548" in findings["publish"]
    assert findings["TLS"].endswith("SNI none (the module has no SNI setting)")
    assert findings["HTTP"] == "URL limit +QHTTPURL: (1-700),(1-65535)"
    assert findings["HTTP stop"] == "no AT+QHTTPSTOP: not sent"


def test_a_profile_file_that_is_not_one_is_refused_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x"}')
    with pytest.raises(ValueError, match="not a profile file"):
        load_profile(bad)
    bad.write_text(json.dumps({"format": "quecmqtt-profile/1", "name": "x", "colour": "red"}))
    with pytest.raises(ValueError, match="unknown profile fields: colour"):
        load_profile(bad)
    with pytest.raises(ValueError, match="cannot read profile"):
        load_profile(tmp_path / "missing.json")
    assert Profile.from_json(PROFILES["EC25"].to_json()) == PROFILES["EC25"]


def test_doctor_and_emulate_profile_on_the_command_line(tmp_path: Path) -> None:
    """The CLI under a real pty: doctor against `quecmqtt emulate --model BG95`, then
    `emulate --profile` with the file it wrote."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    emulate = pexpect.spawn(
        sys.executable, ["-m", "quecmqtt", "emulate", "--model", "BG95"], cwd=tmp_path, env=env, timeout=20
    )
    try:
        emulate.expect(r"device: (\S+)")
        device = emulate.match.group(1).decode()
        out = tmp_path / "mine.json"
        doc = pexpect.spawn(
            sys.executable,
            ["-m", "quecmqtt", "doctor", "--port", device, "--profile-out", str(out)],
            cwd=tmp_path,
            env=env,
            timeout=60,
        )
        doc.expect(pexpect.EOF)
        doc.close()
        text = doc.before.decode()
        assert doc.exitstatus == 0, text
        assert re.search(r"publish:\s+AT\+QMTPUBEX: inline; AT\+QMTPUB: length up to 4096", text), text
        assert "no answer to AT+QMTOPEN?" in text
        assert oct(out.stat().st_mode & 0o777) == "0o600"
        assert load_profile(out).silent_qmtopen_read
        transcript = Transcript.load(tmp_path / "quecmqtt-doctor.txt")
        assert all(SAFE_LINE.match(line) for line in transcript.host_bytes().split(b"\r") if line)
        doc = pexpect.spawn(
            sys.executable,
            ["-m", "quecmqtt", "doctor", "--port", device, "--profile-out", str(out), "--json"],
            cwd=tmp_path,
            env=env,
            timeout=60,
        )
        doc.expect(pexpect.EOF)
        doc.close()
        data = json.loads(doc.before.decode().strip().splitlines()[-1])
        assert data["answers"]["+QMTOPEN?"]["final"] == "timeout"
        assert data["findings"]["publish"].startswith("AT+QMTPUBEX: inline")
    finally:
        emulate.sendintr()
        emulate.expect(pexpect.EOF)
    again = pexpect.spawn(
        sys.executable, ["-m", "quecmqtt", "emulate", "--profile", str(out)], cwd=tmp_path, env=env, timeout=20
    )
    again.expect(r"model: BG95-M3 \(a doctor profile based on BG95\)")
    again.sendintr()
    again.expect(pexpect.EOF)
