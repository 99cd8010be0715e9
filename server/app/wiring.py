"""Cross-area reactions, wired once per application (the areas may not import each other).

* A decision proposed on a case (``mobile_api.signals.decision_listeners``) is routed to legal
  review (``review.services.route_proposal``) from the real case file, in its own transaction.
* Review reads the case file from the case area (``CaseFiles``), with evidence played back through
  the media area's logged access tickets.
* The issue gate: a decision document is served only if review's gate lets it through
  (``mobile_api.gates.CaseHooks.serve_checks``); a case whose decision was never routed (its
  post-commit routing failed, or it was proposed in the same push) is routed there first, so
  minor decisions pass and nothing is served unrouted. Registering a final decision printed on a
  terminal (``CaseHooks.print_checks``) passes the same gate; a case the server does not hold is
  refused until its events arrive. Disclosure publishes only what the same gate allows, and shows
  review's catalog on the portal.
* The handling officers' terminals pull the review outcome of their open cases (reference kind
  ``review_outcome``, ``review.outcomes``), read from the review record at every pull.
* A served decision is scheduled for disclosure (``disclosure.services.record_decision``); a
  change recorded on the case withdraws it (``disclosure.services.withdraw``) in the same
  transaction.
* A credential scan (``mobile_api.credentials.verification.scan_listeners``) becomes a 亮证 event
  of the officer's open case: one per code shown, a whole flush's in one transaction.

The signal lists are process-wide while apps are not (tests build many), so one dispatcher per
list is installed once and finds the app of the request it runs in through a context variable
that ``enter`` (a ``before_request`` hook) sets; the scan writer's tasks are made inside a request
of their own app and carry that variable along.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from decimal import Decimal
from typing import Any

from litestar import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from disclosure import services as disclosure
from disclosure.hooks import STATE_KEY as DISCLOSURE_HOOKS
from disclosure.hooks import DisclosureHooks
from disclosure.schemas import DecisionChanged, DecisionIssued, ReviewCatalogEntry
from disclosure.schemas import Organisation as PublicOrganisation
from disclosure.schemas import Person as PublicPerson
from media.evidence import services as media
from media.evidence.controllers import EVIDENCE_PATH
from media.models import Evidence
from mobile_api import gates, signals
from mobile_api.cases import assembly, decisions, scans
from mobile_api.cases.assembly import CaseFile
from mobile_api.contracts.events import (
    EVENT_LABELS,
    DecisionProposed,
    Organisation,
    Person,
    decode_event,
)
from mobile_api.contracts.sync import Reference
from mobile_api.credentials import verification
from mobile_api.credentials.verification import CredentialScanned
from mobile_api.models import Case, CaseEvent, CaseOfficer
from mobile_api.signals import DecisionMade
from mobile_api.sync.services import REFERENCE_SOURCES, PullScope
from review import schemas as rv
from review.catalog import published_catalog
from review.gate import GateAction, decision_gate, refusal, require_review_passed
from review.outcomes import outcome_refs
from review.services import route_proposal
from review.sources import WIRING_KEY, RecordedCaseFiles, ReviewWiring
from server.app.context import AppContext
from server.core.auth import Principal
from server.core.clock import CHINA_TZ

log = logging.getLogger("zhifa.wiring")

# PyAV's container names → the type a browser's <video> is told.
_MEDIA_TYPES = {"mov": "video/mp4", "mp4": "video/mp4", "mpegts": "video/mp2t"}


def _party(party: Person | Organisation) -> rv.CaseParty:
    if isinstance(party, Person):
        return rv.CaseParty(
            type="person", name=party.name, id_code=party.id_number, minor=party.minor
        )
    return rv.CaseParty(type="organisation", name=party.name, id_code=party.credit_code)


def _conclusion(decision: assembly.DecisionState) -> str:
    """执法结论 in words, from the penalties and amounts of the decision."""
    if decision.penalties == [assembly.NO_PENALTY]:
        return "决定不予行政处罚"
    parts = []
    for penalty in decision.penalties:
        if penalty == "罚款":
            parts.append(f"罚款人民币{decision.fine_yuan.normalize():f}元")
        elif penalty.startswith("没收") and decision.confiscation_yuan > Decimal(0):
            parts.append(f"{penalty}（价值人民币{decision.confiscation_yuan.normalize():f}元）")
        else:
            parts.append(penalty)
    return "决定给予" + "、".join(parts)


class CaseFiles:
    """Review's ``CaseFileSource``: the case file as the case area holds it now.

    A case the case area does not hold (proposed from a console, not a terminal) is read as
    review recorded it when it was routed.
    """

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self.recorded = RecordedCaseFiles()

    async def build(
        self, session: AsyncSession, file: CaseFile, proposal: DecisionProposed | None
    ) -> rv.ReviewCaseFile:
        """The review's view of ``file``; ``proposal`` when it is not stored yet (same push)."""
        assert file.decision is not None
        proposal = proposal or await decisions.proposed_event(session, file)
        events = await session.execute(
            select(CaseEvent.kind, CaseEvent.recorded_at, CaseEvent.payload)
            .where(CaseEvent.case_id == file.case_id, CaseEvent.outcome == "accepted")
            .order_by(CaseEvent.hlc, CaseEvent.id)
        )
        recordings = {
            str(row.recording_id): row
            for row in await session.scalars(
                select(Evidence).where(
                    Evidence.agency_id == file.agency_id, Evidence.case_id == file.case_id
                )
            )
        }
        return rv.ReviewCaseFile(
            case_id=file.case_id,
            agency_id=file.agency_id,
            title=file.title,
            category=file.category,
            item_code=file.item_code,
            region=file.region,
            procedure=file.procedure,
            officers=[rv.CaseOfficer(number=o.number, name=o.name) for o in file.officers],
            parties=[_party(entry.party) for entry in file.parties],
            timeline=[
                rv.TimelineEntry(
                    at=at,
                    label=EVENT_LABELS.get(kind, kind),
                    officers=list(decode_event(payload).officers),
                )
                for kind, at, payload in events
            ],
            evidence=[
                rv.EvidenceItem(
                    id=str(entry.evidence_id),
                    kind=entry.evidence_kind,
                    description=entry.description,
                    media_type=_MEDIA_TYPES.get(recording.container.split(",")[0], "")
                    if (recording := recordings.get(entry.recording_id))
                    else "",
                    recorded_at=entry.recorded_at,
                )
                for entry in file.evidence
            ],
            documents=[
                rv.CaseDocument(name=d.name, number=d.number, status="已送达", dated=d.served_on)
                for d in file.documents
            ],
            proposal=rv.ProposedDecision(
                penalties=file.decision.penalties,  # type: ignore[arg-type]
                fine_yuan=file.decision.fine_yuan,
                confiscation_yuan=file.decision.confiscation_yuan,
                violation=file.item_code,
                facts=proposal.facts if proposal else "",
                legal_basis=proposal.legal_basis if proposal else "",
            ),
        )

    async def case_file(
        self, session: AsyncSession, case_id: uuid.UUID
    ) -> rv.ReviewCaseFile | None:
        row = await session.get(Case, case_id)
        if row is None:
            return await self.recorded.case_file(session, case_id)
        file = assembly.file_from_json(row.file)
        return None if file.decision is None else await self.build(session, file, None)

    async def playback_url(
        self, session: AsyncSession, case_id: uuid.UUID, evidence_id: str, viewer: Principal
    ) -> str | None:
        row = await session.get(Case, case_id)
        if row is None:
            return await self.recorded.playback_url(session, case_id, evidence_id, viewer)
        file = assembly.file_from_json(row.file)
        entries = [e for e in file.evidence if str(e.evidence_id) == evidence_id]
        if not entries or not entries[0].recording_id:
            return None
        try:
            recording_id = uuid.UUID(entries[0].recording_id)
        except ValueError:
            return None  # a recording named by the terminal that the media area never received
        evidence = await session.scalar(
            select(Evidence).where(
                Evidence.recording_id == recording_id, Evidence.agency_id == file.agency_id
            )
        )
        if evidence is None:
            return None
        # The media area writes its own access entry and hands out a short-lived ticket.
        evidence, entry = await media.log_access(
            session,
            await self.context.keyring(),
            viewer,
            evidence.id,
            "play",
            self.context.clock.now(),
        )
        grant = await media.access_ticket(
            self.context, evidence, entry, viewer, "play", f"{EVIDENCE_PATH}/{evidence.id}/content"
        )
        return grant.url


