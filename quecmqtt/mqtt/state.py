"""The per-client state machine, as an explicit transition table (h2 style).

Inputs are either the caller's (open, connect, ...) or the module's (a result URC, a
link event). A caller input the state does not allow is misuse and raises
`LocalProtocolError`; a module input that does not fit the state is stale (a late or
duplicate report) and is ignored, with the state unchanged.
"""

from __future__ import annotations

from enum import Enum

from quecmqtt.errors import LocalProtocolError


class ClientState(Enum):
    CLOSED = "closed"  # no socket
    OPENING = "opening"  # AT+QMTOPEN sent, +QMTOPEN awaited
    OPENED = "opened"  # socket up, no MQTT session
    CONNECTING = "connecting"  # AT+QMTCONN sent, +QMTCONN awaited
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"  # AT+QMTDISC sent
    CLOSING = "closing"  # AT+QMTCLOSE sent


class Input(Enum):
    # the caller
    OPEN = "open"
    CONNECT = "connect"
    USE = "use"  # subscribe, unsubscribe, publish
    DISCONNECT = "disconnect"
    CLOSE = "close"
    # the module
    OPENED = "opened"  # +QMTOPEN: c,0
    OPEN_FAILED = "open-failed"  # +QMTOPEN: c,<not 0>, or ERROR
    CONNECTED = "connected"  # +QMTCONN: c,0,0
    CONNECT_FAILED = "connect-failed"  # refused, not sent, or ERROR
    DISCONNECTED = "disconnected"  # +QMTDISC: c,0
    CLOSED = "closed"  # +QMTCLOSE: c,0
    LINK_LOST = "link-lost"  # +QMTSTAT, +QMTPING
    RESET = "reset"  # module rebooted, port lost


CALLER = frozenset({Input.OPEN, Input.CONNECT, Input.USE, Input.DISCONNECT, Input.CLOSE})
S = ClientState
# Closing is allowed from every state with a socket (and from CLOSED: it is harmless, and
# the way to free an index an earlier process left open).
TRANSITIONS: dict[tuple[ClientState, Input], ClientState] = {
    (S.CLOSED, Input.OPEN): S.OPENING,
    (S.CLOSED, Input.CLOSE): S.CLOSING,
    (S.OPENING, Input.OPENED): S.OPENED,
    (S.OPENING, Input.OPEN_FAILED): S.CLOSED,
    (S.OPENED, Input.CONNECT): S.CONNECTING,
    (S.OPENED, Input.CLOSE): S.CLOSING,
    (S.CONNECTING, Input.CONNECTED): S.CONNECTED,
    (S.CONNECTING, Input.CONNECT_FAILED): S.OPENED,
    (S.CONNECTED, Input.USE): S.CONNECTED,
    (S.CONNECTED, Input.DISCONNECT): S.DISCONNECTING,
    (S.CONNECTED, Input.CLOSE): S.CLOSING,
    (S.DISCONNECTING, Input.DISCONNECTED): S.OPENED,
    (S.DISCONNECTING, Input.CLOSE): S.CLOSING,
    (S.CLOSING, Input.CLOSED): S.CLOSED,
}
for _state in (S.OPENED, S.CONNECTING, S.CONNECTED, S.DISCONNECTING):
    TRANSITIONS[(_state, Input.LINK_LOST)] = S.CLOSED
for _state in S:
    TRANSITIONS[(_state, Input.RESET)] = S.CLOSED


class StateMachine:
    def __init__(self) -> None:
        self.state = ClientState.CLOSED

    def process(self, event: Input) -> bool:
        """Apply `event`. True if the state changed (or a caller input was accepted), False
        for a stale module input. Raises LocalProtocolError for caller misuse."""
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            if event in CALLER:
                raise LocalProtocolError(f"cannot {event.value} an MQTT client that is {self.state.value}")
            return False
        self.state = target
        return True
