"""The context tags of issue 14 (who, which change, how long it waited, which runner, where it
deployed): at the snapshot seam without HTTP, and read from the GitLab stand-in with a read_api
token and with only CI_JOB_TOKEN. Tag names and sources: docs/event-tags.md."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from click.testing import CliRunner

import olschema
import pipelines
from reporter import events as reporter_events
from reporter import ids
from reporter.gitlab import http, read
from reporter.cli import cli
from reporter.ids import Naming
from reporter.redact import Redactor
from reporter.settings import CIContext
from reporter.snapshot import MAX_TEXT, Job, Pipeline
from standins import _user, make_bridge, make_job, make_pipeline, make_project

NOW = datetime(2026, 11, 20, 11, 0, tzinfo=timezone.utc)
NAMING = Naming("gitlab/acme", "acme.data-platform", "acme/data-platform")
SECRET = "glpat-AbCdEfGhIjKlMnOpQrSt"  # the shape masking recognises: glpat- and 16 or more characters
EMAIL = "someone.private@example.com"

# The tags events carried before issue 14, in their order; the context tags come after them.
OLD_PIPELINE_TAGS = ["gitlab.status", "gitlab.ref", "gitlab.source"]
OLD_JOB_TAGS = ["gitlab.status", "gitlab.job_id", "gitlab.attempt"]
PIPELINE_CONTEXT = ["gitlab.commit.sha", "gitlab.commit.title", "gitlab.commit.before_sha", "gitlab.merge_request.iid",
                    "gitlab.merge_request.url", "gitlab.user", "gitlab.pipeline_name", "gitlab.schedule",
                    "gitlab.queued_seconds", "gitlab.duration_seconds", "gitlab.coverage"]
JOB_CONTEXT = ["gitlab.failure_reason", "gitlab.runner.id", "gitlab.runner.description", "gitlab.tags",
               "gitlab.queued_seconds", "gitlab.duration_seconds", "gitlab.environment",
               "gitlab.environment.action", "gitlab.coverage"]
# Issue 21's estimate, after the context: compute minutes (all levels) and the job's cost factor.
COST = ["gitlab.compute_minutes"]
JOB_COST = ["gitlab.cost_factor", "gitlab.compute_minutes"]


def tag_pairs(event: dict) -> list[tuple[str, str]]:
    return [(t["key"], t["value"]) for t in event["run"]["facets"]["tags"]["tags"]]


def tags(event: dict) -> dict[str, str]:
    return dict(tag_pairs(event))


def by_name(events) -> dict[str, dict]:
    return {e["job"]["name"]: e for e in events}


def job_event(events, job_id: int) -> dict:
    [event] = [e for e in events if tags(e).get("gitlab.job_id") == str(job_id)]
    return event


# -- the snapshot seam: hand-built snapshots, no HTTP -------------------------------------------

def _snapshot(**context) -> Pipeline:
    t0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
    t1 = datetime(2026, 11, 20, 10, 1, tzinfo=timezone.utc)
    deploy = Job(id=7, name="deploy", stage="deploy", status="failed", created_at=t0, started_at=t0, finished_at=t1,
                 failure_reason="script_failure", queued_seconds=0.123, duration_seconds=240.0, coverage=98.29,
                 runner_id=32, runner_description="shared-runner-1", tag_list=("docker runner", "ubuntu18"),
                 environment="production", environment_action="start")
    trigger = Job(id=8, name="trigger", stage="deploy", status="success", kind="bridge", created_at=t0)
    return Pipeline(server="gitlab.example.com", project_id=42, project_path="acme/data-platform",
                    project_url="https://gitlab.example.com/acme/data-platform", id=9001, ref="main",
                    sha="50f0acb76a40e34a4ff304f7347dcc6587da8a14", status="failed",
                    web_url="https://gitlab.example.com/acme/data-platform/-/pipelines/9001", source="push",
                    created_at=t0, jobs=[deploy, trigger], **context)


def test_snapshot_context_becomes_tags_after_the_existing_ones_in_the_documented_order():
    pipeline = _snapshot(commit_title="Update the nightly load", before_sha="8a24fb3c5877a6d0b611ca41fc86edc174593e2b",
                         merge_request_iid=12,
                         merge_request_url="https://gitlab.example.com/acme/data-platform/-/merge_requests/12",
                         user="root", name="Build pipeline", schedule="Nightly", queued_seconds=6.0,
                         duration_seconds=34.0, coverage=87.5)
    events = list(reporter_events.build_events(pipeline, NAMING, NOW))
    olschema.assert_valid(events)

    root = tag_pairs(events[0])
    assert [k for k, _ in root] == OLD_PIPELINE_TAGS + PIPELINE_CONTEXT + COST
    assert dict(root) == {
        "gitlab.status": "failed", "gitlab.ref": "main", "gitlab.source": "push",
        "gitlab.commit.sha": "50f0acb76a40e34a4ff304f7347dcc6587da8a14",
        "gitlab.commit.title": "Update the nightly load",
        "gitlab.commit.before_sha": "8a24fb3c5877a6d0b611ca41fc86edc174593e2b",
        "gitlab.merge_request.iid": "12",
        "gitlab.merge_request.url": "https://gitlab.example.com/acme/data-platform/-/merge_requests/12",
        "gitlab.user": "root", "gitlab.pipeline_name": "Build pipeline", "gitlab.schedule": "Nightly",
        "gitlab.queued_seconds": "6", "gitlab.duration_seconds": "34", "gitlab.coverage": "87.5",
        "gitlab.compute_minutes": "4"}  # the deploy job's 240 s at factor 1, the bridge's 0

    deploy = tag_pairs(job_event(events, 7))
    assert [k for k, _ in deploy] == OLD_JOB_TAGS + JOB_CONTEXT + JOB_COST
    assert dict(deploy)["gitlab.failure_reason"] == "script_failure"
    assert dict(deploy)["gitlab.tags"] == "docker runner,ubuntu18"
    assert (dict(deploy)["gitlab.queued_seconds"], dict(deploy)["gitlab.duration_seconds"]) == ("0.123", "240")
    assert (dict(deploy)["gitlab.environment"], dict(deploy)["gitlab.environment.action"]) == ("production", "start")
    assert dict(deploy)["gitlab.coverage"] == "98.29"
    # the words stay in the errorMessage facet, the code goes beside them
    assert job_event(events, 7)["run"]["facets"]["errorMessage"]["message"] == "The script failed"

    # stages carry no context of their own, only their jobs' compute minutes
    stage = by_name(events)[ids.stage_job_name(NAMING.pipeline_name, "deploy")]
    assert tag_pairs(stage) == [("gitlab.status", "failed"), ("gitlab.compute_minutes", "4")]


def test_snapshot_without_context_has_exactly_the_tags_it_had_before():
    pipeline = _snapshot()
    pipeline.sha = ""
    for job in pipeline.jobs:
        job.failure_reason = None if job.status != "failed" else job.failure_reason
    bare = Job(id=9, name="lint", stage="deploy", status="success")
    pipeline.jobs.append(bare)
    events = list(reporter_events.build_events(pipeline, NAMING, NOW))
    olschema.assert_valid(events)
    assert [k for k, _ in tag_pairs(events[0])] == OLD_PIPELINE_TAGS + COST
    assert [k for k, _ in tag_pairs(job_event(events, 9))] == OLD_JOB_TAGS  # no duration: no estimate
    assert [k for k, _ in tag_pairs(job_event(events, 8))] == OLD_JOB_TAGS + COST  # the bridge: 0 by definition


def test_snapshot_values_are_bounded_strings_even_when_built_by_hand():
    pipeline = _snapshot(commit_title="t" * 5000, name="n" * 300)
    pipeline.jobs[0].tag_list = tuple(f"tag-{i}" for i in range(200))
    events = list(reporter_events.build_events(pipeline, NAMING, NOW))
    for event in events:
        for key, value in tag_pairs(event):
            assert isinstance(value, str) and len(value) <= MAX_TEXT, key
    assert tags(events[0])["gitlab.commit.title"].endswith("\u2026")


# -- read from the GitLab stand-in ------------------------------------------------------------

def _context_pipeline(gitlab, *, pipeline_id: int = 7001, ref: str = "refs/merge-requests/12/head",
                      commit_title: str = "Load orders from the new API"):
    """A merge request pipeline as GitLab documents its objects, with every context field set."""
    project = make_project(gitlab.url)
    user = {**_user(gitlab.url), "username": "ada", "public_email": EMAIL}
    pipeline = make_pipeline(project, pipeline_id, status="failed", ref=ref, source="merge_request_event",
                             name="MR pipeline", coverage="87.50", queued_duration=6, duration=34,
                             before_sha="8a24fb3c5877a6d0b611ca41fc86edc174593e2b", user=user)
    jobs = [
        make_job(project, pipeline, 1, "unit", "test", "success", coverage=91.2, tag_list=["docker runner", "ubuntu18"],
                 queued_duration=0.5, duration=61.25, commit_title=commit_title, user=user),
        make_job(project, pipeline, 2, "deploy", "deploy", "failed", failure_reason="runner_system_failure",
                 runner_description="eu-runner-7", tag_list=[], commit_title=commit_title, user=user,
                 environment={"name": "review/mr-12", "action": "start"}),
    ]
    bridges = [make_bridge(project, pipeline, 3, "downstream", "deploy", "success", commit_title=commit_title)]
    gitlab.add_pipeline(project, pipeline, jobs, bridges)
    return project, pipeline


def _read(gitlab, pipeline_id: int, *, token: bool = True, ci: dict | None = None, redact=None):
    access = http.Access(url=gitlab.url, token=gitlab.token if token else None,
                         job_token=None if token else gitlab.job_token)
    snapshot = read.read_pipeline(http.connect(access), 42, pipeline_id, context=CIContext.from_env(ci or {}),
                                  tests=False, redact=redact or Redactor([gitlab.token, gitlab.job_token]))
    return snapshot, list(reporter_events.build_events(snapshot, NAMING, NOW))


def test_read_api_token_gives_pipeline_and_job_context_from_gitlabs_objects(gitlab):
    _context_pipeline(gitlab)
    snapshot, events = _read(gitlab, 7001)
    olschema.assert_valid(events)
    root = tags(events[0])
    assert {k: root[k] for k in PIPELINE_CONTEXT if k in root} == {
        "gitlab.commit.sha": "0ff3ae198f8601a285adcf5c0fff204ee6fba5fd",
        "gitlab.commit.title": "Load orders from the new API",  # from the jobs' commit: the pipeline has none
        "gitlab.commit.before_sha": "8a24fb3c5877a6d0b611ca41fc86edc174593e2b",
        "gitlab.merge_request.iid": "12",  # from the ref refs/merge-requests/12/head
        "gitlab.merge_request.url": f"{gitlab.url}/acme/data-platform/-/merge_requests/12",
        "gitlab.user": "ada", "gitlab.pipeline_name": "MR pipeline",
        "gitlab.queued_seconds": "6", "gitlab.duration_seconds": "34", "gitlab.coverage": "87.5"}
    assert root["gitlab.source"] == "merge_request_event"
    assert "gitlab.schedule" not in root  # not a scheduled pipeline, and no CI_* variables say otherwise

    unit, deploy, bridge = (tags(job_event(events, i)) for i in (1, 2, 3))
    assert {k: unit[k] for k in JOB_CONTEXT if k in unit} == {
        "gitlab.runner.id": "32", "gitlab.runner.description": "shared-runner-1",
        "gitlab.tags": "docker runner,ubuntu18", "gitlab.queued_seconds": "0.5",
        "gitlab.duration_seconds": "61.25", "gitlab.coverage": "91.2"}
    assert deploy["gitlab.failure_reason"] == "runner_system_failure"
    assert job_event(events, 2)["run"]["facets"]["errorMessage"]["message"] == "There has been a runner system failure, please try again"
    assert deploy["gitlab.runner.description"] == "eu-runner-7"
    assert "gitlab.tags" not in deploy  # an empty tag list
    assert (deploy["gitlab.environment"], deploy["gitlab.environment.action"]) == ("review/mr-12", "start")
    assert "gitlab.runner.id" not in bridge and "gitlab.tags" not in bridge  # GitLab's bridges have neither
    assert bridge["gitlab.duration_seconds"] == "60"
    assert EMAIL not in json.dumps(events)
    assert not [line for line in snapshot.left_out if "duration" in line]
    # one page of jobs, one of bridges, the pipeline: nothing extra for the context
    assert gitlab.count(r"/jobs/\d+$") == 0 and gitlab.count(r"/commits") == 0


def test_every_context_field_null_or_missing_leaves_its_tag_out_without_error(gitlab):
    project = make_project(gitlab.url)
    pipeline = make_pipeline(project, 7002, status="success", name=None, coverage=None, queued_duration=None,
                             duration=None, before_sha=None, user=None)
    nulls = dict(coverage=None, tag_list=None, queued_duration=None, duration=None, runner=None, user=None,
                 commit_title=None, environment=None)
    jobs = [make_job(project, pipeline, 11, "null", "test", "success", **nulls),
            make_job(project, pipeline, 12, "odd", "test", "success", tag_list=[None, 3, "ok"],
                     runner={"id": "32", "description": 5}, environment={"name": None, "action": None},
                     commit_title=None, queued_duration=float("nan"), duration=-1)]
    missing = make_job(project, pipeline, 13, "missing", "test", "success")
    for key in ("coverage", "tag_list", "queued_duration", "duration", "runner", "user", "commit"):
        del missing[key]
    jobs.append(missing)
    bridges = [make_bridge(project, pipeline, 14, "downstream", "deploy", "success", queued_duration=None, user=None,
                           commit_title=None)]
    gitlab.add_pipeline(project, pipeline, jobs, bridges)
    gitlab.graphql, gitlab.version = True, "17.5.1-ee"  # as GitLab answers: nothing for the summary to name

    snapshot, events = _read(gitlab, 7002)
    olschema.assert_valid(events)
    assert [k for k, _ in tag_pairs(events[0])] == OLD_PIPELINE_TAGS + ["gitlab.commit.sha"] + COST  # the bridge's 0
    assert [k for k, _ in tag_pairs(job_event(events, 11))] == OLD_JOB_TAGS
    assert [k for k, _ in tag_pairs(job_event(events, 12))] == OLD_JOB_TAGS + ["gitlab.tags"]
    assert tags(job_event(events, 12))["gitlab.tags"] == "ok"
    assert [k for k, _ in tag_pairs(job_event(events, 13))] == OLD_JOB_TAGS
    assert [k for k, _ in tag_pairs(job_event(events, 14))] == OLD_JOB_TAGS + ["gitlab.duration_seconds"] + COST
    assert snapshot.left_out == []


def test_pipeline_object_without_the_context_keys_reads_as_before(gitlab):
    project = make_project(gitlab.url)
    pipeline = make_pipeline(project, 7003, status="success", ref="main")
    for key in ("name", "coverage", "queued_duration", "duration", "before_sha", "user", "detailed_status"):
        del pipeline[key]
    gitlab.add_pipeline(project, pipeline, [make_job(project, pipeline, 21, "unit", "test", "success")])
    _, events = _read(gitlab, 7003)
    olschema.assert_valid(events)
    assert [k for k, _ in tag_pairs(events[0])] == OLD_PIPELINE_TAGS + ["gitlab.commit.sha", "gitlab.commit.title"] + COST


def test_a_10_kb_commit_title_is_masked_before_it_is_cut(gitlab):
    # The token starts 14 characters before the cut: cut first, "glpat-" and 8 characters would be
    # left, too short for masking to recognise; masked first, none of it survives.
    start = MAX_TEXT - 1 - 14
    title = "x" * (start - 1) + " " + SECRET + " " + "y" * (10 * 1024)
    _context_pipeline(gitlab, pipeline_id=7004, commit_title=title)
    snapshot, events = _read(gitlab, 7004, redact=Redactor([]))  # masked by its shape, not as a known secret
    shown = tags(events[0])["gitlab.commit.title"]
    assert len(shown) == MAX_TEXT and shown.endswith("\u2026")
    assert shown.startswith("x" * (start - 1) + " [MASKED]")
    text = json.dumps(events)
    assert SECRET[:12] not in text and SECRET[-8:] not in text
    # cutting first would have leaked its start: the test would catch the order being swapped
    cut_first = Redactor([])(title[:MAX_TEXT - 1])
    assert SECRET[:12] in cut_first


def test_runner_description_and_names_are_masked_like_any_text(gitlab):
    project = make_project(gitlab.url)
    pipeline = make_pipeline(project, 7005, status="success", name=f"deploy with {gitlab.token}")
    jobs = [make_job(project, pipeline, 31, "unit", "test", "success", runner_description=f"runner {SECRET}",
                     tag_list=[f"token={gitlab.job_token}"], commit_title=f"fix: rotate {gitlab.token}")]
    gitlab.add_pipeline(project, pipeline, jobs)
    _, events = _read(gitlab, 7005)
    text = json.dumps(events)
    for secret in (SECRET, gitlab.token, gitlab.job_token):
        assert secret not in text
    assert tags(job_event(events, 31))["gitlab.runner.description"] == "runner [MASKED]"
    assert "[MASKED]" in tags(events[0])["gitlab.pipeline_name"]
    assert "[MASKED]" in tags(events[0])["gitlab.commit.title"]


CI_CONTEXT = {
    "CI_COMMIT_TITLE": "Load orders from the new API", "GITLAB_USER_LOGIN": "ada", "GITLAB_USER_EMAIL": EMAIL,
    "CI_PIPELINE_NAME": "MR pipeline", "CI_PIPELINE_SCHEDULE_DESCRIPTION": "", "CI_MERGE_REQUEST_IID": "12",
    "CI_MERGE_REQUEST_PROJECT_URL": "https://gitlab.example.com/acme/upstream",
}


def _ci(gitlab, pipeline_id: int, **more) -> dict:
    project = make_project(gitlab.url)
    sample = pipelines.Sample(project, make_pipeline(project, pipeline_id, ref="feature"),
                              [{"name": "databand-report", "id": 99}])
    return {**pipelines.ci_env(sample, gitlab.url), "CI_COMMIT_REF_NAME": "feature", **CI_CONTEXT, **more}


def test_job_token_only_takes_the_pipeline_context_from_the_ci_variables_and_names_the_rest_once(gitlab):
    _context_pipeline(gitlab, pipeline_id=7006, ref="feature")
    snapshot, events = _read(gitlab, 7006, token=False, ci=_ci(gitlab, 7006))
    olschema.assert_valid(events)
    root = tags(events[0])
    assert {k: root[k] for k in PIPELINE_CONTEXT if k in root} == {
        "gitlab.commit.sha": "0ff3ae198f8601a285adcf5c0fff204ee6fba5fd",
        "gitlab.commit.title": "Load orders from the new API", "gitlab.merge_request.iid": "12",
        # the merge request's project, which for a fork's pipeline is not the pipeline's
        "gitlab.merge_request.url": "https://gitlab.example.com/acme/upstream/-/merge_requests/12",
        "gitlab.user": "ada", "gitlab.pipeline_name": "MR pipeline"}
    # the jobs list is readable with the job token: the job context is all there
    assert tags(job_event(events, 2))["gitlab.environment"] == "review/mr-12"
    assert tags(job_event(events, 1))["gitlab.tags"] == "docker runner,ubuntu18"
    assert EMAIL not in json.dumps(events)
    named = [line for line in snapshot.left_out if "duration" in line]
    assert len(named) == 1
    assert named[0].startswith("the pipeline's duration, queued duration, coverage and")
    assert "who started it" not in named[0] and "workflow:name" not in named[0]


def test_job_token_outside_the_pipeline_takes_the_merge_request_from_the_ref(gitlab):
    _context_pipeline(gitlab, pipeline_id=7007)
    # The variables of another pipeline's job say nothing about this one.
    snapshot, events = _read(gitlab, 7007, token=False, ci=_ci(gitlab, 9999))
    olschema.assert_valid(events)
    root = tags(events[0])
    assert root["gitlab.ref"] == "refs/merge-requests/12/head"
    assert root["gitlab.merge_request.iid"] == "12"
    assert root["gitlab.commit.title"] == "Load orders from the new API"  # from the jobs' commit
    assert "gitlab.user" not in root and "gitlab.pipeline_name" not in root
    [named] = [line for line in snapshot.left_out if "duration" in line]
    assert "who started it" in named and "workflow:name" in named


def test_report_with_the_job_token_names_what_it_left_out_once_in_the_summary(gitlab, tmp_path):
    _context_pipeline(gitlab, pipeline_id=7008, ref="feature")
    env = {**_ci(gitlab, 7008), "CI_JOB_TOKEN": gitlab.job_token}
    out = tmp_path / "events.json"
    result = CliRunner().invoke(cli, ["report", "--dry-run", "--output", str(out)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    events = json.loads(out.read_text())
    olschema.assert_valid(events)
    assert tags(events[0])["gitlab.user"] == "ada"  # GITLAB_USER_LOGIN reaches the reader
    assert result.stderr.count("queued duration") == 1
    assert EMAIL not in result.output and EMAIL not in out.read_text()


def test_the_sample_pipelines_carry_the_context_and_stay_valid(gitlab):
    for sample in (pipelines.mixed(gitlab.url), pipelines.failing(gitlab.url)):
        sample.install(gitlab)
        _, events = _read(gitlab, sample.pipeline["id"])
        olschema.assert_valid(events)
        root = tags(events[0])
        assert root["gitlab.user"] == "root" and root["gitlab.commit.title"] == "Update the nightly load"
        for raw in sample.jobs:
            if raw["started_at"] and raw["runner"]:
                job = tags(job_event(events, raw["id"]))
                assert job["gitlab.runner.id"] == "32" and job["gitlab.tags"] == "docker", raw["name"]
                assert [k for k in job][:3] == OLD_JOB_TAGS


def test_a_deploy_job_reporting_from_its_after_script_names_its_environment(gitlab):
    """GitLab's jobs API names no job's environment; the deploy job reporting itself knows its own."""
    _context_pipeline(gitlab, pipeline_id=7010, ref="main")
    ci = _ci(gitlab, 7010, CI_JOB_ID="1", CI_ENVIRONMENT_NAME="production/eu", CI_ENVIRONMENT_ACTION="start")
    _, events = _read(gitlab, 7010, ci=ci)
    olschema.assert_valid(events)
    reporting = tags(job_event(events, 1))
    assert reporting["gitlab.environment"] == "production/eu" and reporting["gitlab.environment.action"] == "start"
    # Another job keeps what GitLab's answer said of it, not the reporting job's variables.
    assert tags(job_event(events, 2))["gitlab.environment"] == "review/mr-12"
    _, elsewhere = _read(gitlab, 7010, ci={**ci, "CI_PIPELINE_ID": "1"})  # a job of another pipeline
    assert "gitlab.environment" not in tags(job_event(elsewhere, 1))
