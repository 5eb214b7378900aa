"""The shipped profiles, one per module family, each fact with its source.

Sources (docs/modules.md has them side by side):
- [AN]    BG96 MQTT Application Note V1.0 (`wwxxyx/Quectel_BG96`, BG96/Software/), page given
- [SSL]   BG96 SSL AT Commands Manual V1.0; [HTTP] BG96 HTTP(S) AT Commands Manual;
  [FILE]  BG96 FILE AT Commands Manual; [ATM] BG96 AT Commands Manual V2.2
- [SDK]   Quectel's host SDK `quectel-develop/user-friendly-project`, source/quectel/modules/src
- [LooUQ] LooUQ's BGx driver `LooUQ/LooUQ_LTEmC`, src/ltemc-mqtt.c (BG95/BG77 over UART)
- [EG25]  a real EG25-G dump of `=?` answers (`lukejenkins/cwd`)
- [EC600] the published EC600S/EC800M `=?` captures (STM32 project); [EC800M] a real EC800M log
- [BG95]  a real BG95-M3 dump, `lukejenkins/cwd` reference/quectel/bg95m3/outputs/BG95M3LAR02A03_01.011.01.011.md
- [BG770A] a real BG770A-GL golden test (`w1ne/labwired-core`); [WIZ] WIZnet's Cat.M1 MQTT guide (real BG96)
- [ATM2]  the EC2x&EG9x AT manual V2.0 (a translation, `ShiYvXvan/Quectel-AT-Commands`)
- [S3]    the EG800K reports in reference/quectel-at.md; [seed] the seed document's sessions
A value marked [R] is a guess no source settles; it is modelled one way and docs/emulator.md
lists it.
"""

from __future__ import annotations

from quecmqtt.emulator.profiles import Profile

# -- answers shared by families ------------------------------------------------------------

_EC200_QMTCFG = (
    '+QMTCFG: "version",(0-5),(3,4)',
    '+QMTCFG: "pdpcid",(0-5),(1-15)',
    '+QMTCFG: "ssl",(0-5),(0,1),(0-5)',
    '+QMTCFG: "keepalive",(0-5),(0-3600)',
    '+QMTCFG: "session",(0-5),(0,1)',
    '+QMTCFG: "timeout",(0-5),(1-1200),(1-10),(0,1)',
    '+QMTCFG: "will",(0-5),(0,1),(0-2),(0,1),"willtopic","willmessage"',
    '+QMTCFG: "willex",(0-5),(0,1),(0-2),(0,1),"willtopic",(0-256)',
    '+QMTCFG: "recv/mode",(0-5),(0,1),(0,1)',
    '+QMTCFG: "send/mode",(0-5),(0,1)',
    '+QMTCFG: "onenet",(0-5),"product id","access key"',
    '+QMTCFG: "aliauth",(0-5),"product key","device name","device secret"',
    '+QMTCFG: "hwauth",(0-5),"device id","device secret"',
    '+QMTCFG: "hwprodid",(0-5),"product id","product secret","nodeid"',
    '+QMTCFG: "qmtping",(0-5),(5-60)',
    '+QMTCFG: "dataformat",(0-5),(0,1),(0,1)',
    '+QMTCFG: "view/mode",(0-5),(0,1)',
    '+QMTCFG: "CTWing",(0-5),"client_id","feature_string"',
    '+QMTCFG: "edit/timeout",(0-5),(0,1),(1-180)',
)  # [EC600] 19 keys
_EC25_QMTCFG = (
    '+QMTCFG: "version",(0-5),(3,4)',
    '+QMTCFG: "pdpcid",(0-5),(1-16)',
    '+QMTCFG: "ssl",(0-5),(0,1),(0-5)',
    '+QMTCFG: "keepalive",(0-5),(0-3600)',
    '+QMTCFG: "session",(0-5),(0,1)',
    '+QMTCFG: "timeout",(0-5),(1-60),(0-10),(0,1)',
    '+QMTCFG: "will",(0-5),(0,1),(0-2),(0,1),"willtopic","willmessage"',
    '+QMTCFG: "recv/mode",(0-5),(0,1),(0,1)',
    '+QMTCFG: "aliauth",(0-5),"product key","device name","device secret"',
    '+QMTCFG: "qmtping",(0-5),(5-60)',
)
_BG96_QMTCFG = (
    '+QMTCFG: "version",(0-5),(3,4)',
    '+QMTCFG: "pdpcid",(0-5),(1-16)',
    '+QMTCFG: "ssl",(0-5),(0,1),(0-5)',
    '+QMTCFG: "keepalive",(0-5),(0-3600)',
    '+QMTCFG: "session",(0-5),(0,1)',
    '+QMTCFG: "timeout",(0-5),(1-60),(1-10),(0,1)',
    '+QMTCFG: "will",(0-5),(0,1),(0-2),(0,1),"willtopic","willmessage"',
    '+QMTCFG: "aliauth",(0-5),"productkey","devicename","devicesecret"',
)  # [AN] 3.2.1 (PDF p.8-9): 8 keys; no recv/mode, qmtping, edit/timeout
_BG95_QMTCFG = (
    '+QMTCFG: "version",(0-5),(3,4)',
    '+QMTCFG: "pdpcid",(0-5),(1-16)',
    '+QMTCFG: "ssl",(0-5),(0,1),(0-5)',
    '+QMTCFG: "keepalive",(0-5),(0-3600)',
    '+QMTCFG: "session",(0-5),(0,1)',
    '+QMTCFG: "timeout",(0-5),(1-60),(0-10),(0,1)',
    '+QMTCFG: "will",(0-5),(0,1),(0-2),(0,1),<will_topic>,<will_message>',
    '+QMTCFG: "recv/mode",(0-5),(0,1),(0,1)',
    '+QMTCFG: "aliauth",(0-5),<product_key>,<device_name>,<device_secret>',
)  # [BG95] verbatim

