"""The sans-I/O AT codec: bytes in, typed events out; commands in, bytes out.

No I/O, no clock, no asyncio: the runtime (`quecmqtt.modem`) owns time-outs and the port.

    codec = AtCodec()
    port.write(codec.send(commands.QMTOPEN(0, "host", 1883)))
    codec.receive(port.read())
    for event in codec.events(): ...

Framing, in the order the scanner applies it (DESIGN section 3):

* Lines end in CR LF, a bare CR (the echo ends in CR only) or a bare LF; blank lines are
  ignored. An LF right after a CR belongs to that CR, whichever read it arrives in.
* ``+QMTRECV: <c>,<id>,"<topic>",<len>,"`` switches to counting <len> payload bytes,
  whatever they contain; without a length field the payload runs from the quote after
  the topic to the first quote followed by CR or LF, across line ends if need be.
* ``>`` at the start of a line is a prompt only while the pending command expects one.
* ``CONNECT`` starts the pending command's data phase; for a download (``QHTTPREAD``) the
  body is framed by the content length of the preceding ``+QHTTPGET/POST`` result when
  that is followed by ``\\r\\nOK\\r\\n``, and otherwise ends at ``\\r\\nOK\\r\\n`` followed
  by ``+QHTTPREAD:``.
* Data the host sent in a data phase and that the module echoes back (echo on) is
  consumed as echo.
* A line over `max_line` bytes is reported once as `Garbage` and skipped to its end.

Every decision waits until the bytes that decide it have arrived, so feeding a stream
whole, byte by byte or in random pieces gives the same events; any byte sequence gives
events or `Garbage`, never an exception.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from enum import Enum, IntEnum

from quecmqtt.at.cme import cme_from_text
from quecmqtt.at.events import (
    GARBAGE_SAMPLE,
    CommandComplete,
    Event,
    FieldValue,
    Final,
    Garbage,
    ModuleReady,
    MqttMessage,
    MqttStatus,
    PoweredDown,
    Prompt,
    PsmEntered,
    Response,
    ResponseOverflow,
    SimStatus,
    UnsolicitedFinal,
    Urc,
)
from quecmqtt.at.fields import INT, STR, tokenize
from quecmqtt.at.spec import Command, DataKind, Form
from quecmqtt.errors import LocalProtocolError
from quecmqtt.secret import REDACTED, Secret

CR, LF = 0x0D, 0x0A
_TERMINATOR = re.compile(rb"[\r\n]")
# A received message header. The topic may hold quotes, but the first `",` ends it: an
# unquoted payload (BG96) is often JSON, full of `",` and `,"`, and must not be taken for the
# rest of a topic.
# (possessive: a topic can end one way only, so nothing is ever tried twice)
_TOPIC = rb'"([^"\r\n]*+(?:"(?! ?,)[^"\r\n]*+)*+)" ?,'
_TOPIC_MAX = 1024
_RECV_HEADER = re.compile(rb"\+QMTRECV: ?(\d{1,2}) ?, ?(\d{1,5}) ?, ?" + _TOPIC + rb' ?(?:(\d{1,7}) ?, ?)?"')
# EC200U firmware is reported to put the payload of a buffered read on the next line [R]:
# +QMTRECV: <c>,<id>,"<topic>",<len>  CR LF  <len bytes>
_RECV_SPLIT = re.compile(r'\+QMTRECV: ?(\d{1,2}) ?, ?(\d{1,5}) ?, ?"((?:[^"]|"(?! ?,)){0,1024})" ?, ?(\d{1,7})\Z')
_RECV_PREFIX = b"+QMTRECV:"
# +QMTRECV: <c>,<id>,"<topic>",<payload to the end of the line>  (unquoted payload)
_RECV_UNQUOTED = re.compile(rb"\+QMTRECV: ?(\d{1,2}) ?, ?(\d{1,5}) ?, ?" + _TOPIC + rb'(?! ?")(.*)\Z', re.S)
_COUNTED = re.compile(rb"(\d{1,7}),(.*)\Z", re.S)
_HEADER_MAX = 1100  # longest header _RECV_HEADER is tried on (a topic of _TOPIC_MAX and the rest)
_HTTP_END = b"\r\nOK\r\n"
_HTTP_READ_RESULT = b"+QHTTPREAD:"
# Control bytes that never occur in a text line (TAB is tolerated).
_JUNK = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")

BANNERS_READY = frozenset({"RDY", "APP RDY"})
BANNERS_DOWN = frozenset({"POWERED DOWN", "NORMAL POWER DOWN"})
# Unprefixed URCs that are neither of the above: reported as Urc(prefix=banner).
BANNERS_PSM = frozenset({"PSM POWER DOWN", "POWER DOWN"})
BANNERS_OTHER = frozenset({"RING"})
_FINALS_PLAIN = frozenset({"OK", "ERROR", "NO CARRIER", "SEND OK", "SEND FAIL", "BUSY", "NO ANSWER", "NO DIALTONE"})
_HTTP_RESULT_PREFIXES = frozenset({"+QHTTPGET", "+QHTTPPOST", "+QHTTPPUT", "+QHTTPPOSTFILE"})


class _Mode(IntEnum):
    """Scanner modes; an IntEnum so the step table is a plain tuple indexed per step."""

    LINE = 0
    COUNT = 1  # counting a +QMTRECV payload
    TRAILER = 2  # the '"' CR LF after a counted payload
    QUOTED = 3  # a +QMTRECV payload without length: up to '"' + CR/LF
    BODY = 4  # a CONNECT download body
    ECHO = 5  # the module echoing data the host sent
    SKIP = 6  # rest of an over-long line


class _State(Enum):
    SENT = 1  # waiting for responses, a prompt or the final result
    PROMPTED = 2  # the module waits for data
    DATA_SENT = 3  # data written; waiting for the final result


class _Pending:
    __slots__ = ("body", "command", "echo", "echo_seen", "kept", "overflowed", "responses", "results", "state")

    def __init__(self, command: Command) -> None:
        self.command = command
        self.echo = _echo_forms(command.line)
        self.echo_seen = False
        self.state = _State.SENT
        self.responses: list[Response] = []
        self.results: list[Urc] = []
        self.body: bytes | None = None
        self.kept = 0  # bytes of response and result lines kept
        self.overflowed = False  # over the caps: counted through, nothing more kept


class AtCodec:
    """See the module docstring. Not thread-safe; one instance per serial port."""

    def __init__(
        self,
        *,
        max_line: int = 65536,
        max_body: int = 16 * 1024 * 1024,
        max_payload: int = 1024 * 1024,
        max_pending_lines: int = 2048,
        max_pending_bytes: int = 256 * 1024,
    ) -> None:
        self.max_line = max_line
        self.max_body = max_body
        self.max_payload = max_payload
        self.max_pending_lines = max_pending_lines
        self.max_pending_bytes = max_pending_bytes
        self._init_state()

    def _init_state(self) -> None:
        self._buf = bytearray()
        self._off = 0  # start of unconsumed bytes in _buf
        self._scan = 0  # where the terminator search of the current line resumes
        self._events: deque[Event] = deque()
        self._mode = _Mode.LINE
        self._pending: _Pending | None = None
        self._skip_lf = False  # an LF right after a CR is part of that CR
        # +QMTRECV being assembled
        self._msg_client = 0
        self._msg_id = 0
        self._msg_topic = ""
        self._msg_length: int | None = None
        self._msg_need = 0
        self._msg_parts: list[bytes] = []
        self._msg_header = b""
        self._msg_trailer_required = True
        self._msg_trailer_quote = False
        self._msg_keep = True  # False while counting through an over-limit payload
        # CONNECT download body (kept in _buf until its end is known)
        self._body_hint: int | None = None  # content length from the last +QHTTPGET/POST
        self._body_expected: int | None = None
        self._body_scan = 0
        self._body_keep = True  # False while counting through an over-limit body
        # host data the module may echo
        self._echo_expect = b""
        self._echo_pos = 0
        self._echo_held = bytearray()  # the stream's current text segment, matched so far
        self._echo_optional = 0
        self._echo_suspended = False  # a URC interrupted the data echo: resume after it
        self._echo_any = False  # some byte of this data phase was echoed
        self._data_echo: dict[str, bool] = {}  # per command: does the module echo its data? (learned)
        self._secrets: list[Secret] = []  # secret fields seen, for take_secrets()
        self._steps = (
            self._step_line,
            self._step_count,
            self._step_trailer,
            self._step_quoted,
            self._step_body,
            self._step_echo,
            self._step_skip,
        )

    # -- host side --------------------------------------------------------------------

    @property
    def pending(self) -> Command | None:
        """The command waiting for its final result, if any."""
        return self._pending.command if self._pending else None

    @property
    def awaiting_data(self) -> bool:
        """True after a `Prompt` event until `send_data`/`abort_data`."""
        return self._pending is not None and self._pending.state is _State.PROMPTED

    def send(self, command: Command) -> bytes:
        """Start `command`; return the bytes to write. One command at a time."""
        if self._pending is not None:
            raise LocalProtocolError(
                f"cannot send {command.redacted}: {self._pending.command.redacted} is still pending"
            )
        self._pending = _Pending(command)
        return command.wire

    def send_data(self, data: bytes) -> bytes:
        """Answer a `Prompt`: return the bytes to write (data plus Ctrl-Z where the form
        needs it). The length must match what the command announced."""
        pending = self._pending
        if pending is None or pending.state is not _State.PROMPTED:
            raise LocalProtocolError("no data prompt is open")
        phase = pending.command.spec.data
        assert phase is not None
        expected = pending.command.data_length
        if expected is not None and len(data) != expected:
            raise LocalProtocolError(f"{pending.command.redacted} announced {expected} bytes of data, got {len(data)}")
        if phase.terminator and (phase.terminator in data or (phase.abort and phase.abort in data)):
            raise LocalProtocolError(
                f"{pending.command.redacted}: data contains the Ctrl-Z/ESC byte; use a length form"
            )
        wire = data + phase.terminator
        pending.state = _State.DATA_SENT
        echoes = self._data_echo.get(pending.command.spec.id, True)
        if pending.echo_seen and wire and phase.kind is not DataKind.DOWNLOAD and echoes:
            # echo is on: the module may send the data back before its answer
            self._echo_expect = wire
            self._echo_optional = len(phase.terminator)  # a module may not echo the Ctrl-Z
            self._echo_pos = 0
            self._echo_held.clear()
            self._echo_any = self._echo_suspended = False
            self._mode = _Mode.ECHO
        return wire

    def abort_data(self) -> bytes:
        """Cancel an open data entry where the module allows it (ESC for Ctrl-Z entry)."""
        pending = self._pending
        if pending is None or pending.state is not _State.PROMPTED:
            raise LocalProtocolError("no data prompt is open")
        phase = pending.command.spec.data
        if phase is None or phase.abort is None:
            raise LocalProtocolError(f"{pending.command.redacted}: this data phase cannot be aborted")
        pending.state = _State.DATA_SENT
        return phase.abort

    def abandon(self) -> Command | None:
        """Forget the pending command (after a time-out or a reboot). A late final result
        then arrives as `UnsolicitedFinal`. Returns the command forgotten."""
        pending = self._pending
        self._pending = None
        if self._mode in (_Mode.BODY, _Mode.ECHO) or self._echo_expect:
            self._resume_lines(self._echo_held)
            self._run()  # may queue events: drain events() after abandon()
        return pending.command if pending else None

    def reset(self) -> None:
        """Start afresh: no command pending, nothing buffered, no events queued. For a port
        that was reopened (half a line from the old one is meaningless) or after an
        internal error. Settings (the caps) are kept."""
        self._init_state()

    def receive_eof(self) -> None:
        """The stream ended (the port is gone). What was buffered is reported as `Garbage`
        (a line or payload cut off), the pending command is forgotten, and the codec is
        ready for a new stream; drain `events()` afterwards."""
        partial = bytes(self._buf[self._off :])
        parts = b"".join(self._msg_parts)
        if self._mode in (_Mode.COUNT, _Mode.TRAILER, _Mode.QUOTED):
            cut = self._msg_header + parts + (partial if self._mode is _Mode.QUOTED else b"")
            self._garbage(cut, len(cut), "+QMTRECV cut off by the end of the stream")
        elif self._mode is _Mode.BODY and partial:
            self._garbage(partial, len(partial), "HTTP body cut off by the end of the stream")
        elif self._mode in (_Mode.LINE, _Mode.ECHO) and partial.strip(b"\r\n"):
            self._garbage(partial, len(partial), "line cut off by the end of the stream")
        events = self._events
        self._init_state()
        self._events = events

    # -- module side ------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Feed bytes read from the port; events become available from `events()`."""
        if not data:
            return
        self._buf += data
        self._run()

    def events(self) -> Iterator[Event]:
        """Drain the events produced so far."""
        queue = self._events
        while queue:
            yield queue.popleft()

    def take_secrets(self) -> list[Secret]:
        """Secret fields parsed since the last call (``+QMTCFG: "aliauth",...``), known
        as soon as their line is, before the command's final result: a recorder must
        learn them before it writes those bytes."""
        secrets, self._secrets = self._secrets, []
        return secrets

    @property
    def buffered(self) -> int:
        """Bytes received but not yet turned into events (a partial line, a payload)."""
        return len(self._buf) - self._off + sum(map(len, self._msg_parts)) + len(self._echo_held)

    # -- the scanner ------------------------------------------------------------------

    def _run(self) -> None:
        steps = self._steps
        while steps[self._mode]():
            pass
        # compact once per receive instead of once per line
        off = self._off
        if off:
            del self._buf[:off]
            self._off = 0
            scan = self._scan - off
            self._scan = scan if scan > 0 else 0
            if self._mode is _Mode.BODY:
                scan = self._body_scan - off
                self._body_scan = scan if scan > 0 else 0

    def _step_line(self) -> bool:
        buf = self._buf
        off = self._off
        end = len(buf)
        if off >= end:
            return False
        if self._skip_lf:
            self._skip_lf = False
            if buf[off] == LF:
                off += 1
                self._off = off
                if off >= end:
                    return False
        first = buf[off]
        maybe_header = False
        if first == 0x2B and buf.startswith(_RECV_PREFIX, off):  # '+'
            match = _RECV_HEADER.match(buf, off, off + _HEADER_MAX)
            if match is not None and len(match.group(3)) <= _TOPIC_MAX:
                self._start_message(match)
                return True
            maybe_header = True
        elif first == 0x3E and self._prompt_expected():  # '>'
            # "> " is the prompt whatever follows on the line; a lone ">" waits for the
            # next byte (a line ">" is a prompt too, decided in _line)
            if end - off < 2:
                return False
            if buf[off + 1] == 0x20:
                self._off = off + 2
                self._open_prompt(">")
                return True
        m = _TERMINATOR.search(buf, max(off, self._scan))
        if m is None:
            # partial line: decide what can be decided now
            self._scan = end
            if end - off > self.max_line and not (maybe_header and end - off <= _HEADER_MAX):
                self._too_long(off)
                self._off = end
                self._mode = _Mode.SKIP
                return True
            return False
        pos = m.start()
        line = bytes(buf[off:pos])
        self._off = pos + 1
        self._scan = pos + 1
        if buf[pos] == CR:
            self._skip_lf = True
        if pos - off > self.max_line:
            self._too_long(off)
            return True
        if line:
            self._line(line)
            if self._echo_suspended and self._mode is _Mode.LINE:
                self._to_line_mode()
        return True

    def _too_long(self, off: int) -> None:
        # Reported when the cap is crossed, with what is known at that point, so the event
        # is the same whether the line arrived whole or a byte at a time.
        limit = self.max_line + 1
        sample = bytes(self._buf[off : off + min(GARBAGE_SAMPLE, limit)])
        self._garbage(sample, limit, f"line longer than {self.max_line} bytes")

    def _step_skip(self) -> bool:
        buf, off = self._buf, self._off
        m = _TERMINATOR.search(buf, off)
        if m is None:
            self._off = len(buf)
            return False
        self._off = m.start() + 1
        self._scan = self._off
        self._skip_lf = buf[m.start()] == CR
        self._to_line_mode()
        return True

    # -- lines ------------------------------------------------------------------------

    def _line(self, line: bytes) -> None:
        pending = self._pending
        if pending is not None and not pending.echo_seen and line in pending.echo:
            pending.echo_seen = True
            return
        if line.startswith(_RECV_PREFIX) and self._unquoted_message(line):
            return
        if _JUNK.search(line) is not None:
            self._noisy(line, max(m.end() for m in _JUNK.finditer(line)), "control bytes in a text line")
            return
        text = line.decode("utf-8", errors="replace").strip()
        if not text:
            return
        if "\ufffd" in text and not text.startswith("+"):
            noise_end = max(i for i, b in enumerate(line) if b >= 0x80) + 1
            # with a command pending, a line in another encoding may be its answer
            if pending is None or _salvage(line, noise_end):
                self._noisy(line, noise_end, "not UTF-8 text")
                return
        final = self._parse_final(text)
        if final is not None:
            if pending is not None:
                self._complete(final)
            else:
                self._events.append(UnsolicitedFinal(final))
            return
        if text in BANNERS_READY:
            self._events.append(ModuleReady(text))
            return
        if text in BANNERS_DOWN:
            self._events.append(PoweredDown(text))
            return
        if text in BANNERS_PSM:
            self._events.append(PsmEntered(text))
            return
        if text in BANNERS_OTHER:
            self._events.append(Urc(text, (), text))
            return
        if text[0] == "+":
            colon = text.find(":")
            if colon > 1:
                self._prefixed(text[:colon], text[colon + 1 :].lstrip(" "), text)
                return
        if pending is not None:
            if pending.state is _State.SENT and pending.command.spec.data is not None:
                if text == "CONNECT" or text.startswith("CONNECT "):
                    if pending.command.spec.data.kind is DataKind.DOWNLOAD:
                        self._start_body()
                    else:
                        self._open_prompt("CONNECT")
                    return
                if text in (">", "> ") and pending.command.spec.data.kind is DataKind.PROMPT:
                    self._open_prompt(">")
                    return
            self._keep(pending, Response(None, (), text), len(line))
            return
        self._garbage(line[:GARBAGE_SAMPLE], len(line), "unsolicited line that is no known URC")

    def _noisy(self, line: bytes, noise_end: int, reason: str) -> None:
        """Noise glued to the front of a real line (boot noise before RDY is common):
        report the noise, keep a banner or +URC it ends with. Never a final result: a
        false OK would complete the pending command."""
        keep = _salvage(line, noise_end)
        noise = len(line) - len(keep)
        self._garbage(line[:noise], noise, reason)
        if keep:
            self._line(keep)

    @staticmethod
    def _parse_final(text: str) -> Final | None:
        if text in _FINALS_PLAIN:
            return Final(text, text)
        if text.startswith("+CME ERROR:") or text.startswith("+CMS ERROR:"):
            return Final(text[:10], text, cme_from_text(text[11:]))
        return None

    def _prefixed(self, prefix: str, rest: str, text: str) -> None:
        tokens = tokenize(rest)
        kinds = tuple(k for k, _ in tokens)
        values: tuple[FieldValue, ...] = tuple(v for _, v in tokens)
        pending = self._pending
        if pending is not None:
            resp = pending.command.spec.response_for(prefix, kinds)
            if resp is not None:
                if resp.secret_fields:
                    values, text = _hide(values, resp.secret_fields, text, prefix)
                    self._secrets.extend(v for v in values if isinstance(v, Secret))
                self._keep(pending, Response(prefix, values, text), len(text))
                return
        sim = _sim_status(prefix, values, text)
        if sim is not None:
            self._events.append(sim)
            return
        if prefix == "+QMTSTAT" and kinds == (INT, INT):
            client, code = values
            assert isinstance(client, int) and isinstance(code, int)
            self._events.append(MqttStatus(client, code))
            return
        if prefix == "+QMTRECV" and kinds == (INT, INT, STR, INT) and self._buffered_read_pending():
            split = _RECV_SPLIT.match(text)
            if split is not None:
                self._start_split_message(split)
                return
        if prefix in _HTTP_RESULT_PREFIXES:
            # content length of the response, used to frame the next QHTTPREAD body
            length = values[2] if len(values) >= 3 and values[0] == 0 else None
            self._body_hint = length if isinstance(length, int) and length >= 0 else None
        urc = Urc(prefix, values, text)
        if pending is not None:
            result = pending.command.spec.result
            if result is not None and result.prefix == prefix:
                key = pending.command.result_key() or ()
                if tuple(values[: len(key)]) == key:
                    self._keep(pending, urc, len(text))
        self._events.append(urc)

    def _keep(self, pending: _Pending, item: Response | Urc, size: int) -> None:
        """Keep a line for the pending command, within the caps: a module (or a line
        noise) that floods while a command waits costs counting, not memory."""
        if pending.overflowed:
            return
        kept = len(pending.responses) + len(pending.results)
        if kept >= self.max_pending_lines or pending.kept + size > self.max_pending_bytes:
            pending.overflowed = True
            self._events.append(ResponseOverflow(pending.command, kept, pending.kept))
            return
        pending.kept += size
        if isinstance(item, Response):
            pending.responses.append(item)
        else:
            pending.results.append(item)

    def _complete(self, final: Final) -> None:
        pending = self._pending
        assert pending is not None
        self._pending = None
        if self._echo_expect and not self._echo_any:
            # the answer came and nothing was echoed: this module does not echo this command's data
            self._data_echo[pending.command.spec.id] = False
        self._forget_echo()
        self._events.append(
            CommandComplete(
                command=pending.command,
                final=final,
                responses=tuple(pending.responses),
                results=tuple(pending.results),
                body=pending.body,
                echoed=pending.echo_seen,
                overflowed=pending.overflowed,
            )
        )

    def _garbage(self, sample: bytes, length: int, reason: str) -> None:
        self._events.append(Garbage(sample[:GARBAGE_SAMPLE], length, reason))

    # -- prompts and data phases ----------------------------------------------------------

    def _prompt_expected(self) -> bool:
        pending = self._pending
        return (
            pending is not None
            and pending.state is _State.SENT
            and pending.command.spec.data is not None
            and pending.command.spec.data.kind is DataKind.PROMPT
        )

    def _open_prompt(self, marker: str) -> None:
        pending = self._pending
        assert pending is not None
        pending.state = _State.PROMPTED
        self._events.append(Prompt(pending.command, marker))

    def _step_echo(self) -> bool:
        """Match the module's echo of the data we sent, line segment by line segment.

        Module output is framed by line breaks, and a URC can come between the prompt and the
        echo or between any two bytes of it. So the echo is matched as text segments (runs of
        bytes without CR/LF), and line breaks are taken loosely: a URC's CR LF may stand where
        the data has its own. A text segment of the stream that stops matching the data is
        given back whole and parsed as module output; the echo is then expected again from
        where that segment began. A segment cut short by a line break was echo interrupted by
        a URC: the rest of it is expected after the URC. The echo is complete at the first
        line break after the last byte of the data (or at once if the data ends with one)."""
        # CONNECT's LF (or the LF of a URC line that interrupted the echo) may only now arrive
        if self._skip_lf and not self._consume_pending_lf():
            return False
        buf, held = self._buf, self._echo_held
        expect = self._echo_expect
        end = len(expect)
        data_end = end - self._echo_optional  # a module may not echo the closing Ctrl-Z
        while self._off < len(buf):
            byte, pos = buf[self._off], self._echo_pos
            if byte in (CR, LF):
                if held and pos < data_end and expect[pos] not in (CR, LF):
                    held.clear()  # echo interrupted mid-segment: a URC follows
                    self._suspend_echo()
                    return True
                self._off += 1
                held.clear()
                while pos < end and expect[pos] in (CR, LF):
                    pos += 1  # the data's line break, whatever CR/LF bytes carried it
                self._echo_pos = pos
                if pos >= data_end:
                    self._end_echo()
                    return True
                continue
            if not held:  # a new segment: the data's line break may have come as a URC's CR LF
                while pos < end and expect[pos] in (CR, LF):
                    pos += 1
                self._echo_pos = pos
            if pos < end and expect[pos] == byte:
                self._off += 1
                held.append(byte)
                self._echo_pos = pos + 1
                self._echo_any = True
                continue
            # not the echo (or the data is all there and this segment goes on: a URC that
            # began like the data's last segment): give the segment back as module output
            self._give_back()
            return True
        return False

    def _give_back(self) -> None:
        held = bytes(self._echo_held)
        self._echo_held.clear()
        self._echo_pos -= len(held)
        if held:
            self._buf[self._off : self._off] = held
        self._suspend_echo()

    def _suspend_echo(self) -> None:
        self._echo_suspended = True
        self._mode = _Mode.LINE

    def _end_echo(self) -> None:
        """The data was echoed: so it will be for this command (see `_complete` for the other
        way)."""
        if self._pending is not None:
            self._data_echo[self._pending.command.spec.id] = True
        self._forget_echo()
        self._mode = _Mode.LINE

    def _forget_echo(self) -> None:
        self._echo_held.clear()
        self._echo_expect = b""
        self._echo_suspended = False

    def _to_line_mode(self) -> None:
        """Back to lines after a unit of module output; to the data echo if one was
        interrupted and is still expected."""
        if self._echo_suspended and self._echo_expect and self._pending is not None:
            self._mode = _Mode.ECHO
        else:
            self._mode = _Mode.LINE

    def _resume_lines(self, held: bytes | bytearray) -> None:
        if held:
            self._buf[self._off : self._off] = bytes(held)
        self._forget_echo()
        self._mode = _Mode.LINE

    def _start_body(self) -> None:
        pending = self._pending
        assert pending is not None
        pending.state = _State.DATA_SENT
        hint = self._body_hint
        self._body_expected = hint if hint is not None and hint <= self.max_body else None
        self._body_hint = None
        self._body_scan = self._off
        self._body_keep = True
        self._mode = _Mode.BODY

    def _step_body(self) -> bool:
        if self._skip_lf and not self._consume_pending_lf():
            return False
        buf = self._buf
        start = self._off
        expected = self._body_expected
        if expected is not None:
            # Framed by length only: a shorter body would make this wait for the
            # runtime's time-out, but looking for the terminator before the length is
            # reached would cut bodies that contain it, depending on read sizes.
            if len(buf) - start < expected + len(_HTTP_END):
                return False
            if buf[start + expected : start + expected + len(_HTTP_END)] == _HTTP_END:
                self._finish_body(bytes(buf[start : start + expected]), start + expected + len(_HTTP_END))
                return True
            # the content length does not frame this body (response headers on?)
            self._body_expected = None
        # terminator search: \r\nOK\r\n followed by an optional CR LF and +QHTTPREAD:
        scan = max(start, self._body_scan)
        while True:
            at = buf.find(_HTTP_END, scan)
            if at < 0:
                possible = len(buf) - _suffix_prefix(buf, _HTTP_END)  # where the end could still start
                if self._body_keep and possible - start > self.max_body:
                    return self._body_over(start)
                if self._body_keep:
                    self._body_scan = max(start, possible)
                else:  # over the cap: keep nothing the end cannot start in
                    self._off = self._body_scan = max(start, possible)
                return False
            if self._body_keep and at - start > self.max_body:
                return self._body_over(start)
            after = at + len(_HTTP_END)
            tail = bytes(buf[after : after + len(_HTTP_READ_RESULT) + 2])
            candidates = (_HTTP_READ_RESULT, b"\r\n" + _HTTP_READ_RESULT)
            if any(tail.startswith(c) for c in candidates):
                self._finish_body(bytes(buf[start:at]) if self._body_keep else None, after)
                return True
            if any(c.startswith(tail) for c in candidates):
                # not enough bytes yet to tell whether +QHTTPREAD: follows
                self._body_scan = at
                if not self._body_keep:
                    self._off = at
                return False
            scan = at + 1

    def _body_over(self, start: int) -> bool:
        """The body passed `max_body`: report it once, then count through to its end
        (keeping nothing), so its bytes are never parsed as module output."""
        limit = self.max_body + 1
        sample = bytes(self._buf[start : start + min(GARBAGE_SAMPLE, limit)])
        self._garbage(sample, limit, f"HTTP body over {self.max_body} bytes")
        self._body_keep = False
        return True

    def _finish_body(self, body: bytes | None, resume: int) -> None:
        pending = self._pending
        self._off = resume
        self._scan = resume
        self._skip_lf = False
        self._mode = _Mode.LINE
        if pending is not None:
            pending.body = body
            self._complete(Final("OK", "OK"))
        elif body is not None:
            self._garbage(body[:GARBAGE_SAMPLE], len(body), "HTTP body with no command pending")

    # -- +QMTRECV payloads --------------------------------------------------------------

    def _start_message(self, match: re.Match[bytes]) -> None:
        self._msg_client = int(match.group(1))
        self._msg_id = int(match.group(2))
        self._msg_topic = match.group(3).decode("utf-8", errors="replace")
        self._msg_header = match.group(0)
        self._msg_parts = []
        self._off = match.end()
        self._scan = self._off
        length = match.group(4)
        if length is None:
            self._msg_length = None
            self._msg_keep = True
            self._mode = _Mode.QUOTED
        else:
            self._msg_length = size = int(length)
            start = self._off
            end = start + size
            buf = self._buf
            if size <= self.max_payload and buf[end : end + 3] == b'"\r\n':
                # fast path: payload and trailer already here (what the modes would do)
                self._msg_parts = [bytes(buf[start:end])]
                self._off = end + 3
                self._msg_keep = True
                self._emit_message(self._msg_parts[0])
                return
            self._msg_need = self._msg_length
            self._msg_trailer_required = True
            self._msg_keep = self._msg_length <= self.max_payload
            self._mode = _Mode.COUNT

    def _buffered_read_pending(self) -> bool:
        spec = self._pending.command.spec if self._pending is not None else None
        return spec is not None and spec.name == "+QMTRECV" and spec.form is Form.WRITE

    def _unquoted_message(self, line: bytes) -> bool:
        """A ``+QMTRECV`` whose payload is not quoted (the BG96 MQTT AN shows both forms):
        the payload is the rest of the line. A header the quoted form would have taken
        never gets here (the scanner took it); a buffered read's header with its length
        (the split form) is left to `_prefixed`."""
        match = _RECV_UNQUOTED.match(line)
        if match is None or len(match.group(3)) > _TOPIC_MAX:
            return False
        rest = match.group(4)
        if not rest and self._buffered_read_pending():
            return False
        length: int | None = None
        counted = _COUNTED.match(rest)
        if counted is not None and len(counted.group(2)) == int(counted.group(1)):
            length, rest = int(counted.group(1)), counted.group(2)  # <len>,<payload>
        elif rest.isdigit() and self._buffered_read_pending():
            return False  # <len> on its own: the payload follows on the next line
        self._msg_client = int(match.group(1))
        self._msg_id = int(match.group(2))
        self._msg_topic = match.group(3).decode("utf-8", errors="replace")
        self._msg_header = line[: match.start(4)]
        self._msg_length = length
        self._msg_keep = len(rest) <= self.max_payload
        self._emit_message(rest)
        return True

    def _start_split_message(self, match: re.Match[str]) -> None:
        self._msg_client = int(match.group(1))
        self._msg_id = int(match.group(2))
        self._msg_topic = match.group(3)
        self._msg_header = match.group(0).encode()
        self._msg_parts = []
        self._msg_length = self._msg_need = int(match.group(4))
        self._msg_trailer_required = False
        self._msg_keep = self._msg_length <= self.max_payload
        self._mode = _Mode.COUNT

    def _consume_pending_lf(self) -> bool:
        """Swallow the LF of a CR LF that ended the line before a counted block.
        False if the byte that decides it has not arrived yet."""
        if self._skip_lf:
            if self._off >= len(self._buf):
                return False
            self._skip_lf = False
            if self._buf[self._off] == LF:
                self._off += 1
        return True

    def _step_count(self) -> bool:
        if self._skip_lf and not self._consume_pending_lf():
            return False
        buf, off = self._buf, self._off
        avail = len(buf) - off
        need = self._msg_need
        if avail <= 0 and need > 0:
            return False
        take = avail if avail < need else need
        if take:
            if self._msg_keep:
                self._msg_parts.append(bytes(buf[off : off + take]))
            self._off = off + take
            self._msg_need -= take
        if self._msg_need == 0:
            self._mode = _Mode.TRAILER
            self._msg_trailer_quote = False
            return True
        return False

    def _step_trailer(self) -> bool:
        buf, off = self._buf, self._off
        if off >= len(buf):
            return False
        byte = buf[off]
        if not self._msg_trailer_required:
            # split form: an optional CR LF after the payload
            if byte in (CR, LF):
                self._off = off + 1
                self._skip_lf = byte == CR
            self._emit_message(b"".join(self._msg_parts))
            return True
        if not self._msg_trailer_quote:
            if byte == 0x22:  # '"'
                self._msg_trailer_quote = True
                self._off = off + 1
                return True
        elif byte in (CR, LF):
            self._off = off + 1
            self._skip_lf = byte == CR
            self._emit_message(b"".join(self._msg_parts))
            return True
        # the length field did not frame the payload: report everything, resynchronise
        payload = b"".join(self._msg_parts)
        sample = self._msg_header + payload + (b'"' if self._msg_trailer_quote else b"")
        self._garbage(
            sample, len(sample), f"+QMTRECV payload of declared length {self._msg_length} is not followed by '\"' CR LF"
        )
        self._msg_parts = []
        self._to_line_mode()
        self._scan = self._off
        return True

    def _step_quoted(self) -> bool:
        buf = self._buf
        scan = max(self._off, self._scan)
        while True:
            q = buf.find(b'"', scan)
            # payload so far: up to the next quote (it may be the closing one)
            if self._msg_keep and (q if q >= 0 else len(buf)) - self._off > self.max_line:
                limit = self.max_line + 1
                sample = self._msg_header + bytes(buf[self._off : self._off + min(GARBAGE_SAMPLE, limit)])
                self._garbage(sample, limit, f"+QMTRECV payload without length over {self.max_line} bytes")
                self._msg_keep = False  # count through to the closing quote, keeping nothing
            if q < 0 or q + 1 >= len(buf):
                if self._msg_keep:
                    self._scan = q if q >= 0 else len(buf)
                else:  # drop all but a trailing quote, which may be the closing one
                    self._off = self._scan = q if q >= 0 else len(buf)
                return False
            nxt = buf[q + 1]
            if nxt in (CR, LF):
                payload = bytes(buf[self._off : q])
                self._off = q + 2
                self._scan = self._off
                self._skip_lf = nxt == CR
                if self._msg_keep:
                    self._emit_message(payload)
                else:
                    self._to_line_mode()  # already reported as garbage
                return True
            scan = q + 1

    def _emit_message(self, payload: bytes) -> None:
        if not self._msg_keep:
            self._garbage(self._msg_header, self._msg_length or 0, f"+QMTRECV payload over {self.max_payload} bytes")
            self._msg_parts = []
            self._to_line_mode()
            self._scan = self._off
            return
        pending = self._pending
        spec = pending.command.spec if pending is not None else None
        buffered = spec is not None and spec.name == "+QMTRECV" and spec.form is Form.WRITE
        self._events.append(
            MqttMessage(self._msg_client, self._msg_id, self._msg_topic, payload, self._msg_length, buffered)
        )
        self._msg_parts = []
        self._to_line_mode()
        self._scan = self._off


