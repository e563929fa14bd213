"""What the job log shows: the summary of a report in GitLab's words, folded into a collapsible GitLab
log section, and the `--dry-run` tree.

Both read a neutral view of the pipeline, made from the snapshot when the reporter read GitLab, or
from the events' tags when it sends a file (`resend --from-file`), so the two say the same things.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from reporter import eventfiles, ids, targets
from reporter.events import failure_in_words
from reporter.status import pipeline_status, stage_order, stage_status

SECTION = "databand_report"
# Per stage, the tree shows every job that did not pass, and passed ones up to this many.
TREE_PASSED_PER_STAGE = 30
# The summary names this many failed jobs; a pipeline that failed wholesale does not flood the log.
FAILED_SHOWN = 50

# GitLab's status names as its pages write them (lib/gitlab/ci/status/*.rb, `label`/`text`).
_WORDS = {
    "success": "passed",
    "failed": "failed",
    "canceled": "canceled",
    "canceling": "canceling",
    "running": "running",
    "pending": "pending",
    "created": "created",
    "preparing": "preparing",
    "waiting_for_resource": "waiting for resource",
    "waiting_for_callback": "waiting for callback",
    "scheduled": "delayed",
    "skipped": "skipped",
    "manual": "manual",
}


def in_gitlab_words(status: str | None, warnings: bool = False, *, pipeline: bool = False) -> str:
    """`success` -> "passed", with warnings -> "passed with warnings"; a pipeline waiting for a
    manual job is "blocked" on GitLab's pages. A status GitLab may add later is shown as it is."""
    if not status:
        return "unknown"
    if status == "success" and warnings:
        return "passed with warnings"
    if status == "manual" and pipeline:
        return "blocked"
    return _WORDS.get(status, status)  # as it is: text changed after masking could show a secret again


@dataclass
class JobView:
    name: str
    stage: str
    status: str
    allow_failure: bool = False
    retried: bool = False
    attempt: int = 1
    reason: str | None = None  # the failure reason, in words
    bridge: bool = False
    downstream: PipelineView | None = None

    def words(self) -> str:
        shown = in_gitlab_words(self.status)
        if self.allow_failure and self.status in ("failed", "canceled"):
            shown += ", allowed to fail"
        return shown


@dataclass
class StageView:
    name: str
    status: str
    warnings: bool = False
    jobs: list[JobView] = field(default_factory=list)


@dataclass
class PipelineView:
    title: str  # "pipeline 9001 (acme/data-platform, main)"
    status: str | None
    warnings: bool = False
    stages: list[StageView] = field(default_factory=list)

    def words(self) -> str:
        return in_gitlab_words(self.status, self.warnings, pipeline=True)

    def jobs(self) -> list[JobView]:
        return [job for stage in self.stages for job in stage.jobs]


# -- the view, from a snapshot or from events ---------------------------------------------------


def from_snapshot(pipeline, title: str | None = None) -> PipelineView:
    result = pipeline_status(pipeline)
    view = PipelineView(title=title or f"pipeline {pipeline.id} ({pipeline.project_path}, {pipeline.ref})",
                        status=result.status, warnings=result.warnings)
    for stage in stage_order(pipeline.jobs):
        jobs = [j for j in pipeline.jobs if j.stage == stage]
        composite = stage_status(jobs)
        view.stages.append(StageView(stage, composite.status or "created", composite.warnings, [
            JobView(name=j.name, stage=stage, status=j.status, allow_failure=j.allow_failure, retried=j.retried,
                    attempt=j.attempt, reason=failure_in_words(j.failure_reason) if j.status == "failed" else None,
                    bridge=j.kind == "bridge",
                    downstream=from_snapshot(j.downstream, _downstream_title(j.downstream.id))
                    if j.downstream else None)
            for j in jobs]))
    return view


def _downstream_title(pipeline_id) -> str:
    # Events do not carry a downstream pipeline's project: the same title from either source.
    return f"downstream pipeline {pipeline_id}" if pipeline_id else "downstream pipeline"


def _tags(event: dict) -> dict:
    return {t.get("key"): t.get("value") for t in event.get("run", {}).get("facets", {}).get("tags", {}).get("tags", [])
            if isinstance(t, dict)}


def _kind(event: dict) -> str:
    return event.get("job", {}).get("facets", {}).get("jobType", {}).get("jobType", "")


