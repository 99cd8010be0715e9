"""The review catalog (重大执法决定法制审核目录清单) and the routing of proposed decisions.

A proposed decision is major when any rule of the agency's catalog in force matches (DESIGN.md §6).
One rule, one kind:

=================  =====================================================================
kind               matches when
=================  =====================================================================
fine               the fine is at or above ``min_yuan`` (the threshold itself is major)
confiscation       the value confiscated is at or above ``min_yuan``
penalty            the decision includes one of ``penalties`` (吊销许可证件, 责令关闭 ...)
hearing            a hearing was held (经过听证程序)
complex            the case is flagged 疑难复杂 / 涉及多个法律关系
public_interest    the case is flagged 涉及重大公共利益
law                a law requires review: the case names the provision, or its 执法事项 is
                   in ``items``
=================  =====================================================================

Any rule may be narrowed to one 执法类别 (``category``) and one kind of party (``party``). A
party-narrowed rule also applies while the case names no party yet, so an incomplete case file
can only make a decision major, never spare it.

Agencies that have not loaded a catalog route with the built-in one (``catalog.default.toml``),
which holds what the law itself makes major and the common 较大数额 thresholds.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from importlib import resources
from typing import Annotated, Literal

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from mobile_api.contracts.events import Penalty
from review import rulefiles
from review.errors import RuleFileInvalid
from review.schemas import ReviewCaseFile, RuleMatch

RuleKind = Literal[
    "fine", "confiscation", "penalty", "hearing", "complex", "public_interest", "law"
]
KIND_LABELS: dict[str, str] = {
    "fine": "较大数额罚款",
    "confiscation": "没收较大数额财物",
    "penalty": "责令停产停业、吊销许可证件等重大处罚",
    "hearing": "经过听证程序",
    "complex": "案情疑难复杂、涉及多个法律关系",
    "public_interest": "涉及重大公共利益",
    "law": "法律、法规、规章规定应当进行法制审核",
}
PARTY_LABELS = {"person": "公民", "organisation": "法人或者其他组织"}
DEFAULT_REVIEW_WORKING_DAYS = 10
RuleId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]


def _yuan(amount: Decimal) -> str:
    return f"{amount.normalize():,f}"


class CatalogRule(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    id: RuleId
    kind: RuleKind
    label: str = ""
    basis: str = ""
    category: str = ""
    party: Literal["person", "organisation"] | None = None
    min_yuan: Decimal | None = None
    penalties: list[Penalty] = msgspec.field(default_factory=list)
    items: list[str] = msgspec.field(default_factory=list)

    def problem(self) -> str:
        """Why the rule cannot be used, or ""."""
        amount_kinds = ("fine", "confiscation")
        if self.kind in amount_kinds and (self.min_yuan is None or self.min_yuan < 0):
            return f"规则 {self.id}：{KIND_LABELS[self.kind]}须写明不小于 0 的 min_yuan"
        if self.kind not in amount_kinds and self.min_yuan is not None:
            return f"规则 {self.id}：只有罚款和没收规则可以写 min_yuan"
        if self.kind == "penalty" and not self.penalties:
            return f"规则 {self.id}：处罚种类规则须列出 penalties"
        if self.kind != "penalty" and self.penalties:
            return f"规则 {self.id}：只有处罚种类规则可以写 penalties"
        if self.kind != "law" and self.items:
            return f"规则 {self.id}：只有法定审核规则可以列出执法事项 items"
        return ""

    @property
    def title(self) -> str:
        return self.label or KIND_LABELS[self.kind]

    @property
    def criterion(self) -> str:
        """The rule in words, for the public catalog and the console."""
        party = f"（对{PARTY_LABELS[self.party]}）" if self.party else ""
        amount = _yuan(self.min_yuan) if self.min_yuan is not None else ""
        if self.kind == "fine":
            return f"罚款 {amount} 元以上{party}"
        if self.kind == "confiscation":
            return f"没收违法所得、非法财物价值 {amount} 元以上{party}"
        if self.kind == "penalty":
            return f"拟作出{'、'.join(self.penalties)}{party}"
        if self.kind == "law" and self.items:
            return f"{KIND_LABELS['law']}（执法事项 {'、'.join(self.items)}）"
        return KIND_LABELS[self.kind] + party

    def _applies_to(self, case: ReviewCaseFile) -> bool:
        if self.category and self.category != case.category:
            return False
        if self.party and case.parties:
            return any(party.type == self.party for party in case.parties)
        return True

    def _scope(self) -> str:
        parts = [self.category, f"对{PARTY_LABELS[self.party]}" if self.party else ""]
        return "".join(part for part in parts if part)

    def detail(self, case: ReviewCaseFile) -> str:
        """Why this rule makes the case's proposed decision major, or "" when it does not."""
        if not self._applies_to(case):
            return ""
        proposal = case.proposal
        if self.kind == "fine" and self.min_yuan is not None:
            fine = proposal.fine_yuan
            if fine > 0 and fine >= self.min_yuan:
                return f"拟罚款 {_yuan(fine)} 元，达到{self._scope()}罚款 {_yuan(self.min_yuan)} 元以上的标准"
        elif self.kind == "confiscation" and self.min_yuan is not None:
            value = proposal.confiscation_yuan
            if value > 0 and value >= self.min_yuan:
                return f"拟没收财物价值 {_yuan(value)} 元，达到{self._scope()}{_yuan(self.min_yuan)} 元以上的标准"
        elif self.kind == "penalty":
            heavy = [p for p in proposal.penalties if p in self.penalties]
            if heavy:
                return f"拟作出{'、'.join(heavy)}"
        elif self.kind == "hearing" and case.hearing_held:
            return "该案经过听证程序"
        elif self.kind == "complex" and case.complex:
            return "承办机构标注案情疑难复杂、涉及多个法律关系"
        elif self.kind == "public_interest" and case.public_interest:
            return "承办机构标注涉及重大公共利益、可能造成重大社会影响"
        elif self.kind == "law":
            if case.law_requires:
                return f"依据{case.law_requires}应当进行法制审核"
            if case.item_code and case.item_code in self.items:
                return f"执法事项 {case.item_code} 依规定应当进行法制审核"
        return ""