class Reactions:
    """The reactions of one application, over its context."""

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self.case_files = CaseFiles(context)

    async def _case_file(self, session: AsyncSession, case_id: uuid.UUID) -> CaseFile | None:
        row = await session.get(Case, case_id)
        return None if row is None else assembly.file_from_json(row.file)

    # --- review ---------------------------------------------------------------------------------

    async def route_decision(self, decision: DecisionMade) -> None:
        keyring = await self.context.keyring()
        async with self.context.database.transaction() as session:
            file = await self._case_file(session, decision.case_id)
            if file is None or file.decision is None:
                return
            case = await self.case_files.build(session, file, None)
            await route_proposal(session, keyring, case, now=self.context.clock.now())

    async def _gate(
        self,
        session: AsyncSession,
        file: CaseFile,
        proposal: DecisionProposed | None,
        action: GateAction,
    ) -> None:
        """Review's gate for ``action``; a decision never routed is routed first."""
        if not (await decision_gate(session, file.case_id)).routed:
            case = await self.case_files.build(session, file, proposal)
            await route_proposal(
                session, await self.context.keyring(), case, now=self.context.clock.now()
            )
        await require_review_passed(session, file.case_id, action)

    async def serve_gate(
        self, session: AsyncSession, file: CaseFile, proposal: DecisionProposed | None
    ) -> None:
        await self._gate(session, file, proposal, GateAction.SERVE)

    async def print_gate(self, session: AsyncSession, printed: gates.FinalDecisionPrinted) -> None:
        """A final decision is registered only for a case the server holds, with its decision
        proposed and allowed by review: otherwise whether it is major cannot even be known."""
        file = await self._case_file(session, printed.case_id)
        if file is None or file.agency_id != printed.agency_id:
            raise refusal(
                printed.case_id,
                GateAction.PRINT_FINAL,
                ["服务器尚未收到该案件的执法记录，请先同步案件，待判定是否须经法制审核后再登记"],
            )
        if file.decision is None:
            raise refusal(
                printed.case_id,
                GateAction.PRINT_FINAL,
                ["本案尚未记录拟处理决定，无法判定是否属于重大执法决定"],
            )
        await self._gate(session, file, None, GateAction.PRINT_FINAL)

    async def may_publish(self, session: AsyncSession, case_id: uuid.UUID) -> bool | str:
        status = await decision_gate(session, case_id)
        return True if status.allowed else "；".join(status.reasons)

    async def review_catalog(
        self, session: AsyncSession, agency_id: uuid.UUID
    ) -> list[ReviewCatalogEntry]:
        return [
            ReviewCatalogEntry(
                name=entry.name,
                category=entry.category,
                criterion=entry.criterion,
                basis=entry.basis,
            )
            for entry in await published_catalog(session, agency_id)
        ]

    # --- disclosure -----------------------------------------------------------------------------

    async def decision_served(self, served: gates.DecisionServed) -> None:
        calendar = await self.context.calendar()
        keyring = await self.context.keyring()
        async with self.context.database.transaction() as session:
            file = await self._case_file(session, served.case_id)
            if file is None or file.decision is None:
                return
            number = served.document_number or await decisions.decision_number(session, file)
            if not number:
                log.error(
                    "decision served on case %s without a 决定书文号: not scheduled for disclosure",
                    served.case_id,
                )
                return
            party = file.parties[0].party
            subject = (
                PublicPerson(name=party.name, minor=party.minor)
                if isinstance(party, Person)
                else PublicOrganisation(name=party.name, credit_code=party.credit_code)
            )
            proposal = await decisions.proposed_event(session, file)
            review = await decision_gate(session, served.case_id)
            await disclosure.record_decision(
                session,
                DecisionIssued(
                    case_id=file.case_id,
                    agency_id=file.agency_id,
                    decision_number=number,
                    decision_date=file.decision.decided_on,
                    served_on=served.served_at.astimezone(CHINA_TZ).date(),
                    act_kind=file.act_kind,  # type: ignore[arg-type]
                    category=file.category,
                    subject=subject,
                    conclusion=_conclusion(file.decision),
                    outcome="、".join(file.decision.penalties),
                    basis=proposal.legal_basis if proposal else "",
                    facts=proposal.facts if proposal else "",
                    other_persons=[
                        p.party.representative
                        for p in file.parties
                        if isinstance(p.party, Organisation) and p.party.representative
                    ],
                    legal_review=review.major and review.approved,
                    # A requested hearing is held unless the case records otherwise.
                    hearing=file.hearing_requested_on is not None,
                ),
                calendar=calendar,
                keyring=keyring,
                now=self.context.clock.now(),
            )

    async def decision_changed(self, session: AsyncSession, change: gates.DecisionChange) -> None:
        try:
            await disclosure.withdraw(
                session,
                DecisionChanged(
                    case_id=change.case_id,
                    agency_id=change.agency_id,
                    decision_number=change.decision_number,
                    change=change.change,  # type: ignore[arg-type]
                    via=change.via,  # type: ignore[arg-type]
                    reason=change.reason,
                    changed_on=change.changed_on,
                ),
                calendar=await self.context.calendar(),
                keyring=await self.context.keyring(),
                now=change.recorded_at,
            )
        except disclosure.DecisionUnknown:
            # Never scheduled (served without a number): nothing public to withdraw.
            log.warning("change of case %s: disclosure has no such decision", change.case_id)

    # --- credentials ----------------------------------------------------------------------------

    async def credentials_scanned(self, scanned: list[CredentialScanned]) -> None:
        """A flush's announced scans: their 亮证 events in one transaction, which also marks the
        scans announced; if it fails they stay pending and are announced again."""
        keyring = await self.context.keyring()
        async with self.context.database.transaction() as session:
            await scans.record_credential_scans(
                session,
                keyring,
                [
                    scans.ScanShown(
                        scan_id=scan.scan_id,
                        credential_number=scan.credential_number,
                        officer_id=scan.officer_id,
                        agency_id=scan.agency_id,
                        scanned_at=scan.scanned_at,
                        code_nonce=scan.code_nonce,
                    )
                    for scan in scanned
                ],
                now=self.context.clock.now(),
            )
            await verification.mark_announced(session, (scan.scan_id for scan in scanned))


