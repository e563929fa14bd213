"""The stand-ins answer as GitLab does: every object they serve is checked against GitLab's own
response schemas (tests/gitlabschema.py, from ../shared/gitlab-api-schemas) and, where GitLab has
no schema (bridges, the pipeline's exact fields), against ../shared/gitlab-api-facts.md."""

from __future__ import annotations

import gitlabschema
import pytest
import requests
from pipelines import failing, mixed
from standins import GitLabStandIn, generate_pipeline, make_bridge, make_job, make_pipeline, make_project

# Entities::Ci::PipelineWithMetadata, as gitlab-api-facts.md lists it (no `archived`).
PIPELINE_FIELDS = {
    "id", "iid", "project_id", "sha", "ref", "status", "source", "created_at", "updated_at", "web_url",
    "before_sha", "tag", "yaml_errors", "user", "started_at", "finished_at", "committed_at", "duration",
    "queued_duration", "coverage", "detailed_status", "name",
}
# A pipeline as the list and job.pipeline nest it: the basic fields (plus name in lists).
BASIC_FIELDS = {"id", "iid", "project_id", "sha", "ref", "status", "source", "created_at", "updated_at", "web_url"}
# Bridge < JobBasic: no runner, tag_list or artifacts; downstream_pipeline instead.
BRIDGE_FIELDS = {
    "id", "status", "stage", "name", "ref", "tag", "coverage", "allow_failure", "created_at", "started_at",
    "finished_at", "erased_at", "duration", "queued_duration", "user", "commit", "pipeline", "web_url",
    "project", "archived", "downstream_pipeline",
}


@pytest.fixture(scope="module", autouse=True)
def _schemas():
    gitlabschema.require()


def _served(sample, gitlab: GitLabStandIn) -> dict:
    """What the stand-in serves for the sample's pipeline, read as a client reads it."""
    sample.install(gitlab)
    headers = {"PRIVATE-TOKEN": gitlab.token}
    base = f"{gitlab.url}/api/v4/projects/{sample.project['id']}/pipelines/{sample.pipeline['id']}"

    def get(path: str, **params):
        response = requests.get(base + path, headers=headers, params=params, timeout=10)
        assert response.status_code == 200, (path, response.status_code)
        return response.json()

    return {
        "pipeline": get(""),
        "jobs": get("/jobs", include_retried="true", per_page=100),
        "bridges": get("/bridges", per_page=100),
        "listed": requests.get(f"{gitlab.url}/api/v4/projects/{sample.project['id']}/pipelines", headers=headers,
                               timeout=10).json(),
    }


def _check_job(job: dict) -> None:
    assert gitlabschema.errors("job", job) == [], job["name"]
    assert ("failure_reason" in job) == (job["status"] == "failed"), job["name"]
    assert job["tag_list"] == sorted(job["tag_list"]), job["name"]
    assert set(job["pipeline"]) == BASIC_FIELDS


def _check_bridge(bridge: dict) -> None:
    fields = BRIDGE_FIELDS | ({"failure_reason"} if bridge["status"] == "failed" else set())
    assert set(bridge) == fields, bridge["name"]
    assert gitlabschema.errors("user/basic", bridge["user"]) == []
    if bridge["downstream_pipeline"] is not None:
        assert gitlabschema.errors("pipeline/basic", bridge["downstream_pipeline"]) == []
        assert set(bridge["downstream_pipeline"]) == BASIC_FIELDS


def _check_pipeline(pipeline: dict) -> None:
    assert gitlabschema.errors("pipeline/detail", pipeline) == []
    assert set(pipeline) == PIPELINE_FIELDS


@pytest.mark.parametrize("make", [mixed, failing], ids=["mixed", "failing"])
def test_served_samples_match_gitlab_s_schemas(gitlab, make):
    served = _served(make(gitlab.url), gitlab)
    _check_pipeline(served["pipeline"])
    assert served["jobs"], "the sample has jobs"
    for job in served["jobs"]:
        _check_job(job)
    for bridge in served["bridges"]:
        _check_bridge(bridge)
    assert gitlabschema.errors("pipelines", served["listed"]) == []
    for item in served["listed"]:
        assert set(item) == BASIC_FIELDS | {"name"}


def test_generated_pipelines_and_every_status_match_gitlab_s_schemas():
    project = make_project("https://gitlab.example.com")
    for status in ("created", "pending", "running", "success", "failed", "canceled", "skipped", "manual",
                   "scheduled", "waiting_for_resource", "preparing"):
        pipeline = make_pipeline(project, 1, status=status)
        _check_pipeline(pipeline)
        _check_job(make_job(project, pipeline, 2, "unit", "test", status))
        _check_bridge(make_bridge(project, pipeline, 3, "deploy", "deploy", status,
                                  downstream_pipeline=make_pipeline(project, 4)))
    _, generated, jobs = generate_pipeline("https://gitlab.example.com", 40, failed_every=7, retried_every=5)
    _check_pipeline(generated)
    for job in jobs:
        _check_job(job)


def test_the_schema_check_catches_an_invented_field():
    project = make_project("https://gitlab.example.com")
    job = make_job(project, make_pipeline(project, 1), 2, "unit", "test", "success")
    assert gitlabschema.errors("job", {**job, "source": "push"})  # GitLab's Job entity has no source
    assert gitlabschema.errors("job", {**job, "duration": "60"})  # a float or null, never a string
