"""Property: nothing is lost whatever the exception. An exception of a random type is raised at a
random I/O step of delivery (making the session, making or gzipping a part, each POST before it
goes or after its answer came, the transport's conversion and writes, stdout, and the kept file's
write, sync and rename), for every target (databand, openlineage, file, console), with or without
the target refusing too. Then every event the target did not acknowledge is in a kept file, and the
failure says why; an exception that is not an Exception (SystemExit, KeyboardInterrupt where no
signal handler runs, a library's own BaseException) goes on after the events are kept, since it is
not the delivery's to stop. `Interrupted` (our signals) has tests of its own (tests/test_handoff.py,
tests/test_faults.py).

The faults patch the reporter's own seams (its adapter, its modules' names for gzip and os, the
targets' methods), never requests: the servers are real, on 127.0.0.1.

Budget (`ci` profile, fixed seed): 80 examples, about 6 s; `long`: 800 (about 6 min on a loaded machine).
"""

from __future__ import annotations

import errno
import io
import json
import ssl
import sys
import tempfile
from pathlib import Path

import pipelines
import pytest
import requests
import urllib3
from clirun import QUICK
from fuzzing import examples
from hostile import Recorder
from hypothesis import given, settings
from hypothesis import strategies as st
from standins import DatabandStandIn, GitLabStandIn

from reporter import databand as databand_module
from reporter import delivery, eventfiles, timebound
from reporter import report as lib
from reporter.events import lifecycle
from reporter.settings import Settings

pytest.importorskip("openlineage.client")
from reporter import transports  # noqa: E402


class Custom(Exception):
    pass


class Foreign(BaseException):
    """A library's own BaseException (as gevent's Timeout is)."""


# Sane to survive: every Exception a library or the OS can raise. Not to swallow: BaseExceptions.
ERRORS = [
    lambda: OSError(errno.EIO, "I/O error"), lambda: OSError(errno.ENOSPC, "No space left on device"),
    lambda: ValueError("bad value"), lambda: TypeError("bad type"), lambda: KeyError("missing"),
    lambda: UnicodeEncodeError("utf-8", "\udc80", 0, 1, "surrogates not allowed"), lambda: RuntimeError("odd"),
    lambda: MemoryError(), lambda: RecursionError("deep"), lambda: ssl.SSLError(1, "tls"),
    lambda: requests.ConnectionError("reset"), lambda: requests.Timeout("slow"),
    lambda: urllib3.exceptions.ProtocolError("cut"), lambda: Custom("ours"),
]
BASE_ERRORS = [lambda: Foreign("not ours"), lambda: SystemExit(7), lambda: KeyboardInterrupt()]

STEPS = {
    "databand": ["session", "gzip", "parts", "post-before", "post-after"],
    "openlineage": ["transport", "lifecycle", "post-before", "post-after"],
    "file": ["lifecycle", "emit"],
    "console": ["lifecycle", "write", "flush"],
}
KEEP_STEPS = ["keep-dump", "keep-fsync", "keep-rename"]


@pytest.fixture(scope="module")
def events():
    with GitLabStandIn() as gitlab:
        pipelines.mixed(gitlab.url).install(gitlab)
        collected = lib.collect(Settings(gitlab_url=gitlab.url, gitlab_token=gitlab.token), 42, 9001)
    return list(collected.events)


@pytest.fixture(scope="module")
def servers():
    with DatabandStandIn() as databand, Recorder(b"{}", "application/json") as recorder:
        yield databand, recorder


class Fault:
    """Raises `error()` on call number `nth` of the step (once)."""

    def __init__(self, error, nth: int):
        self.error, self.nth, self.calls, self.fired = error, nth, 0, False

    def maybe(self) -> None:
        self.calls += 1
        if self.calls == self.nth and not self.fired:
            self.fired = True
            raise self.error()

    def around(self, real, before: bool = True):
        def call(*args, **kwargs):
            if before:
                self.maybe()
            result = real(*args, **kwargs)
            if not before:
                self.maybe()
            return result
        return call


class FailingStdout(io.StringIO):
    def __init__(self, fault: Fault | None, on: str, closed_already: bool):
        super().__init__()
        self.fault, self.on = fault, on
        if closed_already:
            self.close()

    def write(self, text):
        if self.fault and self.on == "write":
            self.fault.maybe()
        return super().write(text)

    def flush(self):
        if self.fault and self.on == "flush":
            self.fault.maybe()
        return super().flush()


def run_ids(items) -> set[str]:
    return {event["run"]["runId"] for event in items}


