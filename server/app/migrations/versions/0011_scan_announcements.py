"""Scans of an officer with an open case wait here until their 亮证 event is written.

Revision ID: 0011_scan_announcements
Revises: 0010_drop_rate_windows
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_scan_announcements"
down_revision = "0010_drop_rate_windows"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credential_scan_announcements",
        sa.Column("scan_id", sa.Uuid(), nullable=False),
        sa.Column("code_nonce", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["credential_scans.id"],
            name=op.f("fk_credential_scan_announcements_scan_id_credential_scans"),
        ),
        sa.PrimaryKeyConstraint("scan_id", name=op.f("pk_credential_scan_announcements")),
    )


def downgrade() -> None:
    op.drop_table("credential_scan_announcements")
