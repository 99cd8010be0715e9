"""``zhifa-edge card`` and ``check-partner``: the officer's e-credential on the terminal, offline
from what the last login or sync cached (added to the ``zhifa-edge`` group)."""

from __future__ import annotations

import sys
import time

import click

from edge_agent.cli import _agent, _echo_json, main
from edge_agent.credentials import VERDICT_LABELS, card_lines
from mobile_api.contracts.qr import qr_text


@main.command()
@click.option("--once", is_flag=True, help="Show the card once and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (implies --once).")
@click.pass_context
def card(ctx: click.Context, once: bool, as_json: bool) -> None:
    """亮证: the identity card and its QR code, a new code every interval until Ctrl+C."""
    while True:
        with _agent(ctx) as agent:
            view = agent.wallet.card()
        if as_json:
            _echo_json(view)
            return
        if not once:
            click.clear()
        click.echo("\n".join(card_lines(view)))
        if view.url is None:
            click.echo("本机缓存的二维码已用完，请联网同步（zhifa-edge sync）后再出示。", err=True)
            sys.exit(4)
        click.echo(qr_text(view.url))
        click.echo(view.url)
        click.echo(f"二维码 {view.refresh_seconds} 秒后更新")
        if once:
            return
        try:
            time.sleep(view.refresh_seconds)
        except KeyboardInterrupt:
            return


@main.command("check-partner")
@click.argument("scanned")
@click.option("--case", "case_id", required=True, help="The case the partner acts on.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def check_partner(ctx: click.Context, scanned: str, case_id: str, as_json: bool) -> None:
    """Check a partner's scanned credential QR offline against the case's 执法类别 and 区域;
    a passing check is recorded in the case together with this officer's own."""
    with _agent(ctx) as agent:
        result = agent.wallet.check_partner(scanned, case_id)
    if as_json:
        _echo_json(result)
    else:
        who = f"{result.card.name}（证号 {result.card.number}）" if result.card else "该证件"
        click.echo(f"核验结果：{who} {VERDICT_LABELS[result.verdict]}")
        for found in result.findings:
            click.echo(f"  - {found.message}")
        if result.recorded:
            click.echo(f"已在案件中记录 {len(result.recorded)} 条证件核验")
    if result.verdict != "valid":
        sys.exit(1)
