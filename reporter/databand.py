"""Databand's custom-integration bulk endpoint: one current event per run, in gzip parts.

Each part (delivery.parts) is posted in attempts of a loop of ours, a few parts at once. An attempt
is cut off after `Bounds.attempt` seconds of wall clock (reporter/timebound.py), however slowly the
answer trickles in; 429, 5xx and broken connections are tried again as the retry policy says
(reporter/retry.py: attempts, backoff, Retry-After up to its longest wait, no attempt started and
no wait ending past its budget). A name that does not resolve, a TLS certificate not accepted, a
3xx or any other answer is a refusal at once. Only a 2xx of this very URL, with an empty or a JSON
body (wire.not_delivery, the rule of every HTTP target), counts as delivery.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlsplit

import requests

from reporter import timebound, wire
from reporter.delivery import parts, root_index
from reporter.errors import DeliveryError
from reporter.process import Interrupted, signals_to_main
from reporter.settings import Settings
from reporter.targets import BOUNDS, Bounds, Outcome, Say

PARALLEL_POSTS = 8  # parts of a large pipeline in flight at once


def verify_of(settings: Settings) -> bool | str:
    """TLS verification for the targets (Settings.target_verify: its CA file checked up front)."""
    return settings.target_verify()


def build(name: str, settings: Settings) -> Databand:
    """The target as the settings describe it (targets.KINDS)."""
    url, token = settings.databand()
    return Databand(url, token, verify=verify_of(settings), bounds=settings.delivery_bounds, say=settings.progress,
                    setting=settings.source("databand_url"))


class Databand:
    name = "databand"

    def __init__(self, url: str, token: str, *, verify: bool | str = True, bounds: Bounds = BOUNDS,
                 say: Say | None = None, setting: str = "DATABAND_URL"):
        self.url = url
        self._token = token
        self.verify = timebound.environ_verify(verify)
        self.bounds = bounds
        self._say = say
        self._setting = setting  # what the user set the URL with, for messages
        self._stop = timebound.stopped()  # set when the process stops: no more waits or attempts

    def _session(self) -> requests.Session:
        session = requests.Session()
        timebound.settle_environment(session, self.url)  # proxies and CA environment read once, not per POST
        adapter = timebound.BoundedAdapter(max_retries=0, pool_maxsize=PARALLEL_POSTS)
        for scheme in ("https://", "http://"):
            session.mount(scheme, adapter)
        session.headers.update({
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        })
        return session

    def send(self, events: Sequence[dict]) -> Outcome:
        """Send every part, a few at once; raise DeliveryError with exactly the events of the parts
        not accepted. A signal (Interrupted) leaves at once, with a new Interrupted holding the
        events of every part not yet acknowledged."""
        outcome = Outcome(name=self.name, where=self.url)
        session = self._session()
        stop_at = time.monotonic() + self.bounds.retry.budget
        refused: list[tuple[list[int], str]] = []
        accepted: set[int] = set()
        in_flight: list[tuple[list[int], Future]] = []
        made = 0

        def settle(indices: list[int], future: Future) -> None:
            outcome.requests += 1
            refusal = future.result()
            if refusal is not None:
                refused.append((indices, refusal))
                return
            outcome.sent += len(indices)
            accepted.update(indices)
            if made > 1 and self._say is not None:  # a large pipeline: the job log shows it advance
                # Of how many only once they are all built: asking would build the rest now.
                of = f"of {len(events)} events" if getattr(events, "complete", True) else "events so far"
                self._say(f"Databand: part {outcome.requests} acknowledged ({len(accepted)} {of})")

        pool = ThreadPoolExecutor(max_workers=PARALLEL_POSTS, thread_name_prefix="databand-post",
                                  initializer=signals_to_main)
        try:
            # Parts are made as they are taken and wait compressed (a 4 MiB part is ~100 KB).
            for indices, body in parts(events):
                made += 1
                if len(in_flight) >= PARALLEL_POSTS:
                    settle(*in_flight.pop(0))
                # Level 6: on 500 events, 0.4 % larger than level 9 and a fifth faster.
                packed = gzip.compress(body, compresslevel=6)
                in_flight.append((indices, pool.submit(self._post, session, packed, stop_at)))
            while in_flight:
                settle(*in_flight.pop(0))
        except Interrupted as stop:
            timebound.stop_everything()
            pool.shutdown(wait=False, cancel_futures=True)
            for indices, future in in_flight:  # answered 2xx before the signal: acknowledged
                if future.done() and not future.cancelled() and future.exception() is None \
                        and future.result() is None:
                    accepted.update(indices)
            root = root_index(events)
            unsent = [events[i] for i in range(len(events)) if i == root or i not in accepted]
            raise stop.with_(unsent=unsent) from None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        if refused:
            root = root_index(events)
            kept = sorted({i for indices, _ in refused for i in indices if i != root})
            unsent = [events[i] for i in ([] if root is None else [root]) + kept]
            raise DeliveryError(f"Databand did not accept the events: {refused[0][1]}.", unsent=unsent)
        return outcome

    def _post(self, session: requests.Session, gzipped: bytes, stop_at: float) -> str | None:
        """One part, in attempts, until a 2xx (None), a refusal, or no time or attempt left to try
        again (why it was not accepted)."""
        policy = self.bounds.retry
        started = time.monotonic()
        attempt = 0
        while True:
            if time.monotonic() >= stop_at:  # a part queued behind slow ones: no attempt past the budget
                return f"not sent: the {policy.budget:g} s of the delivery were spent before its turn"
            attempt += 1
            headers = None
            try:
                with timebound.bounded(self.bounds.attempt):
                    # A redirect is never delivery: an SSO proxy answers the POST with a login page.
                    response = session.post(self.url, data=gzipped, verify=self.verify, allow_redirects=False,
                                            timeout=(self.bounds.connect, self.bounds.read), stream=True)
                    answer, whole = _drain(response)
            except requests.exceptions.SSLError as error:
                if wire.tls_problem(error) == wire.NOT_TLS:  # an https:// URL on a plain-http port
                    return f"{wire.NOT_TLS} ({_host(self.url)}): check the scheme of {self._setting} (http:// or https://)"
                return (f"its TLS certificate was not accepted ({wire.tls_problem(error)}): set "
                        "DATABAND_CA_FILE to the PEM file of the CA that signed it")
            except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL) as error:
                # Trying again sends the same header: a token with a line break, a URL requests refuses.
                return (f"the request could not be made ({type(error).__name__}): check "
                        f"DATABAND_ACCESS_TOKEN and {self._setting}")
            except requests.RequestException as error:
                if self._stop.is_set():
                    return "stopped by a signal"
                if wire.unresolved_host(error):  # seconds of retries would not change it
                    return (f"could not reach Databand: {_host(self.url)} does not resolve (DNS); "
                            f"check {self._setting}")
                why = _why(error)
                if wire.through_proxy(error):
                    why = f"{why}: check {wire.proxy_variable(self.url)}, or add {_host(self.url)} to NO_PROXY"
            except OSError:  # requests' own check of the CA file, before any connection
                return f"the CA file {self.verify} could not be read: check DATABAND_CA_FILE"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    what = wire.not_delivery(status, response.headers.get("Content-Type"), answer, whole)
                    if what is None:
                        return None
                    # Something in front of Databand answered at the very URL (an SSO proxy's login
                    # page, a captive portal's text): nothing reached Databand.
                    return (f"{status} with {what}, not Databand's answer, which is not delivery: "
                            f"{self._setting} is likely behind a login (SSO) proxy; use the URL "
                            "Databand's integration page gives")
                if 300 <= status < 400:
                    where = response.headers.get("Location") or "nowhere said"
                    if _only_the_scheme(self.url, where):  # http:// pasted for an https-only host
                        return (f"{status} a redirect to https://, which is not delivery: write {self._setting} "
                                "with https://")
                    return (f"{status} a redirect to {_location(where)}, which is not delivery: "
                            f"{self._setting} is likely wrong or behind a login (SSO) proxy; use the URL "
                            "Databand's integration page gives")
                if not policy.retries_status(status):
                    return _refusal(status, self._setting)
                why = f"HTTP {status}"
                headers = response.headers
            left = stop_at - time.monotonic()
            wait = policy.wait_before(attempt, headers, left=left)
            if wait is None:
                spent = time.monotonic() - started
                tried = f"{attempt} attempt{'s' if attempt > 1 else ''} in {spent:.1f} s"
                if why.startswith("HTTP "):
                    return f"{why[5:]} still after retrying ({tried}); Databand may be down, resend later"
                return f"could not reach Databand ({why}) after {tried}"
            if self._say is not None:
                self._say(f"Databand: attempt {attempt} failed ({why}); trying again in {wait:g} s "
                          f"({left:.0f} s left to retry)")
            if self._stop.wait(wait):
                return "stopped by a signal"


def _drain(response: requests.Response) -> tuple[bytes, bool]:
    """The start of the answer, and whether it is all of it. Read to its end when small, so that
    its connection goes back to the pool and the next part reuses it (closed unread, every POST
    would open a connection and a TLS session of its own); a larger body says nothing we need and
    its connection is dropped."""
    read = bytearray()
    whole = True
    for chunk in response.iter_content(chunk_size=wire.ANSWER_BYTES):
        read += chunk
        if len(read) > wire.ANSWER_BYTES:
            whole = False
            break
    response.close()
    return bytes(read[:wire.ANSWER_BYTES]), whole


def _refusal(status: int, setting: str) -> str:
    if status in (401, 403):
        return f"{status} refused the token (check DATABAND_ACCESS_TOKEN and that it belongs to this Databand URL)"
    if status == 404:
        return f"404 at that URL: check {setting} (copy it from Databand's custom integration page)"
    if status == 413:
        return "413 the payload is too large"
    return f"HTTP {status}"  # the statuses worth retrying never come here: see Databand._post


def _why(error: requests.RequestException) -> str:
    if isinstance(error, timebound.OutOfTime):  # the wall clock cut a trickled answer
        return str(error)
    return wire.cause(error)


def _only_the_scheme(url: str, where: str) -> bool:
    """A redirect from http:// to the same address with https://."""
    return url.startswith("http://") and where.split("?", 1)[0].rstrip("/") == "https://" + url[7:].rstrip("/")


def _host(url: str) -> str:
    return urlsplit(url).hostname or "its host"


def _location(where: str) -> str:
    # Only the address: a login page's query may carry a state or a token. Not cut: a cut could
    # split a secret in the path where masking (at the line's exit) no longer knows it.
    return where.split("?", 1)[0].split("#", 1)[0]
