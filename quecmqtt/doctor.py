"""`quecmqtt doctor`: learn a module by asking it, without changing anything on it.

Only test (``=?``), read (``?``) and identity commands are sent, and no init script runs (no
``ATE0``, no ``AT+CMEE``, no reconciliation): the module is left exactly as it was. What it
answers says what works and what the driver will use (the same answers the driver adapts by),
and becomes a **profile file** that `quecmqtt emulate --profile FILE` loads, so a user's own
module becomes an emulator profile.

    report = await doctor(modem)           # a Modem opened with init_script=False, reconcile=False
    print(report.summary())
    Path("my-module.json").write_text(report.profile().to_json())

The facts no answer shows (input dropped past 1548 bytes, the in-flight window, the HTTP DNS
error path) are taken from the shipped profile whose answers are closest (`based_on`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from dataclasses import dataclass, field
from typing import Any

from quecmqtt.at import commands as C
from quecmqtt.at.spec import Command
from quecmqtt.errors import CommandError, CommandTimeout, QuecError
from quecmqtt.mqtt.publish import read_last_field
from quecmqtt.runtime import Modem

# (key in the profile, the command, its time-out): key "I"/"+CGMI"... are identity answers,
# "=?" keys are test answers, the rest is state
PROBES: tuple[tuple[str, Command, float], ...] = (
    ("AT", C.AT(), 2.0),
    ("I", C.ATI(), 5.0),
    ("+CGMI", C.CGMI(), 5.0),
    ("+CGMM", C.CGMM(), 5.0),
    ("+CGMR", C.CGMR(), 5.0),
    ("+CGSN", C.CGSN(), 5.0),
    ("+QMTCFG=?", C.QMTCFG_TEST(), 5.0),
    ("+QMTPUB=?", C.QMTPUB_TEST(), 5.0),
    ("+QMTPUBEX=?", C.QMTPUBEX_TEST(), 5.0),
    ("+QSSLCFG=?", C.QSSLCFG_TEST(), 5.0),
    ("+QHTTPCFG=?", C.QHTTPCFG_TEST(), 5.0),
    ("+QHTTPURL=?", C.QHTTPURL_TEST(), 5.0),
    ("+QHTTPSTOP=?", C.QHTTPSTOP_TEST(), 5.0),
    ('+QURCCFG="urcport"', C.QURCCFG_URCPORT_READ(), 5.0),
    ("+CPIN?", C.CPIN_READ(), 5.0),
    ("+CREG?", C.CREG_READ(), 5.0),
    ("+CEREG?", C.CEREG_READ(), 5.0),
    ("+QIACT?", C.QIACT_READ(), 15.0),
    # BGx over UART may never answer this one (LooUQ ltemc-mqtt.c:457): a short time-out
    ("+QMTOPEN?", C.QMTOPEN_READ(), 3.0),
    ("+QMTCONN?", C.QMTCONN_READ(), 5.0),
)
_TEST_KEYS = ("+QMTCFG", "+QMTPUB", "+QMTPUBEX", "+QSSLCFG", "+QHTTPCFG", "+QHTTPURL")
_IDENTITY_KEYS = ("I", "+CGMI", "+CGMM", "+CGMR", "+CGSN")
# a command the doctor may send: test, read, identity, and the URC-port query; nothing else
SAFE_LINE = re.compile(rb'AT(|I|\+CG(MI|MM|MR|SN)|\+[A-Z]+(=\?|\?)|\+QURCCFG="urcport")\Z')


@dataclass(frozen=True)
class Answer:
    """What the module said to one probe: its final result and lines, or "timeout"."""

    command: str
    final: str  # "OK", "ERROR", "+CME ERROR: ...", or "timeout"
    lines: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.final == "OK"

    def as_dict(self) -> dict[str, Any]:
        return {"command": self.command, "final": self.final, "lines": list(self.lines), "seconds": self.seconds}


@dataclass
class DoctorReport:
    answers: dict[str, Answer] = field(default_factory=dict)

    # -- what works ------------------------------------------------------------------------------

    def lines(self, key: str) -> tuple[str, ...]:
        answer = self.answers.get(key)
        return answer.lines if answer is not None and answer.ok else ()

    def findings(self) -> list[tuple[str, str]]:
        """(topic, what the answers say / what the driver will use)."""
        out: list[tuple[str, str]] = []
        ident = self.lines("I")
        out.append(("module", " ".join(ident) if ident else "no answer to ATI"))
        out.append(("IMEI", self._first("+CGSN") or "unknown"))
        out.append(("publish", self._publish()))
        ssl = self.answers.get("+QSSLCFG=?")
        if ssl is None or not ssl.ok:
            out.append(("TLS", "AT+QSSLCFG=? not answered: the driver sends every setting it has"))
        else:
            keys = [re.match(r'\+QSSLCFG: "([^"]+)"', line) for line in ssl.lines]
            names = [m.group(1) for m in keys if m]
            sni = next((line for line in ssl.lines if '"sni"' in line), None)
            how = "none (the module has no SNI setting)" if sni is None else (
                "as a flag" if sni.rstrip().endswith(")") else "as a server name"
            )  # fmt: skip
            out.append(("TLS", f"settings {', '.join(names)}; SNI {how}"))
        url = self._first("+QHTTPURL=?")
        out.append(("HTTP", f"URL limit {url}" if url else "AT+QHTTPURL=? not answered"))
        stop = self.answers.get("+QHTTPSTOP=?")
        out.append(("HTTP stop", "AT+QHTTPSTOP exists" if stop and stop.ok else "no AT+QHTTPSTOP: not sent"))
        out.append(("URC port", self._first('+QURCCFG="urcport"') or "no AT+QURCCFG"))
        out.append(("SIM", self._first("+CPIN?") or self._final("+CPIN?")))
        out.append(("registration", f"{self._first('+CREG?') or '-'} / {self._first('+CEREG?') or '-'}"))
        out.append(("PDP", "; ".join(self.lines("+QIACT?")) or "no context active"))
        open_read = self.answers.get("+QMTOPEN?")
        if open_read is not None and open_read.final == "timeout":
            out.append(("MQTT", "no answer to AT+QMTOPEN? (BGx over UART): the driver reconciles from AT+QMTCONN?"))
        else:
            clients = self.lines("+QMTOPEN?") + self.lines("+QMTCONN?")
            out.append(("MQTT", "; ".join(clients) or "no client open"))
        return out

    def _first(self, key: str) -> str:
        lines = self.lines(key)
        return lines[0] if lines else ""

    def _final(self, key: str) -> str:
        answer = self.answers.get(key)
        return answer.final if answer is not None else "not asked"

    def _publish(self) -> str:
        pubex = self.answers.get("+QMTPUBEX=?")
        pub = self.answers.get("+QMTPUB=?")
        forms = []
        for name, answer in (("AT+QMTPUBEX", pubex), ("AT+QMTPUB", pub)):
            if answer is None or not answer.ok or not answer.lines:
                forms.append(f"{name}: none")
                continue
            kind, limit = read_last_field([tuple(answer.lines[0].split(","))])
            forms.append(f"{name}: {kind}" + (f" up to {limit}" if limit else ""))
        return "; ".join(forms)

    def summary(self) -> str:
        width = max(len(topic) for topic, _ in self.findings())
        return "\n".join(f"{topic + ':':<{width + 1}} {text}" for topic, text in self.findings())

    def as_dict(self) -> dict[str, Any]:
        return {
            "answers": {key: answer.as_dict() for key, answer in self.answers.items()},
            "findings": dict(self.findings()),
        }

    # -- the profile -----------------------------------------------------------------------------

    def profile(self, *, keep_imei: bool = False) -> Any:
        """A `Profile` for `quecmqtt emulate --profile`: what the module answered, plus what
        no answer shows from the closest shipped profile. A profile is made to be shared:
        the module's IMEI is replaced by the shipped profile's unless `keep_imei`."""
        from quecmqtt.emulator.families import PROFILES

        tests = {key: self.answers[f"{key}=?"] for key in _TEST_KEYS if f"{key}=?" in self.answers}
        test_answers = {key: a.lines for key, a in tests.items() if a.ok}
        lacks = {key for key, a in tests.items() if not a.ok and a.final != "timeout"}
        stop = self.answers.get("+QHTTPSTOP=?")
        if stop is not None and not stop.ok and stop.final != "timeout":
            lacks.add("+QHTTPSTOP")

        def closeness(name: str) -> tuple[int, int]:
            shipped = PROFILES[name]
            same = sum(shipped.test_answers.get(key) == lines for key, lines in test_answers.items())
            same += sum(key in shipped.lacks for key in lacks)
            return same, int(self._first("+CGMM").startswith(shipped.model[:4]))

        base = PROFILES[max(PROFILES, key=closeness)]
        general = dict(base.general)
        imei = self._first("+CGSN")
        for key in _IDENTITY_KEYS:
            answer = self.answers.get(key)
            if answer is not None and answer.ok:
                general[key] = answer.lines
        if imei and not keep_imei:
            general["+CGSN"] = tuple(line.replace(imei, base.imei) for line in general["+CGSN"])
            imei = base.imei
        general["+GSN"] = general.get("+CGSN", ())
        model = self._first("+CGMM") or base.model
        urcport = self._first('+QURCCFG="urcport"')
        port_match = re.search(r'"urcport","([^"]+)"', urcport)
        open_read = self.answers.get("+QMTOPEN?")
        return dataclasses.replace(
            base,
            name=model,
            model=model,
            revision=self._first("+CGMR") or base.revision,
            imei=imei or base.imei,
            test_answers=test_answers,
            lacks=frozenset(lacks | (base.lacks - set(_TEST_KEYS) - {"+QHTTPSTOP"})),
            general=general,
            urcport=port_match.group(1) if port_match else base.urcport,
            silent_qmtopen_read=open_read is not None and open_read.final == "timeout",
            qhttpstop="+QHTTPSTOP" not in lacks,
            based_on=base.name,
            sources={
                **{k: v for k, v in base.sources.items() if not k.startswith("test_answers")},
                "test_answers": f"quecmqtt doctor on the module itself ({time.strftime('%Y-%m-%d')})",
                "based_on": f"facts no answer shows come from the shipped {base.name} profile",
            },
        )


async def doctor(modem: Modem, *, progress: Any = None) -> DoctorReport:
    """Ask the read-only probes; `progress(key)` is called before each (for a CLI).
    The modem must not run an init script (`Modem(init_script=False, reconcile=False)`)."""
    if modem.init_script or modem.reconcile:
        raise ValueError("doctor changes nothing: open the modem with init_script=False, reconcile=False")
    report = DoctorReport()
    loop = asyncio.get_running_loop()
    for key, command, timeout in PROBES:
        if progress is not None:
            progress(key)
        started = loop.time()
        try:
            reply = await modem.execute(command, timeout=timeout)
        except CommandTimeout:
            answer = Answer(command.redacted, "timeout", (), round(loop.time() - started, 1))
        except CommandError as exc:
            answer = Answer(command.redacted, exc.final.text, tuple(r.text for r in exc.lines))
        except QuecError as exc:
            answer = Answer(command.redacted, f"failed: {exc}")
        else:
            answer = Answer(command.redacted, reply.final.text, reply.lines)
        report.answers[key] = answer
    return report
