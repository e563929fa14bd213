"""The console script's start: what it sets in the process before anything else runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from reporter import process

# glibc's own report of its arenas (malloc_info), after eight threads each allocated blocks too
# large for Python's small-object allocator: each new thread takes a new arena while glibc's cap
# allows one more.
_ARENAS = textwrap.dedent("""
    import ctypes, sys, tempfile, threading
    from reporter import start
    capped = start.fewer_malloc_arenas() if sys.argv[1] == "capped" else None
    gate = threading.Barrier(8)
    def allocate():
        kept = [bytes(2000) for _ in range(200)]
        gate.wait()  # every thread alive, and holding memory, at once
    threads = [threading.Thread(target=allocate) for _ in range(8)]
    for thread in threads: thread.start()
    for thread in threads: thread.join()
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    with tempfile.NamedTemporaryFile(suffix=".xml") as out:
        handle = libc.fopen(out.name.encode(), b"w")
        libc.malloc_info(0, ctypes.c_void_p(handle))
        libc.fclose(ctypes.c_void_p(handle))
        print(capped, open(out.name).read().count("<heap nr="))
""")


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError, AttributeError):
        return False


def arenas(mode: str, **env: str) -> tuple[str, int]:
    base = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run([sys.executable, "-c", _ARENAS, mode], env={**base, **env}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    capped, heaps = done.stdout.split()
    return capped, int(heaps)


@pytest.mark.skipif(not _glibc(), reason="malloc arenas are glibc's; this C library has none to cap")
def test_the_threads_share_one_malloc_arena_beside_the_main_threads():
    assert arenas("capped") == ("True", 2)
    _, uncapped = arenas("plain")
    assert uncapped > 2  # what the cap saves: an arena for each of the threads, up to glibc's own limit


@pytest.mark.skipif(not _glibc(), reason="malloc arenas are glibc's; this C library has none to cap")
def test_a_malloc_arena_max_the_caller_set_is_left_as_it_is():
    assert arenas("capped", MALLOC_ARENA_MAX="4") == ("False", 4)


def _mask() -> set[int]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


def _in_a_thread_of_its_own(call):
    found = []
    thread = threading.Thread(target=lambda: found.append(call()))
    thread.start()
    thread.join()
    return found[0]


def test_the_reporters_threads_leave_the_stopping_signals_to_the_main_thread():
    """A signal sent to the process goes to any thread not blocking it; only the main thread runs
    Python's handlers, so one taken by a worker left the main thread waiting (TERM and HUP at once
    hung test_two_signals_together_keep_every_event about once in ten runs)."""
    before = _mask()
    process.signals_to_main()  # in the main thread: nothing changes
    assert _mask() == before
    with ThreadPoolExecutor(max_workers=1, initializer=process.signals_to_main) as pool:
        blocked = pool.submit(_mask).result()
        inherited = pool.submit(_in_a_thread_of_its_own, _mask).result()  # a thread that thread starts
    assert set(process.STOPPING) <= blocked and set(process.STOPPING) <= inherited
    assert signal.SIGSEGV not in blocked and not set(process.STOPPING) <= _in_a_thread_of_its_own(_mask)
