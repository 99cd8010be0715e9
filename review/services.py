"""The review workflow (DESIGN.md §6): routing, submission, review rounds, escalation, queue.

Plain functions on an AsyncSession, each one unit of work of the caller's transaction, each state
change written to the ledger in that same transaction (ref ``case:<id>``, so the review joins the
case's own trail). Who may do what:

- the handling side (承办): an officer on the case, or an agency admin of the case's agency;
- the reviewer: a user with the reviewer role in that agency who is not an officer on the case
  (compared by ``StaffUser.officer_id``, whatever other roles he holds) and did not submit the
  round;
- the responsible person's decision (协调机制) is recorded by an agency admin.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable
from typing import Any, Literal

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobile_api.contracts.calendar import WorkingDayCalendar
from review import benchmarks, rulefiles
from review.catalog import Catalog, catalog_for, parse_catalog
from review.errors import (
    ChecklistIncomplete,
    ConflictOfInterest,
    NotOnCase,
    ReviewNotFound,
    ReviewStateConflict,
)
from review.models import ReviewCase, ReviewEscalation, ReviewRound
from review.schemas import (
    CHECK_ITEMS,
    CHECKLIST,
    OPEN_STATES,
    BenchmarkCheck,
    CheckAnswer,
    DueStatus,
    EscalationOutcome,
    EscalationView,
    Outcome,
    OverdueReport,
    Problem,
    ProposedDecision,
    QueueItem,
    ReviewCaseFile,
    ReviewState,
    ReviewView,
    RoundView,
    RuleMatch,
)
from review.sources import CaseFileSource
from server.core import ledger
from server.core.auth import Principal
from server.core.clock import CHINA_TZ
from server.core.errors import NotFound, PermissionDenied, ValidationFailed
from server.core.keys import KeyRing
from server.core.models import Credential, Role, StaffUser

APPROVED_SHOWN = 100
# States in which the case waits for the handling side to (re)submit it.
WITH_HANDLER = frozenset({ReviewState.AWAITING, ReviewState.SUPPLEMENT, ReviewState.RETURNED})
HANDLER_SIDE = "承办机构"
REVIEWER_SIDE = "法制审核机构"
Scope = Literal["open", "mine", "unassigned", "overdue", "waiting", "approved"]
SCOPE_STATES: dict[str, tuple[ReviewState, ...]] = {
    "open": (ReviewState.QUEUED, ReviewState.IN_REVIEW),
    "mine": (ReviewState.IN_REVIEW,),
    "unassigned": (ReviewState.QUEUED,),
    "overdue": (ReviewState.QUEUED, ReviewState.IN_REVIEW),
    "waiting": (ReviewState.SUPPLEMENT, ReviewState.RETURNED, ReviewState.ESCALATED),
    "approved": (ReviewState.APPROVED,),
}


def china_date(at: dt.datetime) -> dt.date:
    return at.astimezone(CHINA_TZ).date()


def _digest(document: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(document, order="sorted")).hexdigest()


# --- loading and permissions ----------------------------------------------------------------------


async def _record(session: AsyncSession, case_id: uuid.UUID, *, lock: bool) -> ReviewCase:
    query = select(ReviewCase).where(ReviewCase.case_id == case_id)
    record = await session.scalar(query.with_for_update() if lock else query)
    if record is None:
        raise ReviewNotFound(case_id=str(case_id))
    return record


async def _round(
    session: AsyncSession, record: ReviewCase, number: int | None = None
) -> ReviewRound:
    found = await session.scalar(
        select(ReviewRound).where(
            ReviewRound.case_id == record.case_id,
            ReviewRound.number == (number or record.current_round),
        )
    )
    if found is None:
        raise ReviewStateConflict("该案件尚未送审")
    return found


async def _user(session: AsyncSession, principal: Principal) -> StaffUser:
    user = await session.get(StaffUser, principal.user_id)
    if user is None or not user.active:
        raise PermissionDenied("该账号不存在或已停用")
    return user


def _case_file(document: dict[str, Any]) -> ReviewCaseFile:
    return msgspec.convert(document, ReviewCaseFile)


async def _officer_ids(session: AsyncSession, files: Iterable[ReviewCaseFile]) -> set[uuid.UUID]:
    """Every officer on the case, by roster id: as the case file names them and by 证号."""
    ids: set[uuid.UUID] = set()
    numbers: set[str] = set()
    for case in files:
        for officer in case.officers:
            numbers.add(officer.number)
            if officer.officer_id is not None:
                ids.add(officer.officer_id)
    if numbers:
        ids.update(
            await session.scalars(
                select(Credential.officer_id).where(Credential.number.in_(numbers))
            )
        )
    return ids


async def _case_officer_ids(session: AsyncSession, record: ReviewCase) -> set[uuid.UUID]:
    files = [_case_file(record.case_file)]
    rounds = await session.scalars(select(ReviewRound).where(ReviewRound.case_id == record.case_id))
    files += [_case_file(r.materials) for r in rounds]
    return await _officer_ids(session, files)


def _in_agency(user: StaffUser, record: ReviewCase) -> bool:
    return user.agency_id == record.agency_id


async def _check_handler(session: AsyncSession, user: StaffUser, record: ReviewCase) -> str:
    """The handling side: an officer on the case or an admin of its agency. Returns the side."""
    if Role.AGENCY_ADMIN in user.roles and _in_agency(user, record):
        return HANDLER_SIDE
    if (
        Role.OFFICER in user.roles
        and user.officer_id is not None
        and user.officer_id in await _case_officer_ids(session, record)
    ):
        return HANDLER_SIDE
    raise NotOnCase()


async def check_reviewer(
    session: AsyncSession, user: StaffUser, record: ReviewCase, submitted_by: uuid.UUID | None
) -> None:
    """May this user review the case? Separation of duties holds whatever roles he has."""
    if Role.REVIEWER not in user.roles or not user.active:
        raise PermissionDenied(f"{user.display_name}不是法制审核人员")
    if not _in_agency(user, record):
        raise PermissionDenied("只能审核本执法主体的案件")
    if user.officer_id is not None and user.officer_id in await _case_officer_ids(session, record):
        raise ConflictOfInterest(f"{user.display_name}是本案执法人员，不能审核本案")
    if submitted_by == user.id:
        raise ConflictOfInterest(f"{user.display_name}送审了本案，不能审核本案")


async def _check_can_read(session: AsyncSession, user: StaffUser, record: ReviewCase) -> None:
    if Role.SYSTEM_ADMIN in user.roles:
        return
    staff = {Role.REVIEWER, Role.AGENCY_ADMIN} & set(user.roles)
    if staff and _in_agency(user, record):
        return
    await _check_handler(session, user, record)


async def readable_record(
    session: AsyncSession, case_id: uuid.UUID, principal: Principal
) -> ReviewCase:
    record = await _record(session, case_id, lock=False)
    await _check_can_read(session, await _user(session, principal), record)
    return record


def _require_state(record: ReviewCase, allowed: Iterable[ReviewState], doing: str) -> None:
    if record.state not in set(allowed):
        raise ReviewStateConflict(
            f"该案件法制审核状态为「{record.state}」，不能{doing}", state=record.state
        )


async def _append(
    session: AsyncSession,
    keyring: KeyRing,
    record: ReviewCase,
    kind: str,
    data: dict[str, Any],
    now: dt.datetime,
) -> None:
    data = {"state": str(record.state), "round": record.current_round, **data}
    await ledger.append(
        session, keyring, kind=f"review.{kind}", ref=f"case:{record.case_id}", data=data, now=now
    )


# --- rule files -----------------------------------------------------------------------------------


async def load_rule_file(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    agency_id: uuid.UUID,
    kind: rulefiles.Kind,
    text: str,
    principal: Principal,
    now: dt.datetime,
) -> rulefiles.FileInfo:
    if Role.SYSTEM_ADMIN not in principal.roles and principal.agency_id != agency_id:
        raise PermissionDenied("只能为本执法主体载入目录清单和裁量基准")
    version = (
        parse_catalog(text) if kind == "catalog" else benchmarks.parse_benchmarks(text)
    ).version
    row = await rulefiles.store(
        session,
        keyring,
        agency_id=agency_id,
        kind=kind,
        version=version,
        text=text,
        loaded_by=principal.user_id,
        now=now,
    )
    return rulefiles.FileInfo(
        kind=kind, version=row.version, sha256=row.sha256, loaded_at=row.loaded_at, in_force=True
    )


# --- routing --------------------------------------------------------------------------------------


class Routing(msgspec.Struct, frozen=True, kw_only=True):
    catalog: Catalog
    matches: list[RuleMatch]
    benchmark: BenchmarkCheck

    @property
    def major(self) -> bool:
        return bool(self.matches)


async def _routing(session: AsyncSession, case: ReviewCaseFile) -> Routing:
    catalog = await catalog_for(session, case.agency_id)
    return Routing(
        catalog=catalog,
        matches=catalog.route(case),
        benchmark=await benchmarks.check_for(session, case),
    )


async def _withdraw_open(
    session: AsyncSession, record: ReviewCase, now: dt.datetime, reason: str
) -> None:
    """The decision under review changed: the open round and any escalation end unanswered."""
    if record.state in OPEN_STATES and record.current_round:
        current = await _round(session, record)
        current.outcome, current.opinion, current.decided_at = Outcome.WITHDRAWN, reason, now
    escalations = await session.scalars(
        select(ReviewEscalation).where(
            ReviewEscalation.case_id == record.case_id, ReviewEscalation.outcome.is_(None)
        )
    )
    for escalation in escalations:
        escalation.outcome, escalation.decision, escalation.decided_at = (
            Outcome.WITHDRAWN,
            reason,
            now,
        )


def _apply_routing(record: ReviewCase, case: ReviewCaseFile, routing: Routing) -> None:
    record.case_number, record.title, record.category = case.case_number, case.title, case.category
    record.major = routing.major
    record.matches = [msgspec.to_builtins(m) for m in routing.matches]
    record.catalog_version = routing.catalog.version
    record.benchmark = msgspec.to_builtins(routing.benchmark)
    record.proposal = msgspec.to_builtins(case.proposal)
    record.case_file = msgspec.to_builtins(case)


async def route_proposal(
    session: AsyncSession, keyring: KeyRing, case: ReviewCaseFile, *, now: dt.datetime
) -> ReviewCase:
    """Decide whether a proposed decision is major and record why (rules, catalog version).

    Called whenever a decision is proposed (and again when the case file changes). A different
    decision than the one under review or approved needs a review of its own: the open round is
    withdrawn and any approval no longer counts.
    """
    routing = await _routing(session, case)
    fingerprint = case.proposal.fingerprint()
    record = await session.scalar(
        select(ReviewCase).where(ReviewCase.case_id == case.case_id).with_for_update()
    )
    fresh = ReviewState.AWAITING if routing.major else ReviewState.NOT_REQUIRED
    changed = record is None or record.proposal_fingerprint != fingerprint
    if record is None:
        record = ReviewCase(case_id=case.case_id, agency_id=case.agency_id, current_round=0)
        session.add(record)
        record.state = fresh
    elif record.agency_id != case.agency_id:
        raise ValidationFailed("案件所属执法主体与已有审核记录不符", field="agency_id")
    elif changed:
        await _withdraw_open(session, record, now, "拟处理决定已变更，本轮审核终止")
        record.state, record.reviewer_id, record.due_on = fresh, None, None
    elif not routing.major and record.state in WITH_HANDLER:
        record.state = ReviewState.NOT_REQUIRED  # e.g. a new catalog: nothing left to submit
    elif routing.major and record.state == ReviewState.NOT_REQUIRED:
        record.state = ReviewState.AWAITING
    _apply_routing(record, case, routing)
    record.proposal_fingerprint, record.routed_at, record.updated_at = fingerprint, now, now
    await session.flush()
    await _append(
        session,
        keyring,
        record,
        "routed",
        {
            "major": routing.major,
            "rules": [m.rule_id for m in routing.matches],
            "catalog_version": routing.catalog.version,
            "benchmark": str(routing.benchmark.status),
            "benchmark_version": routing.benchmark.version,
            "proposal_sha256": fingerprint,
            "proposal_changed": changed,
        },
        now,
    )
    return record


async def reroute(
    session: AsyncSession,
    keyring: KeyRing,
    source: CaseFileSource,
    case_id: uuid.UUID,
    principal: Principal,
    now: dt.datetime,
) -> ReviewCase:
    """Route the case file as it stands now again (a new catalog, a flag set on the case)."""
    record = await _record(session, case_id, lock=True)
    await _check_handler(session, await _user(session, principal), record)
    case = await source.case_file(session, case_id)
    if case is None:
        raise NotFound("案件不存在", case_id=str(case_id))
    return await route_proposal(session, keyring, case, now=now)


# --- submission and review ------------------------------------------------------------------------


async def submit(
    session: AsyncSession,
    keyring: KeyRing,
    calendar: WorkingDayCalendar,
    source: CaseFileSource,
    case_id: uuid.UUID,
    principal: Principal,
    *,
    note: str,
    now: dt.datetime,
) -> ReviewCase:
    """The handling side submits (or resubmits) the case with its materials as they stand now.

    A resubmission after a return goes straight back to the reviewer of the last round when he
    still may review it; otherwise it waits in the queue.
    """
    record = await _record(session, case_id, lock=True)
    user = await _user(session, principal)
    await _check_handler(session, user, record)
    _require_state(record, WITH_HANDLER, "送审")
    case = await source.case_file(session, case_id)
    if case is None:
        raise NotFound("案件不存在", case_id=str(case_id))
    record = await route_proposal(session, keyring, case, now=now)
    if not record.major:
        return record  # the decision as it stands now needs no review
    catalog = await catalog_for(session, record.agency_id)
    previous = await _round(session, record) if record.current_round else None
    due = calendar.add_working_days(china_date(now), catalog.review_working_days)
    materials = msgspec.to_builtins(case)
    current = ReviewRound(
        case_id=record.case_id,
        number=record.current_round + 1,
        submitted_at=now,
        submitted_by=user.id,
        note=note,
        materials=materials,
        matches=record.matches,
        benchmark=record.benchmark,
        catalog_version=record.catalog_version,
        due_on=due.deadline,
        due_fallback=due.fallback,
        checklist={},
        problems=[],
    )
    session.add(current)
    record.current_round, record.due_on, record.updated_at = current.number, due.deadline, now
    record.state, record.reviewer_id = ReviewState.QUEUED, None
    await session.flush()
    await _append(
        session,
        keyring,
        record,
        "submitted",
        {"materials_sha256": _digest(materials), "note": note, "due_on": due.deadline.isoformat()},
        now,
    )
    if previous is not None and previous.reviewer_id is not None:
        reviewer = await session.get(StaffUser, previous.reviewer_id)
        try:
            if reviewer is None:
                raise PermissionDenied()
            await check_reviewer(session, reviewer, record, user.id)
        except PermissionDenied:
            return record
        await _start_review(session, keyring, record, current, reviewer, now, "assigned")
    return record


async def _start_review(
    session: AsyncSession,
    keyring: KeyRing,
    record: ReviewCase,
    current: ReviewRound,
    reviewer: StaffUser,
    now: dt.datetime,
    kind: str,
    by: uuid.UUID | None = None,
) -> None:
    record.state, record.reviewer_id, record.updated_at = ReviewState.IN_REVIEW, reviewer.id, now
    current.reviewer_id, current.taken_at = reviewer.id, now
    data: dict[str, Any] = {"reviewer": str(reviewer.id)}
    if by is not None:
        data["by"] = str(by)
    await _append(session, keyring, record, kind, data, now)


async def take(
    session: AsyncSession,
    keyring: KeyRing,
    case_id: uuid.UUID,
    principal: Principal,
    now: dt.datetime,
) -> ReviewCase:
    """A reviewer takes a case from the queue."""
    record = await _record(session, case_id, lock=True)
    user = await _user(session, principal)
    if record.state == ReviewState.IN_REVIEW and record.reviewer_id == user.id:
        return record
    _require_state(record, (ReviewState.QUEUED,), "领取审核")
    current = await _round(session, record)
    await check_reviewer(session, user, record, current.submitted_by)
    await _start_review(session, keyring, record, current, user, now, "taken")
    return record


async def assign(
    session: AsyncSession,
    keyring: KeyRing,
    case_id: uuid.UUID,
    principal: Principal,
    reviewer_username: str,
    now: dt.datetime,
) -> ReviewCase:
    """An agency admin or a reviewer hands the case to a reviewer (also to reassign it)."""
    record = await _record(session, case_id, lock=True)
    user = await _user(session, principal)
    if not ({Role.AGENCY_ADMIN, Role.REVIEWER} & set(user.roles)) or not _in_agency(user, record):
        raise PermissionDenied("只有本机关管理员或法制审核人员可以分派审核")
    _require_state(record, (ReviewState.QUEUED, ReviewState.IN_REVIEW), "分派审核")
    reviewer = await session.scalar(
        select(StaffUser).where(StaffUser.username == reviewer_username)
    )
    if reviewer is None:
        raise NotFound(f"用户 {reviewer_username} 不存在", field="reviewer")
    current = await _round(session, record)
    await check_reviewer(session, reviewer, record, current.submitted_by)
    await _start_review(session, keyring, record, current, reviewer, now, "assigned", by=user.id)
    return record


async def _reviewing(
    session: AsyncSession, case_id: uuid.UUID, principal: Principal, doing: str
) -> tuple[ReviewCase, ReviewRound, StaffUser]:
    """The open round, for the reviewer who has it."""
    record = await _record(session, case_id, lock=True)
    user = await _user(session, principal)
    _require_state(record, (ReviewState.IN_REVIEW,), doing)
    current = await _round(session, record)
    if current.reviewer_id != user.id:
        raise PermissionDenied("该案件由其他审核人员审核")
    # Checked again: the case may have gained an officer, or the user a roster entry.
    await check_reviewer(session, user, record, current.submitted_by)
    return record, current, user


def _merged_checklist(
    current: ReviewRound, answers: dict[str, CheckAnswer]
) -> dict[str, dict[str, str]]:
    merged = dict(current.checklist)
    for key, answer in answers.items():
        item = CHECK_ITEMS.get(key)
        if item is None:
            raise ValidationFailed(f"未知的审核要点 {key}", field="checklist")
        if answer.answer not in (item.pass_answer, item.fail_answer):
            raise ValidationFailed(
                f"「{item.label}」应填写“{item.pass_answer}”或“{item.fail_answer}”",
                field="checklist",
                item=key,
            )
        merged[key] = msgspec.to_builtins(answer)
    return merged


async def save_checklist(
    session: AsyncSession,
    keyring: KeyRing,
    case_id: uuid.UUID,
    principal: Principal,
    answers: dict[str, CheckAnswer],
    now: dt.datetime,
) -> ReviewCase:
    record, current, _ = await _reviewing(session, case_id, principal, "填写审核要点")
    current.checklist = _merged_checklist(current, answers)
    record.updated_at = now
    await _append(
        session, keyring, record, "checklist_saved", {"checklist": current.checklist}, now
    )
    return record


def _failed_items(checklist: dict[str, dict[str, str]]) -> list[str]:
    missing = [item.label for item in CHECKLIST if item.key not in checklist]
    if missing:
        raise ChecklistIncomplete(f"以下审核要点尚未填写：{'、'.join(missing)}", missing=missing)
    return [item.key for item in CHECKLIST if checklist[item.key]["answer"] == item.fail_answer]


async def give_opinion(
    session: AsyncSession,
    keyring: KeyRing,
    case_id: uuid.UUID,
    principal: Principal,
    *,
    outcome: Outcome,
    opinion: str,
    problems: list[Problem],
    checklist: dict[str, CheckAnswer],
    now: dt.datetime,
) -> ReviewCase:
    """The written opinion: 同意, or 存在问题 with each problem (each failed item explained)."""
    if outcome not in (Outcome.AGREE, Outcome.PROBLEMS):
        raise ValidationFailed("审核意见应为“同意”或“存在问题”", field="outcome")
    record, current, _ = await _reviewing(session, case_id, principal, "出具审核意见")
    merged = _merged_checklist(current, checklist)
    failed = _failed_items(merged)
    if not opinion.strip():
        raise ValidationFailed("请填写书面审核意见", field="opinion")
    for problem in problems:
        if problem.item and problem.item not in CHECK_ITEMS:
            raise ValidationFailed(f"问题所属的审核要点 {problem.item} 未知", field="problems")
        if problem.item and problem.item not in failed:
            label = CHECK_ITEMS[problem.item].label
            raise ValidationFailed(
                f"「{label}」已填写为无问题，不能在其下列出问题", field="problems"
            )
    if outcome == Outcome.AGREE:
        if failed or problems:
            labels = "、".join(CHECK_ITEMS[key].label for key in failed) or "所列问题"
            raise ValidationFailed(
                f"{labels}存在问题，不能出具同意意见", field="outcome", failed=failed
            )
        record.state, record.approved_at = ReviewState.APPROVED, now
        record.approved_fingerprint = _case_file(current.materials).proposal.fingerprint()
    else:
        if not problems:
            raise ValidationFailed("存在问题的审核意见须逐项列明问题", field="problems")
        unexplained = [key for key in failed if not any(p.item == key for p in problems)]
        if unexplained:
            labels = "、".join(CHECK_ITEMS[key].label for key in unexplained)
            raise ValidationFailed(f"请说明「{labels}」存在的问题", field="problems")
        record.state = ReviewState.RETURNED
    current.checklist, current.outcome, current.opinion = merged, outcome, opinion.strip()
    current.problems = [msgspec.to_builtins(p) for p in problems]
    current.decided_at, record.updated_at = now, now
    await _append(
        session,
        keyring,
        record,
        "approved" if outcome == Outcome.AGREE else "returned",
        {
            "outcome": str(outcome),
            "opinion": current.opinion,
            "problems": current.problems,
            "checklist": merged,
            "reviewer": str(current.reviewer_id),
        },
        now,
    )
    return record


async def request_supplement(
    session: AsyncSession,
    keyring: KeyRing,
    case_id: uuid.UUID,
    principal: Principal,
    *,
    request: str,
    due_on: dt.date,
    now: dt.datetime,
) -> ReviewCase:
    """Send the materials back as incomplete: what to add, and by when (补充材料)."""
    record, current, _ = await _reviewing(session, case_id, principal, "要求补充材料")
    if not request.strip():
        raise ValidationFailed("请写明需要补充的材料", field="request")
    if due_on <= china_date(now):
        raise ValidationFailed("补充材料的期限应晚于今天", field="due_on")
    current.outcome, current.supplement_request = Outcome.SUPPLEMENT, request.strip()
    current.supplement_due, current.decided_at = due_on, now
    record.state, record.updated_at = ReviewState.SUPPLEMENT, now
    await _append(
        session,
        keyring,
        record,
        "supplement_requested",
        {"request": current.supplement_request, "due_on": due_on.isoformat()},
        now,
    )
    return record


# --- coordination (协调机制) -------------------------------------------------------------------------


async def escalate(
    session: AsyncSession,
    keyring: KeyRing,
    case_id: uuid.UUID,
    principal: Principal,
    *,
    reason: str,
    now: dt.datetime,
) -> ReviewCase:
    """Handler or reviewer disagree over a returned case: the responsible person will decide."""
    record = await _record(session, case_id, lock=True)
    user = await _user(session, principal)
    _require_state(record, (ReviewState.RETURNED,), "提请协调")
    current = await _round(session, record)
    if current.reviewer_id == user.id:
        side = REVIEWER_SIDE
    else:
        side = await _check_handler(session, user, record)
    if not reason.strip():
        raise ValidationFailed("请写明提请协调的理由", field="reason")
    session.add(
        ReviewEscalation(
            case_id=record.case_id,
            round=current.number,
            raised_by=user.id,
            side=side,
            reason=reason.strip(),
            raised_at=now,
        )
    )
    record.state, record.updated_at = ReviewState.ESCALATED, now
    await session.flush()
    await _append(session, keyring, record, "escalated", {"side": side, "reason": reason}, now)
    return record


async def decide_escalation(
    session: AsyncSession,
    keyring: KeyRing,
    case_id: uuid.UUID,
    principal: Principal,
    *,
    outcome: EscalationOutcome,
    decision: str,
    responsible_person: str,
    now: dt.datetime,
) -> ReviewCase:
    """Record the responsible person's decision; 同意作出决定 lets the decision reviewed be made."""
    record = await _record(session, case_id, lock=True)
    user = await _user(session, principal)
    if Role.AGENCY_ADMIN not in user.roles or not _in_agency(user, record):
        raise PermissionDenied("负责人的协调决定由本机关管理员登记")
    _require_state(record, (ReviewState.ESCALATED,), "登记协调决定")
    if not decision.strip():
        raise ValidationFailed("请写明负责人的协调决定", field="decision")
    escalation = await session.scalar(
        select(ReviewEscalation).where(
            ReviewEscalation.case_id == record.case_id, ReviewEscalation.outcome.is_(None)
        )
    )
    if escalation is None:
        raise ReviewStateConflict("没有待决定的协调事项")
    catalog = await catalog_for(session, record.agency_id)
    escalation.outcome, escalation.decision = outcome, decision.strip()
    escalation.responsible_person = responsible_person.strip() or catalog.responsible_person
    escalation.recorded_by, escalation.decided_at = user.id, now
    current = await _round(session, record)
    approved = outcome == EscalationOutcome.DECIDE
    if approved:
        record.state, record.approved_at = ReviewState.APPROVED, now
        record.approved_fingerprint = _case_file(current.materials).proposal.fingerprint()
    else:
        record.state = ReviewState.RETURNED
    record.updated_at = now
    await _append(
        session,
        keyring,
        record,
        "escalation_decided",
        {
            "outcome": str(outcome),
            "decision": escalation.decision,
            "responsible_person": escalation.responsible_person,
            "recorded_by": str(user.id),
        },
        now,
    )
    return record