_PUBEX_LENGTH = ('+QMTPUBEX: (0-5),<msgid>,(0-2),(0,1),"topic",(1-4096)',)  # [seed] EC200 class [R: the range]
_PUBEX_EC800M = ('+QMTPUBEX: (0-5), <msgid>,(0-2),(0,1),"topic","length"',)  # [EC800M] verbatim
_PUB_LENGTH = ("+QMTPUB: (0-5),(0-65535),(0-2),(0,1),<topic>,(1-4096)",)  # [BG770A] verbatim; [R] for EC2x, BG95
# [WIZ] real BG96: the range is the most it takes before Ctrl-Z, not a length parameter ([AN]
# 3.2.8 has none)
_PUB_BG96 = ('+QMTPUB: (0-5), (msgid),(0-2),(0,1),"topic",(1-1548)',)
_PUBEX_INLINE = ('+QMTPUBEX: (0-5),<msgid>,(0-2),(0,1),"topic","msg"',)  # [R] [SDK] ql_mqtt.c:492-505 sends it inline

_SSL_EC = (
    '+QSSLCFG: "sslversion",(0-5),(0-4)',
    '+QSSLCFG: "ciphersuite",(0-5),(0X0035,0X002F,0X0005,0X0004,0X000A,0XC027,0XC028,0XC02F,0XC030,0XFFFF)',
    '+QSSLCFG: "cacert",(0-5),"cacertpath"',
    '+QSSLCFG: "clientcert",(0-5),"client_cert_path"',
    '+QSSLCFG: "clientkey",(0-5),"client_key_path"',
    '+QSSLCFG: "seclevel",(0-5),(0-2)',
    '+QSSLCFG: "ignorelocaltime",(0-5),(0,1)',
    '+QSSLCFG: "negotiatetime",(0-5),(10-300)',
    '+QSSLCFG: "sni",(0-5),(0,1)',
    '+QSSLCFG: "checkhost",(0-5),(0,1)',
    '+QSSLCFG: "session",(0-5),(0,1)',
)  # [R] EC200 class: no capture; the keys tls.py has always sent, sni a flag as in [EG25], [BG95]
# [R] sni as a name, the way [SDK] ql_ssl.c:45-51 sends it: modelled on one family, so the
# driver's handling of that form is tested somewhere
_SSL_EC_SNI_NAME = tuple(line.replace('"sni",(0-5),(0,1)', '"sni",(0-5),"<sni>"') for line in _SSL_EC)
_SSL_EG25 = (
    *_SSL_EC[:8],
    '+QSSLCFG: "sni",(0-5),(0,1)',
    '+QSSLCFG: "session_cache",(0-5),(0,1)',
)  # [EG25]: sni as a flag and session_cache; no session, no checkhost
_SSL_BG96 = (
    '+QSSLCFG: "sslversion",(0-5),(0-4)',
    '+QSSLCFG: "ciphersuite",(0-5),(0X0035,0X002F,0X0005,0X0004,0X000A,0X003D,0XC011,0XC012,0XC013,0XC014,'
    "0XC027,0XC028,0XC02F,0XFFFF)",
    '+QSSLCFG: "cacert",(0-5),<cacertpath>',
    '+QSSLCFG: "clientcert",(0-5),<client_cert_path>',
    '+QSSLCFG: "clientkey",(0-5),<client_key_path>',
    '+QSSLCFG: "seclevel",(0-5),(0-2)',
    '+QSSLCFG: "ignorelocaltime",(0-5),(0,1)',
    '+QSSLCFG: "negotiatetime",(0-5),(10-300)',
)  # [SSL] 2.1.1 (PDF p.11): no sni, checkhost or session
_SSL_BG95 = (
    '+QSSLCFG: "sslversion",(0-5),(0-4)',
    '+QSSLCFG: "ciphersuite",(0-5),(0X0035,0X002F,0X0005,0X0004,0X000A,0X003D,0XC002,0XC003,0XC004,0XC005, '
    "0XC007,0XC008,0XC009,0XC00A,0XC011,0XC012,0XC013,0XC014,0XC00C,0XC00D,0XC00E,0XC00F,0XC023,0XC024,0XC025,"
    "0XC026,0XC027,0XC028,0XC029,0XC02A,0XC02B,0XC02F,0XFFFF)",
    '+QSSLCFG: "cacert",(0-5),<cacertpath>',
    '+QSSLCFG: "clientcert",(0-5),<clientcertpath>',
    '+QSSLCFG: "clientkey",(0-5),<clientkeypath>',
    '+QSSLCFG: "seclevel",(0-5),(0-2)',
    '+QSSLCFG: "session",(0-5),(0,1)',
    '+QSSLCFG: "sni",(0-5),(0,1)',
    '+QSSLCFG: "checkhost",(0-5),(0,1)',
    '+QSSLCFG: "ignorelocaltime",(0-5),(0,1)',
    '+QSSLCFG: "negotiatetime",(0-5),(10-300)',
    '+QSSLCFG: "dtls",(0-5),(0,1)',
    '+QSSLCFG: "dtlsversion",(0-5),(0-2)',
)  # [BG95] verbatim (sni as a flag)

