"""GitLab answers no GitLab sends, served by real servers on loopback: JSON nested past the parser's
depth, numbers too long to read, compressed bodies that expand a thousandfold, lone surrogates in
names, fields of the wrong type. Each gives one line and exit 3, or a report with a note; never a
traceback, never exit 1, never a body decoded whole into memory."""

from __future__ import annotations

import gzip
import json
import tracemalloc

import pipelines
import pytest
from click.testing import CliRunner
from clirun import env_for, quick
from hostile import HostileGitLab, answer, compressed_zeros, deep_json
from standins import DatabandStandIn, make_pipeline

from reporter.cli import cli
from reporter.gitlab import http
from reporter.retry import POLICY
from reporter.settings import ReadBounds

JOBS = r"/pipelines/9001/jobs\?"
PIPELINE = r"/pipelines/9001(\?|$)"
FAST = POLICY.faster(0.01)


@pytest.fixture
def servers():
    with HostileGitLab() as gitlab, DatabandStandIn() as databand:
        pipelines.mixed(gitlab.url).install(gitlab)
        project = pipelines.mixed(gitlab.url).project
        gitlab.add_pipeline(project, make_pipeline(project, 9100, status="success", source="pipeline"), [])
        yield gitlab, databand


def report(gitlab, databand, tmp_path, *args):
    result = CliRunner().invoke(cli, ["resend", "--project", "42", "--pipeline", "9001",
                                      "--output", str(tmp_path / "events.json"), *args],
                                env=env_for(gitlab, databand), obj={**quick(), "gitlab_policy": FAST})
    assert "Traceback" not in result.output and "unexpected error" not in result.output, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result


