"""Naming what went wrong on the wire, from real failed connections on this machine."""

import socket

import pytest
import requests

from reporter import wire


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refused_connection_is_named():
    with pytest.raises(requests.ConnectionError) as caught:
        requests.get(f"http://127.0.0.1:{_free_port()}/", timeout=5)
    assert wire.cause(caught.value) == "connection refused"
    assert not wire.unresolved_host(caught.value)


def test_a_name_that_does_not_resolve_is_said_to_be_dns():
    # .invalid never resolves (RFC 2606); the resolver answers at once on a closed network.
    with pytest.raises(requests.ConnectionError) as caught:
        requests.get("http://databand.invalid/", timeout=5)
    assert wire.unresolved_host(caught.value)
    assert wire.cause(caught.value) == "the host name does not resolve (DNS)"
    assert "databand.invalid" not in wire.cause(caught.value)


def _answering(raw: bytes) -> str:
    """A server on this machine that answers any request with `raw` bytes, then closes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve():
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(raw)
        server.close()

    import threading

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}/"


@pytest.mark.parametrize("raw, said", [
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n[]",
     "the answer was cut off before its end (ChunkedEncodingError)"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n[1,",
     "the answer was cut off before its end (ChunkedEncodingError)"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n[]",
     "the answer's headers are malformed (InvalidHeader)"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd",
     "the answer's compressed body is damaged (ContentDecodingError)"),
    (b"HELLO\r\n\r\n", "the server closed the connection or answered in something that is not HTTP (BadStatusLine)"),
])
def test_an_answer_that_goes_wrong_is_said_in_words(raw, said):
    with pytest.raises(requests.RequestException) as caught:
        requests.get(_answering(raw), timeout=5).content  # noqa: B018  # the body is read here
    assert wire.cause(caught.value) == said
