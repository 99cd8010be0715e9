"""Documents on the server: number blocks, templates per agency, registration and verification.

Registration trusts nothing the terminal computed: it renders the document again from the same
facts, template and rules (found here by their SHA-256) with the server's calendar, and accepts it
only when the bytes hash the same. The hash then goes to the ledger, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import uuid

from anyio import to_thread
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from mobile_api.contracts.calendar import WorkingDayCalendar
from mobile_api.contracts.documents import (
    DOCUMENT_KINDS,
    KIND_LABELS,
    AgencyRules,
    DocumentError,
    NumberBlock,
    RenderedDocument,
    Template,
    canonical_facts,
    document_id,
    format_number,
    parse_rules,
    parse_template,
    render,
    verify_url,
)
from mobile_api.contracts.documents.facts import DECISION_KINDS
from mobile_api.contracts.documents.rules import RULES_NAME, default_rules_text
from mobile_api.contracts.documents.templates import default_template_text
from mobile_api.document_models import (
    DocumentNumberBlock,
    DocumentNumberCounter,
    DocumentTemplate,
    RegisteredDocument,
)
from mobile_api.documents.errors import (
    DocumentMismatch,
    NumberNotIssued,
    NumberTaken,
    TemplateUnknown,
    TerminalRequired,
    refused,
)
from mobile_api.documents.schemas import (
    LedgerInclusion,
    RegisterRequest,
    Registration,
    TemplateFile,
    Verification,
)
from mobile_api.gates import CaseHooks, FinalDecisionPrinted
from mobile_api.web import AreaContext
from server.core import ledger
from server.core.auth import Principal
from server.core.errors import NotFound, PermissionDenied, ValidationFailed
from server.core.keys import KeyRing
from server.core.models import Agency, Credential, Role

DOCUMENT_ID = re.compile(r"[a-z2-7]{24}")

FILE_NAMES = (*DOCUMENT_KINDS, RULES_NAME)


def on_terminal(principal: Principal) -> tuple[uuid.UUID, uuid.UUID]:
    """(agency, terminal) of an officer logged in on an enrolled terminal."""
    if principal.terminal_id is None or principal.officer_id is None or principal.agency_id is None:
        raise TerminalRequired()
    return principal.agency_id, principal.terminal_id


# --- number blocks ------------------------------------------------------------------------------


async def issue_block(
    session: AsyncSession,
    keyring: KeyRing,
    principal: Principal,
    *,
    year: int,
    size: int,
    now: dt.datetime,
) -> NumberBlock:
    """Cut the next ``size`` serials of the agency's ``year`` for the caller's terminal.

    One atomic ``UPDATE … RETURNING`` moves the counter, so concurrent requests on any number of
    server instances get disjoint blocks; the block and its ledger entry commit with it.
    """
    agency_id, terminal_id = on_terminal(principal)
    agency = await session.get(Agency, agency_id)
    if agency is None:
        raise NotFound("执法主体不存在")
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(DocumentNumberCounter)
        .values(agency_id=agency_id, year=year, next_serial=1)
        .on_conflict_do_nothing()
    )
    after = await session.scalar(
        update(DocumentNumberCounter)
        .where(DocumentNumberCounter.agency_id == agency_id, DocumentNumberCounter.year == year)
        .values(next_serial=DocumentNumberCounter.next_serial + size)
        .returning(DocumentNumberCounter.next_serial)
    )
    assert after is not None
    row = DocumentNumberBlock(
        agency_id=agency_id,
        year=year,
        first=after - size,
        last=after - 1,
        terminal_id=terminal_id,
        user_id=principal.user_id,
        issued_at=now,
    )
    session.add(row)
    await session.flush()
    await ledger.append(
        session,
        keyring,
        kind="document.number_block",
        ref=f"agency:{agency.code}:numbers:{year}",
        data={
            "block": str(row.id),
            "year": year,
            "first": row.first,
            "last": row.last,
            "terminal": str(terminal_id),
        },
        now=now,
    )
    return NumberBlock(
        id=str(row.id), agency_code=agency.code, year=year, first=row.first, last=row.last
    )


# --- templates ----------------------------------------------------------------------------------


def check_agency(principal: Principal, agency: Agency) -> None:
    if Role.SYSTEM_ADMIN not in principal.roles and principal.agency_id != agency.id:
        raise PermissionDenied("只能查看和管理本执法主体的文书模板")


def check_file(name: str, body: str) -> None:
    """Refuse a template or rules file the terminals must not get (shared checks, 422)."""
    try:
        if name == RULES_NAME:
            parse_rules(body)
        else:
            parse_template(body, name)
    except DocumentError as exc:
        raise refused(exc) from exc


def _default(name: str) -> str:
    return default_rules_text() if name == RULES_NAME else default_template_text(name)


async def current_files(session: AsyncSession, agency_id: uuid.UUID) -> list[TemplateFile]:
    """The agency's latest version of each template and of its rules, or the packaged default."""
    rows = await session.scalars(
        select(DocumentTemplate)
        .where(DocumentTemplate.agency_id == agency_id)
        .order_by(DocumentTemplate.name, DocumentTemplate.version)
    )
    latest = {row.name: row for row in rows}
    out: list[TemplateFile] = []
    for name in FILE_NAMES:
        row = latest.get(name)
        if row is None:
            body = _default(name)
            out.append(TemplateFile(name=name, version=0, sha256=_sha(body), body=body))
        else:
            out.append(
                TemplateFile(name=name, version=row.version, sha256=row.sha256, body=row.body)
            )
    return out


