"""Property: whatever GitLab answers, the report exits 0 (with a note when it had to leave something
out) or 3 with one line, never a traceback or exit 1.

The answers start as the stand-in serves them (checked against GitLab's own schemas by
tests/test_gitlab_schemas.py); each example then injects faults into one endpoint's answer: a
field given a type GitLab's schema does not allow it (tests/gitlabschema.py says which), null,
removed, wrapped a level deeper, made huge, or a lone surrogate; or the whole body made JSON
nested past the parser's depth, cut short, a number of 5,000 digits, invalid UTF-8, an HTML page or
a gzip body of zeros that expands a thousandfold. Served by real servers on 127.0.0.1.

Budget (`ci` profile, fixed seed): 40 examples, about 25 s on a quiet machine; `long`: 400.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import gitlabschema
import pipelines
import pytest
import requests
from click.testing import CliRunner
from clirun import env_for, quick
from fuzzing import examples
from hostile import HostileGitLab, answer, compressed_zeros, deep_json
from hypothesis import given, settings
from hypothesis import strategies as st
from standins import DatabandStandIn

from reporter.cli import cli
from reporter.retry import POLICY
from reporter.targets import Bounds

BASE = "/api/v4/projects/42/pipelines/9001"
# endpoint -> (the rule's path pattern, what GitLab's schema calls one of its objects, or None)
ENDPOINTS = {
    "pipeline": (r"/pipelines/9001$", "pipeline/detail"),
    "jobs": (r"/pipelines/9001/jobs\?", "job"),
    "bridges": (r"/pipelines/9001/bridges\?", None),  # GitLab has no schema for bridges
    "test_report_summary": (r"/pipelines/9001/test_report_summary", None),
    "test_report": (r"/pipelines/9001/test_report$", None),
    "trace": (r"/jobs/106/trace", None),  # the failed job's log
}
SUITES = [{"name": "unit", "build_ids": [102], "test_cases": [
    {"name": "test_ok", "classname": "t", "status": "success", "execution_time": 0.1},
    {"name": "test_bad", "classname": "t", "status": "failed", "execution_time": 0.2, "system_output": "boom"},
]}]


@pytest.fixture(scope="module")
def served():
    gitlabschema.require()
    with HostileGitLab() as gitlab, DatabandStandIn() as databand:
        sample = pipelines.mixed(gitlab.url)
        sample.jobs[1]["artifacts"] = [{"file_type": "junit", "size": 10, "filename": "junit.xml",
                                        "file_format": "gzip"}]
        gitlab.add_pipeline(sample.project, sample.pipeline, sample.jobs, sample.bridges, sample.traces,
                            test_suites=SUITES)
        headers = {"PRIVATE-TOKEN": gitlab.token}
        query = {"include_retried": "true", "per_page": 100, "page": 1}
        original = {}
        for name in ENDPOINTS:
            path = "/api/v4/projects/42/jobs/106/trace" if name == "trace" else \
                BASE + ("" if name == "pipeline" else f"/{name}")
            response = requests.get(gitlab.url + path, headers=headers, timeout=10,
                                    params=query if name in ("jobs", "bridges") else None)
            original[name] = (response.content, {k: v for k, v in response.headers.items()
                                                 if k.startswith("X-") or k == "Content-Type"})
        yield gitlab, databand, original


FAST = POLICY.faster(0.01)
# Room for a huge answer's events on a loaded machine: a delivery cut short here would be the
# test's doing (exit 4), not GitLab's answer.
DELIVERY = Bounds(retry=POLICY.with_budget(30).faster(0.1), attempt=30)
JSON_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
text = st.text(max_size=20)  # lone surrogates come as faults of their own


def value_of(kind: str) -> st.SearchStrategy:
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "integer": st.one_of(st.integers(), st.just(10**40), st.just(-1)),
        "number": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(1e308)),
        "string": st.one_of(text, st.just("\udc80"), st.just("x" * 2_000_000)),
        "array": st.lists(st.one_of(st.none(), st.integers(), text, st.dictionaries(text, text, max_size=2)),
                          max_size=4),
        "object": st.dictionaries(text, st.one_of(st.none(), st.integers(), text), max_size=3),
    }[kind]


@st.composite
def field_fault(draw, item: dict, schema_kind: str | None):
    """One fault in one object: (what was done, the object after it)."""
    item = copy.deepcopy(item)
    allowed = gitlabschema.property_types(schema_kind) if schema_kind else {}
    name = draw(st.sampled_from(sorted(set(item) | set(allowed)) or ["id"]))
    how = draw(st.sampled_from(["wrong type", "null", "missing", "deeper", "huge", "surrogate", "inside"]))
    if how == "inside" and isinstance(item.get(name), dict) and item[name]:
        inner = draw(st.sampled_from(sorted(item[name])))
        item[name][inner] = draw(st.one_of(*(value_of(kind) for kind in JSON_TYPES)))
    elif how == "wrong type":
        current = allowed.get(name) or {_kind(item.get(name))}
        wrong = draw(st.sampled_from([kind for kind in JSON_TYPES if kind not in current]))
        item[name] = draw(value_of(wrong))
        if name in allowed:
            how = "a type the schema refuses:"
    elif how == "null":
        item[name] = None
    elif how == "missing":
        item.pop(name, None)
    elif how == "deeper":
        item[name] = draw(st.sampled_from([[item.get(name)], {"value": item.get(name)}]))
    elif how == "huge":
        item[name] = draw(st.sampled_from(["y" * 3_000_000, list(range(20_000)), 10**300]))
    else:
        item[name] = f"{item.get(name)}\udc80\ud800"
    return f"{how} {name}", item


def _kind(value: object) -> str:
    return {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string",
            list: "array", dict: "object"}[type(value)]


@st.composite
def faulty_answer(draw, original: dict):
    """(endpoint, what was done, body, headers) for one endpoint's answer with faults in it."""
    endpoint = draw(st.sampled_from(sorted(ENDPOINTS)))
    body, headers = original[endpoint]
    headers = dict(headers)
    whole = draw(st.sampled_from(["fields", "fields", "fields", "deep", "cut", "long number", "not utf-8",
                                  "html", "gzip bomb", "list for object"]))
    if whole == "fields" and endpoint != "trace":
        data = json.loads(body)
        done = []
        for _ in range(draw(st.integers(1, 3))):
            if isinstance(data, list) and data:
                index = draw(st.integers(0, len(data) - 1))
                what, data[index] = draw(field_fault(data[index], ENDPOINTS[endpoint][1]))
            elif isinstance(data, dict):
                what, data = draw(field_fault(data, ENDPOINTS[endpoint][1]))
            else:
                what = "empty"
            done.append(what)
        return endpoint, ", ".join(done), json.dumps(data).encode(), headers  # \udc80 goes as its escape
    if whole == "deep":
        return endpoint, whole, deep_json(100_000), headers
    if whole == "cut":
        return endpoint, whole, body[: draw(st.integers(0, max(len(body) - 1, 0)))], headers
    if whole == "long number":
        return endpoint, whole, b'[{"id": ' + b"7" * 5000 + b"}]", headers
    if whole == "not utf-8":
        return endpoint, whole, b'{"name": "\xff\xfe"}', headers
    if whole == "html":
        return endpoint, whole, b"<html><body>Sign in</body></html>", {**headers, "Content-Type": "text/html"}
    if whole == "gzip bomb":
        return endpoint, whole, compressed_zeros(2**20), {**headers, "Content-Encoding": "gzip"}
    return endpoint, whole, b"[]" if body.startswith(b"{") else b"{}", headers


