#!/usr/bin/env python3
"""Performance benchmark of the installed `databand-gitlab-reporter` command.

It serves generated pipelines of 10 to 10,000 jobs from the GitLab stand-in
(tests/standins.py, on 127.0.0.1), runs the command that sits next to this
Python (the venv's bin/) several times per case, at 0 ms and at 100 ms added
latency per request, and measures what the performance issue asks for:

* wall time of the whole command, interpreter start included;
* round trips on the critical path: (median at 100 ms - median at 0 ms) / 100 ms,
  and the same seen from the servers' side (sequential "waves" of requests);
* GitLab requests, by kind, against the minimum (pipeline, one per page of
  jobs and of bridges, one per failed job's log);
* peak RSS of the child (os.wait4's ru_maxrss), with a 100 MB failed-job log
  in the largest case, with GitLab ignoring Range (as it does) and honouring it;
* bytes posted to Databand, gzip and JSON;
* `--help` start-up, and (with --footprint) what a fresh venv install pulls in.

Run from the repository root with the venv that has the reporter installed:

    /work/venv/bin/python benchmarks/bench.py              # all of it, a few minutes
    /work/venv/bin/python benchmarks/bench.py --quick      # a subset, well under a minute
    /work/venv/bin/python benchmarks/bench.py --footprint  # also install into a fresh venv (downloads)
    /work/venv/bin/python benchmarks/bench.py --profile    # also -X importtime and cProfile of 10,000 jobs

The full run writes benchmarks/results.json and benchmarks/results.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from standins import (  # noqa: E402
    DatabandStandIn,
    GitLabStandIn,
    generate_pipeline,
    make_bridge,
    make_job,
    make_pipeline,
    make_project,
    synthetic_trace,
)

# The command as a user runs it: the console script of the venv this Python belongs to, or the one
# --command names (and the Python beside it runs -X importtime and the profile).
COMMAND = Path(sys.executable).parent / "databand-gitlab-reporter"
COMMAND_PYTHON = sys.executable

# The targets.
TARGET_ROUND_TRIPS = 4
TARGET_SECONDS = {1_000: 1.0, 10_000: 3.0}
TARGET_PEAK_MB = 100.0
TARGET_HELP_SECONDS = 0.4

LATENCY = 0.1  # the added latency of the round-trip measurement, seconds
MB = 1_000_000
PER_PAGE = 100
BIG_LOG = 100 * MB
FAILED_TAIL = b"ERROR: Job failed: exit code 1\n"


@dataclass(frozen=True)
class Case:
    name: str
    jobs: int
    bridges: int
    failed_every: int  # every n-th job fails: about 1 %, at least one
    big_log: int = 0  # bytes of one failed job's log (the others have a few KB)
    trace_ranges: bool = False  # False: the trace endpoint ignores Range, as GitLab's does
    latencies: tuple[float, ...] = (0.0, LATENCY)
    seed: int = 0
    # The targets are about reporting the pipeline itself: downstream pipelines and test
    # reports are later features with requests of their own, measured in a case of their own.
    args: tuple[str, ...] = ("--downstream-depth", "0", "--no-test-results")

    @property
    def core(self) -> bool:
        return bool(self.args)

    def failed(self) -> int:
        return self.jobs // self.failed_every if self.failed_every else 0

    def minimum_requests(self) -> int:
        """The pipeline, one per page of jobs and of bridges, one per failed job's log."""
        return 1 + max(1, math.ceil(self.jobs / PER_PAGE)) + max(1, math.ceil(self.bridges / PER_PAGE)) + self.failed()


def cases(quick: bool) -> list[Case]:
    if quick:
        return [
            Case("100 jobs", 100, 2, 100, seed=1),
            Case("1,000 jobs", 1_000, 20, 100, seed=2),
            Case("1,000 jobs, with downstream pipelines and test reports", 1_000, 20, 100, seed=7, args=()),
            Case("10 jobs + 100 MB log, no Range", 10, 1, 10, big_log=BIG_LOG, latencies=(0.0,), seed=5),
        ]
    return [
        Case("10 jobs", 10, 1, 10, seed=0),
        Case("100 jobs", 100, 2, 100, seed=1),
        Case("1,000 jobs", 1_000, 20, 100, seed=2),
        Case("1,000 jobs, with downstream pipelines and test reports", 1_000, 20, 100, seed=7, args=()),
        Case("10,000 jobs + 100 MB log", 10_000, 200, 100, big_log=BIG_LOG, seed=3),
        Case("10,000 jobs + 100 MB log, Range honoured", 10_000, 200, 100, big_log=BIG_LOG,
             trace_ranges=True, latencies=(0.0,), seed=4),
        Case("10 jobs + 100 MB log, no Range", 10, 1, 10, big_log=BIG_LOG, latencies=(0.0,), seed=5),
        Case("10 jobs + 100 MB log, Range honoured", 10, 1, 10, big_log=BIG_LOG, trace_ranges=True,
             latencies=(0.0,), seed=6),
    ]


