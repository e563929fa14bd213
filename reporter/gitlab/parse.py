"""GitLab's JSON objects (pipeline, job, bridge, test report) into the snapshot, and the pipeline's
context from the reporting job's CI context where GitLab's objects lack it. Pure: no I/O.

A context field of a type GitLab does not document (or null, or missing) falls back to a default
or leaves its tag out. A field the snapshot cannot do without (an id, a count) of the wrong type
raises ShapeError, which the reader turns into a line naming the answer.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from reporter import ids
from reporter.settings import CIContext
from reporter.snapshot import Job, Pipeline, TestCase, TestResults, bounded, parse_time

MAX_TEST_CASES = 200  # per job; the counts are always complete
MAX_TEST_MESSAGE = 2000


class ShapeError(Exception):
    """A field GitLab's answer must have, missing or of another type; the text names the field."""


def _number(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ShapeError(f"{name} is not a number")
    try:
        return int(value)
    except ValueError:
        raise ShapeError(f"{name} is not a number") from None


def _time(value: object):  # noqa: ANN202 - parse_time's own type
    return parse_time(value) if isinstance(value, str) else None


def _downstream_ref(raw: Mapping) -> tuple[str | int, int] | None:
    downstream = raw.get("downstream_pipeline")
    if not isinstance(downstream, Mapping) or downstream.get("id") is None:
        return None
    project = downstream.get("project_id")
    if project is None:
        project_url = _project_url(str(downstream.get("web_url") or ""))
        project = urlsplit(project_url).path.strip("/")
    elif not isinstance(project, (int, str)) or isinstance(project, bool):
        raise ShapeError("downstream_pipeline.project_id is not a number")
    return (project, _number(downstream["id"], "downstream_pipeline.id")) if project else None


def job(raw: Mapping, kind: str) -> Job:
    runner, tag_list = _mapping(raw.get("runner")), raw.get("tag_list")
    # GitLab's jobs API does not list a job's environment (its Job entity has no such field); where
    # an answer does carry one, as an object or a bare name, it is used.
    environment = raw.get("environment")
    environment = {"name": environment} if isinstance(environment, str) else _mapping(environment)
    return Job(
        id=_number(raw.get("id"), "id"),
        name=_text(raw.get("name"), f"job {raw['id']}"),
        stage=_text(raw.get("stage"), "unknown"),
        status=_text(raw.get("status"), "unknown"),
        allow_failure=bool(raw.get("allow_failure")),
        kind=kind,
        created_at=_time(raw.get("created_at")),
        started_at=_time(raw.get("started_at")),
        finished_at=_time(raw.get("finished_at")),
        failure_reason=_context_text(raw.get("failure_reason")),
        web_url=_context_text(raw.get("web_url")),
        downstream_ref=_downstream_ref(raw) if kind == "bridge" else None,
        queued_seconds=_context_number(raw.get("queued_duration")),
        duration_seconds=_context_number(raw.get("duration")),
        coverage=_context_number(raw.get("coverage")),
        runner_id=_context_id(runner.get("id")),
        runner_description=_context_text(runner.get("description")),
        runner_type=_context_text(runner.get("runner_type")),
        tag_list=tuple(filter(None, map(_context_text, tag_list if isinstance(tag_list, list) else ()))),
        environment=_context_text(environment.get("name")),
        environment_action=_context_text(environment.get("action")),
        commit_title=_context_text(_mapping(raw.get("commit")).get("title")),
        junit=any(_mapping(a).get("file_type") == "junit" for a in _list(raw.get("artifacts"))),
    )


# GitLab's pipeline and job objects are read for context too, and a field of a type GitLab does
# not document (or null, or missing) only leaves that tag out: these never raise.

def _text(value: object, default: str) -> str:
    """A name, stage, status, ref or sha: text, or a number as GitLab might have meant it; an object
    or a list is no name (its repr would go out as one)."""
    if isinstance(value, str) and value:
        return value
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _mapping(value: object) -> Mapping:
    # A dict first: JSON gives dicts, and a check against the Mapping ABC costs ten times as much.
    return value if type(value) is dict or isinstance(value, Mapping) else {}


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


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


def pipeline_from_api(url: str, raw: Mapping, project: str | int) -> Pipeline:
    web_url = _text(raw.get("web_url"), "")
    project_url = _project_url(web_url)
    project_id = raw.get("project_id") or (project if isinstance(project, int) else None)
    if project_id is None:
        raise ShapeError("the pipeline has no project_id (pass --project as a number)")
    return Pipeline(
        server=ids.server_key(url),
        project_id=_number(project_id, "project_id"),
        project_path=urlsplit(project_url).path.strip("/"),
        project_url=project_url,
        id=_number(raw.get("id"), "id"),
        iid=_context_id(raw.get("iid")),
        ref=_text(raw.get("ref"), ""),
        sha=_text(raw.get("sha"), ""),
        tag=bool(raw.get("tag")),
        source=_context_text(raw.get("source")),
        status=_text(raw.get("status"), "unknown"),
        web_url=web_url,
        created_at=_time(raw.get("created_at")),
        started_at=_time(raw.get("started_at")),
        finished_at=_time(raw.get("finished_at")),
        before_sha=_context_text(raw.get("before_sha")),
        user=_context_text(_mapping(raw.get("user")).get("username")),
        name=_context_text(raw.get("name")),
        queued_seconds=_context_number(raw.get("queued_duration")),
        duration_seconds=_context_number(raw.get("duration")),
        coverage=_context_number(raw.get("coverage")),
    )


_WEB_JOB = re.compile(r"^(?P<project>.+?)/-/jobs/\d+/?$")


def pipeline_from_jobs(url: str, project: str | int, pipeline_id: int, context: CIContext,
                       first_job: Mapping) -> Pipeline:
    """The pipeline as a job token sees it: GitLab's pipeline object is closed to it, so its fields
    come from the reporting job's CI context when that job is of this pipeline, else from the jobs
    (each names its pipeline's project, ref and commit)."""
    own = context if context.describes(project, pipeline_id) else None
    of_job = _mapping(first_job.get("pipeline"))
    match = _WEB_JOB.match(str(first_job.get("web_url") or ""))
    project_id = project if isinstance(project, int) else (own.project_id if own else None) \
        or _context_id(of_job.get("project_id"))
    if project_id is None:
        raise ShapeError("no job names its pipeline's project_id (pass --project as a number)")
    project_url = (own.project_url if own else None) or (match["project"] if match else
                                                         f"{url.rstrip('/')}/{project}")
    return Pipeline(
        server=ids.server_key(url),
        project_id=project_id,
        project_path=(own.project_path if own else None) or urlsplit(project_url).path.strip("/"),
        project_url=project_url,
        id=pipeline_id,
        iid=own.pipeline_iid if own else _context_id(of_job.get("iid")),
        ref=(own.commit_tag or own.ref_name or "") if own else str(first_job.get("ref") or of_job.get("ref") or ""),
        sha=(own.commit_sha or "") if own else str(of_job.get("sha") or ""),
        tag=bool(own.commit_tag) if own else bool(first_job.get("tag")),
        source=own.pipeline_source if own else _context_text(of_job.get("source")),
        status="running" if own else str(of_job.get("status") or "running"),  # the reporting job is part of it
        web_url=(own.pipeline_url if own else None) or f"{project_url}/-/pipelines/{pipeline_id}",
        created_at=_time(own.pipeline_created_at) if own else _time(of_job.get("created_at")),
    )


# GitLab keeps a merge request's refs in the project the merge request belongs to, so a pipeline
# on one of them is in that project; `train` is a merge train's.
_MERGE_REQUEST_REF = re.compile(r"^refs/merge-requests/(?P<iid>[1-9][0-9]{0,9})/(?:head|merge|train)$")
_NO_COMMIT = "0" * 40  # GitLab's before_sha for a new branch, a tag, or a pipeline that no push made
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def add_context(pipeline: Pipeline, context: CIContext, redact: Callable[[str], str], read_api: bool) -> None:
    """Fill what GitLab's pipeline object lacks from the jobs and, when the reporting job belongs to
    this pipeline, its CI context; then mask every free text and cut it (in that order, so that
    a cut never leaves part of a secret masking would no longer recognise)."""
    ci_here = context.describes(pipeline.project_id, pipeline.id)
    if ci_here:
        pipeline.user = pipeline.user or context.user_login
        pipeline.name = pipeline.name or context.pipeline_name
        pipeline.schedule = pipeline.schedule or context.schedule_description
        pipeline.commit_title = pipeline.commit_title or context.commit_title
        iid, project_url = context.merge_request_iid, context.merge_request_project_url
        if iid is not None and pipeline.merge_request_iid is None:
            pipeline.merge_request_iid = iid
            pipeline.merge_request_url = f"{project_url.rstrip('/')}/-/merge_requests/{iid}" if project_url else None
        # The jobs API names no job's environment; the job reporting (a deploy job's after_script)
        # knows its own.
        own = next((j for j in pipeline.jobs if j.id == context.job_id), None)
        if own is not None and context.environment_name and not own.environment:
            own.environment = context.environment_name
            own.environment_action = context.environment_action
    # GitLab's version for the processing_engine facet: CI_SERVER_VERSION when the job's server is
    # this pipeline's; outside a job the reader asks GET /version (read.gitlab_version) first;
    # without either, events say "unknown" (events.UNKNOWN_VERSION).
    if context.server_version and ids.server_key(context.server_url or "") in ("", pipeline.server):
        pipeline.gitlab_version = pipeline.gitlab_version or bounded(context.server_version, 40) or None
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

    masked: dict[str, str | None] = {}  # a few distinct texts repeat over thousands of jobs

    def clean(text: str | None) -> str | None:
        if not text:
            return None
        if text not in masked:
            # A CI variable's bytes that are not UTF-8 reach Python as lone surrogates, which no
            # event can be encoded with.
            masked[text] = bounded(redact(_LONE_SURROGATE.sub("\ufffd", text)))
        return masked[text]

    # Every text the events cut to a tag's length (events._put): masked here first, then cut.
    for key in ("commit_title", "before_sha", "merge_request_url", "user", "name", "schedule"):
        setattr(pipeline, key, clean(getattr(pipeline, key)))
    pipeline.sha = clean(pipeline.sha) or pipeline.sha
    for job in pipeline.jobs:
        job.failure_reason = clean(job.failure_reason)
        job.commit_title = clean(job.commit_title)
        job.runner_description = clean(job.runner_description)
        job.environment = clean(job.environment)
        job.environment_action = clean(job.environment_action)
        if job.tag_list:
            job.tag_list = tuple(filter(None, map(clean, job.tag_list)))

    if not read_api:
        unseen = ["duration", "queued duration", "coverage", "previous commit (before_sha)"]
        if pipeline.user is None:
            unseen.append("who started it")
        if not ci_here:
            unseen.append("its name (workflow:name) and schedule")
        pipeline.left_out.append(f"the pipeline's {', '.join(unseen[:-1])} and {unseen[-1]}: CI_JOB_TOKEN may "
                                 "not read GitLab's pipeline object; set GITLAB_TOKEN (read_api) to add them")


def test_results(suite: Mapping, raw_cases: list, shared_by: int, redact: Callable[[str], str]) -> TestResults:
    """One suite of GitLab's test report summary, with its cases from the full report."""
    if not isinstance(suite, Mapping) or not isinstance(raw_cases, list) or \
            not all(isinstance(c, Mapping) for c in raw_cases):
        raise ShapeError("a test suite or case is not an object")
    counts = {key: _number(suite.get(f"{key}_count") or 0, f"{key}_count")
              for key in ("total", "success", "failed", "skipped", "error")}
    # Failures first: when a suite is larger than the cap, they are the cases worth keeping.
    ordered = sorted(raw_cases, key=lambda c: c.get("status") not in ("failed", "error"))
    cases = [TestCase(
        name=str(c.get("name") or "unnamed"), status=str(c.get("status") or "unknown"),
        classname=_context_text(c.get("classname")),
        message=redact(_readable(c.get("system_output")))[:MAX_TEST_MESSAGE] if c.get("system_output") and
        c.get("status") in ("failed", "error") else None,
        seconds=_context_number(c.get("execution_time")),
    ) for c in ordered[:MAX_TEST_CASES]]
    return TestResults(suite=str(suite.get("name") or ""), counts=counts, cases=cases, shared_by=max(shared_by, 1))


def _readable(output: object) -> str:
    """A case's system_output: GitLab sends text, or an object for an attribute-only <failure/>."""
    if isinstance(output, Mapping):
        return "; ".join(f"{k}: {v}" for k, v in output.items() if v not in (None, ""))
    if isinstance(output, list):
        return "\n".join(map(_readable, output))
    return str(output)
