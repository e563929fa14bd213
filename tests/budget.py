"""How many examples a property test tries: its CI budget, or twenty times that under the `long`
profile (HYPOTHESIS_PROFILE=long, tests/conftest.py), for a deeper search by hand. A test's own
max_examples wins over any profile, so the tests ask here instead of fixing a number."""

from __future__ import annotations

import os


def examples(ci: int) -> int:
    return ci * 20 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else ci
