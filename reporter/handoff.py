"""Lineage hand-off: the OPENLINEAGE_PARENT_* variables for the job a tool (dbt-ol, Spark's
OpenLineage listener, Airflow) runs in, so its runs hang under that job's run in the report.

Computed from CI_* variables alone, with the same IDs and names the reporter sends.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from reporter import ids
from reporter.errors import ConfigError
from reporter.settings import check_id, check_url

NEEDED = ("CI_SERVER_URL", "CI_PROJECT_ID", "CI_PROJECT_PATH", "CI_PIPELINE_ID", "CI_JOB_ID", "CI_JOB_NAME",
          "CI_JOB_STAGE")


def parent_variables(env: Mapping[str, str], namespace: str | None = None,
                     pipeline_name: str | None = None, gitlab_url: str | None = None) -> dict[str, str]:
    missing = [name for name in NEEDED if not env.get(name) and not (name == "CI_SERVER_URL" and gitlab_url)]
    if missing:
        raise ConfigError(f"parent-env runs inside a GitLab job; {', '.join(missing)} not set.")
    url = check_url(gitlab_url or env["CI_SERVER_URL"], "CI_SERVER_URL", "https://gitlab.example.com")
    server = ids.server_key(url)
    project_id = check_id(env["CI_PROJECT_ID"], "CI_PROJECT_ID")
    pipeline_id = check_id(env["CI_PIPELINE_ID"], "CI_PIPELINE_ID")
    job_id = check_id(env["CI_JOB_ID"], "CI_JOB_ID")
    ns = ids.check_name(namespace, "--namespace (DATABAND_NAMESPACE)") if namespace else ids.default_namespace(url)
    pipeline = (ids.check_name(pipeline_name, "--pipeline-name (DATABAND_PIPELINE_NAME)") if pipeline_name
                else ids.default_pipeline_name(env["CI_PROJECT_PATH"], env.get("CI_PIPELINE_NAME")))
    job_name = ids.job_job_name(pipeline, env["CI_JOB_STAGE"], env["CI_JOB_NAME"])
    run_id = ids.job_run_id(server, project_id, job_id)
    root_name = ids.pipeline_job_name(pipeline)
    root_id = ids.pipeline_run_id(server, project_id, pipeline_id)
    return {
        "OPENLINEAGE_PARENT_ID": f"{ns}/{job_name}/{run_id}",
        "OPENLINEAGE_PARENT_RUN_ID": run_id,
        "OPENLINEAGE_PARENT_JOB_NAMESPACE": ns,
        "OPENLINEAGE_PARENT_JOB_NAME": job_name,
        "OPENLINEAGE_ROOT_PARENT_ID": f"{ns}/{root_name}/{root_id}",
        "OPENLINEAGE_ROOT_PARENT_RUN_ID": root_id,
        "OPENLINEAGE_ROOT_PARENT_JOB_NAMESPACE": ns,
        "OPENLINEAGE_ROOT_PARENT_JOB_NAME": root_name,
    }


def render(variables: Mapping[str, str], form: str) -> str:
    if form == "dotenv":
        for key, value in variables.items():
            _check_dotenv(key, value)
        return "\n".join(f"{k}={v}" for k, v in variables.items())
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in variables.items())


def _check_dotenv(key: str, value: str) -> None:
    # GitLab reads artifacts:reports:dotenv a line at a time as KEY=VALUE, strips the value's blanks,
    # keeps quotes, and stores it as an expandable variable, so a later job would see '$X' replaced.
    # A value that cannot arrive intact is refused rather than handed on altered.
    if "$" in value or value != value.strip() or len(value.splitlines()) > 1:
        raise ConfigError(f"{key} would not survive GitLab's dotenv report ({value!r} has '$', a line "
                          f"break or surrounding blanks); use --format shell in the same job instead.")