_HTTPCFG_EC = (
    '+QHTTPCFG: "contextid",(1-16)',
    '+QHTTPCFG: "requestheader",(0,1)',
    '+QHTTPCFG: "responseheader",(0,1)',
    '+QHTTPCFG: "sslctxid",(0-5)',
    '+QHTTPCFG: "contenttype",(0-5)',
    '+QHTTPCFG: "rspout/auto",(0,1)',
    '+QHTTPCFG: "closed/ind",(0,1)',
    '+QHTTPCFG: "windowsize",(1-100)',
    '+QHTTPCFG: "closewaittime",(0-65535)',
    '+QHTTPCFG: "auth","username:password"',
    '+QHTTPCFG: "custom_header","custom_value"',
    '+QHTTPCFG: "reqheader/add","name","value"',
    '+QHTTPCFG: "reqheader/remove","name"',
)  # [R] EC200 class
_HTTPCFG_BG96 = (
    '+QHTTPCFG: "contextid",(1-16)',
    '+QHTTPCFG: "requestheader",(0,1)',
    '+QHTTPCFG: "responseheader",(0,1)',
    '+QHTTPCFG: "sslctxid",(0-5)',
    '+QHTTPCFG: "contenttype",(0-3)',
)  # [HTTP] 2.1 (PDF p.9): content types 0-3
_HTTPCFG_BG95 = (
    '+QHTTPCFG: "contextid",(1-16)',
    '+QHTTPCFG: "requestheader",(0,1)',
    '+QHTTPCFG: "responseheader",(0,1)',
    '+QHTTPCFG: "sslctxid",(0-5)',
    '+QHTTPCFG: "contenttype",(0-5)',
    '+QHTTPCFG: "auth",("username:password")',
    '+QHTTPCFG: "custom_header",("custom_value")',
)  # [BG95] verbatim
_HTTPURL_700 = ("+QHTTPURL: (1-700),(1-65535)",)  # [HTTP] p.10-11
_HTTPURL_EC200 = ("+QHTTPURL: (1-4096),(1-65535)",)  # [R]

_QFUPL = ("+QFUPL: <filename>[,(1-<freesize>)[,(1-65535)[,(0,1)]]]",)  # [FILE] 2.4 (PDF p.11): <ackmode> 0/1


