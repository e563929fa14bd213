"""Issue 21's needs graph and GitLab's version: GitLab's GraphQL `needs` (and `when`) become each job
run's jobDependencies, validated against the OpenLineage schema and checked against the graph the
stand-in was given; without the graph (job token, an error, an older GitLab) the stage order stands
with one note and the report goes on; GET /version once per client outside a job."""

from __future__ import annotations

import json
import math

import olschema
import pipelines
from reporter import PROJECT_URL, ids
from reporter import report as lib
from reporter.gitlab import needs as reporter_needs
from reporter.settings import Settings
from standins import generate_pipeline, make_job, make_pipeline

PIPELINE_NAME = "acme.data-platform"
GRAPHQL = r"^/api/graphql$"


def tags(event: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in event["run"]["facets"]["tags"]["tags"]}


def by_job_id(events) -> dict[int, dict]:
    return {int(tags(e)["gitlab.job_id"]): e for e in events if "gitlab.job_id" in tags(e)}


def run_of(gitlab, job: dict) -> tuple[str, str]:
    """The (job name, run id) the reporter's events give a GitLab job of the sample project."""
    server = ids.server_key(gitlab.url)
    return (ids.job_job_name(PIPELINE_NAME, job["stage"], job["name"]), ids.job_run_id(server, 42, job["id"]))


def upstream(event: dict) -> list[tuple[str, str, str | None]]:
    facet = event["run"]["facets"]["jobDependencies"]
    return [(u["job"]["name"], u["run"]["runId"], u.get("status_trigger_rule")) for u in facet["upstream"]]


def sample_with_needs(gitlab):
    """The mixed sample (a retried job, parallel jobs, an allowed failure, a manual job, a bridge)
    with a child pipeline behind its bridge, and needs as a .gitlab-ci.yml would give them."""
    sample = pipelines.mixed(gitlab.url).install(gitlab)
    child = make_pipeline(sample.project, 9100, status="success", source="pipeline")
    gitlab.add_pipeline(sample.project, child, [make_job(sample.project, child, 9101, "load", "etl", "success")])
    gitlab.set_needs(42, 9001, {
        "déploiement 🚀 \"prod\"/eu": ["compile", "unit 1/3", "unit 2/3", "unit 3/3", "flaky"],
        "lint": [],  # needs: [] starts at once, though its stage is after build
        "downstream": ["compile"],
    }, when={"downstream": "always", "databand-report": "always"})
    return sample


def collect(gitlab, sample, **env) -> lib.Report:
    env = {**pipelines.ci_env(sample, gitlab.url, token=gitlab.token), "CI_SERVER_VERSION": "17.5.1-ee", **env}
    report = lib.collect(Settings.from_env(env), 42, sample.pipeline["id"])
    olschema.assert_valid(list(report.events))  # jobDependencies against its own schema too
    return report


