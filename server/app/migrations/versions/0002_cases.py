"""cases: pushed case events (idempotent by id), assembled cases, procedure rules, resync orders

Revision ID: 0002_cases
Revises: 0001
Create Date: 2026-11-22 00:45:18.395841
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_cases"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_rule_sets",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_case_rule_sets_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("agency_id", name=op.f("pk_case_rule_sets")),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("procedure", sa.String(length=20), nullable=False),
        sa.Column("item_code", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("region", sa.String(length=200), nullable=False),
        sa.Column("act_kind", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_due", sa.Date(), nullable=True),
        sa.Column("file", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_cases_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_next_due"), ["next_due"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_state"), ["state"], unique=False)

    op.create_table(
        "case_officers",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("credential_number", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_case_officers_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("case_id", "credential_number", name=op.f("pk_case_officers")),
    )
    with op.batch_alter_table("case_officers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_case_officers_credential_number"), ["credential_number"], unique=False
        )

    op.create_table(
        "case_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("terminal_id", sa.Uuid(), nullable=False),
        sa.Column("pushed_by", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("hlc", sa.String(length=64), nullable=False),
        sa.Column("terminal_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_case_events_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["pushed_by"], ["staff_users.id"], name=op.f("fk_case_events_pushed_by_staff_users")
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.id"], name=op.f("fk_case_events_terminal_id_terminals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_events")),
    )
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.create_index("ix_case_events_case_id_hlc", ["case_id", "hlc"], unique=False)

    op.create_table(
        "resync_orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("terminal_id", sa.Uuid(), nullable=False),
        sa.Column("ordered_by", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ordered_by"], ["staff_users.id"], name=op.f("fk_resync_orders_ordered_by_staff_users")
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.id"], name=op.f("fk_resync_orders_terminal_id_terminals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resync_orders")),
    )
    with op.batch_alter_table("resync_orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_resync_orders_terminal_id"), ["terminal_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("resync_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resync_orders_terminal_id"))

    op.drop_table("resync_orders")
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_index("ix_case_events_case_id_hlc")

    op.drop_table("case_events")
    with op.batch_alter_table("case_officers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_officers_credential_number"))

    op.drop_table("case_officers")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_state"))
        batch_op.drop_index(batch_op.f("ix_cases_next_due"))
        batch_op.drop_index(batch_op.f("ix_cases_agency_id"))

    op.drop_table("cases")
    op.drop_table("case_rule_sets")
