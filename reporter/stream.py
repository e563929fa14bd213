"""Events packed as they are asked for: the report's events, built while the first parts are
already on their way to Databand.

`StreamedEvents` is a PackedEvents whose events come from the builder's iterator only when a
reader reaches them: delivery.parts walks them in order (`has`), so at 10,000 jobs the first POST
leaves after its 500 events, not after the last of 10,000. Anything that needs them all (its
length, --output, a kept file, the summary) builds the rest first; the events are the same, byte
for byte, and in the same order as PackedEvents of the whole iterator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from reporter.packed import PackedEvents


class StreamedEvents(PackedEvents):
    def __init__(self, source: Iterable[dict], mask: Callable[[str], str] | None = None):
        super().__init__((), mask)
        self._source: Iterator[dict] | None = iter(source)

    @property
    def complete(self) -> bool:
        """Every event built (its length is known without building more)."""
        return self._source is None

    def has(self, index: int) -> bool:
        """Whether there is an event at `index`, building up to it if need be."""
        while self._source is not None and PackedEvents.__len__(self) <= index:
            event = next(self._source, None)
            if event is None:
                self._source = None
                break
            self.append(event)
        return index < PackedEvents.__len__(self)

    def raw(self, index: int) -> bytes:
        if index >= 0:
            self.has(index)
        return super().raw(index)

    def __len__(self) -> int:
        while self._source is not None:
            self.has(PackedEvents.__len__(self))
        return super().__len__()

    def __iter__(self) -> Iterator[dict]:
        index = 0
        while self.has(index):
            yield self[index]
            index += 1
