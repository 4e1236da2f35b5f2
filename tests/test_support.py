"""The shared test helpers keep their promises: ``wait_until`` returns as soon as its condition
holds, whether the predicate is plain or async, and fails at its deadline naming the condition."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from tests.support import wait_until


async def test_wait_until_returns_once_the_condition_holds() -> None:
    checks = 0

    def third_time() -> bool:
        nonlocal checks
        checks += 1
        return checks == 3

    await wait_until(third_time)
    assert checks == 3

    async def async_third_time() -> bool:
        await anyio.lowlevel.checkpoint()
        return third_time()

    checks = 0
    await wait_until(async_third_time)
    assert checks == 3


async def test_wait_until_fails_at_its_deadline_naming_the_condition() -> None:
    with pytest.raises(AssertionError, match=r"still not true after 0\.05 s: .*1 \+ 1 == 3"):
        await wait_until(lambda: 1 + 1 == 3, 0.05)  # type: ignore[comparison-overlap]

    async def hangs() -> bool:
        await anyio.sleep_forever()
        return True

    with pytest.raises(AssertionError, match="the answer"):
        await wait_until(hangs, 0.05, what="the answer")
