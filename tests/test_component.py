"""The CI/CD component (templates/report.yml), the project's .gitlab-ci.yml, and their proof in a runner.

The static tests read the component as GitLab does: its `spec:` header, then its jobs with every
`$[[ inputs.NAME ]]` replaced (an interpolation that is a whole value keeps the input's type), and
validate the header, the rendered jobs, the project's pipeline, the sample pipelines and the YAML
examples of the README and docs/ against GitLab's CI schema (check-jsonschema's vendor.gitlab-ci).
They also check that every input is used, documented in the README's inputs table and checked like
GitLab checks it.

The tests whose names contain `gitlab_ci_local` run real pipelines with gitlab-ci-local's shell
executor against the GitLab and Databand stand-ins on 127.0.0.1:

* tests/sample_project/.gitlab-ci.yml, a user's pipeline (a passing job, a failing job with
  allow_failure, a failing job) that includes the component: its `.post` job installs the reporter
  from this checkout and reports the pipeline, as the GitLab stand-in describes it, to Databand;
* tests/sample_project/after-script.gitlab-ci.yml: a failing data job reports from its after_script;
* tests/sample_project/unavailable-package.gitlab-ci.yml: the report job in a shell without the
  reporter, pip pointed at an empty index: it fails with one line naming the inputs to set;
* this project's .gitlab-ci.yml: its component-self-test job, in dry-run mode, with only a job token.

gitlab-ci-local resolves `component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/report@$CI_COMMIT_SHA` from
the working tree when project and commit are the repository's own, so each pipeline runs in a new
git repository (remote `origin` on gitlab.example.com) holding the pipeline and templates/.
gitlab-ci-local 4.69.0 never starts a `when: always` job after a job it skipped, so the sample has
no stage after its failing job. It gives project id 1217, a pipeline id of its own and random job
ids: the tests force CI_PIPELINE_ID and CI_JOB_ID (that of the job that runs the reporter) with
--variable, and point CI_SERVER_URL at the GitLab stand-in. The runs take up to about 15 s each,
mostly pip building and installing the reporter. They need gitlab-ci-local (GITLAB_CI_LOCAL, PATH
or .venv/gitlab-ci-local) and rsync; they skip without them, except under CI=true, where they fail.
.ci/run installs both.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import olschema
from reporter import __version__, ids
from standins import DatabandStandIn, GitLabStandIn, make_job, make_pipeline, make_project

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "templates" / "report.yml"
PROJECT_PIPELINE = REPO / ".gitlab-ci.yml"
README = REPO / "README.md"
REFERENCE = REPO / "docs" / "reference.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]
SAMPLE = Path(__file__).resolve().parent / "sample_project"

GITLAB_CI_LOCAL_VERSION = "4.69.0"
GITLAB_CI_LOCAL_HOME = REPO / ".venv" / "gitlab-ci-local"
IN_CI = os.environ.get("CI") == "true"  # read at import: conftest clears CI for each test

INTERPOLATION = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")
COMPONENT_VERSION = re.compile(r"\$\[\[\s*component\.version\s*\]\]")
IMAGE = "registry.gitlab.com/databand-gitlab-reporter/databand-gitlab-reporter"
GLOBAL_KEYWORDS = {"default", "include", "stages", "variables", "workflow", "image", "services",
                   "cache", "before_script", "after_script", "pages"}


# --------------------------------------------------------------------------
# Reading the component as GitLab does
# --------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML with GitLab's !reference tag, read as the list it names."""


_Loader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))


def load_yaml(text: str):
    return yaml.load(text, Loader=_Loader)


def template_parts() -> tuple[dict, str]:
    """The `spec:` header, parsed, and the jobs' text, not yet interpolated."""
    header, separator, jobs = TEMPLATE.read_text().partition("\n---\n")
    assert separator, "templates/report.yml needs a spec: header, then ---, then the jobs"
    return load_yaml(header), jobs


def spec_inputs() -> dict:
    return template_parts()[0]["spec"]["inputs"]


class InputError(ValueError):
    pass


def resolve(given: dict) -> dict:
    """The inputs' values: defaults, then the given ones, checked for type, options and regex."""
    inputs = spec_inputs()
    unknown = set(given) - set(inputs)
    if unknown:
        raise InputError(f"unknown inputs {sorted(unknown)}")
    types = {"string": str, "boolean": bool, "number": (int, float), "array": list}
    values = {}
    for name, spec in inputs.items():
        if name not in given and "default" not in spec:
            raise InputError(f"{name}: required value has not been provided")
        value = given.get(name, spec.get("default"))
        expected = types[spec.get("type", "string")]
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise InputError(f"{name}: provided value is not a {spec.get('type', 'string')}")
        if "options" in spec and value not in spec["options"]:
            raise InputError(f"{name}: {value!r} is not one of {spec['options']}")
        if "regex" in spec and not re.search(spec["regex"], value):
            raise InputError(f"{name}: {value!r} does not match {spec['regex']}")
        values[name] = value
    return values


