"""The command table: every command form quecmqtt sends, as data.

This table is the normative contract (``docs/commands.md`` is generated from it). Sources
and confidence marks are in ``reference/quectel-at.md``; where a documented maximum
response time is very short (QMTCFG: 300 ms) the time-out here keeps a margin for a busy
module and a slow UART.

Usage: ``commands.QMTOPEN(0, "broker.example", 1883)`` builds a `Command`.
"""

from __future__ import annotations

from quecmqtt.at.spec import (
    CommandSpec,
    DataKind,
    DataPhase,
    Form,
    Kind,
    Param,
    Resp,
    ResultSpec,
    Timeout,
)

EXEC, READ, TEST, WRITE = Form.EXEC, Form.READ, Form.TEST, Form.WRITE
INT, STR, HEX = Kind.INT, Kind.STR, Kind.HEX

ALL: list[CommandSpec] = []


def _add(spec: CommandSpec) -> CommandSpec:
    ALL.append(spec)
    return spec


def _int(name: str, lo: int | None = None, hi: int | None = None, *, optional: bool = False) -> Param:
    return Param(name, INT, optional=optional, minimum=lo, maximum=hi)


def _str(name: str, max_length: int | None = 256, *, optional: bool = False, secret: bool = False) -> Param:
    return Param(name, STR, optional=optional, secret=secret, max_length=max_length)


def _key(value: str) -> Param:
    return Param("key", STR, const=value)


CLIENT = _int("client", 0, 5)
MSG_ID = _int("msg_id", 0, 65535)
MSG_ID_NONZERO = _int("msg_id", 1, 65535)
QOS = _int("qos", 0, 2)
RETAIN = _int("retain", 0, 1)
TOPIC = _str("topic", 1024)
SSL_CTX = _int("ctx", 0, 5)
CID = _int("cid", 1, 16)

# A link event fails every pending MQTT operation of that client at once.
MQTT_LINK_FAILURES = ("+QMTSTAT", "+QMTPING")

# --- basics and identity -----------------------------------------------------------------

AT = _add(CommandSpec("AT", "", EXEC, "Synchronise: the module answers OK.", timeout=Timeout(2.0)))
ATE0 = _add(CommandSpec("ATE0", "E0", EXEC, "Echo off."))
ATE1 = _add(CommandSpec("ATE1", "E1", EXEC, "Echo on (the module's default after boot)."))
ATI = _add(CommandSpec("ATI", "I", EXEC, "Identity: 'Quectel', model, 'Revision: <fw>' as plain lines."))
CGMR = _add(CommandSpec("CGMR", "+CGMR", EXEC, "Firmware revision as a plain line.", responses=(Resp("+CGMR", "x"),)))
QGMR = _add(CommandSpec("QGMR", "+QGMR", EXEC, "Full firmware build string.", responses=(Resp("+QGMR", "x"),)))
CGMM = _add(CommandSpec("CGMM", "+CGMM", EXEC, "Model as a plain line.", responses=(Resp("+CGMM", "x"),)))
GSN = _add(CommandSpec("GSN", "+GSN", EXEC, "IMEI as a plain line.", responses=(Resp("+GSN", "x"),)))
CGSN = _add(
    CommandSpec(
        "CGSN",
        "+CGSN",
        EXEC,
        "IMEI: a plain line, or '+CGSN: <imei>' on some firmware [!].",
        responses=(Resp("+CGSN", "x"),),
    )
)
CMEE = _add(
    CommandSpec("CMEE", "+CMEE", WRITE, "Error format: 0 ERROR, 1 numeric, 2 verbose.", params=(_int("n", 0, 2),))
)
CMEE_READ = _add(CommandSpec("CMEE_READ", "+CMEE", READ, "Error format in use.", responses=(Resp("+CMEE", "i"),)))
CFUN = _add(
    CommandSpec(
        "CFUN",
        "+CFUN",
        WRITE,
        "Functionality; AT+CFUN=1,1 reboots the module.",
        params=(_int("fun", 0, 4), _int("rst", 0, 1, optional=True)),
        timeout=Timeout(15.0),
    )
)
CFUN_READ = _add(CommandSpec("CFUN_READ", "+CFUN", READ, "Functionality level.", responses=(Resp("+CFUN", "i"),)))
QPOWD = _add(
    CommandSpec(
        "QPOWD",
        "+QPOWD",
        WRITE,
        "Power down: OK, then 'POWERED DOWN'.",
        params=(_int("mode", 0, 1, optional=True),),
        timeout=Timeout(5.0),
    )
)
QURCCFG_URCPORT = _add(
    CommandSpec(
        "QURCCFG_URCPORT",
        "+QURCCFG",
        WRITE,
        "Port that receives URCs; saved to NVRAM.",
        params=(_key("urcport"), _str("port", 16)),
    )
)
QURCCFG_URCPORT_READ = _add(
    CommandSpec(
        "QURCCFG_URCPORT_READ",
        "+QURCCFG",
        WRITE,
        "Which port receives URCs.",
        params=(_key("urcport"),),
        responses=(Resp("+QURCCFG", "s,x"),),
    )
)
CCLK_READ = _add(CommandSpec("CCLK_READ", "+CCLK", READ, "Module clock.", responses=(Resp("+CCLK", "s"),)))
CCLK = _add(
    CommandSpec("CCLK", "+CCLK", WRITE, "Set the module clock, yy/MM/dd,hh:mm:ss±zz.", params=(_str("time", 32),))
)
QLTS = _add(
    CommandSpec(
        "QLTS",
        "+QLTS",
        WRITE,
        "Network time.",
        params=(_int("mode", 0, 2, optional=True),),
        responses=(Resp("+QLTS", "s,*"),),
    )
)
CTZU = _add(CommandSpec("CTZU", "+CTZU", WRITE, "Automatic time zone update.", params=(_int("mode", 0, 3),)))

