"""Publication and withdrawal deadlines (DESIGN.md §2, §7), with two server instances and leases.

The year simulation runs from September 2025 to February 2027 with the clock moved a day at a
time: National Day 2025, Spring Festival 2026 and the 2026→2027 boundary (2027 unknown to the
calendar: deadlines counted conservatively and flagged), then the boundary again with the 2027
file loaded. Every publication and withdrawal must happen by its deadline, exactly once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter

import msgspec
import pytest
from sqlalchemy import select

from disclosure import leases, services
from disclosure.jobs import PUBLICATION_JOB, run_due_jobs
from disclosure.models import (
    AnnualReport,
    DecisionState,
    DisclosureDecision,
    DisclosureRecord,
    HoldCause,
)
from disclosure.schemas import (
    DecisionChanged,
    DecisionIssued,
    Organisation,
    Person,
    SettingsView,
    Withhold,
)
from server.core import accounts
from server.core.clock import CHINA_TZ
from server.core.models import Agency, LedgerEntry, Role
from tests._disclosure_sim import Simulation, at
from tests.conftest import login

SHORT = ("行政许可", "行政处罚")


def china_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(CHINA_TZ).date()


async def _state(sim: Simulation):
    async with sim.a.database.sessionmaker() as session:
        decisions = {
            (d.agency_id, d.decision_number): d
            for d in await session.scalars(select(DisclosureDecision))
        }
        records = {r.decision_id: r for r in await session.scalars(select(DisclosureRecord))}
        entries = Counter(
            (kind, ref)
            for kind, ref in (
                await session.execute(
                    select(LedgerEntry.kind, LedgerEntry.ref).where(
                        LedgerEntry.kind.like("disclosure.%")
                    )
                )
            ).all()
        )
        reports = {(r.agency_id, r.year): r for r in await session.scalars(select(AnnualReport))}
    return decisions, records, entries, reports


async def check_outcomes(sim: Simulation) -> Counter[str]:
    """Every decision's fate against the law's deadlines; returns how many ended in each state."""
    calendar = sim.reference_calendar()
    decisions, records, entries, _ = await _state(sim)
    assert len(decisions) == len(sim.issued)
    fates: Counter[str] = Counter()
    for item in sim.issued:
        event = item.event
        d = decisions[(event.agency_id, event.decision_number)]
        ref = f"disclosure:{d.id}"
        fates[d.state.value] += 1
        expected = calendar.add_working_days(
            event.decision_date, 7 if event.act_kind in SHORT else 20
        )
        assert (d.due_on, d.due_fallback) == (expected.deadline, expected.fallback), event
        assert d.overdue_flagged_at is None, f"{event.decision_number} was late"
        published = entries[("disclosure.published", ref)]
        minor = isinstance(event.subject, Person) and event.subject.minor
        if minor or event.withhold:
            assert d.state is DecisionState.EXCLUDED and d.id not in records
            assert d.exclusion_kind == ("未成年人" if minor else "商业秘密")
            assert published == 0
            continue
        if d.state in (DecisionState.SCHEDULED, DecisionState.HELD):
            # Issued in the last days of the simulation: its day has not come yet.
            assert max(d.publish_on, item.approved_on or d.publish_on) > sim.last_day
            assert published == 0 and d.id not in records
            continue
        if d.state is DecisionState.CANCELLED:
            # Changed before its publication day: never published, and it was not late then.
            assert item.changed is not None and published == 0 and d.id not in records
            assert item.changed.changed_on <= d.due_on
            continue
        assert published == 1, f"{event.decision_number} published {published} times"
        day = china_day(d.published_at)
        assert day <= d.due_on
        # As soon as allowed: the agency's day, the day it reached us, the day review said yes.
        earliest = max(d.publish_on, item.recorded_on, item.approved_on or item.recorded_on)
        assert day == earliest, event.decision_number
        record = records[d.id]
        assert record.published_on == day
        if item.changed is None:
            assert d.state is DecisionState.PUBLISHED and record.status == "published"
            assert entries[("disclosure.withdrawn", ref)] == 0
            continue
        assert d.state is DecisionState.WITHDRAWN
        assert entries[("disclosure.withdrawn", ref)] == 1
        withdrawn = china_day(d.withdrawn_at)
        assert withdrawn == item.changed.changed_on <= d.withdraw_due_on
        assert d.withdraw_due_on == calendar.add_working_days(withdrawn, 3).deadline
        assert record.status == "withdrawn" and record.withdrawal_kind == item.changed.change
        assert record.facts == record.conclusion == record.search_text == ""
        assert all(name not in record.withdrawal_reason for name in item.names)
    assert len(records) == fates["published"] + fates["withdrawn"]
    return fates


def _changes(sim: Simulation, agency_id: uuid.UUID, year: int) -> Counter[str]:
    return Counter(
        i.changed.via
        for i in sim.issued
        if i.changed and i.event.agency_id == agency_id and i.changed.changed_on.year == year
    )


async def check_reports(sim: Simulation, years: list[int]) -> None:
    _, _, _, reports = await _state(sim)
    for code, agency in sim.agencies.items():
        due_day = 15 if code == "demo2" else 31
        for year in years:
            report = reports[(agency.id, year)]
            assert china_day(report.published_at) <= dt.date(year + 1, 1, due_day)
            assert china_day(report.published_at) == dt.date(year + 1, 1, 1)
            issued = [
                i.event
                for i in sim.issued
                if i.event.agency_id == agency.id and i.event.decision_date.year == year
            ]
            stats = report.statistics
            assert stats["decisions"] == len(issued)
            kinds = Counter(e.act_kind for e in issued)
            assert stats["by_act_kind"] == {k: kinds.get(k, 0) for k in stats["by_act_kind"]}
            assert stats["by_category"] == dict(Counter(e.category for e in issued))
            assert stats["legal_reviews"] == sum(e.legal_review for e in issued)
            assert stats["hearings"] == sum(e.hearing for e in issued)
            changes = _changes(sim, agency.id, year)
            assert stats["reconsiderations"] == changes["行政复议"]
            assert stats["lawsuits"] == changes["行政诉讼"]


async def test_a_year_of_decisions_is_published_and_withdrawn_on_time(migrated):
    sim = Simulation(
        migrated,
        start=dt.date(2025, 9, 22),
        per_day=0.9,
        fixed={
            dt.date(2025, 9, 30): [("行政处罚", "demo"), ("行政检查", "demo")],
            dt.date(2026, 2, 13): [("行政处罚", "demo")],
        },
    )
    await sim.setup()
    try:
        await sim.run(dt.date(2026, 9, 21))
        fates = await check_outcomes(sim)
        assert len(sim.issued) >= 200
        # Every path was taken: published, withdrawn, cancelled before publication, excluded.
        assert min(fates[s] for s in ("published", "withdrawn", "cancelled", "excluded")) > 0
        assert any(i.approved_on for i in sim.issued)  # the review gate held some for a while
        # Hand-counted deadlines over the holidays (decision date → 7th / 20th working day):
        # 2025-10-01..08 off, 10-11 a 调休 Saturday; 2026-02-14 a 调休 Saturday, 02-15..23 off.
        assert await _fixed_deadlines(sim) == {
            ("行政处罚", dt.date(2025, 9, 30)): (dt.date(2025, 10, 16), False),
            ("行政检查", dt.date(2025, 9, 30)): (dt.date(2025, 11, 4), False),
            ("行政处罚", dt.date(2026, 2, 13)): (dt.date(2026, 3, 2), False),
        }
        await check_reports(sim, [2025])
        holders = {r.holder for r in sim.reports if PUBLICATION_JOB in r.ran}
        assert holders == {"instance-0", "instance-1"}  # both servers worked …
        assert sum(len(r.skipped) for r in sim.reports) > 0  # … and stood aside for each other
    finally:
        await sim.close()


async def _fixed_deadlines(sim: Simulation) -> dict[tuple[str, dt.date], tuple[dt.date, bool]]:
    decisions, *_ = await _state(sim)
    out = {}
    for item in sim.issued:
        if item.fixed:
            d = decisions[(item.event.agency_id, item.event.decision_number)]
            out[(item.event.act_kind, item.event.decision_date)] = (d.due_on, d.due_fallback)
    return out


@pytest.mark.parametrize("calendar_2027", [False, True], ids=["2027-unknown", "2027-loaded"])
async def test_the_year_boundary_with_and_without_the_2027_calendar(migrated, calendar_2027):
    sim = Simulation(
        migrated,
        start=dt.date(2026, 12, 14),
        calendar_2027=calendar_2027,
        per_day=1.2,
        seed=27,
        fixed={dt.date(2026, 12, 29): [("行政处罚", "demo"), ("行政强制", "demo2")]},
    )
    await sim.setup()
    try:
        await sim.run(dt.date(2027, 1, 29))
        await check_outcomes(sim)
        decisions, *_ = await _state(sim)
        if calendar_2027:
            # 2027-01-01..03 are holidays in the loaded file: the deadlines move past them.
            expected = {
                ("行政处罚", dt.date(2026, 12, 29)): (dt.date(2027, 1, 8), False),
                ("行政强制", dt.date(2026, 12, 29)): (dt.date(2027, 1, 27), False),
            }
            assert not any(d.due_fallback for d in decisions.values())
        else:
            # 2027 unknown: every day counts, so deadlines come early, and they are flagged.
            expected = {
                ("行政处罚", dt.date(2026, 12, 29)): (dt.date(2027, 1, 5), True),
                ("行政强制", dt.date(2026, 12, 29)): (dt.date(2027, 1, 18), True),
            }
        assert await _fixed_deadlines(sim) == expected
        await check_reports(sim, [2026])
    finally:
        await sim.close()


async def test_a_restarted_server_catches_up_and_flags_what_is_late(migrated):
    sim = Simulation(migrated, start=dt.date(2025, 12, 22), per_day=0)
    await sim.setup()
    try:
        day = dt.date(2025, 12, 22)
        sim.clock.set(at(day, 10))
        on_time = await sim.issue(day, "行政处罚", code="demo", decision_date=day)
        await sim.run_jobs()
        # The servers' jobs stop on the 23rd; decisions still arrive (late, from the sync queue).
        sim.clock.set(at(dt.date(2025, 12, 29), 10))
        late = await sim.issue(dt.date(2025, 12, 29), "行政处罚", code="demo", decision_date=day)
        sim.clock.set(at(dt.date(2026, 1, 30), 10))
        fresh = await sim.issue(dt.date(2026, 1, 30), "行政检查", code="demo")
        # Back on 2 February 2026: the penalty was due 2025-12-31, the 2025 report on 01-31.
        sim.clock.set(at(dt.date(2026, 2, 2), 9))
        async with sim.a.database.sessionmaker() as session:
            board = await services.dashboard(session, sim.agencies["demo"], sim.clock.today())
        assert board.counts["overdue"] == 1 and board.overdue[0].overdue_flagged_at is None
        assert board.overdue[0].due_on == dt.date(2025, 12, 31)
        assert board.report.overdue and board.report.year == 2025
        await sim.run_jobs()
        decisions, _records, entries, reports = await _state(sim)
        flagged = [d for d in decisions.values() if d.overdue_flagged_at is not None]
        assert [d.decision_number for d in flagged] == [late.event.decision_number]
        for item in (on_time, late, fresh):
            d = decisions[(item.event.agency_id, item.event.decision_number)]
            assert d.state is DecisionState.PUBLISHED
            assert entries[("disclosure.published", f"disclosure:{d.id}")] == 1
        assert entries[("disclosure.overdue", f"disclosure:{flagged[0].id}")] == 1
        assert reports[(sim.agencies["demo"].id, 2025)].statistics["decisions"] == 2
        # Another run changes nothing: flags and publications happen once.
        sim.clock.advance(dt.timedelta(hours=1))
        await sim.run_jobs()
        assert (await _state(sim))[2] == entries
        async with sim.a.database.sessionmaker() as session:
            board = await services.dashboard(session, sim.agencies["demo"], sim.clock.today())
        assert board.counts["overdue"] == 0 and board.counts["published"] == 3
        assert not board.report.overdue and board.report.published_at is not None
        late_one = next(s for s in board.recently_published if s.overdue_flagged_at)
        assert late_one.overdue  # published after its deadline: stays visible as late
    finally:
        await sim.close()


async def test_a_crashed_holder_keeps_the_lease_only_until_it_lapses(migrated):
    sim = Simulation(migrated, start=dt.date(2026, 3, 2), per_day=0)
    await sim.setup()
    try:
        sim.clock.set(at(sim.start, 10))
        item = await sim.issue(sim.start, "行政许可", code="demo", decision_date=sim.start)
        # An instance took the lease and died without releasing it.
        now = sim.clock.now()
        assert await leases.acquire(
            sim.a.database, PUBLICATION_JOB, "crashed", now, dt.timedelta(minutes=5)
        )
        report = await run_due_jobs(sim.instances[1], sim.hooks, holder="survivor")
        assert PUBLICATION_JOB in report.skipped and report.published == 0
        sim.clock.advance(dt.timedelta(minutes=6))
        report = await run_due_jobs(sim.instances[1], sim.hooks, holder="survivor")
        assert PUBLICATION_JOB in report.ran and report.published == 1
        decisions, records, *_ = await _state(sim)
        d = decisions[(item.event.agency_id, item.event.decision_number)]
        assert d.state is DecisionState.PUBLISHED and d.id in records
    finally:
        await sim.close()


async def test_held_by_review_until_approved_and_flagged_when_late(migrated):
    sim = Simulation(migrated, start=dt.date(2026, 3, 2), per_day=0)
    verdicts: dict[uuid.UUID, bool | str] = {}

    async def gate(session, case_id):
        return verdicts.get(case_id, True)

    sim.hooks = type(sim.hooks)(may_publish=gate)
    await sim.setup()
    try:
        sim.clock.set(at(sim.start, 10))
        item = await sim.issue(sim.start, "行政处罚", code="demo", decision_date=sim.start)
        verdicts[item.event.case_id] = False
        await sim.run_jobs()
        decisions, _, entries, _ = await _state(sim)
        d = decisions[(item.event.agency_id, item.event.decision_number)]
        assert d.state is DecisionState.HELD and d.hold_cause is HoldCause.REVIEW
        assert d.hold_reason == "法制审核尚未通过"
        for day in range(1, 12):  # still not approved when the deadline (2026-03-11) passes
            sim.clock.set(at(sim.start + dt.timedelta(days=day), 12))
            await sim.run_jobs()
        decisions, _, entries, _ = await _state(sim)
        d = decisions[(item.event.agency_id, item.event.decision_number)]
        assert d.state is DecisionState.HELD and d.overdue_flagged_at is not None
        assert entries[("disclosure.held", f"disclosure:{d.id}")] == 1  # held once, not daily
        assert entries[("disclosure.overdue", f"disclosure:{d.id}")] == 1
        verdicts[item.event.case_id] = True
        await sim.run_jobs()
        decisions, _records, *_ = await _state(sim)
        assert decisions[(item.event.agency_id, item.event.decision_number)].state is (
            DecisionState.PUBLISHED
        )
    finally:
        await sim.close()


async def test_bad_events_are_refused_and_leave_nothing_behind(migrated):
    sim = Simulation(migrated, start=dt.date(2026, 3, 2), per_day=0)
    await sim.setup()
    try:
        sim.clock.set(at(sim.start, 10))
        item = await sim.issue(sim.start, "行政处罚", code="demo", decision_date=sim.start)
        base = item.event
        instance = sim.a

        async def record(event: DecisionIssued):
            async with instance.database.transaction() as session:
                return await services.record_decision(
                    session,
                    event,
                    calendar=await instance.calendar(),
                    keyring=await instance.keyring(),
                    now=sim.clock.now(),
                )

        async def change(event: DecisionChanged):
            async with instance.database.transaction() as session:
                return await services.withdraw(
                    session,
                    event,
                    calendar=await instance.calendar(),
                    keyring=await instance.keyring(),
                    now=sim.clock.now(),
                )

        before = await _state(sim)
        # The same event again is a replay; different content under the same number is not.
        assert (await record(base)).decision_number == base.decision_number
        with pytest.raises(services.DecisionConflict):
            await record(_replace(base, conclusion="另一结论"))
        refusals = {
            "served before decided": _replace(
                base, decision_number="X-1", served_on=sim.start - dt.timedelta(days=1)
            ),
            "decided in the future": _replace(
                base,
                decision_number="X-2",
                decision_date=sim.start + dt.timedelta(days=1),
                served_on=None,
            ),
            "bad credit code": _replace(
                base, decision_number="X-3", subject=Organisation(name="某公司", credit_code="123")
            ),
            "empty conclusion": _replace(base, decision_number="X-4", conclusion=""),
            "unknown agency": _replace(base, decision_number="X-5", agency_id=uuid.uuid4()),
            "withheld without a reason": _replace(
                base, decision_number="X-6", withhold=Withhold(kind="商业秘密", reason="")
            ),
        }
        for label, event in refusals.items():
            with pytest.raises(services.DecisionInvalid):
                await record(event)
            assert (await _state(sim))[2] == before[2], label  # no ledger entry, no row
        changed = DecisionChanged(
            case_id=base.case_id,
            agency_id=base.agency_id,
            decision_number=base.decision_number,
            change="撤销",
            reason="原决定适用法律错误，本机关予以撤销。",
            changed_on=sim.start,
        )
        with pytest.raises(services.DecisionUnknown):
            await change(_replace(changed, decision_number="无此文号"))
        with pytest.raises(services.DecisionConflict):
            await change(_replace(changed, case_id=uuid.uuid4()))
        with pytest.raises(services.DecisionInvalid):
            await change(_replace(changed, changed_on=sim.start + dt.timedelta(days=2)))
        assert (await _state(sim))[2] == before[2]
        status = await change(changed)
        assert status.state == "cancelled"  # not yet published: it never will be
        assert (await change(changed)).state == "cancelled"  # a repeat changes nothing
    finally:
        await sim.close()


def _replace(event, **changes):
    """A copy with some fields changed, built without validation (as a careless caller might)."""
    return msgspec.structs.replace(event, **changes)


async def test_an_agency_lag_publishes_sooner_but_never_after_the_deadline(migrated):
    sim = Simulation(migrated, start=dt.date(2026, 2, 9), per_day=0)
    await sim.setup()
    try:
        demo2 = sim.agencies["demo2"]  # lag: 2 working days after service
        async with sim.a.database.transaction() as session:
            assert await services.agency_settings(session, demo2.id) == SettingsView(
                publish_lag_working_days=2, report_due_month=1, report_due_day=15
            )
        # Decided Monday 2026-02-09; the 7th working day is 02-25 (02-14 is a 调休 Saturday,
        # 02-15..23 Spring Festival).
        served = {}
        for day in (dt.date(2026, 2, 12), dt.date(2026, 2, 24)):
            sim.clock.set(at(day, 10))
            served[day] = await sim.issue(day, "行政处罚", code="demo2", decision_date=sim.start)
        decisions, *_ = await _state(sim)

        def planned(day):
            d = decisions[(demo2.id, served[day].event.decision_number)]
            return d.due_on, d.publish_on

        assert planned(dt.date(2026, 2, 12)) == (dt.date(2026, 2, 25), dt.date(2026, 2, 14))
        # Served late: two working days after service would be 02-26, past the deadline.
        assert planned(dt.date(2026, 2, 24)) == (dt.date(2026, 2, 25), dt.date(2026, 2, 25))
        # Not served yet: published on the deadline.
        assert services.planned_publication(
            await sim.a.calendar(), dt.date(2026, 3, 31), None, 0
        ) == dt.date(2026, 3, 31)
    finally:
        await sim.close()


# --- the staff dashboard over HTTP ---------------------------------------------------------------


async def _issue(context, **fields) -> DecisionIssued:
    async with context.database.sessionmaker() as session:
        agency = await session.scalar(select(Agency).where(Agency.code == "demo"))
    today = context.clock.today()
    defaults = {
        "served_on": today,
        "category": "文化市场",
        "basis": "《娱乐场所管理条例》第四十一条",
    }
    event = DecisionIssued(
        case_id=uuid.uuid4(), agency_id=agency.id, decision_date=today, **{**defaults, **fields}
    )
    async with context.database.transaction() as session:
        await services.record_decision(
            session,
            event,
            calendar=await context.calendar(),
            keyring=await context.keyring(),
            now=context.clock.now(),
        )
    return event


async def test_the_staff_dashboard_shows_deadlines_and_refuses_outsiders(
    client, context, seeded, officer_terminal
):
    now = context.clock.now()
    keyring = await context.keyring()
    async with context.database.transaction() as session:
        other = Agency(code="other", name="邻市综合行政执法局", region="邻市", created_at=now)
        session.add(other)
        await session.flush()
        for username, roles in (
            ("other-admin", [Role.AGENCY_ADMIN]),
            ("other-system-admin", [Role.SYSTEM_ADMIN]),
        ):
            await accounts.create_user(
                session,
                keyring,
                username=username,
                password="zhifa-demo-2026",
                display_name=username,
                roles=roles,
                agency_id=other.id,
                now=now,
            )
    published = await _issue(
        context,
        decision_number="示文罚〔2026〕1号",
        act_kind="行政处罚",
        subject=Person(name="欧阳娜娜"),
        conclusion="对欧阳娜娜罚款人民币二千元",
        outcome="罚款",
    )
    # "王 娜" with a space slips past name replacement (a one-character given name alone is an
    # ordinary word); the scanner, which ignores separators, catches it.
    held = await _issue(
        context,
        decision_number="示文罚〔2026〕2号",
        act_kind="行政处罚",
        subject=Person(name="王娜"),
        conclusion="对王娜警告",
        facts="当事人王 娜在场所内经营。",
        outcome="警告",
    )
    unserved = await _issue(
        context,
        decision_number="示文许〔2026〕3号",
        act_kind="行政许可",
        subject=Organisation(name="示范市星河文化有限公司", credit_code="91110000MA01ABCD2X"),
        conclusion="准予出版物零售业务经营许可",
        served_on=None,
    )
    await run_due_jobs(context, holder="only")
    admin = await login(client, "admin")
    url = "/api/disclosure/dashboard"
    board = await client.get(url, params={"agency_code": "demo"}, headers=admin)
    assert board.status_code == 200, board.text
    body = board.json()
    assert {k: body["counts"][k] for k in ("published", "held", "scheduled", "overdue")} == {
        "published": 1,
        "held": 1,
        "scheduled": 1,
        "overdue": 0,
    }
    (hold,) = body["held"]
    assert hold["hold_cause"] == "scanner" and "自然人姓名（王*）" in hold["hold_reason"]
    assert "王娜" not in board.text and "王 娜" not in board.text
    (due,) = body["due"]
    assert due["decision_number"] == unserved.decision_number
    assert due["publish_on"] == due["due_on"] == "2026-03-11"
    assert body["recently_published"][0]["decision_number"] == published.decision_number
    assert body["report"] == {
        "year": 2025,
        "due_on": "2026-01-31",
        "published_at": None,
        "overdue": True,
    }

    # Who may look: admins of the agency, system admins; nobody else.
    assert (await client.get(url, params={"agency_code": "demo"})).status_code == 401
    path = f"{url}?agency_code=demo"
    refused = await client.get(path, headers=officer_terminal.headers("GET", path))
    assert refused.status_code == 403
    reviewer = await login(client, "reviewer")
    assert (
        await client.get(url, params={"agency_code": "demo"}, headers=reviewer)
    ).status_code == 403
    other_admin = await login(client, "other-admin")
    refused = await client.get(url, params={"agency_code": "demo"}, headers=other_admin)
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    assert (
        await client.get(url, params={"agency_code": "other"}, headers=other_admin)
    ).status_code == 200
    system_admin = await login(client, "other-system-admin")
    assert (
        await client.get(url, params={"agency_code": "demo"}, headers=system_admin)
    ).status_code == 200

    # Correcting the held text: still identifying → refused and unchanged; clean → published.
    held_id = hold["id"]
    text_url = f"/api/disclosure/decisions/{held_id}/public-text"
    still = await client.put(
        text_url, json={"conclusion": "对王·娜警告", "facts": "电话13812345678"}, headers=admin
    )
    assert still.status_code == 422 and still.json()["code"] == "disclosure_pii_found"
    kinds = {f["kind"] for f in still.json()["findings"]}
    assert kinds == {"name"}  # the phone number was redacted; the name in disguise was not
    refused = await client.put(text_url, json={"conclusion": "警告"}, headers=other_admin)
    assert refused.status_code == 404  # another agency's decision does not exist for them
    fixed = await client.put(
        text_url,
        json={"conclusion": "对当事人警告", "facts": "当事人在场所内经营。"},
        headers=admin,
    )
    assert fixed.status_code == 200 and fixed.json()["state"] == "scheduled"
    report = await run_due_jobs(context, holder="only")
    assert report.published == 1
    found = await client.get("/api/gongshi/decisions", params={"q": held.decision_number})
    assert [d["subject"] for d in found.json()["items"]] == ["王某"]

    # Not to be published: listed with the reason; only before publication.
    decisions = {d["decision_number"]: d["id"] for d in body["due"] + body["recently_published"]}
    exclusion = {"kind": "商业秘密", "reason": "许可内容涉及申请人的商业秘密"}
    excluded = await client.post(
        f"/api/disclosure/decisions/{decisions[unserved.decision_number]}/exclusion",
        json=exclusion,
        headers=admin,
    )
    assert excluded.status_code == 200 and excluded.json()["state"] == "excluded"
    again = await client.post(
        f"/api/disclosure/decisions/{decisions[unserved.decision_number]}/exclusion",
        json=exclusion,
        headers=admin,
    )
    assert again.status_code == 409 and again.json()["code"] == "disclosure_state_conflict"
    late = await client.post(
        f"/api/disclosure/decisions/{decisions[published.decision_number]}/exclusion",
        json=exclusion,
        headers=admin,
    )
    assert late.status_code == 409
    listed = await client.get(
        "/api/disclosure/decisions",
        params={"agency_code": "demo", "state": "excluded"},
        headers=admin,
    )
    assert [(d["decision_number"], d["exclusion_kind"]) for d in listed.json()["items"]] == [
        (unserved.decision_number, "商业秘密")
    ]
    bad_state = await client.get(
        "/api/disclosure/decisions",
        params={"agency_code": "demo", "state": "gone"},
        headers=admin,
    )
    assert bad_state.status_code == 422

    # Settings: within the law only.
    settings_url = "/api/disclosure/settings"
    too_late = await client.put(
        settings_url,
        params={"agency_code": "demo"},
        json={"publish_lag_working_days": 9},
        headers=admin,
    )
    assert too_late.status_code == 400
    changed = await client.put(
        settings_url,
        params={"agency_code": "demo"},
        json={"publish_lag_working_days": 1, "report_due_month": 1, "report_due_day": 15},
        headers=admin,
    )
    assert changed.status_code == 200
    got = await client.get(settings_url, params={"agency_code": "demo"}, headers=admin)
    assert got.json() == {
        "publish_lag_working_days": 1,
        "report_due_month": 1,
        "report_due_day": 15,
    }
    refused = await client.put(
        settings_url, params={"agency_code": "demo"}, json={}, headers=other_admin
    )
    assert refused.status_code == 403
