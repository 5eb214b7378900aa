"""`AT+QMTCFG` for one client index: what is set before `AT+QMTOPEN`, and again after every
module reboot (the module keeps none of it [V: reference 1.2])."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from quecmqtt.at import commands as C
from quecmqtt.at.spec import Command
from quecmqtt.secret import Secret


@dataclass(frozen=True)
class Will:
    topic: str
    message: str
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True)
class AliAuth:
    """The module signs the login itself (Aliyun's triple)."""

    product_key: str
    device_name: str
    device_secret: Secret

    def __post_init__(self) -> None:
        # a secret given as a plain str would show in repr(), logs and tracebacks: wrap it
        if not isinstance(self.device_secret, Secret):
            object.__setattr__(self, "device_secret", Secret(self.device_secret, "device_secret"))


@dataclass(frozen=True)
class MqttConfig:
    """Every `AT+QMTCFG` key; None leaves the module's own value. `recv_length` on (the
    default) makes the module prefix each payload with its length, so payloads may hold
    anything; `recv_buffer` keeps messages in the module until read (back-pressure).
    `ssl_context` False means plain TCP and `will` False no will: both are set explicitly by
    default, since a module that rebooted into someone else's settings is no excuse."""

    version: int | None = 4  # 3 = MQTT 3.1, 4 = 3.1.1
    pdp_cid: int | None = None
    ssl_context: int | Literal[False] | None = False  # the AT+QSSLCFG context for TLS
    keepalive: int | None = 120
    clean_session: bool | None = True
    packet_timeout: int | None = 5
    retries: int | None = 3
    timeout_notice: bool | None = None
    will: Will | Literal[False] | None = False
    recv_buffer: bool | None = False
    recv_length: bool | None = True
    # False (the default) clears the module's "aliauth": a triple an Aliyun login left set would
    # otherwise sign this client's CONNECT, and send the device's login to any broker
    aliauth: AliAuth | Literal[False] | None = False
    ping_interval: int | None = None  # "qmtping" [!]
    # "edit/timeout" (EC200 family): the module gives a data entry up after this many seconds.
    # On by default where the module has it: a process that dies between a publish's prompt and
    # its payload then leaves an entry the next process can wait out (quecmqtt.runtime.marker).
    edit_timeout: int | None = 10

    @classmethod
    def only(cls, **keys: Any) -> MqttConfig:
        """A configuration that sets just `keys` and leaves every other key alone."""
        unset = {f.name: None for f in fields(cls) if f.name not in keys}
        return cls(**unset, **keys)

    def commands(self, client: int, supported: frozenset[str] | None = None) -> list[Command]:
        """The QMTCFG commands, limited to the keys the module lists (`supported`)."""

        def ok(key: str) -> bool:
            return supported is None or key in supported

        out: list[Command] = []
        if self.version is not None and ok("version"):
            out.append(C.QMTCFG["version"](client, self.version))
        if self.pdp_cid is not None and ok("pdpcid"):
            out.append(C.QMTCFG["pdpcid"](client, self.pdp_cid))
        if self.ssl_context is not None and ok("ssl"):
            if self.ssl_context is False:
                out.append(C.QMTCFG["ssl"](client, 0))
            else:
                out.append(C.QMTCFG["ssl"](client, 1, self.ssl_context))
        if self.keepalive is not None and ok("keepalive"):
            out.append(C.QMTCFG["keepalive"](client, self.keepalive))
        if self.clean_session is not None and ok("session"):
            out.append(C.QMTCFG["session"](client, int(self.clean_session)))
        if self.packet_timeout is not None and ok("timeout"):
            args = [self.packet_timeout]
            if self.retries is not None:
                args.append(self.retries)
                if self.timeout_notice is not None:
                    args.append(int(self.timeout_notice))
            out.append(C.QMTCFG["timeout"](client, *args))
        if self.will is not None and ok("will"):
            if self.will is False:
                out.append(C.QMTCFG["will"](client, 0))
            else:
                w = self.will
                out.append(C.QMTCFG["will"](client, 1, w.qos, int(w.retain), w.topic, w.message))
        if (self.recv_buffer is not None or self.recv_length is not None) and ok("recv/mode"):
            out.append(C.QMTCFG["recv/mode"](client, int(bool(self.recv_buffer)), int(bool(self.recv_length))))
        if self.ping_interval is not None and ok("qmtping"):
            out.append(C.QMTCFG["qmtping"](client, self.ping_interval))
        if self.edit_timeout is not None and ok("edit/timeout"):
            out.append(C.QMTCFG["edit/timeout"](client, 1, self.edit_timeout))
        if self.aliauth is False and ok("aliauth"):
            out.append(C.QMTCFG["aliauth"](client, "", "", ""))  # empty: cleared
        elif self.aliauth is not None and self.aliauth is not False and ok("aliauth"):
            a = self.aliauth
            out.append(C.QMTCFG["aliauth"](client, a.product_key, a.device_name, a.device_secret))
        return out

    @property
    def result_timeout(self) -> float:
        """How long the module may take for a SUB/UNS/PUB result: pkt_timeout x (retries + 1)
        plus a margin [V: reference 1.7, 1.8]."""
        return float((self.packet_timeout or 5) * ((self.retries if self.retries is not None else 3) + 1) + 5)
