"""Settings, read once from flags and the environment, checked before any request is made.

One precedence for every setting: a flag given on the command line (an empty value, as the
component passes `--databand-url "$DATABAND_URL"` for an unset variable, counts as not given),
else its variable (the first set, in the order listed below), else a `CI_*` variable GitLab sets
in a job, else the default. Each setting remembers where its value came from, so an error names
what the user actually set.

The job's CI context (`Settings.context`, a CIContext) is resolved here once, typed; nothing
below settings reads the environment. It describes the job the reporter runs in and that job's
pipeline only: a pipeline named by a flag (`resend --project X --pipeline N`) is read as GitLab
gives it, and the context fills in its fields only when it is that same pipeline (`describes`).
So a flag beats a CI_* variable everywhere, run IDs included.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import unquote, urlsplit

from reporter import cost, ids, sendable
from reporter.errors import ConfigError
from reporter.redact import Redactor
from reporter.retry import POLICY, RetryPolicy
from reporter.targets import BOUNDS, Bounds
from reporter.targets import NAMES as TARGETS

DATABAND_URL_EXAMPLE = "https://<host>/api/v1/tracking/open-lineage/<uid>/events/bulk"
# The component's databand_url input as written (`$DATABAND_URL`, `$DATABAND_PROD_URL` or a URL),
# which it passes unexpanded beside `--databand-url "<input>"`: an empty or wrong value is then
# named as the user set it, not as the flag the component wrote.
COMPONENT_INPUT = "DATABAND_URL_INPUT"
_INPUT_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
# A path prefix is allowed: Databand may sit behind a proxy under a path of its own.
_BULK_PATH = re.compile(r"/api/v1/tracking/open-lineage/[^/]+/events/bulk/?$")


def _text(value: str) -> str | None:
    return value.strip() or None


def name_setting(value: str | None) -> str | None:
    """The one rule for a name the user sets (namespace, pipeline and project names), by flag or
    variable, for every command: blanks at either end are dropped, as GitLab's dotenv reports and a
    pasted variable do, so `report` and `parent-env` name the same runs; a blank name is not set."""
    return (value.strip() or None) if value is not None else None


# The settings name_setting cleans, by field name.
NAME_SETTINGS = ("namespace", "pipeline_name", "project_name")

# A header pasted whole (`Bearer glpat-...`, `PRIVATE-TOKEN: ...`): the reporter writes the header
# and its scheme itself, so the server would read the prefix as part of the token and answer 401,
# GitLab's after nothing was read, Databand's after GitLab was read and the events were built.
_HEADER_PREFIX = re.compile(r"(?i)(?:authorization:\s*)?(bearer|token|basic|private-token:|job-token:)(?=\s)")


def check_token_alone(value: str | None, name: str, spaces: bool = False) -> None:
    """A token is one word: a header's prefix before it, or a space in it (GitLab's and Databand's
    have none; another backend's key may), is refused, naming the prefix (no secret), never the token."""
    if value is None:
        return
    prefix = _HEADER_PREFIX.match(value.strip())
    if prefix:
        raise ConfigError(f"{name} starts with {prefix[1]!r}, a header's prefix: set it to the token alone "
                          "(the reporter writes the header itself).")
    if not spaces and any(c.isspace() for c in value.strip()):
        raise ConfigError(f"{name} holds a space, and a token has none: set it to the token alone.")


def _words(value: str) -> tuple[str, ...]:
    return tuple(value.split())


def _number(kind: type, low: float, high: float) -> Callable[[str], float]:
    def parse(value: str):
        try:
            if not str(value).isascii():  # int() and float() take '١' (Arabic-Indic one) and '１' as 1
                raise ValueError
            number = kind(value.strip())
        except ValueError:
            raise ValueError(f"a number from {low:g} to {high:g}") from None
        if not low <= number <= high:  # also refuses nan, which compares false to everything
            raise ValueError(f"a number from {low:g} to {high:g}")
        return number

    parse.numeric = True  # type: ignore[attr-defined]  # flags are checked by it too (nan passes click)
    return parse


def _boolean(value: str) -> bool:
    word = value.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("true or false")