# --------------------------------------------------------------------------
# Serving a case
# --------------------------------------------------------------------------


def small_log(job_id: int) -> bytes:
    lines = [b"\x1b[0KRunning with gitlab-runner 17.0.0\n"]
    lines += [b"[%06d] step %03d: loaded 1000 rows into staging.orders\n" % (job_id % 10**6, i) for i in range(120)]
    return b"".join(lines) + FAILED_TAIL


def serve(case: Case, gitlab: GitLabStandIn) -> dict:
    """Add the case's pipeline to the stand-in; what the command needs to find it."""
    project, pipeline, jobs = generate_pipeline(gitlab.url, case.jobs, failed_every=case.failed_every,
                                                seed=case.seed)
    # Each bridge triggers a small pipeline (two jobs) in another project, served too: the
    # reporter may follow it, and should find it rather than a 404.
    child_project = make_project(gitlab.url, id=43, path="acme/loaders")
    first_bridge = max(job["id"] for job in jobs) + 1
    bridges = []
    for i in range(case.bridges):
        child = make_pipeline(child_project, 90_000 + 1_000 * case.seed + i, status="success")
        first_child_job = 10_000_000 + 10_000 * case.seed + 2 * i
        gitlab.add_pipeline(child_project, child, [
            make_job(child_project, child, first_child_job, "load", "load", "success"),
            make_job(child_project, child, first_child_job + 1, "check", "check", "success"),
        ])
        bridges.append(make_bridge(project, pipeline, first_bridge + i, f"trigger:loader-{i + 1:04d}", "deploy",
                                   "success", downstream_pipeline=child))
    failed = [job["id"] for job in jobs if job["status"] == "failed"]
    assert len(failed) == case.failed() >= 1, (case, len(failed))
    traces: dict[int, Any] = {job_id: small_log(job_id) for job_id in failed}
    if case.big_log:
        traces[failed[0]] = synthetic_trace(case.big_log, tail=FAILED_TAIL)
    gitlab.add_pipeline(project, pipeline, jobs, bridges, traces)
    return {"project": project["id"], "pipeline": pipeline["id"], "failed": len(failed)}


@contextlib.contextmanager
def standins(case: Case):
    """Both stand-ins, keeping connections alive as GitLab's and Databand's front ends do."""
    with GitLabStandIn(trace_ranges=case.trace_ranges, keep_alive=True) as gitlab, \
            DatabandStandIn(keep_alive=True) as databand:
        yield gitlab, databand