def _short(name: str, parent: str) -> str:
    """A level's own name, as GitLab shows it: the parent's prefix off, the escapes undone."""
    own = name[len(parent) + 1:] if name.startswith(parent + ".") else name
    return unquote(own)


def from_events(events: Sequence[dict]) -> PipelineView | None:
    """The view from events as the reporter writes them (a kept file, --output): the root run,
    stages under it, jobs under the stages, downstream pipelines under their bridges."""
    children: dict[str | None, list[dict]] = {}
    for event in events:
        parent = event.get("run", {}).get("facets", {}).get("parent", {}).get("run", {}).get("runId")
        children.setdefault(parent, []).append(event)
    roots = children.get(None, [])
    if not roots:
        return None
    root = roots[0]
    facet = root.get("run", {}).get("facets", {}).get("tags", {})
    ref, _, number = str(facet.get("runName") or "").rpartition(" #")  # "<ref> #<id>", the reporter's runName
    about = ", ".join(filter(None, [facet.get("projectName"), ref]))
    title = f"pipeline {number}" if ids.is_number(number) else "pipeline"
    return _pipeline_from(root, f"{title} ({about})" if about else title, children)


def _pipeline_from(event: dict, title: str, children: dict) -> PipelineView:
    tags = _tags(event)
    name = event.get("job", {}).get("name", "")
    view = PipelineView(title=title, status=tags.get("gitlab.status"), warnings="gitlab.warnings" in tags)
    for stage_event in children.get(event["run"].get("runId"), []):
        if _kind(stage_event) != "STAGE":
            continue
        stage_tags = _tags(stage_event)
        stage_name = stage_event.get("job", {}).get("name", "")
        stage = StageView(_short(stage_name, name), stage_tags.get("gitlab.status") or "unknown",
                          "gitlab.warnings" in stage_tags)
        for job_event in children.get(stage_event["run"].get("runId"), []):
            job_tags = _tags(job_event)
            reason = job_event["run"].get("facets", {}).get("errorMessage", {}).get("message")
            downstream = next((_pipeline_from(child, _downstream_title(job_tags.get("gitlab.downstream_pipeline")),
                                              children)
                               for child in children.get(job_event["run"].get("runId"), [])
                               if _kind(child) == "PIPELINE"), None)
            attempt = job_tags.get("gitlab.attempt", "1")
            stage.jobs.append(JobView(
                name=_short(job_event.get("job", {}).get("name", ""), stage_name), stage=stage.name,
                status=job_tags.get("gitlab.status") or "unknown",
                allow_failure=job_tags.get("gitlab.allow_failure") == "true",
                retried=job_tags.get("gitlab.retried") == "true",
                attempt=int(attempt) if ids.is_number(attempt) else 1,
                reason=reason, bridge=_kind(job_event) == "BRIDGE", downstream=downstream))
        view.stages.append(stage)
    return view


def view_of(report) -> PipelineView | None:
    """The report's pipeline as read from GitLab, else as its events describe it."""
    if report.pipeline is not None:
        return from_snapshot(report.pipeline)
    return from_events(report.events)


# -- the summary --------------------------------------------------------------------------------


def job_counts(view: PipelineView) -> tuple[Counter, int]:
    """Latest attempts by what GitLab shows for them (each job in exactly one bucket), and the
    earlier attempts GitLab lists as retried, which the counts leave out as GitLab's do."""
    counts: Counter = Counter()
    retried = 0
    for job in view.jobs():
        if job.retried:
            retried += 1
        elif job.status == "failed" and job.allow_failure:
            counts["allowed to fail"] += 1
        else:
            counts[in_gitlab_words(job.status)] += 1
    return counts, retried


_ORDER = ("passed", "failed", "allowed to fail", "canceled", "canceling", "skipped", "manual", "running",
          "pending", "created", "preparing", "delayed", "waiting for resource", "waiting for callback")


def counts_line(view: PipelineView) -> str:
    counts, retried = job_counts(view)
    ordered = sorted(counts.items(), key=lambda kv: (_ORDER.index(kv[0]) if kv[0] in _ORDER else len(_ORDER), kv[0]))
    parts = ", ".join(f"{n} {word}" for word, n in ordered)
    line = f"Jobs: {sum(counts.values())}" + (f" = {parts}" if parts else "")
    if retried:
        line += f" (and {retried} earlier attempt{'s' if retried != 1 else ''}, retried)"
    if flaky := flaky_count(view):
        line += f"; {flaky} flaky (failed, then passed on a retry)"
    return line


