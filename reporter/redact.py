"""Masking of secrets in any text that leaves the reporter: logs, errors, events."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[MASKED]"

# GitLab's token prefixes (docs: "Token prefixes"); the body is at least 16 characters so that
# ordinary words such as "glibc-2.36" are left alone.
_GITLAB_TOKEN = re.compile(
    r"\b(?:glpat|gloas|gldt|glrt|glrtr|glcbt|glptt|glft|glimt|glagent|glsoat|glffct|glwt|glsa|gltst)"
    r"-[A-Za-z0-9_\-.]{16,}"
)
# Credentials in HTTP headers as they appear in debug output and curl -v.
_HEADER = re.compile(
    r"(?i)\b(authorization|private-token|job-token|x-api-key)(\s*[:=]\s*)(?:(bearer|basic|token)\s+)?([^\s'\"]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9_\-.=:/+]{8,})")
# user:password@ in URLs; the user name is kept, it helps and is not secret.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]+:)([^@\s/]+)(@)")


class Redactor:
    """Masks the given secrets and every well-known token shape."""

    def __init__(self, secrets: Iterable[str | None] = ()):
        # Longest first so that a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        text = _GITLAB_TOKEN.sub(MASK, text)
        text = _HEADER.sub(lambda m: f"{m[1]}{m[2]}{m[3] + ' ' if m[3] else ''}{MASK}", text)
        text = _BEARER.sub(lambda m: f"{m[1]}{MASK}", text)
        text = _URL_PASSWORD.sub(lambda m: f"{m[1]}{MASK}{m[3]}", text)
        return text
