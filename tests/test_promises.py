"""Settings that would fail only at send time are refused up front (exit 2, one line naming the
setting, before GitLab is read): a CA file that is missing, not a file or not a certificate, a
token a header cannot carry, a job token bound for another GitLab than its own."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys

from pathlib import Path

import pytest
from click.testing import CliRunner

import pipelines
from clirun import quick
from reporter.cli import cli
from standins import GitLabStandIn

PROG = "databand-gitlab-reporter"


@pytest.fixture(autouse=True)
def _in_a_fresh_folder(workdir):
    """Kept files land in the test's own folder."""


def run(args, env):
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False, obj=quick())


def resend_env(gitlab, databand, **extra):
    env = {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "DATABAND_URL": databand.url,
           "DATABAND_ACCESS_TOKEN": databand.token}
    env.update(extra)
    return env


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{PROG}: error: ") and "unexpected" not in lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def sample(gitlab):
    return pipelines.mixed(gitlab.url).install(gitlab)


def _bad_ca_files(folder):
    text = folder / "notes.txt"
    text.write_text("this is not a certificate\n")
    empty = folder / "empty.pem"
    empty.write_bytes(b"")
    fifo = folder / "ca.fifo"
    os.mkfifo(fifo)
    huge = folder / "huge.pem"
    with open(huge, "wb") as handle:  # sparse: no disk used
        handle.truncate(64 * 2**20)
    return {"missing": (folder / "no-such-ca.pem", "does not exist"), "text": (text, "no PEM certificate"),
            "empty": (empty, "no PEM certificate"), "fifo": (fifo, "not a regular file"),
            "huge": (huge, "larger than"), "under a file": (text / "ca.pem", "does not exist")}


@pytest.mark.parametrize("case", ["missing", "text", "empty", "fifo", "huge", "under a file"])
@pytest.mark.parametrize("variable", ["CI_SERVER_TLS_CA_FILE", "DATABAND_CA_FILE", "REQUESTS_CA_BUNDLE"])
def test_a_ca_file_that_cannot_serve_is_refused_before_gitlab_is_read(gitlab, databand, sample, tmp_path,
                                                                      variable, case):
    path, why = _bad_ca_files(tmp_path)[case]
    result = run(["resend", "--project", "42", "--pipeline", "9001"],
                 resend_env(gitlab, databand, **{variable: str(path)}))
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert variable in line and why in line, line
    assert gitlab.requests == [] and databand.requests_seen == 0


def test_a_good_ca_file_and_a_folder_of_them_are_taken(gitlab, databand, sample, tmp_path):
    import certifi

    for variable in ("CI_SERVER_TLS_CA_FILE", "DATABAND_CA_FILE", "REQUESTS_CA_BUNDLE"):
        result = run(["resend", "--project", "42", "--pipeline", "9001"],
                     resend_env(gitlab, databand, **{variable: certifi.where()}))
        assert result.exit_code == 0, result.output
    result = run(["resend", "--project", "42", "--pipeline", "9001"],
                 resend_env(gitlab, databand, DATABAND_CA_FILE=str(tmp_path)))
    assert result.exit_code == 0, result.output


def test_insecure_needs_no_ca_file(gitlab, databand, sample, tmp_path):
    result = run(["resend", "--project", "42", "--pipeline", "9001", "--insecure"],
                 resend_env(gitlab, databand, DATABAND_CA_FILE=str(tmp_path / "gone.pem")))
    assert result.exit_code == 0, result.output


# Characters no header carries as they are. No NUL in a variable: the environment cannot hold one,
# so it is given by a flag.
BAD = {"a line break": "glpat-\nabcdef", "a carriage return": "glpat-abc\rdef", "not ASCII": "glpat-abcdé",
       "an emoji": "glpat-abc😀", "DEL": "glpat-abc\x7f", "undecodable bytes": "glpat-abc\udcff",
       "a leading space": " glpat-abc", "a tab": "glpat-a\tbc"}


