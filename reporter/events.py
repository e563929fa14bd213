"""OpenLineage run events for a pipeline snapshot: one root run for the pipeline, one run per stage,
one run per job attempt, as plain JSON data. Pure: the same snapshot and clock give the same events.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, cast

from reporter import PRODUCER, cost, facets, ids
from reporter.failure_reasons import in_words as failure_in_words
from reporter.ids import Naming
from reporter.packed import PackedEvents
from reporter.snapshot import Job as GitLabJob
from reporter.snapshot import Pipeline, TestResults, bounded, parse_time
from reporter.status import FINAL, event_type, flaky, latest, pipeline_status, stage_order, stage_status

if TYPE_CHECKING:
    from reporter.redact import Redactor

UNKNOWN_VERSION = facets.UNKNOWN_VERSION


def _number(value: float | None) -> str | None:
    """Seconds and percentages as GitLab shows them: 240, 0.123, 98.29 (no exponent, no trailing 0)."""
    if value is None:
        return None
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _put(tags: dict[str, str], key: str, value: object) -> None:
    """A context tag, where GitLab gave a value; every value is a bounded string."""
    if value is None or value == "" or value == ():
        return
    if isinstance(value, float):
        value = _number(value)
    elif isinstance(value, tuple):
        value = ",".join(value)
    tags[key] = cast(str, bounded(str(value)))  # bounded keeps a str a str


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds")


def _time(value: datetime | None) -> str | None:
    return _iso(value) if value else None


def _event_time(kind: str, created: datetime | None, started: datetime | None,
                finished: datetime | None, now: datetime) -> datetime:
    if kind in ("COMPLETE", "FAIL", "ABORT"):
        return finished or started or created or now
    if kind == "RUNNING":
        return started or created or now
    return created or now


@dataclass(slots=True)
class _Run:
    """What the event builder needs of a pipeline, stage or job, whatever it is."""

    run_id: str
    name: str
    kind: str  # PIPELINE, STAGE, JOB, BRIDGE
    status: str  # GitLab's words
    created: datetime | None
    started: datetime | None
    finished: datetime | None
    tags: dict[str, str]
    parent: tuple[str, str] | None = None  # (run id, job name)
    inputs: tuple[str, ...] = ()
    error: str | None = None
    log: tuple[str, str | None] | None = None
    tests: TestResults | None = None
    dependencies: dict | None = None  # the jobDependencies facet


class EventBuilder:
    """Events of one pipeline; a downstream pipeline gets a builder of its own, under its bridge."""

    def __init__(self, pipeline: Pipeline, naming: Naming, now: datetime,
                 parent: tuple[str, str] | None = None, root: tuple[str, str] | None = None,
                 cost_factors: Mapping[str, float] | None = None, gitlab_version: str | None = None):
        self.pipeline = pipeline
        self.naming = naming
        self.now = now
        self.cost_factors = cost_factors or {}
        # A downstream pipeline's snapshot may lack the version: the same GitLab ran it, mostly.
        self.gitlab_version = pipeline.gitlab_version or gitlab_version
        self._flaky = flaky(pipeline.jobs)
        self.run_id = ids.pipeline_run_id(pipeline.server, pipeline.project_id, pipeline.id)
        self.name = ids.pipeline_job_name(naming.pipeline_name)
        self.parent = parent  # the bridge's run, for a downstream pipeline
        self.root = root or (self.run_id, self.name)
        self._facets: dict[tuple, dict] = {}  # facets shared by many runs, made once
        self._stage_ids: dict[str, str] = {}
        self._graph: _Graph | None = None  # made on the first job run

    def events(self) -> Iterator[dict]:
        """This pipeline's events, each bridge followed by its downstream pipeline's; made one at a
        time, so that a large pipeline's events are never all in memory as objects."""
        for run, job in self.runs():
            yield self.event(run)
            if job is not None and job.downstream is not None:
                child = job.downstream
                naming = self._child_naming(run.name, child)
                yield from EventBuilder(child, naming, self.now, parent=(run.run_id, run.name), root=self.root,
                                        cost_factors=self.cost_factors,
                                        gitlab_version=self.gitlab_version).events()

    def _child_naming(self, bridge_name: str, child: Pipeline) -> Naming:
        # A downstream pipeline's names continue its bridge's.
        return Naming(self.naming.namespace, f"{bridge_name}.{ids.default_pipeline_name(child.project_path)}",
                      self.naming.project_name)

    # -- the three levels -------------------------------------------------------------------

    def runs(self) -> Iterator[tuple[_Run, GitLabJob | None]]:
        """The pipeline's run, then each stage's followed by its jobs': one at a time, since a job's
        run (its tags and facets) outweighs the job it is made of."""
        p = self.pipeline
        stages = stage_order(p.jobs)
        result = pipeline_status(p)
        status = result.status or p.status  # pipeline_status falls back to GitLab's word itself
        final = status in FINAL
        finished = max((j.finished_at for j in p.jobs if j.finished_at), default=None)
        tags: dict[str, str] = {"gitlab.status": status, "gitlab.ref": p.ref}
        if p.source:
            tags["gitlab.source"] = p.source
        if status == "success" and result.warnings:
            tags["gitlab.warnings"] = "true"
        self._pipeline_context(tags)
        _put(tags, "gitlab.compute_minutes", cost.total(p.jobs, self.cost_factors))
        failed = [j.name for j in latest(p.jobs) if j.status == "failed" and not j.allow_failure]
        yield _Run(
            run_id=self.run_id, name=self.name, kind="PIPELINE", status=status, parent=self.parent,
            created=p.created_at or min((j.created_at for j in p.jobs if j.created_at), default=None),
            started=p.started_at or min((j.started_at for j in p.jobs if j.started_at), default=None),
            finished=(p.finished_at or finished or self.now) if final else None,
            tags=tags,
            error=f"Failed jobs: {', '.join(failed)}" if status == "failed" and failed else None,
            dependencies=self._started_by_bridge(),
        ), None
        previous: str | None = None
        for stage in stages:
            jobs = [j for j in p.jobs if j.stage == stage]
            yield self._stage_run(stage, jobs, previous), None
            for job in jobs:
                yield self._job_run(stage, job), job
            previous = ids.stage_job_name(self.naming.pipeline_name, stage)

    def _stage_run(self, stage: str, jobs: list[GitLabJob], previous: str | None) -> _Run:
        result = stage_status(jobs)
        status = result.status or "created"  # stage_status gives a status for any jobs, none included
        tags: dict[str, str] = {"gitlab.status": status}
        if status == "success" and result.warnings:
            tags["gitlab.warnings"] = "true"
        _put(tags, "gitlab.compute_minutes", cost.total(jobs, self.cost_factors))
        return _Run(
            run_id=self._stage_id(stage),
            name=ids.stage_job_name(self.naming.pipeline_name, stage), kind="STAGE", status=status,
            created=min((j.created_at for j in jobs if j.created_at), default=None),
            started=min((j.started_at for j in jobs if j.started_at), default=None),
            finished=max((j.finished_at for j in jobs if j.finished_at), default=None) if status in FINAL else None,
            tags=tags, parent=(self.run_id, self.name),
            inputs=(previous,) if previous else (),
        )

    def _job_run(self, stage: str, job: GitLabJob) -> _Run:
        stage_id = self._stage_id(stage)
        tags = {"gitlab.status": job.status, "gitlab.job_id": str(job.id), "gitlab.attempt": str(job.attempt)}
        if job.allow_failure:
            tags["gitlab.allow_failure"] = "true"
        if job.retried:
            tags["gitlab.retried"] = "true"
        if job.downstream_ref:
            tags["gitlab.downstream_pipeline"] = str(job.downstream_ref[1])
        _job_context(tags, job)
        if job.id in self._flaky:
            tags["gitlab.flaky"] = "true"
        minutes = cost.compute_minutes(job, self.cost_factors)
        if minutes is not None and job.kind != "bridge":  # a bridge has no runner, so no factor
            tags["gitlab.cost_factor"] = _number(cost.cost_factor(job, self.cost_factors)) or "0"
        if minutes is not None:
            tags["gitlab.compute_minutes"] = _number(minutes) or "0"
        failed = job.status == "failed"
        return _Run(
            run_id=ids.job_run_id(self.pipeline.server, self.pipeline.project_id, job.id),
            name=ids.job_job_name(self.naming.pipeline_name, stage, job.name),
            kind="BRIDGE" if job.kind == "bridge" else "JOB", status=job.status,
            created=job.created_at, started=job.started_at,
            finished=job.finished_at or (self.now if job.status in FINAL and job.started_at else None),
            tags=tags, parent=(stage_id, ids.stage_job_name(self.naming.pipeline_name, stage)),
            error=failure_in_words(job.failure_reason) if failed else None,
            log=(job.log_tail, job.web_url) if failed and job.log_tail is not None else None,
            tests=job.tests,
            dependencies=self._dependencies(job),
        )

    # -- jobDependencies --------------------------------------------------------------------

    def _dependencies(self, job: GitLabJob) -> dict:
        """The jobs this attempt waited for: its `needs`, or every job of the previous stage (GitLab's
        order for a job without needs, and where the graph could not be read); a bridge's downstream
        pipeline, which it starts itself."""
        if self._graph is None:
            self._graph = _Graph(self.pipeline.jobs, stage_order(self.pipeline.jobs))
        graph = self._graph
        p, ns = self.pipeline, self.naming.namespace
        previous: str | None = None
        if job.needs is not None:
            upstream: list[GitLabJob] | None = [
                j for name in job.needs if (j := graph.attempt(name, job)) is not None]
        else:
            previous, upstream = graph.previous_stage(job)
        if upstream is None and previous is not None:
            # A wide previous stage: its run, which ends when the last of its jobs does, stands for them.
            entries = [facets.dependency(ns, ids.stage_job_name(self.naming.pipeline_name, previous),
                                         self._stage_id(previous))]
            upstream = []
        else:
            upstream = upstream or []
            entries = [facets.dependency(ns, ids.job_job_name(self.naming.pipeline_name, u.stage, u.name),
                                         ids.job_run_id(p.server, p.project_id, u.id),
                                         status_trigger_rule=status_rule(job.when, u.allow_failure))
                       for u in upstream[:MAX_DEPENDENCIES]]
        downstream = []
        if job.downstream is not None:
            child = job.downstream
            name = ids.job_job_name(self.naming.pipeline_name, job.stage, job.name)
            downstream.append(facets.dependency(
                self.naming.namespace, ids.pipeline_job_name(self._child_naming(name, child).pipeline_name),
                ids.pipeline_run_id(child.server, child.project_id, child.id),
                dependency_type=facets.DIRECT_INVOCATION, sequence_trigger_rule=facets.START_TO_START))
        facet = facets.job_dependencies(entries, downstream, TRIGGER_RULES.get(job.when or ""))
        if len(upstream) > MAX_DEPENDENCIES:
            facet["upstreamCount"] = len(upstream)  # the facet allows extra keys: the list is cut
        return facet

    def _started_by_bridge(self) -> dict | None:
        """A downstream pipeline's run: started by its bridge."""
        if self.parent is None:
            return None
        return facets.job_dependencies([facets.dependency(
            self.naming.namespace, self.parent[1], self.parent[0], dependency_type=facets.DIRECT_INVOCATION,
            sequence_trigger_rule=facets.START_TO_START)])

    def _pipeline_context(self, tags: dict[str, str]) -> None:
        # Names and order: docs/event-tags.md. gitlab.source is set above with the existing tags.
        p = self.pipeline
        _put(tags, "gitlab.commit.sha", p.sha)
        _put(tags, "gitlab.commit.title", p.commit_title)
        _put(tags, "gitlab.commit.before_sha", p.before_sha)
        _put(tags, "gitlab.merge_request.iid", p.merge_request_iid)
        _put(tags, "gitlab.merge_request.url", p.merge_request_url)
        _put(tags, "gitlab.user", p.user)
        _put(tags, "gitlab.pipeline_name", p.name)
        _put(tags, "gitlab.schedule", p.schedule)
        _put(tags, "gitlab.queued_seconds", p.queued_seconds)
        _put(tags, "gitlab.duration_seconds", p.duration_seconds)
        _put(tags, "gitlab.coverage", p.coverage)

    # -- to OpenLineage ---------------------------------------------------------------------

    def event(self, run: _Run) -> dict:
        kind = event_type(run.status, run.kind)
        run_facets: dict = {}
        if run.created:
            run_facets["nominalTime"] = facets.nominal_time(_iso(run.created))
        if run.started:
            run_facets["startTime"] = facets.start_time(_iso(run.started))
        if run.parent is None:  # the root run: Databand's project and run names
            p = self.pipeline
            run_facets["tags"] = facets.tags(run.tags, self.naming.project_name, f"{p.ref} #{p.id}")
        else:
            run_facets["tags"] = facets.tags(run.tags)
            run_facets["parent"] = self._parent_facet(run.parent)
        if run.error:
            run_facets["errorMessage"] = facets.error_message(run.error)
        if run.log:
            run_facets["log"] = facets.log(*run.log)
        if run.tests:
            run_facets["test"] = _test_facet(run.tests)
        if run.dependencies is not None:
            run_facets["jobDependencies"] = run.dependencies
        run_facets["processing_engine"] = self._engine_facet()
        ns = self.naming.namespace
        return {
            "eventTime": _time(_event_time(kind, run.created, run.started, run.finished, self.now)),
            "producer": PRODUCER,
            "schemaURL": facets.RUN_EVENT_SCHEMA,
            "run": {"runId": run.run_id, "facets": run_facets},
            "job": {"namespace": ns, "name": run.name, "facets": self._job_facets(run.kind)},
            "eventType": kind,
            "inputs": [{"namespace": ns, "name": name, "facets": {}, "inputFacets": {}} for name in run.inputs],
            "outputs": [],
        }

    def _parent_facet(self, parent: tuple[str, str]) -> dict:
        # Every job of a stage has the same parent facet: built once (events are encoded as they
        # are made, so sharing the dict is safe).
        key = ("parent", *parent)
        if key not in self._facets:
            self._facets[key] = facets.parent(self.naming.namespace, parent[0], parent[1], *self.root)
        return self._facets[key]

    def _engine_facet(self) -> dict:
        key = ("engine",)
        if key not in self._facets:
            self._facets[key] = facets.processing_engine(bounded(self.gitlab_version, 40) or UNKNOWN_VERSION)
        return self._facets[key]

    def _stage_id(self, stage: str) -> str:
        # Every job of a stage names its stage's run as parent: one UUIDv5 per stage, not per job.
        if stage not in self._stage_ids:
            self._stage_ids[stage] = ids.stage_run_id(self.pipeline.server, self.pipeline.project_id,
                                                      self.pipeline.id, stage)
        return self._stage_ids[stage]

    def _job_facets(self, kind: str) -> dict:
        key = ("job", kind)
        if key not in self._facets:
            p = self.pipeline
            self._facets[key] = {"jobType": facets.job_type(kind),
                                 "sourceCodeLocation": facets.source_code_location(p.project_url, p.sha, p.ref, p.tag)}
        return self._facets[key]


