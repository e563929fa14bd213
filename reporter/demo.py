"""`databand-gitlab-reporter demo`: the reporter's real path, offline, on a recorded pipeline.

Two servers on 127.0.0.1, standard library only: GitLab's API answering as GitLab does (the
recorded answers in reporter/demo_data/, with its pagination headers, `include_retried`, whole
logs as text/plain and no Range support), and a receiver shaped like Databand's bulk endpoint
(gzip JSON arrays, a Bearer token, 200). Then `report` runs as the recorded pipeline's `.post`
job would: the same reader, events and delivery, plus `--output` to a file in the current folder.

The recording is replayed as if the pipeline had just run: every GitLab time in it moves by the
same amount, so that the report job, which the reporter ends "now", fits with the rest.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shlex
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from reporter import PROG
from reporter.process import Interrupted, Stop, signals_to_main

DEFAULT_OUTPUT = "databand-demo-events.json"
PROJECT_ID = 42
PIPELINE_ID = 9001
REPORT_JOB_ID = 71211  # databand-report, in .post: the job the demo's report stands for
# Made up, and plainly so; the servers accept nothing else.
GITLAB_TOKEN = "glpat-" + "DEMO-not-a-real-token"  # built here, so no token shape stands in the repository
DATABAND_TOKEN = "databand-DEMO-not-a-real-token"
BULK_PATH = "/api/v1/tracking/open-lineage/00000000-0000-0000-0000-000000000000/events/bulk"
# Variables that would steer the report elsewhere (a real job's CI_*, the user's own settings).
_SETTINGS_PREFIXES = ("GITLAB_", "DATABAND_", "CI_", "OPENLINEAGE_")
_LOCAL = "127.0.0.1,localhost"

_GITLAB_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# -- the recording ----------------------------------------------------------------------------


def _load(name: str) -> bytes:
    return (resources.files("reporter") / "demo_data" / name).read_bytes()


def _shift(value: Any, by: timedelta) -> Any:
    if isinstance(value, dict):
        return {key: _shift(item, by) for key, item in value.items()}
    if isinstance(value, list):
        return [_shift(item, by) for item in value]
    if isinstance(value, str) and _GITLAB_TIME.match(value):
        moved = datetime.fromisoformat(value[:-1] + "+00:00") + by
        return moved.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moved.microsecond // 1000:03d}Z"
    return value


@dataclass
class Recording:
    """GitLab's answers for one project and pipeline, moved in time so that it ends at `now`."""

    project: dict
    pipeline: dict
    jobs: list[dict]  # every attempt, newest id first, as GitLab lists them
    bridges: list[dict]
    test_report_summary: dict
    test_report: dict
    logs: dict[int, bytes]

    @classmethod
    def load(cls, now: datetime | None = None) -> Recording:
        raw = {name: json.loads(_load(f"{name}.json")) for name in
               ("project", "pipeline", "jobs", "bridges", "test_report_summary", "test_report")}
        # The recording's last change is the report job starting; it is made a moment ago.
        last = datetime.fromisoformat(raw["pipeline"]["updated_at"][:-1] + "+00:00")
        by = (now or datetime.now(timezone.utc)) - timedelta(seconds=2) - last
        moved = {name: _shift(value, by) for name, value in raw.items()}
        logs = {job["id"]: _load(f"trace-{job['id']}.log") for job in moved["jobs"] if job["status"] == "failed"}
        return cls(**moved, logs=logs)


# -- GitLab's API -------------------------------------------------------------------------------


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept-alive connections, as GitLab's front end keeps them
    timeout = 10  # an idle kept-alive connection is closed then, so that its thread ends

    def log_message(self, format, *args):
        pass  # a line per request would bury the demo's output

    def send_body(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, value: object, headers: Mapping[str, str] | None = None):
        self.send_body(status, json.dumps(value).encode(), "application/json", headers)


