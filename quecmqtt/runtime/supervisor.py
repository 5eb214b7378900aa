"""The supervisor: the module's lifecycle as a transition table, and the work each state needs.

The table (`TRANSITIONS`) is data: (state, trigger) -> next state. Triggers come from the
reader (a reboot banner, a lost port), from the command channel (time-outs in a row), and
from the supervisor's own work (start-up done, a step failed, the port is back). A trigger
that does not fit the state is stale and ignored, like an answer to a question nobody asked.
`docs/runtime.md` shows the table as `render_table()` prints it (a test keeps them equal).

One task does the work of the state it finds: reopen the port (port-lost), power-cycle the
module (resetting), wait for its banner and run the start-up again (recovering), wait out a
back-off (failed). Every episode bumps `generation`, so work begun for an earlier module is
recognised and done again rather than trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from quecmqtt.at import commands as C
from quecmqtt.at.events import Event
from quecmqtt.errors import (
    CommandError,
    CommandTimeout,
    InitStepFailed,
    ModuleRebooted,
    ModuleUnresponsive,
    NotOpen,
    PortLost,
    QuecError,
)
from quecmqtt.runtime.marker import EntryKind, OpenEntry
from quecmqtt.runtime.urcport import check_urc_port

if TYPE_CHECKING:
    from quecmqtt.runtime.modem import Modem

log = logging.getLogger("quecmqtt.runtime")

ESC = b"\x1b"
ResetHook = Callable[[], Awaitable[None]]

# Set while a start-up runs, so init steps can send commands before the module is ready
# (contextvars follow the tasks they create).
IN_START_UP: contextvars.ContextVar[object | None] = contextvars.ContextVar("quecmqtt_start_up", default=None)


class State(Enum):
    CLOSED = "closed"
    OPENING = "opening"
    SYNCING = "syncing"
    READY = "ready"
    RECOVERING = "recovering"
    RESETTING = "resetting"
    PORT_LOST = "port-lost"
    FAILED = "failed"
    CLOSING = "closing"


STATE_MEANING: dict[State, str] = {
    State.CLOSED: "not open; commands raise NotOpen",
    State.OPENING: "open() is opening the port",
    State.SYNCING: "open() synchronises with the module and runs the start-up steps",
    State.READY: "commands go out",
    State.RECOVERING: "after a reboot, a reset or a reopened port: banner, sync, init steps again; commands wait",
    State.RESETTING: "the module stopped answering: it is power-cycled (reset hook, or AT+CFUN=1,1); commands wait",
    State.PORT_LOST: "the port vanished; it is reopened with back-off (commands wait, or fail if it cannot be)",
    State.FAILED: "a required init step failed; commands fail at once with InitStepFailed; retried later",
    State.CLOSING: "close() is stopping everything; commands raise NotOpen",
}


class Trigger(Enum):
    OPEN = "open"
    PORT_OPENED = "port-opened"
    OPEN_FAILED = "open-failed"
    SYNCED = "synced"
    REBOOTED = "rebooted"
    UNRESPONSIVE = "unresponsive"
    STEP_FAILED = "step-failed"
    RETRY = "retry"
    PORT_LOST = "port-lost"
    PORT_BACK = "port-back"
    RESET_DONE = "reset-done"
    CLOSE = "close"
    CLOSED = "closed"


TRIGGER_MEANING: dict[Trigger, str] = {
    Trigger.OPEN: "open() called",
    Trigger.PORT_OPENED: "the port is open",
    Trigger.OPEN_FAILED: "the port could not be opened",
    Trigger.SYNCED: "the module answers and every required init step succeeded",
    Trigger.REBOOTED: "RDY or POWERED DOWN from the module",
    Trigger.UNRESPONSIVE: "max_timeouts commands in a row unanswered, or no answer to AT",
    Trigger.STEP_FAILED: "a required init step failed",
    Trigger.RETRY: "the back-off after a failure is over",
    Trigger.PORT_LOST: "a read or write failed: the port is gone",
    Trigger.PORT_BACK: "the port was reopened",
    Trigger.RESET_DONE: "the reset hook (or AT+CFUN=1,1) returned",
    Trigger.CLOSE: "close() called",
    Trigger.CLOSED: "everything stopped",
}

S, T = State, Trigger
TRANSITIONS: dict[tuple[State, Trigger], State] = {
    (S.CLOSED, T.OPEN): S.OPENING,
    (S.OPENING, T.PORT_OPENED): S.SYNCING,
    (S.OPENING, T.OPEN_FAILED): S.CLOSED,
    (S.SYNCING, T.SYNCED): S.READY,
    (S.SYNCING, T.REBOOTED): S.SYNCING,
    (S.SYNCING, T.UNRESPONSIVE): S.RESETTING,
    (S.SYNCING, T.PORT_LOST): S.PORT_LOST,
    (S.READY, T.REBOOTED): S.RECOVERING,
    (S.READY, T.UNRESPONSIVE): S.RESETTING,
    (S.READY, T.PORT_LOST): S.PORT_LOST,
    (S.RECOVERING, T.SYNCED): S.READY,
    (S.RECOVERING, T.REBOOTED): S.RECOVERING,
    (S.RECOVERING, T.UNRESPONSIVE): S.RESETTING,
    (S.RECOVERING, T.STEP_FAILED): S.FAILED,
    (S.RECOVERING, T.PORT_LOST): S.PORT_LOST,
    (S.RESETTING, T.RESET_DONE): S.RECOVERING,
    (S.RESETTING, T.REBOOTED): S.RESETTING,
    (S.RESETTING, T.PORT_LOST): S.PORT_LOST,
    (S.PORT_LOST, T.PORT_BACK): S.RECOVERING,
    (S.FAILED, T.RETRY): S.RECOVERING,
    (S.FAILED, T.REBOOTED): S.RECOVERING,
    (S.FAILED, T.UNRESPONSIVE): S.RESETTING,
    (S.FAILED, T.PORT_LOST): S.PORT_LOST,
    (S.CLOSING, T.CLOSED): S.CLOSED,
}
for _state in State:
    if _state not in (S.CLOSED, S.CLOSING):
        TRANSITIONS[(_state, T.CLOSE)] = S.CLOSING


def render_table() -> str:
    """The states and the transition table as Markdown (for docs/runtime.md)."""
    lines = ["| state | meaning |", "| --- | --- |"]
    lines += [f"| `{state.value}` | {STATE_MEANING[state]} |" for state in State]
    lines += ["", "| trigger | meaning |", "| --- | --- |"]
    lines += [f"| `{trigger.value}` | {TRIGGER_MEANING[trigger]} |" for trigger in Trigger]
    lines += ["", "| state | trigger | next state |", "| --- | --- | --- |"]
    for (state, trigger), target in TRANSITIONS.items():
        lines.append(f"| `{state.value}` | `{trigger.value}` | `{target.value}` |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class ModuleReset(Event):
    """The module this runtime talked to is gone: it rebooted, stopped answering, or the
    port was lost. Everything that lived on it (links, contexts, settings) must be rebuilt."""

    generation: int
    reason: str


@dataclass(frozen=True, slots=True)
class RuntimeClosed(Event):
    """The runtime was closed: nothing more will come."""


class Supervisor:
    """See the module docstring. Owned by a `Modem`; its options are the modem's."""

    def __init__(
        self,
        modem: Modem,
        *,
        max_timeouts: int,
        reset_hook: ResetHook | None,
        reset_backoff: Sequence[float],
        reopen_backoff: tuple[float, float],
        reboot_grace: float,
        sync_attempts: int,
        unknown_entry_wait: float,
    ) -> None:
        self._modem = modem
        self.max_timeouts = max_timeouts
        self.reset_hook = reset_hook
        self.reset_backoff = tuple(reset_backoff) or (0.0,)
        self.reopen_backoff = reopen_backoff
        self.reboot_grace = reboot_grace
        self.sync_attempts = sync_attempts
        self.unknown_entry_wait = unknown_entry_wait
        self.state = State.CLOSED
        self.generation = 0
        self.failure: QuecError | None = None  # what failed the last generation's operations
        self.step_error: InitStepFailed | None = None
        self.reason = ""  # why the module is not ready
        self.last_error: QuecError | None = None
        self.port_up = asyncio.Event()
        self._changed = asyncio.Event()
        self._rdy = asyncio.Event()  # set by RDY, cleared by POWERED DOWN and resets
        self._asleep = False  # PSM: no grace period for the RDY, it comes when it comes
        self._rdy.set()
        self._last_ready_banner = -1e9
        self._expect_reboot = False
        self._timeouts_in_a_row = 0
        self._resets_in_a_row = 0
        self._failures_in_a_row = 0
        self._task: asyncio.Task[None] | None = None
        self._hook: asyncio.Future[None] | None = None  # a reset hook at work

    # -- the table ---------------------------------------------------------------------------

    def fire(self, trigger: Trigger) -> bool:
        """Apply `trigger`; False (and no change) when it does not fit the state."""
        target = TRANSITIONS.get((self.state, trigger))
        if target is None:
            log.debug("%s in state %s: ignored", trigger.value, self.state.value)
            return False
        if target is not self.state:
            log.debug("runtime %s -> %s (%s)", self.state.value, target.value, trigger.value)
        self.state = target
        self._changed.set()
        self._changed = asyncio.Event()
        return True

    async def changed(self) -> None:
        """Until the next transition."""
        await self._changed.wait()

    def forget_the_past(self) -> None:
        self.failure = self.step_error = None
        self._timeouts_in_a_row = self._resets_in_a_row = self._failures_in_a_row = 0
        self._rdy.set()

    # -- what callers see ----------------------------------------------------------------------

    async def wait_ready(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            state = self.state
            if state is State.READY:
                return
            if state in (State.CLOSED, State.CLOSING):
                raise NotOpen("modem is not open" if state is State.CLOSED else "modem closed")
            if state is State.FAILED and self.step_error is not None:
                error = self.step_error
                raise InitStepFailed(error.step, error.error) from error.error
            if state is State.PORT_LOST and not self._modem.transport.reopenable:
                raise PortLost(f"{self._modem.transport.name} is lost and cannot be reopened")
            left = deadline - loop.time()
            try:
                if left <= 0:
                    raise TimeoutError
                async with asyncio.timeout(left):
                    await self.changed()
            except TimeoutError:
                if not self.port_up.is_set():
                    raise PortLost(f"{self._modem.transport.name} is lost and not back after {timeout:g} s") from None
                detail = f": {self.last_error}" if self.last_error else ""
                raise ModuleUnresponsive(f"module not ready after {timeout:g} s ({self.reason}){detail}") from None

    def check_sendable(self, generation: int) -> None:
        """Under the channel's lock, right before a command goes out."""
        if self.state in (State.CLOSED, State.CLOSING):
            raise NotOpen("modem closed")
        if generation != self.generation and self.failure is not None:
            # queued behind a command that a reboot, a reset or a lost port failed: the
            # module it was meant for is gone, so fail it the same way
            raise self.failure
        if not self.port_up.is_set():
            raise PortLost(f"{self._modem.transport.name} is not open")

    # -- reports ---------------------------------------------------------------------------

    def note_success(self) -> None:
        self._timeouts_in_a_row = 0
        self._resets_in_a_row = 0

    def note_timeout(self) -> None:
        self._timeouts_in_a_row += 1
        if self._timeouts_in_a_row >= self.max_timeouts and self.state is State.READY:
            error = ModuleUnresponsive(f"{self._timeouts_in_a_row} commands in a row got no answer")
            self._new_generation(error, "module stopped answering", Trigger.UNRESPONSIVE)

    def ready_banner(self, banner: str) -> None:
        now = asyncio.get_running_loop().time()
        # EC200U reports "APP RDY" (and +CFUN: 1) some seconds after RDY: one reboot.
        if banner != "RDY" and now - self._last_ready_banner < self.reboot_grace:
            log.debug("%s after RDY: same reboot", banner)
            return
        self._last_ready_banner = now
        self._asleep = False
        self._rdy.set()
        self._module_restarted(banner)

    def powered_down(self, banner: str) -> None:
        self._rdy.clear()  # recovery waits (a while) for the RDY that follows
        self._module_restarted(banner)

    def psm_entered(self, banner: str) -> None:
        """The module sleeps until something wakes it: recovery waits for its RDY, however
        long, instead of probing a module that cannot answer and then resetting it."""
        self._asleep = True
        self.powered_down(banner)

    def _module_restarted(self, banner: str) -> None:
        if self.state in (State.CLOSED, State.CLOSING, State.OPENING):
            return
        expected = self._expect_reboot
        self._expect_reboot = False
        (log.info if expected else log.warning)("module reported %s: generation %d", banner, self.generation + 1)
        self._modem.channel.stale_risk = False  # a rebooted module answers nothing from before
        if self._modem.marker is not None:
            self._modem.marker.clear()  # an entry open on it is gone with it
        error = ModuleRebooted(banner, self.generation + 1)
        self._new_generation(error, f"module reported {banner}", Trigger.REBOOTED)

    def port_lost(self, exc: BaseException) -> None:
        """A read or write failed. One warning line: an unplugged USB module is an event
        a device lives through, not a bug."""
        if not self.port_up.is_set() or self.state in (State.CLOSED, State.CLOSING, State.OPENING):
            return
        modem = self._modem
        self.port_up.clear()
        (log.warning if modem.transport.reopenable else log.info)(
            "port %s lost: %s (generation %d)", modem.transport.name, exc, self.generation + 1
        )
        modem.channel.stale_risk = False
        modem.codec.receive_eof()  # half a line from the old port is noise
        modem.dispatch_all()
        self._new_generation(PortLost(str(exc)), "port lost", Trigger.PORT_LOST)
        # the reader may sit in a read that never fails: closing the port wakes it
        modem.spawn(self._drop_transport())

    async def _drop_transport(self) -> None:
        with contextlib.suppress(Exception):
            await self._modem.transport.drop()

    def fail_everything(self, exc: QuecError) -> None:
        """Fail the command in flight and every waiter; commands queued before this fail
        the same way when their turn comes (`check_sendable`)."""
        self.failure = exc
        self._modem.channel.fail_inflight(exc)
        self._modem.waiters.fail_all(exc)

    def _new_generation(self, error: QuecError, reason: str, trigger: Trigger) -> None:
        """The module behind the port is not the one the work in progress was for."""
        self.generation += 1
        self.fail_everything(error)
        self.reason = reason
        self._modem.bus.publish(ModuleReset(self.generation, reason))
        self.fire(trigger)

    # -- the work ------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="quecmqtt-supervisor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait([task])
            if not task.cancelled():
                task.exception()
        hook, self._hook = self._hook, None
        if hook is not None and not hook.done():
            await asyncio.wait([hook], timeout=60.0)  # let a reset hook finish what it started
        if hook is not None and hook.done() and not hook.cancelled() and hook.exception() is not None:
            log.error("the reset hook failed: %s", hook.exception())

    async def _run(self) -> None:
        IN_START_UP.set(self._modem)
        while True:
            state = self.state
            if state in (State.CLOSED, State.CLOSING):
                return
            if state in (State.READY, State.OPENING, State.SYNCING):
                await self.changed()
                continue
            try:
                if state is State.PORT_LOST:
                    await self._reopen()
                elif state is State.RESETTING:
                    await self._reset_module()
                    self.fire(Trigger.RESET_DONE)
                elif state is State.RECOVERING:
                    await self._recover()
                elif state is State.FAILED:
                    await asyncio.sleep(self._pause())
                    self.fire(Trigger.RETRY)
            except asyncio.CancelledError:
                raise
            except (ModuleRebooted, PortLost):
                continue  # the state already says what happened
            except Exception as exc:  # an init step or a reset hook may raise anything
                if isinstance(exc, QuecError):
                    self.last_error = exc
                    log.error("recovery failed: %s", exc)
                else:
                    log.exception("recovery failed")
                if isinstance(exc, ModuleUnresponsive | CommandTimeout) and self.state is State.RECOVERING:
                    self.fire(Trigger.UNRESPONSIVE)  # a module silent during recovery gets a reset
                    continue
                pause = self._pause()
                log.info("retrying recovery in %.1f s", pause)
                await asyncio.sleep(pause)

    def _pause(self) -> float:
        self._failures_in_a_row += 1
        return min(30.0, 0.5 * 2.0**self._failures_in_a_row)

    async def _recover(self) -> None:
        log.info("recovering: %s", self.reason)
        await self._await_banner(self.reboot_grace)
        generation = self.generation
        entry = self._modem.marker.left_open() if self._modem.marker is not None else None
        try:
            await self.start_up(first=False, entry=entry)
        except InitStepFailed as exc:
            if isinstance(exc.error, ModuleUnresponsive | CommandTimeout):
                raise exc.error from exc
            self.step_error = exc
            self.last_error = exc
            log.error("recovery failed: %s", exc)
            self.fire(Trigger.STEP_FAILED)
            return
        if generation != self.generation:
            return  # the module restarted meanwhile: once more
        self.step_error = None
        self._failures_in_a_row = 0
        self.fire(Trigger.SYNCED)
        log.info("module ready (generation %d)", self.generation)

    async def _reopen(self) -> None:
        transport = self._modem.transport
        if not transport.reopenable:
            log.info("%s cannot be reopened", transport.name)  # a replay: its end is the caller's error
            await self.changed()  # callers fail at once (wait_ready); until closed
            return
        delay, limit = self.reopen_backoff
        while self.state is State.PORT_LOST:
            await asyncio.sleep(delay)
            try:
                await transport.reopen()
            except PortLost as exc:
                log.debug("reopen of %s failed: %s", transport.name, exc)
                delay = min(limit, delay * 2)
                continue
            self._modem.codec.reset()
            self._asleep = False  # a USB module re-enumerates when it wakes: its RDY is gone
            self.port_up.set()
            log.info("port %s reopened", transport.name)
            self.fire(Trigger.PORT_BACK)

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
            # shielded: a close() meanwhile must not leave a power switch half-way (stop() waits)
            self._hook = asyncio.ensure_future(self.reset_hook())
            await asyncio.shield(self._hook)
        else:
            log.warning("resetting the module with AT+CFUN=1,1")
            try:
                await self._modem.execute_internal(C.CFUN(1, 1), timeout=5.0)
            except QuecError as exc:
                # it did not take the command, so it is not rebooting: no banner to wait
                # for; the sync that follows finds out whether it answers now
                log.warning("the module did not take AT+CFUN=1,1 (%s)", exc)
                self._expect_reboot = False
                self._rdy.set()

    async def _await_banner(self, grace: float) -> None:
        """After POWERED DOWN or a reset, wait up to `grace` seconds for RDY; the sync
        follows either way (a module may come back without a banner)."""
        if self._rdy.is_set():
            return
        if self._asleep:
            await wait_for_wake(self)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._rdy.wait()

    # -- start-up ------------------------------------------------------------------------------

    async def first_start_up(self, entry: OpenEntry | None) -> None:
        """open()'s part, in the caller's task: sync, steps; a reset through the hook when
        the module does not answer; again if it rebooted meanwhile."""
        try:
            await self._start_up_until_stable(entry)
        except ModuleUnresponsive:
            if self.reset_hook is None:
                raise
            log.warning("the module does not answer at start-up: resetting it")
            self.fire(Trigger.UNRESPONSIVE)
            await self._reset_module()
            self.fire(Trigger.RESET_DONE)
            await self._await_banner(self.reboot_grace)
            await self._start_up_until_stable(None)
        self.note_success()
        self.fire(Trigger.SYNCED)
        log.info("module ready (generation %d)", self.generation)

    async def _start_up_until_stable(self, entry: OpenEntry | None) -> None:
        for _ in range(3):
            generation = self.generation
            try:
                await self.start_up(first=True, entry=entry)
            except ModuleRebooted:
                entry = None
                await self._await_banner(self.reboot_grace)
                continue
            if generation == self.generation:
                return
            entry = None
        raise ModuleUnresponsive("the module kept restarting during start-up")

    async def start_up(self, *, first: bool, entry: OpenEntry | None) -> None:
        modem = self._modem
        token = IN_START_UP.set(modem)
        try:
            await self._sync(entry)
            if first and modem.reconcile:
                await modem.steps.run(modem, first_only=True)  # what an earlier process left
            if modem.init_script:
                await modem.execute_internal(C.ATE0())
                await modem.execute_internal(C.CMEE(modem.cmee))
                if modem.urc_port is not None:
                    await modem.execute_internal(C.QURCCFG_URCPORT(modem.urc_port))
                else:
                    await check_urc_port(modem)
                await modem.steps.run(modem, first_only=False)
        finally:
            IN_START_UP.reset(token)
        self._timeouts_in_a_row = 0

    async def _sync(self, entry: OpenEntry | None) -> None:
        """Get the module's AT parser back: wait out (or cancel) a data entry left open,
        then repeat ``AT`` until it answers; from the second attempt on an ESC first."""
        modem = self._modem
        if not modem.init_script and not modem.reconcile:
            return  # replaying a session as recorded: send nothing it did not record
        await wait_out(self, entry)
        last: QuecError | None = None
        for attempt in range(self.sync_attempts):
            if attempt:  # only when the first AT went unanswered
                with contextlib.suppress(PortLost):
                    await modem.write_raw(ESC)
            try:
                await modem.execute_internal(C.AT(), timeout=1.0 + attempt)
                return
            except CommandError:
                return  # it answers; ERROR to a bare AT means leftover input was flushed
            except (CommandTimeout, ModuleRebooted, ModuleUnresponsive) as exc:
                last = exc
                continue
        raise ModuleUnresponsive(f"no answer to AT after {self.sync_attempts} attempts ({last})")


async def wait_for_wake(supervisor: Supervisor) -> None:
    """A module in PSM answers nothing until something wakes it, which may be hours: wait for
    its RDY, and every `recovery_wait` seconds send one AT in case the RDY went unseen (it
    went to another port, or came while the port was away). No reset: that would end PSM."""
    log.info("the module is in PSM: waiting for it to wake (RDY)")
    while supervisor._asleep and not supervisor._rdy.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(supervisor._modem.recovery_wait):
                await supervisor._rdy.wait()
                return
        try:
            await supervisor._modem.execute_internal(C.AT(), timeout=2.0)
        except QuecError:
            continue
        log.info("the module answers AT: awake")
        supervisor._asleep = False
        supervisor._rdy.set()


async def wait_out(supervisor: Supervisor, entry: OpenEntry | None) -> None:
    """Before the first byte to a module a data entry may be open on (see `marker`): cancel
    it with ESC, or let the module give it up by its own time-out, or reset the module."""
    if entry is None:
        return
    modem = supervisor._modem
    who = "this process" if entry.pid == os.getpid() else f"process {entry.pid}"
    if entry.kind is EntryKind.CTRL_Z:
        log.info("a Ctrl-Z data entry left open by %s on %s: cancelling it with ESC", who, modem.transport.name)
        await modem.write_raw(ESC)
        return
    ends = entry.ends
    if ends is None:
        if supervisor.reset_hook is not None:
            log.warning("a data entry left open by %s on %s: resetting the module", who, modem.transport.name)
            await supervisor._reset_module()
            await supervisor._await_banner(supervisor.reboot_grace)
            return
        ends = entry.opened + supervisor.unknown_entry_wait
    wait = ends - time.monotonic() + 0.2
    if wait > 0:
        log.warning(
            "a data entry of %d bytes was left open by %s on %s: waiting %.1f s for the module to give it up,"
            " so that none of our bytes completes it",
            entry.length,
            who,
            modem.transport.name,
            wait,
        )
        await asyncio.sleep(wait)
