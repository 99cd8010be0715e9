"""Direct uploads to S3: the multipart upload and part size of an upload (media.ingest.direct).

Revision ID: 0009_media_direct_uploads
Revises: 0008_merge_areas
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_media_direct_uploads"
down_revision = "0008_merge_areas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media_uploads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("direct_upload_id", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("part_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("media_uploads", schema=None) as batch_op:
        batch_op.drop_column("part_bytes")
        batch_op.drop_column("direct_upload_id")
