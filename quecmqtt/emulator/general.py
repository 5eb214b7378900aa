"""The general 3GPP and V.25ter commands that generic AT drivers send at start-up: reset,
identity, IMSI, SMS mode and service centre, the command list, indications.

Answers as [ATM] (BG96 AT Commands Manual V2.2) shows them; where the EC2x manual differs it
is said. Fixed answers (identity) come from the profile's `general` table, so a profile
written by `quecmqtt doctor` answers as the module it was learned from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quecmqtt.emulator.atline import AtLine

if TYPE_CHECKING:
    from quecmqtt.emulator.module import Module

_FORM_SUFFIX = {"exec": "", "read": "?", "test": "=?"}
# ATZ/AT&F restore these [ATM] table 7 (factory defaults)
_SMS_DEFAULTS = {"cmgf": 0, "cnmi": (2, 1, 0, 0, 0), "cpms": ("ME", "ME", "ME"), "cscs": "GSM"}
_MEMORY_SIZE = {"ME": 23, "SM": 50}  # [ATM] 8.4 example: "ME" 23 slots, "SM" 50
_BASIC = ("&C", "&D", "&F", "&W", "&V", "Q", "V", "X", "Z", "E", "I", "S0", "S3", "S4", "S5", "S6", "S7", "S8", "S10")


class GeneralCommands:
    """Answers the general commands for one module; `answer` returns False for the rest."""

    def __init__(self, module: Module) -> None:
        self.module = module
        self.sca = ('"+8613800210500"', 145)  # [ATM] 8.3 example
        self.qsimstat = 0
        self.reset()

    def reset(self) -> None:
        """Factory defaults of the SMS settings (AT&F, ATZ, a reboot)."""
        self.cmgf = int(_SMS_DEFAULTS["cmgf"])  # type: ignore[call-overload]
        self.cnmi: tuple[int, ...] = tuple(_SMS_DEFAULTS["cnmi"])  # type: ignore[arg-type]
        self.cpms: tuple[str, ...] = tuple(_SMS_DEFAULTS["cpms"])  # type: ignore[arg-type]
        self.cscs = str(_SMS_DEFAULTS["cscs"])

    def answer(self, at: AtLine) -> bool:
        module = self.module
        name = at.name
        if name.startswith("&") and name[2:].isdigit():
            name = name[:2]  # AT&F0, AT&W0: the profile number
        method = getattr(self, "cmd_" + name.replace("&", "amp_").lstrip("+").lower(), None)
        if method is not None and method(at) is not False:
            return True
        key = name + _FORM_SUFFIX.get(at.form, "=")
        fixed = module.profile.general.get(key)
        if fixed is not None and at.form != "write":
            module.respond(list(fixed))
            return True
        if at.form == "test" and name in module.profile.general:
            module.respond()  # [ATM] 2.5-2.9: the identity commands' test form answers OK
            return True
        return False

    # -- V.25ter ------------------------------------------------------------------------------

    def cmd_z(self, at: AtLine) -> None:
        """ATZ: back to the stored profile (here the factory one) [ATM] 2.13."""
        self._defaults()

    def cmd_amp_f(self, at: AtLine) -> None:
        self._defaults()

    def _defaults(self) -> None:
        module = self.module
        module.echo = True
        module.cmee = 1
        self.reset()
        module.respond()

    def cmd_amp_w(self, at: AtLine) -> None:
        self.module.respond()

    def cmd_amp_c(self, at: AtLine) -> None:
        self.module.respond()

    def cmd_amp_d(self, at: AtLine) -> None:
        self.module.respond()

    def cmd_x(self, at: AtLine) -> None:
        self.module.respond()

    def cmd_q(self, at: AtLine) -> None:
        self.module.respond()

    def cmd_amp_v(self, at: AtLine) -> None:
        """The current configuration, as [ATM] 2.11 table 2 lists it (no blank line before OK)."""
        echo = 1 if self.module.echo else 0
        listing = ["&C: 1", "&D: 2", "&F: 0", "&W: 0", f"E: {echo}", "Q: 0", "V: 1", "X: 1", "Z: 0", "S0: 0",
                   "S3: 13", "S4: 10", "S5: 8", "S6: 2", "S7: 0", "S8: 2", "S10: 15"]  # fmt: skip
        self.module.out(b"\r\n" + "\r\n".join(listing).encode() + b"\r\nOK\r\n")

    # -- identity and SIM ---------------------------------------------------------------------

    def cmd_cimi(self, at: AtLine) -> bool:
        if at.form == "test":
            self.module.respond()
            return True
        if at.form != "exec":
            return False
        self.module._need_sim()  # +CME ERROR: 10/11/14 without a usable SIM
        self.module.respond(["460023210226023"])  # [ATM] 5.1 example: no prefix, no quotes
        return True

    def cmd_clac(self, at: AtLine) -> bool:
        """The commands this module has, one per line (a real BG95-M5 capture lists them
        without "AT"); here: what the emulator answers, less what the family lacks."""
        if at.form != "exec":
            return False
        module = self.module
        extended = {n for n in module.profile.general if n.startswith("+")}
        extended |= {"+" + n[3:] for n in dir(module) if n.startswith("at_") and n[3:].isupper()}
        extended |= {"+CIMI", "+CLAC", "+CMGF", "+CSCA", "+CNMI", "+CPMS", "+CSCS", "+QSIMSTAT"}
        extended -= set(module.profile.lacks)
        module.respond([*_BASIC, *sorted(extended)])
        return True

    def cmd_qsimstat(self, at: AtLine) -> bool:
        """SIM insertion reports [ATM] 5.10: +QSIMSTAT: <enable>,<insertedstatus>."""
        module = self.module
        if at.form == "test":
            module.respond(["+QSIMSTAT: (0,1)"])
        elif at.form == "read":
            module.respond([f"+QSIMSTAT: {self.qsimstat},{1 if module.sim_inserted else 0}"])
        elif at.form == "write" and at.arg(0) in (0, 1):
            self.qsimstat = int(at.arg(0))  # type: ignore[arg-type]
            module.respond()
        else:
            module.respond(final="ERROR")
        return True

    # -- SMS settings (nothing is sent: the emulator has no SMS) ---------------------------------

    def cmd_cmgf(self, at: AtLine) -> bool:
        module = self.module
        if at.form == "test":
            module.respond(["+CMGF: (0,1)"])
        elif at.form == "read":
            module.respond([f"+CMGF: {self.cmgf}"])
        else:
            mode = at.arg(0, 0)
            if mode not in (0, 1):
                module.respond(final="ERROR")
                return True
            self.cmgf = int(mode)
            module.respond()
        return True

    def cmd_csca(self, at: AtLine) -> bool:
        module = self.module
        if at.form == "test":
            module.respond()
        elif at.form == "read":
            module.respond([f"+CSCA: {self.sca[0]},{self.sca[1]}"])
        elif at.form == "write" and at.args and at.quoted[0]:
            tosca = at.arg(1, 145)
            self.sca = (f'"{at.arg(0)}"', int(tosca) if isinstance(tosca, int) else 145)
            module.respond()
        else:
            module.error(50)
        return True

    def cmd_cnmi(self, at: AtLine) -> bool:
        module = self.module
        if at.form == "test":
            module.respond(["+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)"])  # [R] the 27.005 ranges
        elif at.form == "read":
            module.respond(["+CNMI: " + ",".join(map(str, self.cnmi))])
        elif at.form == "write" and at.args and all(isinstance(a, int) for a in at.args) and len(at.args) <= 5:
            values = [int(a) for a in at.args]
            self.cnmi = tuple(values + list(self.cnmi[len(values) :]))
            module.respond()
        else:
            module.respond(final="ERROR")
        return True

    def cmd_cpms(self, at: AtLine) -> bool:
        """[ATM] 8.4: the write form answers the used/total counts of the memories it set."""
        module = self.module
        if at.form == "test":
            module.respond(['+CPMS: ("SM","ME","MT"),("SM","ME","MT"),("SM","ME","MT")'])
        elif at.form == "read":
            module.respond(["+CPMS: " + ",".join(f'"{m}",0,{_MEMORY_SIZE.get(m, 50)}' for m in self.cpms)])
        elif at.form == "write" and at.args and all(str(a) in ("SM", "ME", "MT") for a in at.args[:3]):
            chosen = [str(a) for a in at.args[:3]]
            self.cpms = tuple(chosen + list(self.cpms[len(chosen) :]))
            module.respond(["+CPMS: " + ",".join(f"0,{_MEMORY_SIZE.get(m, 50)}" for m in self.cpms)])
        else:
            module.respond(final="+CMS ERROR: 302")  # operation not allowed
        return True

    def cmd_cscs(self, at: AtLine) -> bool:
        module = self.module
        if at.form == "test":
            module.respond(['+CSCS: ("GSM","IRA","UCS2")'])
        elif at.form == "read":
            module.respond([f'+CSCS: "{self.cscs}"'])
        elif at.form == "write" and at.arg(0) in ("GSM", "IRA", "UCS2"):
            self.cscs = str(at.arg(0))
            module.respond()
        else:
            module.respond(final="ERROR")
        return True
