"""Versioned rule files per agency: the review catalog (目录清单) and the discretion benchmarks (裁量基准).

Both are TOML files an agency publishes and loads; each load is kept verbatim with its version, so
a routing or a discretion check can always name, and show, the file it was made under.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
import uuid
from typing import Any, Literal

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from review.errors import RuleFileInvalid
from review.models import ReviewRuleFile
from server.core import ledger
from server.core.errors import Conflict
from server.core.keys import KeyRing

Kind = Literal["catalog", "benchmarks"]
KIND_LABELS: dict[str, str] = {"catalog": "法制审核目录清单", "benchmarks": "行政裁量基准"}


class FileInfo(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    version: str
    sha256: str
    loaded_at: dt.datetime
    in_force: bool


def parse_toml(text: str, kind: Kind) -> dict[str, Any]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleFileInvalid(f"{KIND_LABELS[kind]}不是有效的 TOML：{exc}") from exc
    version = document.get("version")
    if not isinstance(version, str) or not 0 < len(version.strip()) <= 64:
        raise RuleFileInvalid(f"{KIND_LABELS[kind]}须写明版本号 version（1–64 个字符）")
    return document


def convert(document: dict[str, Any], kind: Kind, type_: type[Any]) -> Any:
    try:
        return msgspec.convert(document, type_, strict=False)
    except msgspec.ValidationError as exc:
        raise RuleFileInvalid(f"{KIND_LABELS[kind]}有误：{exc}") from exc


async def current(session: AsyncSession, agency_id: uuid.UUID, kind: Kind) -> ReviewRuleFile | None:
    return await session.scalar(
        select(ReviewRuleFile)
        .where(ReviewRuleFile.agency_id == agency_id, ReviewRuleFile.kind == kind)
        .order_by(ReviewRuleFile.seq.desc())
        .limit(1)
    )


async def versions(session: AsyncSession, agency_id: uuid.UUID, kind: Kind) -> list[FileInfo]:
    rows = list(
        await session.scalars(
            select(ReviewRuleFile)
            .where(ReviewRuleFile.agency_id == agency_id, ReviewRuleFile.kind == kind)
            .order_by(ReviewRuleFile.seq.desc())
        )
    )
    return [
        FileInfo(
            kind=row.kind,
            version=row.version,
            sha256=row.sha256,
            loaded_at=row.loaded_at,
            in_force=index == 0,
        )
        for index, row in enumerate(rows)
    ]


async def store(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    agency_id: uuid.UUID,
    kind: Kind,
    version: str,
    text: str,
    loaded_by: uuid.UUID | None,
    now: dt.datetime,
) -> ReviewRuleFile:
    """Keep a new version (already validated by the caller); the same file again changes nothing."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    existing = await session.scalar(
        select(ReviewRuleFile).where(
            ReviewRuleFile.agency_id == agency_id,
            ReviewRuleFile.kind == kind,
            ReviewRuleFile.version == version,
        )
    )
    if existing is not None:
        if existing.sha256 != digest:
            raise Conflict(
                f"{KIND_LABELS[kind]}版本 {version} 已载入且内容不同；修改后请使用新的版本号",
                field="version",
            )
        return existing
    seq = await session.scalar(
        select(func.coalesce(func.max(ReviewRuleFile.seq), 0)).where(
            ReviewRuleFile.agency_id == agency_id, ReviewRuleFile.kind == kind
        )
    )
    row = ReviewRuleFile(
        agency_id=agency_id,
        kind=kind,
        version=version,
        seq=(seq or 0) + 1,
        text=text,
        sha256=digest,
        loaded_at=now,
        loaded_by=loaded_by,
    )
    session.add(row)
    await session.flush()
    await ledger.append(
        session,
        keyring,
        kind=f"review.{kind}_loaded",
        ref=f"agency:{agency_id}",
        data={"version": version, "sha256": digest, "text": text},
        now=now,
    )
    return row