def test_each_job_run_names_the_runs_it_needed_as_the_graph_says(gitlab):
    gitlab.graphql = True
    sample = sample_with_needs(gitlab)
    report = collect(gitlab, sample)
    jobs = {j["id"]: j for j in [*sample.jobs, *sample.bridges]}
    runs = by_job_id(report.events)
    assert not [n for n in report.notes if "needs graph" in n]

    # Its needs, each the attempt it waited for (the flaky job's passing retry, 111), FINISH_TO_START.
    deploy = runs[107]
    assert upstream(deploy) == [(*run_of(gitlab, jobs[i]), "EXECUTE_ON_SUCCESS") for i in (101, 102, 103, 104, 111)]
    facet = deploy["run"]["facets"]["jobDependencies"]
    assert {u["sequence_trigger_rule"] for u in facet["upstream"]} == {"FINISH_TO_START"}
    assert facet["trigger_rule"] == "ALL_SUCCESS" and "downstream" not in facet
    assert upstream(runs[105]) == []  # needs: []
    # No needs: every job of the previous stage, an allowed failure whatever its status.
    assert upstream(runs[102]) == [(*run_of(gitlab, jobs[101]), "EXECUTE_ON_SUCCESS")]
    publish = upstream(runs[108])
    assert publish == [(*run_of(gitlab, jobs[i]), "EXECUTE_EVERY_TIME" if i == 105 else "EXECUTE_ON_SUCCESS")
                       for i in (102, 103, 104, 105, 111)]
    assert upstream(runs[101]) == []  # the first stage

    # The bridge (when: always) and the pipeline it starts, both ways, with the runs emitted.
    bridge = runs[109]["run"]["facets"]["jobDependencies"]
    assert bridge["trigger_rule"] == "ALL_DONE"
    assert upstream(runs[109]) == [(*run_of(gitlab, jobs[101]), "EXECUTE_EVERY_TIME")]
    [child_root] = [e for e in report.events if e["run"]["facets"].get("parent", {}).get("run", {}).get("runId")
                    == runs[109]["run"]["runId"] and "gitlab.job_id" not in tags(e)]
    [started] = bridge["downstream"]
    namespace = ids.default_namespace(gitlab.url)
    assert started == {"job": {"namespace": namespace, "name": child_root["job"]["name"]},
                       "run": {"runId": child_root["run"]["runId"]}, "dependency_type": "DIRECT_INVOCATION",
                       "sequence_trigger_rule": "START_TO_START"}
    assert "type" not in started  # the schema's field, not its docs' example
    assert child_root["run"]["facets"]["jobDependencies"]["upstream"] == [{
        "job": {"namespace": namespace, "name": runs[109]["job"]["name"]}, "run": {"runId": runs[109]["run"]["runId"]},
        "dependency_type": "DIRECT_INVOCATION", "sequence_trigger_rule": "START_TO_START"}]
    # Every emitted upstream run is a run of the report (identities match the job runs).
    emitted = {e["run"]["runId"]: e["job"]["name"] for e in report.events}
    for event in runs.values():
        for name, run_id, _ in upstream(event):
            assert emitted[run_id] == name
    # One query for the pipeline, one for its child: not one per job.
    assert gitlab.count(GRAPHQL) == 2


def test_the_stage_order_stands_with_a_job_token_and_no_graphql_request_is_made(gitlab):
    gitlab.graphql = True
    sample = sample_with_needs(gitlab)
    env = {**pipelines.ci_env(sample, gitlab.url, job_token=gitlab.job_token), "CI_SERVER_VERSION": "17.5.1-ee"}
    report = lib.collect(Settings.from_env(env), 42, 9001)
    olschema.assert_valid(list(report.events))
    runs = by_job_id(report.events)
    # deploy's previous stage, not its needs; no status rule, GitLab's `when` being unknown
    assert [name for name, _, rule in upstream(runs[107]) if rule is None] == \
        [ids.job_job_name(PIPELINE_NAME, "test", n) for n in ("unit 1/3", "unit 2/3", "unit 3/3", "lint", "flaky")]
    assert "trigger_rule" not in runs[107]["run"]["facets"]["jobDependencies"]
    [note] = [n for n in report.notes if "needs graph" in n]
    assert "CI_JOB_TOKEN" in note and "GITLAB_TOKEN (read_api)" in note and "stage order" in note
    assert gitlab.count(GRAPHQL) == 0  # GraphQL takes no job token: it would answer 401 "Invalid token"


def test_graphql_refusing_the_job_token_is_what_the_stand_in_answers(gitlab):
    """The stand-in answers a job token as GitLab's GraphqlController does, so the choice not to
    send one stands on GitLab's behaviour."""
    import requests

    gitlab.graphql = True
    answer = requests.post(f"{gitlab.url}/api/graphql", json={"query": "{ currentUser { id } }"},
                           headers={"JOB-TOKEN": gitlab.job_token}, timeout=10)
    assert (answer.status_code, answer.json()) == (401, {"errors": [{"message": "Invalid token"}]})


def test_graphql_errors_leave_one_note_and_the_stage_order_never_a_failed_report(gitlab):
    gitlab.graphql = True
    sample = sample_with_needs(gitlab)
    errors = json.dumps({"errors": [{"message": "Internal server error"}]}).encode()
    gitlab.fail(GRAPHQL, 200, times=10, headers={"Content-Type": "application/json"}, body=errors)
    report = collect(gitlab, sample)
    runs = by_job_id(report.events)
    assert {j["id"] for j in [*sample.jobs, *sample.bridges]} <= set(runs)
    assert [name for name, _, _ in upstream(runs[105])] == [ids.job_job_name(PIPELINE_NAME, "build", "compile")]
    [note] = [n for n in report.notes if "needs graph" in n]
    assert "stage order" in note and "Internal server error" in note
    # Each pipeline (and the child): once with the `when` lists, once without, then it gives up.
    assert gitlab.count(GRAPHQL) == 2 * 2


