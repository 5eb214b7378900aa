"""The asyncio runtime: one reader task, one command in flight, URC fan-out, lifecycle.

    async with Modem(open_transport("/dev/ttyUSB2")) as modem:
        reply = await modem.execute(commands.QMTOPEN(0, "broker", 1883))
        print(reply.result.fields)          # (0, 0): the +QMTOPEN URC

Rules it keeps (DESIGN section 4):

* One reader task feeds the codec and routes events: the final result to the command in
  flight, two-phase results to their waiters, everything else to subscribers.
* One command in flight. A command runs in its own task; the caller awaits it through a
  shield, so cancelling the caller never leaves the module half-way: once a command is
  written its data phase is completed (or aborted with ESC where the module allows it)
  and its final result consumed before the next command starts.
* A two-phase waiter is registered *before* the command is written. ``+QMTSTAT`` for its
  client, a reboot or a lost port fail it at once; unknown results are stale (debug log).
* ``RDY``/``POWERED DOWN``, `max_timeouts` time-outs in a row, or a lost port fail every
  in-flight operation with a specific error, bump `generation`, and re-run the init
  script (after reopening the port, or resetting the module through `reset_hook`).
* Subscribers get bounded queues; on overflow the oldest entry is dropped and an
  `Overflow` with the count is delivered in its place.
* Logging goes to ``logging.getLogger("quecmqtt.modem")``; commands appear redacted and
  every logged line passes through the `Redactor`. Payloads are logged by size only.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from quecmqtt.at import commands as C
from quecmqtt.at.codec import AtCodec
from quecmqtt.at.events import (
    CommandComplete,
    Event,
    Final,
    Garbage,
    ModuleReady,
    MqttMessage,
    MqttStatus,
    PoweredDown,
    Prompt,
    Response,
    UnsolicitedFinal,
    Urc,
)
from quecmqtt.at.spec import Command, DataKind
from quecmqtt.errors import (
    CommandError,
    CommandTimeout,
    InternalError,
    LinkLost,
    LocalProtocolError,
    ModuleRebooted,
    ModuleUnresponsive,
    NotOpen,
    PortLost,
    QuecError,
)
from quecmqtt.redact import Redactor, secrets_in_json
from quecmqtt.secret import Secret
from quecmqtt.transport.base import Transport
from quecmqtt.transport.recorder import RecorderTransport

log = logging.getLogger("quecmqtt.modem")

ESC = b"\x1b"

# Set while a modem's start-up or recovery runs, so init steps can call `execute` before
# the modem is ready (contextvars follow the tasks they create).
_IN_START_UP: contextvars.ContextVar[Modem | None] = contextvars.ContextVar("quecmqtt_start_up", default=None)


@dataclass(frozen=True, slots=True)
class Overflow(Event):
    """Delivered to a subscriber in place of `dropped` entries lost to a full queue."""

    dropped: int


@dataclass(frozen=True, slots=True)
class ModuleReset(Event):
    """The module this modem talked to is gone: it rebooted, stopped answering, or the port
    was lost. Everything that lived on it (MQTT links, PDP, settings) must be rebuilt."""

    generation: int
    reason: str


Listener = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class Reply:
    """What a command produced: its final result, response lines, download body, and
    for two-phase commands the result URC."""

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
    """A submitted command whose final result has arrived; `result()` awaits its
    two-phase result."""

    def __init__(self, reply: Reply, waiter: _Waiter | None) -> None:
        self.reply = reply
        self._waiter = waiter

    async def result(self) -> Urc:
        if self._waiter is None:
            raise LocalProtocolError(f"{self.reply.command.redacted} has no two-phase result")
        return await self._waiter.wait()


class State(Enum):
    CLOSED = "closed"
    STARTING = "starting"  # opening, synchronising, running the init script
    READY = "ready"
    RECOVERING = "recovering"  # after a reboot, time-outs or a lost port


InitStep = Callable[["Modem"], Awaitable[None]]
ResetHook = Callable[[], Awaitable[None]]


class _Waiter:
    """A two-phase result awaited for one command."""

    def __init__(self, modem: Modem, command: Command) -> None:
        spec = command.spec.result
        assert spec is not None
        self.command = command
        self.prefix = spec.prefix
        self.key = command.result_key() or ()
        self.client = command.client
        self.fails_on = spec.fails_on
        self.timeout = command.result_timeout or 60.0
        self.future: asyncio.Future[Urc] = asyncio.get_running_loop().create_future()
        self._modem = modem

    def matches(self, urc: Urc) -> bool:
        return tuple(urc.fields[: len(self.key)]) == self.key

    async def wait(self) -> Urc:
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.shield(self.future)
        except TimeoutError:
            self._modem._drop_waiter(self)
            raise CommandTimeout(self.command.redacted, self.timeout, f"its {self.prefix} result") from None
        except BaseException:
            # a cancelled wait must not leave a waiter that would take a later command's result
            self._modem._drop_waiter(self)
            raise

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)
            self.future.exception()  # mark retrieved: nobody may be waiting any more


class _InFlight:
    def __init__(self, command: Command) -> None:
        loop = asyncio.get_running_loop()
        self.command = command
        self.prompt: asyncio.Future[Prompt] = loop.create_future()
        self.done: asyncio.Future[CommandComplete] = loop.create_future()
        self.caller_cancelled = False

    def fail(self, exc: BaseException) -> None:
        for fut in (self.prompt, self.done):
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()


Selector = type[Event] | str


class Subscription:
    """A bounded queue of events that match the selectors given to `Modem.subscribe`.

    Iterate with ``async for``; `close()` (or leaving ``with``) unsubscribes."""

    def __init__(self, modem: Modem, selectors: Sequence[Selector], maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._modem = modem
        self._classes = tuple(s for s in selectors if isinstance(s, type))
        self._prefixes = frozenset(s.upper() for s in selectors if isinstance(s, str))
        self.maxsize = maxsize
        self._items: deque[Event] = deque()
        self._dropped = 0
        self._wakeup = asyncio.Event()
        self.closed = False

    def wants(self, event: Event) -> bool:
        if isinstance(event, self._classes):
            return True
        return bool(self._prefixes) and isinstance(event, Urc) and event.prefix.upper() in self._prefixes

    def offer(self, event: Event) -> None:
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self._dropped += 1
        self._items.append(event)
        self._wakeup.set()

    def get_nowait(self) -> Event | None:
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            return Overflow(dropped)
        if self._items:
            return self._items.popleft()
        return None

    async def get(self, timeout: float | None = None) -> Event:
        async def _wait() -> Event:
            while True:
                item = self.get_nowait()
                if item is not None:
                    return item
                if self.closed:
                    raise StopAsyncIteration
                self._wakeup.clear()
                await self._wakeup.wait()

        async with asyncio.timeout(timeout):
            return await _wait()

    def __len__(self) -> int:
        return len(self._items) + (1 if self._dropped else 0)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()
        self._modem._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Modem:
    """Drives one module through one transport. See the module docstring.

    Parameters worth knowing:

    * `init_script`: run ``ATE0``, ``AT+CMEE=<cmee>`` (and ``AT+QURCCFG`` when `urc_port`
      is given) plus every step added with `add_init_step`, after open and after every
      reboot or reopen. Off for replaying a recorded session as recorded.
    * `reconcile`: on open, find MQTT clients left open by an earlier process and close
      those no layer has claimed with `claim_client`.
    * `max_timeouts`: consecutive command time-outs that declare the module unresponsive.
    * `reset_hook`: an async callable that power-cycles the module (GPIO, USB power);
      without one, ``AT+CFUN=1,1`` is tried. `reset_backoff` gives the pause before the
      1st, 2nd, ... reset in a row (seconds; the last value repeats).
    * `record`: write a redacted transcript of the session to this path.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        init_script: bool = True,
        reconcile: bool = True,
        cmee: int = 2,
        urc_port: str | None = None,
        max_timeouts: int = 3,
        reset_hook: ResetHook | None = None,
        reset_backoff: Sequence[float] = (0.0, 600.0, 1800.0, 3600.0),
        reopen_backoff: tuple[float, float] = (0.05, 5.0),
        reboot_grace: float = 30.0,
        recovery_wait: float = 120.0,
        sync_attempts: int = 5,
        record: str | os.PathLike[str] | None = None,
        redactor: Redactor | None = None,
        codec_options: dict[str, int] | None = None,
    ) -> None:
        if redactor is None:
            # a recorder built by the caller must learn the secrets this runtime sees
            redactor = transport.redactor if isinstance(transport, RecorderTransport) else Redactor()
        self.redactor = redactor
        if record is not None:
            transport = RecorderTransport(transport, record, self.redactor)
        self.transport = transport
        self.init_script = init_script
        self.reconcile = reconcile
        self.cmee = cmee
        self.urc_port = urc_port
        self.max_timeouts = max_timeouts
        self.reset_hook = reset_hook
        self.reset_backoff = tuple(reset_backoff) or (0.0,)
        self.reopen_backoff = reopen_backoff
        self.reboot_grace = reboot_grace
        self.recovery_wait = recovery_wait
        self.sync_attempts = sync_attempts
        self._codec_options = codec_options or {}
        self._codec = AtCodec(**self._codec_options)
        self.state = State.CLOSED
        self.generation = 0
        self._init_steps: list[InitStep] = []
        self._owned_clients: set[int] = set()
        self._closing: dict[int, float] = {}  # client -> until when +QMTSTAT is expected
        self._lock = asyncio.Lock()
        self._inflight: _InFlight | None = None
        self._waiters: dict[str, list[_Waiter]] = {}
        self._result_prefixes = frozenset(s.result.prefix for s in C.ALL if s.result is not None)
        self._subscriptions: list[Subscription] = []
        self._listeners: list[Listener] = []
        self._reader_task: asyncio.Task[None] | None = None
        self._lifecycle_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ready = asyncio.Event()
        self._trouble = asyncio.Event()  # something needs recovery
        self._trouble_reason = ""
        self._unresponsive = False  # the next recovery must reset the module
        self._rdy = asyncio.Event()  # set by RDY, cleared by POWERED DOWN and resets
        self._rdy.set()
        self._port_event = asyncio.Event()  # set while the port is open
        self._port_up = False
        self._stale_risk = False  # a command was given up: its answer may still come
        self._unsolicited = asyncio.Event()  # set on every final result with nothing pending
        self._consecutive_timeouts = 0
        self._resets_in_a_row = 0
        self._last_ready_banner = -1e9
        self._last_error: QuecError | None = None
        self._failure: QuecError | None = None  # what failed the last generation's operations
        self._expect_reboot = False

    # -- life cycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Modem:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def add_init_step(self, step: InitStep) -> None:
        """Run `step(modem)` in every init script (after open and every reboot). Layers
        that own volatile module settings (MQTT, SSL, HTTP configuration) re-apply them
        here. Steps must be idempotent."""
        self._init_steps.append(step)

    def remove_init_step(self, step: InitStep) -> None:
        with contextlib.suppress(ValueError):
            self._init_steps.remove(step)

    def claim_client(self, client: int, *, exclusive: bool = False) -> None:
        """Mark an MQTT client index as owned by this process (reconciliation keeps it).
        `exclusive`: raise if it is claimed already (two objects driving one index)."""
        if exclusive and client in self._owned_clients:
            raise LocalProtocolError(f"MQTT client index {client} is already in use on this modem")
        self._owned_clients.add(client)

    def release_client(self, client: int) -> None:
        self._owned_clients.discard(client)

    async def open(self) -> None:
        """Open the port, synchronise with the module, reconcile and run the init script."""
        if self.state is not State.CLOSED:
            raise LocalProtocolError("modem is already open")
        self._forget_the_past()
        self.state = State.STARTING
        try:
            await self.transport.open()
        except BaseException:
            self.state = State.CLOSED
            raise
        self._set_port_up(True)
        self._reader_task = asyncio.create_task(self._reader(), name="quecmqtt-reader")
        try:
            try:
                await self._start_up(first=True)
            except ModuleUnresponsive:
                if self.reset_hook is None:
                    raise
                log.warning("the module does not answer at start-up: resetting it")
                await self._reset_module()
                await self._await_banner(self.reboot_grace)
                await self._start_up(first=True)
        except BaseException:
            await self.close()
            raise
        self._lifecycle_task = asyncio.create_task(self._lifecycle(), name="quecmqtt-lifecycle")

    def _forget_the_past(self) -> None:
        """A modem opened again starts clean: nothing from before a close() applies."""
        self._codec = AtCodec(**self._codec_options)
        self._stale_risk = self._unresponsive = False
        self._trouble.clear()
        self._closing.clear()
        self._waiters.clear()
        self._consecutive_timeouts = self._resets_in_a_row = 0
        self._failure = None
        self._rdy.set()

    async def close(self) -> None:
        """Stop the tasks and close the port. Pending operations fail with `NotOpen`."""
        if self.state is State.CLOSED and self._reader_task is None:
            return
        self.state = State.CLOSED
        self._ready.clear()
        self._fail_everything(NotOpen("modem closed"))
        current = asyncio.current_task()
        # asyncio.wait, never `await task`: a cancellation of close() itself must propagate
        helpers = [t for t in (self._reader_task, self._lifecycle_task) if t is not None and t is not current]
        for task in helpers:
            task.cancel()
        if helpers:
            await asyncio.wait(helpers)
        # Command tasks end by themselves with NotOpen (their futures just failed, and a
        # queued one finds the modem closed), which is what their callers should see; only
        # one stuck in a write is cancelled.
        commands = [t for t in self._tasks if t is not current]
        if commands:
            _, stuck = await asyncio.wait(commands, timeout=1.0)
            for task in stuck:
                task.cancel()
            if stuck:
                await asyncio.wait(stuck)
        for task in (*helpers, *commands):
            if not task.cancelled():
                task.exception()  # retrieved: their failures were already reported to callers
        self._reader_task = self._lifecycle_task = None
        self._tasks.clear()
        with contextlib.suppress(QuecError, OSError):
            await self.transport.close()
        self._set_port_up(False)
        for sub in list(self._subscriptions):
            sub.close()

    @property
    def ready(self) -> bool:
        return self.state is State.READY

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until start-up or recovery has finished."""
        await self._wait_ready(timeout if timeout is not None else self.recovery_wait)

    # -- commands ---------------------------------------------------------------------------

    async def execute(
        self,
        command: Command,
        data: bytes | Secret | None = None,
        *,
        timeout: float | None = None,
        result_timeout: float | None = None,
        wait_result: bool = True,
    ) -> Reply:
        """Send `command` and wait for its final result (and, for two-phase commands, its
        result URC unless `wait_result` is false). `data` answers a data prompt; pass a
        `Secret` to keep it out of logs and transcripts.

        Raises `CommandError` for ``ERROR``/``+CME ERROR`` (with a result line that came
        instead of ``OK``), `CommandTimeout`, `ModuleRebooted`, `PortLost`, `LinkLost`."""
        pending = await self.submit(
            command, data, timeout=timeout, result_timeout=result_timeout, _want_result=wait_result
        )
        if pending._waiter is None:
            return pending.reply
        return dataclasses.replace(pending.reply, result=await pending.result())

    async def submit(
        self,
        command: Command,
        data: bytes | Secret | None = None,
        *,
        timeout: float | None = None,
        result_timeout: float | None = None,
        _want_result: bool = True,
    ) -> Pending:
        """Like `execute`, but return once the final result is in; await
        ``pending.result()`` for the two-phase result. The next command can be sent
        meanwhile: this is how several publishes are kept in flight."""
        self._check_data(command, data)
        if self.state is State.CLOSED:
            raise NotOpen("modem is not open")
        loop = asyncio.get_running_loop()
        # An explicit time-out bounds the wait for a recovery, the wait for the port (behind
        # other commands) and the final result together.
        deadline = loop.time() + timeout if timeout is not None else None
        if _IN_START_UP.get() is not self:  # init steps run before the modem is ready
            await self._wait_ready(timeout if timeout is not None else self.recovery_wait)
        return await self._run_shielded(command, data, deadline, result_timeout, _want_result)

    async def _run_shielded(
        self,
        command: Command,
        data: bytes | Secret | None,
        deadline: float | None,
        result_timeout: float | None,
        want_result: bool,
    ) -> Pending:
        started = asyncio.Event()
        generation = self.generation
        task = asyncio.create_task(self._run(command, data, deadline, result_timeout, want_result, started, generation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not started.is_set():
                task.cancel()  # nothing written yet: just drop it
            else:
                inflight = self._inflight
                if inflight is not None and inflight.command is command:
                    inflight.caller_cancelled = True
                task.add_done_callback(_consume_result)
            raise

    def _check_data(self, command: Command, data: bytes | Secret | None) -> None:
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

    async def _run(
        self,
        command: Command,
        data: bytes | Secret | None,
        deadline: float | None,
        result_timeout: float | None,
        want_result: bool,
        started: asyncio.Event,
        generation: int,
    ) -> Pending:
        queued_at = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout_at(deadline):
                await self._lock.acquire()
        except TimeoutError:
            waited = deadline - queued_at if deadline is not None else 0.0
            raise CommandTimeout(command.redacted, waited, "its turn (other commands were ahead)") from None
        try:
            if self.closed:
                raise NotOpen("modem closed")
            if generation != self.generation and self._failure is not None:
                # queued behind a command that a reboot, a reset or a lost port failed: the
                # module this was meant for is gone, so fail it the same way
                raise self._failure
            if not self._port_up:
                raise PortLost(f"{self.transport.name} is not open")
            waiter: _Waiter | None = None
            if command.spec.result is not None and want_result:
                waiter = _Waiter(self, command)
                if result_timeout is not None:
                    waiter.timeout = result_timeout
                self._waiters.setdefault(waiter.prefix, []).append(waiter)  # before the write
            try:
                if self._stale_risk:
                    await self._guard()
                remaining = None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())
                completion = await self._exchange(command, data, remaining, started)
            except BaseException as exc:
                if waiter is not None:
                    self._drop_waiter(waiter)
                    waiter.fail(exc if isinstance(exc, QuecError) else NotOpen("command abandoned"))
                raise
            reply = Reply(command, completion.final, completion.responses, completion.body)
            if not completion.final.ok:
                if waiter is not None:
                    self._drop_waiter(waiter)
                    waiter.fail(CommandError(command.redacted, completion.final))
                raise CommandError(
                    command.redacted, completion.final, lines=completion.responses, results=completion.results
                )
            return Pending(reply, waiter)
        finally:
            self._lock.release()

    async def _exchange(
        self, command: Command, data: bytes | Secret | None, timeout: float | None, started: asyncio.Event | None
    ) -> CommandComplete:
        """Send one command and take its final result; the caller holds the lock."""
        for secret in command.secrets:
            self.redactor.add(secret)  # before the write: the recorder and the logs need it
        self.redactor.add_line(command.line, command.secret_spans)  # the command and its echo
        inflight = _InFlight(command)
        wire = self._codec.send(command)
        self._inflight = inflight
        if started is not None:
            started.set()
        if command.spec.closes_client and command.client is not None:
            self._closing[command.client] = float("inf")
        elif command.spec.name == "+QMTOPEN" and command.client is not None:
            # a new connection on this index: its +QMTSTAT reports are real again
            self._closing.pop(command.client, None)
        try:
            return await self._converse(inflight, wire, data, timeout)
        finally:
            self._inflight = None
            if command.spec.closes_client and command.client is not None:
                self._closing[command.client] = asyncio.get_running_loop().time() + 5.0

    async def _guard(self) -> None:
        """After a command was given up (time-out, cancellation) its answer may still
        arrive, and with echo off a late ``OK`` is indistinguishable from the next
        command's. Probe with a command whose answer is recognisable (``AT+CMEE?`` answers
        ``+CMEE: <n>``) until a probe gets its own answer; a probe completed without it was
        completed by a late answer, so wait for the probe's own final before probing again."""
        for _ in range(4):
            self._unsolicited.clear()
            completion = await self._exchange(C.CMEE_READ(), None, 2.0, None)
            if any(r.prefix == "+CMEE" for r in completion.responses):
                self._stale_risk = False
                return
            log.debug("a late answer completed the sync probe; waiting for the probe's own answer")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._unsolicited.wait()
        raise ModuleUnresponsive("could not re-synchronise with the module after a time-out")

    async def _converse(
        self, inflight: _InFlight, wire: bytes, data: bytes | Secret | None, timeout: float | None
    ) -> CommandComplete:
        command = inflight.command
        log.debug("> %s", command.redacted)
        limit = timeout if timeout is not None else command.timeout
        try:
            await self._write(wire, limit, command)
            phase = command.spec.data
            if phase is not None and phase.kind is not DataKind.DOWNLOAD:
                assert data is not None
                await self._data_phase(inflight, data, phase.timeout, limit)
            try:
                async with asyncio.timeout(limit):
                    completion = await asyncio.shield(inflight.done)
            except TimeoutError:
                raise CommandTimeout(command.redacted, limit) from None
        except BaseException as exc:
            if self._codec.pending is command:
                self._abandon()
                # its answer may still arrive and complete the next command: guard first
                self._stale_risk = not isinstance(exc, PortLost | ModuleRebooted | NotOpen)
            if isinstance(exc, CommandTimeout):
                self._note_timeout()
            elif isinstance(exc, PortLost) and self._port_up:
                self._port_failed(exc)
                # the reader may sit in a read that never fails: closing the port wakes it
                # with PortLost, and it reopens the port
                with contextlib.suppress(Exception):
                    await self.transport.close()
            raise
        self._consecutive_timeouts = 0
        self._resets_in_a_row = 0
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
                await self.transport.write(data)
        except TimeoutError:
            raise CommandTimeout(command.redacted, limit, "the port to take the bytes") from None

    async def _data_phase(self, inflight: _InFlight, data: bytes | Secret, prompt_timeout: float, limit: float) -> None:
        futures: set[asyncio.Future[Any]] = {inflight.prompt, inflight.done}
        done, _ = await asyncio.wait(futures, timeout=prompt_timeout, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            raise CommandTimeout(inflight.command.redacted, prompt_timeout, "its data prompt")
        if inflight.done in done and not inflight.prompt.done():
            return  # the module answered (an error, usually) without prompting
        inflight.prompt.result()  # re-raises a failure (reboot, lost port)
        if isinstance(data, Secret):
            self.redactor.add(data)
            raw = data.reveal_bytes()
        else:
            raw = data
        phase = inflight.command.spec.data
        if inflight.caller_cancelled and phase is not None and phase.abort is not None:
            log.debug("caller cancelled: aborting the data entry of %s", inflight.command.redacted)
            await self._write(self._codec.abort_data(), limit, inflight.command)
            return
        log.debug("> [%d bytes of data]", len(raw))
        await self._write(self._codec.send_data(raw), limit, inflight.command)

    def _abandon(self) -> None:
        self._codec.abandon()
        self._dispatch_all()

    # -- two-phase results -----------------------------------------------------------------

    def _drop_waiter(self, waiter: _Waiter) -> None:
        waiters = self._waiters.get(waiter.prefix)
        if waiters and waiter in waiters:
            waiters.remove(waiter)

    def _resolve_result(self, urc: Urc) -> bool:
        """Give a result URC to its waiter. True if it was a result (matched or stale)."""
        waiters = self._waiters.get(urc.prefix)
        if waiters:
            for waiter in waiters:
                if waiter.matches(urc):
                    waiters.remove(waiter)
                    if not waiter.future.done():
                        waiter.future.set_result(urc)
                    return True
        if urc.prefix in self._result_prefixes:
            log.debug("stale result ignored: %s", self.redactor.redact_text(urc.text))
            return True
        return False

    def _fail_client(self, client: int, prefix: str, exc: QuecError) -> None:
        for waiters in self._waiters.values():
            for waiter in list(waiters):
                if waiter.client == client and prefix in waiter.fails_on:
                    waiters.remove(waiter)
                    waiter.fail(exc)

    # -- subscriptions ----------------------------------------------------------------------

    def subscribe(self, *selectors: Selector, maxsize: int = 256) -> Subscription:
        """A bounded queue of events: pass event classes (`MqttMessage`, `MqttStatus`,
        `Urc`, `Garbage`, `ModuleReady`...) and/or URC prefixes (``"+QIURC"``)."""
        if not selectors:
            raise LocalProtocolError("subscribe() needs at least one event class or URC prefix")
        sub = Subscription(self, selectors, maxsize)
        self._subscriptions.append(sub)
        return sub

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` for every event, in the reader task, before subscribers.
        For layers that track state (an MQTT client following its link); it must be quick
        and must not raise. Returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _unsubscribe(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(sub)

    def _publish(self, event: Event) -> bool:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("listener %r failed on %r", listener, event)
        delivered = False
        for sub in self._subscriptions:
            if sub.wants(event):
                sub.offer(event)
                delivered = True
        return delivered

    # -- the reader -------------------------------------------------------------------------

    async def _reader(self) -> None:
        while True:
            try:
                data = await self.transport.read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not isinstance(exc, PortLost):  # a transport failing some other way: lost, loudly
                    log.error("reading from %s failed: %r", self.transport.name, exc, exc_info=True)
                    exc = PortLost(f"{self.transport.name}: {exc}")
                self._port_failed(exc)
                await self._reopen()
                continue
            try:
                self._codec.receive(data)
                self._dispatch_all()
            except Exception:
                # The codec never raises by contract and dispatch only routes; should either
                # fail anyway, keep the reader alive: start parsing afresh and say so.
                log.exception("internal error while parsing module output; parser reset")
                self._codec = AtCodec(**self._codec_options)
                self._fail_everything(InternalError("parser reset after an internal error; please report it"))
                self._stale_risk = True
            self._settle_recording()

    def _dispatch_all(self) -> None:
        for secret in self._codec.take_secrets():  # before the recorder writes their line
            self.redactor.add(secret)
        for event in self._codec.events():
            self._dispatch(event)

    def _settle_recording(self) -> None:
        """Let a recorder write the module output the codec has fully turned into events
        (and whose secrets the redactor therefore knows)."""
        if isinstance(self.transport, RecorderTransport):
            self.transport.settle(self._codec.buffered)

    def _dispatch(self, event: Event) -> None:
        inflight = self._inflight
        if isinstance(event, CommandComplete):
            for response in event.responses:  # secrets read back (aliauth) join the redactor
                for value in response.fields:
                    if isinstance(value, Secret):
                        self.redactor.add(value)
            if event.body:  # an HTTPS registration reply carries the DeviceSecret
                for secret in secrets_in_json(event.body):
                    self.redactor.add(secret)
            if inflight is not None and inflight.command is event.command and not inflight.done.done():
                inflight.done.set_result(event)
            return
        if isinstance(event, Prompt):
            if inflight is not None and inflight.command is event.command and not inflight.prompt.done():
                inflight.prompt.set_result(event)
            return
        if isinstance(event, Urc):
            if self._resolve_result(event):
                return
            if event.prefix == "+QMTPING" and event.fields and isinstance(event.fields[0], int):
                code = event.fields[1] if len(event.fields) > 1 and isinstance(event.fields[1], int) else -1
                self._fail_client(event.fields[0], "+QMTPING", LinkLost(event.fields[0], code))
            self._deliver(event, self.redactor.redact_text(event.text))
            return
        if isinstance(event, MqttMessage):
            # before the recorder writes this chunk: /ext/register replies carry secrets
            for secret in secrets_in_json(event.payload):
                self.redactor.add(secret)
            self._deliver(
                event,
                f"message client {event.client} id {event.msg_id} topic {event.topic!r}, {len(event.payload)} bytes",
            )
            return
        if isinstance(event, MqttStatus):
            self._on_mqtt_status(event)
            return
        if isinstance(event, ModuleReady):
            self._on_ready_banner(event)
            return
        if isinstance(event, PoweredDown):
            self._on_powered_down(event)
            return
        if isinstance(event, UnsolicitedFinal):
            log.debug("late final result ignored: %s", event.final.text)
            self._unsolicited.set()
            return
        if isinstance(event, Garbage):
            log.warning("garbage from the module (%d bytes): %s", event.length, event.reason)
            self._publish(event)
            return

    def _deliver(self, event: Event, description: str) -> None:
        if not self._publish(event):
            log.debug("unhandled: %s", description)

    def _on_mqtt_status(self, event: MqttStatus) -> None:
        until = self._closing.get(event.client)
        if until is not None and asyncio.get_running_loop().time() < until:
            log.debug("+QMTSTAT: %d,%d for a client being closed: ignored", event.client, event.code)
            return
        log.info("MQTT client %d link closed (+QMTSTAT code %d)", event.client, event.code)
        self._fail_client(event.client, "+QMTSTAT", LinkLost(event.client, event.code))
        self._publish(event)

    # -- lifecycle: reboots, time-outs, lost ports ------------------------------------------

    def _on_ready_banner(self, event: ModuleReady) -> None:
        now = asyncio.get_running_loop().time()
        # EC200U reports "APP RDY" (and +CFUN: 1) some seconds after RDY: one reboot.
        if event.banner != "RDY" and now - self._last_ready_banner < self.reboot_grace:
            log.debug("%s after RDY: same reboot", event.banner)
            self._publish(event)
            return
        self._last_ready_banner = now
        self._rdy.set()
        self._module_restarted(event.banner)
        self._publish(event)

    def _on_powered_down(self, event: PoweredDown) -> None:
        self._rdy.clear()  # recovery waits (a while) for the RDY that follows a reboot
        self._module_restarted(event.banner)
        self._publish(event)

    def _module_restarted(self, banner: str) -> None:
        self.generation += 1
        expected = self._expect_reboot
        self._expect_reboot = False
        (log.info if expected else log.warning)("module reported %s: generation %d", banner, self.generation)
        self._fail_everything(ModuleRebooted(banner, self.generation))
        self._closing.clear()
        self._stale_risk = False  # a rebooted module answers nothing from before
        self._flag_trouble(f"module reported {banner}")

    def _note_timeout(self) -> None:
        self._consecutive_timeouts += 1
        if self._consecutive_timeouts >= self.max_timeouts and self.state is State.READY:
            self.generation += 1
            self._fail_everything(ModuleUnresponsive(f"{self._consecutive_timeouts} commands in a row got no answer"))
            self._flag_trouble("module stopped answering", unresponsive=True)

    def _set_port_up(self, up: bool) -> None:
        self._port_up = up
        if up:
            self._port_event.set()
        else:
            self._port_event.clear()

    def _port_failed(self, exc: PortLost) -> None:
        if not self._port_up:
            return
        self._set_port_up(False)
        self.generation += 1
        log.warning("port %s lost: %s (generation %d)", self.transport.name, exc, self.generation)
        self._fail_everything(PortLost(str(exc)))
        self._stale_risk = False
        self._codec = AtCodec(**self._codec_options)  # half a line from the old port is noise
        self._flag_trouble("port lost")

    def _fail_everything(self, exc: QuecError) -> None:
        self._failure = exc  # commands queued before this fail the same way
        inflight = self._inflight
        if inflight is not None:
            inflight.fail(exc)
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.fail(exc)
        self._waiters.clear()

    def _flag_trouble(self, reason: str, *, unresponsive: bool = False) -> None:
        if self.state is State.CLOSED:
            return
        self._publish(ModuleReset(self.generation, reason))
        self._trouble_reason = reason
        self._unresponsive = self._unresponsive or unresponsive
        if self.state is State.READY:
            self.state = State.RECOVERING
            self._ready.clear()
        self._trouble.set()

    async def _reopen(self) -> None:
        delay, limit = self.reopen_backoff
        if not self.transport.reopenable:
            log.error("%s cannot be reopened", self.transport.name)
            await asyncio.Event().wait()  # stay silent until closed
        while True:
            await asyncio.sleep(delay)
            try:
                await self.transport.reopen()
            except PortLost as exc:
                log.debug("reopen of %s failed: %s", self.transport.name, exc)
                delay = min(limit, delay * 2)
                continue
            self._set_port_up(True)
            log.info("port %s reopened", self.transport.name)
            return

    async def _lifecycle(self) -> None:
        """Recover from whatever `_flag_trouble` reported, one episode at a time."""
        _IN_START_UP.set(self)
        failures = 0
        while True:
            await self._trouble.wait()
            self._trouble.clear()
            try:
                await self._recover()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an init step or reset hook may raise anything
                if isinstance(exc, QuecError):
                    self._last_error = exc
                    log.error("recovery failed: %s", exc)
                else:
                    log.exception("recovery failed")
                if isinstance(exc, ModuleUnresponsive | CommandTimeout):
                    self._unresponsive = True  # a module silent during recovery gets a reset
                failures += 1
                pause = min(30.0, 0.5 * 2**failures)
                log.info("retrying recovery in %.1f s", pause)
                self._trouble.set()
                await asyncio.sleep(pause)

    async def _recover(self) -> None:
        log.info("recovering: %s", self._trouble_reason)
        await self._port_event.wait()
        if self._unresponsive:
            self._unresponsive = False
            await self._reset_module()
        await self._await_banner(self.reboot_grace)
        # A RDY that arrived while we waited for it is this episode, not a new one.
        self._trouble.clear()
        await self._start_up(first=False)

    async def _reset_module(self) -> None:
        pause = self.reset_backoff[min(self._resets_in_a_row, len(self.reset_backoff) - 1)]
        self._resets_in_a_row += 1
        if pause:
            log.warning("resetting the module in %.0f s (reset %d in a row)", pause, self._resets_in_a_row)
            await asyncio.sleep(pause)
        self._expect_reboot = True
        self._rdy.clear()
        if self.reset_hook is not None:
            log.warning("resetting the module through the reset hook")
            await self.reset_hook()
        else:
            log.warning("resetting the module with AT+CFUN=1,1")
            with contextlib.suppress(QuecError):
                await self._execute_internal(C.CFUN(1, 1), timeout=5.0)

    async def _await_banner(self, grace: float) -> None:
        """After POWERED DOWN or a reset, wait up to `grace` seconds for RDY; the
        start-up sync follows either way (a module may come back without a banner)."""
        if self._rdy.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._rdy.wait()

    async def _start_up(self, *, first: bool) -> None:
        token = _IN_START_UP.set(self)  # reset below: open() runs this in the caller's task
        try:
            self.state = State.STARTING if first else State.RECOVERING
            self._ready.clear()
            await self._sync()
            if first and self.reconcile:
                await self._reconcile()
            if self.init_script:
                await self._run_init_script()
        finally:
            _IN_START_UP.reset(token)
        self._consecutive_timeouts = 0
        self.state = State.READY
        self._ready.set()
        log.info("module ready (generation %d)", self.generation)

    async def _sync(self) -> None:
        """Get the module's AT parser back: cancel a half-finished Ctrl-Z entry with ESC
        and repeat ``AT`` until it answers. A fixed-length entry left open by an earlier
        process swallows these bytes until its count or its time-out ends it, hence the
        retries."""
        if not self.init_script and not self.reconcile:
            return  # replaying a session as recorded: send nothing it did not record
        last: QuecError | None = None
        for attempt in range(self.sync_attempts):
            if attempt:  # only when the first AT went unanswered
                with contextlib.suppress(PortLost):
                    async with self._lock:
                        await self.transport.write(ESC)
            try:
                await self._execute_internal(C.AT(), timeout=1.0 + attempt)
                return
            except CommandError:
                return  # it answers; ERROR to a bare AT means leftover input was flushed
            except (CommandTimeout, ModuleRebooted, ModuleUnresponsive) as exc:
                last = exc
                continue
        raise ModuleUnresponsive(f"no answer to AT after {self.sync_attempts} attempts ({last})")

    async def _reconcile(self) -> None:
        """Close MQTT clients an earlier process left open, unless claimed."""
        found: dict[int, int] = {}  # client -> connection state (0 if only open)
        with contextlib.suppress(CommandError):
            reply = await self._execute_internal(C.QMTCONN_READ())
            for fields in reply.fields("+QMTCONN"):
                found[int(fields[0])] = int(fields[1])
        with contextlib.suppress(CommandError):
            reply = await self._execute_internal(C.QMTOPEN_READ())
            for fields in reply.fields("+QMTOPEN"):
                found.setdefault(int(fields[0]), 0)
        for client, state in sorted(found.items()):
            if client in self._owned_clients:
                continue
            log.info("closing MQTT client %d left open by an earlier process (state %d)", client, state)
            if state in (2, 3):
                with contextlib.suppress(QuecError):
                    await self._execute_internal(C.QMTDISC(client))
            with contextlib.suppress(QuecError):
                await self._execute_internal(C.QMTCLOSE(client))

    async def _run_init_script(self) -> None:
        await self._execute_internal(C.ATE0())
        await self._execute_internal(C.CMEE(self.cmee))
        if self.urc_port is not None:
            await self._execute_internal(C.QURCCFG_URCPORT(self.urc_port))
        for step in self._init_steps:
            await step(self)

    async def _execute_internal(self, command: Command, *, timeout: float | None = None) -> Reply:
        """`execute` for the start-up and recovery paths."""
        token = _IN_START_UP.set(self)
        try:
            return await self.execute(command, timeout=timeout)
        finally:
            _IN_START_UP.reset(token)

    async def _wait_ready(self, timeout: float) -> None:
        if self._ready.is_set():
            return
        if self.state is State.CLOSED:
            raise NotOpen("modem is not open")
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            if not self._port_up:
                raise PortLost(f"{self.transport.name} is lost and not back after {timeout:g} s") from None
            detail = f": {self._last_error}" if self._last_error else ""
            raise ModuleUnresponsive(f"module not ready after {timeout:g} s ({self._trouble_reason}){detail}") from None
        if self.closed:  # close() sets nothing ready, but may race with a recovery
            raise NotOpen("modem closed")

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED


def _consume_result(task: asyncio.Task[Any]) -> None:
    """Retrieve a detached command task's outcome so asyncio does not warn about it."""
    if not task.cancelled():
        task.exception()