# --- SIM, signal, registration, PDP --------------------------------------------------------

CPIN_READ = _add(
    CommandSpec("CPIN_READ", "+CPIN", READ, "SIM state: READY, SIM PIN, SIM PUK ...", responses=(Resp("+CPIN", "x"),))
)
CPIN = _add(
    CommandSpec(
        "CPIN", "+CPIN", WRITE, "Enter the SIM PIN.", params=(_str("pin", 16, secret=True),), timeout=Timeout(10.0)
    )
)
CSQ = _add(CommandSpec("CSQ", "+CSQ", EXEC, "Signal: rssi 0-31 (99 unknown), ber.", responses=(Resp("+CSQ", "i,i"),)))
QCSQ = _add(CommandSpec("QCSQ", "+QCSQ", EXEC, "Signal per access technology.", responses=(Resp("+QCSQ", "x,*"),)))


def _registration(name: str) -> tuple[CommandSpec, CommandSpec]:
    # The read answer has the <n> field first; the URC form (+CREG: <stat>) has one field
    # less, which is how the two are told apart.
    read = _add(
        CommandSpec(
            f"{name}_READ",
            f"+{name}",
            READ,
            f"Registration state (+{name}: <n>,<stat>[,...]).",
            responses=(Resp(f"+{name}", "i,i,*"),),
        )
    )
    write = _add(CommandSpec(name, f"+{name}", WRITE, f"Registration URC mode for +{name}.", params=(_int("n", 0, 5),)))
    return read, write


