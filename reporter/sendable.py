"""Checks of the settings that would otherwise fail only when a request is made: a token an HTTP
header cannot carry, a CA file that is missing, unreadable or holds no certificate, a job token
sent to another GitLab than its own.

Each is asked before GitLab is read, so a wrong variable costs a second and one line (exit 2),
never a GitLab read followed by a delivery that fails and keeps the events.
"""

from __future__ import annotations

import os
from urllib.parse import SplitResult, urlsplit

from reporter.errors import ConfigError

# Printable ASCII and the space: what every server takes in a header value. requests refuses a line
# break or a leading space only when the request is made, http.client a NUL, and latin-1 text
# beyond ASCII reaches the server as bytes it reads some other way.
MAX_CA_BYTES = 32 * 2**20  # the system's bundle is about 0.2 MB
_HEADER_SAFE = frozenset(chr(c) for c in range(0x20, 0x7F))


def check_token(value: str | None, name: str) -> None:
    """A token is sent as a header (PRIVATE-TOKEN, JOB-TOKEN, Authorization): printable ASCII only.
    The message never shows the token, nor where in it the character is."""
    if value is None:
        return
    bad = next((c for c in value if c not in _HEADER_SAFE), None)
    if bad is None:
        if value != value.strip():  # requests refuses a header value that starts with a space
            raise ConfigError(f"{name} starts or ends with a space, which an HTTP header cannot carry: set it "
                              "to the token alone.")
        return
    what = {"\n": "a line break", "\r": "a carriage return", "\x00": "a NUL character"}.get(
        bad, "a control character" if ord(bad) < 0x20 or ord(bad) == 0x7F else "a character that is not ASCII")
    raise ConfigError(f"{name} holds {what}, which an HTTP header cannot carry: set it to the token alone "
                      "(a masked CI/CD variable's value, no quotes, no line break).")


def check_ca_file(path: str | None, name: str) -> None:
    """A CA bundle as requests will load it (a PEM file, or a folder of hashed certificates), loaded
    now: a missing, unreadable or empty file fails here, not at the first request."""
    if path is None:
        return
    import ssl  # here: --help and parent-env import the settings, and need no TLS

    fix = f"set {name} to the PEM file of the CA that signed the server's certificate (a CI/CD variable of type File)"
    if not os.path.exists(path):
        raise ConfigError(f"{name} names {path!r}, which does not exist: {fix}.")
    if os.path.isfile(path) and os.path.getsize(path) > MAX_CA_BYTES:
        raise ConfigError(f"{name} names {path!r}, larger than {MAX_CA_BYTES // 2**20} MiB, which is no CA "
                          f"bundle: {fix}.")
    if not os.path.isfile(path) and not os.path.isdir(path):  # a FIFO or a device would block or never end
        raise ConfigError(f"{name} names {path!r}, which is not a regular file: {fix}.")
    from reporter import timebound  # here too: the requests and urllib3 behind it load only now

    try:
        # Loaded as the sessions will use it, into the process's one context for it: checked here,
        # it is not loaded again for the first connection.
        if os.path.isdir(path):  # requests hands a folder to OpenSSL as CA path (c_rehash'd)
            os.listdir(path)
            timebound.shared_context(None, path)
        else:
            timebound.shared_context(path, None)
    except ssl.SSLError:
        raise ConfigError(f"{name} names {path!r}, which holds no PEM certificate: {fix}.") from None
    except (OSError, ValueError, UnicodeError) as error:
        why = getattr(error, "strerror", None) or type(error).__name__
        raise ConfigError(f"{name} names {path!r}, which cannot be read ({why}): {fix}.") from None


def check_host(host: str) -> None:
    """Raises ValueError for a host name that urllib3 would refuse only at the first request (a space,
    a full-width letter IDNA does not take) or the socket layer (an empty label, as in a..b.com:
    that one came out as an unexpected error)."""
    if ":" in host:  # an IPv6 address, its brackets checked by urlsplit
        return
    from urllib3.util import parse_url  # here: --help imports the settings, and needs no HTTP

    try:
        parse_url(f"http://{host}/")
    except ValueError as error:  # urllib3's LocationParseError
        raise ValueError(str(error).removeprefix("Failed to parse: ")) from None
    try:
        host.encode("idna")
    except UnicodeError:
        raise ValueError("its host has an empty part, or a part of more than 63 characters") from None


def split_url(url: str) -> SplitResult:
    """`url` split; ValueError for what urllib3 or the socket layer would refuse only at the first
    request: an unclosed [ of an IPv6 address, a bad port, a host no request can name."""
    parts = urlsplit(url)
    parts.port  # noqa: B018  # a port past 65535, or not a number, raises here
    if parts.hostname:
        check_host(parts.hostname)
    return parts


def check_proxy(url: str) -> None:
    """The proxy requests will take for `url` from the environment (HTTPS_PROXY, HTTP_PROXY or
    ALL_PROXY, NO_PROXY applied as requests applies it), its address checked now as our own URLs
    are: urllib3 refuses a malformed one only at the first request, and not as a failure to connect
    (an empty part, as in http://a..b/, was an unexpected error). The proxy's URL is never shown: it
    may carry a user and password."""
    import requests.utils  # here: --help imports the settings, and needs no HTTP

    from reporter import wire

    proxy = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    if not proxy:
        return
    try:
        if not split_url(proxy if "://" in proxy else f"http://{proxy}").hostname:  # requests' default scheme
            raise ValueError("it has no host")
    except ValueError as error:
        host = urlsplit(url).hostname
        raise ConfigError(f"{wire.proxy_variable(url)} names a proxy whose address is malformed ({error}): correct "
                          f"it, or add {host} to NO_PROXY to go without one.") from None


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def check_job_token_origin(gitlab_url: str, server_url: str | None, url_source: str) -> None:
    """CI_JOB_TOKEN is GitLab's own credential for the job, valid only on CI_SERVER_URL: sent to any
    other address it is a secret handed to a stranger."""
    if server_url is None:
        return
    try:
        same = origin(gitlab_url) == origin(server_url.strip().rstrip("/"))
    except ValueError:  # a malformed CI_SERVER_URL: no origin to match, so none is trusted
        same = False
    if not same:
        raise ConfigError(f"{url_source} is not this job's GitLab (CI_SERVER_URL), and the only token is "
                          "CI_JOB_TOKEN, which is never sent elsewhere: set GITLAB_TOKEN to a token of that "
                          f"GitLab, or fix {url_source}.")
