"""A real Mosquitto on loopback for the tests: a plain listener and a TLS listener whose
certificate (from trustme) names the hosts the tests map to loopback.

Started once per session by PID, stopped with SIGTERM. Without Mosquitto the broker tests
are skipped on a developer machine, and fail loudly under CI=true (.ci/run installs it)."""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.children import default_signals

AUTH_HOST, AUTH_USER, AUTH_PASSWORD = "auth.test", "device-user", "right-password"
TLS_NAMES = ("broker.test", "iot-06z00hxss3rggno.mqtt.iothub.aliyuncs.com", "localhost", "127.0.0.1")


@dataclass
class Broker:
    port: int
    tls_port: int
    auth_port: int  # a listener that wants user AUTH_USER with password AUTH_PASSWORD
    ca_pem: bytes  # the CA that signed the broker's certificate
    wrong_ca_pem: bytes  # a CA that did not
    log: Path

    def hosts(self) -> dict[str, str]:
        """A hosts table for the emulator: every name to the plain port, and port 8883 of
        every name to the TLS port."""
        table: dict[str, str] = {}
        for name in TLS_NAMES[:2]:
            table[name] = f"127.0.0.1:{self.port}"
            table[f"{name}:8883"] = f"127.0.0.1:{self.tls_port}"
        table[AUTH_HOST] = f"127.0.0.1:{self.auth_port}"
        return table


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mosquitto(directory: Path) -> tuple[subprocess.Popen[bytes], Broker]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(exe):
        if os.environ.get("CI"):
            pytest.fail("Mosquitto is not installed; .ci/run installs it with apt-get", pytrace=False)
        pytest.skip("mosquitto not installed (apt-get install mosquitto)")
    import trustme

    directory.chmod(0o755)  # the broker drops to user mosquitto before reading its files
    ca, wrong = trustme.CA(), trustme.CA()
    server = ca.issue_cert(*TLS_NAMES)
    (directory / "server.pem").write_bytes(server.cert_chain_pems[0].bytes())
    (directory / "server.key").write_bytes(server.private_key_pem.bytes())
    for name in ("server.pem", "server.key"):
        (directory / name).chmod(0o644)
    port, tls_port, auth_port = _free_port(), _free_port(), _free_port()
    passwords = directory / "passwords"
    passwords.write_text(f"{AUTH_USER}:{AUTH_PASSWORD}\n")
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([passwd, "-U", str(passwords)], check=True, capture_output=True)  # hash in place
    passwords.chmod(0o644)
    acl = directory / "acl"
    acl.write_text(f"user {AUTH_USER}\ntopic readwrite dev/#\n")
    acl.chmod(0o644)
    conf = directory / "mosquitto.conf"
    conf.write_text(
        "per_listener_settings true\npersistence false\nlog_dest stderr\n"
        "log_type error\nlog_type warning\nlog_type notice\n"
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"listener {tls_port} 127.0.0.1\nallow_anonymous true\n"
        f"certfile {directory / 'server.pem'}\nkeyfile {directory / 'server.key'}\n"
        f"listener {auth_port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\nacl_file {acl}\n"
    )
    conf.chmod(0o644)
    log = directory / "mosquitto.log"
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stderr=log.open("wb"), stdout=subprocess.DEVNULL, preexec_fn=default_signals
    )
    deadline = time.monotonic() + 10
    for target in (port, tls_port, auth_port):
        while True:
            try:
                socket.create_connection(("127.0.0.1", target), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"mosquitto did not start: {log.read_text(errors='replace')}", pytrace=False)
                time.sleep(0.02)
    return proc, Broker(port, tls_port, auth_port, ca.cert_pem.bytes(), wrong.cert_pem.bytes(), log)


def stop_mosquitto(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Cloud:
    """A separate MQTT client on the broker: the far side of the module's link."""

    def __init__(self, broker: Broker) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cloud-side")
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self._subscribed.clear()
        self.client.subscribe(topic, qos)
        assert self._subscribed.wait(5)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class TwinThread:
    """The cloud twin on its own event loop in a thread, in front of `broker`: for tests whose
    code runs its own `asyncio.run` (a docs example, a command line)."""

    def __init__(
        self,
        broker: Broker,
        *,
        respond: bool = True,
        products: Sequence[tuple[str, str]] = (),
        devices: Sequence[tuple[str, str, str | None]] = (),
    ) -> None:
        import asyncio

        from quecmqtt.cloud import CloudTwin

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="twin", daemon=True)
        self.thread.start()
        self.twin = CloudTwin(broker=("127.0.0.1", broker.port), respond=respond)
        for product_key, product_secret in products:
            self.twin.registry.add_product(product_key, product_secret)
        for product_key, device_name, device_secret in devices:
            self.twin.registry.add_device(product_key, device_name, device_secret)
        asyncio.run_coroutine_threadsafe(self.twin.start(), self.loop).result(30)

    def close(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.twin.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