CREG_READ, CREG = _registration("CREG")
CGREG_READ, CGREG = _registration("CGREG")
CEREG_READ, CEREG = _registration("CEREG")
COPS_READ = _add(
    CommandSpec("COPS_READ", "+COPS", READ, "Operator and access technology.", responses=(Resp("+COPS", "i,*"),))
)
COPS_TEST = _add(
    CommandSpec(
        "COPS_TEST", "+COPS", TEST, "Operator scan (slow).", responses=(Resp("+COPS", "*"),), timeout=Timeout(300.0)
    )
)
QNWINFO = _add(
    CommandSpec(
        "QNWINFO", "+QNWINFO", EXEC, "Access technology, operator, band, channel.", responses=(Resp("+QNWINFO", "x,*"),)
    )
)
QICSGP = _add(
    CommandSpec(
        "QICSGP",
        "+QICSGP",
        WRITE,
        "Configure a PDP context (not saved).",
        params=(
            CID,
            _int("context_type", 1, 3),
            _str("apn", 100),
            _str("username", 127, optional=True),
            _str("password", 127, optional=True, secret=True),
            _int("auth", 0, 3, optional=True),
        ),
    )
)
QICSGP_QUERY = _add(
    CommandSpec(
        "QICSGP_QUERY",
        "+QICSGP",
        WRITE,
        "Read a PDP context's configuration; the password is redacted.",
        params=(CID,),
        responses=(Resp("+QICSGP", "i,s,s,s,i,*", secret_fields=(3,)),),
    )
)
QIACT = _add(
    CommandSpec(
        "QIACT", "+QIACT", WRITE, "Activate a PDP context (up to 150 s).", params=(CID,), timeout=Timeout(155.0)
    )
)
QIACT_READ = _add(
    CommandSpec(
        "QIACT_READ", "+QIACT", READ, "Active contexts and their addresses.", responses=(Resp("+QIACT", "i,i,i,*"),)
    )
)
QIDEACT = _add(
    CommandSpec(
        "QIDEACT", "+QIDEACT", WRITE, "Deactivate a PDP context (up to 40 s).", params=(CID,), timeout=Timeout(45.0)
    )
)
CGACT_READ = _add(CommandSpec("CGACT_READ", "+CGACT", READ, "PDP context states.", responses=(Resp("+CGACT", "i,i"),)))
CGACT = _add(
    CommandSpec(
        "CGACT", "+CGACT", WRITE, "Set a PDP context state.", params=(_int("state", 0, 1), CID), timeout=Timeout(155.0)
    )
)
# BG9x radio settings (AT+QCFG): the RAT scan order, the LTE-M/NB-IoT choice, the bands
QCFG_NWSCANMODE = _add(
    CommandSpec(
        "QCFG_NWSCANMODE",
        "+QCFG",
        WRITE,
        "RATs to search: 0 auto, 1 GSM only, 3 LTE only (BG9x).",
        params=(_key("nwscanmode"), _int("mode", 0, 3), _int("effect", 0, 1, optional=True)),
    )
)
QCFG_IOTOPMODE = _add(
    CommandSpec(
        "QCFG_IOTOPMODE",
        "+QCFG",
        WRITE,
        "LTE variant: 0 eMTC, 1 NB-IoT, 2 both (BG9x).",
        params=(_key("iotopmode"), _int("mode", 0, 2), _int("effect", 0, 1, optional=True)),
    )
)
QCFG_BAND = _add(
    CommandSpec(
        "QCFG_BAND",
        "+QCFG",
        WRITE,
        "Band masks (hex) for GSM, eMTC and NB-IoT (BG9x).",
        params=(
            _key("band"),
            Param("gsm", HEX),
            Param("emtc", HEX),
            Param("nbiot", HEX),
            _int("effect", 0, 1, optional=True),
        ),
    )
)
QCFG_READ: dict[str, CommandSpec] = {
    key: _add(
        CommandSpec(
            f"QCFG_{key.upper()}_READ",
            "+QCFG",
            WRITE,
            f"Read the radio setting '{key}' (BG9x).",
            params=(_key(key),),
            responses=(Resp("+QCFG", "s,*"),),
        )
    )
    for key in ("nwscanmode", "iotopmode", "band")
}
QIGETERROR = _add(
    CommandSpec("QIGETERROR", "+QIGETERROR", EXEC, "Last TCP/IP error.", responses=(Resp("+QIGETERROR", "i,x"),))
)

# --- MQTT ----------------------------------------------------------------------------------

QMTCFG_TEST = _add(
    CommandSpec(
        "QMTCFG_TEST",
        "+QMTCFG",
        TEST,
        "List the QMTCFG keys and ranges this firmware supports.",
        responses=(Resp("+QMTCFG", "s,*"),),
    )
)

