"""The command line: it parses, calls the library (reporter.report, reporter.backfill) and prints."""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib
import json
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from reporter import PROG, __version__, handoff, process, summary
from reporter.errors import ConfigError, ReporterError
from reporter.process import Interrupted
from reporter.redact import Redactor
from reporter.settings import GITLAB_CONCURRENCY, Settings, check_id, check_project, check_url, known_secrets
from reporter.status import KNOWN, SETTLED
from reporter.targets import NAMES

if TYPE_CHECKING:
    from reporter.backfill import Backfill, Result
    from reporter.report import Report


class _Library:
    """The library behind the commands (reporter.report, .backfill, .eventfiles), imported when a
    command first calls it: they bring python-gitlab and requests, two thirds of the start-up, which
    `--help`, `--version`, `parent-env` and a usage error never need."""

    def __getattr__(self, name: str):
        module = importlib.import_module(f"reporter.{name}")
        setattr(self, name, module)
        return module


lib = _Library()

ENV_DEBUG = "DATABAND_REPORTER_DEBUG"


def _common(command):
    """The options report and resend share. Each flag wins over its variable (read by Settings)."""
    options = [
        click.option("--gitlab-url", metavar="URL",
                     help="GitLab's own address, e.g. https://gitlab.example.com (no /api/v4, no project path). "
                          "[env: GITLAB_URL, then CI_SERVER_URL]"),
        click.option("--gitlab-token", metavar="TOKEN",
                     help="A token with read_api, the token alone (no 'Bearer '); without it CI_JOB_TOKEN, "
                          "which reads only the job list. [env: GITLAB_TOKEN]"),
        click.option("--databand-url", metavar="URL",
                     help="Databand's custom-integration endpoint, https://<host>/api/v1/tracking/"
                          "open-lineage/<uid>/events/bulk. [env: DATABAND_URL]"),
        click.option("--databand-token", metavar="TOKEN",
                     help="Databand access token, the token alone (no 'Bearer '). [env: DATABAND_ACCESS_TOKEN]"),
        click.option("--dry-run", is_flag=True, default=None,
                     help="Send nothing: print the pipeline as a tree of stages and jobs with their "
                          "statuses (--json: the events instead; --output FILE also writes them)."),
        click.option("--json", "as_json", is_flag=True, default=None,
                     help="With --dry-run: print the events as a JSON array on stdout, not the tree."),
        click.option("--output", type=click.Path(dir_okay=False), metavar="FILE",
                     help="Also write the events as a JSON array to FILE (a failure to write is a warning)."),
        click.option("--target", "targets", multiple=True,
                     type=click.Choice(NAMES),
                     help="Where to send; repeat for several. openlineage: a standard OpenLineage HTTP "
                          "endpoint (OPENLINEAGE_URL, OPENLINEAGE_ENDPOINT, OPENLINEAGE_API_KEY); file: "
                          "lifecycle events, a JSON document a line, to --target-file; console: stdout. "
                          "The last three need the openlineage extra. "
                          "[default: databand] [env: DATABAND_TARGETS, space-separated]"),
        click.option("--target-file", metavar="FILE",
                     help="File of the `file` target. [default: openlineage-events.ndjson] "
                          "[env: DATABAND_TARGET_FILE]"),
        click.option("--namespace", metavar="NAME",
                     help="OpenLineage namespace. [default: gitlab:<gitlab host>] [env: DATABAND_NAMESPACE]"),
        click.option("--pipeline-name", metavar="NAME",
                     help="Name of the pipeline's job in Databand; stages and jobs are named "
                          "<pipeline>.<stage>.<job>. [default: the project path with dots, then the workflow:name "
                          "if set: acme.data-platform.Nightly load] "
                          "[env: DATABAND_PIPELINE_NAME]"),
        click.option("--project-name", metavar="NAME",
                     help="Databand project. [default: the project path] [env: DATABAND_PROJECT]"),
        click.option("--insecure", is_flag=True, default=None,
                     help="Do not verify TLS certificates (GitLab and Databand). Prefer a CA file: "
                          "CI_SERVER_TLS_CA_FILE, DATABAND_CA_FILE."),
        click.option("--gitlab-timeout", type=_Seconds(1, 3600), metavar="SECONDS",
                     help="Give up reading GitLab after this long (all requests together). "
                          "[default: 100] [env: DATABAND_GITLAB_TIMEOUT]"),
        click.option("--gitlab-concurrency", type=_Count(1, 64), metavar="N",
                     help="GitLab requests in flight at once, for the whole command (backfill and downstream "
                          f"pipelines included). [default: {GITLAB_CONCURRENCY}] [env: DATABAND_GITLAB_CONCURRENCY]"),
        click.option("--exclude-job", "exclude_jobs", multiple=True, metavar="PATTERN",
                     help="Leave out jobs whose name matches this shell pattern (the component passes its own "
                          "jobs' names); repeat for more. [env: DATABAND_EXCLUDE_JOBS, space-separated]"),
        click.option("--downstream-depth", type=_Count(0, 10), metavar="N",
                     help="Levels of child and multi-project pipelines to report under their bridges; 0: none. "
                          "[default: 2] [env: DATABAND_DOWNSTREAM_DEPTH]"),
        click.option("--test-results/--no-test-results", default=None,
                     help="Add GitLab's JUnit test report to the jobs that produced it (the `test` facet). "
                          "[default: on] [env: DATABAND_TEST_RESULTS]"),
        click.option("--cost-factor", "cost_factors", multiple=True, metavar="TAG=F", callback=_cost_factors,
                     help="Compute-minute cost factor of the runners with this tag, for the estimate "
                          "(gitlab.compute_minutes); repeat for more. GitLab.com's hosted runners are known. "
                          "[env: DATABAND_COST_FACTORS, space-separated]"),
        click.option("--log-lines", type=_Count(0, 10000), metavar="N",
                     help="Lines of a failed job's log to send; 0 sends none. [default: 100] "
                          "[env: DATABAND_LOG_LINES]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


# The one mask of every line the commands print, stdout and stderr: the secrets of the environment
# (and flags) from the start, the settings' own once they are read.
_masking = {"redact": Redactor()}


def _mask_with(redact: Redactor) -> None:
    _masking["redact"] = redact


def _mask(text: str) -> str:
    return _masking["redact"](text)


class OutputLost(ReporterError):
    """stdout was closed (`| head -0`, `>&-`) before the command's output was printed whole:
    nothing that reads it got it, so it is no success."""

    exit_code = process.DELIVERY

    def __init__(self, what: str):
        super().__init__(f"stdout was closed before {what} could be printed whole: nothing that reads it got it "
                         f"(exit {process.DELIVERY}).")


def _stdout_gone(error: BaseException) -> bool:
    """Whether a write failed because stdout's reader went away or stdout was closed."""
    if isinstance(error, ValueError):
        return "closed file" in str(error)
    return isinstance(error, BrokenPipeError) or (isinstance(error, OSError) and error.errno == errno.EBADF)


# What GitLab's names may hold that a terminal or the job log would act on (a reset, a cursor move,
# a title): shown as \xNN once masked (a secret must be found before it is rewritten). GitLab's
# section markers, the summary's own ESC [0K, pass.
_ACTING = re.compile(r"(?!\x1b\[0K)[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]")


def _visible(text: str) -> str:
    return _ACTING.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


def _out(text: str, what: str, visible: bool = False) -> None:
    try:
        click.echo(_visible(_mask(text)) if visible else _mask(text))
        sys.stdout.flush()
    except (OSError, ValueError):  # a closed pipe, or a stdout closed outright
        raise OutputLost(what) from None


def _say(text: str) -> None:
    click.echo(_visible(_mask(text)), err=True)


def _log(text: str) -> None:
    """Text for the job log byte for byte: click.echo strips escape sequences when stderr is not a
    terminal, as on a runner, and GitLab's section markers are escape sequences."""
    sys.stderr.write(_visible(_mask(text)) + "\n")
    sys.stderr.flush()


class _AsciiDigits(click.ParamType):
    """int() and float() take other scripts' digits ('١', '５') as numbers; a flag takes ASCII ones only,
    as its variable does (settings._number)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.isascii():
            self.fail(f"{value!r} is not a number written in ASCII digits.", param, ctx)
        return super().convert(value, param, ctx)  # type: ignore[safe-super]


class _Count(_AsciiDigits, click.IntRange):
    pass


class _Seconds(_AsciiDigits, click.FloatRange):
    pass


class _Finite(_Seconds):
    """A FloatRange that refuses nan, which compares false to both bounds and so passes click's."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number


def _cost_factors(ctx, param, value):
    try:
        return lib.cost.parse_cost_factors(value) if value else None
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _settings(flags: dict, reads_gitlab: bool = True) -> Settings:
    if flags.pop("as_json", None) and not flags.get("dry_run"):
        raise click.UsageError("--json goes with --dry-run (to write the events while sending, use --output FILE).")
    given = click.get_current_context().obj  # settings without a flag, from a caller (tests: quick bounds)
    # An error below may quote a value: the environment's secrets are masked before anything is said.
    _mask_with(Redactor(known_secrets(os.environ, flags)))
    try:
        settings = Settings.from_env(os.environ, flags)
        if isinstance(given, Mapping):
            settings = settings.replace(**given)
        if settings.databand_ui_url:
            check_url(settings.databand_ui_url, settings.source("databand_ui_url"), "https://databand.example.com")
    except ConfigError as error:
        _say(f"{PROG}: error: {error}")
        sys.exit(error.exit_code)
    if settings.insecure:
        # One warning of ours instead of urllib3's on every request.
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
        _say(f"{PROG}: warning: TLS certificates are NOT verified (--insecure); a CA file is the safe fix.")
    for line in settings.cleartext(reads_gitlab):
        _say(f"{PROG}: warning: {line}")
    # A line per retry and per wait (Databand's, GitLab's), so that a wrong host shows in seconds.
    settings = settings.replace(progress=_say)
    _mask_with(settings.redactor())
    return settings


def _context(settings: Settings) -> tuple[bool, str | None, int | None, int | None]:
    """The job the command runs in: in a job at all, its folder, its project and pipeline ids."""
    context = settings.context
    return context.in_job, context.project_dir, context.project_id, context.pipeline_id


def main() -> None:
    """The console script: the click group, with signals turned into kept files and exit 130/143
    (reporter/process.py)."""
    process.install()
    process.guard_streams()
    try:
        try:
            cli.main(prog_name=PROG)
        except OSError as error:  # the shell completion script, printed before any command is parsed
            _output_lost(error, "the shell completion script")
    except Interrupted as stop:
        process.stopped(stop.stop, _say)
    except SystemExit:
        process.settle_stdout()
        raise


@contextmanager
def _unsent_hint(command: str | None) -> Iterator[None]:
    """A signal before anything was sent: the stop line names the command that sends it later."""
    try:
        yield
    except Interrupted as interrupted:
        stop = interrupted.stop
        if command is None or stop.kept or stop.lost or stop.acknowledged or stop.resend:
            raise
        raise interrupted.with_(resend=command) from None


def _friendly(func):
    """One line per failure, no traceback, nothing secret; the exit code names the side."""

    @functools.wraps(func)
    def wrapper(settings, *args, **kwargs):
        redact = settings.redactor() if isinstance(settings, Settings) else (lambda s: s)
        try:
            return func(settings, *args, **kwargs)
        except ReporterError as error:
            _say(f"{PROG}: error: {redact(str(error))}")
            sys.exit(error.exit_code)
        # Broad on purpose: a bug of ours is still one line (naming it) unless asked for more; every
        # event was kept or delivered before it reached here.
        except Exception as error:  # noqa: BLE001
            if os.environ.get(ENV_DEBUG):
                raise
            _say(f"{PROG}: unexpected error: {type(error).__name__}: {redact(str(error))} "
                 f"(set {ENV_DEBUG}=1 for the traceback, and please report it)")
            sys.exit(process.BUG)

    return wrapper


_SECRET_FLAGS = {"--gitlab-token": "gitlab_token", "--databand-token": "databand_token",
                 "--gitlab-url": "gitlab_url", "--databand-url": "databand_url"}


def _argv_secrets(argv: list[str]) -> dict[str, str]:
    """The secret flags' values as typed, for an error raised before click has parsed them."""
    found: dict[str, str] = {}
    for index, arg in enumerate(argv):
        name, equals, value = arg.partition("=")
        if name in _SECRET_FLAGS:
            if not equals and index + 1 < len(argv):
                value = argv[index + 1]
            found[_SECRET_FLAGS[name]] = value
    return found


class _MaskedGroup(click.Group):
    """click prints its usage errors itself, quoting the value it refused (a token pasted into
    --hours): the message goes through the one mask first, built from the environment and the
    secret flags as typed, since the settings may not be read yet."""

    @staticmethod
    def _masked(error: click.ClickException, argv: list[str]) -> click.ClickException:
        # click types the message Final; the same exception (its context, its usage line) is shown.
        setattr(error, "message", Redactor(known_secrets(os.environ, _argv_secrets(argv)))(error.message))  # noqa: B010
        return error

    def make_context(self, info_name, args, parent=None, **extra):
        argv = list(args)
        try:
            _utf8_only(argv)
            ctx = super().make_context(info_name, args, parent, **extra)
        except click.ClickException as error:
            raise self._masked(error, argv) from None
        except OSError as error:  # --help or --version into a stdout that takes nothing
            asked = next((arg for arg in argv if arg in ("--version", "--help", "-h")), "--help")
            _output_lost(error, "the version" if asked == "--version" else "the help")
        ctx.meta["argv"] = argv
        return ctx

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.ClickException as error:
            raise self._masked(error, ctx.meta.get("argv", [])) from None
        except OSError as error:  # a command's --help; a command's own failures are its own (_friendly)
            _output_lost(error, "the help")


_UNDECODED = re.compile("[\ud800-\udfff]")


def _utf8_only(argv: list[str]) -> None:
    """Python hands on an argument's bytes that are not UTF-8 as lone surrogates, which no request,
    file name or JSON can carry: an "unexpected error" later (--ref, --project). Refused here,
    naming the flag, never showing the value (it may be a token)."""
    for index, arg in enumerate(argv):
        if not _UNDECODED.search(arg):
            continue
        flag = arg.split("=", 1)[0] if arg.startswith("-") and "=" in arg else \
            argv[index - 1] if index and argv[index - 1].startswith("--") else ""
        named = flag if flag and not _UNDECODED.search(flag) else "An argument"
        raise click.UsageError(f"{named} holds bytes that are not UTF-8 text (as the shell or script passed them): "
                               "type it again, or set the terminal's encoding to UTF-8.")


def _output_lost(error: OSError, what: str) -> None:
    """--help, --version or the shell completion script printed into a stdout that takes nothing
    (closed, a reader gone, a full device): one line and exit 4, as any output lost; click itself
    would end with a traceback, or, for a reader gone, with 1 and nothing said."""
    if not (_stdout_gone(error) or error.errno in (errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT)):
        raise error
    _say(f"{PROG}: error: {OutputLost(what)}")
    sys.exit(process.DELIVERY)


@click.group(cls=_MaskedGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=process.EXIT_CODES)
@click.version_option(__version__, prog_name=PROG)
def cli():
    """Report GitLab pipelines, their stages and jobs to IBM Databand as OpenLineage run events.

    Inside a pipeline, `report` sends the pipeline it runs in; anywhere, `resend` sends
    pipelines by id, or a file of events that could not be sent.

    \b
    Examples:
      databand-gitlab-reporter demo
      databand-gitlab-reporter resend --project acme/data-platform --pipeline 9001 --dry-run
      databand-gitlab-reporter report --help
    """


@cli.command()
@_common
def report(**flags):
    """Report the pipeline this job runs in (reads CI_PROJECT_ID, CI_PIPELINE_ID, CI_JOB_ID).

    Run it in the pipeline's last stage (`.post`) or in a job's after_script; the
    final status is computed from the jobs the way GitLab will compute it.

    \b
    Examples (in a job's script):
      databand-gitlab-reporter report
      databand-gitlab-reporter report --dry-run
      databand-gitlab-reporter report --target databand --target openlineage --output databand-events.json
    """
    _run_report(_settings(flags))


@_friendly
def _run_report(settings: Settings):
    _, _, project_id, pipeline_id = _context(settings)
    later = f"{PROG} resend --project {project_id} --pipeline {pipeline_id}" if project_id and pipeline_id else None
    with _unsent_hint(later):
        report, pipeline_id = lib.report.collect_this_pipeline(settings)
        try:
            _finish(settings, report, pipeline_id)
        finally:  # Databand has whatever was accepted, so the link helps after a failed part too
            _annotate(settings, pipeline_id)


@cli.command()
@_common
@click.option("--project", metavar="ID|PATH", help="Project id or path (group/project).")
@click.option("--pipeline", "pipelines", multiple=True, metavar="ID", help="Pipeline id; repeat for more.")
@click.option("--from-file", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Send events kept in FILE (by a failed delivery, --output or --dry-run).")
@click.option("--since", metavar="DATE", help="Backfill: every pipeline of --project updated since DATE.")
@click.option("--ref", metavar="REF", help="Backfill: only pipelines of this branch or tag.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(sorted(KNOWN)), metavar="STATUS",
              help="Backfill: only pipelines with this status, in GitLab's API words (success, failed, "
                   "canceled, manual ...); repeat for more.")
@click.option("--concurrency", type=_Count(1, 16), default=4, show_default=True, metavar="N",
              help="Backfill: pipelines read and sent at once (their GitLab requests share "
                   "--gitlab-concurrency).")
@click.option("--cursor", metavar="FILE",
              help="Backfill: file recording the pipelines sent, to resume an interrupted backfill. "
                   "[default: .databand-backfill-<project>.json]")
def resend(project, pipelines, from_file, since, ref, statuses, concurrency, cursor, **flags):
    """Send pipelines again, by id, or a file of events that could not be sent.

    Run IDs are deterministic, so a resend updates the same runs in Databand.

    \b
    Examples:
      databand-gitlab-reporter resend --project acme/data-platform --pipeline 9001
      databand-gitlab-reporter resend --from-file databand-unsent-9001-20261124T101500Z.json
      databand-gitlab-reporter resend --project acme/data-platform --since 2026-11-01 --ref main
    """
    if since and (pipelines or from_file):
        raise click.UsageError("--since backfills a project; it goes without --pipeline and --from-file.")
    if not since and (ref or statuses or cursor):
        raise click.UsageError("--ref, --status and --cursor go with --since.")
    settings = _settings(flags, reads_gitlab=not from_file or bool(since))
    if since:
        _run_backfill(settings, project, since, ref, tuple(statuses), concurrency, cursor)
    elif from_file:
        _run_from_file(settings, from_file, bool(project or pipelines))
    else:
        _run_resend(settings, project, pipelines)


@_friendly
def _run_from_file(settings: Settings, path: str, also_pipelines: bool):
    if also_pipelines:
        raise ConfigError("Use either --from-file or --project/--pipeline, not both.")
    # Read back, they are masked as the reporter's own events are, whatever the file holds.
    events = lib.packed.masked(lib.eventfiles.load_events(path), settings.redactor())
    report = lib.report.Report(pipeline=None, events=events)
    _finish(settings, report, lib.eventfiles.label_of(path))


@_friendly
def _run_resend(settings: Settings, project, pipelines):
    if not project or not pipelines:
        raise ConfigError("resend needs --project and at least one --pipeline (or --from-file).")
    project = check_project(project, "--project")
    given = [check_id(p, "--pipeline") for p in pipelines]
    ids = list(dict.fromkeys(given))  # in the order given: a pipeline named twice is read and sent once
    twice = sorted({i for i in given if given.count(i) > 1})
    if twice:
        _say(f"{PROG}: note: --pipeline {', '.join(map(str, twice))} given more than once; each is reported once.")
    settings.gitlab()
    lib.targets.make_targets(settings)  # every setting checked before GitLab is read
    later = f"{PROG} resend --project {project} " + " ".join(f"--pipeline {i}" for i in ids)
    with _unsent_hint(later):
        if settings.dry_run:  # the events themselves are the output
            for pipeline_id in ids:
                _finish(settings, lib.report.collect(settings, project, pipeline_id), pipeline_id)
            return
        failed: list[int] = []
        redact = settings.redactor()

        def each(pipeline_id, report, error):
            if report is not None:
                _log(_summary(settings, report, pipeline_id))
                if not report.delivery.ok:
                    failed.append(pipeline_id)
                    _say(f"{PROG}: {'error' if len(ids) == 1 else f'pipeline {pipeline_id}'}: "
                         f"{redact(report.delivery.message())}")
            else:
                failed.append(pipeline_id)
                _say(f"{PROG}: {'error' if len(ids) == 1 else f'pipeline {pipeline_id}'}: {redact(str(error))}")

        code = lib.report.resend_pipelines(settings, project, ids, each)
    if len(ids) > 1 and failed:
        _say(f"{PROG}: error: {len(failed)} of {len(ids)} pipelines were not reported (see above).")
    sys.exit(code)


@_friendly
def _run_backfill(settings: Settings, project, since, ref, statuses, concurrency, cursor_path):
    if project:
        project = check_project(project, "--project")
        settings.gitlab(lists=True)
    plan = lib.backfill.plan(settings, project, since, ref, statuses, cursor_path)
    done_before = len(plan.cursor.done & set(plan.pipeline_ids))
    _say(f"Backfill of {project}: {len(plan.pipeline_ids)} pipelines updated since {plan.since}"
         f"{f', {done_before} already sent' if done_before else ''}.")
    _execute(settings, plan, concurrency)


def _execute(settings: Settings, plan: Backfill, concurrency: int) -> None:
    """Run a backfill or sweep plan with a progress bar on a terminal, a line a pipeline in a job log."""
    redact = settings.redactor()
    lock = threading.Lock()
    bar = click.progressbar(length=len(plan.pipeline_ids), label="Pipelines", file=sys.stderr) \
        if sys.stderr.isatty() else None
    count = {"n": 0}

    def progress(result: Result) -> None:
        with lock:
            count["n"] += 1
            if bar is not None:
                bar.update(1)
                if result.error is not None:
                    _say(f"\npipeline {result.pipeline_id}: {redact(str(result.error))}")
                return
            state = summary.backfill_state(result.skipped, redact(str(result.error)) if result.error else None,
                                           dry_run=settings.dry_run)
            _say(f"[{count['n']}/{len(plan.pipeline_ids)}] pipeline {result.pipeline_id}: {state}")

    lib.backfill.execute(settings, plan, concurrency, progress)
    if bar is not None:
        bar.render_finish()
    _say(plan.line())
    failed = plan.failure_line()
    if failed is not None:
        _say(f"{PROG}: error: {failed}")
        sys.exit(plan.exit_code)


@cli.command()
@_common
@click.option("--project", metavar="ID|PATH", envvar="CI_PROJECT_ID",
              help="Project id or path. [env: CI_PROJECT_ID, so a scheduled job needs no flag]")
@click.option("--hours", type=_Finite(1, 24 * 31), default=26, show_default=True, metavar="HOURS",
              help="Look at pipelines updated in this many past hours (a daily schedule plus a margin).")
@click.option("--concurrency", type=_Count(1, 16), default=4, show_default=True, metavar="N",
              help="Pipelines read and sent at once (their GitLab requests share --gitlab-concurrency).")
@click.option("--status", "statuses", multiple=True, type=click.Choice(sorted(SETTLED)),
              help="Only pipelines in this state; repeat for more. `--status canceled --status manual` sends "
                   "only what no `.post` job can have reported, at a tenth of the requests. [default: the four "
                   "final ones, and manual and scheduled, which are sent as still running]")
@click.option("--cursor", metavar="FILE",
              help="File recording what was sent and at which update; keep it in the job's cache. "
                   "[default: .databand-sweep-<project>.json]")
def sweep(project, hours, statuses, concurrency, cursor, **flags):
    """Report every settled pipeline of a project not reported yet, for a scheduled pipeline.

    GitLab runs no `.post` job in a canceled pipeline, nor in one blocked at a manual
    job, and a report job may fail: a sweep, scheduled daily (or hourly), sends each
    pipeline that ended, or waits on a manual or delayed job (sent as still running),
    in the last --hours, unless the cursor says it was sent at its current state.
    Needs GITLAB_TOKEN (or --gitlab-token), a token with read_api: a job token
    cannot list pipelines.

    \b
    Examples (in a scheduled pipeline's job, --project defaults to CI_PROJECT_ID):
      databand-gitlab-reporter sweep --project acme/data-platform
      databand-gitlab-reporter sweep --hours 2 --status canceled --status manual
      databand-gitlab-reporter sweep --project 42 --dry-run
    """
    _run_sweep(_settings(flags), project, hours, tuple(statuses) or tuple(sorted(SETTLED)), concurrency, cursor)


@_friendly
def _run_sweep(settings: Settings, project, hours, statuses, concurrency, cursor_path):
    if not project:  # a job sets CI_PROJECT_ID, which --project reads: this is outside one
        raise ConfigError("sweep needs --project, the project's id or path (group/project); in a GitLab job "
                          "it reads CI_PROJECT_ID.")
    project = check_project(project, "--project")
    settings.gitlab(lists=True)
    plan = lib.backfill.sweep_plan(settings, project or "", hours, cursor_path, statuses)
    unchanged = sum(1 for i in plan.pipeline_ids if plan.cursor.versions.get(i) == plan.versions.get(i))
    _say(f"Sweep of {project}: {len(plan.pipeline_ids)} settled pipelines updated since {plan.since}, "
         f"{unchanged} of them sent before and unchanged.")
    _execute(settings, plan, concurrency)


class _ParentEnvCommand(click.Command):
    """parent-env, whose usage errors stop an eval as its other failures do."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            if _format_asked(args) == "shell":
                _stop_the_eval(error.exit_code)
            raise


def _format_asked(args: list[str]) -> str:
    for index, arg in enumerate(args):
        if arg.startswith("--format="):
            return arg.partition("=")[2]
        if arg == "--format" and index + 1 < len(args):
            return args[index + 1]
    return "shell"


@cli.command("parent-env", cls=_ParentEnvCommand)
@click.option("--format", "form", type=click.Choice(handoff.FORMATS), default="shell", show_default=True,
              help="shell: export lines to eval or source; dotenv: KEY=VALUE for artifacts:reports:dotenv; "
                   "airflow-conf: the DAG run conf (JSON) for airflow dags trigger -c or the REST API; "
                   "spark-conf: --conf options for spark-submit.")
@click.option("--namespace", envvar="DATABAND_NAMESPACE", metavar="NAME",
              help="As for report: must match it. [env: DATABAND_NAMESPACE]")
@click.option("--pipeline-name", envvar="DATABAND_PIPELINE_NAME", metavar="NAME",
              help="As for report: must match it. [env: DATABAND_PIPELINE_NAME]")
@click.option("--gitlab-url", envvar="GITLAB_URL", metavar="URL", help="As for report. [env: GITLAB_URL]")
def parent_env(form, namespace, pipeline_name, gitlab_url):
    """Print this job's run as the parent for dbt-ol, Spark or an Airflow DAG run.

    Their runs then hang under this job's run in the report, rooted at the pipeline's,
    with the same run IDs. Reads only CI_* variables; makes no request. shell and dotenv
    give OPENLINEAGE_CONTEXT (read by dbt-ol 1.52+) and the OPENLINEAGE_PARENT_* variables;
    with a '/' in the namespace or pipeline name, OPENLINEAGE_PARENT_ID and
    OPENLINEAGE_ROOT_PARENT_ID (split on '/') are left out, with a note on stderr.
    A value it cannot hand on intact is an error, exit 2.

    \b
    Examples, in a job's script, either:
      eval "$(databand-gitlab-reporter parent-env)"
    (eval drops the exit status, so on failure the command also prints "(exit 2)"
    for eval to run: the job stops, as GitLab's shell stops at a failing line), or,
    as two lines (not joined with &&, which keeps a failure from stopping the job):
      databand-gitlab-reporter parent-env > databand-parent.env
      . ./databand-parent.env
    For later jobs: parent-env --format dotenv > databand-parent.env, listed
    under artifacts:reports:dotenv.

    \b
    An Airflow DAG run (provider 2.8.0+) under this job:
      databand-gitlab-reporter parent-env --format airflow-conf > conf.json
      airflow dags trigger -c "$(cat conf.json)" my_dag
    A Spark application under this job:
      databand-gitlab-reporter parent-env --format spark-conf > spark.conf
      eval "spark-submit $(cat spark.conf) app.py"
    """
    _run_parent_env(form, namespace, pipeline_name, gitlab_url)


@_friendly
def _run_parent_env(form, namespace, pipeline_name, gitlab_url):
    redact = Redactor(known_secrets(os.environ))
    _mask_with(redact)
    try:
        variables = handoff.parent_variables(os.environ, namespace, pipeline_name, gitlab_url)
        # Masked before they are quoted: a shell's quoting cuts a secret holding "'" in pieces.
        text = handoff.render({key: redact(value) for key, value in variables.items()}, form)
        for note in handoff.notes(variables, form):
            _say(f"{PROG}: note: {note}")
        _out(text, "the parent's variables")
    except Exception as error:
        if form == "shell":
            _stop_the_eval(error.exit_code if isinstance(error, ReporterError) else process.BUG)
        raise


def _stop_the_eval(code: int) -> None:
    """eval "$(...)" runs whatever was printed and ignores the exit status: a failing statement is
    the only way a failure reaches a `set -e` shell. A subshell's `(exit N)`: a script under set -e
    stops, an interactive shell only sets $? (a bare `exit` would close the terminal). A terminal
    gets the error line alone; the dotenv and conf formats get nothing, which their reader refuses
    or which the failing command's own exit status stops."""
    if sys.stdout.isatty():
        return
    with contextlib.suppress(OSError, ValueError):  # a closed stdout: no eval reads it either
        click.echo(f"(exit {code})")
        sys.stdout.flush()


@cli.command()
@click.option("--output", type=click.Path(dir_okay=False), default="databand-demo-events.json", show_default=True,
              metavar="FILE", help="Where to write the events (a JSON array).")
def demo(output):
    """Run the reporter on a recorded sample pipeline, offline, in a few seconds.

    It serves GitLab's recorded answers for a data-platform pipeline (a failed job
    with its log, a retried one, a manual and a skipped one, JUnit results) and a
    stand-in for Databand's bulk endpoint, both on 127.0.0.1, then runs `report`
    against them: the same reading, events and delivery as in a pipeline. It needs
    no token and no network, and prints the job log summary, the tree of stages and
    jobs, and where the events are.

    \b
    Examples:
      databand-gitlab-reporter demo
      databand-gitlab-reporter demo --output /tmp/demo-events.json
    """
    try:
        code = lib.demo.run(output)
    except (BrokenPipeError, ValueError, OSError) as error:  # the demo is all output: a closed stdout ends it
        if not _stdout_gone(error):
            raise
        _say(f"{PROG}: error: {OutputLost('the demo')}")
        sys.exit(process.DELIVERY)
    sys.exit(code)


def _wants_json() -> bool:
    context = click.get_current_context(silent=True)
    return bool(context and context.params.get("as_json"))


def _finish(settings: Settings, report: Report, label) -> None:
    """Print the dry run (a tree, or the events with --json), deliver, and end with the summary,
    also when a delivery failed: it then names what was kept and the command that sends it."""
    lost = None
    if settings.dry_run:
        try:
            sys.stdout.flush()
            if _wants_json():
                lib.eventfiles.dump(report.events, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                _out("\n".join(summary.tree(summary.view_of(report), len(report.events))), "the dry run's tree",
                     visible=True)
        except (OSError, ValueError):
            lost = OutputLost("the dry run's events")
        except OutputLost as error:
            lost = error
    report = lib.report.deliver(settings, report, label)  # --output is still written
    try:
        _log(_summary(settings, report, label))
        if not report.delivery.ok:
            # The summary above names each kept file and its command; the error line says why.
            _say(f"{PROG}: error: {settings.redactor()(report.delivery.message())}")
            sys.exit(process.DELIVERY)
        if lost is not None:
            raise lost
    except Interrupted as stop:  # every event was acknowledged or kept before it came
        raise stop.with_(acknowledged=report.delivery.ok) from None


def _summary(settings: Settings, report: Report, label) -> str:
    in_job = _context(settings)[0]
    return summary.of_report(report, label, to=settings.targets, databand_url=settings.databand_url,
                             dry_run=settings.dry_run, in_gitlab=in_job)


def _annotate(settings: Settings, label) -> None:
    """The job page's link to Databand (artifacts:reports:annotations), when Databand's address is known."""
    url = summary.databand_ui(settings.databand_ui_url, settings.databand_url)
    in_a_job = bool(_context(settings)[1])
    if settings.dry_run or "databand" not in settings.targets or url is None or not in_a_job:
        return
    document = settings.redactor().values(summary.annotations_report(url, label))
    try:
        # Beside databand-events.json: the job's folder, where its artifacts paths are resolved.
        with open(summary.ANNOTATIONS_FILE, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
    except OSError as error:
        _say(f"{PROG}: warning: could not write {summary.ANNOTATIONS_FILE} "
             f"({error.strerror or type(error).__name__}); the job page has no link to Databand.")
