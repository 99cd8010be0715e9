"""SQLAlchemy models of the central server. One Alembic history (server/app/migrations) creates them."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class ActKind(enum.StrEnum):
    """行政行为种类 of an enforcement item."""

    LICENSING = "行政许可"
    PENALTY = "行政处罚"
    COERCION = "行政强制"
    INSPECTION = "行政检查"
    LEVY = "行政征收"
    OTHER = "其他"


class CredentialStatus(enum.StrEnum):
    """执法证件状态. 过期 is derived from the expiry date, never stored."""

    VALID = "有效"
    SUSPENDED = "暂扣"
    CANCELLED = "注销"
    REVOKED = "吊销"


class Role(enum.StrEnum):
    OFFICER = "officer"
    REVIEWER = "reviewer"
    AGENCY_ADMIN = "agency_admin"
    SYSTEM_ADMIN = "system_admin"


class Agency(Base):
    """执法主体 / 执法机关."""

    __tablename__ = "agencies"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime]


class EnforcementCategory(Base):
    """执法类别 an agency works in; roster rows must name known ones."""

    __tablename__ = "enforcement_categories"
    __table_args__ = (UniqueConstraint("agency_id", "name"),)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))


class EnforcementItem(Base):
    """执法事项清单 entry: what the agency may do, in which category, on what legal basis."""

    __tablename__ = "enforcement_items"
    __table_args__ = (UniqueConstraint("agency_id", "code"),)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(100))
    kind: Mapped[ActKind] = mapped_column(Enum(ActKind, native_enum=False, length=20))
    legal_basis: Mapped[str] = mapped_column(Text)


class Officer(Base):
    """执法人员."""

    __tablename__ = "officers"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    unit: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    credential: Mapped[Credential] = relationship(back_populates="officer", uselist=False)


class Credential(Base):
    """执法证件: one per officer, identified by its 证号."""

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("agency_id", "status_index"),)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    officer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("officers.id"), unique=True)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"), index=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    categories: Mapped[list[str]]
    regions: Mapped[list[str]]
    issued_on: Mapped[dt.date] = mapped_column(Date)
    expires_on: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[CredentialStatus] = mapped_column(
        Enum(CredentialStatus, native_enum=False, length=10), default=CredentialStatus.VALID
    )
    status_reason: Mapped[str] = mapped_column(Text, default="")
    status_changed_at: Mapped[dt.datetime | None]
    # Position of this credential in the agency's signed status list (one bit each).
    status_index: Mapped[int] = mapped_column(Integer)
    photo: Mapped[bytes | None] = mapped_column(LargeBinary)
    photo_type: Mapped[str] = mapped_column(String(50), default="")
    officer: Mapped[Officer] = relationship(back_populates="credential")

    def effective_status(self, today: dt.date) -> str:
        """The status a party sees: 过期 once past the expiry date, else the stored one."""
        if self.status is CredentialStatus.VALID and today > self.expires_on:
            return "过期"
        return self.status.value


class StaffUser(Base):
    """Anyone who logs in: officers (on terminals), reviewers, admins."""

    __tablename__ = "staff_users"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agency_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agencies.id"), index=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]]
    # Set when the user is also an 执法人员; separation of duties looks at it.
    officer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("officers.id"), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime]


class Terminal(Base):
    """执法终端, enrolled once with its own Ed25519 key."""

    __tablename__ = "terminals"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    # RFC 7638 thumbprint of the device JWK: access tokens are bound to it (cnf.jkt).
    key_thumbprint: Mapped[str] = mapped_column(String(64), unique=True)
    enrolled_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


class EnrollmentCode(Base):
    __tablename__ = "enrollment_codes"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    terminal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("terminals.id"))


class RefreshToken(Base):
    """Opaque refresh tokens, stored hashed, rotated on every use."""

    __tablename__ = "refresh_tokens"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id"), index=True)
    terminal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("terminals.id"))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class SigningKey(Base):
    """Server Ed25519 keys. Kept in the database so every instance signs with the same key."""

    __tablename__ = "signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[dt.datetime]
    # A retired key signs nothing new but stays in JWKS so codes and tokens in flight verify.
    retired_at: Mapped[dt.datetime | None]


class LedgerEntry(Base):
    """One leaf of the append-only ledger (RFC 9162 Merkle tree)."""

    __tablename__ = "ledger_entries"
    # Leaf index in the tree; dense, starting at 0.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    ref: Mapped[str] = mapped_column(String(200), index=True)
    recorded_at: Mapped[dt.datetime]
    # The canonical bytes that were hashed, kept verbatim so verification needs nothing else.
    data: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    # Root of the tree of size seq + 1: lets the verifier name the first altered entry.
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LedgerState(Base):
    """The single row that serialises appends and holds the tree's right edge and signed head."""

    __tablename__ = "ledger_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    frontier: Mapped[list[str]]
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    signed_at: Mapped[dt.datetime]
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    kid: Mapped[str] = mapped_column(String(64))


class CalendarYear(Base):
    """An official year arrangement (国务院办公厅 holiday notice) loaded by an agency."""

    __tablename__ = "calendar_years"
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text, default="")
    loaded_at: Mapped[dt.datetime]
