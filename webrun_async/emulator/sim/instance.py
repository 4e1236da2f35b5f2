"""A lost browser instance: the `instance:*` events, the paused task and the grace period.

The docs describe an "Orphaned" session: its instance disconnected and a reconnection window
(the grace period, 5 minutes on the real service) is open. The emulator publishes
`instance:disconnected`, stops the current task's clock, and then either publishes
`instance:reconnected` (the task goes on where it stopped) or ends the session with reason
`instance_lost` when the grace period runs out.
"""

from __future__ import annotations

import asyncio
import logging
import math

from .host import SimHost
from .session import EmulatedSession

__all__ = ["disconnect_instance", "reconnect_instance"]

logger = logging.getLogger("webrun_async.emulator")

DISCONNECTED_MESSAGE = "Instance connection lost. Attempting reconnection..."
RECONNECTED_MESSAGE = "Instance connection restored"


def disconnect_instance(
    engine: SimHost, session: EmulatedSession, reconnect_after: float | None
) -> None:
    """Lose the session's instance now; restore it after `reconnect_after` seconds, if given.

    A reconnection that would come after the grace period never happens: the session ends
    with `instance_lost` when the grace period is over.

    Raises:
        ValueError: `reconnect_after` is negative or not finite.
        RuntimeError: The instance is already disconnected, or the session has ended.
    """
    if reconnect_after is not None and (not math.isfinite(reconnect_after) or reconnect_after < 0):
        raise ValueError("reconnect_after must be a finite number of seconds >= 0, or None")
    if not session.live:
        raise RuntimeError(f"session {session.session_id} has ended")
    if session.orphaned:
        raise RuntimeError(f"the instance of session {session.session_id} is already disconnected")
    grace = engine.config.instance_grace
    session.set_orphaned(True, engine.now())
    session.publish(
        "instance:disconnected",
        {
            "type": "instance:disconnected",
            "message": DISCONNECTED_MESSAGE,
            "gracePeriod": round(grace * 1000),
        },
    )
    logger.debug("instance of session %s disconnected", session.session_id)
    if reconnect_after is not None and reconnect_after <= grace:
        delay, recovers = reconnect_after, True
    else:
        delay, recovers = grace, False
    engine.spawn(
        _settle(engine, session, delay, recovers),
        f"webrun-emulator-instance-{session.session_id}",
    )


def reconnect_instance(engine: SimHost, session: EmulatedSession) -> None:
    """Restore a lost instance: publish `instance:reconnected` and let the task go on."""
    if not session.live or not session.orphaned:
        return
    now = engine.now()
    session.set_orphaned(False, now)
    session.last_activity = now
    session.publish(
        "instance:reconnected",
        {"type": "instance:reconnected", "message": RECONNECTED_MESSAGE},
    )
    logger.debug("instance of session %s reconnected", session.session_id)


async def _settle(engine: SimHost, session: EmulatedSession, delay: float, recovers: bool) -> None:
    await asyncio.sleep(delay)
    if not session.live:
        return  # Ended meanwhile (terminated, for example).
    if recovers:
        reconnect_instance(engine, session)
    else:
        engine.end_session(session, "instance_lost")
