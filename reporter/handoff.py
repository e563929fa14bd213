"""Lineage hand-off: the parent run a tool (dbt-ol, Spark's OpenLineage listener, an Airflow DAG)
is given, so that its runs hang under the GitLab job's run in the report, rooted at the pipeline's.

Computed from CI_* variables alone, with the same IDs and names the reporter sends. One parent, in
the forms each consumer reads:

- shell / dotenv: OPENLINEAGE_CONTEXT, one JSON value, which openlineage-dbt 1.52+ reads before
  anything else and splits nothing (integration/common/src/openlineage/common/provider/dbt/utils.py,
  get_parent_run_metadata_from_context: {"parent": {"run": {"runId"}, "job": {"namespace", "name"},
  "root": {"run": {"runId"}, "job": {"namespace", "name"}}}}, facets optional), beside the older
  OPENLINEAGE_PARENT_ID / OPENLINEAGE_ROOT_PARENT_ID (`namespace/name/runId`, split on every '/'
  into exactly three parts, else dropped) and the six unsplit OPENLINEAGE_*_RUN_ID/_JOB_* values.
- airflow-conf: the DAG run conf Airflow's OpenLineage provider (2.8.0+) reads under "openlineage"
  (airflow/providers/openlineage/utils/utils.py, get_parent_information_from_dagrun_conf and
  get_root_information_from_dagrun_conf: all three of a kind or none, run ids must be UUIDs).
- spark-conf: `--conf` options for the Spark listener: spark.openlineage.parentJobNamespace,
  .parentJobName, .parentRunId (ArgumentParser.SPARK_CONF_PARENT_*), .rootParentJobNamespace,
  .rootParentJobName, .rootParentRunId (fields of SparkOpenLineageConfig, filled from the
  spark.openlineage.* keys) and spark.openlineage.context (ArgumentParser.SPARK_CONF_CONTEXT, the
  same JSON as OPENLINEAGE_CONTEXT, ParentRunContext.java; it wins over the separate keys).
  Paths are in github.com/OpenLineage/OpenLineage, integration/spark/app/src/main/java/io/openlineage/spark/.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping

from reporter import ids
from reporter.errors import ConfigError
from reporter.settings import check_id, check_url, name_setting

NEEDED = ("CI_SERVER_URL", "CI_PROJECT_ID", "CI_PROJECT_PATH", "CI_PIPELINE_ID", "CI_JOB_ID", "CI_JOB_NAME",
          "CI_JOB_STAGE")
FORMATS = ("shell", "dotenv", "airflow-conf", "spark-conf")

# The two variables that carry namespace, name and run id in one string split on '/'.
SPLIT = ("OPENLINEAGE_PARENT_ID", "OPENLINEAGE_ROOT_PARENT_ID")


def parent_variables(env: Mapping[str, str], namespace: str | None = None,
                     pipeline_name: str | None = None, gitlab_url: str | None = None) -> dict[str, str]:
    """The job's parent as environment variables, OPENLINEAGE_CONTEXT first.

    A namespace or pipeline name with '/' (which `report` accepts) cannot go into the split
    variables: a tool reading only those would misread it, so they are left out (see notes()), and
    the parent reaches tools through OPENLINEAGE_CONTEXT and the unsplit variables.
    """
    # The report's rule, so both name the same runs: blanks at either end dropped, a blank name unset.
    namespace, pipeline_name = name_setting(namespace), name_setting(pipeline_name)
    missing = [name for name in NEEDED if not env.get(name) and not (name == "CI_SERVER_URL" and gitlab_url)]
    if missing:
        raise ConfigError(f"parent-env runs inside a GitLab job; {', '.join(missing)} not set. Run it in the "
                          "script of the job whose run dbt-ol, Spark or Airflow should hang under; outside a job "
                          "there is no such run.")
    named = "--gitlab-url (or GITLAB_URL)" if gitlab_url else "CI_SERVER_URL"
    url = check_url(gitlab_url or env["CI_SERVER_URL"], named, "https://gitlab.example.com")
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
    variables = {
        "OPENLINEAGE_CONTEXT": _json(_context(ns, job_name, run_id, root_name, root_id)),
        "OPENLINEAGE_PARENT_ID": f"{ns}/{job_name}/{run_id}",
        "OPENLINEAGE_PARENT_RUN_ID": run_id,
        "OPENLINEAGE_PARENT_JOB_NAMESPACE": ns,
        "OPENLINEAGE_PARENT_JOB_NAME": job_name,
        "OPENLINEAGE_ROOT_PARENT_ID": f"{ns}/{root_name}/{root_id}",
        "OPENLINEAGE_ROOT_PARENT_RUN_ID": root_id,
        "OPENLINEAGE_ROOT_PARENT_JOB_NAMESPACE": ns,
        "OPENLINEAGE_ROOT_PARENT_JOB_NAME": root_name,
    }
    if "/" in ns or "/" in root_name:  # the job's name holds the pipeline's; stage and job are escaped
        for key in SPLIT:
            del variables[key]
    return variables


def _context(ns: str, job_name: str, run_id: str, root_name: str, root_id: str) -> dict:
    return {"parent": {"run": {"runId": run_id}, "job": {"namespace": ns, "name": job_name},
                       "root": {"run": {"runId": root_id}, "job": {"namespace": ns, "name": root_name}}}}


def _json(value: object) -> str:
    # Compact, one line; non-ASCII kept as it is (dotenv files are UTF-8, and \u escapes would
    # only make the value longer).
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def airflow_conf(variables: Mapping[str, str]) -> dict:
    """The DAG run conf that makes a DAG run's parent this job, and its root the pipeline."""
    return {"openlineage": {
        "parentRunId": variables["OPENLINEAGE_PARENT_RUN_ID"],
        "parentJobNamespace": variables["OPENLINEAGE_PARENT_JOB_NAMESPACE"],
        "parentJobName": variables["OPENLINEAGE_PARENT_JOB_NAME"],
        "rootParentRunId": variables["OPENLINEAGE_ROOT_PARENT_RUN_ID"],
        "rootParentJobNamespace": variables["OPENLINEAGE_ROOT_PARENT_JOB_NAMESPACE"],
        "rootParentJobName": variables["OPENLINEAGE_ROOT_PARENT_JOB_NAME"],
    }}


