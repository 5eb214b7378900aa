"""The emulated module: reads command lines, answers like a Quectel module, and runs real
TCP/TLS/MQTT/HTTP for the commands that use the network.

Behaviour is taken from reference/quectel-at.md. Where the reference marks a fact [R] or
[!] (a guess, or sources that disagree), the code says "[R]" next to the choice made, so a
test against the emulator is never mistaken for a test against a module.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from quecmqtt.emulator.atline import AtLine, parse_line
from quecmqtt.emulator.general import GeneralCommands
from quecmqtt.emulator.mqtt import CLOSED_BY_PEER, PING_FAILED, Incoming, MqttConnection, Will
from quecmqtt.emulator.profiles import PUB_CTRLZ, PUB_FIXED, PUB_INLINE, PUBEX_INLINE, PUBEX_LENGTH, Profile
from quecmqtt.wire.http import HttpFramingError, parse_response

log = logging.getLogger("quecmqtt.emulator")

CTRL_Z, ESC = 0x1A, 0x1B
CME_TEXT = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    14: "SIM busy",
    16: "incorrect password",
    50: "incorrect parameters",
    # FILE errors [FILE] ch.4 table 1 (404, 408, 412, 415, 422, 424 are not listed there)
    400: "invalid input value",
    401: "larger than the size of the file",
    402: "read zero byte",
    403: "drive full",
    405: "file not found",
    406: "invalid file name",
    407: "file already existed",
    409: "fail to write the file",
    410: "fail to open the file",
    411: "fail to read the file",
    413: "reach the max number of file allowed to be opened",
    414: "the file read-only",
    416: "invalid file descriptor",
    417: "fail to list the file",
    418: "fail to delete the file",
    419: "fail to get disk info",
    420: "no space",
    421: "time out",
    423: "file too large",
    425: "invalid parameter",
    426: "file already opened",
    701: "HTTP(S) unknown error",
    702: "HTTP(S) timeout",
    703: "HTTP(S) busy",
    705: "HTTP(S) no GET/POST/PUT requests",
    711: "HTTP(S) URL error",
    712: "HTTP(S) empty URL",
    714: "HTTP(S) DNS error",
    716: "HTTP(S) socket connect error",
    717: "HTTP(S) socket read error",
    730: "HTTP(S) invalid parameter",
}


class CmeError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class PlainError(Exception):
    """Answered with a bare ERROR (MQTT state and syntax errors are plain on Quectel)."""


@dataclass
class DataEntry:
    """The module waits for data: after `> ` (prompt) or CONNECT."""

    length: int | None  # None: ends with Ctrl-Z (ESC cancels)
    finish: Callable[[bytes], Awaitable[None]]
    echo: bool = False
    timeout: float = 90.0
    buffer: bytearray = field(default_factory=bytearray)
    keep: int | None = None  # Ctrl-Z entry: input past this many bytes is dropped (BG96: 1548)
    ack_every: int | None = None  # QFUPL ACK mode: an "A" after each this many bytes
    acked: int = 0


@dataclass
class Network:
    """What the network side looks like: host names to loopback, and the link's RTT."""

    hosts: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    ports: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    rtt: float = 0.0
    # topics the far side refuses by closing the connection, as Aliyun does when a device
    # publishes to a topic it has no permission for
    refused_topics: set[str] = field(default_factory=set)

    def resolve(self, host: str, port: int) -> tuple[str, int] | None:
        if (host, port) in self.ports:
            return self.ports[(host, port)]
        if host in self.hosts:
            address, mapped = self.hosts[host]
            return address, mapped if mapped is not None else port
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(host)
            return host, port
        return None


class MqttClient:
    def __init__(self, index: int) -> None:
        self.index = index
        self.reset()

    def reset(self) -> None:
        """Configuration is volatile: a reboot forgets it [V: S4 'not saved']."""
        self.cfg: dict[str, Any] = {
            "version": 4,  # [!] default 3.1.1 per the BG95 digest; one EC200 source says 3
            "pdpcid": 1,
            "ssl": (0, 0),
            "keepalive": 120,
            "session": 1,
            "timeout": (5, 3, 0),
            "will": None,
            "recv/mode": (0, 0),  # [!] most sources: no length field by default
            "aliauth": None,
        }
        self.conn: MqttConnection | None = None
        self.host = ""
        self.port = 0
        self.opening = False
        self.connected = False
        self.slots: list[Incoming | None] = [None] * 5
        self.in_flight: set[int] = set()  # QoS>0 msg ids published and not yet acknowledged