class _GitLab(_Quiet):
    """GET /api/v4/...: the project, the pipeline, its jobs and bridges (offset pages), the test
    report and its summary, and the failed jobs' logs. A token other than the demo's: 401."""

    recording: Recording  # set on the subclass made per server

    def do_GET(self) -> None:  # http.server calls it by this name
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        token = self.headers.get("PRIVATE-TOKEN") or self.headers.get("Authorization", "").removeprefix("Bearer ")
        if token != GITLAB_TOKEN:
            return self.send_json(401, {"message": "401 Unauthorized"})
        if not parts.path.startswith("/api/v4/projects/"):
            return self.send_json(404, {"error": "404 Not Found"})
        # Split before decoding: a project path comes as acme%2Fdata-platform.
        segments = [unquote(s) for s in parts.path[len("/api/v4/projects/"):].split("/")]
        rec = self.recording
        if segments[0] not in (str(rec.project["id"]), rec.project["path_with_namespace"]):
            return self.send_json(404, {"message": "404 Project Not Found"})
        match segments[1:]:
            case []:
                return self.send_json(200, rec.project)
            case ["jobs", job_id, "trace"]:
                # The whole log, whatever Range asks: GitLab's trace endpoint has no Range support.
                if not any(str(job["id"]) == job_id for job in rec.jobs):  # a bridge has no log
                    return self.send_json(404, {"message": "404 Not found"})
                return self.send_body(200, rec.logs.get(int(job_id), b""), "text/plain",
                                   {"Content-Disposition": f'infile; filename="{job_id}.log"'})
            case ["pipelines", pipeline_id, *_] if pipeline_id != str(rec.pipeline["id"]):
                return self.send_json(404, {"message": "404 Not found"})
            case ["pipelines", _]:
                return self.send_json(200, rec.pipeline)
            case ["pipelines", _, "test_report_summary"]:
                return self.send_json(200, rec.test_report_summary)
            case ["pipelines", _, "test_report"]:
                return self.send_json(200, rec.test_report)
            case ["pipelines", _, "jobs"]:
                jobs = rec.jobs
                if query.get("include_retried", "").lower() not in ("true", "1", "yes"):
                    newest: dict[str, dict] = {}
                    for job in jobs:
                        newest.setdefault(job["name"], job)  # newest id first, so the first is the latest
                    jobs = list(newest.values())
                return self.page(parts.path, query, jobs)
            case ["pipelines", _, "bridges"]:
                return self.page(parts.path, query, rec.bridges)
        return self.send_json(404, {"error": "404 Not Found"})

    do_HEAD = do_GET

    def page(self, path: str, query: dict[str, str], items: list[dict]):
        """Offset pagination as GitLab answers it: per_page 20 by default, capped at 100."""
        try:
            page = max(int(query.get("page") or 1), 1)
            asked = int(query.get("per_page") or 20)
        except ValueError:
            return self.send_json(400, {"error": "page is invalid"})
        per_page = 20 if asked <= 0 else min(asked, 100)
        pages = max(-(-len(items) // per_page), 1)
        base = f"http://{self.headers.get('Host')}{path}"

        def link(number: int, rel: str) -> str:
            kept = "".join(f"&{k}={v}" for k, v in sorted(query.items()) if k not in ("page", "per_page"))
            return f'<{base}?page={number}&per_page={per_page}{kept}>; rel="{rel}"'

        after = page + 1 if page < pages else None
        before = page - 1 if 1 < page <= pages else None
        links = [link(n, rel) for n, rel in ((before, "prev"), (after, "next"), (1, "first"), (pages, "last")) if n]
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items)),
                   "X-Total-Pages": str(pages), "X-Next-Page": str(after or ""), "X-Prev-Page": str(before or ""),
                   "Link": ", ".join(links)}
        return self.send_json(200, items[(page - 1) * per_page:page * per_page], headers)


# -- Databand's bulk endpoint -------------------------------------------------------------------


