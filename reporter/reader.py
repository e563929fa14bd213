"""Reading one pipeline from GitLab with python-gitlab (its pagination, auth and retries).

A `read_api` token reads everything: the pipeline, all jobs with every retried attempt, the
bridges and the failed jobs' logs. A CI_JOB_TOKEN may only list the pipeline's jobs; then the
pipeline's own fields come from the job's CI_* variables and the rest is noted as left out.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import gitlab
import requests
from gitlab.client import GitlabList
from requests.adapters import HTTPAdapter

from reporter import __version__, ids, logs
from reporter.errors import GitLabError
from reporter.snapshot import Job, Pipeline, TestCase, TestResults, bounded, mark_attempts, parse_time, without

# Enough retries to ride out a short 502 or a 429 burst (python-gitlab doubles its wait from 0.1 s,
# or waits as Retry-After says), few enough to give up well within the pipeline's patience.
MAX_RETRIES = 5
TIMEOUT = 30
PER_PAGE = 100
# Requests in flight at once, for the whole process (backfill and downstream pipelines included):
# enough that a 10,000-job pipeline's pages and logs go out in a few waves, few enough for a small
# self-managed GitLab (python-gitlab waits out a 429 anyway). --gitlab-concurrency changes it.
IN_FLIGHT = 32
WORKERS = IN_FLIGHT  # threads of one pipeline's reading; the gate, not the threads, bounds requests
DOWNSTREAM_WORKERS = 4  # downstream pipelines read at once
LOG_SECONDS = 20  # reading one log never takes longer than this
DOWNSTREAM_DEPTH = 2  # a bridge's pipeline, and the bridges' pipelines of that one
MAX_TEST_CASES = 200  # per job; the counts are always complete
MAX_TEST_MESSAGE = 2000
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


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


class _GitLabAdapter(HTTPAdapter):
    """Every request to GitLab passes here: it must stay on GitLab's origin, and at most `in_flight`
    wait for an answer at once, across every thread and pipeline of the process."""

    def __init__(self, origin: tuple, gate: threading.BoundedSemaphore, **kwargs):
        super().__init__(**kwargs)
        self._origin, self._gate = origin, gate

    def send(self, request, *args, **kwargs):
        if _origin(request.url) != self._origin:
            scheme, host, port = _origin(request.url)
            raise ForeignURL(f"GitLab sent the reporter to {scheme}://{host}:{port}, away from the GitLab URL "
                             "it was given; it was not followed, so the token stayed home. Set GITLAB_URL "
                             "to the address GitLab really answers on")
        with self._gate:
            return super().send(request, *args, **kwargs)


_CLIENTS: dict[Access, object] = {}
_CLIENTS_LOCK = threading.Lock()


def connect(access: Access):
    """One python-gitlab client (and HTTP session) per GitLab and token, reused by every pipeline
    the process reads; one gate on requests in flight for all of them."""
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
    # One kept connection per request in flight: without it urllib3 keeps 10 and reconnects for the rest.
    adapter = _GitLabAdapter(_origin(access.url), threading.BoundedSemaphore(access.in_flight),
                             pool_connections=4, pool_maxsize=access.in_flight)
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return gitlab.Gitlab(
        access.url, ssl_verify=verify, timeout=TIMEOUT, per_page=PER_PAGE, retry_transient_errors=True,
        user_agent=f"databand-gitlab-reporter/{__version__}", session=session, **kwargs,
    )


def _cap_retry_after(response, *args, **kwargs):
    """python-gitlab sleeps as long as Retry-After says; an hour would hold the pipeline for an hour."""
    value = response.headers.get("Retry-After")
    if value is not None:
        try:
            seconds = float(value)
        except ValueError:  # an HTTP date: rare from GitLab; wait the longest we allow
            seconds = MAX_RETRY_AFTER
        response.headers["Retry-After"] = str(int(min(max(seconds, 0), MAX_RETRY_AFTER)))
    return response


def _downstream_ref(raw: Mapping) -> tuple[str | int, int] | None:
    downstream = raw.get("downstream_pipeline")
    if not isinstance(downstream, Mapping) or downstream.get("id") is None:
        return None
    project = downstream.get("project_id")
    if project is None:
        project_url = _project_url(str(downstream.get("web_url") or ""))
        project = urlsplit(project_url).path.strip("/")
    return (project, int(downstream["id"])) if project else None


def _job(raw: Mapping, kind: str) -> Job:
    runner, tag_list = _mapping(raw.get("runner")), raw.get("tag_list")
    # GitLab's jobs API does not list a job's environment (its Job entity has no such field); where
    # an answer does carry one, as an object or a bare name, it is used.
    environment = raw.get("environment")
    environment = {"name": environment} if isinstance(environment, str) else _mapping(environment)
    return Job(
        id=int(raw["id"]),
        name=str(raw.get("name") or f"job {raw['id']}"),
        stage=str(raw.get("stage") or "unknown"),
        status=str(raw.get("status") or "unknown"),
        allow_failure=bool(raw.get("allow_failure")),
        kind=kind,
        created_at=parse_time(raw.get("created_at")),
        started_at=parse_time(raw.get("started_at")),
        finished_at=parse_time(raw.get("finished_at")),
        failure_reason=raw.get("failure_reason"),
        web_url=raw.get("web_url"),
        downstream_ref=_downstream_ref(raw) if kind == "bridge" else None,
        queued_seconds=_context_number(raw.get("queued_duration")),
        duration_seconds=_context_number(raw.get("duration")),
        coverage=_context_number(raw.get("coverage")),
        runner_id=_context_id(runner.get("id")),
        runner_description=_context_text(runner.get("description")),
        tag_list=tuple(filter(None, map(_context_text, tag_list if isinstance(tag_list, list) else ()))),
        environment=_context_text(environment.get("name")),
        environment_action=_context_text(environment.get("action")),
        commit_title=_context_text(_mapping(raw.get("commit")).get("title")),
    )


# GitLab's pipeline and job objects are read for context too, and a field of a type GitLab does
# not document (or null, or missing) only leaves that tag out: these never raise.

def _mapping(value: object) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _context_number(value: object) -> float | None:
    """Seconds or a coverage percentage; GitLab sends a number, or for a pipeline's coverage a string."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0 <= value < 1e12 else None  # also drops NaN and infinity


