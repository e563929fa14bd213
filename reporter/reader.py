"""Reading one pipeline from GitLab with python-gitlab (its pagination, auth and retries).

A `read_api` token reads everything: the pipeline, all jobs with every retried attempt, the
bridges and the failed jobs' logs. A CI_JOB_TOKEN may only list the pipeline's jobs; then the
pipeline's own fields come from the job's CI_* variables and the rest is noted as left out.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import gitlab
import requests

from reporter import __version__, deadline, from_gitlab, logs
from reporter.errors import GitLabError
from reporter.snapshot import Job, Pipeline, mark_attempts, without

# Enough retries to ride out a short 502 or a 429 burst (python-gitlab doubles its wait from 0.1 s,
# or waits as Retry-After says), few enough to give up well within the pipeline's patience.
MAX_RETRIES = 5
TIMEOUT = 30  # connect, and wait for each chunk of an answer
# One GitLab read (a page of jobs, the pipeline, a test report), python-gitlab's retries included,
# is cut off after this many seconds of wall clock, however the server trickles; add at most 2 s
# for python-gitlab's last backoff (Retry-After waits are cut to the time left). All reads of a
# report together stop at --gitlab-timeout (default 100 s).
READ_SECONDS = 30
PER_PAGE = 100
# Where GitLab gives no page count (past 10,000 items) pages are walked one by one up to this many
# (100,000 jobs): a server whose pages never end cannot make the reporter read forever.
MAX_PAGES = 1000
MAX_JSON_BYTES = 64 * 2**20  # one answer; a page of 100 jobs is about 0.3 MB
# Requests in flight at once, for the whole process (backfill and downstream pipelines included):
# enough that a 10,000-job pipeline's pages and logs go out in a few waves, few enough for a small
# self-managed GitLab (python-gitlab waits out a 429 anyway). --gitlab-concurrency changes it.
IN_FLIGHT = 32
WORKERS = IN_FLIGHT  # threads of one pipeline's reading; the connection pool, not the threads, bounds requests
DOWNSTREAM_WORKERS = 4  # downstream pipelines read at once
# A log still streaming after LOG_SECONDS is left there, its end so far kept (with a note in the
# log); a log that stalls or trickles is abandoned at LOG_CUT_SECONDS and the job goes without it,
# with a note in the summary.
LOG_SECONDS = 20
LOG_CUT_SECONDS = LOG_SECONDS + 2
DOWNSTREAM_DEPTH = 2  # a bridge's pipeline, and the bridges' pipelines of that one
MAX_RETRY_AFTER = 10


@dataclass(frozen=True)
class Access:
    url: str
    token: str | None = None  # a token with read_api
    job_token: str | None = None  # CI_JOB_TOKEN
    ca_file: str | None = None
    verify: bool = True
    in_flight: int = IN_FLIGHT


class ForeignURL(requests.RequestException):
    """A redirect or a pagination link that leaves GitLab's scheme, host and port: never followed,
    since python-gitlab's PRIVATE-TOKEN and JOB-TOKEN headers would go along."""


class UntrustedCertificate(requests.RequestException):
    """GitLab's TLS certificate was refused. Not a ConnectionError: retrying cannot fix it."""


class WrongShape(Exception):
    """An answer that is not the JSON GitLab's API gives (an SSO page, another type)."""

    def __init__(self, answer: "Answer | None", problem: str, *, path: str = "", status: int = 0,
                 content_type: str = ""):
        self.path = answer.path if answer else path
        self.status = answer.status if answer else status
        self.content_type = (answer.content_type if answer else content_type) or "no content type"
        self.problem = problem
        super().__init__(f"GitLab's answer to GET {self.path} (HTTP {self.status}, {self.content_type}) "
                         f"{problem}")


@dataclass
class Answer:
    """One JSON answer of GitLab's API, and what to name it by in messages (its path, no query)."""

    data: object
    path: str
    status: int = 200
    content_type: str = ""
    headers: Mapping = field(default_factory=dict)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