def _identity(model: str, revision: str, imei: str) -> dict[str, tuple[str, ...]]:
    """Identity answers, as [ATM] 2.x and the EC25 AT manual ch.2 show them."""
    return {
        "I": ("Quectel", model, f"Revision: {revision}"),
        "+CGMI": ("Quectel",),
        "+GMI": ("Quectel",),
        "+CGMM": (model,),
        "+GMM": (model,),
        "+CGMR": (revision,),
        "+GMR": (revision,),
        "+QGMR": (f"{revision}_01.001.01.001",),
        "+CGSN": (imei,),
        "+GSN": (imei,),
    }


def _profile(**kwargs: object) -> Profile:
    general = _identity(str(kwargs["model"]), str(kwargs["revision"]), str(kwargs["imei"]))
    general.update(kwargs.pop("general", {}))  # type: ignore[call-overload]
    return Profile(general=general, **kwargs)  # type: ignore[arg-type]


_EC200_BOOT = ("APP RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE")
_EC200_SOURCES = {
    "test_answers[+QMTCFG]": "[EC600] 19 keys, timeout 1-1200",
    "test_answers[+QMTPUBEX]": "[seed] AT+QMTPUBEX=...,<len> then > (length form)",
    "lacks[+QMTPUB]": "[seed] the EC200 sessions publish only with QMTPUBEX [R]",
    "http_errors_immediate": "[S3] EG800K: a DNS failure is +CME ERROR: 716 at once",
    "ufs_prefix": "[S3] QFLST names with UFS:",
    "boot_urcs": "APP RDY after RDY on EC200/EC800 (real logs)",
    "line_max": "[R] no EC200 manual at hand; the BG96 value",
}


def _ec200_class(
    model: str,
    *,
    revision: str,
    imei: str,
    pubex: tuple[str, ...] = _PUBEX_LENGTH,
    ssl: tuple[str, ...] = _SSL_EC,
    sources: dict[str, str],
) -> Profile:
    """The EC200 class (EC200U, EC600/EC800, EG800K): one set of facts, told apart by identity,
    the QMTPUBEX answer and the QSSLCFG answer."""
    return _profile(
        name=model,
        model=model,
        revision=revision,
        imei=imei,
        test_answers={
            "+QMTCFG": _EC200_QMTCFG,
            "+QMTPUBEX": pubex,
            "+QSSLCFG": ssl,
            "+QHTTPCFG": _HTTPCFG_EC,
            "+QHTTPURL": _HTTPURL_EC200,
            "+QFUPL": _QFUPL,
        },
        lacks=frozenset({"+QMTPUB"}),
        boot_urcs=_EC200_BOOT,
        max_cid=7,
        ping_urc=True,
        http_dns_immediate=True,
        http_dns_code=716,
        http_errors_immediate=True,
        ufs_prefix=True,
        sources={**_EC200_SOURCES, **sources},
    )