def flaky_count(view: PipelineView) -> int:
    """Jobs of this pipeline (not downstream) with an attempt that failed and a later one that passed,
    as status.flaky finds them (the events' gitlab.flaky tags say the same)."""
    attempts: dict[tuple[str, str], list[JobView]] = {}
    for job in view.jobs():
        attempts.setdefault((job.stage, job.name), []).append(job)
    count = 0
    for same in attempts.values():
        statuses = [job.status for job in sorted(same, key=lambda j: j.attempt)]
        if "failed" in statuses and "success" in statuses[statuses.index("failed") + 1:]:
            count += 1
    return count


def failed_lines(view: PipelineView, where: str = "") -> list[str]:
    """Each failed job (latest attempt) with its stage and GitLab's failure reason, downstream too."""
    out = []
    for job in view.jobs():
        if job.status == "failed" and not job.retried:
            allowed = " (allowed to fail)" if job.allow_failure else ""
            out.append(f"Failed{allowed}: {job.name} (stage {job.stage}{where}): {job.reason or 'The job failed'}")
        if job.downstream is not None:
            out.extend(failed_lines(job.downstream, f", {job.downstream.title}"))
    return out


def where_to(target: str, databand_url: str | None) -> str:
    """Where events went, in words. Databand only by its host: the bulk endpoint's path names the
    integration. Any URL without its user:password@ or query, which may hold a key."""
    parts = urlsplit(target)
    if parts.scheme in ("http", "https") and parts.hostname:
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        if databand_url and target.rstrip("/") == databand_url.strip().rstrip("/"):
            return f"Databand at {host}"
        return f"{parts.scheme}://{host}{parts.path}"
    return target


def _outcome_line(outcome, databand_url: str | None) -> str:
    requests = f" in {outcome.requests} request{'s' if outcome.requests != 1 else ''}" if outcome.requests else ""
    verb = {"output": "Wrote", "file": "Wrote", "console": "Printed"}.get(outcome.name, "Sent")
    what = f"{outcome.sent} events"
    if outcome.runs is not None and outcome.runs != outcome.sent:
        what += f" (the start and the end of {outcome.runs} runs)"
    return f"{verb} {what}{requests} to {where_to(outcome.where, databand_url)}"


def body(view: PipelineView | None, outcomes: Sequence = (), notes: Sequence[str] = (), *,
         databand_url: str | None = None, failures: Sequence = ()) -> list[str]:
    """The section's lines: the status, the counts, the failed jobs, where the events went, what was
    kept and the command that sends it."""
    out = []
    if view is not None:
        out.append(f"Pipeline status: {view.words()}")
        out.append(counts_line(view))
        failed = failed_lines(view)
        out.extend(failed[:FAILED_SHOWN])
        if len(failed) > FAILED_SHOWN:
            out.append(f"... and {len(failed) - FAILED_SHOWN} more failed jobs (`--dry-run` shows them all)")
    out.extend(_outcome_line(outcome, databand_url) for outcome in outcomes)
    out.extend(notes)
    for failure in failures:
        if failure.kept:
            out.append(f"Not sent: {failure.unsent} events kept in {failure.kept}; send them later with:")
            out.append(f"  {eventfiles.resend_command(failure.kept, failure.target)}")
        else:
            out.append(f"Not sent: {failure.unsent} events for {failure.target}, which could not be kept "
                       f"({failure.not_kept})")
    return out


def title(view: PipelineView | None, label, events: int, *, dry_run: bool, failed: bool,
          to: Sequence[str] = ("databand",)) -> str:
    """One line, also when the section is collapsed: "Databand: pipeline 9001 failed, 23 events sent".
    It names the targets; a target that takes a run's START and end apart counts runs, as the
    events built are one per run."""
    what = view.title.split(" (")[0] if view is not None else "pipeline"
    if what == "pipeline":
        what = f"pipeline {label}"
    shown = f" {view.words()}" if view is not None else ""
    done = "built (dry run)" if dry_run else ("NOT all sent" if failed else "sent")
    unit = "events" if set(to) <= {"databand"} else "runs"
    return f"{targets.title(to)}: {what}{shown}, {events} {unit} {done}"


