"""The issue gate: a major decision is not made, printed as final, served or published unreviewed.

``server.app`` wires the case, document and disclosure areas to call ``require_review_passed``
before each of those steps (行政处罚法 第58条: 未经法制审核或者审核未通过的，不得作出决定).
A case whose proposed decision was never routed is refused too: whether it is major is unknown.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from review.models import ReviewCase
from review.schemas import GateStatus, ReviewState
from server.core.errors import ZhifaError


class GateAction(StrEnum):
    ISSUE = "作出决定"
    PRINT_FINAL = "打印正式决定书"
    SERVE = "送达决定书"
    PUBLISH = "公示决定"


class ReviewRequired(ZhifaError):
    code = "review_required"
    status = 409
    title = "重大执法决定未经法制审核通过"


NOT_ROUTED = "该案件的拟处理决定尚未按法制审核目录清单判定是否属于重大执法决定"


def status_of(record: ReviewCase | None) -> GateStatus:
    """The gate's answer from a case's review record (None: never routed)."""
    if record is None:
        return GateStatus(major=True, approved=False, routed=False, reasons=[NOT_ROUTED])
    reasons = [f"{m['label']}：{m['detail']}" for m in record.matches]
    if not record.major:
        return GateStatus(major=False, approved=False, reasons=["不属于重大执法决定"])
    approved = (
        record.state == ReviewState.APPROVED
        and record.approved_fingerprint == record.proposal_fingerprint
    )
    if approved:
        reasons.append(f"第 {record.current_round} 轮法制审核已通过")
    else:
        reasons.append(f"法制审核状态：{record.state}")
    return GateStatus(major=True, approved=approved, reasons=reasons)


async def decision_gate(session: AsyncSession, case_id: uuid.UUID) -> GateStatus:
    return status_of(await session.get(ReviewCase, case_id))


def refusal(case_id: uuid.UUID, action: GateAction, reasons: list[str]) -> ReviewRequired:
    return ReviewRequired(
        f"重大执法决定未经法制审核通过，不得{action}（{'；'.join(reasons)}）",
        case_id=str(case_id),
        action=str(action),
        reasons=reasons,
    )


async def require_review_passed(
    session: AsyncSession, case_id: uuid.UUID, action: GateAction
) -> GateStatus:
    """Raise ``ReviewRequired`` unless the case's decision may go through ``action`` now."""
    status = await decision_gate(session, case_id)
    if not status.allowed:
        raise refusal(case_id, action, status.reasons)
    return status
