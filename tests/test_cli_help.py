"""--help says which variable each option reads, and every hint the reporter prints names only flags
and commands that exist (checked against the CLI itself, not against a list kept by hand)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from reporter.cli import cli
from reporter.settings import SOURCES

REPORTER = Path(__file__).resolve().parent.parent / "reporter"
ENV = re.compile(r"\[env: ([^\]]+)\]")
VARIABLE = re.compile(r"\b[A-Z][A-Z0-9_]{2,}\b")


def options(command: click.Command) -> dict[str, click.Option]:
    return {flag: param for param in command.params if isinstance(param, click.Option)
            for flag in (*param.opts, *param.secondary_opts)}


def said_variables(help_text: str | None) -> set[str]:
    return {name for bracket in ENV.findall(help_text or "") for name in VARIABLE.findall(bracket)}


COMMANDS = sorted(cli.commands)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_reading_a_variable_says_which(name):
    command = cli.commands[name]
    by_flag = options(command)
    settings_read = "--databand-url" in by_flag  # the commands whose options go through Settings.from_env
    for setting, source in SOURCES.items():
        if not settings_read or source.flag is None or source.flag not in by_flag or not source.variables:
            continue
        # Settings.from_env reads these: the help must name each (CI_* ones too, where it says "then").
        said = said_variables(by_flag[source.flag].help)
        assert set(source.variables) <= said, f"{name} {source.flag} ({setting}) reads {source.variables}"
    for flag, option in by_flag.items():
        envvars = [option.envvar] if isinstance(option.envvar, str) else list(option.envvar or ())
        assert set(envvars) <= said_variables(option.help), f"{name} {flag} reads {envvars} through click"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_variable_help_names_is_one_the_option_reads(name):
    readers = {s.flag: set(s.variables) for s in SOURCES.values() if s.flag}
    for flag, option in options(cli.commands[name]).items():
        said = said_variables(option.help)
        if not said:
            continue
        envvars = {option.envvar} if isinstance(option.envvar, str) else set(option.envvar or ())
        read = (readers.get(option.opts[0], set()) if "--databand-url" in options(cli.commands[name]) else set()) \
            | envvars
        assert said <= read, f"{name} {flag}: help names {said - read}, which it does not read"


def test_the_rendered_help_shows_the_variables():
    for name in ("report", "resend"):
        text = " ".join(CliRunner().invoke(cli, [name, "--help"]).output.split())
        for variable in ("DATABAND_URL", "DATABAND_ACCESS_TOKEN", "GITLAB_TOKEN", "DATABAND_LOG_LINES"):
            assert f"[env: {variable}]" in text, (name, variable)
        assert "--json" in text and "tree" in text


# -- hints ---------------------------------------------------------------------------------------


def strings_of(path: Path) -> list[str]:
    """Every string literal of a module that reads as text (f-strings' literal parts included), not
    its docstrings; a lone word such as "--password", a pattern the masking looks for, is no hint."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and " " in node.value
            and id(node) not in docstrings]


HINTS = [(path.name, text) for path in sorted(REPORTER.rglob("*.py")) for text in strings_of(path)]
ALL_FLAGS = {flag for command in cli.commands.values() for flag in options(command)} | {"--help", "--version"}
# Flags of other programs the messages quote on purpose.
OTHERS = {"--index-url", "--conf"}  # pip's, spark-submit's
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
RUN = re.compile(r"\b(report|resend|sweep|parent-env)((?: --[a-z][a-z0-9-]*(?: (?!--)[^\s,;)]+)?)+)")


def test_the_scan_sees_the_hints_it_must_check():
    flags = {flag for _, text in HINTS for flag in FLAG.findall(text)}
    assert {"--from-file", "--dry-run", "--pipeline", "--target"} <= flags
    assert any(RUN.search(text) for _, text in HINTS)


def test_every_flag_a_message_names_exists():
    unknown = {(where, flag) for where, text in HINTS for flag in FLAG.findall(text)
               if flag not in ALL_FLAGS | OTHERS}
    assert not unknown, f"hints name flags the CLI does not have: {sorted(unknown)}"


def test_every_command_line_a_message_gives_is_one_the_cli_takes():
    wrong = []
    for where, text in HINTS:
        for match in RUN.finditer(text):
            command = cli.commands[match[1]]
            have = set(options(command))
            wrong += [(where, match[0], flag) for flag in FLAG.findall(match[2]) if flag not in have]
    assert not wrong, wrong
    named = {word for _, text in HINTS for word in re.findall(r"databand-gitlab-reporter ([a-z][a-z-]*)", text)}
    assert named <= set(cli.commands), named - set(cli.commands)


def test_no_hint_is_masked_on_its_way_out():
    """Every message goes through the masking before it is printed: a hint that looks like a secret
    ("token: check ...") would reach the user as "[MASKED] ..."."""
    from reporter.redact import Redactor

    redact = Redactor([])
    masked = [(where, text) for where, text in HINTS if redact(text) != text]
    assert not masked, masked


# -- the README says what the code does --------------------------------------------------------


def test_the_readme_status_table_is_event_type():
    from reporter.status import EVENT_TYPE

    reference = (REPORTER.parent / "docs" / "reference.md").read_text()
    section = reference.split("\n### What Databand shows\n", 1)[1].split("\n### ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and re.fullmatch(r"[a-z_]+", cells[0].split(" (")[0]):
            table[cells[0].split(" (")[0]] = cells[1].split()[0].rstrip(",")
    assert table == EVENT_TYPE
    assert "| a status this version does not know | OTHER" in section


def test_help_and_usage_errors_load_neither_gitlab_nor_requests():
    """--help answers in a tenth of a second: the library behind the commands (python-gitlab,
    requests) loads when a command runs, not when the command line is parsed."""
    import subprocess
    import sys

    code = ("import sys; from reporter.cli import main\n"
            "sys.argv = ['databand-gitlab-reporter'] + sys.argv[1:]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gitlab', 'requests', 'urllib3')))")
    for args in (["--help"], ["report", "--help"], ["resend", "--help"], ["sweep", "--help"], ["parent-env", "--help"],
                 ["sweep", "--status", "nope"]):
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
        assert done.stdout.strip().splitlines()[-1] == "[]", (args, done.stdout[-300:])


@pytest.mark.parametrize("name", ["", *sorted(cli.commands)])
def test_every_command_help_has_examples_that_name_only_real_flags(name):
    import shlex

    text = CliRunner().invoke(cli, [name, "--help"] if name else ["--help"], terminal_width=100).output
    assert "Examples" in text, f"{name} --help has no examples"
    examples = [line.strip() for line in text.splitlines() if line.strip().startswith("databand-gitlab-reporter ")
                or "$(databand-gitlab-reporter " in line]
    assert examples, text
    for line in examples:
        words = shlex.split(line.split("$(", 1)[-1].rstrip(')"'))
        assert words[1] in cli.commands, line
        flags = {w.split("=")[0] for w in words if w.startswith("--")}
        assert flags <= set(options(cli.commands[words[1]])) | {"--help"}, line
