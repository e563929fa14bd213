"""What went wrong reading GitLab: one error type for every read, and one table that turns it into
the line a user reads (a read the report needs) or the few words of a note (a read it can do
without: a failed job's log, the test report, a downstream pipeline)."""

from __future__ import annotations

from dataclasses import dataclass

from reporter.errors import GitLabError

# The kinds of failure a read can end with.
REFUSED = "refused"  # GitLab answered with an HTTP error status
NOT_API = "not-api"  # an answer that is not GitLab's API JSON (an HTML page, another type, too large)
SLOW = "slow"  # no complete answer within the read's bound or the command's budget
THROTTLED = "throttled"  # rate-limited, and the wait asked for ends past the time left
TLS = "tls"  # GitLab's certificate was refused
FOREIGN = "foreign"  # a redirect or link away from GitLab's origin, not followed
UNRESOLVED = "unresolved"  # GitLab's host name does not resolve (DNS)
UNREACHABLE = "unreachable"  # no answer: refused, reset, timed out


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
    token_kind: str = "token"  # "token" (GITLAB_TOKEN) or "CI_JOB_TOKEN"
    url_source: str = "GITLAB_URL"


def _fix(context: Context) -> str:
    if context.token_kind == "CI_JOB_TOKEN":
        return "set GITLAB_TOKEN to a token with read_api"
    return "the token needs the read_api scope and at least Reporter access to the project"


# kind (or kind:status) -> (the one-line message, the note's few words). Fields: {what} {asked}
# {status} {type} {detail} {seconds} {token_kind} {fix} {url} {limit}.
_TABLE: dict[str, tuple[str, str]] = {
    f"{REFUSED}:401": ("GitLab refused the {token_kind} (401) while reading {what}: check that GITLAB_TOKEN is "
                       "valid and not expired.", "GitLab answered 401"),
    f"{REFUSED}:403": ("GitLab forbade reading {what} (403){asked}: {fix}.", "GitLab answered 403"),
    f"{REFUSED}:404": ("GitLab has no {what} (404){asked}, or the {token_kind} may not see it: check the project "
                       "and pipeline ids ({fix}).", "GitLab answered 404"),
    REFUSED: ("GitLab answered {status} ({type}) while reading {what}{asked}; try again later.",
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
    FOREIGN: ("While reading {what}{asked}: {detail}.", "GitLab redirected it away from its own address; not followed"),
    UNRESOLVED: ("GitLab's host name does not resolve (DNS) while reading {what}: check {url}.",
                 "GitLab's host name does not resolve (DNS)"),
    UNREACHABLE: ("Could not reach GitLab while reading {what}{asked}: {detail}. Check {url} and the network.",
                  "GitLab could not be reached ({detail})"),
}


def _fields(error: ReadError, context: Context | None) -> dict[str, object]:
    return {
        "what": context.what if context else "", "asked": f" (GET {error.path})" if error.path else "",
        "path": error.path, "status": error.status, "type": error.content_type or "no content type",
        "detail": error.detail, "seconds": error.seconds, "limit": f" ({error.limit})" if error.limit else "",
        "token_kind": context.token_kind if context else "token", "fix": _fix(context or Context("")),
        "url": context.url_source if context else "GITLAB_URL",
    }


def _entry(error: ReadError) -> tuple[str, str]:
    return _TABLE.get(f"{error.kind}:{error.status}") or _TABLE[error.kind]


def message(error: ReadError, context: Context) -> GitLabError:
    """The one line for a read the report cannot do without."""
    return GitLabError(_entry(error)[0].format(**_fields(error, context)))


def why(error: ReadError) -> str:
    """Why an optional read failed, in a few words for the summary."""
    return _entry(error)[1].format(**_fields(error, None))
