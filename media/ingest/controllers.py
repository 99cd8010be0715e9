"""tus endpoints and the recordings API.

Two doors to the same tus handler:

- ``/api/media/uploads``: terminals, with the officer's device-bound token and a fresh DPoP proof
  on every request (role officer, checked by the application's role guard).
- ``/api/media/tus``: any tus client with static headers, carrying the upload-scoped token that
  announcing the recording returned (``Authorization: Bearer <upload_token>``); it can upload that
  one recording and nothing else.

With ``media_direct_upload`` on S3, terminals may instead send the parts straight to the bucket
(``/api/media/direct-uploads``, media.ingest.direct); the announcement says where.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, head, patch, post, route
from litestar.background_tasks import BackgroundTask
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, JSONBody

from media import tokens
from media.edge.manifest import (
    DirectUploadRequest,
    DirectUploadView,
    PartUrlRequest,
    PartUrls,
    RecordingManifest,
    RecordingView,
)
from media.evidence.services import seal_upload
from media.ingest import direct, tus
from media.ingest import services as ingest
from media.models import Upload, UploadStatus
from media.web import context_of, store_of
from server.core.auth import Principal
from server.core.models import Role
from server.core.roles import PUBLIC, allow

UPLOADS_PATH = "/api/media/uploads"
TOKEN_UPLOADS_PATH = "/api/media/tus"
RECORDINGS_PATH = "/api/media/recordings"
DIRECT_UPLOADS_PATH = "/api/media/direct-uploads"


async def _body(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    """The raw request body as it arrives, telling a vanished client from the end of the body."""
    while True:
        message: dict[str, Any] = await request.receive()  # type: ignore[assignment]
        if message["type"] == "http.disconnect":
            raise ingest.ClientDisconnected
        if message.get("body"):
            yield message["body"]
        if not message.get("more_body", False):
            return


def _caller(request: Request[Any, Any, Any]) -> ingest.Caller:
    scoped = request.state.get("upload_scope")
    return scoped if scoped is not None else ingest.Caller.of_principal(request.state.principal)


async def upload_token_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    if connection.scope.get("method") == "OPTIONS":
        return
    token = tokens.bearer(connection.headers.get("authorization"))
    scoped = await tokens.verify(context_of(connection.app.state), token, "upload")
    connection.state.upload_scope = ingest.Caller.of_token(scoped)


def _offset_headers(upload: Upload) -> dict[str, str]:
    headers = {"Upload-Offset": str(upload.offset), "Cache-Control": "no-store"}
    if upload.status is UploadStatus.RECEIVING:
        headers["Upload-Expires"] = tus.http_date(upload.expires_at)
    return headers


def _seal_after_response(state: State, upload: Upload) -> BackgroundTask | None:
    if upload.status is not UploadStatus.COMPLETE:
        return None
    return BackgroundTask(seal_upload, context_of(state), store_of(state), upload.id)


class TusController(Controller):
    path = UPLOADS_PATH
    tags = ["media"]
    opt = allow(Role.OFFICER)
    middleware = [tus.resumable_header]

    # Left out of the OpenAPI document: Litestar would document the empty 204 as a JSON null.
    @route(
        "/",
        http_method=["OPTIONS"],
        status_code=204,
        summary="tus capabilities",
        include_in_schema=False,
    )
    async def capabilities(self, state: State) -> Response[None]:
        settings = context_of(state).settings
        headers = {
            "Tus-Extension": tus.EXTENSIONS,
            "Tus-Max-Size": str(settings.media_upload_max_bytes),
            "Tus-Checksum-Algorithm": ",".join(tus.CHECKSUM_ALGORITHMS),
        }
        return Response(content=None, status_code=204, headers=headers)

    @post(
        "/",
        status_code=201,
        request_max_body_size=None,
        summary="tus creation (with upload) of an announced recording",
    )
    async def create(self, request: Request[Any, Any, Any], state: State) -> Response[None]:
        tus.require_version(request.headers)
        if "upload-defer-length" in request.headers:
            raise tus.BadTusHeader("不支持 Upload-Defer-Length", header="Upload-Defer-Length")
        length = tus.parse_length(request.headers.get("upload-length"), "Upload-Length")
        metadata = tus.parse_metadata(request.headers.get("upload-metadata"))
        with_body = request.headers.get("content-type") == tus.OFFSET_CONTENT_TYPE
        checksum = tus.parse_checksum(request.headers.get("upload-checksum")) if with_body else None
        caller = _caller(request)
        context, store = context_of(state), store_of(state)
        await ingest.purge_expired_uploads(context, store)
        lease = secrets.token_hex(16) if with_body else None
        keyring = await context.keyring()
        async with context.database.transaction() as session:
            upload = await ingest.create_upload(
                session,
                keyring,
                context.settings,
                store,
                caller,
                length=length,
                metadata=metadata,
                lease_token=lease,
                now=context.clock.now(),
            )
        location = f"{self.path}/{upload.id}"
        if lease is None:
            headers = {"Location": location, "Upload-Expires": tus.http_date(upload.expires_at)}
            return Response(content=None, status_code=201, headers=headers)
        try:
            upload = await ingest.receive(context, store, upload, lease, _body(request), checksum)
        except tus.ChecksumMismatch:
            # Nothing of a refused first chunk is kept, not even the upload it would have begun.
            await ingest.purge_upload(context, store, upload.id, reason="checksum_mismatch")
            raise
        except ingest.ClientDisconnected:
            await ingest.release_lease(context, upload.id, lease)
            return Response(content=None, status_code=201, headers={"Location": location})
        except BaseException:
            await ingest.release_lease(context, upload.id, lease)
            raise
        return Response(
            content=None,
            status_code=201,
            headers={"Location": location, **_offset_headers(upload)},
            background=_seal_after_response(state, upload),
        )

    @head("/{upload_id:uuid}", summary="tus: the committed offset of an upload")
    async def offset(
        self, request: Request[Any, Any, Any], state: State, upload_id: FromPath[uuid.UUID]
    ) -> Response[None]:
        tus.require_version(request.headers)
        upload = await ingest.load_upload(
            context_of(state), store_of(state), _caller(request), upload_id
        )
        headers = {
            **_offset_headers(upload),
            "Upload-Length": str(upload.length),
            "Upload-Metadata": tus.encode_metadata(upload.tus_metadata),
        }
        return Response(content=None, status_code=200, headers=headers)

    @patch(
        "/{upload_id:uuid}",
        status_code=204,
        request_max_body_size=None,
        summary="tus: append bytes at the committed offset",
    )
    async def append(
        self, request: Request[Any, Any, Any], state: State, upload_id: FromPath[uuid.UUID]
    ) -> Response[None]:
        tus.require_version(request.headers)
        if request.headers.get("content-type") != tus.OFFSET_CONTENT_TYPE:
            raise tus.WrongContentType()
        offset = tus.parse_length(request.headers.get("upload-offset"), "Upload-Offset")
        checksum = tus.parse_checksum(request.headers.get("upload-checksum"))
        length = request.headers.get("content-length")
        context, store = context_of(state), store_of(state)
        upload, lease = await ingest.begin_append(
            context,
            store,
            _caller(request),
            upload_id,
            offset=offset,
            announced=int(length) if length and length.isdigit() else None,
        )
        if lease is None:
            return Response(content=None, status_code=204, headers=_offset_headers(upload))
        try:
            upload = await ingest.receive(context, store, upload, lease, _body(request), checksum)
        except ingest.ClientDisconnected:
            await ingest.release_lease(context, upload.id, lease)
            return Response(content=None, status_code=204)
        except BaseException:
            await ingest.release_lease(context, upload.id, lease)
            raise
        return Response(
            content=None,
            status_code=204,
            headers=_offset_headers(upload),
            background=_seal_after_response(state, upload),
        )

    @delete("/{upload_id:uuid}", status_code=204, summary="tus termination")
    async def terminate(
        self, request: Request[Any, Any, Any], state: State, upload_id: FromPath[uuid.UUID]
    ) -> None:
        tus.require_version(request.headers)
        await ingest.terminate_upload(
            context_of(state), store_of(state), _caller(request), upload_id
        )


class TokenTusController(TusController):
    """The same tus handler for generic clients, authorised by an upload-scoped token."""

    path = TOKEN_UPLOADS_PATH
    opt = PUBLIC
    guards = [upload_token_guard]


class RecordingController(Controller):
    path = RECORDINGS_PATH
    tags = ["media"]
    opt = allow(Role.OFFICER)

    @post("/", summary="Announce a finished recording (its signed chain) before uploading it")
    async def announce(
        self,
        data: JSONBody[RecordingManifest],
        state: State,
        principal: NamedDependency[Principal],
    ) -> Response[RecordingView]:
        caller = ingest.Caller.of_principal(principal)
        context = context_of(state)
        keyring = await context.keyring()
        now = context.clock.now()
        async with context.database.transaction() as session:
            recording, created = await ingest.register_recording(
                session, keyring, caller, data, now
            )
            view = await ingest.recording_view(
                session, recording, UPLOADS_PATH, _direct_path(state)
            )
        token, _ = await tokens.issue(
            context,
            "upload",
            subject=recording.id,
            user_id=caller.user_id,
            agency_id=caller.agency_id,
            terminal_id=caller.terminal_id,
            ttl_seconds=context.settings.media_upload_token_ttl_seconds,
        )
        view = msgspec.structs.replace(
            view, upload_token=token, token_upload_endpoint=TOKEN_UPLOADS_PATH
        )
        return Response(view, status_code=201 if created else 200)

    @get("/{recording_id:str}", summary="Where a recording stands: upload offset, sealed or not")
    async def status(
        self, recording_id: FromPath[str], state: State, principal: NamedDependency[Principal]
    ) -> RecordingView:
        caller = ingest.Caller.of_principal(principal)
        context, store = context_of(state), store_of(state)
        async with context.database.sessionmaker() as session:
            recording = await ingest.recording_of(session, caller, recording_id)
            interrupted = await ingest.complete_uploads_of(session, recording.id)
        # Every byte arrived but sealing did not finish (e.g. the instance stopped): finish it.
        for upload_id in interrupted:
            await seal_upload(context, store, upload_id)
        return await _recording_view(state, caller, recording_id)


def _direct_path(state: State) -> str | None:
    enabled = direct.direct_store(context_of(state), store_of(state)) is not None
    return DIRECT_UPLOADS_PATH if enabled else None


async def _recording_view(state: State, caller: ingest.Caller, recording_key: str) -> RecordingView:
    async with context_of(state).database.sessionmaker() as session:
        recording = await ingest.recording_of(session, caller, recording_key)
        return await ingest.recording_view(session, recording, UPLOADS_PATH, _direct_path(state))


class DirectUploadController(Controller):
    """Parts straight to S3 through presigned URLs; the server assembles, verifies and seals."""

    path = DIRECT_UPLOADS_PATH
    tags = ["media"]
    opt = allow(Role.OFFICER)

    @post("/", summary="Open (or resume) the direct upload of an announced recording")
    async def open(
        self,
        data: JSONBody[DirectUploadRequest],
        state: State,
        principal: NamedDependency[Principal],
    ) -> Response[DirectUploadView]:
        context, store = context_of(state), store_of(state)
        upload, created = await direct.open_direct(
            context, store, ingest.Caller.of_principal(principal), data.recording_id
        )
        received = {} if created else await direct.received_parts(context, store, upload)
        view = direct.view_of(upload, self.path, data.recording_id, received)
        return Response(view, status_code=201 if created else 200)

    @get("/{upload_id:uuid}", summary="A direct upload and the parts the store has (ListParts)")
    async def one(
        self, upload_id: FromPath[uuid.UUID], state: State, principal: NamedDependency[Principal]
    ) -> DirectUploadView:
        context, store = context_of(state), store_of(state)
        caller = ingest.Caller.of_principal(principal)
        upload = await ingest.load_upload(context, store, caller, upload_id, direct=True)
        received = await direct.received_parts(context, store, upload)
        key = upload.tus_metadata["recording"]
        return direct.view_of(upload, self.path, key, received)

    @post(
        "/{upload_id:uuid}/urls",
        status_code=200,
        summary="Presigned PUT URLs for parts, each bound to the part's SHA-256",
    )
    async def urls(
        self,
        upload_id: FromPath[uuid.UUID],
        data: JSONBody[PartUrlRequest],
        state: State,
        principal: NamedDependency[Principal],
    ) -> PartUrls:
        caller = ingest.Caller.of_principal(principal)
        return await direct.part_urls(context_of(state), store_of(state), caller, upload_id, data)

    @post(
        "/{upload_id:uuid}/complete",
        status_code=200,
        summary="Assemble the parts, verify the whole file and the chain, seal as evidence",
    )
    async def complete(
        self, upload_id: FromPath[uuid.UUID], state: State, principal: NamedDependency[Principal]
    ) -> RecordingView:
        caller = ingest.Caller.of_principal(principal)
        upload = await direct.complete_direct(context_of(state), store_of(state), caller, upload_id)
        return await _recording_view(state, caller, upload.tus_metadata["recording"])
