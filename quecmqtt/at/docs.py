"""Render the command table (the normative contract) as Markdown for ``docs/commands.md``.

    python -m quecmqtt.at.docs > docs/commands.md

A test fails when the committed page and the table in the code differ."""

from __future__ import annotations

from quecmqtt.at import commands
from quecmqtt.at.spec import CommandSpec, DataPhase, Timeout

HEADER = """# The command table

Generated from `quecmqtt/at/commands.py` by `python -m quecmqtt.at.docs`; do not edit by hand.

This table is the contract between the codec, the runtime and the rest of the library. Each
row is one command *form*. The columns:

- **Responses**: the `+PREFIX: ...` lines that belong to the command, with the shape they must
  have (`i` unquoted integer, `s` quoted string, `e` empty, `b` other bare token, `x` any one
  field, `?` optional, `*` any further fields). A line with the prefix that does not fit the
  shape is a URC (`+QMTCONN: 1,0,0` while `AT+QMTCONN?` is pending). Unprefixed lines while a
  command is pending are its intermediate lines (`ATI`, `AT+CGSN`). Fields marked *secret* are
  redacted in logs, `repr` and transcripts.
- **Time-out**: for the final result (`OK`, `ERROR`, `+CME ERROR`); `<param> + n` means the
  value of that argument plus a margin.
- **Data phase**: `>` prompt or `CONNECT`, who sends, and how the length is given.
- **Result**: for two-phase commands, the URC that completes it after `OK`, the arguments it is
  matched on, its time-out, and the URCs that fail it at once.
- **Secret**: arguments redacted everywhere (logs, `repr`, errors, recorded transcripts).
"""


def _timeout(t: Timeout) -> str:
    if t.param:
        return f"{t.param} + {t.extra:g} s ({t.seconds:g} s)"
    return f"{t.seconds:g} s"


def _data(phase: DataPhase | None) -> str:
    if phase is None:
        return ""
    marker = "`>`" if phase.kind.value == "prompt" else "CONNECT"
    who = "module sends body" if phase.kind.value == "download" else "host sends"
    if phase.length_param:
        how = f"exactly `<{phase.length_param}>` bytes"
    elif phase.terminator:
        how = "data + Ctrl-Z (ESC cancels)"
    else:
        how = "framed by content length or `OK` + `+QHTTPREAD:`"
    return f"{marker}, {who} {how}"


def _row(spec: CommandSpec) -> str:
    responses = "<br>".join(
        f"`{r.prefix}: {r.shape}`"
        + (f" (secret field {', '.join(map(str, r.secret_fields))})" if r.secret_fields else "")
        for r in spec.responses
    )
    result = ""
    if spec.result is not None:
        key = ", ".join(spec.result.key) or "none"
        result = f"`{spec.result.prefix}` on {key}, {_timeout(spec.result.timeout)}"
        if spec.result.fails_on:
            result += "; failed by " + ", ".join(f"`{p}`" for p in spec.result.fails_on)
    secrets = ", ".join(p.name for p in spec.params if p.secret)
    cells = [
        f"`{spec.id}`",
        f"`{spec.syntax}`",
        responses,
        _timeout(spec.timeout),
        _data(spec.data),
        result,
        secrets,
        spec.summary.replace("|", "\\|"),
    ]
    return "| " + " | ".join(cells) + " |"


def render() -> str:
    lines = [
        HEADER,
        "| Id | Syntax | Responses | Time-out | Data phase | Result | Secret | Purpose |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines.extend(_row(spec) for spec in commands.ALL)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
