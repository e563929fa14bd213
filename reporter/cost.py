"""Estimated compute minutes, by GitLab's formula: a job's duration / 60 x its runner's cost factor.

GitLab counts "Job duration * Cost factor" for jobs on instance runners; trigger jobs (bridges) run
on no runner and cost nothing; project and group runners are not subject to the compute quota
(doc/ci/pipelines/compute_minutes.md in gitlabhq/gitlabhq, "Compute usage calculation" and
"GitLab-hosted runner cost factors"). The factor is read off the job's tags: GitLab.com's
hosted-runner tags below, or the factors given with --cost-factor TAG=F for self-managed runners,
which win. A job on no known tag counts at GitLab's default factor, 1. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from reporter.snapshot import Job

# GitLab.com's hosted runners by tag (the table "GitLab-hosted runner cost factors"); an untagged
# job on GitLab.com runs on saas-linux-small-amd64, at 1.
HOSTED = {
    "saas-linux-small-amd64": 1.0,
    "saas-linux-medium-amd64": 2.0,
    "saas-linux-large-amd64": 3.0,
    "saas-linux-xlarge-amd64": 6.0,
    "saas-linux-2xlarge-amd64": 12.0,
    "saas-linux-medium-amd64-gpu-standard": 7.0,
    "saas-linux-small-arm64": 1.0,
    "saas-linux-medium-arm64": 2.0,
    "saas-linux-large-arm64": 3.0,
    "saas-macos-medium-m1": 6.0,
    "saas-macos-large-m2pro": 12.0,
    "saas-windows-medium-amd64": 1.0,
}
DEFAULT_FACTOR = 1.0
MAX_FACTOR = 1000.0
_QUOTA_FREE_RUNNERS = frozenset({"project_type", "group_type"})


def parse_cost_factors(value: str | Iterable[str]) -> dict[str, float]:
    """`TAG=F` pairs (space-separated in a variable, or one per --cost-factor flag) to {tag: factor}.

    Raises ValueError with what a value must be, in the words settings.py puts after "must be".
    """
    words = value.split() if isinstance(value, str) else [w for item in value for w in item.split()]
    factors: dict[str, float] = {}
    for word in words:
        tag, equals, number = word.rpartition("=")
        try:
            factor = float(number)
        except ValueError:
            factor = math.nan
        if not equals or not tag or not 0 <= factor <= MAX_FACTOR:  # NaN fails the comparison too
            raise ValueError(f"TAG=FACTOR pairs with FACTOR a number from 0 to {MAX_FACTOR:g} (for example "
                             f"large-runner=3), space-separated; {word!r} is not")
        factors[tag] = factor
    return factors


def cost_factor(job: Job, factors: Mapping[str, float] | None = None) -> float:
    """The factor GitLab would charge the job at: a given factor for one of its tags (the highest
    if several match), else a GitLab.com hosted runner's, else 1; 0 for a bridge, or a project or
    group runner where the job names its runner's type."""
    if job.kind == "bridge" or job.runner_type in _QUOTA_FREE_RUNNERS:
        return 0.0
    for table in (factors or {}, HOSTED):
        found = [table[tag] for tag in job.tag_list if tag in table]
        if found:
            return max(found)
    return DEFAULT_FACTOR


def compute_minutes(job: Job, factors: Mapping[str, float] | None = None) -> float | None:
    """The job's estimated compute minutes; None when GitLab gave no duration (it never ran)."""
    if job.kind == "bridge":
        return 0.0
    if job.duration_seconds is None:
        return None
    return job.duration_seconds / 60 * cost_factor(job, factors)


def total(jobs: Iterable[Job], factors: Mapping[str, float] | None = None) -> float | None:
    """The sum over the jobs, every attempt (each one ran and was counted); None if none had a duration."""
    minutes = [m for m in (compute_minutes(job, factors) for job in jobs) if m is not None]
    return sum(minutes) if minutes else None
