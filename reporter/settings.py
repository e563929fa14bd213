"""Settings from flags and CI/CD variables, checked before any request is made."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from reporter import ids
from reporter.errors import ConfigError
from reporter.redact import Redactor


@dataclass(frozen=True)
class Settings:
    gitlab_url: str | None = None
    gitlab_token: str | None = None  # read_api; without it CI_JOB_TOKEN
    job_token: str | None = None
    ca_file: str | None = None  # GitLab's CA (CI_SERVER_TLS_CA_FILE)
    databand_ca_file: str | None = None
    databand_url: str | None = None
    databand_token: str | None = None
    dry_run: bool = False
    output: str | None = None
    namespace: str | None = None
    pipeline_name: str | None = None
    project_name: str | None = None
    log_lines: int = 100
    gitlab_timeout: float = 100  # seconds for all of GitLab's reading together
    exclude_jobs: tuple[str, ...] = ()
    downstream_depth: int = 2
    test_results: bool = True
    targets: tuple[str, ...] = ("databand",)
    target_file: str | None = None
    insecure: bool = False  # TLS verification off, for both sides; only with an explicit flag

    def __repr__(self) -> str:  # a stray print of the settings must not show a token
        return f"Settings(gitlab_url={self.gitlab_url!r}, databand_url={self.databand_url!r}, ...)"

    def redactor(self) -> Redactor:
        return Redactor([self.gitlab_token, self.job_token, self.databand_token])


def check_url(value: str | None, name: str, example: str) -> str:
    if not value:
        raise ConfigError(f"{name} is not set: pass it or set the variable, e.g. {example}.")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL with a host, e.g. {example}; got {_show(value)}.")
    return value.strip().rstrip("/")


def _show(value: str) -> str:
    # A URL may carry user:password@ or a key in its query: then it is not echoed at all.
    if "@" in value or "?" in value:
        return "a value not shown here (it may hold a secret)"
    return repr(value)


def check_id(value: str | int | None, name: str) -> int:
    if value is None or str(value).strip() == "":
        raise ConfigError(f"{name} is not set; run inside a GitLab job or pass it explicitly.")
    text = str(value).strip()
    if not text.isdigit():
        raise ConfigError(f"{name} must be a number; got {text!r}.")
    return int(text)


def check_gitlab(settings: Settings) -> str:
    url = check_url(settings.gitlab_url, "GITLAB_URL (or CI_SERVER_URL)", "https://gitlab.example.com")
    if not settings.gitlab_token and not settings.job_token:
        raise ConfigError("No GitLab token: set GITLAB_TOKEN (a token with read_api) or run inside a job "
                          "where CI_JOB_TOKEN is set.")
    return url


def check_databand(settings: Settings) -> tuple[str, str]:
    if settings.dry_run or "databand" not in settings.targets:
        return "", ""
    url = check_url(settings.databand_url, "DATABAND_URL",
                    "https://<host>/api/v1/tracking/open-lineage/<uid>/events/bulk")
    if not settings.databand_token:
        raise ConfigError("DATABAND_ACCESS_TOKEN is not set: add it as a masked CI/CD variable "
                          "(or use --dry-run to only print the events).")
    return url, settings.databand_token


def default_naming(settings: Settings, gitlab_url: str, project_path: str):
    from reporter.events import Naming

    return Naming(
        namespace=settings.namespace or ids.default_namespace(gitlab_url),
        pipeline_name=settings.pipeline_name or ids.default_pipeline_name(project_path),
        project_name=settings.project_name or project_path,
    )


def ci_variables(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("CI_")}
