"""What went wrong reading GitLab: one error type for every read, and one table that turns it into
the line a user reads (a read the report needs) or the few words of a note (a read it can do
without: a failed job's log, the test report, a downstream pipeline)."""

from __future__ import annotations

from dataclasses import dataclass

from reporter.errors import GitLabError
from reporter.wire import NOT_TLS

# The kinds of failure a read can end with.
REFUSED = "refused"  # GitLab answered with an HTTP error status
NOT_API = "not-api"  # an answer that is not GitLab's API JSON (an HTML page, another type, too large)
SLOW = "slow"  # no complete answer within the read's bound or the command's budget
THROTTLED = "throttled"  # rate-limited, and the wait asked for ends past the time left
TLS = "tls"  # GitLab's certificate was refused
FOREIGN = "foreign"  # a redirect or link away from GitLab's origin, not followed
UNRESOLVED = "unresolved"  # GitLab's host name does not resolve (DNS)
UNREACHABLE = "unreachable"  # no answer: refused, reset, timed out
PROXY = "proxy"  # the proxy of HTTP(S)_PROXY could not be reached or refused the connection


@dataclass
class ReadError(Exception):
    """One GitLab read that failed: the path asked (no query), the answer's status and content type
    where there was one, the kind of failure and its detail (the problem, the seconds ...)."""

    path: str
    kind: str
    status: int = 0
    content_type: str = ""
    detail: str = ""
    seconds: float = 0.0
    limit: str = ""  # the budget that ran out (e.g. --gitlab-timeout), when it was that

    def __post_init__(self) -> None:
        super().__init__(self.kind, self.path, self.status, self.detail)

    def __str__(self) -> str:
        return why(self)


@dataclass(frozen=True)
class Context:
    """What a message names: what was being read, which token, where GitLab's URL came from."""

    what: str
    token_kind: str = "GITLAB_TOKEN"  # the token's source (GITLAB_TOKEN, --gitlab-token) or "CI_JOB_TOKEN"
    url_source: str = "GITLAB_URL"
    missing: str = ""  # what a 404 says GitLab has not, when it is not `what` (a listing's project)


def _fix(context: Context) -> str:
    if context.token_kind == "CI_JOB_TOKEN":
        return "set GITLAB_TOKEN to a token with read_api"
    return "the token needs the read_api scope and at least Reporter access to the project"


# kind (or kind:status) -> (the one-line message, the note's few words). Fields: {what} {asked}
# {status} {type} {detail} {seconds} {token_kind} {fix} {url} {limit}.
_TABLE: dict[str, tuple[str, str]] = {
    f"{REFUSED}:401": ("GitLab refused the {token_kind} (401) while reading {what}: {renew}.", "GitLab answered 401"),
    f"{REFUSED}:403": ("GitLab forbade reading {what} (403){asked}: {fix}.", "GitLab answered 403"),
    f"{REFUSED}:404": ("GitLab has no {missing} (404){asked}, or the {token_kind} may not see it: check the project "
                       "and pipeline ids ({fix}){prefix}.", "GitLab answered 404"),
    # GitLab ignores a CI_JOB_TOKEN on every route but a pipeline's job list (and /job): the request
    # is then anonymous, so a private project answers 404 "Project Not Found", a log 401.
    f"{REFUSED}:job-token": ("GitLab does not take a CI_JOB_TOKEN on GET {path} (only a pipeline's job list is open "
                             "to it), so it answered {status} as to an anonymous caller while reading {what}: set "
                             "GITLAB_TOKEN to a token with read_api.", "a CI_JOB_TOKEN may not read it ({status})"),
    REFUSED: ("GitLab answered {status} ({type}) while reading {what}{asked}; try again later{html}.",
              "GitLab answered {status}"),
    NOT_API: ("While reading {what}: GitLab's answer to GET {path} (HTTP {status}, {type}) {detail}. That is not "
              "GitLab's API answering: check {url} (GitLab's own address, without /api/v4) and any proxy in between.",
              "GitLab answered HTTP {status}, {type}, which {detail}"),
    SLOW: ("GitLab did not finish answering{asked} within {seconds:g} s{limit} while reading {what} (a slow or "
           "stalled server); nothing was sent. Try again later.",
           "GitLab sent it too slowly, cut after {seconds:g} s{limit}"),
    THROTTLED: ("While reading {what}{asked}: {detail}; raise --gitlab-timeout, or send it later with resend.",
                "{detail}"),
    TLS: ("GitLab's TLS certificate was not accepted ({detail}) while reading {what}: set CI_SERVER_TLS_CA_FILE "
          "to the PEM file of the CA that signed it.", "TLS certificate not accepted ({detail})"),
    f"{TLS}:plain": ("While reading {what}: {url} is https://, but {detail}: check its scheme (http:// or "
                     "https://).", "{detail}"),
    FOREIGN: ("While reading {what}{asked}: {detail}.", "GitLab redirected it away from its own address; not followed"),
    UNRESOLVED: ("GitLab's host name does not resolve (DNS) while reading {what}: check {url}.",
                 "GitLab's host name does not resolve (DNS)"),
    UNREACHABLE: ("Could not reach GitLab while reading {what}{asked}: {detail}. Check {url} and the network.",
                  "GitLab could not be reached ({detail})"),
    PROXY: ("Could not reach GitLab through the proxy while reading {what}{asked}: the proxy could not be reached "
            "or refused the connection. Check {detail}.",
            "GitLab's proxy could not be reached or refused the connection"),
}


