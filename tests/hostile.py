"""Servers that behave like real ones on a bad day, all on 127.0.0.1.

* ``HostileGitLab``: the GitLab stand-in, plus rules answering chosen paths in hostile ways
  (redirects, HTML, wrong JSON types, a body trickled a byte a second) and hooks run after a
  request is answered (to insert a job while the pages are being read).
* ``Recorder``: any other host a redirect points to; it records every request and its headers
  (to prove a token never reached it) and answers 200 to everything, like a login page.
* ``TrickleServer``: a raw socket server that reads a request, then sends its status line and
  headers a byte a second (for Databand: a 2xx with complete headers would be an acknowledgement).
* ``self_signed``: a self-signed certificate for 127.0.0.1 made with the openssl CLI, and
  ``serve_tls`` to put a stand-in behind it.
"""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from werkzeug.wrappers import Request, Response

from standins import GitLabStandIn, _StandInServer


def trickled(first: bytes, rest: bytes, stop: threading.Event, every: float = 1.0, content_type="application/json"):
    """An answer whose headers and first bytes come at once, then one byte every `every` seconds."""

    def body():
        yield first
        for byte in rest:
            if stop.wait(every):
                return
            yield bytes([byte])

    return Response(body(), status=200, content_type=content_type, direct_passthrough=True,
                    headers={"Content-Length": str(len(first) + len(rest))})


@dataclass
class Rule:
    pattern: re.Pattern
    answer: Callable[[Request], Response]
    times: int  # -1: always


class HostileGitLab(GitLabStandIn):
    """GitLabStandIn with rules and after-hooks per path (re.search on the raw path, query included
    where `with_query`)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rules: list[Rule] = []
        self.after: list[tuple[re.Pattern, Callable[[Request], None]]] = []

    def on(self, path_regex: str, answer: Callable[[Request], Response], times: int = -1) -> None:
        with self._lock:
            self.rules.append(Rule(re.compile(path_regex), answer, times))

    def then(self, path_regex: str, hook: Callable[[Request], None]) -> None:
        with self._lock:
            self.after.append((re.compile(path_regex), hook))

    def _handle(self, request: Request) -> Response:
        target = request.full_path.rstrip("?")
        rule = None
        with self._lock:
            for candidate in self.rules:
                if candidate.times != 0 and candidate.pattern.search(target):
                    candidate.times -= candidate.times > 0
                    rule = candidate
                    break
        if rule is not None:
            with self._lock:
                self.requests.append(_record(request))
            response = rule.answer(request)
        else:
            response = super()._handle(request)
        for pattern, hook in list(self.after):
            if pattern.search(target):
                hook(request)
        return response

    def stopping(self) -> threading.Event:
        return self._stopping


def _record(request: Request):
    from standins import Recorded

    return Recorded(method=request.method, path=request.path, query=dict(request.args), auth="hostile")


@dataclass
class Seen:
    method: str
    path: str
    headers: dict


class Recorder(_StandInServer):
    """Another host: records every request with its headers; answers 200 with `body`."""

    def __init__(self, body: bytes = b"<html><body>Sign in</body></html>", content_type="text/html"):
        super().__init__()
        self.body, self.content_type = body, content_type
        self.seen: list[Seen] = []

    @property
    def url(self) -> str:
        return self.server_url

    def _handle(self, request: Request) -> Response:
        request.get_data()
        with self._lock:
            self.seen.append(Seen(request.method, request.full_path, dict(request.headers)))
        return Response(self.body, status=200, content_type=self.content_type)


class TrickleServer:
    """Reads each request whole, then sends `head` (a status line and headers) a byte a second,
    until the client hangs up. Counts requests and the bytes each one carried."""

    def __init__(self, head: bytes = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: "
                 + b"z" * 600, every: float = 1.0):
        self.head, self.every = head, every
        self.requests = 0
        self.bodies: list[int] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/api/v1/tracking/open-lineage/u/events/bulk"

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._listener.close()

    def _accept(self):
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket):
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head)[1]) if b"ength" in head else 0
            while len(body) < length:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                body += chunk
            with self._lock:
                self.requests += 1
                self.bodies.append(len(body))
            for byte in self.head:
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return
                if self._stop.wait(self.every):
                    return


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for IP 127.0.0.1 (and its key), made with the openssl CLI."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def serve_tls(standin: _StandInServer, cert: Path, key: Path) -> str:
    """Put a started stand-in behind TLS; returns its https://127.0.0.1:PORT."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    server = standin._server
    # The handshake in each connection's own thread, as a real front end makes them side by side:
    # done in accept(), one connection's handshake would hold up every other's.
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    said = server.handle_error

    def handle_error(request, client_address):  # a client refusing the certificate is no server error
        if not isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionResetError)):
            said(request, client_address)

    server.handle_error = handle_error
    return f"https://127.0.0.1:{server.server_port}"


@dataclass
class Timed:
    """A finished command: its exit code, output, and the seconds it took."""

    code: int
    stdout: str
    stderr: str
    seconds: float
    extra: dict = field(default_factory=dict)


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return False


# -- answers no GitLab sends, for the reader's fault tests (opt-in: served only by a rule) ----------


def compressed_zeros(size: int, encoding: str = "gzip") -> bytes:
    """About `size` bytes of gzip (or zlib "deflate") that expand to about a thousand times as many
    zeros, made in milliseconds: the same fully flushed block repeated (a flush resets the window,
    so each block compresses alike). No end: a reader must stop long before it."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
    zeros = bytes(2**20)
    head = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    return head + block * max(1, (size - len(head)) // len(block))


def deep_json(depth: int) -> bytes:
    """A JSON list nested `depth` deep: valid JSON, deeper than Python's parser recurses."""
    return b"[" * depth + b"]" * depth


def answer(body: bytes, status: int = 200, content_type: str = "application/json",
           headers: dict | None = None) -> Callable[[Request], Response]:
    """A rule's answer: these bytes, as they are (no re-encoding), with these headers."""
    return lambda request: Response(body, status=status, content_type=content_type, headers=headers or {},
                                    direct_passthrough=True)
