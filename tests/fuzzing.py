"""What the fault-injection properties share: their budgets.

CI runs them with a fixed seed (the `ci` profile of tests/conftest.py) and the examples each test
names; a longer run, random seeds and ten times the examples, is

    HYPOTHESIS_PROFILE=long python -m pytest -q -n 2 tests/test_gitlab_fuzz.py tests/test_delivery_fuzz.py \
        tests/test_timing_fuzz.py

(docs/failure-modes.md says it too).
"""

from __future__ import annotations

import os


def examples(ci: int) -> int:
    """A property's number of examples: `ci` in CI, ten times as many with HYPOTHESIS_PROFILE=long."""
    return ci * 10 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else ci
