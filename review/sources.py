"""What review needs from the rest of the system, as small interfaces that server.app wires.

Review does not import the case area. ``server.app`` puts a ``ReviewWiring`` into the app state
under ``WIRING_KEY``: a ``CaseFileSource`` that reads the case area, and listeners called after a
review approved or returned a case (for example: let the decision be issued, tell the terminal).
Until then the default wiring reads the case file recorded with the last proposed decision
(``route_proposal`` keeps it) and has no listeners.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from review.models import ReviewCase
from review.schemas import ReviewCaseFile, ReviewConcluded
from server.core.auth import Principal

WIRING_KEY = "review_wiring"
log = logging.getLogger("zhifa.review")

Listener = Callable[[ReviewConcluded], Awaitable[None]]


class CaseFileSource(Protocol):
    async def case_file(self, session: AsyncSession, case_id: uuid.UUID) -> ReviewCaseFile | None:
        """The case file as it stands now, or None when there is no such case."""
        ...

    async def playback_url(
        self, session: AsyncSession, case_id: uuid.UUID, evidence_id: str, viewer: Principal
    ) -> str | None:
        """A URL a browser can play the evidence item from, for this viewer, now.

        Called once per view, after review wrote the view to the ledger; a source backed by the
        media area hands out a short-lived access ticket here.
        """
        ...


class RecordedCaseFiles:
    """The case file handed to ``route_proposal`` last, as review recorded it."""

    async def case_file(self, session: AsyncSession, case_id: uuid.UUID) -> ReviewCaseFile | None:
        record = await session.get(ReviewCase, case_id)
        return None if record is None else msgspec.convert(record.case_file, ReviewCaseFile)

    async def playback_url(
        self, session: AsyncSession, case_id: uuid.UUID, evidence_id: str, viewer: Principal
    ) -> str | None:
        case = await self.case_file(session, case_id)
        items = [] if case is None else [e for e in case.evidence if e.id == evidence_id]
        return items[0].playback_url or None if items else None


@dataclass
class ReviewWiring:
    case_files: CaseFileSource = field(default_factory=RecordedCaseFiles)
    on_approved: list[Listener] = field(default_factory=list)
    on_returned: list[Listener] = field(default_factory=list)

    async def concluded(self, event: ReviewConcluded) -> None:
        """Tell the listeners, after commit. The review stands whatever a listener does."""
        for listener in self.on_approved if event.approved else self.on_returned:
            try:
                await listener(event)
            except Exception:
                log.exception("review listener %r failed for case %s", listener, event.case_id)


DEFAULT_WIRING = ReviewWiring()


def wiring_of(state: Any) -> ReviewWiring:
    return state.get(WIRING_KEY) or DEFAULT_WIRING
