"""Discretion benchmarks (行政裁量基准): a versioned table per agency.

Each row: a violation (违法行为, by code, usually the 执法事项 code) and a circumstance (情节:
轻微 / 一般 / 较重 / 严重) give the penalty kinds allowed and the fine range. A proposed decision
outside its row is flagged, on the review record and in the review, with the row shown; a
decision that names no row, or a violation the table lacks, is reported as such (it cannot be
checked), and an agency without a table gets "未制定裁量基准".
"""

from __future__ import annotations

from decimal import Decimal

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from mobile_api.contracts.events import Penalty
from review import rulefiles
from review.errors import RuleFileInvalid
from review.schemas import (
    BenchmarkCheck,
    BenchmarkRow,
    BenchmarkStatus,
    Circumstance,
    ReviewCaseFile,
)


def _yuan(amount: Decimal) -> str:
    return f"{amount.normalize():,f}"


class _RowInput(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    violation: str
    name: str
    circumstance: Circumstance
    penalties: list[Penalty] = msgspec.field(default_factory=list)
    fine_min_yuan: Decimal | None = None
    fine_max_yuan: Decimal | None = None
    basis: str = ""
    note: str = ""


class _TableInput(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    version: str
    title: str = "行政处罚裁量基准"
    rows: list[_RowInput] = msgspec.field(default_factory=list)


class BenchmarkTable(msgspec.Struct, kw_only=True, frozen=True):
    version: str
    title: str
    rows: dict[tuple[str, str], BenchmarkRow]

    def check(self, case: ReviewCaseFile) -> BenchmarkCheck:
        proposal = case.proposal
        violation = proposal.violation or case.item_code
        if not violation or proposal.circumstance is None:
            return BenchmarkCheck(
                status=BenchmarkStatus.NO_ROW,
                version=self.version,
                problems=["拟处理决定未写明违法行为或违法情节，无法对照裁量基准"],
            )
        row = self.rows.get((violation, proposal.circumstance))
        if row is None:
            return BenchmarkCheck(
                status=BenchmarkStatus.NO_ROW,
                version=self.version,
                problems=[
                    f"裁量基准中没有违法行为 {violation}「{proposal.circumstance}」情节的条目"
                ],
            )
        problems = [
            f"处罚种类「{penalty}」不在裁量基准允许的种类（{'、'.join(row.penalties)}）之内"
            for penalty in proposal.penalties
            if row.penalties and penalty not in row.penalties
        ]
        fine = proposal.fine_yuan
        if fine > 0:
            below = row.fine_min_yuan is not None and fine < row.fine_min_yuan
            above = row.fine_max_yuan is not None and fine > row.fine_max_yuan
            if below or above:
                problems.append(f"拟罚款 {_yuan(fine)} 元，超出裁量基准 {row.fine_range}的幅度")
        status = BenchmarkStatus.OUTSIDE if problems else BenchmarkStatus.WITHIN
        return BenchmarkCheck(status=status, version=self.version, row=row, problems=problems)


def parse_benchmarks(text: str) -> BenchmarkTable:
    table: _TableInput = rulefiles.convert(
        rulefiles.parse_toml(text, "benchmarks"), "benchmarks", _TableInput
    )
    if not table.rows:
        raise RuleFileInvalid("裁量基准至少要有一行")
    rows: dict[tuple[str, str], BenchmarkRow] = {}
    for row in table.rows:
        key = (row.violation, row.circumstance)
        where = f"违法行为 {row.violation}「{row.circumstance}」"
        if key in rows:
            raise RuleFileInvalid(f"裁量基准中{where}出现了两次")
        low, high = row.fine_min_yuan, row.fine_max_yuan
        if (low is not None and low < 0) or (high is not None and high < 0):
            raise RuleFileInvalid(f"裁量基准{where}的罚款幅度不能为负数")
        if low is not None and high is not None and low > high:
            raise RuleFileInvalid(f"裁量基准{where}的罚款下限高于上限")
        rows[key] = BenchmarkRow(
            id=f"{row.violation}/{row.circumstance}",
            violation=row.violation,
            name=row.name,
            circumstance=row.circumstance,
            penalties=row.penalties,
            fine_min_yuan=low,
            fine_max_yuan=high,
            basis=row.basis,
            note=row.note,
        )
    return BenchmarkTable(version=table.version, title=table.title, rows=rows)


async def check_for(session: AsyncSession, case: ReviewCaseFile) -> BenchmarkCheck:
    """Check a proposed decision against the agency's benchmarks in force."""
    row = await rulefiles.current(session, case.agency_id, "benchmarks")
    if row is None:
        return BenchmarkCheck(
            status=BenchmarkStatus.NO_TABLE, problems=["本机关尚未载入行政裁量基准"]
        )
    return parse_benchmarks(row.text).check(case)
