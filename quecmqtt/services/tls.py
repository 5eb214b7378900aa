"""SSL contexts (`AT+QSSLCFG`) and the certificate files they use (`AT+QFUPL`,
`AT+QFLST`, `AT+QFDEL`).

Uploads are idempotent: `AT+QFLST` reports only a name and a size, so a file is named by a
short hash of its content (``qm-<12 hex>.pem``) and a file already there under that name
and size is not sent again. Each upload is checked against the module's answer
(``+QFUPL: <size>,<checksum>``). A private key is a secret: its bytes never appear in logs
or transcripts.

    tls = Tls(modem)
    await tls.setup(1, ca=ca_pem)                   # seclevel 1: verify the server
    await tls.setup(2, ca=ca_pem, cert=cert_pem, key=Secret(key_pem))   # mutual TLS
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from quecmqtt.at import commands as C
from quecmqtt.at.spec import Command
from quecmqtt.errors import CommandError, TlsError, UploadError
from quecmqtt.probe import TestAnswers, last_field_is_name
from quecmqtt.runtime import Modem, StepHandle
from quecmqtt.secret import Secret
from quecmqtt.services.network import set_module_clock

log = logging.getLogger("quecmqtt.services.tls")
_SECURITY = frozenset({"seclevel", "cacert", "clientcert", "clientkey"})  # never skipped


def checksum(data: bytes) -> int:
    """The module's QFUPL checksum: XOR of the data as big-endian 16-bit words, an odd last
    byte as the high byte [V: reference 3.2]."""
    value = 0
    for i in range(0, len(data) - 1, 2):
        value ^= (data[i] << 8) | data[i + 1]
    if len(data) % 2:
        value ^= data[-1] << 8
    return value


def content_name(data: bytes, suffix: str = ".pem") -> str:
    return f"qm-{hashlib.sha256(data).hexdigest()[:12]}{suffix}"


class Files:
    def __init__(self, modem: Modem) -> None:
        self.modem = modem

    async def list(self, pattern: str = "*") -> dict[str, int]:
        """Name -> size (names without the "UFS:" prefix some firmware adds)."""
        out = {}
        for name, size in (await self.modem.execute(C.QFLST(pattern))).fields("+QFLST"):
            text = str(name)
            out[text[4:] if text.upper().startswith("UFS:") else text] = int(size)
        return out

    async def delete(self, name: str) -> None:
        await self.modem.execute(C.QFDEL(name))

    async def upload(self, name: str, data: bytes | Secret, *, timeout: int = 10) -> None:
        """Upload and check what the module stored; a bad copy is deleted."""
        raw = data.reveal_bytes() if isinstance(data, Secret) else data
        reply = await self.modem.execute(C.QFUPL(name, len(raw), timeout), data)
        fields = reply.fields("+QFUPL")
        stored = fields[0] if fields else ()
        expected = checksum(raw)
        size = stored[0] if stored else None
        got = stored[1] if len(stored) > 1 else None
        got_value = int(str(got), 16) if got is not None else None
        if size != len(raw) or got_value != expected:
            try:
                await self.delete(name)
            except CommandError:
                log.warning("could not delete the bad copy of %s", name)
            raise UploadError(
                f"{name}: the module stored {size} bytes with checksum {got}, expected {len(raw)} with {expected:x}"
            )

    async def ensure(self, data: bytes | Secret, *, suffix: str = ".pem") -> str:
        """The name of a file with this content on the module, uploading it only if needed."""
        raw = data.reveal_bytes() if isinstance(data, Secret) else data
        name = content_name(raw, suffix)
        present = await self.list(name)
        if present.get(name) == len(raw):
            log.debug("%s is already on the module", name)
            return name
        if name in present:
            await self.delete(name)
        await self.upload(name, data)
        return name


@dataclass(frozen=True)
class SslContext:
    """The `AT+QSSLCFG` settings of one context; None leaves the module's value."""

    index: int
    seclevel: int = 0
    cacert: str | None = None
    clientcert: str | None = None
    clientkey: str | None = None
    version: int = 4  # 4: every version the module has; 3: TLS 1.2 only
    ciphersuite: str = "0xFFFF"
    sni: bool | None = True
    ignore_local_time: bool | None = None
    negotiate_time: int | None = None
    server_name: str | None = None  # for modules that take SNI as a name, not a flag


