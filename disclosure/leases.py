"""Database leases for background jobs: whichever instance holds a job's lease runs it.

PostgreSQL: the lease row is locked with ``FOR UPDATE SKIP LOCKED``, so a contender never waits.
SQLite: one conditional ``UPDATE`` takes it (writers are serialised by ``BEGIN IMMEDIATE``).
Either way a lease also has an expiry, so a crashed holder's lease lapses and another instance
catches up. The jobs themselves stay idempotent: a lease is the first line, not the only one.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from disclosure.models import JobLease
from server.core.db import Database


async def _create(
    session: AsyncSession, name: str, holder: str, now: dt.datetime, ttl: dt.timedelta
) -> bool:
    """The first instance ever to run ``name`` creates its lease row, holding it."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    created = await session.execute(
        insert(JobLease)
        .values(name=name, holder=holder, expires_at=now + ttl, last_started_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return created.rowcount == 1  # type: ignore[attr-defined]


async def acquire(
    database: Database, name: str, holder: str, now: dt.datetime, ttl: dt.timedelta
) -> bool:
    """Take (or renew) the lease ``name`` for ``holder`` until ``now + ttl``."""
    async with database.transaction() as session:
        if database.dialect == "postgresql":
            lease = await session.scalar(
                select(JobLease).where(JobLease.name == name).with_for_update(skip_locked=True)
            )
            if lease is None:
                # Locked by a contender right now, or not created yet.
                return await _create(session, name, holder, now, ttl)
            if lease.holder != holder and lease.expires_at > now:
                return False
            lease.holder, lease.expires_at, lease.last_started_at = holder, now + ttl, now
            return True
        taken = await session.execute(
            update(JobLease)
            .where(
                JobLease.name == name,
                or_(JobLease.holder == holder, JobLease.expires_at <= now),
            )
            .values(holder=holder, expires_at=now + ttl, last_started_at=now)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            return True
        return await _create(session, name, holder, now, ttl)


async def release(database: Database, name: str, holder: str, now: dt.datetime) -> None:
    async with database.transaction() as session:
        await session.execute(
            update(JobLease)
            .where(JobLease.name == name, JobLease.holder == holder)
            .values(expires_at=now, last_finished_at=now)
        )
