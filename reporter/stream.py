"""Events packed as they are asked for: the report's events, built while the first parts are
already on their way to Databand.

`StreamedEvents` is a PackedEvents whose events come from the builder's iterator only when a
reader reaches them: delivery.parts walks them in order (`has`), so at 10,000 jobs the first POST
leaves after its 500 events, not after the last of 10,000. Anything that needs them all (its
length, --output, a kept file, the summary) builds the rest first; the events are the same, byte
for byte, and in the same order as PackedEvents of the whole iterator.

A signal can land while an event is being built (delivery builds them now, not before it starts);
the half-built state is then dropped and every event is built again from a new iterator when next
asked for, so the events kept for a resend are all there, never cut where the signal came.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from reporter.packed import PackedEvents

if TYPE_CHECKING:
    from reporter.redact import Redactor


class StreamedEvents(PackedEvents):
    def __init__(self, make: Callable[[], Iterable[dict]], mask: Redactor | None = None):
        """`make` gives the builder's iterator (a new one each call, the same events each time)."""
        super().__init__((), mask)
        self._make, self._masking = make, mask
        self._source: Iterator[dict] | None = iter(make())
        self._broken = False  # an exception left the iterator or the packing half-done
        self._whole: PackedEvents | None = None  # built again whole, once broken

    @property
    def complete(self) -> bool:
        """Every event built (its length is known without building more)."""
        return self._source is None

    def _rebuilt(self) -> PackedEvents:
        if self._whole is None:
            self._whole = PackedEvents(self._make(), self._masking)
        return self._whole

    def has(self, index: int) -> bool:
        """Whether there is an event at `index`, building up to it if need be."""
        if self._broken:
            return index < len(self._rebuilt())
        while self._source is not None and PackedEvents.__len__(self) <= index:
            try:
                event = next(self._source, None)
                if event is None:
                    self._source = None
                    break
                self.append(event)
            except BaseException:  # a signal (Interrupted) or a bug: nothing half-built is kept
                self._source, self._broken = None, True
                raise
        return index < PackedEvents.__len__(self)

    def raw(self, index: int) -> bytes:
        if self._broken:
            return self._rebuilt().raw(index)
        if index >= 0:
            self.has(index)
        return super().raw(index)

    def __len__(self) -> int:
        while self._source is not None:
            self.has(PackedEvents.__len__(self))
        return len(self._rebuilt()) if self._broken else super().__len__()

    def __iter__(self) -> Iterator[dict]:
        index = 0
        while self.has(index):
            yield self[index]
            index += 1
