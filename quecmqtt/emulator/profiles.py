"""Model profiles: where the module families differ.

Facts are from reference/quectel-at.md; what is marked [R] there (and here) is a guess
that the emulator models one way. The differences kept:

- publish forms: EC200U has `QMTPUBEX` with a length; EC25 has `QMTPUBEX` with a length
  and `QMTPUB` (fixed length and Ctrl-Z); BG96 has `QMTPUB` only (fixed length and
  Ctrl-Z) [R: BG96 QMTPUBEX absent];
- `QMTCFG` keys and ranges (`AT+QMTCFG=?`): the EC200 family has many more keys, and a
  packet time-out up to 1200 s instead of 60;
- boot banners: EC200U reports `APP RDY` after `RDY`;
- HTTP errors: the EC200 family (like the EG800K report) answers some failures at once with
  `+CME ERROR: 7xx`; EC25/BG96 answer `OK` and then `+QHTTPGET: 7xx` [R];
- file names: the EC200 family lists them with a `UFS:` prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PUBEX_LENGTH = "pubex-length"
PUB_FIXED = "pub-fixed"
PUB_CTRLZ = "pub-ctrlz"
PUB_INLINE = "pub-inline"

_EC200_QMTCFG = {
    "version": "(0-5),(3,4)",
    "pdpcid": "(0-5),(1-15)",
    "ssl": "(0-5),(0,1),(0-5)",
    "keepalive": "(0-5),(0-3600)",
    "session": "(0-5),(0,1)",
    "timeout": "(0-5),(1-1200),(1-10),(0,1)",
    "will": '(0-5),(0,1),(0-2),(0,1),"willtopic","willmessage"',
    "willex": '(0-5),(0,1),(0-2),(0,1),"willtopic",(0-256)',
    "recv/mode": "(0-5),(0,1),(0,1)",
    "send/mode": "(0-5),(0,1)",
    "onenet": '(0-5),"product id","access key"',
    "aliauth": '(0-5),"product key","device name","device secret"',
    "hwauth": '(0-5),"device id","device secret"',
    "hwprodid": '(0-5),"product id","product secret","nodeid"',
    "qmtping": "(0-5),(5-60)",
    "dataformat": "(0-5),(0,1),(0,1)",
    "view/mode": "(0-5),(0,1)",
    "CTWing": '(0-5),"client_id","feature_string"',
    "edit/timeout": "(0-5),(0,1),(1-180)",
}
_EC25_QMTCFG = {
    "version": "(0-5),(3,4)",
    "pdpcid": "(0-5),(1-16)",
    "ssl": "(0-5),(0,1),(0-5)",
    "keepalive": "(0-5),(0-3600)",
    "session": "(0-5),(0,1)",
    "timeout": "(0-5),(1-60),(0-10),(0,1)",
    "will": '(0-5),(0,1),(0-2),(0,1),"willtopic","willmessage"',
    "recv/mode": "(0-5),(0,1),(0,1)",
    "aliauth": '(0-5),"product key","device name","device secret"',
    "qmtping": "(0-5),(5-60)",
}


@dataclass(frozen=True)
class Profile:
    name: str
    revision: str
    imei: str
    publish_forms: frozenset[str]
    qmtcfg: dict[str, str]
    boot_urcs: tuple[str, ...]
    max_cid: int = 16
    http_immediate_errors: bool = False
    ufs_prefix: bool = False
    radio_settings: bool = False  # AT+QCFG nwscanmode/iotopmode/band (BG9x)
    extra: dict[str, str] = field(default_factory=dict)


PROFILES: dict[str, Profile] = {
    "EC200U": Profile(
        name="EC200U",
        revision="EC200UCNAAR02A09M08",
        imei="864430010001091",
        publish_forms=frozenset({PUBEX_LENGTH}),
        qmtcfg=_EC200_QMTCFG,
        boot_urcs=("APP RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE"),
        max_cid=7,
        http_immediate_errors=True,
        ufs_prefix=True,
    ),
    "EC25": Profile(
        name="EC25",
        revision="EC25EFAR06A06M4G",
        imei="866425030001234",
        publish_forms=frozenset({PUBEX_LENGTH, PUB_FIXED, PUB_CTRLZ}),
        qmtcfg=_EC25_QMTCFG,
        boot_urcs=("+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE"),
    ),
    "BG96": Profile(
        name="BG96",
        revision="BG96MAR02A07M1G",
        imei="866425031234567",
        publish_forms=frozenset({PUB_FIXED, PUB_CTRLZ}),
        qmtcfg=_EC25_QMTCFG,
        boot_urcs=("+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE"),
        radio_settings=True,
    ),
}
