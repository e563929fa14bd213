"""The hand-off to a real Airflow: a GitLab job triggers a DAG with parent-env's DAG run conf, and the
DAG's runs hang under the job's run, rooted at the pipeline's run, as the report names them.

Airflow (apache-airflow-core, -task-sdk, -providers-openlineage >= 2.8.0, -providers-standard) lives in
a venv of its own: AIRFLOW names its `airflow` (.ci/run makes it). Offline, on SQLite, in a fresh
AIRFLOW_HOME: `airflow dags test -c` runs tests/data/airflow_dags/gitlab_handoff.py, and the
OpenLineage provider writes its events to a file (its `file` transport). The provider reads the conf
in airflow/providers/openlineage/utils/utils.py (get_parent_information_from_dagrun_conf,
get_root_information_from_dagrun_conf, get_dag_parent_run_facet).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clirun import real_tool
from click.testing import CliRunner

from reporter.cli import cli
from standins import make_job, make_pipeline, make_project

pytestmark = pytest.mark.airflow

REPORTER = Path(sys.executable).with_name("databand-gitlab-reporter")
DAGS = Path(__file__).parent / "data" / "airflow_dags"
PIPELINE_ID, JOB_ID = 9001, 7


@pytest.fixture(scope="module")
def airflow() -> Path:
    return real_tool("AIRFLOW", "airflow", ".venv-airflow")


def _airflow_env(home: Path, events: Path) -> dict[str, str]:
    return {
        "PATH": os.pathsep.join([str(REPORTER.parent), "/usr/local/bin:/usr/bin:/bin"]),
        "HOME": str(home), "LC_ALL": "C.UTF-8",
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "airflow-test",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events), "append": True}),
        "DO_NOT_TRACK": "1", "SCARF_ANALYTICS": "false",
    }


@pytest.fixture(scope="module")
def airflow_home(airflow, tmp_path_factory) -> Path:
    """One migrated SQLite database for the module: `db migrate` is what costs (about 8 s)."""
    home = tmp_path_factory.mktemp("airflow")
    started = time.monotonic()
    done = subprocess.run([str(airflow), "db", "migrate"], env=_airflow_env(home, home / "unused.ndjson"),
                          cwd=home, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"airflow db migrate: {time.monotonic() - started:.1f} s")
    return home


def _reported(gitlab, stage: str, job: str, settings: dict) -> tuple[dict, dict]:
    project = make_project(gitlab.url, path="acme/data-platform")
    pipeline = make_pipeline(project, PIPELINE_ID, status="running")
    gitlab.add_pipeline(project, pipeline, [make_job(project, pipeline, JOB_ID, job, stage, "running")], [], {})
    result = CliRunner().invoke(cli, ["resend", "--dry-run", "--json", "--project", "42", "--pipeline", str(PIPELINE_ID)],
                                env={"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, **settings})
    assert result.exit_code == 0, result.output
    events = json.loads(result.stdout)
    [mine] = [e for e in events if any(t["key"] == "gitlab.job_id" and t["value"] == str(JOB_ID)
                                       for t in e["run"]["facets"]["tags"]["tags"])]
    [root] = [e for e in events if "parent" not in e["run"]["facets"]]
    return root, mine


def _ref(event: dict) -> dict:
    return {"namespace": event["job"]["namespace"], "name": event["job"]["name"], "runId": event["run"]["runId"]}


def _parent(facet: dict) -> dict:
    return {"namespace": facet["job"]["namespace"], "name": facet["job"]["name"], "runId": facet["run"]["runId"]}


# One run (Airflow's start-up is the cost): a pipeline name with '/', a job name with what a shell,
# JSON and Airflow's CLI could each mangle.
STAGE, JOB = "load data", "trigger 🚀 \"dag\"/eu it's $HOME"
SETTINGS = {"DATABAND_PIPELINE_NAME": "acme/warehouse nightly"}


def test_the_dag_run_and_its_tasks_hang_under_the_job_and_the_pipeline(gitlab, airflow, airflow_home):
    root, mine = _reported(gitlab, STAGE, JOB, SETTINGS)
    events_file = airflow_home / "events.ndjson"
    env = {**_airflow_env(airflow_home, events_file),
           "CI_SERVER_URL": gitlab.url, "CI_PROJECT_ID": "42", "CI_PROJECT_PATH": "acme/data-platform",
           "CI_PIPELINE_ID": str(PIPELINE_ID), "CI_JOB_ID": str(JOB_ID), "CI_JOB_NAME": JOB, "CI_JOB_STAGE": STAGE,
           **SETTINGS}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    # As the README and --help give it, in a shell that stops at the first failing line.
    script = ("set -eo pipefail\n"
              "databand-gitlab-reporter parent-env --format airflow-conf > conf.json\n"
              f'{airflow} dags test gitlab_handoff -c "$(cat conf.json)"\n')
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", script], env=env, cwd=airflow_home, capture_output=True, text=True,
                          timeout=300)
    print(f"airflow dags test: {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    events = [json.loads(line) for line in events_file.read_text().splitlines()]

    dag_runs = [e for e in events if e["job"]["name"] == "gitlab_handoff"]
    tasks = [e for e in events if e["job"]["name"].startswith("gitlab_handoff.")]
    assert dag_runs and {e["eventType"] for e in dag_runs} <= {"START", "RUNNING", "COMPLETE"}
    assert {e["job"]["name"] for e in tasks} == {"gitlab_handoff.extract", "gitlab_handoff.load"}
    for event in dag_runs:  # the DAG run: under the job's run, rooted at the pipeline's
        facet = event["run"]["facets"]["parent"]
        print(f"Airflow DAG run {event['eventType']}: parent {json.dumps(facet, ensure_ascii=False)}")
        assert _parent(facet) == _ref(mine)
        assert _parent(facet["root"]) == _ref(root)
    for event in tasks:  # each task: under the DAG run, still rooted at the pipeline's
        facet = event["run"]["facets"]["parent"]
        assert _parent(facet) == _ref(dag_runs[0])
        assert _parent(facet["root"]) == _ref(root)
    print(f"Airflow task {tasks[0]['job']['name']}: parent {json.dumps(tasks[0]['run']['facets']['parent'])}")
