"""Getting a device onto Aliyun through the module: registration (MQTT `register`/`regnwl`,
HTTPS) and the logins (the module signs with `aliauth`, the host signs, `connwl`).

    store = SecretStore("/var/lib/dev/aliyun")
    result = await register_mqtt(modem, Registration(pk, dn, Secret(ps)), host, store=store)
    client = MqttClient(modem, 0)
    await login(client, host, 1883, login_credentials(pk, dn, result))

Registration is TLS only (the platform answers CONNACK 2 over plain TCP, and the reply would
carry the DeviceSecret in clear), and the server is verified (seclevel 1) against the root CAs
shipped in the package unless you pass your own. A stored result is reused: registering again
needs `force=True` (`regnwl` allows only 5 client ids per device, and a new `register` result
invalidates the old secret). The result is stored before the call returns; a failed write
raises `StoreError` carrying it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from quecmqtt.aliyun.credentials import (
    MqttCredentials,
    connwl_login,
    direct_login,
    https_registration,
    instance_id_from_endpoint,
    now_ms,
    registration_login,
)
from quecmqtt.aliyun.errors import RegistrationTimeout, error_for_connack
from quecmqtt.aliyun.replies import (
    REGISTRATION_TOPICS,
    Registered,
    Whitelisted,
    parse_https_reply,
    parse_registration,
    registration_secrets,
)
from quecmqtt.aliyun.replies import Registration as RegistrationResult
from quecmqtt.aliyun.store import SecretStore
from quecmqtt.at import commands as C
from quecmqtt.at.events import MqttMessage
from quecmqtt.errors import ConnectRefused, InvalidArgument, QuecError
from quecmqtt.modem import Modem
from quecmqtt.mqtt.client import MqttClient
from quecmqtt.mqtt.config import AliAuth, MqttConfig
from quecmqtt.mqtt.state import ClientState
from quecmqtt.secret import Secret
from quecmqtt.services.http import CONTENT_FORM, Http, HttpConfig
from quecmqtt.services.tls import Tls

log = logging.getLogger("quecmqtt.aliyun")

REGISTER_PATH = "/auth/register/device"


def shipped_roots() -> bytes:
    """The public root CAs Aliyun's endpoints chain to (GlobalSign R1, R3, R6, R46, E46)."""
    return resources.files("quecmqtt.aliyun").joinpath("certs/roots.pem").read_bytes()


@dataclass(frozen=True)
class Product:
    """What dynamic registration needs: the product and the device's name."""

    product_key: str
    device_name: str
    product_secret: Secret

    def __post_init__(self) -> None:
        # a secret given as a plain str would show in repr(), logs and tracebacks: wrap it
        if not isinstance(self.product_secret, Secret):
            object.__setattr__(self, "product_secret", Secret(self.product_secret, "product_secret"))


def login_credentials(
    product_key: str,
    device_name: str,
    secret: str | Secret | RegistrationResult,
    *,
    client_id: str | None = None,
    timestamp: int | str | None = None,
    sign_method: str = "hmacsha256",
    tls: bool = True,
    auto_subscribe: bool = False,
) -> MqttCredentials:
    """Host-signed login from a DeviceSecret or a registration result (Registered: direct
    login; Whitelisted: connwl). `timestamp` defaults to now (milliseconds)."""
    if isinstance(secret, Whitelisted):
        return connwl_login(secret.product_key, secret.device_name, secret.client_id, secret.device_token)
    device_secret = secret.device_secret if isinstance(secret, Registered) else secret
    return direct_login(
        product_key,
        device_name,
        device_secret,
        client_id=client_id,
        timestamp=timestamp if timestamp is not None else now_ms(),
        sign_method=sign_method,
        secure_mode=2 if tls else 3,
        auto_subscribe=auto_subscribe,
    )


