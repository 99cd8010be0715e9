"""The review workflow: the issue gate, separation of duties, rounds, escalation, deadlines, roles,
evidence views, and the console's session and CSRF defences."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal

import msgspec
import pytest
from sqlalchemy import select

from mobile_api.contracts.sync import ReviewOutcomeRef
from review import services
from review.gate import GateAction, ReviewRequired, decision_gate, require_review_passed
from review.models import ReviewCase
from review.outcomes import outcome_refs
from review.schemas import ReviewCaseFile, ReviewState
from review.sources import WIRING_KEY, ReviewWiring
from server.app.problems import zhifa_error
from server.core import accounts
from server.core.auth import issue_access_token
from server.core.models import Agency, LedgerEntry, Role, StaffUser
from tests._review_cases import CaseFilesInMemory, case_file, changed, demo_agency_id, proposal
from tests.conftest import enroll_and_login

ALL_PASS = {
    "subject": {"answer": "符合"},
    "staff": {"answer": "符合"},
    "authority": {"answer": "符合"},
    "procedure": {"answer": "符合"},
    "facts": {"answer": "符合"},
    "law": {"answer": "符合"},
    "discretion": {"answer": "符合"},
    "documents": {"answer": "符合"},
    "transfer": {"answer": "无需移送"},
}
DISCRETION_FAILS = {**ALL_PASS, "discretion": {"answer": "存在问题", "note": "罚款幅度过高"}}


@dataclass
class World:
    app: object
    client: object
    context: object
    clock: object
    terminal: object
    agency_id: uuid.UUID
    source: CaseFilesInMemory
    admin: dict[str, str]
    reviewer: dict[str, str]

    async def propose(self, case: ReviewCaseFile) -> ReviewCaseFile:
        """What the case area does when a decision is proposed: hand the case file to routing."""
        self.source.put(case)
        async with self.context.database.transaction() as session:
            await services.route_proposal(
                session, await self.context.keyring(), case, now=self.context.clock.now()
            )
        return case

    async def officer(self, method: str, path: str, json: object = None):
        headers = self.terminal.headers(method, path)
        return await self.client.request(method, path, json=json, headers=headers)

    async def submit(self, case_id: uuid.UUID, note: str = "请审核"):
        return await self.officer(
            "POST", f"/api/review/cases/{case_id}/submissions", {"note": note}
        )

    async def as_reviewer(
        self, method: str, case_id: uuid.UUID, action: str, json: object = None, headers=None
    ):
        return await self.client.request(
            method,
            f"/api/review/cases/{case_id}/{action}",
            json=json,
            headers=headers or self.reviewer,
        )

    async def outcome(self, case_id: uuid.UUID) -> ReviewOutcomeRef:
        """What the handling officers' terminals pull about the case."""
        one = select(ReviewCase.case_id).where(ReviewCase.case_id == case_id)
        async with self.context.database.transaction() as session:
            (ref,) = await outcome_refs(session, self.agency_id, one)
        return ref

    async def gate(self, case_id: uuid.UUID):
        async with self.context.database.transaction() as session:
            return await decision_gate(session, case_id)


