"""What the fault-injection properties share: their budgets.

CI runs them with a fixed seed (the `ci` profile of tests/conftest.py) and the examples each test
names; a longer run, random seeds and twenty times the examples, is

    HYPOTHESIS_PROFILE=long python -m pytest -q -n 2 tests/test_gitlab_fuzz.py tests/test_delivery_fuzz.py \
        tests/test_timing_fuzz.py

(docs/failure-modes.md says it too).
"""

from __future__ import annotations

from budget import examples  # noqa: F401  (re-exported: the properties ask here)