def child_env(gitlab: GitLabStandIn, databand: DatabandStandIn) -> dict[str, str]:
    ours = ("GITLAB_", "DATABAND_", "CI_", "OPENLINEAGE_", "REQUESTS_CA_BUNDLE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours) and k != "CI"}
    env.update(GITLAB_URL=gitlab.url, GITLAB_TOKEN=gitlab.token,
               DATABAND_URL=databand.url, DATABAND_ACCESS_TOKEN=databand.token)
    return env


# --------------------------------------------------------------------------
# Running the command and reading what happened
# --------------------------------------------------------------------------

_KINDS = [
    ("jobs", re.compile(r"/pipelines/\d+/jobs$")),
    ("bridges", re.compile(r"/pipelines/\d+/bridges$")),
    ("pipeline", re.compile(r"/pipelines/\d+$")),
    ("trace", re.compile(r"/jobs/\d+/trace$")),
    ("test_report", re.compile(r"/pipelines/\d+/test_report(_summary)?$")),
    ("project", re.compile(r"^/api/v4/projects/[^/]+$")),
]
_PIPELINE_ID = re.compile(r"/pipelines/(\d+)")


def kind_of(path: str, own_pipeline: int | None = None) -> str:
    """The endpoint a request went to; "downstream" for any request about another pipeline."""
    other = _PIPELINE_ID.search(path)
    if own_pipeline is not None and other and int(other[1]) != own_pipeline:
        return "downstream"
    return next((kind for kind, pattern in _KINDS if pattern.search(path)), "other")


# Linux hands a process, at exec, the peak RSS of the memory it leaves (with vfork, its parent's),
# so wait4 from this process, which holds whole pipelines, would report at least this process's own
# peak for every child. A small launcher, started afresh, spawns and waits for the command instead:
# its own few MB are the floor (see `rss_floor_mb`), far below anything the reporter uses.
_LAUNCHER = r"""
import json, os, subprocess, sys, time
result, argv = sys.argv[1], sys.argv[2:]
started = time.monotonic()
proc = subprocess.Popen(argv)
_, status, usage = os.wait4(proc.pid, 0)
ended = time.monotonic()
proc.returncode = os.waitstatus_to_exitcode(status)
with open(result, "w") as out:
    json.dump({"started": started, "ended": ended, "exit": proc.returncode, "maxrss_kib": usage.ru_maxrss,
               "cpu": usage.ru_utime + usage.ru_stime}, out)
"""


def run_child(argv: list[str], env: dict[str, str], cwd: str) -> dict:
    """Run one process to its end: wall time (on time.monotonic, the stand-ins' clock), peak RSS and
    CPU time from wait4, and its stderr. Started through the launcher above."""
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r", suffix=".json") as result:
        subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCHER, result.name, *argv], env=env, cwd=cwd,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, check=True)
        measured = json.load(result)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return {
        "started": measured["started"], "ended": measured["ended"],
        "seconds": measured["ended"] - measured["started"], "exit": measured["exit"],
        "peak_rss_mb": measured["maxrss_kib"] * 1024 / MB,  # ru_maxrss is in KiB on Linux
        "cpu_seconds": measured["cpu"], "stderr": stderr,
    }


def waves(intervals: list[tuple[float, float]]) -> int:
    """The most requests that ran one after the other (pairwise disjoint in time):
    the requests on the critical path, as the servers saw them."""
    count, last_end = 0, -math.inf
    for start, end in sorted(intervals, key=lambda iv: iv[1]):
        if start >= last_end:
            count, last_end = count + 1, end
    return count


def settle(records: list) -> None:
    """A record's `finished` is written as its answer's last byte leaves; give a straggler a moment."""
    deadline = time.monotonic() + 1
    while any(r.finished == 0 for r in records) and time.monotonic() < deadline:
        time.sleep(0.01)


