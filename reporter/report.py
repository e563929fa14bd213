"""The reporter as a library: read a pipeline, build its events, deliver them.

cli.py is a thin layer over these functions; tests call them directly too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from reporter import settings as cfg
from reporter.errors import DeliveryError, GitLabError
from reporter.snapshot import Pipeline
from reporter.settings import Settings


class GitLabTimeout(GitLabError):
    """Reading GitLab took too long; worker threads may still be waiting on the network."""


@dataclass
class Report:
    pipeline: Pipeline | None
    events: list[dict]
    outcomes: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def within(seconds: float, work: Callable[[], Report], what: str) -> Report:
    """Run work, but give up after `seconds`: a hung GitLab must not hold the pipeline.

    The work runs in a daemon thread so that one stuck request cannot keep the process alive;
    on time-out the caller is told, and the CLI exits at once.
    """
    import threading

    box: dict = {}

    def target():
        try:
            box["value"] = work()
        except BaseException as error:  # handed to the caller's thread
            box["error"] = error

    thread = threading.Thread(target=target, name="gitlab-reader", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise GitLabTimeout(f"GitLab did not finish answering within {seconds:.0f} s while reading {what}; "
                            "nothing was sent. Try again later.")
    if "error" in box:
        raise box["error"]
    return box["value"]


def gitlab_access(settings: Settings):
    """How to reach GitLab, from checked settings."""
    from reporter import reader

    return reader.Access(url=cfg.check_gitlab(settings), token=settings.gitlab_token,
                         job_token=settings.job_token, ca_file=settings.ca_file, verify=not settings.insecure)


def collect(settings: Settings, project: str | int, pipeline_id: int, **kwargs) -> Report:
    """Read one pipeline and build its events (no delivery), within --gitlab-timeout."""
    return within(settings.gitlab_timeout, lambda: _collect(settings, project, pipeline_id, **kwargs),
                  f"pipeline {pipeline_id}")


def _collect(settings: Settings, project: str | int, pipeline_id: int, *, ci: Mapping[str, str] | None = None,
             own_job_id: int | None = None, own_status: str | None = None,
             now: datetime | None = None) -> Report:
    import importlib
    import threading

    from reporter import reader, status

    # openlineage-python takes a quarter of a second to import; do it while GitLab answers.
    preload = threading.Thread(target=importlib.import_module, args=("reporter.events",), daemon=True)
    preload.start()

    access = gitlab_access(settings)
    now = now or datetime.now(timezone.utc)
    pipeline = reader.read_pipeline(access, project, pipeline_id, ci=ci, log_lines=settings.log_lines,
                                    redact=settings.redactor(), depth=settings.downstream_depth,
                                    tests=settings.test_results, exclude=settings.exclude_jobs)
    pipeline = status.with_own_job(pipeline, own_job_id, own_status, now)
    preload.join()
    from reporter import events as ev

    naming = cfg.default_naming(settings, access.url, pipeline.project_path)
    events = ev.build_events(pipeline, naming, now)
    notes = [f"Left out: {what}." for what in pipeline.left_out]
    unknown = status.unknown_statuses(pipeline.jobs)
    if unknown:
        notes.append(f"Unknown GitLab job status {', '.join(sorted(unknown))}: sent as eventType OTHER.")
    return Report(pipeline=pipeline, events=events, notes=notes)


def deliver(settings: Settings, events: list[dict], label: str | int,
            keep_dir: str = ".", say: Callable[[str], None] = lambda s: None) -> list:
    """Send the events to Databand (and --output); on failure keep the unsent ones in a file."""
    from reporter import delivery

    outcomes = []
    if settings.output:
        outcomes.append(delivery.FileTarget(settings.output).emit(events))
    if settings.dry_run:
        return outcomes
    url, token = cfg.check_databand(settings)
    # CI_SERVER_TLS_CA_FILE is GitLab's CA only: Databand gets its own, or the system's (REQUESTS_CA_BUNDLE).
    verify: bool | str = False if settings.insecure else (settings.databand_ca_file or True)
    chosen = []  # built first, so that a bad setting of any target stops before anything is sent
    for name in dict.fromkeys(settings.targets):
        if name == "databand":
            chosen.append(delivery.DatabandBulk(url, token, verify=verify))
        else:
            from reporter import targets

            chosen.append(targets.make(name, file_path=settings.target_file, verify=verify))
    failures: list[DeliveryError] = []
    for target in chosen:  # one target failing does not keep the others from their events
        try:
            outcomes.append(target.emit(events))
        except DeliveryError as error:
            error.kept_at = delivery.keep_unsent(error.unsent, label, keep_dir, prefix=f"{target.name}-unsent")
            error.target = target.name
            failures.append(error)
    if failures:
        if len(failures) == 1:
            raise failures[0]
        raise DeliveryError("; ".join(f"{e.target}: {e}" for e in failures), unsent=failures[0].unsent,
                            kept_at=", ".join(e.kept_at for e in failures))
    return outcomes
