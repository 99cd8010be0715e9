"""Agency administration: the officer roster (执法人员名册) and calendar year files."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from server.app.calendar_years import store_year_file
from server.app.context import AppContext
from server.core import accounts, roster
from server.core.auth import Principal
from server.core.errors import PermissionDenied, ValidationFailed
from server.core.models import Credential, Role
from server.core.roles import ADMINS, allow


class RosterUpload(msgspec.Struct):
    agency_code: str
    file: UploadFile
    photos: list[UploadFile] = msgspec.field(default_factory=list)


class OfficerView(msgspec.Struct, frozen=True):
    id: str
    name: str
    unit: str
    credential_number: str
    categories: list[str]
    regions: list[str]
    issued_on: dt.date
    expires_on: dt.date
    status: str
    has_photo: bool


class YearLoaded(msgspec.Struct, frozen=True):
    year: int
    holidays: int
    workdays: int
    source: str


def _check_agency(principal: NamedDependency[Principal], agency_id: uuid.UUID) -> None:
    if Role.SYSTEM_ADMIN not in principal.roles and principal.agency_id != agency_id:
        raise PermissionDenied("只能管理本执法主体的数据")


class AdminController(Controller):
    path = "/api/admin"
    tags = ["admin"]

    @post(
        "/roster/import",
        opt=allow(*ADMINS),
        status_code=200,
        summary="Import the officer roster CSV (all rows or none); photos named by 证号",
    )
    async def import_roster(
        self,
        data: Annotated[RosterUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
        state: State,
        principal: NamedDependency[Principal],
    ) -> roster.ImportResult:
        context: AppContext = state.context
        photos: dict[str, tuple[bytes, str]] = {}
        for upload in data.photos:
            stem, _, suffix = (upload.filename or "").rpartition(".")
            media_type = roster.PHOTO_TYPES.get(f".{suffix.lower()}")
            if not stem or media_type is None:
                raise ValidationFailed(
                    f"照片 {upload.filename} 应为以证号命名的 JPG 或 PNG 文件", field="photos"
                )
            photos[stem] = (await upload.read(), media_type)
        raw = await data.file.read()
        async with context.database.transaction() as session:
            agency = await accounts.agency_by_code(session, data.agency_code)
            _check_agency(principal, agency.id)
            return await roster.import_roster(
                session,
                await context.keyring(),
                agency_code=data.agency_code,
                raw_csv=raw,
                photos=photos,
                now=context.clock.now(),
            )

    @get("/officers", opt=allow(*ADMINS), summary="The roster of an agency")
    async def officers(
        self, state: State, principal: NamedDependency[Principal], agency_code: FromQuery[str]
    ) -> list[OfficerView]:
        context: AppContext = state.context
        today = context.clock.today()
        async with context.database.sessionmaker() as session:
            agency = await accounts.agency_by_code(session, agency_code)
            _check_agency(principal, agency.id)
            rows = await session.scalars(
                select(Credential)
                .where(Credential.agency_id == agency.id)
                .options(selectinload(Credential.officer))
                .order_by(Credential.number)
            )
            return [
                OfficerView(
                    id=str(c.officer_id),
                    name=c.officer.name,
                    unit=c.officer.unit,
                    credential_number=c.number,
                    categories=list(c.categories),
                    regions=list(c.regions),
                    issued_on=c.issued_on,
                    expires_on=c.expires_on,
                    status=c.effective_status(today),
                    has_photo=c.photo is not None,
                )
                for c in rows
            ]

    @post(
        "/calendar/years",
        opt=allow(Role.SYSTEM_ADMIN),
        status_code=200,
        summary="Load an official year arrangement (TOML: holidays and make-up working days)",
    )
    async def load_calendar_year(self, request: Request, state: State) -> YearLoaded:
        context: AppContext = state.context
        try:
            text = (await request.body()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationFailed("节假日安排文件须为 UTF-8 编码的 TOML") from exc
        async with context.database.transaction() as session:
            arrangement = await store_year_file(
                session, await context.keyring(), text, context.clock.now()
            )
        await context.calendar(refresh=True)
        return YearLoaded(
            year=arrangement.year,
            holidays=len(arrangement.holidays),
            workdays=len(arrangement.workdays),
            source=arrangement.source,
        )
