"""Module family profiles, as data: what each family answers and where it differs.

A profile holds what a module says about itself, literally: its identity, the answers of the
``=?`` test commands (``AT+QMTCFG=?``, ``AT+QMTPUBEX=?``, ``AT+QSSLCFG=?``, ...) and the
answers of the general 3GPP commands. The emulator derives its behaviour from those answers
where the answer says it (which QMTCFG keys exist and their ranges, the publish forms and their
length limits, the QSSLCFG keys, the HTTP URL limit), so the driver, which adapts by probing
the same answers, is tested against what a real module of that family would tell it.

What no answer reveals (input dropped past 1548 bytes, the in-flight window, an unquoted
``+QMTRECV`` payload, a module silent on ``AT+QMTOPEN?``, the DNS error path of HTTP) is a
field of its own. Every fact names its source in `sources` (docs/modules.md puts the families
side by side); a value marked [R] is a guess, modelled one way.

`quecmqtt doctor` writes the same structure for a real module (`to_json`), and
`quecmqtt emulate --profile FILE` loads it (`from_json`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "quecmqtt-profile/1"

# publish forms, by what the `=?` answer's last field says
PUBEX_LENGTH = "pubex-length"  # AT+QMTPUBEX=...,<len> then a prompt
PUBEX_INLINE = "pubex-inline"  # AT+QMTPUBEX=...,"<msg>"
PUB_FIXED = "pub-fixed"  # AT+QMTPUB=...,<len> then a prompt
PUB_CTRLZ = "pub-ctrlz"  # AT+QMTPUB=... then a prompt, data, Ctrl-Z
PUB_INLINE = "pub-inline"  # AT+QMTPUB=...,"<msg>"

_RANGE = re.compile(r"\((\d+)-(\d+)\)\Z")
_KEYED = re.compile(r'\+[A-Z]+: "([^"]+)",?(.*)\Z')


@dataclass(frozen=True)
class Profile:
    name: str  # the family, as `--model` names it
    model: str  # what AT+CGMM answers
    revision: str  # what AT+CGMR answers
    imei: str
    # command name ("+QMTCFG") -> the lines of its `=?` answer; a command missing here but
    # handled by the emulator answers its test form with ERROR
    test_answers: Mapping[str, tuple[str, ...]]
    # commands the family does not have at all: every form answers ERROR
    lacks: frozenset[str] = frozenset()
    boot_urcs: tuple[str, ...] = ("+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE")
    max_cid: int = 16
    # the longest command line the module takes (bytes between "AT" and CR); a longer
    # line is answered ERROR and never run, in part or whole
    line_max: int = 4096
    pub_ctrlz: bool = True  # AT+QMTPUB without a length: data ended by Ctrl-Z
    pub_length_param: bool = True  # the range ending AT+QMTPUB=? is a <length> parameter
    ctrlz_max: int | None = None  # Ctrl-Z data entry: input past this many bytes is dropped
    inline_max: int = 560  # the inline ("<msg>") publish forms: longest message
    inflight_max: int | None = None  # QoS>0 publishes in flight per client; more answer ERROR
    recv_quoted: bool = True  # +QMTRECV payload in quotes (else to the end of the line)
    qmtconn_open_state: int = 1  # what AT+QMTCONN? shows for a client open but not connected
    ping_urc: bool = False  # a keep-alive failure reports +QMTPING: <c>,1 (else +QMTSTAT: <c>,2)
    reboot_pdpdeact: bool = False  # a reboot prints +QIURC: "pdpdeact",1 between POWERED DOWN and RDY
    silent_qmtopen_read: bool = False  # AT+QMTOPEN? gets no answer at all (BGx over UART)
    http_dns_immediate: bool = False  # DNS failure of QHTTPGET/POST: +CME ERROR at once (else OK, URC)
    http_dns_code: int = 714
    http_errors_immediate: bool = False  # other connect failures also at once (EC200 family)
    http_data_max: int | None = None  # QHTTPGET/POST with requestheader=1: longest request
    qhttpstop: bool = True
    ufs_prefix: bool = False  # QFLST names carry "UFS:"
    radio_settings: bool = False  # AT+QCFG nwscanmode/iotopmode/band (BG9x)
    urcport: str = "usbat"  # factory default of AT+QURCCFG="urcport"
    general: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # "+CGMI" -> answer lines
    sources: Mapping[str, str] = field(default_factory=dict)  # fact -> where it comes from
    based_on: str | None = None  # a profile written by `doctor`: the shipped one it extends

    # -- what the answers say ----------------------------------------------------------

    def has(self, name: str) -> bool:
        return name not in self.lacks

    def keyed(self, command: str) -> dict[str, str]:
        """The keys a ``=?`` answer lists (``+QMTCFG: "key",ranges``), with their ranges."""
        keys: dict[str, str] = {}
        for line in self.test_answers.get(command, ()):
            match = _KEYED.match(line)
            if match is not None:
                keys[match.group(1)] = match.group(2)
        return keys

    def publish_forms(self) -> dict[str, int]:
        """Form -> longest payload, read from the ``=?`` answers of QMTPUBEX and QMTPUB (see
        `last_field`). A QMTPUB range is a length parameter only where `pub_length_param`
        says so (on BG96 it is the most the Ctrl-Z entry takes); the Ctrl-Z form itself is
        the `pub_ctrlz` fact."""
        forms: dict[str, int] = {}
        ctrlz_limit = self.ctrlz_max or 4096
        for command, length_form, inline_form in (
            ("+QMTPUBEX", PUBEX_LENGTH, PUBEX_INLINE),
            ("+QMTPUB", PUB_FIXED, PUB_INLINE),
        ):
            answer = self.test_answers.get(command)
            if not answer or not self.has(command):
                continue
            kind, limit = last_field(answer[0])
            if kind == "length" and (command == "+QMTPUBEX" or self.pub_length_param):
                forms[length_form] = limit or 4096
            elif kind == "length" and limit:
                ctrlz_limit = limit
            elif kind == "inline":
                forms[inline_form] = self.inline_max
        if self.pub_ctrlz and self.has("+QMTPUB") and self.test_answers.get("+QMTPUB"):
            forms[PUB_CTRLZ] = self.ctrlz_max or ctrlz_limit
        return forms

    def url_max(self) -> int:
        answer = self.test_answers.get("+QHTTPURL", ())
        match = re.match(r"\+QHTTPURL: \((\d+)-(\d+)\)", answer[0]) if answer else None
        return int(match.group(2)) if match else 2048

    def content_types(self) -> int:
        """How many QHTTPCFG content types (0..n-1) the family has."""
        ranges = self.keyed("+QHTTPCFG").get("contenttype", "(0-3)")
        match = _RANGE.search(ranges)
        return int(match.group(2)) + 1 if match else 4

    def with_imei(self, imei: str) -> Profile:
        """The same module with another IMEI (in its identity answers too)."""
        general = {
            key: tuple(line.replace(self.imei, imei) for line in lines) if key in ("+CGSN", "+GSN") else lines
            for key, lines in self.general.items()
        }
        return dataclasses.replace(self, imei=imei, general=general)

    # -- files ---------------------------------------------------------------------------

    def to_json(self) -> str:
        data: dict[str, Any] = {"format": FORMAT}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
            data[f.name] = value
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Profile:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f'not a profile file (no "format": "{FORMAT}")')
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(known) - {"format"}
        if unknown:
            raise ValueError(f"unknown profile fields: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name == "format":
                continue
            if name in ("test_answers", "general"):
                value = {str(k): tuple(str(line) for line in v) for k, v in value.items()}
            elif name == "lacks":
                value = frozenset(value)
            elif name == "boot_urcs":
                value = tuple(value)
            values[name] = value
        missing = [n for n in ("name", "model", "revision", "imei", "test_answers") if n not in values]
        if missing:
            raise ValueError(f"profile file lacks {', '.join(missing)}")
        return cls(**values)


def last_field(line: str) -> tuple[str, int | None]:
    """What the last field of a publish command's ``=?`` answer says: ``("length", max)``
    for a range ``(1-4096)``, ``("length", None)`` for a named length (``"length"``, as a
    real EC800M answers), ``("inline", None)`` for a named message (``"msg"``), and
    ``("none", None)`` when the topic is last (no further parameter)."""
    last = line.rsplit(",", 1)[-1].strip()
    ranged = _RANGE.match(last)
    if ranged is not None:
        return "length", int(ranged.group(2))
    word = last.strip('"<>').lower()
    if "len" in word:
        return "length", None
    if word in ("topic", "topic_name") or line.count(",") < 5:
        return "none", None
    return "inline", None


def load_profile(path: str | Path) -> Profile:
    """A profile file (as `quecmqtt doctor` writes it); ValueError with the reason if it is not one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read profile {path}: {exc.strerror}") from None
    try:
        return Profile.from_json(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not a profile file (JSON, as 'quecmqtt doctor' writes): {exc}") from None


def luhn_ok(imei: str) -> bool:
    """An IMEI's last digit is the Luhn check digit of the first 14."""
    if len(imei) != 15 or not imei.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(imei)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0
