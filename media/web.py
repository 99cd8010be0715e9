"""What media's controllers need from the application, without importing server.app (which sits
above media in the layers): the per-process context and the store."""

from __future__ import annotations

from typing import Protocol

from litestar.datastructures import State

from media.storage import Store, open_store
from server.core.clock import Clock
from server.core.db import Database
from server.core.keys import KeyRing
from server.core.settings import Settings


class MediaContext(Protocol):
    """The part of server.app.context.AppContext media uses."""

    settings: Settings
    clock: Clock
    database: Database

    async def keyring(self, *, refresh: bool = False) -> KeyRing: ...


def context_of(state: State) -> MediaContext:
    return state.context


def store_of(state: State) -> Store:
    """One store per process, made on first use from the settings."""
    store = state.get("media_store")
    if store is None:
        store = state["media_store"] = open_store(context_of(state).settings)
    return store
