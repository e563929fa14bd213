"""The README and docs/ as a user reads them: a guide of bounded length whose links resolve, and
commands that work when pasted.

Paste safety: every shell command of a fenced block marked sh, shell or bash (a console block: its
`$ ` lines), every `script:` line and `args:` input of a YAML example, and every inline
`databand-gitlab-reporter ...` span must parse as written (`bash -n`), hold no `<...>` placeholder
(the shell reads `<token>` as a redirection: write `$VARIABLE` or `...`), and name only commands
and long flags the CLI has, checked against the click command tree itself."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import click
import pytest
import yaml

from reporter.cli import cli

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]
PROG = "databand-gitlab-reporter"

FENCE = re.compile(r"^```([A-Za-z0-9_-]*)[^\n]*\n(.*?)^```\s*$", re.M | re.S)
INLINE = re.compile(rf"(?<!`)`({re.escape(PROG)} [^`]+)`(?!`)")
PLACEHOLDER = re.compile(r"<[A-Za-z][A-Za-z0-9 _.:/|-]*>")
OPERATORS = {"&&", "||", ";", "|", "&", "(", ")", ">", ">>", "<", "<<", ";;", "|&", ">&", "<&", "2>", "&>"}


class _Loader(yaml.SafeLoader):
    """YAML with GitLab's !reference tag."""


_Loader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))


def _doc_name(path: Path) -> str:
    return str(path.relative_to(REPO))


# -- what the docs hold -----------------------------------------------------------------------


def shell_snippets(path: Path) -> list[tuple[str, str, bool]]:
    """(where, shell text, whether it is a whole script to parse) of one document."""
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        kind, body = match[1].lower(), match[2]
        line = text[:match.start()].count("\n") + 1
        where = f"{_doc_name(path)}:{line}"
        if kind in ("sh", "shell", "bash"):
            found.append((where, body, True))
        elif kind == "console" or any(row.startswith("$ ") for row in body.splitlines()):
            commands = [row[2:] for row in body.splitlines() if row.startswith("$ ")]
            if kind == "console" or kind == "":
                found += [(where, command, True) for command in commands]
        elif kind == "yaml":
            found += [(where, script, True) for script in _yaml_scripts(body)]
    outside_fences = FENCE.sub("", text)
    for match in INLINE.finditer(outside_fences):
        # Usage lines in tables (`--project ID\|PATH [--pipeline ID ...]`) are notation, not
        # commands: their commands and flags are checked, not their syntax.
        found.append((f"{_doc_name(path)} (inline)", match[1].replace("\\|", "|"), False))
    return found


def _yaml_scripts(body: str) -> list[str]:
    """The shell lines of a YAML example's jobs, and the component's `args` as the command they go to."""
    document = yaml.load(body.replace("<group>", "acme"), Loader=_Loader) or {}
    lines = []
    for include in document.get("include", []) if isinstance(document.get("include"), list) else []:
        component = include.get("component", "") if isinstance(include, dict) else ""
        args = (include.get("inputs") or {}).get("args") if isinstance(include, dict) else None
        if args:
            command = "sweep" if "/sweep@" in component else "report"
            lines.append(f"{PROG} {command} {args}")
    for job in document.values():
        if not isinstance(job, dict):
            continue
        for key in ("before_script", "script", "after_script"):
            lines += [item for item in job.get(key, []) if isinstance(item, str)]
    return lines


# -- the checks -------------------------------------------------------------------------------


def _options(command: click.Command) -> set[str]:
    return {flag for param in command.params if isinstance(param, click.Option)
            for flag in (*param.opts, *param.secondary_opts)} | {"--help", "-h"}


