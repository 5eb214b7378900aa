"""README "Without hardware", run as written (issue 13): each line through bash in the
project's directory, `tools/run` included; the servers (`cloud`, `emulate`) under a real pty
until their ready line, the rest to completion with status 0; then Ctrl-C stops the servers
with status 130, leaving no link behind."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pexpect

from tests.test_docs import shell_lines

ROOT = Path(__file__).resolve().parent.parent
SERVERS = {"cloud": "Ctrl-C stops", "emulate": "Ctrl-C stops"}  # command -> its ready line


def section_lines() -> list[str]:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text[text.index("## Without hardware") :]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return shell_lines(block.group(1))


def test_the_section_runs_as_written() -> None:
    lines = section_lines()
    assert len(lines) >= 4
    env = dict(os.environ)
    env.pop("QUECMQTT_DEBUG", None)
    servers: list[pexpect.spawn] = []
    links: list[str] = []
    try:
        for line in lines:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                env[name] = value
                continue
            command = line.split(" -m quecmqtt ")[1].split()[0]
            child = pexpect.spawn("bash", ["-c", line], cwd=str(ROOT), env=env, encoding="utf-8", timeout=60)
            if command in SERVERS:
                child.expect_exact(SERVERS[command])
                links += re.findall(r"--link (\S+)", line)
                servers.append(child)
            else:
                child.expect(pexpect.EOF)
                child.close()
                assert child.exitstatus == 0, f"{line}\n{child.before}"
                if command == "aliyun":
                    assert "post_reply code 200" in (child.before or ""), child.before
    finally:
        for child in reversed(servers):
            child.sendintr()
            child.expect(pexpect.EOF)
            child.close()
    assert [child.exitstatus for child in servers] == [130] * len(servers)
    assert links and not any(os.path.lexists(link) for link in links)
