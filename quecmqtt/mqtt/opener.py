"""`modem.session(host, ...)`: a `Session` with the set-up a user would otherwise write by
hand (a random client id, TLS on an SSL context verified against a CA, the port that goes
with TLS), as one async context manager:

    async with quecmqtt.connect("/dev/ttyUSB2") as modem:
        async with modem.session("broker.example", tls=True, ca=pem_bytes) as session:
            await session.publish("telemetry", b"21.5")
            async for message in session.messages:
                ...

The session is the one of `quecmqtt.mqtt.session`: it reconnects on its own, and its outbox
delivers what it accepted at least once. TLS is verified unless `insecure=True` (then a
warning is logged): with no `ca`, against the shipped public roots (those Aliyun's endpoints
chain to), so any other TLS broker needs its CA given.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quecmqtt.errors import InvalidArgument
from quecmqtt.secret import Secret

if TYPE_CHECKING:
    from quecmqtt.mqtt.config import MqttConfig
    from quecmqtt.mqtt.session import Session
    from quecmqtt.runtime import Modem
    from quecmqtt.services.tls import Tls

log = logging.getLogger("quecmqtt.mqtt")

CaSource = bytes | str | os.PathLike[str]


def random_client_id(prefix: str = "quecmqtt-") -> str:
    """A client id two devices will not share (a fixed default makes them kick each other off)."""
    return prefix + os.urandom(4).hex()


async def read_ca(ca: CaSource) -> bytes:
    """PEM bytes as given, or read from a path (in a thread: the event loop reads the port)."""
    if isinstance(ca, bytes):
        return ca
    path = Path(ca)
    try:
        return await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise InvalidArgument(f"cannot read the CA certificate {path}: {exc.strerror or exc}") from None


async def setup_tls(modem: Modem, ssl_context: int, host: str, *, ca: CaSource | None, insecure: bool) -> Tls:
    """Configure `ssl_context` for a verified connection to `host` (or, with `insecure`,
    an unverified one, logged as a warning). The returned Tls re-applies it after a reboot
    until it is closed."""
    from quecmqtt.aliyun.device import shipped_roots
    from quecmqtt.services.tls import Tls

    tls = Tls(modem)
    try:
        if insecure:
            log.warning("TLS to %s without checking its certificate (insecure=True)", host)
            await tls.setup(ssl_context, seclevel=0, server_name=host)
        else:
            pem = await read_ca(ca) if ca is not None else shipped_roots()
            await tls.setup(ssl_context, ca=pem, server_name=host)
    except BaseException:
        tls.close()
        raise
    return tls


class SessionOpener:
    """What `Modem.session()` returns: `async with` it to get a connected `Session` (within
    `timeout` seconds, if given: else TimeoutError); leaving stops the session (disconnects,
    closes the client) and forgets the TLS set-up."""

    def __init__(
        self,
        modem: Modem,
        host: str,
        port: int | None = None,
        *,
        client_id: str | None = None,
        username: str | None = None,
        password: str | Secret | None = None,
        tls: bool = False,
        ca: CaSource | None = None,
        insecure: bool = False,
        ssl_context: int = 2,
        keepalive: int = 120,
        config: MqttConfig | None = None,
        timeout: float | None = None,
        **session_options: Any,
    ) -> None:
        if not host:
            raise InvalidArgument("give the broker's host name")
        self.modem = modem
        self.host = host
        self.tls = tls or ca is not None or insecure
        self.port = port if port is not None else 8883 if self.tls else 1883
        if not 0 < self.port < 65536:
            raise InvalidArgument(f"a port is 1-65535, not {self.port}")
        self.client_id = client_id or random_client_id()
        self.username = username
        self.password = Secret(password, "password") if isinstance(password, str) else password
        self.ca = ca
        self.insecure = insecure
        self.ssl_context = ssl_context
        self.keepalive = keepalive
        self.config = config
        self.timeout = timeout  # for the first connection; None: as long as it takes
        self.session_options = session_options
        self.session: Session | None = None
        self._tls: Tls | None = None

    def __repr__(self) -> str:
        return f"<SessionOpener {self.client_id}@{self.host}:{self.port}{' tls' if self.tls else ''}>"

    async def __aenter__(self) -> Session:
        from dataclasses import replace

        from quecmqtt.mqtt.config import MqttConfig
        from quecmqtt.mqtt.session import Session

        config = self.config or MqttConfig(keepalive=self.keepalive)
        if self.tls:
            config = replace(config, ssl_context=self.ssl_context)
        # built first: a bad option fails here, before anything is set up on the module
        session = Session(
            self.modem, self.host, self.port, self.client_id, self.username, self.password,
            config=config, **self.session_options,
        )  # fmt: skip
        if self.tls:
            self._tls = await setup_tls(self.modem, self.ssl_context, self.host, ca=self.ca, insecure=self.insecure)
        try:
            # a failure to connect is retried (a certificate the module's clock rejects, a
            # broker still starting): `timeout` bounds the wait, TimeoutError, nothing left
            await session.start(timeout=self.timeout)
        except BaseException:
            try:
                await session.stop()
            finally:
                self._forget_tls()
            raise
        self.session = session
        return session

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self.session is not None:
                await self.session.stop()
        finally:
            self.session = None
            self._forget_tls()

    def _forget_tls(self) -> None:
        if self._tls is not None:
            self._tls.close()
            self._tls = None