def _words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def _invocations(script: str) -> list[list[str]]:
    """Each call of the reporter in a script (inside `$(...)` too): its words up to the next
    shell operator, from the word after the program's name."""
    calls = []
    for line in script.replace("\\\n", " ").splitlines():
        try:
            words = _words(line)
        except ValueError:
            continue  # bash -n reports it
        start = 0  # where the current simple command begins
        for index, word in enumerate(words):
            for inner in re.findall(r"\$\(([^()]*)\)", word):
                calls += _invocations(inner)
            if _operator(word):
                start = index + 1
                continue
            before = words[start:index]
            if start > index or not all(ASSIGNMENT.match(w) or w in PREFIXES for w in before):
                continue  # an argument, not a command: `--command /tmp/v/bin/databand-gitlab-reporter`
            program = word == PROG or word.endswith(f"/{PROG}")
            python = re.fullmatch(r"(\S*/)?python3?(\.\d+)?", word) and words[index + 1:index + 3] == ["-m", "reporter"]
            if program or python:
                rest = []
                for following in words[index + (3 if python else 1):]:
                    if _operator(following):
                        break
                    rest.append(following)
                calls.append(rest)
            start = len(words) + 1  # the rest of this simple command are its arguments
    return calls


ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
PREFIXES = {"exec", "time", "nohup", "command", "then", "do", "else", "if", "while", "!", "{"}


def _operator(word: str) -> bool:
    return word in OPERATORS or bool(re.fullmatch(r"\d*[<>]&?\d*", word))


def problems(script: str, whole: bool) -> list[str]:
    """What keeps this shell text from working when pasted; empty when nothing does."""
    found = []
    if whole:
        parsed = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=30)
        if parsed.returncode != 0:
            found.append(f"bash -n: {parsed.stderr.strip()}")
    found += [f"placeholder {text} (write $VARIABLE or ...)" for text in PLACEHOLDER.findall(script)]
    for words in _invocations(script):
        words = [word.strip("[]") for word in words]
        if not words:
            continue
        if words[0] in ("--version", "--help", "-h"):
            continue
        name, flags = words[0], [w.split("=", 1)[0] for w in words[1:] if w.startswith("--")]
        if name not in cli.commands:
            found.append(f"no command {name!r} (commands: {', '.join(sorted(cli.commands))})")
            continue
        unknown = sorted(set(flags) - _options(cli.commands[name]))
        found += [f"{name} has no option {flag}" for flag in unknown]
    return found


SNIPPETS = [snippet for path in DOCS for snippet in shell_snippets(path)]


def test_the_docs_hold_the_commands_the_check_must_see():
    wheres = {where.split(":")[0].split(" ")[0] for where, _, _ in SNIPPETS}
    assert {"README.md", "docs/reference.md"} <= wheres
    called = {words[0] for _, script, _ in SNIPPETS for words in _invocations(script) if words}
    assert {"resend", "parent-env", "report", "demo"} <= called, called


@pytest.mark.parametrize("where, script, whole", SNIPPETS, ids=[where for where, _, _ in SNIPPETS])
def test_every_shell_command_in_the_docs_works_when_pasted(where, script, whole):
    assert not problems(script, whole), (where, script)


@pytest.mark.parametrize("script, expected", [
    ("GITLAB_TOKEN=<token with read_api> databand-gitlab-reporter resend --project a/b --pipeline 1", "placeholder"),
    ("databand-gitlab-reporter resend --project a/b --pipelines 1", "no option --pipelines"),
    ('eval "$(databand-gitlab-reporter parent-env --shell)"', "no option --shell"),
    ("databand-gitlab-reporter resnd --project a/b", "no command 'resnd'"),
    ("databand-gitlab-reporter demo --fast", "demo has no option --fast"),
    ("databand-gitlab-reporter dmeo", "no command 'dmeo'"),
    ("python -m reporter report --dry-rnu", "no option --dry-rnu"),
    ("echo 'unclosed", "bash -n"),
    ("pip install . && databand-gitlab-reporter sweep --hours 2 --status canceled --since 2026-01-01", "--since"),
])
def test_the_paste_check_catches_what_breaks_a_pasted_command(script, expected):
    found = problems(script, whole=True)
    assert any(expected in problem for problem in found), found


