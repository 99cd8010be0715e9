"""Portal speed: word search and filtered lists over many published decisions.

    .venv/bin/python bench/portal.py                 # 1,000,000 decisions on SQLite
    .venv/bin/python bench/portal.py --rows 100000   # a quick run

Loads published decisions straight into ``disclosure_records`` (batched inserts; the FTS5 trigram
index is built once at the end), then asks the JSON API the way the portal does, through the whole
Litestar stack in process (httpx ASGI transport). Prints p50/p99 per query kind next to a ceiling
measured in the same run (``GET /health`` through the same stack: what no query can beat).
The last line is ``portal_p99_ms=<value>``: the worse p99 of the word search and the filtered list.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from disclosure.services import DAY_SHIFT  # noqa: E402
from server.app import migrate  # noqa: E402
from server.app.main import create_app  # noqa: E402
from server.core.db import Database  # noqa: E402
from server.core.settings import Settings, load_settings  # noqa: E402

AGENCIES = [
    ("shj-wh", "示范市文化市场综合行政执法支队", ["文化市场", "旅游市场", "广播电视", "新闻出版"]),
    ("shj-jt", "示范市交通运输综合行政执法支队", ["道路运输", "水路运输", "城市客运"]),
    ("shj-sc", "示范市市场监督管理局", ["食品安全", "价格监督", "广告监管", "特种设备"]),
]
KINDS = ["行政处罚"] * 6 + ["行政许可"] * 2 + ["行政检查", "行政强制", "行政征收", "其他"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦"
COMPANY_WORDS = [
    "星河",
    "远航",
    "嘉禾",
    "锦程",
    "华夏",
    "东方",
    "新世纪",
    "金桥",
    "银河",
    "蓝天",
    "海韵",
    "博雅",
    "恒通",
    "鑫源",
    "瑞丰",
    "天成",
]
TRADES = [
    "网吧",
    "歌舞厅",
    "书店",
    "旅行社",
    "客运站",
    "餐饮店",
    "超市",
    "药店",
    "加油站",
    "出租车公司",
    "广告公司",
    "印刷厂",
]
ACTS = [
    "未取得经营许可擅自从事经营活动",
    "超出核准范围经营",
    "未按规定建立台账",
    "接纳未成年人进入营业场所",
    "未按规定公示价格",
    "发布虚假广告",
    "使用未经检验的特种设备",
    "销售过期食品",
    "未按规定核验身份信息",
    "擅自变更经营地址",
]
OUTCOMES = [
    "罚款人民币{}元",
    "警告",
    "没收违法所得人民币{}元",
    "责令停业整顿",
    "准予许可",
    "责令改正",
]
WORDS = ["未取得", "经营许可", "营业场所", "特种设备", "虚假广告", "过期食品", "旅行社", "歌舞厅"]
SHORT_WORDS = ["网吧", "警告", "书店"]


def _text(rng: random.Random) -> tuple[str, str, str, str]:
    if rng.random() < 0.5:
        subject = rng.choice(SURNAMES) + "某"
        kind = "自然人"
    else:
        subject = f"示范市{rng.choice(COMPANY_WORDS)}{rng.choice(TRADES)}有限公司"
        kind = "法人或其他组织"
    outcome = rng.choice(OUTCOMES).format(rng.randrange(200, 50000, 100))
    facts = (
        f"经查，{subject}于{rng.randint(1, 12)}月{rng.randint(1, 28)}日在经营{rng.choice(TRADES)}期间"
        f"{rng.choice(ACTS)}，{rng.choice(ACTS)}，违反了有关规定。"
    )
    return kind, subject, f"对{subject}{outcome}", facts


def load_sqlite(path: Path, rows: int, agency_ids: list[str], seed: int) -> float:
    """Batched inserts in one transaction with the FTS trigger off, then one index build."""
    rng = random.Random(seed)
    start = time.perf_counter()
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    trigger = connection.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'disclosure_records_fts_insert'"
    ).fetchone()[0]
    connection.execute("DROP TRIGGER disclosure_records_fts_insert")
    first = dt.date(2024, 1, 1).toordinal()
    days = dt.date(2026, 10, 31).toordinal() - first + 1
    batch = []
    connection.execute("PRAGMA cache_size=-262144")
    connection.execute("BEGIN")
    # Rows in id order (decision date, then a counter), so every index grows at its end.
    for n in range(rows):
        day_index = n * days // rows
        ordinal = first + day_index
        count = n - -(-day_index * rows // days)  # n minus the first n of that day
        code_index = rng.randrange(len(AGENCIES))
        code, name, categories = AGENCIES[code_index]
        subject_type, subject, conclusion, facts = _text(rng)
        day = dt.date.fromordinal(ordinal)
        number = f"示{code[-2:]}罚〔{day.year}〕{n + 1}号"
        basis = "《中华人民共和国行政处罚法》第二十八条"
        batch.append(
            (
                (ordinal << DAY_SHIFT) | count,
                agency_ids[code_index],
                code,
                name,
                number,
                day.isoformat(),
                rng.choice(KINDS),
                rng.choice(categories),
                subject_type,
                subject,
                "",
                conclusion,
                basis,
                facts,
                day.isoformat(),
                "published",
                "",
                "",
                f"{number}\n{subject}\n{conclusion}\n{facts}\n{basis}",
            )
        )
        if len(batch) == 50_000:
            _insert(connection, batch)
            batch = []
    _insert(connection, batch)
    connection.execute("COMMIT")
    inserted = time.perf_counter()
    connection.execute(
        "INSERT INTO disclosure_records_fts(disclosure_records_fts) VALUES ('rebuild')"
    )
    connection.execute(trigger)
    connection.execute("ANALYZE")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    indexed = time.perf_counter()
    print(
        f"rows written in {inserted - start:.1f} s, trigram index built in {indexed - inserted:.1f} s"
    )
    return indexed - start


def _insert(connection: sqlite3.Connection, batch: list[tuple]) -> None:
    connection.executemany(
        "INSERT INTO disclosure_records (id, agency_id, agency_code, agency_name, decision_number,"
        " decision_date, act_kind, category, subject_type, subject, credit_code, conclusion, basis,"
        " facts, published_on, status, withdrawal_kind, withdrawal_reason, search_text)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        batch,
    )


def setup_agencies(path: Path) -> list[str]:
    connection = sqlite3.connect(path, isolation_level=None)
    ids = []
    for code, name, categories in AGENCIES:
        agency_id = uuid.uuid4().hex
        ids.append(agency_id)
        connection.execute(
            "INSERT INTO agencies (id, code, name, region, created_at) VALUES (?, ?, ?, ?, ?)",
            (agency_id, code, name, "示范市", "2024-01-01 00:00:00.000000"),
        )
        for category in categories:
            connection.execute(
                "INSERT INTO enforcement_categories (id, agency_id, name) VALUES (?, ?, ?)",
                (uuid.uuid4().hex, agency_id, category),
            )
    connection.close()
    return ids


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(settings: Settings, queries: int, seed: int) -> dict[str, list[float]]:
    rng = random.Random(seed)
    app = create_app(settings)
    timings: dict[str, list[float]] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

        async def timed(label: str, url: str, **params: object) -> dict:
            started = time.perf_counter()
            response = await client.get(url, params=params or None)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.text
            timings.setdefault(label, []).append(elapsed)
            return response.json()

        def month() -> tuple[str, str]:
            first = dt.date(rng.choice((2024, 2025, 2026)), rng.randint(1, 10), 1)
            last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
            return first.isoformat(), last.isoformat()

        for _ in range(20):  # warm caches and the statement cache
            await timed("warm-up", "/api/gongshi/decisions", q=rng.choice(WORDS))
        found = 0
        for _ in range(queries):
            await timed("ceiling: GET /health", "/health")
            page = await timed(
                "word search (3+ chars)", "/api/gongshi/decisions", q=rng.choice(WORDS)
            )
            found += len(page["items"])
            date_from, date_to = month()
            await timed(
                "filtered list (agency+kind+month)",
                "/api/gongshi/decisions",
                agency=rng.choice(AGENCIES)[0],
                kind=rng.choice(KINDS),
                date_from=date_from,
                date_to=date_to,
            )
            await timed(
                "word search + filters",
                "/api/gongshi/decisions",
                q=rng.choice(WORDS),
                agency=rng.choice(AGENCIES)[0],
                date_from=date_from,
                date_to=date_to,
            )
            await timed(
                "2-char word (LIKE fallback)", "/api/gongshi/decisions", q=rng.choice(SHORT_WORDS)
            )
            if page["items"]:
                await timed("one decision", f"/api/gongshi/decisions/{page['items'][0]['id']}")
        assert found, "word searches found nothing: the data or the index is wrong"
    await app.state.context.close()
    del timings["warm-up"]
    return timings


async def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--dir", help="keep the database in this directory (default: temporary)")
    args = parser.parse_args()
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="zhifa-portal-bench-"))
    path = folder / "portal.db"
    if path.exists():
        sys.exit(f"{path} exists; pass an empty --dir")
    settings = load_settings(
        environ={}, data_dir=str(folder), database_url=f"sqlite+aiosqlite:///{path}"
    )
    database = Database(settings)
    await migrate.upgrade(database)
    await database.dispose()
    agency_ids = setup_agencies(path)
    seconds = load_sqlite(path, args.rows, agency_ids, args.seed)
    size = sum(f.stat().st_size for f in folder.glob("portal.db*")) / 2**20
    print(
        f"loaded {args.rows:,} published decisions in {seconds:.1f} s "
        f"({args.rows / seconds:,.0f} rows/s), database {size:,.0f} MiB, SQLite {sqlite3.sqlite_version}"
    )
    timings = await measure(settings, args.queries, args.seed)
    print(f"{'query (JSON API, in process)':40} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, samples in timings.items():
        print(
            f"{label:40} {len(samples):5d} {statistics.median(samples):8.2f} "
            f"{percentile(samples, 99):8.2f} {max(samples):8.2f}"
        )
    worst = max(
        percentile(timings["word search (3+ chars)"], 99),
        percentile(timings["filtered list (agency+kind+month)"], 99),
    )
    print(f"portal_p99_ms={worst:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
