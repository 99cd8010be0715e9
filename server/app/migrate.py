"""Apply and inspect the one Alembic migration history, on SQLite and PostgreSQL alike.

It lives in ``server.app`` because the history covers the tables of every area.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from server.core.db import Database

MIGRATIONS = Path(__file__).with_name("migrations")
# Alembic announces its context at INFO on every readiness check; only problems are worth a line.
logging.getLogger("alembic").setLevel(logging.WARNING)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


async def upgrade(database: Database, revision: str = "heads") -> None:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(run)


async def autogenerate(database: Database, message: str) -> None:
    """Developer tool: write a new revision from the difference between models and database."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)

    async with database.engine.begin() as connection:
        await connection.run_sync(run)


async def current_revisions(database: Database) -> set[str]:
    def read(connection: Connection) -> Any:
        return set(MigrationContext.configure(connection).get_current_heads())

    async with database.engine.connect() as connection:
        return await connection.run_sync(read)
