"""Masking on input crafted against its patterns: how long it takes and how long it holds the GIL.

    python benchmarks/masking.py            # 9 runs of each measurement
    python benchmarks/masking.py --runs 21

Builds a 1 MiB adversarial log (short lines crafted against each pattern, each with a real secret
in it, and long single lines of several hundred KiB) and reports the median time of
Redactor(secrets)(text), of logs.clean() as the reader calls it (last 100 lines of a 256 KiB
window) and over every line, of Redactor.known() over 3 MB of event JSON, and of each crafted
300 KiB line alone; then the longest another thread waited for the GIL while the log was masked.
Then what masking costs a report of 1,250 jobs (25 failed, each with 100 lines of log): packing
its events with the mask of a job's seven secrets against packing them without, and cleaning 25
log windows of 160 KB.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reporter import logs  # noqa: E402
from reporter.events import EventBuilder  # noqa: E402
from reporter.ids import Naming  # noqa: E402
from reporter.packed import PackedEvents  # noqa: E402
from reporter.redact import Redactor  # noqa: E402
from reporter.snapshot import Job, Pipeline, mark_attempts  # noqa: E402

GITLAB_TOKEN = "glpat-" + "Z9yX8wV7uT6sR5qP4oN3"  # made up; built so no token shape is committed
JOB_TOKEN = "glcbt-64_Bm2Kq8Zr4Tx6Wv0Yn3Lp"
DATABAND_TOKEN = "dbnd-KnownSecret/with+symbols=="
SECRETS = [GITLAB_TOKEN, JOB_TOKEN, DATABAND_TOKEN]
KiB = 1024


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def crafted(size: int) -> dict[str, str]:
    """One line of about `size` characters against each pattern, ending in a real secret."""
    return {
        "glpat- repeated": "glpat-" * (size // 6) + " " + GITLAB_TOKEN,
        "prefix, short body": "glpat-abc " * (size // 10) + GITLAB_TOKEN,
        "gl repeated": "gl" * (size // 2) + " " + GITLAB_TOKEN,
        "Authorization: repeated": "Authorization: " * (size // 15) + f"Authorization: Bearer {JOB_TOKEN}",
        "Authorization + spaces": ("Authorization:" + " " * 1000) * (size // 1014) + f"Authorization: {JOB_TOKEN}",
        "https://a: without @": "https://a:" * (size // 10) + f" https://u:{DATABAND_TOKEN}@h/x",
        "URL password without @": "https://u:" + "p" * size + " https://u:pw0rd123@h/",
        "Bearer repeated": "Bearer " * (size // 7) + f"Bearer {DATABAND_TOKEN}",
        "token repeated": "token" * (size // 5) + f" token={DATABAND_TOKEN}",
        "token: repeated": "token: " * (size // 7) + f"token: {GITLAB_TOKEN}",
        "?key= repeated": "?key=" * (size // 5) + f" ?sig={DATABAND_TOKEN}",
        "query separators": "?&;" * (size // 3) + f"?key={DATABAND_TOKEN}",
        "dashes": "-" * size + f" --password {DATABAND_TOKEN}",
        "a.a.a.": "a." * (size // 2) + f" {DATABAND_TOKEN}",
        "base64 run": b64("x" * (size * 3 // 4)) + " " + b64("u:" + DATABAND_TOKEN),
        "section_start:1:a[": "section_start:1:a[" * (size // 18) + f" {GITLAB_TOKEN}",
        "unterminated escapes": "\x1b]" * (size // 2) + f" {GITLAB_TOKEN}",
        # Against the view of the known forms: escapes everywhere, and a secret begun, never ended.
        "percent escapes": "%2525%41" * (size // 8) + f" {DATABAND_TOKEN}",
        "JSON escapes": "\\u0041\\/" * (size // 8) + f" {DATABAND_TOKEN}",
        "line breaks": "a\r\n \\n" * (size // 7) + f" {DATABAND_TOKEN}",
        "a secret begun": (DATABAND_TOKEN[:12] + "%") * (size // 13) + f" {DATABAND_TOKEN}",
    }


def adversarial_log() -> str:
    """1 MiB: 512 KiB of short crafted lines (a few hundred bytes each, every kind in turn) and
    two single lines of 256 KiB."""
    short = list(crafted(300).values())
    lines, size, i = [], 0, 0
    while size < 512 * KiB:
        line = short[i % len(short)]
        lines.append(line)
        size += len(line) + 1
        i += 1
    lines.insert(len(lines) // 2, crafted(256 * KiB)["Authorization: repeated"])
    lines.append(crafted(256 * KiB)["https://a: without @"])
    return "\n".join(lines)[: 1024 * KiB - 1] + "\n"


def events_json(size: int) -> str:
    events, text = [], ""
    i = 0
    while len(text) < size:
        events.extend({
            "eventType": "COMPLETE", "eventTime": "2024-05-01T12:00:00Z",
            "run": {"runId": f"0190-{i:08d}", "facets": {"log": {"logBody": f"step {j}: compiling module {j} ok\n" * 30,
                                                                 "logUrl": f"https://gitlab.example.com/j/{i}"}}},
            "job": {"namespace": "gitlab:gitlab.example.com", "name": f"acme.data.build.job{i}"},
        } for j in range(200))
        i += 1
        text = json.dumps(events)
    return text


# The secrets a GitLab job has besides the reporter's own: all of them are masked in every event.
JOB_SECRETS = [*SECRETS, "olKey-0123456789abcdef", "regPassw0rd-Kq8Zr4Tx6Wv0Yn3", "deployPw-9f8e7d6c5b4a",
               "proxyPw-1a2b3c4d5e6f7a8b"]


def pipeline_1250() -> Pipeline:
    """1,250 jobs in 10 stages, 25 of them failed with 100 lines of log each (the https.py case)."""
    from datetime import datetime, timedelta, timezone

    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    log = "\n".join(f"step {i}: compiling module {i} of the data platform, ok" for i in range(100))
    jobs = [Job(id=i, name=f"job {i % 125} [{i // 125}]", stage=f"stage-{i // 125}",
                status="failed" if i % 50 == 0 else "success", created_at=start, started_at=start,
                finished_at=start + timedelta(seconds=60 + i % 7), failure_reason="script_failure" if i % 50 == 0
                else None, web_url=f"https://gitlab.example.com/acme/data-platform/-/jobs/{i}",
                log_tail=log if i % 50 == 0 else None, tag_list=("docker", "linux"), runner_id=32,
                runner_description="shared-runner-1", commit_title="Fix the loader")
            for i in range(1, 1251)]
    return Pipeline(server="gitlab.example.com", project_id=42, project_path="acme/data-platform",
                    project_url="https://gitlab.example.com/acme/data-platform", id=9001, ref="main", sha="0" * 40,
                    status="failed", web_url="https://gitlab.example.com/acme/data-platform/-/pipelines/9001",
                    created_at=start, started_at=start, jobs=mark_attempts(jobs))


def median_ms(function, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.process_time()  # CPU time: other processes on a shared machine count less
        function()
        times.append(time.process_time() - started)
    return statistics.median(times) * 1000


def longest_gil_wait(function) -> float:
    """The longest gap, in ms, between wake-ups of a thread that sleeps 1 ms at a time while
    `function` runs: what a timeout in another thread could be late by."""
    gaps, done = [], threading.Event()

    def ticker():
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    thread = threading.Thread(target=ticker)
    thread.start()
    time.sleep(0.01)
    function()
    done.set()
    thread.join()
    return max(gaps) * 1000


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{model}, {os.cpu_count()} cores ({usable} usable), Python {platform.python_version()} "
            f"({platform.python_implementation()}), {platform.system()} {platform.release()}")


def commit() -> str:
    """The commit measured (git rev-parse HEAD), marked when reporter/ has uncommitted changes."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "reporter"], cwd=root,
                           capture_output=True, text=True).stdout.strip()
    return (head or "unknown") + (" with uncommitted changes in reporter/" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    runs = parser.parse_args().runs

    redact = Redactor(SECRETS)
    log = adversarial_log()
    raw = log.encode()
    window, _ = logs.tail_bytes(raw[i: i + 64 * KiB] for i in range(0, len(raw), 64 * KiB))
    every_line = log.count("\n") + 1
    event_text = events_json(3 * 1000 * 1000)

    masked = redact(log)
    assert not any(secret in masked for secret in SECRETS)
    assert redact.known(event_text) == event_text

    print(f"machine: {machine()}")
    print(f"commit: {commit()}")
    print(f"runs: {runs} per measurement, median\n")
    rows = [
        (f"Redactor(secrets)(text), adversarial log {len(log) / KiB:.0f} KiB, {every_line} lines",
         median_ms(lambda: redact(log), runs)),
        (f"logs.clean(window, lines=100), the reader's case: last {len(window) // KiB} KiB of it",
         median_ms(lambda: logs.clean(window, lines=100, redact=redact), runs)),
        (f"logs.clean(whole log, lines={every_line}): every line masked",
         median_ms(lambda: logs.clean(raw, lines=every_line, redact=redact), runs)),
        (f"Redactor(secrets).known(json), {len(event_text) / 1e6:.1f} MB of event JSON",
         median_ms(lambda: redact.known(event_text), runs)),
    ]
    width = max(len(name) for name, _ in rows)
    for name, ms in rows:
        print(f"{name:<{width}}  {ms:8.1f} ms")

    print("\nEach crafted line alone, 300 KiB, Redactor(secrets)(line):")
    for name, line in crafted(300 * KiB).items():
        print(f"  {name:<26} {median_ms(lambda line=line: redact(line), runs):8.1f} ms")

    pipeline = pipeline_1250()
    naming = Naming(namespace="gitlab:gitlab.example.com", pipeline_name="acme.data-platform",
                    project_name="acme/data-platform")
    built = list(EventBuilder(pipeline, naming, pipeline.created_at).events())
    plain = PackedEvents(built)
    masked_events = PackedEvents(built, Redactor(JOB_SECRETS))
    assert [plain.raw(i) for i in range(len(plain))] == [masked_events.raw(i) for i in range(len(plain))]
    log_window = logs.Window(("\n".join(f"step {i}: compiling module {i} of the data platform, ok"
                                          for i in range(3000)))[-160_000:].encode())
    log_window.starts_cut = True
    job_mask = Redactor(JOB_SECRETS)
    print(f"\nA report of 1,250 jobs, {len(built)} events (a fresh Redactor each run: nothing cached):")
    unmasked_ms = median_ms(lambda: PackedEvents(built), runs)
    print(f"  events packed, no mask                    {unmasked_ms:8.1f} ms")
    for secrets in (SECRETS, JOB_SECRETS):
        ms = median_ms(lambda secrets=secrets: PackedEvents(built, Redactor(secrets)), runs)
        print(f"  events packed, masked, {len(secrets)} secrets          {ms:8.1f} ms  "
              f"(masking {ms - unmasked_ms:.1f} ms)")
    print(f"  25 log windows of 160 KB, logs.clean      "
          f"{median_ms(lambda: [logs.clean(log_window, 100, job_mask) for _ in range(25)], runs):8.1f} ms")
    print(f"  the same without a mask                   "
          f"{median_ms(lambda: [logs.clean(log_window, 100) for _ in range(25)], runs):8.1f} ms")

    wait = longest_gil_wait(lambda: redact(log))
    print(f"\nlongest wait of another thread for the GIL while the 1 MiB log was masked: {wait:.1f} ms "
          f"(switch interval {sys.getswitchinterval() * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