def render(given: dict | None = None, version: str = "") -> dict:
    """The component's jobs as GitLab adds them to a pipeline, with these inputs, included at this
    release (`version` empty: by branch or SHA, where GitLab gives no version)."""
    values = resolve(given or {})

    def as_text(value) -> str:
        return ("true" if value else "false") if isinstance(value, bool) else str(value)

    def interpolate(node):
        if isinstance(node, str):
            node = COMPONENT_VERSION.sub(version, node)
            whole = INTERPOLATION.fullmatch(node)
            if whole:
                return values[whole[1]]
            return INTERPOLATION.sub(lambda match: as_text(values[match[1]]), node)
        if isinstance(node, dict):
            return {interpolate(key): interpolate(value) for key, value in node.items()}
        if isinstance(node, list):
            return [interpolate(item) for item in node]
        return node

    return interpolate(load_yaml(template_parts()[1]))


# Every input set to something other than its default, as a user might.
NON_DEFAULTS = {
    "stage": "report",
    "job_name": "lineage report",
    "image": "registry.example.com/python:3.11",
    "package": "databand-gitlab-reporter>=0.1,<1",
    "pip_options": "--index-url https://pypi.example.com/simple",
    "databand_url": "https://databand.example.com/api/v1/tracking/open-lineage/3a8b/events/bulk",
    "args": "--log-lines 50 --pipeline-name nightly-load",
    "allow_failure": False,
    "resend_job": True,
    "git_strategy": "fetch",
    "artifacts_expire_in": "2 days",
}


def check_jsonschema(tmp_path: Path, documents: dict[str, object]) -> None:
    """Validate each document against GitLab's CI schema (check-jsonschema's vendor.gitlab-ci)."""
    executable = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or \
        shutil.which("check-jsonschema")
    assert executable, "check-jsonschema is not installed: pip install -e '.[test]'"
    paths = []
    for name, document in documents.items():
        path = tmp_path / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.json"
        path.write_text(json.dumps(document))
        paths.append(str(path))
    result = subprocess.run([executable, "--builtin-schema", "vendor.gitlab-ci", *paths],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def readme_inputs_table() -> dict[str, tuple[str, str]]:
    """input -> (type, default) from the README's inputs table."""
    section = readme_section("In a pipeline: the CI/CD component")
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"`[A-Za-z0-9_-]+`", cells[0]) and cells[1] in (
                "string", "boolean", "number", "array"):
            rows[cells[0].strip("`")] = (cells[1], cells[2])
    return rows


# --------------------------------------------------------------------------
# The component's template
# --------------------------------------------------------------------------


def test_template_header_and_rendered_jobs_validate_against_gitlab_ci_schema(tmp_path):
    header, _ = template_parts()
    assert set(header) == {"spec"}
    check_jsonschema(tmp_path, {
        "spec-header": header,
        "jobs-with-defaults": render(),
        "jobs-at-a-release": render(version="1.2.3"),
        "jobs-with-every-input-set": render(NON_DEFAULTS),
    })


def test_every_input_is_typed_described_and_has_a_default():
    for name, spec in spec_inputs().items():
        assert spec.get("type") in ("string", "boolean", "number", "array"), name
        assert len(spec.get("description", "")) > 20, f"{name} has no description"
        assert "default" in spec, f"{name} has no default: the include must work without inputs"
        resolve({name: spec["default"]})  # the default passes its own options and regex


def test_every_input_is_used_in_the_jobs_and_nothing_else_is_interpolated():
    inputs = spec_inputs()
    _, jobs = template_parts()
    for name in inputs:
        assert f"$[[ inputs.{name} ]]" in jobs, f"input {name} is never used"
    assert set(INTERPOLATION.findall(jobs)) <= set(inputs)
    assert set(NON_DEFAULTS) == set(inputs), "NON_DEFAULTS must set every input"
    for name, value in NON_DEFAULTS.items():
        assert value != inputs[name]["default"], name


def test_every_input_is_in_the_readme_inputs_table_with_its_type_and_default():
    inputs = spec_inputs()
    table = readme_inputs_table()
    assert set(table) == set(inputs), "the README's inputs table and the spec list different inputs"
    for name, spec in inputs.items():
        kind, default = table[name]
        assert kind == spec["type"], name
        value = spec["default"]
        shown = ("true" if value else "false") if isinstance(value, bool) else (value or '""')
        assert default == f"`{shown}`", f"README default of {name} is {default}, the spec's {value!r}"


def test_the_default_package_is_this_release_and_the_readme_includes_it():
    assert spec_inputs()["package"]["default"] == f"databand-gitlab-reporter=={__version__}"
    section = readme_section("In a pipeline: the CI/CD component")
    versions = set(re.findall(r"/databand-gitlab-reporter/report@([0-9.]+)", section))
    assert versions == {__version__}


