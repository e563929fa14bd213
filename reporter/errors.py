"""The errors a user can cause or meet, each with its own exit code (documented in the README)."""


class ReporterError(Exception):
    """A failure to tell the user in one line; never carries a secret."""

    exit_code = 1


class ConfigError(ReporterError):
    """A setting is missing or malformed: the user fixes a variable or a flag."""

    exit_code = 2


class GitLabError(ReporterError):
    """GitLab refused or could not be read."""

    exit_code = 3


class DeliveryError(ReporterError):
    """Databand (or another target) did not accept every event; the unsent ones are kept."""

    exit_code = 4

    def __init__(self, message: str, unsent: list[dict] | None = None, kept_at: str | None = None):
        super().__init__(message)
        self.unsent = unsent or []
        self.kept_at = kept_at
        self.target = "databand"


class Interrupted(BaseException):
    """SIGTERM or SIGINT: stop waiting now. A BaseException, so that no `except Exception` of a
    library swallows it. Delivery fills in what was not acknowledged and where it was kept."""

    def __init__(self, signum: int, name: str):
        super().__init__(name)
        self.signum = signum
        self.name = name
        self.unsent: list[dict] | None = None  # of the target being sent to, when it was
        self.kept: list[tuple[str, str]] = []  # (target, file) for every target with events left
        self.lost: list[str] = []  # why events of a target could not be kept
