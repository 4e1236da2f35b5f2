"""Client options (``_core/config.py``): `Timeouts`, `RetryPolicy`, `RateLimit` and
`RateLimits`, and the options `AsyncWebRun` takes or finds in the environment.

All without a server: a bad option fails at construction, with a `ConfigurationError`.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from webrun_async import (
    AsyncWebRun,
    ConfigurationError,
    RateLimit,
    RateLimits,
    RetryPolicy,
    Timeouts,
)
from webrun_async._core.config import HOLD_SECONDS

# -- Timeouts -----------------------------------------------------------------------------------


def test_timeouts_defaults() -> None:
    timeouts = Timeouts()
    assert (timeouts.connect, timeouts.read, timeouts.total) == (10.0, 60.0, None)
    assert timeouts.hold_read == HOLD_SECONDS + 25 == 75.0
    assert timeouts.stream_idle == 60.0


def test_timeouts_of_a_number_none_or_timeouts() -> None:
    assert Timeouts.of(None) == Timeouts()
    assert Timeouts.of(5) == Timeouts(read=5.0)
    assert Timeouts.of(2.5).connect == Timeouts().connect  # one number is the read limit only
    mine = Timeouts(connect=1, read=2)
    assert Timeouts.of(mine) is mine
    for wrong in ("fast", True, [5]):
        with pytest.raises(ConfigurationError, match="timeout must be a Timeouts"):
            Timeouts.of(wrong)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"connect": 0},
        {"read": -1},
        {"total": math.inf},
        {"stream_idle": math.nan},
        {"connect": True},
        {"read": "60"},
        {"hold_read": None},
        {"hold_read": HOLD_SECONDS + 4.9},
    ],
)
def test_timeouts_refuse_what_is_not_a_positive_number_of_seconds(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="Timeouts"):
        Timeouts(**kwargs)


def test_no_limit_is_none() -> None:
    timeouts = Timeouts(connect=None, read=None, stream_idle=None)
    assert timeouts.read_for(50) is None
    assert timeouts.read_for(300) is None


def test_the_read_limit_of_a_held_request_covers_the_whole_silence() -> None:
    short = Timeouts(read=5)
    assert short.read_for(0) == short.read_for(HOLD_SECONDS) == 75.0  # hold_read at least
    assert short.read_for(HOLD_SECONDS + 100) == 175.0  # and the silence beyond the hold
    long = Timeouts(read=120, hold_read=HOLD_SECONDS + 5)
    assert long.read_for(HOLD_SECONDS) == 120.0  # never less than the read limit


# -- RetryPolicy --------------------------------------------------------------------------------


def test_backoff_caps_double_up_to_max_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=8.0)
    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the top of each range
    assert [policy.delay(n, None) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    assert {policy.delay(n, None) for n in range(7)} == {0.0}  # full jitter starts at zero


def test_backoff_is_spread_over_its_whole_range() -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=4.0)
    delays = [policy.delay(3, None) for _ in range(400)]
    assert all(0.0 <= delay <= 4.0 for delay in delays)
    assert min(delays) < 1.0 and max(delays) > 3.0  # not a fixed wait (chance 2 * 0.75**400)


def test_retry_after_replaces_the_backoff_up_to_its_cap() -> None:
    policy = RetryPolicy(initial_backoff=5.0, max_retry_after=10.0)
    assert policy.delay(0, 2.5) == 2.5
    assert policy.delay(5, 0.0) == 0.0
    assert policy.delay(0, -1.0) == 0.0
    assert policy.delay(0, 3600.0) == 10.0


def test_no_wait_keeps_the_decisions_but_not_the_waits() -> None:
    policy = RetryPolicy(max_retries=5, wait=False)
    assert policy.max_retries == 5
    assert {policy.delay(n, None) for n in range(6)} == {0.0}
    assert policy.delay(0, 30.0) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"max_retries": True},
        {"initial_backoff": 0},
        {"max_backoff": -1},
        {"max_retry_after": math.nan},
        {"max_elapsed": "2 minutes"},
    ],
)
def test_retry_policy_refuses_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="RetryPolicy"):
        RetryPolicy(**kwargs)


# -- RateLimit, RateLimits ----------------------------------------------------------------------


def test_the_default_limits_are_the_documented_ones() -> None:
    limits = RateLimits()
    assert limits.task == RateLimit(10, 60.0)  # per endpoint, on the POSTs that start work
    assert limits.account == RateLimit(100, 900.0)  # shared by profiles and environments
    assert RateLimits(task=None, account=None).task is None


@pytest.mark.parametrize(
    ("requests", "period"), [(0, 60), (-1, 60), (1.5, 60), (True, 60), (1, 0), (1, math.inf)]
)
def test_rate_limit_refuses_bad_values(requests: Any, period: Any) -> None:
    with pytest.raises(ConfigurationError, match="RateLimit"):
        RateLimit(requests, period)


# -- the client's options -----------------------------------------------------------------------


def test_good_client_options_are_taken() -> None:
    client = AsyncWebRun(
        "k",
        base_url="http://127.0.0.1:9/",
        timeout=5,
        retry=RetryPolicy(max_retries=0),
        rate_limit=RateLimits(task=RateLimit(1, 1.0), account=None),
        max_connections=1,
        poll_interval=0.5,
    )
    assert client.base_url == "http://127.0.0.1:9"
    assert AsyncWebRun("k", rate_limit=None).base_url.startswith("https://")


def test_missing_api_key_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBRUN_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="WEBRUN_API_KEY"):
        AsyncWebRun()
    with pytest.raises(ConfigurationError):
        AsyncWebRun("   ")


def test_environment_variables_configure_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBRUN_API_KEY", "from-env-secret")
    monkeypatch.setenv("WEBRUN_BASE_URL", "http://127.0.0.1:9/")
    client = AsyncWebRun()
    assert client.base_url == "http://127.0.0.1:9"
    assert "from-env-secret" not in repr(client)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "ftp://x"},
        {"base_url": "connect.webrun.ai"},
        {"base_url": "https://x/?key=1"},
        {"max_connections": 0},
        {"poll_interval": 0},
        {"cleanup_timeout": -1},
        {"rate_limit": (10, 60)},
        {"timeout": "fast"},
    ],
)
def test_bad_client_options(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        AsyncWebRun("k", **kwargs)


def test_bad_config_values() -> None:
    with pytest.raises(ConfigurationError):
        Timeouts(connect=-1)
    with pytest.raises(ConfigurationError, match="hold_read"):
        Timeouts(hold_read=10)
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ConfigurationError):
        RateLimit(0, 60)
    with pytest.raises(ConfigurationError):
        RateLimit(1, 0)


def test_hold_read_limit_covers_the_hold() -> None:
    timeouts = Timeouts(read=5)
    assert timeouts.read_for(50) is not None and timeouts.read_for(50) >= 55  # type: ignore[operator]
    assert timeouts.read_for(300) >= 305  # type: ignore[operator]
