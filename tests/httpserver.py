"""A local HTTP(S) server for the emulator's QHTTP* commands, with a trustme certificate
that names the hosts the tests map to loopback."""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import trustme

NAMES = ("iot-auth.cn-shanghai.aliyuncs.com", "web.test", "api.example.com", "127.0.0.1")
REGISTER_REPLY = (
    b'{"code":200,"data":{"deviceName":"device001","deviceSecret":"3c35df4417faf854be8e780536d84c23",'
    b'"productKey":"i2uqzmkZsLG"},"message":"success"}'
)
BIG = (b"x" * 1000 + b"\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n") * 70  # 70 KB that look like the end marker


@dataclass
class Requests:
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    requests: Requests

    def log_message(self, *args: object) -> None:
        return  # quiet tests

    def _reply(self, status: int, body: bytes, chunked: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if chunked:
            for i in range(0, len(body), 7):
                piece = body[i : i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self.requests.seen.append(("GET", self.path, dict(self.headers), b""))
        if self.path == "/big":
            self._reply(200, BIG)
        elif self.path == "/chunked":
            self._reply(200, b'{"chunked":"yes, in pieces"}', chunked=True)
        elif self.path == "/bad-chunk":  # a chunk size that is not hex
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"zz\r\nabc\r\n0\r\n\r\n")
            self.close_connection = True
        elif self.path == "/cut":  # promises more than it sends, then closes
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"only this")
            self.close_connection = True
        else:
            self._reply(404, b'{"error":"not found"}')

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.requests.seen.append(("POST", self.path, dict(self.headers), body))
        if self.path == "/auth/register/device":
            self._reply(200, REGISTER_REPLY)
        else:
            self._reply(200, json.dumps({"echo": body.decode("latin-1")}).encode())


class HttpServers:
    """A plain and a TLS server on loopback (free ports), sharing one request log."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        self.wrong_ca = trustme.CA()
        self.requests = Requests()
        handler = type("Handler", (_Handler,), {"requests": self.requests})
        self.plain = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.tls = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*NAMES).configure_cert(context)
        self.tls.socket = context.wrap_socket(self.tls.socket, server_side=True)
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self.plain, self.tls)]
        for thread in self._threads:
            thread.start()

    def hosts(self) -> dict[str, str]:
        plain, tls = self.plain.server_address[1], self.tls.server_address[1]
        return {
            "web.test:80": f"127.0.0.1:{plain}",
            "web.test:443": f"127.0.0.1:{tls}",
            "iot-auth.cn-shanghai.aliyuncs.com:443": f"127.0.0.1:{tls}",
        }

    def close(self) -> None:
        for server in (self.plain, self.tls):
            server.shutdown()
            server.server_close()
