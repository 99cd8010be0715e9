"""The officer's e-credential on the terminal (issue 3): the card with its changing QR, the
partner's offline check and the gates that keep an action from being recorded without them.

At login and after every sync the agent fetches the officer's pre-signed QR codes (``TokenBatch``)
and the agency's keys, signed status list and roster (``CredentialCache``), and keeps both in the
store; everything here then works with no network until the batch runs out.

Gates (``Desk.guards``):

* the officer's own credential must be valid (and cover the case's 执法类别 and 区域) before he
  opens a case or records an action toward the party;
* an action that needs two officers (第42条) waits until the case holds a passing check of the
  officer's own credential and of a partner's, each recorded in the case as a ``credential_shown``
  event with ``checked_by``. Only ``check_partner`` records such checks (the officer cannot type
  ``checked_by`` in: ``edge_agent.cases.TERMINAL_FIELDS``). There is no switch: the only exemption
  is the agencies' default one-officer rule (当场处理 ending in a warning), as on the server.
"""

from __future__ import annotations

import datetime as dt
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from edge_agent.cases import CaseRow, Desk
from edge_agent.client import EdgeError, ServerClient, ServerRefused
from edge_agent.session import Session
from edge_agent.store import Store
from edge_agent.sync import SyncReport
from mobile_api.contracts.credential import (
    CHINA_TZ,
    CredentialCache,
    CredentialCard,
    CredentialPolicy,
    Finding,
    OfflineCheck,
    TokenBatch,
    check_offline,
    check_own_credential,
    load_policy,
)
from mobile_api.contracts.events import EVENT_TYPES, CredentialShown, DecisionProposed

SCHEMA = """
CREATE TABLE IF NOT EXISTS credential_cache (
    name TEXT PRIMARY KEY CHECK (name IN ('batch', 'cache')),
    body BLOB NOT NULL,
    fetched_at TEXT NOT NULL
)
"""
QR_BATCH_PATH = "/api/credentials/me/qr-batch"
CACHE_PATH = "/api/credentials/cache"
VERDICT_LABELS = {"valid": "有效", "invalid": "无效", "cannot_confirm": "无法确认"}
# Kinds that are not actions toward the party, or that are the check itself.
_UNGATED = {"credential_shown"}


class CredentialMissing(EdgeError):
    code = "credential_cache_missing"


class CredentialRefused(EdgeError):
    """The officer's own credential does not allow him to act now."""

    code = "own_credential_invalid"


class PartnerCheckRequired(EdgeError):
    code = "credential_checks_missing"


class PartnerCheckFailed(EdgeError):
    code = "partner_credential_invalid"


class CardView(msgspec.Struct, frozen=True, kw_only=True):
    """What the card screen shows, computed from the cache at ``now``."""

    number: str
    name: str
    unit: str
    agency: str
    categories: list[str]
    regions: list[str]
    issued_on: dt.date
    expires_on: dt.date
    photo: str  # path of the cached photo, "" when the server has none
    url: str | None  # the QR content now; None once the batch ran out (sync needed)
    refresh_seconds: int  # until the next code
    batch_ends_at: dt.datetime
    verdict: str
    findings: list[Finding]


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """A partner check: the offline verdict with every reason, and the events recorded for it."""

    verdict: str
    verdict_label: str
    findings: list[Finding]
    card: CredentialCard | None = None
    recorded: list[str] = msgspec.field(default_factory=list)  # event ids


def _messages(findings: list[Finding]) -> str:
    return "；".join(f.message for f in findings)


