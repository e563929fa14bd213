"""Masking of secrets in any text that leaves the reporter: logs, errors, events, files.

Two layers:

- The secrets the reporter was given or can see (settings.known_secrets) are known exactly. Text
  is looked at through a *view*: percent-escapes (%hh, %25hh, %2525hh ...), JSON escapes (\\uXXXX of any
  character, \\/ \\" \\\\ \\t) decoded, line breaks (real or JSON-escaped, with the indentation
  after them) dropped, lower-cased, and "-" "_" read as "+" "/" (base64's URL-safe alphabet). In
  that view every form a secret takes is one of a few strings worked out once: the secret, the
  base64 characters fixed by its bytes at each of the three alignments (UTF-8, UTF-16 LE and BE;
  docker's config.json and HTTP Basic put base64("user:token") in logs; base64 of that base64),
  and its hex. So one search per form finds it percent-encoded with any safe set, escaped as our
  own names are (%2E, %2F), JSON-escaped, base64 wrapped at 76 columns or anywhere, in either
  case. `Redactor.known` masks those, mapping the view back to the text.
- Secrets nobody told us about are found by their shape: GitLab's token prefixes, credentials
  after a name (headers, assignments, JSON and YAML keys, command-line options), passwords in URLs,
  signatures in query strings. `Redactor(text)` does both.

Events are masked as values, never as encoded JSON (a mask placed in JSON text can break it):
`might_hold_json` says, from an event's JSON in one pass, whether any value can hold a known
form, and only then is each string of the event masked (`values`, cached per distinct string).

Linear time. The view is one regex pass whose every match is bounded (a run of percent-escapes
aside, which is linear; one sub when line breaks are all it drops); in a short view one set lookup per 8 characters
names the forms that can be in it, and each form looked for is found with str.find (CPython's
search is linear in the text). The shapes use Python's re, which backtracks and pays for every
position it tries, so each shape:
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
import re
import string
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from itertools import filterfalse
from typing import Any

MASK = "[MASKED]"

_BLOCK = 64 * 1024
_CHUNK = 8  # of a form: see Redactor.__init__; a form shorter than 2 * _CHUNK - 1 is searched every time
_CHUNKS = re.compile(rf"(?s).{{{_CHUNK}}}")  # a view's chunks at multiples of _CHUNK
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
            forms.update(view_forms(secret))
        # Longest first: a form containing another is found whole.
        self._forms = sorted(forms, key=lambda f: (-len(f), f))
        # How many characters a form can span at most, for a caller that must mask a margin
        # around what it keeps (logs.clean): every character may be on a line of its own.
        self.reach = max(map(len, self._forms), default=0)
        self._cache: dict[str, str] = {}  # string -> masked, for values()
        self._clean: set[str] = set()  # pieces of JSON text found to hold no form
        # A form of 2 * _CHUNK - 1 characters or more, wherever it is in a view, covers one of the
        # view's chunks at multiples of _CHUNK whole, and that chunk is one of the form's own: so
        # one set lookup per chunk of the view says which forms can be there, and only those (and
        # the few shorter forms) are searched, instead of one pass over the view per form.
        self._short = [f for f in self._forms if len(f) < 2 * _CHUNK - 1]
        self._chunks: dict[str, list[str]] = {}  # chunk -> the longer forms holding it
        for form in self._forms:
            if len(form) >= 2 * _CHUNK - 1:
                for chunk in {form[i: i + _CHUNK] for i in range(len(form) - _CHUNK + 1)}:
                    self._chunks.setdefault(chunk, []).append(form)

    def known(self, text: str) -> str:
        """The known secrets masked, in all their forms; nothing else. For text, not encoded JSON:
        events go through `values`."""
        if not self._forms or not text:
            return text
        spans: list[tuple[int, int]] = []
        for view, where in _views(text, later=True):
            found = []
            for form in self._in(view):
                start = view.find(form)
                while start >= 0:
                    found.append((start, start + len(form)))
                    start = view.find(form, start + 1)
            if found and where is _LATER:
                where = _view(text)[1]
            spans += found if where is None else [where.original(start, end) for start, end in found]
        return _masked(text, spans) if spans else text

    def might_hold(self, text: str) -> bool:
        """Whether a known form is in the text (False: known() would return it unchanged)."""
        if not self._forms:
            return False
        return any(any(map(view.__contains__, self._in(view))) for view, _ in _views(text, later=True))

    def _in(self, view: str) -> Iterable[str]:
        """The forms that may be in the view (each once): the others are not."""
        # A chunk costs ~80 ns (a string made), a form's search ~70 ns a call and ~0.1 ns a
        # character: on a long view searching every form is cheaper.
        if len(view) > 16 * len(self._forms):
            return self._forms
        hits = self._chunks.keys() & _CHUNKS.findall(view)
        if not hits:
            return self._short
        return [*self._short, *{form for chunk in hits for form in self._chunks[chunk]}]

    def might_hold_json(self, text: str) -> bool:
        """For JSON text: False only when no string in it can hold a known form.

        Events repeat most of their strings (producer, schema URLs, names), so the text is split
        and only the pieces not seen before are searched, joined (a piece found clean is
        remembered). It is split at '","' (on the benchmarks' events a sixth of the pieces a split
        at every quote gives, for 1.4 times the new characters): a cut takes two quotes and what
        is between them, which can be a string of one character at most, so every longer string
        is whole in a piece. No escape crosses a quote, so the view of a piece holds the view of
        each string in it (a form matched across a quote only errs towards True). A string with a
        quote or a backslash in it has them escaped, or its escapes escaped twice: then the whole
        text is searched, or each string (True)."""
        if not self._forms:
            return False
        if "\\" in text:  # one memchr; the two-character searches cost a pass each
            if "\\\\" in text:
                return True
            if '\\"' in text:
                return self.might_hold(text)
        new = set(filterfalse(self._clean.__contains__, text.split('","')))
        if not new:
            return False
        if self.might_hold('"'.join(new)):  # a quote: no view drops or decodes it (NUL it drops)
            return True
        if len(self._clean) >= _CLEAN_PIECES:
            self._clean.clear()
        self._clean.update(new)
        return False

    def values(self, value: Any) -> Any:
        """A JSON-ready value with every string in it (keys too) masked by known(); a string seen
        before is looked up, not masked again."""
        if isinstance(value, str):
            masked = self._cache.get(value)
            if masked is None:
                if len(self._cache) >= _CACHE:
                    self._cache.clear()
                masked = self._cache[value] = self.known(value)
            return masked
        if isinstance(value, dict):
            return {self.values(k) if isinstance(k, str) else k: self.values(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.values(v) for v in value]
        return value

    def __call__(self, text: str) -> str:
        text = self.known(text)  # whole: a wrapped base64 crosses line ends, so blocks too
        if len(text) <= _BLOCK:
            return self._shapes(text)
        return "".join(self._shapes(block) for block in _blocks(text))

    def _shapes(self, text: str) -> str:
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


# What may show otherwise than it is written: any run of non-ASCII characters (_shown says what each
# shows as) and ASCII's controls other than tab and the line breaks (NUL, BEL, BS, DEL ...).
_CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_SHOWN_CLASS = "[^\x00-\x7f]+|[" + _CONTROLS + "]"
_BREAK = r"\r\n?(?:[ \t]|\\t)*|\n(?:[ \t]|\\t)*|\t"  # a tab too: it shows as blank space
# What the view decodes or drops; every match is bounded (a run of percent-escapes aside, which
# is linear).
_ESCAPE = re.compile(
    r"(?P<percent>(?:%(?:25)*[0-9A-Fa-f]{2})+)"
    r"|\\(?:u(?P<unicode>[0-9A-Fa-f]{4})|(?P<itself>[\\/\"])|(?P<control>[tbf])|(?:r\\n|n|r)(?:[ \t]|\\t)*)"
    # HTML's character references: numeric (what an HTML-escaping of every character gives) and the
    # five XML names; the semicolon is optional, as browsers read it.
    r"|&(?:#(?:[xX](?P<hexref>[0-9A-Fa-f]{1,6})|(?P<decref>[0-9]{1,7}))|(?P<named>amp|lt|gt|quot|apos));?"
    # Characters that show as nothing or as others: see _shown.
    r"|(?P<shown>" + _SHOWN_CLASS + ")"
    r"|" + _BREAK)
# A text in which _ESCAPE can match nothing but line breaks (most logs) has as its view the text
# with those dropped, which one C-speed sub gives; these say, each by a scan for one literal or one
# class (the alternation above has no first-character prefilter and costs ~60 ns a character),
# that nothing else can match. Each is a superset of its alternative: a false "maybe" only costs
# the full pass.
_BREAKS = re.compile(_BREAK)
_MAYBE_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_MAYBE_REFERENCE = re.compile(r"&(?:#|amp|lt|gt|quot|apos)")
_MAYBE_CONTROL = re.compile("[" + _CONTROLS + "]")
_PERCENT = re.compile(r"%(?:25)*([0-9A-Fa-f]{2})")
# Shown as nothing: format characters (zero-width space and joiners, soft hyphen, word joiner,
# byte order mark, direction marks and isolates, tags), combining marks (accents, variation
# selectors, the grapheme joiner), controls, and the Hangul fillers (letters that show as blanks).
_INVISIBLE_CATEGORIES = frozenset(("Cf", "Mn", "Me", "Cc", "Zl", "Zp"))  # and U+2028, U+2029: line breaks
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0")
_SHOWN_AS: dict[str, str] = {}  # character -> what it shows as, for every character met so far


def _shown(char: str) -> str:
    """What a character shows as: "" for one that shows as nothing, else its NFKC form (full-width
    and mathematical letters, ligatures: what a reader sees as the ASCII they stand for)."""
    shown = _SHOWN_AS.get(char)
    if shown is None:
        if char in "\r\n" or " " <= char <= "~":
            shown = char
        elif unicodedata.category(char) in _INVISIBLE_CATEGORIES or char in _FILLERS:
            shown = ""
        else:
            shown = unicodedata.normalize("NFKC", char)
        if len(_SHOWN_AS) >= _CACHE:
            _SHOWN_AS.clear()
        _SHOWN_AS[char] = shown
    return shown


_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_CONTROL = {"t": "\t", "b": "\b", "f": "\f"}
_CACHE = 100_000  # distinct strings remembered by values(); a backfill's pipelines share a Redactor
# Pieces of events' JSON remembered clean by might_hold_json. What repeats (the producer, schema
# URLs, names) is a few hundred pieces, found again at once after a clear; the rest (ids, times) is
# unique to its event: at 100,000 the set held 74,000 pieces, about 9.7 MB, at 10,000 jobs.
_CLEAN_PIECES = 10_000


class _Where:
    """Where each piece of a view came from: a run of text as is, or one decoded escape."""

    def __init__(self) -> None:
        self.view_starts: list[int] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.literal: list[bool] = []

    def add(self, view_start: int, start: int, end: int, literal: bool) -> None:
        self.view_starts.append(view_start)
        self.starts.append(start)
        self.ends.append(end)
        self.literal.append(literal)

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The text's span behind the view's [start, end): escapes whole, the dropped line breaks
        inside it included."""
        i = bisect_right(self.view_starts, start) - 1
        first = self.starts[i] + (start - self.view_starts[i]) if self.literal[i] else self.starts[i]
        j = bisect_right(self.view_starts, end - 1) - 1
        last = self.starts[j] + (end - self.view_starts[j]) if self.literal[j] else self.ends[j]
        return first, last


