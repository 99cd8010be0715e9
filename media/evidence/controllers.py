"""Sealed evidence for staff: list, inspect, link to a case, play back or download (logged).

Every playback or download first writes a ledger entry (who, when, which item, what for) and only
then hands out a short-lived ticket URL for the content; the content route takes the ticket, so a
browser's <video> element can play it, with byte ranges.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Stream

from media import tokens
from media.evidence import services
from media.evidence.schemas import AccessGrant, AccessRecord, AccessRequest, CaseLink, EvidenceView
from media.models import Evidence, Recording
from media.web import context_of, store_of
from server.core.auth import Principal
from server.core.errors import PermissionDenied
from server.core.models import Role
from server.core.roles import PUBLIC, STAFF_READERS, allow

EVIDENCE_PATH = "/api/media/evidence"


class EvidenceController(Controller):
    path = EVIDENCE_PATH
    tags = ["media"]
    opt = allow(*STAFF_READERS)

    @get("/", summary="Sealed evidence of the caller's agency, newest first")
    async def list_items(
        self,
        state: State,
        principal: NamedDependency[Principal],
        case_id: FromQuery[uuid.UUID | None] = None,
        terminal_id: FromQuery[uuid.UUID | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[EvidenceView]:
        async with context_of(state).database.sessionmaker() as session:
            return await services.list_evidence(
                session, principal, case_id=case_id, terminal_id=terminal_id, limit=limit
            )

    @get("/{evidence_id:uuid}", summary="One evidence item (metadata only; no access logged)")
    async def one(
        self, evidence_id: FromPath[uuid.UUID], state: State, principal: NamedDependency[Principal]
    ) -> EvidenceView:
        async with context_of(state).database.sessionmaker() as session:
            evidence, key = await services.evidence_for(session, principal, evidence_id)
            return services.view_of(evidence, key)

    @post(
        "/{evidence_id:uuid}/access",
        status_code=201,
        summary="Log a playback or download in the ledger and get a ticket URL for the content",
    )
    async def access(
        self,
        evidence_id: FromPath[uuid.UUID],
        data: JSONBody[AccessRequest],
        state: State,
        principal: NamedDependency[Principal],
    ) -> AccessGrant:
        context = context_of(state)
        keyring = await context.keyring()
        async with context.database.transaction() as session:
            evidence, entry = await services.log_access(
                session, keyring, principal, evidence_id, data.purpose, context.clock.now()
            )
        return await services.access_ticket(
            context,
            evidence,
            entry,
            principal,
            data.purpose,
            f"{self.path}/{evidence_id}/content",
        )

    @get(
        "/{evidence_id:uuid}/content",
        opt=PUBLIC,
        summary="The evidence bytes (video/mp2t), with a ticket from /access; Range supported",
    )
    async def content(
        self,
        evidence_id: FromPath[uuid.UUID],
        ticket: FromQuery[str],
        request: Request[Any, Any, Any],
        state: State,
    ) -> Stream:
        context = context_of(state)
        scoped = await tokens.verify(context, ticket, "access")
        if scoped.subject != evidence_id:
            raise PermissionDenied("该访问凭证不适用于此证据")
        async with context.database.sessionmaker() as session:
            evidence = await session.get(Evidence, evidence_id)
            if evidence is None:
                raise services.EvidenceNotFound(evidence_id=str(evidence_id))
            recording = await session.get_one(Recording, evidence.recording_id)
        wanted = services.content_range(request.headers.get("range"), evidence.size)
        start, end = wanted or (0, evidence.size)
        disposition = "attachment" if scoped.purpose == "download" else "inline"
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Length": str(end - start),
            "ETag": f'"{evidence.sha256}"',
            "Cache-Control": "private, no-store",
            "Content-Disposition": f'{disposition}; filename="{recording.recording_key}.ts"',
        }
        if wanted:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{evidence.size}"
        return Stream(
            store_of(state).read(evidence.storage_key, start, end),
            status_code=206 if wanted else 200,
            media_type="video/mp2t",
            headers=headers,
        )

    @put(
        "/{evidence_id:uuid}/case",
        opt=allow(Role.OFFICER, *STAFF_READERS),
        summary="Link to a case (officers, staff); mark as used as evidence (staff): kept for good",
    )
    async def link_case(
        self,
        evidence_id: FromPath[uuid.UUID],
        data: JSONBody[CaseLink],
        state: State,
        principal: NamedDependency[Principal],
    ) -> EvidenceView:
        context = context_of(state)
        keyring = await context.keyring()
        async with context.database.transaction() as session:
            return await services.link_case(
                session,
                keyring,
                store_of(state),
                principal,
                evidence_id,
                data,
                context.clock.now(),
            )

    @get(
        "/{evidence_id:uuid}/accesses",
        opt=allow(Role.AGENCY_ADMIN, Role.SYSTEM_ADMIN),
        summary="Who played back or downloaded the item, and when (from the ledger)",
    )
    async def accesses(
        self, evidence_id: FromPath[uuid.UUID], state: State, principal: NamedDependency[Principal]
    ) -> list[AccessRecord]:
        async with context_of(state).database.sessionmaker() as session:
            return await services.access_log(session, principal, evidence_id)
