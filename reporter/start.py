"""The console script's entry point: signals handled before anything else is imported.

Separate from reporter.cli, which it imports only once the handlers are in place, and from
reporter.process, which must not import the CLI (the CLI imports it).
"""

from __future__ import annotations

import gc
import sys

from reporter import process

# A report holds tens of thousands of objects for its few seconds (a 10,000-job pipeline's pages,
# jobs and events), and each of the collector's full passes walks every one of them: at the
# default thresholds those passes cost the 10,000-job case of benchmarks/https.py 0.4-0.7 s of its
# 3.5-4.7 s of CPU (measured beside gc.disable(), which this setting matched). The young
# generations are still collected as usual, so short-lived cycles go as soon as before; a full
# pass comes after 1,000 of theirs instead of 10.
FULL_COLLECTION_AFTER = 1_000


def main() -> None:
    """The console script. Signals are handled from the very start: the CLI's imports (click,
    requests, python-gitlab) take a few tenths of a second, and a job cancelled then must stop as
    it would later, with one line and 143 (128 + the signal's number), not die silently. Nothing is
    read yet: nothing to keep."""
    process.guard_streams()
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
