"""The statuses GitLab gives a pipeline and its stages, by GitLab's own rules, applied while the
pipeline still runs.

While the reporter runs in `.post`, GitLab still says the pipeline is `running`: the reporter's own
job is. What GitLab will say follows from the jobs, by the rules ported here from GitLab's source:

- lib/gitlab/ci/status/composite.rb: the composite status of a set of jobs, first matching rule
  wins; a failed or canceled job that may fail passes "with warnings", a manual job that may fail
  is ignored (app/models/concerns/ci/has_status.rb);
- app/services/ci/pipeline_processing/atomic_processing_service/status_collection.rb: a stage's
  status is the composite of its latest jobs, the pipeline's that of all its latest jobs;
- `set_status` of app/models/ci/pipeline.rb and app/models/ci/stage.rb: a composite of `created`
  leaves the stored status as it is, and `pending` puts a pipeline that already ran back to
  `running`.

tests/test_gitlab_status_spec.py checks them against GitLab's own spec tables (tests/data/).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from reporter.snapshot import Job, Pipeline

KNOWN = frozenset({
    "created", "waiting_for_resource", "preparing", "waiting_for_callback", "pending", "running", "success",
    "failed", "canceling", "canceled", "skipped", "manual", "scheduled",
})
FINAL = frozenset({"success", "failed", "canceled", "skipped"})
# A pipeline blocked at a manual job, or waiting for a delayed one, has not ended, and nothing more
# happens to it until somebody plays the job or the time comes; it may stay so for good. A sweep
# reports such pipelines as they are, and again on the same runs once they move on.
WAITING = frozenset({"manual", "scheduled"})
SETTLED = FINAL | WAITING

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


def event_type(status: str, level: str = "JOB") -> str:
    """OTHER for a status this version does not know: valid OpenLineage, and never a wrong state.
    A job that was never played is ABORT; a pipeline or a stage blocked at it is still open
    (RUNNING): playing the job carries it on, on the same run."""
    if status == "manual" and level in ("PIPELINE", "STAGE"):
        return "RUNNING"
    return EVENT_TYPE.get(status, "OTHER")


@dataclass(frozen=True)
class Composite:
    status: str | None  # None when there is nothing to compose
    warnings: bool = False


# GitLab's names for what a job that may fail counts as; no job has these statuses.
WARNED = "success_with_warnings"
IGNORED = "ignored"
_WARNED_WHEN_ALLOWED = frozenset({"failed", "canceled"})
_IGNORED_WHEN_ALLOWED = frozenset({"manual"})

# composite.rb in its order. "only": every status seen is one of these; "any": one of these is seen.
_RULES = (
    ("only", frozenset({"skipped", IGNORED}), "skipped"),
    ("only", frozenset({"success", "skipped", WARNED, IGNORED}), "success"),
    ("only", frozenset({"created", WARNED, IGNORED}), "created"),
    ("only", frozenset({"preparing", WARNED, IGNORED}), "preparing"),
    ("only", frozenset({"canceled", "success", "skipped", WARNED, IGNORED}), "canceled"),
    ("only", frozenset({"pending", "created", "skipped", WARNED, IGNORED}), "pending"),
    ("any", frozenset({"running", "pending"}), "running"),
    ("any", frozenset({"waiting_for_resource"}), "waiting_for_resource"),
    ("any", frozenset({"waiting_for_callback"}), "waiting_for_callback"),
    ("any", frozenset({"manual"}), "manual"),
    ("any", frozenset({"scheduled"}), "scheduled"),
    ("any", frozenset({"preparing"}), "preparing"),
    ("any", frozenset({"created"}), "running"),
    ("any", frozenset({"canceling"}), "canceling"),
)


def composite(entries: Iterable[tuple[str, bool]], *, dag: bool = False) -> Composite:
    """GitLab's composite status of (status, allow_failure) pairs.

    `dag` is GitLab's view from a job over the jobs it `needs`: it never applies to a stage or a
    pipeline, and is here so that GitLab's whole table can be checked.
    """
    seen: set[str] = set()
    for status, allow_failure in entries:
        if allow_failure and status in _WARNED_WHEN_ALLOWED:
            seen.add(WARNED)
        elif allow_failure and status in _IGNORED_WHEN_ALLOWED:
            seen.add(IGNORED)
        else:
            seen.add(status)
    if not seen:
        return Composite(None)
    return Composite(_first_rule(seen, dag), WARNED in seen)


def _first_rule(seen: set[str], dag: bool) -> str:
    if dag and seen & {"skipped", IGNORED}:
        return "skipped"  # a job whose needs did not all run is skipped
    for kind, names, result in _RULES:
        if (seen <= names) if kind == "only" else bool(seen & names):
            return result
    return "failed"


def pipeline_status(pipeline: Pipeline) -> Composite:
    """The status GitLab shows for the pipeline once it has processed the jobs as they are now.

    A final status GitLab gave stays when the jobs agree that the pipeline is over: the jobs read
    may be fewer than GitLab's (--exclude-job, bridges a job token cannot list). Jobs active again
    (a retry, a manual job played) mean GitLab's stored status is behind: it will follow them.
    """
    jobs = latest([*pipeline.jobs, *pipeline.unlisted])
    result = composite((j.status, j.allow_failure) for j in jobs)
    if result.status is None or unknown_statuses(jobs):
        # Nothing to compose, or a status whose rules this version does not know: GitLab's word.
        return Composite(pipeline.status, result.warnings)
    if pipeline.status in FINAL and result.status in FINAL:
        return Composite(pipeline.status, result.warnings)
    return Composite(_pipeline_moves_to(pipeline.status, result.status), result.warnings)


def _pipeline_moves_to(stored: str, new: str) -> str:
    """Ci::Pipeline#set_status: the event the composite fires, and where it leads from `stored`."""
    if new == "created":
        return stored  # no event
    if new == "pending":  # `enqueue`
        if stored in ("created", "manual", "waiting_for_resource", "preparing", "skipped", "scheduled"):
            return "pending"
        if stored in ("success", "failed", "canceling", "canceled", "running"):
            return "running"
        return stored  # pending, waiting_for_callback: no transition
    return new


