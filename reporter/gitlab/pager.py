"""All pages of one GitLab list endpoint (a pipeline's jobs or bridges, a project's pipelines).

Pages are asked for by number, never by following GitLab's links, so a link or X-Next-Page
pointing back (or elsewhere) cannot make a loop. The first page says how many there are
(X-Total-Pages); the others then go out at once on the caller's pool. Past 10,000 items GitLab
sends no count: the pages are then read ahead, as many at once as GitLab requests may be in flight
(the client's bound), each next page sent as one comes back full, until a page comes back short or
empty (the few sent past it are answered empty and dropped), up to MAX_PAGES. So a listing without
a count costs about one wave per `in_flight` pages, not one per page.

Offset pages shift while the list changes (a retried job is added at the head, so an item of page
1 comes again on page 2 and the last one moves on a page): items are kept once by id, and when the
last page counted comes back full the next pages are read until one is not. A page with nothing
new ends the listing. Each surprise is said in `notes` (they go to the summary), never a silent gap.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from typing import Generic, TypeVar

from reporter.gitlab import http
from reporter.gitlab.http import Answer, Client
from reporter.gitlab.parse import ShapeError

# Where GitLab gives no page count (past 10,000 items) pages are walked one by one up to this many
# (100,000 jobs): a server whose pages never end cannot make the reporter read forever.
MAX_PAGES = 1000

T = TypeVar("T")


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def checked_items(answer: Answer) -> list[dict]:
    """A list of GitLab objects, each with a numeric id."""
    assert isinstance(answer.data, list)
    for index, item in enumerate(answer.data):
        if not isinstance(item, dict):
            raise http.wrong(answer, f"has {http.json_type(item)} at item {index} where an object was due")
        if not _whole(item.get("id")):
            raise http.wrong(answer, f"has {http.json_type(item.get('id'))} as the id of item {index} "
                                     "where a number was due")
    return answer.data


class Pager(Generic[T]):
    """One listing, its pages fetched on a shared pool; `result()` joins them.

    `convert` turns a page's new items into what the caller keeps (each page as soon as it
    arrives: GitLab's job JSON, parsed, is several times larger than what the report needs);
    `on_page` hears of each page's kept items at once (failed jobs' logs go out then)."""

    def __init__(self, client: Client, pool: Executor, path: str, params: Mapping[str, object], kind: str,
                 convert: Callable[[list[dict]], list[T]], on_page: Callable[[list[T]], None] | None = None):
        self._client, self._pool, self._path, self._params, self._kind = client, pool, path, dict(params), kind
        self._convert, self._on_page = convert, on_page
        self.first_raw: dict = {}  # the first item as GitLab sent it (a job token's ref and commit)
        self.notes: list[str] = []
        self._seen: set[int] = set()
        self._lock = threading.Lock()
        self._per_page = http.PER_PAGE
        self._total: int | None = None
        self._counted_pages: int | None = None
        self._first: Future[tuple[Answer, list[dict]]] = pool.submit(self._fetch, 1)
        self._first_items: list[T] = []
        self._first_size = 0
        self._rest: list[Future[tuple[list[T], int, int]]] | None = None
        self._uncounted = False
        self._items: list[T] | None = None

    def _fetch(self, number: int) -> tuple[Answer, list[dict]]:
        answer = http.get_json(self._client, self._path, {**self._params, "page": number, "per_page": http.PER_PAGE},
                               expect=list)
        return answer, checked_items(answer)

    def _take(self, answer: Answer, page: list[dict]) -> tuple[list[T], int]:
        """The page's items not seen before, converted, and how many of its items were new."""
        with self._lock:
            fresh = [raw for raw in page if raw["id"] not in self._seen]
            self._seen.update(raw["id"] for raw in fresh)
        try:
            items = self._convert(fresh)
        except ShapeError as error:
            raise http.wrong(answer, f"has a {self._kind} field of an unexpected type ({error})") from None
        if self._on_page is not None:
            self._on_page(items)
        return items, len(fresh)

    def _page(self, number: int) -> tuple[list[T], int, int]:
        answer, page = self._fetch(number)
        items, new = self._take(answer, page)
        return items, new, len(page)

    def _walk(self, number: int) -> list[T]:
        """Pages from `number` on, one after another, until one is short, empty or brings nothing new."""
        found: list[T] = []
        while True:
            if number > MAX_PAGES:
                self.notes.append(f"{self._kind}s past page {MAX_PAGES} of GitLab's listing (read no further)")
                return found
            items, new, size = self._page(number)
            found += items
            if size and not new:
                self.notes.append(f"some {self._kind}s, maybe: GitLab's page {number} of {self._kind}s repeated "
                                  "items already read, so the listing was stopped there")
                return found
            if size < self._per_page:
                return found
            number += 1

    def _read_ahead(self, first: int) -> list[T]:
        """Uncounted pages from `first` on, `in_flight` at a time, each next one sent as soon as one
        comes back (run in the caller's thread: it waits on pages of the same pool, which a pool
        thread must not)."""
        width = max(1, self._client.access.in_flight)
        pending: dict[Future[tuple[list[T], int, int]], int] = {}
        found: list[T] = []
        number, end = first, MAX_PAGES + 1  # end: the first page known to be the last
        while True:
            while len(pending) < width and number < end:
                pending[self._pool.submit(self._page, number)] = number
                number += 1
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                page = pending.pop(future)
                items, new, size = future.result()
                found += items  # a page past the end is empty, or holds items added meanwhile
                if size and not new:
                    if end > MAX_PAGES:  # said once, however many pages came back repeated
                        self.notes.append(f"some {self._kind}s, maybe: GitLab's page {page} of {self._kind}s "
                                          "repeated items already read, so the listing was stopped there")
                    end = min(end, page)
                elif size < self._per_page:
                    end = min(end, page)
        if end > MAX_PAGES:
            self.notes.append(f"{self._kind}s past page {MAX_PAGES} of GitLab's listing (read no further)")
        return found

    def start_rest(self) -> None:
        """Once the first page is in: send for every other page (call it for several listings, then
        `result()` each, so that their pages go out together)."""
        if self._rest is not None:
            return
        answer, page = self._first.result()
        self._per_page = http.header_number(answer.headers, "X-Per-Page") or http.PER_PAGE
        self._total = http.header_number(answer.headers, "X-Total")
        pages = http.header_number(answer.headers, "X-Total-Pages")
        if pages and self._total is not None:  # never more pages than the count needs
            pages = min(pages, math.ceil(self._total / self._per_page) + 1)
        self.first_raw = page[0] if page else {}
        self._first_size = len(page)
        self._first_items, _ = self._take(answer, page)
        if len(page) < self._per_page:
            self._rest = []
        elif pages:
            self._counted_pages = min(pages, MAX_PAGES)
            self._rest = [self._pool.submit(self._page, n) for n in range(2, self._counted_pages + 1)]
        else:  # no count (past 10,000 items): read ahead in result()
            self._rest = []
            self._uncounted = True

    def result(self) -> list[T]:
        if self._items is None:
            self.start_rest()
            assert self._rest is not None
            items = list(self._first_items)
            last_size = self._first_size
            for rest in self._rest:
                found, _, last_size = rest.result()
                items.extend(found)
            if self._uncounted:
                items.extend(self._read_ahead(2))
            if self._counted_pages and last_size >= self._per_page:
                items.extend(self._walk(self._counted_pages + 1))  # the pages shifted while being read
            if self._total is not None and len(self._seen) < self._total:
                self.notes.append(f"{self._total - len(self._seen)} of the {self._total} {self._kind}s GitLab "
                                  f"counted: its listing ended after {len(self._seen)}")
            self._items = items
        return self._items
