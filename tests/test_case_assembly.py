"""Case assembly on the server: procedure rules refuse what they must, two terminals work one case,
the machine review lists flaws, deadlines count across holidays from the server's clock."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from mobile_api.contracts import events as ev
from mobile_api.contracts.sync import CaseRef
from tests._case_events import (
    PAIR,
    Writer,
    enrollment_code,
    ledger_refs,
    ledgered_events,
    login_again,
    pull,
    push_ok,
)
from tests.conftest import enroll_and_login, login

CHINA = dt.timezone(dt.timedelta(hours=8))


def at(day: str, hour: int = 9) -> dt.datetime:
    """A moment in China on ``day``."""
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=CHINA)


async def case_file(client, headers, case_id) -> dict:
    response = await client.get(f"/api/cases/{case_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def codes(results) -> list[str]:
    return [r.code if r.outcome != "accepted" else "accepted" for r in results]


def flaw_codes(view: dict) -> list[str]:
    return sorted(f["code"] for f in view["flaws"])


async def _general_procedure(client, context, clock, officer_terminal) -> None:
    """立案 procedure: officers, catalog, notice, statement period, hearing right, closing."""
    write = Writer("a0a0a0a0", clock)
    term = officer_terminal
    case_id = uuid.uuid4()

    refused = await push_ok(
        client,
        term,
        [
            write.open(case_id, officers=["13010001"]),
            write.open(case_id, officers=["13010001", "13010003"]),  # 王芳: 旅游市场, 城西区
            write.open(case_id, officers=["13010001", "88888888"]),
            write.open(case_id, item_code="NO-SUCH-ITEM"),
            write.open(case_id, category="旅游市场"),
        ],
    )
    assert codes(refused) == [
        "two_officers_required",
        "two_officers_required",
        "two_officers_required",
        "enforcement_item_unknown",
        "enforcement_item_mismatch",
    ]
    assert "王芳（证号 13010003）执法类别不含文化市场" in refused[1].message
    assert "执法区域不含示范市城东区" in refused[1].message
    assert "不在执法人员名册中" in refused[2].message
    assert all(r.status == 409 for r in refused)

    opened = write.open(case_id)
    early = write(ev.DecisionProposed, case_id, penalties=["罚款"], fine_yuan=Decimal(500))
    party = write.person(case_id)
    before_notice = write(ev.DecisionProposed, case_id, penalties=["罚款"], fine_yuan=Decimal(500))
    notice = write(
        ev.NoticeServed, case_id, facts="未经许可从事娱乐场所经营", proposed="罚款 5000 元"
    )
    too_soon = write(ev.DecisionProposed, case_id, penalties=["罚款"], fine_yuan=Decimal(5000))
    oral_waiver = write(ev.StatementReceived, case_id, waived=True, in_writing=False)
    statement = write(ev.StatementReceived, case_id, content="经营者称已在办理许可")
    results = await push_ok(
        client,
        term,
        [opened, early, party, before_notice, notice, too_soon, oral_waiver, statement],
    )
    assert codes(results) == [
        "accepted",
        "party_missing",
        "accepted",
        "rights_notice_missing",
        "accepted",
        "statement_period_running",
        "waiver_not_in_writing",
        "accepted",
    ]
    assert "2026-03-09" in results[5].message  # 5 working days after Monday 2 March

    clock.set(at("2026-03-09", 17))  # the last day of the period: still running
    await login_again(client, term, "13010001")
    last_day = await push_ok(
        client,
        term,
        [write(ev.DecisionProposed, case_id, penalties=["罚款"], fine_yuan=Decimal(5000))],
    )
    assert codes(last_day) == ["statement_period_running"]

    clock.set(at("2026-03-10"))
    await login_again(client, term, "13010001")
    heavy = write(ev.DecisionProposed, case_id, penalties=["罚款"], fine_yuan=Decimal(20000))
    negative = write(ev.DecisionProposed, case_id, penalties=["罚款"], fine_yuan=Decimal(-1))
    decision = write(ev.DecisionProposed, case_id, penalties=["罚款"], fine_yuan=Decimal(5000))
    again = write(ev.DecisionProposed, case_id, penalties=["警告"])
    late_notice = write(ev.NoticeServed, case_id, facts="补充告知")
    results = await push_ok(client, term, [heavy, negative, decision, again, late_notice])
    assert codes(results) == [
        "hearing_right_not_notified",  # 20000 元 on a person reaches the hearing threshold
        "amount_invalid",
        "accepted",
        "decision_exists",
        "decision_exists",
    ]
    assert results[1].status == 422

    close = write(ev.CaseClosed, case_id, reason="处罚决定已作出")
    after_close = write(ev.InspectionRecorded, case_id, findings="结案后补记")
    assert codes(await push_ok(client, term, [close, after_close])) == ["accepted", "case_closed"]

    admin = await login(client, "reviewer")
    view = await case_file(client, admin, case_id)
    assert view["file"]["state"] == "已结案"
    assert view["file"]["decision"]["fine_yuan"] == "5000"
    assert [e["kind"] for e in view["timeline"]] == [
        "case_opened",
        "party_identified",
        "notice_served",
        "statement_received",
        "decision_proposed",
        "case_closed",
    ]
    assert view["timeline"][0]["label"] == "立案"
    # Refused attempts stay on the case file with their reasons.
    refusals = {r["code"] for r in view["rejected"]}
    assert {"two_officers_required", "party_missing", "statement_period_running"} <= refusals
    # Closed without serving the decision: the review says so.
    assert any(f["message"] == "案卷缺少《行政处罚决定书》" for f in view["flaws"])
    assert len(await ledgered_events(context)) == 6  # accepted events only


async def _simple_procedure_and_rules(client, context, clock, officer_terminal) -> None:
    """On-site handling, the one-officer rule, the simple procedure's limits, agency settings."""
    await login_again(client, officer_terminal, "13010001")  # runs on 10 March, after the above
    write = Writer("b0b0b0b0", clock)
    term = officer_terminal
    alone = ["13010001"]

    # On the spot, one officer may act while the case can still end in a warning.
    warning = uuid.uuid4()
    results = await push_ok(
        client,
        term,
        [
            write.open(warning, procedure="当场处理", officers=alone),
            write.person(warning, officers=alone),
            write(ev.CredentialShown, warning, officers=alone, credential_number="13010001"),
            write(ev.CredentialShown, warning, officers=alone, credential_number="13010002"),
            write(ev.NoticeServed, warning, officers=alone, facts="无证经营"),
            write(
                ev.DecisionProposed,
                warning,
                officers=alone,
                penalties=["罚款"],
                fine_yuan=Decimal(100),
            ),
            write(ev.DecisionProposed, warning, penalties=["罚款"], fine_yuan=Decimal(100)),
            write(ev.DocumentServed, warning, officers=alone, document="当场行政处罚决定书"),
            write(ev.DecisionProposed, warning, officers=alone, penalties=["警告"]),
            write(ev.DocumentServed, warning, officers=alone, document="当场行政处罚决定书"),
        ],
    )
    assert codes(results) == [
        "accepted",
        "accepted",
        "accepted",
        "credential_not_present",
        "accepted",
        "two_officers_required",  # a fine needs two officers
        "two_officers_required",  # and the case already had steps done alone
        "decision_missing",
        "accepted",
        "accepted",
    ]

    # The simple procedure is limited to warnings and small fines (第51条).
    fine = uuid.uuid4()
    results = await push_ok(
        client,
        term,
        [
            write.open(fine, procedure="当场处理"),
            write.person(fine),
            write(ev.NoticeServed, fine, facts="无证经营"),
            write(ev.DecisionProposed, fine, penalties=["罚款"], fine_yuan=Decimal(500)),
            write(ev.DecisionProposed, fine, penalties=["吊销许可证件"]),
            write(ev.DecisionProposed, fine, penalties=["罚款"], fine_yuan=Decimal(150)),
            write(ev.DocumentServed, fine, document="当场行政处罚决定书"),
        ],
    )
    assert codes(results) == [
        "accepted",
        "accepted",
        "accepted",
        "simple_procedure_limit",
        "simple_procedure_limit",
        "accepted",  # on the spot the party states at once: no period to wait for
        "accepted",
    ]
    assert "不得超过 200 元" in results[3].message

    # The agency tightens its rules: a longer statement period and no one-officer actions.
    admin = await login(client, "admin")
    reviewer = await login(client, "reviewer")
    rules = (await client.get("/api/case-rules", headers=reviewer)).json()["rules"]
    assert rules["statement_days"] == 5
    rules.update(statement_days=7, one_officer=[])
    assert (await client.put("/api/case-rules", json=rules, headers=reviewer)).status_code == 403
    bad = await client.put("/api/case-rules", json={**rules, "statement_days": 0}, headers=admin)
    assert bad.status_code == 400
    saved = await client.put("/api/case-rules", json=rules, headers=admin)
    assert saved.status_code == 200, saved.text
    assert len(await ledger_refs(context, "case.rules_changed")) == 1

    strict = uuid.uuid4()
    results = await push_ok(
        client,
        term,
        [
            write.open(uuid.uuid4(), procedure="当场处理", officers=alone),
            write.open(strict),
            write(ev.NoticeServed, strict, statement_days=5),
            write(ev.NoticeServed, strict),
        ],
    )
    assert codes(results) == [
        "two_officers_required",
        "accepted",
        "statement_period_too_short",
        "accepted",
    ]
    view = await case_file(client, reviewer, strict)
    assert view["file"]["notice"]["statement_days"] == 7
    assert view["file"]["notice"]["period_ends"] == "2026-03-19"  # 7 working days from 10 March

    # The list filters by state, officer and overdue; bad filters are refused.
    listed = await client.get("/api/cases", params={"state": "已送达"}, headers=reviewer)
    assert {c["id"] for c in listed.json()} == {str(warning), str(fine)}
    mine = {
        c["id"]
        for c in (
            await client.get("/api/cases", params={"officer": "13010002"}, headers=reviewer)
        ).json()
    }
    assert {str(fine), str(strict)} <= mine and str(warning) not in mine
    assert (
        await client.get("/api/cases", params={"overdue": "true"}, headers=reviewer)
    ).json() == []
    wrong = await client.get("/api/cases", params={"state": "进行中"}, headers=reviewer)
    assert wrong.status_code == 422