async def staff_headers(context, username: str) -> dict[str, str]:
    """A bearer token for a user, as the login endpoint would issue it (logins are tested there)."""
    async with context.database.transaction() as session:
        user = await session.scalar(select(StaffUser).where(StaffUser.username == username))
    token = issue_access_token(
        await context.keyring(),
        accounts.principal_of(user),
        context.clock.now(),
        context.settings.access_token_ttl_seconds,
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def world(app, client, context, clock, seeded, officer_terminal) -> World:
    source = CaseFilesInMemory()
    async with context.database.transaction() as session:
        agency_id = await demo_agency_id(session)
    w = World(
        app=app,
        client=client,
        context=context,
        clock=clock,
        terminal=officer_terminal,
        agency_id=agency_id,
        source=source,
        admin=await staff_headers(context, "admin"),
        reviewer=await staff_headers(context, "reviewer"),
    )
    app.state[WIRING_KEY] = ReviewWiring(case_files=source)
    return w


def major_case(world: World, **overrides) -> ReviewCaseFile:
    """A decision the built-in catalog makes major: 责令停产停业."""
    values = {"proposal": proposal(penalties=["罚款", "责令停产停业"], fine_yuan=Decimal(60000))}
    values.update(overrides)
    return case_file(world.agency_id, **values)


async def reviewed_and_returned(world: World) -> ReviewCaseFile:
    case = await world.propose(major_case(world))
    assert (await world.submit(case.case_id)).status_code == 201
    assert (await world.as_reviewer("POST", case.case_id, "take")).status_code == 200
    returned = await world.as_reviewer(
        "POST",
        case.case_id,
        "opinion",
        {
            "outcome": "存在问题",
            "opinion": "裁量不当，退回修改",
            "problems": [{"item": "discretion", "text": "罚款幅度过高"}],
            "checklist": DISCRETION_FAILS,
        },
    )
    assert returned.status_code == 200, returned.text
    return case


async def _ledger_kinds(context, case_id: uuid.UUID) -> list[str]:
    async with context.database.transaction() as session:
        rows = await session.scalars(
            select(LedgerEntry.kind)
            .where(LedgerEntry.ref == f"case:{case_id}")
            .order_by(LedgerEntry.seq)
        )
        return list(rows)


# --- the issue gate ------------------------------------------------------------------------------


async def _refused_everywhere(world: World, case_id: uuid.UUID) -> None:
    async with world.context.database.transaction() as session:
        for action in GateAction:
            with pytest.raises(ReviewRequired) as refused:
                await require_review_passed(session, case_id, action)
            assert refused.value.code == "review_required" and refused.value.status == 409
            assert f"不得{action}" in refused.value.message


async def test_gate_refuses_every_path_until_approved(world):
    unrouted = uuid.uuid4()
    await _refused_everywhere(world, unrouted)
    assert not (await world.gate(unrouted)).routed

    case = await world.propose(major_case(world))

    async def refused_while(state: str) -> None:
        status = await world.gate(case.case_id)
        assert status.major and not status.approved and not status.allowed
        assert status.reasons[-1] == f"法制审核状态：{state}"
        await _refused_everywhere(world, case.case_id)

    return_with_problems = {
        "outcome": "存在问题",
        "opinion": "退回",
        "problems": [{"item": "discretion", "text": "罚款幅度过高"}],
        "checklist": DISCRETION_FAILS,
    }
    await refused_while("待送审")
    assert (await world.submit(case.case_id)).status_code == 201
    await refused_while("待审核")
    assert (await world.as_reviewer("POST", case.case_id, "take")).status_code == 200
    await refused_while("审核中")
    assert (
        await world.as_reviewer("POST", case.case_id, "opinion", return_with_problems)
    ).status_code == 200
    await refused_while("已退回")
    escalations = f"/api/review/cases/{case.case_id}/escalations"
    assert (
        await world.officer("POST", escalations, {"reason": "承办机构认为裁量适当"})
    ).status_code == 201
    await refused_while("协调中")
    kept = await world.client.post(
        f"{escalations}/decision",
        json={"outcome": "维持审核意见", "decision": "维持审核意见，退回修改"},
        headers=world.admin,
    )
    assert kept.status_code == 200
    await refused_while("已退回")
    assert (await world.submit(case.case_id)).status_code == 201  # straight back to the reviewer
    await refused_while("审核中")
    for request, due in (("补充", "2026-03-02"), ("补充", "2026-02-27"), (" ", "2026-03-09")):
        # today or earlier, or nothing asked for
        bad = await world.as_reviewer(
            "POST", case.case_id, "supplement", {"request": request, "due_on": due}
        )
        assert bad.status_code == 422
    asked = await world.as_reviewer(
        "POST",
        case.case_id,
        "supplement",
        {"request": "补充营业执照原件照片", "due_on": "2026-03-09"},
    )
    assert asked.status_code == 200
    latest = asked.json()["rounds"][-1]
    assert (latest["outcome"], latest["supplement_due"]) == ("补充材料", "2026-03-09")
    outcome = await world.outcome(case.case_id)
    assert (outcome.state, outcome.outcome, outcome.request, outcome.due_on) == (
        "待补充材料",
        "补充材料",
        "补充营业执照原件照片",
        dt.date(2026, 3, 9),
    )
    assert outcome.major and not outcome.allowed
    await refused_while("待补充材料")
    assert (await world.submit(case.case_id)).status_code == 201
    await refused_while("审核中")

    agreed = await world.as_reviewer(
        "POST",
        case.case_id,
        "opinion",
        {"outcome": "同意", "opinion": "同意", "checklist": ALL_PASS},
    )
    assert agreed.status_code == 200, agreed.text
    async with world.context.database.transaction() as session:
        for action in GateAction:
            assert (await require_review_passed(session, case.case_id, action)).allowed

    # Another decision than the one approved needs its own review.
    await world.propose(changed(case, fine_yuan=Decimal(70000)))
    await _refused_everywhere(world, case.case_id)
    assert (await world.gate(case.case_id)).reasons[-1] == "法制审核状态：待送审"

    # A decision that is not major passes without review.
    minor = await world.propose(case_file(world.agency_id))
    assert (await world.gate(minor.case_id)).allowed

    # The refusal, as a terminal or a browser reads it.
    async with world.context.database.transaction() as session:
        with pytest.raises(ReviewRequired) as refused:
            await require_review_passed(session, case.case_id, GateAction.SERVE)
    response = zhifa_error(None, refused.value)
    body = response.content
    assert response.status_code == 409 and body["code"] == "review_required"
    assert body["detail"].startswith("重大执法决定未经法制审核通过，不得送达决定书")
    assert body["reasons"][0].endswith("：拟作出责令停产停业")
    gate = await world.officer("GET", f"/api/review/cases/{case.case_id}/gate")
    assert gate.status_code == 200
    assert (gate.json()["major"], gate.json()["approved"]) == (True, False)


# --- separation of duties --------------------------------------------------------------------------


async def test_an_officer_on_the_case_never_reviews_it(world):
    context = world.context
    async with context.database.transaction() as session:
        zhang = await session.scalar(select(StaffUser).where(StaffUser.username == "13010001"))
        zhang.roles = sorted({*zhang.roles, Role.REVIEWER, Role.AGENCY_ADMIN})
        await accounts.create_user(
            session,
            await context.keyring(),
            username="chief",
            password="zhifa-demo-2026",
            display_name="法制科科长",
            roles=[Role.REVIEWER, Role.AGENCY_ADMIN],
            agency_id=world.agency_id,
            now=context.clock.now(),
        )
    zhang_staff = await staff_headers(world.context, "13010001")
    chief = await staff_headers(world.context, "chief")

    # The case file names its officers by 证号 only; the roster ties 张明's account to one of them.
    case = await world.propose(major_case(world))
    submitted = await world.client.post(
        f"/api/review/cases/{case.case_id}/submissions", json={"note": "送审"}, headers=chief
    )
    assert submitted.status_code == 201

    taken = await world.as_reviewer("POST", case.case_id, "take", headers=zhang_staff)
    assert taken.status_code == 403 and taken.json()["code"] == "review_conflict_of_interest"
    assert "张明是本案执法人员" in taken.json()["detail"]
    assigned = await world.client.post(
        f"/api/review/cases/{case.case_id}/assign",
        json={"reviewer": "13010001"},
        headers=world.admin,
    )
    assert assigned.status_code == 403 and assigned.json()["code"] == "review_conflict_of_interest"
    # Whoever submitted the round does not review it either.
    own = await world.as_reviewer("POST", case.case_id, "take", headers=chief)
    assert own.status_code == 403 and "送审了本案" in own.json()["detail"]

    assert (await world.as_reviewer("POST", case.case_id, "take")).status_code == 200
    # Even an assignment by an admin cannot hand the case to an officer on it.
    reassigned = await world.client.post(
        f"/api/review/cases/{case.case_id}/assign", json={"reviewer": "13010001"}, headers=chief
    )
    assert reassigned.status_code == 403
    view = (await world.client.get(f"/api/review/cases/{case.case_id}", headers=world.admin)).json()
    assert view["reviewer"] == "法制审核员 周敏"

    # The roster id counts too, when the case file gives it instead of the 证号's account.
    async with context.database.transaction() as session:
        zhang = await session.scalar(select(StaffUser).where(StaffUser.username == "13010001"))
        officer_id = zhang.officer_id
    other = case_file(
        world.agency_id,
        officers=(("13010003", "王芳"),),
        proposal=proposal(penalties=["吊销许可证件"], fine_yuan=Decimal(0)),
    )
    named = msgspec.structs.replace(
        other,
        officers=[
            *other.officers,
            msgspec.structs.replace(other.officers[0], number="X-1", officer_id=officer_id),
        ],
    )
    await world.propose(named)
    assert (
        await world.client.post(
            f"/api/review/cases/{named.case_id}/submissions", json={}, headers=chief
        )
    ).status_code == 201
    refused = await world.as_reviewer("POST", named.case_id, "take", headers=zhang_staff)
    assert refused.status_code == 403 and refused.json()["code"] == "review_conflict_of_interest"


# --- rounds ----------------------------------------------------------------------------------------


async def test_rounds_are_kept_and_every_step_is_in_the_ledger(world):
    case = await world.propose(major_case(world))
    path = f"/api/review/cases/{case.case_id}"
    # Nothing to review before submission.
    early = await world.as_reviewer("POST", case.case_id, "take")
    assert early.status_code == 409 and early.json()["code"] == "review_state_conflict"

    submitted = await world.submit(case.case_id, "第一次送审")
    assert submitted.status_code == 201, submitted.text
    assert (
        submitted.json()["state"] == "待审核"
        and submitted.json()["rounds"][0]["note"] == "第一次送审"
    )
    assert (await world.submit(case.case_id)).status_code == 409  # already in the queue

    assert (await world.as_reviewer("POST", case.case_id, "take")).status_code == 200
    draft = await world.as_reviewer(
        "PUT", case.case_id, "checklist", {"checklist": {"subject": {"answer": "符合"}}}
    )
    assert (
        draft.status_code == 200
        and draft.json()["rounds"][0]["checklist"]["subject"]["answer"] == "符合"
    )
    odd = await world.as_reviewer(
        "PUT", case.case_id, "checklist", {"checklist": {"subject": {"answer": "还行"}}}
    )
    assert odd.status_code == 422

    async def opinion(body):
        return await world.as_reviewer("POST", case.case_id, "opinion", body)

    incomplete = await opinion({"outcome": "同意", "opinion": "同意"})
    assert (
        incomplete.status_code == 422 and incomplete.json()["code"] == "review_checklist_incomplete"
    )
    assert "程序合法" in incomplete.json()["detail"]
    disagreeing = await opinion(
        {"outcome": "同意", "opinion": "同意", "checklist": DISCRETION_FAILS}
    )
    assert disagreeing.status_code == 422 and "裁量基准适当存在问题" in disagreeing.json()["detail"]
    no_problems = await opinion(
        {"outcome": "存在问题", "opinion": "有问题", "checklist": DISCRETION_FAILS}
    )
    assert no_problems.status_code == 422
    unexplained = await opinion(
        {
            "outcome": "存在问题",
            "opinion": "有问题",
            "checklist": {**DISCRETION_FAILS, "documents": {"answer": "存在问题"}},
            "problems": [{"item": "discretion", "text": "罚款幅度过高"}],
        }
    )
    assert unexplained.status_code == 422 and "文书完备规范" in unexplained.json()["detail"]
    misplaced = await opinion(
        {
            "outcome": "存在问题",
            "opinion": "有问题",
            "checklist": DISCRETION_FAILS,
            "problems": [
                {"item": "law", "text": "法条引用错误"},
                {"item": "discretion", "text": "过高"},
            ],
        }
    )
    assert misplaced.status_code == 422
    unwritten = await opinion({"outcome": "同意", "opinion": " ", "checklist": ALL_PASS})
    assert unwritten.status_code == 422 and "书面审核意见" in unwritten.json()["detail"]
    # Refusals wrote nothing: the round is still open with only the saved draft.
    view = (await world.client.get(path, headers=world.reviewer)).json()
    assert view["state"] == "审核中" and list(view["rounds"][0]["checklist"]) == ["subject"]

    returned = await opinion(
        {
            "outcome": "存在问题",
            "opinion": "罚款幅度与情节不符，退回修改。",
            "checklist": DISCRETION_FAILS,
            "problems": [
                {"item": "discretion", "text": "一般情节罚款 6 万元超出幅度"},
                {"text": "请补充现场检查笔录的当事人签名"},
            ],
        }
    )
    assert returned.status_code == 200 and returned.json()["state"] == "已退回"
    outcome = await world.outcome(case.case_id)
    assert (outcome.state, outcome.round, outcome.outcome, outcome.opinion) == (
        "已退回",
        1,
        "存在问题",
        "罚款幅度与情节不符，退回修改。",
    )
    assert outcome.problems == [
        "裁量基准适当：一般情节罚款 6 万元超出幅度",
        "请补充现场检查笔录的当事人签名",
    ]
    assert not outcome.allowed and "法制审核状态：已退回" in outcome.reasons

    # The handler fixes the decision and resubmits: round 2, straight back to the same reviewer.
    await world.propose(changed(case, fine_yuan=Decimal(50000)))
    resubmitted = await world.submit(case.case_id, "已调整罚款数额，补充签名")
    assert resubmitted.status_code == 201
    view = resubmitted.json()
    assert (view["state"], view["reviewer"], len(view["rounds"])) == (
        "审核中",
        "法制审核员 周敏",
        2,
    )

    approved = await opinion(
        {"outcome": "同意", "opinion": "经审核，同意。", "checklist": ALL_PASS}
    )
    assert approved.status_code == 200, approved.text
    view = approved.json()
    assert view["state"] == "审核通过"
    first, second = view["rounds"]
    assert (first["outcome"], second["outcome"]) == ("存在问题", "同意")
    assert first["problems"][1] == {"item": "", "text": "请补充现场检查笔录的当事人签名"}
    assert second["note"] == "已调整罚款数额，补充签名"
    outcome = await world.outcome(case.case_id)
    assert (outcome.state, outcome.round, outcome.outcome, outcome.allowed) == (
        "审核通过",
        2,
        "同意",
        True,
    )
    assert outcome.problems == [] and outcome.decided_at is not None
    async with world.context.database.transaction() as session:
        assert (
            await services.round_materials(session, case.case_id, 1)
        ).proposal.fine_yuan == 60000
        assert (
            await services.round_materials(session, case.case_id, 2)
        ).proposal.fine_yuan == 50000

    assert await _ledger_kinds(world.context, case.case_id) == [
        "review.routed",
        "review.routed",  # submission re-reads the case file
        "review.submitted",
        "review.taken",
        "review.checklist_saved",
        "review.returned",
        "review.routed",  # the fixed decision
        "review.routed",
        "review.submitted",
        "review.assigned",
        "review.approved",
    ]


# --- coordination ------------------------------------------------------------------------------------


async def test_escalation_to_the_responsible_person(world):
    case = await reviewed_and_returned(world)
    escalations = f"/api/review/cases/{case.case_id}/escalations"
    decision = f"{escalations}/decision"

    assert (await world.officer("POST", escalations, {"reason": " "})).status_code == 422
    raised = await world.officer("POST", escalations, {"reason": "承办机构认为罚款符合较重情节"})
    assert raised.status_code == 201 and raised.json()["state"] == "协调中"
    assert raised.json()["escalations"][0]["side"] == "承办机构"
    outcome = await world.outcome(case.case_id)
    assert (outcome.state, outcome.request) == ("协调中", "承办机构认为罚款符合较重情节")
    assert (await world.officer("POST", escalations, {"reason": "再次"})).status_code == 409
    body = {"outcome": "维持审核意见", "decision": "维持法制审核意见"}
    assert (await world.client.post(decision, json=body, headers=world.reviewer)).status_code == 403
    assert (await world.officer("POST", decision, body)).status_code == 403

    kept = await world.client.post(decision, json=body, headers=world.admin)
    assert kept.status_code == 200 and kept.json()["state"] == "已退回"
    first = kept.json()["escalations"][0]
    assert (first["outcome"], first["responsible_person"]) == ("维持审核意见", "机关主要负责人")
    assert first["recorded_by"] == "支队管理员"
    outcome = await world.outcome(case.case_id)
    assert (outcome.state, outcome.outcome, outcome.opinion) == (
        "已退回",
        "维持审核意见",
        "维持法制审核意见",
    )
    assert outcome.problems  # the round's problems still stand
    assert not (await world.gate(case.case_id)).allowed

    # The reviewer may escalate too; the responsible person then decides for the decision.
    by_reviewer = await world.client.post(
        escalations, json={"reason": "承办机构坚持原意见"}, headers=world.reviewer
    )
    assert (
        by_reviewer.status_code == 201
        and by_reviewer.json()["escalations"][1]["side"] == "法制审核机构"
    )
    decided = await world.client.post(
        decision,
        json={
            "outcome": "同意作出决定",
            "decision": "经集体讨论，同意按拟处理决定作出",
            "responsible_person": "支队长 刘强",
        },
        headers=world.admin,
    )
    assert decided.status_code == 200 and decided.json()["state"] == "审核通过"
    assert decided.json()["escalations"][1]["responsible_person"] == "支队长 刘强"
    outcome = await world.outcome(case.case_id)
    assert (outcome.outcome, outcome.opinion, outcome.allowed) == (
        "同意作出决定",
        "经集体讨论，同意按拟处理决定作出",
        True,
    )
    assert (await world.gate(case.case_id)).allowed
    late = await world.client.post(escalations, json={"reason": "再议"}, headers=world.reviewer)
    assert late.status_code == 409
    kinds = await _ledger_kinds(world.context, case.case_id)
    assert kinds.count("review.escalated") == 2 and kinds.count("review.escalation_decided") == 2


# --- deadlines ----------------------------------------------------------------------------------------


async def test_deadline_counts_working_days_across_national_day(world):
    clock = world.clock
    clock.set(dt.datetime(2026, 9, 29, 1, 30, tzinfo=dt.UTC))  # Tuesday, 09:30 in China
    case = await world.propose(major_case(world))
    admin = await staff_headers(world.context, "admin")  # the handling side, logged in today
    submitted = await world.client.post(
        f"/api/review/cases/{case.case_id}/submissions", json={}, headers=admin
    )
    # 9-30; 国庆 10-01..10-07 off; 10-08, 10-09, 10-10 (调休 Saturday), 10-12..10-16, 10-19.
    assert submitted.json()["rounds"][0]["due_on"] == "2026-10-19"
    due = submitted.json()["due"]
    assert (due["working_days_left"], due["overdue"], due["fallback"]) == (10, False, False)

    async def queue(scope: str, today: str) -> list[dict]:
        clock.set(dt.datetime.fromisoformat(f"{today}T01:30:00+00:00"))
        headers = await staff_headers(world.context, "reviewer")
        response = await world.client.get(
            "/api/review/queue", params={"scope": scope}, headers=headers
        )
        assert response.status_code == 200, response.text
        return response.json()

    assert (await queue("open", "2026-10-09"))[0]["due"]["working_days_left"] == 7
    on_the_day = (await queue("open", "2026-10-19"))[0]["due"]
    assert (on_the_day["working_days_left"], on_the_day["overdue"]) == (0, False)
    assert await queue("overdue", "2026-10-19") == []
    late = await queue("overdue", "2026-10-21")
    assert [item["case_id"] for item in late] == [str(case.case_id)]
    assert (late[0]["due"]["overdue"], late[0]["due"]["days_overdue"]) == (True, 2)
    report = await world.client.get(
        "/api/review/overdue", headers=await staff_headers(world.context, "admin")
    )
    assert report.json()["today"] == "2026-10-21"
    assert [item["title"] for item in report.json()["items"]] == [case.title]


# --- who may do what ----------------------------------------------------------------------------------


async def test_role_refusals(world, seeded):
    case = await world.propose(major_case(world))
    base = f"/api/review/cases/{case.case_id}"
    assert (await world.client.get(base)).status_code == 401
    assert (await world.client.post(f"{base}/take")).status_code == 401
    # A reviewer cannot submit; an officer cannot review.
    assert (
        await world.client.post(f"{base}/submissions", json={}, headers=world.reviewer)
    ).status_code == 403
    assert (await world.officer("POST", f"{base}/take")).status_code == 403

    # An officer who is not on the case can neither read nor submit it.
    stranger = await enroll_and_login(
        world.client,
        (await _enrollment_code(world)),
        "13010003",
        now=lambda: world.clock.now().timestamp(),
    )
    read = await world.client.get(base, headers=stranger.headers("GET", base))
    assert read.status_code == 403 and read.json()["code"] == "review_not_handler"
    sent = await world.client.post(
        f"{base}/submissions", json={}, headers=stranger.headers("POST", f"{base}/submissions")
    )
    assert sent.status_code == 403

    # A reviewer of another agency sees nothing of this one.
    async with world.context.database.transaction() as session:
        other = Agency(code="other", name="另一执法机关", created_at=world.context.clock.now())
        session.add(other)
        await session.flush()
        await accounts.create_user(
            session,
            await world.context.keyring(),
            username="other-reviewer",
            password="zhifa-demo-2026",
            display_name="外单位审核员",
            roles=[Role.REVIEWER],
            agency_id=other.id,
            now=world.context.clock.now(),
        )
    foreign = await staff_headers(world.context, "other-reviewer")
    await world.submit(case.case_id)
    assert (await world.client.get(base, headers=foreign)).status_code == 403
    took = await world.client.post(f"{base}/take", headers=foreign)
    assert took.status_code == 403 and "本执法主体" in took.json()["detail"]
    assert (await world.client.get("/api/review/queue", headers=foreign)).json() == []

    # Only the reviewer who has the case gives the opinion.
    assert (await world.as_reviewer("POST", case.case_id, "take")).status_code == 200
    async with world.context.database.transaction() as session:
        await accounts.create_user(
            session,
            await world.context.keyring(),
            username="second-reviewer",
            password="zhifa-demo-2026",
            display_name="审核员 吴刚",
            roles=[Role.REVIEWER],
            agency_id=world.agency_id,
            now=world.context.clock.now(),
        )
    second = await staff_headers(world.context, "second-reviewer")
    body = {"outcome": "同意", "opinion": "同意", "checklist": ALL_PASS}
    other_opinion = await world.as_reviewer("POST", case.case_id, "opinion", body, headers=second)
    assert other_opinion.status_code == 403
    assert (
        await world.as_reviewer("POST", case.case_id, "take", headers=second)
    ).status_code == 409
    assert (await world.client.get(base, headers=world.reviewer)).json()["state"] == "审核中"


async def _enrollment_code(world: World) -> str:
    response = await world.client.post(
        "/api/terminals/enrollment-codes", json={}, headers=world.admin
    )
    return response.json()["enrollment_code"]


# --- the console's session ------------------------------------------------------------------------------


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def test_console_login_session_and_csrf(world):
    client = world.client
    case = await world.propose(major_case(world))
    await world.submit(case.case_id)

    anonymous = await client.get("/review")
    assert (
        anonymous.status_code == 303
        and anonymous.headers["location"] == "/console/login?next=/review"
    )

    page = await client.get("/console/login", params={"next": "https://evil.example/x"})
    assert page.status_code == 200 and "登录" in page.text
    assert 'name="next" value="/review"' in page.text  # never sends anyone off-site
    token = _csrf(page.text)
    form = {
        "username": "reviewer",
        "password": "zhifa-demo-2026",
        "next": "/review",
        "csrf": "forged",
    }
    assert (await client.post("/console/login", data=form)).status_code == 403
    wrong = await client.post(
        "/console/login", data={**form, "csrf": token, "password": "nope-nope"}
    )
    assert wrong.status_code == 401 and "用户名或密码不正确" in wrong.text
    officer = await client.post(
        "/console/login", data={**form, "csrf": _csrf(wrong.text), "username": "13010002"}
    )
    assert officer.status_code == 403 and "不能使用法制审核工作台" in officer.text

    logged_in = await client.post("/console/login", data={**form, "csrf": _csrf(officer.text)})
    assert logged_in.status_code == 303 and logged_in.headers["location"] == "/review"
    cookie = next(
        v
        for k, v in logged_in.headers.multi_items()
        if k == "set-cookie" and v.startswith("zhifa_console=")
    )
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()

    queue = await client.get("/review")
    assert queue.status_code == 200 and case.title in queue.text
    overdue = await client.get("/review/overdue")
    assert overdue.status_code == 200 and "没有逾期的审核" in overdue.text
    # The JSON API never takes the console cookie.
    assert (await client.get("/api/review/queue")).status_code == 401

    take = f"/review/cases/{case.case_id}/take"
    forged = await client.post(take, data={"csrf": "forged"})
    assert forged.status_code == 403 and "页面已过期" in forged.text
    taken = await client.post(take, data={"csrf": _csrf(queue.text)})
    assert taken.status_code == 303
    page = await client.get(taken.headers["location"])
    assert "已领取，开始审核" in page.text and 'id="checklist"' in page.text

    # A refused opinion shows the page again with what was typed.
    refused = await client.post(
        f"/review/cases/{case.case_id}/review",
        data={
            "csrf": _csrf(page.text),
            "action": "problems",
            "answer_procedure": "存在问题",
            "opinion": "程序有瑕疵",
        },
    )
    assert refused.status_code == 422
    assert "请说明「程序合法」存在的问题" in refused.text or "尚未填写" in refused.text
    assert "程序有瑕疵" in refused.text

    # Each evidence view goes to the ledger before the player gets the file's address.
    path = f"/review/cases/{case.case_id}/evidence/ev-1"
    assert f'src="{path}"' in page.text
    for _ in range(2):
        played = await client.get(path)
        assert played.status_code == 303
        assert played.headers["location"].startswith("http://media.invalid/evidence/1.mp4?viewer=")
    assert len(world.source.played) == 2
    assert (await _ledger_kinds(world.context, case.case_id)).count("review.evidence_viewed") == 2
    missing = await client.get(f"/review/cases/{case.case_id}/evidence/nope")
    assert missing.status_code == 404 and "案卷中没有该证据" in missing.text
    assert (await world.officer("GET", path)).status_code == 403

    logout = await client.post("/console/logout", data={"csrf": _csrf(page.text)})
    assert logout.status_code == 303
    assert (await client.get("/review")).status_code == 303
    async with world.context.database.transaction() as session:
        assert (await session.get(ReviewCase, case.case_id)).state == ReviewState.IN_REVIEW
