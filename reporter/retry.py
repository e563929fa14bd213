"""One retry policy for every HTTP call the reporter makes.

GitLab's reads go through python-gitlab's own retries, Databand's POSTs through a loop of ours,
the openlineage targets through urllib3's `Retry`: all three take their numbers from one
`RetryPolicy` value, so that a 429 or a 502 is treated the same wherever it comes from.

- Which answers are tried again: `statuses` (429 and the 5xx a proxy or a restart gives), and
  connections that broke or timed out.
- How many times: `attempts` in all, the first one included.
- How long between them: the first retry at once (a dropped kept-alive connection is the usual
  cause), then `backoff`, doubling, at most `backoff_max`; or what the server asked for.
- What the server may ask: `Retry-After` (seconds or an HTTP date) or, without it, GitLab's
  `RateLimit-Reset` (the epoch second the window resets). It is honoured up to `longest_wait`
  (GitLab.com's throttle window is 60 s) and never past the time left in the caller's budget:
  a wait that would end past it is not started, and the caller says why it gave up.
- `budget`: the seconds all attempts and waits of one call may take together, unless the caller
  has a budget of its own (a report's --gitlab-timeout).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    backoff: float = 0.5
    backoff_max: float = 16.0
    longest_wait: float = 60.0
    budget: float = 80.0
    statuses: tuple[int, ...] = (429, 500, 502, 503, 504)

    def backoff_wait(self, retry: int) -> float:
        """The wait before retry number `retry` (1 for the first retry) when the server asks none."""
        if retry <= 1:
            return 0.0
        return min(self.backoff * 2 ** (retry - 2), self.backoff_max)

    def server_wait(self, headers: Mapping[str, str], now: float | None = None) -> float | None:
        """What the answer asks to wait, in seconds from `now` (epoch), at most `longest_wait`; None
        when it asks nothing readable. An unreadable Retry-After waits the longest."""
        now = time.time() if now is None else now
        value = _header(headers, "Retry-After")
        if value is not None:
            seconds = _seconds_or_date(value, now)
            return self._capped(self.longest_wait if seconds is None else seconds)
        reset = _header(headers, "RateLimit-Reset")
        if reset is not None:
            try:
                seconds = float(reset) - now
            except ValueError:
                return None
            return None if math.isnan(seconds) else self._capped(seconds)
        return None

    def wait_before(self, retry: int, headers: Mapping[str, str] | None = None, *, left: float,
                    now: float | None = None) -> float | None:
        """The wait before retry number `retry`, or None when there is to be no retry: the attempts
        are spent, or the wait would end past the `left` seconds of the caller's budget."""
        if retry >= self.attempts:
            return None
        asked = self.server_wait(headers, now) if headers is not None else None
        wait = self.backoff_wait(retry) if asked is None else asked
        return None if wait >= left else wait

    def _capped(self, seconds: float) -> float:
        if math.isnan(seconds):  # "nan" passes float(): unreadable, and no deadline survives adding it
            return self.longest_wait
        return min(max(seconds, 0.0), self.longest_wait)

    def retries_status(self, status: int) -> bool:
        return status in self.statuses

    def with_budget(self, seconds: float) -> RetryPolicy:
        return replace(self, budget=seconds)

    def faster(self, factor: float) -> RetryPolicy:
        """Every wait scaled by `factor`: tests and benchmarks that measure no real backoff."""
        return replace(self, backoff=self.backoff * factor, backoff_max=self.backoff_max * factor,
                       longest_wait=self.longest_wait * factor)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict is case-sensitive; requests' headers are not
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return None if value is None else str(value).strip()


def _seconds_or_date(value: str, now: float) -> float | None:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# The one policy: GitLab reads, Databand and the openlineage targets. Six attempts ride out a
# restart or a short 502 burst; 60 s is the longest GitLab.com asks of a throttled client.
POLICY = RetryPolicy()
