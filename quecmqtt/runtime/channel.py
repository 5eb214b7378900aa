"""The command channel: one command in flight, and everything that keeps it honest.

* A command runs in its own task; the caller awaits it through a shield. Cancelled before
  the write, it is dropped; after the write its data phase is completed (a Ctrl-Z entry is
  aborted with ESC instead) and its final result consumed, so the module never takes the
  next command as payload.
* A two-phase command's waiter is registered before the write (see `waiters`), and dropped
  when its caller goes away: no waiter outlives its caller.
* While the module waits for counted data, the shared-memory `EntryMarker` says so, so a
  process that starts after this one died there waits the entry out.
* **The late-answer guard.** After a command is given up (time-out, cancellation) its
  answer may still arrive, and with echo off a late ``OK`` looks like any other. The next
  command is preceded by ``AT+CMEE?``, whose answer (``+CMEE: <n>``) is recognisable; a
  probe completed without it was completed by the late answer, and the probe's own final
  result is awaited before probing again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quecmqtt.at import commands as C
from quecmqtt.at.events import CommandComplete, Final, Prompt, Response, ResponseOverflow, Urc
from quecmqtt.at.spec import Command, DataKind
from quecmqtt.errors import (
    CommandError,
    CommandTimeout,
    LocalProtocolError,
    ModuleRebooted,
    ModuleUnresponsive,
    NotOpen,
    PortLost,
    QuecError,
    ResponseTooLarge,
)
from quecmqtt.runtime.marker import EntryKind
from quecmqtt.runtime.waiters import Waiter
from quecmqtt.secret import Secret

if TYPE_CHECKING:
    from quecmqtt.runtime.modem import Modem

log = logging.getLogger("quecmqtt.runtime")

ESC = b"\x1b"
Inspector = Callable[[CommandComplete], None]
CommandObserver = Callable[[Command, str], None]  # (command, "sent" | "done")


@dataclass(frozen=True, slots=True)
class Reply:
    """What a command produced: its final result, response lines, download body, and for
    two-phase commands the result URC."""

    command: Command
    final: Final
    responses: tuple[Response, ...] = ()
    body: bytes | None = field(default=None, repr=False)
    result: Urc | None = None

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(r.text for r in self.responses)

    def fields(self, prefix: str) -> list[tuple[Any, ...]]:
        """Fields of every response line with `prefix`."""
        return [r.fields for r in self.responses if r.prefix == prefix]


class Pending:
    """A command whose final result is in; `result()` awaits its two-phase result."""

    def __init__(self, reply: Reply, waiter: Waiter | None) -> None:
        self.reply = reply
        self.waiter = waiter

    async def result(self) -> Urc:
        if self.waiter is None:
            raise LocalProtocolError(f"{self.reply.command.redacted} has no two-phase result")
        return await self.waiter.wait()


@dataclass(eq=False)
class Operation:
    """One call of `execute`/`submit`, from the caller's arguments to its outcome."""

    command: Command
    data: bytes | Secret | None = None
    deadline: float | None = None  # loop time bounding the whole call
    result_timeout: float | None = None
    want_result: bool = True
    entry_timeout: float | None = None  # the module's data-entry time-out, if the caller knows it
    inspect: Inspector | None = None  # sees the completion in the reader, before it is recorded
    generation: int = 0
    caller_cancelled: bool = False
    prompt: asyncio.Future[Prompt] = field(init=False)
    done: asyncio.Future[CommandComplete] = field(init=False)

    def __post_init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.prompt = loop.create_future()
        self.done = loop.create_future()

    def fail(self, exc: BaseException) -> None:
        for fut in (self.prompt, self.done):
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()

    def remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())


def check_data(command: Command, data: bytes | Secret | None) -> None:
    phase = command.spec.data
    needs = phase is not None and phase.kind is not DataKind.DOWNLOAD
    if needs and data is None:
        raise LocalProtocolError(f"{command.redacted} needs data for its data phase")
    if not needs and data is not None:
        raise LocalProtocolError(f"{command.redacted} has no data phase")
    length = command.data_length
    if data is not None and length is not None and len(data) != length:
        raise LocalProtocolError(f"{command.redacted} announces {length} bytes of data, got {len(data)}")
    if data is not None and phase is not None and phase.terminator:
        raw = data.reveal_bytes() if isinstance(data, Secret) else data
        if phase.terminator in raw or (phase.abort is not None and phase.abort in raw):
            raise LocalProtocolError(f"{command.redacted}: data holds Ctrl-Z or ESC; use a length form")


