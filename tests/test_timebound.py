"""The contract reporter.timebound rests on: urllib3 2.x builds its connections from the pool
class's ConnectionCls, and calls their public connect() and request(). If a urllib3 release stops
doing so, the bounds would silently go; these tests fail at once then, without any timing."""

from __future__ import annotations

import http.server
import threading

import pytest
import requests
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


@pytest.mark.parametrize("given, clamped", [
    (None, 2.0), (60, 2.0), (1, 1), ((5, 30), (2.0, 2.0)), ((1, None), (1, 2.0)),
])
def test_socket_timeouts_never_outlast_the_time_left(given, clamped):
    assert timebound._clamped(given, 2.0) == clamped
    urllib3_form = timebound._clamped(Timeout(connect=5, read=1), 2.0)
    assert (urllib3_form.connect_timeout, urllib3_form.read_timeout) == (2.0, 1)
