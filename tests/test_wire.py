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
