"""Backfill: a project's past pipelines, bounded concurrency, a cursor that resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from click.testing import CliRunner

from reporter.cli import cli
from standins import make_job, make_pipeline, make_project


def fifty(gitlab, n=50):
    project = make_project(gitlab.url)
    for i in range(n):
        pipeline_id = 1000 + i
        day = 1 + i % 28
        pipeline = make_pipeline(project, pipeline_id, status="success" if i % 5 else "failed",
                                 ref="main" if i % 10 else "release",
                                 created_at=f"2026-10-{day:02d}T10:00:00.000Z", started_at=None, finished_at=None)
        pipeline["updated_at"] = f"2026-10-{day:02d}T11:00:00.000Z"
        gitlab.add_pipeline(project, pipeline, [make_job(project, pipeline, 10_000 + i, "build", "build",
                                                         pipeline["status"])])
    return project


def roots(payloads):
    return Counter(p[0]["run"]["runId"] for p in payloads)


def env(gitlab, databand):
    return {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "DATABAND_URL": databand.url,
            "DATABAND_ACCESS_TOKEN": databand.token}


def test_backfill_filters_and_sends_each_pipeline_once(gitlab, databand, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fifty(gitlab)
    result = CliRunner().invoke(cli, ["resend", "--project", "acme/data-platform", "--since", "2026-10-01",
                                      "--ref", "main", "--status", "success"], env=env(gitlab, databand))
    assert result.exit_code == 0, result.output
    # i % 10 != 0 (main) and i % 5 != 0 (success): 40 pipelines
    assert len(databand.payloads) == 40 and set(roots(databand.payloads).values()) == {1}
    assert "[40/40]" in result.stderr and "40 sent" in result.stderr
    assert (tmp_path / ".databand-backfill-acme_data-platform.json").exists()


def test_backfill_interrupted_by_a_kill_resumes_without_duplicates(gitlab, databand, tmp_path):
    fifty(gitlab)
    databand.latency = 0.1  # slow enough to stop it halfway
    cursor = tmp_path / "cursor.json"
    command = [os.path.join(os.path.dirname(sys.executable), "databand-gitlab-reporter"), "resend",
               "--project", "42", "--since", "2026-09-30", "--concurrency", "2", "--cursor", str(cursor)]
    child = subprocess.Popen(command, env={**os.environ, **env(gitlab, databand)}, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while len(databand.payloads) < 15 and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)  # no chance to clean up: the hardest interruption
    child.wait()
    first = len(databand.payloads)
    assert 15 <= first < 50
    done = json.loads(cursor.read_text())["done"]
    assert first - 2 <= len(done) <= first  # at most the ones in flight were sent but not yet recorded

    databand.latency = 0
    again = subprocess.run(command, env={**os.environ, **env(gitlab, databand)}, cwd=tmp_path,
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert f"{len(done)} skipped" in again.stderr
    sent = roots(databand.payloads)
    assert len(sent) == 50  # every pipeline
    assert sum(sent.values()) <= 50 + 2  # resent only what was in flight at the kill
    assert len(json.loads(cursor.read_text())["done"]) == 50


def test_backfill_failures_are_retried_by_running_it_again(gitlab, databand, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fifty(gitlab, n=6)
    databand.script(*[401] * 2)  # the first two pipelines are refused
    args = ["resend", "--project", "42", "--since", "2026-10-01", "--concurrency", "1"]
    first = CliRunner().invoke(cli, args, env=env(gitlab, databand))
    assert first.exit_code == 4
    assert "2 failed" in first.stderr and "run the same command again" in first.stderr
    second = CliRunner().invoke(cli, args, env=env(gitlab, databand))
    assert second.exit_code == 0, second.output
    assert "4 skipped" in second.stderr
    assert len(roots(databand.payloads)) == 6


@pytest.mark.parametrize("args, words", [
    (["--since", "last tuesday"], "--since must be a date"),
    (["--since", "2026-10-01", "--pipeline", "5"], "goes without --pipeline"),
    (["--ref", "main", "--pipeline", "5"], "go with --since"),
])
def test_backfill_usage_errors(gitlab, args, words):
    result = CliRunner().invoke(cli, ["resend", "--project", "42", *args],
                                env={"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "DATABAND_URL":
                                     "https://databand.example.com/api/v1/tracking/open-lineage/x/events/bulk",
                                     "DATABAND_ACCESS_TOKEN": "t" * 12})
    assert result.exit_code == 2 and words in result.output


def test_one_bound_on_gitlab_requests_in_flight_and_one_session_for_the_whole_backfill(databand, tmp_path,
                                                                                          monkeypatch):
    """Backfill reads pipelines side by side, each on many threads: still at most --gitlab-concurrency
    requests wait on GitLab at once, on connections kept and shared by every pipeline."""
    from standins import GitLabStandIn

    monkeypatch.chdir(tmp_path)
    with GitLabStandIn(latency=0.05, keep_alive=True) as gitlab:
        project = make_project(gitlab.url)
        for i in range(8):
            pipeline = make_pipeline(project, 3000 + i, status="failed")
            pipeline["updated_at"] = "2026-10-20T11:00:00.000Z"
            jobs = [make_job(project, pipeline, 30_000 + 10 * i + k, f"job {k}", "test",
                             "failed" if k < 3 else "success") for k in range(5)]
            gitlab.add_pipeline(project, pipeline, jobs, traces={j["id"]: b"boom\n" for j in jobs})
        result = CliRunner().invoke(cli, ["resend", "--project", "42", "--since", "2026-10-01", "--concurrency", "4",
                                          "--gitlab-concurrency", "3"], env=env(gitlab, databand))
        assert result.exit_code == 0, result.output
        intervals = sorted((r.started, r.finished) for r in gitlab.requests)
        connections = gitlab.connections
    assert len(roots(databand.payloads)) == 8
    in_flight = max(sum(1 for s, e in intervals if s <= moment < e) for moment, _ in intervals)
    assert in_flight == 3  # parallel up to the bound, and bounded for the whole process, not per pipeline
    assert connections <= 3 + 1  # the gate's connections, kept across pipelines (+1 for the listing)


@pytest.mark.parametrize("text", ["[1, 2]", '{"done": {"1": true}}', '{"done": ["x"]}', '{"done": [true]}',
                                  '{"done": [1], "versions": {"1": 5}}', '{"versions": [1]}', "[" * 100_000,
                                  '{"done": [1]', "\xff"])
def test_a_cursor_of_the_wrong_shape_is_one_clear_line(tmp_path, text):
    from reporter.backfill import Cursor
    from reporter.errors import ConfigError

    path = tmp_path / "cursor.json"
    path.write_bytes(text.encode("latin-1") if text == "\xff" else text.encode())
    with pytest.raises(ConfigError) as refused:
        Cursor.open(str(path), {"project": "42"})
    message = str(refused.value)
    assert message.startswith(f"The backfill cursor {path} ") and message.endswith("delete it to start over.")
    assert "\n" not in message


def test_a_cursor_is_written_whole_and_read_back(tmp_path):
    from reporter.backfill import Cursor

    path = tmp_path / "sub" / "cursor.json"
    cursor = Cursor.open(str(path), {"project": "42"})
    cursor.mark(7, "2026-10-02T11:00:00Z")
    cursor.mark(3)
    again = Cursor.open(str(path), {"project": "42"})
    assert again.done == {3, 7} and again.versions == {7: "2026-10-02T11:00:00Z"}
    assert [p.name for p in path.parent.iterdir()] == ["cursor.json"]  # no temporary file left
