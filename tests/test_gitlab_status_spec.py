"""Our status rules against GitLab's own spec tables, transcribed in tests/data/gitlab_status_spec.json:

- composite_spec.rb's tables and has_status_spec.rb's `.composite_status` examples, for `composite`;
- every state of every spec/services/ci/pipeline_processing/test_cases/*.yml, for `pipeline_status`
  and `stage_status`: GitLab computed the jobs' statuses (DAG `needs` included), and from those
  jobs we must give the pipeline and each stage the status GitLab's spec expects;
- a subset of those states end to end: the pipeline on the GitLab stand-in, `resend --dry-run`,
  and the `gitlab.status` tags of the events.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import pipelines
from reporter import ids
from reporter.cli import cli
from reporter.snapshot import Job, Pipeline, mark_attempts
from reporter.status import FINAL, KNOWN, composite, pipeline_status, stage_status
from standins import make_job, make_pipeline, make_project

DATA = json.loads((Path(__file__).parent / "data" / "gitlab_status_spec.json").read_text())
CASES = {case["name"]: case for case in DATA["pipeline_processing"]["cases"]}


def test_our_status_sets_are_gitlabs():
    facts = DATA["has_status"]
    assert KNOWN == set(facts["available_statuses"])
    assert FINAL == set(facts["completed_statuses"])
    for status in facts["passed_with_warnings_statuses"]:
        assert composite([(status, True)]) == composite([("success", False), (status, True)])
        assert composite([(status, True)]).warnings
    for status in facts["ignored_statuses"]:
        assert composite([(status, True), ("success", False)]).status == "success"


@pytest.mark.parametrize("row", DATA["composite_spec"]["rows"],
                         ids=lambda r: f"{'+'.join(r['statuses'])}{'-af' if r['allow_failure'] else ''}"
                                       f"{'-dag' if r['dag'] else ''}")
def test_composite_spec_table(row):
    result = composite(((status, row["allow_failure"]) for status in row["statuses"]), dag=row["dag"])
    assert (result.status, result.warnings) == (row["status"], row["warnings"])


@pytest.mark.parametrize("case", DATA["has_status_spec"]["cases"], ids=lambda c: c["name"])
def test_has_status_composite_status(case):
    entries = [tuple(entry) for entry in case["jobs"]]
    assert composite(entries).status == case["status"]
    jobs = [Job(i, f"j{i}", "test", status, allow_failure) for i, (status, allow_failure) in enumerate(entries)]
    assert stage_status(jobs).status == case["status"]


# -- pipeline_processing test cases ---------------------------------------------------------------


def _snapshot_jobs(case: dict, state: dict) -> list[Job]:
    """The state's jobs in config order, each retry's earlier attempts first (lower ids)."""
    jobs: list[Job] = []
    for spec in case["jobs"]:
        name, stage, allowed = spec["name"], spec["stage"], spec["allow_failure"]
        for earlier in state.get("retried", {}).get(name, []):
            jobs.append(Job(len(jobs) + 1, name, stage, earlier, allowed))
        jobs.append(Job(len(jobs) + 1, name, stage, state["jobs"][name], allowed))
    return mark_attempts(jobs)


def _pipeline(status: str, jobs: list[Job]) -> Pipeline:
    return Pipeline(server="g", project_id=1, project_path="a/b", project_url="https://g/a/b", id=1, ref="main",
                    sha="s", status=status, web_url="https://g/a/b/-/pipelines/1", jobs=jobs)


def _steps():
    """(case, state, GitLab's stored statuses before the event) for every state of every case."""
    for case in CASES.values():
        before = {"pipeline": "created", "stages": dict.fromkeys(case["states"][0]["stages"], "created")}
        for index, state in enumerate(case["states"]):
            yield pytest.param(case, state, before, id=f"{case['name']}[{index}:{state['event']}]")
            before = {"pipeline": state["pipeline"], "stages": state["stages"]}


STEPS = list(_steps())


@pytest.mark.parametrize("case, state, before", STEPS)
def test_pipeline_status_predicts_gitlab(case, state, before):
    """GitLab still shows the status stored before the event; from the jobs we tell what it will show."""
    jobs = _snapshot_jobs(case, state)
    assert pipeline_status(_pipeline(before["pipeline"], jobs)).status == state["pipeline"]


@pytest.mark.parametrize("case, state, before", STEPS)
def test_pipeline_status_keeps_what_gitlab_settled_on(case, state, before):
    jobs = _snapshot_jobs(case, state)
    assert pipeline_status(_pipeline(state["pipeline"], jobs)).status == state["pipeline"]


@pytest.mark.parametrize("case, state, before", STEPS)
def test_stage_status_follows_gitlab(case, state, before):
    jobs = _snapshot_jobs(case, state)
    for stage, expected in state["stages"].items():
        stage_jobs = [j for j in jobs if j.stage == stage]
        assert stage_status(stage_jobs, stored=before["stages"][stage]).status == expected, stage


def _needs_stored_stage_status() -> list[str]:
    """Stages whose GitLab status the jobs alone do not give: the REST API has no stage status, so
    the reporter says `created` where GitLab keeps the stage's earlier status."""
    found = []
    for param in STEPS:
        case, state, before = param.values
        jobs = _snapshot_jobs(case, state)
        for stage, expected in state["stages"].items():
            ours = stage_status([j for j in jobs if j.stage == stage]).status
            if ours != expected:
                assert ours == "created" and expected == before["stages"][stage], (param.id, stage)
                found.append(f"{param.id} {stage}")
    return found


def test_stages_that_need_gitlabs_stored_status_are_only_those_of_replayed_needs():
    assert _needs_stored_stage_status() == [
        "dag_test_manual_allow_failure_true_deploy_on_failure[1:play] deploy",
        "dag_test_manual_allow_failure_true_fails[1:play] deploy",
        "dag_test_manual_allow_failure_true_fails[2:run] deploy",
        "dag_test_manual_allow_failure_true_succeeds[1:play] deploy",
        "dag_test_manual_allow_failure_true_succeeds[2:run] deploy",
        "dag_test_manual_same_stage_needs[2:play] third",
        "dag_test_manual_same_stage_needs[2:play] fourth",
        "stage_test_manual_allow_failure_true_deploy_on_failure[1:play] deploy",
    ]


def test_the_whole_transcription_is_checked():
    assert len(CASES) == 61
    assert len(STEPS) == 169
    assert sum(len(s.values[1]["stages"]) for s in STEPS) == 402


# -- end to end: the stand-in serves the state, the CLI tags the events -----------------------------

END_TO_END = [
    ("stage_build_cancels_test1_and_test2_have_when", 1),  # canceled
    ("stage_build_cancels_with_allow_failure_test1_and_test2_have_when", 1),  # pending stays pending
    ("stage_build_fails_with_allow_failure_test_on_failure", 2),  # success with warnings
    ("stage_test_manual_allow_failure_true", 1),  # an ignored manual job
    ("stage_test_manual_allow_failure_true", 2),  # played after success: running again
    ("dag_test_manual_allow_failure_false", 0),  # blocked on a manual job
    ("dag_test_manual_allow_failure_false_other_test_succeeds_deploy_needs_both", 1),
    ("dag_same_stage_with_fail_and_retry_1", 2),  # a retry after failure: running, the old attempt left out
    ("dag_same_stage_with_subsequent_manual_jobs", 0),  # skipped
    ("dag_test_allow_failure_true", 1),
    ("dag_build_test_two_manual_review_test_staging_production", 3),
    ("stage_one_test_succeeds_one_manual_test_fails_and_retry_pipeline", 4),
    ("workflow_auto_cancel_on_job_failure_all_test", 1),
]


def _tags(event: dict) -> dict:
    return {t["key"]: t["value"] for t in event["run"]["facets"]["tags"]["tags"]}


def _events_written(args: list[str], env: dict, out: Path) -> dict:
    """Run the CLI with --output: the events as written, by job name (stdout may be a summary)."""
    result = CliRunner().invoke(cli, [*args, "--output", str(out)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return {e["job"]["name"]: e for e in json.loads(out.read_text())}


@pytest.mark.parametrize("name, index", END_TO_END, ids=[f"{n}[{i}]" for n, i in END_TO_END])
def test_resend_tags_the_status_gitlab_will_show(gitlab, tmp_path, name, index):
    case = CASES[name]
    state = case["states"][index]
    stored = case["states"][index - 1]["pipeline"] if index else "created"
    project = make_project(gitlab.url)
    pipeline = make_pipeline(project, 600 + index, status=stored)
    jobs = [make_job(project, pipeline, 7000 + job.id, job.name, job.stage, job.status,
                     allow_failure=job.allow_failure) for job in _snapshot_jobs(case, state)]
    gitlab.add_pipeline(project, pipeline, jobs)

    events = _events_written(["resend", "--dry-run", "--project", "42", "--pipeline", str(600 + index)],
                             {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token}, tmp_path / "events.json")
    root = _tags(events["acme.data-platform"])
    assert root["gitlab.status"] == state["pipeline"]
    # GitLab's "passed with warnings": passed, with a failed or canceled job that may fail
    latest = [(j, state["jobs"][j["name"]]) for j in case["jobs"]]
    warned = any(j["allow_failure"] and s in ("failed", "canceled") for j, s in latest)
    assert root.get("gitlab.warnings") == ("true" if state["pipeline"] == "success" and warned else None)
    for stage, expected in state["stages"].items():
        assert _tags(events[ids.stage_job_name("acme.data-platform", stage)])["gitlab.status"] == expected, stage


# -- the reporter's own job: counted as GitLab will count it ---------------------------------------


def _own_job_pipeline(gitlab, others: list[tuple[str, str, str, bool]]) -> pipelines.Sample:
    project = make_project(gitlab.url)
    pipeline = make_pipeline(project, 650, status="running")
    jobs = [make_job(project, pipeline, 6500 + i, name, stage, status, allow_failure=allowed)
            for i, (name, stage, status, allowed) in enumerate(others)]
    jobs.append(make_job(project, pipeline, 6599, "databand-report", ".post", "running"))
    return pipelines.Sample(project, pipeline, jobs).install(gitlab)


@pytest.mark.parametrize("others, expected", [
    ([("lint", "test", "skipped", False), ("deploy", "deploy", "skipped", False)], "success"),
    ([("lint", "test", "skipped", False), ("publish", "deploy", "manual", True)], "success"),
    ([("lint", "test", "failed", True), ("publish", "deploy", "manual", True)], "success"),
    ([("lint", "test", "failed", False), ("deploy", "deploy", "skipped", False)], "failed"),
], ids=["all-others-skipped", "skipped-and-manual", "allowed-failure-and-manual", "failed"])
@pytest.mark.parametrize("excluded", [False, True], ids=["listed", "excluded"])
def test_report_in_post_counts_its_own_job_as_success(gitlab, tmp_path, others, expected, excluded):
    sample = _own_job_pipeline(gitlab, others)
    args = ["report", "--dry-run"] + (["--exclude-job", "databand-*"] if excluded else [])
    events = _events_written(args, pipelines.ci_env(sample, gitlab.url, token=gitlab.token), tmp_path / "events.json")
    assert _tags(events["acme.data-platform"])["gitlab.status"] == expected
    own = events.get(ids.job_job_name("acme.data-platform", ".post", "databand-report"))
    if excluded:
        assert own is None and ids.stage_job_name("acme.data-platform", ".post") not in events
    else:
        assert own["eventType"] == "COMPLETE" and _tags(own)["gitlab.status"] == "success"
        assert _tags(events[ids.stage_job_name("acme.data-platform", ".post")])["gitlab.status"] == "success"
