"""Local stand-ins for the two services the reporter talks to.

* ``GitLabStandIn`` serves the handful of GitLab REST v4 endpoints the reporter
  reads (project, pipeline, pipeline jobs and bridges, job log) with GitLab's
  authentication rules, offset-pagination headers and error bodies, so that
  python-gitlab works against it unchanged. Opt-in (``graphql=True``): GitLab's GraphQL
  endpoint for the reporter's one query (GRAPHQL below); ``version=...``: ``GET /version``.
* ``DatabandStandIn`` serves Databand's OpenLineage bulk endpoint and keeps
  what it accepted, including Databand's habit of silently dropping payloads
  that carry no root run.

GRAPHQL, as GitLab's types give it (app/graphql/types/ci/job_type.rb, build_need_type.rb,
resolvers/ci/jobs_resolver.rb, project_pipeline_resolver.rb): ``project(fullPath)`` is null to a caller
who may not read it, ``pipeline(iid)`` null when there is none; ``jobs`` is every attempt, newest
first, a cursor connection of at most 100 a page (cursors: base64 of {"id"}), filtered by
``whenExecuted``; each ``CiJob`` has a global id (gid://gitlab/Ci::Build/<id>, Ci::Bridge for a
bridge), ``schedulingType`` "dag" or "stage" and ``needs`` {nodes {name}}. A query GitLab cannot run
is 200 with an ``errors`` array; a CI_JOB_TOKEN is 401 "Invalid token" (GraphQL takes none).
``set_needs`` gives the needs and ``when`` of a pipeline's jobs.

Both are real HTTP servers on 127.0.0.1 (werkzeug, one thread per request) so
that timeouts, connection resets and streaming behave like the network does.
Both take a ``latency`` waited before every answer, to measure round trips.
The module-level builders produce GitLab-shaped dicts to feed the GitLab
stand-in; ``generate_pipeline`` makes large realistic pipelines.
"""

from __future__ import annotations

import base64
import collections
import gzip
import json
import math
import random
import re
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import quote_plus, unquote, urlsplit

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

__all__ = [
    "DatabandStandIn",
    "GitLabStandIn",
    "Received",
    "Recorded",
    "StreamedTrace",
    "generate_pipeline",
    "iso",
    "make_bridge",
    "make_job",
    "make_pipeline",
    "make_project",
    "synthetic_trace",
]


# --------------------------------------------------------------------------
# Server plumbing shared by both stand-ins
# --------------------------------------------------------------------------


class _ResetConnection(ConnectionResetError):
    """Raised by a stand-in's app to drop the connection without answering.

    It is a ConnectionError so werkzeug treats it as a dropped connection
    instead of turning it into a 500 answer.
    """


