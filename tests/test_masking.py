"""No usable piece of a token survives masking: in any form a log puts it in, wherever a window,
a line or a message cut falls, and on input crafted against the patterns.

"Usable piece" is taken as 8 characters or more of the token, of its percent-encoding, or of the
base64 characters fixed by its bytes (any alignment, standard or URL-safe alphabet).
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reporter import logs
from reporter.gitlab import parse as from_gitlab
from reporter.redact import MASK, Redactor, base64_cores

PIECE = 8

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
ALPHABETS = {
    "alnum": ALNUM,
    "gitlab body": ALNUM + "_-",
    "base64": ALNUM + "+/",
    "hex": "0123456789abcdef",
    "password": ALNUM + "!#$%&*+/:=?@^~.-_",
}
PREFIXES = ["glpat-", "glcbt-64_", "gldt-", "glrt-t1_", "glptt-", "gloas-", "acme-glpat-"]
# Filler is words of fewer than PIECE letters between spaces and punctuation no token holds, so
# any piece of a token found in the output came from the token.
WORDS = ["ok", "Running", "step", "build", "ERROR:", "job", "failed", "with", "exit", "code", "1", "the", "of",
         "$", "make", "pytest", "at", "line", "42", "warning", "done", "==>", "#", "(cached)", "100%", "[1/3]"]
USERS = ["deployer", "gitlab-ci-token", "oauth2", "x", "_json_key", "AWS"]


def tokens(alphabets=tuple(ALPHABETS), prefixed=st.booleans(), min_size=8):
    @st.composite
    def build(draw):
        alphabet = ALPHABETS[draw(st.sampled_from(alphabets))]
        body = draw(st.text(alphabet=alphabet, min_size=min_size, max_size=64))
        return (draw(st.sampled_from(PREFIXES)) + body) if draw(prefixed) else body
    return build()


filler = st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)


def b64(text: str, urlsafe=False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(text.encode()).decode()


def forms_in_logs(token: str, user: str) -> list[str]:
    """Every way the known token is written into the log below."""
    return [
        token,
        f"Authorization: Bearer {token}",
        f"curl -H 'PRIVATE-TOKEN: {token}' -H \"JOB-TOKEN: {token}\"",
        f"git clone https://{user}:{token}@gitlab.example.com/acme/x.git",
        f"https://gitlab.example.com/api/v4/projects?private_token={quote(token, safe='')}",
        f"https://gitlab.example.com/api/v4/projects?page=2&token={quote(token, safe='')}&x=1",
        f"encoded {quote(token, safe='')} and {quote(token)} end",
        f"Authorization: Basic {b64(f'{user}:{token}')}",
        f'{{"auths": {{"registry.example.com": {{"auth": "{b64(f"{user}:{token}")}"}}}}}}',
        f"bare {b64(token)} and url-safe {b64(token, urlsafe=True)}",
        f"prefixed {b64('a' + token)} and {b64('ab' + token)} and {b64(user + ':' + token + ':x')}",
        f".dockerconfigjson: {b64(json.dumps({'auths': {'r': {'auth': b64(user + ':' + token)}}}))}",
        f'{{"password": "{json.dumps(token)[1:-1]}"}}',
    ]


def pieces(token: str) -> set[str]:
    """Every PIECE-long substring of the token's forms that a leak would show."""
    forms = {token, quote(token, safe=""), quote(token)}
    for core in base64_cores(token.encode()):
        forms.update((core, core.translate(str.maketrans("+/", "-_"))))
    return {form[i: i + PIECE] for form in forms for i in range(len(form) - PIECE + 1)}


def assert_no_piece(token: str, output: str):
    leaked = [piece for piece in pieces(token) if piece in output]
    assert not leaked, (leaked[:3], output[:2000])


@settings(max_examples=300, deadline=None)
@given(tokens(), st.sampled_from(USERS), st.lists(st.tuples(filler, st.integers(0, 12), filler), min_size=1,
                                                      max_size=13))
def test_known_token_is_masked_in_every_form(token, user, placements):
    forms = forms_in_logs(token, user)
    lines = [f"{before} {forms[i]} {after}" for before, i, after in placements]
    text = "\n".join(lines)
    redact = Redactor([token])
    assert_no_piece(token, redact(text))
    assert_no_piece(token, redact.known(text))


