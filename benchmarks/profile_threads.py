"""Run the reporter's command in this process under cProfile, every thread with a profiler of its own.

`python -m cProfile -m reporter ...` sees only the main thread, and the reporter reads GitLab in
other threads (a reader thread and its pools), so this wraps the console script's `main()` instead:
the main thread is profiled as cProfile would, and each thread started meanwhile starts its own
profiler (threading.setprofile). Written out: MAIN.prof (the main thread) and THREADS.prof (every
other thread, merged; their times overlap each other and the main thread's waits).

With --cpu every profiler times its thread's CPU (time.thread_time), not the wall: a blocked read
then costs nothing, so no wait needs leaving out by its name; ALL.prof is every thread merged.

    python benchmarks/profile_threads.py [--cpu] OUT_PREFIX resend --project 42 --pipeline 1003
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import threading
import time


def main() -> None:
    cpu = sys.argv[1:2] == ["--cpu"]
    prefix, args = sys.argv[1 + cpu], sys.argv[2 + cpu:]
    clock = (time.thread_time,) if cpu else ()
    sys.argv = ["databand-gitlab-reporter", *args]
    started: list[cProfile.Profile] = []
    lock = threading.Lock()

    def first_call(frame, event, arg):  # runs once per new thread, then the thread's profiler replaces it
        profiler = cProfile.Profile(*clock)
        with lock:
            started.append(profiler)
        profiler.enable()

    threading.setprofile(first_call)
    main_profiler = cProfile.Profile(*clock)
    code = 0
    main_profiler.enable()
    try:
        from reporter.cli import main as command

        command()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    finally:
        main_profiler.disable()
        threading.setprofile(None)
    main_profiler.dump_stats(f"{prefix}MAIN.prof")
    with lock:
        others = list(started)
    for profiler in others:
        profiler.create_stats()  # the threads have ended; this only snapshots what they recorded
    if others:
        pstats.Stats(*others).dump_stats(f"{prefix}THREADS.prof")
    if cpu:
        main_profiler.create_stats()
        pstats.Stats(main_profiler, *others).dump_stats(f"{prefix}ALL.prof")
    sys.exit(code)


if __name__ == "__main__":
    main()