class CommandChannel:
    def __init__(self, modem: Modem) -> None:
        self._modem = modem
        self.lock = asyncio.Lock()
        self.inflight: Operation | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stale_risk = False  # a command was given up: its answer may still come
        self._unsolicited = asyncio.Event()  # set on every final result with nothing pending
        self._observers: list[CommandObserver] = []

    def observe(self, observer: CommandObserver) -> Callable[[], None]:
        """`observer(command, "sent")` right before a command is written and
        `observer(command, "done")` after its final result (or failure)."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer) if observer in self._observers else None

    def _notify(self, command: Command, what: str) -> None:
        for observer in list(self._observers):
            try:
                observer(command, what)
            except Exception:
                log.exception("command observer %r failed", observer)

    # -- from the reader -------------------------------------------------------------------

    def completed(self, event: CommandComplete) -> None:
        op = self.inflight
        if op is None or op.command is not event.command or op.done.done():
            return
        if op.inspect is not None:
            try:
                op.inspect(event)
            except Exception:
                log.exception("inspector of %s failed", op.command.redacted)
        op.done.set_result(event)

    def prompted(self, event: Prompt) -> None:
        op = self.inflight
        if op is not None and op.command is event.command and not op.prompt.done():
            op.prompt.set_result(event)

    def overflowed(self, event: ResponseOverflow) -> None:
        op = self.inflight
        if op is not None and op.command is event.command:
            op.fail(
                ResponseTooLarge(
                    f"{op.command.redacted}: the module sent more than {event.kept} lines or {event.size} bytes for it"
                )
            )

    def unsolicited(self) -> None:
        self._unsolicited.set()

    def fail_inflight(self, exc: BaseException) -> None:
        if self.inflight is not None:
            self.inflight.fail(exc)

    # -- running an operation ---------------------------------------------------------------

    async def run(self, op: Operation) -> Pending:
        """Run `op` in its own task behind a shield (see the module docstring)."""
        started = asyncio.Event()
        task = asyncio.create_task(self._run(op, started))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not started.is_set():
                task.cancel()  # nothing written yet: just drop it
            else:
                op.caller_cancelled = True
                task.add_done_callback(self._orphaned)
            raise

    def _orphaned(self, task: asyncio.Task[Pending]) -> None:
        """The caller went away after the write: nobody will await the result."""
        if task.cancelled() or task.exception() is not None:
            return
        waiter = task.result().waiter
        if waiter is not None:
            self._modem.waiters.drop(waiter)

    async def _run(self, op: Operation, started: asyncio.Event) -> Pending:
        modem = self._modem
        command = op.command
        queued_at = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout_at(op.deadline):
                await self.lock.acquire()
        except TimeoutError:
            waited = op.deadline - queued_at if op.deadline is not None else 0.0
            raise CommandTimeout(command.redacted, waited, "its turn (other commands were ahead)") from None
        try:
            modem.supervisor.check_sendable(op.generation)
            waiter: Waiter | None = None
            if command.spec.result is not None and op.want_result:
                timeout = op.result_timeout if op.result_timeout is not None else command.result_timeout or 60.0
                waiter = modem.waiters.add(command, timeout)  # before the write
            try:
                if self.stale_risk:
                    await self._guard()  # a caller cancelled meanwhile is dropped: nothing of its written
                started.set()
                completion = await self._exchange(op)
            except BaseException as exc:
                if waiter is not None:
                    modem.waiters.drop(waiter, exc if isinstance(exc, QuecError) else NotOpen("command abandoned"))
                raise
            reply = Reply(command, completion.final, completion.responses, completion.body)
            if not completion.final.ok:
                if waiter is not None:
                    modem.waiters.drop(waiter, CommandError(command.redacted, completion.final))
                raise CommandError(
                    command.redacted, completion.final, lines=completion.responses, results=completion.results
                )
            if completion.overflowed:
                if waiter is not None:
                    modem.waiters.drop(waiter, ResponseTooLarge(f"{command.redacted}: too many response lines"))
                raise ResponseTooLarge(f"{command.redacted}: the module sent more lines than are kept for a command")
            return Pending(reply, waiter)
        finally:
            self.lock.release()

    async def _exchange(self, op: Operation) -> CommandComplete:
        """Send one command and take its final result; the caller holds the lock."""
        modem = self._modem
        command = op.command
        for secret in command.secrets:
            modem.redactor.add(secret)  # before the write: the recorder and the logs need it
        modem.redactor.add_line(command.line, command.secret_spans)  # the command and its echo
        wire = modem.codec.send(command)
        self.inflight = op
        self._notify(command, "sent")
        try:
            return await self._converse(op, wire)
        finally:
            self.inflight = None
            self._notify(command, "done")

    async def _guard(self) -> None:
        for _ in range(4):
            self._unsolicited.clear()
            probe = Operation(C.CMEE_READ(), deadline=asyncio.get_running_loop().time() + 2.0)
            completion = await self._exchange(probe)
            if any(r.prefix == "+CMEE" for r in completion.responses):
                self.stale_risk = False
                return
            log.debug("a late answer completed the sync probe; waiting for the probe's own answer")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._unsolicited.wait()
        raise ModuleUnresponsive("could not re-synchronise with the module after a time-out")

    async def _converse(self, op: Operation, wire: bytes) -> CommandComplete:
        modem = self._modem
        command = op.command
        log.debug("> %s", command.redacted)
        remaining = op.remaining()
        limit = remaining if remaining is not None else command.timeout
        try:
            await self._write(wire, limit, command)
            phase = command.spec.data
            if phase is not None and phase.kind is not DataKind.DOWNLOAD:
                assert op.data is not None
                await self._data_phase(op, phase.timeout, limit)
            try:
                async with asyncio.timeout(limit):
                    completion = await asyncio.shield(op.done)
            except TimeoutError:
                raise CommandTimeout(command.redacted, limit) from None
        except BaseException as exc:
            if modem.codec.pending is command:
                modem.codec.abandon()
                modem.dispatch_all()
                # its answer may still arrive and complete the next command: guard first
                self.stale_risk = not isinstance(exc, PortLost | ModuleRebooted | NotOpen)
            if isinstance(exc, CommandTimeout):
                modem.supervisor.note_timeout()
            elif isinstance(exc, PortLost):
                modem.supervisor.port_lost(exc)
            raise
        modem.supervisor.note_success()
        log.debug(
            "< %s -> %s%s",
            command.redacted,
            completion.final.text,
            f" ({len(completion.responses)} lines)" if completion.responses else "",
        )
        return completion

    async def _write(self, data: bytes, limit: float, command: Command) -> None:
        """Write with a time-out: with flow control on, a module that never raises CTS
        would otherwise hold the port, and every later command, forever."""
        try:
            async with asyncio.timeout(limit):
                await self._modem.transport.write(data)
        except TimeoutError:
            raise CommandTimeout(command.redacted, limit, "the port to take the bytes") from None

    async def _data_phase(self, op: Operation, prompt_timeout: float, limit: float) -> None:
        modem = self._modem
        futures: set[asyncio.Future[Any]] = {op.prompt, op.done}
        done, _ = await asyncio.wait(futures, timeout=prompt_timeout, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            raise CommandTimeout(op.command.redacted, prompt_timeout, "its data prompt")
        if op.done in done:
            return  # the module answered (an error, or the end of its entry time): it waits for no data
        op.prompt.result()  # re-raises a failure (reboot, lost port)
        data = op.data
        assert data is not None
        if isinstance(data, Secret):
            modem.redactor.add(data)
            raw = data.reveal_bytes()
        else:
            raw = data
        phase = op.command.spec.data
        assert phase is not None
        if op.caller_cancelled and phase.abort is not None:
            log.debug("caller cancelled: aborting the data entry of %s", op.command.redacted)
            await self._write(modem.codec.abort_data(), limit, op.command)
            return
        wire = modem.codec.send_data(raw)
        marker = modem.marker
        if marker is not None:
            kind = EntryKind.CTRL_Z if phase.terminator else EntryKind.COUNTED
            entry_timeout = op.entry_timeout if op.entry_timeout is not None else op.command.input_timeout
            marker.set(kind, entry_timeout, len(raw))
        log.debug("> [%d bytes of data]", len(raw))
        await self._write(wire, limit, op.command)
        if marker is not None:
            marker.clear()  # not on a failed write: the module may hold part of it, the next one waits

    async def close(self) -> None:
        """Let command tasks end (their futures were failed with NotOpen); cancel one stuck
        in a write."""
        current = asyncio.current_task()
        tasks = [t for t in self.tasks if t is not current]
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=1.0)
            for task in stuck:
                task.cancel()
            if stuck:
                await asyncio.wait(stuck)
        for task in tasks:
            if not task.cancelled():
                task.exception()  # retrieved: their failures were already reported to callers
        self.tasks.clear()


def with_result(pending: Pending, result: Urc) -> Reply:
    return dataclasses.replace(pending.reply, result=result)
