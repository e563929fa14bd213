"""Process control: signals, exit codes, and what a stop says before the process ends.

SIGTERM (GitLab cancelling or timing out the job), SIGINT (Ctrl-C) and every other signal whose
default action would end the process (SIGHUP: an ssh session dropping; SIGQUIT, SIGUSR1, SIGALRM,
SIGXCPU ...: see `STOPPING`) raise `Interrupted` in the main thread wherever it waits, and stop the
worker threads' HTTP calls. The delivery then keeps
every event not acknowledged and raises a new `Interrupted` that says what it kept; the CLI prints
`stop_lines` and ends with 128 + the signal's number, waiting for no thread. A second signal exits
at once, unless it comes within GRACE seconds of the first: a dropped session or a supervisor sends
SIGTERM and SIGHUP together, and keeping the events takes milliseconds.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from reporter import PROG

# The exit codes (README, --help): one per side, so a job's rules can tell them apart.
OK = 0
BUG = 1  # a bug of the reporter: one line naming it
SETTING = 2
GITLAB = 3
DELIVERY = 4  # a target did not accept every event (they are kept), or stdout was closed before the output


def signal_exit(signum: int) -> int:
    return 128 + signum


def _stopping() -> tuple[int, ...]:
    """The signals that end the run as SIGTERM does: each one whose default action ends the
    process and that a handler can catch. Not the faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP,
    SIGABRT, SIGSYS), which say the process itself went wrong and which a Python handler cannot
    answer; nor SIGPIPE and SIGXFSZ, which Python ignores so that a write to a closed pipe or past
    the file-size limit fails as a write (a closed stdout is exit 4; a file too large, a kept file
    that could not be written)."""
    names = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGTERM", "SIGSTKFLT",
             "SIGXCPU", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR", "SIGLOST", "SIGEMT", "SIGINFO")
    found = {getattr(signal, name) for name in names if hasattr(signal, name)}
    if hasattr(signal, "SIGRTMIN") and hasattr(signal, "SIGRTMAX"):  # real-time signals end it too
        found.update(range(signal.SIGRTMIN, signal.SIGRTMAX + 1))
    return tuple(sorted(int(signum) for signum in found if signum in signal.valid_signals()))


STOPPING = _stopping()
# Handled even when the process started with them ignored, as before; the others keep an ignore
# they were started with (nohup's SIGHUP, a background job's SIGQUIT).
_ALWAYS = (signal.SIGTERM, signal.SIGINT)


def signal_name(signum: int) -> str:
    """SIGTERM; a real-time signal without a name of its own, SIGRTMIN+3."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        rtmin = getattr(signal, "SIGRTMIN", None)
        return f"SIGRTMIN+{signum - rtmin}" if rtmin is not None and signum > rtmin else f"signal {signum}"


EXIT_CODES = """\b
Exit codes: 0 sent (warnings included); 1 a bug of the reporter; 2 a setting; 3 GitLab
(refused, unreachable, too slow, or not GitLab's API answering); 4 delivery (the events not
accepted are kept in a file, named with the command that sends it), or a closed stdout that
did not take the output (--target console, --dry-run, parent-env, demo, --help, --version);
130 stopped by SIGINT (Ctrl-C), 143 by SIGTERM (GitLab cancelling or timing out the job),
128 + N by another signal N that ends a process (129 SIGHUP, 131 SIGQUIT, 138 SIGUSR1, 142
SIGALRM ...): the events not yet acknowledged are kept in a file the same way, within a
couple of seconds. A second signal exits at once."""


@dataclass(frozen=True)
class Stop:
    """What a signal left behind, as the layers it crossed saw it."""

    signum: int
    unsent: list[dict] | None = None  # of the target being sent to, when it knows
    kept: tuple[tuple[str, str], ...] = ()  # (target, file) for every target with events left
    lost: tuple[str, ...] = ()  # why events of a target could not be kept
    acknowledged: bool = False  # every event had been acknowledged when it came
    resend: str | None = None  # the command that sends what was not read yet
    progress: str | None = None  # a backfill's, when it stopped: "3 of 8 pipelines sent"

    @property
    def name(self) -> str:
        return signal_name(self.signum)


class Interrupted(BaseException):
    """SIGTERM, SIGINT or another of `STOPPING`: stop waiting now. A BaseException, so that no `except Exception` of a
    library swallows it. Never changed on the way up: a layer that knows more raises a new one
    (`with_`)."""

    def __init__(self, stop: Stop):
        super().__init__(stop.name)
        self.stop = stop

    @classmethod
    def by(cls, signum: int) -> Interrupted:
        return cls(Stop(signum))

    def with_(self, **known) -> Interrupted:
        return Interrupted(replace(self.stop, **known))


GRACE = 2.0  # seconds after a first signal in which another is not yet "now"


def install() -> None:
    """Signals raise Interrupted in the main thread; a second one exits at once, once GRACE has
    passed since the first. For the console script only: a library caller keeps its own handlers."""
    seen: list[float] = []

    def on_signal(signum, frame) -> None:
        if seen:  # already keeping the events
            if time.monotonic() - seen[0] < GRACE:
                return  # sent with the first (TERM and HUP together): the events are being kept
            os._exit(signal_exit(signum))  # asked again, later: now
        seen.append(time.monotonic())
        # From a thread of its own: the main thread may hold one of the locks it takes at the
        # moment the signal lands.
        threading.Thread(target=_stop_calls, name="stop", daemon=True).start()
        raise Interrupted.by(signum)

    for signum in STOPPING:
        if signum in _ALWAYS or signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, on_signal)


