"""credentials: 亮证 scans, status history, signed status lists, rate-limit windows

Revision ID: 0004_credentials
Revises: 0001
Create Date: 2026-11-22 00:42:50.870957
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_credentials"
down_revision = "0001"
branch_labels = None
depends_on = None

STATUS = ("VALID", "SUSPENDED", "CANCELLED", "REVOKED")


def _status(column: str) -> sa.Column:
    return sa.Column(
        column,
        sa.Enum(*STATUS, name="credentialstatus", native_enum=False, length=10),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "credential_rate_windows",
        sa.Column("client_key", sa.String(length=32), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "client_key", "window_start", name=op.f("pk_credential_rate_windows")
        ),
    )
    with op.batch_alter_table("credential_rate_windows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_credential_rate_windows_window_start"), ["window_start"], unique=False
        )

    op.create_table(
        "credential_status_lists",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("statuses", sa.LargeBinary(), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_credential_status_lists_agency_id_agencies"),
        ),
        sa.PrimaryKeyConstraint("agency_id", name=op.f("pk_credential_status_lists")),
    )
    op.create_table(
        "credential_scans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "VALID",
                "EXPIRED",
                "NOT_YET_VALID",
                "NOT_GENUINE",
                name="scanoutcome",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("credential_id", sa.Uuid(), nullable=True),
        sa.Column("code_issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client_family", sa.String(length=40), nullable=False),
        sa.Column("client_network", sa.String(length=50), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credentials.id"],
            name=op.f("fk_credential_scans_credential_id_credentials"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credential_scans")),
    )
    with op.batch_alter_table("credential_scans", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_credential_scans_credential_id"), ["credential_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_credential_scans_scanned_at"), ["scanned_at"], unique=False
        )

    op.create_table(
        "credential_status_changes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("credential_id", sa.Uuid(), nullable=False),
        _status("from_status"),
        _status("to_status"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.Uuid(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["changed_by"],
            ["staff_users.id"],
            name=op.f("fk_credential_status_changes_changed_by_staff_users"),
        ),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credentials.id"],
            name=op.f("fk_credential_status_changes_credential_id_credentials"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credential_status_changes")),
    )
    with op.batch_alter_table("credential_status_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_credential_status_changes_credential_id"),
            ["credential_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("credential_status_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credential_status_changes_credential_id"))
    op.drop_table("credential_status_changes")
    with op.batch_alter_table("credential_scans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credential_scans_scanned_at"))
        batch_op.drop_index(batch_op.f("ix_credential_scans_credential_id"))
    op.drop_table("credential_scans")
    op.drop_table("credential_status_lists")
    with op.batch_alter_table("credential_rate_windows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credential_rate_windows_window_start"))
    op.drop_table("credential_rate_windows")
