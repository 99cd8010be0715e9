"""documents: number counters and blocks, agency templates, registered documents

Revision ID: 0005_documents
Revises: 0001
Create Date: 2026-11-22 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_documents"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "document_number_counters",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("next_serial", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_document_number_counters_agency_id_agencies"),
        ),
        sa.PrimaryKeyConstraint("agency_id", "year", name=op.f("pk_document_number_counters")),
    )
    op.create_table(
        "document_number_blocks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("first", sa.BigInteger(), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.Column("terminal_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_document_number_blocks_agency_id_agencies"),
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.id"],
            name=op.f("fk_document_number_blocks_terminal_id_terminals"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["staff_users.id"],
            name=op.f("fk_document_number_blocks_user_id_staff_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_number_blocks")),
        sa.UniqueConstraint(
            "agency_id",
            "year",
            "first",
            name=op.f("uq_document_number_blocks_agency_id_year_first"),
        ),
    )
    with op.batch_alter_table("document_number_blocks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_document_number_blocks_agency_id"), ["agency_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_document_number_blocks_terminal_id"), ["terminal_id"], unique=False
        )

    op.create_table(
        "document_templates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_document_templates_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["staff_users.id"],
            name=op.f("fk_document_templates_created_by_staff_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_templates")),
        sa.UniqueConstraint(
            "agency_id",
            "name",
            "version",
            name=op.f("uq_document_templates_agency_id_name_version"),
        ),
    )
    with op.batch_alter_table("document_templates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_document_templates_lookup", ["agency_id", "name", "sha256"], unique=False
        )

    op.create_table(
        "registered_documents",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("number", sa.String(length=100), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("block_id", sa.Uuid(), nullable=False),
        sa.Column("terminal_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=False),
        sa.Column("template_sha256", sa.String(length=64), nullable=False),
        sa.Column("rules_sha256", sa.String(length=64), nullable=False),
        sa.Column("facts", sa.LargeBinary(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_registered_documents_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["block_id"],
            ["document_number_blocks.id"],
            name=op.f("fk_registered_documents_block_id_document_number_blocks"),
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.id"],
            name=op.f("fk_registered_documents_terminal_id_terminals"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["staff_users.id"],
            name=op.f("fk_registered_documents_user_id_staff_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registered_documents")),
        sa.UniqueConstraint(
            "agency_id",
            "year",
            "serial",
            name=op.f("uq_registered_documents_agency_id_year_serial"),
        ),
    )
    with op.batch_alter_table("registered_documents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registered_documents_agency_id"), ["agency_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_registered_documents_case_id"), ["case_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("registered_documents")
    op.drop_table("document_templates")
    op.drop_table("document_number_blocks")
    op.drop_table("document_number_counters")