def of_report(report, label, *, to: Sequence[str], databand_url: str | None, dry_run: bool,
              in_gitlab: bool) -> str:
    """The job log's summary of a report, delivered or not: collapsed when all went well, open when
    something needs the reader."""
    view = view_of(report)
    failures = report.delivery.failures
    lines = body(view, report.delivery.outcomes, report.notes, databand_url=databand_url, failures=failures)
    heading = title(view, label, len(report.events), dry_run=dry_run, failed=bool(failures), to=to)
    return render(heading, lines, in_gitlab=in_gitlab, collapsed=not failures)


def backfill_state(skipped: bool, error: str | None, *, dry_run: bool) -> str:
    """What became of one pipeline of a backfill or sweep, for its progress line."""
    if skipped:
        return "done before, skipped"
    if error is not None:
        return f"failed: {error}"
    return "built, not sent (--dry-run)" if dry_run else "sent"


def render(title: str, body: list[str], in_gitlab: bool, *, collapsed: bool = True) -> str:
    """The summary as text; inside GitLab a collapsible log section (collapsed when all went well).
    GitLab reads the markers' bytes exactly: they must reach the log unchanged, never stripped."""
    if not in_gitlab:
        return "\n".join([title, *("  " + line for line in body)])
    now = int(time.time())
    options = "[collapsed=true]" if collapsed else ""
    start = f"\x1b[0Ksection_start:{now}:{SECTION}{options}\r\x1b[0K{title}"
    end = f"\x1b[0Ksection_end:{now}:{SECTION}\r\x1b[0K"
    return "\n".join([start, *body, end])


# -- the link on the job page -------------------------------------------------------------------

ANNOTATIONS_FILE = "databand-annotations.json"


def databand_ui(ui_url: str | None, databand_url: str | None) -> str | None:
    """Databand's address for people: DATABAND_UI_URL as given, else the bulk endpoint's scheme and
    host (never its path, which names the integration, nor a user:password@)."""
    if ui_url and ui_url.strip():
        return ui_url.strip()
    parts = urlsplit((databand_url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def annotations_report(url: str, pipeline_id) -> dict:
    """GitLab's annotations report (artifacts:reports:annotations, GitLab 16.3+): a link on the job page."""
    return {"databand": [{"external_link": {"label": f"Databand: the runs of pipeline {pipeline_id}", "url": url}}]}


# -- the dry-run tree ---------------------------------------------------------------------------


def tree(view: PipelineView | None, events: int) -> list[str]:
    """pipeline > stages > jobs with their statuses, as lines; long stages show what did not pass."""
    if view is None:
        return [f"{events} events, with no pipeline run among them."]
    out: list[str] = []
    _tree(view, "", out)
    out.append(f"{events} events built, nothing sent (--dry-run). --json prints them; --output FILE writes them.")
    return out


def _tree(view: PipelineView, indent: str, out: list[str]) -> None:
    out.append(f"{indent}{view.title}: {view.words()}")
    for stage in view.stages:
        out.append(f"{indent}  stage {stage.name}: {in_gitlab_words(stage.status, stage.warnings)}")
        passed = 0
        for job in stage.jobs:
            plain = job.status == "success" and job.downstream is None
            if plain:
                passed += 1
                if len(stage.jobs) > TREE_PASSED_PER_STAGE and passed > TREE_PASSED_PER_STAGE:
                    continue
            out.append(f"{indent}    {_job_line(job)}")
            if job.downstream is not None:
                _tree(job.downstream, indent + "      ", out)
        if len(stage.jobs) > TREE_PASSED_PER_STAGE and passed > TREE_PASSED_PER_STAGE:
            out.append(f"{indent}    ... and {passed - TREE_PASSED_PER_STAGE} more passed jobs")


def _job_line(job: JobView) -> str:
    extra = []
    if job.bridge:
        extra.append("trigger job")
    if job.retried or job.attempt > 1:
        extra.append(f"attempt {job.attempt}" + (", retried" if job.retried else ""))
    line = f"{job.name}: {job.words()}" + (f" ({'; '.join(extra)})" if extra else "")
    if job.status == "failed" and job.reason:
        line += f" - {job.reason}"
    return line
