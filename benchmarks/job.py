#!/usr/bin/env python3
"""What the report job really costs a pipeline: install plus report, before and after, side by side.

For each source (by default the commit before the light core, and this work tree) it builds a
wheelhouse once (pip wheel: the reporter and every dependency, so nothing is downloaded while
timing), then measures on this machine:

* the whole job, as the component runs it: a fresh venv, the install from the local wheelhouse
  (`--no-index`), and the report of a 1,250-job pipeline served by the stand-ins of tests/standins.py;
  "before" as the component did it (a venv with pip, then that pip), "after" as it does now (a venv
  without pip, filled by the image's pip with `--python`, wheels only);
* the installed distributions (count and size) and `--help`;
* the report alone at 1,250 and 10,000 jobs through bench.py: wall, CPU, peak RSS, GitLab requests,
  the server-side waves and the latency ratio at +100 ms.

    .venv/bin/python benchmarks/job.py                         # before = cf2ddaa, after = the work tree
    .venv/bin/python benchmarks/job.py --before abc123 --runs 5

Medians of --runs runs (default 5). Results: benchmarks/job-results.json and the table it prints.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402

BEFORE = "cf2ddaa"  # main before the light core: openlineage-python in the core, the pip-in-venv install
JOB_CASE = bench.Case("1,250 jobs", 1_250, 25, 100, latencies=(0.0,), seed=11)
REPORT_CASES = [
    bench.Case("1,250 jobs", 1_250, 25, 100, seed=11),
    bench.Case("10,000 jobs", 10_000, 200, 100, seed=12),
]
PACKAGE = "databand-gitlab-reporter"


def source_tree(ref: str | None, into: Path) -> Path:
    """The repository at `ref` (git archive), or the work tree as it is when ref is None."""
    into.mkdir(parents=True)
    if ref is None:
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.split()
        for name in files:
            if (ROOT / name).is_file():
                (into / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, into / name)
    else:
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def wheelhouse(source: Path, into: Path) -> Path:
    """Every wheel the install needs, made before any timing (this step may use the network)."""
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(into), str(source)],
                           capture_output=True, text=True)
    if built.returncode != 0:
        raise SystemExit(f"pip wheel {source} failed:\n{built.stderr}")
    return into


def install(kind: str, venv: Path, wheels: Path) -> None:
    if kind == "before":  # the component before: a venv with its own pip, then that pip
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--no-index", "--find-links", str(wheels), PACKAGE], check=True)
    else:  # the component now: no pip in the venv; the image's pip installs into it, wheels only
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                        "--disable-pip-version-check", "--no-index", "--find-links", str(wheels), "--only-binary",
                        ":all:", PACKAGE], check=True)


def whole_job(kind: str, wheels: Path, runs: int, work: Path) -> dict:
    """Fresh venv + install + report, timed together, as the report job runs them."""
    totals, installs, reports = [], [], []
    with bench.standins(JOB_CASE) as (gitlab, databand):
        where = bench.serve(JOB_CASE, gitlab)
        env = bench.child_env(gitlab, databand)
        for number in range(runs):
            venv = work / f"{kind}-venv-{number}"
            began = time.monotonic()
            install(kind, venv, wheels)
            installed = time.monotonic()
            done = bench.run_child([str(venv / "bin" / PACKAGE), "resend", "--project", str(where["project"]),
                                    "--pipeline", str(where["pipeline"])], env, str(work))
            if done["exit"] != 0:
                raise SystemExit(f"{kind}: the report exited {done['exit']}:\n{done['stderr']}")
            ended = time.monotonic()
            totals.append(ended - began)
            installs.append(installed - began)
            reports.append(done["seconds"])
            shutil.rmtree(venv)
            print(".", end="", flush=True)
    return {"whole_job_seconds": bench.spread(totals), "install_seconds": bench.spread(installs),
            "report_seconds": bench.spread(reports)}


def footprint(kind: str, wheels: Path, work: Path, runs: int) -> dict:
    venv = work / f"{kind}-kept"
    install(kind, venv, wheels)
    listed = json.loads(subprocess.run([str(venv / "bin" / "python"), "-I", "-c", bench._LIST_DISTRIBUTIONS],
                                       check=True, capture_output=True, text=True, cwd=work).stdout)
    distributions = sorted(row["name"] for row in listed if row["name"].lower() not in ("pip", "setuptools"))
    size = sum(row["bytes"] for row in listed if row["name"] in distributions)
    started = bench.startup(runs, str(work), command=venv / "bin" / PACKAGE, python=str(venv / "bin" / "python"))
    return {"distributions": distributions, "count": len(distributions), "mb": size / bench.MB,
            "help_seconds": started["help_seconds"], "venv": str(venv)}


def report_alone(venv: Path, runs: int, work: Path) -> list[dict]:
    bench.COMMAND, bench.COMMAND_PYTHON = venv / "bin" / PACKAGE, str(venv / "bin" / "python")
    return [bench.run_case(case, runs, str(work), lambda _: print(".", end="", flush=True))
            for case in REPORT_CASES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, help=f"git ref of the 'before' source (default {BEFORE})")
    parser.add_argument("--runs", type=int, default=5, help="runs per measure (default 5)")
    parser.add_argument("--output", type=Path, default=HERE / "job-results.json")
    args = parser.parse_args(argv)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    results: dict = {"machine": bench.machine(), "runs": args.runs,
                     "sources": {"before": args.before, "after": f"work tree at {head.stdout.strip()}"}}
    with tempfile.TemporaryDirectory(prefix="databand-job-") as folder:
        work = Path(folder)
        for kind, ref in (("before", args.before), ("after", None)):
            print(f"{kind}: wheels", end="", flush=True)
            wheels = wheelhouse(source_tree(ref, work / f"{kind}-src"), work / f"{kind}-wheels")
            print(", whole job", end="", flush=True)
            measured = whole_job(kind, wheels, args.runs, work)
            print(", footprint", end="", flush=True)
            measured["footprint"] = footprint(kind, wheels, work, args.runs)
            print(", report alone", end="", flush=True)
            measured["report"] = report_alone(Path(measured["footprint"]["venv"]), args.runs, work)
            results[kind] = measured
            print()
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


def table(results: dict) -> str:
    b, a = results["before"], results["after"]

    def row(name, get, unit="s", digits=2):
        return f"| {name} | {get(b):.{digits}f} {unit} | {get(a):.{digits}f} {unit} |"

    lines = [f"Machine: {results['machine'].get('cpu')}, {results['machine'].get('cores')} cores, Python "
             f"{results['machine'].get('python')}; medians of {results['runs']} runs.", "",
             f"| measure | before ({results['sources']['before']}) | after ({results['sources']['after']}) |",
             "|---|---|---|"]
    lines += [
        row("whole job: venv + install + report, 1,250 jobs", lambda r: r["whole_job_seconds"]["median"]),
        row("  of which the install", lambda r: r["install_seconds"]["median"]),
        row("installed distributions", lambda r: r["footprint"]["count"], "", 0),
        row("installed size", lambda r: r["footprint"]["mb"], "MB", 1),
        row("`--help`", lambda r: r["footprint"]["help_seconds"]["median"], "s", 3),
    ]
    for index, case in enumerate(REPORT_CASES):
        lines += [
            row(f"report wall, {case.name}", lambda r, i=index: r["report"][i]["seconds"]["median"]),
            row(f"report CPU, {case.name}", lambda r, i=index: r["report"][i]["cpu_seconds"]["median"]),
            row(f"peak RSS, {case.name}", lambda r, i=index: r["report"][i]["peak_rss_mb"]["median"], "MB", 0),
            row(f"GitLab requests, {case.name}", lambda r, i=index: r["report"][i]["gitlab_requests"], "", 0),
            row(f"server-side waves (GitLab + Databand) at +100 ms, {case.name}",
                lambda r, i=index: r["report"][i]["waves_at_100ms"]["total"], "", 1),
            row(f"latency ratio at +100 ms, {case.name}", lambda r, i=index: r["report"][i]["round_trips"], "", 1),
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
