"""SIGTERM in the first tenths of a second, while the console script is still importing (GitLab
cancelling a job that has just started): the same stop as later, one line and 143, not a silent
-15. Through the real console script; Linux's /proc tells when its handler is in place."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

SCRIPT = shutil.which("databand-gitlab-reporter", path=os.path.dirname(sys.executable))
pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc (Linux)")


def catches_sigterm(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def has_loaded(pid: int, library: str) -> bool:
    with open(f"/proc/{pid}/maps") as maps:
        return library in maps.read()


def start(signum: int | None = None) -> subprocess.Popen:
    """The command; with `signum`, that signal at its default action (a test runner may run under
    nohup, whose ignored SIGHUP the command keeps)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITLAB_", "DATABAND_", "CI_"))}
    env.update(GITLAB_URL="http://127.0.0.1:9", GITLAB_TOKEN="token-of-the-test")
    return subprocess.Popen([SCRIPT, "resend", "--project", "42", "--pipeline", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=None if signum is None else lambda: signal.signal(signum, signal.SIG_DFL))


def until_it_catches_sigterm(process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while not catches_sigterm(process.pid):
        assert process.poll() is None and time.monotonic() < deadline, "SIGTERM was never handled"
        time.sleep(0.0005)


@pytest.mark.parametrize("attempt", range(5))
def test_sigterm_while_the_console_script_imports_is_a_stop_like_any_other(attempt):
    process = start()
    try:
        until_it_catches_sigterm(process)
        # Handled before the CLI's imports: no network library (socket, from requests and
        # python-gitlab, via the CLI) is loaded yet when the handler is in place.
        importing = not has_loaded(process.pid, "_socket.")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert importing, "the SIGTERM handler came only after the CLI's imports"
    assert process.returncode == 143, err
    assert err.splitlines() == ["databand-gitlab-reporter: stopped by SIGTERM before the events were sent; run the "
                                "same command again to send them (a backfill goes on from its cursor)."]
    assert out == ""


@pytest.mark.parametrize("delay", [0.15, 0.2, 0.25, 0.3, 0.4])
def test_sigterm_at_any_moment_of_the_start_is_143_or_the_run_s_own_end(delay):
    """A signal at a fixed moment: while importing, while reading, or after the run already ended
    (here: with a refused setting, exit 2), never the interpreter's teardown's silent -15."""
    process = start()
    try:
        time.sleep(delay)
        # On a slow machine Python may not have started the script yet: wait until its handler
        # is in place or the run has already ended (it can end between two looks).
        deadline = time.monotonic() + 30
        while process.poll() is None and not catches_sigterm(process.pid):
            assert time.monotonic() < deadline, "SIGTERM was never handled"
            time.sleep(0.0005)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert process.returncode in (143, 2), err


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGALRM],
                         ids=lambda s: signal.Signals(s).name)
def test_any_ending_signal_while_the_console_script_imports_is_the_same_stop(signum):
    """Its handler goes in with SIGTERM's, before the CLI's imports: 128 + its number, one line."""
    process = start(signum)
    try:
        until_it_catches_sigterm(process)
        process.send_signal(signum)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, err
    assert err.splitlines() == [f"databand-gitlab-reporter: stopped by {signal.Signals(signum).name} before the events "
                                "were sent; run the same command again to send them (a backfill goes on from its "
                                "cursor)."]
    assert out == ""
