"""Where registration results live: the cloud shows a DeviceSecret (or a regnwl token) once.

One JSON file per device in a directory, written atomically (a temporary file in the same
directory, fsync, rename, fsync of the directory) with mode 0600, before the registration
call returns. A failed write raises `StoreError` carrying the result, so the caller can
still keep it somewhere else: it cannot be fetched from the cloud again.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import urllib.parse
from pathlib import Path

from quecmqtt.aliyun.replies import Registered, Registration, Whitelisted
from quecmqtt.errors import QuecError
from quecmqtt.secret import Secret


class StoreError(QuecError):
    """The result could not be stored; `result` holds it (print it somewhere safe)."""

    def __init__(self, reason: str, result: Registration) -> None:
        self.reason = reason  # what went wrong, without the advice
        self.result = result
        super().__init__(f"{reason}; the result is on this error (.result) and cannot be fetched again")


class SecretStore:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, product_key: str, device_name: str) -> Path:
        name = urllib.parse.quote(f"{product_key}.{device_name}", safe="@:.-_")
        return self.directory / f"{name}.json"

    def load(self, product_key: str, device_name: str) -> Registration | None:
        """The stored result for the device, or None."""
        path = self.path(product_key, device_name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as exc:
            raise QuecError(f"{path}: unreadable registration record ({type(exc).__name__})") from None
        if data.get("deviceSecret"):
            return Registered(data["productKey"], data["deviceName"], Secret(data["deviceSecret"], "device_secret"))
        if data.get("clientId") and data.get("deviceToken"):
            token = Secret(data["deviceToken"], "device_token")
            return Whitelisted(data["productKey"], data["deviceName"], data["clientId"], token)
        raise QuecError(f"{path}: the record holds neither a deviceSecret nor a clientId and deviceToken")

    def save(self, result: Registration) -> Path:
        """Write `result` atomically with mode 0600; StoreError (with the result) if not."""
        record: dict[str, str | float] = {
            "productKey": result.product_key,
            "deviceName": result.device_name,
            "registeredAt": time.time(),
        }
        if isinstance(result, Registered):
            record["deviceSecret"] = result.device_secret.reveal()
        else:
            record["clientId"] = result.client_id
            record["deviceToken"] = result.device_token.reveal()
        target = self.path(result.product_key, result.device_name)
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(record, fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StoreError(
                f"could not store the registration of {result.product_key}/{result.device_name} in {self.directory}: "
                f"{exc.strerror or exc}",
                result,
            ) from None
        return target


def rescue(error: StoreError, directories: list[Path]) -> Path | None:
    """Keep a result whose store failed in the first of `directories` that takes it (same
    atomic, 0600 write); None when none does. A DeviceSecret from `register` is shown once, so a
    full disk or a wrong permission on the store must not lose it."""
    for directory in directories:
        try:
            return SecretStore(directory).save(error.result)
        except StoreError:
            continue
    return None


def rescue_directories(*first: Path) -> list[Path]:
    """Where `rescue` looks: the given places, then ~/.local/share/quecmqtt/rescue, then
    ./quecmqtt-rescue in the working directory."""
    return [*first, Path.home() / ".local" / "share" / "quecmqtt" / "rescue", Path.cwd() / "quecmqtt-rescue"]
