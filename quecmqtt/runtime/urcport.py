"""Which port the module prints its URCs on (``AT+QURCCFG="urcport"``, saved in NV).

A host on the UART sees **no** URCs at all when the module sends them to its USB AT port
(BG96 AT Commands Manual V2.2, 2.25): no received messages, no link reports, no two-phase
results, so every command that waits for one times out. Nothing in the answers says which port the host is on,
so it is told (`Modem(port_kind=...)`) or guessed from the device path and its USB vendor
(a Quectel interface is USB; a USB-serial adapter is on the UART; when neither says, nothing
is asked); when the module's setting does not fit, a warning says so once and names
the fix (`Modem(urc_port=...)`, or
``--urc-port`` on the command line), which sets it at every start-up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from quecmqtt.at import commands as C
from quecmqtt.errors import CommandError, CommandTimeout

if TYPE_CHECKING:
    from quecmqtt.runtime.modem import Modem

log = logging.getLogger("quecmqtt.runtime")

# what each kind of host port receives URCs from
_FITS = {
    "uart1": {"uart1", "all"},
    "uart2": {"uart2", "all"},
    "usbat": {"usbat", "all"},
    "usbmodem": {"usbmodem", "all"},
    "usb": {"usbat", "usbmodem", "all"},  # a USB interface whose role is not known
}
QUECTEL_VENDOR = "2c7c"
_UART = re.compile(r"tty(S|AMA|THS|SAC|mxc|LP|O|PS|HS)\d+|serial\d+|ttyUSB\d+-uart")
_USB = re.compile(r"tty(USB|ACM)\d+|/dev/serial/by-id/usb-")


def guess_port_kind(path: str | None) -> str | None:
    """'uart1' for an on-board UART (ttyS0, ttyAMA0, serial0) or a USB-serial adapter (which
    is wired to the module's UART), 'usb' for an interface of the Quectel module itself (USB
    vendor 2c7c), None when neither the name nor sysfs says. Reads sysfs: call it off the
    event loop."""
    if not path:
        return None
    name = os.path.realpath(path)
    if _UART.search(name) or _UART.search(path):
        return "uart1"
    if not (_USB.search(path) or _USB.search(name)):
        return None
    vendor = _usb_vendor(os.path.basename(name))
    if vendor is None:
        return None
    return "usb" if vendor == QUECTEL_VENDOR else "uart1"


def _usb_vendor(tty: str) -> str | None:
    """The USB vendor id of a tty's device (sysfs), or None."""
    device = Path("/sys/class/tty") / tty / "device"
    try:
        here = device.resolve(strict=True)
    except OSError:
        return None
    for parent in (here, *here.parents):
        try:
            return (parent / "idVendor").read_text(encoding="ascii").strip().lower()
        except OSError:
            continue
    return None


async def check_urc_port(modem: Modem) -> str | None:
    """Read the module's URC port; warn (once per value) if the host's port is not it.
    Returns the module's setting, or None where the family has no such command or the
    host's port kind is not known (then nothing is asked: there is nothing to compare)."""
    kind = modem.port_kind
    path = getattr(modem.transport, "marker_key", None)
    if kind is None and path and (_UART.search(path) or _USB.search(path) or path.startswith("/dev/")):
        kind = await asyncio.to_thread(guess_port_kind, path)  # realpath and sysfs: off the loop
    if kind not in _FITS:
        return None
    try:
        reply = await modem.execute_internal(C.QURCCFG_URCPORT_READ())
    except (CommandError, CommandTimeout):  # a reboot or a lost port is the start-up's to see
        return None
    fields = reply.fields("+QURCCFG")
    if not fields or len(fields[0]) < 2:
        return None
    setting = str(fields[0][1])
    if modem.urc_port_warned == setting:
        return setting  # said once per value
    modem.urc_port_warned = setting
    if setting not in _FITS[kind]:
        fix = kind if kind != "usb" else "usbat"
        log.warning(
            "the module sends its URCs to %r, but this port is %s: no received messages, link reports or "
            "command results will arrive here. Set it with Modem(urc_port=%r) (quecmqtt --urc-port %s); the module "
            "keeps it in NV",
            setting,
            "a UART" if kind.startswith("uart") else "USB",
            fix,
            fix,
        )
    else:
        log.info("the module sends its URCs to %r", setting)
    return setting
