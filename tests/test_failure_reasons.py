"""Failure reasons in GitLab's own words, checked against GitLab's list (tests/data, with its source)."""

import json
from pathlib import Path

from reporter import failure_reasons

GITLAB = json.loads((Path(__file__).parent / "data" / "gitlab_failure_reasons.json").read_text())


def test_every_code_gitlab_defines_has_gitlab_s_words():
    words = {code: message for code, message in GITLAB["messages"].items() if message is not None}
    assert failure_reasons.MESSAGES == words
    assert len(GITLAB["messages"]) == 54
    for code in GITLAB["messages"]:
        assert failure_reasons.in_words(code) == (words.get(code) or failure_reasons.SCRIPT_FAILURE)


def test_aliases_are_gitlab_s_and_resolve_to_the_codes_they_were_split_into():
    assert {old: list(new) for old, new in failure_reasons.ALIASES.items()} == GITLAB["aliases"]
    for new_codes in failure_reasons.ALIASES.values():
        assert all(code in failure_reasons.MESSAGES for code in new_codes)


def test_an_old_code_without_words_takes_those_of_its_first_split(monkeypatch):
    monkeypatch.delitem(failure_reasons.MESSAGES, "stuck_or_timeout_failure")
    assert failure_reasons.in_words("stuck_or_timeout_failure") == \
        GITLAB["messages"]["stuck_pending_with_matching_runners"]


def test_an_unknown_code_is_shown_as_the_code_and_no_reason_as_a_plain_failure():
    assert failure_reasons.in_words("reason_added_in_gitlab_20") == "reason_added_in_gitlab_20"
    assert failure_reasons.in_words(None) == "The job failed"
    assert failure_reasons.in_words("") == "The job failed"
