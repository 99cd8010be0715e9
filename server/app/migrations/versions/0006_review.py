"""review: catalogs and benchmarks per agency, review records, rounds, escalations

Revision ID: 0006_review
Revises: 0001
Create Date: 2026-11-22 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_review"
down_revision = "0001"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def _fk(
    table: str, column: str, target: str, ondelete: str | None = None
) -> sa.ForeignKeyConstraint:
    referred = target.split(".")[0]
    return sa.ForeignKeyConstraint(
        [column], [target], name=op.f(f"fk_{table}_{column}_{referred}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "review_rule_files",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("loaded_at", Time, nullable=False),
        sa.Column("loaded_by", sa.Uuid(), nullable=True),
        _fk("review_rule_files", "agency_id", "agencies.id"),
        _fk("review_rule_files", "loaded_by", "staff_users.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_rule_files")),
        sa.UniqueConstraint(
            "agency_id", "kind", "version", name=op.f("uq_review_rule_files_agency_id_kind_version")
        ),
        sa.UniqueConstraint(
            "agency_id", "kind", "seq", name=op.f("uq_review_rule_files_agency_id_kind_seq")
        ),
    )
    op.create_index(
        op.f("ix_review_rule_files_agency_id"), "review_rule_files", ["agency_id"], unique=False
    )

    op.create_table(
        "review_cases",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("case_number", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("major", sa.Boolean(), nullable=False),
        sa.Column("matches", sa.JSON(), nullable=False),
        sa.Column("catalog_version", sa.String(length=64), nullable=False),
        sa.Column("benchmark", sa.JSON(), nullable=False),
        sa.Column("proposal", sa.JSON(), nullable=False),
        sa.Column("proposal_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("case_file", sa.JSON(), nullable=False),
        sa.Column("routed_at", Time, nullable=False),
        sa.Column("current_round", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Uuid(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("approved_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("approved_at", Time, nullable=True),
        sa.Column("updated_at", Time, nullable=False),
        _fk("review_cases", "agency_id", "agencies.id"),
        _fk("review_cases", "reviewer_id", "staff_users.id"),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_review_cases")),
    )
    op.create_index(op.f("ix_review_cases_due_on"), "review_cases", ["due_on"], unique=False)
    op.create_index(
        "ix_review_cases_agency_id_state", "review_cases", ["agency_id", "state"], unique=False
    )

    op.create_table(
        "review_rounds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("submitted_at", Time, nullable=False),
        sa.Column("submitted_by", sa.Uuid(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("materials", sa.JSON(), nullable=False),
        sa.Column("matches", sa.JSON(), nullable=False),
        sa.Column("benchmark", sa.JSON(), nullable=False),
        sa.Column("catalog_version", sa.String(length=64), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("due_fallback", sa.Boolean(), nullable=False),
        sa.Column("reviewer_id", sa.Uuid(), nullable=True),
        sa.Column("taken_at", Time, nullable=True),
        sa.Column("checklist", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("opinion", sa.Text(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("supplement_request", sa.Text(), nullable=False),
        sa.Column("supplement_due", sa.Date(), nullable=True),
        sa.Column("decided_at", Time, nullable=True),
        _fk("review_rounds", "case_id", "review_cases.case_id", ondelete="CASCADE"),
        _fk("review_rounds", "submitted_by", "staff_users.id"),
        _fk("review_rounds", "reviewer_id", "staff_users.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_rounds")),
        sa.UniqueConstraint("case_id", "number", name=op.f("uq_review_rounds_case_id_number")),
    )

    op.create_table(
        "review_escalations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("raised_by", sa.Uuid(), nullable=False),
        sa.Column("side", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raised_at", Time, nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("responsible_person", sa.String(length=200), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", Time, nullable=True),
        _fk("review_escalations", "case_id", "review_cases.case_id", ondelete="CASCADE"),
        _fk("review_escalations", "raised_by", "staff_users.id"),
        _fk("review_escalations", "recorded_by", "staff_users.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_escalations")),
    )
    op.create_index(
        op.f("ix_review_escalations_case_id"), "review_escalations", ["case_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("review_escalations")
    op.drop_table("review_rounds")
    op.drop_table("review_cases")
    op.drop_table("review_rule_files")
