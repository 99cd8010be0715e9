"""Enforcement documents on the terminal (issue 6): generated offline from the case's facts,
numbered from the server's number blocks, registered with the server at the next sync, served
with the party's signature or by 留置送达.

Everything a document is made from is local: templates and rules as last synced (the packaged
defaults before that), the working-day calendar from the synced year files, the number from the
allocator whose state lives in the store (persisted before a number is used, so never reused).
After each sync the agent fetches the agency's templates, tops up its number blocks and registers
the documents made since; the server renders each again and refuses one that differs.

A final decision (``DECISION_KINDS``) of a major decision is neither generated nor served while
the review outcome last pulled says the review has not approved it (行政处罚法 第58条); the
server's gate refuses its registration and service anyway, and a registration it refuses for
that reason stays pending, with the reason, to be registered at a later sync once approved.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from edge_agent.cases import CaseRow, Desk
from edge_agent.client import EdgeError, ServerClient, ServerRefused
from edge_agent.credentials import Wallet
from edge_agent.session import Session
from edge_agent.store import Store
from edge_agent.sync import SyncReport
from mobile_api.contracts.calendar import WorkingDayCalendar, parse_year_file
from mobile_api.contracts.credential import CHINA_TZ
from mobile_api.contracts.documents import (
    DOCUMENT_KINDS,
    KIND_LABELS,
    AgencyRules,
    AllocatorState,
    DocumentError,
    DocumentFacts,
    NumberAllocator,
    NumberBlock,
    OfficerInfo,
    RenderedDocument,
    Template,
    canonical_facts,
    format_number,
    load_rules,
    load_templates,
    parse_rules,
    parse_template,
    render,
)
from mobile_api.contracts.documents.compose import compose
from mobile_api.contracts.documents.facts import DECISION_KINDS, Organisation, Person
from mobile_api.contracts.events import (
    RIGHTS_NOTICE,
    CaseOpened,
    DecisionProposed,
    InspectionRecorded,
    PartyIdentified,
    decode_event,
)
from mobile_api.contracts.sync import CalendarYearRef, CredentialRef, EnforcementItemRef

SCHEMA = """
CREATE TABLE IF NOT EXISTS document_files (
    name TEXT PRIMARY KEY,         -- a document kind, or 'rules'
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,           -- the document id in its QR
    case_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    number TEXT NOT NULL UNIQUE,
    year INTEGER NOT NULL,
    serial INTEGER NOT NULL,
    facts BLOB NOT NULL,           -- canonical facts, exactly what is registered
    sha256 TEXT NOT NULL,
    template_sha256 TEXT NOT NULL,
    rules_sha256 TEXT NOT NULL,
    renderer TEXT NOT NULL,
    public_base_url TEXT NOT NULL,
    pdf_path TEXT NOT NULL,
    text TEXT NOT NULL,
    hearing_right INTEGER NOT NULL,
    statement_days INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    registration TEXT NOT NULL CHECK (registration IN ('pending', 'registered', 'refused')),
    code TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    verify_url TEXT NOT NULL DEFAULT '',
    registered_at TEXT NOT NULL DEFAULT '',
    served_event TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS ix_documents_case ON documents (case_id)
"""
TEMPLATES_PATH = "/api/documents/templates"
BLOCKS_PATH = "/api/documents/number-blocks"
REGISTER_PATH = "/api/documents"
ALLOCATOR = "document_numbers"  # meta key of the allocator state
AGENCY_CODE = "agency_code"  # meta key, learnt with the templates
# Ask for a new block when fewer numbers than this are left for the year.
LOW_WATER = 10
BLOCK_SIZE = 50
REGISTRATION_LABELS = {"pending": "待登记", "registered": "已登记", "refused": "被拒绝"}
MAX_SIGNATURE_BYTES = 512 * 1024


class DocumentRefused(EdgeError):
    code = "document_refused"


class DocumentUnknown(EdgeError):
    code = "document_unknown"


class ReviewRequired(EdgeError):
    code = "review_required"  # the server's code for the same refusal


class _ServerFile(msgspec.Struct, frozen=True):
    name: str
    version: int
    sha256: str
    body: str


class _ServerFiles(msgspec.Struct, frozen=True):
    agency_code: str
    files: list[_ServerFile]


class _Registration(msgspec.Struct, frozen=True):
    document_id: str
    verify_url: str
    registered_at: dt.datetime


class DocumentRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    case_id: str
    kind: str
    title: str
    number: str
    sha256: str
    pdf_path: str
    created_at: str
    registration: str
    code: str
    message: str
    verify_url: str
    served_event: str


class Generated(msgspec.Struct, frozen=True, kw_only=True):
    document: DocumentRow
    text: str
    warnings: tuple[str, ...]


def china_today(now: dt.datetime) -> dt.date:
    return now.astimezone(CHINA_TZ).date()


class Papers:
    """The terminal's documents: sources, numbers, generation, registration and service."""

    def __init__(
        self,
        store: Store,
        session: Session,
        desk: Desk,
        wallet: Wallet,
        clock: Callable[[], dt.datetime],
        home: Path,
    ) -> None:
        self.store = store
        self.session = session
        self.desk = desk
        self.wallet = wallet
        self.clock = clock
        self.folder = home / "documents"
        with store.transaction() as db:
            db.executescript_in_transaction(SCHEMA)

    # --- sources ----------------------------------------------------------------------------------

    def template(self, kind: str) -> Template:
        row = self.store.one("SELECT body FROM document_files WHERE name = ?", (kind,))
        return parse_template(row["body"], kind) if row else load_templates()[kind]

    def rules(self) -> AgencyRules:
        row = self.store.one("SELECT body FROM document_files WHERE name = 'rules'")
        return parse_rules(row["body"]) if row else load_rules()

    def calendar(self) -> WorkingDayCalendar:
        rows = self.store.query("SELECT body FROM reference WHERE kind = 'calendar_year'")
        years = [msgspec.json.decode(r["body"], type=CalendarYearRef) for r in rows]
        return WorkingDayCalendar(parse_year_file(y.text) for y in years)

    def allocator(self) -> NumberAllocator:
        raw = self.store.meta(ALLOCATOR)
        state = msgspec.json.decode(raw, type=AllocatorState) if raw else AllocatorState()

        def persist(new: AllocatorState) -> None:
            with self.store.transaction() as db:
                db.set_meta(ALLOCATOR, msgspec.json.encode(new).decode())

        return NumberAllocator(state, persist)

    # --- after each sync --------------------------------------------------------------------------

    def refresh(self, report: SyncReport | None = None) -> None:
        notes = report.notes if report is not None else []
        try:
            self._fetch_sources(notes)
        except ServerRefused as exc:
            if exc.status >= 500:
                raise
            notes.append(f"文书模板或编号号段未更新：{exc.message}")
        notes.extend(self.register_pending())

    def _fetch_sources(self, notes: list[str]) -> None:
        files = msgspec.json.decode(
            self.session.call(lambda c, t: c.request("GET", TEMPLATES_PATH, token=t)),
            type=_ServerFiles,
        )
        with self.store.transaction() as db:
            db.set_meta(AGENCY_CODE, files.agency_code)
            for f in files.files:
                db.execute(
                    "INSERT INTO document_files (name, version, sha256, body) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET version = excluded.version, "
                    "sha256 = excluded.sha256, body = excluded.body",
                    (f.name, f.version, f.sha256, f.body),
                )
        year = china_today(self.clock()).year
        allocator = self.allocator()
        if allocator.remaining(year) < LOW_WATER:
            body = msgspec.json.encode({"year": year, "size": BLOCK_SIZE})
            raw = self.session.call(
                lambda c, t: c.request("POST", BLOCKS_PATH, token=t, content=body)
            )
            block = msgspec.json.decode(raw, type=NumberBlock)
            allocator.add_block(block)
            notes.append(f"领取文书编号号段 {block.year} 年 {block.first}–{block.last}")

    def register_pending(self) -> list[str]:
        """Register every document not yet registered; each outcome is stored and returned."""
        notes = []
        for row in self.store.query(
            "SELECT * FROM documents WHERE registration = 'pending' ORDER BY created_at"
        ):
            request = {
                "kind": row["kind"],
                "facts": msgspec.Raw(row["facts"]),
                "year": row["year"],
                "serial": row["serial"],
                "template_sha256": row["template_sha256"],
                "rules_sha256": row["rules_sha256"],
                "public_base_url": row["public_base_url"],
                "sha256": row["sha256"],
                "renderer": row["renderer"],
            }
            body = msgspec.json.encode(request)

            def send(client: ServerClient, token: str, body: bytes = body) -> bytes:
                return client.request("POST", REGISTER_PATH, token=token, content=body)

            try:
                registered = msgspec.json.decode(self.session.call(send), type=_Registration)
            except ServerRefused as exc:
                if exc.status >= 500:
                    raise
                if exc.code == ReviewRequired.code:
                    # Not final: registered again at every sync until review approves it.
                    with self.store.transaction() as db:
                        db.execute(
                            "UPDATE documents SET code = ?, message = ? WHERE id = ?",
                            (exc.code, exc.message, row["id"]),
                        )
                    notes.append(f"{row['title']} {row['number']} 暂不能登记：{exc.message}")
                    continue
                with self.store.transaction() as db:
                    db.execute(
                        "UPDATE documents SET registration = 'refused', code = ?, message = ? "
                        "WHERE id = ?",
                        (exc.code, exc.message, row["id"]),
                    )
                notes.append(f"{row['title']} {row['number']} 登记被拒绝：{exc.message}")
                continue
            with self.store.transaction() as db:
                db.execute(
                    "UPDATE documents SET registration = 'registered', code = '', message = '', "
                    "verify_url = ?, registered_at = ? WHERE id = ?",
                    (registered.verify_url, registered.registered_at.isoformat(), row["id"]),
                )
            notes.append(f"{row['title']} {row['number']} 已登记，核验地址 {registered.verify_url}")
        return notes

    def require_review(self, case_id: str, action: str) -> None:
        """Refuse a final decision that the review outcome last pulled blocks, saying why.

        Without an outcome (offline since the decision was proposed, or on-site handling) the
        server decides when the document is registered and served.
        """
        review = self.desk.review(case_id)
        if review is not None and not review.allowed:
            raise ReviewRequired(
                f"重大执法决定未经法制审核通过，不得{action}（{'；'.join(review.reasons)}）；"
                "审核通过后请联网同步再试"
            )

    # --- facts from the case ------------------------------------------------------------------

    def _events(self, case_id: str) -> list[Any]:
        rows = self.store.query(
            "SELECT body FROM events WHERE case_id = ? AND status != 'rejected' ORDER BY hlc",
            (case_id,),
        )
        return [decode_event(r["body"]) for r in rows]

    def _officer(self, number: str) -> OfficerInfo:
        row = self.store.one(
            "SELECT body FROM reference WHERE kind = 'credential' AND key = ?", (number,)
        )
        if row is None:
            raise DocumentRefused(f"本机的证件名册中没有证号 {number}，请先同步")
        ref = msgspec.json.decode(row["body"], type=CredentialRef)
        return OfficerInfo(name=ref.officer_name, credential_number=number)

    def case_facts(self, case: CaseRow) -> dict[str, Any]:
        """What the case itself says, as DocumentFacts fields (the officer adds the rest)."""
        values: dict[str, Any] = {
            "case_id": str(case.id),
            "case_title": case.title,
            "category": case.category,
            "officers": [msgspec.to_builtins(self._officer(n)) for n in case.officers],
        }
        item = self.store.one(
            "SELECT body FROM reference WHERE kind = 'enforcement_item' AND key = ?",
            (case.item_code,),
        )
        if item is not None:
            values["legal_basis"] = msgspec.json.decode(
                item["body"], type=EnforcementItemRef
            ).legal_basis
        findings = []
        for event in self._events(case.id):
            if isinstance(event, CaseOpened) and event.place:
                values["place"] = event.place
            elif isinstance(event, PartyIdentified):
                values["party"] = _party(event)
            elif isinstance(event, InspectionRecorded):
                findings.append(event.findings)
            elif isinstance(event, DecisionProposed):
                values["penalties"] = _penalties(event)
                if event.facts:
                    values["facts"] = event.facts
                if event.legal_basis:
                    values["legal_basis"] = event.legal_basis
        if findings and "facts" not in values:
            values["facts"] = "\n".join(findings)
        return values

    # --- generation ---------------------------------------------------------------------------

    def generate(self, kind: str, case_id: str, extra: dict[str, Any] | None = None) -> Generated:
        """Render ``kind`` for the case, offline. ``extra`` adds or replaces facts the case does
        not hold (grounds, remedies, payment, a proposed penalty …)."""
        if kind not in DOCUMENT_KINDS:
            raise DocumentRefused(
                f"未知的文书种类 {kind}，可用：{'、'.join(DOCUMENT_KINDS)}", code="kind_unknown"
            )
        case = self.desk.case(case_id)
        if kind in DECISION_KINDS:
            self.require_review(case.id, "打印正式决定书")
        agency_code = self.store.meta(AGENCY_CODE)
        if not agency_code:
            raise DocumentRefused("本终端尚未同步文书模板和执法机关信息，请联网同步一次")
        batch = self.wallet.batch()
        try:
            template, rules = self.template(kind), self.rules()
        except DocumentError as exc:
            raise DocumentRefused(exc.message, code=exc.code) from exc
        calendar = self.calendar()
        issued_on = china_today(self.clock())
        values = {
            **self.case_facts(case),
            "agency": {"code": agency_code, "name": batch.card.agency_name},
            "issued_on": issued_on.isoformat(),
            **(extra or {}),
        }
        if "party" not in values:
            raise DocumentRefused(
                "本案尚未确认当事人，请先记录当事人（party_identified）", code="party_missing"
            )
        allocator = self.allocator()
        if allocator.remaining(issued_on.year) < 1:
            raise DocumentRefused(
                f"本终端没有 {issued_on.year} 年可用的文书编号，请联网同步领取号段",
                code="numbers_exhausted",
            )
        # Check the facts before a number is spent on them (a number is never used twice).
        facts = self._facts({**values, "number": "待编号"})
        try:
            compose(kind, facts, template, rules, calendar)
            number = allocator.take(issued_on.year)
            printed = format_number(rules, template, number.year, number.serial)
            facts = msgspec.structs.replace(facts, number=printed)
            public_base_url = batch.verify_base_url.removesuffix("/v/")
            rendered = render(
                kind,
                facts,
                template=template,
                rules=rules,
                calendar=calendar,
                public_base_url=public_base_url,
            )
        except DocumentError as exc:
            raise DocumentRefused(exc.message, code=exc.code) from exc
        path = self._save(rendered)
        now = self.clock().isoformat()
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO documents (id, case_id, kind, title, number, year, serial, facts, "
                "sha256, template_sha256, rules_sha256, renderer, public_base_url, pdf_path, text, "
                "hearing_right, statement_days, created_at, registration) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
                (
                    rendered.document_id,
                    case.id,
                    kind,
                    rendered.title,
                    printed,
                    number.year,
                    number.serial,
                    canonical_facts(facts),
                    rendered.sha256,
                    rendered.template_sha256,
                    rendered.rules_sha256,
                    rendered.renderer,
                    public_base_url,
                    str(path),
                    rendered.text,
                    int(rendered.hearing.applies),
                    rules.statement_working_days,
                    now,
                ),
            )
        return Generated(
            document=self.document(rendered.document_id),
            text=rendered.text,
            warnings=rendered.warnings,
        )

    @staticmethod
    def _facts(values: dict[str, Any]) -> DocumentFacts:
        try:
            return msgspec.convert(values, DocumentFacts, strict=False)
        except msgspec.ValidationError as exc:
            raise DocumentRefused(f"文书内容不正确：{exc}", code="facts_invalid") from exc

    def _save(self, rendered: RenderedDocument) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{rendered.document_id}.pdf"
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(rendered.pdf)
        temporary.replace(path)
        return path

    # --- reading ------------------------------------------------------------------------------

    def document(self, ref: str) -> DocumentRow:
        """A document by its id or its printed number."""
        row = self.store.one("SELECT * FROM documents WHERE id = ? OR number = ?", (ref, ref))
        if row is None:
            raise DocumentUnknown(f"本机没有文书 {ref}")
        return msgspec.convert({k: row[k] for k in DocumentRow.__struct_fields__}, DocumentRow)

    def documents(self, case_id: str | None = None) -> list[DocumentRow]:
        where, params = ("WHERE case_id = ?", (case_id,)) if case_id else ("", ())
        rows = self.store.query(f"SELECT id FROM documents {where} ORDER BY created_at", params)
        return [self.document(r["id"]) for r in rows]

    # --- service ------------------------------------------------------------------------------

    def serve(
        self,
        ref: str,
        *,
        signature: bytes | None = None,
        refused: bool = False,
        witnesses: list[str] | None = None,
        recording_id: str = "",
        served_to: str = "",
    ) -> Any:
        """Record the service of a document as a case event: signed by the party (直接送达) or
        refused (留置送达, with witnesses and/or the recording that prove it)."""
        doc = self.document(ref)
        if doc.served_event:
            raise DocumentRefused(f"{doc.title} {doc.number} 已送达", code="already_served")
        if doc.kind in DECISION_KINDS:
            self.require_review(doc.case_id, "送达决定书")
        witnesses = [w for w in (witnesses or []) if w.strip()]
        if refused == (signature is not None):
            raise DocumentRefused("请提供当事人的签名图像，或注明当事人拒绝签收（留置送达）")
        if refused and not (witnesses or recording_id):
            raise DocumentRefused("留置送达须有见证人或送达过程的录音录像")
        if signature is not None and (
            not signature.startswith(b"\x89PNG\r\n\x1a\n") or len(signature) > MAX_SIGNATURE_BYTES
        ):
            raise DocumentRefused("签名图像须为不超过 512 KB 的 PNG 图片")
        row = self.store.one(
            "SELECT facts, hearing_right, statement_days FROM documents WHERE id = ?", (doc.id,)
        )
        assert row is not None
        facts = msgspec.json.decode(row["facts"], type=DocumentFacts)
        signature_sha256 = ""
        if signature is not None:
            signature_sha256 = hashlib.sha256(signature).hexdigest()
            (self.folder / f"{doc.id}-signature.png").write_bytes(signature)
        service = {
            "document_id": doc.id,
            "document_kind": doc.kind,
            "sha256": doc.sha256,
            "signature_sha256": signature_sha256,
            "refused": refused,
            "witnesses": witnesses,
            "recording_id": recording_id,
        }
        common = {
            "document_number": doc.number,
            "method": "留置送达" if refused else "直接送达",
            "served_to": served_to or facts.party.name,
            "service": service,
        }
        if doc.kind == "rights_notice":
            event = self.desk.record(
                doc.case_id,
                "notice_served",
                {
                    **common,
                    "notice": RIGHTS_NOTICE,
                    "facts": facts.facts,
                    "legal_basis": facts.legal_basis,
                    "proposed": _proposed(facts),
                    "statement_days": row["statement_days"],
                    "hearing_right": bool(row["hearing_right"]),
                },
            )
        else:
            event = self.desk.record(
                doc.case_id,
                "document_served",
                {**common, "document": doc.title, "party_present": not refused},
            )
        with self.store.transaction() as db:
            db.execute(
                "UPDATE documents SET served_event = ? WHERE id = ?", (str(event.id), doc.id)
            )
        return event


def _party(event: PartyIdentified) -> dict[str, Any]:
    # Same tags and names in events and facts; facts have no ``minor`` (never printed).
    cls = Person if event.party.__struct_config__.tag == "person" else Organisation
    raw = msgspec.to_builtins(event.party)
    return {k: v for k, v in raw.items() if k == "type" or k in cls.__struct_fields__}


def _penalties(event: DecisionProposed) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind in event.penalties:
        item: dict[str, Any] = {"kind": kind}
        if kind == "罚款":
            item["amount_yuan"] = str(event.fine_yuan)
        elif kind.startswith("没收"):
            item["amount_yuan"] = str(event.confiscation_yuan)
        out.append(item)
    return out


def _proposed(facts: DocumentFacts) -> str:
    return "；".join(
        p.kind + (f" {p.amount_yuan} 元" if p.amount_yuan is not None else "")
        for p in facts.penalties
    )


def kind_help() -> str:
    return "、".join(f"{k}（{KIND_LABELS[k]}）" for k in DOCUMENT_KINDS)


def facts_from_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentRefused(f"文书内容不是有效的 JSON：{exc}", code="facts_invalid") from exc
    if not isinstance(value, dict):
        raise DocumentRefused("文书内容应为 JSON 对象", code="facts_invalid")
    return value
