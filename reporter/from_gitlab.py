"""GitLab's JSON objects (pipeline, job, bridge, test report) into the snapshot, and the pipeline's
context from the job's CI_* variables where GitLab's objects lack it. Pure: no I/O.

Any field of a type GitLab does not document (or null, or missing) falls back to a default or
leaves its tag out: nothing here raises on GitLab's data.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from reporter import ids
from reporter.errors import GitLabError
from reporter.snapshot import Job, Pipeline, TestCase, TestResults, bounded, parse_time

MAX_TEST_CASES = 200  # per job; the counts are always complete
MAX_TEST_MESSAGE = 2000


def _downstream_ref(raw: Mapping) -> tuple[str | int, int] | None:
    downstream = raw.get("downstream_pipeline")
    if not isinstance(downstream, Mapping) or downstream.get("id") is None:
        return None
    project = downstream.get("project_id")
    if project is None:
        project_url = _project_url(str(downstream.get("web_url") or ""))
        project = urlsplit(project_url).path.strip("/")
    return (project, int(downstream["id"])) if project else None


def job(raw: Mapping, kind: str) -> Job:
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


def pipeline_from_api(url: str, raw: Mapping, project: str | int) -> Pipeline:
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


def pipeline_from_ci(url: str, project: str | int, pipeline_id: int, ci: Mapping[str, str]) -> Pipeline:
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


def add_context(pipeline: Pipeline, ci: Mapping[str, str], redact: Callable[[str], str], read_api: bool) -> None:
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
        # The jobs API names no job's environment; the job reporting (a deploy job's after_script)
        # knows its own.
        own = next((j for j in pipeline.jobs if str(j.id) == ci.get("CI_JOB_ID")), None)
        if own is not None and ci.get("CI_ENVIRONMENT_NAME") and not own.environment:
            own.environment = ci["CI_ENVIRONMENT_NAME"]
            own.environment_action = ci.get("CI_ENVIRONMENT_ACTION") or None
    # GitLab's version for the processing_engine facet: CI_SERVER_VERSION when the job's server is
    # this pipeline's. TODO(lead): outside a job, the reader may ask GET /version (authenticated, so
    # a read_api token; answers {"version": "17.5.1-ee", "revision": ...}, lib/api/version.rb) and set
    # pipeline.gitlab_version first; without either, events say "unknown" (events.UNKNOWN_VERSION).
    if ci.get("CI_SERVER_VERSION") and ids.server_key(ci.get("CI_SERVER_URL") or "") in ("", pipeline.server):
        pipeline.gitlab_version = pipeline.gitlab_version or bounded(ci["CI_SERVER_VERSION"].strip(), 40) or None
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


def test_results(suite: Mapping, raw_cases: list, shared_by: int, redact: Callable[[str], str]) -> TestResults:
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
