"""Wall-clock bounds on HTTP calls, whatever the server does.

requests has connect and read timeouts only: a read timeout bounds the wait for each chunk, so a
server sending a byte a second (or its headers a byte a second) keeps a request alive forever.
Here a call runs inside `bounded(seconds)`; the sockets of the connections it uses are watched,
and when the time is up one watchdog thread shuts them, which ends any read at once.
Sockets are also given timeouts no longer than the time left, so that a connection being opened
when the time runs out does not outlive it.
"""

from __future__ import annotations

import heapq
import re
import socket
import threading
import time
from contextlib import contextmanager

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.timeout import Timeout

# Once a bound is up, its sockets are shut again this often while the call is still unwinding:
# a connection that was being opened at the moment of the deadline is caught on the next round.
_RESHUT_SECONDS = 0.2


class OutOfTime(requests.RequestException):
    """The call ran past its wall-clock bound. Not a ConnectionError or Timeout on purpose: clients
    that retry those (python-gitlab, urllib3) must not start again."""

    def __init__(self, seconds: float):
        super().__init__(f"no complete answer within {seconds:g} s")
        self.seconds = seconds


def retry_after(value: str | None, longest: float) -> float | None:
    """A Retry-After header in seconds, at most `longest`; an HTTP date (rare from either side) waits
    the longest. None when there is no header."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = longest
    return min(max(seconds, 0.0), longest)


def tls_problem(error: Exception) -> str:
    """The certificate problem OpenSSL named (self-signed, expired, hostname mismatch ...)."""
    text = str(error)
    match = re.search(r"certificate verify failed: ([^(\]'\"]+)", text) or \
        re.search(r"(Hostname mismatch[^'\"]*|[a-z ]*certificate[a-z ]*)", text)
    return match[1].strip().rstrip(",.") if match else type(error).__name__


class Bound:
    """One call's deadline and the sockets it is reading from."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.fired = False
        self.done = False
        self._sockets: set = set()
        self._lock = threading.Lock()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def watch(self, sock) -> None:
        with self._lock:
            self._sockets.add(sock)
            fired = self.fired
        if fired:
            _shut(sock)

    def release(self, sock) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def fire(self) -> None:
        """Time is up (or the process is stopping): end every read of this call now."""
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock) -> None:
    try:
        # socket's own shutdown, also for an SSLSocket: ends a read in progress in another thread.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _Watchdog:
    """One thread for every bound of the process: a heap of deadlines."""

    def __init__(self):
        self._heap: list[tuple[float, int, Bound]] = []
        self._active: set[Bound] = set()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._count = 0

    def add(self, bound: Bound) -> None:
        with self._lock:
            self._active.add(bound)
            self._count += 1
            heapq.heappush(self._heap, (bound.deadline, self._count, bound))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="http-watchdog", daemon=True)
                self._thread.start()
            if self._heap[0][2] is bound:  # only an earlier deadline changes how long to sleep
                self._lock.notify()

    def remove(self, bound: Bound) -> None:
        with self._lock:
            bound.done = True
            self._active.discard(bound)

    def abort_all(self) -> None:
        """Fire every bound in progress: the process is stopping and waits for no answer."""
        with self._lock:
            bounds = list(self._active)
        for bound in bounds:
            bound.fire()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._heap:
                    self._lock.wait()
                when, _, bound = self._heap[0]
                wait = when - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
                heapq.heappop(self._heap)
                if bound.done:
                    continue
                self._count += 1
                heapq.heappush(self._heap, (time.monotonic() + _RESHUT_SECONDS, self._count, bound))
            bound.fire()


_WATCHDOG = _Watchdog()
_CURRENT = threading.local()
_OWNERS: dict[int, Bound] = {}  # id(socket) -> the bound of the call reading from it
_OWNERS_LOCK = threading.Lock()


def current() -> Bound | None:
    return getattr(_CURRENT, "bound", None)


@contextmanager
def bounded(seconds: float):
    """Run the HTTP calls made in this block (in this thread, through a BoundedAdapter) for at most
    `seconds`; raises OutOfTime when the bound cut them."""
    bound = Bound(seconds)
    if _STOPPED.is_set():
        bound.fired = True  # every request of the call is refused at once
    previous = current()
    _CURRENT.bound = bound
    _WATCHDOG.add(bound)
    try:
        yield bound
    except Exception:
        if bound.fired:
            raise OutOfTime(seconds) from None
        raise
    finally:
        _WATCHDOG.remove(bound)
        _CURRENT.bound = previous
        _forget(bound)
    if bound.fired:  # the socket was shut and the body came out short: not an answer
        raise OutOfTime(seconds)


_STOPPED = threading.Event()


def stop_everything() -> None:
    """The process is stopping (a signal): cut every bounded call in progress, and refuse new ones,
    so that worker threads end in a moment instead of finishing their reads and retries."""
    _STOPPED.set()
    _WATCHDOG.abort_all()


def stopped() -> threading.Event:
    return _STOPPED


def _watch(sock) -> None:
    """The socket serves the current thread's bounded call (if any) until it goes back to the pool.
    Watched by socket, not by connection: http.client drops a connection's socket when the answer
    says "Connection: close", and only the answer still reads from it."""
    bound = current()
    if sock is None or bound is None:
        return
    with _OWNERS_LOCK:
        _OWNERS[id(sock)] = bound
    bound.watch(sock)


def _forget(bound: Bound) -> None:
    """The call is over: its sockets (those of answers that closed their connection too) go."""
    with bound._lock:
        sockets, bound._sockets = bound._sockets, set()
    with _OWNERS_LOCK:
        for sock in sockets:
            if _OWNERS.get(id(sock)) is bound:
                del _OWNERS[id(sock)]


def _unwatch(sock) -> None:
    if sock is None:
        return
    with _OWNERS_LOCK:
        bound = _OWNERS.pop(id(sock), None)
    if bound is not None:
        bound.release(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self):
        super().connect()
        _watch(self.sock)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self):
        super().connect()
        _watch(self.sock)


class _Watched:
    """Connection pool behaviour: the socket of a connection used inside a bounded call is watched by
    its bound until the connection goes back to the pool; each request's socket timeouts stop at
    the bound."""

    def _get_conn(self, timeout=None):
        connection = super()._get_conn(timeout)
        _watch(getattr(connection, "sock", None))  # a kept-alive connection, already connected
        return connection

    def _put_conn(self, connection):
        if connection is not None:
            _unwatch(getattr(connection, "sock", None))
        return super()._put_conn(connection)

    def _make_request(self, conn, method, url, *args, **kwargs):
        bound = current()
        if bound is not None:
            left = bound.left()
            if left <= 0 or bound.fired:
                bound.fire()  # so that `bounded` says OutOfTime, however urllib3 wraps this
                raise OutOfTime(bound.seconds)
            timeout = kwargs.get("timeout")
            if isinstance(timeout, Timeout):
                kwargs["timeout"] = Timeout(connect=_least(timeout.connect_timeout, left),
                                            read=_least(timeout.read_timeout, left))
        return super()._make_request(conn, method, url, *args, **kwargs)


def _least(value, left: float) -> float:
    return left if not isinstance(value, (int, float)) else min(value, left)


class _WatchedHTTPPool(_Watched, HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(_Watched, HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class BoundedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections obey `bounded`."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def send(self, request, *args, **kwargs):
        bound = current()
        if bound is not None and (bound.fired or bound.left() <= 0):
            raise OutOfTime(bound.seconds)
        return super().send(request, *args, **kwargs)
