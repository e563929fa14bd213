"""Property: a secret the reporter is given or can see never leaves it, in any form, by any exit.

A random secret (from several alphabets) is set as one of the secrets a job has (the reporter's
tokens, OPENLINEAGE_API_KEY, GitLab's password variables, the token in CI_REPOSITORY_URL), and
planted, each time in a random form, in the fields GitLab sends: job, stage and pipeline names,
the ref, tags, a failed job's log, URLs, user names, failure reasons, commit titles, runner
descriptions, environments and test output. The real `report` runs against the stand-ins, and
every output is searched for any piece of the secret, decoded every way the forms encode it:
stdout, stderr, the bodies Databand received, --output, the kept file (Databand refusing) and the
annotations file.

Budgets (examples in the `ci` profile, fixed seed, and seconds measured on 2 shared cores; `long`
is HYPOTHESIS_PROFILE=long, 20 times the examples, see docs/failure-modes.md): the report path 40
(about 35 s), the forms in text 400 (about 1.2 s), events as values 200 (about 1.3 s), unchanged
events 60 (about 1 s), the shortcuts against the full pass 300 (about 1.4 s) and JSON said clean
200 (about 1.2 s). Time on adversarial input is measured by benchmarks/masking.py, not here.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import unicodedata
from urllib.parse import quote, unquote

from budget import examples
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from standins import DatabandStandIn, GitLabStandIn, make_job, make_pipeline, make_project
from test_properties import BASE, NAMING, pipelines

from reporter import events as reporter_events
from reporter import packed, redact
from reporter.cli import cli
from reporter.packed import PackedEvents, encode
from reporter.redact import MASK, Redactor, base64_cores

PIECE = 8
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
ALPHABETS = {
    "ascii": LETTERS,
    "punctuation": LETTERS + "%/+=:@!#$&*.-_~?",
    "non-ascii": LETTERS + "äöüßéñ€漢字Ωжİ",
}
HEADER_SAFE = ("ascii", "punctuation")  # tokens go in HTTP headers: latin-1 only (refused otherwise)
# Where the job has the secret, and whether it travels in a header.
HOLDERS = {
    "GITLAB_TOKEN": True, "CI_JOB_TOKEN": True, "DATABAND_ACCESS_TOKEN": True, "OPENLINEAGE_API_KEY": True,
    "CI_REGISTRY_PASSWORD": False, "CI_DEPLOY_PASSWORD": False, "CI_DEPENDENCY_PROXY_PASSWORD": False,
    "CI_REPOSITORY_URL": False,
}


@st.composite
def secrets(draw, alphabets=tuple(ALPHABETS)):
    alphabet = ALPHABETS[draw(st.sampled_from(alphabets))]
    secret = draw(st.text(alphabet=alphabet, min_size=12, max_size=40))
    assume(len(set(secret)) >= 6)  # a run of one character is no secret and is found in any output
    return secret


# ---- the forms a secret takes -------------------------------------------------------------------

def b64(data: bytes, urlsafe: bool) -> str:
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()


def broken(text: str, draw) -> str:
    """Line breaks in it: MIME's 76 columns, or anywhere."""
    how = draw(st.sampled_from(["none", "mime", "anywhere"]))
    if how == "mime":
        return "\r\n".join(text[i: i + 76] for i in range(0, len(text), 76))
    if how == "anywhere":
        cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=6))))
        pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        return draw(st.sampled_from(["\n", "\r\n", "\n  "])).join(pieces)
    return text


FORMS = ["as is", "upper", "lower", "percent", "percent twice", "name escaping", "json", "base64", "hex",
         "utf-16 base64", "user info", "basic auth", "html references", "full width", "invisible inside",
         "partly percent", "slug", "look-alike"]
# Shown as nothing: format characters (zero-width, soft hyphen, joiners, marks and isolates, tags),
# combining marks (an accent, a variation selector, the grapheme joiner), Hangul fillers, controls
_INVISIBLE = ("\u200b\u200c\u200d\u00ad\u2060\ufeff\u2066\u2069\u061c\U000e0020\U000e0001\u034f\ufe0f"
              "\u0301\u17b4\u3164\uffa0\u115f\x00\x07\x08\x7f")


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in ("Cf", "Mn", "Me", "Cc") and char not in "\t\n\r" or char in "\u115f\u1160\u3164\uffa0"


