"""One mask at every exit: each way a byte leaves the reporter (stdout, stderr, the job-log summary,
the --dry-run tree, setting errors, the annotations file, kept files, --output, request bodies,
events read back with --from-file, parent-env), each secret it can see (GitLab's password
variables, the token in CI_REPOSITORY_URL, OPENLINEAGE_API_KEY), and the forms no mask knew."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from click.testing import CliRunner
from clirun import quick
from standins import DatabandStandIn, GitLabStandIn, make_job, make_pipeline, make_project

from reporter import logs
from reporter.cli import cli
from reporter.redact import MASK, Redactor
from reporter.settings import Settings

REGISTRY = "regPassw0rd-Kq8Zr4Tx6Wv0Yn3"  # made up, as GitLab's CI_REGISTRY_PASSWORD
REPO_TOKEN = "glcbt-64_RepoUrlToken9Xq2"
API_KEY = "olKey.With.Dots/and+slash"


def job_env(gitlab, databand, workdir, **extra) -> dict:
    env = {"GITLAB_CI": "true", "CI_SERVER_URL": gitlab.url, "CI_PROJECT_ID": "42", "CI_PIPELINE_ID": "500",
           "CI_JOB_ID": "99", "CI_JOB_STATUS": "running", "CI_PROJECT_PATH": "acme/data-platform",
           "CI_PROJECT_DIR": str(workdir), "GITLAB_TOKEN": gitlab.token, "CI_JOB_TOKEN": gitlab.job_token,
           "DATABAND_URL": databand.url, "DATABAND_ACCESS_TOKEN": databand.token,
           "CI_REGISTRY_PASSWORD": REGISTRY, "OPENLINEAGE_API_KEY": API_KEY,
           "CI_REPOSITORY_URL": f"https://gitlab-ci-token:{REPO_TOKEN}@gitlab.example.com/acme/data-platform.git"}
    env.update(extra)
    return env


def serve(gitlab, *, job_name="build", log=b"step\nERROR: failed\n"):
    project = make_project(gitlab.url)
    pipeline = make_pipeline(project, 500, status="running")
    jobs = [make_job(project, pipeline, 1, job_name, "build", "failed"),
            make_job(project, pipeline, 99, "databand-report", ".post", "running")]
    gitlab.add_pipeline(project, pipeline, jobs, traces={1: log})


def everything(result, workdir, databand) -> str:
    files = "\n".join(p.read_text(encoding="utf-8") for p in workdir.iterdir() if p.is_file())
    return "\n".join([result.stdout, result.stderr, json.dumps(databand.payloads, ensure_ascii=False), files])


def test_gitlabs_password_variables_and_the_repository_url_token_are_known_secrets():
    from reporter.settings import known_secrets

    env = {"CI_REGISTRY_PASSWORD": REGISTRY, "CI_DEPLOY_PASSWORD": "deploy-pw-123456", "CI_JOB_JWT_V2": "eyJhbGciOi.jwt-v2",
           "CI_DEPENDENCY_PROXY_PASSWORD": "proxy-pw-1234567", "OPENLINEAGE_API_KEY": API_KEY,
           "CI_REPOSITORY_URL": f"https://gitlab-ci-token:{REPO_TOKEN}@gitlab.example.com/a/b.git"}
    settings = Settings.from_env(env)
    assert set(known_secrets(env)) >= {REGISTRY, "deploy-pw-123456", "proxy-pw-1234567", API_KEY, REPO_TOKEN,
                                       "eyJhbGciOi.jwt-v2"}
    text = " ".join([REGISTRY, "deploy-pw-123456", "proxy-pw-1234567", API_KEY, REPO_TOKEN])
    assert settings.redactor().known(text) == " ".join([MASK] * 5)
    assert REGISTRY not in repr(settings) and REPO_TOKEN not in repr(settings)


def test_summary_tree_and_files_mask_a_secret_in_a_job_name(workdir):
    # The job log summary and the --dry-run tree print job names as GitLab gives them.
    with GitLabStandIn() as gitlab, DatabandStandIn() as databand:
        serve(gitlab, job_name=f"push {REGISTRY}",
              log=f"login {REGISTRY}\nclone {API_KEY.upper()}\nERROR: failed\n".encode())
        env = job_env(gitlab, databand, workdir)
        tree = CliRunner().invoke(cli, ["report", "--dry-run"], env=env, catch_exceptions=False)
        sent = CliRunner().invoke(cli, ["report", "--output", "out.json"], env=env, catch_exceptions=False)
        assert tree.exit_code == 0 and sent.exit_code == 0, sent.output
        assert "push [MASKED]" in tree.stdout
        everything_out = everything(tree, workdir, databand) + everything(sent, workdir, databand)
    for secret in (REGISTRY, API_KEY, API_KEY.upper(), API_KEY.lower()):
        assert secret not in everything_out


def test_a_setting_error_quoting_a_value_masks_the_environments_secrets(workdir):
    with GitLabStandIn() as gitlab, DatabandStandIn() as databand:
        env = job_env(gitlab, databand, workdir, DATABAND_LOG_LINES=REGISTRY)
        result = CliRunner().invoke(cli, ["report"], env=env, catch_exceptions=False)
    assert result.exit_code == 2
    assert "DATABAND_LOG_LINES must be a number" in result.stderr and REGISTRY not in result.stderr


def test_the_annotations_file_is_masked(workdir):
    with GitLabStandIn() as gitlab, DatabandStandIn() as databand:
        serve(gitlab)
        env = job_env(gitlab, databand, workdir, DATABAND_UI_URL=f"https://databand.example.com/{REPO_TOKEN}/app")
        result = CliRunner().invoke(cli, ["report"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = (workdir / "databand-annotations.json").read_text()
    assert REPO_TOKEN not in text and MASK in text
    json.loads(text)


def test_a_kept_file_and_events_read_back_are_masked(workdir):
    with GitLabStandIn() as gitlab, DatabandStandIn() as databand:
        serve(gitlab, job_name=f"deploy.{API_KEY}")  # escaped in the job's name as deploy%2EolKey%2EWith...
        env = job_env(gitlab, databand, workdir)
        databand.script(*[500] * 10)
        result = CliRunner().invoke(cli, ["report"], env=env, catch_exceptions=False, obj=quick())
        assert result.exit_code == 4
        [kept] = workdir.glob("databand-unsent-*.json")
        assert "%2E" in kept.read_text()  # the name escaping is there, the key is not
        assert API_KEY not in kept.read_text() and API_KEY.replace(".", "%2E") not in kept.read_text()
        # A file written elsewhere (by hand, by an older reporter) still holds it: read back, masked.
        events = json.loads(kept.read_text())
        events[1]["job"]["name"] = f"acme.build.{quote(API_KEY, safe='')}"
        (workdir / "edited.json").write_text(json.dumps(events))
        kept.unlink()
        again = CliRunner().invoke(cli, ["resend", "--from-file", "edited.json"], env=env, catch_exceptions=False,
                                   obj=quick())
        assert again.exit_code == 0, again.output
        bodies = json.dumps(databand.payloads)
    assert quote(API_KEY, safe="") not in bodies and API_KEY not in bodies and MASK in bodies


def test_an_event_holding_an_escape_next_to_a_secret_stays_json(workdir):
    # Masking the encoded JSON turned "\n" + the rest of a secret starting with n into "\[MASKED]".
    secret = "nSecretToken12345678"
    with GitLabStandIn(token=secret) as gitlab:
        serve(gitlab, job_name="a\n" + secret[1:])
        env = {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": secret}
        result = CliRunner().invoke(cli, ["resend", "--dry-run", "--json", "--project", "42", "--pipeline", "500"],
                                    env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 5  # the root, two stages, two jobs


def test_parent_env_output_is_masked():
    env = {"CI_SERVER_URL": "https://gitlab.example.com", "CI_PROJECT_ID": "42", "CI_PROJECT_PATH": "acme/dp",
           "CI_PIPELINE_ID": "500", "CI_JOB_ID": "7", "CI_JOB_NAME": f"push {REGISTRY}", "CI_JOB_STAGE": "build",
           "CI_REGISTRY_PASSWORD": REGISTRY}
    result = CliRunner().invoke(cli, ["parent-env"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert REGISTRY not in result.stdout and "push [MASKED]" in result.stdout


def test_forms_no_mask_knew():
    secret = "dbnd-Kn0wn.Secret/with+symbols=="
    redact = Redactor([secret])
    wrapped = base64.encodebytes(b"user:" + secret.encode()).decode()  # 76 columns, MIME
    forms = {
        "name escaping": secret.replace("%", "%25").replace(".", "%2E").replace("/", "%2F"),
        "percent, dots too": "".join(f"%{b:02X}" for b in secret.encode()),
        "json \\u of any character": "".join(f"\\u{ord(c):04x}" for c in secret),
        "base64 at 76 columns": base64.encodebytes(b"user:" + secret.encode() * 3).decode(),
        "base64 broken anywhere": "\n".join(wrapped[i: i + 5] for i in range(0, len(wrapped), 5)),
        "hex": secret.encode().hex().upper(),
        "utf-16 base64": base64.b64encode(secret.encode("utf-16-le")).decode(),
        "upper-cased": secret.upper(),
        "user info": f"https://u:{quote(secret, safe='')}@host/x",
    }
    for name, form in forms.items():
        masked = redact(f"before {form} after")
        assert MASK in masked and masked.startswith("before ") and masked.endswith(" after"), (name, masked)
        assert "Kn0wn" not in masked and "S2" not in masked.replace(MASK, ""), (name, masked)


def test_a_log_tail_is_masked_before_it_is_cut():
    # A base64 wrapped a few characters a line straddles the first line kept: masked whole first.
    secret = "dbnd-Kn0wn.Secret/with+symbols=="
    encoded = base64.b64encode(secret.encode()).decode()
    log = "\n".join(["step"] * 50 + [encoded[i: i + 3] for i in range(0, len(encoded), 3)] + ["ERROR: done"])
    for lines in range(1, 14):
        kept = logs.clean(log.encode(), lines=lines, redact=Redactor([secret]))
        assert len(kept.splitlines()) <= lines
        assert not any(encoded[i: i + 6] in kept.replace("\n", "") for i in range(len(encoded) - 5)), (lines, kept)


def test_a_tag_is_masked_before_it_is_cut(workdir):
    # Tags are cut at 200 characters: a failure reason with the secret across the cut was cut first.
    with GitLabStandIn() as gitlab, DatabandStandIn() as databand:
        project = make_project(gitlab.url)
        pipeline = make_pipeline(project, 500, status="running")
        reason = "x" * 190 + REGISTRY
        jobs = [make_job(project, pipeline, 1, "build", "build", "failed", failure_reason=reason),
                make_job(project, pipeline, 99, "databand-report", ".post", "running")]
        gitlab.add_pipeline(project, pipeline, jobs)
        result = CliRunner().invoke(cli, ["report"], env=job_env(gitlab, databand, workdir), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        tags = [t for e in databand.events for t in e["run"]["facets"].get("tags", {}).get("tags", [])]
    [cut] = [t["value"] for t in tags if t["key"] == "gitlab.failure_reason"]
    assert cut.startswith("x" * 190 + MASK) and REGISTRY[:6] not in cut


def test_a_backfill_cursor_holds_no_secret_and_still_resumes(workdir):
    ref = f"fix-{REGISTRY}"
    with GitLabStandIn() as gitlab, DatabandStandIn() as databand:
        project = make_project(gitlab.url)
        for pipeline_id in (700, 701):
            pipeline = make_pipeline(project, pipeline_id, status="success", ref=ref,
                                     created_at="2026-10-02T10:00:00.000Z", started_at=None, finished_at=None)
            pipeline["updated_at"] = "2026-10-02T11:00:00.000Z"
            gitlab.add_pipeline(project, pipeline, [make_job(project, pipeline, pipeline_id * 10, "b", "b", "success")])
        env = {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "DATABAND_URL": databand.url,
               "DATABAND_ACCESS_TOKEN": databand.token, "CI_REGISTRY_PASSWORD": REGISTRY}
        args = ["resend", "--project", "42", "--since", "2026-10-01", "--ref", ref, "--cursor", "cursor.json"]
        first = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
        again = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert first.exit_code == 0 and again.exit_code == 0, (first.output, again.output)
    text = (workdir / "cursor.json").read_text()
    assert REGISTRY not in text and MASK in text and json.loads(text)["done"] == [700, 701]
    assert "2 already sent" in again.stderr
    assert REGISTRY not in first.stderr + again.stderr + json.dumps(databand.payloads)


def test_usage_errors_quote_no_secret(tmp_path, monkeypatch):
    """click quotes the value it refuses: a token pasted into --hours, or given by flag and again
    where a number goes, is masked in that line (it was printed as typed)."""
    token = "glpat-" + "Zq9x" * 5
    monkeypatch.delenv("GITLAB_TOKEN", raising=False)
    runner = CliRunner()
    by_env = runner.invoke(cli, ["sweep", "--hours", token], env={"GITLAB_TOKEN": token})
    by_flag = runner.invoke(cli, ["sweep", "--gitlab-token", "PlainSecret-77q", "--hours", "PlainSecret-77q"])
    by_equals = runner.invoke(cli, ["sweep", "--gitlab-token=PlainSecret-88q", "--hours=PlainSecret-88q"])
    for result, secret in ((by_env, token), (by_flag, "PlainSecret-77q"), (by_equals, "PlainSecret-88q")):
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--hours'" in result.output and MASK in result.output
        assert secret not in result.output and secret.lower() not in result.output.lower()


def test_parent_env_masks_before_it_quotes():
    # shlex.quote writes abc'defgh as 'abc'"'"'defgh': the secret is no longer in one piece there.
    token = "abc'defghij12345"
    env = {"CI_SERVER_URL": "https://gitlab.example.com", "CI_PROJECT_ID": "42", "CI_PROJECT_PATH": "acme/dp",
           "CI_PIPELINE_ID": "500", "CI_JOB_ID": "7", "CI_JOB_NAME": f"x {token}", "CI_JOB_STAGE": "build",
           "DATABAND_ACCESS_TOKEN": token}
    for form in ("shell", "spark-conf", "dotenv", "airflow-conf"):
        result = CliRunner().invoke(cli, ["parent-env", "--format", form], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "defghij12345" not in result.stdout and MASK in result.stdout, (form, result.stdout)


def test_a_password_in_any_url_variable_is_a_known_secret(workdir):
    # DATABAND_UI_URL becomes the job page's link (the annotations file); a job's own DATABASE_URL
    # can reach a log the events quote.
    with GitLabStandIn() as gitlab, DatabandStandIn() as databand:
        serve(gitlab, log=b"connecting to postgres://app:dbPassw0rd-4711@db:5432/x\nERROR: failed\n")
        env = job_env(gitlab, databand, workdir, DATABAND_UI_URL="https://viewer:uiPassw0rd777@databand.example.com/ui",
                      DATABASE_URL="postgres://app:dbPassw0rd-4711@db:5432/x")
        result = CliRunner().invoke(cli, ["report"], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        out = everything(result, workdir, databand)
    assert "uiPassw0rd777" not in out and "dbPassw0rd-4711" not in out
    assert "databand.example.com" in (workdir / "databand-annotations.json").read_text()


def test_a_status_this_version_does_not_know_is_shown_as_masked(workdir):
    # It was shown with "_" as spaces, after the mask: "ab cd ef gh 1234" is the secret again.
    secret = "ab_cd_ef_gh_1234"
    with GitLabStandIn() as gitlab, DatabandStandIn() as databand:
        project = make_project(gitlab.url)
        pipeline = make_pipeline(project, 500, status="running")
        gitlab.add_pipeline(project, pipeline, [make_job(project, pipeline, 1, "build", "build", secret),
                                                make_job(project, pipeline, 99, "databand-report", ".post", "running")])
        env = job_env(gitlab, databand, workdir, CI_DEPLOY_PASSWORD=secret)
        tree = CliRunner().invoke(cli, ["report", "--dry-run"], env=env, catch_exceptions=False)
        sent = CliRunner().invoke(cli, ["report"], env=env, catch_exceptions=False)
        assert tree.exit_code == 0 and sent.exit_code == 0, sent.output
        out = everything(tree, workdir, databand) + everything(sent, workdir, databand)
    assert "ef gh 1234" not in out and "ef_gh_1234" not in out and MASK in tree.stdout


def test_a_name_holding_a_terminal_s_escape_codes_is_shown_masked_and_inert(workdir):
    # A job name with ESC c (a terminal reset) inside a secret reached the tree and the summary raw:
    # the secret unmasked there, and the codes acting on the reader's terminal.
    with GitLabStandIn() as gitlab, DatabandStandIn() as databand:
        serve(gitlab, job_name=f"n {REGISTRY[:8]}\x1bc{REGISTRY[8:]} \x1b]0;title\x07 \x9b2J")
        env = job_env(gitlab, databand, workdir)
        tree = CliRunner().invoke(cli, ["report", "--dry-run"], env=env, catch_exceptions=False)
        sent = CliRunner().invoke(cli, ["report"], env=env, catch_exceptions=False)
    assert tree.exit_code == 0 and sent.exit_code == 0, sent.output
    for shown in (tree.stdout, tree.stderr, sent.stderr):
        assert REGISTRY[8:] not in shown
        ours = shown.replace("\x1b[0K", "")  # the summary's own section markers
        assert not any(c in ours for c in "\x1b\x07\x9b"), repr(shown)
    assert "n [MASKED]" in tree.stdout and "\\x1b]0;title\\x07" in tree.stdout