# At most this many upstream jobs on one run: GitLab's default limit of needs. A previous stage of
# more jobs is named by its stage run instead (thousands of entries on each of thousands of runs
# would be gigabytes); a longer list of needs is cut, and the facet says how many there were.
MAX_DEPENDENCIES = 50
# GitLab's `when` as jobDependencies' trigger_rule: on_success (and manual, delayed) runs once
# every job it waits for passed, an allowed failure counting as passed; on_failure once one failed;
# always once all finished, whatever their status.
TRIGGER_RULES = {"on_success": "ALL_SUCCESS", "on_failure": "ONE_FAILED", "always": "ALL_DONE"}


def status_rule(when: str | None, allow_failure: bool) -> str | None:
    """An upstream job's status_trigger_rule, where GitLab told the waiting job's `when` (None:
    unknown). An upstream allowed to fail lets an on_success job run whatever its status, and cannot
    start an on_failure one (its failure is no failure to GitLab), so that one has no rule."""
    if when == "always":
        return "EXECUTE_EVERY_TIME"
    if when == "on_failure":
        return None if allow_failure else "EXECUTE_ON_FAILURE"
    if when == "on_success":
        return "EXECUTE_EVERY_TIME" if allow_failure else "EXECUTE_ON_SUCCESS"
    return None