@dataclass
class Received:
    events: list[dict] = field(default_factory=list)
    requests: int = 0
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Databand(_Quiet):
    """POST <bulk path>: a Bearer token, a gzip JSON array of events; 200 and the events kept."""

    received: Received

    def do_POST(self) -> None:  # http.server calls it by this name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        problem, events = self.check(body)
        with self.received.lock:
            self.received.requests += 1
            if problem:
                self.received.refused.append(problem[1])
            else:
                self.received.events.extend(events)
        if problem:
            return self.send_json(problem[0], {"message": problem[1]})
        return self.send_json(200, {})

    def check(self, body: bytes) -> tuple[tuple[int, str] | None, list[dict]]:
        if urlsplit(self.path).path != BULK_PATH:
            return (404, "no such endpoint"), []
        if self.headers.get("Authorization") != f"Bearer {DATABAND_TOKEN}":
            return (401, "missing or wrong access token"), []
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return (415, "Content-Type is not application/json"), []
        if self.headers.get("Content-Encoding", "").strip().lower() != "gzip":
            return (415, "Content-Encoding is not gzip"), []
        try:
            events = json.loads(gzip.decompress(body))
        except (OSError, EOFError, zlib.error, ValueError):
            return (400, "body is not gzip-compressed JSON"), []
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            return (400, "body is not a JSON array of events"), []
        return None, events


# -- both, in threads -------------------------------------------------------------------------


@dataclass
class Servers:
    gitlab_url: str
    databand_url: str
    received: Received


def _serve(server: ThreadingHTTPServer) -> None:
    signals_to_main()  # and so every request's thread, started from this one
    server.serve_forever(poll_interval=0.05)


@contextmanager
def servers(recording: Recording | None = None) -> Iterator[Servers]:
    """GitLab and Databand stand-ins on free ports of 127.0.0.1, for as long as the block runs."""
    received = Received()
    gitlab = ThreadingHTTPServer(("127.0.0.1", 0), type("GitLab", (_GitLab,), {"recording": recording or
                                                                                Recording.load()}))
    databand = ThreadingHTTPServer(("127.0.0.1", 0), type("Databand", (_Databand,), {"received": received}))
    running = []
    try:
        for server in (gitlab, databand):
            server.daemon_threads = True
            thread = threading.Thread(target=_serve, args=(server,), daemon=True)
            thread.start()
            running.append(server)
        yield Servers(f"http://127.0.0.1:{gitlab.server_port}",
                      f"http://127.0.0.1:{databand.server_port}{BULK_PATH}", received)
    finally:
        for server in running:
            server.shutdown()
        for server in (gitlab, databand):
            server.server_close()


# -- the demo ---------------------------------------------------------------------------------


def environment(base: Mapping[str, str], at: Servers) -> dict[str, str]:
    """The process's variables without any reporter setting of the user's or of a real job, plus
    what the recorded pipeline's report job has; and 127.0.0.1 kept off any proxy (requests reads
    `no_proxy` before `NO_PROXY`, so both are set)."""
    env = {key: value for key, value in base.items() if not key.startswith(_SETTINGS_PREFIXES)
           and key.lower() != "no_proxy"}
    bypass = ",".join(filter(None, [base.get("no_proxy") or base.get("NO_PROXY"), _LOCAL]))
    env.update({
        "no_proxy": bypass, "NO_PROXY": bypass,
        "CI_PROJECT_ID": str(PROJECT_ID), "CI_PIPELINE_ID": str(PIPELINE_ID), "CI_JOB_ID": str(REPORT_JOB_ID),
        "CI_JOB_NAME": "databand-report", "CI_JOB_STAGE": ".post",
        "GITLAB_URL": at.gitlab_url, "GITLAB_TOKEN": GITLAB_TOKEN,
        "DATABAND_URL": at.databand_url, "DATABAND_ACCESS_TOKEN": DATABAND_TOKEN,
        # The recording's instance, not the demo's port: the same names at every run.
        "DATABAND_NAMESPACE": "gitlab:gitlab.example.com",
    })
    return env