# (key, value parameters, fields of the read-back that are secret). The read form is the
# same command without values; its answer is '+QMTCFG: "<key>",...' (with or without the
# client index, firmware differs, hence secret fields counted from the end).
_QMTCFG_KEYS: list[tuple[str, tuple[Param, ...], tuple[int, ...], str]] = [
    ("version", (_int("version", 3, 4),), (), "MQTT protocol level: 3 = 3.1, 4 = 3.1.1."),
    ("pdpcid", (CID,), (), "PDP context the client uses."),
    ("ssl", (_int("enable", 0, 1), _int("ctx", 0, 5, optional=True)), (), "TLS on/off and the SSL context."),
    ("keepalive", (_int("seconds", 0, 3600),), (), "Keep-alive interval; 0 disables."),
    ("session", (_int("clean", 0, 1),), (), "Clean session flag."),
    (
        "timeout",
        (_int("pkt_timeout", 1, 1200), _int("retries", 0, 10, optional=True), _int("notice", 0, 1, optional=True)),
        (),
        "Packet time-out, retries, time-out notice.",
    ),
    (
        "will",
        (
            _int("flag", 0, 1),
            _int("qos", 0, 2, optional=True),
            _int("retain", 0, 1, optional=True),
            _str("topic", 255, optional=True),
            _str("message", 255, optional=True),
        ),
        (),
        "Last will.",
    ),
    (
        "willex",
        (
            _int("flag", 0, 1),
            _int("qos", 0, 2, optional=True),
            _int("retain", 0, 1, optional=True),
            _str("topic", 255, optional=True),
            _int("length", 0, 256, optional=True),
        ),
        (),
        "Last will with a length (EC200 family) [R].",
    ),
    (
        "recv/mode",
        (_int("mode", 0, 1), _int("length_field", 0, 1, optional=True)),
        (),
        "Receive mode: 0 URC, 1 buffer; length field.",
    ),
    ("send/mode", (_int("mode", 0, 1),), (), "Send mode (string/hex) [R]."),
    ("dataformat", (_int("send", 0, 1), _int("recv", 0, 1)), (), "ASCII/hex data format [R]."),
    ("qmtping", (_int("interval", 5, 60),), (), "Ping report interval [!]."),
    ("view/mode", (_int("mode", 0, 1),), (), "Data echo in transparent mode [R]."),
    ("edit/timeout", (_int("mode", 0, 1), _int("seconds", 1, 180, optional=True)), (), "Data entry time-out."),
    (
        "aliauth",
        (_str("product_key", 64), _str("device_name", 64), _str("device_secret", 128, secret=True)),
        (-1,),
        "Aliyun triple: the module signs the login.",
    ),
    ("hwauth", (_str("device_id", 128), _str("device_secret", 128, secret=True)), (-1,), "Huawei cloud device auth."),
    (
        "hwprodid",
        (_str("product_id", 128), _str("product_secret", 128, secret=True), _str("node_id", 128)),
        (-2,),
        "Huawei cloud product auth.",
    ),
    ("onenet", (_str("product_id", 128), _str("access_key", 128, secret=True)), (-1,), "China Mobile OneNET auth."),
    ("CTWing", (_str("client_id", 128), _str("feature_string", 128, secret=True)), (-1,), "China Telecom CTWing auth."),
]

QMTCFG: dict[str, CommandSpec] = {}
QMTCFG_READ: dict[str, CommandSpec] = {}
for _cfg_key, _cfg_params, _cfg_secret, _cfg_summary in _QMTCFG_KEYS:
    _suffix = _cfg_key.upper().replace("/", "_")
    QMTCFG[_cfg_key] = _add(
        CommandSpec(
            f"QMTCFG_{_suffix}",
            "+QMTCFG",
            WRITE,
            _cfg_summary,
            params=(_key(_cfg_key), CLIENT, *_cfg_params),
            scope="client",
            responses=(Resp("+QMTCFG", "s,*", secret_fields=_cfg_secret),),
        )
    )
    QMTCFG_READ[_cfg_key] = _add(
        CommandSpec(
            f"QMTCFG_{_suffix}_READ",
            "+QMTCFG",
            WRITE,
            f"Read back '{_cfg_key}'." + (" Secret fields are redacted." if _cfg_secret else ""),
            params=(_key(_cfg_key), CLIENT),
            scope="client",
            responses=(Resp("+QMTCFG", "s,*", secret_fields=_cfg_secret),),
        )
    )

