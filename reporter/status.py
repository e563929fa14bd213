"""The status GitLab will give: its composite rules, applied while the pipeline still runs.

While the reporter runs in `.post`, GitLab still says the pipeline is `running`. The final status
follows from the jobs, by GitLab's own rules (lib/gitlab/ci/status/composite.rb): a failed or
canceled job that may fail counts as "success with warnings", a manual job that may fail is
ignored, and the first matching rule below wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from reporter.snapshot import Job, Pipeline

KNOWN = frozenset(
    "created waiting_for_resource preparing waiting_for_callback pending running success failed "
    "canceling canceled skipped manual scheduled".split()
)
FINAL = frozenset({"success", "failed", "canceled", "skipped"})

# GitLab job status -> OpenLineage event type. A manual job that was never played did not run and
# will not unless somebody plays it: ABORT, like skipped, with its GitLab status in a tag.
EVENT_TYPE = {
    "success": "COMPLETE",
    "failed": "FAIL",
    "canceled": "ABORT",
    "skipped": "ABORT",
    "manual": "ABORT",
    "running": "RUNNING",
    "canceling": "RUNNING",
    "created": "START",
    "waiting_for_resource": "START",
    "preparing": "START",
    "waiting_for_callback": "START",
    "pending": "START",
    "scheduled": "START",
}


def event_type(status: str) -> str:
    """OTHER for a status this version does not know: valid OpenLineage, and never a wrong state."""
    return EVENT_TYPE.get(status, "OTHER")


@dataclass(frozen=True)
class Composite:
    status: str | None  # None when there is nothing to compose
    warnings: bool = False


def composite(entries: Iterable[tuple[str, bool]]) -> Composite:
    """GitLab's composite status of (status, allow_failure) pairs."""
    seen: set[str] = set()
    for status, allow_failure in entries:
        if allow_failure and status in ("failed", "canceled"):
            seen.add("success_with_warnings")
        elif allow_failure and status == "manual":
            seen.add("ignored")
        else:
            seen.add(status)
    if not seen:
        return Composite(None)

    def only(*names: str) -> bool:
        return seen <= set(names)

    def any_of(*names: str) -> bool:
        return bool(seen & set(names))

    if only("skipped", "ignored"):
        status = "skipped"
    elif only("success", "skipped", "success_with_warnings", "ignored"):
        status = "success"
    elif only("created", "success_with_warnings", "ignored"):
        status = "created"
    elif only("preparing", "success_with_warnings", "ignored"):
        status = "preparing"
    elif only("canceled", "success", "skipped", "success_with_warnings", "ignored"):
        status = "canceled"
    elif only("pending", "created", "skipped", "success_with_warnings", "ignored"):
        status = "pending"
    elif any_of("running", "pending"):
        status = "running"
    elif any_of("canceling"):
        status = "canceling"
    elif any_of("waiting_for_resource"):
        status = "waiting_for_resource"
    elif any_of("waiting_for_callback"):
        status = "waiting_for_callback"
    elif any_of("manual"):
        status = "manual"
    elif any_of("scheduled"):
        status = "scheduled"
    elif any_of("preparing"):
        status = "preparing"
    elif any_of("created"):
        status = "running"
    else:
        status = "failed"
    return Composite(status, "success_with_warnings" in seen)


def pipeline_status(pipeline: Pipeline) -> Composite:
    """The status GitLab shows for the pipeline: its own once final, else composed from the jobs."""
    result = composite((j.status, j.allow_failure) for j in latest(pipeline.jobs))
    if pipeline.status in FINAL:
        return Composite(pipeline.status, result.warnings)
    return Composite(result.status or pipeline.status, result.warnings)


def stage_status(jobs: list[Job]) -> Composite:
    """The status GitLab shows for one stage of the pipeline, from that stage's jobs."""
    result = composite((j.status, j.allow_failure) for j in latest(jobs))
    return Composite(result.status or "created", result.warnings)


def with_own_job(pipeline: Pipeline, own_job_id: int | None, own_status: str | None, now: datetime) -> Pipeline:
    """Account for the job the reporter runs in.

    In a `.post` script (CI_JOB_STATUS=running) the reporter's job is still running and must not
    hold the pipeline at `running`: leave it out. In an `after_script` its script is over and
    CI_JOB_STATUS says how it ended: report it with that status, finished now.
    """
    if own_job_id is None:
        return pipeline
    jobs: list[Job] = []
    for job in pipeline.jobs:
        if job.id != own_job_id:
            jobs.append(job)
        elif own_status in ("success", "failed", "canceled"):
            jobs.append(replace(job, status=own_status, finished_at=now, started_at=job.started_at or now))
        elif own_status == "timedout":
            jobs.append(replace(job, status="failed", failure_reason="job_execution_timeout",
                                finished_at=now, started_at=job.started_at or now))
    return replace(pipeline, jobs=jobs)


def latest(jobs: Iterable[Job]) -> list[Job]:
    """Only the latest attempt of each job counts for a stage or pipeline, as in GitLab."""
    return [job for job in jobs if not job.retried]


def stage_order(jobs: Iterable[Job]) -> list[str]:
    """Stages in pipeline order.

    The jobs API has no stage index, but GitLab creates a pipeline's jobs stage by stage, so the
    lowest job id of a stage follows the order; `.pre` and `.post` are first and last by definition.
    """
    first_id: dict[str, int] = {}
    for job in jobs:
        first_id[job.stage] = min(job.id, first_id.get(job.stage, job.id))

    def key(stage: str) -> tuple[int, int]:
        return ({".pre": 0, ".post": 2}.get(stage, 1), first_id[stage])

    return sorted(first_id, key=key)


def unknown_statuses(jobs: Iterable[Job]) -> set[str]:
    return {job.status for job in jobs if job.status not in KNOWN}