@pytest.mark.parametrize("kind", sorted(BAD))
@pytest.mark.parametrize("variable", ["GITLAB_TOKEN", "DATABAND_ACCESS_TOKEN", "OPENLINEAGE_API_KEY"])
def test_a_token_a_header_cannot_carry_is_refused_up_front(gitlab, databand, sample, variable, kind):
    value = BAD[kind]
    env = resend_env(gitlab, databand, **{variable: value})
    args = ["resend", "--project", "42", "--pipeline", "9001"]
    if variable == "OPENLINEAGE_API_KEY":
        env["OPENLINEAGE_URL"] = databand.server_url
        args += ["--target", "databand", "--target", "openlineage"]
    if kind == "a leading space":  # a variable's value is stripped: only a flag keeps the space
        env.pop(variable)
        flag = {"GITLAB_TOKEN": "--gitlab-token", "DATABAND_ACCESS_TOKEN": "--databand-token"}.get(variable)
        if flag is None:
            env[variable] = "abc def\x0b"
        else:
            args += [flag, value]
    result = run(args, env)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert ("--" in line or variable in line) and "HTTP header" in line, line
    assert value.strip() not in result.output
    assert gitlab.requests == [] and databand.requests_seen == 0


@pytest.mark.parametrize("flag", ["--gitlab-token", "--databand-token"])
def test_a_nul_in_a_token_flag_is_refused_up_front(gitlab, databand, sample, flag):
    result = run(["resend", "--project", "42", "--pipeline", "9001", flag, "glpat-abc\x00def"],
                 resend_env(gitlab, databand))
    assert result.exit_code == 2, result.output
    assert flag in one_error_line(result) and "NUL" in result.stderr
    assert gitlab.requests == [] and databand.requests_seen == 0


def test_a_job_token_that_a_header_cannot_carry_is_refused(gitlab, databand, sample):
    env = pipelines.ci_env(sample, gitlab.url, job_token="glcbt-abc\ndef")
    env.update(DATABAND_URL=databand.url, DATABAND_ACCESS_TOKEN=databand.token)
    result = run(["report"], env)
    assert result.exit_code == 2 and "CI_JOB_TOKEN" in one_error_line(result)
    assert gitlab.requests == []


def test_a_job_token_goes_only_to_its_own_gitlab(gitlab, databand, sample):
    # The job's GitLab (CI_SERVER_URL) and another one GITLAB_URL names: only the job token is there.
    with GitLabStandIn() as other:
        pipelines.mixed(other.url).install(other)
        env = pipelines.ci_env(sample, gitlab.url, job_token=gitlab.job_token)
        env.update(GITLAB_URL=other.url, DATABAND_URL=databand.url, DATABAND_ACCESS_TOKEN=databand.token)
        for args in (["report"], ["resend", "--project", "42", "--pipeline", "9001"],
                     ["resend", "--project", "42", "--pipeline", "9001", "--gitlab-url", other.url, "--dry-run"]):
            result = run(args, env)
            assert result.exit_code == 2, result.output
            line = one_error_line(result)
            assert "CI_JOB_TOKEN" in line and "GITLAB_TOKEN" in line and "CI_SERVER_URL" in line, line
        assert other.requests == [] and gitlab.requests == [] and databand.requests_seen == 0
        # With a token of its own for that GitLab, it reads there, and the job token stays home.
        env["GITLAB_TOKEN"] = other.token
        result = run(["report"], env)
        assert result.exit_code == 0, result.output
        assert other.requests and {r.auth for r in other.requests} == {"private"}
        assert gitlab.requests == []


def test_the_job_token_is_used_on_its_own_gitlab_named_twice(gitlab, databand, sample):
    env = pipelines.ci_env(sample, gitlab.url, job_token=gitlab.job_token)
    env.update(GITLAB_URL=gitlab.url + "/", DATABAND_URL=databand.url, DATABAND_ACCESS_TOKEN=databand.token)
    result = run(["report"], env)
    assert result.exit_code == 0, result.output
    assert {r.auth for r in gitlab.requests} == {"job"}


# -- files checked whole ---------------------------------------------------------------------------