class Tls:
    """`async with Tls(modem) as tls:` removes the init steps of its contexts on exit. A
    context set up again (by this object or another) replaces the earlier one's step."""

    def __init__(self, modem: Modem) -> None:
        self.modem = modem
        self.files = Files(modem)
        self.contexts: dict[int, SslContext] = {}
        self._steps: dict[int, StepHandle] = {}

    async def __aenter__(self) -> Tls:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the init steps (the module keeps the contexts until it restarts)."""
        for step in self._steps.values():
            step.remove()
        self._steps.clear()

    async def setup(
        self,
        index: int,
        *,
        ca: bytes | None = None,
        cert: bytes | None = None,
        key: bytes | Secret | None = None,
        seclevel: int | None = None,
        version: int = 4,
        ciphersuite: str = "0xFFFF",
        sni: bool | None = True,
        ignore_local_time: bool | None = None,
        negotiate_time: int | None = None,
        clock: str | None = "network",
        server_name: str | None = None,
    ) -> SslContext:
        """Upload what is missing and configure context `index`. The security level is 2
        with a client certificate and key, 1 with a CA, 0 otherwise, unless given. When
        certificates will be checked, the module's clock is set first from `clock`
        ("network", "host", or None to leave it).

        Only the settings the module lists in ``AT+QSSLCFG=?`` are sent, in the form listed:
        SNI as a flag, or as `server_name` where the module takes a name; a module without
        an SNI setting (BG96) sends none, and that is logged."""
        if (cert is None) != (key is None):
            raise ValueError("a client certificate and its key go together")
        # every value checked before anything is uploaded or registered
        self._commands(SslContext(index, seclevel or 0, version=version, ciphersuite=ciphersuite, sni=sni,
                                  ignore_local_time=ignore_local_time, negotiate_time=negotiate_time))  # fmt: skip
        key_secret = Secret(key, "client_key") if key is not None else None
        context = SslContext(
            index=index,
            seclevel=seclevel if seclevel is not None else 2 if cert is not None else 1 if ca is not None else 0,
            cacert=await self.files.ensure(ca) if ca is not None else None,
            clientcert=await self.files.ensure(cert) if cert is not None else None,
            clientkey=await self.files.ensure(key_secret, suffix=".key") if key_secret is not None else None,
            version=version,
            ciphersuite=ciphersuite,
            sni=sni,
            ignore_local_time=ignore_local_time,
            negotiate_time=negotiate_time,
            server_name=server_name,
        )
        if context.seclevel >= 1 and clock is not None:
            await set_module_clock(self.modem, clock)
        await self.apply(context)
        self.contexts[index] = context
        step = self._steps.get(index)
        if step is None or not step.active:
            # QSSLCFG is lost on reboot; files are not
            self._steps[index] = self.modem.add_init_step(
                lambda _modem: self._reapply(index), name=f"ssl context {index}", required=False, key=("ssl", index)
            )
        return context

    async def apply(self, context: SslContext) -> None:
        listed = await TestAnswers.of(self.modem).keys(C.QSSLCFG_TEST())
        for command in self._commands(context):
            key = str(command.values.get("key", ""))
            if listed is not None and key not in listed and key in _SECURITY:
                # never weaker than asked: without these the module keeps its own (maybe no) check
                raise TlsError(f"the module has no SSL setting {key!r} (AT+QSSLCFG=? does not list it)")
            if listed is not None and key not in listed:
                log.info("the module has no SSL setting %r (AT+QSSLCFG=? does not list it): not sent", key)
                continue
            if key == "sni" and listed is not None and last_field_is_name(listed["sni"]):
                if not context.sni or not context.server_name:
                    continue  # the name form: no name, no SNI
                command = C.QSSLCFG_SNI_NAME(context.index, context.server_name)
            await self.modem.execute(command)

    @staticmethod
    def _commands(context: SslContext) -> list[Command]:
        i = context.index
        commands = [C.QSSLCFG["sslversion"](i, context.version), C.QSSLCFG["ciphersuite"](i, context.ciphersuite)]
        commands.append(C.QSSLCFG["seclevel"](i, context.seclevel))
        for key, value in (
            ("cacert", context.cacert),
            ("clientcert", context.clientcert),
            ("clientkey", context.clientkey),
        ):
            if value is not None:
                commands.append(C.QSSLCFG[key](i, value))
        if context.sni is not None:
            commands.append(C.QSSLCFG["sni"](i, int(context.sni)))
        if context.ignore_local_time is not None:
            commands.append(C.QSSLCFG["ignorelocaltime"](i, int(context.ignore_local_time)))
        if context.negotiate_time is not None:
            commands.append(C.QSSLCFG["negotiatetime"](i, context.negotiate_time))
        return commands

    async def _reapply(self, index: int) -> None:
        context = self.contexts.get(index)
        if context is not None:
            await self.apply(context)
