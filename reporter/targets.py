"""Where events go: the `Target` protocol, what a delivery to one did (`Outcome`), how long it may
take (`Bounds`), and the one registry of targets: their names, as --target, DATABAND_TARGETS, the
kept files and their resend commands spell them, and how each is built from the settings.

Light on purpose (neither requests nor openlineage-python): the settings and the CLI's --help import
it. Each builder imports its target's module only when it is called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from reporter.errors import ConfigError
from reporter.retry import POLICY, RetryPolicy

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
    module: str  # its module's build(name, settings, say) makes it; imported only when it is chosen
    extra: bool = False  # the module needs openlineage-python (the optional extra)


# The one list of targets. By module name, so that this module stays light and imports none of
# them: each imports this one.
KINDS: tuple[Kind, ...] = (
    Kind("databand", "Databand", "reporter.databand"),
    Kind("openlineage", "OpenLineage", "reporter.transports", extra=True),
    Kind("file", "OpenLineage file", "reporter.transports", extra=True),
    Kind("console", "OpenLineage console", "reporter.transports", extra=True),
)
NAMES: tuple[str, ...] = tuple(kind.name for kind in KINDS)
_BY_NAME = {kind.name: kind for kind in KINDS}


class Choice(Protocol):
    """What make_targets reads of the settings (reporter.settings.Settings); the builders read more."""

    @property
    def dry_run(self) -> bool: ...

    @property
    def targets(self) -> tuple[str, ...]: ...

    @property
    def progress(self) -> Say | None: ...


def title(names: Sequence[str]) -> str:
    """The targets as the summary's title names them: "Databand", "OpenLineage file" ..."""
    return " + ".join(_BY_NAME[name].title if name in _BY_NAME else name for name in dict.fromkeys(names))


def make_targets(settings: Choice) -> list[Target]:
    """The targets the settings choose, built (and so checked) before anything is sent. Their
    retries are told to settings.progress (the CLI prints each, so a wrong host shows in seconds)."""
    if settings.dry_run:
        return []
    chosen: list[Target] = []
    for name in dict.fromkeys(settings.targets):
        kind = _BY_NAME.get(name)
        if kind is None:
            raise ConfigError(f"Unknown target {name!r}: use {', '.join(NAMES)}.")
        try:
            module = importlib.import_module(kind.module)
        except ImportError:
            if not kind.extra:
                raise
            raise ConfigError(f"--target {name} needs openlineage-python: pip install "
                              "'databand-gitlab-reporter[openlineage]'.") from None
        chosen.append(module.build(name, settings))
    return chosen