def spark_conf(variables: Mapping[str, str]) -> dict[str, str]:
    """The Spark listener's properties, the separate keys and the context that supersedes them."""
    return {
        "spark.openlineage.parentJobNamespace": variables["OPENLINEAGE_PARENT_JOB_NAMESPACE"],
        "spark.openlineage.parentJobName": variables["OPENLINEAGE_PARENT_JOB_NAME"],
        "spark.openlineage.parentRunId": variables["OPENLINEAGE_PARENT_RUN_ID"],
        "spark.openlineage.rootParentJobNamespace": variables["OPENLINEAGE_ROOT_PARENT_JOB_NAMESPACE"],
        "spark.openlineage.rootParentJobName": variables["OPENLINEAGE_ROOT_PARENT_JOB_NAME"],
        "spark.openlineage.rootParentRunId": variables["OPENLINEAGE_ROOT_PARENT_RUN_ID"],
        "spark.openlineage.context": variables["OPENLINEAGE_CONTEXT"],
    }


def render(variables: Mapping[str, str], form: str) -> str:
    if form == "dotenv":
        for key, value in variables.items():
            _check_dotenv(key, value)
        text = "\n".join(f"{k}={v}" for k, v in variables.items())
        _check_dotenv_size(text)
        return text
    if form == "airflow-conf":
        return _json(airflow_conf(variables))
    if form == "spark-conf":
        # Shell words, one option a line, joined by backslash-newline: `eval "spark-submit $(cat f) app.py"`
        # reads them as arguments of one command.
        return " \\\n".join(f"--conf {shlex.quote(f'{k}={v}')}" for k, v in spark_conf(variables).items())
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in variables.items())


def notes(variables: Mapping[str, str], form: str) -> list[str]:
    """One-line notes for stderr about what a form leaves out; nothing when all is handed on."""
    if form not in ("shell", "dotenv") or all(key in variables for key in SPLIT):
        return []
    return [f"{' and '.join(SPLIT)} left out: the namespace or pipeline name has '/', which tools "
            f"splitting namespace/name/runId would misread; dbt-ol 1.52+ reads OPENLINEAGE_CONTEXT instead."]


# GitLab stores a dotenv report's values as expandable variables (raw: false), and expands
# `$NAME`, `${NAME}`, `$$`, `%NAME%` and `%%` in them (lib/gitlab/ci/variables/collection/item.rb,
# VARIABLES_REGEXP). Escapes the reporter writes (%2E, %2F, %25) start with a digit: never a name.
_EXPANDED = re.compile(r"\$|%%|%[a-zA-Z_][a-zA-Z0-9_]*%")
# GitLab's default plan limits (plan_limits.dotenv_size, dotenv_variables); the file must be smaller.
DOTENV_MAX_BYTES = 5120


def _check_dotenv(key: str, value: str) -> None:
    # GitLab reads artifacts:reports:dotenv a line at a time as KEY=VALUE, strips the value's blanks,
    # keeps quotes (JSON's are safe), and expands variable references in it later. A value that
    # cannot arrive intact is refused rather than handed on altered.
    if _EXPANDED.search(value) or value != value.strip() or len(value.splitlines()) > 1:
        raise ConfigError(f"{key} would not survive GitLab's dotenv report ({value!r} has '$', '%NAME%', a "
                          f"line break or surrounding blanks); use --format shell in the same job instead.")


def _check_dotenv_size(text: str) -> None:
    size = len((text + "\n").encode())
    if size >= DOTENV_MAX_BYTES:
        raise ConfigError(f"the dotenv report would be {size} bytes, over GitLab's default limit of "
                          f"{DOTENV_MAX_BYTES}; shorten the names or use --format shell in the same job.")
