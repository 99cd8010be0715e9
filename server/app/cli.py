"""``zhifa``: the server's command line (database, demo, roster, ledger, calendar, serving)."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from server.app import demo, migrate
from server.app.calendar_years import store_year_file
from server.app.context import AppContext
from server.core import accounts, ledger, roster
from server.core.errors import ZhifaError
from server.core.keys import rotate_signing_key
from server.core.models import Role
from server.core.settings import Settings, load_settings

T = TypeVar("T")


def _run(work: Callable[[AppContext], Awaitable[T]]) -> T:
    """Run one command against the configured database; our errors become a message and exit 2."""

    async def main() -> T:
        context = AppContext(load_settings())
        try:
            return await work(context)
        finally:
            await context.close()

    try:
        return asyncio.run(main())
    except ZhifaError as exc:
        click.echo(f"错误：{exc.message}", err=True)
        for problem in exc.data.get("problems", []):
            click.echo(f"  第 {problem.row} 行 [{problem.column}] {problem.reason}", err=True)
        sys.exit(2)


def _echo_json(value: Any) -> None:
    click.echo(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())


@click.group()
def main() -> None:
    """zhifa 执法终端后台：管理命令。"""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (SQLite or PostgreSQL, from ZHIFA_DATABASE_URL)."""

    async def work(context: AppContext) -> set[str]:
        await migrate.upgrade(context.database)
        return await migrate.current_revisions(context.database)

    click.echo(f"数据库已迁移到版本 {', '.join(sorted(_run(work)))}")


@main.group("demo")
def demo_group() -> None:
    """The demo agency."""


@demo_group.command("seed")
def demo_seed() -> None:
    """Seed the demo agency once and print what a newcomer needs."""
    info = _run(demo.seed)
    settings = load_settings()
    base = settings.resolved_public_base_url
    click.echo("")
    click.echo(f"{'已创建' if info.created else '已存在'}示范执法主体：{info.agency}")
    click.echo(f"  接口文档     {base}/schema")
    click.echo(f"  健康检查     {base}/health    就绪检查 {base}/ready")
    click.echo(f"  终端注册码   {info.enrollment_code}")
    click.echo("  演示账号（用户名 / 密码）：")
    for username, password, who in info.logins:
        click.echo(f"    {username:<10} {password}   {who}")
    click.echo("")


