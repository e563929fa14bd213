"""Writes that fail on a full device, a FIFO, a stdout and stderr that take nothing: never counted
as delivered, never a device replaced by a file, one line and the documented exit code. Run through
the real console script, several times each (a buffered write fails at a flush, not at the write)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pipelines
import pytest
from clirun import env_for
from standins import GitLabStandIn

SCRIPT = shutil.which("databand-gitlab-reporter", path=os.path.dirname(sys.executable))
EVENTS_OF_MIXED = 16
RUNS = 5  # each case again and again: a failure that only shows sometimes shows here


def full_device(folder: Path) -> str:
    """A device every write to fails with ENOSPC: a node of /dev/full's own where the tests may
    make one (root), else /dev/full itself, which no rename by a user can replace."""
    if os.geteuid() != 0:
        return "/dev/full"
    path = folder / "full"
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    return str(path)


def is_device(path: str) -> bool:
    return stat.S_ISCHR(os.stat(path).st_mode)


@pytest.fixture
def mixed_gitlab():
    with GitLabStandIn() as gitlab:
        pipelines.mixed(gitlab.url).install(gitlab)
        yield gitlab


def cli(args, env, cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITLAB_", "DATABAND_", "CI_", "OPENLINEAGE"))}
    return subprocess.run([SCRIPT, "resend", "--project", "42", "--pipeline", "9001", *args], env={**base, **env},
                          cwd=cwd, stdout=stdout, stderr=stderr, text=True, timeout=60)


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line or "Warning:" in line or "Traceback" in line]


def kept(folder: Path, target: str) -> list[Path]:
    return sorted(folder.glob(f"{target}-unsent-9001-*.json"))


def test_output_to_a_full_device_is_one_warning_and_the_device_stays(mixed_gitlab, databand, tmp_path):
    full = full_device(tmp_path)
    for _ in range(RUNS):
        done = cli(["--output", full], env_for(mixed_gitlab, databand), tmp_path)
        assert done.returncode == 0, done.stderr  # --output is a copy beside the delivery: a warning
        assert errors(done.stderr) == [f"  Warning: could not write --output {full} (No space left on device); "
                                       "the delivery went on without it."], done.stderr
        assert is_device(full), "--output renamed a file over the device"
    assert len(databand.events) == EVENTS_OF_MIXED * RUNS
    dry = cli(["--dry-run", "--output", full], env_for(mixed_gitlab, databand), tmp_path)
    assert dry.returncode == 0, dry.stderr  # it said "the events were still sent", though none were
    assert errors(dry.stderr) == [f"  Warning: could not write --output {full} (No space left on device); "
                                  "--dry-run sends nothing."], dry.stderr


def test_output_to_a_fifo_is_written_through(mixed_gitlab, databand, tmp_path):
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_bytes()), daemon=True)
    reader.start()
    done = cli(["--output", str(fifo)], env_for(mixed_gitlab, databand), tmp_path)
    reader.join(10)
    assert done.returncode == 0 and errors(done.stderr) == [], done.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert len(json.loads(read[0])) == EVENTS_OF_MIXED


def test_output_to_a_fifo_nobody_reads_is_a_warning_not_a_wait(mixed_gitlab, databand, tmp_path):
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    done = cli(["--output", str(fifo)], env_for(mixed_gitlab, databand), tmp_path)
    assert done.returncode == 0, done.stderr
    [line] = errors(done.stderr)
    assert f"could not write --output {fifo}" in line
    assert time.monotonic() - started < 30 and len(databand.events) == EVENTS_OF_MIXED


def test_the_file_target_on_a_full_device_is_not_delivery(mixed_gitlab, tmp_path):
    full = full_device(tmp_path)
    for run in range(1, RUNS + 1):
        if run == 2:  # an --output run in between must not have changed what the path is
            cli(["--output", full, "--dry-run"], env_for(mixed_gitlab), tmp_path)
        done = cli(["--target", "file", "--target-file", full], env_for(mixed_gitlab), tmp_path)
        assert done.returncode == 4, done.stderr
        [line] = errors(done.stderr)
        assert f"Cannot write {full}" in line and "No space left on device" in line
        assert len(kept(tmp_path, "file")) == run
    assert len(json.loads(kept(tmp_path, "file")[0].read_text())) == EVENTS_OF_MIXED


@pytest.mark.parametrize("stderr_too", [False, True], ids=["stdout", "stdout and stderr"])
def test_the_console_on_a_full_device_is_not_delivery(mixed_gitlab, tmp_path, stderr_too):
    full = full_device(tmp_path)
    for run in range(1, RUNS + 1):
        with open(full, "w") as device:
            done = cli(["--target", "console"], env_for(mixed_gitlab), tmp_path, stdout=device,
                       stderr=device if stderr_too else subprocess.PIPE)
        assert done.returncode == 4, done.stderr
        if not stderr_too:  # with stderr full too there is nowhere to say it: the exit code does
            [line] = errors(done.stderr)
            assert "Could not print the events to stdout (OSError)" in line
        assert len(kept(tmp_path, "console")) == run


def test_the_file_target_on_a_fifo_nobody_reads_is_not_delivery_and_no_wait(mixed_gitlab, tmp_path):
    fifo = tmp_path / "lineage.fifo"
    os.mkfifo(fifo)
    try:
        done = cli(["--target", "file", "--target-file", str(fifo)], env_for(mixed_gitlab), tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail("opening a FIFO nobody reads waited for a reader")
    assert done.returncode == 4, done.stderr
    [line] = errors(done.stderr)
    assert "named pipe (FIFO) nobody reads" in line
    assert len(json.loads(kept(tmp_path, "file")[0].read_text())) == EVENTS_OF_MIXED


def test_the_file_target_on_a_fifo_with_a_reader_is_delivery(mixed_gitlab, tmp_path):
    fifo = tmp_path / "lineage.fifo"
    os.mkfifo(fifo)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_bytes()), daemon=True)
    reader.start()
    time.sleep(0.2)  # the reader has opened it (an open for reading waits for a writer)
    done = cli(["--target", "file", "--target-file", str(fifo)], env_for(mixed_gitlab), tmp_path)
    reader.join(10)
    assert done.returncode == 0, done.stderr
    assert read and read[0].count(b"\n") >= 2 * EVENTS_OF_MIXED - 2  # a START and an end a run