QMTOPEN = _add(
    CommandSpec(
        "QMTOPEN",
        "+QMTOPEN",
        WRITE,
        "Open the TCP/TLS connection of a client.",
        params=(CLIENT, _str("host", 100), _int("port", 1, 65535)),
        result=ResultSpec("+QMTOPEN", ("client",), Timeout(150.0), MQTT_LINK_FAILURES),
        scope="client",
    )
)
QMTOPEN_READ = _add(
    CommandSpec(
        "QMTOPEN_READ", "+QMTOPEN", READ, "Open clients: one line per client.", responses=(Resp("+QMTOPEN", "i,s,i"),)
    )
)
QMTOPEN_TEST = _add(
    CommandSpec("QMTOPEN_TEST", "+QMTOPEN", TEST, "Parameter ranges.", responses=(Resp("+QMTOPEN", "*"),))
)
QMTCLOSE = _add(
    CommandSpec(
        "QMTCLOSE",
        "+QMTCLOSE",
        WRITE,
        "Close a client's connection.",
        params=(CLIENT,),
        result=ResultSpec("+QMTCLOSE", ("client",), Timeout(35.0)),
        scope="client",
        ends_scope=True,
    )
)
QMTCONN = _add(
    CommandSpec(
        "QMTCONN",
        "+QMTCONN",
        WRITE,
        "Send MQTT CONNECT; the result carries the CONNACK code.",
        params=(
            CLIENT,
            _str("client_id", 256),
            _str("username", 256, optional=True),
            _str("password", 256, optional=True, secret=True),
        ),
        result=ResultSpec("+QMTCONN", ("client",), Timeout(60.0), MQTT_LINK_FAILURES),
        scope="client",
    )
)
QMTCONN_READ = _add(
    CommandSpec(
        "QMTCONN_READ",
        "+QMTCONN",
        READ,
        "Client states: 1 initialising, 2 connecting, 3 connected, 4 disconnecting.",
        responses=(Resp("+QMTCONN", "i,i"),),
    )
)
QMTDISC = _add(
    CommandSpec(
        "QMTDISC",
        "+QMTDISC",
        WRITE,
        "Send MQTT DISCONNECT; +QMTSTAT: <client>,5 may follow.",
        params=(CLIENT,),
        result=ResultSpec("+QMTDISC", ("client",), Timeout(35.0)),
        scope="client",
        ends_scope=True,
    )
)
QMTSUB = _add(
    CommandSpec(
        "QMTSUB",
        "+QMTSUB",
        WRITE,
        "Subscribe to up to 5 topics; the result lists granted QoS (128 = rejected).",
        params=(
            CLIENT,
            MSG_ID_NONZERO,
            TOPIC,
            QOS,
            *(
                p
                for i in range(2, 6)
                for p in (_str(f"topic{i}", 1024, optional=True), _int(f"qos{i}", 0, 2, optional=True))
            ),
        ),
        result=ResultSpec("+QMTSUB", ("client", "msg_id"), Timeout(65.0), MQTT_LINK_FAILURES),
        scope="client",
        together=tuple((f"topic{i}", f"qos{i}") for i in range(2, 6)),
    )
)
QMTUNS = _add(
    CommandSpec(
        "QMTUNS",
        "+QMTUNS",
        WRITE,
        "Unsubscribe from up to 5 topics.",
        params=(CLIENT, MSG_ID_NONZERO, TOPIC, *(_str(f"topic{i}", 1024, optional=True) for i in range(2, 6))),
        result=ResultSpec("+QMTUNS", ("client", "msg_id"), Timeout(65.0), MQTT_LINK_FAILURES),
        scope="client",
    )
)
_PUB_PARAMS = (CLIENT, MSG_ID, QOS, RETAIN, TOPIC)


def _publish(spec_id: str, name: str, summary: str, last: tuple[Param, ...], data: DataPhase | None) -> CommandSpec:
    """One publish form: they differ only in how the message reaches the module."""
    return _add(
        CommandSpec(
            spec_id,
            name,
            WRITE,
            summary,
            params=(*_PUB_PARAMS, *last),
            data=data,
            result=ResultSpec(name, ("client", "msg_id"), Timeout(65.0), MQTT_LINK_FAILURES),
            scope="client",
        )
    )


