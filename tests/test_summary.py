"""The job log: the summary in GitLab's words inside GitLab's collapsible section (byte for byte through
a real pipe), the dry-run tree, the retry lines, and the job page's link to Databand."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import pipelines
from clirun import QUICK
from reporter import eventfiles, summary
from reporter.databand import Databand
from reporter.errors import DeliveryError
from reporter import report as lib
from reporter.cli import cli
from reporter.settings import Settings
from reporter.status import KNOWN
from standins import generate_pipeline


def run(args, env):
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def report_env(sample, gitlab, databand=None, **kw):
    env = pipelines.ci_env(sample, gitlab.url, token=gitlab.token, **kw)
    if databand is not None:
        env.update(DATABAND_URL=databand.url, DATABAND_ACCESS_TOKEN=databand.token)
    return env


def command() -> list[str]:
    installed = shutil.which("databand-gitlab-reporter", path=os.path.dirname(sys.executable))
    assert installed, "the package's console script is not installed next to this Python"
    return [installed]


# -- the section markers, byte for byte ---------------------------------------------------------


def test_section_markers_reach_a_pipe_byte_for_byte(gitlab, databand, tmp_path):
    failing = pipelines.failing(gitlab.url).install(gitlab)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_", "GITLAB_", "DATABAND_"))}
    env.update(report_env(failing, gitlab, databand), CI_PROJECT_DIR=str(tmp_path))
    done = subprocess.run([*command(), "report"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)
    assert done.returncode == 0, done.stderr
    # GitLab's format: ESC[0K section_start:<unix time>:<name>[options] CR ESC[0K <header>, and the
    # same time and name at the end. click.echo would have dropped every ESC[0K on a pipe.
    match = re.search(rb"\x1b\[0Ksection_start:(\d+):databand_report\[collapsed=true\]\r\x1b\[0K"
                      rb"Databand: pipeline 9002 failed, 10 events sent\n(.*?)\n"
                      rb"\x1b\[0Ksection_end:(\d+):databand_report\r\x1b\[0K\n", done.stderr, re.S)
    assert match, done.stderr
    assert match[1] == match[3]
    body = match[2].decode().splitlines()
    assert body[0] == "Pipeline status: failed"
    assert "Failed: compile (stage build): The script failed" in body
    assert re.search(r"^Sent 10 events in 1 request to Databand at 127\.0\.0\.1:\d+$", "\n".join(body), re.M)
    assert databand.url not in done.stderr.decode()  # its path names the integration
    assert b"\x1b" not in match[2]


def test_outside_gitlab_the_summary_is_plain_text(gitlab, databand):
    failing = pipelines.failing(gitlab.url).install(gitlab)
    env = report_env(failing, gitlab, databand)
    del env["GITLAB_CI"]
    result = run(["report"], env)
    assert result.exit_code == 0, result.output
    assert "section_start" not in result.stderr and "\x1b" not in result.stderr
    assert "Databand: pipeline 9002 failed, 10 events sent\n  Pipeline status: failed\n" in result.stderr


# -- GitLab's words and counts that add up ------------------------------------------------------


def test_every_status_gitlab_knows_has_its_word():
    words = {status: summary.in_gitlab_words(status) for status in KNOWN}
    assert all("_" not in word for word in words.values()), words
    assert words["success"] == "passed" and words["scheduled"] == "delayed"
    assert summary.in_gitlab_words("success", True) == "passed with warnings"
    assert summary.in_gitlab_words("manual", pipeline=True) == "blocked"
    assert summary.in_gitlab_words("manual") == "manual"
    # As GitLab sends it: text changed after the mask could show a secret again
    assert summary.in_gitlab_words("some_new_status") == "some_new_status"
    assert summary.in_gitlab_words(None) == "unknown"


def settings_for(gitlab) -> Settings:
    return Settings.from_env({"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token}, {"dry_run": True})


@pytest.mark.parametrize("sample", [pipelines.mixed, pipelines.failing])
def test_counts_add_up_to_the_latest_attempts(gitlab, sample):
    s = sample(gitlab.url).install(gitlab)
    report = lib.collect(settings_for(gitlab), 42, s.pipeline["id"])
    view = summary.view_of(report)
    counts, retried = summary.job_counts(view)
    latest = [j for j in report.pipeline.jobs if not j.retried]
    assert sum(counts.values()) == len(latest)
    assert retried == len(report.pipeline.jobs) - len(latest)
    line = summary.counts_line(view)
    total, parts = re.fullmatch(r"Jobs: (\d+) = (.*?)(?: \(and \d+ earlier attempts?, retried\))?"
                                r"(?:; \d+ flaky \(failed, then passed on a retry\))?", line).groups()
    assert int(total) == sum(int(n) for n in re.findall(r"(\d+) [a-z ]+", parts)) == len(latest)


def test_mixed_pipeline_summary_names_the_allowed_failure_and_the_retry(gitlab):
    s = pipelines.mixed(gitlab.url).install(gitlab)
    report = lib.collect(settings_for(gitlab), 42, s.pipeline["id"])
    lines = summary.body(summary.view_of(report), [], [])
    assert "Failed (allowed to fail): lint (stage test): The script failed" in lines
    # the retried attempt of flaky failed, but its latest passed: not a failed job, a flaky one
    assert not [line for line in lines if line.startswith("Failed") and "flaky" in line]
    assert lines[1].endswith("(and 1 earlier attempt, retried); 1 flaky (failed, then passed on a retry)")


def test_a_kept_file_gives_the_exact_resend_command_in_an_open_section(gitlab, databand, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    failing = pipelines.failing(gitlab.url).install(gitlab)
    databand.script(401)
    result = run(["report"], report_env(failing, gitlab, databand))
    assert result.exit_code == 4
    [kept] = tmp_path.glob("databand-unsent-9002-*.json")
    section = result.stderr.split("section_start:", 1)[1].split("section_end:", 1)[0]
    assert "[collapsed=true]" not in section, "a failure is shown open"
    assert "Databand: pipeline 9002 failed, 10 events NOT all sent" in section
    assert f"Not sent: 10 events kept in {kept.name}; send them later with:" in section
    assert f"\n  databand-gitlab-reporter resend --from-file {kept.name}\n" in section
    # said once, in the section; the error line follows it
    assert result.stderr.count(f"resend --from-file {kept.name}") == 1
    assert result.stderr.rstrip().splitlines()[-1].startswith("databand-gitlab-reporter: error: Databand did not")


def test_resend_from_file_summary_names_the_failed_job_from_the_events(gitlab, databand, tmp_path):
    failing = pipelines.failing(gitlab.url).install(gitlab)
    out = tmp_path / "events.json"
    settings = settings_for(gitlab)
    report = lib.collect(settings, 42, failing.pipeline["id"])
    eventfiles.write_events(str(out), report.events)
    result = run(["resend", "--from-file", str(out)], {"DATABAND_URL": databand.url,
                                                       "DATABAND_ACCESS_TOKEN": databand.token})
    assert result.exit_code == 0, result.output
    # read outside a job, the sample's report job is still running, and so is the pipeline
    assert "Databand: pipeline 9002 running, 10 events sent" in result.stderr
    assert "Failed: compile (stage build): The script failed" in result.stderr
    # the same lines as when GitLab was read
    assert summary.body(summary.from_events(report.events), [], []) == \
        summary.body(summary.from_snapshot(report.pipeline), [], [])


# -- the dry-run tree ---------------------------------------------------------------------------


def test_dry_run_prints_a_tree_not_json(gitlab):
    pipelines.mixed(gitlab.url).install(gitlab)
    result = run(["resend", "--dry-run", "--project", "42", "--pipeline", "9001"],
                 {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "pipeline 9001 (acme/data-platform, main): running"
    assert "  stage test: passed with warnings" in lines
    assert "    lint: failed, allowed to fail - The script failed" in lines
    assert "    flaky: failed (attempt 1, retried) - There has been a runner system failure, please try again" in lines
    assert "    flaky: passed (attempt 2)" in lines
    assert '    déploiement 🚀 "prod"/eu: passed' in lines
    assert "    downstream: passed (trigger job)" in lines
    assert lines[-1].startswith("16 events built, nothing sent (--dry-run).")
    with pytest.raises(ValueError):
        json.loads(result.stdout)


def test_the_tree_from_a_file_is_the_tree_from_gitlab(gitlab):
    s = pipelines.mixed(gitlab.url).install(gitlab)
    report = lib.collect(settings_for(gitlab), 42, s.pipeline["id"])
    events = list(report.events)
    assert summary.tree(summary.from_events(events), len(events)) == summary.tree(summary.view_of(report), len(events))


def test_a_long_stage_shows_what_did_not_pass_and_counts_the_rest(gitlab):
    project, pipeline, jobs = generate_pipeline(gitlab.url, 200, stages=("test",), seed=2, failed_every=50)
    gitlab.add_pipeline(project, pipeline, jobs)
    result = run(["resend", "--dry-run", "--project", str(project["id"]), "--pipeline", str(pipeline["id"])],
                 {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    failed = [line for line in lines if ": failed" in line and line.startswith("    ")]
    assert len(failed) == 4
    passed = [line for line in lines if line.startswith("    ") and line.endswith(": passed")]
    assert len(passed) == summary.TREE_PASSED_PER_STAGE
    assert f"    ... and {196 - summary.TREE_PASSED_PER_STAGE} more passed jobs" in lines


def test_json_prints_the_events_and_goes_only_with_dry_run(gitlab):
    pipelines.mixed(gitlab.url).install(gitlab)
    env = {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token}
    result = run(["resend", "--dry-run", "--json", "--project", "42", "--pipeline", "9001"], env)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 16
    result = run(["resend", "--json", "--project", "42", "--pipeline", "9001"], env)
    assert result.exit_code == 2 and "--json goes with --dry-run" in result.stderr


# -- a line per retry ---------------------------------------------------------------------------


def test_each_retry_says_its_wait_and_reason(gitlab, databand):
    mixed = pipelines.mixed(gitlab.url).install(gitlab)
    databand.script(503, 502)
    result = run(["report"], report_env(mixed, gitlab, databand))
    assert result.exit_code == 0, result.output
    retries = [line for line in result.stderr.splitlines() if line.startswith("Databand: attempt")]
    assert len(retries) == 2, result.stderr
    assert re.fullmatch(r"Databand: attempt 1 failed \(HTTP 503\); trying again in \d+ s \(\d+ s left to retry\)",
                        retries[0])
    assert retries[1].startswith("Databand: attempt 2 failed (HTTP 502); trying again in ")


ONE_EVENT = [{"eventType": "COMPLETE", "run": {"runId": "r", "facets": {}}, "job": {"name": "p"}}]


def test_a_wrong_port_is_said_at_the_first_attempt():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    said: list[str] = []
    target = Databand(f"http://127.0.0.1:{port}/api/v1/tracking/open-lineage/x/events/bulk", "t" * 20,
                      bounds=QUICK, say=said.append)
    with pytest.raises(DeliveryError) as refused:
        target.send(ONE_EVENT)
    assert said and said[0] == "Databand: attempt 1 failed (connection refused); trying again in 0 s " \
                               f"({QUICK.retry.budget:.0f} s left to retry)", said
    assert all(re.search(r"trying again in [\d.]+ s", line) for line in said)
    assert len(said) == QUICK.retry.attempts - 1  # every retry the policy allows, each said
    assert "connection refused" in str(refused.value) and refused.value.unsent == ONE_EVENT


def test_a_host_that_does_not_resolve_is_said_at_once_naming_dns_and_the_variable():
    said: list[str] = []
    # .invalid never resolves (RFC 6761); the policy's full budget would be a minute of retries.
    target = Databand("http://databand.invalid/api/v1/tracking/open-lineage/x/events/bulk", "t" * 20,
                      say=said.append)
    started = time.monotonic()
    with pytest.raises(DeliveryError) as refused:
        target.send(ONE_EVENT)
    assert time.monotonic() - started < 10  # one name lookup, no retries
    assert said == []
    message = str(refused.value)
    assert "databand.invalid does not resolve (DNS)" in message and "check DATABAND_URL" in message


# -- the link on the job page -------------------------------------------------------------------


def test_report_writes_the_annotations_link_in_the_jobs_folder(gitlab, databand, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mixed = pipelines.mixed(gitlab.url).install(gitlab)
    env = report_env(mixed, gitlab, databand)
    env["CI_PROJECT_DIR"] = str(tmp_path)
    assert run(["report"], env).exit_code == 0
    document = json.loads((tmp_path / summary.ANNOTATIONS_FILE).read_text())
    host = databand.url.split("/")[2]
    assert document == {"databand": [{"external_link": {"label": "Databand: the runs of pipeline 9001",
                                                         "url": f"http://{host}"}}]}

    env["DATABAND_UI_URL"] = "https://databand.example.com/app/pipelines"
    assert run(["report"], env).exit_code == 0
    document = json.loads((tmp_path / summary.ANNOTATIONS_FILE).read_text())
    assert document["databand"][0]["external_link"]["url"] == "https://databand.example.com/app/pipelines"


def test_no_link_in_a_dry_run_or_outside_a_job(gitlab, databand, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mixed = pipelines.mixed(gitlab.url).install(gitlab)
    env = report_env(mixed, gitlab, databand)  # no CI_PROJECT_DIR: not in a job
    assert run(["report"], env).exit_code == 0
    env["CI_PROJECT_DIR"] = str(tmp_path)
    assert run(["report", "--dry-run"], env).exit_code == 0
    assert not list(tmp_path.iterdir())


def test_a_malformed_ui_url_is_refused_before_gitlab_is_read(gitlab, databand):
    mixed = pipelines.mixed(gitlab.url).install(gitlab)
    env = report_env(mixed, gitlab, databand)
    env["DATABAND_UI_URL"] = "databand.example.com"
    result = run(["report"], env)
    assert result.exit_code == 2
    assert "DATABAND_UI_URL must be an http(s) URL" in result.stderr
    assert not gitlab.requests


def test_the_ui_address_never_carries_the_endpoint_path_or_credentials():
    assert summary.databand_ui(None, "https://u:p@db.example.com:8443/api/v1/tracking/open-lineage/3a/events/bulk") \
        == "https://db.example.com:8443"
    assert summary.databand_ui(None, None) is None
    assert summary.databand_ui(None, "not a url") is None


def test_a_pipeline_failing_wholesale_names_the_first_failed_jobs_and_counts_the_rest(gitlab):
    project, pipeline, jobs = generate_pipeline(gitlab.url, 300, stages=("test",), seed=4, failed_every=3)
    gitlab.add_pipeline(project, pipeline, jobs)
    report = lib.collect(settings_for(gitlab), project["id"], pipeline["id"])
    lines = summary.body(summary.view_of(report), [], [])
    failed = [line for line in lines if line.startswith("Failed: ")]
    assert len(failed) == summary.FAILED_SHOWN
    assert lines[len(failed) + 2] == "... and 50 more failed jobs (`--dry-run` shows them all)"


def test_a_dry_run_backfill_says_nothing_was_sent_and_records_nothing(gitlab, databand, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pipelines.mixed(gitlab.url).install(gitlab)
    args = ["resend", "--project", "acme/data-platform", "--since", "2026-01-01"]
    result = run([*args, "--dry-run"], {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token})
    assert result.exit_code == 0, result.output
    assert "pipeline 9001: built, not sent (--dry-run)" in result.stderr
    assert ": sent" not in result.stderr
    assert "Backfill: 1 pipelines, 1 built, not sent (--dry-run)" in result.stderr and " 1 sent" not in result.stderr
    # the real backfill after it still sends the pipeline: the dry run left the cursor as it was
    result = run(args, {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "DATABAND_URL": databand.url,
                        "DATABAND_ACCESS_TOKEN": databand.token})
    assert result.exit_code == 0, result.output
    assert "pipeline 9001: sent" in result.stderr and len(databand.payloads) == 1