def test_no_graphql_endpoint_is_one_note_too(gitlab):
    sample = sample_with_needs(gitlab)  # graphql off: the stand-in answers 404
    report = collect(gitlab, sample)
    [note] = [n for n in report.notes if "needs graph" in n]
    assert "POST /api/graphql" in note and "404" in note
    assert report.events and gitlab.count(GRAPHQL) == 2  # the pipeline and its child, one request each


def test_an_older_gitlab_without_when_executed_still_gives_the_needs_without_status_rules(gitlab):
    gitlab.graphql, gitlab.graphql_when = True, False
    sample = sample_with_needs(gitlab)
    report = collect(gitlab, sample)
    runs = by_job_id(report.events)
    deploy = runs[107]["run"]["facets"]["jobDependencies"]
    assert [u["run"]["runId"] for u in deploy["upstream"]] == \
        [run_of(gitlab, j)[1] for j in sample.jobs if j["id"] in (101, 102, 103, 104, 111)]
    assert all("status_trigger_rule" not in u for u in deploy["upstream"]) and "trigger_rule" not in deploy
    assert not [n for n in report.notes if "needs graph" in n]
    assert gitlab.count(GRAPHQL) == 2 * 2  # the pipeline and its child: each refused once, then read


def test_a_large_pipeline_costs_one_graphql_request_a_hundred_jobs_within_the_in_flight_bound(gitlab):
    gitlab.graphql = True
    project, pipeline, jobs = generate_pipeline(gitlab.url, 250, seed=1)
    gitlab.add_pipeline(project, pipeline, jobs)
    by_stage: dict[str, list[dict]] = {}
    for job in jobs:
        by_stage.setdefault(job["stage"], []).append(job)
    first = by_stage["build"][0]["name"]
    gitlab.set_needs(project["id"], pipeline["id"], {j["name"]: [first] for j in by_stage["deploy"]})
    settings = Settings.from_env({"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token,
                                  "DATABAND_GITLAB_CONCURRENCY": "4"})
    report = lib.collect(settings, project["id"], pipeline["id"])
    events = list(report.events)
    olschema.assert_valid(events)
    pages = math.ceil(len(jobs) / reporter_needs.PAGE)
    assert gitlab.count(GRAPHQL) == pages
    graphql = [r for r in gitlab.requests if r.path == "/api/graphql"]
    assert all(a.finished <= b.started + 0.05 for a, b in zip(graphql, graphql[1:]))  # one after another
    # Never more requests at once than the reader's bound, GraphQL pages among them.
    moments = sorted([(r.started, 1) for r in gitlab.requests] + [(r.finished, -1) for r in gitlab.requests])
    in_flight = peak = 0
    for _, step in moments:
        in_flight += step
        peak = max(peak, in_flight)
    assert peak <= 4
    runs = by_job_id(events)
    first_run = ids.job_job_name(PIPELINE_NAME, "build", first)
    for job in by_stage["deploy"]:
        assert [name for name, _, _ in upstream(runs[job["id"]])] == [first_run]
    # A test job (stage order): the build stage's jobs, or the stage's run when it has more than 50.
    test_job = runs[by_stage["test"][0]["id"]]
    builds = {j["name"] for j in by_stage["build"]}
    names = [name for name, _, _ in upstream(test_job)]
    assert names == ([ids.stage_job_name(PIPELINE_NAME, "build")] if len(builds) > 50 else
                     [ids.job_job_name(PIPELINE_NAME, "build", n) for n in builds])