def bold(char: str) -> str:
    """Mathematical bold, which NFKC folds back as it does full width."""
    if "a" <= char <= "z":
        return chr(0x1D41A + ord(char) - ord("a"))
    if "A" <= char <= "Z":
        return chr(0x1D400 + ord(char) - ord("A"))
    return chr(0x1D7CE + ord(char) - ord("0")) if "0" <= char <= "9" else char


@st.composite
def form_of(draw, secret: str) -> str:
    form = draw(st.sampled_from(FORMS))
    if form == "as is":
        return secret
    if form == "upper":
        return secret.upper()
    if form == "lower":
        return secret.lower()
    if form == "percent":
        safe = "".join(draw(st.sets(st.sampled_from("%/+=:@!#$&*.-_~?"))))
        encoded = quote(secret, safe=safe)
        return re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), encoded) if draw(st.booleans()) else encoded
    if form == "percent twice":
        return quote(quote(secret, safe=""), safe="")
    if form == "name escaping":  # as the reporter escapes names in run ids and job names
        return secret.replace("%", "%25").replace(".", "%2E").replace("/", "%2F")
    if form == "json":
        escaped = draw(st.lists(st.booleans(), min_size=len(secret), max_size=len(secret)))
        chars = [(f"\\u{ord(c):04x}" if e and ord(c) <= 0xFFFF else c) for c, e in zip(secret, escaped, strict=True)]
        return "".join(chars).replace("/", "\\/")
    if form == "base64":
        lead = draw(st.binary(max_size=2)) + (b"user:" if draw(st.booleans()) else b"")
        return broken(b64(lead + secret.encode() + draw(st.binary(max_size=2)), draw(st.booleans())), draw)
    if form == "hex":
        data = secret.encode().hex()
        return data.upper() if draw(st.booleans()) else data
    if form == "utf-16 base64":
        data = secret.encode(draw(st.sampled_from(["utf-16-le", "utf-16-be"])))
        return broken(b64(draw(st.binary(max_size=2)) + data, draw(st.booleans())), draw)
    if form == "html references":  # an HTML-escaping page or e-mail: some or every character
        escaped = draw(st.lists(st.booleans(), min_size=len(secret), max_size=len(secret)))
        return "".join((f"&#x{ord(c):x};" if draw(st.booleans()) else f"&#{ord(c)};") if e else c
                       for c, e in zip(secret, escaped, strict=True))
    if form == "full width":  # the forms NFKC folds back to ASCII
        return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in secret)
    if form == "invisible inside":  # a zero-width space or soft hyphen copied in with the token
        cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(secret) - 1)), min_size=1, max_size=4))))
        pieces_ = [secret[i:j] for i, j in zip([0, *cuts], [*cuts, len(secret)], strict=True)]
        return "".join(piece + draw(st.sampled_from(_INVISIBLE)) for piece in pieces_[:-1]) + pieces_[-1]
    if form == "partly percent":  # escaped only where it is not ASCII, or only here and there
        escaped = draw(st.lists(st.booleans(), min_size=len(secret), max_size=len(secret)))
        return "".join(quote(c, safe="") if e or not c.isascii() else c for c, e in zip(secret, escaped, strict=True))
    if form == "look-alike":  # mathematical bold letters and digits, here and there
        bolded = draw(st.lists(st.booleans(), min_size=len(secret), max_size=len(secret)))
        return "".join(bold(c) if b else c for c, b in zip(secret, bolded, strict=True))
    if form == "slug":  # a review app's URL built from CI_COMMIT_REF_SLUG
        return f"https://review-{slug_of(secret)}.apps.example.com"
    if form == "user info":
        return f"https://gitlab-ci-token:{quote(secret, safe='')}@gitlab.example.com/acme/x.git"
    return "Basic " + b64(f"deployer:{secret}".encode(), False)


# ---- looking for it ---------------------------------------------------------------------------

def pieces(secret: str) -> set[str]:
    """Every PIECE-long piece of what a leak would show: the secret, its hex, the base64 characters
    its bytes fix (UTF-8, UTF-16), in both alphabets; lower-cased, as the search is."""
    forms = {secret, secret.encode().hex()}
    for data in (secret.encode(), secret.encode("utf-16-le"), secret.encode("utf-16-be")):
        for core in base64_cores(data):
            forms.update((core, core.translate(str.maketrans("+/", "-_"))))
    found = {form[i: i + PIECE].lower() for form in forms for i in range(len(form) - PIECE + 1)}
    slug = slug_of(secret)  # its pieces only where they hold enough of the secret, not a run of "-"
    return found | {slug[i: i + PIECE] for i in range(len(slug) - PIECE + 1)
                    if sum(c != "-" for c in slug[i: i + PIECE]) >= 6}