async def review_outcomes(session: AsyncSession, scope: PullScope) -> list[Reference]:
    """Pull source ``review_outcome``: the review outcome of the officer's open cases."""
    own_open_cases = (
        select(Case.id)
        .join(CaseOfficer, CaseOfficer.case_id == Case.id)
        .where(
            Case.agency_id == scope.agency_id,
            CaseOfficer.credential_number == scope.credential_number,
            Case.state != assembly.CaseState.CLOSED,
        )
    )
    return list(await outcome_refs(session, scope.agency_id, own_open_cases))


_current: contextvars.ContextVar[Reactions | None] = contextvars.ContextVar(
    "zhifa_reactions", default=None
)


async def _route_decision(decision: DecisionMade) -> None:
    reactions = _current.get()
    if reactions is not None:
        await reactions.route_decision(decision)


async def _credentials_scanned(scanned: list[CredentialScanned]) -> None:
    reactions = _current.get()
    if reactions is not None:
        await reactions.credentials_scanned(scanned)


class Wiring:
    """What ``create_app`` needs: the state entries, the disclosure hooks, the request hook."""

    def __init__(self, context: AppContext) -> None:
        self.reactions = reactions = Reactions(context)
        self.disclosure = DisclosureHooks(
            may_publish=reactions.may_publish, review_catalog=reactions.review_catalog
        )
        self.state: dict[str, Any] = {
            DISCLOSURE_HOOKS: self.disclosure,
            WIRING_KEY: ReviewWiring(case_files=reactions.case_files),
            gates.STATE_KEY: gates.CaseHooks(
                serve_checks=[reactions.serve_gate],
                print_checks=[reactions.print_gate],
                served_listeners=[reactions.decision_served],
                change_listeners=[reactions.decision_changed],
            ),
        }

    async def enter(self, request: Request[Any, Any, Any]) -> None:
        """``before_request``: the signal dispatchers act for this request's application."""
        _current.set(self.reactions)


def wire(context: AppContext) -> Wiring:
    if _route_decision not in signals.decision_listeners:
        signals.decision_listeners.append(_route_decision)
    if _credentials_scanned not in verification.scan_listeners:
        verification.scan_listeners.append(_credentials_scanned)
    REFERENCE_SOURCES["review_outcome"] = review_outcomes
    return Wiring(context)