def test_a_wide_previous_stage_is_named_by_its_stage_run():
    from datetime import datetime, timezone

    from reporter import events as reporter_events
    from reporter.ids import Naming
    from reporter.snapshot import Job, Pipeline

    jobs = [Job(id=i, name=f"build {i}", stage="build", status="success") for i in range(1, 61)]
    jobs += [Job(id=100, name="test", stage="test", status="success", needs=None),
             Job(id=101, name="fan-in", stage="test", status="success", when="on_success",
                 needs=tuple(f"build {i}" for i in range(1, 61)))]
    pipeline = Pipeline(server="gitlab.example.com", project_id=42, project_path="acme/dp",
                        project_url="https://gitlab.example.com/acme/dp", id=7, ref="main", sha="a" * 40,
                        status="success", web_url="https://gitlab.example.com/acme/dp/-/pipelines/7", jobs=jobs)
    events = list(reporter_events.build_events(pipeline, Naming("gitlab:x", "acme.dp", "acme/dp"),
                                               datetime(2026, 1, 1, tzinfo=timezone.utc)))
    olschema.assert_valid(events)
    runs = by_job_id(events)
    stage = [e for e in events if e["job"]["name"] == "acme.dp.build"][0]
    assert runs[100]["run"]["facets"]["jobDependencies"]["upstream"] == [
        {"job": {"namespace": "gitlab:x", "name": "acme.dp.build"}, "run": {"runId": stage["run"]["runId"]},
         "sequence_trigger_rule": "FINISH_TO_START"}]
    fan_in = runs[101]["run"]["facets"]["jobDependencies"]
    assert len(fan_in["upstream"]) == 50 and fan_in["upstreamCount"] == 60  # cut, and said


# -- GitLab's version ------------------------------------------------------------------------------

def test_outside_a_job_gitlabs_version_is_read_once_per_client(gitlab, databand):
    gitlab.version = "18.4.2-ee"
    sample = pipelines.mixed(gitlab.url).install(gitlab)
    second = make_pipeline(sample.project, 9002, status="success")
    gitlab.add_pipeline(sample.project, second, [make_job(sample.project, second, 9201, "a", "build", "success")])
    settings = Settings.from_env({"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "DATABAND_URL": databand.url,
                                  "DATABAND_ACCESS_TOKEN": databand.token})
    seen: list[lib.Report] = []
    assert lib.resend_pipelines(settings, "42", [9001, 9002], lambda _, r, e: seen.append(r)) == 0
    for report in seen:
        assert {e["run"]["facets"]["processing_engine"]["version"] for e in report.events} == {"18.4.2-ee"}
        assert not [n for n in report.notes if "version" in n]
    assert gitlab.count(r"/api/v4/version$") == 1  # two pipelines and a downstream one, one client


def test_in_a_job_ci_server_version_is_used_and_version_is_not_asked(gitlab):
    gitlab.version = "18.4.2-ee"
    sample = pipelines.mixed(gitlab.url).install(gitlab)
    report = collect(gitlab, sample)
    assert {e["run"]["facets"]["processing_engine"]["version"] for e in report.events} == {"17.5.1-ee"}
    assert gitlab.count(r"/api/v4/version$") == 0