async def login(
    client: MqttClient, host: str, port: int, credentials: MqttCredentials | None, *, client_id: str | None = None
) -> None:
    """Open and CONNECT. `credentials` None: the module signs (``aliauth`` configured on the
    client) and `client_id` is sent alone. Refusals become typed AliyunErrors."""
    await client.open(host, port)
    try:
        if credentials is None:
            if not client_id:
                raise InvalidArgument("a login the module signs (aliauth) needs a client id")
            await client.connect(client_id)
        else:
            await client.connect(credentials.client_id, credentials.username, credentials.password)
    except ConnectRefused as exc:
        with contextlib.suppress(QuecError):
            await client.close()
        raise error_for_connack(exc.return_code or 0, "login") from exc


def aliauth_config(product_key: str, device_name: str, device_secret: str | Secret, **options: object) -> MqttConfig:
    """A client configuration with which the module signs the login itself (seed 4.1.1)."""
    ds = device_secret if isinstance(device_secret, Secret) else Secret(device_secret, "device_secret")
    return MqttConfig(aliauth=AliAuth(product_key, device_name, ds), **options)  # type: ignore[arg-type]


async def clear_aliauth(modem: Modem, index: int = 0) -> None:
    """Clear the module's `aliauth` on client `index` (an empty triple, as the module shows a
    cleared one): after a login the module signed, so that no later CONNECT, another program's
    or another broker's, is signed with the device's secret. Best effort: a module that is
    gone or refuses leaves nothing more to do."""
    if modem.closed:
        return
    with contextlib.suppress(QuecError):
        await modem.execute(C.QMTCFG["aliauth"](index, "", "", ""))


async def _setup_tls(
    modem: Modem, ssl_context: int, ca: bytes | None, seclevel: int, clock: str | None, host: str
) -> None:
    # for this registration only: the context's init step goes with the Tls object
    async with Tls(modem) as tls:
        await tls.setup(
            ssl_context, ca=ca if ca is not None else shipped_roots(), seclevel=seclevel, clock=clock, server_name=host
        )


def learn_registration_replies(modem: Modem) -> Callable[[], None]:
    """Teach the modem's redactor the secret of every registration reply (``/ext/register``,
    ``/ext/regnwl``) as it arrives, in the reader and before the recorder writes it or a
    log line could show it. Payloads on other topics are never looked at. Returns a remover;
    `register_mqtt` does this itself, raw-runtime code registering a device calls it."""

    def learn(event: object) -> None:
        if isinstance(event, MqttMessage) and event.topic in REGISTRATION_TOPICS:
            for secret in registration_secrets(event.payload):
                modem.redactor.add(secret)

    return modem.add_listener(learn)


def learn_https_reply(modem: Modem) -> Callable[[bytes], None]:
    """An `on_body` for `Http.post`: the secret of an HTTPS registration reply."""

    def learn(body: bytes) -> None:
        for secret in registration_secrets(body):
            modem.redactor.add(secret)

    return learn


def _reuse(store: SecretStore | None, product: Product, force: bool, want: type) -> RegistrationResult | None:
    if store is None or force:
        return None
    stored = store.load(product.product_key, product.device_name)
    if stored is not None and isinstance(stored, want):
        log.info("%s/%s is registered already (stored result reused)", product.product_key, product.device_name)
        return stored
    return None