def _context_id(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _context_text(value: object) -> str | None:
    """Text as GitLab sent it, not yet masked. Interned: 10,000 jobs carry the same commit title and
    a few runner descriptions, and each page's JSON would otherwise hold a copy per job."""
    return sys.intern(value) if isinstance(value, str) and value else None


_WEB_PIPELINE = re.compile(r"^(?P<project>.+?)(?:/-)?/pipelines/\d+/?$")


def _project_url(pipeline_web_url: str) -> str:
    match = _WEB_PIPELINE.match(pipeline_web_url or "")
    return match["project"] if match else pipeline_web_url


def _explain(error: Exception, what: str, token_kind: str) -> GitLabError:
    if isinstance(error, ForeignURL):
        return GitLabError(f"While reading {what}: {error}.")
    code = getattr(error, "response_code", None)
    fix = "set GITLAB_TOKEN to a token with read_api" if token_kind == "CI_JOB_TOKEN" else \
        "the token needs the read_api scope and at least Reporter access to the project"
    if isinstance(error, gitlab.GitlabParsingError) or isinstance(error, ValueError):
        return GitLabError(f"GitLab's answer while reading {what} was not valid JSON (cut short, or a proxy "
                           "answered instead); try again, or check GITLAB_URL.")
    if isinstance(error, gitlab.GitlabAuthenticationError) or code == 401:
        return GitLabError(f"GitLab refused the {token_kind} (401) while reading {what}: check that "
                           "GITLAB_TOKEN is valid and not expired.")
    if code == 403:
        return GitLabError(f"GitLab forbade reading {what} (403): {fix}.")
    if code == 404:
        return GitLabError(f"GitLab has no {what} (404), or the {token_kind} may not see it: "
                           f"check the project and pipeline ids ({fix}).")
    if code:
        return GitLabError(f"GitLab answered {code} while reading {what}; try again later.")
    return GitLabError(f"Could not reach GitLab while reading {what}: {type(error).__name__}. "
                       "Check GITLAB_URL / CI_SERVER_URL and the network.")


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
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            logs_read: list = []

            def read_logs_of(jobs: list[Job]) -> None:
                for job in jobs:
                    if job.status == "failed" and job.kind == "job":
                        logs_read.append(pool.submit(_read_log_into, gl, encoded, job, log_lines, redact))

            on_page = read_logs_of if access.token and log_lines > 0 else None
            raw_pipeline = pool.submit(gl.http_get, base, max_retries=MAX_RETRIES) if access.token else None
            summary = pool.submit(_optional_get, gl, f"{base}/test_report_summary") if access.token and tests \
                else None
            raw_jobs = _Listing(gl, pool, f"{base}/jobs", {"include_retried": "true"}, "job", on_page, exclude)
            raw_bridges = _Listing(gl, pool, f"{base}/bridges", {}, "bridge", exclude=exclude) if access.token else None
            for listing in (raw_jobs, raw_bridges):
                if listing is not None:
                    listing.start_rest()  # both lists' other pages go out together
            if raw_pipeline is not None:
                pipeline = _pipeline_from_api(access.url, raw_pipeline.result(), project)
            else:
                pipeline = _pipeline_from_ci(access.url, project, pipeline_id, ci or {})
            jobs = list(raw_jobs.result())
            if raw_bridges is not None:
                jobs += raw_bridges.result()
            pipeline.jobs = mark_attempts(sorted(jobs, key=lambda j: j.id))
            later = []
            if summary is not None:
                later.append(pool.submit(_read_tests, gl, base, summary.result(), pipeline, redact))
            if access.token:
                later.append(pool.submit(_read_downstream, access, gl, pipeline, depth, log_lines, redact, tests,
                                         exclude))
            for future in [*logs_read, *later]:
                future.result()
    except (gitlab.GitlabError, OSError, ValueError) as error:  # refusals, connection failures, broken JSON
        raise _explain(error, what, token_kind) from None

    if not access.token:
        pipeline.left_out.append("bridges (trigger jobs) and failed jobs' logs: CI_JOB_TOKEN may only "
                                 "list jobs; set GITLAB_TOKEN (read_api) to add them")
        # Outside a job (a resend with only CI_JOB_TOKEN) the ref and commit come from the jobs.
        first = raw_jobs.first_raw
        pipeline.ref = pipeline.ref or str(first.get("ref") or "")
        pipeline.sha = pipeline.sha or str((first.get("pipeline") or {}).get("sha") or "")
    _add_context(pipeline, ci or {}, redact, read_api=bool(access.token))
    return pipeline


def _optional_get(gl, path: str) -> Mapping | None:
    """A read whose failure only leaves something out (test reports need a newer GitLab, say)."""
    try:
        return gl.http_get(path, max_retries=MAX_RETRIES)
    except (gitlab.GitlabError, OSError, ValueError):
        return None


def _read_tests(gl, base: str, summary: Mapping | None, pipeline: Pipeline, redact: Callable[[str], str]) -> None:
    """Attach GitLab's JUnit results to the jobs that produced them (the summary names their ids)."""
    suites = [s for s in (summary or {}).get("test_suites") or [] if s.get("total_count")]
    if not suites:
        return
    report = _optional_get(gl, f"{base}/test_report") or {}
    cases_by_suite = {s.get("name"): s.get("test_cases") or [] for s in report.get("test_suites") or []}
    by_id = {job.id: job for job in pipeline.jobs}
    for suite in suites:
        build_ids = [i for i in suite.get("build_ids") or [] if i in by_id]
        results = _test_results(suite, cases_by_suite.get(suite.get("name"), []), len(build_ids), redact)
        for build_id in build_ids:
            by_id[build_id].tests = results
    if suites and not report:
        pipeline.left_out.append("test cases (the test report could not be read; counts are there)")


def _test_results(suite: Mapping, raw_cases: list, shared_by: int, redact: Callable[[str], str]) -> TestResults:
    counts = {key: int(suite.get(f"{key}_count") or 0) for key in ("total", "success", "failed", "skipped", "error")}
    # Failures first: when a suite is larger than the cap, they are the cases worth keeping.
    ordered = sorted(raw_cases, key=lambda c: c.get("status") not in ("failed", "error"))
    cases = [TestCase(
        name=str(c.get("name") or "unnamed"), status=str(c.get("status") or "unknown"),
        classname=c.get("classname"),
        message=redact(str(c.get("system_output")))[:MAX_TEST_MESSAGE] if c.get("system_output") and
        c.get("status") in ("failed", "error") else None,
        seconds=c.get("execution_time"),
    ) for c in ordered[:MAX_TEST_CASES]]
    return TestResults(suite=str(suite.get("name") or ""), counts=counts, cases=cases, shared_by=max(shared_by, 1))


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
            pipeline.left_out.append(f"downstream pipeline {pipeline_id} of bridge {bridge.name!r}: {error}")
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
    """All pages of one list endpoint, fetched on a shared pool; `result()` joins them in order.

    Each page becomes Job objects as soon as it arrives: GitLab's job JSON, parsed, is several
    times larger than what the report needs, and 10,000 of them would not fit the memory budget.
    """

    def __init__(self, gl, pool: ThreadPoolExecutor, path: str, params: dict, kind: str,
                 on_page: Callable[[list[Job]], None] | None = None, exclude: tuple[str, ...] = ()):
        self._gl, self._pool, self._path, self._params, self._kind = gl, pool, path, params, kind
        self._exclude = exclude  # --exclude-job patterns: left out before anything is read for them
        self._on_page = on_page  # called with each page's jobs as soon as they are known
        self.first_raw: dict = {}  # the first item as GitLab sent it (a job token's ref and commit)
        self._first = pool.submit(self._page, 1, False)
        self._rest = None
        self._items = None

    def _page(self, number: int, follow: bool):
        # One page through python-gitlab (auth, retries, JSON); follow=True walks the Link headers.
        return GitlabList(self._gl, self._gl.api_url + self._path,
                          {**self._params, "page": number, "per_page": PER_PAGE},
                          get_next=follow, max_retries=MAX_RETRIES)

    def _jobs(self, page) -> list[Job]:
        jobs = without([_job(raw, self._kind) for raw in page if raw.get("id") is not None], self._exclude)
        if self._on_page is not None:
            self._on_page(jobs)
        return jobs

    def start_rest(self) -> None:
        first = self._first.result()
        if first.total_pages:
            self._rest = [self._pool.submit(lambda n: self._jobs(self._page(n, False)), n)
                          for n in range(2, first.total_pages + 1)]
        elif first.next_page:
            self._rest = [self._pool.submit(lambda: self._jobs(self._page(first.next_page, True)))]
        else:
            self._rest = []

    def result(self) -> list[Job]:
        if self._items is None:
            if self._rest is None:
                self.start_rest()
            page = list(self._first.result())
            self.first_raw = page[0] if page else {}
            items = self._jobs(page)
            for rest in self._rest:
                items.extend(rest.result())
            self._items = items
        return self._items


def _read_log_into(gl, project_id, job: Job, lines: int, redact: Callable[[str], str]) -> None:
    job.log_tail = _read_log_tail(gl, project_id, job.id, lines, redact)


def _read_log_tail(gl, project_id, job_id: int, lines: int, redact: Callable[[str], str]) -> str | None:
    """Ask for the last bytes only (HTTP Range); where the server sends the whole log, stream it and
    keep the end, giving up after LOG_SECONDS so that a huge log cannot hold the pipeline."""
    try:
        response = gl.http_get(f"/projects/{project_id}/jobs/{job_id}/trace", streamed=True, raw=True,
                               extra_headers={"Range": f"bytes=-{logs.DEFAULT_MAX_BYTES}"},
                               max_retries=MAX_RETRIES)
    except gitlab.GitlabHttpError as error:
        if error.response_code == 416:  # an empty log has no last bytes
            return ""
        return None  # a missing log never stops the report
    except (gitlab.GitlabError, OSError):
        return None
    try:
        raw, complete = logs.tail_bytes(response.iter_content(chunk_size=64 * 1024),
                                        deadline=time.monotonic() + LOG_SECONDS)
    except OSError:
        return None
    finally:
        response.close()
    text = logs.clean(raw, lines=lines, redact=redact)
    if not complete:
        text += f"\n[databand-gitlab-reporter: stopped reading the log after {LOG_SECONDS} s; see logUrl]"
    return text


def _pipeline_from_api(url: str, raw: Mapping, project: str | int) -> Pipeline:
    web_url = str(raw.get("web_url") or "")
    project_url = _project_url(web_url)
    project_id = raw.get("project_id") or (project if isinstance(project, int) else None)
    if project_id is None:
        raise GitLabError(f"GitLab's pipeline {raw.get('id')} has no project_id; pass --project as a number.")
    return Pipeline(
        server=ids.server_key(url),
        project_id=int(project_id),
        project_path=urlsplit(project_url).path.strip("/"),
        project_url=project_url,
        id=int(raw.get("id") or 0),
        iid=raw.get("iid"),
        ref=str(raw.get("ref") or ""),
        sha=str(raw.get("sha") or ""),
        tag=bool(raw.get("tag")),
        source=raw.get("source"),
        status=str(raw.get("status") or "unknown"),
        web_url=web_url,
        created_at=parse_time(raw.get("created_at")),
        started_at=parse_time(raw.get("started_at")),
        finished_at=parse_time(raw.get("finished_at")),
        before_sha=_context_text(raw.get("before_sha")),
        user=_context_text(_mapping(raw.get("user")).get("username")),
        name=_context_text(raw.get("name")),
        queued_seconds=_context_number(raw.get("queued_duration")),
        duration_seconds=_context_number(raw.get("duration")),
        coverage=_context_number(raw.get("coverage")),
    )


def _ci_describes(ci: Mapping[str, str], pipeline_id: int) -> bool:
    """Whether the CI_* variables are those of a job of this pipeline (a resend from another
    pipeline's job has that pipeline's commit, ref and user in them)."""
    return bool(ci) and ci.get("CI_PIPELINE_ID", str(pipeline_id)) == str(pipeline_id)


def _pipeline_from_ci(url: str, project: str | int, pipeline_id: int, ci: Mapping[str, str]) -> Pipeline:
    project_url = ci.get("CI_PROJECT_URL") or f"{url.rstrip('/')}/{ci.get('CI_PROJECT_PATH', project)}"
    own = ci if _ci_describes(ci, pipeline_id) else {}  # otherwise the jobs give the ref and commit
    return Pipeline(
        server=ids.server_key(url),
        project_id=int(ci.get("CI_PROJECT_ID") or project),
        project_path=ci.get("CI_PROJECT_PATH") or urlsplit(project_url).path.strip("/"),
        project_url=project_url,
        id=pipeline_id,
        iid=int(own["CI_PIPELINE_IID"]) if own.get("CI_PIPELINE_IID", "").isdigit() else None,
        ref=own.get("CI_COMMIT_TAG") or own.get("CI_COMMIT_REF_NAME", ""),
        sha=own.get("CI_COMMIT_SHA", ""),
        tag=bool(own.get("CI_COMMIT_TAG")),
        source=own.get("CI_PIPELINE_SOURCE"),
        status="running",  # the job reading it is part of it
        web_url=own.get("CI_PIPELINE_URL") or f"{project_url}/-/pipelines/{pipeline_id}",
        created_at=parse_time(own.get("CI_PIPELINE_CREATED_AT")),
    )


# GitLab keeps a merge request's refs in the project the merge request belongs to, so a pipeline
# on one of them is in that project; `train` is a merge train's.
_MERGE_REQUEST_REF = re.compile(r"^refs/merge-requests/(?P<iid>[1-9][0-9]{0,9})/(?:head|merge|train)$")
_NO_COMMIT = "0" * 40  # GitLab's before_sha for a new branch, a tag, or a pipeline that no push made


def _add_context(pipeline: Pipeline, ci: Mapping[str, str], redact: Callable[[str], str], read_api: bool) -> None:
    """Fill what GitLab's pipeline object lacks from the jobs and, when the reporting job belongs to
    this pipeline, its CI_* variables; then mask every free text and cut it (in that order, so that
    a cut never leaves part of a secret masking would no longer recognise)."""
    ci_here = _ci_describes(ci, pipeline.id)
    if ci_here:
        pipeline.user = pipeline.user or ci.get("GITLAB_USER_LOGIN") or None
        pipeline.name = pipeline.name or ci.get("CI_PIPELINE_NAME") or None
        pipeline.schedule = pipeline.schedule or ci.get("CI_PIPELINE_SCHEDULE_DESCRIPTION") or None
        pipeline.commit_title = pipeline.commit_title or ci.get("CI_COMMIT_TITLE") or None
        iid, project_url = ci.get("CI_MERGE_REQUEST_IID", ""), ci.get("CI_MERGE_REQUEST_PROJECT_URL")
        if iid.isdigit() and pipeline.merge_request_iid is None:
            pipeline.merge_request_iid = int(iid)
            pipeline.merge_request_url = f"{project_url.rstrip('/')}/-/merge_requests/{iid}" if project_url else None
    # Every job of a pipeline carries the pipeline's commit (GitLab's pipeline object has no title).
    pipeline.commit_title = pipeline.commit_title or next((j.commit_title for j in pipeline.jobs if j.commit_title),
                                                          None)
    match = _MERGE_REQUEST_REF.match(pipeline.ref or "")
    if match and pipeline.merge_request_iid is None:
        pipeline.merge_request_iid = int(match["iid"])
    if pipeline.merge_request_iid is not None and not pipeline.merge_request_url and match:
        pipeline.merge_request_url = f"{pipeline.project_url}/-/merge_requests/{pipeline.merge_request_iid}"
    if pipeline.before_sha == _NO_COMMIT:
        pipeline.before_sha = None

    masked: dict[str, str] = {}  # a few distinct texts repeat over thousands of jobs

    def clean(text: str | None) -> str | None:
        if not text:
            return None
        if text not in masked:
            masked[text] = bounded(redact(text))
        return masked[text]

    for key in ("commit_title", "before_sha", "merge_request_url", "user", "name", "schedule"):
        setattr(pipeline, key, clean(getattr(pipeline, key)))
    for job in pipeline.jobs:
        job.commit_title = clean(job.commit_title)
        job.runner_description = clean(job.runner_description)
        job.environment = clean(job.environment)
        job.environment_action = clean(job.environment_action)
        if job.tag_list:
            job.tag_list = tuple(clean(tag) for tag in job.tag_list)

    if not read_api:
        unseen = ["duration", "queued duration", "coverage", "previous commit (before_sha)"]
        if pipeline.user is None:
            unseen.append("who started it")
        if not ci_here:
            unseen.append("its name (workflow:name) and schedule")
        pipeline.left_out.append(f"the pipeline's {', '.join(unseen[:-1])} and {unseen[-1]}: CI_JOB_TOKEN may "
                                 "not read GitLab's pipeline object; set GITLAB_TOKEN (read_api) to add them")


def list_pipelines(access: Access, project: str | int, *, updated_after: str, ref: str | None = None,
                   statuses: tuple[str, ...] = ()) -> list[dict]:
    """A project's pipelines updated since a time, oldest first (python-gitlab follows the pages)."""
    gl = connect(access)
    encoded = gl.projects.get(project, lazy=True).encoded_id
    found: dict[int, dict] = {}
    try:
        for status in statuses or (None,):
            query = {"updated_after": updated_after, "order_by": "id", "sort": "asc", "per_page": PER_PAGE}
            if ref:
                query["ref"] = ref
            if status:
                query["status"] = status
            for item in gl.http_list(f"/projects/{encoded}/pipelines", iterator=True, max_retries=MAX_RETRIES,
                                     **query):
                found[int(item["id"])] = item
    except (gitlab.GitlabError, OSError, ValueError) as error:
        raise _explain(error, f"the pipelines of project {project}", "token") from None
    return [found[i] for i in sorted(found)]