class _Graph:
    """A pipeline's jobs by name and by stage, to find the attempt each job waited for."""

    def __init__(self, jobs: Sequence[GitLabJob], stages: list[str]):
        self.attempts: dict[str, list[GitLabJob]] = {}
        for job in sorted(jobs, key=lambda j: j.id):
            self.attempts.setdefault(job.name, []).append(job)
        self.stages = stages
        self.names_by_stage: dict[str, list[str]] = {}
        for name, attempts in self.attempts.items():
            self.names_by_stage.setdefault(attempts[-1].stage, []).append(name)

    def attempt(self, name: str, waiting: GitLabJob) -> GitLabJob | None:
        """The attempt of `name` that `waiting` waited for: the last to finish before it started,
        else the latest. Not by id: GitLab resets the jobs skipped after a failure in place when the
        failed one is retried (Ci::ResetSkippedJobsService), so they keep their lower ids."""
        attempts = self.attempts.get(name)
        if not attempts:
            return None  # an optional need of a job not in the pipeline, or a job left out
        started = waiting.started_at
        before = [a for a in attempts if started and a.finished_at and a.finished_at <= started]
        return max(before, key=lambda a: (a.finished_at, a.id)) if before else attempts[-1]

    def previous_stage(self, job: GitLabJob) -> tuple[str | None, list[GitLabJob] | None]:
        """The stage before the job's and the attempts of its jobs; None for more than
        MAX_DEPENDENCIES of them (the stage's run stands for them then)."""
        index = self.stages.index(job.stage) if job.stage in self.stages else 0
        if index == 0:
            return None, []
        previous = self.stages[index - 1]
        names = self.names_by_stage.get(previous, [])
        if len(names) > MAX_DEPENDENCIES:
            return previous, None
        found = (self.attempt(name, job) for name in names)
        return previous, [a for a in found if a is not None]


