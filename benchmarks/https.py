#!/usr/bin/env python3
"""What a report costs over HTTPS, as every real GitLab and Databand is, beside plain http and
beside the import floor, before a change and after it, in one run.

Both stand-ins of tests/standins.py (keeping connections alive, as GitLab's and Databand's front
ends do) are served over plain http and, in a second pair, behind TLS with a self-signed
certificate for 127.0.0.1; the reporter trusts a CA file the size of the system bundle (the
system's bundle with that certificate appended), as CI_SERVER_TLS_CA_FILE and DATABAND_CA_FILE.
Every command runs with a CI-sized environment (about 290 variables, as a GitLab job has), since
requests reads the environment for proxies and CA settings.

The reporter of this work tree ("after") and, with --before REF, the reporter of that commit
("before"), each built into a wheel and installed into a venv of its own as the component installs
it, run against the same stand-ins, one
after the other in every round, so that a machine busy with other work weighs on both alike.
Measured per case and transport, medians of --runs runs (CPU is user + system time from wait4):

* report CPU, wall and peak RSS over http and over https, and their ratio;
* the import floor: `python -c "import gitlab, requests, click; gitlab.Gitlab('https://...')"`,
  in the after reporter's venv and run, and the report's CPU over it;
* connections opened to GitLab and to Databand, POSTs to Databand;
* server-side waves of GitLab requests at +100 ms a request (the longest chain of requests each
  started after the one before it ended);
* whether the first Databand POST arrived before the last event was built (one more run, under a
  probe that notes when the builder's iterator ends; the clock is the stand-ins' monotonic one);
* whether the events are the same, byte for byte, before and after (one more run each with
  --output, on the same snapshot);
* what the work alone costs (work_alone): the import floor, decoding GitLab's job pages, the
  events' compact JSON and their gzip, the least any reporter in CPython pays for the pipeline;
* the wall of the seed poller's way (pipeline, one page of jobs, one POST: what
  ../shared/seed's GitLab example does) at 0 ms, and the report's wall over it.

With --profile, the after reporter runs once more at 1,250 jobs over https under a per-thread
cProfile (profile_threads.py), and the CPU is summed by what it does (masking, encoding, TLS ...).

    .venv/bin/python benchmarks/https.py --before 096258a            # both cases, 5 runs each
    .venv/bin/python benchmarks/https.py --before 096258a --runs 3 --quick --profile

It writes benchmarks/https-results.json and docs/benchmarks-https.md (the tables, the machine and
the commits measured) and prints the README's cost line; none of them is edited by hand.
"""

from __future__ import annotations

import argparse
import gzip
import json
import pstats
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

import bench  # noqa: E402
import job  # noqa: E402
from hostile import self_signed, serve_tls  # noqa: E402
from standins import DatabandStandIn, GitLabStandIn, generate_pipeline  # noqa: E402

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
RESULTS = HERE / "https-results.json"
DOC = ROOT / "docs" / "benchmarks-https.md"
LOG_BYTES = 160_000  # a failed job's log in the 1,250-job case
FLOOR = "import gitlab, requests, click; gitlab.Gitlab('https://gitlab.example.com')"
IN_FLIGHT = 40  # reporter.settings.GITLAB_CONCURRENCY, the default bound (32 before 2026-12-03)
SENDERS = 8  # reporter.databand.PARALLEL_POSTS
WIDER = 40  # --gitlab-concurrency of one more run at +100 ms: room for the second wave whole


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


@dataclass(frozen=True)
class Reporter:
    name: str
    command: Path  # its console script
    python: str  # its venv's Python (for the probe)


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