class Catalog(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    version: str
    title: str = "重大执法决定法制审核目录清单"
    # 审核时限 in working days, counted from the day after submission.
    review_working_days: Annotated[int, msgspec.Meta(ge=1, le=60)] = DEFAULT_REVIEW_WORKING_DAYS
    # The agency's responsible person (负责人) who decides when handler and reviewer disagree.
    responsible_person: str = "机关负责人"
    rules: list[CatalogRule] = msgspec.field(default_factory=list)

    def route(self, case: ReviewCaseFile) -> list[RuleMatch]:
        """Every rule the case's proposed decision matches; the decision is major if any does."""
        matches = []
        for rule in self.rules:
            detail = rule.detail(case)
            if detail:
                matches.append(
                    RuleMatch(
                        rule_id=rule.id,
                        kind=rule.kind,
                        label=rule.title,
                        detail=detail,
                        basis=rule.basis,
                    )
                )
        return matches


class PublicCatalogEntry(msgspec.Struct, kw_only=True, frozen=True):
    """One entry of the catalog as the public portal shows it (行政执法公示)."""

    name: str
    category: str
    criterion: str
    basis: str


def parse_catalog(text: str) -> Catalog:
    catalog: Catalog = rulefiles.convert(rulefiles.parse_toml(text, "catalog"), "catalog", Catalog)
    if not catalog.rules:
        raise RuleFileInvalid("目录清单至少要有一条规则")
    ids = [rule.id for rule in catalog.rules]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RuleFileInvalid(f"目录清单中规则编号重复：{'、'.join(duplicates)}")
    for rule in catalog.rules:
        if problem := rule.problem():
            raise RuleFileInvalid(problem, rule=rule.id)
    return catalog


DEFAULT_CATALOG_TEXT = resources.files("review").joinpath("catalog.default.toml").read_text("utf-8")
DEFAULT_CATALOG = parse_catalog(DEFAULT_CATALOG_TEXT)


async def catalog_for(session: AsyncSession, agency_id: uuid.UUID) -> Catalog:
    """The agency's catalog in force, or the built-in one when it has loaded none."""
    row = await rulefiles.current(session, agency_id, "catalog")
    return DEFAULT_CATALOG if row is None else parse_catalog(row.text)


async def published_catalog(
    session: AsyncSession, agency_id: uuid.UUID
) -> list[PublicCatalogEntry]:
    """The catalog in force, entry by entry, for the disclosure portal (wired in server.app)."""
    catalog = await catalog_for(session, agency_id)
    return [
        PublicCatalogEntry(
            name=rule.title, category=rule.category, criterion=rule.criterion, basis=rule.basis
        )
        for rule in catalog.rules
    ]