def stage_status(jobs: list[Job], *, stored: str | None = None) -> Composite:
    """The status GitLab shows for one stage of the pipeline, from that stage's jobs.

    `stored` is the stage's status as GitLab keeps it, which a composite of `created` leaves as it
    is (a stage of skipped jobs whose needs were played again stays `skipped` until they run).
    The REST API does not give it, so the reporter says `created` there.
    """
    jobs = latest(jobs)
    unknown = unknown_statuses(jobs)
    if unknown:
        return Composite(min(unknown))  # sent as OTHER: a guess could be a wrong state
    result = composite((j.status, j.allow_failure) for j in jobs)
    if result.status is None:
        return Composite("success")  # status_collection's answer for no jobs
    if result.status == "created":
        return Composite(stored or "created", result.warnings)
    return result


# CI_JOB_STATUS -> (the status GitLab will give the reporter's own job, its failure reason).
# "running": the reporter is the job's script, which ends successfully once it has reported.
_OWN_JOB_ENDS = {
    "running": ("success", None),
    "success": ("success", None),
    "failed": ("failed", None),
    "canceled": ("canceled", None),
    "timedout": ("failed", "job_execution_timeout"),
}


def with_own_job(pipeline: Pipeline, own_job_id: int | None, own_status: str | None, now: datetime) -> Pipeline:
    """The pipeline with the job the reporter runs in as GitLab will count it once it finishes.

    GitLab counts that job in the pipeline's status like any other, and only then is the pipeline
    final. In a script (CI_JOB_STATUS=running; unset before GitLab 13.5) it will end `success`;
    in an after_script CI_JOB_STATUS says how it ended. Either way it is reported finished now,
    keeping its allow_failure. Left out by --exclude-job (as the component does) it is not
    reported, but still counts in the pipeline's status: its allow_failure is then unknown and
    taken as GitLab's default, false. A CI_JOB_STATUS this version does not know changes nothing.
    """
    ending = _OWN_JOB_ENDS.get(own_status or "running")
    if own_job_id is None or ending is None:
        return pipeline
    status, reason = ending
    jobs = list(pipeline.jobs)
    for index, job in enumerate(jobs):
        if job.id == own_job_id:
            jobs[index] = replace(job, status=status, failure_reason=reason or job.failure_reason,
                                  finished_at=now, started_at=job.started_at or now)
            return replace(pipeline, jobs=jobs)
    unlisted = Job(own_job_id, name="", stage="", status=status, failure_reason=reason)
    return replace(pipeline, unlisted=[*pipeline.unlisted, unlisted])


def latest(jobs: Iterable[Job]) -> list[Job]:
    """Only the latest attempt of each job counts for a stage or pipeline, as in GitLab."""
    return [job for job in jobs if not job.retried]


# Stages whose place GitLab fixes, by rank; every other stage ranks between .pre and .post. GitLab
# wraps the declared stages in .pre and .post (Gitlab::Ci::Config::Entry::Stages), and a pipeline
# execution policy wraps them again: [".pipeline-policy-pre", *stages, ".pipeline-policy-post"]
# (Gitlab::Ci::Pipeline::PipelineExecutionPolicies::ReservedStagesInjector).
_FIXED_STAGES = {".pipeline-policy-pre": 0, ".pre": 1, ".post": 3, ".pipeline-policy-post": 4}


def stage_order(jobs: Iterable[Job]) -> list[str]:
    """Stages in pipeline order.

    The jobs API has no stage index, but GitLab creates a pipeline's jobs stage by stage, so the
    lowest job id of a stage follows the order; the reserved stages are placed as GitLab does.
    """
    first_id: dict[str, int] = {}
    for job in jobs:
        first_id[job.stage] = min(job.id, first_id.get(job.stage, job.id))

    def key(stage: str) -> tuple[int, int]:
        return (_FIXED_STAGES.get(stage, 2), first_id[stage])

    return sorted(first_id, key=key)


def flaky(jobs: Iterable[Job]) -> set[int]:
    """The ids of the latest attempts of flaky jobs: jobs with an attempt that failed and a later
    attempt that passed, in this pipeline (the same commit).

    The jobs API lists earlier attempts with include_retried=true (the reader asks for them);
    bridges show only their latest attempt, so a bridge is never found flaky.
    """
    attempts: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        attempts.setdefault((job.stage, job.name), []).append(job)
    found = set()
    for same in attempts.values():
        same.sort(key=lambda j: j.id)
        failed_at = next((i for i, job in enumerate(same) if job.status == "failed"), None)
        if failed_at is not None and any(job.status == "success" for job in same[failed_at + 1:]):
            found.add(same[-1].id)
    return found


def unknown_statuses(jobs: Iterable[Job]) -> set[str]:
    return {job.status for job in jobs if job.status not in KNOWN}