async def _two_terminals(client, context, clock, officer_terminal) -> None:
    a = officer_terminal  # 张明
    b = await enroll_and_login(
        client, await enrollment_code(context), "13010002", now=lambda: clock.now().timestamp()
    )
    write_a = Writer("aaaa0001", clock)
    write_b = Writer("bbbb0002", clock, skew=dt.timedelta(minutes=-7))  # B's clock runs late

    # A opens the case and syncs; B's pull brings it, so 李华 can continue it on his terminal.
    opened = write_a.open()
    case_id = opened.case_id
    await push_ok(client, a, [opened])
    pulled = await pull(client, b)
    (case,) = next(s for s in pulled.snapshots if s.kind == "case").items
    assert isinstance(case, CaseRef) and case.case_id == case_id and case.officers == PAIR

    # Both work offline.
    clock.advance(dt.timedelta(minutes=2))
    a_events = [
        write_a(ev.CredentialShown, case_id, credential_number="13010001"),
        write_a(ev.InspectionRecorded, case_id, findings="包间内有 3 台点歌设备在使用"),
    ]
    clock.advance(dt.timedelta(minutes=1))
    b_events = [
        write_b.person(case_id),
        write_b(ev.EvidenceAttached, case_id, evidence_id=uuid.uuid4(), evidence_kind="照片"),
    ]
    clock.advance(dt.timedelta(minutes=3))  # tokens live 10 minutes: all this is one visit

    # A case A opened offline and told B about in person: B's events wait until A syncs.
    second = write_a.open(title="另一处娱乐场所擅自经营案")
    b_waiting = write_b(ev.InspectionRecorded, second.case_id, findings="李华先到现场")
    results = await push_ok(client, b, [*b_events, b_waiting])
    assert [r.outcome for r in results] == ["accepted", "accepted", "deferred"]
    assert results[2].code == "case_not_on_server"

    assert [r.outcome for r in await push_ok(client, a, [*a_events, second])] == ["accepted"] * 3
    assert [r.outcome for r in await push_ok(client, b, [b_waiting])] == ["accepted"]

    reviewer = await login(client, "reviewer")
    view = await case_file(client, reviewer, case_id)
    timeline = view["timeline"]
    assert {e["id"] for e in timeline} == {str(e.id) for e in [opened, *a_events, *b_events]}
    assert {e["terminal_id"] for e in timeline} == {a.terminal_id, b.terminal_id}
    assert [e["hlc"] for e in timeline] == sorted(e["hlc"] for e in timeline)
    assert [o["number"] for o in view["file"]["officers"]] == PAIR
    assert [o["name"] for o in view["file"]["officers"]] == ["张明", "李华"]
    assert view["file"]["parties"][0]["party"]["name"] == "张三"
    assert len(view["file"]["evidence"]) == 1
    assert (await case_file(client, reviewer, second.case_id))["file"]["event_count"] == 2


