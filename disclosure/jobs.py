"""Background jobs of the disclosure area, run inside every server instance.

``start_jobs(runtime, hooks)`` starts an asyncio task (wired into the application lifespan) that
calls ``run_due_jobs`` every minute. Each job runs under a database lease, so with several
instances only one does the work; the work is derived from the database state alone (what is due
today, what is overdue, which reports are missing), so a restarted server catches up on whatever it
missed. Publication is idempotent on its own too (see ``services.publish_one``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import uuid

import msgspec
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from disclosure import leases, reports
from disclosure.hooks import DisclosureHooks
from disclosure.models import (
    AnnualReport,
    DecisionState,
    DisclosureDecision,
    HoldCause,
    JobLease,
)
from disclosure.services import (
    UNPUBLISHED,
    agency_settings,
    china_day,
    flag_overdue,
    publish_one,
    report_due_on,
)
from disclosure.web import Runtime
from server.core.clock import CHINA_TZ
from server.core.keys import KeyRing
from server.core.models import Agency

log = logging.getLogger("zhifa.disclosure.jobs")

PUBLICATION_JOB = "disclosure.publication"
REPORT_JOB = "disclosure.annual_report"
LEASE_TTL = dt.timedelta(minutes=5)
INTERVAL_SECONDS = 60.0


class JobReport(msgspec.Struct, kw_only=True):
    holder: str
    ran: list[str] = msgspec.field(default_factory=list)
    skipped: list[str] = msgspec.field(default_factory=list)  # another instance held the lease
    published: int = 0
    held: int = 0
    overdue_flagged: int = 0
    failed: int = 0
    reports: int = 0


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def run_due_jobs(
    runtime: Runtime, hooks: DisclosureHooks | None = None, *, holder: str
) -> JobReport:
    """Run every job that has work and whose lease this instance gets; returns what was done."""
    hooks = hooks or DisclosureHooks()
    result = JobReport(holder=holder)
    today = china_day(runtime.clock.now())
    # One read first keeps idle runs (most of them) free of write transactions.
    async with runtime.database.sessionmaker() as session:
        pending = await _pending(session, today)
    for name, job in ((PUBLICATION_JOB, _publication), (REPORT_JOB, _annual_reports)):
        if not pending[name]:
            continue
        now = runtime.clock.now()
        if not await leases.acquire(runtime.database, name, holder, now, LEASE_TTL):
            result.skipped.append(name)
            continue
        try:
            await job(runtime, hooks, holder, now, result)
            result.ran.append(name)
        finally:
            await leases.release(runtime.database, name, holder, runtime.clock.now())
    return result


def _due_condition(today: dt.date) -> ColumnElement[bool]:
    return or_(
        and_(
            DisclosureDecision.state == DecisionState.SCHEDULED,
            DisclosureDecision.publish_on <= today,
        ),
        # The review gate may say yes today; the scanner's verdict waits for staff.
        and_(
            DisclosureDecision.state == DecisionState.HELD,
            DisclosureDecision.hold_cause == HoldCause.REVIEW,
        ),
    )


def _unflagged_overdue(today: dt.date) -> ColumnElement[bool]:
    return and_(
        DisclosureDecision.state.in_(UNPUBLISHED),
        DisclosureDecision.due_on < today,
        DisclosureDecision.overdue_flagged_at.is_(None),
    )


async def _pending(session: AsyncSession, today: dt.date) -> dict[str, bool]:
    """Which jobs have work. Publication: anything due, held by review, or newly overdue.
    Reports, at most once a day: when an agency that existed last year lacks last year's report,
    or while last year's reports may still change (up to their due day)."""
    year_start = dt.datetime(today.year, 1, 1, tzinfo=CHINA_TZ)
    last_year = AnnualReport.year == today.year - 1
    row = (
        await session.execute(
            select(
                select(DisclosureDecision.id)
                .where(or_(_due_condition(today), _unflagged_overdue(today)))
                .exists(),
                select(JobLease.last_finished_at)
                .where(JobLease.name == REPORT_JOB)
                .scalar_subquery(),
                select(func.count()).where(Agency.created_at < year_start).scalar_subquery(),
                select(func.count()).where(last_year).scalar_subquery(),
                select(func.max(AnnualReport.due_on)).where(last_year).scalar_subquery(),
            )
        )
    ).one()
    publication, finished, agencies, published, latest_due = row
    reports = (finished is None or china_day(finished) < today) and (
        published < agencies or (latest_due is not None and today <= latest_due)
    )
    return {PUBLICATION_JOB: bool(publication), REPORT_JOB: bool(reports)}


