"""The one retry policy: waits, caps and the budget, with no real time spent."""

from reporter.retry import POLICY, RetryPolicy

NOW = 1_800_000_000.0


def test_first_retry_at_once_then_doubling_to_the_cap():
    policy = RetryPolicy(backoff=0.5, backoff_max=4)
    assert [policy.backoff_wait(n) for n in range(1, 7)] == [0, 0.5, 1, 2, 4, 4]


def test_retry_after_seconds_and_date_are_read_and_capped():
    policy = RetryPolicy(longest_wait=60)
    assert policy.server_wait({"Retry-After": "12"}, NOW) == 12
    assert policy.server_wait({"retry-after": "3600"}, NOW) == 60
    assert policy.server_wait({"Retry-After": "-5"}, NOW) == 0
    assert policy.server_wait({"Retry-After": "Fri, 15 Jan 2027 08:00:30 GMT"}, NOW) == 30  # NOW + 30 s
    assert policy.server_wait({"Retry-After": "Sat, 16 Jan 2027 08:00:00 GMT"}, NOW) == 60  # a day: capped
    assert policy.server_wait({"Retry-After": "soon"}, NOW) == 60  # unreadable: the longest
    assert policy.server_wait({}, NOW) is None


def test_ratelimit_reset_is_an_epoch_second_used_only_without_retry_after():
    policy = RetryPolicy(longest_wait=60)
    assert policy.server_wait({"RateLimit-Reset": str(int(NOW) + 20)}, NOW) == 20
    assert policy.server_wait({"RateLimit-Reset": str(int(NOW) + 7200)}, NOW) == 60
    assert policy.server_wait({"RateLimit-Reset": str(int(NOW) + 20), "Retry-After": "3"}, NOW) == 3
    assert policy.server_wait({"RateLimit-Reset": "tomorrow"}, NOW) is None


def test_no_wait_past_the_time_left_and_no_retry_past_the_attempts():
    policy = RetryPolicy(attempts=3, backoff=1)
    assert policy.wait_before(1, {}, left=10) == 0
    assert policy.wait_before(2, {"Retry-After": "5"}, left=10, now=NOW) == 5
    assert policy.wait_before(2, {"Retry-After": "30"}, left=10, now=NOW) is None
    assert policy.wait_before(3, {}, left=100) is None


def test_faster_scales_every_wait_and_keeps_the_counts():
    fast = POLICY.faster(0.01)
    assert fast.attempts == POLICY.attempts
    assert fast.backoff_wait(3) == POLICY.backoff_wait(3) * 0.01
    assert fast.server_wait({"Retry-After": "1000"}, NOW) == POLICY.longest_wait * 0.01
