"""The contract reporter.timebound rests on: urllib3 2.x builds its connections from the pool
class's ConnectionCls, and calls their public connect() and request(). If a urllib3 release stops
doing so, the bounds would silently go; these tests fail at once then, without any timing."""

from __future__ import annotations

import http.server
import ssl
import threading

import pytest
import requests
from hostile import self_signed
from urllib3.util.timeout import Timeout

from reporter import timebound


class _KeepAlive(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept-alive connections, as GitLab's

    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.ports.append(self.client_address[1])
        body = b"x" * 100_000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    httpd.ports = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def session():
    with requests.Session() as session:
        session.mount("http://", timebound.BoundedAdapter())
        yield session


def _ports(bound: timebound.Bound) -> list[int]:
    return [sock.getsockname()[1] for sock in bound.watched()]


def test_a_bound_watches_exactly_the_socket_of_its_streamed_request(server, session):
    url = f"http://127.0.0.1:{server.server_port}/"
    with timebound.bounded(30) as bound:
        response = session.get(url, stream=True, timeout=30)
        assert _ports(bound) == server.ports  # a new connection: watched from connect()
        next(response.iter_content(1024))
        assert _ports(bound) == server.ports  # still watched while the body streams
        response.content  # noqa: B018 - read whole, the connection goes back to the pool
    assert bound.watched() == set()  # forgotten when the bound ends


def test_a_kept_alive_socket_belongs_to_the_bound_of_the_request_using_it(server, session):
    url = f"http://127.0.0.1:{server.server_port}/"
    with timebound.bounded(30) as first:
        session.get(url, timeout=30).close()
    with timebound.bounded(30) as second:
        session.get(url, stream=True, timeout=30).content  # noqa: B018
        assert server.ports[0] == server.ports[1]  # the same connection, kept alive
        assert _ports(second) == server.ports[:1]  # watched from request(): no new connect() ran
        assert first.watched() == set()


def test_a_socket_taken_up_by_an_unbounded_request_leaves_the_bound_before(server, session):
    url = f"http://127.0.0.1:{server.server_port}/"
    with timebound.bounded(30) as bound:
        session.get(url, timeout=30).close()
        seen: list[set] = []
        other = threading.Thread(target=lambda: (session.get(url, timeout=30).close(), seen.append(bound.watched())))
        other.start()
        other.join()
        assert server.ports[0] == server.ports[1] and seen == [set()]


def test_a_fired_bound_refuses_requests_and_says_out_of_time(server, session):
    url = f"http://127.0.0.1:{server.server_port}/"
    with pytest.raises(timebound.OutOfTime), timebound.bounded(30) as bound:
        bound.fire()
        session.get(url, timeout=30)
    assert server.ports == []


def test_the_budget_ends_a_bound_and_is_named(server, session):
    budget = timebound.Budget(0, "--gitlab-timeout")
    with pytest.raises(timebound.OutOfTime) as stop, timebound.bounded(30, budget):
        session.get(f"http://127.0.0.1:{server.server_port}/", timeout=30)
    assert stop.value.limit == "--gitlab-timeout" and server.ports == []


def test_stop_everything_refuses_new_calls_until_resumed(server, session):
    url = f"http://127.0.0.1:{server.server_port}/"
    timebound.stop_everything()
    try:
        with pytest.raises(timebound.OutOfTime), timebound.bounded(30):
            session.get(url, timeout=30)
        assert timebound.stopped().is_set()
    finally:
        timebound.resume()
    assert not timebound.stopped().is_set()
    with timebound.bounded(30):
        assert session.get(url, timeout=30).status_code == 200


def test_a_stop_landing_as_a_call_begins_still_refuses_it(server, session, monkeypatch):
    """A signal between bounded()'s check of the stop and the watchdog taking the new bound: the
    stop's abort_all() cannot see that bound, and the call went on to read its whole answer (seen as
    a signal test hanging, under load)."""
    url = f"http://127.0.0.1:{server.server_port}/"
    add = timebound._WATCHDOG.add

    def stop_first(bound):
        timebound.stop_everything()  # the signal's thread, just before this one adds its bound
        add(bound)

    monkeypatch.setattr(timebound._WATCHDOG, "add", stop_first)
    try:
        with pytest.raises(timebound.OutOfTime), timebound.bounded(30):
            session.get(url, timeout=30)
    finally:
        timebound.resume()
    assert server.ports == []  # refused before it was sent


@pytest.mark.parametrize("given, clamped", [
    (None, 2.0), (60, 2.0), (1, 1), ((5, 30), (2.0, 2.0)), ((1, None), (1, 2.0)),
])
def test_socket_timeouts_never_outlast_the_time_left(given, clamped):
    assert timebound._clamped(given, 2.0) == clamped
    urllib3_form = timebound._clamped(Timeout(connect=5, read=1), 2.0)
    assert (urllib3_form.connect_timeout, urllib3_form.read_timeout) == (2.0, 1)


# -- TLS: one context per CA file for the process -------------------------------------------


class _Fresh(_KeepAlive):
    protocol_version = "HTTP/1.0"  # a new connection (and TLS handshake) for every request


@pytest.fixture
def tls_server(tmp_path):
    cert, key = self_signed(tmp_path)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Fresh)
    httpd.ports = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd, cert
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def ca_loads(monkeypatch):
    """Every CA file or folder loaded into any TLS context from now on (a spy: the load still runs)."""
    monkeypatch.setattr(timebound, "_CONTEXTS", {})
    loads: list[tuple] = []
    original = ssl.SSLContext.load_verify_locations

    def spy(context, *args, **kwargs):
        loads.append(args + tuple(kwargs.values()))
        return original(context, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", spy)
    return loads


def _bounded_session() -> requests.Session:
    session = requests.Session()
    session.mount("https://", timebound.BoundedAdapter())
    return session


def test_the_ca_file_is_loaded_once_for_every_connection_of_every_session(tls_server, ca_loads):
    httpd, cert = tls_server
    url = f"https://127.0.0.1:{httpd.server_port}/"
    with _bounded_session() as gitlab_like, _bounded_session() as databand_like:
        for session in (gitlab_like, databand_like, gitlab_like, databand_like):
            with timebound.bounded(30):
                assert session.get(url, timeout=30, verify=str(cert)).status_code == 200
    assert len(set(httpd.ports)) == 4  # four connections, four handshakes
    assert [load for load in ca_loads if str(cert) in map(str, load)] == [(str(cert), None)]


def test_the_shared_context_verifies_as_strictly_as_requests_own(tls_server, tmp_path, ca_loads):
    httpd, cert = tls_server
    (tmp_path / "other").mkdir()
    other, _ = self_signed(tmp_path / "other")  # a CA of its own, for the same name
    with _bounded_session() as session:
        assert session.get(f"https://127.0.0.1:{httpd.server_port}/", timeout=30, verify=str(cert)).ok
        context = timebound.shared_context(str(cert), None)
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        with pytest.raises(requests.exceptions.SSLError, match="self-signed|certificate verify failed"):
            session.get(f"https://127.0.0.1:{httpd.server_port}/", timeout=30, verify=str(other))  # another CA
        with pytest.raises(requests.exceptions.SSLError, match="match|mismatch"):
            session.get(f"https://localhost:{httpd.server_port}/", timeout=30, verify=str(cert))  # not its name
        with pytest.raises(requests.exceptions.SSLError):
            session.get(f"https://127.0.0.1:{httpd.server_port}/", timeout=30)  # certifi does not know it
    assert len(httpd.ports) == 1
    assert timebound.shared_context(str(cert), None) is context


def test_a_missing_ca_file_is_still_said_by_requests(tls_server):
    httpd, _ = tls_server
    with _bounded_session() as session, pytest.raises(OSError, match="invalid path"):
        session.get(f"https://127.0.0.1:{httpd.server_port}/", timeout=30, verify="/nonexistent/ca.pem")


# -- the environment, read once per session -------------------------------------------------


@pytest.fixture
def proxy():
    """A loopback HTTP proxy that answers every request itself, counting them."""
    class Proxy(_KeepAlive):
        def do_GET(self):  # noqa: N802
            self.server.ports.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "7")
            self.end_headers()
            self.wfile.write(b"proxied")

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    httpd.ports = []
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_proxies_are_read_once_as_requests_reads_them(server, proxy, monkeypatch):
    url = f"http://127.0.0.1:{server.server_port}/"
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_port}")
    with requests.Session() as through:
        timebound.settle_environment(through, url)
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # later changes are not read per request
        assert through.get(url, timeout=30).content == b"proxied"
    assert proxy.ports == [url] and server.ports == []
    monkeypatch.setenv("NO_PROXY", "example.org,127.0.0.1")  # a dead proxy, loopback bypassing it
    with requests.Session() as around:
        timebound.settle_environment(around, url)
        assert around.get(url, timeout=30).status_code == 200 and not around.trust_env
    assert len(server.ports) == 1


def test_the_ca_environment_is_read_as_requests_reads_it(monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setenv("CURL_CA_BUNDLE", "/curl.pem")
    assert timebound.environ_verify(True) == "/curl.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/requests.pem")
    assert timebound.environ_verify(True) == "/requests.pem"
    assert timebound.environ_verify("/given.pem") == "/given.pem" and timebound.environ_verify(False) is False
