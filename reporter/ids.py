"""Run IDs and job names: deterministic, so a resend or a report from another job agrees.

Run IDs are UUIDv5 over values that both GitLab's API and a job's CI_* variables give:
the server, the project id, the pipeline id, the stage name and the job id. Nothing that
only one side knows (a project path that may be renamed, a timestamp) goes in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from reporter.errors import ConfigError


@dataclass(frozen=True)
class Naming:
    """What the runs are called in Databand; see the README for the defaults."""

    namespace: str
    pipeline_name: str
    project_name: str


def server_key(gitlab_url: str) -> str:
    """The server as it enters run IDs: host (and port, and path prefix) in lower case, no scheme.

    http/https and a trailing slash must not change the IDs: CI_SERVER_URL and a URL typed by hand
    for a resend often differ in just those.
    """
    parts = urlsplit(gitlab_url.strip())
    host = (parts.hostname or "").lower()
    if parts.port and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    return host + parts.path.rstrip("/")


def _uuid(path: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"gitlab://{path}"))


def pipeline_run_id(server: str, project_id: int, pipeline_id: int) -> str:
    return _uuid(f"{server}/projects/{project_id}/pipelines/{pipeline_id}")


def stage_run_id(server: str, project_id: int, pipeline_id: int, stage: str) -> str:
    return _uuid(f"{server}/projects/{project_id}/pipelines/{pipeline_id}/stages/{quote(stage, safe='')}")


def job_run_id(server: str, project_id: int, job_id: int) -> str:
    """One run per job attempt: a retry is a new GitLab job id, so a new run of the same job name."""
    return _uuid(f"{server}/projects/{project_id}/jobs/{job_id}")


def _part(name: str) -> str:
    # '.' separates the levels, so a dot inside a name is escaped (and '%' with it, to stay
    # reversible): stage "a.b" + job "c" never collides with stage "a" + job "b.c". '/' is escaped
    # too, so that a stage or job name never makes OPENLINEAGE_PARENT_ID ("namespace/name/runId",
    # split on every slash by older dbt-ol) unreadable; only a user-set name can (handoff.py).
    return name.replace("%", "%25").replace(".", "%2E").replace("/", "%2F")


def default_pipeline_name(project_path: str, workflow_name: str | None = None) -> str:
    """acme/data-platform -> acme.data-platform: the group levels become name levels; a pipeline
    named by `workflow:name` (CI_PIPELINE_NAME) is a level of its own: acme.data-platform.Nightly load."""
    name = ".".join(_part(segment) for segment in project_path.strip("/").split("/"))
    return f"{name}.{_part(workflow_name.strip())}" if workflow_name and workflow_name.strip() else name


def default_namespace(gitlab_url: str) -> str:
    """gitlab:gitlab.example.com: one namespace per GitLab instance, with no slash in it."""
    return "gitlab:" + server_key(gitlab_url).replace("/", ":")


def pipeline_job_name(pipeline_name: str) -> str:
    """The pipeline's own name is taken as given (the default is already escaped)."""
    return pipeline_name


def stage_job_name(pipeline_name: str, stage: str) -> str:
    return f"{pipeline_job_name(pipeline_name)}.{_part(stage)}"


def job_job_name(pipeline_name: str, stage: str, job: str) -> str:
    return f"{stage_job_name(pipeline_name, stage)}.{_part(job)}"


def check_name(value: str, setting: str) -> str:
    """A namespace or pipeline name set by the user, or a ConfigError naming `setting` (one line).

    A '/' is accepted: Databand does not mind it, and parent-env hands such a name on in
    OPENLINEAGE_CONTEXT, leaving out only the variables that tools split on '/' (handoff.py).
    GitLab's dotenv reports strip a value's surrounding blanks and end it at a line break, so those
    are refused: the report and the tool would disagree.
    """
    if not value.strip():
        raise ConfigError(f"{setting} is empty; leave it unset for the default.")
    if value != value.strip():
        raise ConfigError(f"{setting} {value!r} starts or ends with a blank; remove it.")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in value):
        raise ConfigError(f"{setting} {value!r} contains a control character or line break; remove it.")
    return value


def is_number(text: str) -> bool:
    """Digits 0-9 only: str.isdigit() is true of '²' and '٣' too, which int() refuses or reads."""
    return text.isascii() and text.isdigit()
