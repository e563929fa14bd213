"""Wall-clock bounds on HTTP calls, whatever the server does: the one place the bounds are said.

requests has connect and read timeouts only: a read timeout bounds the wait for each chunk, so a
server sending a byte a second (or its headers a byte a second) keeps a request alive forever.
Here a call runs inside `bounded(seconds)`; the sockets it reads from are watched, and when the
time is up one watchdog thread shuts them, which ends any read at once. Each request's socket
timeouts are also clamped to the time left, so that a connection still being opened when the
time runs out does not outlive it.

The bounds (README "Failure modes" keeps a table of them):

- GitLab (reporter.gitlab): one read (a page, the pipeline, a test report) has 30 s of answering
  (`ReadBounds.read`, socket timeouts 30 s); the waits between its attempts (what GitLab asks for
  with 429 `Retry-After` or `RateLimit-Reset`, at most 60 s, else reporter.retry's backoff) are
  added to it (`Bound.extend`), never past the command's budget: a wait that would end past it is
  not started. A failed job's log: its tail so far is kept after 20 s, it is cut off at 22 s. Every
  read draws from one `Budget`: --gitlab-timeout (100 s) for a report, the same for each listing
  and each pipeline of a sweep or backfill. A read is bounded by min(its own bound, budget left).
- Databand (reporter.delivery): each attempt inside `bounded`, the attempts within the
  delivery's own deadline.

A name lookup (getaddrinfo) runs before there is a socket to shut, and no socket timeout reaches
it: a resolver that never answers would hold the call forever. So every new connection (its name
lookup, TCP connect and TLS handshake) is made in a thread of its own and waited for at most its
connect timeout (itself clamped to the time left): past that the call fails as a connect timeout,
the thread is left to end on its own, and a socket it still opens is closed.

How it hooks into urllib3, and only there: `BoundedAdapter` gives its pool manager pool classes
(`pool_classes_by_scheme`) whose `ConnectionCls` is ours. That connection's public `connect()`
and `request()` hand `self.sock` to the calling thread's bound, so a kept-alive socket is owned
by the bound of the request that uses it now. Both are documented customization points of
urllib3 2.x (pyproject pins urllib3>=2,<3); tests/test_timebound.py fails, without any timing,
when the hooks stop firing.

TLS goes through the same adapter: `build_connection_pool_key_attributes` (requests' documented
hook) hands urllib3 one verifying context per CA file for the whole process, loaded once, and
`cert_verify` keeps urllib3 from loading the CA into it again for each new connection.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError
from urllib3.util.ssl_ import create_urllib3_context
from urllib3.util.timeout import Timeout

from reporter.process import signals_to_main


class OutOfTime(requests.RequestException):
    """The call ran past its wall-clock bound. Not a ConnectionError or Timeout on purpose: clients
    that retry those (python-gitlab, urllib3) must not start again. `limit` names the budget that
    ran out when it was that, not the call's own bound (e.g. "--gitlab-timeout")."""

    def __init__(self, seconds: float, limit: str | None = None):
        super().__init__(f"no complete answer within {seconds:g} s")
        self.seconds = seconds
        self.limit = limit


class Budget:
    """Seconds that several bounded calls draw from together (a command's GitLab reading), named
    for messages. Shared across threads: it is only a deadline."""

    def __init__(self, seconds: float, name: str):
        self.seconds = seconds
        self.name = name
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


