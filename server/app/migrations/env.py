"""Alembic environment. Migrations always run on a connection handed over by server.app.migrate."""

from __future__ import annotations

from alembic import context

import disclosure.models  # noqa: F401  (registers the disclosure tables)
import media.models  # noqa: F401  (registers the recording, upload and evidence tables)
import mobile_api.credential_models
import mobile_api.document_models
import mobile_api.models  # noqa: F401  (registers the case and sync tables)
import review.models  # noqa: F401  (registers the review tables)
from server.core.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
