"""`quecmqtt.aliyun.Device`: one device on the Aliyun IoT Platform, as one async context
manager over a modem (a login, a kept-up session and the Alink thing model):

    async with quecmqtt.connect("/dev/ttyUSB2") as modem:
        async with quecmqtt.aliyun.Device(modem, "a1B2c3D4e5F", "dev-01", secret=ds,
                                          endpoint="iot-06z00abc.mqtt.iothub.aliyuncs.com") as device:
            await device.post({"Temp": 21.5})   # 200, the platform's post_reply code

`secret` is the DeviceSecret (a `str` or a `Secret`), or what a dynamic registration returned
(`Registered`, or `Whitelisted` for a regnwl token). The host signs the login, or the module
does (`module_signs=True`: ``AT+QMTCFG="aliauth"``, cleared again on the way out, so no later
CONNECT of another program is signed with the device's triple). `tls=True` verifies the
endpoint against the shipped public roots (or `ca`). Aliyun's endpoints take TLS on 1883 too.
`model`: the product's `ThingModel`; posts it does not allow raise `TslError` unsent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quecmqtt.errors import InvalidArgument, QuecError
from quecmqtt.secret import Secret

if TYPE_CHECKING:
    from quecmqtt.aliyun.alink import Params, ServiceHandler, SetHandler, Thing
    from quecmqtt.aliyun.replies import Registered, Whitelisted
    from quecmqtt.aliyun.tsl import ThingModel
    from quecmqtt.mqtt.opener import CaSource, SessionOpener
    from quecmqtt.mqtt.session import Session
    from quecmqtt.runtime import Modem


class Device:
    def __init__(
        self,
        modem: Modem,
        product_key: str,
        device_name: str,
        *,
        secret: str | Secret | Registered | Whitelisted | None,
        endpoint: str,
        port: int = 1883,
        tls: bool = False,
        ca: CaSource | None = None,
        module_signs: bool = False,
        ssl_context: int = 2,
        model: ThingModel | None = None,
        **session_options: Any,
    ) -> None:
        from quecmqtt.aliyun.replies import Whitelisted

        if not product_key or not device_name:
            raise InvalidArgument("give the product key and the device name")
        if not endpoint:
            raise InvalidArgument("give the endpoint: your instance's MQTT host (console: 开发配置)")
        if secret is None:  # what load_secret() gives when the file or variable holds nothing
            raise InvalidArgument("no device secret: give secret= (a str, a Secret, or a registration result)")
        taken = {"client_id", "username", "password", "config"} & set(session_options)
        if taken:
            raise InvalidArgument(f"Device sets {', '.join(sorted(taken))} itself (from the secret and module_signs)")
        if module_signs and isinstance(secret, Whitelisted):
            raise InvalidArgument("a regnwl token logs in host-signed: leave out module_signs")
        self.modem = modem
        self.product_key = product_key
        self.device_name = device_name
        self.secret = Secret(secret, "device_secret") if isinstance(secret, str) else secret
        self.endpoint = endpoint
        self.port = port
        self.tls = tls or ca is not None
        self.ca = ca
        self.module_signs = module_signs
        self.ssl_context = ssl_context
        self.model = model
        self.session_options = session_options
        self._opener: SessionOpener | None = None
        self._thing: Thing | None = None

    def __repr__(self) -> str:  # the secret stays out
        return f"<aliyun.Device {self.product_key}/{self.device_name} at {self.endpoint}:{self.port}>"

    @property
    def session(self) -> Session:
        """The MQTT session (publish and subscribe to your own topics with it)."""
        if self._opener is None or self._opener.session is None:
            raise QuecError("the device is not connected: use `async with Device(...)`")
        return self._opener.session

    @property
    def thing(self) -> Thing:
        """The Alink thing model: properties, events, services, NTP, OTA version."""
        if self._thing is None:
            raise QuecError("the device is not connected: use `async with Device(...)`")
        return self._thing

    async def __aenter__(self) -> Device:
        from quecmqtt.aliyun.alink import Thing
        from quecmqtt.aliyun.device import aliauth_config, login_credentials
        from quecmqtt.aliyun.replies import Registered
        from quecmqtt.mqtt.opener import SessionOpener

        common = {"tls": self.tls, "ca": self.ca, "ssl_context": self.ssl_context, **self.session_options}
        if self.module_signs:
            secret = self.secret
            device_secret = secret.device_secret if isinstance(secret, Registered) else secret
            assert isinstance(device_secret, Secret)
            config = aliauth_config(
                self.product_key, self.device_name, device_secret, ssl_context=self.ssl_context if self.tls else False
            )
            opener = SessionOpener(
                self.modem, self.endpoint, self.port, client_id=self.device_name, config=config, **common
            )
        else:
            login = login_credentials(self.product_key, self.device_name, self.secret, tls=self.tls)
            opener = SessionOpener(
                self.modem, self.endpoint, self.port,
                client_id=login.client_id, username=login.username, password=login.password, **common,
            )  # fmt: skip
        try:
            await opener.__aenter__()
            self._opener = opener
            assert opener.session is not None
            self._thing = Thing(opener.session, self.product_key, self.device_name, model=self.model)
            await self._thing.start()
        except BaseException:
            self._opener = None
            await self._leave(opener)  # closes the Thing too, started or not
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        opener, self._opener = self._opener, None
        if opener is not None:
            await self._leave(opener)

    async def _leave(self, opener: SessionOpener) -> None:
        thing, self._thing = self._thing, None
        try:
            if thing is not None:
                await thing.close()
        finally:
            try:
                await opener.__aexit__(None, None, None)
            finally:
                if self.module_signs:
                    from quecmqtt.aliyun.device import clear_aliauth

                    await clear_aliauth(self.modem, int(self.session_options.get("index", 0)))

    async def post(self, params: Params, *, timeout: float = 10.0) -> int:
        """Post properties (``thing.event.property.post``); the platform's reply code, 200
        when accepted. TimeoutError when no reply comes within `timeout` seconds."""
        return await self.thing.post_properties(params, timeout=timeout)

    async def event(self, identifier: str, value: Params, *, timeout: float = 10.0) -> int:
        """Post the event `identifier` with its output data; the reply code."""
        return await self.thing.post_event(identifier, value, timeout=timeout)

    def on_property_set(self, handler: SetHandler) -> None:
        """Call `handler(params)` for each property set from the cloud (it is answered 200,
        or with the code the handler returns)."""
        self.thing.on_property_set(handler)

    def on_service(self, identifier: str, handler: ServiceHandler) -> None:
        """Call `handler(params)` for each call of service `identifier`; its result is the reply."""
        self.thing.on_service(identifier, handler)
