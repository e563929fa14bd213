"""The reporter as a library: read a pipeline, build its events, deliver them, sum it up.

cli.py is a thin layer over these functions; tests call them directly too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from reporter import delivery, eventfiles, events, ids, packed, status, stream, targets
from reporter.delivery import Delivery
from reporter.errors import DeliveryError, ReporterError
from reporter.gitlab import http, read
from reporter.process import Interrupted
from reporter.settings import Settings
from reporter.snapshot import Pipeline
from reporter.targets import Outcome


@dataclass
class Report:
    pipeline: Pipeline | None
    events: Sequence[dict]
    notes: list[str] = field(default_factory=list)
    delivery: Delivery = field(default_factory=Delivery)  # what deliver() did: nothing before it ran


def gitlab_access(settings: Settings) -> http.Access:
    """How to reach GitLab, from checked settings."""
    return http.Access(url=settings.gitlab(), token=settings.gitlab_token, job_token=settings.job_token,
                       ca_file=settings.ca_file, verify=not settings.insecure, in_flight=settings.gitlab_concurrency,
                       url_source=settings.source("gitlab_url"), token_source=settings.source("gitlab_token"))


def gitlab_client(settings: Settings) -> http.Client:
    """The one GitLab client of a command (its session, retry policy and bounds), made by the command
    and passed down to every read; each pipeline then reads within a budget of its own (`within`)."""
    return http.connect(gitlab_access(settings), policy=settings.gitlab_policy, bounds=settings.gitlab_bounds,
                        progress=settings.progress)


def collect(settings: Settings, project: str | int, pipeline_id: int, *, own_job_id: int | None = None,
            own_status: str | None = None, now: datetime | None = None, client: http.Client | None = None) -> Report:
    """Read one pipeline and build its events (no delivery); every GitLab read of it draws from
    one budget of --gitlab-timeout seconds (timebound), so a hung GitLab cannot hold the job."""
    client = (client or gitlab_client(settings)).within(settings.gitlab_timeout, _budget_name(settings))
    now = now or datetime.now(timezone.utc)
    pipeline = read.read_pipeline(client, project, pipeline_id, context=settings.context,
                                  log_lines=settings.log_lines, redact=settings.redactor(),
                                  depth=settings.downstream_depth, tests=settings.test_results,
                                  exclude=settings.exclude_jobs)
    pipeline = status.with_own_job(pipeline, own_job_id, own_status, now)
    naming = settings.naming(client.access.url, pipeline.project_path, pipeline.name)
    # Built as delivery reaches them (stream.py): the first part is posted while the rest is made.
    built = stream.StreamedEvents(lambda: events.EventBuilder(pipeline, naming, now,
                                                              cost_factors=settings.cost_factors).events(),
                                  mask=settings.redactor())
    notes = [f"Left out: {what}." for what in pipeline.left_out]
    unknown = status.unknown_statuses(pipeline.jobs)
    if unknown:
        notes.append(f"Unknown GitLab job status {', '.join(sorted(unknown))}: sent as eventType OTHER.")
    return Report(pipeline=pipeline, events=built, notes=notes)


def _budget_name(settings: Settings) -> str:
    return settings.sources.get("gitlab_timeout", "--gitlab-timeout")


def collect_this_pipeline(settings: Settings) -> tuple[Report, int]:
    """The pipeline the job runs in, from the job's CI context. Every setting is checked before
    the first request, so a missing one is said in a second, not after GitLab has been read."""
    project, pipeline_id = settings.context.this_pipeline()
    settings.gitlab()
    targets.make_targets(settings)  # Databand's and the other targets' settings, checked up front
    report = collect(settings, project, pipeline_id, own_job_id=settings.context.job_id,
                     own_status=settings.context.job_status)
    return report, pipeline_id


def deliver(settings: Settings, report: Report, label: str | int, keep_dir: str = ".") -> Report:
    """Write --output (a failure there is a warning, never a lost delivery), then send the events to
    every target. The report comes back with its `delivery`: what each target accepted, and each
    failure with the file its unsent events were kept in. A signal meanwhile keeps every event not
    acknowledged and raises a new Interrupted naming the files."""
    chosen = targets.make_targets(settings)  # all built first: a bad setting stops before any send
    # Whoever built them (a library caller's list), what leaves is masked like the reporter's own.
    report = replace(report, events=packed.masked(report.events, settings.redactor()))
    outcomes: list[Outcome] = []
    notes = list(report.notes)
    try:
        if settings.output:
            try:
                eventfiles.write_events(settings.output, report.events)
                outcomes.append(Outcome(name="output", where=settings.output, sent=len(report.events)))
            except OSError as error:
                sent = "the delivery went on without it" if chosen else "--dry-run sends nothing"
                notes.append(f"Warning: could not write --output {settings.output} "
                             f"({error.strerror or type(error).__name__}); {sent}.")
    except Interrupted as stop:  # before any target: each keeps everything
        raise delivery.keep_interrupted(stop, chosen, report.events, label, keep_dir) from None
    done = delivery.deliver(chosen, report.events, label, keep_dir)
    done.outcomes[:0] = outcomes
    return replace(report, notes=notes, delivery=done)


def resend_pipelines(settings: Settings, project: str, pipeline_ids: Sequence[int],
                     each: Callable[[int, Report | None, ReporterError | None], None]) -> int:
    """Read and send pipelines by id, one after another; one failing does not stop the rest. `each`
    hears of every pipeline: its report (with its delivery, failed or not), or the error that kept
    it from being read. Returns the exit code the worst pipeline asks for (0 when all were sent)."""
    project_ref: str | int = int(project) if ids.is_number(project) else project
    worst = 0
    client = gitlab_client(settings)
    for pipeline_id in pipeline_ids:
        try:
            report = deliver(settings, collect(settings, project_ref, pipeline_id, client=client), pipeline_id)
        except ReporterError as error:
            worst = max(worst, error.exit_code)
            each(pipeline_id, None, error)
            continue
        if not report.delivery.ok:
            worst = max(worst, DeliveryError.exit_code)
        each(pipeline_id, report, None)
    return worst
