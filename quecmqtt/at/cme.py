"""``+CME ERROR`` numbers and their verbose texts (``AT+CMEE=1`` vs ``AT+CMEE=2``).

Modules answer either form, and some answer numeric even with verbose mode on, so both are
mapped to one number. Sources: 3GPP TS 27.007 (as reproduced in Quectel AT manuals), the
Quectel TCP/IP, file and HTTP(S) application notes; see ``reference/quectel-at.md`` 2.6,
3.2 and 4.4. Entries not confirmed on hardware are marked [R] there.
"""

from __future__ import annotations

import re
from enum import IntEnum

_NUMBER = re.compile(r"[0-9]{1,9}")


class Cme(IntEnum):
    PHONE_FAILURE = 0
    OPERATION_NOT_ALLOWED = 3
    OPERATION_NOT_SUPPORTED = 4
    SIM_NOT_INSERTED = 10
    SIM_PIN_REQUIRED = 11
    SIM_PUK_REQUIRED = 12
    SIM_FAILURE = 13
    SIM_BUSY = 14
    SIM_WRONG = 15
    INCORRECT_PASSWORD = 16
    MEMORY_FULL = 20
    NO_NETWORK_SERVICE = 30
    NETWORK_TIMEOUT = 31
    NETWORK_NOT_ALLOWED = 32
    INCORRECT_PARAMETERS = 50
    UNKNOWN = 100
    FILE_DRIVE_FULL = 403
    FILE_NOT_FOUND = 405
    FILE_ALREADY_EXISTS = 407
    FILE_TIMEOUT = 421
    TCPIP_UNKNOWN = 550
    TCPIP_OPERATION_BLOCKED = 551
    TCPIP_INVALID_PARAMETERS = 552
    TCPIP_MEMORY_NOT_ENOUGH = 553
    TCPIP_SOCKET_CREATION_FAILED = 554
    TCPIP_OPERATION_NOT_SUPPORTED = 555
    TCPIP_SOCKET_BIND_FAILED = 556
    TCPIP_SOCKET_LISTEN_FAILED = 557
    TCPIP_SOCKET_WRITE_FAILED = 558
    TCPIP_SOCKET_READ_FAILED = 559
    TCPIP_SOCKET_ACCEPT_FAILED = 560
    PDP_OPEN_FAILED = 561
    PDP_CLOSE_FAILED = 562
    SOCKET_ID_USED = 563
    DNS_BUSY = 564
    DNS_PARSE_FAILED = 565
    SOCKET_CONNECT_FAILED = 566
    SOCKET_CLOSED = 567
    OPERATION_BUSY = 568
    OPERATION_TIMEOUT = 569
    PDP_BROKEN = 570
    CANCEL_SENDING = 571
    TCPIP_OPERATION_NOT_ALLOWED = 572
    APN_NOT_CONFIGURED = 573
    PORT_BUSY = 574
    HTTP_UNKNOWN = 701
    HTTP_TIMEOUT = 702
    HTTP_BUSY = 703
    HTTP_UART_BUSY = 704
    HTTP_NO_REQUEST = 705
    HTTP_NETWORK_BUSY = 706
    HTTP_NETWORK_OPEN_FAILED = 707
    HTTP_NETWORK_NO_CONFIG = 708
    HTTP_NETWORK_DEACTIVATED = 709
    HTTP_NETWORK_ERROR = 710
    HTTP_URL_ERROR = 711
    HTTP_EMPTY_URL = 712
    HTTP_IP_ADDRESS_ERROR = 713
    HTTP_DNS_ERROR = 714
    HTTP_SOCKET_CREATE_ERROR = 715
    HTTP_SOCKET_CONNECT_ERROR = 716
    HTTP_SOCKET_READ_ERROR = 717
    HTTP_SOCKET_WRITE_ERROR = 718
    HTTP_SOCKET_CLOSED = 719
    HTTP_DATA_ENCODE_ERROR = 720
    HTTP_DATA_DECODE_ERROR = 721
    HTTP_READ_TIMEOUT = 722
    HTTP_RESPONSE_FAILED = 723
    HTTP_INCOMING_CALL_BUSY = 724
    HTTP_VOICE_CALL_BUSY = 725
    HTTP_INPUT_TIMEOUT = 726
    HTTP_WAIT_DATA_TIMEOUT = 727
    HTTP_WAIT_RESPONSE_TIMEOUT = 728
    HTTP_MEMORY_ALLOCATION_FAILED = 729
    HTTP_INVALID_PARAMETER = 730