@settings(max_examples=200, deadline=None)
@given(tokens(alphabets=("alnum", "gitlab body"), prefixed=st.just(True), min_size=20), st.sampled_from(USERS),
       st.integers(0, 7), filler, filler)
def test_unknown_gitlab_token_is_masked_by_its_shape(token, user, i, before, after):
    shapes = [token, f"Authorization: Bearer {token}", f"PRIVATE-TOKEN: {token}", f"JOB-TOKEN:{token}",
              f"https://{user}:{token}@gitlab.example.com/x.git", f"?private_token={token}&page=1",
              f"export GITLAB_TOKEN={token}", f'{{"token": "{token}"}}']
    output = Redactor()(f"{before} {shapes[i]} {after}")
    assert_no_piece(token, output)
    assert MASK in output


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), tokens(), st.sampled_from(USERS),
       st.lists(st.tuples(filler, st.integers(0, 12), filler, st.booleans()), min_size=1, max_size=30),
       st.integers(32, 1500), st.integers(1, 40), st.integers(1, 97), st.booleans())
def test_log_windows_never_keep_a_cut_token(data, token, user, placements, max_bytes, lines, chunk, stops_early):
    forms = forms_in_logs(token, user)
    log = "\n".join(
        # Some lines are redrawn (progress bars): the token sits before or after a carriage return.
        (f"{before} {forms[i]}\r{after}" if redraw else f"{before} {forms[i]} {after}")
        for before, i, after, redraw in placements
    ).encode()
    if stops_early:
        # The deadline passes after the first chunk: the window ends wherever that chunk ends.
        end = data.draw(st.integers(0, len(log)))
        window, complete = logs.tail_bytes(iter([log[:end], log[end:]]), max_bytes=max_bytes, deadline=0)
        assert not complete
    else:
        chunks = (log[i: i + chunk] for i in range(0, len(log), chunk))
        window, complete = logs.tail_bytes(chunks, max_bytes=max_bytes)
        assert complete
    output = logs.clean(window, lines=lines, redact=Redactor([token]))
    assert_no_piece(token, output)
    assert len(output.splitlines()) <= lines


@settings(max_examples=100, deadline=None)
@given(tokens(alphabets=("gitlab body",), prefixed=st.just(True), min_size=20), st.integers(32, 400),
       st.integers(1, 20), st.integers(0, 5))
def test_log_windows_cut_unknown_gitlab_tokens_too(token, max_bytes, lines, shift):
    # Only the shape is known: a cut token no longer has the shape, so the edge line must go.
    log = ("\n".join(f"step {i} {token} done" for i in range(40))).encode()
    window, _ = logs.tail_bytes(iter([log]), max_bytes=max_bytes - shift)
    assert_no_piece(token, logs.clean(window, lines=lines, redact=Redactor()))