def test_report_job_runs_last_after_failures_too_and_never_fails_the_pipeline_by_default():
    jobs = render()
    assert not GLOBAL_KEYWORDS & set(jobs), "a component must not set global keywords"
    assert all(isinstance(job, dict) for job in jobs.values())
    job = jobs["databand-report"]
    assert job["stage"] == ".post"
    assert [rule["when"] for rule in job["rules"]] == ["always"] * 3, "after failures too, whatever the image"
    assert job["allow_failure"] is True
    assert "needs" not in job, "it must wait for every stage"
    assert job["dependencies"] == []
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["expire_in"] == "1 week"
    assert set(job["artifacts"]["paths"]) == {"databand-events.json", "databand-unsent-*.json"}
    # The job page's link to Databand that the reporter writes (GitLab 16.3+).
    assert job["artifacts"]["reports"] == {"annotations": "databand-annotations.json"}
    script = "\n".join(job["script"])
    assert "command -v databand-gitlab-reporter" in script, "the reporter's image needs no install"
    assert 'python3 -m venv --without-pip "$databand_venv"' in script
    assert ('python3 -m pip --python "$databand_venv/bin/python" install --quiet --only-binary :all:  '
            '"databand-gitlab-reporter==') in script
    assert ('report --databand-url "$DATABAND_URL" --exclude-job "databand-report*" '
            '--output databand-events.json') in script
    assert job["variables"]["GIT_STRATEGY"] == "none"

    strict = render({"allow_failure": False, "job_name": "lineage", "stage": "report"})
    assert strict["lineage"]["allow_failure"] is False
    assert strict["lineage"]["stage"] == "report"
    assert {"lineage", "lineage-resend", ".lineage-after-script"} == set(strict)


def _holds(expression: str, variables: dict) -> bool:
    """Evaluate a rules:if the way GitLab does for the forms the templates use, joined by &&:
    `$VAR` (set and not empty) and `$VAR == "text"`, over the job's variables."""
    results = []
    for part in expression.split(" && "):
        match = re.fullmatch(r'\$([A-Z_]+)(?: (==|!=) "([^"]*)")?', part.strip())
        assert match, expression
        value = str(variables.get(match[1], ""))
        results.append(bool(value) if match[2] is None else (value == match[3]) == (match[2] == "=="))
    return all(results)


def _first_rule(job: dict, pipeline: dict | None = None) -> dict | None:
    """The rule GitLab applies: the first whose `if` holds (a rule without `if` always holds)."""
    variables = {**(pipeline or {}), **job.get("variables", {})}
    return next((rule for rule in job["rules"] if "if" not in rule or _holds(rule["if"], variables)), None)


@pytest.mark.parametrize("given, version, image", [
    ({}, "1.2.3", f"{IMAGE}:1.2.3"),  # a release: its own image, nothing to install
    ({}, "", "python:3.12-slim"),  # by branch or SHA: no release, so no image of its own
    ({"image": "registry.example.com/python:3.11"}, "1.2.3", "registry.example.com/python:3.11"),
])
def test_the_report_runs_in_the_reporters_image_of_its_release_unless_told(given, version, image):
    for name in ("databand-report", "databand-report-resend"):
        job = render({**given, "resend_job": True}, version=version)[name]
        assert job["image"] == "$DATABAND_REPORTER_IMAGE"
        assert _first_rule(job)["variables"] == {"DATABAND_REPORTER_IMAGE": image}


def test_the_image_pipeline_publishes_what_the_component_pulls():
    pipeline = load_yaml(PROJECT_PIPELINE.read_text())
    job = pipeline["publish-image"]
    script = "\n".join(job["script"])
    assert '--tag "$CI_REGISTRY_IMAGE:$CI_COMMIT_TAG"' in script and "docker push" in script
    assert job["rules"] == pipeline["publish"]["rules"], "on release tags, like the package"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "dist/databand_gitlab_reporter-${VERSION}-py3-none-any.whl" in dockerfile
    assert "--only-binary :all:" in dockerfile


def test_resend_job_is_manual_on_request_only_and_never_blocks_the_pipeline():
    off = render()["databand-report-resend"]
    assert _first_rule(off) is None  # never added
    on = render({"resend_job": True})["databand-report-resend"]
    rule = _first_rule(on)
    assert rule["when"] == "manual"
    assert rule["allow_failure"] is True  # a manual job from rules would otherwise block
    assert all(r["when"] == "manual" and r["allow_failure"] is True for r in on["rules"])
    assert on["needs"] == [], "playable whatever happened to the stages"
    assert on["script"] == render()["databand-report"]["script"]
    assert on["artifacts"]["when"] == "always"


def test_after_script_lines_report_with_the_jobs_own_status_and_cannot_fail_it():
    hidden = render()[".databand-report-after-script"]
    assert set(hidden) == {"after_script"}
    lines = hidden["after_script"]
    joined = "\n".join(lines)
    assert "report --databand-url" in joined and "--output" not in joined
    assert "|| echo" in joined, "a failed report must not stop the after_script"
    assert lines[-1].startswith("rm -rf")
    # The documented example (docs/reference.md, which the README links) uses exactly this hidden job.
    assert "!reference [.databand-report-after-script, after_script]" in REFERENCE.read_text()
    assert "docs/reference.md#from-a-jobs-after_script" in README.read_text()


