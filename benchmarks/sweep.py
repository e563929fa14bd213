#!/usr/bin/env python3
"""What a daily sweep costs GitLab: a day of pipelines served by the stand-ins, swept twice.

200 pipelines updated over the last 24 hours (10 jobs each; 1 in 10 canceled, 1 in 10 failed with
one failed job), as a project with a busy main branch sees them; the installed command sweeps them
with a read_api token, then sweeps again (nothing changed: the cursor skips every pipeline).

    .venv/bin/python benchmarks/sweep.py [--pipelines 200] [--jobs 10]

Prints the GitLab requests by kind and the Databand posts of each sweep, and the wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from standins import DatabandStandIn, GitLabStandIn, make_job, make_pipeline, make_project  # noqa: E402

COMMAND = Path(sys.executable).parent / "databand-gitlab-reporter"


def serve(gitlab: GitLabStandIn, pipelines: int, jobs: int) -> None:
    now = datetime.now(timezone.utc)
    project = make_project(gitlab.url)
    for i in range(pipelines):
        status = "canceled" if i % 10 == 3 else "failed" if i % 10 == 7 else "success"
        pipeline = make_pipeline(project, 7000 + i, status=status)
        pipeline["updated_at"] = (now - timedelta(hours=24 * i / pipelines)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        made = []
        for k in range(jobs):
            job_status = "success"
            if status == "failed" and k == jobs - 1:
                job_status = "failed"
            elif status == "canceled" and k >= jobs // 2:
                job_status = "canceled"
            made.append(make_job(project, pipeline, 100_000 + jobs * i + k, f"job {k}", f"stage {k // 3}", job_status))
        traces = {j["id"]: b"ERROR: Job failed: exit code 1\n" for j in made if j["status"] == "failed"}
        gitlab.add_pipeline(project, pipeline, made, traces=traces)


def kind(path: str) -> str:
    for name in ("test_report_summary", "trace", "jobs", "bridges"):
        if path.endswith(name):
            return name
    return "pipeline list" if path.endswith("/pipelines") else "pipeline" if "/pipelines/" in path else "other"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipelines", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=10)
    args = parser.parse_args()
    with GitLabStandIn() as gitlab, DatabandStandIn() as databand, tempfile.TemporaryDirectory() as work:
        serve(gitlab, args.pipelines, args.jobs)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITLAB_", "DATABAND_", "CI_"))}
        env.update(GITLAB_URL=gitlab.url, GITLAB_TOKEN=gitlab.token, DATABAND_URL=databand.url,
                   DATABAND_ACCESS_TOKEN=databand.token, CI_PROJECT_ID="42")
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
        print(f"commit: {head or 'unknown'}")
        print(f"{args.pipelines} pipelines of {args.jobs} jobs over 24 hours\n")
        for attempt, extra in (("sweep --hours 26", ()), ("the same again (nothing changed)", ()),
                               ("sweep --hours 26 --status canceled, a new cursor", ("--status", "canceled",
                                                                                     "--cursor", "canceled.json"))):
            gitlab.clear_records()
            databand.clear_records()
            began = time.monotonic()
            done = subprocess.run([str(COMMAND), "sweep", "--hours", "26", *extra], env=env, cwd=work,
                                  capture_output=True, text=True)
            seconds = time.monotonic() - began
            if done.returncode != 0:
                print(done.stderr)
                return done.returncode
            by_kind = Counter(kind(r.path) for r in gitlab.requests)
            print(f"{attempt}: {len(gitlab.requests)} GitLab requests "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(by_kind.items()))}), "
                  f"{len(databand.received)} Databand posts, {seconds:.1f} s")
            print("  " + done.stderr.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
