"""What the project ships besides the code: the license, the built metadata, the changelog, and the
image's Dockerfile and build context."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from reporter import __version__

REPO = Path(__file__).resolve().parent.parent
# sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt, byte for byte (Debian ships the same
# file as /usr/share/common-licenses/Apache-2.0).
APACHE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def test_license_is_the_apache_2_0_text_pyproject_names():
    text = (REPO / "LICENSE").read_bytes()
    assert hashlib.sha256(text).hexdigest() == APACHE_2_0_SHA256, "LICENSE is not the verbatim Apache-2.0 text"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^license = "Apache-2.0"$', pyproject, re.M)
    assert re.search(r'^license-files = \["LICENSE"\]$', pyproject, re.M)


def _build_floor(pyproject: str) -> tuple[int, ...]:
    requires = re.search(r'^requires = \["setuptools>=([0-9.]+)"\]$', pyproject, re.M)
    assert requires, "the build-system must require setuptools with a floor"
    return tuple(int(part) for part in requires[1].split("."))


@pytest.mark.slow  # pip's isolated build fetches setuptools from the package index
def test_the_build_floor_writes_the_license_as_an_spdx_expression(tmp_path):
    """setuptools before 77 refuses `license = "Apache-2.0"` (a table was required) or writes it
    as a classifier; 77 writes License-Expression and License-File (metadata 2.4). The wheel is
    built from a copy of the files it is made of, in pip's isolated build environment, so that the
    floor pyproject states is what builds it."""
    assert _build_floor((REPO / "pyproject.toml").read_text()) >= (77,)
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "reporter", source / "reporter", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PIP_NO_BUILD_ISOLATION"}
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-cache-dir",
                            str(source), "-w", str(tmp_path / "wheels")],
                           capture_output=True, text=True, env=env, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    assert wheel.name == f"databand_gitlab_reporter-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        info = f"databand_gitlab_reporter-{__version__}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        shipped = archive.read(f"{info}/licenses/LICENSE")
    headers = metadata.split("\n\n", 1)[0].splitlines()
    assert "License-Expression: Apache-2.0" in headers, headers
    assert "License-File: LICENSE" in headers
    assert not any(line.startswith("License: ") for line in headers), "the SPDX field, not the legacy one"
    assert shipped == (REPO / "LICENSE").read_bytes()


def test_changelog_has_unreleased_and_this_version_with_their_links():
    text = (REPO / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert headings[:2] == ["Unreleased", __version__], headings
    for heading in headings:
        assert re.search(rf"^\[{re.escape(heading)}\]: https://", text, re.M), f"no link for {heading}"
    unreleased = text.split("## [Unreleased]", 1)[1].split("\n## [", 1)[0]
    assert re.findall(r"^### (Added|Changed|Fixed|Removed|Deprecated|Security)$", unreleased, re.M)
    assert re.search(r"^- ", unreleased, re.M), "the Unreleased section names the changes"


# -- the image ---------------------------------------------------------------------------------


def _run_instruction() -> str:
    """The Dockerfile's RUN that installs the wheel, its continuation lines joined as docker does."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    (run,) = [line[4:] for line in text.splitlines() if line.startswith("RUN ") and "pip install" in line]
    return run


def _run_in_sh(tmp_path: Path, version: str, wheels: list[str]) -> subprocess.CompletedProcess:
    """The RUN as /bin/sh runs it in the image, over a dist/ folder of these wheel names; the
    install and the check of the installed command replaced by echoes."""
    dist = tmp_path / "dist"
    dist.mkdir(parents=True)
    for name in wheels:
        (dist / name).write_bytes(b"")
    command = (_run_instruction().replace("/tmp/dist", str(dist))
               .replace("python -m pip install", "echo INSTALL")
               .replace("databand-gitlab-reporter --version", "echo INSTALLED"))
    return subprocess.run(["sh", "-c", command], env={"PATH": os.environ["PATH"], "VERSION": version},
                          capture_output=True, text=True, timeout=30)


def test_dockerfile_without_version_stops_with_one_line_that_says_what_to_pass(tmp_path):
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG VERSION$", text, re.M)
    assert text.index("ARG VERSION") < text.index("COPY dist/") < text.index("RUN ")
    wheel = f"databand_gitlab_reporter-{__version__}-py3-none-any.whl"

    missing = _run_in_sh(tmp_path / "unset", "", [wheel])
    assert missing.returncode == 1 and "INSTALL" not in missing.stdout
    (line,) = missing.stderr.splitlines()
    assert "--build-arg VERSION=X.Y.Z" in line and wheel in line, line

    other = _run_in_sh(tmp_path / "other", "9.9.9", [wheel])
    assert other.returncode == 1 and "VERSION='9.9.9'" in other.stderr and wheel in other.stderr

    given = _run_in_sh(tmp_path / "given", __version__, [wheel])
    assert given.returncode == 0, given.stderr
    assert given.stdout.split() == ["INSTALL", "--no-cache-dir", "--disable-pip-version-check", "--only-binary",
                                    ":all:", str(tmp_path / "given" / "dist" / wheel), "INSTALLED"]


def _docker_ignores(rules: list[str], path: str) -> bool:
    """Whether docker leaves `path` out of the build context: the last rule that matches the path
    or one of its parents decides (`!` re-includes); `*` does not cross a `/`, as in Go's match."""
    parts = path.split("/")
    ignored = False
    for rule in rules:
        keep = rule.startswith("!")
        pattern = rule.lstrip("!").strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            prefix = parts[:depth]
            if len(prefix) == len(pattern) and all(fnmatchcase(p, q) for p, q in zip(prefix, pattern, strict=True)):
                ignored = not keep
                break
    return ignored


def test_dockerignore_sends_the_wheel_and_nothing_of_the_checkout():
    rules = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    wheel = f"dist/databand_gitlab_reporter-{__version__}-py3-none-any.whl"
    assert not _docker_ignores(rules, wheel), "the Dockerfile copies the wheel from dist/"
    # The Dockerfile copies dist/ only; the wheel is all it installs.
    copies = re.findall(r"^COPY (\S+)", (REPO / "Dockerfile").read_text(), re.M)
    assert copies == ["dist/"]
    for path in (".venv/bin/python", ".venv-dbt/bin/dbt-ol", ".git/config", ".pytest_cache/v/x",
                 ".hypothesis/examples/x", "reporter/__pycache__/cli.cpython-312.pyc", "tests/test_units.py",
                 "node_modules/x/index.js", ".gitlab-ci-local/output/x.log", "build/lib/reporter/cli.py",
                 "databand-events.json", "databand-unsent-9001-20261124T101500Z.json",
                 "databand_gitlab_reporter.egg-info/PKG-INFO", "dist/databand_gitlab_reporter-0.1.0.tar.gz"):
        assert _docker_ignores(rules, path), f"{path} would go into the image's build context"


@pytest.mark.parametrize("rules, path, ignored", [
    (["*"], "a/b", True),
    (["*", "!dist/*.whl"], "dist/x.whl", False),
    (["*", "!dist/*.whl"], "dist/x.tar.gz", True),
    (["*.json"], "sub/x.json", False),  # `*` stays within one folder
    ([".venv*"], ".venv-dbt/bin/python", True),
])
def test_the_dockerignore_reading_matches_dockers_rules(rules, path, ignored):
    assert _docker_ignores(rules, path) is ignored
