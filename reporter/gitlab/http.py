"""The way to GitLab: one python-gitlab client over one requests session per command, the origin
guard, the bound on requests in flight, the waits between attempts, and `get_json`, where every
failure of a read becomes a ReadError.

python-gitlab keeps its retries (POLICY.attempts in all) but every wait it makes after an answer is
ours: a response hook works out the wait as reporter.retry's policy says and sleeps it (a signal
ends it), then hands python-gitlab "Retry-After: 0". python-gitlab cannot cap a wait itself: it
sleeps whatever Retry-After says, and until RateLimit-Reset when that is all it gets (GitLab.com
sends both, self-managed GitLab often only the second), so an hour's reset would hold the job for
an hour. A wait that would end past the time left (the read's bound within the command's budget)
is not started: the hook raises Throttled, which python-gitlab does not retry, and the user reads
why. The only waits of python-gitlab's own are its backoff after a broken connection (0.1 s,
doubling: 3.1 s over five retries), which no answer precedes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

import gitlab
import requests
import urllib3

from reporter import __version__, ids, timebound, wire
from reporter.gitlab import errors
from reporter.gitlab.errors import ReadError
from reporter.retry import POLICY, RetryPolicy
from reporter.settings import GITLAB_CONCURRENCY, ReadBounds

SOCKET_TIMEOUT = 30  # connect, and wait for each chunk of an answer
PER_PAGE = 100
MAX_JSON_BYTES = 64 * 2**20  # one answer; a page of 100 jobs is about 0.3 MB
# An error page or redirect is read for its first bytes only, decoded: python-gitlab and requests
# read such a body whole, and a gzip body of 10 MB expands to 10 GB.
MAX_ERROR_BYTES = 64 * 1024
IN_FLIGHT = GITLAB_CONCURRENCY  # the settings' default, for a library caller's Access


@dataclass(frozen=True)
class Access:
    url: str
    token: str | None = None  # a token with read_api
    job_token: str | None = None  # CI_JOB_TOKEN
    ca_file: str | None = None
    verify: bool = True
    in_flight: int = IN_FLIGHT
    url_source: str = "GITLAB_URL"  # where the URL came from, for messages
    token_source: str = "GITLAB_TOKEN"  # where the token came from (--gitlab-token or GITLAB_TOKEN)

    @property
    def token_kind(self) -> str:
        """The token a message names: what the user set, else the job's own."""
        return self.token_source if self.token else "CI_JOB_TOKEN"


class ForeignURL(requests.RequestException):
    """A redirect or a pagination link that leaves GitLab's scheme, host and port: never followed,
    since python-gitlab's PRIVATE-TOKEN and JOB-TOKEN headers would go along."""


class UntrustedCertificate(requests.RequestException):
    """GitLab's TLS certificate was refused. Not a ConnectionError: retrying cannot fix it."""


class Unresolved(requests.RequestException):
    """GitLab's host name does not resolve. Not a ConnectionError: retrying in seconds cannot fix it."""


class Throttled(requests.RequestException):
    """GitLab asked for a wait that would end past the time left. Not a ConnectionError, Timeout or
    ChunkedEncodingError, so python-gitlab does not retry it."""


def _origin(url: str) -> tuple[str, str, int | None]:
    # As requests sends it: an international name goes out IDNA-encoded (xn--...), and the origin
    # guard compares what goes out.
    prepared = requests.PreparedRequest()
    with contextlib.suppress(requests.RequestException, UnicodeError):
        prepared.prepare_url(url, None)
        url = prepared.url or url
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