def slug_of(text: str) -> str:
    """GitLab's CI_COMMIT_REF_SLUG of it (lib/gitlab/utils.rb's slugify)."""
    return re.sub(r"[^a-z0-9]", "-", text.lower())[:63].strip("-")


_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\(/)")


def decodings(text: str) -> list[str]:
    """The text as a reader would decode it, every way the forms encode a secret."""
    joined = re.sub(r"\s+|\\[nrt]", "", text)
    unescaped = _JSON_ESCAPE.sub(lambda m: m[2] or chr(int(m[1], 16)), joined)
    # What a reader sees: references read, what shows as nothing dropped (before NFKC, which would
    # compose a letter and its accent), then what NFKC folds to ASCII folded
    read = unicodedata.normalize("NFKC", "".join(c for c in html.unescape(joined) if not _hidden(c)))
    return [v.lower() for v in (text, joined, unquote(unquote(joined)), unescaped, unquote(unquote(unescaped)), read)]


def leaks(secret: str, *texts: str) -> list[str]:
    found = []
    for text in texts:
        views = decodings(text)
        found += [piece for piece in pieces(secret) if any(piece in view for view in views)]
    return found


# ---- the report path --------------------------------------------------------------------------

FIELDS = ["job name", "stage", "pipeline name", "ref", "tag", "log", "job url", "user", "failure reason",
          "commit title", "runner description", "environment", "test output", "ui url"]


def plant(gitlab_url: str, planted: dict[str, str]):
    """A pipeline with the forms planted in their fields: a failed job (log, failure reason, test
    output) and a passed one, and the reporting job."""
    project = make_project(gitlab_url)
    get = planted.get
    pipeline = make_pipeline(project, 500, status="running", ref=get("ref", "main"), name=get("pipeline name"))
    user = {"id": 5, "username": get("user", "deployer"), "name": get("user", "Deployer"), "state": "active",
            "avatar_url": None, "web_url": f"{gitlab_url}/deployer"}
    failed = make_job(project, pipeline, 1, get("job name", "build"), get("stage", "build"), "failed",
                      failure_reason=get("failure reason", "script_failure"), user=user,
                      tag_list=("docker", get("tag", "linux")), commit_title=get("commit title", "Fix it"),
                      runner_description=get("runner description", "shared-runner-1"),
                      environment={"name": get("environment", "staging")} if "environment" in planted else None)
    if "job url" in planted:
        failed["web_url"] = f"{gitlab_url}/acme/data-platform/-/jobs/1?x={planted['job url']}"
    passed = make_job(project, pipeline, 2, "test", "test", "success", tag_list=(get("tag", "linux"),))
    own = make_job(project, pipeline, 99, "databand-report", ".post", "running")
    log = f"Running\nstep 1\n{get('log', 'compiling')}\nERROR: failed\n".encode()
    suites = [{"name": "unit", "build_ids": [1], "test_cases": [
        {"name": "t1", "classname": "c", "status": "failed", "execution_time": 0.1,
         "system_output": f"assert failed: {get('test output', 'x')}"}]}]
    return project, pipeline, [failed, passed, own], {1: log}, suites


