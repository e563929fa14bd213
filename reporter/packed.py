"""Events kept packed: their compact JSON, deflated in chunks against the first event as a preset
dictionary (every event repeats the same producer, schema URLs and names).

A 10,000-job pipeline's events are 25 MB of JSON and more as dicts; packed they are about 2 MB,
and delivery sends their JSON without encoding them again.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reporter.redact import Redactor


def _compact(ascii_only: bool) -> Callable[[object], str]:
    """json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":")), the same text. Made once:
    json.dumps with separators builds a JSONEncoder, and it a C encoder, for every call, which is a
    fifth of the encoding's CPU on an event. CPython's C encoder where the json module has it."""
    fallback = json.JSONEncoder(ensure_ascii=ascii_only, separators=(",", ":"))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return fallback.encode
    escape = json.encoder.encode_basestring_ascii if ascii_only else json.encoder.encode_basestring
    encoder = make(None, fallback.default, escape, None, ":", ",", False, False, True)
    return lambda value: "".join(encoder(value, 0))


_COMPACT = {False: _compact(False), True: _compact(True)}


def _dumps(event: object, ascii_only: bool = False) -> str:
    return _COMPACT[ascii_only](event)


def encode(event: dict, mask: Redactor | None = None) -> bytes:
    """An event's compact JSON. The last seam before anything leaves: a secret the reporter knows,
    in any of its forms, is masked wherever it got into an event (a job name, a tag, a URL),
    whatever put it there. Masked as values, so the JSON stays JSON; an event with no known form
    in it (one pass over its JSON says so) is exactly what the builder made."""
    text = _dumps(event)
    if mask is not None and mask.might_hold_json(text):
        event = mask.values(event)
        text = _dumps(event)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (GitLab can send one in a name): escaped, still JSON
        return _dumps(event, ascii_only=True).encode("ascii")


class PackedEvents(Sequence):
    """A sequence of events, packed in chunks of CHUNK events; read back in order, each chunk is
    inflated once."""

    CHUNK = 64

    def __init__(self, events: Iterable[dict] = (), mask: Redactor | None = None):
        self._mask = mask
        self._chunks: list[bytes] = []
        self._open: list[bytes] = []  # the chunk being filled, not packed yet
        self._open_first = 0  # the index of its first event
        self._spans: list[tuple[int, int, int]] = []  # per event: chunk, start, end
        self._zdict: bytes | None = None
        self._inflated: tuple[int, bytes] = (-1, b"")
        self.counts: Counter = Counter()  # (jobType, eventType) -> runs, for the summary
        for event in events:
            self.append(event)

    def append(self, event: dict) -> None:
        raw = encode(event, self._mask)
        if self._zdict is None:
            self._zdict = raw
        start = sum(map(len, self._open)) if self._open else 0
        self._spans.append((len(self._chunks), start, start + len(raw)))
        self._open.append(raw)
        if len(self._open) == self.CHUNK:
            self._seal()
        kind = event.get("job", {}).get("facets", {}).get("jobType", {}).get("jobType", "RUN")
        self.counts[kind, event.get("eventType", "?")] += 1

    def _seal(self) -> None:
        packer = zlib.compressobj(1, zdict=self._zdict)
        self._chunks.append(packer.compress(b"".join(self._open)) + packer.flush())
        self._open = []
        self._open_first = len(self._spans)

    def raw(self, index: int) -> bytes:
        """One event's JSON, as it was encoded."""
        if index < 0:
            index += len(self._spans)
        chunk, start, end = self._spans[index]
        if chunk == len(self._chunks):  # streamed delivery reads each event here, just made
            return self._open[index - self._open_first]
        if self._inflated[0] == chunk:
            data = self._inflated[1]
        else:
            unpacker = zlib.decompressobj(zdict=self._zdict or b"")
            data = unpacker.decompress(self._chunks[chunk]) + unpacker.flush()
            self._inflated = (chunk, data)
        return data[start:end]

    def __len__(self) -> int:
        return len(self._spans)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        return json.loads(self.raw(index))

    def __iter__(self) -> Iterator[dict]:
        return (json.loads(self.raw(i)) for i in range(len(self)))

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list


def raw_of(events: Sequence[dict], index: int) -> bytes:
    return events.raw(index) if isinstance(events, PackedEvents) else encode(events[index])


def masked(events: Sequence[dict], mask: Redactor) -> PackedEvents:
    """The events packed with `mask`, unless they are packed masked already (events read back from
    a file, or a library caller's list, pass the same mask as those the reporter built)."""
    if isinstance(events, PackedEvents) and events._mask is not None:
        return events
    return PackedEvents(events, mask)
