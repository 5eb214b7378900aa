"""Bad command lines (issue 13), each run under a real pty as a user types it: one line, the
documented exit status (2 for a command line that cannot work, 1 for a failure), a message in
the user's terms, no traceback, and nothing left behind: no file in the working directory, no
module client connected, the emulator behind `fault` still answering. `{emu}` is an emulated
module (behind it Mosquitto answers as broker.test), `{tmp}` the working directory, `{control}`
a running `quecmqtt emulate`'s control socket."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from quecmqtt.emulator import EmulatorThread
from tests.broker import Broker

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "fixtures" / "seed" / "4.1.3-topic.txt"

# (command line, exit status, what the one line must say)
BAD: list[tuple[str, int, str]] = [
    ("nosuchcommand", 2, "argument COMMAND: invalid choice: 'nosuchcommand' (choose from 'decode"),
    ("--nosuchoption", 2, "unrecognized arguments: --nosuchoption"),
    ("info --port", 2, "argument --port: expected one argument"),
    ("info --port /nonexistent", 2, "/nonexistent: no such device ('quecmqtt ports' lists the serial ports)"),
    ("info --port /dev/null", 2, "/dev/null is not a serial port"),
    ("info --port /etc/passwd", 2, "/etc/passwd is a regular file, not a serial port (a transcript? use --"),
    ("info --port /tmp", 2, "/tmp is a directory, not a serial port"),
    ("info --port socket://127.0.0.1:1", 1, "PortLost: cannot connect to socket://127.0.0.1:1: [Errno 111] Connect "),
    (
        "info --port socket://nohost.invalid:7000",
        1,
        "PortLost: cannot connect to socket://nohost.invalid:7000: [Errno -2] N",
    ),
    ("info --port socket://127.0.0.1", 2, "expected socket://HOST:PORT, got 'socket://127.0.0.1'"),
    ("info --port rfc2217://127.0.0.1:1", 1, "PortLost: cannot open rfc2217://127.0.0.1:1: Could not open port rfc22"),
    ("info --port replay:/nonexistent.txt", 2, "/nonexistent.txt: no such transcript"),
    ("info --port replay:/etc/passwd", 2, "/etc/passwd:1: not a record: a line must start with '"),
    ("info --baud -5 --port /dev/null", 2, "argument --baud: want 1 or more, got -5"),
    ("info --baud abc --port /dev/null", 2, "argument --baud: want a whole number, got 'abc'"),
    (
        "info --urc-port nowhere --port /dev/null",
        2,
        "argument --urc-port: invalid choice: 'nowhere' (choose from 'usbat', '",
    ),
    (
        "info --port-kind usb9 --port /dev/null",
        2,
        "argument --port-kind: invalid choice: 'usb9' (choose from 'usbat', 'us",
    ),
    ("info --json --port /nonexistent", 2, "/nonexistent: no such device ('quecmqtt ports' lists the serial ports)"),
    (
        "info --record /nonexistent/dir/t.txt --port socket://127.0.0.1:1",
        2,
        "cannot write the transcript /nonexistent/dir/t.txt: no directory /none",
    ),
    (
        "info --record {tmp}/t.txt --port socket://127.0.0.1:1",
        1,
        "PortLost: cannot connect to socket://127.0.0.1:1: [Errno 111] Connect ",
    ),
    ("info --record {tmp} --port {emu}", 2, "the transcript {tmp} is a directory"),
    ("attach --port /nonexistent", 2, "/nonexistent: no such device ('quecmqtt ports' lists the serial ports)"),
    ('attach --port {emu} --pin ""', 2, "--pin: the value is empty"),
    ("attach --port {emu} --pin 12", 2, "a SIM PIN is 4 to 8 digits"),
    ("attach --port {emu} --pin-env EMPTY_VAR", 2, "--pin-env: the environment variable EMPTY_VAR is not set"),
    ("attach --port {emu} --pin-file /nonexistent", 2, "--pin-file: No such file or directory"),
    ("attach --port {emu} --timeout 0", 2, "argument --timeout: want more than 0 seconds, got 0"),
    ("attach --port {emu} --timeout -3", 2, "argument --timeout: want more than 0 seconds, got -3"),
    ("attach --port {emu} --timeout abc", 2, "argument --timeout: want seconds, got 'abc'"),
    ("attach --port {emu} --cid 99", 2, "argument --cid: a context id is 1-16, not 99"),
    ("doctor --port socket://127.0.0.1:1", 1, "PortLost: cannot connect to socket://127.0.0.1:1: [Errno 111] Connect "),
    ("doctor --port /nonexistent", 2, "/nonexistent: no such device ('quecmqtt ports' lists the serial ports)"),
    (
        "doctor --port {emu} --transcript /nonexistent/dir/t.txt",
        2,
        "cannot write the transcript /nonexistent/dir/t.txt: no directory /none",
    ),
    ("mqtt", 2, "give a command: pub, sub"),
    ("mqtt nosuch", 2, "argument COMMAND: invalid choice: 'nosuch' (choose from 'pub', 'sub')"),
    ("mqtt pub", 2, "the following arguments are required: --broker, --topic/-t"),
    ("mqtt pub --port {emu} --broker nohostport -t t -m m", 2, "argument --broker: want HOST:PORT, got 'nohostport'"),
    ("mqtt pub --port {emu} --broker host:0 -t t -m m", 2, "argument --broker: want HOST:PORT, got 'host:0'"),
    ("mqtt pub --port {emu} --broker host:99999 -t t -m m", 2, "argument --broker: want HOST:PORT, got 'host:99999'"),
    ("mqtt pub --port {emu} --broker :1883 -t t -m m", 2, "argument --broker: want HOST:PORT, got ':1883'"),
    ('mqtt pub --port {emu} --broker broker.test:1883 -t "" -m m', 2, "the topic is empty"),
    (
        'mqtt pub --port {emu} --broker broker.test:1883 -t "a/#" -m m',
        2,
        "cannot publish to 'a/#': wildcards (+, #) are for subscriptions only",
    ),
    (
        'mqtt pub --port {emu} --broker broker.test:1883 -t "a/+/b" -m m',
        2,
        "cannot publish to 'a/+/b': wildcards (+, #) are for subscriptions only",
    ),
    (
        "mqtt pub --port {emu} --broker broker.test:1883 -t t -m m -q 3",
        2,
        "argument --qos/-q: invalid choice: 3 (choose from 0, 1, 2)",
    ),
    (
        "mqtt pub --port {emu} --broker broker.test:1883 -t t -m m -q -1",
        2,
        "argument --qos/-q: invalid choice: -1 (choose from 0, 1, 2)",
    ),
    (
        "mqtt pub --port {emu} --broker broker.test:1883 -t t -f /nonexistent",
        2,
        "cannot read the message /nonexistent: No such file or directory",
    ),
    ("mqtt pub --port {emu} --broker broker.test:1883 -t t -f /tmp", 2, "cannot read the message /tmp: Is a directory"),
    (
        "mqtt pub --port {emu} --broker broker.test:1883 -t t -m m -f /etc/hostname",
        2,
        "argument --file/-f: not allowed with argument --message/-m",
    ),
    (
        "mqtt pub --port {emu} --broker broker.test:1883 -t t -m m --ca /nonexistent",
        2,
        "cannot read the CA certificate /nonexistent: No such file or directory",
    ),
    (
        "mqtt pub --port {emu} --broker broker.test:1883 -t t -m m --cafile /nonexistent",
        2,
        "cannot read the CA certificate /nonexistent: No such file or directory",
    ),
    ("mqtt pub --port {emu} --broker broker.test:1883 -t t -m m -k -1", 2, "--keepalive -1 is below 0"),
    ("mqtt pub --port {emu} --broker broker.test:1883 -t t -m m -k 70000", 2, "--keepalive 70000 is above 3600"),
    (
        "mqtt pub --port {emu} --broker broker.test:1883 -t t -m m -k abc",
        2,
        "argument --keepalive/-k: invalid int value: 'abc'",
    ),
    ("mqtt pub --port {emu} --broker broker.test:1883 -t t -m m --index 6", 2, "--index 6 is above 5"),
    ("mqtt pub --port {emu} --broker broker.test:1883 -t t -m m --index -1", 2, "--index -1 is below 0"),
    (
        'mqtt pub --port {emu} --broker broker.test:1883 -t t -m m -i ""',
        2,
        "the client id is empty: leave --client-id out for a random one",
    ),
    (
        'mqtt pub --port {emu} --broker broker.test:1883 -t t -m m -i "a\\"b"',
        2,
        "client_id 'a\"b' contains a quote; the module's AT parser cannot carry ",
    ),
    ("mqtt pub --port {emu} --broker broker.test:1883 -t t -m m --ssl-context 9", 2, "--ssl-context 9 is above 5"),
    (
        "mqtt pub --port {emu} --broker broker.test:1883 -t t -m m --count 0",
        2,
        "argument --count: want 1 or more, got 0",
    ),
    ('mqtt pub --port {emu} --broker broker.test:1883 -t t -m m -P ""', 2, "--password: the value is empty"),
    (
        "mqtt pub --port {emu} --broker broker.test:1883 -t t -m m --password-file /nonexistent",
        2,
        "--password-file: No such file or directory",
    ),
    (
        "mqtt pub --port {emu} --broker broker.test:1883 -t t -m m --password-env NOPE_NOT_SET",
        2,
        "--password-env: the environment variable NOPE_NOT_SET is not set",
    ),
    (
        'mqtt pub --port {emu} --broker broker.test:1883 -t "t\\"q" -m m',
        2,
        "topic 't\"q' contains a quote; the module's AT parser cannot carry it i",
    ),
    (
        "mqtt pub --port {emu} --broker broker.test:1883 -t t -m $(printf 'x%.0s' {1..20000})",
        2,
        "unrecognized arguments: x%.0s {1..20000})",
    ),
    (
        "mqtt pub --port {emu} --broker nohost.invalid:1883 -t t -m m",
        1,
        "MqttOpenError: opening client 0 to nohost.invalid:1883 failed: 4 (fail",
    ),
    ("mqtt sub --port {emu} --broker broker.test:1883", 2, "the following arguments are required: --topic/-t"),
    ('mqtt sub --port {emu} --broker broker.test:1883 -t ""', 2, "a topic filter cannot be empty"),
    (
        'mqtt sub --port {emu} --broker broker.test:1883 -t "a/#/b"',
        2,
        "topic filter 'a/#/b': '#' must be a whole level, and the last",
    ),
    ('mqtt sub --port {emu} --broker broker.test:1883 -t "a/b+"', 2, "topic filter 'a/b+': '+' must be a whole level"),
    ("mqtt sub --port {emu} --broker broker.test:1883 -t t -C 0", 2, "argument --count/-C: want 1 or more, got 0"),
    (
        "mqtt sub --port {emu} --broker broker.test:1883 -t t -q 7",
        2,
        "argument --qos/-q: invalid choice: 7 (choose from 0, 1, 2)",
    ),
    (
        "mqtt sub --port {emu} --broker broker.test:1883 -t t -W 0",
        2,
        "argument --wait/-W: want more than 0 seconds, got 0",
    ),
    (
        "mqtt sub --port {emu} --broker broker.test:1883 -t t -W -1",
        2,
        "argument --wait/-W: want more than 0 seconds, got -1",
    ),
    (
        "mqtt sub --port {emu} --broker broker.test:1883 -t t -W 0.3 -C 1",
        1,
        "SubscriptionEnded: 0 of 1 messages within 0.3 s",
    ),
    ("aliyun", 2, "give a command: sign, register, connect, post"),
    ("aliyun nosuch", 2, "argument COMMAND: invalid choice: 'nosuch' (choose from 'sign', 'regis"),
    ("aliyun sign", 2, "the following arguments are required: --product-key, --device-name"),
    ("aliyun sign --product-key pk", 2, "the following arguments are required: --device-name"),
    (
        "aliyun sign --product-key pk --device-name dn --device-secret-file /nonexistent",
        2,
        "--device-secret-file: No such file or directory",
    ),
    (
        "aliyun sign --product-key pk --device-name dn --device-secret-env NOPE_NOT_SET",
        2,
        "--device-secret-env: the environment variable NOPE_NOT_SET is not set",
    ),
    ('aliyun sign --product-key pk --device-name dn --device-secret ""', 2, "--device-secret: the value is empty"),
    (
        "aliyun sign --product-key pk --device-name dn --device-secret x --product-secret y",
        2,
        "give one of a device secret (login), a product secret (registration), ",
    ),
    ("aliyun sign --product-key pk --device-name dn --product-secret y", 2, "registration needs --random"),
    (
        "aliyun sign --product-key pk --device-name dn --device-secret x --sign-method md5",
        2,
        "argument --sign-method: invalid choice: 'md5' (choose from 'hmacmd5', ",
    ),
    (
        "aliyun sign --product-key pk --device-name dn --device-secret x --secure-mode 5",
        2,
        "argument --secure-mode: invalid choice: 5 (choose from 2, 3, -2)",
    ),
    (
        "aliyun sign --product-key pk --device-name dn --device-secret x --timestamp abc",
        2,
        "timestamp 'abc' is not a number of milliseconds",
    ),
    (
        "aliyun sign --product-key pk --device-name dn --device-secret x --timestamp 1 --no-timestamp",
        2,
        "argument --no-timestamp: not allowed with argument --timestamp",
    ),
    (
        "aliyun sign --product-key pk --device-name dn --device-token t",
        2,
        "a connwl login needs --client-id: the one regnwl returned",
    ),
    ('aliyun sign --product-key "" --device-name dn --device-secret x', 2, "product key is empty"),
    ('aliyun sign --product-key pk --device-name "" --device-secret x', 2, "device name is empty"),
    (
        'aliyun sign --product-key "p|k" --device-name dn --device-secret x',
        2,
        "product key 'p|k' holds a character Aliyun logins cannot carry",
    ),
    ("aliyun sign --https --product-key pk --device-name dn --product-secret y", 2, "registration needs --random"),
    ("aliyun register --port {emu}", 2, "the following arguments are required: --product-key, --device-name"),
    (
        "aliyun register --port {emu} --product-key pk --device-name dn --product-secret-env NOPE",
        2,
        "--product-secret-env: the environment variable NOPE is not set",
    ),
    (
        "aliyun register --port {emu} --product-key pk --device-name dn --product-secret x",
        2,
        "give --endpoint (your instance's MQTT host, e.g. iot-xxxx.mqtt.iothub.",
    ),
    (
        "aliyun register --port {emu} --product-key pk --device-name dn --product-secret x --endpoint e --mqtt-port 0",
        2,
        "argument --mqtt-port: a port is 1-65535, not 0",
    ),
    (
        "aliyun register --port {emu} --product-key pk --device-name dn --product-secret x --endpoint e --ca"
        " /nonexistent --store {tmp}/s",
        2,
        "cannot read the CA certificate /nonexistent: No such file or directory",
    ),
    (
        "aliyun register --port {emu} --product-key pk --device-name dn --product-secret x --endpoint e"
        " --store /etc/passwd",
        2,
        "--store /etc/passwd is a file; the store is a directory (one 0600 file",
    ),
    (
        "aliyun connect --port {emu} --product-key pk --device-name dn --device-secret x",
        2,
        "give --endpoint (your instance's MQTT host)",
    ),
    (
        "aliyun connect --port /nonexistent --product-key pk --device-name dn --device-secret x --endpoint e",
        2,
        "/nonexistent: no such device ('quecmqtt ports' lists the serial ports)",
    ),
    (
        "aliyun connect --port {emu} --product-key pk --device-name dn --device-secret x --endpoint e --tls"
        " --ca /nonexistent",
        2,
        "cannot read the CA certificate /nonexistent: No such file or directory",
    ),
    (
        "aliyun post --port {emu} --product-key pk --device-name dn --device-secret x --endpoint e",
        2,
        "the following arguments are required: --params",
    ),
    (
        "aliyun post --port {emu} --product-key pk --device-name dn --device-secret x --endpoint e --params"
        " '{\"Temp\": 1}' --tsl /nonexistent",
        2,
        "--tsl: cannot read /nonexistent: No such file or directory",
    ),
    (
        "aliyun post --port {emu} --product-key pk --device-name dn --device-secret x --endpoint e --params"
        " '{\"Temp\": 1}' --tsl {tmp}",
        2,
        "--tsl: cannot read {tmp}: Is a directory",
    ),
    (
        "aliyun ota --port {emu} --product-key pk --device-name dn --device-secret x --endpoint e",
        2,
        "the following arguments are required: --version",
    ),
    (
        "aliyun ota --port {emu} --product-key pk --device-name dn --device-secret x --version 1",
        2,
        "give --endpoint",
    ),
    (
        "aliyun ota --port {emu} --product-key pk --device-name dn --device-secret x --endpoint e --version 1"
        " --chunk 0",
        2,
        "argument --chunk",
    ),
    (
        "aliyun ota --port {emu} --product-key pk --device-name dn --device-secret x --endpoint e --version 1"
        " --wait -1",
        2,
        "argument --wait",
    ),
    (
        "aliyun ota --port {emu} --product-key pk --device-name dn --device-secret x --endpoint e --version 1"
        " --download-ca /nonexistent",
        2,
        "cannot read the download's CA /nonexistent: No such file or directory",
    ),
    (
        "aliyun ota --port {emu} --product-key pk --device-name dn --device-secret x --endpoint e --version 1"
        " --directory /proc/self/nope",
        2,
        "--directory /proc/self/nope:",
    ),
    ("cloud --tsl pk=/nonexistent", 2, "/nonexistent"),
    ("cloud --tsl /nonexistent", 2, "--tsl wants PRODUCTKEY=FILE"),
    ("cloud --ota pk:1.0", 2, "--ota wants PK:VERSION:FILE"),
    ("cloud --ota pk:1.0:/nonexistent", 2, "/nonexistent is not a file"),
    ("cloud --ota-sign-method CRC32", 2, "argument --ota-sign-method: invalid choice"),
    (
        'aliyun post --port {emu} --product-key pk --device-name dn --device-secret x --endpoint e --params "{"',
        2,
        "--params is not JSON: Expecting property name enclosed in double quote",
    ),
    (
        'aliyun post --port {emu} --product-key pk --device-name dn --device-secret x --endpoint e --params "[1]"',
        2,
        "--params must hold a JSON object, e.g. '{\"Temp\": 21.5}'",
    ),
    (
        "aliyun post --port {emu} --product-key pk --device-name dn --device-secret x --endpoint e --params"
        " '{}' --timeout 0",
        2,
        "argument --timeout: want more than 0 seconds, got 0",
    ),
    (
        "aliyun post --port {emu} --product-key pk --device-name dn --device-secret x --endpoint e --params"
        " @/nonexistent",
        2,
        "cannot read the properties /nonexistent: No such file or directory",
    ),
    (
        "aliyun post --port {emu} --product-key pk --device-name dn --device-secret x --endpoint e --params"
        " @/etc/passwd",
        2,
        "/etc/passwd is not JSON: Expecting value: line 1 column 1 (char 0)",
    ),
    (
        "aliyun post --port {emu} --product-key pk --device-name dn --device-secret x --endpoint e --params - ",
        2,
        "standard input is not JSON: Expecting value: line 1 column 1 (char 0)",
    ),
    ("cloud --host 999.1.1.1", 2, "cannot listen on 999.1.1.1: Name or service not known"),
    ("cloud --registry /etc/passwd", 2, "/etc/passwd is not a registry (a JSON file): Expecting value: line 1 c"),
    (
        "cloud --registry /nonexistent/dir/r.json",
        2,
        "cannot write the registry /nonexistent/dir/r.json: no directory /nonex",
    ),
    ("cloud --registry {tmp}", 2, "the registry {tmp} is a directory"),
    ("cloud --product nocolon", 2, "--product wants PK:$VAR or PK:@FILE, got 'nocolon':..."),
    ("cloud --device pk", 2, "--device wants PK:DN[:$VAR or :@FILE], got 'pk':..."),
    ("cloud --broker nohost", 2, "argument --broker: want HOST:PORT, got 'nohost'"),
    ('cloud --endpoint ""', 2, "--endpoint is empty: give the MQTT endpoint's name"),
    ("cloud --mqtt-port 99999", 2, "argument --mqtt-port: a port is 1-65535 (0: any free one), not 99999"),
    ("cloud --https-port -1", 2, "argument --https-port: a port is 1-65535 (0: any free one), not -1"),
    ("cloud --mqtt-port http", 2, "argument --mqtt-port: want a port number, got 'http'"),
    ("emulate --model NOPE", 2, "argument --model: invalid choice: 'NOPE' (choose from 'BG95', 'BG96', "),
    ("emulate --link /nonexistent/dir/tty", 2, "/nonexistent/dir: no such directory for the link /nonexistent/dir/tty"),
    ("emulate --link /etc/passwd", 2, "/etc/passwd exists and is not a link; it is left alone"),
    ("emulate --hosts a=127.0.0.1", 2, "--hosts 'a=127.0.0.1': the target '127.0.0.1' has no port (NAME=ADDR:P"),
    ("emulate --hosts =1.2.3.4:5", 2, "--hosts '=1.2.3.4:5': want NAME=TARGET (NAME=ADDR:PORT or NAME:PORT=AD"),
    ("emulate --hosts a=b", 2, "--hosts 'a=b': the target 'b' has no port (NAME=ADDR:PORT or NAME:PORT"),
    ("emulate --hosts a=127.0.0.1:99999", 2, "--hosts 'a=127.0.0.1:99999': the target's port '99999' is not 1-65535 "),
    ("emulate --hosts a:x=127.0.0.1:1", 2, "--hosts 'a:x=127.0.0.1:1': the name 'a:x' is not NAME or NAME:PORT (NA"),
    ("emulate --echo maybe", 2, "argument --echo: invalid choice: 'maybe' (choose from 'on', 'off')"),
    ('emulate --sim-pin ""', 2, "--sim-pin: a SIM PIN is 4 to 8 digits"),
    ("emulate --sim-pin abc", 2, "--sim-pin: a SIM PIN is 4 to 8 digits"),
    ("emulate --urc-port nowhere", 2, "argument --urc-port: invalid choice: 'nowhere' (choose from 'usbat', '"),
    ("emulate --host-port xyz", 2, "argument --host-port: invalid choice: 'xyz' (choose from 'usbat', 'usb"),
    ("emulate --profile /etc/passwd", 2, "/etc/passwd is not a profile file (JSON, as 'quecmqtt doctor' writes):"),
    ("emulate --profile /nonexistent/p.json", 2, "cannot read profile /nonexistent/p.json: No such file or directory"),
    (
        "emulate --control /nonexistent/dir/c",
        2,
        "cannot make the control socket /nonexistent/dir/c: No such file or dir",
    ),
    ("emulate --rtt -1", 2, "argument --rtt: want 0 or more seconds, got -1"),
    ("emulate --rtt nan", 2, "argument --rtt: want 0 or more seconds, got nan"),
    ("emulate --imei abc", 2, "argument --imei: an IMEI is 15 digits, the last a Luhn check digit; 'a"),
    ("emulate --imei 866425030001234", 2, "argument --imei: an IMEI is 15 digits, the last a Luhn check digit; '8"),
    ("fault", 2, "the following arguments are required: --control, FAULT, args"),
    (
        "fault --control /nonexistent reboot",
        2,
        "cannot reach the control socket /nonexistent: No such file or director",
    ),
    ("fault --control /tmp reboot", 2, "cannot reach the control socket /tmp: Connection refused (is 'quecmqtt"),
    (
        "fault --control /nonexistent nosuchfault",
        2,
        "argument FAULT: invalid choice: 'nosuchfault' (choose from 'burst', 'c",
    ),
    ("decode", 2, "the following arguments are required: file"),
    ("decode /nonexistent", 2, "/nonexistent: no such file"),
    ("decode /tmp", 2, "cannot read /tmp: Is a directory"),
    ("decode /etc/passwd", 2, "/etc/passwd:1: not a record: a line must start with '>' or '<' (or '#'"),
    ("decode --raw /nonexistent", 2, "/nonexistent: no such file"),
    ("replay", 2, "the following arguments are required: file"),
    ("replay /nonexistent", 2, "cannot read /nonexistent: No such file or directory"),
    ("replay /etc/passwd", 2, "/etc/passwd:1: not a record: a line must start with '>' or '<' (or '#'"),
    ("replay /tmp", 2, "cannot read /tmp: Is a directory"),
    ("record", 2, "the following arguments are required: --output/-o"),
    (
        "record --port /nonexistent -o t.txt",
        2,
        "/nonexistent: no such device ('quecmqtt ports' lists the serial ports)",
    ),
    ("record --port /dev/null -o t.txt", 2, "/dev/null is not a serial port"),
    (
        "record --port {emu} -o /nonexistent/dir/t.txt",
        2,
        "cannot write the transcript /nonexistent/dir/t.txt: no directory /none",
    ),
    ("record --port {emu} -o /tmp", 2, "the transcript /tmp is a directory"),
    (
        "record --port {emu} -o t.txt --link /nonexistent/dir/tty",
        2,
        "/nonexistent/dir: no such directory for the link /nonexistent/dir/tty",
    ),
    ("ports --nosuch", 2, "unrecognized arguments: --nosuch"),
    ("demo --nosuch", 2, "unrecognized arguments: --nosuch"),
    ("demo --model NOPE", 2, "argument --model: invalid choice: 'NOPE' (choose from 'BG95', 'BG96', "),
    ("at --port /nonexistent", 2, "/nonexistent: no such device ('quecmqtt ports' lists the serial ports)"),
    ("at --port socket://127.0.0.1:1", 1, "PortLost: cannot connect to socket://127.0.0.1:1: [Errno 111] Connect "),
    ("provision", 2, "the following arguments are required: ports, --product-key, --store, -"),
    (
        "provision /dev/null --product-key pk --store s --report r.csv --product-secret x",
        2,
        "give --endpoint: the login that proves each registration goes there",
    ),
    (
        "provision {emu} {emu} --product-key pk --store s --report r.csv --product-secret x --endpoint e",
        2,
        "a port is given twice; each module must be driven by one task",
    ),
    (
        "provision {emu} --product-key pk --store s --report /etc/passwd --product-secret x --endpoint e",
        2,
        "/etc/passwd is not a provisioning report (no port, status and imei col",
    ),
    (
        "provision {emu} --product-key pk --store s --report r.csv --product-secret x --endpoint e"
        ' --device-name "{nope}"',
        2,
        "--device-name '{nope}': only {imei} and {model} ('nope')",
    ),
    (
        "provision {emu} --product-key pk --store s --report r.csv --product-secret x --endpoint e --parallel 0",
        2,
        "argument --parallel: want 1 or more, got 0",
    ),
    (
        "provision {emu} --product-key pk --store s --report r.csv --product-secret x --endpoint e --ca /nonexistent",
        2,
        "cannot read the CA certificate /nonexistent: No such file or directory",
    ),
    (
        "provision {emu} --product-key pk --store s --report r.csv --product-secret x --endpoint e --mqtt-port 0",
        2,
        "argument --mqtt-port: a port is 1-65535, not 0",
    ),
    (f"info --port replay:{SEED}", 1, "ReplayMismatch"),
    # the twin's secrets never on the command line (issue 14: visible to every process)
    ("cloud --device pk:dn:a-literal-secret", 2, "--device pk:dn: a secret on the command line is visible"),
    ("cloud --product pk:a-literal-secret", 2, "--product pk: a secret on the command line is visible"),
    ("cloud --product pk:@/nonexistent/ps.txt", 2, "--product pk: cannot read /nonexistent/ps.txt"),
    ("cloud --device pk:dn:$QUECMQTT_NO_SUCH_VAR", 2, "the environment variable QUECMQTT_NO_SUCH_VAR is not set"),
    # faults for a running emulator: out of range, the emulator keeps answering (on b32764a
    # `fragment -1` was taken and the emulator stopped answering)
    ("fault --control {control} fragment -1", 2, "MAX: want 0-65536, got -1"),
    ("fault --control {control} fragment abc", 2, "MAX: want a whole number 0-65536, got 'abc'"),
    ("fault --control {control} drop-link 9 1", 2, "CLIENT: want 0-5, got 9"),
    ("fault --control {control} rtt -5", 2, "SECONDS: want 0-60 seconds, got -5"),
    ("fault --control {control} rtt nan", 2, "SECONDS: want 0-60 seconds, got nan"),
    ("fault --control {control} burst 0 t 99999999", 2, "COUNT: want 1-10000, got 99999999"),
    ("fault --control {control} inject zz", 2, "HEX: want pairs of hex digits, got 'zz'"),
    ("fault --control {control} reboot now", 2, "reboot takes at most 0 argument(s)"),
    ("emulate --profile /nonexistent/p.json", 2, "cannot read profile /nonexistent/p.json"),
]
# lines shlex cannot carry well: a C1 control character, a payload too big for the module
ODD: list[tuple[list[str], int, str]] = [
    (["mqtt", "pub", "--port", "{emu}", "--broker", "broker.test:1883", "-t", "t\x85", "-m", "m"], 2,
     "contains control character 0x85"),
    (["mqtt", "pub", "--port", "{emu}", "--broker", "broker.test:1883", "-t", "t", "-m", "x" * 20000], 2,
     "the payload is 20000 bytes; this module publishes at most 10240"),
    (["aliyun", "sign", "--product-key", "pk", "--device-name", "dn", "--device-secret", "a\udc80b"], 2,
     "not valid text: an unpaired surrogate at position 1"),
]  # fmt: skip
CASES = [(shlex.split(line), status, message) for line, status, message in BAD] + ODD


@pytest.fixture(scope="module")
def emulator(broker: Broker) -> Iterator[EmulatorThread]:
    with EmulatorThread(hosts=broker.hosts()) as emu:
        yield emu


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The control socket of a running `quecmqtt emulate`."""
    link = tmp_path_factory.mktemp("emulate") / "tty"
    child = pexpect.spawn(sys.executable, ["-m", "quecmqtt", "emulate", "--link", str(link)], timeout=20)
    child.expect("Ctrl-C stops")
    yield f"{link}.control"
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()


