"""What review needs from the rest of the system, as a small interface that server.app wires.

Review does not import the case area. ``server.app`` puts a ``ReviewWiring`` into the app state
under ``WIRING_KEY`` with a ``CaseFileSource`` that reads the case area. Until then the default
wiring reads the case file recorded with the last proposed decision (``route_proposal`` keeps it).

Nothing is notified when a review concludes: the terminals read the outcome from the review
record at every pull (``review.outcomes``), the issue gate and disclosure ask the gate each time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from review.models import ReviewCase
from review.schemas import ReviewCaseFile
from server.core.auth import Principal

WIRING_KEY = "review_wiring"


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


@dataclass(frozen=True)
class ReviewWiring:
    case_files: CaseFileSource = field(default_factory=RecordedCaseFiles)


DEFAULT_WIRING = ReviewWiring()


def wiring_of(state: Any) -> ReviewWiring:
    return state.get(WIRING_KEY) or DEFAULT_WIRING
