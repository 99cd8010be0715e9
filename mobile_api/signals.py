"""In-process notice that a decision was made on a case, sent after the push has committed.

Other areas (legal review, disclosure) must not be imported from here (DESIGN.md §3); ``server.app``
subscribes their reactions at start-up::

    from mobile_api import signals
    signals.decision_listeners.append(review.services.on_decision)

A listener is an ``async`` callable taking one ``DecisionMade``. It runs after the commit, in the
request that pushed the decision; an exception in it is logged and does not undo the push.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal

import msgspec

log = logging.getLogger("zhifa.signals")


class DecisionMade(msgspec.Struct, frozen=True, kw_only=True):
    case_id: uuid.UUID
    event_id: uuid.UUID
    agency_id: uuid.UUID
    penalties: list[str]
    fine_yuan: Decimal
    confiscation_yuan: Decimal
    decided_at: dt.datetime  # server time


DecisionListener = Callable[[DecisionMade], Awaitable[None]]
decision_listeners: list[DecisionListener] = []


async def decision_made(decisions: list[DecisionMade]) -> None:
    for decision in decisions:
        for listener in list(decision_listeners):
            try:
                await listener(decision)
            except Exception:
                log.exception("decision listener %r failed for case %s", listener, decision.case_id)
