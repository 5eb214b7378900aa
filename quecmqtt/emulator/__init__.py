"""A Quectel module twin on a pseudo-terminal, backed by real TCP/TLS/MQTT/HTTP.

    async with Emulator(model="EC200U", hosts={"broker.example": "127.0.0.1:1883"}) as emu:
        ...  # open emu.path with any serial library
        await emu.reboot()

`EmulatorThread` runs the same thing in a background thread with its own event loop, for
code (tests, scripts) that talks to the port with blocking calls.

This package imports nothing from `quecmqtt.at` or the driver: the emulator reads command
lines its own way, so a parser bug cannot hide by being the same on both sides.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from quecmqtt.emulator.families import PROFILES
from quecmqtt.emulator.module import Module, Network
from quecmqtt.emulator.profiles import Profile, load_profile
from quecmqtt.wire.pty import PtyPort

T = TypeVar("T")
HostMap = Mapping[str, str | tuple[str, int | None]]


def _port(text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{what} {text!r} is not 1-65535")
    return int(text)


def parse_hosts(hosts: HostMap | None) -> Network:
    """``{"name": "127.0.0.1:1883"}`` maps a name (any port) to an address and port;
    ``{"name:8883": "127.0.0.1:18883"}`` maps one port of a name only; a value without a
    port keeps the port the module asked for. ValueError names an entry that is none of these."""
    network = Network()
    for name, target in (hosts or {}).items():
        if isinstance(target, str):
            address, colon, port_text = target.rpartition(":")
            if not colon:
                address = target
            port = _port(port_text, "the target's port") if colon else None
        else:
            address, port = target
        if not address:
            raise ValueError(f"the target {target!r} has no address")
        host, colon, original = name.rpartition(":")
        if not colon:
            host = name
        if not host or (colon and not original.isdigit()):
            raise ValueError(f"the name {name!r} is not NAME or NAME:PORT")
        if colon:
            number = _port(original, "the name's port")
            network.ports[(host, number)] = (address, port if port is not None else number)
        else:
            network.hosts[name] = (address, port)
    return network


class Emulator:
    def __init__(
        self,
        *,
        model: str = "EC200U",
        link: str | Path | None = None,
        hosts: HostMap | None = None,
        echo: bool = True,
        rtt: float = 0.0,
        pdp_active: bool = True,
        sim_pin: str | None = None,
        boot_time: float = 0.3,
        announce_boot: bool = False,
        sim_busy: float = 0.0,
        register_delay: float = 0.0,
        imei: str | None = None,
        profile: Profile | str | Path | None = None,
        host_port: str | None = None,
        urcport: str | None = None,
    ) -> None:
        """`profile`: a `Profile` or a profile file (`quecmqtt doctor` writes them) instead
        of a shipped `model`. `host_port`: which module port the pty stands for (default: the
        port the module sends its URCs to at start); URCs go to the module's `urcport`
        (AT+QURCCFG, saved in NV), so a host on another port sees none."""
        if profile is None:
            if model not in PROFILES:
                raise ValueError(f"unknown model {model!r}; known: {', '.join(PROFILES)}")
            chosen = PROFILES[model]
        else:
            chosen = profile if isinstance(profile, Profile) else load_profile(profile)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if link is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="quecmqtt-emu-")
            link = Path(self._tmp.name) / "ttyQUEC0"
        self.path = str(link)
        self.network = parse_hosts(hosts)
        self.network.rtt = rtt
        self.port = PtyPort(self.path, self._from_host)
        self.module = Module(
            chosen.with_imei(imei) if imei else chosen,
            self.network,
            self.port.write,
            echo=echo,
            pdp_active=pdp_active,
            sim_pin=sim_pin,
            boot_time=boot_time,
            sim_busy=sim_busy,
            register_delay=register_delay,
            host_port=host_port or urcport or chosen.urcport,
            urcport=urcport,
        )
        self.announce_boot = announce_boot

    def _from_host(self, data: bytes) -> None:
        self.module.feed(data)

    async def start(self) -> None:
        self.port.plug()
        if self.announce_boot:
            self.module.urc("RDY")
            for line in self.module.profile.boot_urcs:
                self.module.urc(line)

    async def stop(self) -> None:
        self.module.close()
        self.port.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- faults -------------------------------------------------------------------------

    async def reboot(self) -> None:
        """POWERED DOWN, silence for the boot time, RDY: volatile state is gone."""
        await self.module.reboot()

    def drop_link(self, client: int, code: int = 1) -> None:
        """Close a client's connection and report ``+QMTSTAT: <client>,<code>``."""
        self.module.drop_link(_client_index(client), code)

    def unplug(self) -> None:
        """The USB device disappears: the driver's port fails, the path dangles."""
        self.port.unplug()

    def remove_sim(self) -> None:
        """The SIM is pulled: +CPIN: NOT READY (and +QSIMSTAT: 1,0 if enabled); PDP contexts drop."""
        self.module.remove_sim()

    def insert_sim(self) -> None:
        """The SIM is back: +CPIN: READY (and +QSIMSTAT: 1,1 if enabled)."""
        self.module.insert_sim()

    def enter_psm(self) -> None:
        """PSM POWER DOWN, then silence until `wake`."""
        self.module.enter_psm()

    async def wake(self) -> None:
        """Out of PSM: RDY and the boot URCs, volatile state gone."""
        await self.module.wake()

    def fail_pings(self, client: int) -> None:
        """The broker stops answering PINGREQ on this client's link: its keep-alive fails."""
        self.module.fail_pings(_client_index(client))

    def replug(self) -> None:
        """A new pty behind the same path (the module kept running). Only after `unplug`:
        while plugged it raises RuntimeError ("... is plugged; unplug it first") and changes
        nothing. Bouncing a plugged port is two faults, `unplug` then `replug`, so a script
        that lost track of the port's state is told rather than silently given a new pty."""
        self.port.plug()

    def deactivate_pdp(self, cid: int = 1) -> None:
        """The network drops the PDP context: ``+QIURC: "pdpdeact",<cid>``."""
        self.module.deactivate_pdp(cid)

    def stall(self, stalled: bool = True) -> None:
        """Stop answering (input is lost, nothing is sent) until `stall(False)`."""
        self.module.stalled = stalled

    def fragment(self, max_chunk: int | None) -> None:
        """Send output in random pieces of 1 to `max_chunk` bytes (None: whole)."""
        if max_chunk is not None and max_chunk < 1:
            raise ValueError(f"a piece is at least 1 byte, not {max_chunk} (None: whole)")
        self.module.fragment = max_chunk

    def inject(self, data: bytes) -> None:
        """Garbage (or anything) straight onto the port."""
        self.port.write(data)

    def delay_urcs(self, seconds: float) -> None:
        """Hold every URC back by `seconds`."""
        self.module.urc_delay = seconds

    def set_rtt(self, seconds: float) -> None:
        """Add a network round-trip time to connections and every MQTT packet."""
        self.network.rtt = seconds

    def refuse_topic(self, topic: str) -> None:
        """The far side closes the connection when a client publishes to `topic`."""
        self.network.refused_topics.add(topic)

    def burst(self, client: int, topic: str, count: int, payload: bytes | None = None) -> None:
        """Deliver `count` messages to the client at once, as if from the network."""
        self.module.burst(_client_index(client), topic, count, payload)

    def corrupt_next_upload(self) -> None:
        """The next AT+QFUPL stores one byte less than it received (and says so)."""
        self.module.corrupt_upload = True

    def files(self) -> dict[str, bytes]:
        return dict(self.module.files)


def _client_index(client: int) -> int:
    if not 0 <= client <= 5:
        raise ValueError(f"MQTT client index {client} is not 0-5")
    return client


class EmulatorThread:
    """An `Emulator` in a background thread with its own loop; the fault methods are the
    same, called from any thread."""

    def __init__(self, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="quecmqtt-emulator", daemon=True)
        self._thread.start()

        async def make() -> Emulator:
            emulator = Emulator(**options)
            await emulator.start()
            return emulator

        self.emulator = self._call(make())
        self.path = self.emulator.path

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _run(self, method: str, *args: Any) -> Any:
        async def call() -> Any:
            result = getattr(self.emulator, method)(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return self._call(call())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not callable(getattr(Emulator, name, None)):
            raise AttributeError(name)
        return lambda *args: self._run(name, *args)

    def close(self) -> None:
        try:
            self._call(self.emulator.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    def __enter__(self) -> EmulatorThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Emulator", "EmulatorThread", "parse_hosts"]