class Module:
    """One emulated module. `write` sends bytes to the host (the pty)."""

    def __init__(
        self,
        profile: Profile,
        network: Network,
        write: Callable[[bytes], None],
        *,
        echo: bool = True,
        pdp_active: bool = True,
        sim_pin: str | None = None,
        boot_time: float = 0.3,
        sim_busy: float = 0.0,
        register_delay: float = 0.0,
        host_port: str = "usbat",
        urcport: str | None = None,
    ) -> None:
        self.profile = profile
        # the port the host is on; URCs go to `urcport` (saved in NV), so a host on another
        # port sees none of them [ATM] 2.25
        self.host_port = host_port
        self.sim_busy = sim_busy  # seconds after boot during which the SIM answers "busy"
        self.register_delay = register_delay  # seconds from SIM ready to registered
        self.network = network
        self._write = write
        self.default_echo = echo
        self.sim_pin = sim_pin
        self.boot_time = boot_time
        self.files: dict[str, bytes] = {}  # flash: survives reboots
        self.urcport = urcport or profile.urcport  # saved to NV [ATM] 2.25
        self.sim_inserted = True
        self.general = GeneralCommands(self)
        self._pdp_at_boot = pdp_active
        self._line = bytearray()
        self._line_overflow = False
        self._entry: DataEntry | None = None
        self._entry_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.powered = True
        self.stalled = False
        self.corrupt_upload = False
        self.urc_delay = 0.0
        self.fragment: int | None = None
        self._fragmenting = False
        self._slow_out = bytearray()
        self._rng = random.Random(1)
        self.clients = [MqttClient(i) for i in range(6)]
        self._volatile_reset()

    # -- state ------------------------------------------------------------------------

    def _volatile_reset(self) -> None:
        self.general.reset()
        self.echo = self.default_echo
        self.cmee = 1  # [R] factory default
        self.cfun = 1
        self.booted_at = time.monotonic()
        self.sim_ready = self.sim_pin is None
        self.sim_ready_at = self.booted_at + self.sim_busy
        self.radio: dict[str, Any] = {
            "nwscanmode": 0,
            "iotopmode": 2,
            "band": ("0xf", "0x100002000000000f0e189f", "0x10004200000000090e189f"),
        }
        self.pdp: dict[int, dict[str, Any]] = {1: {"type": 1, "apn": "", "user": "", "password": "", "auth": 0}}
        self.active: dict[int, str] = {1: "10.64.0.2"} if self._pdp_at_boot else {}
        self.ssl: dict[int, dict[str, Any]] = {}
        self.http: dict[str, Any] = {"contextid": 1, "requestheader": 0, "responseheader": 0, "sslctxid": 1}
        self.http_url = b""
        self.http_response: tuple[int, bytes, bytes] | None = None  # status, headers, body
        for client in self.clients:
            if client.conn is not None:
                client.conn.close()
            client.reset()

    def ssl_ctx(self, index: int) -> dict[str, Any]:
        return self.ssl.setdefault(
            index,
            {"sslversion": 4, "ciphersuite": "0XFFFF", "seclevel": 0, "cacert": "", "clientcert": "", "clientkey": "",
             "ignorelocaltime": 1, "negotiatetime": 300, "sni": 0, "checkhost": 0, "session": 0},
        )  # fmt: skip

    # -- output -----------------------------------------------------------------------

    def out(self, data: bytes) -> None:
        if not self.powered or self.stalled or not data:
            return
        if self.fragment or self._fragmenting:
            # one writer, in order: two fragmented outputs must never interleave
            self._slow_out += data
            if not self._fragmenting:
                self._fragmenting = True
                self._spawn(self._write_fragments())
        else:
            self._write(data)

    async def _write_fragments(self) -> None:
        try:
            while self._slow_out:
                size = self._rng.randint(1, self.fragment or len(self._slow_out))
                piece = bytes(self._slow_out[:size])
                del self._slow_out[:size]
                self._write(piece)
                await asyncio.sleep(0.002)
        finally:
            self._fragmenting = False

    def respond(self, lines: Sequence[str | bytes] | None = None, final: str = "OK") -> None:
        body = b""
        if lines:
            body = b"\r\n" + b"\r\n".join(x.encode() if isinstance(x, str) else x for x in lines) + b"\r\n"
        self.out(body + b"\r\n" + final.encode() + b"\r\n")

    def error(self, code: int | None = None) -> None:
        if code is None or self.cmee == 0:
            self.respond(final="ERROR")
        elif self.cmee == 1:
            self.respond(final=f"+CME ERROR: {code}")
        else:
            self.respond(final=f"+CME ERROR: {CME_TEXT.get(code, str(code))}")

    def urc(self, text: str | bytes) -> None:
        if self.urcport not in (self.host_port, "all"):
            return  # printed on the other port
        data = b"\r\n" + (text.encode() if isinstance(text, str) else text) + b"\r\n"
        if self.urc_delay:
            self._spawn(self._later(self.urc_delay, lambda: self.out(data)))
        else:
            self.out(data)

    async def _later(self, delay: float, action: Callable[[], None]) -> None:
        await asyncio.sleep(delay)
        action()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- input ------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if not self.powered or self.stalled:
            return  # switched off, or hung: input is lost
        i = 0
        while i < len(data):
            entry = self._entry
            if entry is not None:
                i = self._feed_entry(entry, data, i)
                continue
            byte = data[i]
            i += 1
            if byte == 0x0D:
                line = bytes(self._line)
                self._line.clear()
                if self._line_overflow:
                    # over the line limit: the whole line is refused, never run in part
                    self._line_overflow = False
                    self.respond(final="ERROR")
                else:
                    self._command_line(line)
            elif byte in (0x0A, ESC):
                continue  # LF after CR, and ESC outside data entry, are ignored
            elif not self._line_overflow:
                self._line.append(byte)
                if len(self._line) > self.profile.line_max:
                    # [ATM] 2.15 table 3: "command line maximum length exceeded" is ERROR; what
                    # comes before the CR is dropped with the line
                    self._line.clear()
                    self._line_overflow = True

    def _feed_entry(self, entry: DataEntry, data: bytes, i: int) -> int:
        if entry.length is not None:
            want = entry.length - len(entry.buffer)
            if entry.ack_every:
                want = min(want, entry.acked + entry.ack_every - len(entry.buffer))
            take = data[i : i + want]
            entry.buffer += take
            if entry.echo:
                self.out(take)
            i += len(take)
            if len(entry.buffer) >= entry.length:
                self._finish_entry(bytes(entry.buffer))
            elif entry.ack_every and len(entry.buffer) == entry.acked + entry.ack_every:
                entry.acked = len(entry.buffer)
                self.out(b"A")  # [FILE] 2.4: ACK mode, one "A" per 1 KB received
            return i
        end = next((j for j in range(i, len(data)) if data[j] in (CTRL_Z, ESC)), -1)
        chunk = data[i:] if end < 0 else data[i:end]
        if entry.keep is not None:
            chunk = chunk[: max(0, entry.keep - len(entry.buffer))]  # [AN] 3.2.8: the rest is omitted
        entry.buffer += chunk
        if entry.echo:
            self.out(chunk)
        if end < 0:
            return len(data)
        if data[end] == ESC:
            self._cancel_entry()
            self.respond()  # [R] what a module prints after ESC is undocumented
        else:
            self._finish_entry(bytes(entry.buffer))
        return end + 1

    def _open_entry(self, entry: DataEntry, marker: bytes) -> None:
        self._entry = entry
        self.out(marker)
        loop = asyncio.get_running_loop()
        self._entry_timer = loop.call_later(entry.timeout, self._entry_timed_out)

    def _entry_timed_out(self) -> None:
        if self._entry is not None:
            self._cancel_entry()
            self.error()

    def _cancel_entry(self) -> None:
        self._entry = None
        if self._entry_timer is not None:
            self._entry_timer.cancel()

    def _finish_entry(self, data: bytes) -> None:
        entry = self._entry
        assert entry is not None
        self._cancel_entry()
        self._spawn(entry.finish(data))

    def _command_line(self, line: bytes) -> None:
        if self.echo:
            # the echo starts at "AT": what the host sent before it is not shown [R: the
            # case reported in issue 12; a module echoing it would be matched too]
            start = line.upper().find(b"AT")
            self.out((line[start:] if start > 0 else line) + b"\r")
        at = parse_line(line)
        if at is None:
            if line.strip():
                self.respond(final="ERROR")
            return
        handler = getattr(self, "at_" + _handler_name(at.name), None)
        try:
            if at.name in self.profile.lacks:
                raise PlainError  # the family has no such command
            if at.form == "test" and at.name in self.profile.test_answers:
                self.respond(list(self.profile.test_answers[at.name]))
                return
            if self.general.answer(at):
                return
            if handler is None:
                raise PlainError  # an unknown command: a bare ERROR, whatever CMEE says
            handler(at)
        except CmeError as exc:
            self.error(exc.code)
        except PlainError:
            self.respond(final="ERROR")
        except (ValueError, TypeError, IndexError):  # arguments of the wrong kind
            self.error(50)

    # -- basics -----------------------------------------------------------------------

    def at_(self, at: AtLine) -> None:
        self.respond()

    def at_E(self, at: AtLine) -> None:
        self.echo = at.arg(0, 0) == 1
        self.respond()

    def at_V(self, at: AtLine) -> None:
        self.respond()

    def at_CMEE(self, at: AtLine) -> None:
        if at.form == "read":
            self.respond([f"+CMEE: {self.cmee}"])
            return
        value = at.arg(0)
        if value not in (0, 1, 2):
            raise CmeError(50)
        self.cmee = int(value)
        self.respond()

    def _sim_busy(self) -> bool:
        """Right after boot the SIM is still being read: +CME ERROR: 14 [V: reference 4.4]."""
        return time.monotonic() < self.booted_at + self.sim_busy

    def at_CPIN(self, at: AtLine) -> None:
        if not self.sim_inserted:
            raise CmeError(10)
        if self._sim_busy():
            raise CmeError(14)
        if at.form == "read":
            self.respond([f"+CPIN: {'READY' if self.sim_ready else 'SIM PIN'}"])
            return
        if at.arg(0) != self.sim_pin:
            raise CmeError(16)
        self.sim_ready = True
        self.sim_ready_at = time.monotonic()
        self.respond()
        self.urc("+CPIN: READY")

    def _need_sim(self) -> None:
        if not self.sim_inserted:
            raise CmeError(10)
        if self._sim_busy():
            raise CmeError(14)
        if not self.sim_ready:
            raise CmeError(11)

    def registered(self) -> bool:
        return self.sim_ready and not self._sim_busy() and time.monotonic() >= self.sim_ready_at + self.register_delay

    def at_CSQ(self, at: AtLine) -> None:
        self.respond(["+CSQ: 24,99"])

    def at_QCSQ(self, at: AtLine) -> None:
        self.respond(['+QCSQ: "LTE",-65,-92,140,-10'])

    def _reg(self, name: str) -> None:
        # 2 = searching while the SIM is ready but the network not yet found
        stat = 1 if self.registered() else 2 if self.sim_ready else 0
        self.respond([f"+{name}: 0,{stat}"])

    def at_CREG(self, at: AtLine) -> None:
        self._reg("CREG") if at.form == "read" else self.respond()

    def at_CGREG(self, at: AtLine) -> None:
        self._reg("CGREG") if at.form == "read" else self.respond()

    def at_CEREG(self, at: AtLine) -> None:
        self._reg("CEREG") if at.form == "read" else self.respond()

    def at_COPS(self, at: AtLine) -> None:
        if at.form == "read":
            self.respond(['+COPS: 0,0,"CHINA MOBILE",7'] if self.registered() else ["+COPS: 0"])
        else:
            self.respond()

    def at_QCFG(self, at: AtLine) -> None:
        """Radio settings of the BG9x family (nwscanmode, iotopmode, band)."""
        key = str(at.arg(0))
        if not self.profile.radio_settings or key not in self.radio:
            raise PlainError
        if len(at.args) == 1:
            value = self.radio[key]
            shown = ",".join(value) if isinstance(value, tuple) else str(value)
            self.respond([f'+QCFG: "{key}",{shown}'])
            return
        self.radio[key] = tuple(str(v) for v in at.args[1:]) if key == "band" else at.args[1]
        self.respond()

    def at_QNWINFO(self, at: AtLine) -> None:
        self.respond(['+QNWINFO: "FDD LTE","46000","LTE BAND 3",1650'])

    def at_CCLK(self, at: AtLine) -> None:
        if at.form == "read":
            self.respond([time.strftime('+CCLK: "%y/%m/%d,%H:%M:%S+00"', time.gmtime())])
        else:
            self.respond()

    def at_QLTS(self, at: AtLine) -> None:
        self.respond([time.strftime('+QLTS: "%Y/%m/%d,%H:%M:%S+00,0"', time.gmtime())])

    def at_CTZU(self, at: AtLine) -> None:
        self.respond()

    def at_CFUN(self, at: AtLine) -> None:
        if at.form == "read":
            self.respond([f"+CFUN: {self.cfun}"])
            return
        fun, rst = at.arg(0), at.arg(1, 0)
        if fun not in (0, 1, 4):
            raise CmeError(50)
        self.respond()
        if rst == 1:  # OK, POWERED DOWN, silence, RDY [V: observed on a BG96]
            self._spawn(self.reboot())
        else:
            self.cfun = int(fun)

    def at_QPOWD(self, at: AtLine) -> None:
        self.respond()
        self.urc("POWERED DOWN")
        self._power_off()

    def at_QURCCFG(self, at: AtLine) -> None:
        if at.arg(0) != "urcport":
            raise CmeError(50)
        if len(at.args) == 1:
            self.respond([f'+QURCCFG: "urcport","{self.urcport}"'])
        else:
            self.urcport = str(at.arg(1))
            self.respond()

    # -- PDP ----------------------------------------------------------------------------

    def at_QICSGP(self, at: AtLine) -> None:
        cid = int(at.arg(0))  # type: ignore[arg-type]
        if not 1 <= cid <= self.profile.max_cid:
            raise CmeError(50)
        if len(at.args) == 1:
            ctx = self.pdp.get(cid, {"type": 1, "apn": "", "user": "", "password": "", "auth": 0})
            self.respond([f'+QICSGP: {ctx["type"]},"{ctx["apn"]}","{ctx["user"]}","{ctx["password"]}",{ctx["auth"]}'])
            return
        self.pdp[cid] = {
            "type": at.arg(1),
            "apn": at.arg(2, ""),
            "user": at.arg(3, ""),
            "password": at.arg(4, ""),
            "auth": at.arg(5, 0),
        }
        self.respond()

    def at_QIACT(self, at: AtLine) -> None:
        if at.form == "read":
            self.respond([f'+QIACT: {cid},1,1,"{ip}"' for cid, ip in sorted(self.active.items())])
            return
        self._need_sim()
        cid = int(at.arg(0))  # type: ignore[arg-type]
        if cid in self.active:
            raise PlainError  # already active: ERROR [V: observed on a BG770A]
        if not self.registered():
            raise PlainError  # [R] no network yet: activation fails
        self.active[cid] = f"10.64.{cid}.2"
        self.respond()

    def at_QIDEACT(self, at: AtLine) -> None:
        cid = int(at.arg(0))  # type: ignore[arg-type]
        self.active.pop(cid, None)
        self.respond()
        self._drop_clients_on(cid, CLOSED_BY_PEER)

    def at_CGACT(self, at: AtLine) -> None:
        if at.form == "read":
            self.respond([f"+CGACT: {cid},{1 if cid in self.active else 0}" for cid in sorted(self.pdp)])
        else:
            self.respond()

    def at_QIGETERROR(self, at: AtLine) -> None:
        self.respond(["+QIGETERROR: 0,operation success"])

    def _drop_clients_on(self, cid: int, code: int) -> None:
        for client in self.clients:
            if client.conn is not None and client.cfg["pdpcid"] == cid:
                client.conn.close()
                self._client_gone(client)
                self.urc(f"+QMTSTAT: {client.index},{code}")

    # -- files --------------------------------------------------------------------------

    @staticmethod
    def _file(name: object) -> str:
        text = str(name)
        return text[4:] if text.upper().startswith("UFS:") else text

    def at_QFUPL(self, at: AtLine) -> None:
        name = self._file(at.arg(0))
        if name in self.files:
            raise CmeError(407)
        size = int(at.arg(1, 10240))  # type: ignore[arg-type]
        timeout = float(at.arg(2, 5))  # type: ignore[arg-type]
        ackmode = at.arg(3, 0)
        if ackmode not in (0, 1) or size < 1 or len(name) > 80:
            raise CmeError(400 if ackmode not in (0, 1) else 406)

        async def finish(data: bytes) -> None:
            if self.corrupt_upload:  # fault: a byte lost between the UART and the flash
                self.corrupt_upload = False
                data = data[:-1]
            self.files[name] = data
            self.respond([f"+QFUPL: {len(data)},{file_checksum(data):x}"])

        entry = DataEntry(size, finish, timeout=timeout, ack_every=1024 if ackmode == 1 else None)
        self._open_entry(entry, b"\r\nCONNECT\r\n")
        # a partial upload is kept when the time runs out [V: S3]
        assert self._entry_timer is not None
        self._entry_timer.cancel()
        self._entry_timer = asyncio.get_running_loop().call_later(timeout, self._upload_timed_out, name)

    def _upload_timed_out(self, name: str) -> None:
        entry = self._entry
        if entry is None:
            return
        self._cancel_entry()
        data = bytes(entry.buffer)
        self.files[name] = data
        self.out(f"\r\n+QFUPL: {len(data)},{file_checksum(data):x}\r\n".encode())
        self.error(421)

    def at_QFLST(self, at: AtLine) -> None:
        pattern = self._file(at.arg(0, "*"))
        prefix = "UFS:" if self.profile.ufs_prefix else ""
        names = [
            n
            for n in sorted(self.files)
            if pattern in ("*", n) or (pattern.endswith("*") and n.startswith(pattern[:-1]))
        ]
        self.respond([f'+QFLST: "{prefix}{n}",{len(self.files[n])}' for n in names])

    def at_QFDEL(self, at: AtLine) -> None:
        name = self._file(at.arg(0))
        if name == "*":
            self.files.clear()
        elif self.files.pop(name, None) is None:
            raise CmeError(405)
        self.respond()

    def at_QFLDS(self, at: AtLine) -> None:
        used = sum(len(v) for v in self.files.values())
        self.respond([f"+QFLDS: {286720 - used},286720"])

    # -- SSL ----------------------------------------------------------------------------

    def at_QSSLCFG(self, at: AtLine) -> None:
        key = str(at.arg(0))
        keys = self.profile.keyed("+QSSLCFG")
        if key not in keys:
            raise PlainError  # a key the family's AT+QSSLCFG=? does not list ([SSL]: no sni on BG96)
        ctx = self.ssl_ctx(int(at.arg(1)))  # type: ignore[arg-type]
        if len(at.args) == 2:
            value = ctx[key]
            shown = f'"{value}"' if isinstance(value, str) and key != "ciphersuite" else str(value)
            self.respond([f'+QSSLCFG: "{key}",{at.arg(1)},{shown}'])
            return
        value = at.arg(2)
        if key == "ciphersuite" and at.quoted[2]:
            raise PlainError  # quoted "0XFFFF" is refused [V: observed on a BG96]
        if key == "sni" and at.quoted[2] != keys[key].endswith('"'):
            raise PlainError  # a flag where the module takes a name, or the reverse
        ctx[key] = value
        self.respond()

    def tls_context(self, index: int) -> ssl.SSLContext:
        """An SSL context from QSSLCFG: seclevel 0 verifies nothing, 1 the server against the
        uploaded CA, 2 also presents the uploaded client certificate and key."""
        cfg = self.ssl_ctx(index)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if cfg["sslversion"] == 3:
            context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if int(cfg["seclevel"]) >= 1:
            ca = self.files.get(self._file(cfg["cacert"]))
            if ca is None:
                raise ssl.SSLError("no CA certificate uploaded")
            context.load_verify_locations(cadata=ca.decode("ascii", errors="replace"))
            context.verify_mode = ssl.CERT_REQUIRED
            context.check_hostname = bool(cfg.get("sni")) or bool(cfg.get("checkhost"))  # [R]
        if int(cfg["seclevel"]) == 2:
            _load_client_pair(
                context, self.files.get(self._file(cfg["clientcert"])), self.files.get(self._file(cfg["clientkey"]))
            )
        return context

    async def open_stream(
        self, host: str, port: int, ssl_index: int | None, cid: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP (or TLS) connection as the module would make it. Raises LookupError for a
        name the hosts table does not know (DNS), PermissionError for an inactive PDP
        context, OSError/ssl.SSLError for a refused or failed connection."""
        if cid not in self.active:
            raise PermissionError(f"PDP context {cid} is not active")
        target = self.network.resolve(host, port)
        if target is None:
            raise LookupError(host)
        if self.network.rtt:
            await asyncio.sleep(self.network.rtt)  # SYN, SYN-ACK
        context = self.tls_context(ssl_index) if ssl_index is not None else None
        server_hostname = None
        if context is not None:
            cfg = self.ssl_ctx(ssl_index or 0)
            sni = cfg.get("sni")
            # the name form sends the name it was given; the flag form the host's [R: 0 sends none]
            named = isinstance(sni, str) and bool(sni)
            server_hostname = str(sni) if named else host if sni or cfg.get("checkhost") else None
        timeout = float(self.ssl_ctx(ssl_index)["negotiatetime"]) if ssl_index is not None else 30.0
        async with asyncio.timeout(timeout):
            return await asyncio.open_connection(
                target[0], target[1], ssl=context, server_hostname=server_hostname if context else None
            )

    # -- MQTT ---------------------------------------------------------------------------

    def _client(self, at: AtLine) -> MqttClient:
        index = at.arg(0)
        if not isinstance(index, int) or not 0 <= index <= 5:
            raise PlainError
        return self.clients[index]

    def at_QMTCFG(self, at: AtLine) -> None:
        keys = self.profile.keyed("+QMTCFG")
        key = str(at.arg(0))
        if key.lower() not in {k.lower() for k in keys}:
            raise PlainError  # a key the family's AT+QMTCFG=? does not list
        key = next(k for k in keys if k.lower() == key.lower())
        index = at.arg(1)
        if not isinstance(index, int) or not 0 <= index <= 5:
            raise PlainError
        client = self.clients[index]
        values = at.args[2:]
        if not values:
            self.respond(self._qmtcfg_read(client, key))
            return
        if key == "timeout" and values[0] > self._max_pkt_timeout():  # type: ignore[operator]
            raise PlainError
        if key in ("ssl", "timeout", "recv/mode", "dataformat", "edit/timeout"):
            client.cfg[key] = tuple(values)
        elif key == "will":
            client.cfg[key] = tuple(values) if values[0] == 1 else None
        elif key == "aliauth":
            if len(values) != 3:
                raise PlainError
            # an empty triple clears it, as the read-back of an unset one shows it empty
            # (seed 4.2.1 '+QMTCFG: "aliauth",,,') [R: how a module clears it is undocumented]
            triple = tuple(str(v) for v in values)
            client.cfg[key] = triple if any(triple) else None
        else:
            client.cfg[key] = values[0] if len(values) == 1 else tuple(values)
        self.respond()

    def _max_pkt_timeout(self) -> int:
        ranges = self.profile.keyed("+QMTCFG")["timeout"]
        return int(ranges.split("),(")[1].split("-")[1])

    def _qmtcfg_read(self, client: MqttClient, key: str) -> list[str]:
        value = client.cfg.get(key)
        if key == "aliauth":
            # read-back without the client index [V: seed 4.2.1 '+QMTCFG: "aliauth",,,']
            return ['+QMTCFG: "aliauth",' + ",".join(f'"{v}"' for v in value) if value else '+QMTCFG: "aliauth",,,']
        if key == "will":
            return ['+QMTCFG: "will",0' if value is None else '+QMTCFG: "will",' + ",".join(map(str, value))]
        if value is None:
            return []
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        return [f'+QMTCFG: "{key}",{shown}']

    def at_QMTOPEN(self, at: AtLine) -> None:
        if at.form == "read":
            if self.profile.silent_qmtopen_read:
                return  # no answer at all [LooUQ ltemc-mqtt.c:457: BGx over UART]
            self.respond([f'+QMTOPEN: {c.index},"{c.host}",{c.port}' for c in self.clients if c.conn or c.opening])
            return
        if at.form == "test":
            self.respond(['+QMTOPEN: (0-5),"hostname",(1-65535)'])
            return
        client = self._client(at)
        host, port = str(at.arg(1)), at.arg(2)
        if not isinstance(port, int) or not 1 <= port <= 65535 or not host:
            raise PlainError
        self.respond()
        if client.conn is not None or client.opening:
            self.urc(f"+QMTOPEN: {client.index},2")  # identifier occupied
            return
        client.opening = True
        client.host, client.port = host, port
        self._spawn(self._open(client))

    async def _open(self, client: MqttClient) -> None:
        enable, ctx = padded(client.cfg["ssl"], [0, 0])[:2]
        try:
            reader, writer = await self.open_stream(
                client.host, client.port, ctx if enable else None, client.cfg["pdpcid"]
            )
        except PermissionError:
            result = 3
        except LookupError:
            result = 4
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            log.debug("QMTOPEN %d failed: %r", client.index, exc)
            result = -1  # TLS failures and refused connections both show -1 [V: S10 logs]
        else:
            conn = MqttConnection(
                reader,
                writer,
                on_message=lambda message: self._deliver(client, message),
                on_closed=lambda code: self._lost(client, code),
                rtt=lambda: self.network.rtt,
            )
            conn.start()
            client.conn = conn
            result = 0
        client.opening = False
        if result != 0:
            client.host, client.port = "", 0
        self.urc(f"+QMTOPEN: {client.index},{result}")

    def _lost(self, client: MqttClient, code: int) -> None:
        by_us = client.conn is not None and client.conn.closing_by_us
        self._client_gone(client)
        if code == PING_FAILED and not by_us and self.profile.ping_urc:
            # the EC200 family reports a keep-alive failure as +QMTPING and closes the link;
            # BG96 [AN] table 3 reports it as +QMTSTAT: <c>,2
            self.urc(f"+QMTPING: {client.index},1")
            return
        # after our own DISCONNECT the server closes: +QMTSTAT: <c>,5 [R: "may follow"]
        self.urc(f"+QMTSTAT: {client.index},{5 if by_us else code}")

    def _client_gone(self, client: MqttClient) -> None:
        client.conn = None
        client.connected = False
        client.host, client.port = "", 0

    def _timeouts(self, client: MqttClient) -> tuple[float, int]:
        pkt, retries = padded(client.cfg["timeout"], [5, 3])[:2]
        return float(pkt), int(retries)

    def at_QMTCLOSE(self, at: AtLine) -> None:
        client = self._client(at)
        self.respond()
        if client.conn is not None:
            client.conn.close()
        ok = client.conn is not None
        self._client_gone(client)
        self.urc(f"+QMTCLOSE: {client.index},{0 if ok else -1}")

    def at_QMTCONN(self, at: AtLine) -> None:
        if at.form == "read":
            # open but not connected is state 1, "initializing" [AN] 3.2.4
            state = self.profile.qmtconn_open_state
            self.respond([f"+QMTCONN: {c.index},{3 if c.connected else state}" for c in self.clients if c.conn])
            return
        client = self._client(at)
        if client.conn is None or client.connected:
            raise PlainError  # no socket (or already connected): ERROR [V: EG800AK note]
        client_id = str(at.arg(1))
        username = at.arg(2)
        password = at.arg(3)
        if username is None and client.cfg["aliauth"] is not None:
            client_id, username, password = aliauth_sign(
                client_id, *client.cfg["aliauth"], tls=bool(client.cfg["ssl"][0])
            )
        self.respond()
        self._spawn(self._connect(client, client_id, username, password))

    async def _connect(self, client: MqttClient, client_id: str, username: Any, password: Any) -> None:
        conn = client.conn
        assert conn is not None
        pkt, retries = self._timeouts(client)
        will = None
        if client.cfg["will"] is not None:
            _, qos, retain, topic, message = padded(client.cfg["will"], [0, 0, 0, "", ""])[:5]
            will = Will(str(topic).encode(), str(message).encode(), int(qos), bool(retain))
        try:
            code = await conn.connect(
                client_id.encode(),
                str(username).encode() if username is not None else None,
                str(password).encode() if password is not None else None,
                keepalive=int(client.cfg["keepalive"]),
                clean=bool(client.cfg["session"]),
                will=will,
                version=int(client.cfg["version"]),
                timeout=pkt * (retries + 1),
            )
        except (TimeoutError, asyncio.CancelledError):
            if client.conn is conn:
                self.urc(f"+QMTCONN: {client.index},2")
            return
        client.connected = code == 0
        self.urc(f"+QMTCONN: {client.index},0,{code}")

    def at_QMTDISC(self, at: AtLine) -> None:
        client = self._client(at)
        self.respond()
        conn = client.conn
        if conn is None or not client.connected:
            self.urc(f"+QMTDISC: {client.index},-1")
            return
        self._spawn(self._disconnect(client, conn))

    async def _disconnect(self, client: MqttClient, conn: MqttConnection) -> None:
        await conn.disconnect()
        client.connected = False
        self.urc(f"+QMTDISC: {client.index},0")

    def at_QMTSUB(self, at: AtLine) -> None:
        client = self._client(at)
        msg_id = at.arg(1)
        pairs = at.args[2:]
        if not client.connected or not isinstance(msg_id, int) or not pairs or len(pairs) % 2:
            raise PlainError
        topics = [(str(pairs[i]).encode(), int(pairs[i + 1])) for i in range(0, len(pairs), 2)]
        self.respond()
        self._spawn(self._subscribe(client, msg_id, topics))

    async def _subscribe(self, client: MqttClient, msg_id: int, topics: list[tuple[bytes, int]]) -> None:
        assert client.conn is not None
        pkt, retries = self._timeouts(client)
        try:
            granted = await client.conn.subscribe(msg_id, topics, timeout=pkt, retries=retries)
        except (TimeoutError, asyncio.CancelledError):
            self.urc(f"+QMTSUB: {client.index},{msg_id},2")
            return
        self.urc(f"+QMTSUB: {client.index},{msg_id},0," + ",".join(str(g) for g in granted))

    def at_QMTUNS(self, at: AtLine) -> None:
        client = self._client(at)
        msg_id = at.arg(1)
        if not client.connected or not isinstance(msg_id, int) or len(at.args) < 3:
            raise PlainError
        topics = [str(t).encode() for t in at.args[2:]]
        self.respond()
        self._spawn(self._unsubscribe(client, msg_id, topics))

    async def _unsubscribe(self, client: MqttClient, msg_id: int, topics: list[bytes]) -> None:
        assert client.conn is not None
        pkt, retries = self._timeouts(client)
        result = await client.conn.unsubscribe(msg_id, topics, timeout=pkt, retries=retries)
        self.urc(f"+QMTUNS: {client.index},{msg_id},{result}")

    def at_QMTPUBEX(self, at: AtLine) -> None:
        forms = self.profile.publish_forms()
        self._publish(at, "+QMTPUBEX", forms.get(PUBEX_LENGTH), forms.get(PUBEX_INLINE), None)

    def at_QMTPUB(self, at: AtLine) -> None:
        forms = self.profile.publish_forms()
        self._publish(at, "+QMTPUB", forms.get(PUB_FIXED), forms.get(PUB_INLINE), forms.get(PUB_CTRLZ))

    def _publish(
        self, at: AtLine, urc: str, length_max: int | None, inline_max: int | None, ctrlz_max: int | None
    ) -> None:
        """The forms the profile's `=?` answer gives: a length (prompt, then that many
        bytes), an inline message, or (QMTPUB) data ended by Ctrl-Z."""
        client = self._client(at)
        msg_id, qos, retain, topic = at.arg(1), at.arg(2), at.arg(3), at.arg(4)
        if not (isinstance(msg_id, int) and qos in (0, 1, 2) and retain in (0, 1) and isinstance(topic, str)):
            raise PlainError
        if qos and not 1 <= msg_id <= 65535:
            raise PlainError
        if not client.connected:
            raise PlainError
        limit = self.profile.inflight_max
        if qos and limit is not None and len(client.in_flight) >= limit:
            raise PlainError  # [AN] 3.2.8 note 1: at most 5 in flight [R: refused with ERROR]

        async def finish(data: bytes) -> None:
            self.respond()
            await self._send_publish(client, urc, msg_id, int(qos), bool(retain), topic.encode(), data)

        fifth = at.arg(5)
        entry_time = self._entry_time(client)
        if len(at.args) == 5 and ctrlz_max is not None:
            entry = DataEntry(None, finish, echo=self.echo, timeout=entry_time, keep=self.profile.ctrlz_max)
            self._open_entry(entry, b"\r\n> ")
        elif len(at.args) == 6 and isinstance(fifth, int) and not at.quoted[5] and length_max is not None:
            if not 1 <= fifth <= length_max:
                raise PlainError
            self._open_entry(DataEntry(fifth, finish, echo=self.echo, timeout=entry_time), b"\r\n> ")
        elif len(at.args) == 6 and at.quoted[5] and inline_max is not None:
            message = str(fifth).encode()
            if not 1 <= len(message) <= inline_max:
                raise PlainError
            self.respond()
            self._spawn(self._send_publish(client, urc, msg_id, int(qos), bool(retain), topic.encode(), message))
        else:
            raise PlainError

    @staticmethod
    def _entry_time(client: MqttClient) -> float:
        """How long the module waits for a publish's data: `edit/timeout` with mode 1 ends the
        entry after its time (S3: whether entry exits on time-out, and after how many seconds);
        otherwise 90 s [R: no source gives the default]."""
        edit = client.cfg.get("edit/timeout")
        if isinstance(edit, tuple) and len(edit) >= 2 and edit[0] == 1 and isinstance(edit[1], int):
            return float(edit[1])
        return 90.0

    async def _send_publish(
        self, client: MqttClient, urc: str, msg_id: int, qos: int, retain: bool, topic: bytes, payload: bytes
    ) -> None:
        conn = client.conn
        if conn is None:
            self.urc(f"{urc}: {client.index},{msg_id},2")
            return
        if topic.decode("utf-8", errors="replace") in self.network.refused_topics:
            if self.network.rtt:
                await asyncio.sleep(self.network.rtt)
            if client.conn is conn:
                self.drop_link(client.index, CLOSED_BY_PEER)
            return
        pkt, retries = self._timeouts(client)
        if qos:
            client.in_flight.add(msg_id)
        try:
            result, resent = await conn.publish(
                topic, payload, qos=qos, retain=retain, packet_id=msg_id, timeout=pkt, retries=retries
            )
        except asyncio.CancelledError:
            result, resent = 2, 0
        finally:
            client.in_flight.discard(msg_id)
        if result == 0 and resent and padded(client.cfg["timeout"], [5, 3, 0])[2] == 1:
            self.urc(f"{urc}: {client.index},{msg_id},1,{resent}")  # [R] notice of retransmission
        self.urc(f"{urc}: {client.index},{msg_id},{result}")

    def _deliver(self, client: MqttClient, message: Incoming) -> None:
        mode, with_length = padded(client.cfg["recv/mode"], [0, 0])[:2]
        topic = message.topic.decode("utf-8", errors="replace")
        msg_id = message.packet_id
        if mode == 1:  # buffer mode: the module keeps it until read [V: S3, S4]
            free = next((i for i, slot in enumerate(client.slots) if slot is None), None)
            if free is None:
                log.warning("client %d: receive buffer full, message dropped [R]", client.index)
                return
            client.slots[free] = message
            self.urc(f"+QMTRECV: {client.index},{free}")
            return
        self.urc(self._recv_line(client.index, msg_id, topic, message.payload, bool(with_length)))

    def _recv_line(self, index: int, msg_id: int, topic: str, payload: bytes, with_length: bool) -> bytes:
        head = f'+QMTRECV: {index},{msg_id},"{topic}",'.encode()
        if with_length:
            head += f"{len(payload)},".encode()
        if not self.profile.recv_quoted:
            return head + payload  # [AN] 6.1/6.2: the payload as it is, to the end of the line
        return head + b'"' + payload + b'"'

    def at_QMTRECV(self, at: AtLine) -> None:
        if at.form == "read":
            self.respond(
                [f"+QMTRECV: {c.index}," + ",".join("1" if s else "0" for s in c.slots) for c in self.clients if c.conn]
            )
            return
        client = self._client(at)
        wanted = at.arg(1)
        _, with_length = padded(client.cfg["recv/mode"], [0, 0])[:2]
        lines: list[str | bytes] = []
        for i, slot in enumerate(client.slots):
            if slot is None or (wanted is not None and wanted != i):
                continue
            topic = slot.topic.decode("utf-8", errors="replace")
            lines.append(self._recv_line(client.index, slot.packet_id, topic, slot.payload, bool(with_length)))
            client.slots[i] = None
        self.respond(lines)

    # -- HTTP(S) --------------------------------------------------------------------------

    CONTENT_TYPES = (
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/octet-stream",
        "multipart/form-data",
        "application/json",
        "image/jpeg",
    )

    def at_QHTTPCFG(self, at: AtLine) -> None:
        if at.form == "read":
            self.respond([f'+QHTTPCFG: "{k}",{_shown(v)}' for k, v in self.http.items() if k != "headers"])
            return
        key = str(at.arg(0))
        if key not in self.profile.keyed("+QHTTPCFG"):
            raise PlainError  # a key the family's AT+QHTTPCFG=? does not list
        if key == "contenttype" and len(at.args) > 1 and at.arg(1) not in range(self.profile.content_types()):
            raise PlainError  # [HTTP] 2.1: BG96 has content types 0-3
        headers: dict[str, str] = self.http.setdefault("headers", {})
        if key == "reqheader/add":
            headers[str(at.arg(1))] = str(at.arg(2))
        elif key == "reqheader/remove":
            headers.pop(str(at.arg(1)), None)
        elif len(at.args) == 1:
            self.respond([f'+QHTTPCFG: "{key}",{_shown(self.http.get(key, 0))}'])
            return
        else:
            self.http[key] = at.arg(1)
        self.respond()

    def at_QHTTPURL(self, at: AtLine) -> None:
        if at.form == "read":
            self.respond([b"+QHTTPURL: " + self.http_url] if self.http_url else [])
            return
        length = int(at.arg(0))  # type: ignore[arg-type]
        if not 1 <= length <= self.profile.url_max():
            raise CmeError(730)  # beyond the (1-700) of AT+QHTTPURL=? [R: how it is refused]

        async def finish(data: bytes) -> None:
            self.http_url = data
            self.respond()

        self._open_entry(DataEntry(length, finish, timeout=float(at.arg(1, 60))), b"\r\nCONNECT\r\n")  # type: ignore[arg-type]

    def at_QHTTPGET(self, at: AtLine) -> None:
        if len(at.args) >= 3 and not int(self.http.get("requestheader", 0)):
            raise PlainError  # the syntax of requestheader=1 while it is 0 [R: how it is refused]
        if len(at.args) >= 3:  # requestheader=1: the host sends the request header
            limit = self.profile.http_data_max
            if limit is not None and not 1 <= int(at.arg(1)) <= limit:  # type: ignore[arg-type]
                raise CmeError(730)  # [HTTP] 2.3: header-mode data 1-2048 on BG96

            async def finish(data: bytes) -> None:
                await self._http_request("+QHTTPGET", raw=data)

            self._open_entry(DataEntry(int(at.arg(1)), finish, timeout=float(at.arg(2))), b"\r\nCONNECT\r\n")  # type: ignore[arg-type]
            return
        self._spawn(self._http_request("+QHTTPGET", method="GET"))

    def at_QHTTPPOST(self, at: AtLine) -> None:
        length = int(at.arg(0))  # type: ignore[arg-type]
        limit = self.profile.http_data_max
        if limit is not None and int(self.http.get("requestheader", 0)) and not 1 <= length <= limit:
            raise CmeError(730)  # [HTTP] 2.4: header-mode data 1-2048 on BG96

        async def finish(data: bytes) -> None:
            if int(self.http.get("requestheader", 0)):
                await self._http_request("+QHTTPPOST", raw=data)
            else:
                await self._http_request("+QHTTPPOST", method="POST", body=data)

        self._open_entry(DataEntry(length, finish, timeout=float(at.arg(1, 60))), b"\r\nCONNECT\r\n")  # type: ignore[arg-type]

    async def _http_request(
        self, urc: str, *, method: str = "GET", body: bytes = b"", raw: bytes | None = None
    ) -> None:
        """Make the request; answer OK then the URC, or (before anything is sent) an
        immediate +CME ERROR: 7xx: a DNS failure on BG96 ([HTTP] 4.3: 714) and the EC200
        family ([S3] EG800K: 716); the EC200 family's other failures too."""
        immediate = self.profile.http_errors_immediate
        url = self.http_url.decode("utf-8", errors="replace")
        scheme, _, rest = url.partition("://")
        if not url:
            self._http_fail(urc, 712, immediate)
            return
        if scheme not in ("http", "https") or not rest:
            self._http_fail(urc, 711, immediate)
            return
        hostport, _, path = rest.partition("/")
        host, _, port_text = hostport.partition(":")
        port = int(port_text) if port_text else (443 if scheme == "https" else 80)
        ssl_index = int(self.http.get("sslctxid", 1)) if scheme == "https" else None
        try:
            reader, writer = await self.open_stream(host, port, ssl_index, int(self.http.get("contextid", 1)))
        except LookupError:
            self._http_fail(urc, self.profile.http_dns_code, self.profile.http_dns_immediate)
            return
        except PermissionError:
            self._http_fail(urc, 709, immediate)
            return
        except ssl.SSLError:
            self._http_fail(urc, 701, False)  # verification failures come as 701 [V: SeeedJP #39]
            return
        except (OSError, TimeoutError):
            self._http_fail(urc, 716, immediate)
            return
        self.respond()
        try:
            if raw is None:
                headers = {
                    "Host": host,
                    "User-Agent": "QUECTEL_MODULE",  # [V: S3]
                    "Accept": "*/*",
                    "Connection": "close",
                    **self.http.get("headers", {}),
                }
                if method == "POST":
                    headers["Content-Type"] = self.CONTENT_TYPES[int(self.http.get("contenttype", 0))]
                    headers["Content-Length"] = str(len(body))
                head = f"{method} /{path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                raw = head.encode() + b"\r\n" + body
            writer.write(raw)
            await writer.drain()
            async with asyncio.timeout(60):
                response = await reader.read(-1)
        except (OSError, TimeoutError, ssl.SSLError):
            self.urc(f"{urc}: 717")
            return
        finally:
            writer.close()
        try:
            status, header_block, content = parse_response(method, response)
        except HttpFramingError as exc:  # not HTTP, a bad chunk size, a body cut short
            log.info("http: the response cannot be read: %s", exc)
            self.urc(f"{urc}: 723")
            return
        self.http_response = (status, header_block, content)
        self.urc(f"{urc}: 0,{status},{len(content)}")

    def _http_fail(self, urc: str, code: int, immediate: bool) -> None:
        if immediate:
            self.error(code)
        else:
            self.respond()
            self.urc(f"{urc}: {code}")

    def at_QHTTPREAD(self, at: AtLine) -> None:
        if self.http_response is None:
            raise CmeError(705)
        _, header_block, content = self.http_response
        data = (header_block if int(self.http.get("responseheader", 0)) else b"") + content
        self.out(b"\r\nCONNECT\r\n" + data + b"\r\nOK\r\n")
        self.urc("+QHTTPREAD: 0")

    def at_QHTTPSTOP(self, at: AtLine) -> None:
        if at.form == "test":
            self.respond()
            return
        self.http_response = None  # the session is released [R]: a read now finds nothing
        self.respond()

    # -- faults and power ---------------------------------------------------------------------

    def _power_off(self) -> None:
        self._cancel_entry()
        self._line.clear()
        self._line_overflow = False
        for client in self.clients:
            if client.conn is not None:
                client.conn.close()
        self.powered = False

    async def reboot(self) -> None:
        """POWERED DOWN, silence, then RDY and the boot URCs; volatile state (MQTT/SSL/HTTP
        configuration, echo, CMEE, PDP) is lost, files are kept."""
        self.urc("POWERED DOWN")
        if self.profile.reboot_pdpdeact:
            for cid in sorted(self.active):
                self.urc(f'+QIURC: "pdpdeact",{cid}')  # BG96 (TinyGSM #157 log)
        await asyncio.sleep(0)  # let the announcement out before going silent
        self._power_off()
        await asyncio.sleep(self.boot_time)
        self._volatile_reset()
        self.powered = True
        self.stalled = False
        self.urc("RDY")
        for line in self.profile.boot_urcs:
            if line == "+CPIN: READY" and not self.sim_ready:
                line = "+CPIN: SIM PIN"
            self.urc(line)

    def remove_sim(self) -> None:
        """The SIM is pulled: +QSIMSTAT: 1,0 (if enabled) and +CPIN: NOT READY [ATM] 5.9-5.10;
        the network goes, and with it the PDP contexts and their links [R]."""
        self.sim_inserted = False
        self.sim_ready = False
        if self.general.qsimstat:
            self.urc("+QSIMSTAT: 1,0")
        self.urc("+CPIN: NOT READY")
        for cid in sorted(self.active):
            self.deactivate_pdp(cid)

    def insert_sim(self) -> None:
        """The SIM is back: +QSIMSTAT: 1,1 and +CPIN: READY (or SIM PIN) [ATM] 5.10."""
        self.sim_inserted = True
        self.sim_ready = self.sim_pin is None
        self.sim_ready_at = time.monotonic()
        if self.general.qsimstat:
            self.urc("+QSIMSTAT: 1,1")
        self.urc("+CPIN: READY" if self.sim_ready else "+CPIN: SIM PIN")

    def enter_psm(self) -> None:
        """The module enters PSM: "PSM POWER DOWN" (FreeRTOS BG96 port's URC table; the PSM
        AN's example shows "POWER DOWN") and silence until `wake`; volatile state is lost."""
        self.urc("PSM POWER DOWN")
        self._power_off()

    async def wake(self) -> None:
        """Out of PSM (a PON pulse or the timer): the module boots as after a reset [R]."""
        if self.powered:
            return
        self._volatile_reset()
        self.powered = True
        self.stalled = False
        self.urc("RDY")
        for line in self.profile.boot_urcs:
            self.urc(line)

    def fail_pings(self, index: int) -> None:
        """The broker stops answering PINGREQ on this client's link: its next keep-alive fails."""
        client = self.clients[index]
        if client.conn is not None:
            client.conn.drop_pongs = True

    def drop_link(self, index: int, code: int) -> None:
        client = self.clients[index]
        if client.conn is not None:
            client.conn.close()
        self._client_gone(client)
        self.urc(f"+QMTSTAT: {index},{code}")

    def deactivate_pdp(self, cid: int) -> None:
        self.active.pop(cid, None)
        self.urc(f'+QIURC: "pdpdeact",{cid}')
        self._drop_clients_on(cid, CLOSED_BY_PEER)

    def burst(self, index: int, topic: str, count: int, payload: bytes | None = None) -> None:
        """Deliver `count` messages to the client as if they arrived from the network."""
        client = self.clients[index]
        for n in range(count):
            body = payload if payload is not None else f'{{"n":{n}}}'.encode()
            self._deliver(client, Incoming(topic.encode(), body, 1, (n % 65535) + 1, False))

    def close(self) -> None:
        self._cancel_entry()
        for client in self.clients:
            if client.conn is not None:
                client.conn.close()
        for task in list(self._tasks):
            task.cancel()