def test_the_paste_check_passes_commands_that_work():
    assert problems("databand-gitlab-reporter resend --from-file databand-unsent-9001-1.json --target=file", True) == []
    assert problems("databand-gitlab-reporter parent-env > databand-parent.env && . ./databand-parent.env", True) == []
    assert problems("databand-gitlab-reporter --version", True) == []
    assert problems("databand-gitlab-reporter report --no-test-results --log-lines 0", True) == []


# -- the README is a guide --------------------------------------------------------------------


def test_the_readme_is_a_guide_of_at_most_250_lines():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    sections = re.findall(r"^## (.+)$", text, re.M)
    first = text.split("\n## ", 2)[1]
    assert "demo" in sections[0].lower() and f"{PROG} demo" in first, "the demo is the first command"
    for command in ("resend", "backfill", "sweep", "parent-env"):
        assert re.search(rf"^- \*\*{command}\*\*: .*\]\(docs/reference\.md#", text, re.M | re.S), command
    for moved in ("Failure modes", "Troubleshooting"):
        assert moved not in sections, f"{moved} belongs in docs/"
    assert "docs/failure-modes.md" in text and "docs/troubleshooting.md" in text


def test_the_readme_says_which_gitlab_and_when_the_default_package_resolves():
    text = " ".join(README.read_text().split())
    assert "GitLab 18.6 or newer" in text and "$[[ component.version ]]" in text
    assert "On GitLab older than 18.6" in text
    assert "resolves only once that release is published" in text
    # .ci/run makes a missing OpenLineage spec an error: the README must say so, not promise that
    # it works on a clean machine as it is.
    assert "REQUIRE_OPENLINEAGE_SPEC=1" in (REPO / ".ci" / "run").read_text()
    paragraph = next(p for p in README.read_text().split("\n\n") if p.startswith("`.ci/run`"))
    paragraph = " ".join(paragraph.split())
    assert "does not fetch the schemas" in paragraph and "it fails" in paragraph, paragraph


# -- links ------------------------------------------------------------------------------------


