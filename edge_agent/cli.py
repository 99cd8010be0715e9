"""``zhifa-edge``: the officer's command line on the terminal (works offline; sync when online)."""

from __future__ import annotations

import getpass
import json
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import msgspec

from edge_agent.agent import DEFAULT_HOME, STATUS_LABELS, Agent
from edge_agent.client import EdgeError, Offline
from edge_agent.sync import DEFAULT_BATCH, SyncReport
from mobile_api.contracts.events import EVENT_LABELS, EVENT_TYPES
from mobile_api.contracts.sync import MAX_BATCH


@contextmanager
def _agent(ctx: click.Context, **options: Any) -> Iterator[Agent]:
    """The agent on the chosen home; officer-facing errors become a message and an exit code."""
    try:
        with Agent(ctx.obj, **options) as agent:
            yield agent
    except Offline as exc:
        click.echo(
            f"无法连接服务器：{exc.message}。已记录的事件保存在本机，联网后再同步。", err=True
        )
        sys.exit(3)
    except EdgeError as exc:
        click.echo(f"错误：{exc.message}（{exc.code}）", err=True)
        sys.exit(2)


def _echo_json(value: Any) -> None:
    click.echo(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())


def _report(report: SyncReport) -> None:
    click.echo(
        f"同步完成：接受 {report.accepted} 条，重复 {report.duplicate} 条，"
        f"退回 {report.rejected} 条，等待 {report.deferred} 条"
        + (f"；更新 {'、'.join(report.snapshots)}" if report.snapshots else "")
        + ("；已按服务器指令完整重新同步" if report.resync else "")
    )


@click.group()
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ZHIFA_EDGE_HOME",
    default=DEFAULT_HOME,
    show_default=True,
    help="Folder of the terminal's store and device key.",
)
@click.pass_context
def main(ctx: click.Context, home: Path) -> None:
    """zhifa-edge 执法终端：立案、记录执法行为、同步（离线可用）。"""
    ctx.obj = home


@main.command()
@click.argument("server_url")
@click.argument("code")
@click.option("--name", default=lambda: socket.gethostname(), help="Terminal name.")
@click.pass_context
def enroll(ctx: click.Context, server_url: str, code: str, name: str) -> None:
    """Enroll this terminal once with an enrollment code (注册码)."""
    with _agent(ctx) as agent:
        terminal_id = agent.session.enroll(server_url, code, name)
    click.echo(f"终端已注册：{terminal_id}")


@main.command()
@click.argument("username")
@click.option("--password", default=None, help="Asked for when not given.")
@click.pass_context
def login(ctx: click.Context, username: str, password: str | None) -> None:
    """Log an officer in on this terminal and fetch reference data."""
    password = password or getpass.getpass("密码：")
    with _agent(ctx) as agent:
        report = agent.login(username, password)
        number = agent.session.credential_number
    click.echo(f"已登录：证号 {number}")
    _report(report)


@main.command()
@click.pass_context
def logout(ctx: click.Context) -> None:
    """Log out; queued events stay on the terminal."""
    with _agent(ctx) as agent:
        agent.session.logout()
    click.echo("已退出登录")


@main.command("open")
@click.option("--item", "item_code", required=True, help="执法事项 code from the catalog.")
@click.option("--region", required=True, help="执法区域.")
@click.option("--title", required=True, help="案由.")
@click.option("--procedure", type=click.Choice(["立案", "当场处理"]), default="立案")
@click.option("--partner", "partners", multiple=True, help="证号 of a partner present.")
@click.option("--place", default="")
@click.option("--summary", default="")
@click.pass_context
def open_case(
    ctx: click.Context,
    item_code: str,
    region: str,
    title: str,
    procedure: str,
    partners: tuple[str, ...],
    place: str,
    summary: str,
) -> None:
    """Open a case (立案 or on-site handling)."""
    with _agent(ctx) as agent:
        event = agent.desk.open_case(
            item_code=item_code,
            region=region,
            title=title,
            procedure=procedure,
            partners=list(partners),
            place=place,
            summary=summary,
        )
    click.echo(str(event.case_id))


@main.command()
@click.pass_context
def cases(ctx: click.Context) -> None:
    """The cases on this terminal."""
    with _agent(ctx) as agent:
        for case in agent.desk.cases():
            click.echo(f"{case.id}  [{case.state}] {case.title}（{'、'.join(case.officers)}）")


def _field(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"应写作 名称=值：{text}")
    # Lists and objects are JSON; everything else stays text and is converted to the field's type.
    return name, json.loads(value) if value[:1] in "[{" else value


@main.command()
@click.argument("case_id")
@click.argument("kind", type=click.Choice([k for k in EVENT_TYPES if k != "case_opened"]))
@click.option("-f", "--field", "fields", multiple=True, help="NAME=VALUE (JSON for lists).")
@click.option("--json", "as_json", default=None, help="All fields as one JSON object.")
@click.option("--officer", "officers", multiple=True, help="证号 present (default: the case team).")
@click.pass_context
def record(
    ctx: click.Context,
    case_id: str,
    kind: str,
    fields: tuple[str, ...],
    as_json: str | None,
    officers: tuple[str, ...],
) -> None:
    """Record one action on a case (see the event kinds)."""
    values: dict[str, Any] = json.loads(as_json) if as_json else {}
    values.update(_field(text) for text in fields)
    with _agent(ctx) as agent:
        event = agent.desk.record(case_id, kind, values, list(officers) or None)
    click.echo(f"已记录{EVENT_LABELS[kind]}：{event.id}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Sync state: queued, sent, rejected (with the server's reasons)."""
    with _agent(ctx) as agent:
        state = agent.status()
    if as_json:
        _echo_json(state)
        return
    click.echo(
        f"终端 {state.terminal_id or '未注册'}  服务器 {state.server_url or '-'}  证号 {state.officer or '未登录'}"
    )
    click.echo(
        f"{STATUS_LABELS['queued']} {state.queued} 条，{STATUS_LABELS['sent']} {state.sent} 条，"
        f"{STATUS_LABELS['rejected']} {state.rejected} 条"
    )
    for title, lines in (
        ("被退回的事件：", state.rejected_events),
        ("等待中的事件：", state.waiting_events),
    ):
        if lines:
            click.echo(title)
        for line in lines:
            click.echo(
                f"  {EVENT_LABELS.get(line.kind, line.kind)} {line.id} [{line.code}] {line.message}"
            )


@main.command()
@click.option(
    "--batch-size", type=click.IntRange(1, MAX_BATCH), default=DEFAULT_BATCH, show_default=True
)
@click.pass_context
def sync(ctx: click.Context, batch_size: int) -> None:
    """Push queued events and pull reference data now."""
    with _agent(ctx, batch_size=batch_size) as agent:
        report = agent.sync()
    _report(report)


@main.command()
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--sync-interval", type=float, default=30.0, show_default=True, help="0: never.")
@click.pass_context
def serve(ctx: click.Context, port: int, sync_interval: float) -> None:
    """Serve the local API for a terminal UI on 127.0.0.1 (and sync in the background)."""
    from edge_agent.local_api import serve as run

    run(ctx.obj, port=port, sync_interval=sync_interval)


__import__("edge_agent.recording_cli").recording_cli.register(main)  # issue 4: video, upload…

from edge_agent import case_cli, credential_cli, document_cli  # noqa: E402, F401 (add their commands)

if __name__ == "__main__":
    main()