class _KeepAliveInput:
    """A kept-alive connection's input.

    After each answer werkzeug drains the socket: it reads whatever the
    client sent past its request, assuming the connection then closes. On a
    kept-alive connection that would swallow the next request, so once the
    answer is sent (``answered``) this reports nothing to drain; reading the
    next request line starts over.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.answered = False

    def read(self, size: int = -1) -> bytes:
        return b"" if self.answered else self._stream.read(size)

    def readline(self, size: int = -1) -> bytes:
        self.answered = False
        return self._stream.readline(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Handler(WSGIRequestHandler):
    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        # Runs make thousands of requests; a line each would bury real errors.
        pass

    def setup(self) -> None:
        super().setup()
        standin = getattr(self.server, "standin", None)
        if standin is not None:
            with standin._lock:
                standin.connections += 1
            if standin.keep_alive:
                self.rfile = _KeepAliveInput(self.rfile)
                # The status line and headers go out in one write and the body in
                # another; on a connection that stays open, Nagle's algorithm would
                # hold the body until the client's delayed ACK (40 ms on Linux).
                # Servers that keep connections alive set TCP_NODELAY (nginx does).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def make_environ(self) -> dict:
        environ = super().make_environ()
        environ[_INPUT] = self.rfile
        return environ

    def send_header(self, keyword: str, value: str) -> None:
        # werkzeug closes every connection after one answer; with keep_alive the
        # stand-in leaves it open, as GitLab's and Databand's front ends do. Every
        # request body is read in full before answering, which keep-alive needs.
        standin = getattr(self.server, "standin", None)
        if (
            standin is not None
            and standin.keep_alive
            and keyword.lower() == "connection"
            and value.lower() == "close"
        ):
            return
        super().send_header(keyword, value)

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        if isinstance(error, _ResetConnection):
            self.close_connection = True
            self._send_reset = True

    def finish(self) -> None:
        super().finish()
        if getattr(self, "_send_reset", False):
            # With SO_LINGER set to 0, close() sends an RST rather than a FIN,
            # so the client sees "connection reset by peer", like a proxy dying.
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.connection.close()


class _StandInServer:
    """Start/stop and context-manager behaviour; subclasses implement _handle.

    ``latency`` (seconds, settable at any time) is waited before answering
    every request, to stand for the network's round trip: a client that
    makes its requests one after the other pays it once per request, one
    that overlaps them pays it once per batch. Requests wait in their own
    threads, so concurrent requests are delayed concurrently. Only the
    request pays it: opening a connection (TCP, TLS) costs nothing extra.

    ``keep_alive`` (default off: werkzeug's way, one answer per connection)
    keeps HTTP/1.1 connections open for the next request, as real servers
    do. ``connections`` counts the TCP connections accepted.
    """

    def __init__(self, latency: float = 0.0, keep_alive: bool = False) -> None:
        if latency < 0:
            raise ValueError("latency must be >= 0")
        self.latency = latency
        self.keep_alive = keep_alive
        self.connections = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def server_url(self) -> str:
        """``http://127.0.0.1:PORT``; only valid once started."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self):
        if self._server is not None:
            return self
        self._stopping.clear()
        # Port 0: the OS picks a free port, so parallel test runs never collide.
        self._server = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_Handler
        )
        self._server.standin = self  # for _Handler: keep_alive, connections
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # keeps stop() quick
            name=f"{type(self).__name__}-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        # Wake any request sleeping on a scripted delay so shutdown is prompt.
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def _wsgi(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        environ[_ARRIVED] = time.monotonic()
        latency = self.latency
        if latency > 0:
            # An Event wait rather than sleep, so that stop() cuts it short.
            self._stopping.wait(latency)
        request = Request(environ)
        request.get_data()  # read whole, as a server does, so a kept-alive connection's next request starts clean
        body = self._handle(request)(environ, start_response)
        return _until_sent(body, environ)

    def _handle(self, request: Request) -> Response:
        raise NotImplementedError


# Keys under which a request's arrival time, its record and the connection's
# input travel in the WSGI environ.
_ARRIVED = "standin.arrived"
_RECORD = "standin.record"
_INPUT = "standin.input"


def _until_sent(body: Iterable[bytes], environ: dict) -> Iterator[bytes]:
    """Pass the body on; once it is all handed to the socket (or the client
    hung up), note the time in the request's record and tell a kept-alive
    connection's input that the answer is out."""
    try:
        yield from body
    finally:
        record = environ.get(_RECORD)
        if record is not None:
            record.finished = time.monotonic()
        connection_input = environ.get(_INPUT)
        if isinstance(connection_input, _KeepAliveInput):
            connection_input.answered = True
        close = getattr(body, "close", None)
        if close is not None:
            close()


def _json_response(status: int, obj: Any, headers: dict | None = None) -> Response:
    return Response(
        json.dumps(obj), status=status, headers=headers, content_type="application/json"
    )


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


# --------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------

_BASE_TIME = "2024-05-01T10:00:00.000Z"


def iso(moment: datetime) -> str:
    """Format like GitLab's API: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _shift(text: str | None, seconds: float) -> str | None:
    return None if text is None else iso(_parse_iso(text) + timedelta(seconds=seconds))


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if start is None or end is None:
        return None
    return (_parse_iso(end) - _parse_iso(start)).total_seconds()


# --------------------------------------------------------------------------
# Builders for GitLab-shaped dicts
# --------------------------------------------------------------------------

DEFAULT_SHA = "0ff3ae198f8601a285adcf5c0fff204ee6fba5fd"

# Statuses in which a job or pipeline has not started running yet.
_NOT_STARTED = {
    "created", "waiting_for_resource", "preparing", "pending", "scheduled",
    "manual", "skipped",
}
# Statuses in which it has a finished_at.
_FINISHED = {"success", "failed", "canceled"}

# Sentinel so that an explicit None ("no timestamp") differs from "not given".
_DEFAULT: Any = object()

_STATUS_TEXT = {"success": "passed", "waiting_for_resource": "waiting"}


def _server_of(project: dict) -> str:
    """The server root, recovered from the project's web_url."""
    return project["web_url"][: -len(project["path_with_namespace"]) - 1]


def _user(server_url: str) -> dict:
    return {
        "id": 1,
        "username": "root",
        "name": "Administrator",
        "state": "active",
        "locked": False,
        "avatar_url": "https://www.gravatar.com/avatar/e64c7d89f26bd1972efa854d13d7dd61?s=80&d=identicon",
        "web_url": f"{server_url}/root",
        "created_at": "2023-12-21T13:14:24.077Z",
        "bio": "",
        "location": "",
        "public_email": None,
        "linkedin": "",
        "twitter": "",
        "website_url": "",
        "organization": "",
        "job_title": "",
        "pronouns": None,
        "bot": False,
    }


def make_project(server_url: str, id: int = 42, path: str = "acme/data-platform") -> dict:
    server_url = server_url.rstrip("/")
    namespace, _, name = path.rpartition("/")
    host = urlsplit(server_url).hostname or "gitlab.example.com"
    return {
        "id": id,
        "description": None,
        "name": name,
        "name_with_namespace": " / ".join(path.split("/")),
        "path": name,
        "path_with_namespace": path,
        "created_at": "2024-01-15T09:00:00.000Z",
        "default_branch": "main",
        "tag_list": [],
        "topics": [],
        "ssh_url_to_repo": f"git@{host}:{path}.git",
        "http_url_to_repo": f"{server_url}/{path}.git",
        "web_url": f"{server_url}/{path}",
        "readme_url": f"{server_url}/{path}/-/blob/main/README.md",
        "avatar_url": None,
        "forks_count": 0,
        "star_count": 0,
        "last_activity_at": _BASE_TIME,
        "visibility": "private",
        "namespace": {
            "id": 7,
            "name": namespace.rpartition("/")[2],
            "path": namespace.rpartition("/")[2],
            "kind": "group",
            "full_path": namespace,
            "parent_id": None,
            "avatar_url": None,
            "web_url": f"{server_url}/groups/{namespace}",
        },
    }


def _detailed_status(status: str, details_path: str) -> dict:
    text = _STATUS_TEXT.get(status, status)
    return {
        "icon": f"status_{status}",
        "text": text,
        "label": text,
        "group": status,
        "tooltip": text,
        "has_details": True,
        "details_path": details_path,
        "illustration": None,
        "favicon": f"/assets/ci_favicons/favicon_status_{status}.png",
    }


def make_pipeline(
    project: dict,
    id: int,
    *,
    status: str = "running",
    ref: str = "main",
    sha: str = DEFAULT_SHA,
    created_at: str | None = _BASE_TIME,
    started_at: str | None = _DEFAULT,
    finished_at: str | None = _DEFAULT,
    source: str = "push",
    iid: int | None = None,
    name: str | None = None,
    duration: int | None = _DEFAULT,
    queued_duration: int | None = _DEFAULT,
    coverage: str | None = None,
    before_sha: str | None = "0000000000000000000000000000000000000000",
    user: dict | None = _DEFAULT,
) -> dict:
    """A pipeline as ``GET /projects/:id/pipelines/:pipeline_id`` returns it.

    Timestamps not given follow from the status: started 5 s after creation
    unless the status means it has not started, finished 10 min after start
    for success/failed/canceled. ``duration`` and ``queued_duration`` (whole
    seconds) follow from them unless given. ``coverage`` is a string such as
    "98.29", as GitLab's pipeline presenter formats it. ``user`` defaults to
    the administrator (GitLab's UserBasic); None stands for GitLab's null.
    """
    if started_at is _DEFAULT:
        started_at = None if status in _NOT_STARTED else _shift(created_at, 5)
    if finished_at is _DEFAULT:
        finished_at = _shift(started_at, 600) if status in _FINISHED else None
    if duration is _DEFAULT:
        seconds = _seconds_between(started_at, finished_at)
        duration = None if seconds is None else int(seconds)
    if queued_duration is _DEFAULT:
        queued = _seconds_between(created_at, started_at)
        queued_duration = None if queued is None else int(queued)
    web_path = f"/{project['path_with_namespace']}/-/pipelines/{id}"
    return {
        "id": id,
        "iid": id if iid is None else iid,
        "project_id": project["id"],
        "name": name,
        "sha": sha,
        "ref": ref,
        "status": status,
        "source": source,
        "created_at": created_at,
        "updated_at": finished_at or started_at or created_at,
        "web_url": f"{_server_of(project)}{web_path}",
        "before_sha": before_sha,
        "tag": False,
        "yaml_errors": None,
        "user": _user(_server_of(project)) if user is _DEFAULT else user,
        "started_at": started_at,
        "finished_at": finished_at,
        "committed_at": None,
        "duration": duration,
        "queued_duration": queued_duration,
        "coverage": coverage,
        "detailed_status": _detailed_status(status, web_path),
    }


def _pipeline_summary(pipeline: dict) -> dict:
    """The nested pipeline GitLab puts in jobs and bridges (PipelineBasic)."""
    return {
        key: pipeline.get(key)
        for key in (
            "id", "iid", "project_id", "sha", "ref", "status", "source",
            "created_at", "updated_at", "web_url",
        )
    }


def _commit(project: dict, pipeline: dict, title: str = "Update the nightly load") -> dict:
    sha = pipeline["sha"]
    return {
        "id": sha,
        "short_id": sha[:8],
        "created_at": "2024-05-01T09:58:00.000+00:00",
        "parent_ids": [],
        "title": title,
        "message": f"{title}\n",
        "author_name": "Administrator",
        "author_email": "admin@example.com",
        "authored_date": "2024-05-01T09:58:00.000+00:00",
        "committer_name": "Administrator",
        "committer_email": "admin@example.com",
        "committed_date": "2024-05-01T09:58:00.000+00:00",
        "trailers": {},
        "extended_trailers": {},
        "web_url": f"{project['web_url']}/-/commit/{sha}",
    }


def _job_times(pipeline: dict, status: str, created_at: Any, started_at: Any, finished_at: Any):
    if created_at is _DEFAULT:
        created_at = pipeline["created_at"]
    if started_at is _DEFAULT:
        started_at = None if status in _NOT_STARTED else _shift(created_at, 10)
    if finished_at is _DEFAULT:
        finished_at = _shift(started_at, 60) if status in _FINISHED else None
    return created_at, started_at, finished_at


def _common_fields(project: dict, pipeline: dict, id: int, name: str, stage: str, status: str, *,
                   allow_failure: bool, created_at: str | None, started_at: str | None,
                   finished_at: str | None, duration: float | None,
                   queued_duration: float | None = _DEFAULT, user: dict | None = _DEFAULT,
                   commit_title: str | None = _DEFAULT) -> dict:
    """The fields GitLab's job and bridge entities share (both are CommitStatus records).

    ``duration`` and ``queued_duration`` follow from the times unless given; ``user`` and
    ``commit_title`` default to the administrator and a short title, and
    None stands for GitLab's null (a commit title of None nulls the commit).
    """
    if queued_duration is _DEFAULT:
        queued_duration = _seconds_between(created_at, started_at)
    if commit_title is _DEFAULT:
        commit = _commit(project, pipeline)
    else:
        commit = None if commit_title is None else _commit(project, pipeline, commit_title)
    return {
        "commit": commit,
        "archived": False,
        "allow_failure": allow_failure,
        "created_at": created_at,
        "started_at": started_at,
        "finished_at": finished_at,
        "erased_at": None,
        "duration": _seconds_between(started_at, finished_at) if duration is _DEFAULT else duration,
        "queued_duration": queued_duration,
        "id": id,
        "name": name,
        "pipeline": _pipeline_summary(pipeline),
        "ref": pipeline["ref"],
        "stage": stage,
        "status": status,
        "tag": False,
        "web_url": f"{project['web_url']}/-/jobs/{id}",
        "project": {"ci_job_token_scope_enabled": False},
        "user": _user(_server_of(project)) if user is _DEFAULT else user,
    }


def make_job(
    project: dict,
    pipeline: dict,
    id: int,
    name: str,
    stage: str,
    status: str,
    *,
    allow_failure: bool = False,
    created_at: str | None = _DEFAULT,
    started_at: str | None = _DEFAULT,
    finished_at: str | None = _DEFAULT,
    failure_reason: str | None = None,
    duration: float | None = _DEFAULT,
    tag_list: Iterable[str] | None = ("docker",),
    coverage: float | None = None,
    queued_duration: float | None = _DEFAULT,
    runner: dict | None = _DEFAULT,
    runner_description: str | None = "shared-runner-1",
    user: dict | None = _DEFAULT,
    commit_title: str | None = _DEFAULT,
    environment: dict | str | None = _DEFAULT,
) -> dict:
    """A job as ``GET /projects/:id/pipelines/:pipeline_id/jobs`` lists it.

    Timestamps not given: created with the pipeline, started 10 s later
    unless not started, finished 60 s after start for success/failed/canceled.
    ``failure_reason`` is only present on failed jobs, as in GitLab, and
    defaults to "script_failure" there.

    A job that ran has GitLab's Ci::Runner entity as ``runner`` (id 32,
    ``runner_description``); ``runner=None`` stands for GitLab's null, a dict
    replaces it. ``tag_list=None`` stands for a null list. GitLab's Job entity
    has no ``environment``: the key is only added when ``environment`` is
    given, to stand for an answer that does carry one.
    """
    created_at, started_at, finished_at = _job_times(
        pipeline, status, created_at, started_at, finished_at
    )
    ran = started_at is not None
    job = {
        **_common_fields(project, pipeline, id, name, stage, status, allow_failure=allow_failure,
                         created_at=created_at, started_at=started_at, finished_at=finished_at,
                         duration=duration, queued_duration=queued_duration, user=user,
                         commit_title=commit_title),
        "coverage": coverage,
        "artifacts": [],
        "artifacts_expire_at": None,
        "tag_list": None if tag_list is None else list(tag_list),
        "runner": runner if runner is not _DEFAULT else {
            "id": 32,
            "description": runner_description,
            "ip_address": None,
            "active": True,
            "paused": False,
            "is_shared": True,
            "runner_type": "instance_type",
            "name": "gitlab-runner",
            "online": True,
            "status": "online",
        } if ran else None,
        "runner_manager": {
            "id": 1,
            "system_id": "s_89e5e9956577",
            "version": "17.0.0",
            "revision": "44feccdf",
            "platform": "linux",
            "architecture": "amd64",
            "created_at": "2024-04-01T10:12:02.507Z",
            "contacted_at": started_at,
            "ip_address": "10.0.0.12",
            "status": "online",
        } if ran else None,
    }
    if environment is not _DEFAULT:
        job["environment"] = environment
    if status == "failed":
        job["failure_reason"] = failure_reason or "script_failure"
    return job


def make_bridge(
    project: dict,
    pipeline: dict,
    id: int,
    name: str,
    stage: str,
    status: str,
    *,
    downstream_pipeline: dict | None = None,
    allow_failure: bool = False,
    created_at: str | None = _DEFAULT,
    started_at: str | None = _DEFAULT,
    finished_at: str | None = _DEFAULT,
    failure_reason: str | None = None,
    duration: float | None = _DEFAULT,
    queued_duration: float | None = _DEFAULT,
    user: dict | None = _DEFAULT,
    commit_title: str | None = _DEFAULT,
) -> dict:
    """A trigger job as ``GET /projects/:id/pipelines/:pipeline_id/bridges`` lists it.

    ``downstream_pipeline`` may be a full pipeline dict (from make_pipeline,
    possibly of another project); it is reduced to the summary GitLab nests.
    A bridge has no runner and no tag list (GitLab's Bridge entity).
    """
    created_at, started_at, finished_at = _job_times(
        pipeline, status, created_at, started_at, finished_at
    )
    bridge = {
        **_common_fields(project, pipeline, id, name, stage, status, allow_failure=allow_failure,
                         created_at=created_at, started_at=started_at, finished_at=finished_at,
                         duration=duration, queued_duration=queued_duration, user=user,
                         commit_title=commit_title),
        "coverage": None,
        "downstream_pipeline": (
            None if downstream_pipeline is None else _pipeline_summary(downstream_pipeline)
        ),
    }
    if status == "failed":
        bridge["failure_reason"] = failure_reason or "unknown_failure"
    return bridge


_COMPONENTS = (
    "ingest", "orders", "customers", "warehouse", "dbt", "spark", "api",
    "lint", "unit", "integration", "schema", "docs",
)


def generate_pipeline(
    server_url: str,
    n_jobs: int,
    *,
    stages: Iterable[str] = ("build", "test", "deploy"),
    seed: int = 0,
    failed_every: int = 0,
    retried_every: int = 0,
    project: dict | None = None,
) -> tuple[dict, dict, list[dict]]:
    """A finished pipeline with exactly ``n_jobs`` job records.

    The records include superseded attempts: every ``retried_every``-th job
    failed once and was retried automatically. The superseded attempt keeps
    its original id; the retry gets a new, higher id after all the others
    (as GitLab creates it later), the same name and stage, and runs right
    after the failed attempt. Every ``failed_every``-th job ends "failed"
    (counting jobs, not attempts). Original ids increase stage by stage.
    Timestamps are consistent: jobs of a stage start once the previous stage
    has finished. Same arguments, same pipeline.
    """
    stages = tuple(stages)
    if n_jobs < 0 or not stages:
        raise ValueError("need n_jobs >= 0 and at least one stage")
    rng = random.Random(seed)
    project = project or make_project(server_url)

    # Fewest original jobs whose retries bring the record count to n_jobs.
    originals = n_jobs
    if retried_every:
        originals = math.ceil(n_jobs * retried_every / (retried_every + 1))
    retries = n_jobs - originals
    retried = {
        index for index in range(originals) if retried_every and (index + 1) % retried_every == 0
    }
    retried = set(sorted(retried)[:retries])

    pipeline_id = 1000 + seed
    first_job_id = 100_000 * (seed + 1) + 1
    created = _parse_iso(_BASE_TIME) + timedelta(minutes=seed)

    plans = []  # (stage, name, [(job id, status, start, end) per attempt])
    next_retry_id = first_job_id + originals
    stage_start = created + timedelta(seconds=5)
    pipeline_failed = False
    by_stage = [[] for _ in stages]
    for index in range(originals):
        by_stage[index * len(stages) // max(originals, 1)].append(index)
    for stage, indexes in zip(stages, by_stage):
        stage_end = stage_start
        for index in indexes:
            name = f"{stage}:{rng.choice(_COMPONENTS)}-{index + 1:05d}"
            fails = bool(failed_every) and (index + 1) % failed_every == 0
            start = stage_start + timedelta(seconds=rng.uniform(1, 20))
            end = start + timedelta(seconds=rng.uniform(20, 600))
            attempts = []
            if index in retried:
                attempts.append((first_job_id + index, "failed", start, end))
                start = end + timedelta(seconds=rng.uniform(1, 5))
                end = start + timedelta(seconds=rng.uniform(20, 600))
                attempts.append((next_retry_id, "failed" if fails else "success", start, end))
                next_retry_id += 1
            else:
                attempts.append((first_job_id + index, "failed" if fails else "success", start, end))
            pipeline_failed = pipeline_failed or fails
            stage_end = max(stage_end, end)
            plans.append((stage, name, attempts))
        stage_start = stage_end + timedelta(seconds=rng.uniform(1, 5))

    started = created + timedelta(seconds=5)
    finished = max((a[3] for _, _, attempts in plans for a in attempts), default=started)
    pipeline = make_pipeline(
        project,
        pipeline_id,
        status="failed" if pipeline_failed else "success",
        created_at=iso(created),
        started_at=iso(started),
        finished_at=iso(finished),
    )
    jobs = []
    for stage, name, attempts in plans:
        for job_id, status, start, end in attempts:
            jobs.append(
                make_job(
                    project, pipeline, job_id, name, stage, status,
                    created_at=iso(created) if job_id < first_job_id + originals else iso(start),
                    started_at=iso(start),
                    finished_at=iso(end),
                )
            )
    jobs.sort(key=lambda job: job["id"])
    return project, pipeline, jobs


# --------------------------------------------------------------------------
# Job logs
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamedTrace:
    """A job log produced on demand instead of held in memory.

    ``chunks()`` must yield exactly ``size`` bytes in total, from the start
    of the log, every time it is called. A Range request is served by
    skipping through the chunks, so keep them large (tens of KiB).
    """

    size: int
    chunks: Callable[[], Iterable[bytes]]


def synthetic_trace(size: int, *, tail: bytes = b"", seed: int = 0) -> StreamedTrace:
    """A log of ``size`` bytes: repeated runner-style lines, ending with ``tail``.

    Useful for 100 MB logs whose last lines (``tail``) carry the failure.
    """
    if size < len(tail):
        raise ValueError("size must be at least len(tail)")
    rng = random.Random(seed)
    lines = [
        b"section_start:1714557600:step_script\r\x1b[0K\x1b[0K\x1b[36;1mExecuting step_script\x1b[0;m\n"
    ]
    while sum(map(len, lines)) < 64 * 1024:
        lines.append(
            b"[%08.3fs] batch %06d: loaded %d rows into staging.orders\n"
            % (rng.uniform(0, 9999), rng.randrange(10**6), rng.randrange(10**5))
        )
    block = b"".join(lines)
    body_size = size - len(tail)

    def chunks() -> Iterator[bytes]:
        remaining = body_size
        while remaining >= len(block):
            yield block
            remaining -= len(block)
        if remaining:
            yield block[:remaining]
        if tail:
            yield tail

    return StreamedTrace(size, chunks)


def _trace_chunks(trace: bytes | StreamedTrace, start: int, end: int) -> Iterator[bytes]:
    """Bytes start..end (inclusive) of a trace, in chunks."""
    if isinstance(trace, (bytes, bytearray)):
        step = 64 * 1024
        for offset in range(start, end + 1, step):
            yield bytes(trace[offset : min(offset + step, end + 1)])
        return
    position = 0
    for chunk in trace.chunks():
        chunk_end = position + len(chunk)
        if chunk_end > start:
            yield chunk[max(start - position, 0) : end + 1 - position]
        position = chunk_end
        if position > end:
            return


def _parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """(start, end) for a single byte range, None to ignore it, "unsatisfiable"."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)-(\d*)\s*", header)
    # Multi-range and malformed headers are ignored, as RFC 9110 allows.
    if not match or match[1] == match[2] == "":
        return None
    if match[1] == "":
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size - 1
    start = int(match[1])
    end = int(match[2]) if match[2] else size - 1
    if match[2] and end < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1)


# --------------------------------------------------------------------------
# GitLab stand-in
# --------------------------------------------------------------------------


def _test_report(suites: list[dict], summary: bool) -> dict:
    """GitLab's pipeline test report (or its summary, which alone names the jobs: build_ids)."""
    def counts(cases: list[dict]) -> dict:
        statuses = [c.get("status") for c in cases]
        return {"total_count": len(cases), "success_count": statuses.count("success"),
                "failed_count": statuses.count("failed"), "skipped_count": statuses.count("skipped"),
                "error_count": statuses.count("error")}

    out_suites = []
    for suite in suites:
        cases = suite.get("test_cases", [])
        entry = {"name": suite["name"], "total_time": sum(c.get("execution_time") or 0 for c in cases),
                 **counts(cases), "suite_error": None}
        if summary:
            entry["build_ids"] = list(suite.get("build_ids", []))
        else:
            entry["test_cases"] = [{"status": c.get("status"), "name": c.get("name"), "classname": c.get("classname"),
                                    "file": None, "execution_time": c.get("execution_time"),
                                    "system_output": c.get("system_output"), "stack_trace": None,
                                    "recent_failures": None} for c in cases]
        out_suites.append(entry)
    all_cases = [c for s in suites for c in s.get("test_cases", [])]
    total = counts(all_cases)
    if summary:
        return {"total": {"time": sum(s["total_time"] for s in out_suites), "count": total["total_count"],
                          "success": total["success_count"], "failed": total["failed_count"],
                          "skipped": total["skipped_count"], "error": total["error_count"],
                          "suite_error": None}, "test_suites": out_suites}
    return {"total_time": sum(s["total_time"] for s in out_suites), **total, "test_suites": out_suites}


@dataclass
class Recorded:
    """One request the GitLab stand-in received.

    ``path`` is as sent, still percent-encoded (``/api/v4/projects/acme%2Fdata-platform``).
    ``query`` maps each parameter to its value; repeated ones (``scope[]``)
    are joined with commas; token parameters are replaced by "[redacted]".
    ``auth`` is the kind of credential presented, valid or not.
    ``bytes_sent`` counts body bytes handed to the socket (a client that
    hangs up early stops the count). ``started`` is when the request
    arrived (before any ``latency``), ``finished`` when the last byte of the
    answer was handed to the socket, both ``time.monotonic()``.
    """

    method: str
    path: str
    query: dict[str, str]
    auth: str  # "private" | "job" | "none"
    status: int = 0
    range: str | None = None
    bytes_sent: int = 0
    started: float = 0.0
    finished: float = 0.0


@dataclass
class _Fault:
    pattern: re.Pattern
    remaining: int
    kind: str  # "fail" | "truncate"
    status: int = 200
    headers: dict | None = None
    body: bytes | None = None


@dataclass
class _PipelineEntry:
    pipeline: dict
    jobs: list
    bridges: list
    test_suites: list | None = None


# Values Grape (via dry-types) accepts for a Boolean parameter.
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}
# CommitStatus::AVAILABLE_STATUSES, the values `scope` may take.
_JOB_STATUSES = {
    "created", "waiting_for_resource", "preparing", "waiting_for_callback",
    "pending", "running", "success", "failed", "canceling", "canceled",
    "skipped", "manual", "scheduled",
}
_TOKEN_PARAMS = {"private_token", "job_token", "access_token"}
# GitLab stops counting past this many items and then leaves out the totals.
_COUNT_LIMIT = 10_000
_MAX_PER_PAGE = 100
_API_PREFIX = "/api/v4/"


@dataclass
class _Throttle:
    paths: re.Pattern
    window: float
    limit: int
    retry_after: bool
    window_start: float = -1.0
    used: int = 0


def _latest(items: list[dict]) -> list[dict]:
    """The newest attempt of each name (a higher id is a later attempt)."""
    latest: dict[str, dict] = {}
    for item in items:
        kept = latest.get(item["name"])
        if kept is None or item["id"] > kept["id"]:
            latest[item["name"]] = item
    return list(latest.values())


class _BadRequest(Exception):
    pass


def _ruby_query(params: dict[str, Any]) -> str:
    """Encode like Rails' Hash#to_query, which GitLab uses for its Link URLs:
    arrays as key[]=v, booleans as true/false, keys sorted."""

    def text(value: Any) -> str:
        return quote_plus("true" if value is True else "false" if value is False else str(value))

    parts = []
    for key, value in params.items():
        if isinstance(value, list):
            parts.append("&".join(f"{quote_plus(key + '[]')}={text(item)}" for item in value))
        else:
            parts.append(f"{quote_plus(key)}={text(value)}")
    return "&".join(sorted(parts))


class GitLabStandIn(_StandInServer):
    """GitLab REST v4, as far as the reporter reads it. See the module docstring.

    ``traces`` given to add_pipeline map a job id to its log: ``bytes``, or a
    ``StreamedTrace`` (see ``synthetic_trace``) for logs too big to hold.

    Its defaults are GitLab's own behaviour (../shared/gitlab-api-facts.md); friendlier modes are
    opt-in and named as such:

    * A job token on a route not open to job tokens is ignored, as GitLab does, so the request is
      anonymous: "404 Project Not Found" for the (private) project's endpoints, 401 on the log
      endpoint. ``job_token_refusal_status`` (opt-in) answers that status instead.
    * A missing token is answered 401; real GitLab answers 404 "Project Not Found" for a private
      project on the endpoints that allow anonymous reads.
    * The log endpoint ignores Range and always answers 200 with the whole log, ``text/plain``, as
      GitLab's API does (lib/api/ci/jobs.rb reads ``build.trace.raw`` whole). ``trace_ranges=True``
      (friendlier, opt-in) honours Range, to measure what a tail read would save.
    * ``/bridges`` lists the latest attempt of each trigger job only, unless ``include_retried``
      is in the query at all: the route declares no such parameter but hands Grape's raw params to
      Ci::JobsFinder, which tests ``params[:include_retried]`` for truth, and any string is true in
      Ruby, "false" too (lib/api/ci/pipelines.rb, app/finders/ci/jobs_finder.rb).
    * ``build_access=False`` stands for a token that may read the pipeline but not its builds:
      the jobs list answers ``200 []``, as GitLab does (Ci::JobsFinder turns the denial into an
      empty list), and ``/bridges`` 403 (its route authorizes ``read_build`` itself).
    * ``throttle()`` makes it answer as GitLab.com's rate limiter does; ``lag_test_summary()``
      holds jobs back from the test report summary, as GitLab's background worker does.
    * Past 10,000 rows a listing sends no X-Total, X-Total-Pages or rel="last".
    * "Retried" means "superseded by a job of the same name with a higher id".
    """

    def __init__(
        self,
        token: str = "glpat-standin-token-000000000",
        job_token: str = "glcbt-standin-job-token-0000",
        *,
        job_token_refusal_status: int | None = None,
        trace_ranges: bool = False,
        build_access: bool = True,
        latency: float = 0.0,
        keep_alive: bool = False,
        clock: Callable[[], float] = time.time,
        graphql: bool = False,
        version: str | None = None,
        graphql_when: bool = True,
    ) -> None:
        super().__init__(latency, keep_alive)
        self.graphql = graphql  # opt-in: POST /api/graphql answers (GraphQLStandIn's docstring)
        self.graphql_when = graphql_when  # False: an older GitLab whose JobsResolver has no whenExecuted
        self.version = version  # opt-in: GET /api/v4/version answers with it
        self._needs: dict[tuple[int, int], dict[str, dict]] = {}  # (project, pipeline) -> job name -> needs, when
        self._build_access = build_access
        self._clock = clock  # the epoch seconds the rate limiter counts with
        self._throttle: _Throttle | None = None
        self._lagging: dict[int, int] = {}  # job id -> summary reads it stays out of
        self._token = token
        self._job_token = job_token
        self._job_token_refusal_status = job_token_refusal_status
        self.trace_ranges = trace_ranges  # opt-in, friendlier than GitLab: honour Range
        self._projects: dict[int, dict] = {}
        self._pipelines: dict[int, dict[int, _PipelineEntry]] = {}
        self._traces: dict[int, dict[int, bytes | StreamedTrace]] = {}
        self._faults: list[_Fault] = []
        self.requests: list[Recorded] = []

    @property
    def url(self) -> str:
        return self.server_url

    # The credentials it accepts, for the code under test to be configured
    # with; they are never written into the recorded requests.
    @property
    def token(self) -> str:
        return self._token

    @property
    def job_token(self) -> str:
        return self._job_token

    # ---- test-facing API ------------------------------------------------

    def add_pipeline(
        self,
        project: dict,
        pipeline: dict,
        jobs: list[dict],
        bridges: Iterable[dict] = (),
        traces: dict[int, bytes | StreamedTrace] | None = None,
        test_suites: list[dict] | None = None,
    ) -> None:
        """Serve this pipeline. The dicts are kept, not copied: changing a
        job's status later changes what the next request sees. Adding the
        same pipeline id again replaces it.

        ``test_suites`` is GitLab's parsed JUnit report: a list of
        ``{"name", "build_ids": [...], "test_cases": [{"name", "classname",
        "status", "execution_time", "system_output"}]}``; the summary and the
        full report endpoints are both derived from it (empty without it)."""
        with self._lock:
            self._projects[project["id"]] = project
            self._pipelines.setdefault(project["id"], {})[pipeline["id"]] = _PipelineEntry(
                pipeline, list(jobs), list(bridges), test_suites
            )
            self._traces.setdefault(project["id"], {}).update(traces or {})

    def set_needs(self, project_id: int, pipeline_id: int, needs: dict[str, list[str]],
                  when: dict[str, str] | None = None) -> None:
        """The `needs` of jobs by name (a job not named waits for the previous stage) and their
        `when` (on_success unless named), as the pipeline's YAML gave them: GraphQL reads them."""
        with self._lock:
            self._needs[(project_id, pipeline_id)] = {
                name: {"needs": needs.get(name), "when": (when or {}).get(name, "on_success")}
                for name in {*needs, *(when or {})}}

    def fail(
        self,
        path_regex: str,
        status: int,
        times: int = 1,
        headers: dict | None = None,
        body: bytes | None = None,
    ) -> None:
        """The next ``times`` requests whose path matches (re.search on the
        raw path) are answered ``status`` before anything else is checked.
        Without ``body`` the answer is GitLab-style JSON {"message": "502 Bad Gateway"}."""
        with self._lock:
            self._faults.append(
                _Fault(re.compile(path_regex), times, "fail", status, headers, body)
            )

    def truncate(self, path_regex: str, times: int = 1) -> None:
        """The next ``times`` matching requests get their normal answer with
        the body cut in half (Content-Length matching the cut body), so a
        JSON document ends mid-way. Meant for the JSON endpoints."""
        with self._lock:
            self._faults.append(_Fault(re.compile(path_regex), times, "truncate"))

    def throttle(self, *, window: float = 60.0, limit: int = 0, retry_after: bool = True,
                 paths: str = ".") -> None:
        """Answer as GitLab.com's rate limiter: once ``limit`` requests matching ``paths`` came in
        the current window (of ``window`` seconds of the stand-in's clock, aligned to the epoch),
        every further one is refused 429 until the window ends, with a plain-text body, the
        ``RateLimit-*`` headers and ``Retry-After`` (the seconds to the window's end, rounded up)
        unless ``retry_after=False``, which leaves ``RateLimit-Reset`` (an epoch second) alone."""
        with self._lock:
            self._throttle = _Throttle(re.compile(paths), window, limit, retry_after)

    def lag_test_summary(self, job_ids: Iterable[int], reads: int = 1) -> None:
        """The test report summary leaves these jobs out for its next ``reads`` reads, as it does
        while GitLab's background worker has not processed a just-finished job's report yet."""
        with self._lock:
            self._lagging.update({job_id: reads for job_id in job_ids})

    def _throttled(self, raw_path: str) -> Response | None:
        with self._lock:
            rule = self._throttle
            if rule is None or not rule.paths.search(raw_path):
                return None
            now = self._clock()
            start = now - now % rule.window
            if start != rule.window_start:
                rule.window_start, rule.used = start, 0
            rule.used += 1
            if rule.used <= rule.limit:
                return None
            reset = start + rule.window
        headers = {
            "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Limit": str(rule.limit),
            "RateLimit-Observed": str(rule.used),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(int(math.ceil(reset))),
        }
        if rule.retry_after:
            headers["Retry-After"] = str(int(math.ceil(reset - now)))
        return Response(b"Retry later\n", status=429, headers=headers, content_type="text/plain")

    def _summary_so_far(self, suites: list[dict]) -> list[dict]:
        """The suites GitLab's worker has processed so far (called with the lock held)."""
        held = {job_id for job_id, reads in self._lagging.items() if reads > 0}
        for job_id in held:
            self._lagging[job_id] -= 1
        return [suite for suite in suites if not set(suite.get("build_ids", [])) & held]

    def clear_records(self) -> None:
        """Forget the requests recorded so far and zero ``connections``
        (pipelines, faults and traces stay), so that one stand-in can serve
        run after run."""
        with self._lock:
            self.requests.clear()
            self.connections = 0

    def count(self, path_regex: str, where: Callable[[Recorded], bool] | None = None) -> int:
        """Requests whose path matches, and that `where` (given) keeps: `unfiltered`, say."""
        pattern = re.compile(path_regex)
        with self._lock:
            return sum(1 for request in self.requests if pattern.search(request.path)
                       and (where is None or where(request)))

    # ---- request handling -----------------------------------------------

    def _handle(self, request: Request) -> Response:
        raw_path = urlsplit(request.environ.get("RAW_URI") or request.path).path
        auth_kind, auth_valid = self._credential(request)
        recorded = Recorded(
            method=request.method,
            path=raw_path,
            query={
                key: "[redacted]" if key in _TOKEN_PARAMS else ",".join(values)
                for key, values in request.args.lists()
            },
            auth=auth_kind,
            range=request.headers.get("Range"),
            started=request.environ.get(_ARRIVED, 0.0),
        )
        request.environ[_RECORD] = recorded
        with self._lock:
            self.requests.append(recorded)
            fault = self._take_fault(raw_path)

        if fault is not None and fault.kind == "fail":
            response = self._fault_response(fault)
        else:
            try:
                response = self._route(request, raw_path, auth_kind, auth_valid)
            except _BadRequest as error:
                response = _json_response(400, {"error": str(error)})
            if fault is not None:  # truncate
                data = response.get_data()
                response.set_data(data[: len(data) // 2])

        recorded.status = response.status_code
        if response.is_streamed:
            response.response = self._counting(response.response, recorded)
        else:
            recorded.bytes_sent = len(response.get_data())
        return response

    def _take_fault(self, raw_path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.pattern.search(raw_path):
                fault.remaining -= 1
                return fault
        return None

    @staticmethod
    def _fault_response(fault: _Fault) -> Response:
        if fault.body is None:
            return _json_response(
                fault.status, {"message": _status_line(fault.status)}, fault.headers
            )
        response = Response(fault.body, status=fault.status, headers=fault.headers)
        if not fault.headers or not any(k.lower() == "content-type" for k in fault.headers):
            response.content_type = "text/plain"
        return response

    @staticmethod
    def _counting(chunks: Iterable[bytes], recorded: Recorded) -> Iterator[bytes]:
        for chunk in chunks:
            recorded.bytes_sent += len(chunk)
            yield chunk

    def _credential(self, request: Request) -> tuple[str, bool]:
        """(kind, valid) of the credential presented, in GitLab's order of
        precedence: personal access token, then job token."""
        private = request.headers.get("PRIVATE-TOKEN") or request.args.get("private_token")
        if private is not None:
            return "private", private == self._token
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            # GitLab also takes a job token as a Bearer token where job tokens are allowed.
            if value == self._job_token:
                return "job", True
            return "private", value == self._token
        job = request.headers.get("JOB-TOKEN") or request.args.get("job_token")
        if job is not None:
            return "job", job == self._job_token
        return "none", False

    def _route(self, request: Request, raw_path: str, auth_kind: str, auth_valid: bool) -> Response:
        throttled = self._throttled(raw_path)  # Rack::Attack answers before the API is reached
        if throttled is not None:
            return throttled
        if raw_path == "/api/graphql" and self.graphql:
            return self._graphql(request, auth_kind, auth_valid)
        if raw_path == f"{_API_PREFIX}version" and self.version is not None:
            if auth_kind == "job" or not auth_valid:  # /version is not open to a job token
                return _json_response(401, {"message": "401 Unauthorized"})
            return _json_response(200, {"version": self.version, "revision": "6d8c2b7a1f4",
                                        "kas": {"enabled": False, "externalUrl": None, "version": None},
                                        "enterprise": self.version.endswith("-ee")})
        if not raw_path.startswith(_API_PREFIX):
            return _json_response(404, {"error": "404 Not Found"})
        # Split before decoding: a project path arrives as acme%2Fdata-platform.
        segments = [unquote(part) for part in raw_path[len(_API_PREFIX) :].split("/")]
        match segments:
            case ["projects", project_ref]:
                endpoint, job_token_allowed, ids = "project", False, {}
            case ["projects", project_ref, "pipelines"]:
                endpoint, job_token_allowed, ids = "pipelines", False, {}
            case ["projects", project_ref, "pipelines", pipeline_ref]:
                endpoint, job_token_allowed, ids = "pipeline", False, {"pipeline_id": pipeline_ref}
            case ["projects", project_ref, "pipelines", pipeline_ref, "test_report" | "test_report_summary" as kind]:
                endpoint, job_token_allowed, ids = kind, False, {"pipeline_id": pipeline_ref}
            case ["projects", project_ref, "pipelines", pipeline_ref, "jobs"]:
                endpoint, job_token_allowed, ids = "jobs", True, {"pipeline_id": pipeline_ref}
            case ["projects", project_ref, "pipelines", pipeline_ref, "bridges"]:
                endpoint, job_token_allowed, ids = "bridges", False, {"pipeline_id": pipeline_ref}
            case ["projects", project_ref, "jobs", job_ref, "trace"]:
                endpoint, job_token_allowed, ids = "trace", False, {"job_id": job_ref}
            case _:
                return _json_response(404, {"error": "404 Not Found"})

        if request.method not in ("GET", "HEAD"):
            return _json_response(405, {"error": "405 Not Allowed"}, {"Allow": "GET, HEAD"})
        if not auth_valid:
            return _json_response(401, {"message": "401 Unauthorized"})
        if auth_kind == "job" and not job_token_allowed:
            status = self._job_token_refusal_status
            if status is None:  # GitLab: the token is ignored, so the request is anonymous
                status = 401 if endpoint == "trace" else 404
            message = {404: "404 Project Not Found", 401: "401 Unauthorized"}.get(status, _status_line(status))
            return _json_response(status, {"message": message})

        for name, value in ids.items():
            if not re.fullmatch(r"\d+", value):
                raise _BadRequest(f"{name} is invalid")
        with self._lock:
            project = self._find_project(project_ref)
            if project is None:
                return _json_response(404, {"message": "404 Project Not Found"})
            pipelines = self._pipelines[project["id"]]
            traces = self._traces[project["id"]]
            if endpoint == "project":
                return _json_response(200, project)
            if endpoint == "trace":
                return self._trace(request, int(ids["job_id"]), pipelines, traces)
            if endpoint == "pipelines":
                return self._list_pipelines(request, raw_path, project_ref, pipelines)
            entry = pipelines.get(int(ids["pipeline_id"]))
            if entry is None:
                return _json_response(404, {"message": "404 Not found"})
            if endpoint == "pipeline":
                return _json_response(200, entry.pipeline)
            if endpoint in ("test_report", "test_report_summary"):
                suites = entry.test_suites or []
                if endpoint == "test_report_summary" and self._lagging:
                    suites = self._summary_so_far(suites)
                return _json_response(200, _test_report(suites, endpoint == "test_report_summary"))
            path_params = {"id": project_ref, "pipeline_id": int(ids["pipeline_id"])}
            if endpoint == "jobs":
                jobs = entry.jobs if self._build_access else []
                return self._list(request, raw_path, jobs, path_params, with_retried_param=True)
            if not self._build_access:  # the bridges route authorizes read_build itself
                return _json_response(403, {"message": "403 Forbidden"})
            bridges = entry.bridges if "include_retried" in request.args else _latest(entry.bridges)
            return self._list(request, raw_path, bridges, path_params, with_retried_param=False)

    def _graphql(self, request: Request, auth_kind: str, auth_valid: bool) -> Response:
        """POST /api/graphql for the one query the reporter sends, shaped by GitLab's types (see
        GRAPHQL in this module's docstring)."""
        if auth_kind == "job" or (auth_kind != "none" and not auth_valid):
            # RequestAuthenticator#find_user_for_graphql_api_request takes no CI_JOB_TOKEN; a token
            # header no user was found for is "Invalid token" (GraphqlController#authorize_access_api!).
            return _json_response(401, {"errors": [{"message": "Invalid token"}]})
        if request.method != "POST":
            return _json_response(200, {"errors": [{"message": "Mutations are forbidden in GET requests"}]})
        try:
            body = json.loads(request.get_data() or b"{}")
            text, variables = str(body["query"]), dict(body.get("variables") or {})
        except (ValueError, KeyError, TypeError):
            return _json_response(200, {"errors": [{"message": "Unexpected end of document"}]})
        if len(text) > 10_000:
            return _json_response(200, {"errors": [{"message": "Query too large"}]})
        if "whenExecuted" in text and not self.graphql_when:
            return _json_response(200, {"errors": [{
                "message": "Field 'jobs' doesn't accept argument 'whenExecuted'",
                "locations": [{"line": 1, "column": 1}], "path": ["query", "project", "pipeline", "jobs",
                                                                  "whenExecuted"],
                "extensions": {"code": "argumentNotAccepted", "name": "jobs", "typeName": "Field",
                               "argumentName": "whenExecuted"}}]})
        lists = re.findall(r'(\w+): jobs\(first: (\d+), after: \$(\w+)(?:, whenExecuted: \["(\w+)"\])?\)', text)
        if not lists:
            return _json_response(200, {"errors": [{"message": "The stand-in knows only the reporter's query"}]})
        with self._lock:
            project = self._find_project(str(variables.get("path") or ""))
            if project is None or auth_kind == "none":  # a private project is null to an anonymous caller
                return _json_response(200, {"data": {"project": None}})
            iid = str(variables.get("iid"))
            entry = next((e for e in self._pipelines[project["id"]].values() if str(e.pipeline.get("iid")) == iid),
                         None)
            if entry is None:
                return _json_response(200, {"data": {"project": {"pipeline": None}}})
            declared = self._needs.get((project["id"], entry.pipeline["id"]), {})
            # JobsResolver: pipeline.statuses_order_id_desc, retried attempts included.
            jobs = sorted([*entry.jobs, *entry.bridges], key=lambda j: -j["id"]) if self._build_access else []
        pipeline: dict[str, Any] = {}
        for alias, first, cursor_name, when in lists:
            listed = [j for j in jobs if not when or declared.get(j["name"], {}).get("when", "on_success") == when]
            after = variables.get(cursor_name)
            if after is not None:  # GitLab's keyset cursor: base64 of {"id": "<last id>"}, newest first
                last = int(json.loads(base64.b64decode(str(after)))["id"])
                listed = [j for j in listed if j["id"] < last]
            page = listed[:min(int(first), _MAX_PER_PAGE)]
            more = len(listed) > len(page)
            end = base64.b64encode(json.dumps({"id": str(page[-1]["id"])}).encode()).decode() if page else None
            nodes = [self._graphql_job(j, declared, alias == "jobs") for j in page]
            pipeline[alias] = {"pageInfo": {"hasNextPage": more, "endCursor": end}, "nodes": nodes}
        return _json_response(200, {"data": {"project": {"pipeline": pipeline}}})

    @staticmethod
    def _graphql_job(job: dict, declared: dict[str, dict], full: bool) -> dict:
        kind = "Ci::Bridge" if "downstream_pipeline" in job else "Ci::Build"
        node: dict[str, Any] = {"id": f"gid://gitlab/{kind}/{job['id']}"}
        if not full:
            return node
        needs = declared.get(job["name"], {}).get("needs")
        node["name"] = job["name"]
        node["schedulingType"] = "stage" if needs is None else "dag"
        node["needs"] = {"pageInfo": {"hasNextPage": False},
                         "nodes": [{"id": f"gid://gitlab/Ci::BuildNeed/{job['id']}{i}", "name": name}
                                   for i, name in enumerate(needs or [])]}
        return node

    def _list_pipelines(self, request: Request, raw_path: str, project_ref: str, pipelines: dict) -> Response:
        """GET /projects/:id/pipelines with the filters a backfill uses; GitLab's list shape."""
        args = request.args
        items = [entry.pipeline for entry in pipelines.values()]
        if args.get("ref"):
            items = [p for p in items if p.get("ref") == args["ref"]]
        if args.get("status"):
            items = [p for p in items if p.get("status") == args["status"]]
        # GitLab's PipelinesFinder leaves child pipelines out unless they are asked for by source.
        if args.get("source"):
            items = [p for p in items if p.get("source") == args["source"]]
        else:
            items = [p for p in items if p.get("source") != "parent_pipeline"]
        for name, keep in (("updated_after", lambda t, bound: t > bound), ("updated_before", lambda t, bound: t < bound)):
            if args.get(name):
                bound = _parse_iso(args[name])
                items = [p for p in items if keep(_parse_iso(p.get("updated_at") or p["created_at"]), bound)]
        order = args.get("order_by", "id")
        if order not in ("id", "status", "ref", "updated_at", "user_id"):
            raise _BadRequest("order_by does not have a valid value")
        items = sorted(items, key=lambda p: (p.get(order) or "", p["id"]), reverse=args.get("sort", "desc") == "desc")
        keys = ("id", "iid", "project_id", "sha", "ref", "status", "source", "created_at", "updated_at", "web_url",
                "name")
        listed = [{k: p.get(k) for k in keys} for p in items]
        params = {"id": project_ref, **{k: v for k, v in args.items() if k not in _TOKEN_PARAMS}}
        return self._paginate(args, raw_path, listed, params)

    def _find_project(self, ref: str) -> dict | None:
        if ref.isdigit():
            return self._projects.get(int(ref))
        # GitLab looks full paths up case-insensitively.
        for project in self._projects.values():
            if project["path_with_namespace"].lower() == ref.lower():
                return project
        return None

    def _list(
        self,
        request: Request,
        raw_path: str,
        items: list[dict],
        path_params: dict[str, Any],
        *,
        with_retried_param: bool,
    ) -> Response:
        args = request.args
        # Grape hands every parameter it received to the Link builder, plus
        # the declared defaults; Rack turns key[]= into an array under key.
        params: dict[str, Any] = dict(path_params)
        for key, values in args.lists():
            if key not in _TOKEN_PARAMS:
                params[key.removesuffix("[]")] = values if key.endswith("[]") else values[-1]

        if with_retried_param:
            raw = args.get("include_retried", "")
            if raw.lower() in _TRUE:
                include_retried = True
            elif raw == "" or raw.lower() in _FALSE:
                include_retried = False
            else:
                raise _BadRequest("include_retried is invalid")
            params["include_retried"] = include_retried
            if not include_retried:
                items = _latest(items)

        scope = args.getlist("scope[]") or args.getlist("scope")
        if scope:
            if not set(scope) <= _JOB_STATUSES:
                raise _BadRequest("scope does not have a valid value")
            params["scope"] = scope
            items = [item for item in items if item["status"] in scope]

        items = sorted(items, key=lambda item: item["id"], reverse=True)
        return self._paginate(args, raw_path, items, params)

    def _paginate(self, args: Any, raw_path: str, items: list[dict], params: dict) -> Response:
        def integer(name: str, default: int) -> int:
            raw = args.get(name, "")
            if raw == "":
                return default
            if not re.fullmatch(r"[+-]?\d+", raw.strip()):
                raise _BadRequest(f"{name} is invalid")
            return int(raw)

        page = integer("page", 1)
        per_page_param = integer("per_page", 20)
        if per_page_param == 0:
            raise _BadRequest("per_page has a value not allowed")
        params["page"], params["per_page"] = page, per_page_param
        # Kaminari: a negative per_page means the default, above the max is capped,
        # and a page below 1 is page 1.
        per_page = 20 if per_page_param < 0 else min(per_page_param, _MAX_PER_PAGE)
        page = max(page, 1)

        total = len(items)
        offset = (page - 1) * per_page
        page_items = items[offset : offset + per_page]
        out_of_range = offset >= total
        next_page = page + 1 if offset + per_page < total else None
        prev_page = page - 1 if page > 1 and not out_of_range else None
        counted = total <= _COUNT_LIMIT
        total_pages = max(math.ceil(total / per_page), 1)

        def href(target: int) -> str:
            query = _ruby_query({**params, "page": target})
            return f"<{self.url}{raw_path}?{query}>"

        links = []
        if prev_page:
            links.append(f'{href(prev_page)}; rel="prev"')
        if next_page:
            links.append(f'{href(next_page)}; rel="next"')
        links.append(f'{href(1)}; rel="first"')
        if counted:
            links.append(f'{href(total_pages)}; rel="last"')

        headers = {
            "X-Per-Page": str(per_page),
            "X-Page": str(page),
            "X-Next-Page": str(next_page or ""),
            "X-Prev-Page": str(prev_page or ""),
            "Link": ", ".join(links),
        }
        if counted:
            headers["X-Total"] = str(total)
            headers["X-Total-Pages"] = str(total_pages)
        return _json_response(200, page_items, headers)

    def _trace(
        self,
        request: Request,
        job_id: int,
        pipelines: dict[int, _PipelineEntry],
        traces: dict[int, bytes | StreamedTrace],
    ) -> Response:
        # Only builds have logs: a bridge id is as unknown here as in GitLab.
        if not any(job["id"] == job_id for entry in pipelines.values() for job in entry.jobs):
            return _json_response(404, {"message": "404 Not found"})
        trace = traces.get(job_id, b"")  # GitLab answers an empty body when there is no log
        size = len(trace) if isinstance(trace, (bytes, bytearray)) else trace.size
        headers = {"Content-Disposition": f'infile; filename="{job_id}.log"'}

        start, end, status = 0, size - 1, 200
        if self.trace_ranges:
            headers["Accept-Ranges"] = "bytes"
            wanted = _parse_range(request.headers.get("Range", ""), size)
            if wanted == "unsatisfiable":
                headers["Content-Range"] = f"bytes */{size}"
                return Response(b"", status=416, headers=headers, content_type="text/plain")
            if wanted is not None:
                start, end = wanted
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        body = _trace_chunks(trace, start, end) if size else iter(())
        return Response(
            body, status=status, headers=headers, content_type="text/plain",
            direct_passthrough=True,
        )


# --------------------------------------------------------------------------
# Databand stand-in
# --------------------------------------------------------------------------


@dataclass
class Received:
    """One request the Databand stand-in received.

    ``bytes`` is the body as it came (gzip), ``json_bytes`` its size once
    gunzipped (None when it did not gunzip or was never looked at).
    ``started``/``finished``: as in ``Recorded``. ``status`` 0: reset.
    """

    method: str
    path: str
    bytes: int
    json_bytes: int | None = None
    status: int = 0
    started: float = 0.0
    finished: float = 0.0


@dataclass
class _Step:
    status: int | None = None
    headers: dict | None = None
    delay: float = 0.0
    reset: bool = False
    body: bytes | None = None


class DatabandStandIn(_StandInServer):
    """Databand's OpenLineage bulk endpoint.

    Checks on ``POST {url}``, in order: Authorization (401), Content-Type
    application/json (415), Content-Encoding gzip (415), body gunzips (400),
    parses as JSON (400), is an array of objects (400). A payload without a
    root run (an event whose run.facets has no "parent") is answered 200 but
    not kept, and listed in ``rejected`` as "no root run", which is how
    Databand drops it. Any other method or path: 404.

    ``received`` lists every request (``Received``): its body's size on the
    wire and gunzipped, status and timing.
    """

    def __init__(
        self,
        token: str = "databand-standin-token-0000",
        path_uid: str = "3a8bc7f8-0c65-115f-98f6-aa662e60cbe7",
        *,
        latency: float = 0.0,
        keep_alive: bool = False,
    ) -> None:
        super().__init__(latency, keep_alive)
        self._token = token
        self._path = f"/api/v1/tracking/open-lineage/{path_uid}/events/bulk"
        self._script: collections.deque[_Step] = collections.deque()
        self.payloads: list[list[dict]] = []
        self.events: list[dict] = []
        self.rejected: list[tuple[int, str]] = []
        self.requests_seen = 0
        self.received: list[Received] = []

    @property
    def url(self) -> str:
        return f"{self.server_url}{self._path}"

    @property
    def token(self) -> str:
        """The token it accepts; never written into ``rejected``."""
        return self._token

    def script(self, *responses: int | dict) -> None:
        """Queue what the next requests (whatever their path) get, in order,
        before normal behaviour resumes.

        Each entry is a status, or a dict with any of: "status", "headers",
        "body" (bytes or str), "delay" (seconds to wait first), "reset"
        (close the connection with an RST instead of answering). An entry
        with "status" or "reset" replaces normal handling: the payload is not
        kept and the request is listed in ``rejected`` as "scripted" (status 0
        for a reset). A dict with only "delay" (and "headers") delays normal
        handling: the payload is kept even if the client has given up, as a
        real server would.
        """
        steps = []
        for response in responses:
            if isinstance(response, int):
                steps.append(_Step(status=response))
                continue
            unknown = set(response) - {"status", "headers", "delay", "reset", "body"}
            if unknown:
                raise ValueError(f"unknown script keys: {sorted(unknown)}")
            body = response.get("body")
            steps.append(
                _Step(
                    status=response.get("status"),
                    headers=response.get("headers"),
                    delay=float(response.get("delay", 0)),
                    reset=bool(response.get("reset", False)),
                    body=body.encode() if isinstance(body, str) else body,
                )
            )
        with self._lock:
            self._script.extend(steps)

    def clear_records(self) -> None:
        """Forget what was received and kept so far (the script stays), so
        that one stand-in can serve run after run."""
        with self._lock:
            self.payloads.clear()
            self.events.clear()
            self.rejected.clear()
            self.received.clear()
            self.requests_seen = 0
            self.connections = 0

    def _refuse(self, status: int, reason: str, headers: dict | None = None) -> Response:
        with self._lock:
            self.rejected.append((status, reason))
        return _json_response(status, {"message": reason}, headers)

    def _handle(self, request: Request) -> Response:
        with self._lock:
            self.requests_seen += 1
            step = self._script.popleft() if self._script else None
        # Read the whole body first: the client has then sent everything, so a
        # scripted reset or delay hits it while it waits for the answer.
        body = request.get_data()
        received = Received(
            request.method, request.path, len(body), started=request.environ.get(_ARRIVED, 0.0)
        )
        request.environ[_RECORD] = received
        with self._lock:
            self.received.append(received)
        response = self._answer(request, body, step)
        received.status = response.status_code
        return response

    def _answer(self, request: Request, body: bytes, step: _Step | None) -> Response:
        received = request.environ[_RECORD]
        if step is not None:
            if step.delay:
                self._stopping.wait(step.delay)
            if step.reset:
                with self._lock:
                    self.rejected.append((0, "scripted reset"))
                received.finished = time.monotonic()
                raise _ResetConnection("scripted reset")
            if step.status is not None:
                with self._lock:
                    self.rejected.append((step.status, "scripted"))
                if step.body is not None:
                    return Response(step.body, status=step.status, headers=step.headers)
                return _json_response(
                    step.status, {"message": _status_line(step.status)}, step.headers
                )

        response = self._check_and_keep(request, body)
        if step is not None and step.headers:
            response.headers.update(step.headers)
        return response

    def _check_and_keep(self, request: Request, body: bytes) -> Response:
        if request.method != "POST" or request.path != self._path:
            return self._refuse(404, "no such endpoint")
        authorization = request.headers.get("Authorization")
        if authorization is None:
            return self._refuse(401, "missing Authorization")
        if authorization != f"Bearer {self._token}":
            return self._refuse(401, "wrong token")
        if request.mimetype != "application/json":
            return self._refuse(415, "Content-Type is not application/json")
        if request.headers.get("Content-Encoding", "").strip().lower() != "gzip":
            return self._refuse(415, "Content-Encoding is not gzip")
        try:
            text = gzip.decompress(body)
        except (OSError, EOFError, zlib.error):
            return self._refuse(400, "body is not gzip")
        request.environ[_RECORD].json_bytes = len(text)
        try:
            events = json.loads(text)
        except ValueError:
            return self._refuse(400, "body is not JSON")
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            return self._refuse(400, "body is not a JSON array of objects")

        def is_root(event: dict) -> bool:
            run = event.get("run")
            if not isinstance(run, dict):
                return False
            facets = run.get("facets") or {}
            return "parent" not in facets

        if not any(is_root(event) for event in events):
            # Databand answers 200 and drops the payload; only the list shows it.
            with self._lock:
                self.rejected.append((200, "no root run"))
            return _json_response(200, {})
        with self._lock:
            self.payloads.append(events)
            self.events.extend(events)
        return _json_response(200, {})


def unfiltered(request: Recorded) -> bool:
    """A listing's request without a status filter (the reporter also lists the failed jobs alone)."""
    return "scope[]" not in request.query and "scope" not in request.query


def failed_only(request: Recorded) -> bool:
    return request.query.get("scope[]") == "failed"
