"""OTA on the device: take the platform's upgrade task, download the firmware through the
**module's** HTTP(S) client in byte ranges, keep what has arrived on disk so a link drop, a
module reboot or a restart of this process resumes where it stopped, verify the digest the
task gives, report progress, and hand the finished file to the application.

    ota = Ota(thing, Http(modem, HttpConfig(ssl_context=1)), "/var/lib/app/ota",
              on_firmware=install)              # install(path, task): flash it, or raise
    await ota.start()                           # subscribes to the task topics
    await thing.report_version("1.0.0")         # the platform pushes a task for another version
    task = await ota.next_task()                # or: await ota.request() asks for one
    path = await ota.run(task)                  # downloaded, verified, handed over

Topics and payloads (Aliyun OTA documentation; Link SDK C 4.x `components/ota`; the Python
SDK aliyun-iot-linkkit 1.2.13): the task arrives on ``/ota/device/upgrade/<pk>/<dn>`` as
``{"code": "1000", "data": {"size", "version", "url", "md5", "sign", "signMethod"}, ...}``;
asked for on ``/sys/<pk>/<dn>/thing/ota/firmware/get`` (answered on ``..._reply``); progress
goes up on ``/ota/device/progress/<pk>/<dn>`` as ``{"id", "params": {"step", "desc"}}``, step
1-100 or a failure: -1 upgrade failed, -2 download failed, -3 verification failed, -4 flashing
failed.

On disk, in `directory`: ``ota-task.json`` (which task the partial file belongs to: version,
size, digest; never the URL, whose signature is a credential) and ``<version>.part``, whose
length is the progress: each range is appended and synced before the next is asked for.
Disk work runs in a thread, off the event loop that reads the serial port.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import inspect
import json
import logging
import os
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from quecmqtt.aliyun.alink import Thing, json_object
from quecmqtt.at.events import MqttMessage
from quecmqtt.errors import HttpStatusError, InvalidArgument, QuecError
from quecmqtt.services.http import Http
from quecmqtt.services.network import Network

log = logging.getLogger("quecmqtt.aliyun.ota")

CHUNK = 32 * 1024  # bytes per range: what a drop can cost, and what the host holds at once
STEP_UPGRADE_FAILED, STEP_DOWNLOAD_FAILED, STEP_VERIFY_FAILED, STEP_FLASH_FAILED = -1, -2, -3, -4
HASHES = {"md5": hashlib.md5, "sha256": hashlib.sha256}
_SIGNATURE = re.compile(rb'[?&]Signature=([^&"\\\s]+)')
_VERSION = re.compile(r"[\w.+\-]{1,64}")

FirmwareHandler = Callable[[Path, "OtaTask"], "Awaitable[None] | None"]


class OtaFailed(QuecError):
    """The upgrade failed; `step` is the failure code reported to the platform."""

    def __init__(self, message: str, step: int) -> None:
        self.step = step
        super().__init__(message)


@dataclass(frozen=True)
class OtaTask:
    version: str
    url: str
    size: int
    sign: str  # hex digest of the whole file, by `sign_method`
    sign_method: str  # "md5" or "sha256"
    module: str | None = None

    def __repr__(self) -> str:  # the URL's query is a signature: left out
        return f"OtaTask(version={self.version!r}, size={self.size}, {self.sign_method}={self.sign[:12]}…)"

    @classmethod
    def from_message(cls, body: Any) -> OtaTask:
        """The task in an upgrade push or a firmware/get reply (its ``data``, or ``params`` in
        the Alink form). ValueError says what is missing or wrong."""
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not data:
            data = body.get("params") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not data:
            raise ValueError("no task in the message (no data)")
        version, url, size = data.get("version"), data.get("url"), data.get("size")
        if not isinstance(version, str) or not _names_a_file(version):
            raise ValueError(f"the task's version {version!r} is not one this device can name a file after")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ValueError("the task has no http(s) URL")
        if isinstance(size, str) and size.isdigit():
            size = int(size)
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ValueError(f"the task's size {size!r} is not a positive number")
        method = str(data.get("signMethod") or "Md5").lower()
        sign = data.get("sign") or (data.get("md5") if method == "md5" else None)
        if method not in HASHES:
            raise ValueError(f"the task's signMethod {data.get('signMethod')!r} is not Md5 or SHA256")
        digest_length = hashlib.new(method).digest_size * 2
        if not isinstance(sign, str) or len(sign) != digest_length or not _is_hex(sign):
            raise ValueError(f"the task's {method} digest is not {digest_length} hex digits")
        module = data.get("module")
        return cls(version, url, size, sign.lower(), method, module if isinstance(module, str) else None)

    def identity(self) -> dict[str, Any]:
        """What names the partial file's task on disk (the URL changes with each push)."""
        return {"version": self.version, "size": self.size, "sign": self.sign, "signMethod": self.sign_method}