def _fold(text: str) -> str:
    lower = text.lower()
    if len(lower) != len(text):
        lower = text.translate(_ASCII_LOWER)
    return lower.replace("-", "+").replace("_", "/")


def _decoded(match: re.Match) -> str:
    """One escape's character ("" for what the view drops); percent runs go through _percent."""
    found = match.groupdict()
    number = found["unicode"] or found["hexref"]
    if number is not None or found["decref"] is not None:
        code = int(number, 16) if number is not None else int(found["decref"])
        decoded = chr(code) if code < 0x110000 else "\ufffd"
        return decoded  # an encoded line break (%0D%0A) is dropped as a real one: it breaks a base64 too
    if found["itself"] is not None:
        return found["itself"]
    if found["control"] is not None:
        return _CONTROL[found["control"]]
    if found["named"] is not None:
        return _NAMED[found["named"]]
    return ""  # a line break


def _percent(match: re.Match) -> list[tuple[str, int, int]]:
    """A run of percent-escapes as characters, each with the span of the escapes behind it: UTF-8
    when the bytes are UTF-8 (a name escaped only where it is not ASCII), else byte for byte."""
    escapes = [(int(m.group(1), 16), m.start(), m.end()) for m in _PERCENT.finditer(match.group(0))]
    base = match.start()
    data = bytes(byte for byte, _, _ in escapes)
    try:
        text = data.decode("utf-8") if max(data) >= 0x80 else data.decode("ascii")
    except UnicodeDecodeError:
        return [(chr(byte), base + start, base + end) for byte, start, end in escapes]
    pieces, index = [], 0
    for char in text:
        size = len(char.encode("utf-8"))
        pieces.append((char, base + escapes[index][1], base + escapes[index + size - 1][2]))
        index += size
    return pieces


