"""A serial proxy that records: it offers a pseudo-terminal to another program (a vendor tool,
minicom, a legacy driver), passes the bytes to the real port and back, and writes a redacted
transcript of the conversation.

Secrets are learned the way the runtime learns them, from what crosses the wire: a command
line the host writes is parsed against the command table (its secret arguments, and the line
as a template for its echo) before it is recorded; module output is held until its line is
complete and scanned for read-back secrets (``+QMTCFG: "aliauth",...``) and JSON secrets
(a registration reply) before it is recorded.

Bytes pass through at once both ways; only the recording waits. A program may write a command
line in pieces (a terminal program writes each keystroke), so a host line that looks like a
command (it begins with ``AT``) is recorded when its CR arrives. After a data prompt (``> ``)
or ``CONNECT`` the host sends data, not a command line; it is recorded as it goes, until the
module's final result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from quecmqtt.at.fields import tokenize
from quecmqtt.at.parse import parse_command
from quecmqtt.emulator.pty import PtyPort
from quecmqtt.redact import Redactor, secrets_in_json
from quecmqtt.secret import Secret
from quecmqtt.transport.base import Transport
from quecmqtt.transport.recorder import RecorderTransport

log = logging.getLogger("quecmqtt.proxy")
MAX_LINE = 64 * 1024


class SerialProxy:
    def __init__(self, inner: Transport, link: str | os.PathLike[str], output: str | os.PathLike[str]) -> None:
        self.redactor = Redactor()
        self.recorder = RecorderTransport(inner, output, self.redactor, comments=(f"recorded through {inner.name}",))
        self.pty = PtyPort(link, self._from_host)
        self._host_line = bytearray()
        self._module_line = bytearray()
        # host bytes with how many of the bytes written so far end in a command line still being typed
        self._writes: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
        self._data_phase = False
        self.ready = asyncio.Event()  # the pty is there
        self.host_bytes = 0
        self.module_bytes = 0

    @property
    def link(self) -> str:
        return str(self.pty.link)

    async def run(self, stop: asyncio.Event) -> None:
        await self.recorder.open()
        self.pty.plug()
        self.ready.set()
        tasks = [asyncio.create_task(self._to_module()), asyncio.create_task(self._to_host())]
        try:
            waiter = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({waiter, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not waiter and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in [*tasks]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.pty.unplug()
            await self.recorder.close()

    # -- host -> module ------------------------------------------------------------------------------

    def _from_host(self, data: bytes) -> None:
        if self._data_phase:
            self._writes.put_nowait((data, 0))
            return
        self._learn_host(data)
        typing = bool(self._host_line) and b"AT".startswith(bytes(self._host_line[:2]).upper())
        self._writes.put_nowait((data, len(self._host_line) if typing else 0))

    async def _to_module(self) -> None:
        while True:
            data, unsettled = await self._writes.get()
            await self.recorder.pass_through(data)
            self.recorder.settle_host(unsettled)  # a command line is recorded once complete (and learned)
            self.host_bytes += len(data)

    def _learn_host(self, data: bytes) -> None:
        for byte in data:
            if byte in (0x1A, 0x1B):  # the end (or the cancel) of a Ctrl-Z entry
                self._host_line.clear()
            elif byte in (0x0D, 0x0A):
                if self._host_line[:2].upper() == b"AT":
                    line = bytes(self._host_line)
                    command = parse_command(line)
                    for secret in command.secrets:
                        self.redactor.add(secret)
                    if command.secret_spans:
                        self.redactor.add_line(line, command.secret_spans)
                self._host_line.clear()
            elif len(self._host_line) < MAX_LINE:
                self._host_line.append(byte)

    # -- module -> host ------------------------------------------------------------------------------

    async def _to_host(self) -> None:
        while True:
            data = await self.recorder.read()
            self.module_bytes += len(data)
            self._learn_module(data)
            self.pty.write(data)
            self.recorder.settle(len(self._module_line))  # hold a partial line until it is complete

    def _learn_module(self, data: bytes) -> None:
        self._module_line += data
        while True:
            end = self._module_line.find(b"\n")
            if end < 0:
                break
            line = bytes(self._module_line[: end + 1]).strip()
            del self._module_line[: end + 1]
            self._learn_line(line)
        if bytes(self._module_line).lstrip(b"\r\n") in (b">", b"> "):
            self._data_phase = True
        if len(self._module_line) > MAX_LINE:
            self._learn_line(bytes(self._module_line))
            self._module_line.clear()

    def _learn_line(self, line: bytes) -> None:
        if line == b"CONNECT" or line.startswith(b"CONNECT "):
            self._data_phase = True
        elif line in (b"OK", b"ERROR") or line.startswith((b"+CME ERROR", b"+CMS ERROR")):
            self._data_phase = False
            if not b"AT".startswith(bytes(self._host_line[:2]).upper()):
                self._host_line.clear()  # what the host sent was data, not the start of a command
        for secret in secrets_in_json(line):
            self.redactor.add(secret)
        if line.startswith(b'+QMTCFG: "aliauth"'):
            with contextlib.suppress(ValueError):
                values = [v for _, v in tokenize(line.split(b":", 1)[1].decode("utf-8", "replace"))]
                if values and isinstance(values[-1], str) and values[-1]:
                    self.redactor.add(Secret(values[-1], "device_secret"))