def one_error_line(result) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("databand-gitlab-reporter: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize("path", [JOBS, PIPELINE])
def test_json_nested_past_the_parsers_depth_is_one_line(servers, tmp_path, path):
    gitlab, databand = servers
    gitlab.on(path, answer(deep_json(200_000)))
    result = report(gitlab, databand, tmp_path)
    assert result.exit_code == 3
    assert "is JSON nested deeper than any GitLab answer" in one_error_line(result)
    assert databand.payloads == []


def test_a_number_too_long_to_read_is_one_line(servers, tmp_path):
    gitlab, databand = servers
    gitlab.on(JOBS, answer(b'[{"id": ' + b"9" * 5000 + b"}]"))
    result = report(gitlab, databand, tmp_path)
    assert result.exit_code == 3
    assert "holds a number too long" in one_error_line(result)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("status, content_type, cap", [
    (200, "application/json", http.MAX_JSON_BYTES),  # an answer: read up to its cap, then refused
    (404, "application/json", 0),  # python-gitlab reads an error's body whole; only its start is kept
    (502, "text/html", 0),  # retried: each attempt's body read, capped
    (302, "text/html", 0),  # requests reads a redirect's body before following it
])
def test_a_compressed_body_is_never_expanded_past_its_cap(servers, tmp_path, encoding, status, content_type, cap):
    gitlab, databand = servers
    bomb = compressed_zeros(10 * 2**20, encoding)  # 10 MB that expand to about 10 GB
    headers = {"Content-Encoding": encoding, **({"Location": "/elsewhere"} if status == 302 else {})}
    tracemalloc.start()
    try:  # what a report holds anyway (its imports, masks, events), with GitLab's answers as they are
        (tmp_path / "plain").mkdir()
        assert report(gitlab, databand, tmp_path / "plain").exit_code == 0
        baseline = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    gitlab.on(JOBS, answer(bomb, status, content_type, headers))
    tracemalloc.start()
    try:
        result = report(gitlab, databand, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 3, result.output
    one_error_line(result)
    # Past a plain report: the cap for each of the two listings of this path read at once (all jobs,
    # and the failed ones asked for beside page 1), the pieces being decoded (a MiB each) and the
    # in-process server's copy of the 10 MB it sends: never the gigabytes the body expands to.
    assert peak < baseline + 2 * cap + 16 * 2**20, f"{peak / 2**20:.0f} MiB held, {baseline / 2**20:.0f} MiB without"


def test_a_gzip_answer_within_the_cap_is_read_as_before(servers, tmp_path):
    gitlab, databand = servers
    served = gitlab.url + "/api/v4/projects/42/pipelines/9001/jobs?include_retried=true&per_page=100"
    import requests

    plain = requests.get(served, headers={"PRIVATE-TOKEN": gitlab.token}, timeout=10)
    gitlab.on(JOBS, answer(gzip.compress(plain.content), headers={"Content-Encoding": "gzip", **{
        k: v for k, v in plain.headers.items() if k.startswith("X-")}}), times=1)
    result = report(gitlab, databand, tmp_path)
    assert result.exit_code == 0, result.output
    assert len(json.loads((tmp_path / "events.json").read_text())) == 16


@pytest.mark.parametrize("where", ["job name", "stage", "pipeline name"])
def test_a_lone_surrogate_in_a_name_is_sent_as_a_replacement_character(where, tmp_path):
    with HostileGitLab() as gitlab, DatabandStandIn() as databand:
        sample = pipelines.mixed(gitlab.url)
        if where == "job name":
            sample.jobs[0]["name"] = "compile \udc80 step"
        elif where == "stage":
            sample.jobs[0]["stage"] = "build\ud800"
        else:
            sample.pipeline["name"] = "nightly \udfff"
        sample.install(gitlab)
        result = report(gitlab, databand, tmp_path)
        assert result.exit_code == 0, result.output
        written = (tmp_path / "events.json").read_text(encoding="utf-8")
        assert "\ufffd" in written and "\\udc" not in written.lower() and "\\ud8" not in written.lower()
        [payload] = databand.payloads
        assert "\ufffd" in json.dumps(payload, ensure_ascii=False)


def test_fields_of_the_wrong_type_in_jobs_leave_the_report_whole(servers, tmp_path):
    gitlab, databand = servers
    sample = pipelines.mixed(gitlab.url)
    sample.jobs[0]["artifacts"] = 5  # GitLab's schema: a list
    sample.jobs[1]["runner"] = ["x"]
    sample.jobs[2]["tag_list"] = "fast"
    sample.install(gitlab)
    result = report(gitlab, databand, tmp_path)
    assert result.exit_code == 0, result.output
    assert len(json.loads((tmp_path / "events.json").read_text())) == 16


def test_a_test_report_of_the_wrong_shape_only_leaves_the_tests_out(tmp_path):
    with HostileGitLab() as gitlab, DatabandStandIn() as databand:
        sample = pipelines.mixed(gitlab.url)
        sample.jobs[1]["artifacts"] = [{"file_type": "junit", "size": 1, "filename": "junit.xml",
                                        "file_format": "gzip"}]
        sample.install(gitlab)
        gitlab.on(r"/test_report_summary", answer(json.dumps(
            {"total": {}, "test_suites": [{"name": "unit", "total_count": 1, "build_ids": [[102], {"a": 1}]}]}
        ).encode()))
        result = report(gitlab, databand, tmp_path)
        assert result.exit_code == 0, result.output
        assert len(json.loads((tmp_path / "events.json").read_text())) == 16


def test_a_bridge_listing_gitlab_would_not_send_only_leaves_the_bridges_out(servers, tmp_path):
    gitlab, databand = servers
    gitlab.on(r"/bridges", answer(json.dumps([{"id": 109, "name": "downstream", "downstream_pipeline": {
        "id": 9100, "project_id": ["not", "a", "number"]}}]).encode()))
    result = report(gitlab, databand, tmp_path)
    assert result.exit_code == 0, result.output
    assert "bridges (trigger jobs)" in result.output and "unexpected type" in result.output
    assert len(json.loads((tmp_path / "events.json").read_text())) == 15  # every job, no bridge


def test_a_compressed_log_is_read_for_its_tail_a_piece_at_a_time(servers, tmp_path):
    gitlab, databand = servers
    gitlab.on(r"/jobs/106/trace", answer(compressed_zeros(10 * 2**20), 200, "text/plain",
                                         {"Content-Encoding": "gzip"}))
    tracemalloc.start()
    try:
        result = CliRunner().invoke(cli, ["resend", "--project", "42", "--pipeline", "9001",
                                          "--output", str(tmp_path / "events.json")],
                                    env=env_for(gitlab, databand),
                                    obj={**quick(), "gitlab_policy": FAST,
                                         "gitlab_bounds": ReadBounds(log=2, log_cut=3)})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    # 10 GB of zeros: left at the log's bound with its tail so far (or, on a loaded machine, cut off).
    assert "the end of the log of job 'flaky'" in result.output or "the log of job 'flaky'" in result.output
    assert peak < 32 * 2**20, f"{peak / 2**20:.0f} MiB held"


def test_ci_variables_that_are_not_utf_8_reach_the_events_as_replacement_characters(tmp_path):
    # os.environ holds bytes that are not UTF-8 as lone surrogates (surrogateescape).
    with HostileGitLab() as gitlab, DatabandStandIn() as databand:
        pipelines.mixed(gitlab.url).install(gitlab)
        env = env_for(gitlab, databand, CI="true", CI_PROJECT_ID="42", CI_PIPELINE_ID="9001", CI_JOB_ID="110",
                      CI_SERVER_URL=gitlab.url, CI_COMMIT_TITLE="fix \udc80 title", CI_PIPELINE_NAME="nightly \udcff")
        result = CliRunner().invoke(cli, ["report", "--output", str(tmp_path / "events.json")], env=env, obj=quick())
        assert result.exit_code == 0, result.output
        assert "\ufffd" in (tmp_path / "events.json").read_text(encoding="utf-8")
        assert len(databand.payloads) == 1
