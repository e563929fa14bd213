"""Sample pipelines on the GitLab stand-in, shaped like the cases the reporter must get right."""

from __future__ import annotations

from dataclasses import dataclass, field

from standins import make_bridge, make_job, make_pipeline, make_project

T0 = "2026-11-20T10:00:00.000Z"
T1 = "2026-11-20T10:01:00.000Z"
T2 = "2026-11-20T10:02:00.000Z"
T3 = "2026-11-20T10:03:00.000Z"

SECRET_IN_LOG = "glpat-AbCdEfGhIjKlMnOpQrSt"


@dataclass
class Sample:
    project: dict
    pipeline: dict
    jobs: list[dict]
    bridges: list[dict] = field(default_factory=list)
    traces: dict = field(default_factory=dict)

    def install(self, gitlab) -> "Sample":
        gitlab.add_pipeline(self.project, self.pipeline, self.jobs, self.bridges, self.traces)
        return self

    @property
    def reporter_job(self) -> dict:
        return next(j for j in self.jobs if j["name"] == "databand-report")


def mixed(server_url: str, *, pipeline_id: int = 9001) -> Sample:
    """Passes with warnings: a retried job, parallel jobs, an allowed failure, a manual job,
    a bridge, a unicode name, null start and end times, and the reporter itself running in .post."""
    project = make_project(server_url)
    pipeline = make_pipeline(project, pipeline_id, status="running", created_at=T0, started_at=T0,
                             finished_at=None)

    def job(id, name, stage, status, **kw):
        kw.setdefault("created_at", T0)
        if status not in ("created", "manual", "skipped"):
            kw.setdefault("started_at", T1)
        if status in ("success", "failed", "canceled"):
            kw.setdefault("finished_at", T2)
        return make_job(project, pipeline, id, name, stage, status, **kw)

    jobs = [
        job(101, "compile", "build", "success"),
        job(102, "unit 1/3", "test", "success"),
        job(103, "unit 2/3", "test", "success"),
        job(104, "unit 3/3", "test", "success"),
        job(105, "lint", "test", "failed", allow_failure=True, failure_reason="script_failure"),
        job(106, "flaky", "test", "failed", failure_reason="runner_system_failure"),
        job(111, "flaky", "test", "success", started_at=T2, finished_at=T3),
        job(107, "déploiement 🚀 \"prod\"/eu", "deploy", "success"),
        job(108, "publish", "deploy", "manual", allow_failure=True, started_at=None, finished_at=None),
        job(110, "databand-report", ".post", "running", created_at=T2, started_at=T3, finished_at=None),
    ]
    bridges = [make_bridge(project, pipeline, 109, "downstream", "deploy", "success",
                           downstream_pipeline=make_pipeline(project, 9100, status="success", source="pipeline"),
                           created_at=T0, started_at=T1, finished_at=T2)]
    traces = {105: b"\x1b[31;1mlint: 3 problems\x1b[0;m\nERROR: Job failed: exit code 1\n",
              106: f"using token {SECRET_IN_LOG}\nERROR: runner lost\n".encode()}
    return Sample(project, pipeline, jobs, bridges, traces)


def failing(server_url: str, *, pipeline_id: int = 9002) -> Sample:
    """The build fails, so later stages are skipped; one job was canceled."""
    project = make_project(server_url)
    pipeline = make_pipeline(project, pipeline_id, status="running", created_at=T0, started_at=T0,
                             finished_at=None)
    jobs = [
        make_job(project, pipeline, 201, "compile", "build", "failed", failure_reason="script_failure",
                 created_at=T0, started_at=T1, finished_at=T2),
        make_job(project, pipeline, 202, "docs", "build", "canceled", created_at=T0, started_at=T1,
                 finished_at=T2),
        make_job(project, pipeline, 203, "unit", "test", "skipped", created_at=T0, started_at=None,
                 finished_at=None),
        make_job(project, pipeline, 204, "deploy", "deploy", "skipped", created_at=T0, started_at=None,
                 finished_at=None),
        make_job(project, pipeline, 205, "databand-report", ".post", "running", created_at=T0,
                 started_at=T3, finished_at=None),
    ]
    log = b"".join(b"\x1b[0Ksection_start:1:step[collapsed=true]\r\x1b[0Kline %d\n" % i for i in range(500))
    log += b"Authorization: Bearer sekrit-value-123\nERROR: Job failed: exit code 2\n"
    return Sample(project, pipeline, jobs, [], {201: log})


def ci_env(sample: Sample, server_url: str, *, job_status: str = "running", token: str | None = None,
           job_token: str | None = None) -> dict:
    """The CI_* variables GitLab gives the reporter's own job."""
    p, project = sample.pipeline, sample.project
    env = {
        "GITLAB_CI": "true",
        "CI_SERVER_URL": server_url,
        "CI_PROJECT_ID": str(project["id"]),
        "CI_PROJECT_PATH": project["path_with_namespace"],
        "CI_PROJECT_URL": project["web_url"],
        "CI_PIPELINE_ID": str(p["id"]),
        "CI_PIPELINE_URL": p["web_url"],
        "CI_PIPELINE_CREATED_AT": p["created_at"],
        "CI_PIPELINE_SOURCE": p.get("source", "push"),
        "CI_COMMIT_SHA": p["sha"],
        "CI_COMMIT_REF_NAME": p["ref"],
        "CI_JOB_ID": str(sample.reporter_job["id"]),
        "CI_JOB_STATUS": job_status,
    }
    if token:
        env["GITLAB_TOKEN"] = token
    if job_token:
        env["CI_JOB_TOKEN"] = job_token
    return env
