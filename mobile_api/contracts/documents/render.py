"""The entry point: one document from its facts, template, rules and calendar → PDF bytes and text.

``render`` is pure: the same arguments (and the same fonts and reportlab version, named in
``RenderedDocument.renderer``) give the same bytes, on a terminal offline and on the server that
renders again to verify what a terminal registers.
"""

from __future__ import annotations

import base64
import hashlib

import msgspec

from mobile_api.contracts.calendar import WorkingDayCalendar
from mobile_api.contracts.documents.compose import Composed, Paragraph, Table, compose
from mobile_api.contracts.documents.facts import DocumentFacts, canonical_facts
from mobile_api.contracts.documents.pdf import Fonts, default_fonts, to_pdf
from mobile_api.contracts.documents.periods import Period
from mobile_api.contracts.documents.rules import AgencyRules, RuleOutcome
from mobile_api.contracts.documents.templates import Template

VERIFY_PATH = "/d/"


class RenderedDocument(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    title: str
    number: str
    document_id: str  # in the QR and the public page's address; derived from the inputs
    verify_url: str
    pdf: bytes
    sha256: str  # of ``pdf``: what the server registers in the ledger
    text: str  # the on-screen version
    periods: dict[str, Period]  # statement, hearing_request, payment, reconsideration, lawsuit …
    hearing: RuleOutcome  # whether the hearing right applies, and why
    simple: RuleOutcome | None  # for the on-the-spot decision: why the simple procedure is allowed
    warnings: tuple[str, ...]  # dates computed for a year the calendar does not know
    template_sha256: str
    rules_sha256: str
    renderer: str


def document_id(kind: str, facts: DocumentFacts, template: Template, rules: AgencyRules) -> str:
    """24 base32 characters from a SHA-256 of everything the document is made from: stable, and
    unguessable without the facts, so the public page cannot be walked through by number."""
    digest = hashlib.sha256(
        b"zhifa-document-v1\n"
        + f"{kind}\n{template.sha256}\n{rules.sha256}\n".encode()
        + canonical_facts(facts)
    ).digest()
    return base64.b32encode(digest[:15]).decode().lower()


def verify_url(public_base_url: str, doc_id: str) -> str:
    return f"{public_base_url.rstrip('/')}{VERIFY_PATH}{doc_id}"


def to_text(doc: Composed, url: str) -> str:
    """The on-screen version: the same words as the PDF, one paragraph per line."""
    out = [doc.agency, doc.title, doc.number, ""]
    for block in doc.blocks:
        if isinstance(block, Table):
            out.extend(f"{row.label}：{row.text}" for row in block.rows)
        elif isinstance(block, Paragraph):
            indent = "\u3000\u3000" if block.indent and block.align == "left" else ""
            out.append(indent + block.text)
    out.append("")
    if doc.officers:
        out.append(doc.officers)
    if doc.party_sign:
        out.append("当事人签收：＿＿＿＿＿＿＿＿＿　　日期：＿＿＿＿年＿＿月＿＿日")
    if doc.seal:
        out += [f"{doc.agency}（印章）", doc.date]
    if doc.footer:
        out.append(doc.footer)
    out.append(f"扫码或访问 {url} 核验真伪")
    return "\n".join(out) + "\n"


def render(
    kind: str,
    facts: DocumentFacts,
    *,
    template: Template,
    rules: AgencyRules,
    calendar: WorkingDayCalendar,
    public_base_url: str,
    fonts: Fonts | None = None,
) -> RenderedDocument:
    """Compose, check and lay out one document. Raises a ``DocumentError`` (Chinese message)
    when the facts are incomplete or the law does not allow this document for them."""
    doc = compose(kind, facts, template, rules, calendar)
    fonts = fonts or default_fonts()
    doc_id = document_id(kind, facts, template, rules)
    url = verify_url(public_base_url, doc_id)
    pdf = to_pdf(doc, url, doc_id, fonts)
    return RenderedDocument(
        kind=kind,
        title=doc.title,
        number=facts.number,
        document_id=doc_id,
        verify_url=url,
        pdf=pdf,
        sha256=hashlib.sha256(pdf).hexdigest(),
        text=to_text(doc, url),
        periods=doc.periods,
        hearing=doc.hearing,
        simple=doc.simple,
        warnings=doc.warnings,
        template_sha256=template.sha256,
        rules_sha256=rules.sha256,
        renderer=fonts.identity,
    )