# A text of ASCII without these is its own view, folded. A class searched by re (a scan at C speed),
# not a set each character of the text is looked up in: every event's JSON passes here.
_NOT_PLAIN = re.compile("[%\\\\&\r\n\t" + _CONTROLS + "]")


def _only_breaks(text: str) -> bool:
    """Whether _ESCAPE matches nothing in the text but line breaks (False: it may)."""
    if "\\" in text:
        return False
    if "%" in text and _MAYBE_PERCENT.search(text):
        return False
    if "&" in text and _MAYBE_REFERENCE.search(text):
        return False
    if _MAYBE_CONTROL.search(text):
        return False
    return text.isascii() or all(_shown(char) == char for char in set(text) if not char.isascii())


# known() maps a view back only when a form is in it, which is rare: a view whose map is left to
# be made then is returned with this in place of it.
_LATER = _Where()


def _views(text: str, later: bool = False) -> list[tuple[str, _Where | None]]:
    """The views of the text a form is searched in, each with its map (see _view): the view; when
    it still holds escapes, the view of that view too. One escaping inside another is read so: a
    JSON escape in a percent-encoded value (%5Cu0035) is an escape only once the percent-escapes
    are read. Both are searched: the second alone would read escapes that dropping a line break
    made ("100%" at a line's end, "01..." on the next). And when the text holds a terminal's
    escape sequences, its view without them whole (the view drops an ESC alone: ESC E is a line
    break to a terminal, or an ESC before the secret's E)."""
    view, where = _view(text, later)
    views = [(view, where)]
    if where is not None and not _only_breaks(view):
        if where is _LATER:  # escapes that only a dropped line break cut: the map is needed now
            where = _view(text)[1]
            views = [(view, where)]
        inner, inner_where = _view(view)
        views.append((inner, _Within(where, inner_where)))
    if "\x1b" in text or "\x9b" in text:
        plain, plain_where = _without_sequences(text)
        shown, shown_where = _view(plain)
        views.append((shown, _Within(plain_where, shown_where)))
    return views