def _targets(value: str) -> tuple[str, ...]:
    names = _words(value)
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        raise ValueError(f"some of {', '.join(TARGETS)}")
    return names


# Every secret the reporter is handed or can see in a job, masked wherever it shows: its own tokens,
# the OpenLineage target's key, and GitLab's predefined secrets (docs: "Predefined CI/CD variables";
# CI_REPOSITORY_URL holds the job token as gitlab-ci-token:<token>@).
SECRET_VARIABLES = ("GITLAB_TOKEN", "CI_JOB_TOKEN", "DATABAND_ACCESS_TOKEN", "OPENLINEAGE_API_KEY",
                    "CI_REGISTRY_PASSWORD", "CI_DEPLOY_PASSWORD", "CI_DEPENDENCY_PROXY_PASSWORD",
                    # GitLab's OIDC tokens of older releases (id_tokens replaced them, named by the user)
                    "CI_JOB_JWT", "CI_JOB_JWT_V1", "CI_JOB_JWT_V2")
_USER_INFO = re.compile(r"://[^/?#@]*?:([^/?#@]*)@")


def known_secrets(environ: Mapping[str, str], flags: Mapping[str, object] | None = None) -> tuple[str, ...]:
    """The secrets in the environment and the flags: the token variables, and the password of any
    URL with user info. Read before the settings are checked, so that an error quoting a value
    is masked too."""
    flags = flags or {}
    found: list[str] = []
    for value in [*(environ.get(name) for name in SECRET_VARIABLES), flags.get("gitlab_token"),
                  flags.get("databand_token")]:
        if isinstance(value, str) and value.strip():
            found.extend((value, value.strip()))
    # Every variable, not only the reporter's own URLs: DATABAND_UI_URL ends up as the job page's
    # link, and a job's DATABASE_URL can reach a log the events quote.
    for url in [*environ.values(), flags.get("gitlab_url"), flags.get("databand_url")]:
        if isinstance(url, str) and "@" in url and "://" in url:
            for password in _USER_INFO.findall(url):
                if password:
                    found.extend((password, unquote(password)))
    return tuple(dict.fromkeys(found))


# GitLab requests in flight at once, for the whole command (backfill and downstream pipelines
# included). 40: a 1,250-job pipeline's second wave (its 12 other pages and the logs of the 25
# failed jobs listed in the first) goes out whole, so the report waits two round trips, not three;
# 40 requests in flight stay far below what a GitLab's Puma serves, and GitLab.com counts requests
# a minute (2,000), not connections. --gitlab-concurrency changes it.
GITLAB_CONCURRENCY = 40


@dataclass(frozen=True)
class ReadBounds:
    """The wall-clock bounds of GitLab's reads, in seconds (reporter.timebound says them all)."""

    read: float = 30  # one attempt of a read (the pipeline, a page, a test report); waits come on top
    log: float = 20  # a failed job's log still streaming is left here, its tail so far kept
    log_cut: float = 22  # a log that stalls or trickles is cut here; what came by then is kept
    # GitLab's test report summary is written by a background worker after each job: a job that
    # finished just before the report may not be in it yet, and is asked for once more after this.
    tests_lag: float = 3


def _ci_id(environ: Mapping[str, str], name: str) -> int | None:
    text = (environ.get(name) or "").strip()
    return None if not text else check_id(text, name)