def _names_a_file(version: str) -> bool:
    """A version that can name a file in the OTA directory: no separators, not dots alone."""
    return bool(_VERSION.fullmatch(version)) and version.strip(".") != ""


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


class Ota:
    def __init__(
        self,
        thing: Thing,
        http: Http,
        directory: str | Path,
        *,
        on_firmware: FirmwareHandler | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        chunk_size: int = CHUNK,
        retry_delay: float = 1.0,
        max_retry_delay: float = 30.0,
        give_up_after: int = 30,
        network: Network | None = None,
    ) -> None:
        """`on_firmware(path, task)`: the verified file, to flash (raise to report a flashing
        failure). `on_progress(received, size)`: after each range. A range that fails is
        asked for again after `retry_delay` (doubling up to `max_retry_delay`); after
        `give_up_after` failures in a row the download is reported failed. `network`: asked
        to bring a lost PDP context back before a range is asked for again."""
        if chunk_size < 1:
            raise InvalidArgument(f"chunk_size is at least 1 byte, not {chunk_size}")
        self.thing = thing
        self.http = http
        self.directory = Path(directory)
        self.on_firmware = on_firmware
        self.on_progress = on_progress
        self.chunk_size = chunk_size
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.give_up_after = give_up_after
        self.network = network
        self.fetched = 0  # body bytes the module delivered, this process (resumes included)
        pk, dn = thing.product_key, thing.device_name
        self._upgrade_topic = f"/ota/device/upgrade/{pk}/{dn}"
        self._get_reply_topic = f"/sys/{pk}/{dn}/thing/ota/firmware/get_reply"
        self._tasks: asyncio.Queue[OtaTask] = asyncio.Queue(maxsize=4)
        self._pending_get: dict[str, asyncio.Future[Any]] = {}
        self._stop_listening: Callable[[], None] | None = None
        self._stop_learning: Callable[[], None] | None = None

    async def start(self) -> None:
        """Listen for tasks (subscribed by the platform itself when the login asked for it)."""
        if self._stop_learning is None:
            self._stop_learning = self.http.modem.add_listener(self._learn_from)
        if self._stop_listening is None:
            self._stop_listening = self.thing.link.on_message(self._on_message)
        if not self.thing.auto_subscribed:
            await self.thing.subscribe(self._upgrade_topic)
            await self.thing.subscribe(self._get_reply_topic)

    def close(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        if self._stop_learning is not None:
            self._stop_learning()
            self._stop_learning = None

    def _learn_from(self, event: object) -> None:
        """In the reader, before the recorder writes the line: a task's link signature is
        known to the redactor before any transcript or log line could show it."""
        if isinstance(event, MqttMessage) and event.topic in (self._upgrade_topic, self._get_reply_topic):
            self._learn_signatures(event.payload)

    async def __aenter__(self) -> Ota:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def _on_message(self, message: MqttMessage) -> None:
        if message.topic not in (self._upgrade_topic, self._get_reply_topic):
            return
        body = json_object(message.payload)
        if body is None:
            log.warning("OTA: not a JSON object on %s: ignored", message.topic)
            return
        if message.topic == self._get_reply_topic:
            future = self._pending_get.pop(str(body.get("id")), None)
            if future is not None and not future.done():
                future.set_result(body)
            return
        try:
            task = OtaTask.from_message(body)
        except ValueError as exc:
            log.warning("OTA: an upgrade push this device cannot use: %s", exc)
            return
        if self._tasks.full():  # the platform pushes again; the newest matters
            self._tasks.get_nowait()
        self._tasks.put_nowait(task)

    async def next_task(self, timeout: float | None = None) -> OtaTask:
        """The next task the platform pushes (TimeoutError after `timeout` seconds)."""
        async with asyncio.timeout(timeout):
            return await self._tasks.get()

    async def request(self, timeout: float = 10.0) -> OtaTask | None:
        """Ask the platform for a pending task (after boot); None when it has none."""
        request_id = self.thing.next_id()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending_get[request_id] = future
        params: dict[str, Any] = {"module": "default"}
        try:
            await self.thing.publish_json(
                f"/sys/{self.thing.product_key}/{self.thing.device_name}/thing/ota/firmware/get",
                {"id": request_id, "version": "1.0", "params": params, "method": "thing.ota.firmware.get"},
            )
            async with asyncio.timeout(timeout):
                reply = await future
        finally:
            self._pending_get.pop(request_id, None)
        if str(reply.get("code")) != "200" or not reply.get("data"):
            return None
        return OtaTask.from_message(reply)

    async def report(self, step: int, desc: str = "") -> None:
        """Report progress (1-100) or a failure (-1..-4) to the platform."""
        await self.thing.publish_json(
            f"/ota/device/progress/{self.thing.product_key}/{self.thing.device_name}",
            {"id": self.thing.next_id(), "params": {"step": str(step), "desc": desc}},
        )

    async def run(self, task: OtaTask) -> Path:
        """Download (resuming what is on disk), verify, report, and hand over `task`'s file.
        Raises `OtaFailed` with the step reported; the file is never handed over unverified."""
        try:
            path = await self.download(task)
        except OtaFailed as exc:
            await self._report_quietly(exc.step, str(exc))
            raise
        if self.on_firmware is not None:
            try:
                handed = self.on_firmware(path, task)
                if inspect.isawaitable(handed):
                    await handed
            except Exception as exc:
                log.exception("OTA: the application could not flash %s", task.version)
                await self._report_quietly(STEP_FLASH_FAILED, f"flashing failed: {type(exc).__name__}")
                raise OtaFailed(f"the application could not flash {task.version}: {exc}", STEP_FLASH_FAILED) from exc
        return path

    async def _report_quietly(self, step: int, desc: str) -> None:
        try:
            await self.report(step, desc[:128])
        except QuecError as exc:
            log.warning("OTA: could not report step %d: %s", step, exc)

    async def download(self, task: OtaTask) -> Path:
        """The verified file `<directory>/<version>.bin`. Progress is reported at each 10 %.
        One download at a time per directory (a second waits); disk errors and permanent
        refusals (an HTTP 4xx, a link the module cannot take) are `OtaFailed` at once."""
        self._learn_signatures(task.url.encode())
        async with _directory_lock(self.directory):
            try:
                async with _process_lock(self.directory):
                    return await self._download(task)
            except QuecError:
                raise  # the module's (a CommandTimeout is an OSError too): not the disk's
            except OSError as exc:  # the disk: full, read-only, gone
                reason = f"download failed: {self.directory}: {exc.strerror or exc}"
                raise OtaFailed(reason, STEP_DOWNLOAD_FAILED) from exc

    async def _download(self, task: OtaTask) -> Path:
        part = self.directory / f"{task.version}.part"
        done = self.directory / f"{task.version}.bin"
        if await asyncio.to_thread(_verify, done, task.size, task.sign_method, task.sign):
            log.info("OTA: %s is already here, verified", task.version)  # a run before got it
            return done
        await self.http.configure()  # the SSL context this Http names, whatever ran before
        received = await asyncio.to_thread(_prepare, self.directory, part, task.identity())
        if received > task.size:  # not this task's bytes after all
            received = await asyncio.to_thread(_truncate, part)
        resumed = received > 0
        if resumed:
            log.info("OTA: resuming %s at %d of %d bytes", task.version, received, task.size)
        while True:
            await self._fetch(task, part, received)
            if await asyncio.to_thread(_verify, part, task.size, task.sign_method, task.sign):
                break
            await asyncio.to_thread(_truncate, part)
            if not resumed:
                await asyncio.to_thread(_discard, part, self.directory)
                raise OtaFailed(f"the firmware's {task.sign_method} does not match the task's", STEP_VERIFY_FAILED)
            # bytes kept from before (a power cut between a write and its sync can leave zeros)
            # may be what is wrong: once more from the start before the platform is told
            log.warning("OTA: the resumed %s did not verify; downloading it again from the start", task.version)
            resumed, received = False, 0
        await asyncio.to_thread(_finish, part, done, self.directory)
        log.info("OTA: %s downloaded and verified (%d bytes)", task.version, task.size)
        return done

    async def _fetch(self, task: OtaTask, part: Path, received: int) -> None:
        reported = received * 100 // task.size // 10 * 10
        failures = 0
        while received < task.size:
            last = min(received + self.chunk_size, task.size) - 1
            try:
                response = await self.http.get_range(task.url, received, last)
                piece = range_piece(response.status, response.body, received, last, task.size)
            except InvalidArgument as exc:  # the module cannot take this link: no retry helps
                raise OtaFailed(f"download failed: {exc}", STEP_DOWNLOAD_FAILED) from exc
            except HttpStatusError as exc:
                if exc.status not in RETRIED_STATUSES:  # 403: the link expired, 404: withdrawn
                    raise OtaFailed(f"download failed: HTTP status {exc.status}", STEP_DOWNLOAD_FAILED) from exc
                failures = await self._pause(failures, received, last, exc)
                continue
            except (QuecError, ValueError) as exc:
                failures = await self._pause(failures, received, last, exc)
                continue
            failures = 0
            self.fetched += len(response.body)
            received = await asyncio.to_thread(_write_at, part, received, piece)
            if self.on_progress is not None:
                self.on_progress(received, task.size)
            percent = received * 100 // task.size
            if percent // 10 * 10 > reported or received == task.size:
                reported = percent // 10 * 10
                await self._report_quietly(max(1, percent), "downloading")

    async def _pause(self, failures: int, first: int, last: int, exc: Exception) -> int:
        """After a failed range: give up after `give_up_after` in a row, else wait (doubling)
        and bring the PDP context back if it was lost. The failures so far."""
        failures += 1
        if failures >= self.give_up_after:
            raise OtaFailed(f"download failed: {exc}", STEP_DOWNLOAD_FAILED) from exc
        delay = min(self.retry_delay * 2 ** (failures - 1), self.max_retry_delay)
        log.warning("OTA: range %d-%d failed (%s); again in %.0f s", first, last, exc, delay)
        await asyncio.sleep(delay)
        if self.network is not None:
            try:
                await self.network.ensure_active()
            except QuecError as restore_error:  # the next range tells; counted as its failure
                log.info("OTA: the PDP context is not back yet: %s", restore_error)
        return failures

    def _learn_signatures(self, text: bytes) -> None:
        """A link is a credential for as long as it lives: the ``Signature`` of each link in
        `text` (OSS's query parameter), as written (percent-encoded) and decoded, goes to the
        redactor (logs, transcripts)."""
        for match in _SIGNATURE.finditer(text):
            written = match.group(1).decode("ascii", errors="replace")
            for value in (written, unquote(written)):
                self.http.modem.redactor.add(value, "ota_link_signature")


RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})  # the others will not change by asking again
_locks: weakref.WeakValueDictionary[Path, asyncio.Lock] = weakref.WeakValueDictionary()