# -- the pip path when the package cannot be installed ------------------------------------------


def _install_step(script: list[str]) -> str:
    (step,) = [line for line in script if "command -v databand-gitlab-reporter" in line]
    return step


def path_without_the_reporter(folder: Path) -> str:
    """A PATH on which databand-gitlab-reporter is not found and python3 is this test's Python (with
    pip), as in an image that lacks the reporter."""
    folder.mkdir(parents=True, exist_ok=True)
    python3 = folder / "python3"
    python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python3.chmod(0o755)
    kept = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not os.access(os.path.join(d, "databand-gitlab-reporter"), os.X_OK)]
    return os.pathsep.join([str(folder), *kept])


def _job_shell_env(tmp_path: Path) -> dict:
    # No pip configuration of this machine (a find-links folder, an extra index) may reach pip.
    return {"PATH": path_without_the_reporter(tmp_path / "bin"), "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
            "CI_JOB_ID": "7004", "CI_JOB_TOKEN": "job-token-that-must-not-show", "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def assert_one_line_naming_the_inputs(output: str, package: str) -> str:
    """The install's failure ends in exactly one line of ours, last, naming the three inputs."""
    ours = [line for line in output.splitlines() if "Set the component input" in line]
    assert len(ours) == 1, output
    line = ours[0]
    assert line.startswith("databand-gitlab-reporter: error: pip could not install ") and package in line, line
    for name in ("package", "pip_options", "image"):
        assert re.search(rf"\b{name} to ", line), (name, line)
    assert "only once its release is published" in line
    return line


@pytest.mark.parametrize("template, package", [
    ("report", None),  # the default: a release no index here has
    ("report", "file:///nonexistent/${CI_JOB_TOKEN}/databand_gitlab_reporter-0.1.0-py3-none-any.whl"),
    ("sweep", None),
])
def test_pip_path_that_cannot_install_fails_the_job_with_one_line_naming_the_inputs(template, package, tmp_path):
    """The job's install step, run by bash as GitLab's runner runs a script (errexit, pipefail),
    in an image without the reporter, pip pointed at an empty local index."""
    empty_index = tmp_path / "empty-index"
    empty_index.mkdir()
    given = {"pip_options": f"--no-index --find-links {empty_index}", **({"package": package} if package else {})}
    if template == "report":
        job = render(given)["databand-report"]
    else:
        from test_sweep import render_sweep

        job = render_sweep(given)[1]["databand-sweep"]
    expected = package or f"databand-gitlab-reporter=={__version__}"
    step = _install_step(job["script"])
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", f'{step}\necho "not reached"'], cwd=tmp_path,
                          env=_job_shell_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not reached" not in done.stdout
    line = assert_one_line_naming_the_inputs(done.stderr, expected)
    assert done.stderr.rstrip().splitlines()[-1] == line, "the hint is the last line of the job's log"
    assert "job-token-that-must-not-show" not in line, "the inputs' text as written, nothing expanded"


def test_after_script_lines_that_cannot_install_say_so_once_and_leave_the_job_alone(tmp_path):
    empty_index = tmp_path / "empty-index"
    empty_index.mkdir()
    lines = render({"pip_options": f"--no-index --find-links {empty_index}"})[".databand-report-after-script"]
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", lines["after_script"][0]], cwd=tmp_path,
                          env=_job_shell_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_one_line_naming_the_inputs(done.stderr, f"databand-gitlab-reporter=={__version__}")
    assert "databand-gitlab-reporter did not report (exit code 127); the job's result is unchanged" in done.stdout


@pytest.mark.parametrize("given", [
    {"package": 'databand-gitlab-reporter" ; curl evil'},
    {"package": "databand-gitlab-reporter >= 1"},
    {"databand_url": "databand.example.com/events"},
    {"databand_url": "https://databand.example.com/$(id)"},
    {"databand_url": ""},
    {"job_name": ".hidden"},
    {"git_strategy": "submodules"},
    {"allow_failure": "yes"},
    {"resend_job": 1},
    {"no_such_input": "x"},
])
def test_inputs_are_refused_like_gitlab_refuses_them(given):
    with pytest.raises(InputError):
        resolve(given)


@pytest.mark.parametrize("given", [
    {"databand_url": "$DATABAND_URL"},
    {"databand_url": "${DATABAND_PROD_URL}"},
    {"databand_url": "https://databand.example.com:8443/api/v1/tracking/open-lineage/ab-12/events/bulk"},
    {"package": "$CI_PROJECT_DIR"},
    {"package": "https://gitlab.example.com/api/v4/projects/7/packages/pypi/files/x/databand.whl"},
    {"package": "databand-gitlab-reporter>=0.1,<1"},
    {"job_name": "databand report: nightly"},
])
def test_inputs_users_write_are_accepted(given):
    resolve(given)


# --------------------------------------------------------------------------
# The project's pipeline, the samples and the docs' examples
# --------------------------------------------------------------------------


def doc_yaml_examples() -> dict[str, object]:
    """Every CI/CD YAML example of the README and docs/, by where it is, `<group>` filled in. A block
    that names another file after `yaml` (a security policy) is not CI/CD configuration."""
    examples = {}
    for path in DOCS:
        for number, block in enumerate(re.findall(r"^```yaml\n(.*?)^```", path.read_text(), re.S | re.M)):
            examples[f"{path.stem}-example-{number}"] = load_yaml(block.replace("<group>", "acme"))
    return examples


def test_project_pipeline_samples_and_doc_examples_validate_against_gitlab_ci_schema(tmp_path):
    documents = {"project-pipeline": load_yaml(PROJECT_PIPELINE.read_text())}
    for path in sorted(SAMPLE.glob("*.yml")) + sorted(SAMPLE.glob(".gitlab-ci.yml")):
        documents[f"sample-{path.name}"] = load_yaml(path.read_text())
    examples = doc_yaml_examples()
    readme = [name for name in examples if name.startswith("README-")]
    assert len(readme) >= 4 and len(examples) >= 7, sorted(examples)
    assert any(isinstance(job, dict) and "after_script" in job for example in examples.values()
               for job in example.values()), "the after_script example (docs/reference.md) is validated too"
    documents.update(examples)
    check_jsonschema(tmp_path, documents)


def test_project_pipeline_lints_tests_every_python_builds_self_tests_publishes_and_releases():
    pipeline = load_yaml(PROJECT_PIPELINE.read_text())
    (include,) = pipeline["include"]
    assert include["component"] == "$CI_SERVER_FQDN/$CI_PROJECT_PATH/report@$CI_COMMIT_SHA"
    inputs = include["inputs"]
    resolve(inputs)
    assert "--dry-run" in inputs["args"].split()
    assert inputs["allow_failure"] is False, "a broken component must fail the project's pipeline"
    assert pipeline["stages"].index(inputs["stage"]) < pipeline["stages"].index("publish")

    assert "ruff check" in " ".join(pipeline["lint"]["script"])
    matrix = pipeline["test"]["parallel"]["matrix"][0]["PYTHON_VERSION"]
    pyproject = (REPO / "pyproject.toml").read_text()
    lowest = re.search(r'requires-python = ">=3\.(\d+)"', pyproject)[1]
    assert matrix[0] == f"3.{lowest}"
    assert [int(v.split(".")[1]) for v in matrix] == list(range(int(lowest), int(lowest) + len(matrix)))
    assert "python -m build" in pipeline["build"]["script"]
    assert "bash .ci/run" in pipeline["e2e"]["script"]

    tag_rule = pipeline["publish"]["rules"][0]["if"]
    pattern = re.search(r"=~ /(.*)/$", tag_rule)[1]
    assert re.search(pattern, "1.2.3") and not re.search(pattern, "v1.2.3")
    assert pipeline["release"]["rules"] == pipeline["publish"]["rules"]
    assert any("/packages/pypi" in line for line in pipeline["publish"]["script"])
    assert pipeline["release"]["release"]["tag_name"] == "$CI_COMMIT_TAG"


# --------------------------------------------------------------------------
# Real pipelines in gitlab-ci-local
# --------------------------------------------------------------------------

SKIP_COPY = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
                                   ".pytest_cache", ".hypothesis", "node_modules", ".gitlab-ci-local",
                                   "databand-*.json")


