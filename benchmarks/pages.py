#!/usr/bin/env python3
"""Past 10,000 jobs GitLab sends no page count: how many server-side waves the listing takes.

A 20,000-job pipeline (200 pages of jobs, 200 failed jobs' logs) is served by the GitLab stand-in of
tests/standins.py, which, as GitLab, sends no X-Total, X-Total-Pages or rel="last" past 10,000
rows, with 100 ms added to every request. The report is run `--runs` times by the reporter of
this work tree and, with --before REF, by the reporter of that commit (installed from its source
into a venv of its own), and the GitLab requests' waves are counted on the server's side: the
longest chain of requests each started after the one before it ended. One page after another is
about 200 waves; read ahead within the in-flight bound (32), about 3 + 200 / 32.

    .venv/bin/python benchmarks/pages.py                       # this work tree
    .venv/bin/python benchmarks/pages.py --before 2aecd95      # and that commit, side by side

Medians; the machine and the commit measured are printed with the table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402
import job  # noqa: E402

CASE = bench.Case("20,000 jobs, no page count", 20_000, 0, 100, latencies=(bench.LATENCY,), seed=41,
                  args=("--downstream-depth", "0", "--no-test-results"))


def measure(command: Path, runs: int, work: str) -> dict:
    bench.COMMAND = command
    with bench.standins(CASE) as (gitlab, databand):
        gitlab.latency = databand.latency = bench.LATENCY
        where = bench.serve(CASE, gitlab)
        env = bench.child_env(gitlab, databand)
        done = [bench.run_case_once(CASE, where, gitlab, databand, env, work) for _ in range(runs)]
    return {
        "waves_gitlab": statistics.median(r["waves_gitlab"] for r in done),
        "gitlab_requests": statistics.median(r["gitlab_requests"] for r in done),
        "seconds": statistics.median(r["seconds"] for r in done),
        "jobs_pages": statistics.median(r["gitlab_by_kind"].get("jobs", 0) for r in done),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", help="also measure the reporter at this git ref")
    args = parser.parse_args(argv)
    rows = {}
    this_tree = bench.COMMAND  # the console script beside this Python, before measure() points elsewhere
    with tempfile.TemporaryDirectory(prefix="reporter-pages-") as work:
        if args.before:
            source = job.source_tree(args.before, Path(work) / "before-src")
            wheels = job.wheelhouse(source, Path(work) / "before-wheels")
            venv = Path(work) / "before-venv"
            job.install("after", venv, wheels)
            rows[f"before ({args.before})"] = measure(venv / "bin" / job.PACKAGE, args.runs, work)
        rows["this tree"] = measure(this_tree, args.runs, work)
    machine = bench.machine()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE.parent, capture_output=True, text=True).stdout
    print(f"{CASE.name}, +{bench.LATENCY * 1000:.0f} ms a request, {args.runs} runs, medians; {machine['cpu']}, "
          f"{machine['cores']} cores, CPython {machine['python']}; commit {commit.strip()}")
    print("| reporter | GitLab waves | GitLab requests | pages of jobs | wall, s |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['waves_gitlab']:.0f} | {row['gitlab_requests']:.0f} | {row['jobs_pages']:.0f} | "
              f"{row['seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
