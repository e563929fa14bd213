#!/usr/bin/env python3
"""What the needs graph costs a report: GitLab's GraphQL answering (`graphql=True`, one query a
hundred jobs, cursor after cursor) against no GraphQL at all (the stand-in's 404: the stage order).

Pipelines of 1,000 and 5,000 jobs (1 % failed, their logs read) are served by the GitLab stand-in of
tests/standins.py with 100 ms added to every request, and reported `--runs` times by this work
tree's `resend`. Printed: the wall time, GitLab requests (GraphQL ones apart), the server-side
waves (the longest chain of requests each started after the one before ended) and the JSON bytes
sent to Databand (jobDependencies make the events larger). Medians.

    .venv/bin/python benchmarks/needs.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402

CASES = [bench.Case(f"{n:,} jobs", n, 0, 100, latencies=(bench.LATENCY,), seed=50 + i)
         for i, n in enumerate((1_000, 5_000))]


def measure(case: bench.Case, graphql: bool, runs: int, work: str) -> dict:
    with bench.standins(case) as (gitlab, databand):
        gitlab.latency = databand.latency = bench.LATENCY
        gitlab.graphql = graphql
        where = bench.serve(case, gitlab)
        env = bench.child_env(gitlab, databand)
        done = []
        for _ in range(runs):
            result = bench.run_case_once(case, where, gitlab, databand, env, work)
            result["graphql"] = gitlab.count(r"^/api/graphql$")
            done.append(result)
    return {key: statistics.median(r[key] for r in done)
            for key in ("seconds", "gitlab_requests", "graphql", "waves_gitlab", "databand_json_bytes")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    print(bench.machine())
    print("| pipeline | GraphQL | wall s | GitLab requests | of them GraphQL | waves | JSON to Databand |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="reporter-needs-") as work:
        for case in CASES:
            for graphql in (False, True):
                row = measure(case, graphql, args.runs, work)
                print(f"| {case.name} | {'answers' if graphql else '404'} | {row['seconds']:.2f} | "
                      f"{row['gitlab_requests']:.0f} | {row['graphql']:.0f} | {row['waves_gitlab']:.0f} | "
                      f"{row['databand_json_bytes'] / 1e6:.1f} MB |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
