"""`quecmqtt ports`: serial ports, Quectel's USB interfaces with the AT port marked, and who
else holds each one (ModemManager is the usual culprit)."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

QUECTEL_VID = 0x2C7C
# the USB interface that carries AT commands on most Quectel modules (EC2x, EG9x, EC200,
# BG95/BG96): interface 2 (ttyUSB2); interface 3 is the modem port (PPP), 0 DM, 1 NMEA
AT_INTERFACE = 2


@dataclass
class Port:
    device: str
    description: str
    vid: int | None = None
    pid: int | None = None
    interface: int | None = None
    quectel: bool = False
    at_port: bool = False
    held_by: list[str] = field(default_factory=list)


def holders(device: str) -> list[str]:
    """Processes with `device` open, as "name (pid)" (from /proc; needs permission to see
    other users' processes)."""
    try:
        target = os.path.realpath(device)
    except OSError:
        return []
    found: list[str] = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    name = (proc / "comm").read_text().strip()
                    found.append(f"{name} ({proc.name})")
                    break
            except OSError:
                continue
    return found


def _interface(location: str | None) -> int | None:
    # pyserial's location ends in ":<config>.<interface>" for USB devices
    if location and ":" in location:
        tail = location.rsplit(":", 1)[1]
        if "." in tail and tail.rsplit(".", 1)[1].isdigit():
            return int(tail.rsplit(".", 1)[1])
    return None


def list_ports() -> list[Port]:
    from serial.tools import list_ports as pyserial_ports

    out: list[Port] = []
    for info in sorted(pyserial_ports.comports(), key=lambda i: i.device):
        interface = _interface(info.location)
        quectel = info.vid == QUECTEL_VID
        port = Port(
            info.device,
            info.description or "",
            info.vid,
            info.pid,
            interface,
            quectel,
            quectel and interface == AT_INTERFACE,
            holders(info.device),
        )
        out.append(port)
    return out


def _cmd_ports(args: argparse.Namespace) -> int:
    ports = list_ports()
    if args.json:
        print(json.dumps([asdict(p) for p in ports]))
        return 0
    if not ports:
        print("no serial ports found (is the module plugged in, and its USB serial driver loaded: option, qcserial?)")
        return 0
    for p in ports:
        ids = f"{p.vid:04x}:{p.pid:04x}" if p.vid is not None and p.pid is not None else "-"
        mark = "  <- AT port" if p.at_port else ""
        iface = f" if{p.interface}" if p.interface is not None else ""
        print(f"{p.device:22} {ids}{iface:5} {p.description}{mark}")
        if p.held_by:
            print(f"{'':22} in use by {', '.join(p.held_by)}: stop it first (ModemManager: 'systemctl stop "
                  "ModemManager', or a udev rule ID_MM_DEVICE_IGNORE=1)")  # fmt: skip
    return 0


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "ports",
        help="list serial ports, mark Quectel modules' AT ports, warn about processes holding them",
        description=(
            "List serial ports. Quectel modules (USB vendor 0x2C7C) show each interface; the AT port (interface "
            f"{AT_INTERFACE} on EC2x/EG9x/EC200/BG9x) is marked. A port another process holds (ModemManager probes "
            "new modems) is flagged: two programs on one AT port corrupt each other's answers."
        ),
    )
    parser.add_argument("--json", action="store_true", help="a JSON list instead of text")
    parser.set_defaults(func=_cmd_ports)