class Wallet:
    def __init__(
        self,
        store: Store,
        session: Session,
        desk: Desk,
        clock: Callable[[], dt.datetime],
        home: Path,
        policy: CredentialPolicy | None = None,
    ) -> None:
        self.store = store
        self.session = session
        self.desk = desk
        self.clock = clock
        self.home = home
        self.policy = policy or load_policy()
        with store.transaction() as db:
            db.executescript_in_transaction(SCHEMA)

    # --- cache ------------------------------------------------------------------------------------

    def refresh(self, report: SyncReport | None = None) -> None:
        """Fetch the QR batch and the check cache, each stored as soon as it arrives.

        They are fetched independently: the server refuses new codes to an officer whose
        credential is no longer valid, and the fresh status list is exactly what must then
        reach the terminal so that its own-credential gate refuses him.
        """
        notes = report.notes if report is not None else []
        for name, path, kind in (
            ("cache", CACHE_PATH, CredentialCache),
            ("batch", QR_BATCH_PATH, TokenBatch),
        ):

            def fetch(client: ServerClient, token: str, path: str = path) -> bytes:
                return client.request("GET", path, token=token)

            try:
                raw = self.session.call(fetch)
            except ServerRefused as exc:
                notes.append(
                    f"执法证件{'二维码' if name == 'batch' else '核验数据'}未更新：{exc.message}"
                )
                continue
            value = msgspec.json.decode(raw, type=kind)  # refuse garbage before storing it
            with self.store.transaction() as db:
                db.execute(
                    "INSERT INTO credential_cache (name, body, fetched_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET body = excluded.body, "
                    "fetched_at = excluded.fetched_at",
                    (name, raw, self.clock().isoformat()),
                )
            if isinstance(value, TokenBatch):
                self._save_photo(value)
                notes.append(f"执法证件二维码已更新，可离线使用至 {_local(value.ends_at)}")

    def _save_photo(self, batch: TokenBatch) -> None:
        for old in self.home.glob("photo.*"):
            old.unlink()
        if batch.photo:
            path = self.photo_path(batch)
            path.write_bytes(batch.photo)

    def photo_path(self, batch: TokenBatch) -> Path:
        suffix = mimetypes.guess_extension(batch.photo_type or "") or ".bin"
        return self.home / f"photo{suffix}"

    def _load(self, name: str) -> bytes:
        row = self.store.one("SELECT body FROM credential_cache WHERE name = ?", (name,))
        if row is None:
            raise CredentialMissing("本终端没有执法证件缓存，请联网登录或同步一次")
        return row["body"]

    def batch(self) -> TokenBatch:
        return msgspec.json.decode(self._load("batch"), type=TokenBatch)

    def cache(self) -> CredentialCache:
        return msgspec.json.decode(self._load("cache"), type=CredentialCache)

    # --- the card -----------------------------------------------------------------------------

    def card(self) -> CardView:
        batch, now = self.batch(), self.clock()
        card = batch.card
        own = self.own_check()
        elapsed = (int(now.timestamp()) - batch.first_slot) % batch.slot_seconds
        photo = self.photo_path(batch) if batch.photo else None
        return CardView(
            number=card.number,
            name=card.name,
            unit=card.unit,
            agency=card.agency_name,
            categories=card.categories,
            regions=card.regions,
            issued_on=card.issued_on,
            expires_on=card.expires_on,
            photo=str(photo) if photo and photo.exists() else "",
            url=batch.url_at(now),
            refresh_seconds=batch.slot_seconds - elapsed,
            batch_ends_at=batch.ends_at,
            verdict=own.verdict,
            findings=own.findings,
        )

    # --- checks ---------------------------------------------------------------------------------

    def own_check(self, case: CaseRow | None = None) -> OfflineCheck:
        return check_own_credential(
            self.batch().card.credential_id,
            self.cache(),
            category=case.category if case else None,
            region=case.region if case else None,
            now=self.clock(),
            policy=self.policy,
        )

    def require_own(self, case: CaseRow) -> OfflineCheck:
        checked = self.own_check(case)
        if not checked.ok:
            raise CredentialRefused(
                f"本人执法证件{VERDICT_LABELS[checked.verdict]}，不能开展执法活动："
                f"{_messages(checked.findings)}",
                findings=[msgspec.to_builtins(f) for f in checked.findings],
            )
        return checked

    def check_partner(self, scanned: str, case_id: str) -> CheckResult:
        """Check a partner's scanned code offline against the case; when it passes, record both
        checks (own and partner) in the case, once per credential."""
        case = self.desk.case(case_id)
        checked = check_offline(
            scanned,
            self.cache(),
            category=case.category,
            region=case.region,
            now=self.clock(),
            policy=self.policy,
        )
        result = CheckResult(
            verdict=checked.verdict,
            verdict_label=VERDICT_LABELS[checked.verdict],
            findings=checked.findings,
            card=checked.card,
        )
        if not checked.ok or checked.card is None:
            return result
        own_number = self.session.credential_number
        if checked.card.number == own_number:
            raise PartnerCheckFailed("扫描的是本人的执法证件，请扫描同行执法人员的证件")
        if checked.card.number not in case.officers:
            raise PartnerCheckFailed(
                f"证号 {checked.card.number}（{checked.card.name}）不是本案的执法人员，"
                f"本案执法人员：{'、'.join(case.officers)}"
            )
        own = self.require_own(case)
        checks = self.checked_numbers(case.id)
        recorded = []
        for number, shown, scanned_code in (
            (own_number, own, False),
            (checked.card.number, checked, True),
        ):
            if number in checks:
                continue
            event = self.desk.record(
                case.id,
                "credential_shown",
                {"credential_number": number, "scanned": scanned_code},
                terminal_fields={
                    "checked_by": own_number,
                    "status_list_issued_at": shown.status_list_issued_at,
                },
            )
            recorded.append(str(event.id))
        return msgspec.structs.replace(result, recorded=recorded)

    def checked_numbers(self, case_id: str) -> set[str]:
        """Credentials whose check this case holds (not refused by the server)."""
        rows = self.store.query(
            "SELECT body FROM events WHERE case_id = ? AND kind = 'credential_shown' "
            "AND status != 'rejected'",
            (case_id,),
        )
        shown = [msgspec.json.decode(r["body"], type=CredentialShown) for r in rows]
        return {e.credential_number for e in shown if e.checked_by}

    # --- gates ----------------------------------------------------------------------------------

    def _one_officer_allowed(self, case: CaseRow, fields: dict[str, Any]) -> bool:
        # The agencies' default rule (mobile_api/cases/rules.py OneOfficerRule): 当场处理 may be
        # done by one officer when it ends in a warning, judged by the decision being proposed or
        # else the last one proposed on this terminal (before any, on trust, as on the server).
        # The server holds and enforces the agency's own rules.
        if case.procedure != "当场处理":
            return False
        penalties = fields.get("penalties")
        if penalties is None:
            row = self.store.one(
                "SELECT body FROM events WHERE case_id = ? AND kind = 'decision_proposed' "
                "AND status != 'rejected' ORDER BY seq DESC LIMIT 1",
                (case.id,),
            )
            penalties = (
                None
                if row is None
                else msgspec.json.decode(row["body"], type=DecisionProposed).penalties
            )
        return penalties is None or set(penalties) <= {"警告"}

    def guard(self, kind: str, case: CaseRow, fields: dict[str, Any]) -> None:
        cls = EVENT_TYPES[kind]
        if kind in _UNGATED or not cls.needs_two_officers:
            return
        self.require_own(case)
        if kind == "case_opened" or self._one_officer_allowed(case, fields):
            return
        own = self.session.credential_number
        checks = self.checked_numbers(case.id)
        partners = sorted(checks & set(case.officers) - {own})
        missing = []
        if own not in checks:
            missing.append(f"本人（{own}）")
        if not partners:
            missing.append("同行执法人员")
        if missing:
            raise PartnerCheckRequired(
                "该执法行为须由两名执法人员共同进行（《行政处罚法》第四十二条），"
                f"尚缺{'、'.join(missing)}的执法证件核验，"
                "请先扫描同行执法人员的证件二维码（zhifa-edge check-partner）"
            )


def _local(at: dt.datetime) -> str:
    return at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")


def card_lines(view: CardView) -> list[str]:
    """The card as text lines for a terminal window (without the QR)."""
    status = VERDICT_LABELS[view.verdict]
    lines = [
        "行政执法证",
        f"姓名：{view.name}",
        f"证号：{view.number}",
        f"单位：{view.unit}（{view.agency}）",
        f"执法类别：{'、'.join(view.categories)}",
        f"执法区域：{'、'.join(view.regions)}",
        f"有效期：{view.issued_on} 至 {view.expires_on}",
        f"证件状态：{status}" + (f"（{_messages(view.findings)}）" if view.findings else ""),
        f"照片：{view.photo or '无'}",
    ]
    return lines