def _job_context(tags: dict[str, str], job: GitLabJob) -> None:
    # The code beside the errorMessage facet's words, for filtering and counting.
    _put(tags, "gitlab.failure_reason", job.failure_reason if job.status == "failed" else None)
    _put(tags, "gitlab.runner.id", job.runner_id)
    _put(tags, "gitlab.runner.description", job.runner_description)
    _put(tags, "gitlab.tags", job.tag_list)
    _put(tags, "gitlab.queued_seconds", job.queued_seconds)
    _put(tags, "gitlab.duration_seconds", job.duration_seconds)
    _put(tags, "gitlab.environment", job.environment)
    _put(tags, "gitlab.environment.action", job.environment_action if job.environment else None)
    _put(tags, "gitlab.coverage", job.coverage)


def build_events(pipeline: Pipeline, naming: Naming, now: datetime,
                 mask: Redactor | None = None,
                 cost_factors: Mapping[str, float] | None = None) -> PackedEvents:
    """The pipeline's events, the root run first, packed (a sequence of JSON-ready dicts); `mask`
    (the settings' Redactor) masks each event's strings as it is packed; `cost_factors` (--cost-factor)
    are the self-managed runners' compute-minute factors by tag (cost.py)."""
    return PackedEvents(EventBuilder(pipeline, naming, now, cost_factors=cost_factors).events(), mask)


