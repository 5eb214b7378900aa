"""Network attach, HTTP(S) and TLS through the real driver, over a pty, against the
emulator (and local HTTP/HTTPS servers with trustme certificates)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import trustme

from quecmqtt.at import commands as C
from quecmqtt.emulator import EmulatorThread
from quecmqtt.errors import AttachError, CommandError, HttpError, UploadError
from quecmqtt.modem import Modem
from quecmqtt.secret import Secret, load_secret
from quecmqtt.services.http import Http, HttpConfig
from quecmqtt.services.network import Network
from quecmqtt.services.tls import Tls, checksum, content_name
from quecmqtt.transport.serial import SerialTransport
from tests.httpserver import BIG, REGISTER_REPLY, HttpServers
from tests.peer import until

REGISTER_URL = "https://iot-auth.cn-shanghai.aliyuncs.com/auth/register/device"
REGISTER_BODY = (
    b"productKey=i2uqzmkZsLG&deviceName=device001&random=003"
    b"&sign=277969e6c596f0d127fd1d3bf3229f396a3ddff6&signMethod=hmacsha1"
)


@pytest.fixture(scope="module")
def servers() -> Iterator[HttpServers]:
    running = HttpServers()
    yield running
    running.close()


@pytest_asyncio.fixture
async def rig(request: pytest.FixtureRequest, servers: HttpServers, tmp_path: Path) -> AsyncIterator[Any]:
    """(emulator, modem) for the options in the test's `emulator` marker."""
    marker = request.node.get_closest_marker("emulator")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    options.setdefault("hosts", servers.hosts())
    record = options.pop("record", None)
    emulator = EmulatorThread(**options)
    modem = Modem(SerialTransport(emulator.path), record=tmp_path / "session.txt" if record else None)
    try:
        await modem.open()
        yield emulator, modem
    finally:
        await modem.close()
        emulator.close()


# -- network -------------------------------------------------------------------------------


@pytest.mark.emulator(pdp_active=False, sim_busy=0.6, register_delay=0.5)
async def test_attach_from_a_cold_module(rig: Any) -> None:
    _, modem = rig
    network = Network(modem, apn="internet")
    attached = await network.attach(timeout=20)
    assert attached.ip == "10.64.1.2"
    assert attached.registration.registered and attached.operator.technology == "LTE"
    assert attached.signal.dbm == -113 + 2 * 24 and attached.signal.rssi == 24
    assert attached.seconds >= 0.5  # it waited for the SIM and the network
    identity = await network.identity()
    assert (identity.manufacturer, identity.model, identity.imei) == ("Quectel", "EC200U", "864430010001091")


@pytest.mark.emulator
async def test_attach_when_the_context_is_already_active(rig: Any) -> None:
    _, modem = rig
    attached = await Network(modem).attach(timeout=10)  # AT+QIACT=1 answers ERROR: it is active
    assert attached.ip == "10.64.0.2"


@pytest.mark.emulator(sim_pin="4321")
async def test_sim_pin_from_the_environment(rig: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, modem = rig
    with pytest.raises(AttachError) as info:
        await Network(modem).attach(timeout=5)
    assert info.value.step == "sim" and "PIN" in str(info.value)
    with pytest.raises(AttachError, match="PIN was refused"):
        await Network(modem, pin="0000").attach(timeout=5)
    monkeypatch.setenv("TEST_SIM_PIN", "4321")
    attached = await Network(modem, pin=load_secret(env="TEST_SIM_PIN", name="pin")).attach(timeout=10)
    assert attached.ip


@pytest.mark.emulator(pdp_active=False, register_delay=100)
async def test_attach_says_which_step_failed(rig: Any) -> None:
    _, modem = rig
    with pytest.raises(AttachError) as info:
        await Network(modem, apn="internet").attach(timeout=1.5)
    assert info.value.step == "registration"
    assert info.value.answer == "CS searching, PS searching, EPS searching"


@pytest.mark.emulator
async def test_pdp_context_comes_back_after_the_network_drops_it(rig: Any) -> None:
    emulator, modem = rig
    network = Network(modem, apn="internet")
    await network.attach(timeout=10)
    network.watch()
    try:
        emulator.deactivate_pdp(1)
        await until(lambda: network.keeper.losses >= 1 and not network.keeper.lost, timeout=10)
        contexts = await network.contexts()
        assert contexts[0].cid == 1 and contexts[0].addresses == ("10.64.1.2",)
    finally:
        await network.close()


@pytest.mark.emulator(model="BG96")
async def test_radio_settings_on_bg9x(rig: Any) -> None:
    _, modem = rig
    network = Network(modem)
    await network.set_scan_mode(3)
    await network.set_iot_mode(0)
    settings = await network.radio()
    assert settings["nwscanmode"] == (3,) and settings["iotopmode"] == (0,)
    assert await network.sync_clock("host")


@pytest.mark.emulator(model="EC200U")
async def test_radio_settings_are_refused_where_the_family_has_none(rig: Any) -> None:
    _, modem = rig
    with pytest.raises(CommandError):
        await Network(modem).radio()


# -- HTTP(S) and TLS -------------------------------------------------------------------------


FAMILIES = ["EC200U", "EC25", "BG96", "BG95"]


@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.emulator(model=m)) for m in FAMILIES])
async def test_https_post_and_get_with_the_ca_verified(rig: Any, servers: HttpServers, model: str) -> None:
    _, modem = rig
    await Tls(modem).setup(
        1, ca=servers.ca.cert_pem.bytes(), clock="host", server_name="iot-auth.cn-shanghai.aliyuncs.com"
    )
    http = Http(modem, HttpConfig(ssl_context=1))
    await http.configure()
    response = await http.post(REGISTER_URL, REGISTER_BODY)
    assert (response.status, response.length, response.body) == (200, 143, REGISTER_REPLY)
    method, path, headers, body = servers.requests.seen[-1]
    assert (method, path, body) == ("POST", "/auth/register/device", REGISTER_BODY)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    response = await http.get("https://web.test/chunked")
    assert response.body == b'{"chunked":"yes, in pieces"}'


