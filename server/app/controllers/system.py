"""Liveness, readiness and the public keys (JWKS)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from sqlalchemy import text

from server.app import migrate
from server.app.context import AppContext
from server.core.errors import ServiceUnavailable
from server.core.roles import PUBLIC


class Health(msgspec.Struct, frozen=True):
    status: str


class Readiness(msgspec.Struct, frozen=True):
    status: str
    database: str
    migration: str | None


class SystemController(Controller):
    tags = ["system"]

    @get("/health", opt=PUBLIC, summary="Liveness")
    async def health(self) -> Health:
        return Health(status="ok")

    @get("/ready", opt=PUBLIC, summary="Readiness: database reachable, migrations current")
    async def ready(self, state: State) -> Readiness:
        context: AppContext = state.context
        try:
            async with context.database.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            current = await migrate.current_revisions(context.database)
        except Exception as exc:
            raise ServiceUnavailable("数据库无法访问", reason="database_unreachable") from exc
        heads = migrate.head_revisions()
        if current != heads:
            raise ServiceUnavailable(
                "数据库结构不是最新版本，请先执行迁移", current=sorted(current), head=sorted(heads)
            )
        revision = ",".join(sorted(current))
        return Readiness(status="ready", database=context.database.dialect, migration=revision)

    @get("/.well-known/jwks.json", opt=PUBLIC, summary="Public signing keys (JWKS)", cache=60)
    async def jwks(self, state: State) -> dict[str, Any]:
        return (await state.context.keyring()).jwks()
