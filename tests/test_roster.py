"""执法人员名册 import: all rows or none, every problem reported, re-import updates in place."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from server.core import roster
from server.core.models import Credential, LedgerEntry, Officer
from tests.conftest import ROOT, login

HEADER = "证号,姓名,单位,执法类别,执法区域,发证日期,有效期至\n"
GOOD = HEADER + (
    "20010001,孙立,四大队,文化市场,示范市城东区,2025-01-01,2030-12-31\n"
    '20010002,周婷,四大队,"旅游市场、文化市场","示范市城西区；示范市城南区",2025/02/01,2030-01-31\n'
)


async def _counts(context) -> tuple[int, int]:
    async with context.database.sessionmaker() as session:
        officers = await session.scalar(select(func.count()).select_from(Officer))
        ledger_rows = await session.scalar(select(func.count()).select_from(LedgerEntry))
    return officers, ledger_rows


async def _import(context, raw: bytes, photos=None):
    async with context.database.transaction() as session:
        return await roster.import_roster(
            session,
            await context.keyring(),
            agency_code="demo",
            raw_csv=raw,
            photos=photos,
            now=context.clock.now(),
        )


async def test_a_file_with_bad_rows_imports_nothing_and_names_every_problem(context, seeded):
    before = await _counts(context)
    bad = HEADER + (
        "20010001,孙立,四大队,文化市场,示范市城东区,2025-01-01,2030-12-31\n"  # fine
        ",无证号,四大队,文化市场,示范市城东区,2025-01-01,2030-12-31\n"  # missing 证号
        "20010001,重复,四大队,文化市场,示范市城东区,2025-01-01,2030-12-31\n"  # duplicate
        "20010003,钱多,四大队,园林绿化,示范市城东区,2025-01-01,2030-12-31\n"  # unknown category
        "20010004,吴用,四大队,文化市场,示范市城东区,2025-13-01,2030-12-31\n"  # bad date
        "20010005,郑和,四大队,文化市场,示范市城东区,2025-06-01,2024-12-31\n"  # expiry before issue
    )
    with pytest.raises(roster.RosterInvalid) as caught:
        await _import(context, bad.encode())
    problems = {(p.row, p.column): p.reason for p in caught.value.data["problems"]}
    assert problems[(3, "证号")] == "证号不能为空"
    assert "与第 2 行重复" in problems[(4, "证号")]
    assert "园林绿化" in problems[(5, "执法类别")]
    assert "2025-13-01" in problems[(6, "发证日期")]
    assert problems[(7, "有效期至")] == "有效期至早于发证日期"
    assert len(problems) == 5
    assert await _counts(context) == before


async def test_missing_columns_are_reported(context, seeded):
    with pytest.raises(roster.RosterInvalid) as caught:
        await _import(context, "证号,姓名\n1,张三\n".encode())
    assert {p.column for p in caught.value.data["problems"]} == {
        "单位",
        "执法类别",
        "执法区域",
        "发证日期",
        "有效期至",
    }


async def test_good_file_imports_then_reimport_updates_in_place(context, seeded):
    officers_before, _ = await _counts(context)
    result = await _import(context, GOOD.encode())
    assert (result.created, result.updated) == (2, 0)
    changed = GOOD.replace("四大队", "五大队")
    again = await _import(context, changed.encode("gb18030"))  # Excel in Chinese saves GB18030
    assert (again.created, again.updated) == (0, 2)
    async with context.database.sessionmaker() as session:
        assert (
            await session.scalar(select(func.count()).select_from(Officer)) == officers_before + 2
        )
        credential = await session.scalar(select(Credential).where(Credential.number == "20010002"))
        officer = await session.get(Officer, credential.officer_id)
        assert officer.unit == "五大队"
        assert credential.categories == ["旅游市场", "文化市场"]
        assert credential.regions == ["示范市城西区", "示范市城南区"]
        indexes = list(
            await session.scalars(select(Credential.status_index).order_by(Credential.status_index))
        )
        assert indexes == list(range(len(indexes)))  # dense, for the status list


async def test_photos_come_from_a_folder_named_by_credential_number(context, seeded, tmp_path):
    (tmp_path / "20010001.png").write_bytes(b"\x89PNG fake but present")
    result = await _import(context, GOOD.encode(), photos=tmp_path)
    assert result.photos == 1


async def test_admin_endpoint_imports_multipart_with_photos(client, seeded):
    headers = await login(client, "admin")
    files = [
        ("file", ("roster.csv", GOOD.encode(), "text/csv")),
        ("photos", ("20010002.jpg", b"\xff\xd8\xff fake jpeg", "image/jpeg")),
    ]
    response = await client.post(
        "/api/admin/roster/import", data={"agency_code": "demo"}, files=files, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"created": 2, "updated": 0, "photos": 1}
    listed = await client.get(
        "/api/admin/officers", params={"agency_code": "demo"}, headers=headers
    )
    assert {o["credential_number"] for o in listed.json()} >= {"20010001", "20010002"}


async def test_admin_endpoint_reports_bad_rows_as_problem_json(client, seeded):
    headers = await login(client, "admin")
    bad = HEADER + "20010009,钱多,四大队,园林绿化,示范市城东区,2025-01-01,2030-12-31\n"
    response = await client.post(
        "/api/admin/roster/import",
        data={"agency_code": "demo"},
        files=[("file", ("roster.csv", bad.encode(), "text/csv"))],
        headers=headers,
    )
    assert response.status_code == 422
    body = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert body["code"] == "roster_invalid"
    assert body["problems"] == [
        {"row": 2, "column": "执法类别", "reason": "未知的执法类别“园林绿化”"}
    ]


async def test_roster_import_is_refused_to_non_admins(client, seeded):
    files = [("file", ("roster.csv", GOOD.encode(), "text/csv"))]
    anonymous = await client.post(
        "/api/admin/roster/import", data={"agency_code": "demo"}, files=files
    )
    assert anonymous.status_code == 401
    reviewer = await client.post(
        "/api/admin/roster/import",
        data={"agency_code": "demo"},
        files=files,
        headers=await login(client, "reviewer"),
    )
    assert reviewer.status_code == 403


async def test_cli_import_reports_rows_in_chinese(context, seeded, settings, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        HEADER + "20010009,钱多,四大队,文化市场,示范市城东区,2025-01-01,2020-12-31\n",
        encoding="utf-8",
    )
    env = dict(
        os.environ,
        ZHIFA_DATABASE_URL=settings.resolved_database_url,
        ZHIFA_DATA_DIR=settings.data_dir,
    )
    result = subprocess.run(
        [sys.executable, "-m", "server.app.cli", "roster", "import", str(bad), "--agency", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "第 2 行 [有效期至] 有效期至早于发证日期" in result.stderr
