"""The terminal's identity and the officer's session: device key, enrollment, login, token refresh.

The device key (Ed25519) is generated once and kept in ``device.key`` beside the store (0600),
written atomically before the server ever sees it. Tokens live in the store's ``session`` row and
are replaced in one transaction as soon as the server issues new ones.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.client import EdgeError, ServerClient, ServerRefused, TokenPair
from edge_agent.store import Store

T = TypeVar("T")
# Refresh a little before the server would refuse the token.
EXPIRY_MARGIN_SECONDS = 30


class NotEnrolled(EdgeError):
    code = "not_enrolled"


class NotLoggedIn(EdgeError):
    code = "not_logged_in"


class Session:
    def __init__(self, store: Store, home: Path) -> None:
        self.store = store
        self.key_path = home / "device.key"
        self._client: ServerClient | None = None

    # --- device key and client --------------------------------------------------------------------

    def device_key(self) -> Ed25519PrivateKey:
        if self.key_path.exists():
            return Ed25519PrivateKey.from_private_bytes(self.key_path.read_bytes())
        key = Ed25519PrivateKey.generate()
        temporary = self.key_path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(descriptor, key.private_bytes_raw())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, self.key_path)
        return key

    def _remember_offset(self, offset: float) -> None:
        with self.store.transaction() as db:
            db.set_meta("server_clock_offset", f"{offset:.3f}")

    def client(self, server_url: str | None = None) -> ServerClient:
        url = server_url or self.row("server_url")
        if self._client is None or self._client.base_url != url.rstrip("/"):
            if self._client is not None:
                self._client.close()
            self._client = ServerClient(
                url,
                self.device_key(),
                clock_offset=float(self.store.meta("server_clock_offset", "0")),
                on_offset=self._remember_offset,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- the session row ----------------------------------------------------------------------------

    def row(self, column: str) -> str:
        found = self.store.one(f"SELECT {column} FROM session WHERE id = 1")
        if found is None:
            raise NotEnrolled("本终端尚未注册，请先用注册码注册（zhifa-edge enroll）")
        return found[0]

    @property
    def enrolled(self) -> bool:
        return self.store.one("SELECT 1 FROM session WHERE id = 1") is not None

    @property
    def credential_number(self) -> str:
        number = self.row("credential_number")
        if not number:
            raise NotLoggedIn("请先登录（zhifa-edge login）并同步一次")
        return number

    def enroll(self, server_url: str, code: str, name: str) -> str:
        if self.enrolled:
            raise EdgeError("本终端已注册", code="already_enrolled")
        enrolled = self.client(server_url).enroll(code, name)
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO session (id, server_url, terminal_id, agency_id, terminal_name) "
                "VALUES (1, ?, ?, ?, ?)",
                (server_url.rstrip("/"), enrolled.terminal_id, enrolled.agency_id, enrolled.name),
            )
        return enrolled.terminal_id

    def _save_tokens(self, tokens: TokenPair, username: str | None = None) -> None:
        expires_at = self.client().server_now() + tokens.expires_in
        with self.store.transaction() as db:
            db.execute(
                "UPDATE session SET access_token = ?, refresh_token = ?, access_expires_at = ? "
                "WHERE id = 1",
                (tokens.access_token, tokens.refresh_token, expires_at),
            )
            if username is not None:
                db.execute(
                    "UPDATE session SET username = ?, credential_number = '' WHERE id = 1",
                    (username,),
                )

    def login(self, username: str, password: str) -> None:
        self.row("terminal_id")
        self._save_tokens(self.client().terminal_login(username, password), username)

    def set_credential_number(self, number: str) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE session SET credential_number = ? WHERE id = 1", (number,))

    def logout(self) -> None:
        """Forget the officer's tokens; his queued events stay and sync with the next login."""
        token, refresh = self.row("access_token"), self.row("refresh_token")
        if token:
            with contextlib.suppress(EdgeError):  # offline: the refresh token simply expires
                self.client().logout(token, refresh)
        with self.store.transaction() as db:
            db.execute(
                "UPDATE session SET access_token = '', refresh_token = '', access_expires_at = 0, "
                "username = '', credential_number = '' WHERE id = 1"
            )

    # --- authorised calls -----------------------------------------------------------------------------

    def _refresh(self) -> str:
        refresh = self.row("refresh_token")
        if not refresh:
            raise NotLoggedIn("请先登录（zhifa-edge login）")
        try:
            tokens = self.client().refresh(refresh)
        except ServerRefused as exc:
            if exc.status == 401:
                raise NotLoggedIn("登录已失效，请重新登录（zhifa-edge login）") from exc
            raise
        self._save_tokens(tokens)
        return tokens.access_token

    def access_token(self) -> str:
        token = self.row("access_token")
        if not token:
            raise NotLoggedIn("请先登录（zhifa-edge login）")
        expires_at = float(self.row("access_expires_at"))
        if self.client().server_now() > expires_at - EXPIRY_MARGIN_SECONDS:
            return self._refresh()
        return token

    def call(self, work: Callable[[ServerClient, str], T]) -> T:
        """Run ``work(client, access_token)``, refreshing the token once when the server says so."""
        try:
            return work(self.client(), self.access_token())
        except ServerRefused as exc:
            if exc.status != 401 or exc.reason != "token_expired":
                raise
        return work(self.client(), self._refresh())
