"""Staff-side messages of the sync area (the terminal-side ones are in mobile_api.contracts.sync)."""

from __future__ import annotations

import uuid

import msgspec


class ResyncRequest(msgspec.Struct, frozen=True, kw_only=True):
    terminal_ids: list[uuid.UUID] | None = None  # None: every terminal of the agency
    reason: str = ""


class ResyncOrdered(msgspec.Struct, frozen=True, kw_only=True):
    orders: list[uuid.UUID]
    terminals: list[uuid.UUID]
