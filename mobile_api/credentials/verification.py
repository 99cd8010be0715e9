"""The public verification of a scanned code: token check, rate limit, scan record, live status.

Many parties scan at once, so the database work of concurrent requests is grouped: each request
queues its scan and waits; one flush at a time writes the scan rows and reads the live credential
rows of every queued scan (with whether each officer has an open case) in ONE transaction of two
statements, then answers them all (a third names the scans to announce, if any). The scans are in the database before any answer leaves, and
the status is read after the request arrived. Only the per-client rate limit lives in memory
(``RateLimiter``): it is a guard, not a record.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncSession

from mobile_api.cases import scans
from mobile_api.contracts.credential import (
    NOT_GENUINE,
    Reason,
    TokenCheck,
    load_policy,
    token_time_findings,
    verify_token_signature,
)
from mobile_api.credential_models import CredentialScan, PendingScanAnnouncement, ScanOutcome
from mobile_api.web import AreaContext
from server.core.db import Database
from server.core.errors import BadRequest, NotFound, TooManyRequests, ZhifaError
from server.core.keys import KeyRing
from server.core.models import Agency, Credential, CredentialStatus, Officer

log = logging.getLogger("zhifa.credentials")

SIGNATURE_CACHE_SIZE = 4096
# A code with an unknown key may come from a key another instance just created; look again,
# but not more often than this, so forged codes cannot make us hammer the database.
KEY_RELOAD_SECONDS = 10.0


class QrNotGenuine(BadRequest):
    code = "qr_not_genuine"
    title = "二维码不是真实的电子执法证件"


class QrExpired(ZhifaError):
    code = "qr_expired"
    status = 410
    title = "二维码已过期"


class QrNotYetValid(BadRequest):
    code = "qr_not_yet_valid"
    title = "二维码尚未生效"


class CredentialUnknown(NotFound):
    code = "credential_not_found"
    title = "没有找到该执法证件"


class CredentialScanned(msgspec.Struct, frozen=True, kw_only=True):
    """After-commit event: a party opened the page of a genuine, current code of an officer who
    had an open case when the scan was written. The case area turns it into a 亮证 event of that
    case, one per showing of a code (``code_nonce``) however often it is scanned; scans of
    officers without an open case are not announced."""

    scan_id: uuid.UUID
    credential_id: uuid.UUID
    credential_number: str
    officer_id: uuid.UUID
    agency_id: uuid.UUID
    scanned_at: dt.datetime
    code_issued_at: dt.datetime
    client_family: str
    code_nonce: bytes


ScanListener = Callable[[list[CredentialScanned]], Awaitable[None]]
# server.app subscribes the case area's reaction at start-up, as with mobile_api.signals:
#     verification.scan_listeners.append(cases.on_credential_scanned)
# Listeners run after the scan rows committed, off the party's request, with the announcements
# of whole flushes. Each scan stays pending (``PendingScanAnnouncement``) until a listener calls
# ``mark_announced`` in the transaction that acts on it; after a failure, the next flush (and the
# first one of an instance) announces every pending scan again, so listeners must be idempotent.
scan_listeners: list[ScanListener] = []
# Pending scans announced at once when catching up, at most.
BACKLOG_LIMIT = 1000


class ClientInfo(msgspec.Struct, frozen=True):
    key: str  # rate-limit key: truncated hash of the full address, never stored with scans
    family: str
    network: str


# Most specific first: in-app browsers carry the engine's token too.
_FAMILIES = (
    ("MicroMessenger", "wechat"),
    ("AlipayClient", "alipay"),
    ("DingTalk", "dingtalk"),
    ("QQ/", "qq"),
    ("UCBrowser", "uc"),
    ("Quark", "quark"),
    ("HuaweiBrowser", "huawei"),
    ("MiuiBrowser", "miui"),
    ("Edg/", "edge"),
    ("Firefox/", "firefox"),
    ("Chrome/", "chrome"),
    ("Safari/", "safari"),
    ("curl/", "curl"),
    ("python-httpx", "httpx"),
)
_SYSTEMS = (
    ("HarmonyOS", "harmonyos"),
    ("Android", "android"),
    ("iPhone", "ios"),
    ("iPad", "ios"),
    ("Windows", "windows"),
    ("Mac OS X", "macos"),
    ("Linux", "linux"),
)


@lru_cache(maxsize=1024)
def _family(user_agent: str) -> str:
    family = next((name for token, name in _FAMILIES if token in user_agent), "other")
    system = next((name for token, name in _SYSTEMS if token in user_agent), "other")
    return f"{family}/{system}"


@lru_cache(maxsize=4096)
def _address(host: str | None) -> tuple[str, str]:
    """Rate-limit key and coarse network of a client address (cached: clients come back)."""
    key = hashlib.sha256(f"zhifa-rate\0{host}".encode()).hexdigest()[:32]
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return key, ""
    prefix = 24 if address.version == 4 else 48
    return key, str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def client_info(host: str | None, user_agent: str) -> ClientInfo:
    key, network = _address(host)
    return ClientInfo(key=key, family=_family(user_agent), network=network)


def outcome_of(checked: TokenCheck) -> ScanOutcome:
    codes = {f.code for f in checked.findings}
    if checked.claims is None or codes & NOT_GENUINE:
        return ScanOutcome.NOT_GENUINE
    if Reason.CODE_EXPIRED in codes:
        return ScanOutcome.EXPIRED
    if Reason.CODE_NOT_YET_VALID in codes:
        return ScanOutcome.NOT_YET_VALID
    return ScanOutcome.VALID


class RateLimiter:
    """Requests per client in fixed windows, counted in this instance's memory.

    The limit guards against floods; it records nothing. A counter in the database cost every
    grouped write a round trip, so each instance counts for itself: behind N instances a client
    may make up to N times the limit. Only the current window is kept.
    """

    def __init__(self, requests: int, window_seconds: int) -> None:
        self.requests = requests
        self.window = window_seconds
        self._start = 0
        self._hits: dict[str, int] = {}

    def admit(self, key: str, at: dt.datetime) -> int:
        """Count one request: 0 when it is within the limit, else seconds until the next window."""
        second = int(at.timestamp())
        start = second // self.window * self.window
        if start > self._start:
            self._start, self._hits = start, {}
        hits = self._hits[key] = self._hits.get(key, 0) + 1
        return 0 if hits <= self.requests else max(1, self._start + self.window - second)


class Visit(msgspec.Struct, frozen=True, kw_only=True):
    """One opening of the page or its JSON by a client within the limit: a scan to record."""

    client: ClientInfo
    at: dt.datetime
    outcome: ScanOutcome
    credential_id: uuid.UUID | None = None
    code_issued_at: dt.datetime | None = None
    code_nonce: bytes | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to one request: within the limit, the scan row, the live credential if wanted."""

    allowed: bool
    scan_id: uuid.UUID | None = None
    credential: LiveCredential | None = None
    retry_after: int = 0


