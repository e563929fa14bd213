"""GitLab's own response schemas (the ones its request specs use), read from
../shared/gitlab-api-schemas or the folder GITLAB_API_SCHEMAS_DIR names; never copied here.

They are stale in places, so the patches that ../shared/gitlab-api-schemas/SOURCES.txt lists are
made here, in memory, each with the GitLab source that shows it. Without the folder the tests
skip and say how to get it, unless REQUIRE_GITLAB_SCHEMAS=1 (as .ci/run sets).
"""

from __future__ import annotations

import copy
import json
import os
from functools import lru_cache
from pathlib import Path

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

REPO = Path(__file__).resolve().parent.parent
V4 = "spec/fixtures/api/schemas/public_api/v4"
BASE = "https://gitlab.example/schemas/"


def schemas_dir() -> Path | None:
    for candidate in (os.environ.get("GITLAB_API_SCHEMAS_DIR"), REPO.parent / "shared" / "gitlab-api-schemas"):
        if candidate and (Path(candidate) / V4 / "job.json").is_file():
            return Path(candidate)
    return None


def require() -> Path:
    found = schemas_dir()
    if found is None:
        message = ("GitLab's response schemas not found: set GITLAB_API_SCHEMAS_DIR to a folder holding "
                   f"{V4}/job.json and the others (GitLab's spec/fixtures/api/schemas tree)")
        if os.environ.get("REQUIRE_GITLAB_SCHEMAS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _patched(relative: str, schema: dict) -> dict:
    schema = copy.deepcopy(schema)
    if relative == f"{V4}/job.json":
        # lib/api/entities/ci/job_basic.rb exposes failure_reason on failed jobs; the schema predates it.
        schema["properties"]["failure_reason"] = {"type": "string"}
        # The schema puts the flag straight under "project", which checks nothing: wrap it.
        schema["properties"]["project"] = {
            "type": "object", "additionalProperties": False,
            "properties": {"ci_job_token_scope_enabled": {"type": "boolean"}},
            "required": ["ci_job_token_scope_enabled"],
        }
    if relative == f"{V4}/runner.json":
        # lib/api/entities/ci/runner.rb exposes paused and runner_type and sends ip_address: null.
        schema["properties"]["paused"] = {"type": "boolean"}
        schema["properties"]["runner_type"] = {"type": "string"}
        schema["properties"]["ip_address"] = {"type": ["string", "null"]}
    return schema


@lru_cache(maxsize=1)
def _registry() -> Registry:
    root = require()
    registry: Registry = Registry()
    for path in sorted((root / "spec/fixtures/api/schemas").rglob("*.json")):
        relative = path.relative_to(root).as_posix()
        contents = _patched(relative, json.loads(path.read_text()))
        registry = registry.with_resource(BASE + relative, Resource.from_contents(contents, default_specification=DRAFT7))
    return registry


def errors(kind: str, value: object) -> list[str]:
    """What GitLab's schema for `kind` (a path under public_api/v4 without .json) finds wrong."""
    validator = Draft7Validator({"$ref": f"{BASE}{V4}/{kind}.json"}, registry=_registry())
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(value)]


_REF_TYPES = {"object"}


def property_types(kind: str) -> dict[str, set[str]]:
    """The JSON types GitLab's schema for `kind` allows each top-level property ("integer",
    "string", "null", "object" ...), for tests that inject a type it does not allow."""
    from urllib.parse import urljoin

    def properties(url: str) -> dict:
        schema = _registry().contents(url)
        found = dict(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            found.update(properties(urljoin(url, part["$ref"])) if "$ref" in part else part.get("properties", {}))
        return found

    def types(schema: dict) -> set[str]:
        if "type" in schema:
            named = schema["type"]
            found = {named} if isinstance(named, str) else set(named)
            return found | ({"number"} if "integer" in found else set())  # 1 is a number too
        if "$ref" in schema:
            return set(_REF_TYPES)
        return set().union(*(types(s) for s in schema.get("oneOf", []) + schema.get("anyOf", [])))

    return {name: types(schema) for name, schema in properties(f"{BASE}{V4}/{kind}.json").items()
            if isinstance(schema, dict) and types(schema)}
