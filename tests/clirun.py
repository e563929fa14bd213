"""Running the CLI in-process against the stand-ins, as the fault and hostile-server tests do."""

from __future__ import annotations

import time

from click.testing import CliRunner

from reporter.cli import cli
from reporter.retry import POLICY
from reporter.targets import Bounds

# The documented bounds are tens of seconds; the behaviour is the same with a few. Given to the CLI
# as settings without a flag (click's obj), never by patching the modules.
QUICK = Bounds(retry=POLICY.with_budget(2).faster(0.1), attempt=1)


def quick(bounds: Bounds = QUICK) -> dict:
    """The CLI's obj that gives the settings these delivery bounds."""
    return {"delivery_bounds": bounds}


def env_for(gitlab, databand=None, **extra):
    env = {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token}
    if databand is not None:
        env.update(DATABAND_URL=databand.url, DATABAND_ACCESS_TOKEN=databand.token)
    env.update(extra)
    return env


def resend(env, *args, pipeline="9001", bounds: Bounds = QUICK):
    """`resend --project 42 --pipeline <pipeline>` with quick delivery bounds, timed: the result's
    `elapsed` is its wall time."""
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["resend", "--project", "42", "--pipeline", pipeline, *args], env=env,
                                catch_exceptions=False, obj=quick(bounds))
    result.elapsed = time.monotonic() - started
    return result