QMTPUB = _publish(
    "QMTPUB",
    "+QMTPUB",
    "Publish, fixed length: '> ' then exactly <length> bytes (BG9x).",
    (_int("length", 1, 4096),),
    DataPhase(DataKind.PROMPT, length_param="length"),
)
QMTPUB_CTRLZ = _publish(
    "QMTPUB_CTRLZ",
    "+QMTPUB",
    "Publish, variable length: '> ', data, Ctrl-Z sends, ESC cancels. Not binary-safe.",
    (),
    DataPhase(DataKind.PROMPT, terminator=b"\x1a", abort=b"\x1b"),
)
QMTPUB_INLINE = _publish(
    "QMTPUB_INLINE",
    "+QMTPUB",
    "Publish with the message as a quoted argument (BC26; no quotes or CR LF in it).",
    (_str("message", 1024),),
    None,
)
QMTPUBEX = _publish(
    "QMTPUBEX",
    "+QMTPUBEX",
    "Publish, length form: '> ' then exactly <length> bytes (EC2x, EC200, EG800).",
    (_int("length", 1, 10240),),
    DataPhase(DataKind.PROMPT, length_param="length"),
)
QMTPUBEX_INLINE = _publish(
    "QMTPUBEX_INLINE",
    "+QMTPUBEX",
    "Publish with the message as a quoted argument (BG95 per the Quectel SDK).",
    (_str("message", 1024),),
    None,
)
QMTPUB_TEST = _add(
    CommandSpec("QMTPUB_TEST", "+QMTPUB", TEST, "Publish forms this firmware knows.", responses=(Resp("+QMTPUB", "*"),))
)
QMTPUBEX_TEST = _add(
    CommandSpec(
        "QMTPUBEX_TEST", "+QMTPUBEX", TEST, "Publish forms this firmware knows.", responses=(Resp("+QMTPUBEX", "*"),)
    )
)
QMTRECV_READ = _add(
    CommandSpec(
        "QMTRECV_READ",
        "+QMTRECV",
        READ,
        "Buffer slots in use per client: +QMTRECV: <client>,<s0>,...,<s4>.",
        responses=(Resp("+QMTRECV", "i,i,i,*"),),
    )
)
QMTRECV = _add(
    CommandSpec(
        "QMTRECV",
        "+QMTRECV",
        WRITE,
        "Read buffered messages (all, or one slot); each arrives as a message event.",
        params=(CLIENT, _int("recv_id", 0, 4, optional=True)),
        scope="client",
    )
)

# --- HTTP(S) ---------------------------------------------------------------------------------

_QHTTPCFG_KEYS: list[tuple[str, tuple[Param, ...], tuple[int, ...]]] = [
    ("contextid", (CID,), ()),
    ("requestheader", (_int("enable", 0, 1),), ()),
    ("responseheader", (_int("enable", 0, 1),), ()),
    ("sslctxid", (_int("ctx", 0, 5),), ()),
    ("contenttype", (_int("type", 0, 5),), ()),
    ("rspout/auto", (_int("enable", 0, 1),), ()),
    ("closed/ind", (_int("enable", 0, 1),), ()),
    ("windowsize", (_int("size", 1, 65535),), ()),
    ("closewaittime", (_int("ms", 0, 65535),), ()),
    ("auth", (_str("credentials", 256, secret=True),), (-1,)),
    ("custom_header", (_str("header", 1024),), ()),
    ("reqheader/add", (_str("name", 128), _str("value", 1024)), ()),
    ("reqheader/remove", (_str("name", 128),), ()),
]
QHTTPCFG: dict[str, CommandSpec] = {}
QHTTPCFG_READ: dict[str, CommandSpec] = {}
for _h_key, _h_params, _h_secret in _QHTTPCFG_KEYS:
    _suffix = _h_key.upper().replace("/", "_")
    QHTTPCFG[_h_key] = _add(
        CommandSpec(
            f"QHTTPCFG_{_suffix}",
            "+QHTTPCFG",
            WRITE,
            f"HTTP setting '{_h_key}'.",
            params=(_key(_h_key), *_h_params),
            responses=(Resp("+QHTTPCFG", "s,*", secret_fields=_h_secret),),
        )
    )
    if _h_key not in ("reqheader/add", "reqheader/remove"):
        QHTTPCFG_READ[_h_key] = _add(
            CommandSpec(
                f"QHTTPCFG_{_suffix}_READ",
                "+QHTTPCFG",
                WRITE,
                f"Read HTTP setting '{_h_key}'.",
                params=(_key(_h_key),),
                responses=(Resp("+QHTTPCFG", "s,*", secret_fields=_h_secret),),
            )
        )
