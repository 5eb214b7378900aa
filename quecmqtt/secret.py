"""A value that must never be printed: passwords, device secrets, tokens, PINs, keys.

`Secret` wraps the value so that `str()`, `repr()`, f-strings and tracebacks show a
redaction marker instead of the content. Code that really needs the value (the AT
argument encoder, the signer) calls `reveal()`, which makes every such place easy to find.
"""

from __future__ import annotations

import os

from quecmqtt.errors import InvalidArgument

REDACTED = "***"


class Secret:
    """A secret string or byte string, with a name used in placeholders such as
    ``{{password:32}}``."""

    __slots__ = ("_value", "name")

    def __init__(self, value: str | bytes | Secret, name: str = "secret") -> None:
        if isinstance(value, Secret):
            value = value._value
        if isinstance(value, str):
            try:
                value = value.encode("utf-8")
            except UnicodeEncodeError as exc:
                # the exception would carry the whole value (exc.object): say where, not what
                raise InvalidArgument(
                    f"the {name} is not valid text: an unpaired surrogate at position {exc.start}"
                ) from None
        if not isinstance(value, bytes):
            raise TypeError(f"Secret value must be str or bytes, not {type(value).__name__}")
        self._value: bytes = value
        self.name = name

    def reveal(self) -> str:
        """The value as text (UTF-8). Call it only where the value leaves for the module."""
        return self._value.decode("utf-8", errors="surrogateescape")

    def reveal_bytes(self) -> bytes:
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __str__(self) -> str:
        return REDACTED

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, <{len(self._value)} bytes redacted>)"

    def __format__(self, spec: str) -> str:
        return format(REDACTED, spec)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            import hmac  # here: a command's --help need not load it

            return hmac.compare_digest(self._value, other._value)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling a secret is almost always an accident (multiprocessing, caches).
        raise TypeError("Secret values cannot be pickled")


def reveal(value: str | bytes | Secret) -> bytes:
    """Bytes of a plain or secret value."""
    if isinstance(value, Secret):
        return value.reveal_bytes()
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def load_secret(
    value: str | bytes | Secret | None = None,
    *,
    file: str | os.PathLike[str] | None = None,
    env: str | None = None,
    name: str = "secret",
) -> Secret | None:
    """A secret from the first source given: a value, a file (its content, without a
    trailing newline), or an environment variable. Files and variables keep secrets out of
    process lists and shell history. None if no source holds one."""
    if value is not None:
        return Secret(value, name)
    if file is not None:
        from pathlib import Path

        data = Path(file).read_bytes()
        return Secret(data[:-1] if data.endswith(b"\n") else data, name)
    if env is not None and os.environ.get(env):
        return Secret(os.environ[env], name)
    return None
