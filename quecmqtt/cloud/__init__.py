"""The local cloud twin: Aliyun's auth and registration behaviour in front of a real broker.

    async with CloudTwin(broker=("127.0.0.1", 1883)) as twin:   # or no broker: embedded one
        twin.registry.add_product("i2uqc2dloOl", "product-secret")
        twin.registry.add_device("i2uqc2dloOl", "device001", "device-secret")
        emulator = Emulator(hosts=twin.hosts())                 # endpoint names -> the twin
        ... the driver logs in, registers, posts properties ...
        await twin.responder.set_properties("i2uqc2dloOl", "device001", {"LightStatus": 1})

Parts: `front.AuthFront` (MQTT and TLS on one port, Aliyun's CONNACK codes, register/regnwl
pushes, connwl, client id rewriting, automatic subscription, pipe to the broker),
`https.RegistrationServer` (``/auth/register/device`` and the OTA downloads),
`registry.Registry` (products and devices, in a JSON file), `responder.Responder`
(post_reply judged by `thingmodel`, NTP, OTA tasks from `ota`, `shadow`, RRPC, pushes),
`broker.EmbeddedBroker` (when no broker is given). The TLS certificate names Aliyun's
endpoints and is signed by a test CA shipped in `quecmqtt/cloud/certs/` whose private key is
public: it is for this twin only.
"""

from __future__ import annotations

import secrets
import ssl
from importlib import resources
from pathlib import Path
from typing import Any

from quecmqtt.cloud.broker import EmbeddedBroker
from quecmqtt.cloud.front import AuthFront
from quecmqtt.cloud.https import RegistrationServer
from quecmqtt.cloud.ota import OTA_HOST, FirmwareStore
from quecmqtt.cloud.registry import Registry
from quecmqtt.cloud.responder import Responder
from quecmqtt.cloud.thingmodel import PlatformModel

DEFAULT_ENDPOINT = "iot-06z00hxss3rggno.mqtt.iothub.aliyuncs.com"


def certificate(name: str) -> bytes:
    return resources.files("quecmqtt.cloud").joinpath(f"certs/{name}").read_bytes()


def server_tls_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with resources.as_file(resources.files("quecmqtt.cloud").joinpath("certs")) as directory:
        context.load_cert_chain(Path(directory) / "server.pem", Path(directory) / "server.key")
    return context


class CloudTwin:
    def __init__(
        self,
        *,
        registry: Registry | None = None,
        broker: tuple[str, int] | None = None,
        host: str = "127.0.0.1",
        mqtt_port: int = 0,
        https_port: int = 0,
        respond: bool = True,
        region: str = "cn-shanghai",
        firmware: FirmwareStore | None = None,
    ) -> None:
        self.registry = registry if registry is not None else Registry()
        self.region = region
        # offered per product (firmware.add), served from the HTTPS port
        self.firmware = firmware if firmware is not None else FirmwareStore()
        self.models: dict[str, PlatformModel] = {}  # product key -> thing model (load_model)
        self.host = host
        self._broker_address = broker
        # what the twin's own parts log in to the embedded broker with: only they reach it
        self.broker_token = secrets.token_hex(16).encode()
        self.embedded: EmbeddedBroker | None = (
            None if broker is not None else EmbeddedBroker(host, token=self.broker_token)
        )
        tls = server_tls_context()
        self.decisions: list[tuple[str, Any]] = []  # (client id, decision), for tests and logs
        self.front = AuthFront(
            self.registry, self.broker_address, tls, host=host, port=mqtt_port,
            on_decision=lambda cid, d: self.decisions.append((cid, d)),
            broker_token=self.broker_token if broker is None else None,
        )  # fmt: skip
        self.https = RegistrationServer(self.registry, tls, host=host, port=https_port, firmware=self.firmware)
        self.responder: Responder | None = None
        self._respond = respond
        self.ca_pem = certificate("ca.pem")

    def load_model(self, product_key: str, path: str | Path) -> PlatformModel:
        """Check the product's posts against its console-exported thing model from now on."""
        model = self.models[product_key] = PlatformModel.load(path)
        return model

    def broker_address(self) -> tuple[str, int]:
        if self._broker_address is not None:
            return self._broker_address
        assert self.embedded is not None
        return self.host, self.embedded.port

    @property
    def mqtt_port(self) -> int:
        return self.front.port

    @property
    def https_port(self) -> int:
        return self.https.port

    def hosts(self, endpoint: str = DEFAULT_ENDPOINT, region: str | None = None) -> dict[str, str]:
        """A hosts table for the emulator: the MQTT endpoint (every port) to the front, the
        HTTPS registration host and the OTA download host to the HTTPS server."""
        region = region or self.region
        return {
            endpoint: f"{self.host}:{self.mqtt_port}",
            f"iot-auth.{region}.aliyuncs.com": f"{self.host}:{self.https_port}",
            OTA_HOST.format(region=region): f"{self.host}:{self.https_port}",
        }

    async def start(self) -> None:
        if self.embedded is not None:
            await self.embedded.start()
        await self.front.start()
        await self.https.start()
        if self._respond:
            host, port = self.broker_address()
            self.responder = Responder(
                host, port, token=self.broker_token if self.embedded is not None else None,
                firmware=self.firmware, region=self.region, online=self.front.is_online, models=self.models,
                known=lambda pk, dn: self.registry.device(pk, dn) is not None,
            )  # fmt: skip
            await self.responder.start()

    async def stop(self) -> None:
        if self.responder is not None:
            await self.responder.stop()
        await self.https.stop()
        await self.front.stop()
        if self.embedded is not None:
            await self.embedded.stop()

    async def __aenter__(self) -> CloudTwin:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
