"""执法人员名册 import: a CSV of officers and their credentials, all rows or none.

Columns (header row, Chinese, any order): 证号, 姓名, 单位, 执法类别, 执法区域, 发证日期, 有效期至.
Lists inside a cell are separated by 、 ; ； or ,. Files saved by Excel in GB18030 are read too.
Photos come from a folder of images named by 证号 (``A1234.jpg`` / ``.png``).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import uuid
from pathlib import Path

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.core import ledger
from server.core.errors import NotFound, ValidationFailed
from server.core.keys import KeyRing
from server.core.models import Agency, Credential, EnforcementCategory, Officer

COLUMNS = ("证号", "姓名", "单位", "执法类别", "执法区域", "发证日期", "有效期至")
PHOTO_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
_LIST_SPLIT = re.compile(r"[、;；,，]")


class RowProblem(msgspec.Struct, frozen=True):
    row: int  # 1-based line number in the file, the header being line 1
    column: str
    reason: str


class RosterInvalid(ValidationFailed):
    code = "roster_invalid"
    title = "名册有误，未导入任何数据"


class RosterRow(msgspec.Struct, frozen=True):
    number: str
    name: str
    unit: str
    categories: list[str]
    regions: list[str]
    issued_on: dt.date
    expires_on: dt.date


class ImportResult(msgspec.Struct, frozen=True):
    created: int
    updated: int
    photos: int


def decode_csv(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("gb18030")


def _split(cell: str) -> list[str]:
    return [part.strip() for part in _LIST_SPLIT.split(cell) if part.strip()]


def parse_roster(text: str, known_categories: set[str]) -> list[RosterRow]:
    """Parse and validate every row; raise ``RosterInvalid`` listing every problem found."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise RosterInvalid(problems=[RowProblem(1, c, "缺少该列") for c in missing])
    reader.fieldnames = header
    problems: list[RowProblem] = []
    rows: list[RosterRow] = []
    seen: dict[str, int] = {}
    for line, record in enumerate(reader, start=2):
        cells = {k: (v or "").strip() for k, v in record.items() if k is not None}
        before = len(problems)
        number = cells.get("证号", "")
        if not number:
            problems.append(RowProblem(line, "证号", "证号不能为空"))
        elif number in seen:
            problems.append(RowProblem(line, "证号", f"证号 {number} 与第 {seen[number]} 行重复"))
        else:
            seen[number] = line
        for column in ("姓名", "单位"):
            if not cells.get(column):
                problems.append(RowProblem(line, column, f"{column}不能为空"))
        categories = _split(cells.get("执法类别", ""))
        if not categories:
            problems.append(RowProblem(line, "执法类别", "执法类别不能为空"))
        for category in categories:
            if category not in known_categories:
                problems.append(RowProblem(line, "执法类别", f"未知的执法类别“{category}”"))
        regions = _split(cells.get("执法区域", ""))
        if not regions:
            problems.append(RowProblem(line, "执法区域", "执法区域不能为空"))
        dates: dict[str, dt.date] = {}
        for column in ("发证日期", "有效期至"):
            try:
                dates[column] = dt.date.fromisoformat(cells.get(column, "").replace("/", "-"))
            except ValueError:
                problems.append(
                    RowProblem(line, column, f"日期“{cells.get(column, '')}”无效，应为 YYYY-MM-DD")
                )
        if len(dates) == 2 and dates["有效期至"] < dates["发证日期"]:
            problems.append(RowProblem(line, "有效期至", "有效期至早于发证日期"))
        if len(problems) == before:
            rows.append(
                RosterRow(
                    number=number,
                    name=cells["姓名"],
                    unit=cells["单位"],
                    categories=categories,
                    regions=regions,
                    issued_on=dates["发证日期"],
                    expires_on=dates["有效期至"],
                )
            )
    if problems:
        raise RosterInvalid(problems=problems)
    if not rows:
        raise RosterInvalid(problems=[RowProblem(1, "", "名册中没有任何人员")])
    return rows


def find_photos(folder: Path | None, numbers: list[str]) -> dict[str, tuple[bytes, str]]:
    if folder is None:
        return {}
    found: dict[str, tuple[bytes, str]] = {}
    for number in numbers:
        for suffix, media_type in PHOTO_TYPES.items():
            path = folder / f"{number}{suffix}"
            if path.is_file():
                found[number] = (path.read_bytes(), media_type)
                break
    return found


async def import_roster(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    agency_code: str,
    raw_csv: bytes,
    photos: dict[str, tuple[bytes, str]] | Path | None,
    now: dt.datetime,
) -> ImportResult:
    """Validate the whole file, then create or update every officer in the caller's transaction."""
    agency = await session.scalar(select(Agency).where(Agency.code == agency_code))
    if agency is None:
        raise NotFound(f"执法主体 {agency_code} 不存在")
    known = set(
        await session.scalars(
            select(EnforcementCategory.name).where(EnforcementCategory.agency_id == agency.id)
        )
    )
    rows = parse_roster(decode_csv(raw_csv), known)
    numbers = [r.number for r in rows]
    photo_map = photos if isinstance(photos, dict) else find_photos(photos, numbers)
    existing = {
        c.number: c
        for c in await session.scalars(select(Credential).where(Credential.number.in_(numbers)))
    }
    foreign = [n for n, c in existing.items() if c.agency_id != agency.id]
    if foreign:
        problems = [
            RowProblem(numbers.index(n) + 2, "证号", f"证号 {n} 已属于其他执法主体")
            for n in foreign
        ]
        raise RosterInvalid(problems=problems)
    highest = await session.scalar(
        select(func.max(Credential.status_index)).where(Credential.agency_id == agency.id)
    )
    next_index = 0 if highest is None else highest + 1
    created = updated = 0
    for row in rows:
        credential = existing.get(row.number)
        if credential is None:
            officer = Officer(
                id=uuid.uuid4(),
                agency_id=agency.id,
                name=row.name,
                unit=row.unit,
                created_at=now,
                updated_at=now,
            )
            credential = Credential(
                officer=officer,
                agency_id=agency.id,
                number=row.number,
                status_index=next_index,
                categories=row.categories,
                regions=row.regions,
                issued_on=row.issued_on,
                expires_on=row.expires_on,
            )
            next_index += 1
            session.add_all([officer, credential])
            created += 1
        else:
            officer = await session.get_one(Officer, credential.officer_id)
            officer.name, officer.unit, officer.updated_at = row.name, row.unit, now
            credential.categories, credential.regions = row.categories, row.regions
            credential.issued_on, credential.expires_on = row.issued_on, row.expires_on
            updated += 1
        if row.number in photo_map:
            credential.photo, credential.photo_type = photo_map[row.number]
        await session.flush()
        await ledger.append(
            session,
            keyring,
            kind="roster.credential_upserted",
            ref=f"credential:{row.number}",
            data={
                "officer_id": str(officer.id),
                "name": row.name,
                "unit": row.unit,
                "categories": row.categories,
                "regions": row.regions,
                "issued_on": row.issued_on.isoformat(),
                "expires_on": row.expires_on.isoformat(),
                "photo_sha256": hashlib.sha256(credential.photo).hexdigest()
                if credential.photo
                else None,
            },
            now=now,
        )
    return ImportResult(
        created=created, updated=updated, photos=sum(n in photo_map for n in numbers)
    )