@settings(max_examples=examples(40))
@given(data=st.data())
def test_any_gitlab_answer_gives_a_report_or_one_line(served, data):
    gitlab, databand, original = served
    endpoint, what, body, headers = data.draw(faulty_answer(original), label="fault")
    if what.startswith("a type the schema refuses"):
        # The fault really is one GitLab's schema refuses.
        served_json = json.loads(body)
        items = served_json if isinstance(served_json, list) else [served_json]
        assert any(gitlabschema.errors(ENDPOINTS[endpoint][1], item) for item in items), what
    with gitlab._lock:
        gitlab.rules.clear()
    content_type = headers.pop("Content-Type", "application/json")
    gitlab.on(ENDPOINTS[endpoint][0], answer(body, 200, content_type, headers))
    before = len(databand.payloads)
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "events.json"
        result = CliRunner().invoke(cli, ["resend", "--project", "42", "--pipeline", "9001", "--output", str(output)],
                                    env=env_for(gitlab, databand), obj={**quick(DELIVERY), "gitlab_policy": FAST})
        said = result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), (what, result.exception)
        assert "Traceback" not in said and "unexpected error" not in said, (what, said[-2000:])
        assert result.exit_code in (0, 3), (endpoint, what, result.exit_code, said[-2000:])
        if result.exit_code == 3:
            errors = [line for line in result.stderr.splitlines()
                      if line.startswith("databand-gitlab-reporter: error:")]
            assert len(errors) == 1 and "GitLab" in errors[0], (endpoint, what, said[-2000:])
            assert len(databand.payloads) == before
        else:
            events = json.loads(output.read_text(encoding="utf-8"))  # every byte encodes
            assert events and len(databand.payloads) == before + 1