@main.command()
@click.option("--host", default=None, help="Listen address (default from settings).")
@click.option("--port", default=None, type=int, help="Port (default ZHIFA_PORT or 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the API with uvicorn."""
    import uvicorn

    options = uvicorn_options(load_settings(), host, port)
    click.echo(
        f"zhifa 正在监听 http://{options['host']}:{options['port']}"
        "  （接口文档 /schema，按 Ctrl+C 停止）"
    )
    uvicorn.run(APP, factory=True, **options)


APP = "server.app.main:create_app"


def uvicorn_options(
    settings: Settings, host: str | None = None, port: int | None = None
) -> dict[str, Any]:
    """How `zhifa serve` runs uvicorn, from settings and the command line."""
    return {
        "host": host or settings.host,
        "port": port or settings.port,
        "log_level": settings.log_level,
        "http": "httptools",
        # Behind a load balancer the client is whom its X-Forwarded-For names.
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips or None,
    }


@main.group("roster")
def roster_group() -> None:
    """执法人员名册."""


@roster_group.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--agency", "agency_code", required=True, help="Agency code (执法主体).")
@click.option(
    "--photos",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of photos named by 证号 (.jpg/.png).",
)
def roster_import(csv_file: Path, agency_code: str, photos: Path | None) -> None:
    """Import a roster CSV: every row or none."""

    async def work(context: AppContext) -> roster.ImportResult:
        async with context.database.transaction() as session:
            return await roster.import_roster(
                session,
                await context.keyring(),
                agency_code=agency_code,
                raw_csv=csv_file.read_bytes(),
                photos=photos,
                now=context.clock.now(),
            )

    result = _run(work)
    click.echo(
        f"名册已导入：新增 {result.created} 人，更新 {result.updated} 人，照片 {result.photos} 张"
    )


@main.group("user")
def user_group() -> None:
    """Accounts."""


@user_group.command("add")
@click.option("--username", required=True)
@click.option("--name", "display_name", required=True)
@click.option(
    "--role", "roles", type=click.Choice([r.value for r in Role]), multiple=True, required=True
)
@click.option("--agency", "agency_code", default=None)
@click.option("--credential", "credential_number", default=None, help="证号, for officers.")
@click.password_option()
def user_add(
    username: str,
    display_name: str,
    roles: tuple[str, ...],
    agency_code: str | None,
    credential_number: str | None,
    password: str,
) -> None:
    """Create a user."""

    async def work(context: AppContext) -> None:
        async with context.database.transaction() as session:
            agency = await accounts.agency_by_code(session, agency_code) if agency_code else None
            await accounts.create_user(
                session,
                await context.keyring(),
                username=username,
                password=password,
                display_name=display_name,
                roles=[Role(r) for r in roles],
                agency_id=agency.id if agency else None,
                now=context.clock.now(),
                credential_number=credential_number,
            )

    _run(work)
    click.echo(f"已创建用户 {username}")


@main.group("terminal")
def terminal_group() -> None:
    """Terminals."""


@terminal_group.command("enrollment-code")
@click.option("--agency", "agency_code", required=True)
def enrollment_code(agency_code: str) -> None:
    """Create a single-use enrollment code for a new terminal."""

    async def work(context: AppContext) -> str:
        async with context.database.transaction() as session:
            agency = await accounts.agency_by_code(session, agency_code)
            code, _ = await accounts.create_enrollment_code(
                session, context.settings, agency.id, context.clock.now()
            )
            return code

    click.echo(_run(work))


@main.group("keys")
def keys_group() -> None:
    """Server signing keys."""


@keys_group.command("rotate")
def keys_rotate() -> None:
    """Start signing with a new key; old keys stay published so what they signed still verifies."""

    async def work(context: AppContext) -> str:
        async with context.database.transaction() as session:
            return (await rotate_signing_key(session, context.clock.now())).kid

    click.echo(f"新签名密钥：{_run(work)}")


@main.group("ledger")
def ledger_group() -> None:
    """The append-only ledger."""


@ledger_group.command("verify")
def ledger_verify() -> None:
    """Re-check every entry and the signed head; exit 1 naming the first bad entry."""

    async def work(context: AppContext) -> ledger.VerifyReport:
        keyring = await context.keyring()
        async with context.database.sessionmaker() as session:
            return await ledger.verify(session, keyring)

    report = _run(work)
    if report.ok:
        click.echo(f"账本完好：{report.size} 条，树根 {report.root_hash}")
        return
    for problem in report.problems:
        click.echo(f"账本校验失败：{problem}", err=True)
    sys.exit(1)


@main.group("calendar")
def calendar_group() -> None:
    """Working days (工作日)."""


@calendar_group.command("deadline")
@click.argument("start", type=click.DateTime(formats=["%Y-%m-%d"]))
@click.argument("working_days", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def calendar_deadline(start: dt.datetime, working_days: int, as_json: bool) -> None:
    """The WORKING_DAYS-th working day after START (the period starts the next day)."""

    async def work(context: AppContext) -> Any:
        return (await context.calendar()).add_working_days(start.date(), working_days)

    deadline = _run(work)
    if as_json:
        click.echo(
            msgspec.json.encode(
                {
                    "start": deadline.start,
                    "working_days": deadline.working_days,
                    "deadline": deadline.deadline,
                    "fallback": deadline.fallback,
                }
            ).decode()
        )
        return
    click.echo(deadline.deadline.isoformat())
    if deadline.fallback:
        click.echo("注意：期间跨入尚未载入节假日安排的年份，已按每日均为工作日从严计算", err=True)


@calendar_group.command("load")
@click.argument("year_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def calendar_load(year_file: Path) -> None:
    """Load an official year arrangement (TOML) so deadlines in that year are exact."""

    async def work(context: AppContext) -> Any:
        async with context.database.transaction() as session:
            return await store_year_file(
                session,
                await context.keyring(),
                year_file.read_text(encoding="utf-8"),
                context.clock.now(),
            )

    arrangement = _run(work)
    click.echo(
        f"已载入 {arrangement.year} 年节假日安排：节假日 {len(arrangement.holidays)} 天，"
        f"调休工作日 {len(arrangement.workdays)} 天"
    )


if __name__ == "__main__":
    main()