class _GitLabAdapter(timebound.BoundedAdapter):
    """Every request to GitLab passes here: it must stay on GitLab's origin, and at most `in_flight`
    are under way at once, across every thread and pipeline of the command: the pool holds that
    many connections and blocks for one (pool_block), and a connection goes back only once its
    answer is read whole, so the bound covers the bodies too, not only the wait for headers."""

    def __init__(self, origin: tuple[str, str, int | None], in_flight: int, url_source: str):
        # One kept connection per request in flight: without it urllib3 keeps 10 and reconnects for the rest.
        super().__init__(pool_connections=4, pool_maxsize=in_flight, pool_block=True)
        self._origin = origin
        self._url_source = url_source

    def send(self, request, *args, **kwargs) -> requests.Response:
        if _origin(request.url) != self._origin:
            scheme, host, port = _origin(request.url)
            plain = " (plain http, where GitLab's URL is https)" if scheme == "http" and \
                self._origin[0] == "https" else ""
            if scheme == "https" and self._origin[0] == "http" and host == self._origin[1]:
                plain = f" (https, where GitLab's URL is http: write {self._url_source} with https://)"
            raise ForeignURL(f"GitLab sent the reporter to {scheme}://{host}:{port}{plain}, away from the GitLab "
                             "URL it was given; it was not followed, so the token stayed home. Set "
                             f"{self._url_source} to the address GitLab really answers on")
        try:
            return super().send(request, *args, **kwargs)
        except requests.exceptions.SSLError as error:
            raise UntrustedCertificate(wire.tls_problem(error)) from None
        except requests.exceptions.ConnectionError as error:
            if wire.unresolved_host(error):
                raise Unresolved("the host name does not resolve (DNS)") from None
            raise


@dataclass
class _Once:
    """What a command reads of GitLab once, whatever it reads after (GitLab's version), shared by
    every `within` view of the client."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    values: dict[str, object] = field(default_factory=dict)


class _Attempts(threading.local):
    """This thread's read in progress: its path (for the lines said) and the retries made so far."""

    path = ""
    verb = "GET"
    retries = 0
    content_type = ""


@dataclass
class Client:
    """One GitLab for one command: python-gitlab's client and its session (shared by every thread,
    downstream pipeline and pipeline of a backfill), the retry policy and the bounds, and the
    budget every read draws from. `within` gives a view with a budget of its own (one pipeline of
    a backfill, one listing of a sweep) over the same session."""

    access: Access
    gl: gitlab.Gitlab
    policy: RetryPolicy = POLICY
    bounds: ReadBounds = field(default_factory=ReadBounds)
    budget: timebound.Budget | None = None
    progress: Callable[[str], None] | None = None  # one line per wait, for the job log
    _attempts: _Attempts = field(default_factory=_Attempts)
    once: _Once = field(default_factory=_Once)

    def within(self, seconds: float, name: str = "--gitlab-timeout") -> Client:
        return replace(self, budget=timebound.Budget(seconds, name))

    def api_path(self, path: str) -> str:
        """A path as messages show it: GitLab's API prefix and the path, no query."""
        return urlsplit(self.gl.api_url).path.rstrip("/") + path

    def graphql_url(self) -> str:
        """GitLab's GraphQL endpoint: /api/graphql beside the REST API's /api/v4, not under it."""
        return f"{self.gl.url.rstrip('/')}/api/graphql"

    def shown(self, path: str) -> str:
        """A path or a full URL of this GitLab as messages show it (no scheme, host or query)."""
        return urlsplit(path).path if path.startswith(("http://", "https://")) else self.api_path(path)

    def encoded(self, project: str | int) -> str | int:
        """The project as GitLab's paths take it (a path percent-encoded)."""
        encoded = self.gl.projects.get(project, lazy=True).encoded_id
        return project if encoded is None else encoded


def connect(access: Access, *, policy: RetryPolicy = POLICY, bounds: ReadBounds | None = None,
            progress: Callable[[str], None] | None = None) -> Client:
    """One client per command, made by its caller and passed down."""
    # Settled once for the command (the CA environment, proxies), not on every request.
    verify = timebound.environ_verify((access.ca_file or True) if access.verify else False)
    kwargs = {"private_token": access.token} if access.token else {"job_token": access.job_token}
    session = requests.Session()
    timebound.settle_environment(session, access.url)
    adapter = _GitLabAdapter(_origin(access.url), access.in_flight, access.url_source)
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    gl = gitlab.Gitlab(
        access.url, ssl_verify=verify, timeout=SOCKET_TIMEOUT, per_page=PER_PAGE, retry_transient_errors=True,
        user_agent=f"databand-gitlab-reporter/{__version__}", session=session, **kwargs,
    )
    client = Client(access=access, gl=gl, policy=policy, bounds=bounds or ReadBounds(), progress=progress)
    session.hooks["response"].append(lambda response, *args, **kwargs: _our_wait(client, response))
    return client