def run_case_once(case: Case, where: dict, gitlab: GitLabStandIn, databand: DatabandStandIn,
                  env: dict[str, str], cwd: str) -> dict:
    gitlab.clear_records()
    databand.clear_records()
    argv = [str(COMMAND), "resend", "--project", str(where["project"]), "--pipeline", str(where["pipeline"]),
            *case.args]
    run = run_child(argv, env, cwd)
    if run["exit"] != 0:
        raise SystemExit(f"{case.name}: the command exited {run['exit']}:\n{run['stderr']}")
    gl_records, db_records = list(gitlab.requests), list(databand.received)
    settle(gl_records + db_records)

    by_kind: dict[str, int] = {}
    for record in gl_records:
        kind = kind_of(record.path, where["pipeline"])
        by_kind[kind] = by_kind.get(kind, 0) + 1
    traces = [r for r in gl_records if kind_of(r.path) == "trace"]
    gl_times = [(r.started, r.finished) for r in gl_records]
    db_times = [(r.started, r.finished) for r in db_records]
    first_gl = min((s for s, _ in gl_times), default=run["ended"])
    last_gl = max((e for _, e in gl_times), default=first_gl)
    first_db = min((s for s, _ in db_times), default=last_gl)
    last_db = max((e for _, e in db_times), default=first_db)
    accepted = sum(len(p) for p in databand.payloads)
    return {
        "seconds": run["seconds"],
        "cpu_seconds": run["cpu_seconds"],
        "peak_rss_mb": run["peak_rss_mb"],
        "gitlab_requests": len(gl_records),
        "gitlab_by_kind": by_kind,
        "gitlab_not_ok": sum(1 for r in gl_records if r.status not in (200, 206)),
        "trace_range_requests": sum(1 for r in traces if r.range),
        "trace_partial_answers": sum(1 for r in traces if r.status == 206),
        "trace_bytes": sum(r.bytes_sent for r in traces),
        "gitlab_bytes": sum(r.bytes_sent for r in gl_records),
        "gitlab_connections": gitlab.connections,
        "databand_connections": databand.connections,
        "databand_posts": len(db_records),
        "databand_gzip_bytes": sum(r.bytes for r in db_records),
        "databand_json_bytes": sum(r.json_bytes or 0 for r in db_records),
        "events_accepted": accepted,
        "waves_gitlab": waves(gl_times),
        "waves_databand": waves(db_times),
        "waves_total": waves(gl_times + db_times),
        "phases": {
            "start_to_first_gitlab": first_gl - run["started"],
            "gitlab": last_gl - first_gl,
            "gitlab_to_first_databand": first_db - last_gl,
            "databand": last_db - first_db,
            "last_databand_to_exit": run["ended"] - last_db,
        },
    }


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def run_case(case: Case, runs: int, cwd: str, say) -> dict:
    with standins(case) as (gitlab, databand):
        where = serve(case, gitlab)
        env = child_env(gitlab, databand)
        by_latency = {}
        for latency in case.latencies:
            gitlab.latency = databand.latency = latency
            results = []
            for _ in range(runs):
                results.append(run_case_once(case, where, gitlab, databand, env, cwd))
                say(".")
            by_latency[f"{latency * 1000:.0f}ms"] = results
    base = by_latency["0ms"]
    last = base[-1]
    summary: dict[str, Any] = {
        "case": case.name, "jobs": case.jobs, "bridges": case.bridges, "failed": where["failed"],
        "big_log_bytes": case.big_log, "gitlab_honours_range": case.trace_ranges,
        "seconds": spread([r["seconds"] for r in base]),
        "cpu_seconds": spread([r["cpu_seconds"] for r in base]),
        "peak_rss_mb": spread([r["peak_rss_mb"] for r in base]),
        "gitlab_requests": last["gitlab_requests"],
        "gitlab_requests_all_runs": sorted({r["gitlab_requests"] for r in base}),
        "gitlab_minimum": case.minimum_requests() if case.core else None,
        "args": list(case.args),
        "gitlab_by_kind": last["gitlab_by_kind"],
        "gitlab_not_ok": last["gitlab_not_ok"],
        "gitlab_mb_received": last["gitlab_bytes"] / MB,
        "gitlab_connections": last["gitlab_connections"],
        "databand_connections": last["databand_connections"],
        "trace_range_requests": last["trace_range_requests"],
        "trace_partial_answers": last["trace_partial_answers"],
        "trace_mb_received": last["trace_bytes"] / MB,
        "databand_posts": last["databand_posts"],
        "databand_gzip_kb": last["databand_gzip_bytes"] / 1000,
        "databand_json_kb": last["databand_json_bytes"] / 1000,
        "events_accepted": last["events_accepted"],
        "phases_median": {k: statistics.median(r["phases"][k] for r in base) for k in last["phases"]},
    }
    slow = by_latency.get(f"{LATENCY * 1000:.0f}ms")
    if slow:
        summary["seconds_at_100ms"] = spread([r["seconds"] for r in slow])
        summary["round_trips"] = (summary["seconds_at_100ms"]["median"] - summary["seconds"]["median"]) / LATENCY
        summary["waves_at_100ms"] = {
            side: statistics.median(r[f"waves_{side}"] for r in slow) for side in ("gitlab", "databand", "total")
        }
    return summary


# --------------------------------------------------------------------------
# Start-up, profile, footprint
# --------------------------------------------------------------------------


def startup(runs: int, cwd: str, command: Path | None = None, python: str | None = None) -> dict:
    command, python = command or COMMAND, python or COMMAND_PYTHON
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITLAB_", "DATABAND_", "CI_"))}
    run_child([str(command), "--help"], env, cwd)  # warm the page cache and __pycache__
    helps = [run_child([str(command), "--help"], env, cwd) for _ in range(runs)]
    bare = [run_child([python, "-c", "pass"], env, cwd) for _ in range(runs)]
    return {
        "help_seconds": spread([r["seconds"] for r in helps]),
        "help_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in helps),
        "bare_python_seconds": spread([r["seconds"] for r in bare]),
    }


def import_times(stderr: str, top: int = 12) -> dict:
    """Top-level imports by cumulative time, from `python -X importtime`."""
    rows = []
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match and len(match[3]) == 1:  # one space: imported by the program itself, not by a module
            rows.append((int(match[2]) / 1e6, match[4]))
    rows.sort(reverse=True)
    return {"total_seconds": sum(s for s, _ in rows), "top": [{"module": m, "seconds": s} for s, m in rows[:top]]}


