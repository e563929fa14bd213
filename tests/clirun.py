"""Running the CLI in-process against the stand-ins, as the fault and hostile-server tests do."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
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


def real_tool(variable: str, tool: str, venv: str) -> Path:
    """The real consumer a test drives (dbt-ol, airflow), from the variable .ci/run sets: skipped
    without it, failed instead where REQUIRE_<variable>=1 (as in CI)."""
    found = os.environ.get(variable)
    if not found:
        if os.environ.get(f"REQUIRE_{variable}") == "1":
            pytest.fail(f"REQUIRE_{variable}=1 but {variable} (the path to {tool}) is not set")
        pytest.skip(f"{variable} is not set: .ci/run installs {tool} into {venv} and sets it")
    path = Path(found)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{variable}={found} is not an executable {tool}")
    return path