# GitLab's test case statuses in the TestRunFacet's words.
_TEST_STATUS = {"success": "pass", "failed": "fail", "error": "fail", "skipped": "skip"}


def _test_facet(results: TestResults) -> dict:
    tests = []
    for case in results.cases:
        params: dict[str, object] = {"suite": results.suite, "gitlabStatus": case.status}
        if case.classname:
            params["classname"] = case.classname
        if case.seconds is not None:
            params["executionTime"] = case.seconds
        if case.message:
            params["message"] = case.message
        tests.append({"name": f"{case.classname}.{case.name}" if case.classname else case.name,
                      "status": _TEST_STATUS.get(case.status, "fail"), "severity": "error", "type": "junit",
                      "params": params})
    return facets.test(tests, dict(results.counts), results.suite, results.shared_by)


# A START carries what was known when the run started; these facets belong to its end.
_END_ONLY = ("errorMessage", "log", "test")


def lifecycle(events: Sequence[dict]) -> list[dict]:
    """The same runs as full OpenLineage lifecycles, for backends that expect them.

    Databand takes one event per run, its current state. A standard backend wants a START, then
    COMPLETE, FAIL or ABORT (RUNNING or OTHER while unfinished). STARTs go parents first; the
    ends go children first, so that no parent ends before its children.
    """
    starts, ends = [], []
    for event in events:
        facets = event["run"].get("facets", {})
        started = facets.get("startTime", {}).get("startTime") or facets.get("nominalTime", {}).get(
            "nominalStartTime") or event["eventTime"]
        earliest = min((started, event["eventTime"]), key=lambda t: parse_time(t) or datetime.max.replace(
            tzinfo=timezone.utc))
        start = {**event, "eventType": "START", "eventTime": earliest,
                 "run": {**event["run"], "facets": {k: v for k, v in facets.items() if k not in _END_ONLY}}}
        starts.append(start)
        if event.get("eventType") != "START":
            ends.append(event)
    return starts + ends[::-1]
