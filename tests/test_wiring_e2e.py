"""The areas wired together (server.app.wiring): a major decision from the terminals through
legal review, service, disclosure and withdrawal, and a QR scan becoming a 亮证 event."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import select

from disclosure.hooks import STATE_KEY as DISCLOSURE_HOOKS
from disclosure.jobs import run_due_jobs
from disclosure.models import DecisionState, DisclosureDecision
from mobile_api.cases.decisions import CHANGE_KIND
from mobile_api.cases.scans import SCAN_SOURCE, SERVER_NODE
from mobile_api.contracts import events as ev
from mobile_api.contracts.credential import TokenBatch
from mobile_api.contracts.events import parse_hlc
from mobile_api.contracts.sync import ReviewOutcomeRef
from mobile_api.sync.services import LEDGER_KIND
from review.gate import decision_gate
from review.models import ReviewCase
from tests._case_events import Writer, enrollment_code, ledger_refs, login_again, pull, push_ok
from tests.conftest import enroll_and_login, login
from tests.test_credential_verify import make_token
from tests.test_documents import DECISION_COMPANY_SPRING, _block, _registration, facts, make
from tests.test_review_workflow import ALL_PASS, DISCRETION_FAILS

NUMBER = "示文执罚〔2026〕7号"
JSON = {"Accept": "application/json"}


def at(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T02:00:00+00:00")


async def case_view(client, headers, case_id: uuid.UUID) -> dict[str, Any]:
    response = await client.get(f"/api/cases/{case_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def register_decision(client, context, terminal, case_id: uuid.UUID):
    """Register a 行政处罚决定书 of the case as the terminal printed it."""
    block = await _block(client, terminal, 2026, 1)
    kind, changes = DECISION_COMPANY_SPRING[0], dict(DECISION_COMPANY_SPRING[1])
    printed = facts(kind, serial=block["first"], case_id=case_id, **changes)
    doc = make(kind, printed, context.settings.resolved_public_base_url)
    path = "/api/documents"
    return await client.post(
        path,
        json=_registration(kind, printed, doc, block["first"], 2026),
        headers=terminal.headers("POST", path),
    )


async def review_outcome(client, terminal, case_id: uuid.UUID) -> ReviewOutcomeRef:
    """The case's review outcome as the officer's terminal pulls it."""
    answer = await pull(client, terminal)
    (snapshot,) = [s for s in answer.snapshots if s.kind == "review_outcome"]
    (outcome,) = [i for i in snapshot.items if i.key == str(case_id)]
    assert isinstance(outcome, ReviewOutcomeRef)
    return outcome


async def test_major_decision_through_review_service_disclosure_and_withdrawal(
    app, client, context, clock, seeded, officer_terminal
):
    first = officer_terminal  # 13010001 张明
    second = await enroll_and_login(
        client,
        await enrollment_code(context),
        "13010002",
        name="二号终端",
        now=lambda: clock.now().timestamp(),
    )
    write_first, write_second = Writer("a1b2c3d4", clock), Writer("e5f6a7b8", clock)
    case_id = uuid.uuid4()
    opened = await push_ok(
        client,
        first,
        [
            write_first.open(case_id),
            write_first(ev.CredentialShown, case_id, credential_number="13010001"),
            write_first(
                ev.NoticeServed,
                case_id,
                facts="未经许可擅自从事娱乐场所经营活动",
                proposed="罚款人民币二万元",
                hearing_right=True,
            ),
        ],
    )
    assert [r.outcome for r in opened] == ["accepted"] * 3
    party = await push_ok(client, second, [write_second.person(case_id)])
    assert party[0].outcome == "accepted"

    # The statement and hearing-request period passes.
    clock.set(at("2026-03-12"))
    await login_again(client, first, "13010001")
    await login_again(client, second, "13010002")
    decision = write_first(
        ev.DecisionProposed,
        case_id,
        penalties=["罚款"],
        fine_yuan=Decimal(20000),
        facts="当事人未经许可擅自从事娱乐场所经营活动",
        legal_basis="《娱乐场所管理条例》第四十一条",
        document_number=NUMBER,
    )
    # Printing the final decision before the decision is on the server: refused for now.
    early = await register_decision(client, context, first, case_id)
    assert early.status_code == 409 and early.json()["code"] == "review_required", early.text
    assert "本案尚未记录拟处理决定" in early.json()["detail"]
    assert (await push_ok(client, first, [decision]))[0].outcome == "accepted"

    # Routed to review from the real case file: above the 10000 yuan threshold, so major.
    async with context.database.sessionmaker() as session:
        routed = await session.get_one(ReviewCase, case_id)
        assert routed.major and routed.state == "待送审"
        assert routed.case_file["parties"][0]["name"] == "张三"
        assert routed.case_file["proposal"]["legal_basis"] == "《娱乐场所管理条例》第四十一条"
        assert {o["number"] for o in routed.case_file["officers"]} == {"13010001", "13010002"}

    def serve() -> ev.DocumentServed:
        return write_second(
            ev.DocumentServed, case_id, document="行政处罚决定书", document_number=NUMBER
        )

    refused = (await push_ok(client, second, [serve()]))[0]
    assert (refused.outcome, refused.code, refused.status) == ("rejected", "review_required", 409)
    assert refused.message.startswith("重大执法决定未经法制审核通过，不得送达决定书")
    reviewer = await login(client, "reviewer")
    view = await case_view(client, reviewer, case_id)
    assert [(r["kind"], r["code"]) for r in view["rejected"]] == [
        ("document_served", "review_required")
    ]
    assert view["file"]["state"] == "已决定"

    # Served under the terminal's on-site template title: a decision document all the same.
    onsite = write_second(
        ev.DocumentServed, case_id, document="当场处罚决定书", document_number=NUMBER
    )
    assert (await push_ok(client, second, [onsite]))[0].code == "review_required"

    # Printed as final: refused the same way, with the gate's code and reasons.
    printed = await register_decision(client, context, second, case_id)
    assert printed.status_code == 409 and printed.json()["code"] == "review_required"
    assert printed.json()["detail"].startswith("重大执法决定未经法制审核通过，不得打印正式决定书")
    assert "对公民处以较大数额罚款" in printed.json()["detail"]
    # Published: the disclosure gate says no, with the same reasons.
    async with context.database.sessionmaker() as session:
        held = await app.state[DISCLOSURE_HOOKS].may_publish(session, case_id)
    assert isinstance(held, str) and "法制审核状态：待送审" in held
    # Both officers' terminals learn where the review stands and why the decision is blocked.
    for terminal in (first, second):
        outcome = await review_outcome(client, terminal, case_id)
        assert (outcome.state, outcome.major, outcome.allowed) == ("待送审", True, False)

    # The handler submits; a reviewer not on the case returns it, then approves the resubmission.
    submissions = f"/api/review/cases/{case_id}/submissions"

    async def submit() -> None:
        response = await client.post(
            submissions, json={"note": "请审核"}, headers=first.headers("POST", submissions)
        )
        assert response.status_code == 201, response.text

    async def as_reviewer(action: str, body: object = None) -> None:
        response = await client.post(
            f"/api/review/cases/{case_id}/{action}", json=body, headers=reviewer
        )
        assert response.status_code == 200, response.text

    await submit()
    await as_reviewer("take")
    problem = {"item": "discretion", "text": "罚款幅度过高"}
    await as_reviewer(
        "opinion",
        {
            "outcome": "存在问题",
            "opinion": "退回",
            "problems": [problem],
            "checklist": DISCRETION_FAILS,
        },
    )
    returned = (await push_ok(client, second, [serve()]))[0]
    assert returned.code == "review_required" and "法制审核状态：已退回" in returned.message
    outcome = await review_outcome(client, second, case_id)
    assert (outcome.state, outcome.outcome) == ("已退回", "存在问题")
    assert outcome.problems == ["裁量基准适当：罚款幅度过高"]
    await submit()
    await as_reviewer("opinion", {"outcome": "同意", "opinion": "同意", "checklist": ALL_PASS})

    outcome = await review_outcome(client, first, case_id)
    assert (outcome.state, outcome.allowed) == ("审核通过", True)
    registered = await register_decision(client, context, second, case_id)
    assert registered.status_code == 201, registered.text
    served = (await push_ok(client, second, [serve()]))[0]
    assert served.outcome == "accepted", served
    assert (await case_view(client, reviewer, case_id))["file"]["state"] == "已送达"

    # Disclosure scheduled it at once: a 行政处罚 within 7 working days of the decision date.
    calendar = await context.calendar()
    async with context.database.sessionmaker() as session:
        scheduled = await session.scalar(
            select(DisclosureDecision).where(DisclosureDecision.case_id == case_id)
        )
    assert scheduled is not None and scheduled.state is DecisionState.SCHEDULED
    assert scheduled.decision_number == NUMBER and scheduled.legal_review
    assert scheduled.due_on == calendar.add_working_days(dt.date(2026, 3, 12), 7).deadline
    assert scheduled.publish_on <= scheduled.due_on

    clock.set(dt.datetime.combine(scheduled.publish_on, dt.time(2), dt.UTC))
    report = await run_due_jobs(context, app.state[DISCLOSURE_HOOKS], holder="test")
    assert report.published == 1, report
    async with context.database.sessionmaker() as session:
        published = await session.get_one(DisclosureDecision, scheduled.id)
        assert published.state is DecisionState.PUBLISHED
    public = await client.get("/api/gongshi/decisions", params={"q": NUMBER}, headers=JSON)
    assert public.status_code == 200, public.text
    summary = next(d for d in public.json()["items"] if d["decision_number"] == NUMBER)
    page = (await client.get(f"/api/gongshi/decisions/{summary['id']}")).json()
    assert page["conclusion"] == "决定给予罚款人民币20000元" and "张三" not in page["subject"]

    # The agency revokes it: withdrawn at once, with a public notice.
    admin = await login(client, "admin")
    await login_again(client, first, "13010001")
    change = {"change": "撤销", "reason": "经复查，本机关认定事实不清，决定撤销", "via": "本机关"}
    changes = f"/api/cases/{case_id}/decision-changes"
    recorded = await client.post(changes, json=change, headers=admin)
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["decision_number"] == NUMBER
    async with context.database.sessionmaker() as session:
        withdrawn = await session.get_one(DisclosureDecision, scheduled.id)
        assert withdrawn.state is DecisionState.WITHDRAWN
    notices = (await client.get("/api/gongshi/withdrawals", headers=JSON)).json()
    assert any(
        n["decision_number"] == NUMBER and "撤销" in msgspec.json.encode(n).decode()
        for n in notices["items"]
    ), notices
    assert (await ledger_refs(context, CHANGE_KIND))[0]["change"] == "撤销"

    # A party scans the partner's QR code during the open case: a 亮证 event of that case.
    path = "/api/credentials/me/qr-batch"
    await login_again(client, second, "13010002")
    batch = msgspec.json.decode(
        (await client.get(path, headers=second.headers("GET", path))).content, type=TokenBatch
    )
    scanned = await client.get(f"/v/{batch.token_at(clock.now())}", headers=JSON)
    assert scanned.status_code == 200, scanned.text
    shown: list[dict[str, Any]] = []
    for _ in range(100):
        timeline = (await case_view(client, reviewer, case_id))["timeline"]
        shown = [e for e in timeline if e["kind"] == "credential_shown" and "00000000" in e["hlc"]]
        if shown:
            break
        await asyncio.sleep(0.05)
    assert len(shown) == 1
    assert parse_hlc(shown[0]["hlc"])[2] == SERVER_NODE
    assert shown[0]["event"]["credential_number"] == "13010002" and shown[0]["event"]["scanned"]
    assert shown[0]["recorded_at"] == shown[0]["terminal_time"]
    view = await case_view(client, reviewer, case_id)
    assert "13010002" in view["file"]["shown_credentials"]
    scans = [e for e in await ledger_refs(context, LEDGER_KIND) if e.get("source") == SCAN_SOURCE]
    assert [e["events"][0]["event"] for e in scans] == [shown[0]["id"]]

    # An officer with no open case: the scan is recorded by the credential area, no case changes.
    token = await make_token(context, "13010003")
    assert (await client.get(f"/v/{token}", headers=JSON)).status_code == 200
    await asyncio.sleep(0.2)
    again = [e for e in await ledger_refs(context, LEDGER_KIND) if e.get("source") == SCAN_SOURCE]
    assert len(again) == 1

    # Refusals of the change endpoint.
    other_case = uuid.uuid4()
    assert (await push_ok(client, first, [write_first.open(other_case)]))[0].outcome == "accepted"
    for headers, target, body, status, code in (
        (reviewer, case_id, change, 403, "permission_denied"),
        (first.headers("POST", changes), case_id, change, 403, "permission_denied"),
        ({}, case_id, change, 401, None),
        (admin, uuid.uuid4(), change, 404, "not_found"),
        (admin, other_case, change, 409, "decision_not_served"),
        (admin, case_id, {**change, "changed_on": "2027-01-01"}, 422, "validation_failed"),
        (admin, case_id, {**change, "change": "作废"}, 400, None),
    ):
        response = await client.post(
            f"/api/cases/{target}/decision-changes", json=body, headers=headers
        )
        assert response.status_code == status, (target, body, response.text)
        if code:
            assert response.json()["code"] == code, response.text


async def test_minor_decision_served_in_the_same_push_is_routed_and_passes(
    client, context, clock, seeded, officer_terminal
):
    """On-the-spot warning: proposed and served in one push. The gate routes it first."""
    write = Writer("c0ffee00", clock)
    case_id = uuid.uuid4()
    results = await push_ok(
        client,
        officer_terminal,
        [
            write.open(case_id, procedure="当场处理"),
            write.person(case_id),
            write(ev.NoticeServed, case_id, facts="无证经营"),
            write(ev.DecisionProposed, case_id, penalties=["警告"], document_number="示文当罚1号"),
            write(ev.DocumentServed, case_id, document="当场行政处罚决定书"),
        ],
    )
    assert [r.outcome for r in results] == ["accepted"] * 5
    async with context.database.sessionmaker() as session:
        status = await decision_gate(session, case_id)
        assert status.routed and not status.major
        scheduled = await session.scalar(
            select(DisclosureDecision).where(DisclosureDecision.case_id == case_id)
        )
    # The number came from the proposal; not reviewed, as it was not major.
    assert scheduled is not None and scheduled.decision_number == "示文当罚1号"
    assert not scheduled.legal_review and scheduled.outcome == "警告"
