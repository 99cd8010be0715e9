"""The reviewer's web console (法制审核工作台): server-rendered Chinese pages.

Login puts a staff access token into an HttpOnly, SameSite=Strict cookie that only console routes
read (``server.app.security``). Every form carries a CSRF token derived from that session token,
checked by a guard before the handler runs; the login form uses a double-submit cookie.

Pages are built for a reviewer who does thirty cases a day: one page per case with everything on
it (materials, evidence players, discretion check, history) beside the checklist and opinion form,
keyboard shortcuts and access keys, no extra requests for styles or scripts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.handlers.base import BaseRouteHandler
from litestar.params import QueryParameter
from litestar.response import Redirect

from review import services
from review.schemas import (
    CHECKLIST,
    CheckAnswer,
    EscalationOutcome,
    Outcome,
    Problem,
    ReviewState,
)
from review.sources import wiring_of
from review.web import CONSOLE_COOKIE, ReviewContext, console_roles, context_of
from server.core import accounts
from server.core.auth import Principal
from server.core.console import console_templates, page_headers
from server.core.errors import (
    Conflict,
    NotAuthenticated,
    PermissionDenied,
    ValidationFailed,
    ZhifaError,
)
from server.core.keys import b64url
from server.core.models import Role, StaffUser
from server.core.roles import PUBLIC

# A working day: the reviewer logs in once in the morning.
CONSOLE_SESSION_SECONDS = 8 * 3600
LOGIN_CSRF_COOKIE = "zhifa_login_csrf"
CONSOLE_ROLES = (Role.REVIEWER, Role.AGENCY_ADMIN)
HOME = "/review"
MESSAGES = {
    "taken": "已领取，开始审核",
    "assigned": "已分派审核人员",
    "saved": "审核要点已保存",
    "approved": "已出具同意意见，审核通过",
    "returned": "已出具存在问题的审核意见，案件退回承办机构",
    "supplement": "已要求承办机构补充材料",
    "escalated": "已提请机关负责人协调",
    "decided": "已登记负责人的协调决定",
    "submitted": "已送审",
}
ACTIONS = {"save", "agree", "problems", "supplement"}


# --- rendering ------------------------------------------------------------------------------------


TEMPLATES = console_templates("review")


def render(template: str, *, status: int = 200, **values: Any) -> Response[str]:
    nonce = secrets.token_urlsafe(16)
    html = TEMPLATES.get_template(template).render(nonce=nonce, checklist=CHECKLIST, **values)
    return Response(
        html, status_code=status, media_type=MediaType.HTML, headers=page_headers(nonce)
    )


# --- session and CSRF -----------------------------------------------------------------------------


def csrf_token(session_token: str) -> str:
    """The CSRF token of a console session: only who can read the HttpOnly cookie can make it."""
    return b64url(hashlib.sha256(f"zhifa-console-csrf\n{session_token}".encode()).digest())


async def csrf_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if connection.scope.get("method") != "POST" or not isinstance(connection, Request):
        return
    form = await connection.form()
    sent = str(form.get("csrf", ""))
    if connection.url.path == "/console/login":
        expected = connection.cookies.get(LOGIN_CSRF_COOKIE, "")
    else:
        expected = csrf_token(connection.cookies.get(CONSOLE_COOKIE, ""))
    if not expected or not hmac.compare_digest(sent, expected):
        raise PermissionDenied("页面已过期或来源不明，请刷新页面后重试", reason="csrf")


def _login_url(path: str) -> str:
    return f"/console/login?next={quote(path)}"


def console_error(request: Request[Any, Any, Any], exc: ZhifaError) -> Response[Any]:
    """Console pages answer in HTML: to the login page when the session is missing or expired."""
    if isinstance(exc, NotAuthenticated):
        target = request.url.path if request.method == "GET" else HOME
        return Redirect(_login_url(target), status_code=303)
    return render("error.html", status=exc.status, title=exc.title, message=exc.message, user=None)


def _safe_next(target: str) -> str:
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith((HOME, "/console/cases")):
        return HOME
    return target


class ConsoleAuthController(Controller):
    path = "/console"
    include_in_schema = False
    guards = [csrf_guard]
    exception_handlers = {ZhifaError: console_error}

    def _login_page(
        self, *, status: int = 200, error: str = "", next_: str = HOME, username: str = ""
    ) -> Response[str]:
        token = secrets.token_urlsafe(24)
        response = render(
            "login.html",
            status=status,
            error=error,
            next=_safe_next(next_),
            username=username,
            csrf=token,
            user=None,
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE, token, path="/console/login", httponly=True, samesite="strict"
        )
        return response

    @get("/login", opt=PUBLIC)
    async def login_page(
        self, next_: Annotated[str, QueryParameter(name="next")] = ""
    ) -> Response[str]:
        return self._login_page(next_=next_ or HOME)

    @post("/login", opt=PUBLIC, status_code=200)
    async def login(self, request: Request[Any, Any, Any], state: State) -> Response[Any]:
        context = context_of(state)
        form = await request.form()
        username = str(form.get("username", "")).strip()
        target = _safe_next(str(form.get("next", HOME)))
        try:
            async with context.database.transaction() as session:
                now = context.clock.now()
                # A console session lives a working day; the refresh token is not needed.
                pair = await accounts.staff_login(
                    session,
                    await context.keyring(),
                    msgspec.structs.replace(
                        context.settings, access_token_ttl_seconds=CONSOLE_SESSION_SECONDS
                    ),
                    username,
                    str(form.get("password", "")),
                    now,
                )
                await accounts.revoke_refresh_token(session, pair.refresh_token, now)
            if not set(CONSOLE_ROLES) & set(pair.roles):
                raise PermissionDenied("该账号不能使用法制审核工作台")
        except (NotAuthenticated, PermissionDenied) as exc:
            return self._login_page(
                status=exc.status, error=exc.message, next_=target, username=username
            )
        response: Response[Any] = Redirect(target, status_code=303)
        response.set_cookie(
            CONSOLE_COOKIE,
            pair.access_token,
            max_age=CONSOLE_SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
        return response

    @post("/logout", opt=console_roles(*CONSOLE_ROLES), status_code=200)
    async def logout(self) -> Response[Any]:
        response: Response[Any] = Redirect("/console/login", status_code=303)
        response.delete_cookie(CONSOLE_COOKIE)
        return response


# --- the console pages ----------------------------------------------------------------------------


class Viewer(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    name: str
    roles: frozenset[str]
    csrf: str

    @property
    def is_admin(self) -> bool:
        return Role.AGENCY_ADMIN in self.roles

    @property
    def is_reviewer(self) -> bool:
        return Role.REVIEWER in self.roles


async def _viewer(
    context: ReviewContext, request: Request[Any, Any, Any], principal: Principal
) -> Viewer:
    async with context.database.sessionmaker() as session:
        user = await session.get(StaffUser, principal.user_id)
    if user is None or not user.active:
        raise NotAuthenticated("该账号不存在或已停用")
    return Viewer(
        id=user.id,
        name=user.display_name,
        roles=frozenset(user.roles),
        csrf=csrf_token(request.cookies.get(CONSOLE_COOKIE, "")),
    )


def _back(case_id: uuid.UUID, message: str) -> Redirect:
    return Redirect(f"{HOME}/cases/{case_id}?msg={message}#top", status_code=303)


def _form_answers(form: Any) -> tuple[dict[str, CheckAnswer], list[Problem]]:
    """Checklist answers and the problems they name, from the console form."""
    answers: dict[str, CheckAnswer] = {}
    problems: list[Problem] = []
    for item in CHECKLIST:
        answer = str(form.get(f"answer_{item.key}", ""))
        note = str(form.get(f"note_{item.key}", "")).strip()
        if answer:
            answers[item.key] = CheckAnswer(answer=answer, note=note)
        if answer == item.fail_answer and note:
            problems.append(Problem(item=item.key, text=note))
    for line in str(form.get("other_problems", "")).splitlines():
        if line.strip():
            problems.append(Problem(item="", text=line.strip()))
    return answers, problems


def _parse_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed("请填写补充材料的期限（年-月-日）", field="supplement_due") from None


class ConsoleController(Controller):
    path = HOME
    include_in_schema = False
    guards = [csrf_guard]
    exception_handlers = {ZhifaError: console_error}

    @get("/", opt=console_roles(*CONSOLE_ROLES))
    async def queue(
        self,
        request: Request[Any, Any, Any],
        state: State,
        principal: NamedDependency[Principal],
        show: Annotated[services.Scope, QueryParameter(name="scope")] = "open",
    ) -> Response[str]:
        context = context_of(state)
        viewer = await _viewer(context, request, principal)
        if principal.agency_id is None:
            raise PermissionDenied("该账号不属于任何执法主体")
        calendar = await context.calendar()
        today = context.clock.today()
        async with context.database.transaction() as session:
            items = await services.queue(
                session, calendar, principal.agency_id, scope=show, user_id=viewer.id, today=today
            )
            counts = await services.queue_counts(
                session, principal.agency_id, user_id=viewer.id, today=today
            )
        return render(
            "queue.html", user=viewer, items=items, scope=show, counts=counts, today=today
        )

    @get("/overdue", opt=console_roles(*CONSOLE_ROLES))
    async def overdue(
        self, request: Request[Any, Any, Any], state: State, principal: NamedDependency[Principal]
    ) -> Response[str]:
        context = context_of(state)
        viewer = await _viewer(context, request, principal)
        if principal.agency_id is None:
            raise PermissionDenied("该账号不属于任何执法主体")
        calendar = await context.calendar()
        async with context.database.transaction() as session:
            report = await services.overdue_report(
                session, calendar, principal.agency_id, context.clock.today()
            )
        return render("overdue.html", user=viewer, report=report)

    async def _case_page(
        self,
        state: State,
        request: Request[Any, Any, Any],
        principal: Principal,
        case_id: uuid.UUID,
        *,
        shown_round: int | None = None,
        message: str = "",
        error: str = "",
        form: dict[str, str] | None = None,
        status: int = 200,
    ) -> Response[str]:
        context = context_of(state)
        viewer = await _viewer(context, request, principal)
        calendar = await context.calendar()
        async with context.database.transaction() as session:
            view = await services.review_view(
                session, calendar, case_id, principal, context.clock.today()
            )
            number = shown_round or (view.rounds[-1].number if view.rounds else 0)
            materials = (
                await services.round_materials(session, case_id, number)
                if number
                else await wiring_of(state).case_files.case_file(session, case_id)
            )
            reviewers = (
                await services.eligible_reviewers(session, case_id)
                if viewer.is_admin and view.state in services.OPEN_STATES
                else []
            )
        current = view.rounds[-1] if view.rounds else None
        mine = view.reviewer_id == viewer.id
        saved = current.checklist if current else {}
        values = form or {
            **{f"answer_{k}": a.answer for k, a in saved.items()},
            **{f"note_{k}": a.note for k, a in saved.items()},
        }
        return render(
            "case.html",
            status=status,
            user=viewer,
            view=view,
            case=materials,
            shown_round=number,
            current=current,
            reviewing=mine and view.state == ReviewState.IN_REVIEW,
            can_take=viewer.is_reviewer and view.state == ReviewState.QUEUED,
            can_escalate=view.state == ReviewState.RETURNED and (mine or viewer.is_admin),
            can_decide=viewer.is_admin and view.state == ReviewState.ESCALATED,
            can_submit=viewer.is_admin and view.state in services.WITH_HANDLER,
            reviewers=reviewers,
            values=values,
            message=MESSAGES.get(message, ""),
            error=error,
            min_supplement_due=(context.clock.today() + dt.timedelta(days=1)).isoformat(),
            escalation_outcomes=list(EscalationOutcome),
        )

    @get("/cases/{case_id:uuid}", opt=console_roles(*CONSOLE_ROLES, Role.SYSTEM_ADMIN))
    async def case(
        self,
        case_id: uuid.UUID,
        request: Request[Any, Any, Any],
        state: State,
        principal: NamedDependency[Principal],
        round_: Annotated[int | None, QueryParameter(name="round", ge=1)] = None,
        msg: str = "",
    ) -> Response[str]:
        return await self._case_page(
            state, request, principal, case_id, shown_round=round_, message=msg
        )

    async def _act(
        self,
        state: State,
        request: Request[Any, Any, Any],
        principal: Principal,
        case_id: uuid.UUID,
        work: Any,
        done: str,
    ) -> Response[Any]:
        """Run one action; on a refusal show the case again with the message and what was typed."""
        context = context_of(state)
        form = {key: str(value) for key, value in (await request.form()).items()}
        try:
            async with context.database.transaction() as session:
                await work(session, await context.keyring(), context.clock.now(), form)
        except (ValidationFailed, Conflict, PermissionDenied) as exc:
            return await self._case_page(
                state, request, principal, case_id, error=exc.message, form=form, status=exc.status
            )
        return _back(case_id, done)

    @post("/cases/{case_id:uuid}/take", opt=console_roles(Role.REVIEWER), status_code=200)
    async def take(
        self,
        case_id: uuid.UUID,
        request: Request[Any, Any, Any],
        state: State,
        principal: NamedDependency[Principal],
    ) -> Response[Any]:
        async def work(session: Any, keyring: Any, now: dt.datetime, _: dict[str, str]) -> None:
            await services.take(session, keyring, case_id, principal, now)

        return await self._act(state, request, principal, case_id, work, "taken")

    @post("/cases/{case_id:uuid}/assign", opt=console_roles(Role.AGENCY_ADMIN), status_code=200)
    async def assign(
        self,
        case_id: uuid.UUID,
        request: Request[Any, Any, Any],
        state: State,
        principal: NamedDependency[Principal],
    ) -> Response[Any]:
        async def work(session: Any, keyring: Any, now: dt.datetime, form: dict[str, str]) -> None:
            await services.assign(
                session, keyring, case_id, principal, form.get("reviewer", ""), now
            )

        return await self._act(state, request, principal, case_id, work, "assigned")

    @post("/cases/{case_id:uuid}/review", opt=console_roles(Role.REVIEWER), status_code=200)
    async def review(
        self,
        case_id: uuid.UUID,
        request: Request[Any, Any, Any],
        state: State,
        principal: NamedDependency[Principal],
    ) -> Response[Any]:
        """The one review form: save the checklist, agree, return with problems, or ask for more."""
        form = await request.form()
        action = str(form.get("action", ""))
        if action not in ACTIONS:
            raise ValidationFailed("未知的操作", field="action")

        async def work(
            session: Any, keyring: Any, now: dt.datetime, values: dict[str, str]
        ) -> None:
            answers, problems = _form_answers(values)
            if action == "save":
                await services.save_checklist(session, keyring, case_id, principal, answers, now)
            elif action == "supplement":
                await services.request_supplement(
                    session,
                    keyring,
                    case_id,
                    principal,
                    request=values.get("supplement_request", ""),
                    due_on=_parse_date(values.get("supplement_due", "")),
                    now=now,
                )
            else:
                await services.give_opinion(
                    session,
                    keyring,
                    case_id,
                    principal,
                    outcome=Outcome.AGREE if action == "agree" else Outcome.PROBLEMS,
                    opinion=values.get("opinion", ""),
                    problems=problems,
                    checklist=answers,
                    now=now,
                )

        done = {"save": "saved", "agree": "approved", "problems": "returned"}.get(action, action)
        return await self._act(state, request, principal, case_id, work, done)

    @post(
        "/cases/{case_id:uuid}/escalate",
        opt=console_roles(Role.REVIEWER, Role.AGENCY_ADMIN),
        status_code=200,
    )
    async def escalate(
        self,
        case_id: uuid.UUID,
        request: Request[Any, Any, Any],
        state: State,
        principal: NamedDependency[Principal],
    ) -> Response[Any]:
        async def work(session: Any, keyring: Any, now: dt.datetime, form: dict[str, str]) -> None:
            await services.escalate(
                session, keyring, case_id, principal, reason=form.get("reason", ""), now=now
            )

        return await self._act(state, request, principal, case_id, work, "escalated")

    @post("/cases/{case_id:uuid}/decide", opt=console_roles(Role.AGENCY_ADMIN), status_code=200)
    async def decide(
        self,
        case_id: uuid.UUID,
        request: Request[Any, Any, Any],
        state: State,
        principal: NamedDependency[Principal],
    ) -> Response[Any]:
        async def work(session: Any, keyring: Any, now: dt.datetime, form: dict[str, str]) -> None:
            try:
                outcome = EscalationOutcome(form.get("outcome", ""))
            except ValueError:
                raise ValidationFailed("请选择协调决定", field="outcome") from None
            await services.decide_escalation(
                session,
                keyring,
                case_id,
                principal,
                outcome=outcome,
                decision=form.get("decision", ""),
                responsible_person=form.get("responsible_person", ""),
                now=now,
            )

        return await self._act(state, request, principal, case_id, work, "decided")

    @post("/cases/{case_id:uuid}/submit", opt=console_roles(Role.AGENCY_ADMIN), status_code=200)
    async def submit(
        self,
        case_id: uuid.UUID,
        request: Request[Any, Any, Any],
        state: State,
        principal: NamedDependency[Principal],
    ) -> Response[Any]:
        calendar = await context_of(state).calendar()

        async def work(session: Any, keyring: Any, now: dt.datetime, form: dict[str, str]) -> None:
            await services.submit(
                session,
                keyring,
                calendar,
                wiring_of(state).case_files,
                case_id,
                principal,
                note=form.get("note", ""),
                now=now,
            )

        return await self._act(state, request, principal, case_id, work, "submitted")

    @get(
        "/cases/{case_id:uuid}/evidence/{evidence_id:str}",
        opt=console_roles(*CONSOLE_ROLES, Role.SYSTEM_ADMIN),
    )
    async def evidence(
        self,
        case_id: uuid.UUID,
        evidence_id: str,
        state: State,
        principal: NamedDependency[Principal],
    ) -> Redirect:
        """Each view is written to the ledger before the player gets the file's address."""
        context = context_of(state)
        async with context.database.transaction() as session:
            url = await services.view_evidence(
                session,
                await context.keyring(),
                wiring_of(state).case_files,
                case_id,
                evidence_id,
                principal,
                context.clock.now(),
            )
        return Redirect(url, status_code=303)