# Time a thread spends blocked shows as the tottime of these: waits (locks, queues, an executor's
# submit holding its lock), and calls that release the GIL (sockets, stat), whose time includes
# waiting to get it back while other threads run. They are left out of the "work" ranking.
_WAITS = re.compile(r"acquire|\bwait\b|join|select|poll|recv|sleep|accept|connect|_thread\.lock|result|submit"
                    r"|_queue|socket|sendall|settimeout|getaddrinfo|posix\.")


def profile(case: Case, cwd: str, say) -> dict:
    """-X importtime of --help and of a run, and per-thread cProfile of a run (profile_threads.py),
    of the given case at 0 ms added latency."""
    out: dict[str, Any] = {"case": case.name}
    env_plain = {k: v for k, v in os.environ.items() if not k.startswith(("GITLAB_", "DATABAND_", "CI_"))}
    helped = run_child([COMMAND_PYTHON, "-X", "importtime", "-m", "reporter", "--help"], env_plain, cwd)
    out["imports_help"] = import_times(helped["stderr"])
    with standins(case) as (gitlab, databand):
        where = serve(case, gitlab)
        env = child_env(gitlab, databand)
        args = ["resend", "--project", str(where["project"]), "--pipeline", str(where["pipeline"]), *case.args]
        imported = run_child([COMMAND_PYTHON, "-X", "importtime", "-m", "reporter", *args], env, cwd)
        out["imports_run"] = import_times(imported["stderr"])
        say(".")
        prefix = str(Path(cwd) / "run-")
        profiled = run_child([COMMAND_PYTHON, str(HERE / "profile_threads.py"), prefix, *args], env, cwd)
        say(".")
    if profiled["exit"] != 0 or not Path(prefix + "MAIN.prof").exists():
        out["cprofile_error"] = profiled["stderr"][-2000:]
        return out
    out["profiled_seconds"] = profiled["seconds"]
    main_stats = pstats.Stats(prefix + "MAIN.prof")
    out["main_cumulative"] = _rows(main_stats, "cumulative", 25)
    if Path(prefix + "THREADS.prof").exists():
        threads = pstats.Stats(prefix + "THREADS.prof")
        out["threads_cumulative"] = _rows(threads, "cumulative", 25)
        both = pstats.Stats(prefix + "MAIN.prof")
        both.add(prefix + "THREADS.prof")
    else:
        both = main_stats
    out["work_tottime"] = [r for r in _rows(both, "tottime", 80) if not _WAITS.search(r["function"])][:20]
    out["reporter_cumulative"] = [r for r in _rows(both, "cumulative", 10_000)
                                  if r["function"].startswith("reporter/")][:25]
    return out


def _rows(stats: pstats.Stats, key: str, top: int) -> list[dict]:
    index = 3 if key == "cumulative" else 2
    ranked = sorted(stats.stats.items(), key=lambda item: item[1][index], reverse=True)
    rows = []
    for (filename, line, func), (_, ncalls, tottime, cumtime, _) in ranked[:top]:
        where = f"{_short(filename)}:{line}" if line else filename
        rows.append({"function": f"{where}({func})" if line else func, "calls": ncalls,
                     "tottime": tottime, "cumtime": cumtime})
    return rows


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/lib/python3", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


_LIST_DISTRIBUTIONS = r"""
import importlib.metadata as md, json, os
rows = []
for dist in md.distributions():
    size = files = 0
    for f in dist.files or []:
        try:
            size += os.path.getsize(f.locate()); files += 1
        except OSError:
            pass
    rows.append({"name": dist.metadata["Name"], "version": dist.version, "bytes": size, "files": files})
print(json.dumps(sorted(rows, key=lambda r: -r["bytes"])))
"""


