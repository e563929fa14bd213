"""Where events go: the `Target` protocol, what a delivery to one did (`Outcome`), how long it may
take (`Bounds`), and the one registry of targets: their names, as --target, DATABAND_TARGETS, the
kept files and their resend commands spell them, and how each is built from the settings.

Light on purpose (neither requests nor openlineage-python): the settings and the CLI's --help import
it. Each builder imports its target's module only when it is called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from reporter.errors import ConfigError
from reporter.retry import POLICY, RetryPolicy

if TYPE_CHECKING:
    from reporter.settings import Settings

Say = Callable[[str], None]  # told a line for the job log (a retry, a part acknowledged)


@dataclass(frozen=True)
class Bounds:
    """How long delivering to one target may take.

    `retry`: the one retry policy (reporter.retry); its `budget` counts from the start of the
    target's delivery: no attempt starts and no wait ends past it. `attempt`: the wall clock of one
    request, however slowly the answer trickles in. `connect` and `read`: the socket timeouts.
    Worst case for Databand: budget + attempt = 80 + 35 s, whatever the server does.
    """

    retry: RetryPolicy = POLICY
    attempt: float = 35.0
    connect: float = 5.0
    read: float = 30.0


BOUNDS = Bounds()  # the documented bounds


@dataclass
class Outcome:
    """What a target accepted, for the summary."""

    name: str  # the target's name ("output" for --output's file)
    where: str  # where the events went, without any secret
    sent: int = 0  # documents accepted
    requests: int = 0
    runs: int | None = None  # set when a run takes several documents (a START and its end)


class Target(Protocol):
    """Where events go. `send` returns what was accepted, or raises DeliveryError holding exactly
    the events not accepted (with the root run's). Any other exception is a failure of the whole
    send: every event is kept."""

    name: str

    def send(self, events: Sequence[dict]) -> Outcome: ...


@dataclass(frozen=True)
class Kind:
    name: str  # as --target names it
    title: str  # as the summary names it
    build: Callable[[Settings, Say | None], Target]


def _verify(settings: Settings) -> bool | str:
    # CI_SERVER_TLS_CA_FILE is GitLab's CA only: the targets get their own, or the system's.
    return False if settings.insecure else (settings.databand_ca_file or True)


def _databand(settings: Settings, say: Say | None) -> Target:
    from reporter.databand import Databand

    url, token = settings.databand()
    return Databand(url, token, verify=_verify(settings), bounds=settings.delivery_bounds, say=say,
                    setting=settings.source("databand_url"))


def _transports(name: str):
    try:
        from reporter import transports  # needs the optional openlineage-python
    except ImportError:
        raise ConfigError(f"--target {name} needs openlineage-python: pip install "
                          "'databand-gitlab-reporter[openlineage]'.") from None
    return transports


def _openlineage(settings: Settings, say: Say | None) -> Target:
    return _transports("openlineage").OpenLineageHttp(settings.openlineage, verify=_verify(settings),
                                                      bounds=settings.delivery_bounds)


def _file(settings: Settings, say: Say | None) -> Target:
    return _transports("file").LifecycleFile(settings.target_file or "openlineage-events.ndjson")


def _console(settings: Settings, say: Say | None) -> Target:
    return _transports("console").Console()


KINDS: tuple[Kind, ...] = (
    Kind("databand", "Databand", _databand),
    Kind("openlineage", "OpenLineage", _openlineage),
    Kind("file", "OpenLineage file", _file),
    Kind("console", "OpenLineage console", _console),
)
NAMES: tuple[str, ...] = tuple(kind.name for kind in KINDS)
_BY_NAME = {kind.name: kind for kind in KINDS}


def title(names: Sequence[str]) -> str:
    """The targets as the summary's title names them: "Databand", "OpenLineage file" ..."""
    return " + ".join(_BY_NAME[name].title if name in _BY_NAME else name for name in dict.fromkeys(names))


def make_targets(settings: Settings, say: Say | None = None) -> list[Target]:
    """The targets the settings choose, built (and so checked) before anything is sent. `say` hears
    a line per retry (the CLI prints it, so that a wrong host shows in seconds)."""
    if settings.dry_run:
        return []
    chosen: list[Target] = []
    for name in dict.fromkeys(settings.targets):
        kind = _BY_NAME.get(name)
        if kind is None:
            raise ConfigError(f"Unknown target {name!r}: use {', '.join(NAMES)}.")
        chosen.append(kind.build(settings, say))
    return chosen