@pytest.fixture
def events(gitlab, sample):
    printed = CliRunner().invoke(cli, ["resend", "--project", "42", "--pipeline", "9001", "--dry-run", "--json"],
                                 env={"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token},
                                 catch_exceptions=False)
    assert printed.exit_code == 0, printed.output
    gitlab.requests.clear()
    return json.loads(printed.stdout)


def _deep(levels):
    value: object = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


SPOILED = {
    "tags a list of lists": (lambda e: e[2]["run"]["facets"]["tags"].update(tags=[["k", "v"]]), "tags.tags"),
    "a tag value a number": (lambda e: e[2]["run"]["facets"]["tags"]["tags"][0].update(value=7), "tags.tags"),
    "a facet a string": (lambda e: e[1]["run"]["facets"].update(parent="root"), "run.facets"),
    "job facets null inside": (lambda e: e[3]["job"]["facets"].update(jobType=None), "job.facets"),
    "run facets null": (lambda e: e[3]["run"].update(facets=None), "run.facets"),  # found by the fuzzing
    "startTime a number": (lambda e: e[4]["run"]["facets"].update(startTime={"startTime": 5}), "startTime"),
    "eventType a list": (lambda e: e[5].update(eventType=["COMPLETE"]), "eventType"),
    "eventType unknown": (lambda e: e[5].update(eventType="DONE"), "eventType"),
    "inputs an object": (lambda e: e[5].update(inputs={}), "inputs"),
    "an event a string": (lambda e: e.insert(3, "event"), "not an object"),
    "a run twice": (lambda e: e.append(json.loads(json.dumps(e[3]))), "two events"),
    "a run its own ancestor": (lambda e: e[3]["run"]["facets"]["parent"]["run"].update(runId=e[3]["run"]["runId"]),
                               "its own ancestor"),
    "nesting 70 deep": (lambda e: e[2]["run"]["facets"].update(deep=_deep(70)), "nests deeper"),
}


def _send_file(path, databand, *args):
    env = {"DATABAND_URL": databand.url, "DATABAND_ACCESS_TOKEN": databand.token}
    return run(["resend", "--from-file", str(path), "--target", "databand", "--target", "console", *args], env)


@pytest.mark.parametrize("case", sorted(SPOILED))
def test_a_hand_edited_kept_file_is_refused_whole(databand, events, tmp_path, case):
    spoil, words = SPOILED[case]
    spoil(events)
    path = tmp_path / "databand-unsent-9001-20261124T101500Z.json"
    path.write_text(json.dumps(events))
    for extra in ((), ("--dry-run",)):
        result = _send_file(path, databand, *extra)
        assert result.exit_code == 2, result.output
        line = one_error_line(result)
        assert words in line and "nothing was sent" in line, line
        assert result.stdout == ""  # not a line of the console target, nor of the tree
    assert databand.requests_seen == 0


RAW = {
    "a lone surrogate": lambda raw: raw.replace(b'"acme.data-platform"', b'"acme\\ud800"', 1),
    "a lone surrogate in a name": lambda raw: raw.replace(b'"runId"', b'"run\\udfffId"', 1),
    "NaN": lambda raw: raw.replace(b'"processingType": "BATCH"', b'"processingType": NaN', 1),
    "cut short": lambda raw: raw[:len(raw) // 2],
    "not UTF-8": lambda raw: raw.replace(b"acme", b"\xffcme", 1),
    "nesting a million deep": lambda raw: b"[" * 1_000_000,
}


@pytest.mark.parametrize("case", sorted(RAW))
def test_a_kept_file_whose_text_no_request_can_carry_is_refused_whole(databand, events, tmp_path, case):
    path = tmp_path / "databand-unsent-9001-20261124T101500Z.json"
    raw = json.dumps(events).encode()
    spoiled = RAW[case](raw)
    assert spoiled != raw
    path.write_bytes(spoiled)
    result = _send_file(path, databand)
    assert result.exit_code == 2, result.output
    assert "nothing was sent" in one_error_line(result)
    assert databand.requests_seen == 0


def test_a_huge_kept_file_is_refused_without_reading_it(databand, tmp_path):
    path = tmp_path / "databand-unsent-9001-20261124T101500Z.json"
    with open(path, "wb") as handle:
        handle.write(b"[")
        handle.truncate(300 * 2**20)  # sparse
    result = _send_file(path, databand)
    assert result.exit_code == 2 and "larger than 256 MiB" in one_error_line(result)
    assert databand.requests_seen == 0


def test_the_kept_file_as_written_is_still_sent(databand, events, tmp_path):
    path = tmp_path / "databand-unsent-9001-20261124T101500Z.json"
    path.write_text(json.dumps(events))
    result = _send_file(path, databand)
    assert result.exit_code == 0, result.output
    assert databand.requests_seen == 1


# -- cursors ----------------------------------------------------------------------------------------


def _listed(gitlab) -> bool:
    return any(r.path.endswith("/pipelines") for r in gitlab.requests)


@pytest.mark.parametrize("command", ["backfill", "sweep"])
@pytest.mark.parametrize("where", ["a folder", "under a file", "read-only file system"])
def test_a_cursor_that_cannot_be_written_is_refused_before_anything_is_listed(gitlab, databand, sample, tmp_path,
                                                                             command, where):
    (tmp_path / "file").write_text("x")
    cursor = {"a folder": tmp_path, "under a file": tmp_path / "file" / "cursor.json",
              "read-only file system": "/proc/databand-cursor.json"}[where]
    args = ["resend", "--project", "42", "--since", "2026-01-01"] if command == "backfill" else \
        ["sweep", "--project", "42", "--hours", "744"]
    result = run([*args, "--cursor", str(cursor)], resend_env(gitlab, databand))
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert f"The cursor {cursor} cannot be written" in line, line
    assert not _listed(gitlab) and databand.requests_seen == 0


@pytest.mark.parametrize("command", ["backfill", "sweep"])
def test_a_cursor_name_longer_than_the_file_system_takes_is_refused_before_anything_is_listed(
        gitlab, databand, sample, tmp_path, command):
    # The check's own temporary file has a short name: only the rename to this one failed, after a
    # pipeline was sent, which then counted as not sent.
    cursor = tmp_path / ("c" * 300 + ".json")
    args = ["resend", "--project", "42", "--since", "2026-01-01"] if command == "backfill" else \
        ["sweep", "--project", "42", "--hours", "744"]
    result = run([*args, "--cursor", str(cursor)], resend_env(gitlab, databand))
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert "cannot be written (its name is longer than the 255 bytes a file name may have there)" in line, line
    assert len(line) < 500  # the path by its ends, not whole
    assert not _listed(gitlab) and databand.requests_seen == 0


@pytest.mark.parametrize("command", ["backfill", "sweep"])
@pytest.mark.parametrize("text", ['{"done": [1], "versions": {"1": ["x"]}}', '{"done": "1"}', "null",
                                  '{"done": [NaN]}', '{"done": ["1\\ud800"]}', "[" * 100_000])
def test_a_cursor_of_the_wrong_shape_is_refused_before_anything_is_listed(gitlab, databand, sample, tmp_path,
                                                                         command, text):
    cursor = tmp_path / "cursor.json"
    cursor.write_text(text)
    args = ["resend", "--project", "42", "--since", "2026-01-01"] if command == "backfill" else \
        ["sweep", "--project", "42", "--hours", "744"]
    result = run([*args, "--cursor", str(cursor)], resend_env(gitlab, databand))
    assert result.exit_code == 2, result.output
    assert str(cursor) in one_error_line(result)
    assert not _listed(gitlab) and databand.requests_seen == 0


# -- stdout closed, and eval "$(parent-env)" under set -e ------------------------------------------

EXECUTABLE = os.path.join(os.path.dirname(sys.executable), PROG)
JOB = {"GITLAB_CI": "true", "CI_SERVER_URL": "https://gitlab.example.com", "CI_PROJECT_ID": "42",
       "CI_PROJECT_PATH": "acme/data-platform", "CI_PIPELINE_ID": "9001", "CI_JOB_ID": "7",
       "CI_JOB_NAME": "dbt", "CI_JOB_STAGE": "transform"}


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITLAB_", "DATABAND_", "CI_", "OPENLINEAGE_"))}
    env.update(extra)
    return env


def bash(script, env, *args, cwd=None, stdout=subprocess.PIPE):
    return subprocess.run(["bash", "-c", script, "bash", *args], env=env, cwd=cwd, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=60)


def with_stdout(how, script, env, cwd=None):
    """Run with stdout a pipe whose reader is gone before it starts (as `| head -0` ends up), with
    no stdout at all (`>&-`), or a full device (`>/dev/full`)."""
    if how == "closed":
        return bash(script + " >&-", env, cwd=cwd)
    if how == "full":  # every write fails with ENOSPC
        with open("/dev/full", "w") as full:
            return bash(script, env, cwd=cwd, stdout=full)
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return bash(script, env, cwd=cwd, stdout=writer)
    finally:
        os.close(writer)


STRICT = 'set -e\neval "$("$0" parent-env "$@")"\necho "went on: ${OPENLINEAGE_PARENT_RUN_ID:-unset}"\n'


@pytest.mark.parametrize("why, env, args", [
    ("not in a job", {}, []),
    ("an id that is not a number", {**JOB, "CI_JOB_ID": "7x"}, []),
    ("an unknown option", JOB, ["--no-such-option"]),
    ("a bad format value", JOB, ["--format", "yaml"]),
    ("a pipeline name with a control character", JOB, ["--pipeline-name", "a\x01b"]),
])
def test_a_failing_parent_env_stops_a_set_e_shell_that_evals_it(why, env, args):
    done = bash(STRICT.replace('"$0"', EXECUTABLE), _clean_env(**env), *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "went on" not in done.stdout
    assert "Traceback" not in done.stderr


def test_parent_env_under_set_e_goes_on_when_it_works():
    done = bash(STRICT.replace('"$0"', EXECUTABLE), _clean_env(**JOB))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("went on: ") and "unset" not in done.stdout


def test_an_interactive_shell_is_not_closed_by_a_failing_eval():
    # Without set -e (a terminal's shell), the eval only sets $?: `(exit 2)` is a subshell's exit.
    done = bash(f'eval "$({EXECUTABLE} parent-env)"; echo "still here, status $?"', _clean_env())
    assert done.returncode == 0 and done.stdout.strip() == "still here, status 2"


def test_dotenv_gets_no_shell_statement_on_failure(tmp_path):
    done = bash(f'{EXECUTABLE} parent-env --format dotenv > "$1"', _clean_env(), str(tmp_path / "p.env"))
    assert done.returncode == 2 and (tmp_path / "p.env").read_text() == ""


@pytest.mark.parametrize("how", ["pipe", "closed", "full"])
def test_parent_env_into_a_closed_stdout_is_exit_4_in_one_line(how):
    done = with_stdout(how, f"{EXECUTABLE} parent-env", _clean_env(**JOB))
    assert done.returncode == 4, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"{PROG}: error: stdout was closed"), line


@pytest.mark.parametrize("how", ["pipe", "closed", "full"])
@pytest.mark.parametrize("args, what", [
    (["--help"], "the help"), (["-h"], "the help"), (["--version"], "the version"),
    (["parent-env", "--help"], "the help"), (["report", "--help"], "the help"), (["resend", "-h"], "the help"),
    (["sweep", "--help"], "the help"), (["demo", "--help"], "the help"),
])
def test_help_and_version_into_a_stdout_that_takes_nothing_are_exit_4_in_one_line(how, args, what):
    done = with_stdout(how, " ".join([EXECUTABLE, *args]), _clean_env(**JOB))
    assert done.returncode == 4, done.stderr
    assert done.stderr.splitlines() == [f"{PROG}: error: stdout was closed before {what} could be printed whole: "
                                        "nothing that reads it got it (exit 4)."]


@pytest.mark.parametrize("how", ["pipe", "closed", "full"])
def test_the_shell_completion_script_into_a_stdout_that_takes_nothing_is_exit_4(how):
    done = with_stdout(how, EXECUTABLE, _clean_env(_DATABAND_GITLAB_REPORTER_COMPLETE="bash_source"))
    assert done.returncode == 4, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"{PROG}: error: stdout was closed before the shell completion script"), line


@pytest.mark.parametrize("how", ["pipe", "closed"])
@pytest.mark.parametrize("args", [["--dry-run"], ["--dry-run", "--json"], ["--target", "console"],
                                  ["--target", "console", "--target", "databand"]])
def test_a_closed_stdout_is_no_delivery(gitlab, databand, sample, tmp_path, how, args):
    env = _clean_env(**resend_env(gitlab, databand))
    command = " ".join([EXECUTABLE, "resend", "--project", "42", "--pipeline", "9001", *args])
    done = with_stdout(how, command, env, cwd=tmp_path)
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr and "unexpected" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if f"{PROG}: error:" in line]
    assert len(errors) == 1 and "stdout" in errors[0], done.stderr
    if "console" in args:  # the console's events are kept, with the command that prints them again
        [kept] = tmp_path.glob("console-unsent-9001-*.json")
        assert len(json.loads(kept.read_text())) > 1
        assert f"resend --from-file {kept.name} --target console" in done.stderr
    if "databand" in args:
        assert databand.requests_seen == 1 and not list(tmp_path.glob("databand-unsent-*"))