def _anchors(path: Path) -> set[str]:
    """The ids GitHub and GitLab give a document's headings."""
    ids = set()
    for title in re.findall(r"^#{1,6} (.+?)\s*$", FENCE.sub("", path.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", title.replace("`", "").lower()).replace(" ", "-")
        ids.add(slug)
    return ids


LINKS = [(path, target) for path in DOCS
         for target in re.findall(r"\]\(([^)\s]+)\)", FENCE.sub("", path.read_text()))
         if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("path, target", LINKS, ids=[f"{_doc_name(p)}->{t}" for p, t in LINKS])
def test_every_link_between_the_docs_resolves(path, target):
    file_part, _, anchor = target.partition("#")
    destination = (path.parent / file_part).resolve() if file_part else path
    assert destination.exists(), f"{_doc_name(path)} links to {target}: no such file"
    if anchor and destination.suffix == ".md":
        assert anchor in _anchors(destination), f"{_doc_name(path)} links to {target}: no such heading"


def test_the_link_check_sees_the_moved_sections():
    targets = {target for _, target in LINKS}
    assert {"docs/failure-modes.md#bounds", "docs/reference.md#from-a-jobs-after_script"} <= targets
    assert "from-a-jobs-after_script" in _anchors(REPO / "docs" / "reference.md")
    assert "on-gitlab-older-than-186" in _anchors(README)


# -- the retry and --output wording is what the tool does ---------------------------------------


def _row(page: str, starts: str) -> str:
    (row,) = [line for line in page.splitlines() if line.startswith(f"| {starts}")]
    return row


def test_the_bounds_and_retry_wording_are_the_codes_numbers():
    """docs/failure-modes.md's bounds, the README's retry line and the reference's delivery paragraph
    say the numbers the reader and the delivery use; a change to either shows here."""
    from reporter.retry import POLICY
    from reporter.settings import ReadBounds, Settings

    page = (REPO / "docs" / "failure-modes.md").read_text()
    delivery = Settings().delivery_bounds  # the bounds every target is built with
    retry = delivery.retry
    waits = [retry.backoff_wait(n) for n in range(1, retry.attempts)]
    said_waits = ", ".join(f"{wait:g}" for wait in waits) + " s"
    row = _row(page, "no new Databand attempt after")
    assert f"at most {retry.attempts} attempts; waits {said_waits}" in row, (row, waits)
    assert f"at most {retry.longest_wait:g} s a wait" in row and row.endswith(f"| {retry.budget:g} |")
    row = _row(page, "one Databand attempt")
    assert (f"connect {delivery.connect:g}, then {delivery.read:g} per chunk, "
            f"{delivery.attempt:g} in all") in row and row.endswith(f"| {delivery.attempt:g} |")
    assert _row(page, "delivery in the worst case").endswith(f"| {retry.budget + delivery.attempt:g} |")
    bounds = ReadBounds()
    row = _row(page, "one GitLab read")
    assert f"up to {POLICY.attempts - 1} retries" in row and row.endswith(f"| {bounds.read:g} |")
    row = _row(page, "one wait before GitLab's next attempt")
    backoff = ", ".join(f"{POLICY.backoff_wait(n):g}" for n in range(1, POLICY.attempts))
    assert f"else {backoff} s" in row and row.endswith(f"| {POLICY.longest_wait:g} |"), row
    assert _row(page, "one failed job's log").endswith(f"| {bounds.log:g}; {bounds.log_cut:g} |")
    assert _row(page, "all of GitLab's reading").endswith(f"| {Settings.gitlab_timeout:g} |")
    assert _row(page, "Databand answers 429").count(f"at most {retry.longest_wait:g} s") == 1

    reference = " ".join((REPO / "docs" / "reference.md").read_text().split())
    assert f"at most {retry.attempts} attempts; waits {said_waits[:-2]} s" in reference
    assert f"no retry starts after {retry.budget:g} s" in reference
    readme = " ".join(README.read_text().split())
    assert f"no new attempt starts after {retry.budget:g} s" in readme


def test_output_holds_every_event_also_when_databand_refuses_them_as_the_docs_say(gitlab, databand, workdir):
    """The README: databand-events.json is every event of the report, written before sending, so
    also when Databand refused them; docs/failure-modes.md: an --output that cannot be written is a
    warning and the delivery goes on."""
    import json

    import pipelines
    from clirun import env_for, resend

    pipelines.mixed(gitlab.url).install(gitlab)
    readme = " ".join(README.read_text().split())
    assert "every event of the report (written before sending, so also when Databand refused them)" in readme
    refused = resend(env_for(gitlab, databand, DATABAND_ACCESS_TOKEN="not-the-token"), "--output", "events.json")
    assert refused.exit_code == 4, refused.output
    written = json.loads((workdir / "events.json").read_text())
    (kept,) = workdir.glob("databand-unsent-9001-*.json")
    assert len(written) == len(json.loads(kept.read_text())) > 10 and not databand.events

    row = _row((REPO / "docs" / "failure-modes.md").read_text(), "`--output` cannot be written")
    assert "a warning; the delivery goes on" in row and row.endswith("| 0 | nothing |")
    assert "a missing folder is made" in row
    made = resend(env_for(gitlab, databand), "--output", str(workdir / "new-folder" / "events.json"))
    assert made.exit_code == 0 and len(json.loads((workdir / "new-folder" / "events.json").read_text())) == len(written)
    (workdir / "a-file").write_text("")
    sent = resend(env_for(gitlab, databand), "--output", str(workdir / "a-file" / "events.json"))
    assert sent.exit_code == 0, sent.output
    assert "Warning: could not write --output" in sent.output and len(databand.events) == 2 * len(written)


def test_the_reference_names_every_input_of_the_sweep_component():
    header = (REPO / "templates" / "sweep.yml").read_text().split("\n---\n", 1)[0]
    inputs = set(yaml.safe_load(header)["spec"]["inputs"])
    section = (REPO / "docs" / "reference.md").read_text().split("\n### Sweep\n", 1)[1].split("\n### ", 1)[0]
    said = set(re.findall(r"`([a-z_]+)`", section.split("Its inputs", 1)[1].split("\n\n", 1)[0]))
    assert said == inputs, (said ^ inputs)


def _shape(line: str) -> re.Pattern:
    """A documented log line with its numbers left open."""
    return re.compile(re.sub(r"\d+", r"\\d+", re.escape(line)))


def test_the_retry_lines_the_docs_show_are_lines_the_delivery_prints(gitlab, databand):
    """Against the stand-ins: Databand answering 503 once, then a port nothing listens on. Each
    documented `Databand: attempt ...` line is one of these, up to its numbers."""
    import socket

    import pipelines
    from clirun import QUICK, env_for, resend

    from reporter.databand import Databand
    from reporter.errors import DeliveryError

    documented = {line.strip("`").strip() for path in DOCS
                  for line in re.findall(r"`?(Databand: attempt \d+ failed \([^)]*\)[^`\n]*)", path.read_text())}
    assert len(documented) >= 2, documented

    pipelines.mixed(gitlab.url).install(gitlab)
    databand.script(503)
    result = resend(env_for(gitlab, databand))
    assert result.exit_code == 0, result.output
    printed = [line for line in result.output.splitlines() if line.startswith("Databand: attempt")]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = Databand(f"http://127.0.0.1:{port}/api/v1/tracking/open-lineage/x/events/bulk", "t" * 20,
                      bounds=QUICK, say=printed.append)
    with pytest.raises(DeliveryError):
        target.send([{"eventType": "COMPLETE", "run": {"runId": "r", "facets": {}}, "job": {"name": "p"}}])
    for line in documented:
        assert any(_shape(line).fullmatch(said) for said in printed), (line, printed)


def test_the_readme_job_log_is_the_summary_the_reporter_prints(gitlab, databand, workdir):
    """The README's job log example, printed by `report` as the component runs it, in a pipeline of
    the jobs it names (one passed, one allowed to fail, one failed), inside GitLab's log section."""
    import pipelines
    from click.testing import CliRunner
    from standins import make_job, make_pipeline, make_project

    block = README.read_text().split("\n## The job log\n", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    project = make_project(gitlab.url)
    pipeline = make_pipeline(project, 4242, status="running")
    jobs = [make_job(project, pipeline, 7001, "compile", "build", "success"),
            make_job(project, pipeline, 7002, "lint", "test", "failed", allow_failure=True),
            make_job(project, pipeline, 7003, "unit", "test", "failed"),
            make_job(project, pipeline, 7004, "databand-report", ".post", "running")]
    sample = pipelines.Sample(project, pipeline, jobs, traces={7002: b"lint failed\n", 7003: b"1 test failed\n"})
    sample.install(gitlab)
    gitlab.graphql = True  # GitLab's GraphQL answers the needs graph
    env = {**pipelines.ci_env(sample, gitlab.url, token=gitlab.token), "CI_SERVER_VERSION": "17.5.1-ee",
           "DATABAND_URL": databand.url, "DATABAND_ACCESS_TOKEN": databand.token}
    args = ["report", "--exclude-job", "databand-report*", "--output", "databand-events.json"]
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # What GitLab shows of the section: the header from the start marker, then the body.
    shown = [line.rsplit("\x1b[0K", 1)[-1] for line in result.stderr.split("\n")]  # a marker ends in CR
    shown = [line for line in shown if line.strip()]
    host = databand.url.split("/")[2]
    assert shown == [line.replace("databand.example.com", host) for line in block.splitlines()], result.stderr


# -- every message troubleshooting.md quotes is one the tool prints ------------------------------

TROUBLESHOOTING = REPO / "docs" / "troubleshooting.md"


def _quoted_messages() -> list[tuple[str, int]]:
    """The rows of docs/troubleshooting.md that quote a message with its exit code."""
    return [(text, int(code)) for text, code in
            re.findall(r"^\| `([^`]+)` \((\d+)[,)]", TROUBLESHOOTING.read_text(), re.M)]


def _message_shape(message: str) -> re.Pattern:
    """A quoted message as a pattern: `...` stands for what the tool fills in, a number for any
    number (a timeout, a status, a count)."""
    pattern = re.escape(message).replace(re.escape("..."), ".+?")
    return re.compile(re.sub(r"\d+", r"\\d+", pattern))


def _dead_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _closed_stdout(gitlab, databand) -> tuple[int, list[str]]:
    """The dry-run tree printed into a pipe closed at once, as `| head -0` does."""
    import subprocess
    import sys

    env = {**os.environ, "GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token}
    code = "import sys; from reporter.cli import main; sys.argv[0] = 'databand-gitlab-reporter'; main()"
    with subprocess.Popen([sys.executable, "-c", code, "resend", "--project", "42", "--pipeline", "9001",
                           "--dry-run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                          cwd=str(REPO)) as process:
        process.stdout.close()
        stderr = process.stderr.read().decode()
        process.wait(timeout=60)
    return process.returncode, stderr.splitlines()


def _provoke(start: str, gitlab, databand) -> tuple[int, list[str]]:
    """Make the reporter print the message that starts so, the way a user meets it: the exit code
    and the lines printed."""
    from click.testing import CliRunner
    from clirun import QUICK

    from reporter.retry import POLICY

    env = {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "DATABAND_URL": databand.url,
           "DATABAND_ACCESS_TOKEN": databand.token}
    args = ["resend", "--project", "42", "--pipeline", "9001"]
    bulk = "/api/v1/tracking/open-lineage/0000/events/bulk"
    dead = f"http://127.0.0.1:{_dead_port()}"
    if start.startswith("DATABAND_URL or"):
        del env["DATABAND_URL"]
    elif start.startswith("... is empty in this job (the component's databand_url input"):
        # The component's command line with `databand_url: $DATABAND_URL` and the variable missing.
        del env["DATABAND_URL"]
        env.update(DATABAND_URL_INPUT="$DATABAND_URL", GITLAB_CI="true", CI_PROJECT_ID="42", CI_PIPELINE_ID="9001",
                   CI_JOB_ID="7004")
        args = ["report", "--databand-url", "", "--exclude-job", "databand-report*"]
    elif start.startswith("DATABAND_ACCESS_TOKEN or"):
        del env["DATABAND_ACCESS_TOKEN"]
    elif start.startswith("DATABAND_URL must be an http(s) URL"):
        env["DATABAND_URL"] = "databand.example.com" + bulk
    elif start.startswith("DATABAND_URL must be the custom integration's"):
        env["DATABAND_URL"] = "https://databand.example.com/"
    elif start.startswith("No GitLab token that can list"):
        del env["GITLAB_TOKEN"]
        env.update(CI_JOB_TOKEN="job-token", GITLAB_CI="true", CI_SERVER_URL=gitlab.url)
        args = ["sweep", "--project", "42"]
    elif start.startswith("sweep needs --project"):
        args = ["sweep"]
    elif start.startswith("GITLAB_TOKEN starts with 'Bearer'"):
        env["GITLAB_TOKEN"] = "Bearer " + gitlab.token
    elif start.startswith("No GitLab token"):
        del env["GITLAB_TOKEN"]
    elif start.startswith("CI_PROJECT_ID and CI_PIPELINE_ID"):
        args = ["report"]
    elif start.startswith("--project takes"):
        args[2] = "https://gitlab.example.com/acme/data-platform/-/pipelines/9001"
    elif start.startswith("While reading ...: GITLAB_URL is https://"):
        env["GITLAB_URL"] = gitlab.url.replace("http://", "https://")
    elif start.startswith("Could not reach GitLab through the proxy"):
        env.update(GITLAB_URL=f"https://127.0.0.1:{_dead_port()}", HTTPS_PROXY=dead)
    elif start.startswith("GitLab answered 502 (text/html)"):
        gitlab.fail(r"/pipelines/9001", 502, times=100, headers={"Content-Type": "text/html"}, body=b"<html></html>")
    elif start.startswith("GitLab refused the GITLAB_TOKEN (401)"):
        env["GITLAB_TOKEN"] = "glpat-expired-expired-expired"
    elif start.startswith("GitLab forbade"):
        gitlab.fail(r"/pipelines/9001", 403, times=100, body=b'{"message": "403 Forbidden"}')
    elif start.startswith("GitLab has no"):
        args[4] = "1"
    elif start.startswith("GitLab did not finish answering"):
        gitlab.latency = 3
        args += ["--gitlab-timeout", "1"]
    elif start.startswith("Databand did not accept the events: 401"):
        env["DATABAND_ACCESS_TOKEN"] = "not-the-token"
    elif start.startswith("Databand did not accept the events: 404"):
        env["DATABAND_URL"] = databand.url.split("/api/", 1)[0] + bulk
    elif start.startswith("Databand did not accept the events: 302"):
        databand.script({"status": 302, "headers": {"Location": "https://sso.example.com/login"}})
    elif start.startswith("Databand did not accept the events: 200 with"):
        databand.script({"status": 200, "headers": {"Content-Type": "text/plain"}, "body": "OK"})
    elif start.startswith("Databand did not accept the events: could not reach"):
        env["DATABAND_URL"] = dead + bulk
    elif start.startswith("GITLAB_TOKEN holds"):
        env["GITLAB_TOKEN"] = gitlab.token[:6] + "\n" + gitlab.token[6:]  # two lines pasted as one value
    elif start.startswith("DATABAND_CA_FILE names"):
        env["DATABAND_CA_FILE"] = "/nonexistent/databand-ca.pem"
    elif start.startswith("GITLAB_URL is not this job's GitLab"):
        del env["GITLAB_TOKEN"]
        env.update(CI_JOB_TOKEN="job-token-of-another-gitlab", CI_SERVER_URL="https://gitlab.example.com")
    elif start.startswith("... is not a file of events the reporter wrote"):
        with open("kept.json", "w") as handle:
            handle.write("[" * 100 + "]" * 100)  # nested past any event's depth
        args = ["resend", "--from-file", "kept.json"]
    elif start.startswith("The cursor"):
        os.mkdir("a-folder")
        args = ["resend", "--project", "42", "--since", "2026-01-01", "--cursor", "a-folder"]
    elif start.startswith("stdout was closed"):
        return _closed_stdout(gitlab, databand)
    elif start.startswith("Error: --json goes with --dry-run"):
        args.append("--json")
    elif start.startswith("pip could not install"):
        # The component's own line, as its install step echoes it with the default package.
        template = (REPO / "templates" / "report.yml").read_text()
        echoed = re.findall(r"echo '(databand-gitlab-reporter: error: pip[^']+)'", template)
        return 1, [line.replace("$[[ inputs.package ]]", "databand-gitlab-reporter==0.1.0") for line in echoed]
    else:
        raise AssertionError(f"no way to provoke {start!r}: add one to _provoke")
    obj = {"delivery_bounds": QUICK, "gitlab_policy": POLICY.faster(0.01)}
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False, obj=obj)
    assert "Traceback" not in result.output
    return result.exit_code, result.output.splitlines()


QUOTED = _quoted_messages()


def test_troubleshooting_quotes_the_messages_it_must():
    assert len(QUOTED) >= 20, QUOTED
    codes = {code for _, code in QUOTED}
    assert {1, 2, 3, 4} <= codes


@pytest.mark.parametrize("message, code", QUOTED, ids=[m[:48] for m, _ in QUOTED])
def test_every_message_troubleshooting_quotes_is_one_the_tool_prints(message, code, gitlab, databand, workdir):
    """Each quoted message is provoked as a user meets it (a setting, a refusing server, a dead
    port), and the line printed is the quoted one, `...` standing for what it fills in."""
    import pipelines

    pipelines.mixed(gitlab.url).install(gitlab)
    exit_code, lines = _provoke(message, gitlab, databand)
    shape = _message_shape(message)
    prefix = f"{PROG}: error: "
    said = [line.removeprefix(prefix) for line in lines if line.startswith((prefix, "Error: "))]
    assert exit_code == code, (message, lines)
    assert any(shape.fullmatch(line) for line in said), (message, said)
