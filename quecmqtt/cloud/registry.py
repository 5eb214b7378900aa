"""The cloud twin's products and devices, kept in a JSON file (or in memory).

{"products": {"<pk>": {"productSecret": "...", "dynamicRegistration": true, "registrationFree": true}},
 "devices": {"<pk>/<dn>": {"deviceSecret": "...", "active": false, "clientIds": {"<cid>": "<token>"}}}}
"""

from __future__ import annotations

import json
import os
import secrets
import string
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_CLIENT_IDS = 5  # regnwl: client ids per device [V: reference 2.1]


class RegistryRefusal(Exception):
    """A registration the registry refuses: `code` is Aliyun's (6250, 6288, 6289, 6100...)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass
class Product:
    product_secret: str
    dynamic_registration: bool = True
    registration_free: bool = True


@dataclass
class Device:
    device_secret: str | None = None
    active: bool = False
    client_ids: dict[str, str] = field(default_factory=dict)  # regnwl: client id -> token


class Registry:
    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.products: dict[str, Product] = {}
        self.devices: dict[tuple[str, str], Device] = {}
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            self._load(json.loads(self.path.read_text(encoding="utf-8")))

    # -- the file ------------------------------------------------------------------------------

    def _load(self, data: dict[str, Any]) -> None:
        for pk, p in data.get("products", {}).items():
            self.products[pk] = Product(
                p["productSecret"], p.get("dynamicRegistration", True), p.get("registrationFree", True)
            )
        for key, d in data.get("devices", {}).items():
            pk, _, dn = key.partition("/")
            self.devices[(pk, dn)] = Device(d.get("deviceSecret"), d.get("active", False), dict(d.get("clientIds", {})))

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            "products": {
                pk: {
                    "productSecret": p.product_secret,
                    "dynamicRegistration": p.dynamic_registration,
                    "registrationFree": p.registration_free,
                }
                for pk, p in self.products.items()
            },
            "devices": {
                f"{pk}/{dn}": {"deviceSecret": d.device_secret, "active": d.active, "clientIds": d.client_ids}
                for (pk, dn), d in self.devices.items()
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".registry-", dir=self.path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    # -- set-up ----------------------------------------------------------------------------------

    def add_product(
        self,
        product_key: str,
        product_secret: str,
        *,
        dynamic_registration: bool = True,
        registration_free: bool = True,
    ) -> None:
        with self._lock:
            self.products[product_key] = Product(product_secret, dynamic_registration, registration_free)
            self.save()

    def add_device(self, product_key: str, device_name: str, device_secret: str | None = None) -> Device:
        """A device as the console creates it (pre-registered; with a secret for direct login)."""
        with self._lock:
            device = self.devices.setdefault((product_key, device_name), Device())
            if device_secret is not None:
                device.device_secret = device_secret
            self.save()
            return device

    def device(self, product_key: str, device_name: str) -> Device | None:
        return self.devices.get((product_key, device_name))

    # -- what the platform does -----------------------------------------------------------------

    def _dynamic_product(self, product_key: str) -> Product:
        product = self.products.get(product_key)
        if product is None:
            raise RegistryRefusal(6250, "product not found")
        if not product.dynamic_registration:
            raise RegistryRefusal(6288, "dynamic registration is not enabled")
        return product

    def product_secret(self, product_key: str) -> str:
        return self._dynamic_product(product_key).product_secret

    def register(self, product_key: str, device_name: str) -> str:
        """`register`: a new DeviceSecret for a pre-registered, not yet active device (only
        the latest one is valid)."""
        with self._lock:
            self._dynamic_product(product_key)
            device = self.devices.get((product_key, device_name))
            if device is None:
                raise RegistryRefusal(6100, "device not found (register needs a pre-registered device)")
            if device.active:
                raise RegistryRefusal(6289, "device is already active")
            device.device_secret = secrets.token_hex(16)
            self.save()
            return device.device_secret

    def register_free(self, product_key: str, device_name: str) -> tuple[str, str]:
        """`regnwl`: a new (client id, token) pair, at most five per device."""
        with self._lock:
            product = self._dynamic_product(product_key)
            if not product.registration_free:
                raise RegistryRefusal(6288, "registration-free dynamic registration is not enabled")
            device = self.devices.setdefault((product_key, device_name), Device())
            if len(device.client_ids) >= MAX_CLIENT_IDS:
                raise RegistryRefusal(6294, f"{MAX_CLIENT_IDS} client ids are active for this device")
            alphabet = string.ascii_letters + string.digits
            client_id = "".join(secrets.choice(alphabet) for _ in range(20)) + f"{len(device.client_ids) + 1:06d}"
            token = f"^1^{int(time.time() * 1000)}^{secrets.token_hex(8)[:15]}"
            device.client_ids[client_id] = token
            self.save()
            return client_id, token

    def activate(self, product_key: str, device_name: str) -> None:
        with self._lock:
            device = self.devices.get((product_key, device_name))
            if device is not None and not device.active:
                device.active = True
                self.save()

    def token_owner(self, client_id: str, token: bytes) -> tuple[str, str] | None:
        """The (pk, dn) whose regnwl issued this client id and token."""
        for (pk, dn), device in self.devices.items():
            expected = device.client_ids.get(client_id)
            if expected is not None and secrets.compare_digest(expected.encode(), token):
                return pk, dn
        return None