_SIM_GONE = frozenset({"NOT READY", "NOT INSERTED", "SIM REMOVED", "NO SIM"})


def _sim_status(prefix: str, values: tuple[FieldValue, ...], text: str) -> SimStatus | None:
    """An unsolicited ``+CPIN: <state>`` or ``+QSIMSTAT: <en>,<inserted>`` (a pending
    ``AT+CPIN?`` takes its own answer before this is asked)."""
    if prefix == "+CPIN" and len(values) == 1 and isinstance(values[0], str):
        state = values[0].strip().upper()
        if state in _SIM_GONE:
            return SimStatus(False, False, text)
        return SimStatus(True, state == "READY", text)
    if prefix == "+QSIMSTAT" and len(values) == 2 and isinstance(values[1], int) and values[1] in (0, 1, 2):
        return SimStatus({0: False, 1: True, 2: None}[values[1]], False, text)
    return None


def _echo_forms(line: bytes) -> tuple[bytes, ...]:
    """The echo of a command line as a module may show it: whole, or from its ``AT`` on
    (a module may drop what the host sent before ``AT``, such as a leading blank)."""
    start = line.upper().find(b"AT")
    return (line, line[start:]) if start > 0 else (line,)


_SALVAGE_BANNERS = sorted(
    (w.encode() for w in (*BANNERS_READY, *BANNERS_DOWN, *BANNERS_PSM, *BANNERS_OTHER)), key=len, reverse=True
)
_PREFIXED_TAIL = re.compile(rb"\+[A-Z][A-Z0-9]*: ?[ -~]*\Z")


def _suffix_prefix(data: bytes | bytearray, token: bytes) -> int:
    """Length of the longest end of `data` that is a proper beginning of `token`."""
    for size in range(min(len(token) - 1, len(data)), 0, -1):
        if data.endswith(token[:size]):
            return size
    return 0


def _salvage(line: bytes, noise_end: int) -> bytes:
    """The banner or +URC at the end of a noisy line, after `noise_end`; empty if none."""
    for word in _SALVAGE_BANNERS:
        if line.endswith(word) and len(line) - len(word) >= noise_end:
            return word
    plus = line.find(b"+", noise_end)
    if plus >= 0 and _PREFIXED_TAIL.match(line, plus):
        return line[plus:]
    return b""


def _hide(
    values: tuple[FieldValue, ...], secret_fields: tuple[int, ...], text: str, prefix: str
) -> tuple[tuple[FieldValue, ...], str]:
    """Wrap secret fields in `Secret` and remove their values from the line text."""
    out = list(values)
    for index in secret_fields:
        if -len(out) <= index < len(out):
            value = out[index]
            if isinstance(value, str) and value:
                out[index] = Secret(value, f"{prefix.lstrip('+').lower()}_field")
                text = text.replace(value, REDACTED)
    return tuple(out), text
