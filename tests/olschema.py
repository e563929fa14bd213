"""Validation of emitted events against the OpenLineage spec (JSON Schema 2020-12).

The spec is read from ../shared/openlineage-spec or the folder OPENLINEAGE_SPEC_DIR names; it is
not copied into this repository. Without it the schema tests skip and say how to get it, unless
REQUIRE_OPENLINEAGE_SPEC=1 (as .ci/run sets), where a missing spec is an error.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OUR_SCHEMAS = REPO / "reporter" / "schemas"
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def spec_dir() -> Path | None:
    candidates = [os.environ.get("OPENLINEAGE_SPEC_DIR"), REPO.parent / "shared" / "openlineage-spec"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "OpenLineage.json").is_file():
            return Path(candidate)
    return None


def require_spec() -> Path:
    found = spec_dir()
    if found is None:
        message = ("OpenLineage JSON schemas not found: set OPENLINEAGE_SPEC_DIR to a folder with "
                   "OpenLineage.json and the facet schemas (the spec/ and spec/facets/ files of "
                   "github.com/OpenLineage/OpenLineage, flattened into one folder)")
        if os.environ.get("REQUIRE_OPENLINEAGE_SPEC") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


@lru_cache(maxsize=None)
def _registry(folder: str):
    from referencing import Registry, Resource

    resources = []
    for path in [*Path(folder).glob("*.json"), *OUR_SCHEMAS.glob("*.json")]:
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


def _validator(ref: str):
    from jsonschema import Draft202012Validator, FormatChecker

    registry = _registry(str(require_spec()))
    return Draft202012Validator({"$ref": ref}, registry=registry, format_checker=FormatChecker())


def errors(event: dict) -> list[str]:
    """Every schema error of one event: the event itself, then each facet against its own _schemaURL."""
    found = [f"event: {e.message} at {list(e.absolute_path)}" for e in _validator(RUN_EVENT).iter_errors(event)]
    facet_maps = [("run", event.get("run", {}).get("facets", {})), ("job", event.get("job", {}).get("facets", {}))]
    for level, facets in facet_maps:
        for key, facet in facets.items():
            url = facet.get("_schemaURL", "")
            base, _, pointer = url.partition("#")
            try:
                document = _registry(str(require_spec())).contents(base)
            except Exception:
                found.append(f"{level} facet {key}: _schemaURL {url!r} is not a known schema")
                continue
            # The facet's key must be the one its schema declares (e.g. "parent" for ParentRunFacet).
            declared = document.get("properties", {})
            if key not in declared:
                found.append(f"{level} facet {key}: its schema declares {sorted(declared)} instead")
            for error in _validator(url).iter_errors(facet):
                found.append(f"{level} facet {key}: {error.message}")
            if not pointer:
                found.append(f"{level} facet {key}: _schemaURL has no #/$defs/ pointer")
    return found


def assert_valid(events: list[dict]) -> None:
    problems = [f"{i}: {p}" for i, event in enumerate(events) for p in errors(event)]
    assert not problems, "\n".join(problems[:20])
