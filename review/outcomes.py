"""The review outcome of a case as the handling officers' terminals get it (pull kind
``review_outcome``): where the review stands, what the reviewer found, and whether the final
decision may be printed and served now, with the gate's reasons when it may not.

Read from the review record at every pull rather than sent when a review concludes: a returned
round, a request for materials, an escalation and a proposal changed after approval all reach the
terminal the same way, and none is lost when a notification would have failed.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from mobile_api.contracts.sync import ReviewOutcomeRef
from review.gate import status_of
from review.models import ReviewCase, ReviewEscalation, ReviewRound
from review.schemas import CHECK_ITEMS, Outcome, Problem, ReviewState


def _problem(problem: Problem) -> str:
    item = CHECK_ITEMS.get(problem.item)
    return f"{item.label}：{problem.text}" if item else problem.text


def _outcome(
    record: ReviewCase, current: ReviewRound | None, escalation: ReviewEscalation | None
) -> dict[str, Any]:
    """The round's opinion (or request for materials); an escalation of the round (raised after
    its return) adds its reason while open and the responsible person's decision once made."""
    said: dict[str, Any] = {"outcome": ""}
    if current is not None and current.outcome not in (None, Outcome.WITHDRAWN):
        said = {
            "outcome": current.outcome,
            "opinion": current.opinion,
            "decided_at": current.decided_at,
            "problems": [_problem(p) for p in msgspec.convert(current.problems, list[Problem])],
            "request": current.supplement_request,
            "due_on": current.supplement_due,
        }
    if escalation is None:
        return said
    if record.state == ReviewState.ESCALATED:
        said["request"] = escalation.reason
    elif escalation.outcome not in (None, Outcome.WITHDRAWN):
        said.update(
            outcome=escalation.outcome,
            opinion=escalation.decision,
            decided_at=escalation.decided_at,
        )
    return said


async def outcome_refs(
    session: AsyncSession, agency_id: uuid.UUID, case_ids: Select[Any]
) -> list[ReviewOutcomeRef]:
    """The outcome of each routed case among ``case_ids`` (a query) of the agency, by case id."""
    records = list(
        await session.scalars(
            select(ReviewCase)
            .where(ReviewCase.agency_id == agency_id, ReviewCase.case_id.in_(case_ids))
            .order_by(ReviewCase.case_id)
        )
    )
    ids = [r.case_id for r in records]
    rounds = {
        (r.case_id, r.number): r
        for r in await session.scalars(select(ReviewRound).where(ReviewRound.case_id.in_(ids)))
    }
    # The latest escalation of each case.
    escalations = {
        e.case_id: e
        for e in await session.scalars(
            select(ReviewEscalation)
            .where(ReviewEscalation.case_id.in_(ids))
            .order_by(ReviewEscalation.raised_at)
        )
    }
    refs = []
    for record in records:
        current = rounds.get((record.case_id, record.current_round))
        escalation: ReviewEscalation | None = escalations.get(record.case_id)
        if escalation is not None and escalation.round != record.current_round:
            escalation = None  # raised in an earlier round
        gate = status_of(record)
        refs.append(
            ReviewOutcomeRef(
                case_id=record.case_id,
                state=record.state,
                major=record.major,
                allowed=gate.allowed,
                reasons=gate.reasons,
                round=record.current_round,
                **_outcome(record, current, escalation),
            )
        )
    return refs