async def register_mqtt(
    modem: Modem,
    product: Product,
    host: str,
    port: int = 1883,
    *,
    auth_type: str = "register",
    store: SecretStore | None = None,
    force: bool = False,
    tls: bool = True,
    allow_plain_tcp: bool = False,
    ssl_context: int = 2,
    ca: bytes | None = None,
    seclevel: int = 1,
    clock: str | None = "network",
    configure_tls: bool = True,
    instance_id: str | None = None,
    client_id: str | None = None,
    random: str | None = None,
    sign_method: str = "hmacsha256",
    index: int = 0,
    client: MqttClient | None = None,
    timeout: float = 15.0,
    secure_mode: int | None = None,
) -> RegistrationResult:
    """Dynamic registration over MQTT: `register` (the reply carries the DeviceSecret) or
    `regnwl` (a client id and token for `connwl`). The platform pushes the result and
    closes the connection; that close is the normal end (we close after 2 s if it does
    not). Never reconnects. `client`: a configured MqttClient to use (its configuration
    must turn TLS on) instead of a new one on `index`. `instance_id` defaults to the one the
    endpoint names (`iot-xxx.mqtt.iothub.aliyuncs.com`); `secure_mode` to the instance's
    (see `registration_login`)."""
    want = Registered if auth_type == "register" else Whitelisted
    stored = _reuse(store, product, force, want)
    if stored is not None:
        return stored
    if not tls and not allow_plain_tcp:
        raise InvalidArgument(
            "dynamic registration over plain TCP: Aliyun refuses it (CONNACK 2) and the reply would carry the "
            "secret in clear; use TLS, or allow_plain_tcp=True for a test server"
        )
    if tls and configure_tls:
        await _setup_tls(modem, ssl_context, ca, seclevel, clock, host)
    credentials = registration_login(
        product.product_key,
        product.device_name,
        product.product_secret,
        auth_type=auth_type,
        random=random or secrets.token_hex(6),
        sign_method=sign_method,
        instance_id=instance_id if instance_id is not None else instance_id_from_endpoint(host),
        client_id=client_id,
        secure_mode=secure_mode,
    )
    own = client is None
    if client is None:
        client = MqttClient(modem, index, MqttConfig(ssl_context=ssl_context if tls else False))
    replies: asyncio.Queue[MqttMessage] = asyncio.Queue()
    closed = asyncio.Event()

    forget_replies = learn_registration_replies(modem)
    client.on_message(lambda m: replies.put_nowait(m) if m.topic in REGISTRATION_TOPICS else None)
    client.on_link_event(lambda reason: closed.set())
    try:
        await client.open(host, port)
        try:
            await client.connect(credentials.client_id, credentials.username, credentials.password)
        except ConnectRefused as exc:
            raise error_for_connack(exc.return_code or 0, f"{auth_type} for {product.device_name}") from exc
        try:
            async with asyncio.timeout(timeout):
                message = await replies.get()
        except TimeoutError:
            raise RegistrationTimeout(
                f"{auth_type} for {product.device_name}: accepted, but no result was pushed within {timeout:g} s", -1
            ) from None
        result = parse_registration(message.payload)
        log.info("%s for %s/%s succeeded", auth_type, product.product_key, product.device_name)
        if store is not None:
            store.save(result)  # before anything else can fail
        return result
    finally:
        # the platform closes the link after the push (+QMTSTAT: <c>,1): the expected end
        if client.state is not ClientState.CLOSED:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await closed.wait()
        if client.state is not ClientState.CLOSED:
            with contextlib.suppress(QuecError):
                await client.close()
        forget_replies()
        if own:
            await client.aclose()


async def register_https(
    modem: Modem,
    product: Product,
    *,
    region: str = "cn-shanghai",
    url: str | None = None,
    store: SecretStore | None = None,
    force: bool = False,
    ssl_context: int = 1,
    ca: bytes | None = None,
    seclevel: int = 1,
    clock: str | None = "network",
    configure_tls: bool = True,
    random: str | None = None,
    sign_method: str = "hmacsha256",
    timeout: int = 60,
) -> Registered:
    """Dynamic registration over HTTPS with the module's HTTP client (pre-registered
    devices only; `regnwl` has no HTTPS form)."""
    stored = _reuse(store, product, force, Registered)
    if isinstance(stored, Registered):
        return stored
    target = url or f"https://iot-auth.{region}.aliyuncs.com{REGISTER_PATH}"
    if not target.startswith("https://"):
        raise InvalidArgument(f"{target}: registration must use HTTPS (the reply carries the DeviceSecret)")
    if configure_tls:
        await _setup_tls(modem, ssl_context, ca, seclevel, clock, target.split("/")[2].split(":")[0])
    form = https_registration(
        product.product_key,
        product.device_name,
        product.product_secret,
        random=random or secrets.token_hex(6),
        sign_method=sign_method,
    )
    async with Http(modem, HttpConfig(ssl_context=ssl_context, content_type=CONTENT_FORM)) as http:
        await http.configure()
        response = await http.post(
            target, Secret(form.body, "registration_form"), timeout=timeout, on_body=learn_https_reply(modem)
        )
    result = parse_https_reply(response.body, response.status)
    log.info("HTTPS registration for %s/%s succeeded", product.product_key, product.device_name)
    if store is not None:
        store.save(result)
    return result
