"""disclosure: decisions to publish, public records with word search, annual reports, job leases

Revision ID: 0007_disclosure
Revises: 0001
Create Date: 2026-11-22 02:10:00.000000

Word search finds substrings of Chinese text: on SQLite an FTS5 index with the trigram tokenizer
(external content, kept in step by triggers), on PostgreSQL a pg_trgm GIN index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_disclosure"
down_revision = "0001"
branch_labels = None
depends_on = None

RecordId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE disclosure_records_fts USING fts5("
    "search_text, content='disclosure_records', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER disclosure_records_fts_insert AFTER INSERT ON disclosure_records BEGIN "
    "INSERT INTO disclosure_records_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER disclosure_records_fts_delete AFTER DELETE ON disclosure_records BEGIN "
    "INSERT INTO disclosure_records_fts(disclosure_records_fts, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER disclosure_records_fts_update AFTER UPDATE OF search_text "
    "ON disclosure_records BEGIN "
    "INSERT INTO disclosure_records_fts(disclosure_records_fts, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO disclosure_records_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
]


def upgrade() -> None:
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_at", Time, nullable=False),
        sa.Column("last_started_at", Time, nullable=True),
        sa.Column("last_finished_at", Time, nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_leases")),
    )
    op.create_table(
        "disclosure_settings",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("publish_lag_working_days", sa.Integer(), nullable=False),
        sa.Column("report_due_month", sa.Integer(), nullable=False),
        sa.Column("report_due_day", sa.Integer(), nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_disclosure_settings_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agency_id", name=op.f("pk_disclosure_settings")),
    )
    op.create_table(
        "disclosure_annual_reports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("statistics", sa.JSON(), nullable=False),
        sa.Column("published_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_disclosure_annual_reports_agency_id_agencies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosure_annual_reports")),
        sa.UniqueConstraint(
            "agency_id", "year", name=op.f("uq_disclosure_annual_reports_agency_id_year")
        ),
    )
    op.create_table(
        "disclosure_decisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("decision_number", sa.String(length=100), nullable=False),
        sa.Column("decision_date", sa.Date(), nullable=False),
        sa.Column("served_on", sa.Date(), nullable=True),
        sa.Column(
            "act_kind",
            sa.Enum(
                "LICENSING",
                "PENALTY",
                "COERCION",
                "INSPECTION",
                "LEVY",
                "OTHER",
                name="actkind",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=50), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("public_text", sa.JSON(), nullable=True),
        sa.Column("legal_review", sa.Boolean(), nullable=False),
        sa.Column("hearing", sa.Boolean(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "SCHEDULED",
                "HELD",
                "PUBLISHED",
                "WITHDRAWN",
                "EXCLUDED",
                "CANCELLED",
                name="decisionstate",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("due_fallback", sa.Boolean(), nullable=False),
        sa.Column("publish_on", sa.Date(), nullable=False),
        sa.Column(
            "hold_cause",
            sa.Enum("REVIEW", "SCANNER", name="holdcause", native_enum=False, length=20),
            nullable=True,
        ),
        sa.Column("hold_reason", sa.Text(), nullable=False),
        sa.Column("held_at", Time, nullable=True),
        sa.Column("overdue_flagged_at", Time, nullable=True),
        sa.Column("exclusion_kind", sa.String(length=50), nullable=False),
        sa.Column("exclusion_reason", sa.Text(), nullable=False),
        sa.Column("published_at", Time, nullable=True),
        sa.Column("change_kind", sa.String(length=20), nullable=False),
        sa.Column("change_via", sa.String(length=20), nullable=False),
        sa.Column("change_reason", sa.Text(), nullable=False),
        sa.Column("changed_on", sa.Date(), nullable=True),
        sa.Column("withdraw_due_on", sa.Date(), nullable=True),
        sa.Column("withdraw_due_fallback", sa.Boolean(), nullable=False),
        sa.Column("withdrawn_at", Time, nullable=True),
        sa.Column("received_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_disclosure_decisions_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosure_decisions")),
        sa.UniqueConstraint(
            "agency_id",
            "decision_number",
            name=op.f("uq_disclosure_decisions_agency_id_decision_number"),
        ),
    )
    with op.batch_alter_table("disclosure_decisions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_disclosure_decisions_agency_id_state", ["agency_id", "state"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_disclosure_decisions_case_id"), ["case_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_disclosure_decisions_decision_date"), ["decision_date"], unique=False
        )
        batch_op.create_index(
            "ix_disclosure_decisions_state_publish_on", ["state", "publish_on"], unique=False
        )

    op.create_table(
        "disclosure_records",
        sa.Column("id", RecordId, autoincrement=False, nullable=False),
        sa.Column("decision_id", sa.Uuid(), nullable=True),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("agency_code", sa.String(length=64), nullable=False),
        sa.Column("agency_name", sa.String(length=200), nullable=False),
        sa.Column("decision_number", sa.String(length=100), nullable=False),
        sa.Column("decision_date", sa.Date(), nullable=False),
        sa.Column("act_kind", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("subject_type", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("credit_code", sa.String(length=18), nullable=False),
        sa.Column("conclusion", sa.Text(), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("published_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("withdrawn_at", Time, nullable=True),
        sa.Column("withdrawn_on", sa.Date(), nullable=True),
        sa.Column("withdrawal_kind", sa.String(length=20), nullable=False),
        sa.Column("withdrawal_reason", sa.Text(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_disclosure_records_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["disclosure_decisions.id"],
            name=op.f("fk_disclosure_records_decision_id_disclosure_decisions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosure_records")),
        sa.UniqueConstraint("decision_id", name=op.f("uq_disclosure_records_decision_id")),
    )
    with op.batch_alter_table("disclosure_records", schema=None) as batch_op:
        batch_op.create_index("ix_disclosure_records_status_id", ["status", "id"], unique=False)
        batch_op.create_index(
            "ix_disclosure_records_act_kind_status_id", ["act_kind", "status", "id"], unique=False
        )
        batch_op.create_index(
            "ix_disclosure_records_agency_id_status_id",
            ["agency_id", "status", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_disclosure_records_category_status_id", ["category", "status", "id"], unique=False
        )
        batch_op.create_index(
            "ix_disclosure_records_status_withdrawn_at", ["status", "withdrawn_at"], unique=False
        )

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_disclosure_records_search_text_trgm ON disclosure_records "
            "USING gin (search_text gin_trgm_ops)"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS disclosure_records_fts_{name}")
        op.execute("DROP TABLE IF EXISTS disclosure_records_fts")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_disclosure_records_search_text_trgm")
    op.drop_table("disclosure_records")
    op.drop_table("disclosure_decisions")
    op.drop_table("disclosure_annual_reports")
    op.drop_table("disclosure_settings")
    op.drop_table("job_leases")
