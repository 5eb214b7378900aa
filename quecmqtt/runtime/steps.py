"""Init steps: what a layer re-applies every time the module (re)starts.

The module forgets most settings on a reboot, so layers that own one (a PDP context's APN,
a security context, a client's configuration) register a step that sets
it again. A step has an owner and a policy:

* **required**: the module is of no use without it. Its failure at `open()` fails the open;
  after a reboot it puts the runtime in the failed state, where every command fails at once
  with `InitStepFailed` (naming the step) while the runtime retries with back-off.
* **optional**: its failure is logged and told to the owner (`on_failure`), and the module
  stays usable; the owner decides what to do (apply it again before its next use, say).

Adding a step returns a `StepHandle`, which removes it (``with`` or `remove()`); owners
remove theirs when they close, so steps never outlive what they configure. A step added with
a `key` replaces the step with the same key: a second object configuring the same thing
(context 1 of a kind, the one client of a kind) takes over instead of stacking a second step.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from quecmqtt.errors import InitStepFailed, ModuleRebooted, ModuleUnresponsive, NotOpen, PortLost

log = logging.getLogger("quecmqtt.runtime")

StepFunction = Callable[[Any], Awaitable[None]]


@dataclass(eq=False)
class StepHandle:
    """A registered init step. `failures` counts failures in a row; `last_error` is the
    latest one."""

    run: StepFunction
    name: str
    required: bool
    key: object | None = None
    on_failure: Callable[[BaseException], None] | None = None
    first_only: bool = False  # only at open (a reconciliation of what an earlier process left)
    failures: int = 0
    last_error: BaseException | None = None
    _steps: InitSteps | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self._steps is not None and self in self._steps

    def remove(self) -> None:
        if self._steps is not None:
            self._steps.remove(self)

    def __enter__(self) -> StepHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class InitSteps:
    """The registered steps, in the order they were added (a replacement keeps its place)."""

    def __init__(self) -> None:
        self._steps: list[StepHandle] = []

    def add(
        self,
        run: StepFunction,
        *,
        name: str | None = None,
        required: bool = True,
        key: object | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
        first_only: bool = False,
    ) -> StepHandle:
        handle = StepHandle(
            run,
            name or str(getattr(run, "__qualname__", None) or repr(run)),
            required,
            key,
            on_failure,
            first_only,
            _steps=self,
        )
        if key is not None:
            for i, other in enumerate(self._steps):
                if other.key == key:
                    other._steps = None
                    self._steps[i] = handle
                    return handle
        self._steps.append(handle)
        return handle

    def remove(self, handle: StepHandle) -> None:
        if handle in self._steps:
            self._steps.remove(handle)
        handle._steps = None

    def remove_function(self, run: StepFunction) -> None:
        for handle in [h for h in self._steps if h.run == run]:
            self.remove(handle)

    def __len__(self) -> int:
        return len(self._steps)

    def __contains__(self, handle: object) -> bool:
        return handle in self._steps

    def __iter__(self) -> Iterator[StepHandle]:
        return iter(list(self._steps))

    async def run(self, modem: Any, *, first_only: bool) -> None:
        """Run the `first_only` steps (a reconciliation, at open) or the regular ones. A
        required step's failure raises `InitStepFailed` (the remaining steps are not run);
        an optional one's is logged and told to its owner. Errors of the runtime itself (a
        reboot, a lost port) propagate as they are: the supervisor decides what they mean."""
        for handle in list(self._steps):
            if handle not in self._steps or handle.first_only is not first_only:
                continue  # removed by an earlier step, or not of this kind
            try:
                await handle.run(modem)
            except (ModuleRebooted, ModuleUnresponsive, PortLost, NotOpen):
                raise
            except Exception as exc:
                handle.failures += 1
                handle.last_error = exc
                if handle.on_failure is not None:
                    try:
                        handle.on_failure(exc)
                    except Exception:
                        log.exception("the owner of init step %r failed to take its failure", handle.name)
                if handle.required:
                    raise InitStepFailed(handle.name, exc) from exc
                log.warning("optional init step %r failed: %s: %s", handle.name, type(exc).__name__, exc)
                continue
            handle.failures = 0
            handle.last_error = None
