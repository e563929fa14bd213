"""No secret leaves through the reporter: plant every kind of secret in settings and logs, run every
path (success, dry run, --output, Databand refusing, GitLab refusing), scan all that comes out."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from reporter.cli import cli
from standins import DatabandStandIn, GitLabStandIn, make_job, make_pipeline, make_project

MARK = "LEAKCHECK"
GITLAB_TOKEN = f"glpat-{MARK}gitlab0000000001"
JOB_TOKEN = f"glcbt-{MARK}job00000000000001"
DATABAND_TOKEN = f"dbnd-{MARK}-databand-token-0001"
IN_LOGS = [
    GITLAB_TOKEN, JOB_TOKEN, DATABAND_TOKEN,
    f"gldt-{MARK}deploy000000001", f"glrt-{MARK}runner000000001", f"glptt-{MARK}trigger00000001",
    f"gloas-{MARK}oauth0000000001",
    f"Authorization: Bearer {MARK}bearer0001", f"curl -H 'PRIVATE-TOKEN: {MARK}private01'",
    f"git clone https://deployer:{MARK}passw0rd@registry.example.com/x.git",
    f"JOB-TOKEN: {MARK}jobheader1",
]


@pytest.fixture
def servers():
    with GitLabStandIn(token=GITLAB_TOKEN, job_token=JOB_TOKEN) as gitlab, \
            DatabandStandIn(token=DATABAND_TOKEN) as databand:
        project = make_project(gitlab.url)
        pipeline = make_pipeline(project, 500, status="running")
        jobs = [make_job(project, pipeline, i, f"job{i}", "etl", "failed", failure_reason="script_failure")
                for i in range(1, len(IN_LOGS) + 1)]
        jobs.append(make_job(project, pipeline, 99, "databand-report", ".post", "running"))
        traces = {i: f"step\n{secret}\nERROR: failed\n".encode() for i, secret in enumerate(IN_LOGS, start=1)}
        gitlab.add_pipeline(project, pipeline, jobs, traces=traces)
        yield gitlab, databand


def ci(gitlab, databand, token=GITLAB_TOKEN, databand_token=DATABAND_TOKEN):
    env = {"GITLAB_CI": "true", "CI_SERVER_URL": gitlab.url, "CI_PROJECT_ID": "42", "CI_PIPELINE_ID": "500",
           "CI_JOB_ID": "99", "CI_JOB_STATUS": "running", "CI_JOB_TOKEN": JOB_TOKEN,
           "CI_PROJECT_PATH": "acme/data-platform", "DATABAND_URL": databand.url,
           "DATABAND_ACCESS_TOKEN": databand_token}
    if token:
        env["GITLAB_TOKEN"] = token
    return env


def assert_clean(*texts):
    for text in texts:
        assert MARK not in text, text[max(0, text.find(MARK) - 200): text.find(MARK) + 100]


def run(args, env):
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_success_path_sends_masked_logs(servers, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gitlab, databand = servers
    out = tmp_path / "sent.json"
    result = run(["report", "--output", str(out)], ci(gitlab, databand))
    assert result.exit_code == 0, result.output
    bodies = [e["run"]["facets"]["log"]["logBody"] for e in databand.events if "log" in e["run"]["facets"]]
    assert len(bodies) == len(IN_LOGS) and all("ERROR: failed" in b for b in bodies)
    assert all("[MASKED]" in b for b in bodies)
    assert_clean(result.stdout, result.stderr, json.dumps(databand.events), out.read_text())


def test_dry_run_prints_masked_events(servers):
    gitlab, databand = servers
    result = run(["report", "--dry-run", "--json"], ci(gitlab, databand))
    assert result.exit_code == 0
    assert "ERROR: failed" in result.stdout
    assert_clean(result.stdout, result.stderr)


def test_databand_refusal_and_kept_file(servers, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gitlab, databand = servers
    databand.script(401)  # the token is the right one; Databand refuses anyway (expired, say)
    result = run(["report"], ci(gitlab, databand))
    assert result.exit_code == 4
    [kept] = tmp_path.glob("databand-unsent-*.json")
    assert_clean(result.stdout, result.stderr, kept.read_text())


def test_gitlab_refusal(servers):
    gitlab, databand = servers
    result = run(["report"], ci(gitlab, databand, token=f"glpat-{MARK}wrongwrong0003"))
    assert result.exit_code == 3
    assert_clean(result.stdout, result.stderr)


def test_password_in_a_url_setting_is_not_echoed(servers):
    gitlab, databand = servers
    env = ci(gitlab, databand)
    env["DATABAND_URL"] = f"databand.example.com/?u=me:{MARK}pw@x"
    result = run(["report"], env)
    assert result.exit_code == 2
    assert_clean(result.stdout, result.stderr)


def test_job_token_only(servers):
    gitlab, databand = servers
    result = run(["report"], ci(gitlab, databand, token=None))
    assert result.exit_code == 0, result.output
    assert_clean(result.stdout, result.stderr, json.dumps(databand.events))


def test_settings_repr_hides_tokens():
    from reporter.settings import Settings

    assert_clean(repr(Settings(gitlab_token=GITLAB_TOKEN, databand_token=DATABAND_TOKEN, job_token=JOB_TOKEN)))


def test_a_known_token_is_masked_wherever_it_got_into_an_event():
    """Job and stage names, tags and URLs are GitLab's, not the reporter's: a token that got into one
    (by a careless `name:` or a ref) is masked in every form as the events are packed."""
    import base64
    from urllib.parse import quote

    with GitLabStandIn(token=GITLAB_TOKEN) as gitlab:
        project = make_project(gitlab.url)
        pipeline = make_pipeline(project, 501, status="success", ref=f"fix-{GITLAB_TOKEN}")
        jobs = [make_job(project, pipeline, 1, f"deploy {quote(GITLAB_TOKEN, safe='')}", f"st {GITLAB_TOKEN}", "success"),
                make_job(project, pipeline, 2, base64.b64encode(f"user:{GITLAB_TOKEN}".encode()).decode(), "etl",
                         "success")]
        gitlab.add_pipeline(project, pipeline, jobs)
        result = CliRunner().invoke(cli, ["resend", "--dry-run", "--json", "--project", "42", "--pipeline", "501"],
                                    env={"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": GITLAB_TOKEN})
    assert result.exit_code == 0, result.output
    events = json.loads(result.stdout)
    assert len(events) == 5  # the root, two stages, two jobs: masked, not dropped
    text = result.stdout
    assert GITLAB_TOKEN not in text and quote(GITLAB_TOKEN, safe="") not in text
    assert MARK not in text and "TEVBS0NIRUNL" not in text  # no base64 core of the token either
