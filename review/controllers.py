"""JSON API of legal review: catalogs and benchmarks, routing, submission, review, coordination."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec
from litestar import Controller, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from review import rulefiles, services
from review.gate import decision_gate
from review.schemas import (
    CheckAnswer,
    EscalationOutcome,
    GateStatus,
    Outcome,
    OverdueReport,
    Problem,
    QueueItem,
    ReviewView,
)
from review.sources import wiring_of
from review.web import ReviewContext, context_of
from server.core import accounts
from server.core.auth import Principal
from server.core.errors import PermissionDenied
from server.core.models import Role
from server.core.roles import allow

Note = Annotated[str, msgspec.Meta(max_length=20_000)]
STAFF = (Role.REVIEWER, Role.AGENCY_ADMIN)
HANDLERS = (Role.OFFICER, Role.AGENCY_ADMIN)
READERS = (Role.OFFICER, Role.REVIEWER, Role.AGENCY_ADMIN, Role.SYSTEM_ADMIN)
RULE_LOADERS = (Role.AGENCY_ADMIN, Role.SYSTEM_ADMIN)


class SubmitRequest(msgspec.Struct, frozen=True):
    note: Note = ""


class AssignRequest(msgspec.Struct, frozen=True):
    reviewer: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]  # username


class ChecklistRequest(msgspec.Struct, frozen=True):
    checklist: dict[str, CheckAnswer]


class OpinionRequest(msgspec.Struct, frozen=True):
    outcome: Literal["同意", "存在问题"]
    opinion: Note
    problems: list[Problem] = msgspec.field(default_factory=list)
    checklist: dict[str, CheckAnswer] = msgspec.field(default_factory=dict)


class SupplementRequest(msgspec.Struct, frozen=True):
    request: Note
    due_on: dt.date


class EscalateRequest(msgspec.Struct, frozen=True):
    reason: Note


class EscalationDecision(msgspec.Struct, frozen=True):
    outcome: EscalationOutcome
    decision: Note
    responsible_person: Annotated[str, msgspec.Meta(max_length=200)] = ""


class RuleFileUpload(msgspec.Struct, frozen=True):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=1_000_000)]
    agency_code: str | None = None


async def _view(context: ReviewContext, case_id: uuid.UUID, principal: Principal) -> ReviewView:
    calendar = await context.calendar()
    async with context.database.transaction() as session:
        return await services.review_view(
            session, calendar, case_id, principal, context.clock.today()
        )


def _agency(principal: Principal) -> uuid.UUID:
    if principal.agency_id is None:
        raise PermissionDenied("该账号不属于任何执法主体")
    return principal.agency_id


class ReviewController(Controller):
    path = "/api/review"
    tags = ["review"]

    @get("/queue", opt=allow(*STAFF), summary="Reviews of my agency: open, mine, overdue ...")
    async def queue(
        self,
        state: State,
        principal: NamedDependency[Principal],
        show: Annotated[services.Scope, QueryParameter(name="scope")] = "open",
    ) -> list[QueueItem]:
        context = context_of(state)
        calendar = await context.calendar()
        async with context.database.transaction() as session:
            return await services.queue(
                session,
                calendar,
                _agency(principal),
                scope=show,
                user_id=principal.user_id,
                today=context.clock.today(),
            )

    @get("/overdue", opt=allow(*STAFF), summary="Overdue reviews of my agency (report)")
    async def overdue(self, state: State, principal: NamedDependency[Principal]) -> OverdueReport:
        context = context_of(state)
        calendar = await context.calendar()
        async with context.database.transaction() as session:
            return await services.overdue_report(
                session, calendar, _agency(principal), context.clock.today()
            )

    @get(
        "/cases/{case_id:uuid}",
        opt=allow(*READERS),
        summary="A case's review record: routing, discretion check, rounds, escalations",
    )
    async def case(
        self, case_id: uuid.UUID, state: State, principal: NamedDependency[Principal]
    ) -> ReviewView:
        return await _view(context_of(state), case_id, principal)

    @get(
        "/cases/{case_id:uuid}/gate",
        opt=allow(*READERS),
        summary="May the case's decision be issued, printed as final, served or published?",
    )
    async def gate(
        self, case_id: uuid.UUID, state: State, principal: NamedDependency[Principal]
    ) -> GateStatus:
        async with context_of(state).database.transaction() as session:
            # The gate tells no more than the review record, so the same people may read it.
            await services.readable_record(session, case_id, principal)
            return await decision_gate(session, case_id)

    @post(
        "/cases/{case_id:uuid}/route",
        opt=allow(*HANDLERS),
        status_code=200,
        summary="Route the case's proposed decision again (after a new catalog or a new flag)",
    )
    async def route(
        self, case_id: uuid.UUID, state: State, principal: NamedDependency[Principal]
    ) -> ReviewView:
        context = context_of(state)
        async with context.database.transaction() as session:
            await services.reroute(
                session,
                await context.keyring(),
                wiring_of(state).case_files,
                case_id,
                principal,
                context.clock.now(),
            )
        return await _view(context, case_id, principal)

    @post(
        "/cases/{case_id:uuid}/submissions",
        opt=allow(*HANDLERS),
        status_code=201,
        summary="Submit (or resubmit) the case for review with its materials as they stand",
    )
    async def submit(
        self,
        case_id: uuid.UUID,
        data: JSONBody[SubmitRequest],
        state: State,
        principal: NamedDependency[Principal],
    ) -> ReviewView:
        context = context_of(state)
        calendar = await context.calendar()
        async with context.database.transaction() as session:
            await services.submit(
                session,
                await context.keyring(),
                calendar,
                wiring_of(state).case_files,
                case_id,
                principal,
                note=data.note,
                now=context.clock.now(),
            )
        return await _view(context, case_id, principal)

    @post(
        "/cases/{case_id:uuid}/take",
        opt=allow(Role.REVIEWER),
        status_code=200,
        summary="Take the case from the queue",
    )
    async def take(
        self, case_id: uuid.UUID, state: State, principal: NamedDependency[Principal]
    ) -> ReviewView:
        context = context_of(state)
        async with context.database.transaction() as session:
            await services.take(
                session, await context.keyring(), case_id, principal, context.clock.now()
            )
        return await _view(context, case_id, principal)

    @post(
        "/cases/{case_id:uuid}/assign",
        opt=allow(*STAFF),
        status_code=200,
        summary="Hand the case to a reviewer",
    )
    async def assign(
        self,
        case_id: uuid.UUID,
        data: JSONBody[AssignRequest],
        state: State,
        principal: NamedDependency[Principal],
    ) -> ReviewView:
        context = context_of(state)
        async with context.database.transaction() as session:
            await services.assign(
                session,
                await context.keyring(),
                case_id,
                principal,
                data.reviewer,
                context.clock.now(),
            )
        return await _view(context, case_id, principal)

    @put(
        "/cases/{case_id:uuid}/checklist",
        opt=allow(Role.REVIEWER),
        summary="Save checklist answers (a draft; the opinion needs every item)",
    )
    async def checklist(
        self,
        case_id: uuid.UUID,
        data: JSONBody[ChecklistRequest],
        state: State,
        principal: NamedDependency[Principal],
    ) -> ReviewView:
        context = context_of(state)
        async with context.database.transaction() as session:
            await services.save_checklist(
                session,
                await context.keyring(),
                case_id,
                principal,
                data.checklist,
                context.clock.now(),
            )
        return await _view(context, case_id, principal)

    @post(
        "/cases/{case_id:uuid}/opinion",
        opt=allow(Role.REVIEWER),
        status_code=200,
        summary="The written opinion: 同意, or 存在问题 with each problem",
    )
    async def opinion(
        self,
        case_id: uuid.UUID,
        data: JSONBody[OpinionRequest],
        state: State,
        principal: NamedDependency[Principal],
    ) -> ReviewView:
        context = context_of(state)
        async with context.database.transaction() as session:
            await services.give_opinion(
                session,
                await context.keyring(),
                case_id,
                principal,
                outcome=Outcome(data.outcome),
                opinion=data.opinion,
                problems=data.problems,
                checklist=data.checklist,
                now=context.clock.now(),
            )
        return await _view(context, case_id, principal)

    @post(
        "/cases/{case_id:uuid}/supplement",
        opt=allow(Role.REVIEWER),
        status_code=200,
        summary="Send the materials back as incomplete, with what to add and by when (补充材料)",
    )
    async def supplement(
        self,
        case_id: uuid.UUID,
        data: JSONBody[SupplementRequest],
        state: State,
        principal: NamedDependency[Principal],
    ) -> ReviewView:
        context = context_of(state)
        async with context.database.transaction() as session:
            await services.request_supplement(
                session,
                await context.keyring(),
                case_id,
                principal,
                request=data.request,
                due_on=data.due_on,
                now=context.clock.now(),
            )
        return await _view(context, case_id, principal)

    @post(
        "/cases/{case_id:uuid}/escalations",
        opt=allow(Role.OFFICER, Role.REVIEWER, Role.AGENCY_ADMIN),
        status_code=201,
        summary="Handler or reviewer asks the responsible person to decide (协调机制)",
    )
    async def escalate(
        self,
        case_id: uuid.UUID,
        data: JSONBody[EscalateRequest],
        state: State,
        principal: NamedDependency[Principal],
    ) -> ReviewView:
        context = context_of(state)
        async with context.database.transaction() as session:
            await services.escalate(
                session,
                await context.keyring(),
                case_id,
                principal,
                reason=data.reason,
                now=context.clock.now(),
            )
        return await _view(context, case_id, principal)

    @post(
        "/cases/{case_id:uuid}/escalations/decision",
        opt=allow(Role.AGENCY_ADMIN),
        status_code=200,
        summary="Record the responsible person's decision on an escalation",
    )
    async def decide(
        self,
        case_id: uuid.UUID,
        data: JSONBody[EscalationDecision],
        state: State,
        principal: NamedDependency[Principal],
    ) -> ReviewView:
        context = context_of(state)
        async with context.database.transaction() as session:
            await services.decide_escalation(
                session,
                await context.keyring(),
                case_id,
                principal,
                outcome=data.outcome,
                decision=data.decision,
                responsible_person=data.responsible_person,
                now=context.clock.now(),
            )
        return await _view(context, case_id, principal)

    @get(
        "/rule-files/{kind:str}",
        opt=allow(*RULE_LOADERS, Role.REVIEWER),
        summary="Versions of my agency's review catalog or discretion benchmarks",
    )
    async def rule_files(
        self,
        kind: Literal["catalog", "benchmarks"],
        state: State,
        principal: NamedDependency[Principal],
    ) -> list[rulefiles.FileInfo]:
        async with context_of(state).database.transaction() as session:
            return await rulefiles.versions(session, _agency(principal), kind)

    @post(
        "/rule-files/{kind:str}",
        opt=allow(*RULE_LOADERS),
        status_code=201,
        summary="Load a new version of the review catalog (目录清单) or discretion benchmarks (裁量基准)",
    )
    async def load_rule_file(
        self,
        kind: Literal["catalog", "benchmarks"],
        data: JSONBody[RuleFileUpload],
        state: State,
        principal: NamedDependency[Principal],
    ) -> rulefiles.FileInfo:
        context = context_of(state)
        async with context.database.transaction() as session:
            if data.agency_code:
                agency_id = (await accounts.agency_by_code(session, data.agency_code)).id
            else:
                agency_id = _agency(principal)
            return await services.load_rule_file(
                session,
                await context.keyring(),
                agency_id=agency_id,
                kind=kind,
                text=data.text,
                principal=principal,
                now=context.clock.now(),
            )
