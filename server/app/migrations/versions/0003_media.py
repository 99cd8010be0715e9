"""media: recordings, tus uploads, sealed evidence

Revision ID: 0003_media
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_media"
down_revision = "0001"
branch_labels = None
depends_on = None

RECORDING_STATUS = sa.Enum(
    "PENDING", "SEALED", "REJECTED", name="recordingstatus", native_enum=False, length=16
)
UPLOAD_STATUS = sa.Enum(
    "RECEIVING", "COMPLETE", "SEALED", "REJECTED", name="uploadstatus", native_enum=False, length=16
)


def upgrade() -> None:
    op.create_table(
        "media_recordings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recording_key", sa.String(length=100), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("terminal_id", sa.Uuid(), nullable=False),
        sa.Column("registered_by", sa.Uuid(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status", RECORDING_STATUS, nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_media_recordings_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["registered_by"],
            ["staff_users.id"],
            name=op.f("fk_media_recordings_registered_by_staff_users"),
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.id"],
            name=op.f("fk_media_recordings_terminal_id_terminals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_recordings")),
        sa.UniqueConstraint(
            "terminal_id",
            "recording_key",
            name=op.f("uq_media_recordings_terminal_id_recording_key"),
        ),
    )
    with op.batch_alter_table("media_recordings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_media_recordings_agency_id"), ["agency_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_media_recordings_terminal_id"), ["terminal_id"], unique=False
        )

    op.create_table(
        "media_uploads",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("terminal_id", sa.Uuid(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("prefix_sha256", sa.String(length=64), nullable=False),
        sa.Column("tus_metadata", sa.JSON(), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("status", UPLOAD_STATUS, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["staff_users.id"], name=op.f("fk_media_uploads_created_by_staff_users")
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["media_recordings.id"],
            name=op.f("fk_media_uploads_recording_id_media_recordings"),
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.id"], name=op.f("fk_media_uploads_terminal_id_terminals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_uploads")),
    )
    with op.batch_alter_table("media_uploads", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_media_uploads_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_media_uploads_recording_id"), ["recording_id"], unique=False
        )

    op.create_table(
        "media_evidence",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("terminal_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("storage_backend", sa.String(length=16), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("chain_head", sa.String(length=64), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("container", sa.String(length=32), nullable=False),
        sa.Column("video_codec", sa.String(length=32), nullable=False),
        sa.Column("audio_codec", sa.String(length=32), nullable=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("recorded_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("officers", sa.JSON(), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("permanent_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seal_enforced_by", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_media_evidence_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["media_recordings.id"],
            name=op.f("fk_media_evidence_recording_id_media_recordings"),
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.id"], name=op.f("fk_media_evidence_terminal_id_terminals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_evidence")),
        sa.UniqueConstraint("recording_id", name=op.f("uq_media_evidence_recording_id")),
    )
    with op.batch_alter_table("media_evidence", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_media_evidence_agency_id"), ["agency_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_media_evidence_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_media_evidence_terminal_id"), ["terminal_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("media_evidence")
    op.drop_table("media_uploads")
    op.drop_table("media_recordings")