@settings(max_examples=200, deadline=None)
@given(tokens(), st.sampled_from(USERS), st.integers(0, 12), st.integers(-80, 20), filler)
def test_test_failure_messages_are_masked_before_they_are_cut(token, user, i, offset, after):
    form = forms_in_logs(token, user)[i]
    start = max(0, from_gitlab.MAX_TEST_MESSAGE + offset - len(form) // 2)
    output = "x " * (start // 2) + form + " " + after
    case = {"name": "t", "status": "failed", "system_output": output}
    [result] = from_gitlab.test_results({"name": "s"}, [case], 1, Redactor([token])).cases
    assert len(result.message) <= from_gitlab.MAX_TEST_MESSAGE
    assert_no_piece(token, result.message)


@given(st.binary(min_size=1, max_size=64), st.binary(max_size=8), st.binary(max_size=8))
@example(b"\xff" * 7, b"a", b"")
def test_base64_cores_are_found_at_every_alignment(secret, before, after):
    encoded = base64.b64encode(before + secret + after).decode()
    core = base64_cores(secret)[len(before) % 3]
    assert core in encoded
    # Outside the core, at most one character on each side carries any of the secret's bits.
    assert len(core) >= len(secret) * 8 // 6 - 2


def test_known_keeps_json_valid_and_leaves_other_text_alone():
    token = "dbnd-Secret/with+slash==0123"
    events = [{"run": {"facets": {"log": {"logBody": f"a {token} b {quote(token, safe='')} "
                                                     f"c {b64('u:' + token)} d \"quoted\" é"}}}} for _ in range(3)]
    text = json.dumps(events)
    masked = Redactor([token]).known(text)
    assert_no_piece(token, masked)
    body = json.loads(masked)[0]["run"]["facets"]["log"]["logBody"]
    assert body.startswith(f"a {MASK} b {MASK} c ") and body.endswith(' d "quoted" é')
    assert Redactor(["glpat-other0000000000000"]).known(text) == text


def test_whole_short_log_keeps_its_first_line_and_a_cut_window_drops_it():
    log = b"Running with gitlab-runner 17.0\nstep\nERROR: failed\n"
    window, complete = logs.tail_bytes(iter([log[:10], log[10:]]), max_bytes=1024)
    assert complete and not window.starts_cut and not window.ends_cut
    assert logs.clean(window).splitlines() == ["Running with gitlab-runner 17.0", "step", "ERROR: failed"]
    window, _ = logs.tail_bytes(iter([log]), max_bytes=len(log) - 3)
    assert window.starts_cut and logs.clean(window).splitlines() == ["step", "ERROR: failed"]
    window, complete = logs.tail_bytes(iter([log[:40], log[40:]]), max_bytes=1024, deadline=0)
    assert not complete and window.ends_cut and logs.clean(window).splitlines() == ["Running with gitlab-runner 17.0",
                                                                                      "step"]


def test_a_cut_window_keeps_what_follows_a_redraw_on_its_first_line():
    log = b"x" * 100 + b"\rERROR: the end\n"
    window, _ = logs.tail_bytes(iter([log]), max_bytes=60)
    assert logs.clean(window) == "ERROR: the end"


def test_shapes_mask_the_secret_and_keep_the_context():
    redact = Redactor()
    cases = {
        "Authorization: Bearer abc.def.ghi123": f"Authorization: Bearer {MASK}",
        "authorization=Basic dXNlcjpwYXNz": f"authorization=Basic {MASK}",
        '{"Authorization": "token zz9"}': f'{{"Authorization": "token {MASK}"}}',
        "PRIVATE-TOKEN: xyz98765": f"PRIVATE-TOKEN: {MASK}",
        "+ export CI_JOB_TOKEN=abc123": f"+ export CI_JOB_TOKEN={MASK}",
        'password: "hunter2"': f'password: "{MASK}"',
        '{"auths":{"r":{"auth":"dXNlcjpwYXNz"}}}': f'{{"auths":{{"r":{{"auth":"{MASK}"}}}}}}',
        "docker login -u me --password s3cr3t r.io": f"docker login -u me --password {MASK} r.io",
        "https://user:hunter22@example.com/x": f"https://user:{MASK}@example.com/x",
        "GET /a?private_token=zz&page=2": f"GET /a?private_token={MASK}",
        "GET /o?X-Amz-Signature=ab12&X-Amz-Date=1": f"GET /o?X-Amz-Signature={MASK}&X-Amz-Date=1",
        "https://az/b?sv=1&sig=abc%2Fd&se=2": f"https://az/b?sv=1&sig={MASK}&se=2",
        "key glpat-ABCDEFGHIJKLMNOPQRST used": f"key {MASK} used",
        "GR1348941abcdefghijklmnopqrst": MASK,
        "glibc-2.36 and gl-2 stay; tokens: 5; --password-stdin": "glibc-2.36 and gl-2 stay; tokens: 5; "
                                                                 "--password-stdin",
    }
    for text, masked in cases.items():
        assert redact(text) == masked


TOKEN = "glpat-Z9yX8wV7uT6sR5qP4oN3"
DATABAND = "dbnd-KnownSecret/with+symbols=="


def crafted(size: int = 300 * 1024) -> dict[str, tuple[str, str, str]]:
    """Long lines built against each pattern, each ending in a real secret:
    name -> (line, how Redactor()'s output starts, how it ends)."""
    n = size
    return {
        "glpat- repeated": ("glpat-" * (n // 6) + " " + TOKEN, MASK, f" {MASK}"),
        "prefix without body": ("glpat-abc " * (n // 10) + TOKEN, "glpat-abc glpat-abc", f" {MASK}"),
        "gl repeated": ("gl" * (n // 2) + " " + TOKEN, "glglgl", f" {MASK}"),
        "Authorization: repeated": ("Authorization: " * (n // 15) + f"Authorization: Bearer {TOKEN}",
                                    f"Authorization: {MASK} ", f"Bearer {MASK}"),
        "header without separator": ("Authorization" * (n // 13) + f" Authorization: {DATABAND}",
                                     "AuthorizationAuthorization", f" Authorization: {MASK}"),
        "header and spaces": (("Authorization:" + " " * 1000) * (n // 1014) + f"Authorization: {TOKEN}",
                              "Authorization:" + " " * 1000 + MASK, MASK),
        "https://a: without @": ("https://a:" * (n // 10) + f" https://u:{DATABAND}@h/x", "https://a:https://a:",
                                 f" https://u:{MASK}@h/x"),
        "URL password without @": ("https://u:" + "p" * n + " https://u:pw0rd123@h/", "https://u:pppp",
                                   f" https://u:{MASK}@h/"),
        "Bearer repeated": ("Bearer " * (n // 7) + f"Bearer {DATABAND}", "Bearer Bearer Bearer", f"Bearer {MASK}"),
        "token repeated": ("token" * (n // 5) + f" token={DATABAND}", "tokentoken", f" token={MASK}"),
        "token: repeated": ("token: " * (n // 7) + f"token: {TOKEN}", f"token: {MASK}", MASK),
        "query separators": ("?&;" * (n // 3) + f"?key={DATABAND}", "?&;?&;", f"?key={MASK}"),
        "key= repeated": ("?key=" * (n // 5) + f" ?sig={DATABAND}", f"?key={MASK}", f" ?sig={MASK}"),
        "dashes": ("-" * n + f" --password {DATABAND}", "-----", f" --password {MASK}"),
        "dots": ("a." * (n // 2) + f" {DATABAND}", "a.a.a.", f" {MASK}"),
        "base64 run": (b64("x" * n) + " " + b64("u:" + DATABAND), "eHh4eHh4", MASK),
        "section markers": ("section_start:1:a[" * (n // 18) + f" {TOKEN}", "section_start:1:a[", f" {MASK}"),
        "unterminated escapes": ("\x1b]" * (n // 2) + f" {TOKEN}", "\x1b]\x1b]", f" {MASK}"),
    }


def test_crafted_long_lines_are_masked():
    redact = Redactor([DATABAND])
    for name, (line, head, tail) in crafted().items():
        output = redact(line)
        assert output.startswith(head) and output.endswith(tail), (name, output[:60], output[-60:])
        cleaned = logs.clean(line.encode(), redact=redact)
        assert cleaned.endswith(tail), (name, cleaned[-60:])
        for secret in (TOKEN, DATABAND):
            assert_no_piece(secret, output)
            assert_no_piece(secret, cleaned)


def test_long_text_is_masked_across_blocks():
    # Text longer than a block is masked in pieces that end at line ends; a secret on every line,
    # wherever the pieces end, is masked.
    line = f"step {TOKEN} and Authorization: Bearer {DATABAND} ok"
    text = "\n".join([line] * 10_000)
    output = Redactor([DATABAND])(text)
    assert output == "\n".join([f"step {MASK} and Authorization: Bearer {MASK} ok"] * 10_000)


@pytest.mark.parametrize("dump", [
    lambda data: data.hex(" "),  # xxd -p -c1, od
    lambda data: data.hex(":").upper(),  # a fingerprint's way
    lambda data: "".join(f"\\x{b:02x}" for b in data),  # Python's bytes, printf
    lambda data: data.decode().encode("utf-16-le").hex(),
])
def test_a_secret_in_hex_as_dumps_print_it_is_masked(dump):
    secret = "regPASSWORDsecretWW889"  # as CI_REGISTRY_PASSWORD could be
    line = f"step 3: {dump(secret.encode())} (done)"
    masked = Redactor([secret])(line)
    assert dump(secret.encode()) not in masked and masked.startswith("step 3: ") and MASK in masked


SECRET = "glpat-Ab_Cd3fGh_1jKlMnOpQ"


@pytest.mark.parametrize("text", [
    "https://review-glpat-ab-cd3fgh-1jklmnopq.apps.example.com",  # GitLab's ref slug of it
    "&#103;&#x6c;pat-Ab_Cd3fGh_1jKlMnOpQ",  # HTML character references, decimal and hex
    "ｇｌｐａｔ－Ａｂ＿Ｃｄ３ｆＧｈ＿１ｊＫｌＭｎＯｐＱ",  # full width, as NFKC folds back
    "glpat-Ab\u200b_Cd3f\u00adGh_1jKlMnOpQ",  # invisible characters copied in with it
    "q=glpat-Ab%E2%80%8B_Cd3fGh_1jKlMnOpQ",  # an invisible character, percent-encoded as UTF-8
    "%EF%BD%87lpat-Ab_Cd3fGh_1jKlMnOpQ",  # a full-width letter, percent-encoded
    # What else shows as nothing, found by the break-it pass: bidi isolates, the grapheme joiner,
    # variation selectors, tags, Hangul fillers, Khmer's invisible vowels, the Arabic letter mark,
    # musical formatting, ASCII's controls, and accents after each letter
    *(f"glpat-Ab_Cd{c}3fGh_1jKl{c}MnOpQ" for c in ["\u2066", "\u2069", "\u034f", "\ufe0f", "\U000e0020",
                                                   "\U000e0001", "\u115f", "\u3164", "\uffa0", "\u17b4",
                                                   "\u061c", "\U0001d17a", "\x00", "\x7f", "\x07", "\x08"]),
    "".join(c + "\u0300" for c in SECRET),
    "\U0001d420\U0001d425pat-Ab_Cd3fGh_1jKlMnOpQ",  # mathematical bold g, l: NFKC folds them as full width
    "q=%F3%A0%80%A0glpat-Ab_Cd3fGh_1jKl%E2%81%A6MnOpQ",  # a tag and an isolate, percent-encoded
    "glpat-Ab_Cd&#8294;3fGh_1jKlMnOpQ",  # an isolate as a character reference
])
def test_a_secret_in_the_forms_a_reader_sees_as_the_same_is_masked(text):
    masked = Redactor([SECRET]).known(f"before {text} after")
    assert masked.startswith("before ") and masked.endswith(" after") and MASK in masked, masked
    assert "cd3f" not in masked.lower() and "jklmnop" not in masked.lower(), masked


def test_the_slug_of_a_secret_left_with_too_little_of_it_is_no_form():
    # "a-------b" would match any dashed rule in a log: not a form of its own
    redactor = Redactor(["a%/+=:@!#b"])
    assert redactor.known("a-------b and ---------") == "a-------b and ---------"


def test_one_escaping_inside_another_is_read_and_a_line_break_makes_no_escape():
    # Found by the long property run: a JSON escape in a percent-encoded URL (%5Cu0035 is \u0035,
    # "5") hid the secret's last character.
    redactor = Redactor(["000000012345"])
    assert redactor.known("https://x.example.com/app?q=00000001234%5Cu0035 ok") == "https://x.example.com/app?q=[MASKED] ok"
    # "100%" ends a line and the secret starts the next: joined, "%00" must not eat its start (the
    # view of the view may also match the zeros of "100" with the rest: more is masked, not less)
    masked = redactor.known("100%\n000000012345 done")
    assert masked.startswith("1") and masked.endswith("[MASKED] done") and "12345" not in masked


@pytest.mark.parametrize("text", [
    # Found by the second break-it pass: a terminal's escape sequences and blank space inside
    "dbtokSECR\x1bcET987654321",  # ESC c (a terminal reset): the view dropped the ESC alone
    "dbtokSECR\x1bET987654321",  # ESC E: a line break to a terminal, or an ESC before the E
    "dbtokSE\x1b7CRET987654321",  # ESC 7 (save the cursor)
    "dbtok\x1b[31mSECRET\x1b[0m987654321",  # colours
    "dbtokSE\x1b(BCRET987654321",  # a character set
    "dbtokSE\x9bmCRET987654321",  # CSI as its one C1 character
    "dbtok\x1b]0;a title\x07SECRET987654321",  # a window title
    "dbtokSECR\tET987654321", "dbtokSECR%09ET987654321", "dbtokSECR&#9;ET987654321",  # a tab, as is and escaped
    "dbtokSECR\u2028ET987654321", "dbtokSECR\u2029ET987654321",  # Unicode's line and paragraph separators
])
def test_a_secret_with_terminal_codes_or_blank_space_inside_is_masked(text):
    masked = Redactor(["dbtokSECRET987654321"]).known(f"x {text} y")
    assert masked == "x [MASKED] y", masked


def test_a_log_is_masked_before_its_terminal_codes_are_stripped():
    window = logs.Window(b"step\nusing dbtokSECR\x1bET987654321 now\nERROR: failed\n")
    cleaned = logs.clean(window, redact=Redactor(["dbtokSECRET987654321"]))
    assert cleaned == "step\nusing [MASKED] now\nERROR: failed"