class _GitLabAdapter(deadline.BoundedAdapter):
    """Every request to GitLab passes here: it must stay on GitLab's origin, and at most `in_flight`
    are under way at once, across every thread and pipeline of the process: the pool holds that
    many connections and blocks for one (pool_block), and a connection goes back only once its
    answer is read whole, so the bound covers the bodies too, not only the wait for headers.
    Reads made inside deadline.bounded are cut off at their bound."""

    def __init__(self, origin: tuple, in_flight: int):
        # One kept connection per request in flight: without it urllib3 keeps 10 and reconnects for the rest.
        super().__init__(pool_connections=4, pool_maxsize=in_flight, pool_block=True)
        self._origin = origin

    def send(self, request, *args, **kwargs):
        if _origin(request.url) != self._origin:
            scheme, host, port = _origin(request.url)
            plain = " (plain http, where GitLab's URL is https)" if scheme == "http" and \
                self._origin[0] == "https" else ""
            raise ForeignURL(f"GitLab sent the reporter to {scheme}://{host}:{port}{plain}, away from the GitLab "
                             "URL it was given; it was not followed, so the token stayed home. Set GITLAB_URL "
                             "to the address GitLab really answers on")
        try:
            return super().send(request, *args, **kwargs)
        except requests.exceptions.SSLError as error:
            raise UntrustedCertificate(deadline.tls_problem(error)) from None


_CLIENTS: dict[Access, object] = {}
_CLIENTS_LOCK = threading.Lock()


def connect(access: Access):
    """One python-gitlab client (and HTTP session) per GitLab and token, reused by every pipeline
    the process reads; one bound on requests in flight (its connection pool) for all of them."""
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(access)
        if client is None:
            client = _CLIENTS[access] = _connect(access)
        return client


def _connect(access: Access):
    verify: bool | str = (access.ca_file or True) if access.verify else False
    kwargs = {"private_token": access.token} if access.token else {"job_token": access.job_token}
    session = requests.Session()
    session.hooks["response"].append(_cap_retry_after)
    adapter = _GitLabAdapter(_origin(access.url), access.in_flight)
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return gitlab.Gitlab(
        access.url, ssl_verify=verify, timeout=TIMEOUT, per_page=PER_PAGE, retry_transient_errors=True,
        user_agent=f"databand-gitlab-reporter/{__version__}", session=session, **kwargs,
    )


_LAST_ANSWER = threading.local()  # this thread's last answer's content type, for refusals' messages


def _cap_retry_after(response, *args, **kwargs):
    """python-gitlab sleeps as long as Retry-After says; an hour would hold the pipeline for an hour."""
    _LAST_ANSWER.content_type = response.headers.get("Content-Type") or "no content type"
    bound = deadline.current()  # never sleep past the read's own bound
    longest = MAX_RETRY_AFTER if bound is None else max(0, min(MAX_RETRY_AFTER, bound.left()))
    seconds = deadline.retry_after(response.headers.get("Retry-After"), longest)
    if seconds is not None:
        response.headers["Retry-After"] = str(int(seconds))
    return response


def _explain(error: Exception, what: str, token_kind: str) -> GitLabError:
    path = getattr(error, "gitlab_path", None)
    asked = f" (GET {path})" if path else ""
    if isinstance(error, ForeignURL):
        return GitLabError(f"While reading {what}{asked}: {error}.")
    if isinstance(error, WrongShape):
        return GitLabError(f"While reading {what}: {error}. A proxy or a login (SSO) page may have answered "
                           "instead of GitLab's API: check GITLAB_URL / CI_SERVER_URL (GitLab's own address).")
    if isinstance(error, deadline.OutOfTime):
        return GitLabError(f"GitLab did not finish answering{asked} within {error.seconds:g} s while reading "
                           f"{what} (a slow or stalled server); nothing was sent. Try again later.")
    if isinstance(error, UntrustedCertificate):
        return GitLabError(f"GitLab's TLS certificate was not accepted ({error}) while reading {what}: set "
                           "CI_SERVER_TLS_CA_FILE to the PEM file of the CA that signed it.")
    code = getattr(error, "response_code", None)
    fix = "set GITLAB_TOKEN to a token with read_api" if token_kind == "CI_JOB_TOKEN" else \
        "the token needs the read_api scope and at least Reporter access to the project"
    if isinstance(error, gitlab.GitlabParsingError) or isinstance(error, ValueError):
        return GitLabError(f"GitLab's answer while reading {what}{asked} was not valid JSON (cut short, or a "
                           "proxy answered instead); try again, or check GITLAB_URL.")
    if isinstance(error, gitlab.GitlabAuthenticationError) or code == 401:
        return GitLabError(f"GitLab refused the {token_kind} (401) while reading {what}: check that "
                           "GITLAB_TOKEN is valid and not expired.")
    if code == 403:
        return GitLabError(f"GitLab forbade reading {what} (403){asked}: {fix}.")
    if code == 404:
        return GitLabError(f"GitLab has no {what} (404){asked}, or the {token_kind} may not see it: "
                           f"check the project and pipeline ids ({fix}).")
    if code:
        kind = getattr(error, "gitlab_content_type", None)
        return GitLabError(f"GitLab answered {code}{f' ({kind})' if kind else ''} while reading {what}{asked}; "
                           "try again later.")
    return GitLabError(f"Could not reach GitLab while reading {what}{asked}: {type(error).__name__}. "
                       "Check GITLAB_URL / CI_SERVER_URL and the network.")