@dataclass(frozen=True)
class CIContext:
    """The job the reporter runs in, from GitLab's predefined CI_* variables (all None outside a job)."""

    in_job: bool = False  # GITLAB_CI == "true"
    server_url: str | None = None
    project_id: int | None = None
    project_path: str | None = None
    project_url: str | None = None
    project_dir: str | None = None
    pipeline_id: int | None = None
    pipeline_iid: int | None = None
    pipeline_url: str | None = None
    pipeline_source: str | None = None
    pipeline_created_at: str | None = None
    pipeline_name: str | None = None
    schedule_description: str | None = None
    job_id: int | None = None
    job_status: str | None = None
    ref_name: str | None = None
    commit_tag: str | None = None
    commit_sha: str | None = None
    commit_title: str | None = None
    user_login: str | None = None  # who started the pipeline; GITLAB_USER_EMAIL is deliberately not kept
    merge_request_iid: int | None = None
    merge_request_project_url: str | None = None
    environment_name: str | None = None
    environment_action: str | None = None
    server_version: str | None = None  # CI_SERVER_VERSION, for the processing_engine facet

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> CIContext:
        def text(name: str) -> str | None:
            return (environ.get(name) or "").strip() or None

        return cls(
            in_job=environ.get("GITLAB_CI") == "true", server_url=text("CI_SERVER_URL"),
            project_id=_ci_id(environ, "CI_PROJECT_ID"), project_path=text("CI_PROJECT_PATH"),
            project_url=text("CI_PROJECT_URL"), project_dir=text("CI_PROJECT_DIR"),
            pipeline_id=_ci_id(environ, "CI_PIPELINE_ID"), pipeline_iid=_ci_id(environ, "CI_PIPELINE_IID"),
            pipeline_url=text("CI_PIPELINE_URL"), pipeline_source=text("CI_PIPELINE_SOURCE"),
            pipeline_created_at=text("CI_PIPELINE_CREATED_AT"), pipeline_name=text("CI_PIPELINE_NAME"),
            schedule_description=text("CI_PIPELINE_SCHEDULE_DESCRIPTION"),
            job_id=_ci_id(environ, "CI_JOB_ID"), job_status=text("CI_JOB_STATUS"),
            ref_name=text("CI_COMMIT_REF_NAME"), commit_tag=text("CI_COMMIT_TAG"), commit_sha=text("CI_COMMIT_SHA"),
            commit_title=text("CI_COMMIT_TITLE"), user_login=text("GITLAB_USER_LOGIN"),
            merge_request_iid=_ci_id(environ, "CI_MERGE_REQUEST_IID"),
            merge_request_project_url=text("CI_MERGE_REQUEST_PROJECT_URL"),
            environment_name=text("CI_ENVIRONMENT_NAME"), environment_action=text("CI_ENVIRONMENT_ACTION"),
            server_version=text("CI_SERVER_VERSION"),
        )

    def describes(self, project: str | int | None, pipeline_id: int) -> bool:
        """Whether this is the context of a job of that pipeline (a resend from another pipeline's
        or project's job has that pipeline's commit, ref and user in it)."""
        if self.pipeline_id is None or self.pipeline_id != pipeline_id:
            return False
        return project is None or project in (self.project_id, self.project_path) or str(project) == str(
            self.project_id)

    def this_pipeline(self) -> tuple[int, int]:
        """The project and pipeline a `report` reads: the job's own."""
        missing = [name for name, value in (("CI_PROJECT_ID", self.project_id), ("CI_PIPELINE_ID", self.pipeline_id))
                   if value is None]
        if missing:
            raise ConfigError(f"{' and '.join(missing)} not set: the report command reads the pipeline of the "
                              "GitLab job it runs in. Outside a job, name the pipeline: "
                              "databand-gitlab-reporter resend --project ... --pipeline ...")
        assert self.project_id is not None and self.pipeline_id is not None
        return self.project_id, self.pipeline_id


@dataclass(frozen=True)
class Source:
    """Where one setting is read: its flag, its variables in order, how a variable's text is parsed."""

    flag: str | None
    variables: tuple[str, ...] = ()
    parse: Callable[[str], object] = _text


