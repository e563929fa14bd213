"""The command line: a thin layer over reporter.report."""

from __future__ import annotations

import functools
import os
import sys
import threading

import click

from reporter import __version__
from reporter.errors import ConfigError, DeliveryError, ReporterError
from reporter.settings import Settings, check_id, ci_variables

ENV_DEBUG = "DATABAND_REPORTER_DEBUG"


def _common(command):
    """The options report and resend share; each falls back on an environment variable."""
    options = [
        click.option("--gitlab-url", envvar=["GITLAB_URL", "CI_SERVER_URL"], metavar="URL",
                     help="GitLab's URL. [env: GITLAB_URL, then CI_SERVER_URL]"),
        click.option("--gitlab-token", envvar="GITLAB_TOKEN", metavar="TOKEN",
                     help="A token with read_api; without it CI_JOB_TOKEN, which reads only the job "
                          "list. [env: GITLAB_TOKEN]"),
        click.option("--databand-url", envvar="DATABAND_URL", metavar="URL",
                     help="Databand's custom-integration endpoint, https://<host>/api/v1/tracking/"
                          "open-lineage/<uid>/events/bulk. [env: DATABAND_URL]"),
        click.option("--databand-token", envvar="DATABAND_ACCESS_TOKEN", metavar="TOKEN",
                     help="Databand access token. [env: DATABAND_ACCESS_TOKEN]"),
        click.option("--dry-run", is_flag=True,
                     help="Print the events as a JSON array on stdout and send nothing."),
        click.option("--output", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
                     help="Also write the events as a JSON array to FILE."),
        click.option("--target", "targets", multiple=True, default=["databand"], show_default=True,
                     type=click.Choice(["databand", "openlineage", "file", "console"]),
                     envvar="DATABAND_TARGETS",
                     help="Where to send; repeat for several. openlineage: a standard OpenLineage HTTP "
                          "endpoint (OPENLINEAGE_URL, OPENLINEAGE_ENDPOINT, OPENLINEAGE_API_KEY); file: "
                          "lifecycle events, a JSON document a line, to --target-file; console: stdout. "
                          "[env: DATABAND_TARGETS, space-separated]"),
        click.option("--target-file", metavar="FILE", envvar="DATABAND_TARGET_FILE",
                     help="File of the `file` target. [default: openlineage-events.ndjson]"),
        click.option("--namespace", envvar="DATABAND_NAMESPACE", metavar="NAME",
                     help="OpenLineage namespace. [default: gitlab:<gitlab host>] [env: DATABAND_NAMESPACE]"),
        click.option("--pipeline-name", envvar="DATABAND_PIPELINE_NAME", metavar="NAME",
                     help="Name of the pipeline's job in Databand; stages and jobs are named "
                          "<pipeline>.<stage>.<job>. [default: the project path with dots, acme.data-platform] "
                          "[env: DATABAND_PIPELINE_NAME]"),
        click.option("--project-name", envvar="DATABAND_PROJECT", metavar="NAME",
                     help="Databand project. [default: the project path] [env: DATABAND_PROJECT]"),
        click.option("--insecure", is_flag=True,
                     help="Do not verify TLS certificates (GitLab and Databand). Prefer a CA file: "
                          "CI_SERVER_TLS_CA_FILE, DATABAND_CA_FILE."),
        click.option("--gitlab-timeout", type=click.FloatRange(1, 3600), default=100, show_default=True,
                     envvar="DATABAND_GITLAB_TIMEOUT", metavar="SECONDS",
                     help="Give up reading GitLab after this long (all requests together)."),
        click.option("--exclude-job", "exclude_jobs", multiple=True, metavar="PATTERN",
                     envvar="DATABAND_EXCLUDE_JOBS",
                     help="Leave out jobs whose name matches this shell pattern (the component passes its own "
                          "jobs' names); repeat for more. [env: DATABAND_EXCLUDE_JOBS, space-separated]"),
        click.option("--downstream-depth", type=click.IntRange(0, 10), default=2, show_default=True,
                     envvar="DATABAND_DOWNSTREAM_DEPTH",
                     help="Levels of child and multi-project pipelines to report under their bridges; 0: none."),
        click.option("--test-results/--no-test-results", default=True, show_default=True,
                     envvar="DATABAND_TEST_RESULTS",
                     help="Add GitLab's JUnit test report to the jobs that produced it (the `test` facet)."),
        click.option("--log-lines", type=click.IntRange(0, 10000), default=100, show_default=True,
                     envvar="DATABAND_LOG_LINES", help="Lines of a failed job's log to send; 0 sends none."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _settings(kw: dict) -> Settings:
    return Settings(
        gitlab_url=kw.pop("gitlab_url"), gitlab_token=kw.pop("gitlab_token"),
        job_token=os.environ.get("CI_JOB_TOKEN") or None,
        ca_file=os.environ.get("CI_SERVER_TLS_CA_FILE") or None,
        databand_ca_file=os.environ.get("DATABAND_CA_FILE") or None,
        databand_url=kw.pop("databand_url"), databand_token=kw.pop("databand_token"),
        dry_run=kw.pop("dry_run"), output=kw.pop("output"), namespace=kw.pop("namespace"),
        pipeline_name=kw.pop("pipeline_name"), project_name=kw.pop("project_name"),
        log_lines=kw.pop("log_lines"), insecure=kw.pop("insecure"), gitlab_timeout=kw.pop("gitlab_timeout"),
        targets=tuple(kw.pop("targets")), target_file=kw.pop("target_file"),
        downstream_depth=kw.pop("downstream_depth"), exclude_jobs=tuple(kw.pop("exclude_jobs")), test_results=kw.pop("test_results"),
    )


def _say(text: str) -> None:
    click.echo(text, err=True)


def _warn_insecure(settings: Settings) -> None:
    if settings.insecure:
        import warnings

        import urllib3

        # One warning of ours instead of urllib3's on every request.
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        _say("databand-gitlab-reporter: warning: TLS certificates are NOT verified (--insecure); "
             "a CA file is the safe fix.")


_TIMED_OUT = False


def main() -> None:
    """The console script: the click group, plus a hard exit when GitLab hung (see report.within)."""
    try:
        cli.main(prog_name="databand-gitlab-reporter")
    except SystemExit as done:
        if _TIMED_OUT:
            # Reader threads may still wait on a socket; they must not keep the job alive.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(done.code if isinstance(done.code, int) else 1)
        raise


def _friendly(func):
    """One line per failure, no traceback, nothing secret; the exit code names the side."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        redact = kwargs.get("_redact") or (lambda s: s)
        try:
            return func(*args, **kwargs)
        except ReporterError as error:
            from reporter.report import GitLabTimeout

            if isinstance(error, GitLabTimeout):
                global _TIMED_OUT
                _TIMED_OUT = True
            _say(f"databand-gitlab-reporter: error: {redact(str(error))}")
            if isinstance(error, DeliveryError) and error.kept_at:
                for kept in error.kept_at.split(", "):
                    target = kept.split("-unsent-")[0]
                    again = "" if target == "databand" else f" --target {target}"
                    _say(f"The unsent events are kept in {kept}; send them later with: "
                         f"databand-gitlab-reporter resend --from-file {kept}{again}")
            sys.exit(error.exit_code)
        except Exception as error:  # a bug of ours: still one line unless asked for more
            if os.environ.get(ENV_DEBUG):
                raise
            _say(f"databand-gitlab-reporter: unexpected error: {type(error).__name__}: {redact(str(error))} "
                 f"(set {ENV_DEBUG}=1 for the traceback, and please report it)")
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="databand-gitlab-reporter")
def cli():
    """Report GitLab pipelines, their stages and jobs to IBM Databand as OpenLineage run events.

    Inside a pipeline, `report` sends the pipeline it runs in; anywhere, `resend` sends
    pipelines by id, or a file of events that could not be sent.
    """


@cli.command()
@_common
def report(**kw):
    """Report the pipeline this job runs in (reads CI_PROJECT_ID, CI_PIPELINE_ID, CI_JOB_ID).

    Run it in the pipeline's last stage (`.post`) or in a job's after_script; the
    final status is computed from the jobs the way GitLab will compute it.
    """
    settings = _settings(kw)
    _warn_insecure(settings)
    _run_report(settings, _redact=settings.redactor())


@_friendly
def _run_report(settings: Settings, _redact=None):
    from reporter import report as lib

    env = os.environ
    project = check_id(env.get("CI_PROJECT_ID"), "CI_PROJECT_ID")
    pipeline_id = check_id(env.get("CI_PIPELINE_ID"), "CI_PIPELINE_ID")
    own_job = env.get("CI_JOB_ID")
    report = lib.collect(settings, project, pipeline_id, ci=ci_variables(env),
                         own_job_id=int(own_job) if own_job and own_job.isdigit() else None,
                         own_status=env.get("CI_JOB_STATUS"))
    _finish(settings, report, pipeline_id)


@cli.command()
@_common
@click.option("--project", metavar="ID|PATH", help="Project id or path (group/project).")
@click.option("--pipeline", "pipelines", multiple=True, metavar="ID", help="Pipeline id; repeat for more.")
@click.option("--from-file", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Send events kept in FILE (by a failed delivery, --output or --dry-run).")
@click.option("--since", metavar="DATE", help="Backfill: every pipeline of --project updated since DATE.")
@click.option("--ref", metavar="REF", help="Backfill: only pipelines of this branch or tag.")
@click.option("--status", "statuses", multiple=True, metavar="STATUS",
              help="Backfill: only pipelines with this status (success, failed, canceled ...); repeat for more.")
@click.option("--concurrency", type=click.IntRange(1, 16), default=4, show_default=True,
              help="Backfill: pipelines read and sent at once.")
@click.option("--cursor", metavar="FILE",
              help="Backfill: file recording the pipelines sent, to resume an interrupted backfill. "
                   "[default: .databand-backfill-<project>.json]")
def resend(project, pipelines, from_file, since, ref, statuses, concurrency, cursor, **kw):
    """Send pipelines again, by id, or a file of events that could not be sent.

    Run IDs are deterministic, so a resend updates the same runs in Databand.

    \b
    Examples:
      databand-gitlab-reporter resend --project acme/data-platform --pipeline 9001
      databand-gitlab-reporter resend --from-file databand-unsent-9001-20261124T101500Z.json
      databand-gitlab-reporter resend --project acme/data-platform --since 2026-11-01 --ref main
    """
    settings = _settings(kw)
    _warn_insecure(settings)
    if since:
        if pipelines or from_file:
            raise click.UsageError("--since backfills a project; it goes without --pipeline and --from-file.")
        _run_backfill(settings, project, since, ref, statuses, concurrency, cursor, _redact=settings.redactor())
    elif ref or statuses or cursor:
        raise click.UsageError("--ref, --status and --cursor go with --since.")
    else:
        _run_resend(settings, project, pipelines, from_file, _redact=settings.redactor())


@_friendly
def _run_resend(settings: Settings, project, pipelines, from_file, _redact=None):
    from reporter import report as lib
    from reporter.delivery import load_events

    if from_file:
        if project or pipelines:
            raise ConfigError("Use either --from-file or --project/--pipeline, not both.")
        events = load_events(from_file)
        _finish(settings, lib.Report(pipeline=None, events=events), _label(from_file))
        return
    if not project or not pipelines:
        raise ConfigError("resend needs --project and at least one --pipeline (or --from-file).")
    project_ref: str | int = int(project) if project.isdigit() else project
    ids = [check_id(p, "--pipeline") for p in pipelines]
    failures: list[ReporterError] = []
    for pipeline_id in ids:
        try:
            _finish(settings, lib.collect(settings, project_ref, pipeline_id), pipeline_id)
        except ReporterError as error:
            if len(ids) == 1:
                raise
            failures.append(error)
            _say(f"databand-gitlab-reporter: pipeline {pipeline_id}: {_redact(str(error))}")
    if failures:
        worst = max(failures, key=lambda e: e.exit_code)
        raise type(worst)(f"{len(failures)} of {len(ids)} pipelines were not reported (see above).")


@cli.command("parent-env")
@click.option("--format", "form", type=click.Choice(["shell", "dotenv"]), default="shell", show_default=True,
              help="shell: export lines to eval or source; dotenv: KEY=VALUE for artifacts:reports:dotenv.")
@click.option("--namespace", envvar="DATABAND_NAMESPACE", metavar="NAME",
              help="As for report: must match it; no '/'. [env: DATABAND_NAMESPACE]")
@click.option("--pipeline-name", envvar="DATABAND_PIPELINE_NAME", metavar="NAME",
              help="As for report: must match it; no '/'. [env: DATABAND_PIPELINE_NAME]")
@click.option("--gitlab-url", envvar="GITLAB_URL", metavar="URL", help="As for report. [env: GITLAB_URL]")
def parent_env(form, namespace, pipeline_name, gitlab_url):
    """Print the OPENLINEAGE_PARENT_* variables of this job, for dbt-ol, Spark or Airflow.

    Their runs then hang under this job's run in the report, with the same run IDs.
    Reads only CI_* variables; makes no request. A setting it cannot hand on intact
    (a '/' in the namespace or pipeline name, which dbt-ol splits on) is an error, exit 2.

    \b
    In a job's script, either:
      eval "$(databand-gitlab-reporter parent-env)"
    (eval drops the exit status, so on failure the command also prints "(exit 2)"
    for eval to run: the job stops, as GitLab's shell stops at a failing line), or,
    as two lines (not joined with &&, which keeps a failure from stopping the job):
      databand-gitlab-reporter parent-env > databand-parent.env
      . ./databand-parent.env
    For later jobs: parent-env --format dotenv > databand-parent.env, listed
    under artifacts:reports:dotenv.
    """
    _run_parent_env(form, namespace, pipeline_name, gitlab_url)


@_friendly
def _run_parent_env(form, namespace, pipeline_name, gitlab_url, _redact=None):
    from reporter.handoff import parent_variables, render

    try:
        text = render(parent_variables(os.environ, namespace, pipeline_name, gitlab_url), form)
    except ReporterError as error:
        # eval "$(...)" runs whatever was printed and ignores the exit status: a failing statement is
        # the only way the failure reaches a set -e shell. A terminal gets the error line alone.
        if form == "shell" and not sys.stdout.isatty():
            click.echo(f"(exit {error.exit_code})")
        raise
    click.echo(text)


@_friendly
def _run_backfill(settings: Settings, project, since, ref, statuses, concurrency, cursor_path, _redact=None):
    from reporter import backfill, reader
    from reporter import report as lib
    if not project:
        raise ConfigError("A backfill needs --project.")
    access = lib.gitlab_access(settings)
    if not settings.dry_run:
        from reporter.settings import check_databand

        check_databand(settings)
    project_ref: str | int = int(project) if project.isdigit() else project
    updated_after = backfill.parse_since(since)
    found = reader.list_pipelines(access, project_ref, updated_after=updated_after, ref=ref, statuses=statuses)
    query = {"project": str(project), "since": updated_after, "ref": ref, "status": sorted(statuses)}
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(project))
    cursor = backfill.Cursor.open(cursor_path or f".databand-backfill-{safe}.json", query)
    ids = [int(p["id"]) for p in found]
    _say(f"Backfill of {project}: {len(ids)} pipelines updated since {updated_after}"
         f"{f', {len(cursor.done & set(ids))} already sent' if cursor.done else ''}.")

    lock = threading.Lock()

    def send(pipeline_id: int) -> None:
        lib.deliver(settings, lib.collect(settings, project_ref, pipeline_id).events, pipeline_id)

    bar = click.progressbar(length=len(ids), label="Pipelines", file=sys.stderr) if sys.stderr.isatty() else None
    count = {"n": 0}

    def progress(result) -> None:
        with lock:
            count["n"] += 1
            if bar is not None:
                bar.update(1)
                if result.error is not None:
                    _say(f"\npipeline {result.pipeline_id}: {_redact(str(result.error))}")
                return
            state = "done before, skipped" if result.skipped else \
                (f"failed: {_redact(str(result.error))}" if result.error else "sent")
            _say(f"[{count['n']}/{len(ids)}] pipeline {result.pipeline_id}: {state}")

    results = backfill.run(ids, send, cursor, concurrency, progress)
    if bar is not None:
        bar.render_finish()
    failed = [r for r in results if r.error is not None]
    skipped = sum(1 for r in results if r.skipped)
    _say(f"Backfill: {len(ids)} pipelines, {len(ids) - len(failed) - skipped} sent, {skipped} skipped "
         f"(sent before), {len(failed)} failed. Cursor: {cursor.path}")
    if failed:
        worst = max(failed, key=lambda r: r.error.exit_code).error
        raise type(worst)(f"{len(failed)} pipelines were not sent; run the same command again to retry "
                          "only those (the cursor skips the rest).")


def _label(path: str) -> str:
    """What a kept file is about: "9001" for databand-unsent-9001-20261124T101500Z.json."""
    import re

    name = os.path.basename(path).removesuffix(".json")
    match = re.fullmatch(r"(?:databand|openlineage|file|console)-unsent-(.+)-\d{8}T\d{6}Z", name)
    return match[1] if match else name


def _finish(settings: Settings, report, label) -> None:
    from reporter import summary
    from reporter.report import deliver

    if settings.dry_run:
        from reporter.delivery import dump

        sys.stdout.flush()
        dump(report.events, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    outcomes = deliver(settings, report.events, label)
    p = report.pipeline
    status = None
    if report.events:
        tags = report.events[0]["run"]["facets"].get("tags", {}).get("tags", [])
        status = next((t["value"] for t in tags if t["key"] == "gitlab.status"), None)
        if any(t["key"] == "gitlab.warnings" for t in tags):
            status = f"{status} with warnings"  # GitLab's "passed with warnings"
    title = f"Databand: {'pipeline ' + str(p.id) if p else label} {status or ''}, " \
            f"{len(report.events)} events {'built (dry run)' if settings.dry_run else 'sent'}"
    _say(summary.render(title, summary.lines(report.events, status, outcomes, report.notes),
                        in_gitlab=os.environ.get("GITLAB_CI") == "true"))