def footprint(cwd: str, say) -> dict:
    """Install the repository (not editable) into a fresh venv; list what it pulled in."""
    venv = Path(cwd) / "fresh-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # -I and a neutral cwd: run from the repository, the editable install's egg-info would be listed too.
    listed = lambda: json.loads(subprocess.run([str(python), "-I", "-c", _LIST_DISTRIBUTIONS], check=True,  # noqa: E731
                                               capture_output=True, text=True, cwd=cwd).stdout)
    seeded = {row["name"].lower() for row in listed()}
    began = time.monotonic()
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(ROOT)], check=True, cwd=cwd)
    install_seconds = time.monotonic() - began
    say(".")
    rows = listed()
    pulled = [row for row in rows if row["name"].lower() not in seeded]
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    site_bytes = sum(p.stat().st_size for p in Path(site).rglob("*") if p.is_file())
    fresh_help = startup(10, cwd, command=venv / "bin" / "databand-gitlab-reporter", python=str(python))
    return {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "install_seconds": install_seconds,
        "packages": len(pulled),
        "mb": sum(row["bytes"] for row in pulled) / MB,
        "distributions": [{**row, "mb": row["bytes"] / MB} for row in pulled],
        "venv_seeds": sorted(seeded),
        "site_packages_mb_with_seeds": site_bytes / MB,
        "help_seconds_fresh_install": fresh_help["help_seconds"],
    }


# --------------------------------------------------------------------------
# The machine, the verdicts, the report
# --------------------------------------------------------------------------


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) * 1024 / 1e9, 1)
    except OSError:
        pass

    floor = run_child(["/bin/true"] if Path("/bin/true").exists() else [sys.executable, "-S", "-c", "pass"],
                      dict(os.environ), str(ROOT))
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gb": memory,
        "rss_floor_mb": floor["peak_rss_mb"],
        "load_average_at_start": list(os.getloadavg()),
        "python": platform.python_version(), "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "command": str(COMMAND),
        "commit": _git("rev-parse", "--short", "HEAD"),
        # The full commit measured, so that a figure can be traced back whatever its age.
        "commit_sha": _git("rev-parse", "HEAD"),
        "reporter_uncommitted_changes": bool(_git("status", "--porcelain", "--", "reporter", "pyproject.toml")),
        "reporter_state_at_start": reporter_state(),
    }


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip()


def reporter_state() -> str:
    """The reporter's code as measured: the committed tree of reporter/ and a hash of any uncommitted
    diff, so that a change made while the benchmark runs (others work in the same tree) shows."""
    import hashlib

    diff = _git("diff", "HEAD", "--", "reporter", "pyproject.toml")
    untracked = _git("ls-files", "--others", "--exclude-standard", "--", "reporter")
    return _git("rev-parse", "--short", "HEAD:reporter") + (
        "+" + hashlib.sha1((diff + untracked).encode()).hexdigest()[:8] if diff or untracked else "")


def verdicts(results: dict) -> list[dict]:
    out = []

    def check(target: str, measured: float | None, limit: float, unit: str, where: str) -> None:
        if measured is None:
            return
        ok = measured <= limit
        by = "" if ok else f"{measured - limit:+.2f} {unit} ({measured / limit:.1f}x)"
        out.append({"target": target, "where": where, "limit": limit, "measured": measured, "unit": unit,
                    "met": ok, "missed_by": by})

    for case in results["cases"]:
        if not case.get("gitlab_minimum"):
            continue  # the features' case: measured, not held to the core targets
        if "round_trips" in case:
            check("round trips <= 4", case["round_trips"], TARGET_ROUND_TRIPS, "round trips", case["case"])
        if case["jobs"] in TARGET_SECONDS and not case["gitlab_honours_range"]:
            check(f"{case['jobs']:,} jobs under {TARGET_SECONDS[case['jobs']]:g} s", case["seconds"]["median"],
                  TARGET_SECONDS[case["jobs"]], "s", case["case"])
        if case["jobs"] >= 10_000 and case["big_log_bytes"]:
            check("peak RSS < 100 MB (10,000 jobs, 100 MB log)", case["peak_rss_mb"]["max"], TARGET_PEAK_MB, "MB",
                  case["case"])
        check("GitLab requests = minimum", case["gitlab_requests"], case["gitlab_minimum"], "requests", case["case"])
    if "startup" in results:
        check("--help under 0.4 s", results["startup"]["help_seconds"]["median"], TARGET_HELP_SECONDS, "s",
              "the measured command")
    return out