def test_the_table_is_large() -> None:
    assert len(CASES) >= 100


@pytest.mark.broker
@pytest.mark.parametrize(("argv", "status", "message"), CASES, ids=[" ".join(a)[:80] for a, _, _ in CASES])
def test_a_bad_command_line_gets_one_clear_line(
    argv: list[str], status: int, message: str, tmp_path: Path, emulator: EmulatorThread, control: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("QUECMQTT_DEBUG", "QUECMQTT_PORT")}
    env["EMPTY_VAR"] = ""
    words = [
        word.replace("{emu}", emulator.path).replace("{tmp}", str(tmp_path)).replace("{control}", control)
        for word in argv
    ]
    # under a real pty, as a user types it (a prompt would show: none of these may prompt)
    if not any("\udc80" <= ch <= "\udcff" for word in words for ch in word):
        # under a real pty, as a user types it (a prompt would show: none of these may prompt)
        child = pexpect.spawn(
            sys.executable, ["-m", "quecmqtt", *words], cwd=str(tmp_path), env=env, encoding="utf-8",
            codec_errors="replace", timeout=30, echo=False, dimensions=(24, 200),
        )  # fmt: skip
        if "-" in words:  # standard input: what a user gives by pressing Ctrl-D at once
            child.expect_exact("end it with Ctrl-D")
            child.sendeof()
        err = child.read().replace("\r\n", "\n")
        child.close()
        exitstatus = child.exitstatus
    else:  # an argument that is not text (a surrogate escape): the OS's bytes, which pexpect cannot pass
        done = subprocess.run(
            [os.fsencode(sys.executable), b"-m", b"quecmqtt", *map(os.fsencode, words)],
            cwd=tmp_path, env=env, capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        err, exitstatus = done.stderr.decode(errors="replace"), done.returncode
    lines = [line for line in err.splitlines() if line.strip()]
    assert exitstatus == status, (exitstatus, err)
    assert message.replace("{tmp}", str(tmp_path)) in err, err
    assert "Traceback" not in err and "QUECMQTT_DEBUG" not in err, err
    # one line: the error; a command that got as far as connecting may have said so first
    assert len([line for line in lines if not line.startswith(("connecting to", "subscribed to"))]) == 1, err
    assert list(tmp_path.iterdir()) == []  # nothing left behind
    assert not any(client.connected for client in emulator.emulator.module.clients)
    assert "recorded 0 bytes" not in err
    if "{control}" in argv:  # the emulator behind the control socket still answers
        from quecmqtt.emulator.control import send_fault

        assert send_fault(control, "fragment", ["0"]) == {"ok": True}