async def _publication(
    runtime: Runtime, hooks: DisclosureHooks, holder: str, now: dt.datetime, result: JobReport
) -> None:
    database, today = runtime.database, china_day(now)
    keyring = await runtime.keyring()
    async with database.sessionmaker() as session:
        late = list(
            await session.scalars(select(DisclosureDecision.id).where(_unflagged_overdue(today)))
        )
        due = list(
            await session.scalars(
                select(DisclosureDecision.id)
                .where(_due_condition(today))
                .order_by(DisclosureDecision.due_on, DisclosureDecision.id)
            )
        )
    if late:
        async with database.transaction() as session:
            for decision in await session.scalars(
                select(DisclosureDecision).where(
                    DisclosureDecision.id.in_(late), _unflagged_overdue(today)
                )
            ):
                await flag_overdue(session, keyring, decision, now)
                result.overdue_flagged += 1
    renewed_at = now
    for decision_id in due:
        if runtime.clock.now() - renewed_at > LEASE_TTL / 2:
            renewed_at = runtime.clock.now()
            if not await leases.acquire(database, PUBLICATION_JOB, holder, renewed_at, LEASE_TTL):
                log.warning("lease %s lost; another instance continues", PUBLICATION_JOB)
                return
        try:
            async with database.transaction() as session:
                found = await session.get(DisclosureDecision, decision_id, with_for_update=True)
                if found is None or found.state not in UNPUBLISHED:
                    continue  # published, withdrawn or excluded meanwhile
                state = await publish_one(
                    session, found, gate=hooks.may_publish, keyring=keyring, now=now
                )
        except Exception:
            # One bad decision must not stop the others; it is tried again at the next run.
            log.exception("publication of decision %s failed", decision_id)
            result.failed += 1
            continue
        if state is DecisionState.PUBLISHED:
            result.published += 1
        else:
            result.held += 1


async def _annual_reports(
    runtime: Runtime, hooks: DisclosureHooks, holder: str, now: dt.datetime, result: JobReport
) -> None:
    database, today = runtime.database, china_day(now)
    keyring = await runtime.keyring()
    async with database.sessionmaker() as session:
        agencies = list(await session.scalars(select(Agency).order_by(Agency.code)))
    for agency in agencies:
        try:
            async with database.transaction() as session:
                result.reports += await _agency_reports(session, keyring, agency, today, now)
        except Exception:
            log.exception("annual report of agency %s failed", agency.code)
            result.failed += 1


async def _agency_reports(
    session: AsyncSession, keyring: KeyRing, agency: Agency, today: dt.date, now: dt.datetime
) -> int:
    """Publish every missing report of a finished year; refresh last year's until its due day."""
    settings = await agency_settings(session, agency.id)
    first_decision = await session.scalar(
        select(func.min(DisclosureDecision.decision_date)).where(
            DisclosureDecision.agency_id == agency.id
        )
    )
    first_year = china_day(agency.created_at).year
    if first_decision is not None:
        first_year = min(first_year, first_decision.year)
    existing = set(
        await session.scalars(select(AnnualReport.year).where(AnnualReport.agency_id == agency.id))
    )
    done = 0
    for year in range(first_year, today.year):
        due_on = report_due_on(settings, year + 1)
        if year in existing and today > due_on:
            continue  # final
        if await reports.publish_report(session, keyring, agency, year, due_on, now) is not None:
            done += 1
    return done


class JobRunner:
    """The scheduling loop of one server instance."""

    def __init__(
        self, runtime: Runtime, hooks: DisclosureHooks, interval: float, holder: str
    ) -> None:
        self.runtime, self.hooks, self.interval, self.holder = runtime, hooks, interval, holder
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"disclosure-jobs:{self.holder}")

    async def _loop(self) -> None:
        while True:
            try:
                report = await run_due_jobs(self.runtime, self.hooks, holder=self.holder)
                if report.published or report.overdue_flagged or report.reports or report.failed:
                    log.info("disclosure jobs: %s", msgspec.json.encode(report).decode())
            except Exception:
                log.exception("disclosure jobs failed; trying again in %.0f s", self.interval)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def start_jobs(
    runtime: Runtime,
    hooks: DisclosureHooks | None = None,
    *,
    interval: float = INTERVAL_SECONDS,
) -> JobRunner:
    """Start the loop (call inside the running event loop, e.g. the application lifespan)."""
    runner = JobRunner(runtime, hooks or DisclosureHooks(), interval, instance_name())
    runner.start()
    return runner
