"""Tables of enforcement documents (issue 6): number counters and the blocks given to terminals,
agency templates with their versions, and the documents terminals registered. Created by
migration ``0005_documents``.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.core.models import Base, new_id


class DocumentNumberCounter(Base):
    """The next serial of an agency's year. Blocks are cut from it with one atomic UPDATE, so two
    server instances never hand out overlapping blocks."""

    __tablename__ = "document_number_counters"
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    next_serial: Mapped[int] = mapped_column(BigInteger)


class DocumentNumberBlock(Base):
    """Serials ``first``..``last`` given to one terminal (for the officer logged in on it)."""

    __tablename__ = "document_number_blocks"
    __table_args__ = (UniqueConstraint("agency_id", "year", "first"),)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    first: Mapped[int] = mapped_column(BigInteger)
    last: Mapped[int] = mapped_column(BigInteger)
    terminal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("terminals.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id"))
    issued_at: Mapped[dt.datetime]


class DocumentTemplate(Base):
    """One version of an agency's template (a document kind) or rules file (name ``rules``).

    The SHA-256 of ``body`` is what documents name; the packaged defaults serve agencies that
    stored none.
    """

    __tablename__ = "document_templates"
    __table_args__ = (
        UniqueConstraint("agency_id", "name", "version"),
        Index("ix_document_templates_lookup", "agency_id", "name", "sha256"),
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"))
    name: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id"))


class RegisteredDocument(Base):
    """A document a terminal generated, re-rendered and compared here, its hash in the ledger.

    ``facts`` are the canonical bytes the document was made from (personal data: never public).
    """

    __tablename__ = "registered_documents"
    __table_args__ = (UniqueConstraint("agency_id", "year", "serial"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the document id in the QR
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"), index=True)
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    number: Mapped[str] = mapped_column(String(100))
    year: Mapped[int] = mapped_column(Integer)
    serial: Mapped[int] = mapped_column(BigInteger)
    block_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("document_number_blocks.id"))
    terminal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("terminals.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id"))
    pdf_sha256: Mapped[str] = mapped_column(String(64))
    template_sha256: Mapped[str] = mapped_column(String(64))
    rules_sha256: Mapped[str] = mapped_column(String(64))
    facts: Mapped[bytes] = mapped_column(LargeBinary)
    issued_on: Mapped[dt.date] = mapped_column(Date)
    registered_at: Mapped[dt.datetime]
    ledger_seq: Mapped[int] = mapped_column(BigInteger)