# The settings `from_env` reads, by field name. Fields not listed (the CI context) are filled apart.
SOURCES: dict[str, Source] = {
    "gitlab_url": Source("--gitlab-url", ("GITLAB_URL", "CI_SERVER_URL")),
    "gitlab_token": Source("--gitlab-token", ("GITLAB_TOKEN",)),
    "job_token": Source(None, ("CI_JOB_TOKEN",)),
    "ca_file": Source(None, ("CI_SERVER_TLS_CA_FILE",)),
    "databand_ca_file": Source(None, ("DATABAND_CA_FILE",)),
    "ca_bundle": Source(None, ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")),  # requests reads them when verifying
    "databand_url": Source("--databand-url", ("DATABAND_URL",)),
    "databand_token": Source("--databand-token", ("DATABAND_ACCESS_TOKEN",)),
    "databand_ui_url": Source(None, ("DATABAND_UI_URL",)),  # the job page's link (summary.databand_ui)
    "dry_run": Source("--dry-run"),
    "output": Source("--output"),
    "namespace": Source("--namespace", ("DATABAND_NAMESPACE",)),
    "pipeline_name": Source("--pipeline-name", ("DATABAND_PIPELINE_NAME",)),
    "project_name": Source("--project-name", ("DATABAND_PROJECT",)),
    "log_lines": Source("--log-lines", ("DATABAND_LOG_LINES",), _number(int, 0, 10000)),
    "gitlab_timeout": Source("--gitlab-timeout", ("DATABAND_GITLAB_TIMEOUT",), _number(float, 1, 3600)),
    "gitlab_concurrency": Source("--gitlab-concurrency", ("DATABAND_GITLAB_CONCURRENCY",), _number(int, 1, 64)),
    "exclude_jobs": Source("--exclude-job", ("DATABAND_EXCLUDE_JOBS",), _words),
    "downstream_depth": Source("--downstream-depth", ("DATABAND_DOWNSTREAM_DEPTH",), _number(int, 0, 10)),
    "test_results": Source("--test-results", ("DATABAND_TEST_RESULTS",), _boolean),
    "targets": Source("--target", ("DATABAND_TARGETS",), _targets),
    "target_file": Source("--target-file", ("DATABAND_TARGET_FILE",)),
    "insecure": Source("--insecure"),
    "cost_factors": Source("--cost-factor", ("DATABAND_COST_FACTORS",), cost.parse_cost_factors),
}


@dataclass(frozen=True)
class Settings:
    gitlab_url: str | None = None
    gitlab_token: str | None = None  # read_api; without it CI_JOB_TOKEN
    job_token: str | None = None
    ca_file: str | None = None  # GitLab's CA (CI_SERVER_TLS_CA_FILE)
    databand_ca_file: str | None = None
    ca_bundle: str | None = None  # REQUESTS_CA_BUNDLE: requests' CA for a side without a CA file of its own
    databand_url: str | None = None
    databand_token: str | None = None
    databand_ui_url: str | None = None
    dry_run: bool = False
    output: str | None = None
    namespace: str | None = None
    pipeline_name: str | None = None
    project_name: str | None = None
    log_lines: int = 100
    gitlab_timeout: float = 100  # seconds for all of GitLab's reading together
    gitlab_concurrency: int = GITLAB_CONCURRENCY
    exclude_jobs: tuple[str, ...] = ()
    downstream_depth: int = 2
    test_results: bool = True
    targets: tuple[str, ...] = ("databand",)
    target_file: str | None = None
    cost_factors: Mapping[str, float] = field(default_factory=dict)  # --cost-factor TAG=F (reporter/cost.py)
    insecure: bool = False  # TLS verification off, for both sides; only with an explicit flag
    context: CIContext = field(default_factory=CIContext)  # the job the reporter runs in
    # Not read from the environment: how long GitLab's reads and each target's delivery may take
    # and how they are retried (a library caller, or a test, passes its own).
    gitlab_bounds: ReadBounds = field(default_factory=ReadBounds)
    gitlab_policy: RetryPolicy = POLICY
    delivery_bounds: Bounds = BOUNDS  # the delivery's retry policy is in it (reporter/targets.py)
    progress: Callable[[str], None] | None = None  # where a line per wait goes (the CLI: the job log)
    openlineage: Mapping[str, str] = field(default_factory=dict)  # OPENLINEAGE_*, for --target openlineage
    sources: Mapping[str, str] = field(default_factory=dict)  # field -> the flag or variable it came from
    # Every other secret seen when the settings were read (known_secrets): masked, never used.
    secrets: tuple[str, ...] = ()

    def __repr__(self) -> str:  # a stray print of the settings must not show a token
        return f"Settings(gitlab_url={self.gitlab_url!r}, databand_url={self.databand_url!r}, ...)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], flags: Mapping[str, object] | None = None) -> Settings:
        """Read every setting once: flag > variable (in SOURCES' order, so GITLAB_URL before
        CI_SERVER_URL) > default. `flags` holds only the flags the user gave (None means not given)."""
        flags = flags or {}
        values: dict[str, Any] = {}  # each checked by its Source's parse
        sources: dict[str, str] = {}
        for name, source in SOURCES.items():
            given = flags.get(name)
            if name in NAME_SETTINGS and isinstance(given, str):
                given = name_setting(given)  # a variable's blanks are dropped by _text
            if isinstance(given, str) and not given.strip():
                given = None  # `--databand-url "$DATABAND_URL"` with the variable unset: not given
            if given is not None and given != ():
                if getattr(source.parse, "numeric", False):
                    try:
                        source.parse(str(given))
                    except ValueError as error:
                        raise ConfigError(f"{source.flag} must be {error}; got {given!r}.") from None
                values[name], sources[name] = given, source.flag or name
                continue
            for variable in source.variables:
                text = environ.get(variable)
                if text is None or not text.strip():
                    continue
                try:
                    values[name] = source.parse(text)
                except ValueError as error:
                    shown = text if len(text) < 40 and "token" not in variable.lower() else "its value"
                    raise ConfigError(f"{variable} must be {error}; got {shown!r}.") from None
                sources[name] = variable
                break
        written = (environ.get(COMPONENT_INPUT) or "").strip()
        if written and flags.get("databand_url") is not None:  # the component's --databand-url
            named = _INPUT_VARIABLE.fullmatch(written)
            sources["databand_url"] = (f"{named[1]} (the component's databand_url input)" if named
                                       else "the component's databand_url input")
        for name in ("namespace", "pipeline_name"):  # names dbt-ol must be able to split apart
            if values.get(name):
                ids.check_name(values[name], sources[name])
        # Every token is sent in a header: one no header can carry is refused now, for any command
        # (before the masking of error lines is made from it, and before GitLab is read).
        for name in ("gitlab_token", "job_token", "databand_token"):
            sendable.check_token(values.get(name), sources.get(name, name))
            check_token_alone(values.get(name), sources.get(name, name))
        sendable.check_token(environ.get("OPENLINEAGE_API_KEY"), "OPENLINEAGE_API_KEY")
        check_token_alone(environ.get("OPENLINEAGE_API_KEY"), "OPENLINEAGE_API_KEY", spaces=True)
        values["context"] = CIContext.from_env(environ)
        values["openlineage"] = {k: v for k, v in environ.items() if k.startswith("OPENLINEAGE_")}
        return cls(**values, sources=sources, secrets=known_secrets(environ, flags))

    def source(self, name: str) -> str:
        """What the user set for a setting, for messages: the flag or the variable, or where to set it."""
        if name in self.sources:
            return self.sources[name]
        spec = SOURCES[name]
        return " or ".join(filter(None, [spec.variables[0] if spec.variables else None, spec.flag]))

    def redactor(self) -> Redactor:
        # Made once per settings: it works out every encoded form of each token up front, and each
        # pipeline of a backfill, each error line and the event packing ask for it.
        made = self.__dict__.get("_redactor")
        if made is None:
            made = Redactor([self.gitlab_token, self.job_token, self.databand_token, *self.secrets,
                             *(value for key, value in self.openlineage.items() if key.endswith("_API_KEY"))])
            object.__setattr__(self, "_redactor", made)
        return made

    def gitlab(self, lists: bool = False) -> str:
        """GitLab's URL, once a token is known to be there (for a listing of pipelines, `lists`, one
        that may list them: GitLab opens no listing to CI_JOB_TOKEN)."""
        url = check_url(self.gitlab_url, self.source("gitlab_url"), "https://gitlab.example.com")
        parts = urlsplit(url)
        if parts.query or parts.fragment or url.endswith(("?", "#")):
            # python-gitlab appends /api/v4/... after it: the paths would go into the query, and
            # GitLab's 404s would blame the ids.
            raise ConfigError(f"{self.source('gitlab_url')} must be GitLab's address alone, without a ?query or "
                              "#fragment (a token goes in GITLAB_TOKEN), e.g. https://gitlab.example.com.")
        path = parts.path
        if path.endswith("/api/v4") or "/api/v4/" in path:
            # python-gitlab adds /api/v4 itself: with it in the URL every path would be wrong, and
            # GitLab's 404s would blame the ids. An API URL pasted whole (/api/v4/projects/42) too.
            own = url[:url.index("/api/v4")]
            shown = own if "@" not in own else "its scheme and host"
            raise ConfigError(f"{self.source('gitlab_url')} must be GitLab's own address, without /api/v4 (the "
                              f"reporter adds it): {shown}.")
        if lists and not self.gitlab_token:
            raise ConfigError("No GitLab token that can list pipelines; set GITLAB_TOKEN (or --gitlab-token) to a "
                              "token with read_api: CI_JOB_TOKEN cannot list them.")
        if not self.gitlab_token and not self.job_token:
            raise ConfigError("No GitLab token; set GITLAB_TOKEN (a token with read_api) or run inside a job "
                              "where CI_JOB_TOKEN is set.")
        if not self.gitlab_token:  # only the job token: it goes to its own GitLab or nowhere
            sendable.check_job_token_origin(url, self.context.server_url, self.source("gitlab_url"))
        if not self.insecure:
            name = "ca_file" if self.ca_file else "ca_bundle"
            sendable.check_ca_file(getattr(self, name), self.source(name))
        sendable.check_proxy(url)
        return url

    def databand(self) -> tuple[str, str]:
        """Databand's URL and token, when events go there; ("", "") when they do not."""
        if self.dry_run or "databand" not in self.targets:
            return "", ""
        if not self.databand_url and self.source("databand_url").endswith("databand_url input)"):
            variable = self.source("databand_url").split(" ", 1)[0]
            raise ConfigError(f"{variable} is empty in this job (the component's databand_url input reads it): add "
                              f"it under Settings > CI/CD > Variables, e.g. {DATABAND_URL_EXAMPLE}; a Protected "
                              "variable reaches only protected branches and tags.")
        url = check_url(self.databand_url, self.source("databand_url"), DATABAND_URL_EXAMPLE)
        if "@" in urlsplit(url).netloc:
            # requests would send the user info as Basic auth in place of the token.
            raise ConfigError(f"{self.source('databand_url')} must not hold a user name and password "
                              f"(user:secret@host): the token goes in {self.source('databand_token')}, e.g. "
                              f"{DATABAND_URL_EXAMPLE}.")
        if not _BULK_PATH.search(urlsplit(url).path):
            # Databand's UI also shows its own address and other API paths; only the bulk endpoint
            # takes events, and a wrong one costs a minute of retries before it says so.
            raise ConfigError(f"{self.source('databand_url')} must be the custom integration's bulk endpoint, "
                              f"{DATABAND_URL_EXAMPLE} (Databand shows it when the integration is created); "
                              f"got {_show(url)}.")
        if not self.databand_token:
            raise ConfigError(f"{self.source('databand_token')} is not set: add it as a masked CI/CD variable "
                              "(or use --dry-run to only print the events).")
        sendable.check_proxy(url)
        return url, self.databand_token

    def cleartext(self, reads_gitlab: bool = True) -> list[str]:
        """One warning a setting that sends a token over plain http to another machine: it is not
        refused (some on-premises servers are plain http on a trusted network), but said. Loopback is
        exempt (nothing crosses a network), and so is CI_JOB_TOKEN alone, which the runner already
        sends to that same GitLab."""
        sending = not self.dry_run
        plain = [
            (reads_gitlab and bool(self.gitlab_token), self.gitlab_url, "gitlab_url", "the GitLab token"),
            (sending and "databand" in self.targets, self.databand_url, "databand_url", "the Databand access token"),
        ]
        lines = [f"{self.source(name)} is plain http://, so {what} crosses the network unencrypted: use https:// "
                 "unless that network is trusted." for used, url, name, what in plain if used and _plain_http(url)]
        if sending and "openlineage" in self.targets and self.openlineage.get("OPENLINEAGE_API_KEY") \
                and _plain_http(self.openlineage.get("OPENLINEAGE_URL")):
            lines.append("OPENLINEAGE_URL is plain http://, so OPENLINEAGE_API_KEY crosses the network unencrypted: "
                         "use https:// unless that network is trusted.")
        return lines

    def target_verify(self) -> bool | str:
        """TLS verification for the targets, its CA file checked: CI_SERVER_TLS_CA_FILE is GitLab's CA
        only, so they get their own (DATABAND_CA_FILE), else requests' (REQUESTS_CA_BUNDLE) or the system's."""
        if self.insecure:
            return False
        name = "databand_ca_file" if self.databand_ca_file else "ca_bundle"
        sendable.check_ca_file(getattr(self, name), self.source(name))
        return self.databand_ca_file or True

    def naming(self, gitlab_url: str, project_path: str, workflow_name: str | None = None) -> ids.Naming:
        return ids.Naming(
            namespace=self.namespace or ids.default_namespace(gitlab_url),
            pipeline_name=self.pipeline_name or ids.default_pipeline_name(project_path, workflow_name),
            project_name=self.project_name or project_path,
        )

    def replace(self, **changes) -> Settings:
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        return type(self)(**{**current, **changes})


def check_url(value: str | None, name: str, example: str) -> str:
    if not value:
        raise ConfigError(f"{name} is not set: pass it or set the variable, e.g. {example}.")
    try:
        parts = sendable.split_url(value.strip())
    except ValueError as error:
        raise ConfigError(f"{name} must be an http(s) URL with a host, e.g. {example}; got {_show(value)} "
                          f"({error}).") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # A CI/CD variable of type File holds the path of a file with the value, not the value.
        path = " (a path: a CI/CD variable of type File holds one; make it of type Variable)" \
            if value.strip().startswith("/") else ""
        raise ConfigError(f"{name} must be an http(s) URL with a host, e.g. {example}; got {_show(value)}{path}.")
    return value.strip().rstrip("/")


def _plain_http(url: str | None) -> bool:
    """An http:// URL to a host other than this machine (a malformed one is check_url's to refuse)."""
    try:
        parts = sendable.split_url((url or "").strip())
    except ValueError:  # check_url refuses it, so there is nothing to warn of
        return False
    host = parts.hostname or ""  # lower case already
    if parts.scheme.lower() != "http" or not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, not an address
        return True


def _show(value: str) -> str:
    # A URL may carry user:password@ or a key in its query: then it is not echoed at all.
    if "@" in value or "?" in value:
        return "a value not shown here (it may hold a secret)"
    return repr(value)


def check_id(value: str | int | None, name: str) -> int:
    if value is None or str(value).strip() == "":
        raise ConfigError(f"{name} is not set.")
    text = str(value).strip()
    if not ids.is_number(text):
        # A pipeline's page pasted whole: its id is the number at the end.
        tail = re.search(r"/pipelines/(\d+)/?$", text.split("?", 1)[0].split("#", 1)[0])
        hint = f" (the id at the end of the pipeline's address: {name} {tail[1]})" if tail else ""
        raise ConfigError(f"{name} must be a number{hint}; got {_show(text)}.")
    if len(text) > 19:  # past any id GitLab gives (a bigint), and past what int() reads at 4,300 digits
        raise ConfigError(f"{name} must be an id GitLab gives; got a number of {len(text)} digits.")
    return int(text)


def check_project(value: str, name: str) -> str:
    """A project as GitLab's API names it, its id or its path: a pasted URL or clone address is
    turned away with the path it holds (GitLab answers 404 to both, which would blame the ids)."""
    text = value.strip()
    if re.match(r"(https?|ssh)://|git@", text, re.I):
        path = urlsplit(text).path if "://" in text else text.split(":", 1)[-1]
        path = path.split("/-/", 1)[0].strip("/").removesuffix(".git")
        if not path or "@" in path or "?" in path:
            path = "group/project"
        raise ConfigError(f"{name} takes the project's id or its path (group/project), not an address: "
                          f"{name} {path}.")
    if text.endswith(".git") and not ids.is_number(text):
        raise ConfigError(f"{name} takes the project's path without .git: {name} {text[:-4]}.")
    return text
