"""An agency's procedure settings (DESIGN.md §2), stored per agency in ``case_rule_sets``.

Agencies without a row get the defaults below, which follow the law where it fixes a number and
common provincial practice where it leaves one to the agency.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from mobile_api.contracts.events import Penalty, Procedure
from mobile_api.models import CaseRuleSet


class OneOfficerRule(msgspec.Struct, frozen=True, kw_only=True):
    """One officer may act alone in cases of ``procedure`` whose decision is only ``penalties``.

    An empty ``penalties`` allows one officer whatever the decision. Before a decision exists the
    rule is taken on trust; a decision heavier than ``penalties`` is then refused.
    """

    procedure: Procedure = "当场处理"
    penalties: list[Penalty] = msgspec.field(default_factory=lambda: ["警告"])


class CaseRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # 陈述、申辩 period after the rights notice, in working days (第45条 leaves it to the agency).
    statement_days: Annotated[int, msgspec.Meta(ge=1, le=30)] = 5
    # 较大数额 thresholds that give the party a hearing right (第63条), in 元.
    hearing_fine_person_yuan: Annotated[int, msgspec.Meta(ge=0)] = 10_000
    hearing_fine_organisation_yuan: Annotated[int, msgspec.Meta(ge=0)] = 100_000
    hearing_confiscation_yuan: Annotated[int, msgspec.Meta(ge=0)] = 100_000
    # A deadline this many working days away or closer is flagged as near.
    near_deadline_working_days: Annotated[int, msgspec.Meta(ge=0, le=30)] = 3
    one_officer: list[OneOfficerRule] = msgspec.field(default_factory=lambda: [OneOfficerRule()])


def rules_from(document: dict[str, Any] | None) -> CaseRules:
    """The rules stored for an agency, or the defaults when it has none."""
    return CaseRules() if document is None else msgspec.convert(document, CaseRules)


async def rules_for(session: AsyncSession, agency_id: uuid.UUID) -> CaseRules:
    row = await session.get(CaseRuleSet, agency_id)
    return rules_from(row.rules if row else None)


async def store_rules(
    session: AsyncSession, agency_id: uuid.UUID, rules: CaseRules, now: dt.datetime
) -> None:
    document = msgspec.to_builtins(rules)
    row = await session.get(CaseRuleSet, agency_id)
    if row is None:
        session.add(CaseRuleSet(agency_id=agency_id, rules=document, updated_at=now))
    else:
        row.rules, row.updated_at = document, now
