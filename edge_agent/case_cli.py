"""``zhifa-edge case``: one case on this terminal with its legal review as last pulled and
whether its final decision may be printed and served (added to ``zhifa-edge``)."""

from __future__ import annotations

import click

from edge_agent.cli import _agent, _echo_json, main
from edge_agent.documents import REGISTRATION_LABELS
from mobile_api.contracts.sync import ReviewOutcomeRef


def review_lines(review: ReviewOutcomeRef | None) -> list[str]:
    """The review as the officer reads it (Chinese), from the cached outcome."""
    if review is None:
        return ["法制审核：本机尚无审核结果（拟处理决定尚未同步到服务器或尚未判定）"]
    if not review.major:
        return ["法制审核：不属于重大执法决定，无需法制审核"]
    lines = [
        f"法制审核：重大执法决定，{review.state}"
        + (f"（第 {review.round} 轮）" if review.round else "")
    ]
    if review.outcome:
        at = f"，{review.decided_at:%Y-%m-%d %H:%M}" if review.decided_at else ""
        lines.append(
            f"  审核意见：{review.outcome}{at}" + (f"：{review.opinion}" if review.opinion else "")
        )
    lines += [f"  问题：{problem}" for problem in review.problems]
    if review.request:
        label = "提请协调理由" if review.state == "协调中" else "需补充材料"
        due = f"（{review.due_on} 前）" if review.due_on else ""
        lines.append(f"  {label}：{review.request}{due}")
    if review.allowed:
        lines.append("  正式决定书：审核已通过，可以打印、送达")
    else:
        lines.append("  正式决定书：不得打印、送达，原因：" + "；".join(review.reasons))
    return lines


@main.command("case")
@click.argument("case_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def case_view(ctx: click.Context, case_id: str, as_json: bool) -> None:
    """One case: its team, legal review and documents."""
    with _agent(ctx) as agent:
        case = agent.desk.case(case_id)
        review = agent.desk.review(case_id)
        documents = agent.papers.documents(case_id)
    if as_json:
        _echo_json({"case": case, "review": review, "documents": documents})
        return
    click.echo(f"{case.id}  [{case.state}] {case.title}")
    click.echo(
        f"执法事项 {case.item_code}（{case.category}，{case.region}）  执法人员 {'、'.join(case.officers)}"
    )
    for line in review_lines(review):
        click.echo(line)
    for doc in documents:
        state = REGISTRATION_LABELS[doc.registration]
        served = "已送达" if doc.served_event else "未送达"
        click.echo(
            f"文书 {doc.number} {doc.title} [{state}，{served}]"
            + (f"：{doc.message}" if doc.message else "")
        )
