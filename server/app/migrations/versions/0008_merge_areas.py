"""Join the areas' branches into one head, so the next migration has a single parent.

Revision ID: 0008_merge_areas
Revises: 0002_cases, 0003_media, 0004_credentials, 0005_documents, 0006_review, 0007_disclosure
"""

from __future__ import annotations

revision = "0008_merge_areas"
down_revision = (
    "0002_cases",
    "0003_media",
    "0004_credentials",
    "0005_documents",
    "0006_review",
    "0007_disclosure",
)
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