# The exceptions a GitLab read can end with; _explain turns each into one line.
_READ_ERRORS = (gitlab.GitlabError, OSError, ValueError, WrongShape)


def _shown_path(gl, path: str) -> str:
    return urlsplit(gl.api_url).path.rstrip("/") + path


def get_json(gl, path: str, params: Mapping | None = None, *, expect: type = dict,
             seconds: float | None = None) -> Answer:
    """One GET of GitLab's API through python-gitlab (auth, retries), cut off after `seconds` however
    the server trickles, its body checked to be JSON of the type expected."""
    shown = _shown_path(gl, path)
    try:
        with deadline.bounded(READ_SECONDS if seconds is None else seconds):
            response = gl.http_request("get", path, query_data=dict(params or {}), streamed=True,
                                       max_retries=MAX_RETRIES)
            try:
                body = bytearray()
                for chunk in response.iter_content(chunk_size=64 * 1024):
                    body += chunk
                    if len(body) > MAX_JSON_BYTES:
                        raise WrongShape(None, f"is larger than {MAX_JSON_BYTES // 2**20} MiB", path=shown,
                                         status=response.status_code,
                                         content_type=response.headers.get("Content-Type", ""))
            finally:
                response.close()
    except Exception as error:
        error.gitlab_path = shown
        error.gitlab_content_type = getattr(_LAST_ANSWER, "content_type", None)
        raise
    answer = Answer(None, shown, response.status_code, response.headers.get("Content-Type", ""), response.headers)
    if "json" not in answer.content_type.lower():
        raise WrongShape(answer, f"is not JSON but {_what_it_is(body)}")
    try:
        answer.data = json.loads(body)
    except ValueError:
        raise WrongShape(answer, "is not valid JSON (cut short?)") from None
    if not isinstance(answer.data, expect):
        raise WrongShape(answer, f"is {_json_type(answer.data)} where {_json_type(expect())} was due")
    return answer


def _what_it_is(body: bytes) -> str:
    head = bytes(body[:512]).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "an HTML page"
    return "empty" if not head else "something else"