def report_outputs(secret: str, holder: str, planted: dict[str, str], refuse: bool, tmp_path) -> list[str]:
    tokens = {"GITLAB_TOKEN": "glpat-standin-token-000000000", "CI_JOB_TOKEN": "glcbt-standin-job-token-0000",
              "DATABAND_ACCESS_TOKEN": "databand-standin-token-0000"}
    if holder in tokens:
        tokens[holder] = secret
    with GitLabStandIn(token=tokens["GITLAB_TOKEN"], job_token=tokens["CI_JOB_TOKEN"]) as gitlab, \
            DatabandStandIn(token=tokens["DATABAND_ACCESS_TOKEN"]) as databand:
        project, pipeline, jobs, traces, suites = plant(gitlab.url, planted)
        gitlab.add_pipeline(project, pipeline, jobs, traces=traces, test_suites=suites)
        if refuse:
            databand.script(*[500] * 10)
        env = {"GITLAB_CI": "true", "CI_SERVER_URL": gitlab.url, "CI_PROJECT_ID": "42", "CI_PIPELINE_ID": "500",
               "CI_JOB_ID": "99", "CI_JOB_STATUS": "running", "CI_PROJECT_PATH": "acme/data-platform",
               "CI_PROJECT_DIR": str(tmp_path), "DATABAND_URL": databand.url, **tokens,
               "CI_REGISTRY_PASSWORD": "registry-password-0000", "CI_DEPENDENCY_PROXY_PASSWORD": "proxy-pw-0000",
               "CI_REPOSITORY_URL": "https://gitlab-ci-token:glcbt-standin-job-token-0000@gitlab.example.com/a.git"}
        if holder == "CI_REPOSITORY_URL":
            env[holder] = f"https://gitlab-ci-token:{quote(secret, safe='')}@gitlab.example.com/acme/x.git"
        elif holder not in tokens:
            env[holder] = secret
        if "ui url" in planted:
            env["DATABAND_UI_URL"] = f"https://databand.example.com/app?q={quote(planted['ui url'], safe='')}"
        here = os.getcwd()
        os.chdir(tmp_path)  # the job's folder: kept files and the annotations file are written there
        try:
            result = CliRunner().invoke(cli, ["report", "--output", "events.json"], env=env, catch_exceptions=False,
                                        obj={"delivery_bounds": _quick()})
        finally:
            os.chdir(here)
        bodies = json.dumps(databand.payloads, ensure_ascii=False)
    assert result.exit_code == (4 if refuse else 0), result.output
    names = sorted(path.name for path in tmp_path.iterdir())
    expected = {"events.json", "databand-annotations.json"} | ({"databand-unsent"} if refuse else set())
    assert {n.split("-500-")[0] for n in names} == expected, names
    files = [(tmp_path / name).read_text(encoding="utf-8") for name in names]
    for name in names:
        (tmp_path / name).unlink()
    for text in files:
        json.loads(text)  # every file written is still JSON
    return [result.stdout, result.stderr, bodies, *files]


def _quick():
    from clirun import QUICK
    return QUICK


@settings(max_examples=examples(40), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.filter_too_much])
@given(st.data(), st.sampled_from(sorted(HOLDERS)), st.sets(st.sampled_from(FIELDS), min_size=1, max_size=6),
       st.booleans())
def test_a_known_secret_in_any_field_and_form_never_leaves(tmp_path_factory, data, holder, fields, refuse):
    secret = data.draw(secrets(HEADER_SAFE if HOLDERS[holder] else tuple(ALPHABETS)), "secret")
    assume(not leaks(secret, _BACKGROUND.get()))  # no piece of it in what every report prints anyway
    planted = {name: data.draw(form_of(secret), name) for name in sorted(fields)}
    outputs = report_outputs(secret, holder, planted, refuse, tmp_path_factory.mktemp("report"))
    found = leaks(secret, *outputs)
    assert not found, (found[:3], [o for o in outputs if any(p in "".join(decodings(o)) for p in found)][:1])


class _Background:
    """What a report prints with nothing planted: a secret with a piece in it is not drawn."""

    text: str | None = None

    def get(self) -> str:
        if self.text is None:
            import tempfile
            from pathlib import Path

            with tempfile.TemporaryDirectory() as folder:
                self.text = "\n".join(report_outputs("x" * 12, "OPENLINEAGE_API_KEY", {}, False, Path(folder)))
        return self.text


_BACKGROUND = _Background()


# ---- the forms alone, and masking as values -----------------------------------------------------

WORDS = ["ok", "step", "ERROR:", "job", "at", "42", "==>", "#", "(cached)", "100%", "[1/3]", "é", "{", "}", '"']


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data(), secrets(), st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join),
       st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join))
def test_every_form_is_masked_in_text(data, secret, before, after):
    form = data.draw(form_of(secret))
    text = f"{before} {form} {after}"
    masked = Redactor([secret])(text)
    assert not leaks(secret, masked), (form, masked)
    assert MASK in masked


@st.composite
def event_like(draw, secret: str):
    """Strings as events hold them: alone, in a list of tags, joined into a log, as a key."""
    leaves = draw(st.lists(st.one_of(st.sampled_from(WORDS), form_of(secret)), min_size=1, max_size=5))
    return {"name": leaves[0], "tags": [{"key": "k", "value": leaf} for leaf in leaves],
            "log": {"logBody": "\n".join(leaves), "n": len(leaves), "ok": True, "none": None}, leaves[-1]: 1}


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data(), secrets())
def test_events_are_masked_as_values_and_stay_json(data, secret):
    events = [{"run": {"runId": str(i), "facets": data.draw(event_like(secret))}, "eventType": "START"}
              for i in range(data.draw(st.integers(1, 3)))]
    packed = PackedEvents(events, mask=Redactor([secret]))
    for index in range(len(packed)):
        raw = packed.raw(index).decode("utf-8")
        back = json.loads(raw)  # always JSON, every event kept
        assert back["run"]["runId"] == str(index)
        assert not leaks(secret, raw, json.dumps(back, ensure_ascii=False)), raw