def find_gitlab_ci_local() -> str | None:
    candidates = [os.environ.get("GITLAB_CI_LOCAL"), shutil.which("gitlab-ci-local"),
                  str(GITLAB_CI_LOCAL_HOME / "node_modules" / ".bin" / "gitlab-ci-local")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="module")
def gitlab_ci_local() -> str:
    found = find_gitlab_ci_local()
    missing = [] if found else [
        "gitlab-ci-local (npm install --prefix .venv/gitlab-ci-local "
        f"gitlab-ci-local@{GITLAB_CI_LOCAL_VERSION}, "
        "or set GITLAB_CI_LOCAL to its path)"]
    missing += [f"{tool} (apt-get install {tool})" for tool in ("rsync", "git") if not shutil.which(tool)]
    if missing:
        message = "the gitlab-ci-local tests need " + " and ".join(missing) + "; .ci/run installs them"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of this checkout, working-tree changes included: what the jobs pip install."""
    copy = tmp_path_factory.mktemp("checkout") / "databand-gitlab-reporter"
    shutil.copytree(REPO, copy, ignore=SKIP_COPY)
    return copy


def _clean_env() -> dict:
    # Nothing of an outer CI job (its CI_JOB_TOKEN, CI_SERVER_URL, ...) may reach the jobs run here.
    drop = ("CI_", "GITLAB_", "DATABAND_", "GCL_", "GIT_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "CI"}


def make_repository(folder: Path, project_path: str) -> str:
    """Turn folder into a git repository whose origin is project_path on gitlab.example.com."""
    def git(*args):
        return subprocess.run(["git", "-c", "user.name=Sample", "-c", "user.email=sample@example.com",
                               "-c", "commit.gpgsign=false", *args], cwd=folder, env=_clean_env(),
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "--quiet", "--initial-branch=main")
    git("remote", "add", "origin", f"https://gitlab.example.com/{project_path}.git")
    git("add", "--all")
    git("commit", "--quiet", "--message", "Sample pipeline")
    git("update-ref", "refs/remotes/origin/main", "HEAD")
    git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    return git("rev-parse", "HEAD")


def sample_repository(tmp_path: Path) -> tuple[Path, str]:
    """The sample project with this checkout's component in templates/, as a git repository."""
    folder = tmp_path / "sample"
    shutil.copytree(SAMPLE, folder, ignore=SKIP_COPY)
    shutil.copytree(REPO / "templates", folder / "templates")
    return folder, make_repository(folder, "acme/sample")