@settings(max_examples=examples(80))
@given(target_name=st.sampled_from(sorted(STEPS)), data=st.data())
def test_nothing_is_lost_whatever_the_exception(events, servers, target_name, data):
    databand, recorder = servers
    step = data.draw(st.sampled_from(STEPS[target_name] + KEEP_STEPS), label="step")
    base = data.draw(st.booleans(), label="a BaseException") and step not in KEEP_STEPS
    error = data.draw(st.sampled_from(BASE_ERRORS if base else ERRORS), label="error")
    fault = Fault(error, data.draw(st.integers(1, 3), label="on call"))
    refuse = data.draw(st.booleans(), label="the target refuses too") or step in KEEP_STEPS
    databand.clear_records()
    with databand._lock:
        databand._script.clear()
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        here, spare = Path(folder, "job"), Path(folder, "tmp")
        here.mkdir()
        spare.mkdir()
        patch.setattr(tempfile, "tempdir", str(spare))
        before = len(recorder.seen)
        if target_name == "databand":
            target = databand_module.Databand(databand.url, databand.token, bounds=QUICK)
            if refuse:
                databand.script(*[401] * 3)
        elif target_name == "openlineage":
            # The Databand stand-in refuses what it is told to: there, a backend that answers 401.
            url = databand.server_url if refuse else recorder.url
            target = transports.OpenLineageHttp({"OPENLINEAGE_URL": url}, bounds=QUICK)
            if refuse:
                databand.script(*[401] * 40)
        elif target_name == "file":
            path = here / ("a-folder" if refuse else "events.ndjson")
            if refuse:
                path.mkdir()
            target = transports.LifecycleFile(str(path))
        else:
            target = transports.Console()
        stdout = FailingStdout(fault if step in ("write", "flush") else None, step,
                               closed_already=refuse and target_name == "console")
        patch.setattr(sys, "stdout", stdout)

        if step == "session":
            patch.setattr(target, "_session", fault.around(target._session))
        elif step == "gzip":
            patch.setattr(databand_module, "gzip", type("gzip", (), {"compress": staticmethod(
                fault.around(databand_module.gzip.compress))}))
        elif step == "parts":
            patch.setattr(databand_module, "parts", lambda evs: (fault.maybe() or part
                                                                 for part in delivery.parts(evs)))
        elif step in ("post-before", "post-after"):
            patch.setattr(timebound.BoundedAdapter, "send",
                          fault.around(timebound.BoundedAdapter.send, before=step == "post-before"))
        elif step == "transport":
            patch.setattr(target, "_transport", fault.around(target._transport))
        elif step == "lifecycle":
            patch.setattr(transports, "lifecycle", fault.around(transports.lifecycle))
        elif step == "emit":
            patch.setattr(target.transport, "emit", fault.around(target.transport.emit))
        elif step == "keep-dump":
            patch.setattr(eventfiles, "dump", fault.around(eventfiles.dump))
        elif step in ("keep-fsync", "keep-rename"):
            import os as real_os

            class Os:
                def __getattr__(self, name):
                    return getattr(real_os, name)

            fake = Os()
            for name in (["fsync"] if step == "keep-fsync" else ["replace", "link"]):
                setattr(fake, name, fault.around(getattr(real_os, name)))
            patch.setattr(eventfiles, "os", fake)

        patch.chdir(here)
        raised = None
        try:
            done = delivery.deliver([target], events, 9001, keep_dir=str(here))
        except BaseException as caught:  # noqa: BLE001 - what the property is about
            if not base:
                raise
            raised, done = caught, None
        printed = stdout.getvalue() if not stdout.closed else ""

        kept_files = sorted(here.glob(f"{target_name}-unsent-*.json")) + sorted(
            spare.glob(f"{target_name}-unsent-*.json"))
        kept = set().union(*(run_ids(json.loads(f.read_text(encoding="utf-8"))) for f in kept_files))
        if target_name == "databand":
            acknowledged = set().union(*(run_ids(p) for p in databand.payloads))
        elif target_name == "openlineage" and not refuse:
            posts = len(recorder.seen) - before
            acknowledged = run_ids(events) if posts == len(lifecycle(events)) else set()  # not the patched one
        elif target_name == "file" and not refuse and (here / "events.ndjson").exists():
            lines = (here / "events.ndjson").read_text(encoding="utf-8").splitlines()
            acknowledged = {json.loads(line)["run"]["runId"] for line in lines}
        elif target_name == "console":
            acknowledged = {json.loads(line)["run"]["runId"] for line in printed.splitlines()
                            if line.startswith("{")}
        else:
            acknowledged = set()
        said = f"{target_name} {step} {error().__class__.__name__} refuse={refuse}"

        if raised is not None:
            assert isinstance(raised, type(error())), said
            assert kept_files and kept == run_ids(events), said  # every event, since it is not known what went
            return
        if done.failures:
            [failure] = done.failures
            assert failure.kept, (said, failure.message())
            assert failure.reason, said
            assert run_ids(events) - acknowledged <= kept, said
        else:
            assert acknowledged == run_ids(events), (said, "counted as delivered but not all arrived")
            assert kept_files == [], said
