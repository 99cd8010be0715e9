"""The agent's HTTP client for the central server: every request signed with a DPoP proof by the
terminal's device key (RFC 9449), problem+json answers turned into ``ServerRefused``.

The proof's ``iat`` uses the server's time as the terminal last learned it (``clock_offset``), so a
terminal whose clock is hours wrong can still sync; the offset is refreshed from every response.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mobile_api.contracts.device_proof import DEVICE_PROOF_HEADER, make_device_proof, public_key_b64
from mobile_api.contracts.sync import (
    PULL_PATH,
    PUSH_PATH,
    PullResponse,
    PushRequest,
    PushResponse,
)


class EdgeError(Exception):
    """An error the officer reads: a stable ``code`` and a Chinese ``message``."""

    code = "edge_error"

    def __init__(self, message: str, code: str | None = None, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.data = data


class Offline(EdgeError):
    code = "offline"


class ServerRefused(EdgeError):
    """The server answered with a problem (4xx/5xx)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        message = str(
            problem.get("detail") or problem.get("title") or f"服务器拒绝了请求（{status}）"
        )
        super().__init__(message, code=str(problem.get("code") or "http_error"))
        self.status = status
        self.problem = problem

    @property
    def reason(self) -> str:
        return str(self.problem.get("reason", ""))


class TokenPair(msgspec.Struct, frozen=True):
    access_token: str
    refresh_token: str
    expires_in: int


class Enrolled(msgspec.Struct, frozen=True):
    terminal_id: str
    agency_id: str
    name: str


class ServerClient:
    def __init__(
        self,
        base_url: str,
        key: Ed25519PrivateKey,
        *,
        clock_offset: float = 0.0,
        on_offset: Callable[[float], None] | None = None,
        timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.clock_offset = clock_offset
        self.on_offset = on_offset
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self.http.close()

    def server_now(self) -> float:
        return time.time() + self.clock_offset

    def learn_server_time(self, server_timestamp: float) -> None:
        offset = server_timestamp - time.time()
        # Whole seconds only matter for the proof; ignore jitter below that.
        if abs(offset - self.clock_offset) >= 1:
            self.clock_offset = offset
            if self.on_offset:
                self.on_offset(offset)

    def _learn_from_date_header(self, response: httpx.Response) -> None:
        date = response.headers.get("date")
        if date:
            parsed = email.utils.parsedate_to_datetime(date)
            self.learn_server_time(parsed.timestamp())

    def _send(
        self,
        method: str,
        path: str,
        *,
        token: str | None,
        content: bytes | None,
        params: dict[str, str] | None,
    ) -> httpx.Response:
        headers = {
            DEVICE_PROOF_HEADER: make_device_proof(
                self.key, method, f"{self.base_url}{path}", token, now=self.server_now()
            )
        }
        if token:
            headers["Authorization"] = f"DPoP {token}"
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            return self.http.request(method, path, content=content, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise Offline(f"无法连接服务器 {self.base_url}：{exc.__class__.__name__}") from exc

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> bytes:
        response = self._send(method, path, token=token, content=content, params=params)
        if response.status_code == 401 and _problem(response).get("reason") in (
            "device_proof_mismatch",
        ):
            # Perhaps our clock drifted: take the server's time from this answer and try once more.
            self._learn_from_date_header(response)
            response = self._send(method, path, token=token, content=content, params=params)
        if response.status_code >= 400:
            raise ServerRefused(response.status_code, _problem(response))
        return response.content

    # --- the calls ------------------------------------------------------------------------------

    def enroll(self, code: str, name: str) -> Enrolled:
        body = {"enrollment_code": code, "name": name, "public_key": public_key_b64(self.key)}
        raw = self.request("POST", "/api/terminals/enroll", content=msgspec.json.encode(body))
        return msgspec.json.decode(raw, type=Enrolled)

    def terminal_login(self, username: str, password: str) -> TokenPair:
        body = {"username": username, "password": password}
        raw = self.request("POST", "/api/auth/terminal-login", content=msgspec.json.encode(body))
        return msgspec.json.decode(raw, type=TokenPair)

    def refresh(self, refresh_token: str) -> TokenPair:
        body = {"refresh_token": refresh_token}
        raw = self.request("POST", "/api/auth/refresh", content=msgspec.json.encode(body))
        return msgspec.json.decode(raw, type=TokenPair)

    def logout(self, token: str, refresh_token: str) -> None:
        body = {"refresh_token": refresh_token}
        self.request("POST", "/api/auth/logout", token=token, content=msgspec.json.encode(body))

    def push(self, token: str, request: PushRequest) -> PushResponse:
        raw = self.request("POST", PUSH_PATH, token=token, content=msgspec.json.encode(request))
        response = msgspec.json.decode(raw, type=PushResponse)
        self.learn_server_time(response.server_time.timestamp())
        return response

    def pull(self, token: str, cursor: str, ack_resync: str = "") -> PullResponse:
        params = {"cursor": cursor}
        if ack_resync:
            params["ack_resync"] = ack_resync
        raw = self.request("GET", PULL_PATH, token=token, params=params)
        response = msgspec.json.decode(raw, type=PullResponse)
        self.learn_server_time(response.server_time.timestamp())
        return response


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"detail": f"服务器返回 {response.status_code}"}
    return body if isinstance(body, dict) else {}
