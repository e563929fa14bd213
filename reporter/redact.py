"""Masking of secrets in any text that leaves the reporter: logs, errors, events.

Two layers:

- The secrets the reporter was given are known exactly, so every form they take in a log is
  computed once: as is, percent-encoded, JSON-escaped, and the part of their base64 that depends on
  them alone at each of the three byte alignments (docker's config.json and HTTP Basic put
  base64("user:token") in logs). `Redactor.known` replaces those with plain str.replace; it is cheap
  enough to run over every byte that leaves.
- Secrets nobody told us about are found by their shape: GitLab's token prefixes, credentials
  after a name (headers, assignments, JSON and YAML keys, command-line options), passwords in URLs,
  signatures in query strings. `Redactor(text)` does both.

Linear time. Python's re backtracks, and it pays for every position it tries, so each shape:
- starts with a literal (a keyword, "://", "gl"), which re finds with a fast scan, and is tried
  only when a plain `in` finds that literal at all;
- after the literal, either fails within a bounded number of steps or runs over characters no
  other attempt of the same shape runs over again (its runs exclude the literal's first character,
  or end in a match);
- runs on a lower-cased copy (same length, so positions carry over) instead of with IGNORECASE,
  which would cost the fast scan.
No shape crosses a line end, so text is handled in blocks of whole lines, and the GIL is let go
between blocks; only a single line longer than a block is one piece, still linear.
"""

from __future__ import annotations

import base64
import json
import re
import string
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "[MASKED]"

_BLOCK = 64 * 1024
_SHORTEST_FORM = 6  # a shorter derived form would match ordinary text, and cannot hold 8 characters of a secret
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

# What follows a name before its value: `: `, `=`, `": "`, `\": \"`, and an auth scheme.
_SEPARATOR = r"""\\?["']?[ \t]*[:=][ \t]*\\?["']?(?:(?:bearer|basic|token|digest)[ \t]+)?"""
_VALUE = r"""(?P<secret>[^\s'"\\]+)"""


def _shapes() -> list[tuple[str, re.Pattern]]:
    """(literal, pattern) pairs over lower-cased text; the pattern starts with the literal and
    names what it masks `secret`."""
    shapes = [
        # GitLab's token prefixes (docs: "Token prefixes"; an instance prefix such as "acme-glpat-"
        # ends with one). A body of 16 characters or more leaves words such as "glibc-2.36" alone.
        ("gl", r"(?P<secret>gl(?:pat|oas|dt|rtr|rt|cbt|ptt|ft|imt|agent|soat|ffct|wt|sa|tst)-[a-z0-9_\-.]{16,})"),
        ("gr1348941", r"(?P<secret>gr1348941[a-z0-9_\-]{16,})"),  # runner registration tokens before 16.0
        ("bearer", r"bearer[ \t]+(?P<secret>[a-z0-9_\-.=:/+~]{8,})"),
        # user:password@ in URLs; the user name is kept, it helps and is not secret. Neither run
        # crosses a "/", so an attempt ends before the next "://".
        ("://", r"://[^/\s:@]*:(?P<secret>[^/\s@]+)@"),
    ]
    # A value after a name: headers as curl -v prints them, FOO_TOKEN=... as `set -x` and `env`
    # print them, "password": "..." in JSON and YAML, docker's "auth": "base64(user:password)",
    # ?private_token=... in URLs. The names are matched inside longer ones (X-Gitlab-Token, CI_JOB_TOKEN).
    for literal, name in (("authorization", "authorization"), ("token", "token"), ("passw", "passw(?:or)?d"),
                          ("secret", "secret"), ("api", "api[-_]?key"), ('"auth', '"auth')):
        shapes.append((literal, name + _SEPARATOR + _VALUE))
    for option in ("--password", "--token"):  # docker login --password, glab --token
        shapes.append((option, f"{option}(?:=|[ \\t]+){_VALUE}"))
    # Query parameters that open or sign a URL: API keys, object storage links to artifacts (SAS
    # sig=, X-Amz-Signature=). The lookbehinds keep them to query strings.
    shapes.append(("key=", r"key=(?<=[?&;]key=)(?P<secret>[^&#\s'\"]+)"))
    shapes.append(("sig", r"sig(?:nature)?=(?:(?<=[?&;]sig=)|(?<=[?&;-]signature=))(?P<secret>[^&#\s'\"]+)"))
    return [(literal, re.compile(pattern)) for literal, pattern in shapes]


