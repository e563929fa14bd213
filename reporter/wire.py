"""What went wrong on the wire, in a few words a user can act on: the certificate problem OpenSSL
named, or why a connection failed (a name that does not resolve, a refused or reset connection,
no answer in time). Shared by GitLab's reader and the delivery, so both say it alike.

Only the kind of failure is named, never the exception's text: it holds URLs, and a URL may hold
credentials.
"""

from __future__ import annotations

import re
import socket


def tls_problem(error: BaseException) -> str:
    """The certificate problem OpenSSL named (self-signed, expired, hostname mismatch ...)."""
    text = str(error)
    match = re.search(r"certificate verify failed: ([^(\]'\"]+)", text) or \
        re.search(r"(Hostname mismatch[^'\"]*|[a-z ]*certificate[a-z ]*)", text)
    return match[1].strip().rstrip(",.") if match else type(error).__name__


def _chain(error: BaseException):
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        # urllib3 keeps the cause in .reason (MaxRetryError, NewConnectionError); requests in args.
        nested = getattr(current, "reason", None)
        if isinstance(nested, BaseException):
            yield from _chain(nested)
        for arg in getattr(current, "args", ()):
            if isinstance(arg, BaseException):
                yield from _chain(arg)
        current = current.__cause__ or current.__context__


def unresolved_host(error: BaseException) -> bool:
    """The host's name did not resolve (DNS): retrying in seconds will not change that."""
    for link in _chain(error):
        if isinstance(link, socket.gaierror):
            return True
        text = str(link)
        if "Name or service not known" in text or "nodename nor servname" in text or \
                "Temporary failure in name resolution" in text or "getaddrinfo failed" in text:
            return True
    return False


def cause(error: BaseException) -> str:
    """Why a request got no answer, in a few words."""
    if unresolved_host(error):
        return "the host name does not resolve (DNS)"
    for link in _chain(error):
        if isinstance(link, ConnectionRefusedError):
            return "connection refused"
        if isinstance(link, ConnectionResetError):
            return "connection reset"
    name = type(error).__name__
    if "timed out" in str(error).lower() or "timeout" in name.lower():
        return f"{name}: no answer in time"
    return name
