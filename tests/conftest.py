import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# The property tests' runs: `ci` (the default, and what CI runs) derandomised, so the examples are
# the same on every run and a failure is reproducible; `long` draws new examples each run, and the
# tests that scale their own budget (tests/budget.py) run more:
# HYPOTHESIS_PROFILE=long python -m pytest -q -n 2 tests/test_bad_input.py tests/test_file_properties.py
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True, suppress_health_check=_SLOW_OK)
settings.register_profile("long", derandomize=False, deadline=None, print_blob=True, max_examples=2000,
                          suppress_health_check=_SLOW_OK)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from standins import DatabandStandIn, GitLabStandIn  # noqa: E402

# Variables that would change what the reporter does; a developer's shell or a CI job may have them.
_OURS = ("GITLAB_", "DATABAND_", "CI_", "OPENLINEAGE_URL", "OPENLINEAGE_API_KEY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def pytest_collection_modifyitems(config, items):
    # A test that runs real pipelines asks for the gitlab-ci-local fixture: that is what marks it.
    for item in items:
        if "gitlab_ci_local" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.runner)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith(_OURS) or name == "CI":
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def gitlab():
    with GitLabStandIn() as server:
        yield server


@pytest.fixture
def databand():
    with DatabandStandIn() as server:
        yield server


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh working folder: where the reporter keeps unsent events by default."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
