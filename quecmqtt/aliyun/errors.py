"""Aliyun's refusals as typed errors (reference/aliyun.md 1.4, 2.2, 3, 4)."""

from __future__ import annotations

from quecmqtt.errors import RemoteError


class AliyunError(RemoteError):
    """The platform refused: `code` is its number (a CONNACK return code for logins, the
    JSON `code` for HTTPS registration and Alink replies)."""

    def __init__(self, message: str, code: int) -> None:
        self.code = code
        super().__init__(message)


class BadCredentials(AliyunError):
    """CONNACK 4: wrong sign, wrong triple, a device not pre-registered for `register`, or
    dynamic registration disabled (MQTT does not say which)."""


class NotAuthorised(AliyunError):
    """CONNACK 5."""


class RegistrationNeedsTls(AliyunError):
    """CONNACK 2 during dynamic registration: a parameter is malformed, or (most often)
    the registration came over plain TCP. Registration is TLS only."""


class ServerUnavailable(AliyunError):
    """CONNACK 3 or HTTP 500: the cloud failed; retry later."""


class DynamicRegistrationDisabled(AliyunError):
    """6288: the product does not allow dynamic registration (console: 动态注册)."""


class AlreadyActive(AliyunError):
    """6289: the device is already activated; `register` is refused until the cloud API
    ResetThing resets it."""


class ProductNotFound(AliyunError):
    """6250."""


class SignatureInvalid(AliyunError):
    """6600: the sign does not match (wrong ProductSecret)."""


class SignMethodUnsupported(AliyunError):
    """6292."""


class ParameterError(AliyunError):
    """460."""


class RegistrationTimeout(AliyunError):
    """The registration login was accepted but no result was pushed in time."""


BY_CODE: dict[int, tuple[type[AliyunError], str]] = {
    460: (ParameterError, "request parameter error"),
    500: (ServerUnavailable, "server error"),
    6250: (ProductNotFound, "product not found"),
    6288: (DynamicRegistrationDisabled, "dynamic registration is not enabled for the product"),
    6289: (AlreadyActive, "device is already active"),
    6292: (SignMethodUnsupported, "sign method not supported"),
    6600: (SignatureInvalid, "signature check failed"),
}
CONNACK: dict[int, tuple[type[AliyunError], str]] = {
    2: (RegistrationNeedsTls, "identifier rejected (for a registration: plain TCP, or a malformed parameter)"),
    3: (ServerUnavailable, "server unavailable"),
    4: (
        BadCredentials,
        "bad user name or password: a wrong sign or triple; for a registration also a device already active "
        "or not pre-registered, or dynamic registration disabled",
    ),
    5: (NotAuthorised, "not authorised"),
}


def error_for_code(code: int, message: str = "", what: str = "registration") -> AliyunError:
    cls, meaning = BY_CODE.get(code, (AliyunError, "refused"))
    detail = f"{meaning}: {message}" if message and message != meaning else meaning
    return cls(f"{what} refused with code {code} ({detail})", code)


def error_for_connack(code: int, what: str = "login") -> AliyunError:
    cls, meaning = CONNACK.get(code, (AliyunError, "refused"))
    return cls(f"{what} refused with CONNACK {code} ({meaning})", code)
