"""A serial proxy that records: it offers a pseudo-terminal to another program (a vendor tool,
minicom, a legacy driver), passes the bytes to the real port and back, and writes a redacted
transcript of the conversation.

Bytes pass through at once both ways; only the recording waits until the redactor knows what
to hide. Secrets are learned the way the runtime learns them:

- Host side: a command line is recorded once its CR arrives and it has been parsed against
  the command table (its secret arguments, and the line as a template for its echo). A
  program may write a line in pieces (a terminal program writes each keystroke), so while a
  line is being typed nothing is recorded, not even the module's output (its echo carries
  the same secret). After a command with a data phase the host's next bytes are data: the
  announced length, or up to Ctrl-Z/ESC; they are recorded as they go.
- Module side: the output goes through the same `AtCodec` the runtime uses, told which
  command the host sent. It frames prompts, final results, payloads and bodies, and hands
  over read-back secrets (every secret field of the table, ``+QMTCFG: "aliauth",...``,
  ``+QICSGP``, ...) and JSON secrets (a registration reply) before their bytes are written.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

from quecmqtt.aliyun.replies import REGISTRATION_TOPICS, registration_secrets
from quecmqtt.at.codec import AtCodec
from quecmqtt.at.events import CommandComplete, MqttMessage, Prompt, Response, UnsolicitedFinal
from quecmqtt.at.parse import parse_command
from quecmqtt.at.spec import Command, DataKind
from quecmqtt.errors import LocalProtocolError
from quecmqtt.redact import Redactor
from quecmqtt.secret import Secret
from quecmqtt.transcripts.recorder import RecorderTransport
from quecmqtt.transport.base import Transport
from quecmqtt.wire.pty import PtyPort

log = logging.getLogger("quecmqtt.proxy")
MAX_LINE = 64 * 1024
CTRL_Z, ESC = 0x1A, 0x1B


@dataclass
class _Data:
    """The data phase of the host's last command: what is left to come, and what came."""

    command: Command
    remaining: int | None  # bytes still to come, or None for Ctrl-Z entry
    terminator: bytes
    abort: bytes | None
    received: bytearray
    done: bool = False
    aborted: bool = False


def _is_private_key(command: Command, content: bytes | bytearray) -> bool:
    """An upload that must not be recorded: a PEM or OpenSSH private key, or a file named as a
    key (DER keys have no marker). Certificates and CA files are public and stay readable."""
    name = str(command.values.get("name", "")).lower()
    return b"PRIVATE KEY" in content or "key" in name.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


class _EchoFollower:
    """Follows the module's echo of a typed line through its output, skipping whole lines that
    cut into it (a URC while the line was being typed, echoed byte by byte), and says where
    the echo of each secret byte is. A whole-line template cannot match such an echo."""

    def __init__(self, line: bytes, names: list[str | None]) -> None:
        self.line = line
        self.names = names  # per byte of `line`: the secret it belongs to, or None
        self.index = 0  # the next byte of `line` expected
        self.cut = 0  # 0: in the echo; 1: CR seen; 2: in a line that cut in; 3: its CR seen
        self.done = False

    def feed(self, data: bytes, offset: int) -> list[tuple[int, int, str]]:
        """(start, end, name) of secret echo bytes in `data`, which begins at `offset`."""
        hide: list[tuple[int, int, str]] = []
        for n, byte in enumerate(data):
            if self.done:
                break
            if self.cut:
                self.cut = {1: 2 if byte == 0x0A else 0, 2: 3 if byte == 0x0D else 2, 3: 0 if byte == 0x0A else 2}[
                    self.cut
                ]
                continue
            if byte == self.line[self.index]:
                name = self.names[self.index]
                if name is not None:
                    if hide and hide[-1][1] == offset + n and hide[-1][2] == name:
                        hide[-1] = (hide[-1][0], offset + n + 1, name)
                    else:
                        hide.append((offset + n, offset + n + 1, name))
                self.index += 1
                self.done = self.index == len(self.line)
            elif byte == 0x0D and self.index:
                self.cut = 1
            else:
                self.index = 0  # not the echo after all: look for its start again
        return hide