_Pending = tuple[Visit, "asyncio.Future[Admission]"]


class ScanWriter:
    """Group commit of scans (see the module docstring). One per application instance."""

    def __init__(self, database: Database) -> None:
        self.database = database
        # SQLite: each flush is one call into one worker thread, on a synchronous connection.
        # Through aiosqlite every cursor, execute, fetch and close is a hop between threads (a
        # dozen per flush), and under load each hop waits its turn for a core.
        self._thread_engine = database.thread_engine()
        self._thread = (
            ThreadPoolExecutor(1, thread_name_prefix="zhifa-scans") if self._thread_engine else None
        )
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._unannounced: list[CredentialScanned] = []
        # Pending scans may exist in the database that no listener has acted on: those of a
        # failed announcement, or of an instance that stopped before announcing.
        self._backlog = True
        self._announcer: asyncio.Task[None] | None = None

    async def submit(self, visit: Visit) -> Admission:
        future: asyncio.Future[Admission] = asyncio.get_running_loop().create_future()
        self._pending.append((visit, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            # Let the requests already read off the sockets reach the queue: fewer, fuller flushes.
            await asyncio.sleep(0)
            batch, self._pending = self._pending, []
            try:
                admissions = await self._write([visit for visit, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), admission in zip(batch, admissions, strict=True):
                if not future.done():
                    future.set_result(admission)
            self._announce(batch, admissions)

    async def _write(self, visits: list[Visit]) -> list[Admission]:
        scan_ids = [uuid.uuid4() for _ in visits]
        wanted = {
            v.credential_id for v in visits if v.outcome is ScanOutcome.VALID and v.credential_id
        }
        nonces = [v.code_nonce if v.outcome is ScanOutcome.VALID else None for v in visits]
        rows = [
            {
                "id": scan_id,
                "scanned_at": visit.at,
                "outcome": visit.outcome,
                "credential_id": visit.credential_id,
                "code_issued_at": visit.code_issued_at,
                "client_family": visit.client.family,
                "client_network": visit.client.network,
            }
            for scan_id, visit in zip(scan_ids, visits, strict=True)
        ]
        if self._thread_engine is None:
            async with self.database.engine.begin() as connection:
                live = await connection.run_sync(_flush, rows, wanted, nonces)
        else:
            live = await asyncio.get_running_loop().run_in_executor(
                self._thread, _flush_in, self._thread_engine, rows, wanted, nonces
            )
        return [
            Admission(
                True,
                scan_id,
                live.get(visit.credential_id)
                if visit.outcome is ScanOutcome.VALID and visit.credential_id
                else None,
            )
            for scan_id, visit in zip(scan_ids, visits, strict=True)
        ]

    def _announce(self, batch: Iterable[_Pending], admissions: Iterable[Admission]) -> None:
        if not scan_listeners:
            return  # the scans stay pending in the database for a listener to come
        for (visit, _), admission in zip(batch, admissions, strict=True):
            credential = admission.credential
            if credential is None or not credential.on_open_case or admission.scan_id is None:
                continue
            assert visit.code_issued_at is not None and visit.code_nonce is not None
            self._unannounced.append(
                CredentialScanned(
                    scan_id=admission.scan_id,
                    credential_id=credential.id,
                    credential_number=credential.number,
                    officer_id=credential.officer_id,
                    agency_id=credential.agency_id,
                    scanned_at=visit.at,
                    code_issued_at=visit.code_issued_at,
                    client_family=visit.client.family,
                    code_nonce=visit.code_nonce,
                )
            )
        if not (self._unannounced or self._backlog):
            return
        if self._announcer is None or self._announcer.done():
            self._announcer = asyncio.create_task(self._announce_all())

    async def _announce_all(self) -> None:
        """One announcement at a time, each of all the scans gathered meanwhile; after a failure,
        the pending scans are read back from the database on the next flush."""
        while self._unannounced or self._backlog:
            try:
                if self._backlog:
                    # Read after the flushes it covers committed: it includes their scans.
                    self._unannounced = []
                    announced = await self._read_pending()
                    self._backlog = len(announced) == BACKLOG_LIMIT  # more to read after these
                else:
                    announced, self._unannounced = self._unannounced, []
                if announced:
                    results = await asyncio.gather(
                        *(listener(announced) for listener in list(scan_listeners)),
                        return_exceptions=True,
                    )
                    for failure in (r for r in results if isinstance(r, BaseException)):
                        raise failure
            except Exception:
                # The scan rows are committed and still pending; the party's page is not affected.
                log.exception("announcing credential scans failed; retried on the next flush")
                self._backlog = True
                return

    async def _read_pending(self) -> list[CredentialScanned]:
        async with self.database.sessionmaker() as session:
            rows = await session.execute(_PENDING)
            return [CredentialScanned(**row._asdict()) for row in rows]


async def mark_announced(session: AsyncSession, scan_ids: Iterable[uuid.UUID]) -> None:
    """Inside the listener's transaction that acts on these scans: they are announced."""
    ids = list(scan_ids)
    if ids:
        await session.execute(
            delete(PendingScanAnnouncement).where(PendingScanAnnouncement.scan_id.in_(ids))
        )


_PENDING = (
    select(
        CredentialScan.id.label("scan_id"),
        Credential.id.label("credential_id"),
        Credential.number.label("credential_number"),
        Credential.officer_id,
        Credential.agency_id,
        CredentialScan.scanned_at,
        CredentialScan.code_issued_at,
        CredentialScan.client_family,
        PendingScanAnnouncement.code_nonce,
    )
    .join(CredentialScan, CredentialScan.id == PendingScanAnnouncement.scan_id)
    .join(Credential, Credential.id == CredentialScan.credential_id)
    .order_by(CredentialScan.scanned_at, CredentialScan.id)
    .limit(BACKLOG_LIMIT)
)


def _flush(
    connection: Connection,
    rows: list[dict[str, Any]],
    wanted: set[uuid.UUID],
    nonces: list[bytes | None],
) -> dict[uuid.UUID, LiveCredential]:
    """Core statements for a whole group (no ORM unit of work on the hot path): the scan rows,
    the live rows of every credential a valid code named, with whether each officer has an open
    case, and the scans to announce (valid codes of officers with an open case) as pending."""
    connection.execute(_INSERT_SCANS, rows)
    live = live_credentials(connection, wanted) if wanted else {}
    pending = [
        {"scan_id": row["id"], "code_nonce": nonce}
        for row, nonce in zip(rows, nonces, strict=True)
        if nonce is not None
        and (credential := live.get(row["credential_id"])) is not None
        and credential.on_open_case
    ]
    if pending:
        connection.execute(_INSERT_PENDING, pending)
    return live


def _flush_in(
    engine: Engine,
    rows: list[dict[str, Any]],
    wanted: set[uuid.UUID],
    nonces: list[bytes | None],
) -> dict[uuid.UUID, LiveCredential]:
    with engine.begin() as connection:
        return _flush(connection, rows, wanted, nonces)


class LiveCredential(msgspec.Struct, frozen=True, kw_only=True):
    """A credential as read for one flush: plain columns, no ORM state to carry around."""

    id: uuid.UUID
    number: str
    officer_id: uuid.UUID
    agency_id: uuid.UUID
    name: str
    unit: str
    agency_name: str
    categories: list[str]
    regions: list[str]
    issued_on: dt.date
    expires_on: dt.date
    status: CredentialStatus
    has_photo: bool
    on_open_case: bool  # the officer has an open case: a scan becomes its 亮证 event

    def effective_status(self, today: dt.date) -> str:
        # The rule of server.core.models (过期 past the expiry date) on these columns, not a copy.
        return Credential.effective_status(self, today)  # type: ignore[arg-type]


_LIVE = (
    select(
        Credential.id,
        Credential.number,
        Credential.officer_id,
        Credential.agency_id,
        Officer.name,
        Officer.unit,
        Agency.name.label("agency_name"),
        Credential.categories,
        Credential.regions,
        Credential.issued_on,
        Credential.expires_on,
        Credential.status,
        Credential.photo.is_not(None).label("has_photo"),
        scans.open_case_exists(Credential.agency_id, Credential.number).label("on_open_case"),
    )
    .join(Officer, Officer.id == Credential.officer_id)
    .join(Agency, Agency.id == Credential.agency_id)
    # Built once: constructing the statement and its cache key cost more than running it.
    .where(Credential.id.in_(bindparam("ids", expanding=True)))
)
_INSERT_SCANS = insert(CredentialScan)
_INSERT_PENDING = insert(PendingScanAnnouncement)


def live_credentials(
    connection: Connection, ids: set[uuid.UUID]
) -> dict[uuid.UUID, LiveCredential]:
    rows = connection.execute(_LIVE, {"ids": list(ids)})
    return {
        row.id: LiveCredential(
            **row._asdict()
            | {"has_photo": bool(row.has_photo), "on_open_case": bool(row.on_open_case)}
        )
        for row in rows
    }


class Verifier:
    """Per application instance: the policy, the group writer, a cache of verified signatures."""

    def __init__(self, context: AreaContext) -> None:
        self.context = context
        self.policy = load_policy()
        self.writer = ScanWriter(context.database)
        self.limiter = RateLimiter(
            self.policy.rate_limit_requests, self.policy.rate_limit_window_seconds
        )
        self._public: dict[str, bytes] = {}
        self._keys: dict[str, Ed25519PublicKey] = {}
        # A given token string either verifies under a given key set or not, forever: cache
        # the genuine ones (bounded), so repeated opening of one code costs no signature check.
        self._verified: OrderedDict[str, TokenCheck] = OrderedDict()
        self._reloaded_at = -KEY_RELOAD_SECONDS

    def _signature(self, token: str, keyring: KeyRing) -> TokenCheck:
        if keyring.public != self._public:
            self._public = dict(keyring.public)
            self._keys = {
                kid: Ed25519PublicKey.from_public_bytes(raw) for kid, raw in self._public.items()
            }
            self._verified.clear()
        cached = self._verified.get(token)
        if cached is not None:
            self._verified.move_to_end(token)
            return cached
        checked = verify_token_signature(token, self._keys)
        if checked.genuine:
            self._verified[token] = checked
            if len(self._verified) > SIGNATURE_CACHE_SIZE:
                self._verified.popitem(last=False)
        return checked

    async def check(self, token: str, now: dt.datetime) -> TokenCheck:
        checked = self._signature(token, await self.context.keyring())
        unknown_key = any(f.code is Reason.UNKNOWN_KEY for f in checked.findings)
        if unknown_key and time.monotonic() - self._reloaded_at > KEY_RELOAD_SECONDS:
            self._reloaded_at = time.monotonic()
            checked = self._signature(token, await self.context.keyring(refresh=True))
        if checked.claims is None:
            return checked
        times = token_time_findings(checked.claims, now, self.policy.clock_skew_seconds)
        return TokenCheck(checked.claims, checked.findings + times) if times else checked

    async def visit(
        self, token: str, client: ClientInfo, *, scan: bool
    ) -> tuple[TokenCheck, ScanOutcome, Admission]:
        """Check the token and count the request; for a page/JSON open, record the scan."""
        now = self.context.clock.now()
        checked = await self.check(token, now)
        outcome = outcome_of(checked)
        retry_after = self.limiter.admit(client.key, now)
        if retry_after:
            return checked, outcome, Admission(False, retry_after=retry_after)
        if not scan:
            return checked, outcome, Admission(True)
        claims = checked.claims if outcome is not ScanOutcome.NOT_GENUINE else None
        admission = await self.writer.submit(
            Visit(
                client=client,
                at=now,
                outcome=outcome,
                credential_id=claims.credential_id if claims else None,
                code_issued_at=dt.datetime.fromtimestamp(claims.issued_at, dt.UTC)
                if claims
                else None,
                code_nonce=claims.nonce if claims else None,
            )
        )
        return checked, outcome, admission


def refuse(outcome: ScanOutcome, admission: Admission) -> None:
    """Raise what the party must be told instead of the credential, if anything."""
    if not admission.allowed:
        raise TooManyRequests(
            f"查询过于频繁，请 {admission.retry_after} 秒后再试", retry_after=admission.retry_after
        )
    if outcome is ScanOutcome.NOT_GENUINE:
        raise QrNotGenuine("此二维码不是执法机关签发的电子执法证件，不能证明出示人的执法身份")
    if outcome is ScanOutcome.EXPIRED:
        raise QrExpired("二维码已过期，请执法人员刷新电子证件后重新出示")
    if outcome is ScanOutcome.NOT_YET_VALID:
        raise QrNotYetValid("二维码尚未生效，请执法人员核对终端时间后刷新电子证件")
