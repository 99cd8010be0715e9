"""The agent's local API for a terminal UI: small JSON endpoints mirroring the CLI.

Starlette served by uvicorn on 127.0.0.1 only (the edge never imports the server's framework).
Each request opens the store for itself, so handlers in worker threads never share a connection;
a background thread syncs every ``sync_interval`` seconds while there is a network.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edge_agent.agent import Agent
from edge_agent.client import EdgeError, Offline
from mobile_api.contracts.events import Procedure

log = logging.getLogger("zhifa.edge")
HOST = "127.0.0.1"


class OpenCase(msgspec.Struct, frozen=True, kw_only=True):
    item_code: str
    region: str
    title: str
    procedure: Procedure = "立案"
    partners: list[str] = msgspec.field(default_factory=list)
    place: str = ""
    summary: str = ""


class RecordEvent(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    fields: dict[str, Any] = msgspec.field(default_factory=dict)
    officers: list[str] = msgspec.field(default_factory=list)


class Problem(msgspec.Struct, frozen=True):
    code: str
    message: str


def _json(value: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


def create_app(home: Path) -> Starlette:
    def endpoint(work: Callable[[Agent, Request, bytes], Any], status: int = 200) -> Callable:
        async def handle(request: Request) -> Response:
            body = await request.body()

            def run() -> Any:
                with Agent(home) as agent:
                    return work(agent, request, body)

            try:
                return _json(await _in_thread(run), status)
            except msgspec.ValidationError as exc:
                return _json(Problem("request_invalid", f"请求内容不正确：{exc}"), 422)
            except Offline as exc:
                return _json(Problem(exc.code, exc.message), 503)
            except EdgeError as exc:
                return _json(Problem(exc.code, exc.message), 400)

        return handle

    def open_case(agent: Agent, _: Request, body: bytes) -> Any:
        data = msgspec.json.decode(body, type=OpenCase)
        return agent.desk.open_case(**msgspec.structs.asdict(data))

    def record(agent: Agent, request: Request, body: bytes) -> Any:
        data = msgspec.json.decode(body, type=RecordEvent)
        return agent.desk.record(
            request.path_params["case_id"], data.kind, data.fields, data.officers or None
        )

    def reference(agent: Agent, request: Request, _: bytes) -> Any:
        rows = agent.store.query(
            "SELECT body FROM reference WHERE kind = ? ORDER BY key", (request.path_params["kind"],)
        )
        return [msgspec.Raw(row["body"]) for row in rows]

    return Starlette(
        routes=[
            Route("/api/status", endpoint(lambda a, r, b: a.status()), methods=["GET"]),
            Route("/api/cases", endpoint(lambda a, r, b: a.desk.cases()), methods=["GET"]),
            Route("/api/cases", endpoint(open_case, 201), methods=["POST"]),
            Route(
                "/api/cases/{case_id}",
                endpoint(lambda a, r, b: a.desk.case(r.path_params["case_id"])),
                methods=["GET"],
            ),
            Route("/api/cases/{case_id}/events", endpoint(record, 201), methods=["POST"]),
            Route("/api/reference/{kind}", endpoint(reference), methods=["GET"]),
            Route("/api/sync", endpoint(lambda a, r, b: a.sync()), methods=["POST"]),
            *__import__("edge_agent.credential_api").credential_api.routes(home, endpoint),
            *__import__("edge_agent.recording_api").recording_api.routes(home, endpoint),
        ]
    )


async def _in_thread(work: Callable[[], Any]) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(work)


def _sync_forever(home: Path, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            with Agent(home) as agent:
                agent.sync()
        except Offline:
            continue  # no network now: the outbox waits
        except EdgeError as exc:
            log.warning("background sync: %s (%s)", exc.message, exc.code)


def serve(home: Path, *, port: int, sync_interval: float) -> None:
    import uvicorn

    stop = threading.Event()
    if sync_interval > 0:
        threading.Thread(
            target=_sync_forever, args=(home, sync_interval, stop), daemon=True
        ).start()
    try:
        uvicorn.run(create_app(home), host=HOST, port=port, log_level="warning")
    finally:
        stop.set()