def _s(spread_: dict) -> str:
    return f"{spread_['median']:.2f} ({spread_['min']:.2f}–{spread_['max']:.2f})"


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['implementation']} {m['python']}, "
        f"{m['system']}; {results['measured']}"
        + (" **which changed during the run**" if results.get("reporter_changed_during_run") else "")
        + f"; {results['runs']} runs per cell, median (min–max); load average "
        f"{m['load_average_at_start'][0]:.1f} at start, {results.get('load_average_at_end', [0])[0]:.1f} at end.",
        "",
        "| case | GitLab requests (min) | pipeline / jobs / bridges / traces | wall s, 0 ms | wall s, +100 ms"
        " | round trips (waves GitLab+Databand) | peak RSS MB | CPU s | log MB read | Databand POSTs, gzip / JSON KB"
        " | connections GitLab / Databand |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in results["cases"]:
        k = c["gitlab_by_kind"]
        kinds = " / ".join(str(k.get(name, 0)) for name in ("pipeline", "jobs", "bridges", "trace"))
        extra = {n: v for n, v in k.items() if n not in ("pipeline", "jobs", "bridges", "trace")}
        if extra:
            kinds += " + " + ", ".join(f"{v} {n}" for n, v in extra.items())
        slow = _s(c["seconds_at_100ms"]) if "seconds_at_100ms" in c else "–"
        if "round_trips" in c:
            w = c["waves_at_100ms"]
            trips = f"{c['round_trips']:.1f} ({w['gitlab']:g}+{w['databand']:g})"
        else:
            trips = "–"
        log = f"{c['trace_mb_received']:.1f}"
        if c["trace_range_requests"]:
            log += f" ({c['trace_partial_answers']}/{c['trace_range_requests']} Range answered 206)"
        lines.append(
            f"| {c['case']} | {c['gitlab_requests']} ({c['gitlab_minimum']}) | {kinds} | {_s(c['seconds'])} | {slow} "
            f"| {trips} | {_s(c['peak_rss_mb'])} | {c['cpu_seconds']['median']:.2f} | {log} "
            f"| {c['databand_posts']}, {c['databand_gzip_kb']:.0f} / {c['databand_json_kb']:.0f} "
            f"| {c['gitlab_connections']} / {c['databand_connections']} |"
        )
    lines += ["", "Where the wall time goes (0 ms, medians, seconds):", "",
              "| case | start → 1st GitLab request | GitLab | → 1st Databand POST | Databand | → exit |",
              "|---|---|---|---|---|---|"]
    for c in results["cases"]:
        p = c["phases_median"]
        lines.append(f"| {c['case']} | {p['start_to_first_gitlab']:.2f} | {p['gitlab']:.2f} "
                     f"| {p['gitlab_to_first_databand']:.2f} | {p['databand']:.2f} | {p['last_databand_to_exit']:.2f} |")
    if "startup" in results:
        s = results["startup"]
        lines += ["", f"`databand-gitlab-reporter --help`: {_s(s['help_seconds'])} s, "
                      f"peak RSS {s['help_peak_rss_mb']:.0f} MB; bare `python -c pass`: {_s(s['bare_python_seconds'])} s."]
    lines += ["", "| target | where | measured | limit | met | missed by |", "|---|---|---|---|---|---|"]
    for v in results["verdicts"]:
        lines.append(f"| {v['target']} | {v['where']} | {v['measured']:.2f} {v['unit']} | {v['limit']:g} "
                     f"| {'yes' if v['met'] else '**no**'} | {v['missed_by']} |")
    f = results.get("footprint")
    if f:
        lines += ["", f"Install footprint (fresh venv, `pip install .`, Python {f['python']}, measured {f['measured_at']}): "
                      f"{f['packages']} distributions, {f['mb']:.1f} MB (venv seeds {', '.join(f['venv_seeds'])} "
                      f"not counted); `--help` from that install: {_s(f['help_seconds_fresh_install'])} s.", "",
                  "| distribution | version | MB | files |", "|---|---|---|---|"]
        for d in f["distributions"]:
            lines.append(f"| {d['name']} | {d['version']} | {d['mb']:.2f} | {d['files']} |")
    p = results.get("profile")
    if p:
        lines += ["", f"Profile of {p['case']} (0 ms):", "",
                  f"- imports for `--help`: {p['imports_help']['total_seconds']:.3f} s; top: "
                  + ", ".join(f"{t['module']} {t['seconds']:.3f}" for t in p["imports_help"]["top"][:8]),
                  f"- imports for a run: {p['imports_run']['total_seconds']:.3f} s; top: "
                  + ", ".join(f"{t['module']} {t['seconds']:.3f}" for t in p["imports_run"]["top"][:8])]
        for key, title in (("reporter_cumulative", "the reporter's own functions, all threads, by cumulative "
                                                   "time (a function called from several threads at once counts "
                                                   "each thread's time)"),
                           ("main_cumulative", "main thread, by cumulative time"),
                           ("threads_cumulative", "other threads (GitLab reader and its pools) merged, "
                                                  "by cumulative time"),
                           ("work_tottime", "all threads, by own time; waits, socket and file-system calls "
                                            "left out (with several threads their times include waiting for "
                                            "the GIL)")):
            if key in p:
                lines += ["", f"cProfile, {title}:", "", "| function | calls | tottime s | cumtime s |",
                          "|---|---|---|---|"]
                for r in p[key]:
                    lines.append(f"| `{r['function']}` | {r['calls']} | {r['tottime']:.3f} | {r['cumtime']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast subset (3 runs, up to 1,000 jobs); writes no file "
                                                             "unless --output is given")
    parser.add_argument("--runs", type=int, help="runs per case and latency (default 5, --quick 3)")
    parser.add_argument("--footprint", action="store_true",
                        help="also install the repository into a fresh venv (downloads from the package index)")
    parser.add_argument("--profile", action="store_true", help="also -X importtime and cProfile of the largest case")
    parser.add_argument("--command", type=Path, help="measure this databand-gitlab-reporter instead (a venv's "
                                                     "bin/; its Python runs the profile)")
    parser.add_argument("--label", help="what --command is (e.g. the commit it was installed from), for the results")
    parser.add_argument("--output", type=Path, help="JSON results file (default benchmarks/results.json; "
                                                    "a .md beside it gets the tables)")
    args = parser.parse_args(argv)
    global COMMAND, COMMAND_PYTHON
    if args.command:
        COMMAND = args.command.absolute()
        COMMAND_PYTHON = str(COMMAND.parent / "python")
    if not COMMAND.exists():
        print(f"{COMMAND} not found: run with the Python of the venv where the reporter is installed", file=sys.stderr)
        return 2
    runs = args.runs or (3 if args.quick else 5)
    output = args.output or (None if args.quick else HERE / "results.json")

    def say(text: str) -> None:
        print(text, end="", file=sys.stderr, flush=True)

    began = time.monotonic()
    m = machine()
    if args.command:
        measured = f"command {COMMAND}" + (f" ({args.label})" if args.label else "")
    else:
        measured = (f"reporter at {m['commit']} (reporter/ tree {m['reporter_state_at_start']})"
                    + (" with uncommitted changes in reporter/" if m["reporter_uncommitted_changes"] else ""))
    results: dict[str, Any] = {
        "measured": measured,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": m, "runs": runs, "latency_ms": LATENCY * 1000,
        "targets": {"round_trips": TARGET_ROUND_TRIPS, "seconds": {str(k): v for k, v in TARGET_SECONDS.items()},
                    "peak_mb": TARGET_PEAK_MB, "help_seconds": TARGET_HELP_SECONDS},
        "cases": [],
    }
    with tempfile.TemporaryDirectory(prefix="reporter-bench-") as cwd:
        say("start-up ")
        results["startup"] = startup(10 if not args.quick else 5, cwd)
        for case in cases(args.quick):
            say(f"\n{case.name} ")
            results["cases"].append(run_case(case, runs, cwd, say))
        if args.profile:
            say("\nprofile ")
            largest = max((c for c in cases(args.quick) if not c.trace_ranges), key=lambda c: (c.jobs, c.big_log))
            results["profile"] = profile(largest, cwd, say)
        if args.footprint:
            say("\nfootprint ")
            results["footprint"] = footprint(cwd, say)
    if not args.footprint and output and output.exists():
        # Keep the last measured footprint (it names its own date), as it needs a download to redo.
        previous = json.loads(output.read_text()).get("footprint")
        if previous:
            results["footprint"] = previous
    results["load_average_at_end"] = list(os.getloadavg())
    results["reporter_changed_during_run"] = (not args.command
                                              and reporter_state() != results["machine"]["reporter_state_at_start"])
    if results["reporter_changed_during_run"]:
        say("\nwarning: reporter/ changed while the benchmark ran; the numbers mix two versions\n")
    results["verdicts"] = verdicts(results)
    results["benchmark_seconds"] = time.monotonic() - began
    say(f"\ndone in {results['benchmark_seconds']:.0f} s\n")
    table = markdown(results)
    print(table)
    if output:
        output.write_text(json.dumps(results, indent=1) + "\n")
        output.with_suffix(".md").write_text(table)
        say(f"wrote {output} and {output.with_suffix('.md')}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
