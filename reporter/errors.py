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
    """A target did not accept every event. Raised by a target with exactly the events it did not
    accept (the root run's with them); the delivery keeps those in a file and goes on."""

    exit_code = 4

    def __init__(self, message: str, unsent: list[dict] | None = None):
        super().__init__(message)
        self.unsent = unsent or []