class Bound:
    """One call's deadline and the sockets it is reading from."""

    def __init__(self, seconds: float, budget: Budget | None = None):
        self.seconds = seconds
        self.budget = budget
        self.deadline = time.monotonic() + seconds
        self.fired = False
        self.done = False
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def _end(self) -> float:
        return self.deadline if self.budget is None else min(self.deadline, self.budget.deadline)

    def left(self) -> float:
        return self._end() - time.monotonic()

    def budget_left(self) -> float:
        """What is left of the budget (of the bound, without one): the most an extension can give."""
        return (self.budget.deadline if self.budget else self.deadline) - time.monotonic()

    def limit(self) -> str | None:
        """The budget's name when it, not the call's own bound, ends the call."""
        return self.budget.name if self.budget and self.budget.deadline < self.deadline else None

    def extend(self, seconds: float) -> None:
        """Give the call `seconds` more (a wait the server asked for), never past its budget."""
        with self._lock:
            self.deadline += seconds
        _WATCHDOG.add(self)

    def watched(self) -> set[socket.socket]:
        """The sockets this bound would shut now (for the contract test)."""
        with self._lock:
            return set(self._sockets)

    def _watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
            fired = self.fired
        if fired:
            _shut(sock)

    def _release(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def fire(self) -> None:
        """Time is up (or the process is stopping): end every read of this call now."""
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # socket's own shutdown, also for an SSLSocket: ends a read in progress in another thread.
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One thread for every bound of the process: a heap of deadlines."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Bound]] = []
        self._active: set[Bound] = set()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._count = 0

    def add(self, bound: Bound) -> None:
        with self._lock:
            self._active.add(bound)
            self._count += 1
            heapq.heappush(self._heap, (bound._end(), self._count, bound))
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
        signals_to_main()
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
                # Done, or extended since (extend pushed its new deadline): nothing to do now.
                if bound.done or bound.left() > 0:
                    continue
            bound.fire()


_WATCHDOG = _Watchdog()
_CURRENT = threading.local()
# id(socket) -> the bound of the request using it now, so that a kept-alive socket taken up by
# another request (maybe in another thread) leaves the bound of the one before.
_OWNERS: dict[int, Bound] = {}
_OWNERS_LOCK = threading.Lock()


def current() -> Bound | None:
    """The bound of this thread's call in progress, if any."""
    return getattr(_CURRENT, "bound", None)


@contextmanager
def bounded(seconds: float, budget: Budget | None = None) -> Iterator[Bound]:
    """Run the HTTP calls made in this block (in this thread, through a BoundedAdapter) for at most
    `seconds`, and never past `budget`; raises OutOfTime when the bound cut them."""
    bound = Bound(seconds, budget)
    if bound.left() <= 0:
        bound.fired = True  # every request of the call is refused at once
    previous = current()
    _CURRENT.bound = bound
    _WATCHDOG.add(bound)
    # Asked after add(), not before: a stop between the two found this bound not yet in the
    # watchdog's set, so abort_all() could not fire it, and the call ran its whole read (a minute).
    if _STOPPED.is_set():
        bound.fire()  # every request of the call is refused at once
    try:
        yield bound
    except Exception:
        if bound.fired:
            raise OutOfTime(_shown_seconds(bound), bound.limit()) from None
        raise
    finally:
        _WATCHDOG.remove(bound)
        _CURRENT.bound = previous
        _forget(bound)
    if bound.fired:  # the socket was shut and the body came out short: not an answer
        raise OutOfTime(_shown_seconds(bound), bound.limit())


def _shown_seconds(bound: Bound) -> float:
    return bound.budget.seconds if bound.limit() and bound.budget else bound.seconds


_STOPPED = threading.Event()


def stop_everything() -> None:
    """The process is stopping (a signal): cut every bounded call in progress, and refuse new ones,
    so that worker threads end in a moment instead of finishing their reads and retries. A library
    caller that goes on afterwards calls `resume()`."""
    _STOPPED.set()
    _WATCHDOG.abort_all()


def resume() -> None:
    """Bounded calls are allowed again after stop_everything (a library caller that caught the stop)."""
    _STOPPED.clear()


def stopped() -> threading.Event:
    """Set while the process is stopping: waits (a retry's backoff) use its .wait(seconds)."""
    return _STOPPED


def _watch(sock: socket.socket | None) -> None:
    """The socket serves the current request: it belongs to this thread's bound (or to none)."""
    if sock is None:
        return
    bound = current()
    with _OWNERS_LOCK:
        before = _OWNERS.pop(id(sock), None)
        if bound is not None:
            _OWNERS[id(sock)] = bound
    if before is not None and before is not bound:
        before._release(sock)
    if bound is not None:
        bound._watch(sock)


def _forget(bound: Bound) -> None:
    """The call is over: its sockets go (a kept-alive one is taken up by the next request's bound)."""
    with bound._lock:
        sockets, bound._sockets = bound._sockets, set()
    with _OWNERS_LOCK:
        for sock in sockets:
            if _OWNERS.get(id(sock)) is bound:
                del _OWNERS[id(sock)]


def _connect_within(connection: HTTPConnection, connect) -> None:
    """Run `connect` (lookup, TCP, TLS) for at most the connection's timeout; see the module's docstring."""
    timeout = connection.timeout
    seconds = float(timeout) if isinstance(timeout, (int, float)) else None
    bound = current()
    if bound is not None:
        seconds = max(min(seconds if seconds is not None else bound.left(), bound.left()), 0.0)
    if seconds is None:  # nothing bounds this call at all: as urllib3 does it
        connect()
        return
    state: dict[str, object] = {"finished": False, "abandoned": False, "error": None}
    lock = threading.Lock()
    finished = threading.Event()

    def run() -> None:
        signals_to_main()
        try:
            connect()
        except BaseException as error:  # noqa: BLE001  # handed to the waiting thread
            state["error"] = error
        with lock:
            state["finished"] = True
            if state["abandoned"]:  # nobody waits for this connection any more
                connection.close()
        finished.set()

    threading.Thread(target=run, name="connect", daemon=True).start()
    deadline = time.monotonic() + seconds
    try:
        while not finished.wait(min(0.1, max(deadline - time.monotonic(), 0.0))):
            if time.monotonic() >= deadline or _STOPPED.is_set():
                break
    finally:
        with lock:
            if not state["finished"]:
                state["abandoned"] = True
    if state["abandoned"]:
        raise ConnectTimeoutError(connection, f"Connection to {connection.host} timed out: no name lookup, "
                                              f"connection and handshake within {seconds:g} s")
    error = state["error"]
    if isinstance(error, BaseException):
        raise error


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        _connect_within(self, super().connect)
        _watch(self.sock)

    def request(self, *args, **kwargs) -> None:
        _watch(self.sock)  # a kept-alive connection, already connected; None for a new one
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        _connect_within(self, super().connect)
        _watch(self.sock)

    def request(self, *args, **kwargs) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


# One verifying TLS context per CA file or folder for the whole process, shared by every session
# (GitLab's and Databand's): left to urllib3, each new connection builds a context and loads the CA
# file into it again (a system-sized bundle is about 18 ms of CPU a connection).
_CONTEXTS: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
_SHARED: set[ssl.SSLContext] = set()
_CONTEXTS_LOCK = threading.Lock()


def shared_context(ca_certs: str | None, ca_cert_dir: str | None) -> ssl.SSLContext:
    """The process's context trusting exactly that CA file (or folder), made and loaded once. As
    strict as urllib3's own for a request with `verify`: CERT_REQUIRED and the host name checked."""
    key = (ca_certs, ca_cert_dir)
    with _CONTEXTS_LOCK:
        context = _CONTEXTS.get(key)
        if context is None:
            context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
            context.load_verify_locations(cafile=ca_certs, capath=ca_cert_dir)
            _CONTEXTS[key] = context
            _SHARED.add(context)
        return context


def environ_verify(verify: bool | str) -> bool | str:
    """`verify` as requests would settle it from the environment (REQUESTS_CA_BUNDLE, then
    CURL_CA_BUNDLE, when nothing more precise is given), for sessions that do not read it on every
    request (trust_env off: see `settle_environment`)."""
    if verify is True:
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return verify


def settle_environment(session: requests.Session, url: str) -> None:
    """Read the proxy environment once, for the one origin the session talks to, instead of on
    every request: requests' merge walks the whole environment each time (about 0.5 ms with a CI
    job's ~290 variables). NO_PROXY is applied as requests applies it (get_environ_proxies). The
    CA environment goes through `environ_verify`; .netrc is not read (the reporter sends its own
    credentials, never a netrc's)."""
    session.trust_env = False
    session.proxies = dict(requests.utils.get_environ_proxies(url))


class BoundedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections obey `bounded`, verifying TLS with the process's shared
    context (`shared_context`) for the CA that requests would use."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params.get("scheme") == "https" and verify is not False and "ssl_context" not in pool_kwargs:
            ca_certs, ca_cert_dir = pool_kwargs.pop("ca_certs", None), pool_kwargs.pop("ca_cert_dir", None)
            if ca_certs is None and ca_cert_dir is None:  # verify=True: requests' own bundle (certifi)
                ca_certs = requests.utils.DEFAULT_CA_BUNDLE_PATH
            with contextlib.suppress(OSError):  # a CA file gone: cert_verify says so, as before
                pool_kwargs["ssl_context"] = shared_context(ca_certs, ca_cert_dir)
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert) -> None:
        super().cert_verify(conn, url, verify, cert)
        if verify and getattr(conn, "conn_kw", {}).get("ssl_context") in _SHARED:
            # The shared context holds the CA already; left set, urllib3 loads it into the context
            # again on every new connection.
            conn.ca_certs = conn.ca_cert_dir = None

    def send(self, request, stream=False, timeout=None, verify=True, cert=None,
             proxies=None) -> requests.Response:
        bound = current()
        if bound is not None:
            left = bound.left()
            if bound.fired or left <= 0:
                bound.fire()
                raise OutOfTime(_shown_seconds(bound), bound.limit())
            timeout = _clamped(timeout, left)
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)


def _clamped(timeout: object, left: float) -> object:
    """requests' timeout (None, seconds, (connect, read) or urllib3's Timeout), none longer than `left`."""
    def least(value: object) -> float:
        return min(value, left) if isinstance(value, (int, float)) else left

    if isinstance(timeout, Timeout):
        return Timeout(connect=least(timeout.connect_timeout), read=least(timeout.read_timeout))
    if isinstance(timeout, tuple):
        connect, read = timeout
        return least(connect), least(read)
    return least(timeout)
