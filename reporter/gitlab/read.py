"""Reading one pipeline (and a project's pipelines) from GitLab into a snapshot.

A `read_api` token reads everything: the pipeline, all jobs with every retried attempt, the
bridges, the test report and the failed jobs' logs. A CI_JOB_TOKEN may only list the pipeline's
jobs; then the pipeline's own fields come from the job's CI context and the rest is noted as
left out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

import gitlab

from reporter import ids, logs, timebound
from reporter.errors import GitLabError
from reporter.facets import UNKNOWN_VERSION
from reporter.gitlab import errors, http, needs, parse
from reporter.gitlab.errors import Context, ReadError
from reporter.gitlab.http import Answer, Client
from reporter.gitlab.pager import Pager
from reporter.process import signals_to_main
from reporter.settings import CIContext
from reporter.snapshot import Job, Pipeline, mark_attempts, without

WORKERS = http.IN_FLIGHT  # threads of one pipeline's reading; the connection pool, not the threads, bounds requests
DOWNSTREAM_WORKERS = 4  # downstream pipelines read at once
DOWNSTREAM_DEPTH = 2  # a bridge's pipeline, and the bridges' pipelines of that one


def _check_pipeline(answer: Answer) -> dict:
    raw = answer.data
    assert isinstance(raw, dict)
    for key in ("id", "project_id"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise http.wrong(answer, f"has {http.json_type(value)} as {key} where a number was due")
    if raw.get("id") is None:
        raise http.wrong(answer, "has no pipeline id")
    return raw


def read_pipeline(
    client: Client,
    project: str | int,
    pipeline_id: int,
    *,
    context: CIContext | None = None,
    log_lines: int = logs.DEFAULT_LINES,
    redact: Callable[[str], str] = lambda s: s,
    depth: int = DOWNSTREAM_DEPTH,
    tests: bool = True,
    workers: int | None = None,
    exclude: tuple[str, ...] = (),
    version: bool = True,
) -> Pipeline:
    """Read a pipeline into a snapshot; `context` is the reporting job's, needed with a job token.

    Everything goes out as soon as it can, on one bounded pool: the pipeline with the first page
    of jobs and of bridges, the failed jobs alone (and the test report's summary); then every
    other page and each failed job's log; the test cases and downstream pipelines once the jobs
    are known. So the wait is about two round trips whatever the pipeline's size, as long as the
    pool is wide enough (past 10,000 jobs GitLab stops sending the page count, and the
    pages past the first are then followed one after another).
    """
    access = client.access
    context = context or CIContext()
    what = Context(f"pipeline {pipeline_id} of project {project}", access.token_kind, access.url_source)
    encoded = client.encoded(project)
    base = f"/projects/{encoded}/pipelines/{pipeline_id}"
    notes: list[str] = []  # what optional reads could not add; list.append is atomic across threads

    def jobs_of(kind: str) -> Callable[[list[dict]], list[Job]]:
        return lambda page: without([parse.job(raw, kind) for raw in page], exclude)

    try:
        # A thread for every request the bound lets be in flight (--gitlab-concurrency above 32 too).
        with ThreadPoolExecutor(max_workers=workers or max(WORKERS, access.in_flight),
                                initializer=signals_to_main) as pool:
            logs_read: list[Future[None]] = []
            read_for: dict[int, Job] = {}  # job id -> the job whose log_tail the log went into
            lock = threading.Lock()

            def read_logs_of(jobs: list[Job]) -> None:
                for job in jobs:
                    if job.status == "failed" and job.kind == "job":
                        with lock:
                            if job.id in read_for:  # listed failed twice: by the failed listing and a page
                                continue
                            read_for[job.id] = job
                        logs_read.append(pool.submit(_read_log_into, client, encoded, job, log_lines, redact, notes))

            on_page = read_logs_of if access.token and log_lines > 0 else None
            # The failed jobs, asked for beside page 1: their logs go out with the other pages, not a
            # wave after the last page (GitLab lists newest first; a pipeline's failures are often
            # at its end). The full listing stays the record: a job failed after this listing still
            # has its log read from its page, and a log read here goes only to a job its page says failed.
            failed = Pager(client, pool, f"{base}/jobs", {"scope[]": "failed", "include_retried": "true"}, "job",
                           jobs_of("job"), on_page) if on_page is not None else None
            raw_pipeline = pool.submit(http.get_json, client, base) if access.token else None
            asked = pool.submit(gitlab_version, client, notes) \
                if version and access.token and not _version_in(context, access.url) else None
            # The needs graph beside the job pages, at once where the job's CI context names the
            # pipeline's path and iid, else once the pipeline's object has.
            ours = context.describes(project, pipeline_id) and \
                ids.server_key(context.server_url or access.url) == ids.server_key(access.url)
            graph = pool.submit(needs.read_or_note, client, context.project_path, context.pipeline_iid, redact, notes) \
                if access.token and ours and context.project_path and context.pipeline_iid is not None else None
            summary = pool.submit(_optional_json, client, f"{base}/test_report_summary", "the test report summary",
                                  notes) if access.token and tests else None
            raw_jobs = Pager(client, pool, f"{base}/jobs", {"include_retried": "true"}, "job", jobs_of("job"),
                             on_page)
            # /bridges declares no include_retried, but hands its raw query to the same finder as
            # /jobs, which tests the parameter for truth (lib/api/ci/pipelines.rb, Ci::JobsFinder):
            # so every attempt of a retried trigger job is listed too.
            raw_bridges = Pager(client, pool, f"{base}/bridges", {"include_retried": "true"}, "bridge",
                                jobs_of("bridge")) if access.token else None
            raw_jobs.start_rest()  # both lists' other pages go out together
            unread: ReadError | None = None  # the bridges' listing: the report goes without them
            if raw_bridges is not None:
                try:
                    raw_bridges.start_rest()
                except ReadError as error:
                    unread = error
            failed = _started(failed)
            if raw_pipeline is not None:
                answer = raw_pipeline.result()
                try:
                    pipeline = parse.pipeline_from_api(access.url, _check_pipeline(answer), project)
                except parse.ShapeError as error:
                    raise http.wrong(answer, f"has a field of an unexpected type ({error})") from None
                if graph is None:
                    graph = pool.submit(needs.read_or_note, client, pipeline.project_path, pipeline.iid, redact,
                                        notes)
            else:
                try:
                    pipeline = parse.pipeline_from_jobs(access.url, project, pipeline_id, context, raw_jobs.first_raw)
                except parse.ShapeError as error:
                    raise GitLabError(f"While reading {what.what}: {error}.") from None
                needs.read_or_note(client, pipeline.project_path, pipeline.iid, redact, notes)  # says why not
            jobs = list(raw_jobs.result())
            if raw_bridges is not None and unread is None:
                try:
                    jobs += raw_bridges.result()
                except ReadError as error:
                    unread = error
            if not raw_jobs.count and not (raw_bridges and raw_bridges.count and unread is None):
                if unread is not None:  # nothing listed at all: the bridges' refusal says why first
                    raise unread
                raise GitLabError(_no_jobs(pipeline_id, project, what, context))
            _started(failed, whole=True)
            if unread is not None:
                notes.append(f"bridges (trigger jobs) and their downstream pipelines ({errors.why(unread)})")
            pipeline.jobs = mark_attempts(sorted(jobs, key=lambda j: j.id))
            later = []
            if summary is not None:
                later.append(pool.submit(_read_tests, client, base, summary.result(), pipeline, redact, notes,
                                         f"--project {project} --pipeline {pipeline_id}"))
            if access.token:
                later.append(pool.submit(_read_downstream, client, pipeline, depth, log_lines, redact, tests,
                                         exclude))
            for future in [*logs_read, *later]:
                future.result()
            for job in pipeline.jobs:  # the logs read for the failed listing's copy of a job
                if job.status == "failed" and job.kind == "job" and read_for.get(job.id, job) is not job:
                    job.log_tail = read_for[job.id].log_tail
            if graph is not None and (found := graph.result()) is not None:
                needs.apply(found, pipeline.jobs)
                notes.extend(found.notes)
            if asked is not None:
                pipeline.gitlab_version = asked.result()
    except ReadError as error:  # refusals, connection failures, time-outs, wrong answers
        raise errors.message(error, what) from None

    for listing in (raw_jobs, raw_bridges):
        if listing is not None:
            pipeline.left_out.extend(listing.notes)
    pipeline.left_out.extend(notes)
    if not access.token:
        pipeline.left_out.append("bridges (trigger jobs) and failed jobs' logs: CI_JOB_TOKEN may only "
                                 "list jobs; set GITLAB_TOKEN (read_api) to add them")
    parse.add_context(pipeline, context, redact, read_api=bool(access.token))
    return pipeline


def _version_in(context: CIContext, url: str) -> bool:
    """The job's CI_SERVER_VERSION is this GitLab's (parse.add_context takes it then)."""
    return bool(context.server_version) and ids.server_key(context.server_url or url) == ids.server_key(url)


def gitlab_version(client: Client, notes: list[str]) -> str | None:
    """GitLab's version for the processing_engine facet, outside a job (no CI_SERVER_VERSION): GET
    /version once per client, whatever the pipelines and downstream pipelines it reads; a failure
    is one note, and the facet says "unknown"."""
    with client.once.lock:
        if "version" not in client.once.values:
            try:
                answer = http.get_json(client, "/version").data
                version = answer.get("version") if isinstance(answer, dict) else None
                client.once.values["version"] = version if isinstance(version, str) and version.strip() else None
                if client.once.values["version"] is None:
                    notes.append(f"GitLab's version (GET /version named none; {UNKNOWN_VERSION!r} stands in "
                                 "for processing_engine's)")
            except ReadError as error:
                client.once.values["version"] = None
                notes.append(f"GitLab's version (GET /version: {errors.why(error)}; {UNKNOWN_VERSION!r} stands in "
                             "for processing_engine's)")
        found = client.once.values["version"]
        return found if isinstance(found, str) else None


def _started(listing: Pager | None, whole: bool = False) -> Pager | None:
    """The failed jobs' listing, its other pages sent (or all of it read, `whole`). It is pages of
    the same listing, so it fails as they would; but a GitLab refusing the filter itself (400) only
    loses the head start: the full listing reads every failed job's log anyway."""
    if listing is None:
        return None
    try:
        listing.result() if whole else listing.start_rest()
    except ReadError as error:
        if error.kind == errors.REFUSED and error.status == 400:
            return None
        raise
    return listing


def _no_jobs(pipeline_id: int, project: str | int, what: Context, context: CIContext) -> str:
    """GitLab creates no pipeline without a job, and answers a caller who may read the pipeline but
    not its jobs with an empty list, not an error (Ci::JobsFinder): so an empty list is that."""
    own = context.job_id is not None and context.pipeline_id == pipeline_id
    seen = f", though this job ({context.job_id}) runs in it" if own else ""
    fix = ("the CI_JOB_TOKEN of a job of this pipeline lists them; outside it set GITLAB_TOKEN to a token "
           "with read_api" if what.token_kind == "CI_JOB_TOKEN" else
           "give the token's user at least the Reporter role in the project")
    return (f"GitLab listed no jobs for pipeline {pipeline_id} of project {project}{seen}: every pipeline has "
            f"at least one, so the {what.token_kind} may read the pipeline but not its jobs (GitLab answers "
            f"an empty list then, not an error); {fix}. Nothing was sent.")


def _optional_json(client: Client, path: str, what: str, notes: list[str]) -> Mapping | None:
    """A read whose failure only leaves something out, said in the summary. A 404 is GitLab without
    that feature (test reports need a newer GitLab), not worth a note."""
    try:
        data = http.get_json(client, path).data
    except ReadError as error:
        if not (error.kind == errors.REFUSED and error.status == 404):
            notes.append(f"{what} ({errors.why(error)})")
        return None
    assert isinstance(data, dict)
    return data


def _read_tests(client: Client, base: str, summary: Mapping | None, pipeline: Pipeline,
                redact: Callable[[str], str], notes: list[str], resend_ids: str) -> None:
    """Attach GitLab's JUnit results to the jobs that produced them (the summary names their ids).

    A finished job with a JUnit report whose id no suite names was not processed yet by GitLab's
    background worker (it finished moments before the report): the summary is asked for once more
    after `bounds.tests_lag` seconds (within the budget), and what is still missing is said."""
    try:
        if _unprocessed(pipeline, summary) and _wait_within(client, client.bounds.tests_lag):
            summary = _optional_json(client, f"{base}/test_report_summary", "the test report summary", notes) \
                or summary
        _attach_tests(client, base, summary, pipeline, redact, notes)
        late = _unprocessed(pipeline, summary)
        if late:
            names = ", ".join(sorted({repr(job.name) for job in late}))
            notes.append(f"test results of {names} (GitLab had not processed their JUnit reports yet: they finished "
                         f"moments before the report; send it again later: resend {resend_ids})")
    except parse.ShapeError:
        # Fields of the wrong type inside the report: the jobs go without test results.
        for job in pipeline.jobs:
            job.tests = None
        notes.append("test results (GitLab's test report has fields of an unexpected type)")


def _unprocessed(pipeline: Pipeline, summary: Mapping | None) -> list[Job]:
    """Finished jobs with a JUnit report that no suite of the summary names."""
    named = {i for s in _list((summary or {}).get("test_suites")) if isinstance(s, Mapping)
             for i in _list(s.get("build_ids")) if isinstance(i, int)}
    return [job for job in pipeline.jobs if job.junit and job.kind == "job" and job.id not in named
            and job.status in ("success", "failed") and not job.retried]


def _wait_within(client: Client, seconds: float) -> bool:
    """Wait `seconds`, unless the command's budget or a signal ends sooner; True once waited."""
    left = client.budget.left() if client.budget is not None else seconds
    if seconds <= 0 or left < seconds + 5:  # no time left for the read after it
        return False
    return not timebound.stopped().wait(seconds)


def _list(value: object) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise parse.ShapeError("a list is not a list")
    return value


def _attach_tests(client: Client, base: str, summary: Mapping | None, pipeline: Pipeline,
                  redact: Callable[[str], str], notes: list[str]) -> None:
    suites = _list((summary or {}).get("test_suites"))
    if not all(isinstance(s, Mapping) for s in suites):
        raise parse.ShapeError("a test suite is not an object")
    suites = [s for s in suites if s.get("total_count")]
    if not suites:
        return
    try:
        answer = http.get_json(client, f"{base}/test_report").data
        report = answer if isinstance(answer, dict) else {}
    except ReadError as error:
        notes.append(f"test cases (the test report could not be read: {errors.why(error)}; the counts are there)")
        report = {}
    full = _list(report.get("test_suites"))
    if not all(isinstance(s, Mapping) for s in full):
        raise parse.ShapeError("a test suite is not an object")
    cases_by_suite = {str(s.get("name")): _list(s.get("test_cases")) for s in full}
    by_id = {job.id: job for job in pipeline.jobs}
    for suite in suites:
        build_ids = [i for i in _list(suite.get("build_ids")) if isinstance(i, int) and i in by_id]
        results = parse.test_results(suite, cases_by_suite.get(str(suite.get("name")), []), len(build_ids), redact)
        for build_id in build_ids:
            by_id[build_id].tests = results


def _read_downstream(client: Client, pipeline: Pipeline, depth: int, log_lines: int,
                     redact: Callable[[str], str], tests: bool, exclude: tuple[str, ...]) -> None:
    """Child and multi-project pipelines of the bridges, read the same way (on the same client and
    budget), down to `depth` levels."""
    bridges = [job for job in pipeline.jobs if job.downstream_ref]
    if not bridges:
        return
    if depth <= 0:
        pipeline.left_out.append(f"{len(bridges)} downstream pipeline(s) deeper than --downstream-depth")
        return

    def read(bridge: Job) -> None:
        assert bridge.downstream_ref is not None
        project, pipeline_id = bridge.downstream_ref
        try:
            child = read_pipeline(client, project, pipeline_id, log_lines=log_lines, redact=redact,
                                  depth=depth - 1, tests=tests, workers=DOWNSTREAM_WORKERS, exclude=exclude,
                                  version=False)  # the top pipeline's GitLab ran it, mostly
        except GitLabError as error:
            pipeline.left_out.append(f"downstream pipeline {pipeline_id} of bridge {bridge.name!r}: "
                                     f"{str(error).rstrip('.')}")
            return
        bridge.downstream = child

    # A few downstream pipelines at a time, each on a small pool of its own: bounded all together.
    with ThreadPoolExecutor(max_workers=min(DOWNSTREAM_WORKERS, len(bridges)), initializer=signals_to_main) as pool:
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


def _read_log_into(client: Client, project_id: str | int, job: Job, lines: int, redact: Callable[[str], str],
                   notes: list[str]) -> None:
    try:
        job.log_tail, reached_end = _read_log_tail(client, project_id, job.id, lines, redact)
    except ReadError as error:
        job.log_tail = None  # a missing log never stops the report
        notes.append(f"the log of job {job.name!r} ({errors.why(error)})")
        return
    if not reached_end:
        notes.append(f"the end of the log of job {job.name!r} (GitLab sends a log whole, from its start, and "
                     f"{client.bounds.log:g} s of it did not reach the end: the lines sent are from the middle)")


def _read_log_tail(client: Client, project_id: str | int, job_id: int, lines: int,
                   redact: Callable[[str], str]) -> tuple[str, bool]:
    """The last lines of a job's log, and whether they are its end. GitLab's log endpoint has no
    Range support: it sends the whole log, so it is streamed and only a window of its end kept,
    left after `bounds.log` so that a huge log cannot hold the pipeline (the lines kept are then
    from the middle, and say so first); a server that stalls is cut off at `bounds.log_cut`
    (within the command's budget). The Range header is still sent: a proxy in front of GitLab
    that honours it saves the body."""
    path = f"/projects/{project_id}/jobs/{job_id}/trace"
    shown = client.api_path(path)
    bounds = client.bounds
    read: logs.Window | None = None  # what came before the log was cut off or its connection failed
    try:
        with timebound.bounded(bounds.log_cut, client.budget) as bound:
            try:
                response = http.stream(client, path, headers={"Range": f"bytes=-{logs.DEFAULT_MAX_BYTES}"})
            except gitlab.GitlabHttpError as error:
                if error.response_code == 416:  # an empty log has no last bytes
                    return "", True
                raise
            try:
                failed: list[Exception] = []
                raw, complete = logs.tail_bytes(_until_failure(http.pieces(response, 256 * 1024), failed),
                                                deadline=bound.deadline - bounds.log_cut + bounds.log)
                if failed and not raw:
                    raise failed[0]
                if failed:
                    raw.ends_cut, complete = not raw.endswith(b"\n"), False
                read = raw
            finally:
                response.close()
    except http.READ_FAILURES as error:
        if read is None:
            raise http.failure(client, error, shown) from None
        raw, complete = read, False  # cut off by its bound: the tail so far is kept, and says so
    text = logs.clean(raw, lines=lines, redact=redact)
    if not complete:
        text = (f"[databand-gitlab-reporter: the end of this log was not reached within {bounds.log:g} s (GitLab "
                "sends a log whole, from its start); the lines below are from the middle, not the end: see "
                f"logUrl]\n{text}")
    return text, complete


def _until_failure(pieces: Iterator[bytes], failed: list[Exception]) -> Iterator[bytes]:
    """The pieces until a read fails; the failure is noted, so that what came before it is kept."""
    try:
        yield from pieces
    except http.READ_FAILURES as error:
        failed.append(error)


def list_pipelines(client: Client, project: str | int, *, updated_after: str, ref: str | None = None,
                   statuses: tuple[str, ...] = ()) -> list[dict]:
    """A project's pipelines updated since a time, oldest first, each listing within the client's
    budget (a sweep's or backfill's caller gives it one per listing)."""
    encoded = client.encoded(project)
    found: dict[int, dict] = {}
    try:
        with ThreadPoolExecutor(max_workers=4, initializer=signals_to_main) as pool:
            for status in statuses or (None,):
                query: dict[str, object] = {"updated_after": updated_after, "order_by": "id", "sort": "asc"}
                if ref:
                    query["ref"] = ref
                if status:
                    query["status"] = status
                pager: Pager[dict] = Pager(client, pool, f"/projects/{encoded}/pipelines", query, "pipeline",
                                           lambda page: page)
                found.update((item["id"], item) for item in pager.result())
    except ReadError as error:
        raise errors.message(error, Context(f"the pipelines of project {project}", client.access.token_kind,
                                            client.access.url_source, missing=f"project {project}")) from None
    return [found[i] for i in sorted(found)]