# -- a name lookup that never answers ---------------------------------------------------------------


@pytest.fixture
def hanging_resolver(monkeypatch):
    """getaddrinfo for *.hang.test blocks (up to 20 s, so a failing run ends), as a resolver that
    never answers does; every other name resolves as usual. No root needed: socket's own function,
    in this process."""
    import socket
    import threading

    real = socket.getaddrinfo
    release = threading.Event()

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".hang.test"):
            release.wait(20)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    release.set()


def test_a_name_lookup_that_never_answers_is_bounded_for_databand(gitlab, sample, hanging_resolver):
    import time

    started = time.monotonic()
    result = run(["resend", "--project", "42", "--pipeline", "9001"],
                 {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "DATABAND_ACCESS_TOKEN": "t" * 20,
                  "DATABAND_URL": "http://databand.hang.test/api/v1/tracking/open-lineage/u/events/bulk"})
    took = time.monotonic() - started
    assert result.exit_code == 4, result.output
    assert ("timed out" in result.stderr or "no complete answer within" in result.stderr), result.stderr
    assert "databand-unsent-9001-" in result.stderr
    assert took < 2 + 1 + 2  # the quick budget, one attempt, and slack for a loaded machine


def test_a_name_lookup_that_never_answers_is_bounded_for_gitlab(hanging_resolver):
    import time

    started = time.monotonic()
    result = run(["resend", "--project", "42", "--pipeline", "9001", "--dry-run", "--gitlab-timeout", "2"],
                 {"GITLAB_URL": "http://gitlab.hang.test", "GITLAB_TOKEN": "glpat-" + "x" * 20})
    took = time.monotonic() - started
    assert result.exit_code == 3, result.output
    assert took < 2 + 2