QHTTPCFG_ALL = _add(
    CommandSpec(
        "QHTTPCFG_ALL", "+QHTTPCFG", READ, "All HTTP settings (EC200/EG800).", responses=(Resp("+QHTTPCFG", "s,*"),)
    )
)
QHTTPURL = _add(
    CommandSpec(
        "QHTTPURL",
        "+QHTTPURL",
        WRITE,
        "Set the URL: CONNECT, then exactly <length> bytes, no CR LF.",
        params=(_int("length", 1, 4096), _int("input_time", 1, 65535, optional=True)),
        data=DataPhase(DataKind.UPLOAD, length_param="length", input_timeout=Timeout(60.0, "input_time")),
        timeout=Timeout(10.0),
    )
)
QHTTPURL_READ = _add(
    CommandSpec("QHTTPURL_READ", "+QHTTPURL", READ, "The URL set.", responses=(Resp("+QHTTPURL", "x"),))
)
QHTTPGET = _add(
    CommandSpec(
        "QHTTPGET",
        "+QHTTPGET",
        WRITE,
        "GET the URL; +QHTTPGET: <err>[,<status>[,<length>]] follows (or +CME ERROR: 7xx at once).",
        params=(_int("rsptime", 1, 65535, optional=True),),
        result=ResultSpec("+QHTTPGET", (), Timeout(65.0, "rsptime", 5.0)),
        timeout=Timeout(10.0),
    )
)
QHTTPGET_HEADER = _add(
    CommandSpec(
        "QHTTPGET_HEADER",
        "+QHTTPGET",
        WRITE,
        "GET with a host-supplied request header (requestheader=1): CONNECT, then the header.",
        params=(_int("rsptime", 1, 65535), _int("length", 1, 65535), _int("input_time", 1, 65535)),
        data=DataPhase(
            DataKind.UPLOAD, length_param="length", timeout=130.0, input_timeout=Timeout(60.0, "input_time")
        ),
        result=ResultSpec("+QHTTPGET", (), Timeout(65.0, "rsptime", 5.0)),
        timeout=Timeout(10.0),
    )
)
QHTTPPOST = _add(
    CommandSpec(
        "QHTTPPOST",
        "+QHTTPPOST",
        WRITE,
        "POST: CONNECT, then exactly <length> body bytes; +QHTTPPOST: <err>[,<status>[,<length>]] follows.",
        params=(
            _int("length", 1, 1048576),
            _int("input_time", 1, 65535, optional=True),
            _int("rsptime", 1, 65535, optional=True),
        ),
        data=DataPhase(
            DataKind.UPLOAD, length_param="length", timeout=130.0, input_timeout=Timeout(60.0, "input_time")
        ),
        result=ResultSpec("+QHTTPPOST", (), Timeout(65.0, "rsptime", 5.0)),
        timeout=Timeout(10.0),
    )
)
QHTTPREAD = _add(
    CommandSpec(
        "QHTTPREAD",
        "+QHTTPREAD",
        WRITE,
        "Read the response: CONNECT, body, OK, then +QHTTPREAD: <err>.",
        params=(_int("wait_time", 1, 65535, optional=True),),
        data=DataPhase(DataKind.DOWNLOAD, timeout=10.0),
        result=ResultSpec("+QHTTPREAD", (), Timeout(15.0)),
        timeout=Timeout(65.0, "wait_time", 5.0),
    )
)
QHTTPSTOP = _add(
    CommandSpec("QHTTPSTOP", "+QHTTPSTOP", EXEC, "Cancel the HTTP request and free the session.", timeout=Timeout(12.0))
)

# --- SSL and files ---------------------------------------------------------------------------

_QSSLCFG_KEYS: list[tuple[str, Param]] = [
    ("sslversion", _int("version", 0, 4)),
    ("ciphersuite", Param("suite", HEX)),
    ("seclevel", _int("level", 0, 2)),
    ("cacert", _str("path", 128)),
    ("clientcert", _str("path", 128)),
    ("clientkey", _str("path", 128)),
    ("ignorelocaltime", _int("ignore", 0, 1)),
    ("negotiatetime", _int("seconds", 10, 300)),
    ("sni", _int("enable", 0, 1)),
    ("checkhost", _int("enable", 0, 1)),
    ("session", _int("enable", 0, 1)),
]
QSSLCFG: dict[str, CommandSpec] = {}
QSSLCFG_READ: dict[str, CommandSpec] = {}
QSSLCFG_SNI_NAME = _add(
    CommandSpec(
        "QSSLCFG_SNI_NAME",
        "+QSSLCFG",
        WRITE,
        "Server name to send (SNI), where AT+QSSLCFG=? lists sni with a name (Quectel SDK ql_ssl.c).",
        params=(_key("sni"), SSL_CTX, _str("name", 255)),
    )
)