def _shown(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def padded(value: Any, defaults: Sequence[Any]) -> list[Any]:
    """A QMTCFG tuple with its omitted trailing values filled from `defaults`."""
    values = list(value) if isinstance(value, tuple | list) else [value]
    return values + list(defaults[len(values) :])


def _handler_name(name: str) -> str:
    return name.lstrip("+&$%^*#").replace("&", "AMP_")


def file_checksum(data: bytes) -> int:
    """The QFUPL checksum: XOR of the data as big-endian 16-bit words, an odd last byte as
    the high byte [V: S3, EG800K 1939-byte PEM -> 4f64]."""
    value = 0
    for i in range(0, len(data) - 1, 2):
        value ^= (data[i] << 8) | data[i + 1]
    if len(data) % 2:
        value ^= data[-1] << 8
    return value


def aliauth_sign(
    client_id: str, product_key: str, device_name: str, device_secret: str, *, tls: bool
) -> tuple[str, str, str]:
    """What a module with "aliauth" sends. [R] Undocumented: modelled on Aliyun's direct
    login (clientId | securemode, hmacsha1, timestamp | ; username dn&pk; password over
    clientId, deviceName, productKey, timestamp with the DeviceSecret)."""
    timestamp = str(int(time.time() * 1000))
    content = f"clientId{client_id}deviceName{device_name}productKey{product_key}timestamp{timestamp}"
    password = hmac.new(device_secret.encode(), content.encode(), hashlib.sha1).hexdigest()
    mode = 2 if tls else 3
    return (
        f"{client_id}|securemode={mode},signmethod=hmacsha1,timestamp={timestamp}|",
        f"{device_name}&{product_key}",
        password,
    )


def _load_client_pair(context: ssl.SSLContext, cert: bytes | None, key: bytes | None) -> None:
    import os
    import tempfile

    if cert is None or key is None:
        raise ssl.SSLError("client certificate or key not uploaded")
    # ssl loads a certificate chain only from files
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        with open(cert_path, "wb") as fh:
            fh.write(cert)
        with open(key_path, "wb") as fh:
            fh.write(key)
        context.load_cert_chain(cert_path, key_path)
