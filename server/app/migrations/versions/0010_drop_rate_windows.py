"""The public verification counts its rate limit in each instance's memory: the counter table goes.

Revision ID: 0010_drop_rate_windows
Revises: 0009_media_direct_uploads
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_drop_rate_windows"
down_revision = "0009_media_direct_uploads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("credential_rate_windows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credential_rate_windows_window_start"))
    op.drop_table("credential_rate_windows")


def downgrade() -> None:
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