def _our_wait(client: Client, response: requests.Response) -> requests.Response:
    """Every wait before python-gitlab's next attempt, as the policy says and within the time left."""
    attempts = client._attempts
    attempts.content_type = response.headers.get("Content-Type") or ""
    if response.status_code >= 300:
        _cap_body(response)
    if not client.policy.retries_status(response.status_code):
        return response
    attempts.retries += 1
    retry = attempts.retries
    if retry >= client.policy.attempts:
        response.headers["Retry-After"] = "0"  # python-gitlab's last answer: it gives up now
        return response
    asked = client.policy.server_wait(response.headers)  # at most the policy's longest wait
    wait = client.policy.backoff_wait(retry) if asked is None else asked
    bound = timebound.current()
    left = bound.budget_left() if bound is not None else client.policy.budget
    if wait >= left:
        limit = "the retry budget" if bound is None else bound.budget.name if bound.budget else "the read's bound"
        status = response.status_code
        what = f"GitLab is rate-limiting ({status})" if status == 429 else f"GitLab answered {status}"
        response.close()
        if asked is None:
            raise Throttled(f"{what}; no time is left in {limit} to try again")
        really = replace(client.policy, longest_wait=float("inf")).server_wait(response.headers) or asked
        asked_for = f"to wait {really:.0f} s" if really < float("inf") else "for a wait without end"  # nan, 1e400
        raise Throttled(f"{what} and asked {asked_for}, past the {max(left, 0):.0f} s left of {limit}")
    if client.progress is not None and wait > 0:
        client.progress(f"GitLab answered {response.status_code} to {attempts.verb} {attempts.path}; trying again in "
                        f"{wait:.{0 if wait >= 1 else 2}f} s (retry {retry} of {client.policy.attempts - 1})")
    if bound is not None:
        bound.extend(wait)  # the wait is GitLab's, not time the read spends answering
    if timebound.stopped().wait(wait):
        raise timebound.OutOfTime(0)
    response.headers["Retry-After"] = "0"
    return response


@dataclass
class Answer:
    """One JSON answer of GitLab's API, and what to name it by in messages (its path, no query)."""

    data: object
    path: str
    status: int = 200
    content_type: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


def stream(client: Client, path: str, *, params: Mapping[str, object] | None = None,
           headers: Mapping[str, str] | None = None, body: Mapping[str, object] | None = None) -> requests.Response:
    """One streamed GET through python-gitlab (auth, retries), or a POST of a JSON `body` (GraphQL's
    only verb: `path` is then a full URL); call inside timebound.bounded."""
    attempts = client._attempts
    attempts.verb = "GET" if body is None else "POST"
    attempts.path, attempts.retries, attempts.content_type = client.shown(path), 0, ""
    response = client.gl.http_request(attempts.verb.lower(), path, query_data=dict(params or {}),
                                      post_data=None if body is None else dict(body), streamed=True,
                                      max_retries=client.policy.attempts - 1,
                                      extra_headers=dict(headers or {}))
    assert isinstance(response, requests.Response)
    return response