@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.emulator(model=m)) for m in FAMILIES])
async def test_https_with_a_wrong_ca_is_a_clear_tls_error(rig: Any, servers: HttpServers, model: str) -> None:
    _, modem = rig
    await Tls(modem).setup(1, ca=servers.wrong_ca.cert_pem.bytes())
    http = Http(modem, HttpConfig(ssl_context=1))
    await http.configure()
    with pytest.raises(HttpError) as info:
        await http.post(REGISTER_URL, REGISTER_BODY)
    assert info.value.code == 701
    assert "certificate" in str(info.value) and "sign=" not in str(info.value)


@pytest.mark.emulator(model="EC25")
async def test_a_large_body_with_fake_end_markers_is_read_intact(rig: Any) -> None:
    _, modem = rig
    http = Http(modem)
    await http.configure()
    response = await http.get("http://web.test/big")
    assert response.length == len(BIG) > 64 * 1024
    assert response.body == BIG


@pytest.mark.emulator(model="EC200U")
async def test_http_error_at_once(rig: Any) -> None:
    _, modem = rig
    http = Http(modem)
    await http.configure()
    with pytest.raises(HttpError) as info:
        await http.get("http://unknown.invalid/x")
    assert info.value.code == 716  # +CME ERROR: 716 in answer to AT+QHTTPGET


@pytest.mark.emulator(model="EC25")
async def test_http_error_in_the_result_urc_and_http_statuses(rig: Any) -> None:
    _, modem = rig
    http = Http(modem)
    await http.configure()
    with pytest.raises(HttpError) as info:
        await http.get("http://unknown.invalid/x")
    assert info.value.code == 714  # OK, then +QHTTPGET: 714
    response = await http.get("http://web.test/missing")
    assert response.status == 404 and response.body == b'{"error":"not found"}'
    with pytest.raises(HttpError, match="HTTP status 404"):
        response.raise_for_status()
    await modem.execute(C.QHTTPSTOP())
    with pytest.raises(CommandError) as read:  # nothing to read after the session is released
        await modem.execute(C.QHTTPREAD())
    assert read.value.cme == 705


@pytest.mark.emulator(record=True)
async def test_certificate_upload_is_idempotent(rig: Any, servers: HttpServers, tmp_path: Path) -> None:
    _, modem = rig
    ca = servers.ca.cert_pem.bytes()
    first = await Tls(modem).setup(1, ca=ca)
    second = await Tls(modem).setup(1, ca=ca)  # as a new process would
    assert first.cacert == second.cacert == content_name(ca)
    recording = (tmp_path / "session.txt").read_text()
    assert recording.count("AT+QFUPL=") == 1


@pytest.mark.emulator(record=True)
async def test_a_private_key_never_reaches_logs_or_transcripts(
    rig: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, modem = rig
    ca = trustme.CA()
    pair = ca.issue_cert("device001")
    key = pair.private_key_pem.bytes()
    context = await Tls(modem).setup(2, ca=ca.cert_pem.bytes(), cert=pair.cert_chain_pems[0].bytes(), key=Secret(key))
    assert context.seclevel == 2 and context.clientkey is not None
    body = b"".join(key.splitlines()[1:-1])  # the base64 lines of the key
    recording = (tmp_path / "session.txt").read_text()
    for line in key.splitlines()[1:-1]:
        assert line.decode() not in recording
        assert line.decode() not in caplog.text
    assert "{{client_key:" in recording
    assert body


def test_checksum_rule() -> None:
    assert checksum(b"\x12\x34\x56") == 0x1234 ^ 0x5600
    assert checksum(b"") == 0


@pytest.mark.emulator
async def test_an_upload_the_module_got_wrong_is_deleted_and_reported(rig: Any) -> None:
    emulator, modem = rig
    tls = Tls(modem)
    emulator.corrupt_next_upload()  # a byte lost on the way
    with pytest.raises(UploadError, match="expected 16 with"):
        await tls.files.upload("bad.pem", b"some certificate")
    assert "bad.pem" not in await tls.files.list()
