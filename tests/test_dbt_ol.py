"""The lineage hand-off with its real consumer: dbt-ol (openlineage-dbt) run under parent-env's variables.

dbt-ol lives in its own venv, so its openlineage-python never meets ours: DBT_OL names its dbt-ol
(.ci/run makes it). Each case runs, in bash with set -eo pipefail as a GitLab job would, the
documented two lines and `dbt-ol build` on a one-seed, one-model duckdb project, then compares
the parent facets dbt-ol wrote with the runs `resend --dry-run` reports for the same pipeline.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import real_tool
from click.testing import CliRunner

from reporter import ids
from reporter.cli import cli
from standins import make_job, make_pipeline, make_project

pytestmark = pytest.mark.dbt

REPORTER = Path(sys.executable).with_name("databand-gitlab-reporter")
PIPELINE_ID, JOB_ID = 9001, 7


@pytest.fixture(scope="module")
def dbt_ol() -> Path:
    return real_tool("DBT_OL", "dbt-ol", ".venv-dbt")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """One dbt project for every case: dbt's start-up is what costs, not the project."""
    root = tmp_path_factory.mktemp("dbt")
    (root / "seeds").mkdir()
    (root / "models").mkdir()
    (root / "dbt_project.yml").write_text(
        "name: handoff\nversion: '1.0'\nconfig-version: 2\nprofile: handoff\n"
        "flags:\n  send_anonymous_usage_stats: false\n")
    (root / "profiles.yml").write_text(
        "handoff:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {json.dumps(str(root / 'warehouse.duckdb'))}\n      threads: 1\n")
    (root / "seeds" / "people.csv").write_text("id,name\n1,ada\n2,grace\n")
    (root / "models" / "shouted.sql").write_text("select id, upper(name) as name from {{ ref('people') }}\n")
    return root


def _reported(gitlab, stage: str, job: str, path: str, settings: dict) -> tuple[dict, dict]:
    """The pipeline's run and this job's run as the reporter sends them."""
    project = make_project(gitlab.url, path=path)
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