def _renew(token_kind: str) -> str:
    if token_kind == "CI_JOB_TOKEN":
        return "a CI_JOB_TOKEN is valid only while its job runs; outside it, set GITLAB_TOKEN to a token with read_api"
    return f"check that {token_kind} is valid and not expired"


def _prefix(error: ReadError, url_source: str) -> str:
    """A GitLab URL with a path (a project's page pasted as GitLab's address) makes every path 404."""
    before = error.path.split("/api/v4/", 1)[0] if "/api/v4/" in error.path else ""
    if not before:
        return ""
    return (f"; {url_source} has the path {before}: unless GitLab is installed under it, set {url_source} to "
            "GitLab's own address, without a project's path")


def _fields(error: ReadError, context: Context | None) -> dict[str, object]:
    token_kind = context.token_kind if context else "GITLAB_TOKEN"
    url_source = context.url_source if context else "GITLAB_URL"
    html = "json" not in error.content_type.lower() and "html" in error.content_type.lower()
    return {
        "missing": (context.missing or context.what) if context else "", "renew": _renew(token_kind),
        "prefix": _prefix(error, url_source),
        "html": (f" (an HTML page, not GitLab's API: if it lasts, check {url_source} and any proxy in between)"
                 if html else ""),
        "what": context.what if context else "", "asked": f" (GET {error.path})" if error.path else "",
        "path": error.path, "status": error.status, "type": error.content_type or "no content type",
        "detail": error.detail, "seconds": error.seconds, "limit": f" ({error.limit})" if error.limit else "",
        "token_kind": token_kind, "fix": _fix(context or Context("")), "url": url_source,
    }


def _off_job_token_routes(error: ReadError, context: Context | None) -> bool:
    return bool(context and context.token_kind == "CI_JOB_TOKEN" and error.kind == REFUSED
                and error.status in (401, 404) and not error.path.endswith(("/jobs", "/job")))


def _entry(error: ReadError, context: Context | None = None) -> tuple[str, str]:
    if _off_job_token_routes(error, context):
        return _TABLE[f"{REFUSED}:job-token"]
    if error.kind == TLS and error.detail == NOT_TLS:
        return _TABLE[f"{TLS}:plain"]
    return _TABLE.get(f"{error.kind}:{error.status}") or _TABLE[error.kind]


def message(error: ReadError, context: Context) -> GitLabError:
    """The one line for a read the report cannot do without."""
    return GitLabError(_entry(error, context)[0].format(**_fields(error, context)))


def why(error: ReadError) -> str:
    """Why an optional read failed, in a few words for the summary."""
    return _entry(error)[1].format(**_fields(error, None))