def run_pipeline(gitlab_ci_local: str, cwd: Path, variables: dict, *args: str,
                 env: dict | None = None) -> tuple[int, str]:
    """Run the pipeline (or the jobs named in args) in cwd; (exit code, stdout and stderr in order).

    Every job of the run sees the --variable values, CI_JOB_ID included: only the job that runs the
    reporter reads it, and it must match that job's id on the GitLab stand-in. `env` adds to (or
    replaces) the environment the shell executor's jobs inherit.
    """
    forced = ["CI_SERVER_URL", "CI_API_V4_URL", "CI_PIPELINE_ID", "CI_JOB_ID", "CI_JOB_TOKEN",
              "CI_PROJECT_DIR", "GITLAB_CI"]
    command = [gitlab_ci_local, "--force-shell-executor", "--no-color",
               "--home", str(cwd.parent / "gcl-home"), "--ignore-predefined-vars", ",".join(forced)]
    for name, value in variables.items():
        command += ["--variable", f"{name}={value}"]
    result = subprocess.run([*command, *args], cwd=cwd, env={**_clean_env(), **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=300)
    return result.returncode, result.stdout


def outcome(output: str, job: str) -> str | None:
    """PASS, WARN or FAIL from gitlab-ci-local's closing report."""
    match = re.search(rf"^\s*(PASS|WARN|FAIL)\s+{re.escape(job)}\s", output, re.M)
    return match[1] if match else None


def standin_variables(gitlab, pipeline_id: int, job_id: int) -> dict:
    return {"CI_SERVER_URL": gitlab.url, "CI_API_V4_URL": f"{gitlab.url}/api/v4",
            "CI_PIPELINE_ID": str(pipeline_id), "CI_JOB_ID": str(job_id)}


def project_dir(folder: Path) -> dict:
    # gitlab-ci-local sets CI_PROJECT_DIR=/builds/<group>/<project> for a job with an image, even
    # with --force-shell-executor, where the job runs in the repository itself, as a shell runner does.
    return {"CI_PROJECT_DIR": str(folder)}


def by_name(events: list[dict]) -> dict[str, dict]:
    return {event["job"]["name"]: event for event in events}


def tags(event: dict) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in event["run"]["facets"]["tags"]["tags"]}


def gitlab_log(*commands_and_lines: str, exit_code: int) -> bytes:
    """A job log as GitLab's trace endpoint serves it, for the stand-in."""
    body = "".join(f"{line}\n" for line in commands_and_lines)
    return f"Running with gitlab-runner 17.5.0\n{body}ERROR: Job failed: exit code {exit_code}\n".encode()


SAMPLE_PIPELINE_ID = 4242
REPORT_JOB_ID = 7004