def _run_report(environ: Mapping[str, str], args: list[str]) -> tuple[int, list[dict], list[str]]:
    """The demo's one call into the rest of the reporter: the `report` command, run in this process
    with `environ` as its whole environment (it reads os.environ) and `args`, which hold --output;
    then the events it wrote there and their tree. Returns the exit code, the events and the tree."""
    from reporter import summary
    from reporter.cli import cli

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environ)
    try:
        cli.main(["report", *args], prog_name=PROG, standalone_mode=False)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if code != 0:
        return code, [], []
    try:
        with open(args[args.index("--output") + 1], encoding="utf-8") as handle:
            events = json.load(handle)
    except OSError:  # `report` said why in a warning; the events were still delivered
        return code, [], []
    # summary.tree ends with a line about --dry-run, which this run is not.
    return code, events, summary.tree(summary.from_events(events), len(events))[:-1]


def log_tails(events: list[dict], lines: int = 5) -> list[tuple[str, list[str]]]:
    """The last lines (blank ones aside) of each log the events carry, OpenLineage's run facet `log`,
    with the job's name as GitLab shows it and its attempt."""
    found = []
    for event in events:
        facets = event.get("run", {}).get("facets", {})
        body = facets.get("log", {}).get("logBody")
        if body:
            tags = {t.get("key"): t.get("value") for t in facets.get("tags", {}).get("tags", [])}
            name = unquote(event["job"]["name"].rsplit(".", 1)[-1])
            found.append((f"{name}, attempt {tags.get('gitlab.attempt', '1')}",
                          [line for line in body.splitlines() if line.strip()][-lines:]))
    return found


def run(output: str = DEFAULT_OUTPUT, say: Callable[[str], None] | None = None) -> int:
    """Serve, report, and print it all on stdout: the job log summary (which `report` writes on
    stderr, moved here so that the demo reads in order), the tree, the failed jobs' last log lines
    and where the events are. The exit code is the report's. A signal stops it as any command, but
    what it says is the demo's: the events were for the demo's own receiver, gone with it, so no
    file of them is left and the command to run is the demo again."""
    try:
        return _run(output, say)
    except Interrupted as stop:
        for _, path in stop.stop.kept:
            with contextlib.suppress(OSError):
                os.remove(path)
        raise Interrupted(Stop(stop.stop.signum, resend=f"{PROG} demo")) from None


def _run(output: str, say: Callable[[str], None] | None) -> int:
    def echo(text: str) -> None:
        print(text, flush=True)

    say = say or echo
    started = time.monotonic()
    with servers() as at:
        say(f"Demo: GitLab's recorded answers for pipeline {PIPELINE_ID} of acme/data-platform on {at.gitlab_url}, "
            f"a stand-in for Databand's bulk endpoint on {urlsplit(at.databand_url).netloc}; nothing leaves "
            "this machine.")
        say(f"Running `{PROG} report --output {shlex.quote(output)}` as the pipeline's .post job databand-report "
            "would.")
        say("")
        sys.stdout.flush()
        with redirect_stderr(sys.stdout):
            code, events, tree = _run_report(environment(os.environ, at), ["--output", output])
        sys.stdout.flush()
        with at.received.lock:
            accepted, requests, refused = len(at.received.events), at.received.requests, list(at.received.refused)
    if code != 0:
        say(f"The demo's report ended with exit code {code} (see above); please report it.")
        return code
    if not tree:
        say(f"{PROG}: error: the events could not be written to {output} (see the warning above); "
            "pass --output FILE in a folder you can write.")
        return 2
    say("")
    say("The pipeline as its events describe it:")
    for line in tree:
        say(f"  {line}")
    for name, tail in log_tails(events):
        say("")
        say(f"The end of the log sent for {name} (the `log` facet):")
        for line in tail:
            say(f"  | {line}")
    say("")
    say(f"The Databand stand-in accepted {accepted} events in {requests} request{'s' if requests != 1 else ''}"
        + (f" (refused: {', '.join(refused)})" if refused else "") + ".")
    say(f"The events, a JSON array of OpenLineage run events: {os.path.abspath(output)}")
    say(f"Done in {time.monotonic() - started:.1f} s.")
    return 0
