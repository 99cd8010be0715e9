"""What this area's jobs and controllers need from the application, named without importing
``server.app`` (the layers of DESIGN.md §3 keep areas below it).

Routes declare their roles with ``server.core.roles``;
the application context (``state.context``) offers the members of ``Runtime``.
"""

from __future__ import annotations

from typing import Protocol

from litestar.datastructures import State

from server.core.clock import Clock
from server.core.db import Database
from server.core.keys import KeyRing


class Runtime(Protocol):
    """The part of server.app.context.AppContext disclosure uses."""

    clock: Clock
    database: Database

    async def keyring(self, *, refresh: bool = False) -> KeyRing: ...


def runtime_of(state: State) -> Runtime:
    return state.context