# A terminal's escape sequences: CSI (colours, cursor moves; also as the one C1 character), OSC
# (titles, links) to its end on the line, a character set's designation, and ESC with one more.
_SEQUENCE = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)"
                       r"|\x1b[()*+][ -~]|\x1b[ -~]")


def _without_sequences(text: str) -> tuple[str, _Where]:
    pieces: list[str] = []
    where = _Where()
    done = size = 0
    for match in _SEQUENCE.finditer(text):
        if match.start() > done:
            pieces.append(text[done:match.start()])
            where.add(size, done, match.start(), True)
            size += match.start() - done
        done = match.end()
    if done < len(text) or not where.starts:
        pieces.append(text[done:])
        where.add(size, done, len(text), True)
    return "".join(pieces), where


class _Within(_Where):
    """The map of a view of a view: through the inner map, then the outer."""

    def __init__(self, outer: _Where | None, inner: _Where | None) -> None:
        super().__init__()
        self.outer, self.inner = outer, inner

    def original(self, start: int, end: int) -> tuple[int, int]:
        if self.inner is not None:
            start, end = self.inner.original(start, end)
        return self.outer.original(start, end) if self.outer is not None else (start, end)


def _view(text: str, later: bool = False) -> tuple[str, _Where | None]:
    """The text as the known forms are searched in, and how to map it back (None: position for
    position; with `later`, _LATER: call again without it for the map, of the same view)."""
    if text.isascii() and not _NOT_PLAIN.search(text):
        return _fold(text), None
    if later and _only_breaks(text):
        view = _BREAKS.sub("", text)
        return _fold(view), None if len(view) == len(text) else _LATER
    pieces: list[str] = []
    where = _Where()
    done = size = 0
    for match in _ESCAPE.finditer(text):
        start, end = match.span()
        if start > done:
            pieces.append(text[done:start])
            where.add(size, done, start, True)
            size += start - done
        run = match.group("shown")
        if run is not None:
            shown = [_shown(char) for char in run]
            if all(map(str.__eq__, shown, run)):  # shown as written (most non-ASCII text)
                pieces.append(run)
                where.add(size, start, end, True)
                size += len(run)
                done = end
                continue
            decoded = [(char, start + i, start + i + 1) for i, char in enumerate(shown)]
        elif match.group("percent"):
            decoded = [("".join(map(_shown, char)), first, last) for char, first, last in _percent(match)]
        else:
            decoded = [("".join(map(_shown, _decoded(match))), start, end)]
        for char, first, last in decoded:
            if char and char not in "\r\n":
                pieces.append(char)
                where.add(size, first, last, False)
                size += len(char)
        done = end
    if done < len(text):
        pieces.append(text[done:])
        where.add(size, done, len(text), True)
    if not where.starts:  # only what the view drops: nothing to map a match to
        where.add(0, 0, len(text), False)
    return _fold("".join(pieces)), where


