"""`Modem`: one module behind one transport, put together from the runtime's parts.

    async with Modem(open_transport("/dev/ttyUSB2")) as modem:
        reply = await modem.execute(commands.CSQ())
        print(reply.fields("+CSQ"))         # [(20, 99)]

The parts, each with one job:

* `AtCodec` (sans-I/O): bytes in, events out;
* the reader task here: reads the port, feeds the codec, routes each event;
* `CommandChannel`: one command in flight, data phases, the late-answer guard;
* `WaiterRegistry`: two-phase results, with deadlines;
* `EventBus`: gates, listeners and bounded subscriptions for everything else;
* `Supervisor`: the lifecycle table (start-up, recovery, resets, a lost port);
* `InitSteps`: what layers re-apply after every (re)start, with owners and policies;
* `EntryMarker`: a data entry left open, seen by the next process.

Logging goes to ``logging.getLogger("quecmqtt.runtime")``; commands appear redacted and every
logged line passes through the `Redactor`. Payloads are logged by size only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from quecmqtt.at.codec import AtCodec
from quecmqtt.at.events import (
    Event,
)
from quecmqtt.at.spec import Command
from quecmqtt.errors import InternalError, LocalProtocolError, NotOpen, PortLost, QuecError
from quecmqtt.redact import Redactor
from quecmqtt.runtime.bus import EventBus, Listener, Selector, Subscription
from quecmqtt.runtime.channel import (
    CommandChannel,
    CommandObserver,
    Inspector,
    Operation,
    Pending,
    Reply,
    check_data,
    with_result,
)
from quecmqtt.runtime.dispatch import Dispatcher
from quecmqtt.runtime.marker import EntryMarker
from quecmqtt.runtime.steps import InitSteps, StepFunction, StepHandle
from quecmqtt.runtime.supervisor import IN_START_UP, ResetHook, RuntimeClosed, State, Supervisor, Trigger
from quecmqtt.runtime.waiters import WaiterRegistry
from quecmqtt.secret import Secret
from quecmqtt.transcripts.recorder import RecorderTransport
from quecmqtt.transport.base import Transport

log = logging.getLogger("quecmqtt.runtime")


class Modem:
    """Drives one module through one transport. See the module docstring.

    Parameters worth knowing:

    * `init_script`: run ``ATE0``, ``AT+CMEE=<cmee>`` (and ``AT+QURCCFG`` when `urc_port`
      is given) plus every step added with `add_init_step`, after open and after every
      reboot or reopen. Off for replaying a recorded session as recorded.
    * `urc_port` / `port_kind`: without `urc_port`, the module's URC port is read at start-up
      and a warning says when it is not the port this host is on (`port_kind`, else guessed
      from the device path; see `quecmqtt.runtime.urcport`).
    * `reconcile`: at open, run the steps layers registered to clean up what an earlier
      process left on the module (`first_only` steps).
    * `max_timeouts`: consecutive command time-outs that declare the module unresponsive.
    * `reset_hook`: an async callable that power-cycles the module (GPIO, USB power);
      without one, ``AT+CFUN=1,1`` is tried. `reset_backoff` gives the pause before the
      1st, 2nd, ... reset in a row (seconds; the last value repeats).
    * `record`: write a redacted transcript of the session to this path.
    * `entry_marker`: keep the shared-memory record of an open data entry (see
      `quecmqtt.runtime.marker`); on by default for serial ports.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        init_script: bool = True,
        reconcile: bool = True,
        cmee: int = 2,
        urc_port: str | None = None,
        port_kind: str | None = None,
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
        entry_marker: EntryMarker | bool | None = None,
        unknown_entry_wait: float = 180.0,
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
        self.urc_port = urc_port  # set AT+QURCCFG="urcport" to this at every start-up
        self.port_kind = port_kind  # which module port this is ("uart1", "usbat"); else guessed
        self.urc_port_warned: str | None = None
        self.recovery_wait = recovery_wait
        self.codec = AtCodec(**(codec_options or {}))
        self.bus = EventBus()
        self.waiters = WaiterRegistry()
        self.steps = InitSteps()
        self.channel = CommandChannel(self)
        self.supervisor = Supervisor(
            self,
            max_timeouts=max_timeouts,
            reset_hook=reset_hook,
            reset_backoff=reset_backoff,
            reopen_backoff=reopen_backoff,
            reboot_grace=reboot_grace,
            sync_attempts=sync_attempts,
            unknown_entry_wait=unknown_entry_wait,
        )
        if entry_marker is None or entry_marker is True:
            key = getattr(transport, "marker_key", None)
            entry_marker = EntryMarker(key) if key else None
        self.marker: EntryMarker | None = entry_marker or None
        self._reader_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.dispatcher = Dispatcher(self)

    def __repr__(self) -> str:
        return f"<Modem {self.transport.name} {self.state.value}, generation {self.generation}>"

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.supervisor.state

    @property
    def generation(self) -> int:
        return self.supervisor.generation

    @property
    def ready(self) -> bool:
        return self.state is State.READY

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    # -- life cycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Modem:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the port, wait out a data entry an earlier process left open, synchronise
        with the module and run the start-up steps."""
        supervisor = self.supervisor
        if self.state is not State.CLOSED:
            raise LocalProtocolError("modem is already open")
        self.codec.reset()
        self.channel.stale_risk = False
        supervisor.forget_the_past()
        supervisor.fire(Trigger.OPEN)
        try:
            await self.transport.open()
        except BaseException:
            supervisor.fire(Trigger.OPEN_FAILED)
            raise
        try:
            entry = await asyncio.to_thread(self.marker.attach) if self.marker is not None else None
            supervisor.port_up.set()
            supervisor.fire(Trigger.PORT_OPENED)
            self._reader_task = asyncio.create_task(self._reader(), name="quecmqtt-reader")
            await supervisor.first_start_up(entry)
        except BaseException:
            await self.close()
            raise
        supervisor.start()

    async def close(self) -> None:
        """Stop the tasks and close the port. Pending operations fail with `NotOpen`."""
        if self.state is State.CLOSED and self._reader_task is None:
            return
        supervisor = self.supervisor
        supervisor.fire(Trigger.CLOSE)
        supervisor.fail_everything(NotOpen("modem closed"))
        await supervisor.stop()
        reader, self._reader_task = self._reader_task, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            await asyncio.wait([reader])
        # Command tasks end by themselves with NotOpen (their futures just failed, and a
        # queued one finds the modem closed), which is what their callers should see.
        await self.channel.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(QuecError, OSError):
            await self.transport.close()
        supervisor.port_up.clear()
        if self.marker is not None:
            self.marker.detach()
        self.bus.publish(RuntimeClosed())
        self.bus.close()
        supervisor.fire(Trigger.CLOSED)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until start-up or recovery has finished."""
        await self.supervisor.wait_ready(timeout if timeout is not None else self.recovery_wait)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """A background task owned by this modem (cancelled by close)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- init steps -----------------------------------------------------------------------------

    def add_init_step(
        self,
        step: StepFunction,
        *,
        name: str | None = None,
        required: bool = True,
        key: object | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
        first_only: bool = False,
    ) -> StepHandle:
        """Run `step(modem)` in every start-up (after open and every reboot, reset or
        reopen). Layers that own settings the module forgets re-apply them here; steps must
        be idempotent and may send commands before the modem is ready. See
        `quecmqtt.runtime.steps` for `required`, `key`, `on_failure` and `first_only`.
        The handle removes the step (``with`` or `remove()`)."""
        return self.steps.add(step, name=name, required=required, key=key, on_failure=on_failure, first_only=first_only)

    def remove_init_step(self, step: StepHandle | StepFunction) -> None:
        if isinstance(step, StepHandle):
            step.remove()
        else:
            self.steps.remove_function(step)

    # -- commands ---------------------------------------------------------------------------------

    async def execute(
        self,
        command: Command,
        data: bytes | Secret | None = None,
        *,
        timeout: float | None = None,
        result_timeout: float | None = None,
        wait_result: bool = True,
        entry_timeout: float | None = None,
        inspect: Inspector | None = None,
    ) -> Reply:
        """Send `command` and wait for its final result (and, for two-phase commands, its
        result URC unless `wait_result` is false). `data` answers a data prompt; pass a
        `Secret` to keep it out of logs and transcripts. `entry_timeout`: how long the
        module waits for that data before giving the entry up, when the caller configured
        it. `inspect(completion)` is called in the reader as the final result arrives, before
        the recorder writes it (to learn a secret in a reply).

        Raises `CommandError` for ``ERROR``/``+CME ERROR`` (with a result line that came
        instead of ``OK``), `CommandTimeout`, `ModuleRebooted`, `PortLost`, `LinkLost`."""
        pending = await self.submit(
            command,
            data,
            timeout=timeout,
            result_timeout=result_timeout,
            entry_timeout=entry_timeout,
            inspect=inspect,
            _want_result=wait_result,
        )
        if pending.waiter is None:
            return pending.reply
        return with_result(pending, await pending.result())

    async def submit(
        self,
        command: Command,
        data: bytes | Secret | None = None,
        *,
        timeout: float | None = None,
        result_timeout: float | None = None,
        entry_timeout: float | None = None,
        inspect: Inspector | None = None,
        _want_result: bool = True,
    ) -> Pending:
        """Like `execute`, but return once the final result is in; await
        ``pending.result()`` for the two-phase result. The next command can be sent
        meanwhile: this is how several publishes are kept in flight."""
        check_data(command, data)
        if self.state is State.CLOSED:
            raise NotOpen("modem is not open")
        loop = asyncio.get_running_loop()
        # An explicit time-out bounds the wait for a recovery, the wait for the port (behind
        # other commands) and the final result together.
        deadline = loop.time() + timeout if timeout is not None else None
        if IN_START_UP.get() is not self:  # init steps run before the modem is ready
            await self.supervisor.wait_ready(timeout if timeout is not None else self.recovery_wait)
        op = Operation(
            command,
            data,
            deadline,
            result_timeout,
            _want_result,
            entry_timeout,
            inspect,
            generation=self.supervisor.generation,
        )
        return await self.channel.run(op)

    async def execute_internal(self, command: Command, *, timeout: float | None = None) -> Reply:
        """`execute` for the start-up and recovery paths (the modem is not ready yet)."""
        token = IN_START_UP.set(self)
        try:
            return await self.execute(command, timeout=timeout)
        finally:
            IN_START_UP.reset(token)

    async def write_raw(self, data: bytes) -> None:
        """Write bytes between commands (ESC to cancel a data entry), holding the channel."""
        async with self.channel.lock:
            await self.transport.write(data)

    def observe_commands(self, observer: CommandObserver) -> Callable[[], None]:
        """`observer(command, "sent" | "done")` around every command; returns a remover."""
        return self.channel.observe(observer)

    # -- events -----------------------------------------------------------------------------------

    def subscribe(self, *selectors: Selector, maxsize: int = 256) -> Subscription:
        """A bounded queue of events: pass event classes (`Urc`, `Garbage`, `ModuleReady`,
        the codec's message and status events...) and/or URC prefixes (``"+QIURC"``)."""
        return self.bus.subscribe(*selectors, maxsize=maxsize)

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` for every event, in the reader task, before subscribers.
        For layers that track state; it must be quick and must not raise. Returns a
        function that removes it."""
        return self.bus.add_listener(listener)

    def add_gate(self, gate: Callable[[Event], str | None]) -> Callable[[], None]:
        """`gate(event)` returns a reason to hold an expected event back (logged at debug
        level, not delivered, fails no waiter), or None. Returns a remover."""
        return self.bus.add_gate(gate)

    # -- the reader -------------------------------------------------------------------------------

    async def _reader(self) -> None:
        supervisor = self.supervisor
        while True:
            await supervisor.port_up.wait()
            try:
                data = await self.transport.read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, QuecError) and not isinstance(exc, PortLost):
                    # says what it is; a transport that cannot come back (a replay) ends here, and
                    # the waiting caller gets the error: no second report of it
                    (log.error if self.transport.reopenable else log.info)(
                        "reading from %s failed: %s", self.transport.name, exc
                    )
                    exc = PortLost(f"{self.transport.name}: {exc}")
                elif not isinstance(exc, PortLost):  # a transport failing some other way: lost, loudly
                    log.error("reading from %s failed: %r", self.transport.name, exc, exc_info=True)
                    exc = PortLost(f"{self.transport.name}: {exc}")
                supervisor.port_lost(exc)
                if supervisor.port_up.is_set():  # not taken as a loss (closing): do not spin
                    await supervisor.changed()
                continue
            try:
                self.codec.receive(data)
                self.dispatch_all()
            except Exception:
                # The codec never raises by contract and dispatch only routes; should either
                # fail anyway, keep the reader alive: start parsing afresh and say so.
                log.exception("internal error while parsing module output; parser reset")
                self.codec.reset()
                supervisor.fail_everything(InternalError("parser reset after an internal error; please report it"))
                self.channel.stale_risk = True
            self._settle_recording()

    def dispatch_all(self) -> None:
        """Route every event the codec has produced (see `Dispatcher`)."""
        self.dispatcher.dispatch_all()

    def _settle_recording(self) -> None:
        """Let a recorder write the module output the codec has fully turned into events
        (and whose secrets the redactor therefore knows)."""
        if isinstance(self.transport, RecorderTransport):
            self.transport.settle(self.codec.buffered)
