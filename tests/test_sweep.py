"""sweep: a scheduled job reports every finished pipeline not reported yet, canceled ones included
(GitLab runs no `.post` job in a canceled pipeline), once per state, with bounded requests."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner

import olschema
from reporter.cli import cli
from standins import make_job, make_pipeline, make_project

NOW = datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def day_of_pipelines(gitlab, count: int, *, hours_ago: float = 1) -> dict[int, dict]:
    """`count` pipelines updated in the last day: mostly passed, some failed, some canceled, and
    one still running; plus one updated three days ago (outside a sweep's window)."""
    project = make_project(gitlab.url)
    made = {}
    for i in range(count):
        status = "canceled" if i % 10 == 3 else "failed" if i % 10 == 7 else "success"
        if i == count - 1:
            status = "running"
        pipeline = make_pipeline(project, 5000 + i, status=status)
        pipeline["updated_at"] = iso(NOW - timedelta(hours=hours_ago + i * 20 / count))
        jobs = [make_job(project, pipeline, 50_000 + 10 * i + k, name, stage, job_status)
                for k, (name, stage, job_status) in enumerate([
                    ("build", "build", "success"),
                    ("test", "test", "failed" if status == "failed" else "canceled" if status == "canceled"
                     else "running" if status == "running" else "success"),
                    ("deploy", "deploy", "skipped" if status != "success" else "success")])]
        gitlab.add_pipeline(project, pipeline, jobs)
        made[pipeline["id"]] = pipeline
    old = make_pipeline(project, 4999, status="canceled")
    old["updated_at"] = iso(NOW - timedelta(days=3))
    gitlab.add_pipeline(project, old, [make_job(project, old, 49_999, "build", "build", "canceled")])
    return made


def sweep(gitlab, databand, tmp_path, *args):
    env = {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "DATABAND_URL": databand.url,
           "DATABAND_ACCESS_TOKEN": databand.token, "CI_PROJECT_ID": "42"}
    return CliRunner().invoke(cli, ["sweep", "--cursor", str(tmp_path / "cursor.json"), *args], env=env)


def roots(databand) -> Counter:
    return Counter(part[0]["run"]["runId"] for part in databand.payloads)


def root_status(databand) -> dict[str, str]:
    found = {}
    for part in databand.payloads:
        tags = {t["key"]: t["value"] for t in part[0]["run"]["facets"]["tags"]["tags"]}
        found[part[0]["run"]["facets"]["tags"]["runName"]] = (tags["gitlab.status"], part[0]["eventType"])
    return found


def test_sweep_reports_every_finished_pipeline_once_canceled_ones_included(gitlab, databand, tmp_path):
    made = day_of_pipelines(gitlab, 20)
    first = sweep(gitlab, databand, tmp_path)
    assert first.exit_code == 0, first.output
    finished = [p for p in made.values() if p["status"] != "running"]
    assert len(roots(databand)) == len(finished) == 19  # not the running one, not the one 3 days old
    assert set(roots(databand).values()) == {1}
    statuses = root_status(databand)
    canceled = [p for p in finished if p["status"] == "canceled"]
    assert canceled and all(statuses[f"main #{p['id']}"] == ("canceled", "ABORT") for p in canceled)
    assert "Sweep: 19 pipelines, 19 sent" in first.stderr
    for part in databand.payloads:
        olschema.assert_valid(part)

    # Again: nothing changed, nothing sent; only the listing is read.
    requests_before, posts_before = len(gitlab.requests), len(databand.payloads)
    again = sweep(gitlab, databand, tmp_path)
    assert again.exit_code == 0, again.output
    assert len(databand.payloads) == posts_before
    assert "0 sent, 19 skipped" in again.stderr
    assert len(gitlab.requests) - requests_before == 1  # one page of the project's pipelines

    # A pipeline GitLab changed since (a job retried) is sent again, alone, with the same run IDs.
    changed = finished[4]
    changed["updated_at"] = iso(NOW - timedelta(minutes=5))
    third = sweep(gitlab, databand, tmp_path)
    assert third.exit_code == 0, third.output
    assert "1 sent, 18 skipped" in third.stderr
    assert max(roots(databand).values()) == 2 and sum(roots(databand).values()) == 20


def test_sweep_requests_are_bounded_by_the_window(gitlab, databand, tmp_path):
    day_of_pipelines(gitlab, 40)
    result = sweep(gitlab, databand, tmp_path, "--hours", "6")
    assert result.exit_code == 0, result.output
    listed = [r for r in gitlab.requests if r.path.endswith("/pipelines")]
    per_pipeline = Counter(r.path.split("/pipelines/")[1].split("/")[0] for r in gitlab.requests
                           if "/pipelines/" in r.path)
    # 6 of the 20 hours the pipelines span: only those in the window are read.
    assert 10 <= len(per_pipeline) <= 14 and len(listed) == 1
    assert all(count <= 5 for count in per_pipeline.values())  # pipeline, jobs, bridges, test summary, ...


def test_sweep_needs_a_project_and_says_so(gitlab, databand, tmp_path):
    env = {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "DATABAND_URL": databand.url,
           "DATABAND_ACCESS_TOKEN": databand.token}
    result = CliRunner().invoke(cli, ["sweep"], env=env)
    assert result.exit_code == 2 and "sweep needs --project" in result.stderr


def test_sweep_of_canceled_pipelines_only_sends_what_no_post_job_reported(gitlab, databand, tmp_path):
    made = day_of_pipelines(gitlab, 20)
    result = sweep(gitlab, databand, tmp_path, "--status", "canceled")
    assert result.exit_code == 0, result.output
    canceled = {f"main #{i}" for i, p in made.items() if p["status"] == "canceled"}
    assert set(root_status(databand)) == canceled and len(canceled) == 2
    read = {r.path.split("/pipelines/")[1].split("/")[0] for r in gitlab.requests if "/pipelines/" in r.path}
    assert read == {name.split("#")[1] for name in canceled}  # the others are never read


# --------------------------------------------------------------------------
# The sweep component (templates/sweep.yml)
# --------------------------------------------------------------------------


def render_sweep(given: dict | None = None, version: str = "") -> tuple[dict, dict]:
    """The sweep component's header and its jobs with the inputs' defaults (or `given`) filled in."""
    import re
    from pathlib import Path

    from test_component import COMPONENT_VERSION, INTERPOLATION, load_yaml

    header_text, _, jobs_text = (Path(__file__).resolve().parents[1] / "templates" / "sweep.yml").read_text() \
        .partition("\n---\n")
    header = load_yaml(header_text)
    inputs = header["spec"]["inputs"]
    values = {name: (given or {}).get(name, spec["default"]) for name, spec in inputs.items()}
    for name, spec in inputs.items():
        if "regex" in spec:
            assert re.search(spec["regex"], str(values[name])), (name, values[name])
        assert f"$[[ inputs.{name} ]]" in jobs_text, f"input {name} is never used"
    def interpolate(node):  # GitLab fills values in after parsing the YAML
        if isinstance(node, str):
            node = COMPONENT_VERSION.sub(version, node)
            whole = INTERPOLATION.fullmatch(node)
            return values[whole[1]] if whole else INTERPOLATION.sub(lambda m: str(values[m[1]]), node)
        if isinstance(node, dict):
            return {interpolate(k): interpolate(v) for k, v in node.items()}
        if isinstance(node, list):
            return [interpolate(item) for item in node]
        return node

    return header, interpolate(load_yaml(jobs_text))


def test_sweep_component_validates_and_runs_only_in_scheduled_pipelines(tmp_path):
    from test_component import check_jsonschema

    header, jobs = render_sweep(version="1.2.3")
    _, every = render_sweep({"statuses": "success failed canceled skipped", "hours": 2, "image": "python:3.13"})
    check_jsonschema(tmp_path, {"sweep-header": header, "sweep-jobs": jobs, "sweep-every-status": every})
    from test_component import _first_rule

    job = jobs["databand-sweep"]
    assert _first_rule(job, {"CI_PIPELINE_SOURCE": "push"}) is None  # only in scheduled pipelines
    scheduled = {"CI_PIPELINE_SOURCE": "schedule"}
    assert _first_rule(job, scheduled)["variables"]["DATABAND_REPORTER_IMAGE"].endswith("-reporter:1.2.3")
    assert _first_rule(every["databand-sweep"], scheduled)["variables"] == {"DATABAND_REPORTER_IMAGE": "python:3.13"}
    _, by_sha = render_sweep()
    assert _first_rule(by_sha["databand-sweep"], scheduled)["variables"] == {"DATABAND_REPORTER_IMAGE": "python:3.12-slim"}
    script = "\n".join(job["script"])
    assert 'sweep --project "$CI_PROJECT_ID" --hours 26 $databand_statuses --cursor .databand-sweep-cursor.json' \
        in script
    assert job["cache"]["paths"] == [".databand-sweep-cursor.json"] and job["cache"]["when"] == "always"


def test_sweep_component_status_loop_gives_the_flags_the_command_takes(tmp_path):
    import subprocess

    _, jobs = render_sweep({"statuses": "canceled failed"})
    loop = jobs["databand-sweep"]["script"][1]
    done = subprocess.run(["bash", "-c", f'{loop}; echo "$databand_statuses"'], capture_output=True, text=True)
    assert done.stdout.split() == ["--status", "canceled", "--status", "failed"]


def test_a_pipeline_blocked_at_a_manual_job_is_swept_as_running_then_updated_when_it_moves_on(
        gitlab, databand, tmp_path):
    project = make_project(gitlab.url)
    pipeline = make_pipeline(project, 6100, status="manual")
    pipeline["updated_at"] = iso(NOW - timedelta(hours=2))
    build = make_job(project, pipeline, 61_001, "build", "build", "success")
    deploy = make_job(project, pipeline, 61_002, "deploy", "deploy", "manual")  # blocking: not allowed to fail
    gitlab.add_pipeline(project, pipeline, [build, deploy])

    first = sweep(gitlab, databand, tmp_path)
    assert first.exit_code == 0, first.output
    [(status, event_type)] = root_status(databand).values()
    assert (status, event_type) == ("manual", "RUNNING")  # blocked, not over: the run stays open
    stage = next(e for e in databand.payloads[0] if e["job"]["name"].endswith(".deploy"))
    assert stage["eventType"] == "RUNNING"
    job = next(e for e in databand.payloads[0] if e["job"]["name"].endswith(".deploy.deploy"))
    assert job["eventType"] == "ABORT"  # the job itself was never played
    olschema.assert_valid(databand.payloads[0])

    again = sweep(gitlab, databand, tmp_path)  # unchanged: not sent twice
    assert again.exit_code == 0 and len(databand.payloads) == 1

    # Somebody plays the job and the pipeline passes: the next sweep sends it again, on the same runs.
    deploy.update(status="success", started_at=iso(NOW - timedelta(minutes=30)), finished_at=iso(NOW))
    pipeline.update(status="success", updated_at=iso(NOW - timedelta(minutes=1)), finished_at=iso(NOW))
    moved = sweep(gitlab, databand, tmp_path)
    assert moved.exit_code == 0, moved.output
    assert len(databand.payloads) == 2
    assert databand.payloads[1][0]["run"]["runId"] == databand.payloads[0][0]["run"]["runId"]
    assert databand.payloads[1][0]["eventType"] == "COMPLETE"


def test_sweep_default_statuses_are_the_settled_ones():
    from reporter.backfill import FINISHED
    from reporter.status import FINAL, SETTLED

    assert set(FINISHED) == SETTLED == FINAL | {"manual", "scheduled"}