def test_a_version_that_cannot_be_read_is_one_note_and_unknown(gitlab):
    gitlab.version = "18.4.2-ee"
    gitlab.fail(r"/api/v4/version$", 403, times=10)
    sample = pipelines.mixed(gitlab.url).install(gitlab)
    report = lib.collect(Settings.from_env({"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token}), 42, 9001)
    assert {e["run"]["facets"]["processing_engine"]["version"] for e in report.events} == {"unknown"}
    [note] = [n for n in report.notes if "GET /version" in n]
    assert "403" in note and "'unknown' stands in" in note
    assert sample.pipeline["id"] == 9001


def test_the_consumers_doc_sample_is_what_the_reporter_builds():
    from datetime import datetime, timezone
    from pathlib import Path

    from reporter import events as reporter_events
    from reporter.ids import Naming
    from reporter.snapshot import Job, Pipeline

    text = (Path(__file__).resolve().parent.parent / "docs" / "consumers.md").read_text()
    section = text.split("\n## The needs graph, for two jobs of a sample pipeline\n", 1)[1]
    shown = [json.loads(block.split("```", 1)[0]) for block in section.split("```json\n")[1:]]
    jobs = [Job(id=5, name="extract", stage="extract", status="success", when="on_success"),
            Job(id=6, name="quality", stage="extract", status="failed", allow_failure=True, when="on_success"),
            Job(id=7, name="transform-and-trigger", stage="transform", status="success",
                needs=("extract", "quality"), when="on_success"),
            Job(id=8, name="notify", stage="report", status="success", when="always")]
    pipeline = Pipeline(server="gitlab.example.com", project_id=42, project_path="acme/data-platform",
                        project_url="https://gitlab.example.com/acme/data-platform", id=9001, ref="main",
                        sha="a" * 40, status="success", web_url="https://gitlab.example.com/acme/data-platform/-/pipelines/9001",
                        jobs=jobs)
    built = list(reporter_events.build_events(
        pipeline, Naming("gitlab:gitlab.example.com", "acme.data-platform", "acme/data-platform"),
        datetime(2026, 11, 20, tzinfo=timezone.utc)))
    olschema.assert_valid(built)
    runs = by_job_id(built)
    facets = [dict(runs[i]["run"]["facets"]["jobDependencies"]) for i in (7, 8)]
    for facet in [*shown, *facets]:  # the producer names this version; the doc, the one it was written at
        assert facet.pop("_producer").startswith(PROJECT_URL)
    assert shown == facets


def _random_pipeline(draw):
    from hypothesis import strategies as st

    from reporter.snapshot import Job, Pipeline

    stages = [f"s{i}" for i in range(draw(st.integers(1, 4)))]
    jobs: list[Job] = []
    for number in range(draw(st.integers(1, 12))):
        stage = draw(st.sampled_from(stages))
        earlier = sorted({j.name for j in jobs if stages.index(j.stage) < stages.index(stage)})
        needs = draw(st.one_of(st.none(), st.lists(st.sampled_from(earlier), unique=True) if earlier else
                               st.just([])))
        name = f"job {number}"
        for attempt in range(draw(st.integers(1, 2))):  # a retry: same name, a new id
            jobs.append(Job(id=100 * (attempt + 1) + number, name=name, stage=stage,
                            status=draw(st.sampled_from(["success", "failed", "skipped"])),
                            allow_failure=draw(st.booleans()), needs=None if needs is None else tuple(needs),
                            when=draw(st.sampled_from([None, "on_success", "on_failure", "always"]))))
    return Pipeline(server="gitlab.example.com", project_id=42, project_path="acme/dp",
                    project_url="https://gitlab.example.com/acme/dp", id=7, ref="main", sha="a" * 40,
                    status="running", web_url="https://gitlab.example.com/acme/dp/-/pipelines/7", jobs=jobs)


def test_property_every_upstream_is_an_emitted_run_of_a_job_the_graph_or_the_stage_order_names():
    from datetime import datetime, timezone

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from reporter import events as reporter_events
    from reporter.ids import Naming
    from reporter.status import stage_order

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def check(data):
        pipeline = data.draw(st.composite(_random_pipeline)())
        built = list(reporter_events.build_events(pipeline, Naming("gitlab:x", "acme.dp", "acme/dp"),
                                                  datetime(2026, 1, 1, tzinfo=timezone.utc)))
        emitted = {e["run"]["runId"]: e["job"]["name"] for e in built}
        runs = by_job_id(built)
        order = stage_order(pipeline.jobs)
        stage_of = {j.name: j.stage for j in pipeline.jobs}
        for job in pipeline.jobs:
            facet = runs[job.id]["run"]["facets"]["jobDependencies"]
            named = [u["job"]["name"] for u in facet["upstream"]]
            assert all(emitted[u["run"]["runId"]] == u["job"]["name"] for u in facet["upstream"])
            if job.needs is not None:
                expected = list(job.needs)
            else:
                index = order.index(job.stage)
                expected = list(dict.fromkeys(j.name for j in pipeline.jobs if index and
                                              stage_of[j.name] == order[index - 1]))
            assert named == [ids.job_job_name("acme.dp", stage_of[n], n) for n in expected]
            rules = {u.get("status_trigger_rule") for u in facet["upstream"]}
            if job.when is None:
                assert rules <= {None} and "trigger_rule" not in facet

    check()


def test_in_a_job_the_query_goes_out_with_the_first_requests():
    from standins import GitLabStandIn

    with GitLabStandIn(graphql=True, latency=0.3) as gitlab:
        sample = sample_with_needs(gitlab)
        report = collect(gitlab, sample, CI_PIPELINE_IID=str(sample.pipeline["iid"]))
        assert not [n for n in report.notes if "needs graph" in n]
        query = min((r for r in gitlab.requests if r.path == "/api/graphql"), key=lambda r: r.started)
        [pipeline] = [r for r in gitlab.requests if r.path.endswith("/pipelines/9001")]
        assert query.started < pipeline.finished  # the job's CI_PROJECT_PATH and CI_PIPELINE_IID name it
    assert upstream(by_job_id(report.events)[105]) == []  # and it was read: lint's needs: []