def _job_shell(project: Path, dbt_ol: Path, gitlab, stage: str, job: str, path: str, settings: dict,
               script: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run script in bash as a GitLab job would: CI_* variables, set -eo pipefail, dbt-ol on PATH."""
    work = project / f"case-{os.urandom(4).hex()}"
    work.mkdir()
    events_file = work / "events.ndjson"
    (work / "openlineage.yml").write_text(
        f"transport:\n  type: file\n  log_file_path: {json.dumps(str(events_file))}\n  append: true\n")
    env = {
        # dbt-ol starts `dbt` from PATH, so its venv's bin goes there, after the reporter's.
        "PATH": os.pathsep.join([str(REPORTER.parent), str(dbt_ol.parent), "/usr/local/bin:/usr/bin:/bin"]),
        "HOME": str(work), "LC_ALL": "C.UTF-8",
        "CI_SERVER_URL": gitlab.url, "CI_PROJECT_ID": "42", "CI_PROJECT_PATH": path,
        "CI_PIPELINE_ID": str(PIPELINE_ID), "CI_JOB_ID": str(JOB_ID), "CI_JOB_NAME": job, "CI_JOB_STAGE": stage,
        "OPENLINEAGE_CONFIG": str(work / "openlineage.yml"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1",
        **settings,
    }
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    done = subprocess.run(["bash", "-c", "set -eo pipefail\n" + script], env=env, cwd=work, capture_output=True,
                          text=True, timeout=120)
    events = [json.loads(line) for line in events_file.read_text().splitlines()] if events_file.exists() else []
    return done, events


PARENT_ENV = "databand-gitlab-reporter parent-env > databand-parent.env\n. ./databand-parent.env\n"  # as --help says


def _dbt_build(project: Path) -> str:
    where = shlex.quote(str(project))
    return f"dbt-ol build --project-dir {where} --profiles-dir {where}\n"

CASES = {
    "plain": ("transform", "dbt", "acme/data-platform", {}),
    "spaces and slashes": ("load data", "unit 2/3", "acme/data-platform", {}),
    "dots and percent": ("v1.2", "models.daily 100%", "acme/data.platform", {}),
    "unicode, quotes, shell": ("déploiement", "déploiement 🚀 \"prod\"/eu it's $HOME `id`", "acme/data-platform", {}),
    "own namespace and pipeline name": ("transform", "dbt", "acme/data-platform",
                                        {"DATABAND_NAMESPACE": "prod:warehouse",
                                         "DATABAND_PIPELINE_NAME": "acme.warehouse v2 (nightly)"}),
    # OPENLINEAGE_PARENT_ID is left out for these: dbt-ol finds the parent in OPENLINEAGE_CONTEXT.
    "slash in the namespace": ("transform", "dbt", "acme/data-platform", {"DATABAND_NAMESPACE": "team/prod"}),
    "slash in the pipeline name": ("transform", "dbt", "acme/data-platform",
                                   {"DATABAND_PIPELINE_NAME": "acme/warehouse"}),
}
# Two of them with OPENLINEAGE_CONTEXT unset, as a dbt-ol older than 1.52 sees them: where parent-env
# hands the old variables on, they alone carry the parent.
LEGACY = ["plain", "unicode, quotes, shell"]


def _parent(event: dict) -> dict:
    facet = event["run"]["facets"]["parent"]
    return {"namespace": facet["job"]["namespace"], "name": facet["job"]["name"], "runId": facet["run"]["runId"],
            "root": {"namespace": facet["root"]["job"]["namespace"], "name": facet["root"]["job"]["name"],
                     "runId": facet["root"]["run"]["runId"]}}


def _as_parent(event: dict) -> dict:
    return {"namespace": event["job"]["namespace"], "name": event["job"]["name"], "runId": event["run"]["runId"]}


def _check_nesting(events: list[dict], root: dict, mine: dict, case: str) -> None:
    wrapper = [e for e in events if e["job"]["name"] == "dbt-run-handoff"]
    nodes = [e for e in events if e["job"]["name"] != "dbt-run-handoff"]
    assert [e["eventType"] for e in wrapper] == ["START", "COMPLETE"]
    assert nodes and all(e["job"]["name"].endswith(".shouted.build.run") for e in nodes)
    print(f"{case}: dbt-ol's run parent {_parent(wrapper[0])}")
    for event in wrapper:  # dbt's own run: under this job, rooted at the pipeline
        assert _parent(event) == {**_as_parent(mine), "root": _as_parent(root)}
    for event in nodes:  # each model: under dbt's run, still rooted at the pipeline
        assert _parent(event) == {**_as_parent(wrapper[0]), "root": _as_parent(root)}


@pytest.mark.parametrize("case", CASES)
def test_dbt_runs_hang_under_the_reported_job_and_pipeline(gitlab, project, dbt_ol, case):
    stage, job, path, settings = CASES[case]
    root, mine = _reported(gitlab, stage, job, path, settings)
    done, events = _job_shell(project, dbt_ol, gitlab, stage, job, path, settings,
                              PARENT_ENV + 'test -n "$OPENLINEAGE_CONTEXT"\n' + _dbt_build(project))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "can't parse" not in done.stdout + done.stderr
    _check_nesting(events, root, mine, case)


@pytest.mark.parametrize("case", LEGACY)
def test_the_old_variables_alone_still_carry_the_parent(gitlab, project, dbt_ol, case):
    stage, job, path, settings = CASES[case]
    root, mine = _reported(gitlab, stage, job, path, settings)
    done, events = _job_shell(project, dbt_ol, gitlab, stage, job, path, settings,
                              PARENT_ENV + "unset OPENLINEAGE_CONTEXT\n" + _dbt_build(project))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "can't parse" not in done.stdout + done.stderr
    _check_nesting(events, root, mine, f"{case} (old variables)")


@pytest.mark.parametrize("setting, value", [("DATABAND_NAMESPACE", "team/prod"),
                                            ("DATABAND_PIPELINE_NAME", "acme/warehouse")])
def test_a_slash_leaves_out_the_split_variables_with_a_note(gitlab, project, dbt_ol, setting, value):
    done, _ = _job_shell(project, dbt_ol, gitlab, "transform", "dbt", "acme/data-platform", {setting: value},
                         PARENT_ENV + 'test -z "${OPENLINEAGE_PARENT_ID+set}${OPENLINEAGE_ROOT_PARENT_ID+set}"\n')
    assert done.returncode == 0, done.stderr
    [line] = done.stderr.splitlines()
    assert "note: OPENLINEAGE_PARENT_ID and OPENLINEAGE_ROOT_PARENT_ID left out" in line and "'/'" in line


def test_without_the_context_a_slash_would_drop_the_parent_silently(gitlab, project, dbt_ol):
    """Why the split variables are left out for a '/': written as they would be, dbt-ol reports no
    parent and succeeds."""
    run_id = ids.job_run_id("gitlab.example.com", 42, JOB_ID)
    root_id = ids.pipeline_run_id("gitlab.example.com", 42, PIPELINE_ID)
    script = (f"export OPENLINEAGE_PARENT_ID='team/prod/acme.data-platform.transform.dbt/{run_id}'\n"
              f"export OPENLINEAGE_ROOT_PARENT_ID='team/prod/acme.data-platform/{root_id}'\n"
              + _dbt_build(project))
    done, events = _job_shell(project, dbt_ol, gitlab, "transform", "dbt", "acme/data-platform", {}, script)
    assert done.returncode == 0, done.stderr[-3000:]
    wrapper = [e for e in events if e["job"]["name"] == "dbt-run-handoff"]
    assert wrapper and all("parent" not in e["run"]["facets"] for e in wrapper)
    assert not any(run_id in json.dumps(e) or root_id in json.dumps(e) for e in events)
