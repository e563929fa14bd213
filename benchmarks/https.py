#!/usr/bin/env python3
"""What a report costs over HTTPS, as every real GitLab and Databand is, beside plain http and
beside the import floor, in one run.

Both stand-ins of tests/standins.py (keeping connections alive, as GitLab's and Databand's front
ends do) are served over plain http and, in a second pair, behind TLS with a self-signed
certificate for 127.0.0.1; the reporter trusts a CA file the size of the system bundle (the
system's bundle with that certificate appended), as CI_SERVER_TLS_CA_FILE and DATABAND_CA_FILE.
Every command runs with a CI-sized environment (about 290 variables, as a GitLab job has), since
requests reads the environment for proxies and CA settings.

Measured per case, medians of --runs runs (CPU is user + system time from wait4):

* report CPU, wall and peak RSS over http and over https, and their ratio;
* the import floor: `python -c "import gitlab, requests, click; gitlab.Gitlab('https://...')"`,
  in the same venv and run, and the report's CPU over it;
* connections opened to GitLab and to Databand, POSTs to Databand;
* server-side waves of GitLab requests at +100 ms a request (the longest chain of requests each
  started after the one before it ended);
* whether the first Databand POST left before the last GitLab answer was read;
* the wall of the seed poller's way (pipeline, one page of jobs, one POST: what
  ../shared/seed's GitLab example does) at 0 ms, and the report's wall over it.

    .venv/bin/python benchmarks/https.py              # 1,250 and 10,000 jobs, 5 runs each
    .venv/bin/python benchmarks/https.py --runs 3 --quick

It writes benchmarks/https-results.json and docs/benchmarks-https.md (the tables, the machine and
the commit measured); neither is edited by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

import bench  # noqa: E402
from hostile import self_signed, serve_tls  # noqa: E402
from standins import DatabandStandIn, GitLabStandIn, generate_pipeline  # noqa: E402

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
RESULTS = HERE / "https-results.json"
DOC = ROOT / "docs" / "benchmarks-https.md"
LOG_BYTES = 160_000  # a failed job's log in the 1,250-job case
FLOOR = "import gitlab, requests, click; gitlab.Gitlab('https://gitlab.example.com')"


@dataclass(frozen=True)
class Case:
    name: str
    jobs: int
    failed_every: int
    log_bytes: int
    seed: int

    @property
    def failed(self) -> int:
        return self.jobs // self.failed_every


CASES = [Case("1,250 jobs, 25 failed with 160 KB logs", 1_250, 50, LOG_BYTES, 21),
         Case("10,000 jobs, 100 failed", 10_000, 100, 8_000, 22)]

# The targets (issue 20).
TARGETS = {"https_over_http": 1.15, "over_floor_1250": 2.0, "cpu_http_10000": 1.0, "cpu_https_10000": 1.15,
           "rss_10000": 80.0, "gitlab_waves_1250": 2, "wall_over_poller": 2.0}


def ci_environment(count: int = 290) -> dict[str, str]:
    """Variables shaped like a GitLab job's (names and sizes), none of which the reporter reads."""
    env = {}
    for i in range(count):
        name = f"CI_BENCH_VARIABLE_{i:03d}" if i % 2 else f"PROJECT_SETTING_{i:03d}"
        env[name] = f"value-{i:03d}-" + "x" * (20 + i % 60)
    return env


