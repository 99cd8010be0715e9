"""What other areas add to the case area's own steps, as callables ``server.app`` injects.

The case area must not import legal review or disclosure (DESIGN.md §3), yet serving a decision
has to pass review's issue gate (行政处罚法 第58条) and a served or changed decision has to reach
disclosure. ``server.app`` puts a ``CaseHooks`` in the application state under ``STATE_KEY``:

* ``serve_checks`` run inside the push's transaction before a decision document is served; one
  that raises a ``ZhifaError`` refuses that event (stored as rejected with the error's code and
  message, shown on the terminal's refused list) and the rest of the batch goes on.
* ``print_checks`` run inside the transaction that registers a final decision printed on a
  terminal (``POST /api/documents``, kinds ``penalty_decision`` / ``onsite_decision``); one that
  raises a ``ZhifaError`` refuses the registration with its code and message, and the terminal
  keeps the document to register again at a later sync.
* ``served_listeners`` hear each accepted decision service after the push committed; a failure is
  logged and does not undo the push.
* ``change_listeners`` run inside the transaction that records a change of a served decision
  (变更、撤销、确认违法、确认无效); a failure refuses the change as a whole.

Without hooks (the defaults) nothing is checked or told.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from mobile_api.cases.assembly import CaseFile
from mobile_api.contracts.events import DecisionProposed

STATE_KEY = "case_hooks"
log = logging.getLogger("zhifa.cases")


class DecisionServed(msgspec.Struct, frozen=True, kw_only=True):
    """A decision document was served (the decision is issued); sent after the push committed."""

    case_id: uuid.UUID
    event_id: uuid.UUID
    agency_id: uuid.UUID
    document: str
    document_number: str
    served_at: dt.datetime  # server time


class FinalDecisionPrinted(msgspec.Struct, frozen=True, kw_only=True):
    """A final decision document the terminal printed, about to be registered."""

    case_id: uuid.UUID
    agency_id: uuid.UUID  # the registering officer's
    kind: str  # penalty_decision, onsite_decision
    number: str


class DecisionChange(msgspec.Struct, frozen=True, kw_only=True):
    """A served decision was changed, revoked, confirmed illegal or confirmed void."""

    case_id: uuid.UUID
    agency_id: uuid.UUID
    decision_number: str
    change: str
    via: str
    reason: str
    changed_on: dt.date
    recorded_at: dt.datetime


# ``proposal`` is the decision proposed earlier in the same push (not stored yet), else None.
ServeCheck = Callable[[AsyncSession, CaseFile, DecisionProposed | None], Awaitable[None]]
PrintCheck = Callable[[AsyncSession, FinalDecisionPrinted], Awaitable[None]]
ServedListener = Callable[[DecisionServed], Awaitable[None]]
ChangeListener = Callable[[AsyncSession, DecisionChange], Awaitable[None]]


@dataclass(frozen=True)
class CaseHooks:
    serve_checks: Sequence[ServeCheck] = ()
    print_checks: Sequence[PrintCheck] = ()
    served_listeners: Sequence[ServedListener] = ()
    change_listeners: Sequence[ChangeListener] = ()

    async def check_serving(
        self, session: AsyncSession, file: CaseFile, proposal: DecisionProposed | None
    ) -> None:
        for check in self.serve_checks:
            await check(session, file, proposal)

    async def check_printing(self, session: AsyncSession, printed: FinalDecisionPrinted) -> None:
        for check in self.print_checks:
            await check(session, printed)

    async def served(self, decisions: Sequence[DecisionServed]) -> None:
        for decision in decisions:
            for listener in self.served_listeners:
                try:
                    await listener(decision)
                except Exception:
                    log.exception(
                        "decision-served listener %r failed for case %s", listener, decision.case_id
                    )

    async def changed(self, session: AsyncSession, change: DecisionChange) -> None:
        for listener in self.change_listeners:
            await listener(session, change)


NO_HOOKS = CaseHooks()


def hooks_of(state: Any) -> CaseHooks:
    hooks = state.get(STATE_KEY) if hasattr(state, "get") else None
    return hooks if isinstance(hooks, CaseHooks) else NO_HOOKS