def _json_type(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_items(answer: Answer) -> list[dict]:
    """A list of GitLab objects, each with a numeric id."""
    for index, item in enumerate(answer.data):
        if not isinstance(item, dict):
            raise WrongShape(answer, f"has {_json_type(item)} at item {index} where an object was due")
        if not _whole(item.get("id")):
            raise WrongShape(answer, f"has {_json_type(item.get('id'))} as the id of item {index} "
                                     "where a number was due")
    return answer.data


def _check_pipeline(answer: Answer) -> dict:
    raw = answer.data
    for key in ("id", "project_id"):
        if raw.get(key) is not None and not _whole(raw[key]):
            raise WrongShape(answer, f"has {_json_type(raw[key])} as {key} where a number was due")
    if raw.get("id") is None:
        raise WrongShape(answer, "has no pipeline id")
    return raw


def read_pipeline(
    access: Access,
    project: str | int,
    pipeline_id: int,
    *,
    ci: Mapping[str, str] | None = None,
    log_lines: int = logs.DEFAULT_LINES,
    redact: Callable[[str], str] = lambda s: s,
    depth: int = DOWNSTREAM_DEPTH,
    tests: bool = True,
    gl=None,
    workers: int = WORKERS,
    exclude: tuple[str, ...] = (),
) -> Pipeline:
    """Read a pipeline into a snapshot; `ci` is the job's CI_* variables, needed with a job token.

    Everything goes out as soon as it can, on one bounded pool: the pipeline with the first page
    of jobs and of bridges (and the test report's summary); then every other page; each failed
    job's log as soon as the page listing it arrives; the test cases and downstream pipelines once
    the jobs are known. So the wait is about three round trips whatever the pipeline's size, as
    long as the pool is wide enough (past 10,000 jobs GitLab stops sending the page count, and the
    pages past the first are then followed one after another).
    """
    gl = gl or connect(access)
    token_kind = "token" if access.token else "CI_JOB_TOKEN"
    what = f"pipeline {pipeline_id} of project {project}"
    encoded = gl.projects.get(project, lazy=True).encoded_id
    base = f"/projects/{encoded}/pipelines/{pipeline_id}"
    notes: list[str] = []  # what optional reads could not add; list.append is atomic across threads
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            logs_read: list = []

            def read_logs_of(jobs: list[Job]) -> None:
                for job in jobs:
                    if job.status == "failed" and job.kind == "job":
                        logs_read.append(pool.submit(_read_log_into, gl, encoded, job, log_lines, redact, notes))

            on_page = read_logs_of if access.token and log_lines > 0 else None
            raw_pipeline = pool.submit(get_json, gl, base) if access.token else None
            summary = pool.submit(_optional_json, gl, f"{base}/test_report_summary", "the test report summary",
                                  notes) if access.token and tests else None
            raw_jobs = _Listing(gl, pool, f"{base}/jobs", {"include_retried": "true"}, "job", on_page, exclude)
            raw_bridges = _Listing(gl, pool, f"{base}/bridges", {}, "bridge", exclude=exclude) if access.token else None
            for listing in (raw_jobs, raw_bridges):
                if listing is not None:
                    listing.start_rest()  # both lists' other pages go out together
            if raw_pipeline is not None:
                answer = raw_pipeline.result()
                try:
                    pipeline = from_gitlab.pipeline_from_api(access.url, _check_pipeline(answer), project)
                except (TypeError, ValueError, AttributeError, KeyError):
                    raise WrongShape(answer, "has a field of an unexpected type") from None
            else:
                pipeline = from_gitlab.pipeline_from_ci(access.url, project, pipeline_id, ci or {})
            jobs = list(raw_jobs.result())
            if raw_bridges is not None:
                jobs += raw_bridges.result()
            pipeline.jobs = mark_attempts(sorted(jobs, key=lambda j: j.id))
            later = []
            if summary is not None:
                later.append(pool.submit(_read_tests, gl, base, summary.result(), pipeline, redact, notes))
            if access.token:
                later.append(pool.submit(_read_downstream, access, gl, pipeline, depth, log_lines, redact, tests,
                                         exclude))
            for future in [*logs_read, *later]:
                future.result()
    except _READ_ERRORS as error:  # refusals, connection failures, time-outs, wrong answers
        raise _explain(error, what, token_kind) from None

    for listing in (raw_jobs, raw_bridges):
        if listing is not None:
            pipeline.left_out.extend(listing.notes)
    pipeline.left_out.extend(notes)
    if not access.token:
        pipeline.left_out.append("bridges (trigger jobs) and failed jobs' logs: CI_JOB_TOKEN may only "
                                 "list jobs; set GITLAB_TOKEN (read_api) to add them")
        # Outside a job (a resend with only CI_JOB_TOKEN) the ref and commit come from the jobs.
        first = raw_jobs.first_raw
        pipeline.ref = pipeline.ref or str(first.get("ref") or "")
        pipeline.sha = pipeline.sha or str((first.get("pipeline") or {}).get("sha") or "")
    from_gitlab.add_context(pipeline, ci or {}, redact, read_api=bool(access.token))
    return pipeline


def _why(error: Exception) -> str:
    """Why an optional read failed, in a few words for the summary."""
    if isinstance(error, deadline.OutOfTime):
        return f"GitLab sent it too slowly, cut after {error.seconds:g} s"
    if isinstance(error, WrongShape):
        return f"GitLab answered HTTP {error.status}, {error.content_type}, which {error.problem}"
    code = getattr(error, "response_code", None)
    if code:
        return f"GitLab answered {code}"
    if isinstance(error, UntrustedCertificate):
        return f"TLS certificate not accepted ({error})"
    if isinstance(error, ForeignURL):
        return "GitLab redirected it away from its own address; not followed"
    return type(error).__name__


def _optional_json(gl, path: str, what: str, notes: list[str]) -> Mapping | None:
    """A read whose failure only leaves something out, said in the summary. A 404 is GitLab without
    that feature (test reports need a newer GitLab), not worth a note."""
    try:
        return get_json(gl, path).data
    except _READ_ERRORS as error:
        if getattr(error, "response_code", None) != 404:
            notes.append(f"{what} ({_why(error)})")
        return None


def _read_tests(gl, base: str, summary: Mapping | None, pipeline: Pipeline, redact: Callable[[str], str],
                notes: list[str]) -> None:
    """Attach GitLab's JUnit results to the jobs that produced them (the summary names their ids)."""
    try:
        _attach_tests(gl, base, summary, pipeline, redact, notes)
    except (TypeError, ValueError, AttributeError, KeyError):
        # Fields of the wrong type inside the report: the jobs go without test results.
        for job in pipeline.jobs:
            job.tests = None
        notes.append("test results (GitLab's test report has fields of an unexpected type)")


def _attach_tests(gl, base: str, summary: Mapping | None, pipeline: Pipeline, redact: Callable[[str], str],
                  notes: list[str]) -> None:
    suites = [s for s in (summary or {}).get("test_suites") or [] if s.get("total_count")]
    if not suites:
        return
    try:
        report = get_json(gl, f"{base}/test_report").data
    except _READ_ERRORS as error:
        notes.append(f"test cases (the test report could not be read: {_why(error)}; the counts are there)")
        report = {}
    cases_by_suite = {s.get("name"): s.get("test_cases") or [] for s in report.get("test_suites") or []}
    by_id = {job.id: job for job in pipeline.jobs}
    for suite in suites:
        build_ids = [i for i in suite.get("build_ids") or [] if i in by_id]
        results = from_gitlab.test_results(suite, cases_by_suite.get(suite.get("name"), []), len(build_ids), redact)
        for build_id in build_ids:
            by_id[build_id].tests = results


def _read_downstream(access: Access, gl, pipeline: Pipeline, depth: int, log_lines: int,
                     redact: Callable[[str], str], tests: bool, exclude: tuple[str, ...]) -> None:
    """Child and multi-project pipelines of the bridges, read the same way, down to `depth` levels."""
    bridges = [job for job in pipeline.jobs if job.downstream_ref]
    if not bridges:
        return
    if depth <= 0:
        pipeline.left_out.append(f"{len(bridges)} downstream pipeline(s) deeper than --downstream-depth")
        return

    def read(bridge: Job) -> None:
        project, pipeline_id = bridge.downstream_ref
        try:
            child = read_pipeline(access, project, pipeline_id, log_lines=log_lines, redact=redact,
                                  depth=depth - 1, tests=tests, gl=gl, workers=DOWNSTREAM_WORKERS,
                                  exclude=exclude)
        except GitLabError as error:
            pipeline.left_out.append(f"downstream pipeline {pipeline_id} of bridge {bridge.name!r}: "
                                     f"{str(error).rstrip('.')}")
            return
        bridge.downstream = child

    # A few downstream pipelines at a time, each on a small pool of its own: bounded all together.
    with ThreadPoolExecutor(max_workers=min(DOWNSTREAM_WORKERS, len(bridges))) as pool:
        list(pool.map(read, bridges))
    _scope_downstream(pipeline)


def _scope_downstream(pipeline: Pipeline) -> None:
    """Scope downstream runs under their bridges, all the way down.

    A downstream pipeline that reports itself is a root of its own; seen from upstream it hangs
    under a bridge. Different parents, so different run IDs: its IDs are derived from the bridge's.
    """
    for bridge in pipeline.jobs:
        if bridge.downstream is not None:
            bridge.downstream.server = f"{pipeline.server}/projects/{pipeline.project_id}/jobs/{bridge.id}/downstream"
            _scope_downstream(bridge.downstream)


class _Listing:
    """All pages of one list endpoint, fetched on a shared pool; `result()` joins them.

    Each page becomes Job objects as soon as it arrives: GitLab's job JSON, parsed, is several
    times larger than what the report needs, and 10,000 of them would not fit the memory budget.

    Offset pages shift while a pipeline changes (a retried job is added at the head, so an item
    of page 1 comes again on page 2 and the last one moves on a page): items are kept once by id,
    and when the last page counted comes back full the next pages are read until one is not.
    Pages are asked for by number, never by following GitLab's links, so a link or X-Next-Page
    pointing back cannot make a loop; a page with nothing new ends the listing. Each surprise is
    said in `notes` (they go to the summary), never a silent gap.
    """

    def __init__(self, gl, pool: ThreadPoolExecutor, path: str, params: dict, kind: str,
                 on_page: Callable[[list[Job]], None] | None = None, exclude: tuple[str, ...] = ()):
        self._gl, self._pool, self._path, self._params, self._kind = gl, pool, path, params, kind
        self._exclude = exclude  # --exclude-job patterns: left out before anything is read for them
        self._on_page = on_page  # called with each page's jobs as soon as they are known
        self.first_raw: dict = {}  # the first item as GitLab sent it (a job token's ref and commit)
        self.notes: list[str] = []
        self._seen: set[int] = set()
        self._lock = threading.Lock()
        self._per_page = PER_PAGE
        self._total: int | None = None
        self._counted_pages: int | None = None
        self._first = pool.submit(self._fetch, 1)
        self._jobs_of_first: list[Job] | None = None
        self._rest = None
        self._items = None

    def _fetch(self, number: int) -> tuple[Answer, list[dict]]:
        answer = get_json(self._gl, self._path, {**self._params, "page": number, "per_page": PER_PAGE},
                          expect=list)
        return answer, _check_items(answer)

    def _take(self, answer: Answer, page: list[dict]) -> tuple[list[Job], int]:
        """The page's jobs not seen before, and how many of its items were new."""
        with self._lock:
            fresh = [raw for raw in page if raw["id"] not in self._seen]
            self._seen.update(raw["id"] for raw in fresh)
        try:
            jobs = [from_gitlab.job(raw, self._kind) for raw in fresh]
        except (TypeError, ValueError, AttributeError, KeyError):
            raise WrongShape(answer, f"has a {self._kind} field of an unexpected type") from None
        jobs = without(jobs, self._exclude)
        if self._on_page is not None:
            self._on_page(jobs)
        return jobs, len(fresh)

    def _page(self, number: int) -> tuple[list[Job], int, int]:
        answer, page = self._fetch(number)
        jobs, new = self._take(answer, page)
        return jobs, new, len(page)

    def _walk(self, number: int) -> list[Job]:
        """Pages from `number` on, one after another, until one is short, empty or brings nothing new."""
        found: list[Job] = []
        while True:
            if number > MAX_PAGES:
                self.notes.append(f"{self._kind}s past page {MAX_PAGES} of GitLab's listing (read no further)")
                return found
            jobs, new, size = self._page(number)
            found += jobs
            if size and not new:
                self.notes.append(f"some {self._kind}s, maybe: GitLab's page {number} of {self._kind}s repeated "
                                  "items already read, so the listing was stopped there")
                return found
            if size < self._per_page:
                return found
            number += 1

    def start_rest(self) -> None:
        answer, page = self._first.result()
        self._per_page = _header_number(answer.headers, "X-Per-Page") or PER_PAGE
        self._total = _header_number(answer.headers, "X-Total")
        pages = _header_number(answer.headers, "X-Total-Pages")
        if pages and self._total is not None:  # never more pages than the count needs
            pages = min(pages, math.ceil(self._total / self._per_page) + 1)
        self.first_raw = page[0] if page else {}
        self._first_size = len(page)
        self._jobs_of_first, _ = self._take(answer, page)
        if len(page) < self._per_page:
            self._rest = []
        elif pages:
            self._counted_pages = min(pages, MAX_PAGES)
            self._rest = [self._pool.submit(self._page, n) for n in range(2, self._counted_pages + 1)]
        else:  # no count (past 10,000 items): one page after another
            self._rest = [self._pool.submit(lambda: (self._walk(2), 0, 0))]

    def result(self) -> list[Job]:
        if self._items is None:
            if self._rest is None:
                self.start_rest()
            items = list(self._jobs_of_first)
            last_size = self._first_size
            for rest in self._rest:
                jobs, _, last_size = rest.result()
                items.extend(jobs)
            if self._counted_pages and last_size >= self._per_page:
                items.extend(self._walk(self._counted_pages + 1))  # the pages shifted while being read
            if self._total is not None and len(self._seen) < self._total:
                self.notes.append(f"{self._total - len(self._seen)} of the {self._total} {self._kind}s GitLab "
                                  f"counted: its listing ended after {len(self._seen)}")
            self._items = items
        return self._items


def _header_number(headers: Mapping, name: str) -> int | None:
    text = str(headers.get(name) or "").strip()
    return int(text) if text.isdigit() else None


def _read_log_into(gl, project_id, job: Job, lines: int, redact: Callable[[str], str], notes: list[str]) -> None:
    try:
        job.log_tail = _read_log_tail(gl, project_id, job.id, lines, redact)
    except _READ_ERRORS as error:
        job.log_tail = None  # a missing log never stops the report
        notes.append(f"the log of job {job.name!r} ({_why(error)})")


def _read_log_tail(gl, project_id, job_id: int, lines: int, redact: Callable[[str], str]) -> str | None:
    """Ask for the last bytes only (HTTP Range); where the server sends the whole log, stream it and
    keep the end, leaving after LOG_SECONDS so that a huge log cannot hold the pipeline; a server
    that stalls is cut off at LOG_CUT_SECONDS (OutOfTime)."""
    path = f"/projects/{project_id}/jobs/{job_id}/trace"
    with deadline.bounded(LOG_CUT_SECONDS) as bound:
        try:
            response = gl.http_request("get", path, streamed=True, max_retries=MAX_RETRIES,
                                       extra_headers={"Range": f"bytes=-{logs.DEFAULT_MAX_BYTES}"})
        except gitlab.GitlabHttpError as error:
            if error.response_code == 416:  # an empty log has no last bytes
                return ""
            raise
        try:
            raw, complete = logs.tail_bytes(response.iter_content(chunk_size=64 * 1024),
                                            deadline=bound.deadline - LOG_CUT_SECONDS + LOG_SECONDS)
        finally:
            response.close()
    text = logs.clean(raw, lines=lines, redact=redact)
    if not complete:
        text += f"\n[databand-gitlab-reporter: stopped reading the log after {LOG_SECONDS} s; see logUrl]"
    return text


def list_pipelines(access: Access, project: str | int, *, updated_after: str, ref: str | None = None,
                   statuses: tuple[str, ...] = ()) -> list[dict]:
    """A project's pipelines updated since a time, oldest first. Pages are asked for by number, each
    read bounded like every GitLab read, until a page is short or brings nothing new."""
    gl = connect(access)
    encoded = gl.projects.get(project, lazy=True).encoded_id
    path = f"/projects/{encoded}/pipelines"
    found: dict[int, dict] = {}
    try:
        for status in statuses or (None,):
            query = {"updated_after": updated_after, "order_by": "id", "sort": "asc", "per_page": PER_PAGE}
            if ref:
                query["ref"] = ref
            if status:
                query["status"] = status
            for number in range(1, MAX_PAGES + 1):
                answer = get_json(gl, path, {**query, "page": number}, expect=list)
                page = _check_items(answer)
                new = [item for item in page if item["id"] not in found]
                found.update((item["id"], item) for item in new)
                if len(page) < (_header_number(answer.headers, "X-Per-Page") or PER_PAGE) or not new:
                    break
    except _READ_ERRORS as error:
        raise _explain(error, f"the pipelines of project {project}", "token") from None
    return [found[i] for i in sorted(found)]