def log_of(job_id: int, size: int) -> bytes:
    line = b"[%08d] loaded 1000 rows into staging.orders, checksum 0f3a9c\n" % job_id
    body = line * max(1, size // len(line))
    return body[: size - len(bench.FAILED_TAIL)] + bench.FAILED_TAIL


def install(case: Case, gitlab: GitLabStandIn) -> dict:
    project, pipeline, jobs = generate_pipeline(gitlab.url, case.jobs, failed_every=case.failed_every, seed=case.seed)
    failed = [job["id"] for job in jobs if job["status"] == "failed"]
    gitlab.add_pipeline(project, pipeline, jobs, [], {i: log_of(i, case.log_bytes) for i in failed})
    return {"project": project["id"], "pipeline": pipeline["id"], "failed": len(failed)}


_POLLER = r"""
import gzip, json, sys, requests
gitlab, token, project, pipeline, databand, dtoken, verify = sys.argv[1:8]
verify = verify if verify != "-" else True
s = requests.Session(); s.headers["Private-Token"] = token
base = f"{gitlab}/api/v4/projects/{project}"
p = s.get(f"{base}/pipelines/{pipeline}", timeout=15, verify=verify).json()
jobs = s.get(f"{base}/pipelines/{pipeline}/jobs?per_page=100&include_retried=true", timeout=15, verify=verify).json()
events = [{"eventType": "COMPLETE", "eventTime": j.get("finished_at") or p["created_at"], "run": {"runId": str(j["id"])},
           "job": {"namespace": "gitlab", "name": j["name"]}} for j in jobs]
r = requests.post(databand, data=gzip.compress(json.dumps(events).encode()), timeout=30, verify=verify,
                  headers={"Authorization": f"Bearer {dtoken}", "Content-Type": "application/json",
                           "Content-Encoding": "gzip"})
sys.exit(0 if r.ok else 1)
"""


def median(values: list[float]) -> float:
    return statistics.median(values)


def measure(case: Case, runs: int, tls: tuple[Path, Path, Path] | None, cwd: str, say) -> dict:
    with GitLabStandIn(keep_alive=True) as gitlab, DatabandStandIn(keep_alive=True) as databand:
        gitlab_url, databand_url = gitlab.url, databand.url
        if tls is not None:
            cert, key, bundle = tls
            gitlab_url = serve_tls(gitlab, cert, key)
            root = serve_tls(databand, cert, key)
            databand_url = root + databand.url.split(str(databand._server.server_port), 1)[1]
        where = install(case, gitlab)
        env = {**bench.child_env(gitlab, databand), **ci_environment(),
               "GITLAB_URL": gitlab_url, "DATABAND_URL": databand_url}
        if tls is not None:
            env.update(CI_SERVER_TLS_CA_FILE=str(tls[2]), DATABAND_CA_FILE=str(tls[2]))
        argv = [str(bench.COMMAND), "resend", "--project", str(where["project"]), "--pipeline",
                str(where["pipeline"]), "--downstream-depth", "0", "--no-test-results"]
        samples = []
        for latency in (0.0, bench.LATENCY):
            gitlab.latency = databand.latency = latency
            for _ in range(runs if latency == 0 else max(1, runs // 2)):
                gitlab.clear_records()
                databand.clear_records()
                run = bench.run_child(argv, env, cwd)
                if run["exit"] != 0:
                    raise SystemExit(f"{case.name}: exit {run['exit']}\n{run['stderr']}")
                records, posts = list(gitlab.requests), list(databand.received)
                bench.settle(records + posts)
                last_gitlab = max(r.finished for r in records)
                samples.append({
                    "latency": latency, "cpu": run["cpu_seconds"], "wall": run["seconds"], "rss": run["peak_rss_mb"],
                    "gitlab_connections": gitlab.connections, "databand_connections": databand.connections,
                    "posts": len(posts), "gitlab_requests": len(records),
                    "gitlab_waves": bench.waves([(r.started, r.finished) for r in records]),
                    "first_post_before_last_gitlab_answer": min(p.started for p in posts) < last_gitlab,
                })
                say(".")
        floor = [bench.run_child([sys.executable, "-c", FLOOR], env, cwd)["cpu_seconds"] for _ in range(runs)]
        gitlab.latency = databand.latency = 0.0
        poller_argv = [sys.executable, "-c", _POLLER, gitlab_url, gitlab.token, str(where["project"]),
                       str(where["pipeline"]), databand_url, databand.token, str(tls[2]) if tls else "-"]
        poller = [bench.run_child(poller_argv, env, cwd)["seconds"] for _ in range(runs)]
    fast = [s for s in samples if s["latency"] == 0]
    slow = [s for s in samples if s["latency"] > 0]
    return {
        "cpu": median([s["cpu"] for s in fast]), "wall": median([s["wall"] for s in fast]),
        "rss": median([s["rss"] for s in fast]), "floor_cpu": median(floor), "poller_wall": median(poller),
        "gitlab_connections": max(s["gitlab_connections"] for s in fast),
        "databand_connections": max(s["databand_connections"] for s in fast),
        "posts": fast[-1]["posts"], "gitlab_requests": fast[-1]["gitlab_requests"],
        "gitlab_waves_at_100ms": median([s["gitlab_waves"] for s in slow]),
        "first_post_before_last_gitlab_answer": all(s["first_post_before_last_gitlab_answer"] for s in fast),
        "runs": runs,
    }


def table(results: dict) -> str:
    lines = ["| case | measure | http | https | target |", "|---|---|---|---|---|"]
    for name, sides in results["cases"].items():
        http, https = sides["http"], sides["https"]

        def row(measure: str, key: str, target: str = "", fmt: str = "{:.2f}") -> None:
            lines.append(f"| {name} | {measure} | {fmt.format(http[key])} | {fmt.format(https[key])} | {target} |")

        row("report CPU, s", "cpu")
        row("report wall, s", "wall")
        row("peak RSS, MB", "rss", fmt="{:.0f}")
        row("import floor CPU, s", "floor_cpu")
        lines.append(f"| {name} | report CPU / floor | {http['cpu'] / http['floor_cpu']:.2f} | "
                     f"{https['cpu'] / https['floor_cpu']:.2f} | ≤ {TARGETS['over_floor_1250']} over https at 1,250 |")
        lines.append(f"| {name} | https CPU / http CPU | | {https['cpu'] / http['cpu']:.2f} | "
                     f"≤ {TARGETS['https_over_http']} |")
        row("GitLab connections", "gitlab_connections", "≤ the in-flight bound (32)", "{}")
        row("Databand connections", "databand_connections", "one per sender (8 senders)", "{}")
        row("Databand POSTs", "posts", "", "{}")
        row("GitLab server-side waves at +100 ms", "gitlab_waves_at_100ms", "2 at 1,250 jobs", "{:.0f}")
        lines.append(f"| {name} | report wall / seed poller's wall (0 ms) | {http['wall'] / http['poller_wall']:.2f} | "
                     f"{https['wall'] / https['poller_wall']:.2f} | ≤ {TARGETS['wall_over_poller']} |")
        row("first POST before the last GitLab answer", "first_post_before_last_gitlab_answer", "yes at 10,000", "{}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="the 1,250-job case only")
    args = parser.parse_args(argv)
    say = lambda text: print(text, end="", file=sys.stderr, flush=True)  # noqa: E731
    results: dict = {"machine": bench.machine(), "cases": {}}
    with tempfile.TemporaryDirectory() as work:
        cert, key = self_signed(Path(work))
        bundle = Path(work) / "bundle.pem"
        system = SYSTEM_BUNDLE.read_bytes() if SYSTEM_BUNDLE.exists() else b""
        bundle.write_bytes(system + b"\n" + cert.read_bytes())
        results["machine"]["ca_bundle_bytes"] = bundle.stat().st_size
        for case in CASES[:1] if args.quick else CASES:
            say(f"{case.name}: ")
            results["cases"][case.name] = {
                "http": measure(case, args.runs, None, work, say),
                "https": measure(case, args.runs, (cert, key, bundle), work, say),
            }
            say("\n")
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    machine = results["machine"]
    DOC.write_text(
        "# The report over HTTPS\n\n"
        f"Written by `benchmarks/https.py --runs {args.runs}{' --quick' if args.quick else ''}` (medians; not edited "
        f"by hand) at commit {machine['commit']} (reporter tree {machine['reporter_state_at_start']}), on "
        f"{machine['cpu']}, {machine['cores']} cores, CPython {machine['python']}; the CA file trusted is "
        f"{machine['ca_bundle_bytes']:,} bytes; every command ran with a 290-variable environment. "
        "What each figure means: the script's docstring.\n\n" + table(results) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