def _test(spec_id: str, name: str, summary: str) -> CommandSpec:
    """A ``=?`` test command: its answer lines say what the firmware has."""
    return _add(CommandSpec(spec_id, name, TEST, summary, responses=(Resp(name, "*"),)))


QSSLCFG_TEST = _test("QSSLCFG_TEST", "+QSSLCFG", "The SSL settings this firmware has.")
QHTTPCFG_TEST = _test("QHTTPCFG_TEST", "+QHTTPCFG", "The HTTP settings this firmware has.")
QHTTPURL_TEST = _test("QHTTPURL_TEST", "+QHTTPURL", "URL length and time-out ranges.")
QHTTPSTOP_TEST = _add(CommandSpec("QHTTPSTOP_TEST", "+QHTTPSTOP", TEST, "OK where the firmware has AT+QHTTPSTOP."))
QFUPL_TEST = _test("QFUPL_TEST", "+QFUPL", "Upload parameters.")
QSIMSTAT_READ = _add(
    CommandSpec(
        "QSIMSTAT_READ",
        "+QSIMSTAT",
        READ,
        "SIM insertion reports: <enable>,<inserted>.",
        responses=(Resp("+QSIMSTAT", "*"),),
    )
)
QSIMSTAT = _add(
    CommandSpec(
        "QSIMSTAT", "+QSIMSTAT", WRITE, "Report SIM removal and insertion (+QSIMSTAT).", params=(_int("enable", 0, 1),)
    )
)
CIMI = _add(CommandSpec("CIMI", "+CIMI", EXEC, "IMSI as a plain line.", responses=(Resp("+CIMI", "x"),)))
CGMI = _add(CommandSpec("CGMI", "+CGMI", EXEC, "Manufacturer as a plain line.", responses=(Resp("+CGMI", "x"),)))
for _s_key, _s_param in _QSSLCFG_KEYS:
    QSSLCFG[_s_key] = _add(
        CommandSpec(
            f"QSSLCFG_{_s_key.upper()}",
            "+QSSLCFG",
            WRITE,
            f"SSL context setting '{_s_key}'.",
            params=(_key(_s_key), SSL_CTX, _s_param),
        )
    )
    QSSLCFG_READ[_s_key] = _add(
        CommandSpec(
            f"QSSLCFG_{_s_key.upper()}_READ",
            "+QSSLCFG",
            WRITE,
            f"Read SSL context setting '{_s_key}'.",
            params=(_key(_s_key), SSL_CTX),
            responses=(Resp("+QSSLCFG", "s,*"),),
        )
    )
QFUPL = _add(
    CommandSpec(
        "QFUPL",
        "+QFUPL",
        WRITE,
        "Upload a file: CONNECT, exactly <size> bytes, then +QFUPL: <size>,<checksum>.",
        params=(
            _str("name", 80),
            _int("size", 1, 10485760),
            _int("timeout", 1, 65535, optional=True),
            _int("ackmode", 0, 1, optional=True),
        ),
        responses=(Resp("+QFUPL", "i,x"),),
        data=DataPhase(DataKind.UPLOAD, length_param="size", input_timeout=Timeout(5.0, "timeout")),
        timeout=Timeout(15.0, "timeout", 10.0),
    )
)
QFLST = _add(
    CommandSpec(
        "QFLST",
        "+QFLST",
        WRITE,
        'List files matching a pattern: +QFLST: "<name>",<size> per file.',
        params=(_str("pattern", 80, optional=True),),
        responses=(Resp("+QFLST", "s,i"),),
    )
)
QFDEL = _add(CommandSpec("QFDEL", "+QFDEL", WRITE, "Delete a file ('*' for all).", params=(_str("name", 80),)))
QFLDS = _add(
    CommandSpec(
        "QFLDS",
        "+QFLDS",
        WRITE,
        "Free and total space.",
        params=(_str("medium", 8, optional=True),),
        responses=(Resp("+QFLDS", "i,i,*"),),
    )
)

BY_ID: dict[str, CommandSpec] = {spec.id: spec for spec in ALL}
if len(BY_ID) != len(ALL):  # pragma: no cover - a table edit gone wrong
    raise RuntimeError("duplicate command spec ids")
