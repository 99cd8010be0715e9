"""Local API routes of the e-credential and the documents (added to ``local_api.create_app``).

``/card`` is the card as a full-screen page for the terminal's browser: it works offline from the
cache and reloads itself when the current code's slot ends (a meta refresh: no script needed).
JSON routes go through ``local_api``'s ``endpoint`` so their errors read the same as the others.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from edge_agent.agent import Agent
from edge_agent.client import EdgeError
from edge_agent.credentials import VERDICT_LABELS, CardView
from mobile_api.contracts.qr import qr_svg

Endpoint = Callable[..., Callable]


class PartnerCheck(msgspec.Struct, frozen=True):
    scanned: str  # the URL or bare token the camera read


class MakeDocument(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    facts: dict[str, Any] = msgspec.field(default_factory=dict)


class ServeDocument(msgspec.Struct, frozen=True, kw_only=True):
    signature_png_base64: str = ""
    refused: bool = False
    witnesses: list[str] = msgspec.field(default_factory=list)
    recording_id: str = ""
    served_to: str = ""


_NO_STORE = {"Cache-Control": "no-store"}


def _page(view: CardView | None, message: str = "") -> str:
    if view is None:
        body = f'<p class="warn">{html.escape(message)}</p>'
        refresh = 30
    else:
        qr = (
            qr_svg(view.url, scale=8).decode()
            if view.url
            else '<p class="warn">本机缓存的二维码已用完，请联网同步后再出示</p>'
        )
        rows = [
            ("姓名", view.name),
            ("证号", view.number),
            ("单位", f"{view.unit}（{view.agency}）"),
            ("执法类别", "、".join(view.categories)),
            ("执法区域", "、".join(view.regions)),
            ("有效期", f"{view.issued_on} 至 {view.expires_on}"),
            ("证件状态", VERDICT_LABELS[view.verdict]),
        ]
        table = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
        )
        problems = "".join(f"<li>{html.escape(f.message)}</li>" for f in view.findings)
        photo = '<img class="photo" src="/card/photo" alt="照片">' if view.photo else ""
        body = (
            f"{photo}<table>{table}</table>"
            + (f'<ul class="warn">{problems}</ul>' if problems else "")
            + f'<div class="qr">{qr}</div>'
            + f'<p class="note">二维码每 {view.refresh_seconds} 秒内自动更新，请当事人扫码核验</p>'
        )
        refresh = max(1, view.refresh_seconds)
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{refresh}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        "<title>行政执法证</title><style>"
        "body{margin:0;min-height:100vh;font-family:sans-serif;background:#fff;color:#111;"
        "display:flex;flex-direction:column;align-items:center;justify-content:center}"
        "h1{color:#b00000;margin:.4em 0}table{font-size:1.2em;border-collapse:collapse}"
        "th{text-align:right;padding:.2em .6em;color:#555}td{padding:.2em .6em}"
        ".photo{width:120px;height:160px;object-fit:cover;border:1px solid #ccc}"
        ".qr svg{width:min(80vw,60vh);height:auto}.warn{color:#b00000}.note{color:#555}"
        f"</style></head><body><h1>行政执法证</h1>{body}</body></html>"
    )


def routes(home: Path, endpoint: Endpoint) -> list[Route]:
    async def in_agent(work: Callable[[Agent], Any]) -> Any:
        def run() -> Any:
            with Agent(home) as agent:
                return work(agent)

        return await run_in_threadpool(run)

    async def card_page(_: Request) -> Response:
        try:
            view = await in_agent(lambda a: a.wallet.card())
        except EdgeError as exc:
            return HTMLResponse(_page(None, exc.message), status_code=503, headers=_NO_STORE)
        return HTMLResponse(_page(view), headers=_NO_STORE)

    async def card_qr(_: Request) -> Response:
        try:
            view = await in_agent(lambda a: a.wallet.card())
        except EdgeError as exc:
            return Response(exc.message, status_code=503, media_type="text/plain; charset=utf-8")
        if view.url is None:
            return Response(
                "本机缓存的二维码已用完，请联网同步",
                status_code=503,
                media_type="text/plain; charset=utf-8",
            )
        return Response(qr_svg(view.url), media_type="image/svg+xml", headers=_NO_STORE)

    async def card_photo(_: Request) -> Response:
        try:
            view = await in_agent(lambda a: a.wallet.card())
        except EdgeError:
            view = None
        if view is None or not view.photo:
            return Response(status_code=404)
        return FileResponse(view.photo, headers=_NO_STORE)

    def partner_check(agent: Agent, request: Request, body: bytes) -> Any:
        data = msgspec.json.decode(body, type=PartnerCheck)
        return agent.wallet.check_partner(data.scanned, request.path_params["case_id"])

    def make_document(agent: Agent, request: Request, body: bytes) -> Any:
        data = msgspec.json.decode(body, type=MakeDocument)
        return agent.papers.generate(data.kind, request.path_params["case_id"], data.facts)

    def serve_document(agent: Agent, request: Request, body: bytes) -> Any:
        data = msgspec.json.decode(body, type=ServeDocument)
        try:
            signature = (
                base64.b64decode(data.signature_png_base64, validate=True)
                if data.signature_png_base64
                else None
            )
        except ValueError as exc:
            raise EdgeError("签名图像不是有效的 base64", code="request_invalid") from exc
        return agent.papers.serve(
            request.path_params["ref"],
            signature=signature,
            refused=data.refused,
            witnesses=data.witnesses,
            recording_id=data.recording_id,
            served_to=data.served_to,
        )

    async def document_pdf(request: Request) -> Response:
        try:
            row = await in_agent(lambda a: a.papers.document(request.path_params["ref"]))
        except EdgeError as exc:
            return Response(exc.message, status_code=404, media_type="text/plain; charset=utf-8")
        return FileResponse(row.pdf_path, media_type="application/pdf")

    return [
        Route("/card", card_page, methods=["GET"]),
        Route("/card/qr.svg", card_qr, methods=["GET"]),
        Route("/card/photo", card_photo, methods=["GET"]),
        Route("/api/card", endpoint(lambda a, r, b: a.wallet.card()), methods=["GET"]),
        Route("/api/cases/{case_id}/partner-check", endpoint(partner_check), methods=["POST"]),
        Route("/api/cases/{case_id}/documents", endpoint(make_document, 201), methods=["POST"]),
        Route(
            "/api/documents",
            endpoint(lambda a, r, b: a.papers.documents(r.query_params.get("case"))),
            methods=["GET"],
        ),
        Route("/api/documents/{ref}/pdf", document_pdf, methods=["GET"]),
        Route("/api/documents/{ref}/service", endpoint(serve_document, 201), methods=["POST"]),
    ]
