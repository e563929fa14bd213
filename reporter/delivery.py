"""Delivery: the events to every chosen target (reporter/targets.py), and a file of its own for each
target's events it did not accept, which `resend --from-file` sends again.

`deliver` returns what happened (a `Delivery`: what each target accepted, and each failure with
where its events were kept); the caller decides the exit code. A target failing never stops the
next one. A signal meanwhile keeps, for the target being sent to and every one not reached yet,
the events not acknowledged, and raises a new Interrupted that names the files.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from reporter import eventfiles
from reporter.errors import DeliveryError
from reporter.packed import raw_of
from reporter.process import Interrupted
from reporter.targets import Outcome, Target

# A request carries at most this many events or this much JSON (before gzip), whichever comes
# first. Each part repeats the root run's event, because Databand drops a payload without it.
MAX_EVENTS_PER_REQUEST = 500
MAX_BYTES_PER_REQUEST = 4 * 1024 * 1024


def root_index(events: Sequence[dict]) -> int | None:
    """Where the root run's event is: the one without a parent facet (Databand keeps only payloads
    with it). The reporter puts it first."""
    for index, event in enumerate(events):
        if "parent" not in event.get("run", {}).get("facets", {}):
            return index
    return None


def parts(events: Sequence[dict], max_events: int = MAX_EVENTS_PER_REQUEST,
          max_bytes: int = MAX_BYTES_PER_REQUEST) -> Iterator[tuple[list[int], bytes]]:
    """The parts as (event indices, JSON body), made as they are asked for, so that only the parts
    in flight are in memory. Every part starts with the root run's event."""
    root = root_index(events)
    head = [] if root is None else [root]
    head_bytes = [raw_of(events, i) for i in head]
    indices, body, size = list(head), list(head_bytes), sum(map(len, head_bytes)) + 2
    sent_any = False
    for index in _indices(events):
        if index == root:
            continue
        encoded = raw_of(events, index)
        if len(indices) > len(head) and (len(indices) >= max_events or size + len(encoded) + 1 > max_bytes):
            yield indices, b"[" + b",".join(body) + b"]"
            sent_any = True
            indices, body, size = list(head), list(head_bytes), sum(map(len, head_bytes)) + 2
        indices.append(index)
        body.append(encoded)
        size += len(encoded) + 1
    if len(indices) > len(head) or (indices and not sent_any):  # a pipeline of the root alone too
        yield indices, b"[" + b",".join(body) + b"]"


def _indices(events: Sequence[dict]) -> Iterable[int]:
    """Every index of the events, in order; of events still being built (stream.StreamedEvents),
    each one as it is made, so that the first part goes before the last event is built."""
    has = getattr(events, "has", None)
    return range(len(events)) if has is None else itertools.takewhile(has, itertools.count())


@dataclass(frozen=True)
class Failure:
    """A target that did not accept every event: why, how many, and where they were kept (or why
    they could not be)."""

    target: str
    reason: str
    unsent: int
    kept: str | None = None
    not_kept: str | None = None  # why no file could be written

    def message(self) -> str:
        if self.kept is not None:
            return self.reason
        return (f"{self.reason.rstrip('.')}. And the {self.unsent} unsent events could not be kept "
                f"({self.not_kept}): they are lost unless the report is sent again "
                "(resend --project ... --pipeline ...).")


@dataclass
class Delivery:
    """What a delivery did: each target's outcome, and each failure."""

    outcomes: list[Outcome] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def message(self) -> str:
        if len(self.failures) == 1:
            return self.failures[0].message()
        return "; ".join(f"{f.target}: {f.message()}" for f in self.failures)

    def error(self) -> DeliveryError | None:
        """The failures as one error, for callers that raise (a backfill's pipeline): what failed,
        and where its events were kept."""
        if not self.failures:
            return None
        kept = [f.kept for f in self.failures if f.kept]
        return DeliveryError(self.message().rstrip(".") + (f" (kept in {', '.join(kept)})." if kept else "."))


def _keep(target: str, unsent: Sequence[dict], reason: str, label: str | int, keep_dir: str) -> Failure:
    kept = eventfiles.keep_unsent(unsent, label, target, keep_dir)
    return Failure(target=target, reason=reason, unsent=len(unsent), kept=kept.path, not_kept=kept.problem)


def deliver(targets: Sequence[Target], events: Sequence[dict], label: str | int, keep_dir: str = ".") -> Delivery:
    """Hand the events to every target; a target that fails keeps its unsent events in a file of its
    own and never stops the others."""
    done = Delivery()
    pending = list(targets)
    try:
        while pending:
            target = pending[0]
            try:
                done.outcomes.append(target.send(events))
            except DeliveryError as error:
                done.failures.append(_keep(target.name, error.unsent, str(error), label, keep_dir))
            # Broad on purpose: whatever a target raises (a CA file gone, a header requests refuses, a
            # bug), the events it may not have delivered are kept and the next target still runs.
            except Exception as error:  # noqa: BLE001
                reason = f"{target.name} failed with an unexpected {type(error).__name__} (set " \
                         "DATABAND_REPORTER_DEBUG=1 and send it again to see where)"
                done.failures.append(_keep(target.name, events, reason, label, keep_dir))
            pending.pop(0)
    except Interrupted as stop:
        raise keep_interrupted(stop, pending, events, label, keep_dir, done.failures) from None
    except BaseException as error:
        # Not ours to stop (SystemExit, KeyboardInterrupt where no signal handler is installed,
        # a library's own BaseException): the events of this target and the next are kept, and it
        # goes on, naming the files.
        note = getattr(error, "add_note", None)  # Python 3.11+: the traceback, if any, names the files
        for target in pending:
            failure = _keep(target.name, events, f"stopped by {type(error).__name__}", label, keep_dir)
            if note is not None:
                note(f"{target.name}: the events were kept in {failure.kept}" if failure.kept else
                     f"{target.name}: {failure.message()}")
        raise
    return done


def keep_interrupted(stop: Interrupted, pending: Sequence[Target], events: Sequence[dict], label: str | int,
                     keep_dir: str = ".", failures: Sequence[Failure] = ()) -> Interrupted:
    """A new Interrupted naming every file kept: the first of `pending` was being sent to (its
    unacknowledged events, when it said), the others had nothing yet; `failures` were kept before."""
    kept = [(f.target, f.kept) for f in failures if f.kept]
    lost = [f"{f.target}: {f.message()}" for f in failures if not f.kept]
    for position, target in enumerate(pending):
        unsent = stop.stop.unsent if position == 0 and stop.stop.unsent is not None else events
        if not unsent:
            continue
        failure = _keep(target.name, unsent, f"Stopped by {stop.stop.name} before {target.name} acknowledged "
                                             "every event", label, keep_dir)
        if failure.kept:
            kept.append((target.name, failure.kept))
        else:
            lost.append(f"{target.name}: {failure.message()}")
    return stop.with_(unsent=None, kept=(*stop.stop.kept, *kept), lost=(*stop.stop.lost, *lost))