# -- the bounds table says what the code does ----------------------------------------------------

FAILURE_MODES = Path(__file__).resolve().parent.parent / "docs" / "failure-modes.md"


def _table(heading: str) -> dict[str, list[str]]:
    """The rows of the first table under a heading: first cell -> the other cells."""
    text = FAILURE_MODES.read_text()
    section = text[text.index(heading):]
    rows = {}
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    rows.pop(next(iter(rows)))  # the header
    return rows


def _row(rows: dict[str, list[str]], words: str) -> list[str]:
    [found] = [cells for first, cells in rows.items() if words in first]
    return found


def _row_key(rows: dict[str, list[str]], words: str) -> str:
    [found] = [first for first in rows if words in first]
    return found


def _numbers(cell: str) -> list[float]:
    return [float(n) for n in re.findall(r"\d+(?:\.\d+)?", cell)]


def test_the_bounds_table_is_the_code_s_constants():
    from reporter.settings import ReadBounds, Settings
    from reporter.targets import BOUNDS

    gitlab, policy = ReadBounds(), BOUNDS.retry
    rows = _table("## Bounds")
    assert _numbers(_row(rows, "one GitLab read")[0]) == [gitlab.read]
    waits = ", ".join(f"{policy.backoff_wait(retry):g}" for retry in range(1, policy.attempts))
    [wait] = [k for k in rows if k.startswith("one wait before GitLab's next attempt")]
    assert _numbers(rows[wait][0]) == [policy.longest_wait] and f"else {waits} s" in wait
    assert f"up to {policy.attempts - 1} retries" in _row_key(rows, "one GitLab read")
    assert _numbers(_row(rows, "one failed job's log")[0]) == [gitlab.log, gitlab.log_cut]
    assert _numbers(_row(rows, "all of GitLab's reading")[0]) == [Settings().gitlab_timeout]
    attempt = [k for k in rows if k.startswith("one Databand attempt")][0]
    assert _numbers(attempt) == [BOUNDS.connect, BOUNDS.read, BOUNDS.attempt]
    assert _numbers(rows[attempt][0]) == [BOUNDS.attempt]
    new_attempts = [k for k in rows if k.startswith("no new Databand attempt")][0]
    assert _numbers(rows[new_attempts][0]) == [policy.budget]
    assert f"at most {policy.attempts} attempts" in new_attempts
    assert f"waits {waits} s" in new_attempts
    assert f"at most {policy.longest_wait:g} s a wait" in new_attempts
    worst = _row(rows, "delivery in the worst case")
    assert _numbers(worst[0]) == [policy.budget + BOUNDS.attempt]
    assert _numbers(_row(rows, "a new connection")[0]) == [30, BOUNDS.connect]  # python-gitlab's timeout, ours
    from reporter.gitlab.http import SOCKET_TIMEOUT

    assert SOCKET_TIMEOUT == 30