def signals_to_main() -> None:
    """First thing in every thread the reporter starts (a pool's initializer, a thread's target):
    the stopping signals are blocked in it, so that the kernel hands them to the main thread.

    A signal sent to the process goes to any thread that does not block it, and Python runs its
    handlers in the main thread only. One taken by a worker (busy in a read, or woken first) never
    interrupts the main thread's wait for a future: TERM and HUP sent together hung so until the
    answer came (a minute), once in about ten runs. Threads started by a thread that called this
    inherit the mask."""
    if threading.current_thread() is threading.main_thread():
        return
    with contextlib.suppress(AttributeError, OSError, ValueError):  # no pthread_sigmask on this platform
        signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)


def ignore_signals() -> None:
    """The run is over and its code known: no signal changes it any more, nor ends the process with
    its default action while it exits."""
    for signum in STOPPING:
        signal.signal(signum, signal.SIG_IGN)


def _stop_calls() -> None:
    signals_to_main()  # a second signal is the main thread's to judge (GRACE)
    # No HTTP call can be under way before the wall-clock module is loaded; loading it now would
    # only slow the stop. A signal while it is being imported finds it there half made: nothing of
    # it runs yet, so there is nothing to stop.
    stop_everything = getattr(sys.modules.get("reporter.timebound"), "stop_everything", None)
    if stop_everything is not None:
        stop_everything()


def stop_lines(stop: Stop) -> list[str]:
    """What the job log says after a signal: what was kept, and the command that sends it."""
    if stop.acknowledged and not (stop.kept or stop.lost):
        return [f"{PROG}: stopped by {stop.name} after every event was acknowledged."]
    lines = []
    if stop.kept or stop.lost:
        lines.append(f"{PROG}: stopped by {stop.name} before every event was acknowledged.")
    elif stop.resend:
        lines.append(f"{PROG}: stopped by {stop.name} before the report was sent. Send it later with: "
                     f"{stop.resend}")
    elif stop.progress:  # a backfill: its cursor has what was sent
        lines.append(f"{PROG}: stopped by {stop.name} with {stop.progress}; run the same command again to send "
                     "the rest (a backfill goes on from its cursor).")
    else:  # the same command again (a backfill resumes from its cursor)
        lines.append(f"{PROG}: stopped by {stop.name} before the events were sent; run the same command "
                     "again to send them (a backfill goes on from its cursor).")
    if stop.kept:  # not at the top: the console script imports this module before any other
        from reporter import eventfiles
    for target, path in stop.kept:
        lines.append(f"The events not acknowledged are kept in {path}; send them later with: "
                     f"{eventfiles.resend_command(path, target)}")
    lines.extend(f"{PROG}: {lost}" for lost in stop.lost)
    return lines


def stopped(stop: Stop, say: Callable[[str], None]) -> None:
    """Say what a signal left behind, then end with its code (0 when every event was acknowledged),
    waiting for no thread: a worker may still sit in a read the stop is cutting."""
    for line in stop_lines(stop):
        say(line)
    exit_now(OK if stop.acknowledged and not (stop.kept or stop.lost) else signal_exit(stop.signum))


class _Closed(io.TextIOBase):
    """What the process has for stdout when it was started with it closed (`>&-`): Python gives
    None, and None makes click print nothing and logging print to stderr, as if all went well.
    Every write fails instead, as a write to a closed pipe does, so the output is not delivered."""

    def __init__(self, name: str):
        self.name = name

    @property
    def buffer(self) -> _Closed:  # --json writes bytes
        return self

    def write(self, text) -> int:  # type: ignore[override]
        raise OSError(errno.EBADF, f"{self.name} is closed")

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


class _Unfailing:
    """stderr, whose failed writes (a full disk, a reader gone) are dropped: there is nowhere left
    to say anything, and the exit code still says what happened, which a write failing in the
    middle of saying it would turn into 1."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text) -> int:  # type: ignore[override]
        with contextlib.suppress(OSError, ValueError):
            return self._stream.write(text)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def writable(self) -> bool:
        return True

    def __getattr__(self, name: str):  # encoding, errors, fileno, isatty: the stream's own
        return getattr(self._stream, name)


def guard_streams() -> None:
    """A closed stdout fails every write (see _Closed); stderr never fails one (see _Unfailing),
    and a closed one takes the lines and drops them."""
    if sys.stdout is None:
        sys.stdout = _Closed("stdout")
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115  # for the life of the process
    if not isinstance(sys.stderr, _Unfailing):
        sys.stderr = _Unfailing(sys.stderr)



def settle_stdout() -> None:
    """A reader of stdout that went away (a closed pipe) has been told in the exit code already;
    Python's own flush at exit must not turn it into 120 with a traceback."""
    if sys.stdout is None or isinstance(sys.stdout, _Closed):
        return
    try:
        sys.stdout.flush()
    except OSError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError, ValueError):  # a stdout without a descriptor: nothing to flush
            os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except ValueError:  # closed outright: nothing is left to flush
        pass


def exit_now(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone: the code still says it all
            stream.flush()
    os._exit(code)