def failure(client: Client, error: Exception, shown: str) -> ReadError:
    """A read's exception as a ReadError. Only what a read raises comes here (see `READ_FAILURES`)."""
    content_type = client._attempts.content_type
    if isinstance(error, timebound.OutOfTime):
        return ReadError(shown, errors.SLOW, seconds=error.seconds, limit=error.limit or "")
    if isinstance(error, (gitlab.GitlabHttpError, gitlab.GitlabAuthenticationError)):
        status = error.response_code or 0
        if "json" not in content_type.lower() and not client.policy.retries_status(status) and status not in (401, 403):
            # GitLab's API refuses in JSON; an HTML 404 is a web server or proxy at that address.
            body = error.response_body if isinstance(error.response_body, bytes) else b""
            return ReadError(shown, errors.NOT_API, status, content_type, f"is not JSON but {_what_it_is(body)}")
        return ReadError(shown, errors.REFUSED, status=status, content_type=content_type)
    if isinstance(error, Throttled):
        return ReadError(shown, errors.THROTTLED, detail=str(error))
    if isinstance(error, UntrustedCertificate):
        return ReadError(shown, errors.TLS, detail=str(error))
    if isinstance(error, ForeignURL):
        return ReadError(shown, errors.FOREIGN, detail=str(error))
    if isinstance(error, Unresolved):
        return ReadError(shown, errors.UNRESOLVED)
    if wire.through_proxy(error):
        host = urlsplit(client.access.url).hostname
        where = f"{wire.proxy_variable(client.access.url)}, or add {host} to NO_PROXY"
        return ReadError(shown, errors.PROXY, detail=where)
    if isinstance(error, gitlab.GitlabError):  # python-gitlab's own refusals (a redirect on a POST ...)
        return ReadError(shown, errors.REFUSED, status=error.response_code or 0, content_type=content_type)
    return ReadError(shown, errors.UNREACHABLE, detail=wire.cause(error))


# What a GitLab read can raise: python-gitlab's refusals, requests' failures (ours among them).
READ_FAILURES = (gitlab.GitlabError, requests.RequestException)


def get_json(client: Client, path: str, params: Mapping[str, object] | None = None, *,
             expect: type = dict) -> Answer:
    """One GET of GitLab's API, bounded by the read's bound within the budget, its body checked to
    be JSON of the type expected. Raises ReadError."""
    return _json(client, path, params, None, expect)


def post_json(client: Client, url: str, body: Mapping[str, object]) -> Answer:
    """One POST of a JSON body (a GraphQL query) to a URL of this GitLab, on the same session,
    retry policy and bounds as get_json; the answer must be a JSON object. Raises ReadError."""
    return _json(client, url, None, body, dict)


def _json(client: Client, path: str, params: Mapping[str, object] | None, post: Mapping[str, object] | None,
          expect: type) -> Answer:
    shown = client.shown(path)
    try:
        with timebound.bounded(client.bounds.read, client.budget):
            response = stream(client, path, params=params, body=post)
            try:
                body = read_capped(response, MAX_JSON_BYTES)
            finally:
                response.close()
            if body is None:
                raise ReadError(shown, errors.NOT_API, response.status_code, response.headers.get("Content-Type", ""),
                                f"is larger than {MAX_JSON_BYTES // 2**20} MiB")
    except READ_FAILURES as error:
        raise failure(client, error, shown) from None
    answer = Answer(None, shown, response.status_code, response.headers.get("Content-Type", ""), response.headers)
    if "json" not in answer.content_type.lower():
        raise wrong(answer, f"is not JSON but {_what_it_is(body)}")
    try:
        answer.data = json.loads(body)
    except RecursionError:
        raise wrong(answer, "is JSON nested deeper than any GitLab answer") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise wrong(answer, "is not valid JSON (cut short?)") from None
    except ValueError:  # int() refuses numbers of more than 4,300 digits
        raise wrong(answer, "holds a number too long to be an id or a count") from None
    if _SURROGATE_ESCAPE.search(body):
        answer.data = _without_lone_surrogates(answer.data)
    if not isinstance(answer.data, expect):
        raise wrong(answer, f"is {json_type(answer.data)} where {json_type(expect())} was due")
    return answer


class _Bounded:
    """Decodes gzip or deflate a piece at a time, never more than asked for at once."""

    def __init__(self, encoding: str):
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS)
        self._deflate = encoding == "deflate"  # zlib-wrapped as the RFC says, or raw as some servers send
        self._started = False

    def decode(self, data: bytes, room: int) -> bytes:
        """What `data` (and the input left from the last call) decodes to, at most `room` bytes."""
        if self._deflate and not self._started and data:
            self._started = True
            if data[0] & 0x0F != 8:  # no zlib header: raw deflate
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        if self._zlib.eof:
            return b""
        return self._zlib.decompress(self._zlib.unconsumed_tail + data, room)

    def pending(self) -> bool:
        """Input left undecoded because the last call's room was reached."""
        return bool(self._zlib.unconsumed_tail) and not self._zlib.eof