class SerialProxy:
    def __init__(self, inner: Transport, link: str | os.PathLike[str], output: str | os.PathLike[str]) -> None:
        self.redactor = Redactor()
        self.recorder = RecorderTransport(inner, output, self.redactor, comments=(f"recorded through {inner.name}",))
        self.pty = PtyPort(link, self._from_host)
        self.codec = AtCodec()
        self._host_line = bytearray()
        self._data: _Data | None = None
        self._echo: _EchoFollower | None = None
        # host bytes, with how many of the bytes written so far end in a line still being typed
        self._writes: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
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
            self._learn_unfinished_line()
            self._drop_data()  # an upload cut by the end of the recording
            await self.recorder.close()

    # -- host -> module ------------------------------------------------------------------------------

    def _from_host(self, data: bytes) -> None:
        for byte in data:
            self._host_byte(byte)
        held = len(self._host_line)
        if self._data is not None and not self._data.done and self._data.command.spec.name == "+QFUPL":
            held += len(self._data.received)  # an upload is recorded whole, once it is known whether it is a key
        self._writes.put_nowait((data, held))

    async def _to_module(self) -> None:
        while True:
            data, unsettled = await self._writes.get()
            await self.recorder.pass_through(data)
            self.recorder.settle_host(unsettled)  # a line is recorded once complete (and learned)
            if not unsettled:
                self.recorder.settle(self.codec.buffered)  # module output held while it was typed
            self.host_bytes += len(data)

    def _host_byte(self, byte: int) -> None:
        data = self._data
        if data is not None and not data.done:
            self._data_byte(data, byte)
        elif byte in (0x0D, 0x0A):
            if self._host_line.strip():
                self._command_line(bytes(self._host_line))
            self._host_line.clear()
        elif byte == CTRL_Z or (byte == ESC and not self._typing_command()):
            # the end of a data entry the table does not know (AT+QISEND): what came was data
            self._host_line.clear()
        elif len(self._host_line) < MAX_LINE:
            self._host_line.append(byte)  # ESC inside a command being typed: an arrow key

    def _typing_command(self) -> bool:
        """The host is in the middle of a command line: what it sent since the last line end
        begins with (a beginning of) `AT`. Data without a CR (a payload, `+++`) does not."""
        start = bytes(self._host_line).lstrip().upper()[:2]
        return bool(start) and b"AT".startswith(start)

    def _data_byte(self, data: _Data, byte: int) -> None:
        if data.remaining is not None:
            data.received.append(byte)
            data.remaining -= 1
            data.done = data.remaining <= 0
        elif data.abort is not None and bytes([byte]) == data.abort:
            data.done = data.aborted = True
        elif bytes([byte]) == data.terminator:
            data.done = True
        else:
            data.received.append(byte)
        if data.done:
            if data.command.spec.name == "+QFUPL" and _is_private_key(data.command, data.received):
                self.redactor.add(bytes(data.received), "private_key")  # before its bytes are recorded
            self._answer_prompt()

    def _drop_data(self) -> None:
        """The data phase ends unfinished (an ERROR, the host moved on, the recording stopped):
        an upload that was a key is hidden all the same, before its bytes are recorded."""
        data = self._data
        upload = data is not None and data.command.spec.name == "+QFUPL" and bool(data.received)
        if upload and data is not None and _is_private_key(data.command, data.received):
            self.redactor.add(bytes(data.received), "private_key")
        self._data = None

    def _command_line(self, line: bytes) -> None:
        start = line.upper().find(b"AT")
        if start < 0:
            return  # not a command: nothing to learn, and nothing the codec should wait for
        command = parse_command(line[start:])  # it takes blanks; its spans count from `start`
        self._learn_command(command)
        self._follow_echo(line, start, command)
        if self.codec.pending is not None:
            self.codec.abandon()  # the host moved on (pipelining, or it gave up on the last one)
            self._drain()
        self.codec.send(command)
        phase = command.spec.data
        self._drop_data()  # the host moved on
        if phase is not None and phase.kind is not DataKind.DOWNLOAD:
            remaining = command.data_length if not phase.terminator else None
            if remaining != 0:
                self._data = _Data(command, remaining, phase.terminator, phase.abort, bytearray())

    def _follow_echo(self, line: bytes, shift: int, command: Command) -> None:
        """Hide the echo of the line's secrets in the module output held while it was typed
        and in what comes next, however the echo was cut."""
        self._echo = None
        if not command.secret_spans:
            return
        names: list[str | None] = [None] * len(line)
        for start, end, name in command.secret_spans:
            for i in range(start + shift, min(end + shift, len(line))):
                names[i] = name
        follower = _EchoFollower(line, names)
        base, held = self.recorder.module_held
        for start, end, name in follower.feed(held, base):
            self.recorder.hide_module(start, end, name)
        if not follower.done:
            self._echo = follower

    def _learn_command(self, command: Command) -> None:
        for secret in command.secrets:
            self.redactor.add(secret)
        if command.secret_spans:
            self.redactor.add_line(command.line, command.secret_spans)

    def _learn_unfinished_line(self) -> None:
        """A line typed but never finished (the recording stopped): learn what it holds."""
        line = bytes(self._host_line)
        start = line.upper().find(b"AT")
        if start >= 0:
            self._learn_command(parse_command(line[start:]))

    def _answer_prompt(self) -> None:
        """Tell the codec what the host sent for a prompt, once both are there (a host may
        send the data before the prompt arrives)."""
        data = self._data
        if data is None or not data.done or not self.codec.awaiting_data:
            return
        try:
            if data.aborted:
                self.codec.abort_data()
            else:
                self.codec.send_data(bytes(data.received))
        except LocalProtocolError as exc:  # the host sent what the command did not announce
            log.debug("data phase of %s: %s", data.command.redacted, exc)
            self.codec.abandon()
        self._data = None
        self._drain()

    # -- module -> host ------------------------------------------------------------------------------

    async def _to_host(self) -> None:
        while True:
            data = await self.recorder.read()
            if self._echo is not None:
                for start, end, name in self._echo.feed(data, self.module_bytes):
                    self.recorder.hide_module(start, end, name)
                if self._echo.done:
                    self._echo = None
            self.module_bytes += len(data)
            self.codec.receive(data)
            self._drain()
            self.pty.write(data)
            if not self._host_line.strip():
                # while the host types a line, its echo (and any URC in between) waits for the CR
                self.recorder.settle(self.codec.buffered)

    def _drain(self) -> None:
        for secret in self.codec.take_secrets():
            self.redactor.add(secret)
        for event in self.codec.events():
            if isinstance(event, Prompt):
                self._answer_prompt()
            elif isinstance(event, CommandComplete | UnsolicitedFinal) and not self._typing_command():
                # the module answered: what the host sent since its last line was data (AT+QISEND's
                # payload), not the start of a command; it can be recorded now, before the answer
                if (
                    isinstance(event, CommandComplete)
                    and self._data is not None
                    and self._data.command is event.command
                ):
                    self._drop_data()  # an upload the module ended (ERROR, time-out): a key stays hidden
                self._host_line.clear()
                self.recorder.settle_host(0)
            if isinstance(event, CommandComplete):
                self._echo = None  # an echo comes before the final result, or not at all
                self._learn_responses(event.responses)
                if event.body and event.command.spec.name == "+QHTTPREAD":
                    self._learn_reply(event.body)  # an HTTPS registration answers with the secret
                if self._data is not None and self._data.command is event.command:
                    self._drop_data()  # answered without a prompt (ERROR): the host is back to commands
            elif isinstance(event, MqttMessage) and event.topic in REGISTRATION_TOPICS:
                self._learn_reply(event.payload)

    def _learn_responses(self, responses: tuple[Response, ...]) -> None:
        for response in responses:
            for value in response.fields:
                if isinstance(value, Secret):
                    self.redactor.add(value)

    def _learn_reply(self, data: bytes) -> None:
        """A registration reply: the proxy has no layers to tell it, so it looks at the two
        places the cloud hands out secrets (the /ext/register and /ext/regnwl pushes, an
        HTTPS registration body) and nowhere else: other payloads are not scanned."""
        for secret in registration_secrets(data):
            self.redactor.add(secret)
