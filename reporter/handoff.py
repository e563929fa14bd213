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
    ns = namespace or ids.default_namespace(url)
    pipeline = pipeline_name or ids.default_pipeline_name(env["CI_PROJECT_PATH"])
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
    if form == "dotenv":  # GitLab's artifacts:reports:dotenv: KEY=VALUE, no quoting
        return "\n".join(f"{k}={v}" for k, v in variables.items())
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in variables.items())