def _sha(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


async def store_file(
    session: AsyncSession,
    keyring: KeyRing,
    principal: Principal,
    agency: Agency,
    name: str,
    body: str,
    now: dt.datetime,
) -> TemplateFile:
    """Store a new version of a template or rules file (checked first); an unchanged body is a no-op."""
    check_agency(principal, agency)
    check_file(name, body)
    digest = _sha(body)
    latest = await session.scalar(
        select(DocumentTemplate)
        .where(DocumentTemplate.agency_id == agency.id, DocumentTemplate.name == name)
        .order_by(DocumentTemplate.version.desc())
        .limit(1)
    )
    if latest is not None and latest.sha256 == digest:
        return TemplateFile(name=name, version=latest.version, sha256=digest, body=latest.body)
    version = (latest.version if latest else 0) + 1
    session.add(
        DocumentTemplate(
            agency_id=agency.id,
            name=name,
            version=version,
            body=body,
            sha256=digest,
            created_at=now,
            created_by=principal.user_id,
        )
    )
    await session.flush()
    await ledger.append(
        session,
        keyring,
        kind="document.template",
        ref=f"agency:{agency.code}:template:{name}",
        data={"name": name, "version": version, "sha256": digest},
        now=now,
    )
    return TemplateFile(name=name, version=version, sha256=digest, body=body)


async def _file_by_hash(session: AsyncSession, agency_id: uuid.UUID, name: str, digest: str) -> str:
    body = _default(name)
    if _sha(body) == digest:
        return body
    stored = await session.scalar(
        select(DocumentTemplate.body)
        .where(
            DocumentTemplate.agency_id == agency_id,
            DocumentTemplate.name == name,
            DocumentTemplate.sha256 == digest,
        )
        .limit(1)
    )
    if stored is None:
        what = "处罚规则" if name == RULES_NAME else f"「{KIND_LABELS[name]}」模板"
        raise TemplateUnknown(
            f"服务器上没有本机关该版本的{what}（{digest[:12]}…），请先同步", sha256=digest
        )
    return stored


# --- registration -------------------------------------------------------------------------------


class _Inputs:
    """What a registration is rendered from, gathered and checked before anything is written."""

    def __init__(
        self,
        agency: Agency,
        block: DocumentNumberBlock,
        template: Template,
        rules: AgencyRules,
        existing: RegisteredDocument | None,
    ) -> None:
        self.agency = agency
        self.block = block
        self.template = template
        self.rules = rules
        self.existing = existing


async def _gather(
    session: AsyncSession, principal: Principal, request: RegisterRequest, today: dt.date
) -> _Inputs:
    agency_id, terminal_id = on_terminal(principal)
    facts = request.facts
    agency = await session.get(Agency, agency_id)
    if agency is None:
        raise NotFound("执法主体不存在")
    if facts.agency.code != agency.code or facts.agency.name != agency.name:
        raise ValidationFailed(
            f"文书所载执法机关「{facts.agency.name}」与登录的执法机关「{agency.name}」不符",
            field="facts.agency",
        )
    number = await session.scalar(
        select(Credential.number).where(Credential.officer_id == principal.officer_id)
    )
    if number not in {o.credential_number for o in facts.officers}:
        raise ValidationFailed("文书所列执法人员中没有当前登录的执法人员", field="facts.officers")
    if facts.issued_on > today + dt.timedelta(days=1):
        raise ValidationFailed(f"文书日期 {facts.issued_on} 晚于今天", field="facts.issued_on")
    if request.year != facts.issued_on.year:
        raise ValidationFailed("文书编号的年度与文书日期的年度不一致", field="year")
    block = await session.scalar(
        select(DocumentNumberBlock).where(
            DocumentNumberBlock.agency_id == agency_id,
            DocumentNumberBlock.year == request.year,
            DocumentNumberBlock.first <= request.serial,
            DocumentNumberBlock.last >= request.serial,
        )
    )
    if block is None or block.terminal_id != terminal_id:
        raise NumberNotIssued(
            f"{request.year} 年序号 {request.serial} 不在本终端领取的号段内",
            year=request.year,
            serial=request.serial,
        )
    template = parse_template(
        await _file_by_hash(session, agency_id, request.kind, request.template_sha256),
        request.kind,
    )
    rules = parse_rules(await _file_by_hash(session, agency_id, RULES_NAME, request.rules_sha256))
    expected = format_number(rules, template, request.year, request.serial)
    if facts.number != expected:
        raise ValidationFailed(
            f"文书编号「{facts.number}」与号段序号应有的编号「{expected}」不符",
            field="facts.number",
            expected=expected,
        )
    existing = await session.scalar(
        select(RegisteredDocument).where(
            RegisteredDocument.agency_id == agency_id,
            RegisteredDocument.year == request.year,
            RegisteredDocument.serial == request.serial,
        )
    )
    return _Inputs(agency, block, template, rules, existing)


def _registration(row: RegisteredDocument, base_url: str) -> Registration:
    return Registration(
        document_id=row.id,
        number=row.number,
        sha256=row.pdf_sha256,
        verify_url=verify_url(base_url, row.id),
        ledger_seq=row.ledger_seq,
        registered_at=row.registered_at,
    )


async def register(
    context: AreaContext, hooks: CaseHooks, principal: Principal, request: RegisterRequest
) -> tuple[Registration, bool]:
    """Re-render, compare and record a document; ``True`` when it is new, ``False`` on a replay.

    A final decision (``DECISION_KINDS``) is recorded only if the injected print checks (legal
    review's issue gate) let it through, checked in the transaction that records it.
    """
    base_url = context.settings.resolved_public_base_url
    if request.public_base_url.rstrip("/") != base_url:
        raise ValidationFailed(
            f"文书二维码的核验地址 {request.public_base_url} 不是本系统的公开地址 {base_url}",
            field="public_base_url",
        )
    async with context.database.sessionmaker() as session:
        inputs = await _gather(session, principal, request, context.clock.today())
    doc_id = document_id(request.kind, request.facts, inputs.template, inputs.rules)
    if inputs.existing is not None:
        if inputs.existing.id == doc_id and inputs.existing.pdf_sha256 == request.sha256:
            return _registration(inputs.existing, base_url), False
        raise NumberTaken(
            f"文书编号「{inputs.existing.number}」已登记为另一份文书，编号不能重复使用",
            number=inputs.existing.number,
        )
    calendar = await context.calendar()
    rendered = await _render(request, inputs, calendar, base_url)
    if rendered.sha256 != request.sha256:
        why = (
            "（终端与服务器的字体或排版程序版本不同）"
            if request.renderer and request.renderer != rendered.renderer
            else "（文书内容或日期计算不同，例如节假日安排尚未同步）"
        )
        raise DocumentMismatch(
            f"服务器依同样的内容重新生成的文书与终端提交的不一致{why}",
            server_sha256=rendered.sha256,
            terminal_sha256=request.sha256,
            server_renderer=rendered.renderer,
            terminal_renderer=request.renderer,
        )
    now = context.clock.now()
    keyring = await context.keyring()
    async with context.database.transaction() as session:
        if request.kind in DECISION_KINDS:
            await hooks.check_printing(
                session,
                FinalDecisionPrinted(
                    case_id=request.facts.case_id,
                    agency_id=inputs.agency.id,
                    kind=request.kind,
                    number=request.facts.number,
                ),
            )
        entry = await ledger.append(
            session,
            keyring,
            kind="document.registered",
            ref=f"document:{doc_id}",
            data={
                "document": doc_id,
                "kind": request.kind,
                "number": request.facts.number,
                "agency": inputs.agency.code,
                "case": str(request.facts.case_id),
                "issued_on": request.facts.issued_on.isoformat(),
                "sha256": rendered.sha256,
                "template_sha256": inputs.template.sha256,
                "rules_sha256": inputs.rules.sha256,
            },
            now=now,
        )
        row = RegisteredDocument(
            id=doc_id,
            agency_id=inputs.agency.id,
            case_id=request.facts.case_id,
            kind=request.kind,
            number=request.facts.number,
            year=request.year,
            serial=request.serial,
            block_id=inputs.block.id,
            terminal_id=inputs.block.terminal_id,
            user_id=principal.user_id,
            pdf_sha256=rendered.sha256,
            template_sha256=inputs.template.sha256,
            rules_sha256=inputs.rules.sha256,
            facts=canonical_facts(request.facts),
            issued_on=request.facts.issued_on,
            registered_at=now,
            ledger_seq=entry.seq,
        )
        session.add(row)
    return _registration(row, base_url), True


async def _render(
    request: RegisterRequest, inputs: _Inputs, calendar: WorkingDayCalendar, base_url: str
) -> RenderedDocument:
    job = functools.partial(
        render,
        request.kind,
        request.facts,
        template=inputs.template,
        rules=inputs.rules,
        calendar=calendar,
        public_base_url=base_url,
    )
    try:
        return await to_thread.run_sync(job)
    except DocumentError as exc:
        raise refused(exc) from exc


# --- verification -------------------------------------------------------------------------------


async def verification(session: AsyncSession, doc_id: str) -> Verification:
    """The public answer for a document id: genuine (with its ledger inclusion) or not registered."""
    row = await session.get(RegisteredDocument, doc_id) if DOCUMENT_ID.fullmatch(doc_id) else None
    if row is None:
        return Verification(
            document_id=doc_id,
            status="not_registered",
            status_text="未找到该文书的登记记录：文书可能系伪造，或尚未联网登记。请向出具文书的执法机关核实。",
        )
    agency = await session.get(Agency, row.agency_id)
    head = await ledger.signed_head(session)
    proof = await ledger.inclusion_proof(session, row.ledger_seq, head.tree_size)
    return Verification(
        document_id=row.id,
        status="genuine",
        status_text="该文书已由执法机关登记，内容真实；请核对文书编号及下方 SHA-256 与您持有的文书一致。",
        kind=row.kind,
        title=KIND_LABELS[row.kind],
        number=row.number,
        agency=agency.name if agency else "",
        issued_on=row.issued_on,
        registered_at=row.registered_at,
        sha256=row.pdf_sha256,
        ledger=LedgerInclusion(
            seq=proof.seq,
            tree_size=proof.tree_size,
            root_hash=proof.root_hash,
            leaf_hash=proof.leaf_hash,
            proof=proof.proof,
            signed_at=head.signed_at,
            signature=head.signature,
            kid=head.kid,
        ),
    )