# Verbose texts as modules print them with AT+CMEE=2 (lower-cased for lookup). Several
# numbers have more than one spelling in the wild.
_TEXTS: dict[int, tuple[str, ...]] = {
    0: ("phone failure",),
    3: ("operation not allowed",),
    4: ("operation not supported",),
    10: ("sim not inserted",),
    11: ("sim pin required",),
    12: ("sim puk required",),
    13: ("sim failure",),
    14: ("sim busy",),
    15: ("sim wrong",),
    16: ("incorrect password",),
    20: ("memory full",),
    30: ("no network service",),
    31: ("network timeout", "network time out"),
    32: ("network not allowed - emergency calls only", "network not allowed"),
    50: ("incorrect parameters", "invalid parameters"),
    100: ("unknown", "unknown error"),
    # FILE errors: BG96 FILE AT Commands Manual ch.4 table 1 (404, 408, 412, 415, 422, 424
    # are not in it); the first spelling is the manual's
    400: ("invalid input value",),
    401: ("larger than the size of the file",),
    402: ("read zero byte",),
    403: ("drive full",),
    405: ("file not found",),
    406: ("invalid file name",),
    407: ("file already existed", "file already exist", "file already exists"),
    409: ("fail to write the file",),
    410: ("fail to open the file",),
    411: ("fail to read the file",),
    413: ("reach the max number of file allowed to be opened",),
    414: ("the file read-only",),
    416: ("invalid file descriptor",),
    417: ("fail to list the file",),
    418: ("fail to delete the file",),
    419: ("fail to get disk info",),
    420: ("no space",),
    421: ("time out", "file timeout"),
    423: ("file too large",),
    425: ("invalid parameter",),
    426: ("file already opened",),
    550: ("unknown error",),
    551: ("operation blocked",),
    552: ("invalid parameters",),
    553: ("memory not enough",),
    554: ("socket creation failed", "create socket failed"),
    555: ("operation not supported",),
    556: ("socket bind failed",),
    557: ("socket listen failed",),
    558: ("socket write failed",),
    559: ("socket read failed",),
    560: ("socket accept failed",),
    561: ("pdp context opening failed", "open pdp context failed"),
    562: ("pdp context closure failed", "close pdp context failed"),
    563: ("socket identity has been used",),
    564: ("dns busy",),
    565: ("dns parse failed",),
    566: ("socket connect failed",),
    567: ("socket has been closed",),
    568: ("operation busy",),
    569: ("operation timeout",),
    570: ("pdp context broken down",),
    571: ("cancel sending",),
    572: ("operation not allowed",),
    573: ("apn not configured",),
    574: ("port busy",),
    701: ("http(s) unknown error", "http unknown error"),
    702: ("http(s) timeout", "http timeout"),
    703: ("http(s) busy", "http busy"),
    704: ("http(s) uart busy", "http uart busy"),
    705: ("http(s) no get/post/put requests", "http(s) no get/post requests", "no request"),
    706: ("http(s) network busy", "network busy"),
    707: ("http(s) network open failed", "network open failed"),
    708: ("http(s) network no configuration", "network no configuration"),
    709: ("http(s) network deactivated", "network deactivated"),
    710: ("http(s) network error", "network error"),
    711: ("http(s) url error", "url error"),
    712: ("http(s) empty url", "empty url"),
    713: ("http(s) ip address error", "ip address error"),
    714: ("http(s) dns error", "dns error"),
    715: ("http(s) socket create error", "socket create error"),
    716: ("http(s) socket connect error", "socket connect error"),
    717: ("http(s) socket read error", "socket read error"),
    718: ("http(s) socket write error", "socket write error"),
    719: ("http(s) socket closed", "socket closed"),
    720: ("http(s) data encode error", "data encode error"),
    721: ("http(s) data decode error", "data decode error"),
    722: ("http(s) read timeout", "read timeout"),
    723: ("http(s) response failed", "response failed"),
    724: ("incoming call busy",),
    725: ("voice call busy",),
    726: ("input timeout",),
    727: ("wait data timeout",),
    728: ("wait http(s) response timeout", "wait http response timeout"),
    729: ("memory allocation failed",),
    730: ("invalid parameter",),
}

# First spelling wins when two numbers share one text ("operation not allowed" is both 3
# and 572): the 3GPP number is the one a verbose module means outside TCP/IP commands.
_BY_TEXT: dict[str, int] = {}
for _code, _spellings in _TEXTS.items():
    for _spelling in _spellings:
        _BY_TEXT.setdefault(_spelling, _code)


def cme_from_text(value: str) -> int | None:
    """The number behind a ``+CME ERROR:`` value, numeric or verbose; None if unknown."""
    value = value.strip()
    if _NUMBER.fullmatch(value):
        return int(value)
    return _BY_TEXT.get(value.lower())


def cme_description(code: int) -> str:
    """The canonical text of a CME number, or an empty string."""
    spellings = _TEXTS.get(code)
    return spellings[0] if spellings else ""
