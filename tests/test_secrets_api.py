"""Secrets that enter through the Python API never show (issue 13): not in repr() of the
objects that hold them, not in the error for a value that is not text."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quecmqtt.aliyun.device import Product
from quecmqtt.aliyun.replies import Registered, Whitelisted
from quecmqtt.errors import InvalidArgument
from quecmqtt.mqtt.config import AliAuth
from quecmqtt.secret import Secret

SECRET = "s3cr3t-value-9f1c"


@pytest.mark.parametrize(
    "holder",
    [
        lambda: Product("pk", "dn", SECRET),  # type: ignore[arg-type]
        lambda: AliAuth("pk", "dn", SECRET),  # type: ignore[arg-type]
        lambda: Registered("pk", "dn", SECRET),  # type: ignore[arg-type]
        lambda: Whitelisted("pk", "dn", "cid", SECRET),  # type: ignore[arg-type]
    ],
    ids=["Product", "AliAuth", "Registered", "Whitelisted"],
)
def test_a_secret_given_as_a_plain_string_is_wrapped(holder: object) -> None:
    made = holder()  # type: ignore[operator]
    assert SECRET not in repr(made) and SECRET not in str(made)
    held = [v for v in vars(made).values() if isinstance(v, Secret)] if hasattr(made, "__dict__") else []
    assert held and held[0].reveal() == SECRET  # still usable where it leaves for the module


def test_a_secret_that_is_not_text_is_refused_without_showing_it() -> None:
    value = "abc\ud800" + SECRET
    with pytest.raises(InvalidArgument) as caught:
        Secret(value, "device_secret")
    text = str(caught.value)
    assert "device_secret" in text and "position 3" in text
    assert SECRET not in text and SECRET not in repr(caught.value.args) and caught.value.__cause__ is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("a\ud800b", "not valid text"), ("topic\u0085x", "control character 0x85"), ("x\x9fy", "control character 0x9f")],
)
def test_api_strings_are_checked_up_front(value: str, expected: str) -> None:
    from quecmqtt.at import commands as C

    with pytest.raises(InvalidArgument, match=expected):
        C.QMTSUB(0, 1, value, 1)
    with pytest.raises(InvalidArgument, match=expected):
        C.QMTCONN(0, value)


async def test_an_empty_subscription_topic_is_refused_before_anything_is_sent() -> None:
    from quecmqtt.modem import Modem
    from quecmqtt.mqtt.client import MqttClient
    from quecmqtt.transport.memory import MemoryPort

    modem = Modem(MemoryPort().transport)
    client = MqttClient(modem, 0)
    with pytest.raises(InvalidArgument, match="cannot be empty"):
        await client.subscribe("")
    with pytest.raises(InvalidArgument, match="cannot be empty"):
        await client.subscribe([("a/b", 1), ("", 0)])


def test_transcripts_are_written_for_their_owner_only(tmp_path: object) -> None:
    """A transcript is redacted, but it is a session's record: 0600, also over an older file."""
    import os
    import stat
    from pathlib import Path

    from quecmqtt.modem import Modem
    from quecmqtt.transcripts.format import Transcript
    from quecmqtt.transport.memory import MemoryPort

    assert isinstance(tmp_path, Path)
    old = tmp_path / "old.txt"
    old.write_text("")
    os.chmod(old, 0o644)
    for path in (tmp_path / "new.txt", old):
        Modem(MemoryPort().transport, record=path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    saved = tmp_path / "saved.txt"
    Transcript.load(Path(__file__).parent.parent / "fixtures" / "seed" / "4.1.3-topic.txt").save(saved)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_decode_hides_registration_replies_and_read_backs_unless_revealed(tmp_path: object) -> None:
    from pathlib import Path

    from tests.test_cli import run_cli

    assert isinstance(tmp_path, Path)
    seed = Path(__file__).parent.parent / "fixtures" / "seed" / "4.2.1-register.txt"
    status, output = run_cli("decode", str(seed))
    assert status == 0 and "d2a03b64a5e06b051f481136668133cf" not in output and '\\"deviceSecret\\":\\"***\\"' in output
    status, output = run_cli("decode", "--reveal", str(seed))
    assert status == 0 and "d2a03b64a5e06b051f481136668133cf" in output
    raw = tmp_path / "capture.bin"
    raw.write_bytes(
        b'\r\n+QMTCFG: "aliauth","pk","dn","SECRET-A"\r\n\r\n+QICSGP: 1,"cmnet","u","SECRET-B",1\r\n'
        b'\r\n+QMTRECV: 0,0,"/ext/regnwl","{"clientId":"c","deviceToken":"SECRET-C"}"\r\n'
    )
    status, output = run_cli("decode", "--raw", str(raw))
    assert status == 0 and "SECRET-" not in output and output.count("***") == 3, output
    status, output = run_cli("decode", "--raw", "--reveal", str(raw))
    assert status == 0 and all(f"SECRET-{x}" in output for x in "ABC"), output


@pytest.mark.parametrize("older", [False, True])
async def test_the_sqlite_outbox_and_its_side_files_are_the_owners_alone(tmp_path: Path, older: bool) -> None:
    """Messages may carry anything: the database and SQLite's -wal and -shm files are 0600,
    also when an older version left the database 0644 (on b32764a: 0644, all three)."""
    import stat

    from quecmqtt.mqtt.outbox import SqliteOutbox

    path = tmp_path / "outbox.db"
    if older:
        path.touch(mode=0o644)
        os.chmod(path, 0o644)
    outbox = SqliteOutbox(str(path))
    await outbox.open()
    await outbox.put("t", b"payload", 1, False)
    try:
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
    finally:
        outbox.close()


def test_a_token_written_with_json_escapes_is_redacted_as_written() -> None:
    """The cloud may escape a character of a token (`\\/`, `\\u0041`): the transcript holds the
    bytes as written, so those are hidden too, not only the decoded text (on b32764a the
    escaped form stayed in clear)."""
    from quecmqtt.aliyun.replies import registration_secrets
    from quecmqtt.redact import Redactor
    from quecmqtt.transcripts.decode import decode_raw

    reply = b'{"code":200,"data":{"deviceToken":"^1^1681709523062^c5\\/cce0\\u0041a","clientId":"cid"}}'
    redactor = Redactor(registration_secrets(reply))
    shown = redactor.redact_text(reply.decode())
    assert "c5" not in shown and "cce0" not in shown and '"clientId":"cid"' in shown, shown
    push = b'\r\n+QMTRECV: 0,0,"/ext/regnwl",' + str(len(reply)).encode() + b',"' + reply + b'"\r\n'
    text = "\n".join(str(event) for event in decode_raw(push))
    assert "cce0" not in text, text
