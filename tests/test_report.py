"""The reporter end to end against the GitLab and Databand stand-ins on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import olschema
import pipelines
from clirun import quick
from reporter import ids
from reporter.cli import cli


def run(args, env):
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    return result


def by_name(events):
    return {e["job"]["name"]: e for e in events}


def tags(event):
    return {t["key"]: t["value"] for t in event["run"]["facets"]["tags"]["tags"]}


@pytest.fixture
def mixed(gitlab):
    return pipelines.mixed(gitlab.url).install(gitlab)


@pytest.fixture
def failing(gitlab):
    return pipelines.failing(gitlab.url).install(gitlab)


def report_env(sample, gitlab, databand=None, **kw):
    env = pipelines.ci_env(sample, gitlab.url, token=kw.pop("token", gitlab.token), **kw)
    if databand:
        env.update(DATABAND_URL=databand.url, DATABAND_ACCESS_TOKEN=databand.token)
    return env


def test_report_in_post_sends_the_whole_pipeline(gitlab, databand, mixed):
    result = run(["report"], report_env(mixed, gitlab, databand))
    assert result.exit_code == 0, result.output
    assert len(databand.payloads) == 1
    events = databand.events
    olschema.assert_valid(events)
    names = by_name(events)
    p = "acme.data-platform"

    root = events[0]
    assert "parent" not in root["run"]["facets"]
    assert root["job"]["name"] == p
    assert root["eventType"] == "COMPLETE"  # GitLab says running; the jobs say passed with warnings
    assert tags(root)["gitlab.warnings"] == "true"
    assert root["run"]["facets"]["tags"]["projectName"] == "acme/data-platform"

    # the reporter's own job counts as GitLab will count it: its script ends in success (it is not
    # left out by --exclude-job here); every attempt is there once
    own = names[ids.job_job_name(p, ".post", "databand-report")]
    assert own["eventType"] == "COMPLETE" and tags(own)["gitlab.status"] == "success"
    assert names[ids.stage_job_name(p, ".post")]["eventType"] == "COMPLETE"
    job_events = [e for e in events if e["job"]["facets"]["jobType"]["jobType"] in ("JOB", "BRIDGE")]
    assert sorted(int(tags(e)["gitlab.job_id"]) for e in job_events) == [101, 102, 103, 104, 105, 106, 107,
                                                                         108, 109, 110, 111]
    assert {f"{p}.test.unit {i}%2F3" for i in (1, 2, 3)} <= set(names)

    # retried job: two runs of the same job, the stage follows the latest attempt
    flaky = [e for e in job_events if e["job"]["name"] == f"{p}.test.flaky"]
    assert sorted(e["eventType"] for e in flaky) == ["COMPLETE", "FAIL"]
    assert len({e["run"]["runId"] for e in flaky}) == 2
    assert names[f"{p}.test"]["eventType"] == "COMPLETE"
    assert tags(names[f"{p}.test"])["gitlab.warnings"] == "true"

    # allowed failure keeps its FAIL, with the log, masked
    lint = names[f"{p}.test.lint"]
    assert lint["eventType"] == "FAIL"
    assert lint["run"]["facets"]["log"]["logBody"] == "lint: 3 problems\nERROR: Job failed: exit code 1"
    assert lint["run"]["facets"]["log"]["logUrl"].endswith("/-/jobs/105")
    assert lint["run"]["facets"]["errorMessage"]["message"] == "The script failed"
    first_flaky = next(e for e in flaky if e["eventType"] == "FAIL")
    assert pipelines.SECRET_IN_LOG not in json.dumps(events)
    assert "[MASKED]" in first_flaky["run"]["facets"]["log"]["logBody"]

    # manual job never played; bridge; unicode name
    assert names[f"{p}.deploy.publish"]["eventType"] == "ABORT"
    assert tags(names[f"{p}.deploy.publish"])["gitlab.status"] == "manual"
    bridge = names[f"{p}.deploy.downstream"]
    assert bridge["job"]["facets"]["jobType"]["jobType"] == "BRIDGE"
    assert bridge["run"]["facets"]["parent"]["run"]["runId"] == names[f"{p}.deploy"]["run"]["runId"]
    assert bridge["run"]["facets"]["parent"]["root"]["run"]["runId"] == root["run"]["runId"]
    assert names[f'{p}.deploy.déploiement 🚀 "prod"%2Feu']["eventType"] == "COMPLETE"

    # stages in order, each naming the previous one as input
    assert [d["name"] for d in names[f"{p}.test"]["inputs"]] == [f"{p}.build"]
    assert [d["name"] for d in names[f"{p}.deploy"]["inputs"]] == [f"{p}.test"]

    assert "Pipeline status: passed with warnings" in result.stderr
    assert "section_start:" in result.stderr and "section_end:" in result.stderr


def test_every_parent_exists_and_ids_are_stable(gitlab, databand, mixed):
    env = report_env(mixed, gitlab, databand)
    assert run(["report"], env).exit_code == 0
    assert run(["report"], env).exit_code == 0
    first, second = databand.payloads
    assert [e["run"]["runId"] for e in first] == [e["run"]["runId"] for e in second]
    run_ids = {e["run"]["runId"] for e in first}
    for event in first[1:]:
        assert event["run"]["facets"]["parent"]["run"]["runId"] in run_ids
    server = ids.server_key(gitlab.url)
    assert first[0]["run"]["runId"] == ids.pipeline_run_id(server, 42, 9001)


def test_failed_pipeline_with_skipped_stages_and_canceled_job(gitlab, databand, failing):
    result = run(["report"], report_env(failing, gitlab, databand))
    assert result.exit_code == 0, result.output
    events = databand.events
    olschema.assert_valid(events)
    names = by_name(events)
    p = "acme.data-platform"
    assert events[0]["eventType"] == "FAIL"
    assert events[0]["run"]["facets"]["errorMessage"]["message"] == "Failed jobs: compile"
    assert names[f"{p}.build"]["eventType"] == "FAIL"
    assert names[f"{p}.build.docs"]["eventType"] == "ABORT"
    assert names[f"{p}.test"]["eventType"] == "ABORT"
    assert tags(names[f"{p}.test"])["gitlab.status"] == "skipped"
    assert names[f"{p}.deploy.deploy"]["eventType"] == "ABORT"
    log = names[f"{p}.build.compile"]["run"]["facets"]["log"]["logBody"]
    assert len(log.splitlines()) == 100
    assert log.endswith("ERROR: Job failed: exit code 2")
    assert "sekrit-value-123" not in log and "section_start" not in log and "\x1b" not in log


def test_report_from_after_script_includes_its_own_job(gitlab, databand, failing):
    env = report_env(failing, gitlab, databand, job_status="failed")
    assert run(["report"], env).exit_code == 0
    own = by_name(databand.events)[ids.job_job_name("acme.data-platform", ".post", "databand-report")]
    assert own["eventType"] == "FAIL"
    assert own["run"]["facets"]["errorMessage"]["message"]
    olschema.assert_valid(databand.events)


def test_more_than_100_jobs_are_all_read(gitlab, databand):
    from standins import generate_pipeline, unfiltered

    project, pipeline, jobs = generate_pipeline(gitlab.url, 250, seed=3)
    gitlab.add_pipeline(project, pipeline, jobs)
    env = {"GITLAB_TOKEN": gitlab.token, "DATABAND_URL": databand.url, "DATABAND_ACCESS_TOKEN": databand.token}
    result = run(["resend", "--gitlab-url", gitlab.url, "--project", str(project["id"]),
                  "--pipeline", str(pipeline["id"])], env)
    assert result.exit_code == 0, result.output
    job_ids = [int(tags(e)["gitlab.job_id"]) for e in databand.events if "gitlab.job_id" in tags(e)]
    assert sorted(job_ids) == sorted(j["id"] for j in jobs)
    assert gitlab.count(r"/pipelines/\d+/jobs$", unfiltered) == 3


def test_job_token_only_reports_what_it_can(gitlab, databand, mixed):
    env = report_env(mixed, gitlab, databand, token=None, job_token=gitlab.job_token)
    result = run(["report"], env)
    assert result.exit_code == 0, result.output
    assert "read_api" in result.stderr and "bridges" in result.stderr
    events = databand.events
    olschema.assert_valid(events)
    names = by_name(events)
    assert "acme.data-platform.deploy.downstream" not in names  # bridges need read_api
    assert "log" not in names["acme.data-platform.test.lint"]["run"]["facets"]
    assert events[0]["eventType"] == "COMPLETE"
    assert gitlab.count(r"/pipelines/9001$") == 0 and gitlab.count(r"/trace$") == 0
    # the same run IDs as with a read_api token
    token_run = run(["resend", "--project", "42", "--pipeline", "9001"],
                    {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "DATABAND_URL": databand.url,
                     "DATABAND_ACCESS_TOKEN": databand.token})
    assert token_run.exit_code == 0, token_run.output
    with_token = {e["job"]["name"]: e["run"]["runId"] for e in databand.payloads[-1]}
    for name, run_id in {e["job"]["name"]: e["run"]["runId"] for e in events}.items():
        assert with_token[name] == run_id


def test_dry_run_prints_events_and_needs_no_databand(gitlab, mixed):
    result = run(["resend", "--dry-run", "--json", "--project", "acme/data-platform", "--pipeline", "9001"],
                 {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token})
    assert result.exit_code == 0, result.stderr
    events = json.loads(result.stdout)
    olschema.assert_valid(events)
    assert events[0]["job"]["name"] == "acme.data-platform"


def test_output_file_and_resend_from_file(gitlab, databand, mixed, tmp_path):
    out = tmp_path / "events.json"
    env = {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token}
    assert run(["resend", "--dry-run", "--output", str(out), "--project", "42", "--pipeline", "9001"],
               env).exit_code == 0
    written = json.loads(out.read_text())
    result = run(["resend", "--from-file", str(out)],
                 {"DATABAND_URL": databand.url, "DATABAND_ACCESS_TOKEN": databand.token})
    assert result.exit_code == 0, result.output
    assert databand.events == written


# -- errors: one line, the right exit code, no token -----------------------------------------


def assert_no_secret(result, *secrets):
    for secret in secrets:
        assert secret not in result.output
    assert "Traceback" not in result.output


def test_missing_settings(gitlab):
    result = run(["report"], {"GITLAB_TOKEN": "x" * 20})
    assert result.exit_code == 2
    assert "CI_PROJECT_ID" in result.stderr
    result = run(["report"], {"CI_PROJECT_ID": "1", "CI_PIPELINE_ID": "abc"})
    assert result.exit_code == 2 and "CI_PIPELINE_ID must be a number" in result.stderr
    result = run(["resend", "--project", "1", "--pipeline", "2", "--gitlab-url", "gitlab.example.com",
                  "--gitlab-token", "t" * 20, "--dry-run"], {})
    assert result.exit_code == 2 and "http(s) URL" in result.stderr
    result = run(["resend", "--project", "1", "--pipeline", "2", "--gitlab-url", gitlab.url], {})
    assert result.exit_code == 2 and "GITLAB_TOKEN" in result.stderr


def test_databand_settings_needed_unless_dry_run(gitlab, mixed):
    result = run(["report"], report_env(mixed, gitlab))
    assert result.exit_code == 2 and "DATABAND_URL" in result.stderr


def test_gitlab_401(gitlab, databand, mixed):
    env = report_env(mixed, gitlab, databand, token="glpat-wrongwrongwrongwrong1")
    result = run(["report"], env)
    assert result.exit_code == 3
    assert "401" in result.stderr and "GITLAB_TOKEN" in result.stderr
    assert_no_secret(result, "glpat-wrongwrongwrongwrong1", databand.token)
    assert databand.payloads == []


def test_gitlab_404(gitlab, databand, mixed):
    result = run(["resend", "--project", "42", "--pipeline", "777"],
                 {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "DATABAND_URL": databand.url,
                  "DATABAND_ACCESS_TOKEN": databand.token})
    assert result.exit_code == 3
    assert "404" in result.stderr and "777" in result.stderr
    assert_no_secret(result, gitlab.token, databand.token)


def test_databand_401_keeps_the_events(gitlab, databand, mixed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = report_env(mixed, gitlab, databand)
    env["DATABAND_ACCESS_TOKEN"] = "not-the-right-databand-token"
    result = run(["report"], env)
    assert result.exit_code == 4
    assert "401" in result.stderr and "DATABAND_ACCESS_TOKEN" in result.stderr
    kept = list(tmp_path.glob("databand-unsent-9001-*.json"))
    assert len(kept) == 1 and f"resend --from-file {kept[0].name}" in result.stderr
    assert_no_secret(result, "not-the-right-databand-token", gitlab.token)
    # and sending the kept file later works
    resent = run(["resend", "--from-file", str(kept[0])],
                 {"DATABAND_URL": databand.url, "DATABAND_ACCESS_TOKEN": databand.token})
    assert resent.exit_code == 0, resent.output
    assert len(databand.events) == len(json.loads(kept[0].read_text()))


def test_databand_500_then_200_is_retried(gitlab, databand, mixed):
    databand.script(500, 502)
    result = run(["report"], report_env(mixed, gitlab, databand))
    assert result.exit_code == 0, result.output
    assert databand.requests_seen == 3 and len(databand.payloads) == 1


def test_databand_down(gitlab, mixed, tmp_path, monkeypatch):
    import socket

    monkeypatch.chdir(tmp_path)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = report_env(mixed, gitlab)
    env.update(DATABAND_URL=f"http://127.0.0.1:{port}/api/v1/tracking/open-lineage/x/events/bulk",
               DATABAND_ACCESS_TOKEN="databand-token-abcdef")
    result = CliRunner().invoke(cli, ["report"], env=env, catch_exceptions=False, obj=quick())
    assert result.exit_code == 4
    assert "could not reach Databand" in result.stderr
    assert list(tmp_path.glob("databand-unsent-9001-*.json"))
    assert_no_secret(result, "databand-token-abcdef", gitlab.token)


def test_large_pipeline_is_split_and_every_part_has_the_root(gitlab, databand):
    from standins import generate_pipeline

    project, pipeline, jobs = generate_pipeline(gitlab.url, 1200, seed=5, failed_every=0)
    gitlab.add_pipeline(project, pipeline, jobs)
    result = run(["resend", "--project", str(project["id"]), "--pipeline", str(pipeline["id"])],
                 {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "DATABAND_URL": databand.url,
                  "DATABAND_ACCESS_TOKEN": databand.token})
    assert result.exit_code == 0, result.output
    assert databand.rejected == []
    assert len(databand.payloads) >= 3  # 1,200 jobs + stages + root at 500 events a request
    root_id = databand.payloads[0][0]["run"]["runId"]
    assert all(part[0]["run"]["runId"] == root_id for part in databand.payloads)
    non_root = [e["run"]["runId"] for part in databand.payloads for e in part[1:]]
    assert len(non_root) == len(set(non_root)) == len(jobs) + len({j["stage"] for j in jobs})


def test_null_timestamps_still_make_valid_events(gitlab):
    from standins import make_job, make_pipeline, make_project

    project = make_project(gitlab.url)
    pipeline = make_pipeline(project, 31, status="running", created_at=None, started_at=None, finished_at=None)
    jobs = [make_job(project, pipeline, 1, "a", "build", "success", created_at=None, started_at=None,
                     finished_at=None),
            make_job(project, pipeline, 2, "b", "build", "created", created_at=None, started_at=None,
                     finished_at=None)]
    gitlab.add_pipeline(project, pipeline, jobs)
    result = run(["resend", "--dry-run", "--json", "--project", "42", "--pipeline", "31"],
                 {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token})
    assert result.exit_code == 0, result.stderr
    events = json.loads(result.stdout)
    olschema.assert_valid(events)
    assert events[0]["eventType"] == "RUNNING"
    assert all("nominalTime" not in e["run"]["facets"] for e in events)


def test_entry_points(tmp_path):
    import subprocess
    import sys

    module = subprocess.run([sys.executable, "-m", "reporter", "--help"], capture_output=True, text=True)
    assert module.returncode == 0 and "report" in module.stdout and "resend" in module.stdout
    version = subprocess.run([sys.executable, "-m", "reporter", "--version"], capture_output=True, text=True)
    from reporter import __version__

    assert __version__ in version.stdout


def test_our_facet_schemas_match_the_urls_we_send():
    from pathlib import Path

    from reporter.facets import OWN_SCHEMAS

    for path in (Path(olschema.OUR_SCHEMAS)).glob("*.json"):
        assert json.loads(path.read_text())["$id"] == f"{OWN_SCHEMAS}/{path.name}"


def test_exclude_job_leaves_out_matching_jobs(gitlab, mixed):
    result = run(["resend", "--dry-run", "--json", "--project", "42", "--pipeline", "9001", "--exclude-job", "databand-*",
                  "--exclude-job", "unit ?/3"], {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token})
    assert result.exit_code == 0, result.stderr
    names = by_name(json.loads(result.stdout))
    assert not [n for n in names if ".unit " in n or "databand-report" in n]
    assert "acme.data-platform.test.lint" in names
    assert ids.stage_job_name("acme.data-platform", ".post") not in names  # its only job is left out


def test_excluded_jobs_cost_no_request(gitlab, mixed):
    result = run(["resend", "--dry-run", "--json", "--project", "42", "--pipeline", "9001", "--exclude-job", "lint"],
                 {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token})
    assert result.exit_code == 0, result.stderr
    assert gitlab.count(r"/jobs/105/trace$") == 0  # lint failed, but is left out before its log is read
    assert gitlab.count(r"/jobs/106/trace$") == 1
