"""Small pure pieces: IDs and names, log tails, redaction, payload splitting."""

import json
import itertools

from hypothesis import given
from hypothesis import strategies as st

from reporter import delivery, ids, logs
from reporter.redact import MASK, Redactor


def test_server_key_ignores_scheme_case_and_slash():
    assert ids.server_key("https://GitLab.Example.com/") == ids.server_key("http://gitlab.example.com")
    assert ids.server_key("https://gitlab.example.com:8443/gitlab/") == "gitlab.example.com:8443/gitlab"


def test_run_ids_are_deterministic_and_distinct():
    a = ids.job_run_id("g", 1, 7)
    assert a == ids.job_run_id("g", 1, 7)
    assert len({a, ids.job_run_id("g", 1, 8), ids.job_run_id("g", 2, 7), ids.pipeline_run_id("g", 1, 7),
                ids.stage_run_id("g", 1, 7, "test")}) == 5


name = st.text(min_size=1, max_size=8)


@given(name, name, name, name)
def test_job_names_never_collide(stage_a, job_a, stage_b, job_b):
    if (stage_a, job_a) != (stage_b, job_b):
        assert ids.job_job_name("p", stage_a, job_a) != ids.job_job_name("p", stage_b, job_b)


def test_names_are_hierarchical():
    assert ids.job_job_name("acme.dp", "test", "unit 1/3") == "acme.dp.test.unit 1%2F3"
    assert ids.job_job_name("acme.dp", "a.b", "c") != ids.job_job_name("acme.dp", "a", "b.c")
    assert ids.default_pipeline_name("acme/data.platform") == "acme.data%2Eplatform"
    assert ids.default_namespace("https://GitLab.example.com:8443/gitlab/") == "gitlab:gitlab.example.com:8443:gitlab"


@given(name, name, name)
def test_names_never_hold_a_slash(project, stage, job):
    # dbt-ol splits OPENLINEAGE_PARENT_ID = namespace/name/runId on "/"
    assert "/" not in ids.job_job_name(ids.default_pipeline_name(project), stage, job)


def test_log_clean_strips_colours_sections_and_keeps_last_lines():
    raw = (b"\x1b[0Ksection_start:1700000000:step_script[collapsed=true]\r\x1b[0K\x1b[36;1mRunning\x1b[0;m\n"
           + b"".join(b"line %d\n" % i for i in range(200))
           + b"progress 10%\rprogress 100%\n\x1b[31;1mERROR: boom\x1b[0;m\n"
           + b"\x1b[0Ksection_end:1700000001:step_script\r\x1b[0K\n")
    text = logs.clean(raw, lines=3)
    assert text.splitlines() == ["line 199", "progress 100%", "ERROR: boom"]
    assert "\x1b" not in text and "section_" not in text


def test_log_tail_keeps_only_the_end_of_a_long_stream():
    chunks = (b"x" * 65536 for _ in range(200))  # 12.5 MiB that is never held whole
    end = iter([b"\nthe end\n"])
    tail, complete = logs.tail_bytes(itertools.chain(chunks, end), max_bytes=1024)
    assert complete and len(tail) == 1024 and tail.endswith(b"the end\n")


def test_log_tail_stops_at_its_deadline():
    import time

    def slow():
        while True:
            time.sleep(0.01)
            yield b"more\n"

    started = time.monotonic()
    tail, complete = logs.tail_bytes(slow(), max_bytes=64, deadline=time.monotonic() + 0.2)
    assert not complete and tail.endswith(b"more\n") and time.monotonic() - started < 1


def test_redactor_masks_given_secrets_and_token_shapes():
    secret = "s3cr3t-databand-value"
    r = Redactor([secret])
    text = r(f"token {secret}; glpat-abcdefghijklmnopqrst1; Authorization: Bearer abc.def.ghi123; "
             f"PRIVATE-TOKEN: xyz98765; https://user:hunter22@example.com/x; glibc-2.36 stays")
    for leaked in (secret, "glpat-abcdefghijklmnopqrst1", "abc.def.ghi123", "xyz98765", "hunter22"):
        assert leaked not in text
    assert "glibc-2.36 stays" in text and "https://user:" + MASK in text


def _event(i, root=False):
    facets = {} if root else {"parent": {"run": {"runId": "r"}}}
    return {"eventType": "COMPLETE", "run": {"runId": str(i), "facets": facets}, "job": {"name": f"j{i}"},
            "pad": "x" * 200}


@given(st.integers(min_value=0, max_value=60), st.integers(min_value=2, max_value=10),
       st.integers(min_value=300, max_value=5000))
def test_split_repeats_root_and_sends_each_event_once(n, max_events, max_bytes):
    events = [_event(0, root=True)] + [_event(i) for i in range(1, n + 1)]
    made = list(delivery.parts(events, max_events=max_events, max_bytes=max_bytes))
    assert all(indices[0] == 0 for indices, _ in made)
    assert all(len(indices) <= max_events for indices, _ in made)
    assert all([events[i] for i in indices] == json.loads(body) for indices, body in made)
    sent = [events[i]["run"]["runId"] for indices, _ in made for i in indices[1:]]
    assert sent == [str(i) for i in range(1, n + 1)]


def test_parts_are_json_arrays_and_keep_unicode():
    events = [{"run": {"facets": {}}, "job": {"name": "déploiement 🚀 \"quoted\"/slash"}}]
    [(indices, body)] = list(delivery.parts(events))
    assert indices == [0]
    # compact, UTF-8 as is (not \\u escapes), quotes escaped, the slash left alone
    assert body == '[{"run":{"facets":{}},"job":{"name":"déploiement 🚀 \\"quoted\\"/slash"}}]'.encode()


def test_packed_events_read_back_as_written():
    from reporter.packed import PackedEvents

    events = [{"eventType": "COMPLETE" if i % 3 else "FAIL", "run": {"runId": str(i), "facets": {}},
               "job": {"name": f"p.s.job {i} 🚀", "facets": {"jobType": {"jobType": "JOB" if i else "PIPELINE"}}}}
              for i in range(PackedEvents.CHUNK * 2 + 5)]  # two sealed chunks and an open one
    packed = PackedEvents(events)
    assert len(packed) == len(events)
    assert list(packed) == events and packed == events
    assert packed[-1] == events[-1] and packed[3:6] == events[3:6]
    assert packed[PackedEvents.CHUNK * 2 + 1] == events[PackedEvents.CHUNK * 2 + 1]  # from the open chunk
    assert packed[1] == events[1]  # back to an earlier chunk after the open one
    assert packed.counts[("PIPELINE", "FAIL")] == 1
    assert sum(packed.counts.values()) == len(events)
    assert sum(map(len, packed._chunks)) < sum(len(packed.raw(i)) for i in range(len(events))) / 4


def test_the_origin_guard_compares_an_international_name_as_it_goes_out():
    # requests sends éxample as xn--xample-9ua: the guard took its own request for a redirect there.
    from reporter.gitlab import http

    assert http._origin("http://éxample.invalid:8080/gitlab") == ("http", "xn--xample-9ua.invalid", 8080)
    assert http._origin("https://GitLab.Example.com") == ("https", "gitlab.example.com", 443)