PROFILES: dict[str, Profile] = {
    "EC200U": _ec200_class(
        "EC200U",
        revision="EC200UCNAAR02A09M08",
        imei="864430010001091",
        sources={"ping_urc": "drivers quoting the EC200 MQTT AN: +QMTPING on keep-alive failure"},
    ),
    "EC600S": _ec200_class(
        "EC600S",
        revision="EC600SCNLAR01A07M16",
        imei="869067050004562",
        pubex=_PUBEX_EC800M,
        sources={"test_answers[+QMTCFG]": "[EC600] the EC600S/EC800M capture itself"},
    ),
    "EG800K": _ec200_class(
        "EG800K",
        revision="EG800KCNLCR03A03M04",
        imei="864487060007899",
        ssl=_SSL_EC_SNI_NAME,
        sources={"http_dns_code": "[S3] EG800K: DNS failure is +CME ERROR: 716 at once"},
    ),
    "EC25": _profile(
        name="EC25",
        model="EC25",
        revision="EC25EFAR06A06M4G",
        imei="866425030001236",
        test_answers={
            "+QMTCFG": _EC25_QMTCFG,
            "+QMTPUBEX": _PUBEX_LENGTH,
            "+QMTPUB": _PUB_LENGTH,
            "+QSSLCFG": _SSL_EG25,
            "+QHTTPCFG": _HTTPCFG_EC,
            "+QHTTPURL": _HTTPURL_700,
            "+QFUPL": _QFUPL,
        },
        sources={
            "test_answers[+QSSLCFG]": "[EG25] sni as a flag, session_cache; no session/checkhost",
            "test_answers[+QMTPUB]": "[R] EC2x MQTT AN: <msglen> optional, so both QMTPUB forms",
            "http_dns_immediate": "[R] EC2x: OK, then +QHTTPGET: 714",
            "line_max": "[R] the BG96 value",
        },
    ),
    "BG96": _profile(
        name="BG96",
        model="BG96",
        revision="BG96MAR02A07M1G",
        imei="866425031234562",
        test_answers={
            "+QMTCFG": _BG96_QMTCFG,
            "+QMTPUB": _PUB_BG96,
            "+QSSLCFG": _SSL_BG96,
            "+QHTTPCFG": _HTTPCFG_BG96,
            "+QHTTPURL": _HTTPURL_700,
            "+QFUPL": _QFUPL,
        },
        lacks=frozenset({"+QMTPUBEX", "+QHTTPSTOP"}),
        boot_urcs=("+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE"),
        pub_length_param=False,
        ctrlz_max=1548,
        inflight_max=5,
        recv_quoted=False,
        reboot_pdpdeact=True,
        http_dns_immediate=True,
        http_dns_code=714,
        http_data_max=2048,
        qhttpstop=False,
        radio_settings=True,
        sources={
            "test_answers[+QMTCFG]": "[AN] p.7-8",
            "test_answers[+QMTPUB]": "[WIZ] (1-1548) on a real BG96; [AN] 3.2.8: only the Ctrl-Z form",
            "pub_length_param": "[AN] 3.2.8: AT+QMTPUB has no <msglen>; with one the module answers ERROR [R]",
            "ctrlz_max": "[AN] p.17-19: input beyond 1548 bytes is dropped",
            "inflight_max": "[AN] p.18 note 1: at most 5 in flight",
            "recv_quoted": "[AN] p.22 shows both forms; the unquoted one is modelled [R]",
            "test_answers[+QSSLCFG]": "[SSL] p.10",
            "test_answers[+QHTTPURL]": "[HTTP] p.10-11",
            "http_dns_immediate": "[HTTP] 4.3: +CME ERROR: 714 at once",
            "http_data_max": "[HTTP] p.10-11: header-mode data 1-2048",
            "lacks[+QHTTPSTOP]": "[HTTP] V1.0 has no QHTTPSTOP; [SDK] ql_http.c:641-644 skips it on BG9x",
            "reboot_pdpdeact": "TinyGSM issue #157 log: POWERED DOWN, pdpdeact, RDY",
            "qmtconn_open_state": "[AN] p.13-14; [LooUQ] ltemc-mqtt.c:457-458",
        },
    ),
    "BG95": _profile(
        name="BG95",
        model="BG95-M3",
        revision="BG95M3LAR02A03",
        imei="867523040003215",
        test_answers={
            "+QMTCFG": _BG95_QMTCFG,
            "+QMTPUBEX": _PUBEX_INLINE,
            "+QMTPUB": _PUB_LENGTH,
            "+QSSLCFG": _SSL_BG95,
            "+QHTTPCFG": _HTTPCFG_BG95,
            "+QHTTPURL": _HTTPURL_700,
            "+QFUPL": _QFUPL,
        },
        lacks=frozenset({"+QHTTPSTOP"}),
        boot_urcs=("+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE"),
        inline_max=560,
        pub_ctrlz=False,
        silent_qmtopen_read=True,
        http_dns_immediate=True,
        http_dns_code=714,
        http_data_max=2048,
        qhttpstop=False,
        radio_settings=True,
        sources={
            "test_answers[+QMTPUBEX]": "[SDK] ql_mqtt.c:492-505; [LooUQ]: inline message, at most 560 bytes",
            "test_answers[+QMTPUB]": "[LooUQ] ltemc-mqtt.c:378 and bg95_driver: AT+QMTPUB=...,<len>, up to 4096",
            "pub_ctrlz": "[R] every BG95 driver found sends a length; the Ctrl-Z form is not modelled",
            "silent_qmtopen_read": "[LooUQ] ltemc-mqtt.c:457: no answer to AT+QMTOPEN? over UART (one source)",
            "lacks[+QHTTPSTOP]": "[SDK] ql_http.c:641-644 skips it on BG95/BG96",
            "test_answers[+QSSLCFG]": "[R] BG96 keys plus sni as a name ([SDK] ql_ssl.c:45-51)",
        },
    ),
}