# --- evidence -------------------------------------------------------------------------------------


async def view_evidence(
    session: AsyncSession,
    keyring: KeyRing,
    source: CaseFileSource,
    case_id: uuid.UUID,
    evidence_id: str,
    principal: Principal,
    now: dt.datetime,
) -> str:
    """Log one view of an evidence item, then ask the source where to play it from."""
    record = await readable_record(session, case_id, principal)
    current = await _round(session, record) if record.current_round else None
    files = [_case_file(record.case_file)] + ([_case_file(current.materials)] if current else [])
    if not any(item.id == evidence_id for case in files for item in case.evidence):
        raise NotFound("案卷中没有该证据", evidence_id=evidence_id)
    data = {"evidence_id": evidence_id, "viewer": str(principal.user_id)}
    await _append(session, keyring, record, "evidence_viewed", data, now)
    url = await source.playback_url(session, case_id, evidence_id, principal)
    if not url:
        raise NotFound("该证据暂无可播放的文件", evidence_id=evidence_id)
    return url


# --- queries --------------------------------------------------------------------------------------


def due_status(
    calendar: WorkingDayCalendar, due_on: dt.date, today: dt.date, fallback: bool = False
) -> DueStatus:
    overdue = today > due_on
    return DueStatus(
        due_on=due_on,
        overdue=overdue,
        working_days_left=0 if overdue else calendar.working_days_between(today, due_on),
        days_overdue=(today - due_on).days if overdue else 0,
        fallback=fallback,
    )


