"""What went wrong on the wire, in a few words a user can act on: the certificate problem OpenSSL
named, or why a connection failed (a name that does not resolve, a refused or reset connection,
no answer in time). Shared by GitLab's reader and the delivery, so both say it alike.

Only the kind of failure is named, never the exception's text: it holds URLs, and a URL may hold
credentials.
"""

from __future__ import annotations

import json
import re
import socket

# What OpenSSL says when an https:// URL points at a port that answers plain http: no certificate
# was ever seen, so a CA file cannot help; the scheme is wrong.
NOT_TLS = "the server there answers plain http, not TLS"
_NOT_TLS = re.compile(r"WRONG_VERSION_NUMBER|wrong version number|record layer failure|"
                      r"unknown protocol|packet length too long", re.I)


def tls_problem(error: BaseException) -> str:
    """The certificate problem OpenSSL named (self-signed, expired, hostname mismatch ...), or
    NOT_TLS when the other side does not speak TLS at all."""
    text = str(error)
    if _NOT_TLS.search(text):
        return NOT_TLS
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


def through_proxy(error: BaseException) -> bool:
    """The connection failed at a proxy (HTTP(S)_PROXY), not at the host the URL names."""
    return any(type(link).__name__ == "ProxyError" for link in _chain(error))


def proxy_variable(url: str) -> str:
    """The variables that put a proxy in front of this URL, as requests reads them."""
    scheme = "https" if url.lower().startswith("https:") else "http"
    return f"{scheme.upper()}_PROXY (or {scheme}_proxy, ALL_PROXY)"


def unresolved_host(error: BaseException) -> bool:
    """The host's name did not resolve (DNS): retrying in seconds will not change that. A proxy's
    name that does not resolve is the proxy's failure, not the host's."""
    if through_proxy(error):
        return False
    for link in _chain(error):
        if isinstance(link, socket.gaierror):
            return True
        text = str(link)
        if "Name or service not known" in text or "nodename nor servname" in text or \
                "Temporary failure in name resolution" in text or "getaddrinfo failed" in text:
            return True
    return False


# requests' names for an answer that began and then went wrong: said in words, the name kept for a search.
_WORDS = {
    "TooManyRedirects": "a redirect loop",
    "ChunkedEncodingError": "the answer was cut off before its end",
    "ContentDecodingError": "the answer's compressed body is damaged",
    "InvalidHeader": "the answer's headers are malformed",
}


def cause(error: BaseException) -> str:
    """Why a request got no answer, in a few words."""
    if through_proxy(error):
        return "the proxy could not be reached or refused the connection (ProxyError)"
    if unresolved_host(error):
        return "the host name does not resolve (DNS)"
    for link in _chain(error):
        if isinstance(link, ConnectionRefusedError):
            return "connection refused"
        if isinstance(link, ConnectionResetError):
            return "connection reset"
    name = type(error).__name__
    if name in _WORDS:
        return f"{_WORDS[name]} ({name})"
    links = {type(link).__name__ for link in _chain(error)}
    gone = next((link for link in ("RemoteDisconnected", "BadStatusLine") if link in links), None)
    if gone:
        return f"the server closed the connection or answered in something that is not HTTP ({gone})"
    if "timed out" in str(error).lower() or "timeout" in name.lower():
        return f"{name}: no answer in time"
    return name


# -- what counts as delivery -------------------------------------------------------------------

ANSWER_BYTES = 64 * 1024  # read of an answer to judge it: Databand's is a few bytes of JSON, or none
_PAGES = ("text/html", "application/xhtml+xml")
_NOT_JSON = "a body that is not JSON"


def not_delivery(status: int, content_type: str | None, body: bytes, whole: bool = True) -> str | None:
    """The one rule of every HTTP target: None when the answer says the events were taken, else
    what it was instead, in a few words. Taken: a 2xx of the very URL asked (the caller never
    follows a redirect) whose body is empty or JSON, as Databand's and the OpenLineage API's are.
    A web page, or any other text (a proxy's "OK", a captive portal, a truncated answer), comes
    from something in front of the backend: the events are kept and sent again, since a report
    sent twice costs less than one lost. `body` is the start of the answer; `whole` says whether
    it is all of it (a longer one is judged by its Content-Type alone)."""
    if not 200 <= status < 300:
        return f"HTTP {status}"
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in _PAGES:
        return "an HTML page"
    if not whole:  # judged before "empty": 64 KiB of blanks may be the start of anything
        return None if kind == "application/json" or kind.endswith("+json") else _NOT_JSON
    if not body.strip():
        return None
    try:
        json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
        return _NOT_JSON
    return None
