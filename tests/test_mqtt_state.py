"""The per-client state machine (every state x input pair), msg id allocation, and what the
client makes of module reports no broker here produces (a scripted module on a pty)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quecmqtt.errors import LocalProtocolError, MqttError
from quecmqtt.modem import Modem
from quecmqtt.mqtt.client import MqttClient, MsgIds
from quecmqtt.mqtt.state import CALLER, TRANSITIONS, ClientState, Input, StateMachine
from tests.peer import ScriptedPeer, settled
from tests.test_modem_pty import open_modem

# The documented table, written out again by hand so that a change to TRANSITIONS has to be
# made twice, deliberately. Missing pairs: caller inputs raise, module inputs are stale.
S, In = ClientState, Input
DOCUMENTED = {
    S.CLOSED: {In.OPEN: S.OPENING, In.CLOSE: S.CLOSING, In.RESET: S.CLOSED},
    S.OPENING: {In.OPENED: S.OPENED, In.OPEN_FAILED: S.CLOSED, In.RESET: S.CLOSED},
    S.OPENED: {In.CONNECT: S.CONNECTING, In.CLOSE: S.CLOSING, In.LINK_LOST: S.CLOSED, In.RESET: S.CLOSED},
    S.CONNECTING: {In.CONNECTED: S.CONNECTED, In.CONNECT_FAILED: S.OPENED, In.LINK_LOST: S.CLOSED, In.RESET: S.CLOSED},
    S.CONNECTED: {
        In.USE: S.CONNECTED,
        In.DISCONNECT: S.DISCONNECTING,
        In.CLOSE: S.CLOSING,
        In.LINK_LOST: S.CLOSED,
        In.RESET: S.CLOSED,
    },
    S.DISCONNECTING: {In.DISCONNECTED: S.OPENED, In.CLOSE: S.CLOSING, In.LINK_LOST: S.CLOSED, In.RESET: S.CLOSED},
    S.CLOSING: {In.CLOSED: S.CLOSED, In.RESET: S.CLOSED},
}


def test_the_table_is_the_documented_one() -> None:
    flat = {(state, event): target for state, row in DOCUMENTED.items() for event, target in row.items()}
    assert flat == TRANSITIONS


@given(st.sampled_from(list(ClientState)), st.sampled_from(list(Input)))
def test_every_state_and_input(state: ClientState, event: Input) -> None:
    machine = StateMachine()
    machine.state = state
    target = DOCUMENTED[state].get(event)
    if target is not None:
        assert machine.process(event) is True
        assert machine.state is target
    elif event in CALLER:
        with pytest.raises(LocalProtocolError, match=f"cannot {event.value} an MQTT client that is {state.value}"):
            machine.process(event)
        assert machine.state is state
    else:
        assert machine.process(event) is False  # stale module report: ignored
        assert machine.state is state


@given(st.lists(st.sampled_from(list(Input)), max_size=40))
def test_any_sequence_stays_in_the_table(events: list[Input]) -> None:
    machine = StateMachine()
    for event in events:
        before = machine.state
        try:
            changed = machine.process(event)
        except LocalProtocolError:
            assert event in CALLER and (before, event) not in TRANSITIONS
            continue
        assert machine.state is TRANSITIONS.get((before, event), before)
        assert changed is ((before, event) in TRANSITIONS)


def test_msg_ids_skip_those_in_flight_and_wrap() -> None:
    ids = MsgIds()
    first = [ids.take() for _ in range(3)]
    assert first == [1, 2, 3]
    ids.release(2)
    ids._next = 65535
    assert ids.take() == 65535
    assert ids.take() == 2  # 1 is still in flight, 2 was released
    ids.in_flight = set(range(1, 65536))
    with pytest.raises(MqttError, match="no free msg id"):
        ids.take()


async def _connected(modem: Modem, peer: ScriptedPeer) -> MqttClient:
    client = MqttClient(modem, 0, probe=False, publish_form="pubex")
    task = asyncio.create_task(client.open("broker.example", 1883, configure=False))
    await peer.serve_reconcile()  # the MQTT layer's first open closes what an earlier process left
    await peer.answer(b'AT+QMTOPEN=0,"broker.example",1883', b"\r\nOK\r\n\r\n+QMTOPEN: 0,0\r\n")
    await task
    task = asyncio.create_task(client.connect("dev"))
    await peer.answer(b'AT+QMTCONN=0,"dev"', b"\r\nOK\r\n\r\n+QMTCONN: 0,0,0\r\n")
    await task
    return client


async def test_granted_128_is_a_rejection(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        client = await _connected(modem, peer)
        task = asyncio.create_task(client.subscribe([("ok/x", 1), ("denied/y", 2)]))
        await peer.answer(b'AT+QMTSUB=0,1,"ok/x",1,"denied/y",2', b"\r\nOK\r\n\r\n+QMTSUB: 0,1,0,1,128\r\n")
        granted = await task
        assert [(g.topic, g.qos, g.rejected) for g in granted] == [("ok/x", 1, False), ("denied/y", 128, True)]
    finally:
        await modem.close()


async def test_stale_and_foreign_reports_are_ignored(peer: ScriptedPeer) -> None:
    modem = await open_modem(peer)
    try:
        client = await _connected(modem, peer)
        # another client's link loss, and a result nobody waits for
        peer.send(b"\r\n+QMTSTAT: 3,1\r\n\r\n+QMTPUBEX: 0,77,0\r\n")
        await settled(peer, modem)
        assert client.connected
        task = asyncio.create_task(client.publish("t", b"abc", qos=1))
        await peer.expect_command(b'AT+QMTPUBEX=0,1,1,0,"t",3')
        peer.send(b"\r\n> ")
        await peer.expect(b"abc")
        peer.send(b"\r\nOK\r\n\r\n+QMTPUBEX: 0,1,2\r\n")  # the module gave up after its retries
        with pytest.raises(MqttError) as caught:
            await task
        assert caught.value.result == 2
        assert client.connected
    finally:
        await modem.close()


async def test_a_msg_id_is_free_as_soon_as_publish_returns(peer: ScriptedPeer) -> None:
    """The result can come in the same read as the OK that ends the command: the id is free
    when publish() returns, not a turn of the loop later."""
    modem = await open_modem(peer)
    try:
        client = await _connected(modem, peer)

        async def module() -> None:
            await peer.expect_command(b'AT+QMTPUBEX=0,1,1,0,"t",3')
            peer.send(b"\r\n> ")
            await peer.expect(b"abc")
            peer.send(b"\r\nOK\r\n\r\n+QMTPUBEX: 0,1,0\r\n")  # one write: read together

        answering = asyncio.create_task(module())
        await client.publish("t", b"abc", qos=1)  # in this task: no turn of the loop after it
        assert client._ids.in_flight == set()
        await answering
    finally:
        await modem.close()
