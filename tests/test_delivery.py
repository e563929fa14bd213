"""Delivery as a library: whatever a target raises, every event it did not acknowledge is kept, and
deliver() says so in the record it returns; kept files never overwrite each other; signals."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from clirun import QUICK
from reporter import delivery, eventfiles
from reporter.databand import Databand
from reporter.targets import Outcome

ROOT = {"eventType": "COMPLETE", "eventTime": "2026-11-24T10:00:00Z", "run": {"runId": "root", "facets": {}},
        "job": {"namespace": "gitlab:x", "name": "p"}}
EVENTS = [ROOT] + [{"eventType": "COMPLETE", "eventTime": "2026-11-24T10:00:00Z",
                    "run": {"runId": f"r{i}", "facets": {"parent": {"run": {"runId": "root"}}}},
                    "job": {"namespace": "gitlab:x", "name": f"p.s.j{i}"}} for i in range(5)]


class Accepting:
    name = "console"

    def __init__(self):
        self.got: list[dict] = []

    def send(self, events):
        self.got = list(events)
        return Outcome(name=self.name, where="stdout", sent=len(events))


class Raising:
    """A target whose send fails with an exception no target is meant to raise."""

    name = "openlineage"

    def __init__(self, error: BaseException):
        self.error = error

    def send(self, events):
        raise self.error


def kept(folder: Path, target: str) -> list[list[dict]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob(f"{target}-unsent-*.json"))]


@pytest.mark.parametrize("error", [KeyError("runId"), TypeError("unhashable"), RecursionError(), MemoryError(),
                                   UnicodeEncodeError("ascii", "é", 0, 1, "no")])
def test_any_exception_of_a_target_keeps_all_its_events_and_the_next_target_runs(tmp_path, error):
    after = Accepting()
    done = delivery.deliver([Raising(error), after], EVENTS, 9001, keep_dir=str(tmp_path))
    [failure] = done.failures
    assert failure.target == "openlineage" and failure.unsent == len(EVENTS)
    assert f"unexpected {type(error).__name__}" in failure.reason
    assert kept(tmp_path, "openlineage") == [EVENTS]
    assert after.got == EVENTS and [o.name for o in done.outcomes] == ["console"]


def test_a_ca_file_that_does_not_exist_keeps_the_events(tmp_path):
    # requests reads the CA file of an https URL before it connects: no server needed to meet it.
    missing = tmp_path / "no-such-ca.pem"
    target = Databand("https://127.0.0.1:9/api/v1/tracking/open-lineage/x/events/bulk", "t" * 20,
                      verify=str(missing), bounds=QUICK)
    done = delivery.deliver([target], EVENTS, 9001, keep_dir=str(tmp_path))
    [failure] = done.failures
    assert failure.reason.endswith(f"the CA file {missing} could not be read: check DATABAND_CA_FILE.")
    assert kept(tmp_path, "databand") == [EVENTS]


def test_a_token_a_header_cannot_carry_keeps_the_events_and_is_not_retried(tmp_path, databand):
    said: list[str] = []
    target = Databand(databand.url, "tok\nen-with-a-line-break", bounds=QUICK, say=said.append)
    done = delivery.deliver([target], EVENTS, 9001, keep_dir=str(tmp_path))
    [failure] = done.failures
    assert "DATABAND_ACCESS_TOKEN" in failure.reason and "tok" not in failure.reason
    assert kept(tmp_path, "databand") == [EVENTS]
    assert said == [] and databand.requests_seen == 0


def test_kept_files_of_the_same_second_never_overwrite_each_other(tmp_path):
    now = datetime(2026, 11, 24, 10, 15, tzinfo=timezone.utc)
    first = eventfiles.keep_unsent(EVENTS[:2], 9001, "databand", str(tmp_path), now=now)
    second = eventfiles.keep_unsent(EVENTS[:3], 9001, "databand", str(tmp_path), now=now)
    assert first.path != second.path
    assert Path(first.path).name == "databand-unsent-9001-20261124T101500Z.json"
    assert Path(second.path).name == "databand-unsent-9001-20261124T101500Z-2.json"
    assert sorted(len(x) for x in kept(tmp_path, "databand")) == [2, 3]
    assert eventfiles.label_of(second.path) == "9001"
    assert eventfiles.resend_command(second.path).endswith(f"resend --from-file {second.path}")
    assert not list(tmp_path.glob(".databand-*"))  # no temporary file left behind


def test_the_label_and_command_of_every_target_kept_file():
    for target in ("databand", "openlineage", "file", "console"):
        path = f"/x/{target}-unsent-acme_etl-20261124T101500Z.json"
        assert eventfiles.label_of(path) == "acme_etl"
        again = "" if target == "databand" else f" --target {target}"
        assert eventfiles.resend_command(path) == f"databand-gitlab-reporter resend --from-file {path}{again}"


def test_a_second_signal_exits_at_once_with_its_code_unless_it_came_with_the_first():
    import subprocess
    import sys
    import time

    code = ("import os, signal, time\n"
            "from reporter import process\n"
            "process.install()\n"
            "try:\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    time.sleep(5)\n"
            "except process.Interrupted as stop:\n"
            "    print('kept what', stop.stop.name, 'left', flush=True)\n"
            "    os.kill(os.getpid(), signal.SIGHUP)  # with the first (a dropped session): not yet now\n"
            "    time.sleep(0.2)\n"
            "    print('still keeping', flush=True)\n"
            "    time.sleep(process.GRACE)\n"
            "    os.kill(os.getpid(), signal.SIGINT)  # asked again, later, while still being handled\n"
            "    time.sleep(10)\n"
            "print('not reached')\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 130, done.stderr
    assert done.stdout == "kept what SIGTERM left\nstill keeping\n"
    assert time.monotonic() - started < 8


def test_what_a_stop_says():
    from reporter.process import Stop, stop_lines

    kept = Stop(15, kept=(("databand", "databand-unsent-1-20261124T101500Z.json"),
                          ("file", "file-unsent-1-20261124T101500Z.json")), lost=("console: no room",))
    assert stop_lines(kept) == [
        "databand-gitlab-reporter: stopped by SIGTERM before every event was acknowledged.",
        "The events not acknowledged are kept in databand-unsent-1-20261124T101500Z.json; send them later with: "
        "databand-gitlab-reporter resend --from-file databand-unsent-1-20261124T101500Z.json",
        "The events not acknowledged are kept in file-unsent-1-20261124T101500Z.json; send them later with: "
        "databand-gitlab-reporter resend --from-file file-unsent-1-20261124T101500Z.json --target file",
        "databand-gitlab-reporter: console: no room"]
    assert stop_lines(Stop(2, acknowledged=True)) == [
        "databand-gitlab-reporter: stopped by SIGINT after every event was acknowledged."]
    assert stop_lines(Stop(2, resend="databand-gitlab-reporter resend --project 42 --pipeline 7")) == [
        "databand-gitlab-reporter: stopped by SIGINT before the report was sent. Send it later with: "
        "databand-gitlab-reporter resend --project 42 --pipeline 7"]


def test_each_sender_keeps_one_connection_to_databand_for_all_its_parts():
    """20 parts, 8 senders: the small answer is read before the connection goes back to the pool,
    so the parts ride at most one connection per sender instead of one connection each."""
    from reporter.databand import PARALLEL_POSTS
    from standins import DatabandStandIn

    many = [ROOT] + [{**EVENTS[1], "run": {**EVENTS[1]["run"], "runId": f"r{i}"}} for i in range(20 * 499)]  # 499 and the root a part
    with DatabandStandIn(keep_alive=True) as databand:
        outcome = Databand(databand.url, databand.token).send(many)
        assert outcome.requests == len(databand.received) == 20 and len(databand.events) == len(many) + 19
        assert 1 <= databand.connections <= PARALLEL_POSTS


def _made(count: int, built: list[float]):
    """The root and `count` runs, as a builder makes them; the time the last one was made."""
    import time

    yield ROOT
    for i in range(count):
        yield {**EVENTS[1], "run": {**EVENTS[1]["run"], "runId": f"r{i}"}}
    built.append(time.monotonic())


def test_the_first_part_is_posted_before_the_last_event_is_built():
    from reporter.stream import StreamedEvents
    from standins import DatabandStandIn

    built: list[float] = []
    with DatabandStandIn(keep_alive=True) as databand:
        streamed = StreamedEvents(lambda: _made(10_000, built))
        outcome = Databand(databand.url, databand.token).send(streamed)
        assert outcome.sent == 10_001 + outcome.requests - 1 and streamed.complete
        assert min(r.started for r in databand.received) < built[0]


def test_streamed_events_are_the_packed_events_byte_for_byte_and_a_refusal_keeps_them_all(tmp_path):
    from reporter.packed import PackedEvents
    from reporter.stream import StreamedEvents
    from standins import DatabandStandIn

    from reporter.redact import Redactor

    mask = Redactor(["r7-not-a-run-id"])  # a known secret in no event: packed as the builder made them
    whole = PackedEvents(_made(1_200, []), mask=mask)
    streamed = StreamedEvents(lambda: _made(1_200, []), mask=mask)
    assert [streamed.raw(i) for i in range(3)] == [whole.raw(i) for i in range(3)] and not streamed.complete
    assert [streamed.raw(i) for i in range(len(streamed))] == [whole.raw(i) for i in range(len(whole))]
    with DatabandStandIn(keep_alive=True) as databand:
        target = Databand(databand.url, "not-the-token")
        done = delivery.deliver([target], StreamedEvents(lambda: _made(1_200, [])), "p", str(tmp_path))
    [unsent] = kept(tmp_path, "databand")
    assert not done.ok and unsent == list(PackedEvents(_made(1_200, [])))  # every one, the unbuilt too


def test_a_signal_while_the_events_are_built_loses_none_of_them():
    """Delivery builds the events now: a signal landing mid-build (here at event 700) drops what
    was half-built, and every event is built again for the file kept for the resend."""
    from reporter.packed import PackedEvents
    from reporter.stream import StreamedEvents

    calls: list[int] = []

    def make():
        calls.append(1)
        for index, event in enumerate(_made(1_200, [])):
            if len(calls) == 1 and index == 700:
                raise KeyboardInterrupt  # what a signal handler raises into the main thread
            yield event

    streamed = StreamedEvents(make)
    with pytest.raises(KeyboardInterrupt):
        list(delivery.parts(streamed))
    assert len(streamed) == 1_201 and list(streamed) == list(PackedEvents(_made(1_200, [])))
    assert len(calls) == 2


def test_the_resend_command_of_a_kept_file_in_a_folder_with_a_space_can_be_pasted():
    # TMPDIR='/tmp/my dir' (a working folder that cannot be written): the path was printed bare.
    import shlex

    path = "/tmp/my dir/databand-unsent-9001-20261124T101500Z.json"
    words = shlex.split(eventfiles.resend_command(path))
    assert words == ["databand-gitlab-reporter", "resend", "--from-file", path]
