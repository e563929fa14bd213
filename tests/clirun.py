"""Running the CLI in-process against the stand-ins, as the fault and hostile-server tests do."""

from __future__ import annotations

import time

from click.testing import CliRunner

from reporter.cli import cli


def env_for(gitlab, databand=None, **extra):
    env = {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token}
    if databand is not None:
        env.update(DATABAND_URL=databand.url, DATABAND_ACCESS_TOKEN=databand.token)
    env.update(extra)
    return env


def resend(env, *args, pipeline="9001"):
    """`resend --project 42 --pipeline <pipeline>`, timed: the result's `elapsed` is its wall time."""
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["resend", "--project", "42", "--pipeline", pipeline, *args], env=env,
                                catch_exceptions=False)
    result.elapsed = time.monotonic() - started
    return result