def view_forms(secret: str) -> set[str]:
    """Every form the secret takes, as the view shows it: the secret (as is, and as the view reads
    it when it holds escapes of its own), its UTF-8 bytes one by one (each percent-encoded), its
    UTF-16 code units (JSON's \\uD83D\\uDE00), "+" for spaces (forms), the base64 cores of its
    UTF-8, UTF-16 LE and BE bytes and of its base64, and its hex (plain, spaced, colon-separated,
    \\x-escaped, and of its UTF-16 LE bytes)."""
    data = secret.encode("utf-8", "surrogatepass")
    units = secret.encode("utf-16-be", "surrogatepass")
    # Case changed after it got there (a GitLab slug, a shell's ${x^^}): "ß" upper-cases to "SS".
    plain = {secret, secret.upper(), secret.lower(), secret.replace(" ", "+"), data.decode("latin-1"),
             "".join(chr(int.from_bytes(units[i: i + 2], "big")) for i in range(0, len(units), 2))}
    # GitLab's slug of it (CI_COMMIT_REF_SLUG: lower case, every other character "-", 63 at most,
    # no "-" at either end), in a review app's URL, say; only while enough of the secret is left.
    slug = re.sub(r"[^a-z0-9]", "-", secret.lower())[:63].strip("-")
    if sum(c != "-" for c in slug) >= _SHORTEST_FORM:
        plain.add(slug)
    # Hex as dumps print it too: spaced (xxd -p -c1, od), colon-separated (fingerprints), \x-escaped
    # (Python's bytes, printf); and the hex of its UTF-16 LE bytes (Windows tools).
    derived = {data.hex(), data.hex(" "), data.hex(":"), "".join(f"\\x{b:02x}" for b in data),
               secret.encode("utf-16-le", "surrogatepass").hex()}
    for encoded in (data, secret.encode("utf-16-le", "surrogatepass"), secret.encode("utf-16-be", "surrogatepass")):
        derived.update(base64_cores(encoded))
    for core in base64_cores(data):
        # base64 inside base64: a Kubernetes secret's .dockerconfigjson holds docker's "auth".
        derived.update(base64_cores(core.encode("ascii")))
    forms = set()
    for form in plain | {f for f in derived if len(f) >= _SHORTEST_FORM}:
        forms.add(_fold(form))
        forms.update(view for view, _ in _views(form))
        forms.add(form.translate(_ASCII_LOWER).replace("-", "+").replace("_", "/"))
    return {f for f in forms if len(f) >= 4}


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
