"""Kept files and cursor files fuzzed (hypothesis, seed fixed by the ci profile): whatever a file
holds, `resend --from-file` exits 0 having sent it or 2 with one line having sent nothing, and a
backfill or sweep cursor is read or refused in one line before GitLab's pipelines are listed.
Never a traceback, never "unexpected error".

Budgets (examples a run under the ci profile; seconds measured on one core of a loaded 2-core
machine; twenty times the examples under HYPOTHESIS_PROFILE=long, see tests/budget.py): a real kept
file with one node replaced by any JSON value, 150 (5 s); a real kept file's bytes cut, spliced or
flipped, 100 (1.3 s); random JSON documents as a backfill or sweep cursor, 60 (0.5 s)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipelines
from budget import examples
from clirun import quick
from reporter.cli import cli
from standins import DatabandStandIn, GitLabStandIn

PROG = "databand-gitlab-reporter"
FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

# Any character, lone surrogates and controls included.
anything = st.characters(codec=None, categories=None)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(anything, max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(anything, max_size=8), inner,
                                                                            max_size=4)), max_leaves=12)


@pytest.fixture(scope="module")
def servers():
    with GitLabStandIn() as gitlab, DatabandStandIn() as databand:
        pipelines.mixed(gitlab.url).install(gitlab)
        env = {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token}
        printed = CliRunner().invoke(cli, ["resend", "--project", "42", "--pipeline", "9001", "--dry-run", "--json"],
                                     env=env, catch_exceptions=False)
        assert printed.exit_code == 0, printed.output
        yield _Servers(gitlab, databand, json.loads(printed.stdout))


class _Servers(tuple):
    def __new__(cls, *parts):
        return super().__new__(cls, parts)

    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing example
        return "servers"


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*path, index))


def _replaced(document, path, new):
    if not path:
        return new
    copy = json.loads(json.dumps(document))
    holder = copy
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = new
    return copy


def resend_file(path, databand, args):
    env = {"DATABAND_URL": databand.url, "DATABAND_ACCESS_TOKEN": databand.token}
    before = databand.requests_seen
    result = CliRunner().invoke(cli, ["resend", "--from-file", str(path), *args], env=env,
                                catch_exceptions=False, obj=quick())
    return result, databand.requests_seen - before


def assert_sent_or_refused_whole(result, sent):
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    if result.exit_code == 2:
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"{PROG}: error: ") and "nothing was sent" in line, line
        assert sent == 0
    else:
        assert result.exit_code == 0, result.output


TARGETS = st.sampled_from([["--dry-run"], ["--target", "databand", "--target", "console"]])


@settings(max_examples=examples(150), deadline=None, suppress_health_check=FIXTURES)
@given(data=st.data(), args=TARGETS)
def test_a_kept_file_with_any_value_anywhere_is_sent_or_refused_whole(servers, tmp_path, data, args):
    _, databand, events = servers
    every = list(_paths(events))
    path = data.draw(st.sampled_from(every), label="path")
    spoiled = _replaced(events, path, data.draw(json_values, label="value"))
    kept = tmp_path / "databand-unsent-9001-20261124T101500Z.json"
    kept.write_text(json.dumps(spoiled, ensure_ascii=True))  # \ud800 escapes where a surrogate is
    result, sent = resend_file(kept, databand, args)
    assert_sent_or_refused_whole(result, sent)


@settings(max_examples=examples(100), deadline=None, suppress_health_check=FIXTURES)
@given(data=st.data())
def test_a_kept_file_cut_or_spliced_anywhere_is_sent_or_refused_whole(servers, tmp_path, data):
    _, databand, events = servers
    raw = json.dumps(events).encode()
    at = data.draw(st.integers(0, len(raw)), label="at")
    how = data.draw(st.sampled_from(["cut", "splice", "flip"]), label="how")
    if how == "cut":
        raw = raw[:at]
    elif how == "splice":
        raw = raw[:at] + data.draw(st.binary(max_size=16), label="bytes") + raw[at:]
    elif at < len(raw):
        raw = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255), label="mask")]) + raw[at + 1:]
    kept = tmp_path / "databand-unsent-9001-20261124T101500Z.json"
    kept.write_bytes(raw)
    result, sent = resend_file(kept, databand, ["--target", "databand"])
    assert_sent_or_refused_whole(result, sent)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=FIXTURES)
@given(document=json_values, command=st.sampled_from(["backfill", "sweep"]))
def test_a_cursor_of_any_shape_is_read_or_refused_before_gitlab_lists(servers, tmp_path, document, command):
    gitlab, databand, _ = servers
    cursor = tmp_path / "cursor.json"
    cursor.write_text(json.dumps(document, ensure_ascii=True))
    env = {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "DATABAND_URL": databand.url,
           "DATABAND_ACCESS_TOKEN": databand.token}
    args = ["resend", "--project", "42", "--since", "2099-01-01"] if command == "backfill" else \
        ["sweep", "--project", "42", "--hours", "1"]  # nothing to list: the cursor is what is tried
    gitlab.requests.clear()
    result = CliRunner().invoke(cli, [*args, "--cursor", str(cursor), "--dry-run"], env=env,
                                catch_exceptions=False, obj=quick())
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    if result.exit_code == 2:
        [line] = result.stderr.strip().splitlines()
        assert "cursor" in line, line
        assert not [r for r in gitlab.requests if r.path.endswith("/pipelines")]  # refused before the listing
    else:
        assert result.exit_code == 0, result.output
