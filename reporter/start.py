"""The console script's entry point: signals handled before anything else is imported.

Separate from reporter.cli, which it imports only once the handlers are in place, and from
reporter.process, which must not import the CLI (the CLI imports it).
"""

from __future__ import annotations

import gc
import os
import sys

from reporter import process

# A report holds tens of thousands of objects for its few seconds (a 10,000-job pipeline's pages,
# jobs and events), and each of the collector's full passes walks every one of them: at the
# default thresholds those passes cost the 10,000-job case of benchmarks/https.py 0.4-0.7 s of its
# 3.5-4.7 s of CPU (measured beside gc.disable(), which this setting matched). The young
# generations are still collected as usual, so short-lived cycles go as soon as before; a full
# pass comes after 1,000 of theirs instead of 10.
FULL_COLLECTION_AFTER = 1_000

# glibc gives each thread that allocates a malloc arena of its own (up to 8 a core), and memory
# freed in an arena mostly stays with the process: the 40 threads reading GitLab's pages held
# 10-20 MB of a 10,000-job report's peak RSS that way (82-99 MB, against 73-88 MB with two arenas:
# benchmarks/https.py's 10,000-job case, six runs each). Two: the main thread's and one shared by
# the others, which take turns anyway (the GIL).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


def fewer_malloc_arenas() -> bool:
    """Cap glibc's malloc arenas at MALLOC_ARENAS, unless MALLOC_ARENA_MAX already says how many.
    Only before the first thread (glibc fixes the cap when a thread first needs an arena); nothing
    on another C library. True when the cap was set."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
    except (ValueError, OSError, AttributeError):  # not glibc, or no confstr at all
        return False
    try:
        import ctypes

        return bool(ctypes.CDLL(None).mallopt(_M_ARENA_MAX, MALLOC_ARENAS))
    except (OSError, AttributeError, ImportError):  # no ctypes (a trimmed Python), or no mallopt
        return False


def main() -> None:
    """The console script. Signals are handled from the very start: the CLI's imports (click,
    requests, python-gitlab) take a few tenths of a second, and a job cancelled then must stop as
    it would later, with one line and 143 (128 + the signal's number), not die silently. Nothing is
    read yet: nothing to keep."""
    process.guard_streams()
    fewer_malloc_arenas()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)
    try:
        try:
            process.install()  # a signal may land as soon as the first handler is in place
            from reporter import cli

            cli.main()
            code = process.OK
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else process.OK if done.code is None else process.BUG
    except process.Interrupted as stop:  # while importing, or before the CLI's own handling began
        process.stopped(stop.stop, lambda line: print(line, file=sys.stderr))
    # The run is over and its code known: a signal now changes nothing, and the interpreter's
    # teardown, which puts the default handlers back, would let one end the process with -15.
    process.ignore_signals()
    process.exit_now(code)