def test_the_bounds_table_has_a_row_for_every_command():
    import click

    from reporter.settings import Settings
    from reporter.targets import BOUNDS

    rows = _table("### By command")
    named = " ".join(rows)
    commands = set(cli.commands)  # type: ignore[attr-defined]
    assert commands == {"report", "resend", "sweep", "parent-env", "demo"}
    for command in commands:
        assert f"`{command}" in named, command
    for mode in ("`resend --pipeline`", "`resend --from-file`", "`resend --since`"):
        assert mode in named
    resend = cli.commands["resend"]  # type: ignore[attr-defined]
    assert {"--pipeline", "--from-file", "--since"} <= {o for p in resend.params if isinstance(p, click.Option)
                                                        for o in p.opts}
    gitlab, delivery = Settings().gitlab_timeout, BOUNDS.retry.budget + BOUNDS.attempt
    assert _numbers(_row(rows, "`report`")[2]) == [gitlab + delivery]
    assert _numbers(_row(rows, "`resend --from-file`")[2]) == [delivery]
    assert _numbers(_row(rows, "backfill")[2]) == [gitlab, gitlab + delivery]
    for cells in rows.values():
        if cells[0] != "none":
            assert _numbers(cells[0])[0] == gitlab
        if not cells[1].startswith("none"):
            assert _numbers(cells[1]) == [delivery]