def test_gitlab_ci_local_sample_pipeline_reports_itself_through_the_component(
        gitlab_ci_local, checkout, tmp_path):
    folder, sha = sample_repository(tmp_path)
    with GitLabStandIn() as gitlab, DatabandStandIn() as databand:
        # What GitLab says while the .post job runs: the stages are over, the reporter runs, the
        # manual resend job waits to be played.
        project = make_project(gitlab.url, id=1217, path="acme/sample")
        pipeline = make_pipeline(project, SAMPLE_PIPELINE_ID, status="running", sha=sha)
        jobs = [
            make_job(project, pipeline, 7001, "compile", "build", "success"),
            make_job(project, pipeline, 7002, "lint", "test", "failed", allow_failure=True),
            make_job(project, pipeline, 7003, "unit", "test", "failed"),
            make_job(project, pipeline, REPORT_JOB_ID, "databand-report", ".post", "running"),
            make_job(project, pipeline, 7005, "databand-report-resend", ".post", "manual",
                     allow_failure=True),
        ]
        traces = {7002: gitlab_log('$ echo "lint found 3 problems"', "lint found 3 problems", "$ exit 1",
                                   exit_code=1),
                  7003: gitlab_log('$ echo "1 of 12 tests failed"', "1 of 12 tests failed", "$ exit 1",
                                   exit_code=1)}
        gitlab.add_pipeline(project, pipeline, jobs, traces=traces)

        code, output = run_pipeline(gitlab_ci_local, folder, {
            **standin_variables(gitlab, SAMPLE_PIPELINE_ID, REPORT_JOB_ID),
            "GITLAB_CI": "true",  # as on GitLab's runners (gitlab-ci-local says false)
            "GITLAB_TOKEN": gitlab.token,
            "DATABAND_URL": databand.url,
            "DATABAND_ACCESS_TOKEN": databand.token,
            "REPORTER_SOURCE": str(checkout),
        })

        # The runner: the jobs ended as the stand-in says, and the report job ran after the failure.
        assert code == 1, output  # unit failed, so the pipeline failed
        assert {job: outcome(output, job) for job in ("compile", "lint", "unit", "databand-report")} == \
            {"compile": "PASS", "lint": "WARN", "unit": "FAIL", "databand-report": "PASS"}, output
        assert "databand-report-resend" not in re.findall(r"^(\S+)\s+starting", output, re.M)
        started = re.search(r"^databand-report\s+starting", output, re.M)
        unit_failed = re.search(r"^unit\s+finished in .* FAIL", output, re.M)
        assert started and unit_failed and started.start() > unit_failed.start(), output
        report_log = (folder / ".gitlab-ci-local" / "output" / "databand-report.log").read_text()
        # The summary in GitLab's collapsible section. gitlab-ci-local, like GitLab, recognises the
        # markers only byte for byte (ESC[0K section_start:<time>:<name>[options] CR ESC[0K), and then
        # writes its own line for each ("<name>_started", "<name> took <n>ms") in their place.
        # tests/test_summary.py checks the bytes themselves, header line included, through a pipe.
        section = re.search(r"^databand_report_started\n(.*?)\ndataband_report took \d+ms$", report_log, re.M | re.S)
        assert section, report_log
        body = section[1].splitlines()
        assert body[:2] == ["Pipeline status: failed", "Jobs: 3 = 1 passed, 1 failed, 1 allowed to fail"], body
        assert "Failed: unit (stage test): The script failed" in body
        assert "Failed (allowed to fail): lint (stage test): The script failed" in body
        assert "section_start" not in report_log and "\x1b" not in report_log
        # The job page's link to Databand (artifacts:reports:annotations): its host, not the endpoint.
        annotations = json.loads((folder / "databand-annotations.json").read_text())
        link = annotations["databand"][0]["external_link"]
        assert link["url"] == "http://" + databand.url.split("/")[2], link
        assert gitlab.token not in output + report_log and databand.token not in output + report_log

        # GitLab was read with GITLAB_TOKEN, failed jobs' logs included.
        assert {request.auth for request in gitlab.requests} == {"private"}
        assert gitlab.count(r"/projects/1217/pipelines/4242/jobs$") >= 1
        assert gitlab.count(r"/jobs/700[23]/trace$") == 2

        # Databand got the pipeline as GitLab describes it, in one request, minus the report job.
        assert len(databand.payloads) == 1, databand.rejected
        events = databand.events
        olschema.assert_valid(events)
        names = by_name(events)
        pipeline_name = ids.default_pipeline_name("acme/sample")

        def name(stage, job=None):
            if job is None:
                return ids.stage_job_name(pipeline_name, stage)
            return ids.job_job_name(pipeline_name, stage, job)

        root = events[0]
        assert "parent" not in root["run"]["facets"]
        assert root["job"]["name"] == pipeline_name
        assert root["eventType"] == "FAIL"  # unit failed without allow_failure
        assert tags(root)["gitlab.status"] == "failed"
        assert names[name("build", "compile")]["eventType"] == "COMPLETE"
        lint = names[name("test", "lint")]
        assert lint["eventType"] == "FAIL" and tags(lint)["gitlab.allow_failure"] == "true"
        unit = names[name("test", "unit")]
        assert unit["eventType"] == "FAIL"
        assert "1 of 12 tests failed" in unit["run"]["facets"]["log"]["logBody"]
        assert names[name("test")]["eventType"] == "FAIL"
        # The component's own jobs are left out: the running report job, and (--exclude-job) the
        # manual resend job, which would otherwise be an ABORT run in every pipeline.
        assert name(".post", "databand-report-resend") not in names
        assert name(".post") not in names
        job_ids = {tags(e)["gitlab.job_id"] for e in events
                   if e["job"]["facets"]["jobType"]["jobType"] == "JOB"}
        assert job_ids == {"7001", "7002", "7003"}

        # The artifact holds exactly what was sent.
        artifact = folder / ".gitlab-ci-local" / "artifacts" / "databand-report" / "databand-events.json"
        assert json.loads(artifact.read_text()) == events