# The reporter's command, noting when its event builder's iterator ended (the last event built).
# Patched on the class, so that it holds whichever module builds the events.
_PROBE = r"""
import atexit, json, sys, time
out, sys.argv = sys.argv[1], ["databand-gitlab-reporter", *sys.argv[2:]]
from reporter import events
built, original = [], events.EventBuilder.events
def timed(self):
    yield from original(self)
    built.append(time.monotonic())
events.EventBuilder.events = timed
atexit.register(lambda: open(out, "w").write(json.dumps(max(built) if built else None)))
from reporter.cli import main
main()
"""


def work_alone(gitlab: GitLabStandIn, where: dict, events_file: Path) -> dict:
    """What the report's data costs with nothing of the reporter around it, in this process (thread
    CPU): decoding the job pages GitLab sent (fetched again as they were, 100 a page) and, of the
    events the after reporter wrote, their compact JSON (C encoder) and gzip in parts of 500 (level
    6, as the reporter sends). With the import floor, the least any reporter in CPython pays for
    this pipeline, whatever else it does; the targets are read against it."""
    pages, number = [], 1
    while True:
        url = (f"{gitlab.url}/api/v4/projects/{where['project']}/pipelines/{where['pipeline']}/jobs"
               f"?per_page=100&page={number}&include_retried=true")
        request = urllib.request.Request(url, headers={"PRIVATE-TOKEN": gitlab.token})
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
        if body.strip() in (b"", b"[]"):
            break
        pages.append(body)
        number += 1
    events = json.loads(events_file.read_bytes())
    started = time.thread_time()
    for page in pages:
        json.loads(page)
    decoded = time.thread_time()
    encoded = [json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8") for event in events]
    encoding = time.thread_time()
    for first in range(0, len(encoded), 500):
        gzip.compress(b"[" + b",".join(encoded[first:first + 500]) + b"]", compresslevel=6)
    done = time.thread_time()
    return {"gitlab_bytes": sum(map(len, pages)), "events_bytes": sum(map(len, encoded)),
            "decode_cpu": decoded - started, "encode_cpu": encoding - decoded, "gzip_cpu": done - encoding}


def median(values: list[float]) -> float:
    return statistics.median(values)


def measure(case: Case, runs: int, tls: tuple[Path, Path, Path] | None, reporters: list[Reporter], work: str,
            say) -> dict:
    """Every reporter against one pair of stand-ins (http, or https with `tls`), round by round."""
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
        args = ["resend", "--project", str(where["project"]), "--pipeline", str(where["pipeline"]),
                "--downstream-depth", "0", "--no-test-results"]

        def once(argv: list[str]) -> tuple[dict, list, list]:
            gitlab.clear_records()
            databand.clear_records()
            run = bench.run_child(argv, env, work)
            if run["exit"] != 0:
                raise SystemExit(f"{case.name}: exit {run['exit']}\n{run['stderr']}")
            records, posts = list(gitlab.requests), list(databand.received)
            bench.settle(records + posts)
            return run, records, posts

        samples: dict[str, list[dict]] = {r.name: [] for r in reporters}
        for latency in (0.0, bench.LATENCY):
            gitlab.latency = databand.latency = latency
            for _ in range(runs if latency == 0 else max(1, runs // 2)):
                for reporter in reporters:
                    run, records, posts = once([str(reporter.command), *args])
                    samples[reporter.name].append({
                        "latency": latency, "cpu": run["cpu_seconds"], "wall": run["seconds"],
                        "rss": run["peak_rss_mb"], "gitlab_connections": gitlab.connections,
                        "databand_connections": databand.connections, "posts": len(posts),
                        "gitlab_requests": len(records),
                        "gitlab_waves": bench.waves([(r.started, r.finished) for r in records]),
                    })
                    say(".")
        wider: dict[str, int] = {}
        if case.jobs <= 2_000:  # 2 waves need the second to fit the bound: 12 pages and 25 logs are 37
            gitlab.latency = databand.latency = bench.LATENCY
            for reporter in reporters:
                _, records, _ = once([str(reporter.command), *args, "--gitlab-concurrency", str(WIDER)])
                wider[reporter.name] = bench.waves([(r.started, r.finished) for r in records])
        gitlab.latency = databand.latency = 0.0
        out: dict = {}
        outputs: dict[str, bytes] = {}
        for reporter in reporters:
            probe = Path(work) / f"probe-{reporter.name}.json"
            _, _, posts = once([reporter.python, "-c", _PROBE, str(probe), *args])
            last_built = json.loads(probe.read_text())
            events_file = Path(work) / f"events-{reporter.name}.json"
            once([str(reporter.command), *args, "--output", str(events_file)])
            outputs[reporter.name] = events_file.read_bytes()
            fast = [s for s in samples[reporter.name] if s["latency"] == 0]
            slow = [s for s in samples[reporter.name] if s["latency"] > 0]
            out[reporter.name] = {
                "cpu": median([s["cpu"] for s in fast]), "wall": median([s["wall"] for s in fast]),
                "rss": median([s["rss"] for s in fast]),
                "gitlab_connections": max(s["gitlab_connections"] for s in fast),
                "databand_connections": max(s["databand_connections"] for s in fast),
                "posts": fast[-1]["posts"], "gitlab_requests": fast[-1]["gitlab_requests"],
                "gitlab_waves_at_100ms": median([s["gitlab_waves"] for s in slow]),
                "first_post_before_last_event_built": min(p.started for p in posts) < last_built,
                "first_post_lead_s": last_built - min(p.started for p in posts),
                "events_bytes": len(outputs[reporter.name]),
                "gitlab_waves_at_100ms_wider": wider.get(reporter.name),
            }
            say(".")
        after_python = reporters[-1].python  # the floor in the after reporter's own venv
        out["floor_cpu"] = median([bench.run_child([after_python, "-c", FLOOR], env, work)["cpu_seconds"]
                                   for _ in range(runs)])
        poller_argv = [after_python, "-c", _POLLER, gitlab_url, gitlab.token, str(where["project"]),
                       str(where["pipeline"]), databand_url, databand.token, str(tls[2]) if tls else "-"]
        out["poller_wall"] = median([bench.run_child(poller_argv, env, work)["seconds"] for _ in range(runs)])
        out["same_events"] = len(set(outputs.values())) == 1
        if tls is None:  # the same data either way; behind TLS the stand-in's own socket speaks TLS only
            alone = [work_alone(gitlab, where, Path(work) / "events-after.json") for _ in range(runs)]
            out["work_alone"] = {key: median([a[key] for a in alone]) for key in alone[0]}
            out["work_floor_cpu"] = out["floor_cpu"] + sum(out["work_alone"][k] for k in ("decode_cpu", "encode_cpu",
                                                                                          "gzip_cpu"))
    return out


# -- where the CPU goes --------------------------------------------------------------------

# What each part of the run is, by the file (or C function) its time is spent in.
_GROUPS = [
    ("masking (reporter/redact.py)", ("reporter/redact.py",)),
    ("events to bodies: JSON encoding, packing, zlib, gzip (packed.py, json, zlib, gzip)",
     ("reporter/packed.py", "reporter/stream.py", "json/encoder", "encode' of '_json", "zlib", "gzip",
      "reporter/delivery.py", "'dumps'")),
    ("building events (events.py, facets.py, ids.py, status.py, cost.py ...)",
     ("reporter/events.py", "reporter/facets.py", "reporter/ids.py", "reporter/status.py", "reporter/cost.py",
      "reporter/failure_reasons.py", "reporter/snapshot.py", "uuid", "hashlib", "sha1", "md5", "datetime")),
    ("reading GitLab's JSON (json decoding, gitlab/parse.py, pager.py)",
     ("json/decoder", "scanner", "reporter/gitlab/parse.py", "reporter/gitlab/pager.py",
      "reporter/gitlab/read.py")),
    ("failed jobs' logs (logs.py)", ("reporter/logs.py",)),
    ("TLS (ssl)", ("ssl.py", "_ssl", "SSLSocket", "SSLContext", "do_handshake", "load_verify")),
    ("HTTP: requests, urllib3, http.client, python-gitlab", ("requests/", "urllib3/", "http/client", "gitlab/",
                                                            "email/", "idna", "charset_normalizer")),
    ("imports (loading modules)", ("<frozen", "importlib", "'exec'", "'compile'", "marshal", "'loads' of 'marshal",
                                   "__build_class__")),
    ("compiling regular expressions (re)", ("re/_parser", "re/_compiler", "re/__init__", "sre_")),
    ("settings, CLI, summary (settings.py, cli.py, summary.py, click)", ("reporter/settings.py", "reporter/cli.py",
                                                                        "reporter/summary.py", "click/")),
    ("threads and futures (concurrent, threading, timebound.py)", ("concurrent/", "threading.py", "queue.py",
                                                                  "reporter/timebound.py")),
]




def cpu_breakdown(work: str, python: str, say) -> dict:
    """One run of the after reporter at 1,250 jobs over https under per-thread cProfile: the work
    (waits left out) summed by group, in seconds of profiled time (cProfile's own overhead inflates
    them alike; read them as shares)."""
    case = CASES[0]
    folder = Path(work) / "profile-tls"
    folder.mkdir()
    cert, key = self_signed(folder)
    bundle = folder / "bundle.pem"
    bundle.write_bytes((SYSTEM_BUNDLE.read_bytes() if SYSTEM_BUNDLE.exists() else b"") + b"\n" + cert.read_bytes())
    with GitLabStandIn(keep_alive=True) as gitlab, DatabandStandIn(keep_alive=True) as databand:
        gitlab_url = serve_tls(gitlab, cert, key)
        root = serve_tls(databand, cert, key)
        databand_url = root + databand.url.split(str(databand._server.server_port), 1)[1]
        where = install(case, gitlab)
        env = {**bench.child_env(gitlab, databand), **ci_environment(), "GITLAB_URL": gitlab_url,
               "DATABAND_URL": databand_url, "CI_SERVER_TLS_CA_FILE": str(bundle), "DATABAND_CA_FILE": str(bundle)}
        prefix = str(Path(work) / "profile-")
        run = bench.run_child([python, str(HERE / "profile_threads.py"), "--cpu", prefix, "resend",
                               "--project", str(where["project"]), "--pipeline", str(where["pipeline"]),
                               "--downstream-depth", "0", "--no-test-results"], env, work)
        say(".")
    if run["exit"] != 0:
        return {"error": run["stderr"][-2000:]}
    stats = pstats.Stats(prefix + "ALL.prof")
    groups = {name: 0.0 for name, _ in _GROUPS}
    groups["other work"] = 0.0
    locks = 0.0

    def group_of(filename: str, line: int, func: str) -> str:
        where = f"{filename}:{line}({func})"
        return next((name for name, markers in _GROUPS if any(m in where for m in markers)), "other work")

    for (filename, line, func), (_, _, tottime, _, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "acquire' of '_thread" in func:  # threads handing over to each other: see the page's note
            locks += tottime
            continue
        mine = group_of(filename, line, func)
        if filename == "~" and mine == "other work" and callers:
            # A builtin (str.replace, isinstance ...) counts for what called it, in proportion.
            weights = {caller: max(row[2], 1e-9) for caller, row in callers.items()}
            whole = sum(weights.values())
            for caller, weight in weights.items():
                groups[group_of(*caller)] += tottime * weight / whole
        else:
            groups[mine] += tottime
    total = sum(groups.values())
    top = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:25]  # type: ignore[attr-defined]
    return {"case": case.name, "cpu_seconds_profiled_run": run["cpu_seconds"], "profiled_cpu_s": total,
            "groups": dict(sorted(groups.items(), key=lambda item: -item[1])), "lock_acquire_s": locks,
            "top_tottime": [{"function": f"{bench._short(f)}:{line}({func})", "tottime": round(row[2], 4)}
                            for (f, line, func), row in top]}


# -- the verdicts and the page -------------------------------------------------------------


def verdicts(results: dict, before: str | None) -> list[dict]:
    """Each target of issue 20, before and after."""
    rows = []
    cases = results["cases"]
    small, large = CASES[0].name, CASES[1].name

    def row(what: str, target: str, value, ok) -> None:
        rows.append({"what": what, "target": target,
                     "before": value(before) if before else None, "after": value("after"),
                     "met": ok(value("after")) if value("after") is not None else None})

    for case in (small, large):
        if case not in cases:
            continue
        c = cases[case]
        row(f"{case}: https CPU / http CPU", "≤ 1.15", lambda r, c=c: c["https"][r]["cpu"] / c["http"][r]["cpu"],
            lambda v: v <= 1.15)
    if small in cases:
        c = cases[small]
        row(f"{small}: report CPU over https / import floor", "≤ 2.0",
            lambda r: c["https"][r]["cpu"] / c["https"]["floor_cpu"], lambda v: v <= 2.0)
        for side in ("http", "https"):
            row(f"{small}: GitLab server-side waves at +100 ms ({side})", "2",
                lambda r, side=side: c[side][r]["gitlab_waves_at_100ms"], lambda v: v <= 2)
            row(f"{small}: the same, --gitlab-concurrency {WIDER} (one run, {side})", "2",
                lambda r, side=side: c[side][r]["gitlab_waves_at_100ms_wider"], lambda v: v <= 2)
    if large in cases:
        c = cases[large]
        row(f"{large}: report CPU over http, s", "≤ 1.0", lambda r: c["http"][r]["cpu"], lambda v: v <= 1.0)
        row(f"{large}: report CPU over https, s", "≤ 1.15", lambda r: c["https"][r]["cpu"], lambda v: v <= 1.15)
        row(f"{large}: peak RSS (the larger of http, https), MB", "≤ 80",
            lambda r: max(c["http"][r]["rss"], c["https"][r]["rss"]), lambda v: v <= 80)
        row(f"{large}: first POST before the last event built (http)", "yes",
            lambda r: c["http"][r]["first_post_before_last_event_built"], lambda v: v is True)
    for case, c in cases.items():
        row(f"{case}: Databand connections (https)", f"≤ {SENDERS}, one per sender",
            lambda r, c=c: c["https"][r]["databand_connections"], lambda v: v <= SENDERS)
        row(f"{case}: GitLab connections (https)", f"≤ {IN_FLIGHT}, the in-flight bound",
            lambda r, c=c: c["https"][r]["gitlab_connections"], lambda v: v <= IN_FLIGHT)
        for side in ("http", "https"):
            row(f"{case}: report wall / seed poller's wall at 0 ms ({side})", "≤ 2.0",
                lambda r, c=c, side=side: c[side][r]["wall"] / c[side]["poller_wall"], lambda v: v <= 2.0)
    if before:
        for case, c in cases.items():
            rows.append({"what": f"{case}: events byte for byte as before (http, https)", "target": "yes",
                         "before": None, "after": c["http"]["same_events"] and c["https"]["same_events"],
                         "met": c["http"]["same_events"] and c["https"]["same_events"]})
    return rows


def _shown(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}"


def details(results: dict, names: list[str]) -> str:
    lines = ["| case | measure | " + " | ".join(f"{n} http | {n} https" for n in names) + " |",
             "|---|---|" + "---|---|" * len(names)]
    keys = [("report CPU, s", "cpu"), ("report wall, s", "wall"), ("peak RSS, MB", "rss"),
            ("GitLab connections", "gitlab_connections"), ("Databand connections", "databand_connections"),
            ("Databand POSTs", "posts"), ("GitLab requests", "gitlab_requests"),
            ("GitLab waves at +100 ms", "gitlab_waves_at_100ms"),
            (f"GitLab waves at +100 ms, --gitlab-concurrency {WIDER}", "gitlab_waves_at_100ms_wider"),
            ("first POST before the last event built", "first_post_before_last_event_built"),
            ("first POST's lead on the last event, s", "first_post_lead_s")]
    for case, sides in results["cases"].items():
        for label, key in keys:
            cells = [_shown(sides[side][n][key]) for n in names for side in ("http", "https")]
            lines.append(f"| {case} | {label} | " + " | ".join(cells) + " |")
        for label, key in (("import floor CPU, s", "floor_cpu"), ("seed poller's wall, s", "poller_wall")):
            cells = [_shown(sides[side][key]) for _ in names for side in ("http", "https")]
            lines.append(f"| {case} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def page(results: dict, rows: list[dict], names: list[str], argv: str) -> str:
    machine = results["machine"]
    before = results.get("before")
    text = [
        "# The report over HTTPS", "",
        f"Written by `benchmarks/https.py {argv}` (medians of {results['runs']} runs; not edited by hand) "
        f"at commit {machine['commit']} (reporter tree {machine['reporter_state_at_start']})"
        + (f", beside the reporter of {before}" if before else "") + f", on {machine['cpu']}, {machine['cores']} "
        f"cores (load average {machine['load_average_at_start'][0]:.1f} at the start: other work shares the "
        f"machine), CPython {machine['python']}; the CA file trusted is {machine['ca_bundle_bytes']:,} bytes; "
        "every command ran with a 290-variable environment. What each figure means: the script's docstring.",
        "", "## Targets (issue 20)", "",
        "| figure | target | before | after | met after |", "|---|---|---|---|---|"]
    for r in rows:
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        text.append(f"| {r['what']} | {r['target']} | {_shown(r['before'])} | {_shown(r['after'])} | {met} |")
    text += ["", "## What the work alone costs", "",
             "The least any reporter in CPython pays for each pipeline, with nothing of ours around it "
             "(`work_alone`, medians, this process's thread CPU): the import floor, decoding the job pages "
             "GitLab sent, the events' compact JSON and their gzip. A target below it cannot be met by "
             "making the reporter's own code cheaper.", "",
             "| case | GitLab's JSON, MB | events' JSON, MB | import floor, s | decoding, s | encoding, s | "
             "gzip, s | least in all, s | least / import floor |", "|---|---|---|---|---|---|---|---|---|"]
    for case, sides in results["cases"].items():
        c = sides["http"]
        alone, least = c.get("work_alone"), c.get("work_floor_cpu")
        if not alone:
            continue
        text.append(f"| {case} | {alone['gitlab_bytes'] / 1e6:.1f} | {alone['events_bytes'] / 1e6:.1f} | "
                    f"{c['floor_cpu']:.2f} | {alone['decode_cpu']:.2f} | {alone['encode_cpu']:.2f} | "
                    f"{alone['gzip_cpu']:.2f} | {least:.2f} | {least / c['floor_cpu']:.2f} |")
    text += ["", "## Every figure", "", details(results, names), ""]
    breakdown = results.get("cpu_breakdown")
    if breakdown and "groups" in breakdown:
        total = breakdown["profiled_cpu_s"]
        text += ["## Where the CPU goes (after, 1,250 jobs over https)", "",
                 f"One run under cProfile, every thread with a profiler of its own timing that thread's CPU "
                 f"(`--profile`): {total:.2f} s of CPU profiled, in a run of {breakdown['cpu_seconds_profiled_run']:.2f} "
                 "s of CPU (cProfile's overhead inflates Python-heavy parts most, so read the shares as upper "
                 "bounds for them). By the file the time was spent in; a builtin's (str.replace, isinstance ...) "
                 "counts for its callers:", "",
                 "| part | profiled s | share |", "|---|---|---|"]
        for name, seconds in breakdown["groups"].items():
            text.append(f"| {name} | {seconds:.2f} | {seconds / total:.0%} |")
        text += ["", f"Left out of the shares: {breakdown['lock_acquire_s']:.2f} s the thread clocks counted inside "
                 "`_thread.lock.acquire` (a lock wait alone costs no thread CPU; this is the hand-over between "
                 "the reader's threads under the profiler, not work of the report). The largest single "
                 "functions are in benchmarks/https-results.json (`top_tottime`).", ""]
    return "\n".join(text)


def cost_line(results: dict) -> str:
    c = results["cases"].get(CASES[0].name)
    if not c:
        return ""
    https = c["https"]["after"]
    return (f"Over HTTPS the report of a 1,250-job pipeline costs {https['cpu']:.2f} s of CPU "
            f"({https['cpu'] / c['https']['floor_cpu']:.1f}x importing its libraries, "
            f"{https['cpu'] / c['http']['after']['cpu']:.2f}x plain http) and {https['wall']:.2f} s "
            "([docs/benchmarks-https.md](docs/benchmarks-https.md), `python benchmarks/https.py`).")


def reporters(before: str | None, work: Path) -> list[Reporter]:
    found = []
    if before:
        source = job.source_tree(before, work / "before-src")
        wheels = job.wheelhouse(source, work / "before-wheels")
        venv = work / "before-venv"
        job.install("after", venv, wheels)
        found.append(Reporter(before, venv / "bin" / job.PACKAGE, str(venv / "bin" / "python")))
    # This work tree's reporter installed as the component installs it (a wheel, its modules compiled
    # by pip), not run from the source folder: a machine that writes no bytecode (PYTHONDONTWRITEBYTECODE)
    # would compile every module of it at each start, which the before reporter never pays.
    source = job.source_tree(None, work / "after-src")
    venv = work / "after-venv"
    job.install("after", venv, job.wheelhouse(source, work / "after-wheels"))
    found.append(Reporter("after", venv / "bin" / job.PACKAGE, str(venv / "bin" / "python")))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="the 1,250-job case only")
    parser.add_argument("--before", help="also measure the reporter at this git ref")
    parser.add_argument("--profile", action="store_true", help="and where the after reporter's CPU goes")
    args = parser.parse_args(argv)
    say = lambda text: print(text, end="", file=sys.stderr, flush=True)  # noqa: E731
    results: dict = {"machine": bench.machine(), "runs": args.runs, "before": args.before, "cases": {}}
    with tempfile.TemporaryDirectory(prefix="reporter-https-") as work:
        found = reporters(args.before, Path(work))
        cert, key = self_signed(Path(work))
        bundle = Path(work) / "bundle.pem"
        system = SYSTEM_BUNDLE.read_bytes() if SYSTEM_BUNDLE.exists() else b""
        bundle.write_bytes(system + b"\n" + cert.read_bytes())
        results["machine"]["ca_bundle_bytes"] = bundle.stat().st_size
        for case in CASES[:1] if args.quick else CASES:
            say(f"{case.name}: ")
            results["cases"][case.name] = {
                "http": measure(case, args.runs, None, found, work, say),
                "https": measure(case, args.runs, (cert, key, bundle), found, work, say),
            }
            say("\n")
        if args.profile:
            try:
                results["cpu_breakdown"] = cpu_breakdown(work, found[-1].python, say)
            except Exception as error:  # noqa: BLE001 - the measurements above are kept whatever happens here
                results["cpu_breakdown"] = {"error": repr(error)}
            say("\n")
    rows = verdicts(results, args.before)
    results["verdicts"] = rows
    names = [r.name for r in found]
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    shown_argv = " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    DOC.write_text(page(results, rows, names, shown_argv) + "\n")
    print(page(results, rows, names, shown_argv))
    print("\nREADME cost line:\n" + cost_line(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
