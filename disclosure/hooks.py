"""What other areas contribute to disclosure, as plain callables wired in server.app (disclosure
may not import review or mobile_api, DESIGN.md §3):

* ``may_publish(session, case_id)`` — the review gate: ``True`` lets a decision be published; ``False``
  or a reason (str) holds it, and it is asked again at every run. Default: allow.
* ``review_catalog(session, agency_id)`` — the agency's 法制审核目录清单 for the public portal.
  Default: none published yet.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from disclosure.schemas import ReviewCatalogEntry

# Key of the hooks in the Litestar application state.
STATE_KEY = "disclosure_hooks"

PublishGate = Callable[[AsyncSession, uuid.UUID], Awaitable["bool | str"]]
ReviewCatalogSource = Callable[[AsyncSession, uuid.UUID], Awaitable[Sequence[ReviewCatalogEntry]]]


async def allow_all(session: AsyncSession, case_id: uuid.UUID) -> bool | str:
    return True


async def no_review_catalog(
    session: AsyncSession, agency_id: uuid.UUID
) -> Sequence[ReviewCatalogEntry]:
    return ()


@dataclass(frozen=True)
class DisclosureHooks:
    may_publish: PublishGate = allow_all
    review_catalog: ReviewCatalogSource = no_review_catalog


def hooks_of(state: Any) -> DisclosureHooks:
    """The hooks server.app put in the application state, or the defaults."""
    hooks = state.get(STATE_KEY) if hasattr(state, "get") else None
    return hooks if isinstance(hooks, DisclosureHooks) else DisclosureHooks()