async def _names(session: AsyncSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(
        select(StaffUser.id, StaffUser.display_name).where(StaffUser.id.in_(wanted))
    )
    return {row.id: row.display_name for row in rows}


def _proposal_summary(proposal: ProposedDecision) -> str:
    parts: list[str] = list(proposal.penalties)
    if proposal.fine_yuan:
        parts = [
            f"罚款 {proposal.fine_yuan.normalize():,f} 元" if p == "罚款" else p for p in parts
        ]
    if proposal.confiscation_yuan:
        parts.append(f"没收财物价值 {proposal.confiscation_yuan.normalize():,f} 元")
    return "；".join(parts)


async def queue(
    session: AsyncSession,
    calendar: WorkingDayCalendar,
    agency_id: uuid.UUID,
    *,
    scope: Scope,
    user_id: uuid.UUID,
    today: dt.date,
) -> list[QueueItem]:
    """The agency's reviews in one scope, overdue first, then by due date."""
    query = select(ReviewCase).where(
        ReviewCase.agency_id == agency_id, ReviewCase.state.in_(SCOPE_STATES[scope])
    )
    if scope == "mine":
        query = query.where(ReviewCase.reviewer_id == user_id)
    if scope == "overdue":
        query = query.where(ReviewCase.due_on < today)
    if scope == "approved":
        # The most recent ones: the list of everything ever approved is not a queue.
        query = query.order_by(ReviewCase.updated_at.desc()).limit(APPROVED_SHOWN)
    records = list(await session.scalars(query.order_by(ReviewCase.due_on, ReviewCase.updated_at)))
    rounds = {
        (r.case_id, r.number): r
        for r in await session.scalars(
            select(ReviewRound).where(ReviewRound.case_id.in_([rec.case_id for rec in records]))
        )
    }
    names = await _names(session, (rec.reviewer_id for rec in records))
    items = []
    for record in records:
        current = rounds.get((record.case_id, record.current_round))
        due = (
            due_status(calendar, current.due_on, today, current.due_fallback)
            if current is not None and record.state in OPEN_STATES
            else None
        )
        items.append(
            QueueItem(
                case_id=record.case_id,
                case_number=record.case_number,
                title=record.title,
                category=record.category,
                state=record.state,
                round=record.current_round,
                submitted_at=current.submitted_at if current else None,
                due=due,
                reviewer=names.get(record.reviewer_id) if record.reviewer_id else None,
                reasons=[m["label"] for m in record.matches],
                benchmark_flagged=record.benchmark.get("status") == "超出裁量基准",
                summary=_proposal_summary(msgspec.convert(record.proposal, ProposedDecision)),
            )
        )
    items.sort(
        key=lambda item: (
            not (item.due and item.due.overdue),
            item.due.due_on if item.due else dt.date.max,
        )
    )
    return items


async def queue_counts(
    session: AsyncSession,
    agency_id: uuid.UUID,
    *,
    user_id: uuid.UUID,
    today: dt.date,
) -> dict[str, int]:
    """How many reviews each scope holds, for the queue's tabs."""
    rows = await session.execute(
        select(ReviewCase.state, ReviewCase.reviewer_id, ReviewCase.due_on).where(
            ReviewCase.agency_id == agency_id,
            ReviewCase.state.in_({s for states in SCOPE_STATES.values() for s in states}),
        )
    )
    counts = dict.fromkeys(SCOPE_STATES, 0)
    for state, reviewer_id, due_on in rows:
        for scope, states in SCOPE_STATES.items():
            if state not in states:
                continue
            if scope == "mine" and reviewer_id != user_id:
                continue
            if scope == "overdue" and not (due_on and due_on < today):
                continue
            counts[scope] += 1
    return counts


async def eligible_reviewers(session: AsyncSession, case_id: uuid.UUID) -> list[StaffUser]:
    """The agency's reviewers who may review this case (for assigning it)."""
    record = await _record(session, case_id, lock=False)
    current = await _round(session, record)
    users = await session.scalars(
        select(StaffUser)
        .where(StaffUser.agency_id == record.agency_id, StaffUser.active.is_(True))
        .order_by(StaffUser.display_name)
    )
    eligible = []
    for user in users:
        try:
            await check_reviewer(session, user, record, current.submitted_by)
        except PermissionDenied:
            continue
        eligible.append(user)
    return eligible


async def overdue_report(
    session: AsyncSession, calendar: WorkingDayCalendar, agency_id: uuid.UUID, today: dt.date
) -> OverdueReport:
    items = await queue(
        session, calendar, agency_id, scope="overdue", user_id=uuid.UUID(int=0), today=today
    )
    return OverdueReport(agency_id=agency_id, today=today, items=items)


async def review_view(
    session: AsyncSession,
    calendar: WorkingDayCalendar,
    case_id: uuid.UUID,
    principal: Principal,
    today: dt.date,
) -> ReviewView:
    """The review record with every round and escalation, for whoever may read the case."""
    record = await readable_record(session, case_id, principal)
    rounds = list(
        await session.scalars(
            select(ReviewRound).where(ReviewRound.case_id == case_id).order_by(ReviewRound.number)
        )
    )
    escalations = list(
        await session.scalars(
            select(ReviewEscalation)
            .where(ReviewEscalation.case_id == case_id)
            .order_by(ReviewEscalation.raised_at)
        )
    )
    names = await _names(
        session,
        [record.reviewer_id]
        + [u for r in rounds for u in (r.submitted_by, r.reviewer_id)]
        + [u for e in escalations for u in (e.raised_by, e.recorded_by)],
    )
    current = rounds[-1] if rounds else None
    return ReviewView(
        case_id=record.case_id,
        case_number=record.case_number,
        title=record.title,
        state=record.state,
        major=record.major,
        matches=msgspec.convert(record.matches, list[RuleMatch]),
        catalog_version=record.catalog_version,
        benchmark=msgspec.convert(record.benchmark, BenchmarkCheck),
        proposal=msgspec.convert(record.proposal, ProposedDecision),
        routed_at=record.routed_at,
        reviewer_id=record.reviewer_id,
        reviewer=names.get(record.reviewer_id) if record.reviewer_id else None,
        due=due_status(calendar, current.due_on, today, current.due_fallback)
        if current is not None and record.state in OPEN_STATES
        else None,
        rounds=[
            RoundView(
                number=r.number,
                submitted_at=r.submitted_at,
                submitted_by=names.get(r.submitted_by, ""),
                note=r.note,
                due_on=r.due_on,
                due_fallback=r.due_fallback,
                reviewer=names.get(r.reviewer_id) if r.reviewer_id else None,
                taken_at=r.taken_at,
                checklist=msgspec.convert(r.checklist, dict[str, CheckAnswer]),
                outcome=r.outcome,
                opinion=r.opinion,
                problems=msgspec.convert(r.problems, list[Problem]),
                supplement_request=r.supplement_request,
                supplement_due=r.supplement_due,
                decided_at=r.decided_at,
            )
            for r in rounds
        ],
        escalations=[
            EscalationView(
                round=e.round,
                raised_by=names.get(e.raised_by, ""),
                side=e.side,
                reason=e.reason,
                raised_at=e.raised_at,
                outcome=e.outcome,
                decision=e.decision,
                responsible_person=e.responsible_person,
                recorded_by=names.get(e.recorded_by) if e.recorded_by else None,
                decided_at=e.decided_at,
            )
            for e in escalations
        ],
    )


async def round_materials(session: AsyncSession, case_id: uuid.UUID, number: int) -> ReviewCaseFile:
    """The case file as submitted in one round (what the reviewer reads)."""
    found = await session.scalar(
        select(ReviewRound).where(ReviewRound.case_id == case_id, ReviewRound.number == number)
    )
    if found is None:
        raise NotFound("没有该轮审核", round=number)
    return _case_file(found.materials)