def test_gitlab_ci_local_after_script_reports_the_job_with_its_own_status(
        gitlab_ci_local, checkout, tmp_path):
    folder, sha = sample_repository(tmp_path)
    with GitLabStandIn() as gitlab, DatabandStandIn() as databand:
        # While `load` runs its after_script GitLab still says it is running; .post is to come.
        project = make_project(gitlab.url, id=1217, path="acme/sample")
        pipeline = make_pipeline(project, 4243, status="running", sha=sha)
        jobs = [make_job(project, pipeline, 7101, "load", "build", "running"),
                make_job(project, pipeline, 7102, "databand-report", ".post", "created")]
        gitlab.add_pipeline(project, pipeline, jobs)

        code, output = run_pipeline(gitlab_ci_local, folder, {
            **standin_variables(gitlab, 4243, 7101),
            "GITLAB_TOKEN": gitlab.token,
            "DATABAND_URL": databand.url,
            "DATABAND_ACCESS_TOKEN": databand.token,
            "REPORTER_SOURCE": str(checkout),
        }, "--file", "after-script.gitlab-ci.yml", "load")

        assert code == 1 and outcome(output, "load") == "FAIL", output
        log = (folder / ".gitlab-ci-local" / "output" / "load.log").read_text()
        assert "cleaning up the staging tables" in log
        assert "Databand: pipeline 4243" in log, log
        assert len(databand.payloads) == 1, databand.rejected
        events = databand.events
        olschema.assert_valid(events)
        names = by_name(events)
        pipeline_name = ids.default_pipeline_name("acme/sample")
        load = names[ids.job_job_name(pipeline_name, "build", "load")]
        assert load["eventType"] == "FAIL", "CI_JOB_STATUS=failed, though GitLab still says running"
        # The component's report job, yet to run in .post, is left out (--exclude-job): the pipeline's
        # status is the one its other jobs give, failed.
        assert ids.job_job_name(pipeline_name, ".post", "databand-report") not in names
        assert events[0]["eventType"] == "FAIL"


def test_gitlab_ci_local_project_pipeline_self_test_reports_in_dry_run_with_the_job_token(
        gitlab_ci_local, checkout, tmp_path):
    folder = tmp_path / "databand-gitlab-reporter"
    shutil.copytree(checkout, folder, ignore=SKIP_COPY)
    sha = make_repository(folder, "acme/databand-gitlab-reporter")
    with GitLabStandIn() as gitlab:
        project = make_project(gitlab.url, id=1217, path="acme/databand-gitlab-reporter")
        pipeline = make_pipeline(project, 4250, status="running", sha=sha)
        jobs = [make_job(project, pipeline, 8001, "lint", "lint", "success"),
                make_job(project, pipeline, 8002, "test: [3.12]", "test", "success"),
                make_job(project, pipeline, 8003, "e2e", "test", "success"),
                make_job(project, pipeline, 8004, "build", "build", "success"),
                make_job(project, pipeline, 8005, "component-self-test", "self-test", "running")]
        gitlab.add_pipeline(project, pipeline, jobs)

        listed = subprocess.run([gitlab_ci_local, "--list-csv", "--no-color"], cwd=folder, env=_clean_env(),
                                capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        listed_line = re.compile(r"^component-self-test;.*;self-test;always;false;", re.M)
        assert listed_line.search(listed.stdout), listed.stdout

        code, output = run_pipeline(gitlab_ci_local, folder, {
            **standin_variables(gitlab, 4250, 8005), **project_dir(folder), "CI_JOB_TOKEN": gitlab.job_token,
        }, "component-self-test")

        assert code == 0 and outcome(output, "component-self-test") == "PASS", output
        assert {request.auth for request in gitlab.requests} == {"job"}
        artifact = folder / ".gitlab-ci-local" / "artifacts" / "component-self-test" / "databand-events.json"
        events = json.loads(artifact.read_text())
        olschema.assert_valid(events)
        pipeline_name = ids.default_pipeline_name("acme/databand-gitlab-reporter")
        assert events[0]["job"]["name"] == pipeline_name
        assert events[0]["eventType"] == "COMPLETE"
        assert ids.job_job_name(pipeline_name, "test", "test: [3.12]") in by_name(events)
        log = (folder / ".gitlab-ci-local" / "output" / "component-self-test.log").read_text()
        assert "built (dry run)" in log, log


def test_gitlab_ci_local_report_job_that_cannot_install_the_package_names_the_inputs(gitlab_ci_local, tmp_path):
    folder, _ = sample_repository(tmp_path)
    (folder / "empty-index").mkdir()
    code, output = run_pipeline(gitlab_ci_local, folder, {
        "CI_PIPELINE_ID": "4244", "CI_JOB_ID": "7201", **project_dir(folder),
    }, "--file", "unavailable-package.gitlab-ci.yml", "databand-report", env={
        "PATH": path_without_the_reporter(tmp_path / "bin"), "PIP_CONFIG_FILE": os.devnull,
    })

    # allow_failure: true, so the runner calls it a warning; the job itself failed at the install.
    assert outcome(output, "databand-report") == "WARN", output
    log = (folder / ".gitlab-ci-local" / "output" / "databand-report.log").read_text()
    line = assert_one_line_naming_the_inputs(log, f"databand-gitlab-reporter=={__version__}")
    # The script's last line; only the after_script's clean-up comes after it.
    cleanup = '$ rm -rf "${TMPDIR:-/tmp}/databand-reporter-$CI_JOB_ID"'
    assert log.split(line, 1)[1].strip().splitlines() == [cleanup], log
