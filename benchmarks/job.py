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

    .venv/bin/python benchmarks/job.py --render                # docs again from job-results.json

Medians of --runs runs (default 5). Results: benchmarks/job-results.json, and the "Results"
section of docs/benchmarks.md (between its job.py markers), both written here, never by hand.
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
sys.path.insert(1, str(ROOT))

import bench  # noqa: E402

BEFORE = "cf2ddaa"  # main before the light core: openlineage-python in the core, the pip-in-venv install
JOB_CASE = bench.Case("1,250 jobs", 1_250, 25, 100, latencies=(0.0,), seed=11)
REPORT_CASES = [
    bench.Case("1,250 jobs", 1_250, 25, 100, seed=11),
    bench.Case("10,000 jobs", 10_000, 200, 100, seed=12),
]
PACKAGE = "databand-gitlab-reporter"
DOCS = ROOT / "docs" / "benchmarks.md"
MARK_START = "<!-- written by benchmarks/job.py: do not edit by hand -->"
MARK_END = "<!-- end of job.py -->"


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
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: write docs/benchmarks.md's section again from --output")
    args = parser.parse_args(argv)
    if args.render:
        write_docs(json.loads(args.output.read_text()))
        return 0
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    from reporter.settings import Settings  # the bound measured is the default of the tree measured

    results: dict = {"machine": bench.machine(), "runs": args.runs,
                     "gitlab_in_flight": Settings.__dataclass_fields__["gitlab_concurrency"].default,
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
    write_docs(results)
    print(table(results))
    return 0


def write_docs(results: dict) -> None:
    """Put section(results) between the markers of docs/benchmarks.md; the rest stays as written."""
    text = DOCS.read_text()
    if MARK_START not in text or MARK_END not in text:
        raise SystemExit(f"{DOCS}: the job.py markers are missing; put them back where the results go")
    head, rest = text.split(MARK_START, 1)
    _, tail = rest.split(MARK_END, 1)
    DOCS.write_text(f"{head}{MARK_START}\n{section(results)}\n{MARK_END}{tail}")


def section(results: dict) -> str:
    """The results in prose and one table: every figure read from `results`."""
    b, a, machine = results["before"], results["after"], results["machine"]
    small, large = a["report"][0], a["report"][-1]
    waves = large["waves_at_100ms"]
    in_flight = results.get("gitlab_in_flight", "the default number of requests")
    intro = (
        f"What the report job costs a pipeline, before ({results['sources']['before']}) and after "
        f"({results['sources']['after']}), side by side in one run of `python benchmarks/job.py --runs "
        f"{results['runs']}` on {machine.get('cpu')}, {machine.get('cores')} cores, CPython {machine.get('python')} "
        f"(load average {machine.get('load_average_at_start', [0])[0]:.1f} at the start; medians; wheels from a "
        "local wheelhouse, so no download is timed; reports against the stand-ins on 127.0.0.1; every number "
        "in [benchmarks/job-results.json](../benchmarks/job-results.json)):"
    )
    bullets = [
        f"- **Whole job** (a fresh venv, the install, the report of 1,250 jobs): "
        f"{b['whole_job_seconds']['median']:.1f} s before, {a['whole_job_seconds']['median']:.1f} s after, "
        f"of which the install {a['install_seconds']['median']:.1f} s. With the component's default image "
        "the install is gone too: the job is the report alone.",
        "- **Waves** are counted on the servers' side: the longest chain of requests each started after the "
        f"one before it ended. At {small['case']}: {small['waves_at_100ms']['gitlab']} GitLab waves for "
        f"{small['gitlab_requests']} requests and {small['waves_at_100ms']['databand']} Databand wave(s). At "
        f"{large['case']}: {waves['gitlab']} GitLab waves for {large['gitlab_requests']} requests through "
        f"{in_flight} in flight and {waves['databand']} Databand waves. The latency ratio ((time at +100 ms "
        "− time at 0 ms) / 100 ms) is shown too; it rewards CPU work that hides latency and swings from run "
        "to run, so the waves are the measure.",
        f"- **Report CPU at {small['case']}**: {small['cpu_seconds']['median']:.2f} s for "
        f"{small['gitlab_mb_received']:.1f} MB of GitLab's JSON read and {small['events_accepted']:,} events "
        f"made, masked and sent; at {large['case']}: {large['cpu_seconds']['median']:.2f} s for "
        f"{large['events_accepted']:,} events. This case has no test reports, no big logs and a small "
        "environment; [benchmarks-https.md](benchmarks-https.md) measures the heavier case.",
        "- **`--help`** loads only click and the reporter's small modules: the library behind the commands "
        "loads when a command runs.",
    ]
    return "\n".join([intro, "", *table(results).split("\n")[2:], "", *bullets])


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