def test_a_masked_event_beside_odd_ones_keeps_them_all():
    secret = "dbnd-Sëcret/with+slash==01"
    odd = [{"run": {"runId": "1", "facets": {"name": "lone \ud800 surrogate"}}},
           {"run": {"runId": "2", "facets": {"name": f"\\{secret}\\n{quote(secret)}", "n": float("inf")}}},
           {"run": {"runId": "3", "facets": {"n": secret[:5], "tail": secret[5:]}}}]
    packed = PackedEvents(odd, mask=Redactor([secret]))
    assert [json.loads(packed.raw(i))["run"]["runId"] for i in range(3)] == ["1", "2", "3"]
    assert not leaks(secret, packed.raw(1).decode())


# ---- nothing changes where there is nothing to mask ---------------------------------------------

@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_events_without_a_secret_are_byte_for_byte_what_the_builder_made(pipeline):
    built = list(reporter_events.EventBuilder(pipeline, NAMING, BASE).events())
    masked = reporter_events.build_events(pipeline, NAMING, BASE,
                                          mask=Redactor(["glpat-Z9yX8wV7uT6sR5qP4oN3", "dbnd-Known/secret+="]))
    assert [masked.raw(i) for i in range(len(masked))] == [encode(e) for e in built]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@settings(max_examples=examples(300), deadline=None)
@given(_JSON)
def test_an_event_is_encoded_as_json_dumps_would(value):
    # The encoder made once (packed._compact) must give json.dumps' text, byte for byte: NaN,
    # lone surrogates (then escaped to ASCII) and non-ASCII text included.
    compact = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        expected = compact.encode("utf-8")
    except UnicodeEncodeError:
        expected = json.dumps(value, separators=(",", ":")).encode("ascii")
    assert encode(value) == expected  # type: ignore[arg-type]


# ---- the shortcuts find what the full pass finds -------------------------------------------------

_NOISE = ["\n", "\r\n", "\n  ", "\n\t", "\\n", "\\t", "\\", "%", "%2", "%2E", "%252F", "%zz", "&", "&amp;", "&#65",
          "&#x41;", "&lt", "\u200b", "\uff21", "é", "100%", " ", "a", "=", '"']


def _known_in_full(redactor: Redactor, text: str) -> str:
    """known() as it was before its shortcuts: the full view with its map, every form searched."""
    spans = []
    for view, where in redact._views(text):
        found = []
        for form in redactor._forms:
            start = view.find(form)
            while start >= 0:
                found.append((start, start + len(form)))
                start = view.find(form, start + 1)
        spans += found if where is None else [where.original(start, end) for start, end in found]
    return redact._masked(text, spans) if spans else text


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data(), secrets())
def test_known_finds_what_the_full_pass_finds(data, secret):
    redactor = Redactor([secret])
    pieces = data.draw(st.lists(st.one_of(st.sampled_from(_NOISE), form_of(secret),
                                          st.text(alphabet=secret, max_size=12)), max_size=8))
    text = "".join(pieces)
    assert redact._view(text, later=True)[0] == redact._view(text)[0]
    assert redactor.known(text) == _known_in_full(redactor, text), text
    assert redactor.might_hold(text) == (_known_in_full(redactor, text) != text)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data(), secrets())
def test_json_is_said_clean_only_when_every_string_in_it_is(data, secret):
    redactor = Redactor([secret])
    leaf = st.one_of(st.sampled_from([*_NOISE, ",", '","', '":"', ""]), form_of(secret),
                     st.text(alphabet=secret + '",:', max_size=12))
    for _ in range(3):  # pieces found clean are remembered: the same Redactor on several events
        strings = data.draw(st.lists(leaf, min_size=1, max_size=6))
        event = {"a": strings, strings[0]: {strings[-1]: strings[len(strings) // 2]}}
        text = packed._dumps(event)
        if redactor.values(event) != event:
            assert redactor.might_hold_json(text), text
