"""Messages of the document endpoints (msgspec Structs)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from mobile_api.contracts.documents import DocumentFacts, DocumentKind

Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
TemplateName = Literal[
    "rights_notice",
    "onsite_decision",
    "hearing_notice",
    "penalty_decision",
    "service_receipt",
    "rules",
]
MAX_BLOCK = 500


class NumberBlockRequest(msgspec.Struct, frozen=True, kw_only=True):
    year: Annotated[int, msgspec.Meta(ge=2000, le=2999)]
    size: Annotated[int, msgspec.Meta(ge=1, le=MAX_BLOCK)] = 50


class RegisterRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A document the terminal generated: its inputs, the number it took and the PDF's hash."""

    kind: DocumentKind
    facts: DocumentFacts
    year: int
    serial: Annotated[int, msgspec.Meta(ge=1)]
    template_sha256: Sha256
    rules_sha256: Sha256
    public_base_url: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    sha256: Sha256  # of the PDF
    renderer: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class Registration(msgspec.Struct, frozen=True, kw_only=True):
    document_id: str
    number: str
    sha256: str
    verify_url: str
    ledger_seq: int
    registered_at: dt.datetime


class TemplateFile(msgspec.Struct, frozen=True, kw_only=True):
    """One template or rules file as terminals cache it (``version`` 0: the packaged default)."""

    name: str
    version: int
    sha256: str
    body: str


class TemplateSet(msgspec.Struct, frozen=True, kw_only=True):
    agency_code: str
    files: list[TemplateFile]


class TemplateUpload(msgspec.Struct, frozen=True, kw_only=True):
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=200_000)]


class LedgerInclusion(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    tree_size: int
    root_hash: str
    leaf_hash: str
    proof: list[str]
    signed_at: dt.datetime
    signature: str
    kid: str


class Verification(msgspec.Struct, frozen=True, kw_only=True):
    """What anyone may see about a document: no personal data."""

    document_id: str
    status: Literal["genuine", "not_registered"]
    status_text: str
    kind: str = ""
    title: str = ""
    number: str = ""
    agency: str = ""
    issued_on: dt.date | None = None
    registered_at: dt.datetime | None = None
    sha256: str = ""
    ledger: LedgerInclusion | None = None
