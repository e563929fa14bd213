"""A plain snapshot of one pipeline, as read from GitLab: no I/O, no GitLab client objects."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone


def parse_time(value: str | None) -> datetime | None:
    """GitLab's ISO 8601 times ("...Z" or "+01:00") to aware datetimes; None stays None.

    Python 3.10's fromisoformat does not take "Z", hence the replace.
    """
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# The longest tag value an event carries. GitLab's free text (a commit title, a runner's
# description) has no useful limit; the reader masks it first and then cuts it here, so that a
# secret is never cut in two before masking could recognise it.
MAX_TEXT = 200


def bounded(text: str | None, limit: int = MAX_TEXT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit - 1] + "…"


@dataclass(slots=True)
class Job:
    """One attempt of a job or a bridge (trigger job)."""

    id: int
    name: str
    stage: str
    status: str
    allow_failure: bool = False
    kind: str = "job"  # "job" or "bridge"
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    failure_reason: str | None = None
    web_url: str | None = None
    log_tail: str | None = None
    retried: bool = False  # a later attempt of the same job exists
    attempt: int = 1
    downstream_ref: tuple[str | int, int] | None = None  # a bridge's (project, pipeline id), as GitLab names it
    downstream: Pipeline | None = None  # read when the token and the depth bound allow
    tests: TestResults | None = None
    junit: bool = False  # it uploaded a JUnit report (artifacts:reports:junit), so GitLab's test report has it
    # Context as GitLab's job object gives it; free text is masked and cut by the reader. None where
    # GitLab sent nothing (a bridge has no runner, a job that never ran has no durations).
    queued_seconds: float | None = None
    duration_seconds: float | None = None
    coverage: float | None = None
    runner_id: int | None = None
    runner_description: str | None = None
    runner_type: str | None = None  # GitLab's instance_type, group_type or project_type, where read
    tag_list: tuple[str, ...] = ()
    environment: str | None = None  # only where GitLab's answer names it
    environment_action: str | None = None
    commit_title: str | None = None  # the pipeline's commit as each job carries it
    # GitLab's `needs` (GraphQL): the names it waits for (() for `needs: []`), or None where it waits
    # for the previous stage or the graph could not be read; `when` where GraphQL could tell
    # (on_success, on_failure or always; None unknown).
    needs: tuple[str, ...] | None = None
    when: str | None = None


@dataclass(slots=True)
class TestCase:
    name: str
    status: str  # GitLab's: success, failed, skipped, error
    classname: str | None = None
    message: str | None = None
    seconds: float | None = None


@dataclass(slots=True)
class TestResults:
    """A JUnit test suite GitLab parsed from a job's artifacts (the pipeline's test report)."""

    suite: str
    counts: dict[str, int]  # total, success, failed, skipped, error: always complete
    cases: list[TestCase] = field(default_factory=list)  # capped; failures first
    shared_by: int = 1  # parallel jobs share one suite in GitLab's report


@dataclass(slots=True)
class Pipeline:
    server: str  # ids.server_key of the GitLab URL
    project_id: int
    project_path: str
    project_url: str
    id: int
    ref: str
    sha: str
    status: str  # as GitLab reported it; see status.py for the one we compute
    web_url: str
    iid: int | None = None
    tag: bool = False
    source: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    jobs: list[Job] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # what the token could not read, in words
    # Who, which change, how long: from GitLab's pipeline object, or with a job token from the CI_*
    # variables of the job reporting it. Free text is masked and cut by the reader.
    commit_title: str | None = None
    before_sha: str | None = None
    merge_request_iid: int | None = None
    merge_request_url: str | None = None
    user: str | None = None  # the username; never an email
    name: str | None = None  # workflow:name
    schedule: str | None = None  # the pipeline schedule's description
    queued_seconds: float | None = None
    duration_seconds: float | None = None
    coverage: float | None = None
    # GitLab's version (CI_SERVER_VERSION, e.g. "17.5.1-ee"), for the processing_engine facet; None
    # where it could not be read.
    gitlab_version: str | None = None
    # Jobs GitLab counts in the pipeline's status that the report does not show: the reporter's own
    # job when --exclude-job leaves it out (status.with_own_job).
    unlisted: list[Job] = field(default_factory=list)


# A pipeline execution policy's job whose name clashes with another job gets GitLab's suffix
# `:policy-<policy project id>-<policy index>` (Gitlab::Ci::Pipeline::PipelineExecutionPolicies,
# suffix: on_conflict, the default).
POLICY_SUFFIX = re.compile(r":policy-\d+-\d+$")


def base_name(name: str) -> str:
    """A job's name without the suffix a pipeline execution policy's clash adds."""
    return POLICY_SUFFIX.sub("", name)


def without(jobs: list[Job], patterns: tuple[str, ...]) -> list[Job]:
    """The jobs whose names match none of the shell-style patterns (--exclude-job).

    A pattern that matches a job's name without GitLab's policy suffix matches the suffixed job
    too: a policy's `databand-report` renamed `databand-report:policy-42-0` is still the report job.
    """
    from fnmatch import fnmatchcase

    if not patterns:
        return jobs
    return [job for job in jobs
            if not any(fnmatchcase(job.name, p) or fnmatchcase(base_name(job.name), p) for p in patterns)]


def mark_attempts(jobs: list[Job]) -> list[Job]:
    """Number the attempts of each job and flag the superseded ones.

    GitLab gives a retry a new job id with the same name; the highest id is the latest attempt.
    """
    by_name: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        by_name.setdefault((job.stage, job.name), []).append(job)
    for attempts in by_name.values():
        attempts.sort(key=lambda j: j.id)
        for number, job in enumerate(attempts, start=1):
            job.attempt = number
            job.retried = number < len(attempts)
    return jobs