@pytest.mark.parametrize("how", ["pipe", "closed"])
def test_the_demo_into_a_closed_stdout_is_exit_4_in_one_line(tmp_path, how):
    done = with_stdout(how, f"{EXECUTABLE} demo", _clean_env(), cwd=tmp_path)
    assert done.returncode == 4, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"{PROG}: error: stdout was closed before the demo could be printed whole: nothing that reads it got it "
        "(exit 4)."]


# -- found by the outsider's break-it pass ----------------------------------------------------


def test_a_number_past_any_float_in_a_kept_file_is_refused_not_sent_as_infinity(databand, events, tmp_path):
    path = tmp_path / "databand-unsent-9001-20261124T101500Z.json"
    text = json.dumps(events)
    path.write_text(text.replace('"eventType"', '"x": 1e999, "eventType"', 1))  # json reads 1e999 as inf
    result = _send_file(path, databand)
    assert result.exit_code == 2, result.output
    assert "a number past any a float can hold" in one_error_line(result)
    assert databand.payloads == []


@pytest.mark.parametrize("how", ["--from-file", "--cursor"])
def test_a_pipe_given_as_a_file_is_refused_not_waited_on(gitlab, databand, sample, tmp_path, how):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    args = (["resend", "--from-file", str(fifo)] if how == "--from-file" else
            ["resend", "--project", "42", "--since", "2026-01-01", "--cursor", str(fifo)])
    # In a child with a time limit: on the old code its open() waits for a writer forever.
    done = subprocess.run([sys.executable, "-c", "from reporter.cli import main; main()", *args],
                          env={**os.environ, **resend_env(gitlab, databand)}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    assert "not a regular file" in done.stderr and "Traceback" not in done.stderr
    assert databand.payloads == []


def test_an_id_of_thousands_of_digits_and_nan_hours_are_one_line_exit_2(gitlab, databand):
    result = run(["resend", "--project", "42", "--pipeline", "9" * 5000], resend_env(gitlab, databand))
    assert result.exit_code == 2 and "a number of 5000 digits" in one_error_line(result)
    result = run(["sweep", "--project", "42", "--hours", "nan"], resend_env(gitlab, databand))
    assert result.exit_code == 2 and "'nan' is not a number" in result.output
    assert gitlab.requests == []
