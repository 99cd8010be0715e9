"""The demo agency that ``make run`` seeds: an agency, six officers, a reviewer, an admin, a code.

Seeding goes through the same services as real use (roster import, user creation, enrollment), so
the demo also shows how an agency is set up. Running it again changes nothing.
"""

from __future__ import annotations

import io

import msgspec
from PIL import Image, ImageDraw
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.app.context import AppContext
from server.core import accounts, ledger, roster
from server.core.auth import token_digest
from server.core.models import (
    ActKind,
    Agency,
    EnforcementCategory,
    EnforcementItem,
    EnrollmentCode,
    Role,
)

AGENCY_CODE = "demo"
AGENCY_NAME = "示范市文化市场综合行政执法支队"
DEMO_PASSWORD = "zhifa-demo-2026"
DEMO_ENROLLMENT_CODE = "DEMO-2026-0001"
CATEGORIES = ["文化市场", "旅游市场", "广播电视", "新闻出版"]

# 证号, 姓名, 单位, 执法类别, 执法区域, 发证日期, 有效期至
OFFICERS = [
    (
        "13010001",
        "张明",
        "一大队",
        "文化市场、旅游市场",
        "示范市城东区",
        "2024-03-01",
        "2029-02-28",
    ),
    (
        "13010002",
        "李华",
        "一大队",
        "文化市场",
        "示范市城东区、示范市城西区",
        "2024-03-01",
        "2029-02-28",
    ),
    ("13010003", "王芳", "二大队", "旅游市场", "示范市城西区", "2023-06-15", "2028-06-14"),
    ("13010004", "赵强", "二大队", "广播电视、新闻出版", "示范市全市", "2025-01-10", "2030-01-09"),
    ("13010005", "陈静", "三大队", "新闻出版", "示范市城南区", "2022-09-01", "2027-08-31"),
    (
        "13010006",
        "刘洋",
        "三大队",
        "文化市场、广播电视",
        "示范市城南区、示范市城北区",
        "2025-05-20",
        "2030-05-19",
    ),
]

# 执法事项: code, name, category, kind, legal basis
ITEMS = [
    (
        "WH-CF-001",
        "对擅自从事娱乐场所经营活动的处罚",
        "文化市场",
        ActKind.PENALTY,
        "《娱乐场所管理条例》第四十一条",
    ),
    (
        "WH-JC-001",
        "对娱乐场所经营活动的监督检查",
        "文化市场",
        ActKind.INSPECTION,
        "《娱乐场所管理条例》第三十三条",
    ),
    (
        "LY-CF-001",
        "对旅行社未经许可经营出境旅游业务的处罚",
        "旅游市场",
        ActKind.PENALTY,
        "《中华人民共和国旅游法》第九十五条",
    ),
    (
        "GD-QZ-001",
        "对擅自设置卫星地面接收设施的查扣",
        "广播电视",
        ActKind.COERCION,
        "《卫星电视广播地面接收设施管理规定》第十条",
    ),
    (
        "XW-XK-001",
        "出版物零售业务经营许可",
        "新闻出版",
        ActKind.LICENSING,
        "《出版管理条例》第三十七条",
    ),
]


class DemoInfo(msgspec.Struct, frozen=True):
    created: bool
    agency: str
    logins: list[tuple[str, str, str]]  # username, password, who
    enrollment_code: str


def _photo(number: str) -> bytes:
    """A plain head-and-shoulders placeholder, tinted per officer so the cards differ."""
    tint = int(number[-2:]) * 37 % 200
    image = Image.new("RGB", (240, 320), (225, 232, 240))
    draw = ImageDraw.Draw(image)
    draw.ellipse((70, 50, 170, 160), fill=(120 + tint // 4, 100, 90))
    draw.rounded_rectangle((30, 170, 210, 330), radius=60, fill=(30, 60 + tint // 3, 120))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _roster_csv() -> bytes:
    lines = ["证号,姓名,单位,执法类别,执法区域,发证日期,有效期至"]
    lines += [",".join(f'"{cell}"' for cell in row) for row in OFFICERS]
    return ("\n".join(lines) + "\n").encode()


async def _ensure_enrollment_code(
    context: AppContext, session: AsyncSession, agency: Agency
) -> str:
    demo = await session.scalar(
        select(EnrollmentCode).where(EnrollmentCode.code_hash == token_digest(DEMO_ENROLLMENT_CODE))
    )
    now = context.clock.now()
    if demo is None:
        await accounts.create_enrollment_code(
            session, context.settings, agency.id, now, DEMO_ENROLLMENT_CODE
        )
        return DEMO_ENROLLMENT_CODE
    if demo.used_at is None and demo.expires_at > now:
        return DEMO_ENROLLMENT_CODE
    code, _ = await accounts.create_enrollment_code(session, context.settings, agency.id, now)
    return code


def _logins() -> list[tuple[str, str, str]]:
    officers = [
        (number, DEMO_PASSWORD, f"执法人员 {name}（{unit}）") for number, name, unit, *_ in OFFICERS
    ]
    return [
        ("admin", DEMO_PASSWORD, "管理员"),
        ("reviewer", DEMO_PASSWORD, "法制审核人员"),
        *officers,
    ]


async def seed(context: AppContext) -> DemoInfo:
    now = context.clock.now()
    keyring = await context.keyring()
    async with context.database.transaction() as session:
        agency = await session.scalar(select(Agency).where(Agency.code == AGENCY_CODE))
        created = agency is None
        if agency is None:
            agency = Agency(code=AGENCY_CODE, name=AGENCY_NAME, region="示范市", created_at=now)
            session.add(agency)
            await session.flush()
            session.add_all(
                EnforcementCategory(agency_id=agency.id, name=name) for name in CATEGORIES
            )
            session.add_all(
                EnforcementItem(
                    agency_id=agency.id, code=c, name=n, category=cat, kind=k, legal_basis=b
                )
                for c, n, cat, k, b in ITEMS
            )
            await session.flush()
            await ledger.append(
                session,
                keyring,
                kind="agency.created",
                ref=f"agency:{AGENCY_CODE}",
                data={"name": AGENCY_NAME, "categories": CATEGORIES},
                now=now,
            )
            await roster.import_roster(
                session,
                keyring,
                agency_code=AGENCY_CODE,
                raw_csv=_roster_csv(),
                photos={number: (_photo(number), "image/jpeg") for number, *_ in OFFICERS},
                now=now,
            )
            people = [
                ("admin", "支队管理员", [Role.AGENCY_ADMIN, Role.SYSTEM_ADMIN], None),
                ("reviewer", "法制审核员 周敏", [Role.REVIEWER], None),
            ] + [(number, name, [Role.OFFICER], number) for number, name, *_ in OFFICERS]
            for username, display, roles, credential in people:
                await accounts.create_user(
                    session,
                    keyring,
                    username=username,
                    password=DEMO_PASSWORD,
                    display_name=display,
                    roles=roles,
                    agency_id=agency.id,
                    now=now,
                    credential_number=credential,
                )
        code = await _ensure_enrollment_code(context, session, agency)
    return DemoInfo(created=created, agency=AGENCY_NAME, logins=_logins(), enrollment_code=code)