def pieces(response: requests.Response, piece: int = 64 * 1024) -> Iterator[bytes]:
    """The answer's body decoded, in pieces of at most a MiB however well it compresses: gzip and
    deflate are decoded here, not by urllib3, whose older releases decode a whole read at once (a
    thousandfold for a body of zeros)."""
    encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    raw = response.raw
    if encoding not in ("identity", "gzip", "x-gzip", "deflate") or raw is None or not hasattr(raw, "read"):
        yield from response.iter_content(chunk_size=piece)  # an encoding only urllib3 decodes (br, zstd)
        return
    decoder = None if encoding == "identity" else _Bounded(encoding)
    try:
        # What has come, as it comes, chunked or not: a log trickling in is kept so far.
        for data in itertools.chain(_reads(raw, piece), [b""]):  # b"": the end
            part = data if decoder is None else decoder.decode(data, _ROOM)
            while part:
                yield part
                # What the room left undecoded, before the next read (or at the end).
                part = decoder.decode(b"", _ROOM) if decoder is not None and (decoder.pending() or not data) else b""
    except zlib.error:
        raise requests.exceptions.ContentDecodingError("the answer's compressed body is damaged") from None
    except (urllib3.exceptions.HTTPError, OSError) as error:  # a connection cut or reset mid-body
        raise requests.exceptions.ChunkedEncodingError(error) from None


_ROOM = 2**20  # the most one piece of a compressed body expands to


def _reads(raw, piece: int) -> Iterator[bytes]:
    """The body's bytes as the socket gives them, at most `piece` at a time. stream() waits for a
    whole piece of a body that is not chunked: a log sent slowly would come all at once or not at
    all, when its bound cuts it."""
    read1 = getattr(raw, "read1", None)
    if read1 is None:  # not urllib3's response (a library caller's adapter)
        yield from raw.stream(piece, decode_content=False)
        return
    while data := read1(piece, decode_content=False):
        yield data


def read_capped(response: requests.Response, cap: int) -> bytes | None:
    """The answer's body decoded, or None once it passes `cap` bytes: never more than `cap` and a
    piece are held."""
    kept: list[bytes] = []  # joined once at the end: a growing bytearray would hold twice the cap
    size = 0
    for part in pieces(response):
        size += len(part)
        if size > cap:
            return None
        kept.append(part)
    return b"".join(kept)


def _cap_body(response: requests.Response) -> None:
    """An error page or redirect: its first MAX_ERROR_BYTES, decoded, become its body for whoever
    reads it next (python-gitlab's message, requests' redirect), and its connection goes back."""
    try:
        body = read_capped(response, MAX_ERROR_BYTES)
    except requests.RequestException:
        body = b""
    finally:
        response.close()
    response._content = b"" if body is None else body  # too large for an error: it says nothing useful
    response._content_consumed = True


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # a pair JSON escaped is one character once parsed


def _without_lone_surrogates(data: object) -> object:
    """A name GitLab sent as a lone surrogate escape (\\udc80) cannot be encoded as UTF-8 in any event
    or file: each becomes U+FFFD. Walked without recursion: the JSON may be nested deep."""
    def fixed(value: object) -> object:
        return _LONE_SURROGATE.sub("\ufffd", value) if isinstance(value, str) else value

    top: list[object] = [fixed(data)]
    stack: list[list | dict] = [top]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for index, item in enumerate(node):
                node[index] = item = fixed(item)
                if isinstance(item, (list, dict)):
                    stack.append(item)
        else:
            for key in list(node):
                item = fixed(node.pop(key))
                node[fixed(key)] = item
                if isinstance(item, (list, dict)):
                    stack.append(item)
    return top[0]


def wrong(answer: Answer, problem: str) -> ReadError:
    """An answer that is not what GitLab's API sends."""
    return ReadError(answer.path, errors.NOT_API, answer.status, answer.content_type, problem)


def _what_it_is(body: bytes | bytearray) -> str:
    head = bytes(body[:512]).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "an HTML page"
    return "empty" if not head else "something else"


def json_type(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def header_number(headers: Mapping[str, str], name: str) -> int | None:
    text = str(headers.get(name) or "").strip()
    return int(text) if ids.is_number(text) else None