async def _flaws_and_deadlines(client, context, clock, officer_terminal) -> None:
    term = officer_terminal
    clock.set(at("2026-07-03", 9))  # Friday morning in China
    await login_again(client, term, "13010001")
    # The terminal's clock is half a day behind: it still reads the evening of 2 July.
    write = Writer("c0c0c0c0", clock, skew=dt.timedelta(hours=-12))
    trio = [*PAIR, "13010004"]  # 赵强 holds 广播电视/新闻出版, not 文化市场
    opened = write.open(officers=trio)
    case_id = opened.case_id
    seizure = write(
        ev.InspectionRecorded, case_id, findings="扣押无证经营的点歌设备", measures=["扣押"]
    )
    await push_ok(client, term, [opened, write.person(case_id), seizure])

    reviewer = await login(client, "reviewer")
    view = await case_file(client, reviewer, case_id)
    assert view["file"]["opened_on"] == "2026-07-03"  # the server's day, not the terminal's 2 July
    assert view["timeline"][0]["terminal_time"].startswith("2026-07-02T13:00")  # shown as it read
    (decide,) = view["deadlines"]
    # 90 days from 3 July is 1 October, a National Day holiday: it moves to 8 October (第203条).
    assert (decide["due"], decide["status"]) == ("2026-10-08", "未到期")
    assert flaw_codes(view) == [
        "credential_not_shown",
        "document_missing",
        "officer_not_qualified",
        "recording_missing",
    ]
    assert any("赵强（证号 13010004）执法类别不含文化市场" in f["message"] for f in view["flaws"])

    # The flaws clear as the missing pieces arrive; the officer's stays: it was true at the time.
    await push_ok(
        client,
        term,
        [
            write(ev.CredentialShown, case_id, credential_number="13010001"),
            write(
                ev.EvidenceAttached,
                case_id,
                evidence_id=uuid.uuid4(),
                evidence_kind="音像记录",
                recording_id="rec-0001",
                sha256="ab" * 32,
                for_event=seizure.id,
            ),
            write(ev.DocumentServed, case_id, document="查封（扣押）决定书"),
            write(ev.NoticeServed, case_id, facts="擅自经营"),
            write(ev.StatementReceived, case_id, waived=True, in_writing=True),
        ],
    )
    assert flaw_codes(await case_file(client, reviewer, case_id)) == ["officer_not_qualified"]

    async def move_to(day: str) -> dict[str, str]:
        clock.set(at(day))
        await login_again(client, term, "13010001")
        return await login(client, "reviewer")

    reviewer = await move_to("2026-09-30")  # decided the day before the holiday
    decision = write(ev.DecisionProposed, case_id, penalties=["警告"])
    assert [r.outcome for r in await push_ok(client, term, [decision])] == ["accepted"]
    view = await case_file(client, reviewer, case_id)
    decide, serve = view["deadlines"]
    assert (decide["met_on"], decide["status"]) == ("2026-09-30", "已完成")
    # Seven working days skip 1–7 October and count Saturday 10 October, a make-up working day.
    assert (serve["due"], serve["status"]) == ("2026-10-15", "未到期")

    reviewer = await move_to("2026-10-12")
    view = await case_file(client, reviewer, case_id)
    assert view["deadlines"][1]["status"] == "即将到期"
    assert "deadline_near" in flaw_codes(view)

    reviewer = await move_to("2026-10-16")
    view = await case_file(client, reviewer, case_id)
    assert view["deadlines"][1]["status"] == "已逾期"
    assert "deadline_missed" in flaw_codes(view)
    overdue = await client.get("/api/cases", params={"overdue": "true"}, headers=reviewer)
    assert str(case_id) in {c["id"] for c in overdue.json()}

    await push_ok(
        client,
        term,
        [
            write(ev.DocumentServed, case_id, document="行政处罚决定书", party_present=False),
            write(ev.CaseClosed, case_id),
        ],
    )
    view = await case_file(client, reviewer, case_id)
    assert [(d["code"], d["status"]) for d in view["deadlines"]] == [
        ("decision", "已完成"),
        ("service", "逾期完成"),
        ("archive", "未到期"),
    ]
    # 30 days from 16 October is Sunday 15 November: archiving is due on Monday the 16th.
    assert view["deadlines"][2]["due"] == "2026-11-16"
    assert view["file"]["closed_on"] == "2026-10-16"
    listed = await client.get("/api/cases", params={"state": "已结案"}, headers=reviewer)
    assert [(c["id"], c["next_due"]) for c in listed.json()] == [(str(case_id), "2026-11-16")]


async def test_procedure_rules_refuse_what_they_must(client, context, clock, officer_terminal):
    await _general_procedure(client, context, clock, officer_terminal)
    await _simple_procedure_and_rules(client, context, clock, officer_terminal)


async def test_two_terminals_then_flaws_and_deadlines_in_server_time(
    client, context, clock, seeded, officer_terminal
):
    await _two_terminals(client, context, clock, officer_terminal)
    await _flaws_and_deadlines(client, context, clock, officer_terminal)
