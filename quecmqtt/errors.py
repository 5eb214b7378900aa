"""One error hierarchy for the whole library, split like h11's.

* `LocalError`: the caller misused the API (a bad argument, a command sent while another
  one is pending, a closed modem). Retrying the same call will fail the same way.
* `RemoteError`: the module or its peer misbehaved or failed (an ``ERROR`` result, no
  answer in time, a reboot, a vanished port, a refused MQTT connection). These are the
  conditions a long-running program recovers from.

Messages never contain secrets: commands appear in their redacted form.
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs every start 4 ms and more: imported only by type checkers

if TYPE_CHECKING:
    from quecmqtt.at.events import Final, Response, Urc


class QuecError(Exception):
    """Base of every error raised by quecmqtt."""


# --- local: misuse of the API ------------------------------------------------------------


class LocalError(QuecError):
    """The caller used the API wrongly."""


class InvalidArgument(LocalError, ValueError):
    """A command argument is out of range, of the wrong type, or could inject bytes."""


class LocalProtocolError(LocalError):
    """An operation that the protocol state does not allow (e.g. data with no prompt)."""


class NotOpen(LocalError):
    """The modem is not open (never opened, or closed)."""


class QueueClosed(QuecError):
    """A queue or subscription was closed and holds nothing more: iteration ends here."""


# --- remote: the module or the network misbehaved -----------------------------------------


class RemoteError(QuecError):
    """The module or its peer failed or misbehaved."""


class CommandError(RemoteError):
    """A command ended in ``ERROR``, ``+CME ERROR``, ``+CMS ERROR`` or another failure result.

    `results` holds result lines that arrived *instead of* ``OK`` (seen: ``+QMTOPEN: 0,-1``
    then ``ERROR``).
    """

    def __init__(
        self,
        command: str,
        final: Final,
        *,
        lines: tuple[Response, ...] = (),
        results: tuple[Urc, ...] = (),
    ) -> None:
        self.command = command
        self.final = final
        self.lines = lines
        self.results = results
        text = f"{command} failed: {final.text}"
        if final.cme is not None and final.description:
            text += f" ({final.description})"
        if results:
            text += "; result: " + ", ".join(r.text for r in results)
        super().__init__(text)

    @property
    def cme(self) -> int | None:
        """The CME/CMS error number (numeric or mapped from verbose text), if any."""
        return self.final.cme


class CommandTimeout(RemoteError, TimeoutError):
    """No final result (or no two-phase result) within the command's time-out. A
    `TimeoutError` too: one `except TimeoutError` covers it and the session's own time-outs."""

    def __init__(self, command: str, timeout: float, waiting_for: str = "its final result") -> None:
        self.command = command
        self.timeout = timeout
        self.waiting_for = waiting_for
        super().__init__(f"{command}: timed out after {timeout:g} s waiting for {waiting_for}")


class ModuleRebooted(RemoteError):
    """The module rebooted or powered down (``RDY``, ``POWERED DOWN``) while this was pending."""

    def __init__(self, banner: str, generation: int) -> None:
        self.banner = banner
        self.generation = generation
        super().__init__(f"module reported {banner!r} (generation {generation})")


class ModuleUnresponsive(RemoteError):
    """Several commands in a row got no answer; the module is being reset."""


class PortLost(RemoteError):
    """The serial port disappeared (USB re-enumeration, unplug) or failed."""


class ResponseTooLarge(RemoteError):
    """The module sent more lines for one command than the codec keeps (a flood, a
    module gone wrong): the command fails at once instead of growing memory."""


class InitStepFailed(RemoteError):
    """A required init step failed when the module (re)started; `step` names it and
    `__cause__` is what it raised. Commands fail with this until a retry succeeds."""

    def __init__(self, step: str, error: BaseException) -> None:
        self.step = step
        self.error = error
        super().__init__(f"init step {step!r} failed: {type(error).__name__}: {error}")


class LinkLost(RemoteError):
    """The module reported the link of this operation closed (``+QMTSTAT``, or a failed
    keep-alive ``+QMTPING``) while it was pending; `client` is the link's index."""

    def __init__(self, client: int, code: int, report: str = "+QMTSTAT") -> None:
        self.client = client
        self.code = code
        self.report = report
        super().__init__(f"MQTT client {client} lost its link ({self.reason})")

    @property
    def reason(self) -> str:
        """What reported it: ``+QMTSTAT: 0,1``, or ``module reset: ...``."""
        return f"{self.report}: {self.client},{self.code}" if self.report.startswith("+") else self.report


class MqttError(RemoteError):
    """An MQTT operation failed: the module's `result` and, for CONNECT, the CONNACK code."""

    def __init__(self, message: str, result: int, return_code: int | None = None) -> None:
        self.result = result
        self.return_code = return_code
        super().__init__(message)


class MqttOpenError(MqttError):
    """``+QMTOPEN: <c>,<result>`` other than 0: -1 network, 1 parameter, 2 index in use,
    3 PDP activation, 4 DNS, 5 connection error."""


class ConnectRefused(MqttError):
    """The broker answered CONNECT with a refusal: `return_code` 1 protocol version,
    2 identifier rejected, 3 server unavailable, 4 bad user name or password, 5 not
    authorised."""


class OutboxFull(QuecError):
    """The session's outbox is at its bound (messages or bytes) and its policy rejects."""


class HttpError(RemoteError):
    """An HTTP(S) operation failed: `code` is the module's error (7xx), or for the subclass
    `HttpStatusError` the server's HTTP status."""

    def __init__(self, message: str, code: int) -> None:
        self.code = code
        super().__init__(message)


class HttpStatusError(HttpError):
    """The server answered with an error status (`raise_for_status`): the module did its part."""

    @property
    def status(self) -> int:
        return self.code


class SessionFailed(QuecError):
    """A `Session` stopped on a terminal condition; `__cause__` is what happened."""


class AttachError(RemoteError):
    """`attach()` failed at `step` ("sim", "registration", "pdp-config", "pdp-activate");
    `answer` is what the module said, if it said anything useful."""

    def __init__(self, step: str, detail: str, answer: str | None = None) -> None:
        self.step = step
        self.detail = detail
        self.answer = answer
        super().__init__(f"attach failed at {step}: {detail}" + (f" (module: {answer})" if answer else ""))


class TlsError(RemoteError):
    """The module cannot be set up for TLS as asked (a security setting it does not have)."""


class UploadError(RemoteError):
    """The module stored something other than what was sent (size or checksum)."""


class TranscriptError(QuecError, ValueError):
    """A transcript file is malformed; the message names the line."""


class InternalError(QuecError):
    """A bug in quecmqtt (the parser raised, which it must never do). Please report it."""