def _directory_lock(directory: Path) -> asyncio.Lock:
    """One lock per OTA directory in this process (and event loop): two downloads never
    write one file. `_process_lock` keeps other processes out."""
    key = directory.resolve()
    lock = _locks.get(key)
    if lock is None:
        lock = _locks[key] = asyncio.Lock()
    return lock


@contextlib.asynccontextmanager
async def _process_lock(directory: Path) -> AsyncIterator[None]:
    """``flock`` on ``<directory>/.ota.lock``: another process downloading into the same
    directory (two `aliyun ota` runs from one working directory) waits here, told once."""
    descriptor = await asyncio.to_thread(_open_lock_file, directory)
    try:
        told = False
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # never blocks the loop
                break
            except BlockingIOError:
                if not told:
                    log.warning("OTA: another process is downloading into %s: waiting for it", directory)
                    told = True
                await asyncio.sleep(0.2)
        yield
    finally:
        os.close(descriptor)  # and the lock with it


def _open_lock_file(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    return os.open(directory / ".ota.lock", os.O_RDWR | os.O_CREAT, 0o600)


def range_piece(status: int, body: bytes, first: int, last: int, size: int) -> bytes:
    """What to keep from an answer to a request for `first`..`last`: those bytes of a 206, or
    everything from `first` on when the server ignored the range and sent the whole file
    (200): asking again for each range would fetch the file once per range."""
    if status == 206:
        if len(body) != last - first + 1:
            raise ValueError(f"the server sent {len(body)} bytes for range {first}-{last}")
        return body
    if status == 200 and len(body) == size:
        return body[first:]
    if status not in (200, 206):  # a redirect the module did not follow, a refusal
        raise HttpStatusError(f"HTTP status {status} for range {first}-{last}", status)
    raise ValueError(f"HTTP status {status} with {len(body)} bytes for range {first}-{last}")


# -- disk, run in a thread ------------------------------------------------------------------


def _prepare(directory: Path, part: Path, identity: dict[str, Any]) -> int:
    """Make the directory, match the partial file to the task; how many bytes it holds."""
    directory.mkdir(parents=True, exist_ok=True)
    state = directory / "ota-task.json"
    try:
        stored = json.loads(state.read_text())
    except (OSError, ValueError):
        stored = None
    if stored != identity:
        before = stored.get("version") if isinstance(stored, dict) else None
        if isinstance(before, str) and _names_a_file(before):  # the task before's part, no other file
            (directory / f"{before}.part").unlink(missing_ok=True)
        part.unlink(missing_ok=True)
        temporary = state.with_name(f"ota-task.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(identity))
        with temporary.open("rb") as file:
            os.fsync(file.fileno())
        temporary.replace(state)
        _sync_directory(directory)
    try:
        return part.stat().st_size
    except FileNotFoundError:
        return 0


def _write_at(part: Path, offset: int, piece: bytes) -> int:
    """Write `piece` at `offset` and sync it; the file ends after it. By position, not by
    appending: a write that finishes late (its task was cancelled) rewrites the same bytes."""
    with part.open("r+b" if part.exists() else "wb") as file:
        file.seek(offset)
        file.write(piece)
        file.truncate()
        file.flush()
        os.fsync(file.fileno())
        return file.tell()


def _truncate(part: Path) -> int:
    part.unlink(missing_ok=True)
    return 0


def _verify(part: Path, size: int, method: str, expected: str) -> bool:
    try:
        if part.stat().st_size != size:
            return False
    except FileNotFoundError:
        return False
    digest = HASHES[method]()
    with part.open("rb") as file:
        while piece := file.read(1 << 16):
            digest.update(piece)
    return digest.hexdigest() == expected.lower()


def _discard(part: Path, directory: Path) -> None:
    part.unlink(missing_ok=True)
    (directory / "ota-task.json").unlink(missing_ok=True)


def _finish(part: Path, done: Path, directory: Path) -> None:
    part.replace(done)
    (directory / "ota-task.json").unlink(missing_ok=True)
    _sync_directory(directory)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