_SHAPES = _shapes()


class Redactor:
    """Masks the given secrets in every form they take, and every well-known credential shape."""

    def __init__(self, secrets: Iterable[str | None] = ()):
        forms: set[str] = set()
        for secret in {s for s in secrets if s and len(s) >= 4}:
            forms.add(secret)
            forms.update(f for f in derived_forms(secret) if len(f) >= _SHORTEST_FORM)
        # Longest first, so that a form containing another is masked whole.
        self._forms = sorted(forms, key=lambda f: (-len(f), f))

    def known(self, text: str) -> str:
        """The known secrets masked, in all their forms; nothing else. Meant also for encoded JSON:
        the mask has no quote or backslash, and the JSON-escaped forms are among those replaced.
        (One way to break JSON remains: a secret starting with n, t, r, b, f, u or / whose tail
        follows that escape, as in "\\n" + secret[1:]; then that escape is masked too.)"""
        for form in self._forms:
            text = text.replace(form, MASK)
        return text

    def __call__(self, text: str) -> str:
        if len(text) <= _BLOCK:
            return self._block(text)
        return "".join(self._block(block) for block in _blocks(text))

    def _block(self, text: str) -> str:
        text = self.known(text)
        lower = text.lower()
        if len(lower) != len(text):  # a few characters lower-case to two ("İ"); positions must carry over
            lower = text.translate(_ASCII_LOWER)
        spans: list[tuple[int, int]] = []
        for literal, pattern in _SHAPES:
            if literal in lower:
                spans.extend(m.span("secret") for m in pattern.finditer(lower))
        return _masked(text, spans) if spans else text


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    pieces, done = [], 0
    for start, end in sorted(spans):
        if end <= done:
            continue
        if start > done:
            pieces.append(text[done:start])
        if start >= done:
            pieces.append(MASK)
        done = end  # overlapping spans merge into the mask already placed
    pieces.append(text[done:])
    return "".join(pieces)


def _blocks(text: str) -> Iterable[str]:
    """Pieces of at most _BLOCK characters that end at line ends, except a longer single line."""
    start, size = 0, len(text)
    while start < size:
        end = start + _BLOCK
        if end >= size:
            yield text[start:]
            return
        cut = text.rfind("\n", start, end)
        if cut < 0:
            cut = text.find("\n", end)
            if cut < 0:
                yield text[start:]
                return
        yield text[start: cut + 1]
        start = cut + 1


def derived_forms(secret: str) -> set[str]:
    """Other forms the secret takes in logs and JSON: percent-encoded (upper and lower hex, in a
    path, a query, twice), base64 cores (standard, URL-safe, percent-encoded, encoded twice), each
    also JSON-escaped and with "/" escaped."""
    forms: set[str] = set()
    for safe in ("", "/", ":/@"):
        encoded = quote(secret, safe=safe)
        forms.update((encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), encoded)))
    forms.add(quote_plus(secret))
    forms.add(quote(quote(secret, safe=""), safe=""))
    for core in base64_cores(secret.encode("utf-8")):
        forms.update((core, core.translate(str.maketrans("+/", "-_")), quote(core, safe="")))
        # base64 inside base64: a Kubernetes secret's .dockerconfigjson holds docker's "auth".
        forms.update(base64_cores(core.encode("ascii")))
    for form in [*forms, secret]:
        forms.update((json.dumps(form)[1:-1], json.dumps(form, ensure_ascii=False)[1:-1], form.replace("/", "\\/")))
    forms.discard(secret)
    return forms


def base64_cores(secret: bytes) -> list[str]:
    """The base64 characters fixed by the secret's bytes alone, for each alignment (0, 1 or 2 bytes
    before it, modulo 3): whatever surrounds the secret, its encoding holds one of these, and at
    most one character on either side carries any of the secret's bits."""
    cores = []
    for lead in range(3):
        encoded = base64.b64encode(bytes(lead) + secret).decode("ascii")
        first = -(-8 * lead // 6)  # the first character whose six bits all come from the secret
        end = 8 * (lead + len(secret)) // 6
        cores.append(encoded[first:end])
    return cores
