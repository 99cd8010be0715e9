"""The public verification of a scanned code: token check, rate limit, scan record, live status.

Many parties scan at once, so the database work of concurrent requests is grouped: each request
queues its visit and waits; one flush at a time writes the rate-limit counters and the scan rows
and reads the live credential rows of every queued visit in ONE transaction, then answers them all.
Nothing is kept in memory that another instance would need: the counters and the scans are in the
database before any answer leaves, and the status is read after the request arrived.
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
from dataclasses import dataclass
from functools import lru_cache

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from mobile_api.contracts.credential import (
    NOT_GENUINE,
    CredentialPolicy,
    Reason,
    TokenCheck,
    load_policy,
    token_time_findings,
    verify_token_signature,
)
from mobile_api.credential_models import CredentialScan, RateWindow, ScanOutcome
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
    """After-commit event: a party opened the page of a genuine, current code. The case area
    turns it into a 亮证 event of the officer's open case."""

    scan_id: uuid.UUID
    credential_id: uuid.UUID
    credential_number: str
    officer_id: uuid.UUID
    agency_id: uuid.UUID
    scanned_at: dt.datetime
    code_issued_at: dt.datetime
    client_family: str


ScanListener = Callable[[CredentialScanned], Awaitable[None]]
# server.app subscribes the case area's reaction at start-up, as with mobile_api.signals:
#     verification.scan_listeners.append(cases.on_credential_scanned)
# Listeners run after the scan row committed, off the party's request; failures are logged.
scan_listeners: list[ScanListener] = []


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


class Visit(msgspec.Struct, frozen=True, kw_only=True):
    """One request to the public endpoints. ``outcome`` None: counted, not a scan (the photo)."""

    client: ClientInfo
    at: dt.datetime
    outcome: ScanOutcome | None
    credential_id: uuid.UUID | None = None
    code_issued_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """The writer's answer to one visit: counted within the limit, and the live row if wanted."""

    allowed: bool
    scan_id: uuid.UUID | None = None
    credential: LiveCredential | None = None
    retry_after: int = 0


_Pending = tuple[Visit, "asyncio.Future[Admission]"]


class ScanWriter:
    """Group commit of visits (see the module docstring). One per application instance."""

    def __init__(self, database: Database, policy: CredentialPolicy) -> None:
        self.database = database
        self.policy = policy
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._purged_window = 0
        self._background: set[asyncio.Task[None]] = set()

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
        window = self.policy.rate_limit_window_seconds
        groups: dict[tuple[str, int], list[int]] = {}
        for i, visit in enumerate(visits):
            start = int(visit.at.timestamp()) // window * window
            groups.setdefault((visit.client.key, start), []).append(i)
        allowed = [False] * len(visits)
        retry_after = [0] * len(visits)
        # Core statements on a plain connection: no ORM unit of work on the hot path.
        async with self.database.engine.begin() as connection:
            for (key, start), members in groups.items():
                counted = await connection.execute(
                    _COUNT_HITS, {"key": key, "start": start, "hits": len(members)}
                )
                total = counted.scalar_one()
                for n, i in enumerate(members, start=total - len(members) + 1):
                    allowed[i] = n <= self.policy.rate_limit_requests
                    retry_after[i] = start + window - int(visits[i].at.timestamp())
            scan_ids: list[uuid.UUID | None] = [None] * len(visits)
            rows = []
            for i, visit in enumerate(visits):
                if allowed[i] and visit.outcome is not None:
                    scan_ids[i] = uuid.uuid4()
                    rows.append(
                        {
                            "id": scan_ids[i],
                            "scanned_at": visit.at,
                            "outcome": visit.outcome,
                            "credential_id": visit.credential_id,
                            "code_issued_at": visit.code_issued_at,
                            "client_family": visit.client.family,
                            "client_network": visit.client.network,
                        }
                    )
            if rows:
                await connection.execute(insert(CredentialScan), rows)
            wanted = {
                v.credential_id
                for i, v in enumerate(visits)
                if allowed[i] and v.outcome is ScanOutcome.VALID and v.credential_id
            }
            live = await live_credentials(connection, wanted) if wanted else {}
            current = min(start for _, start in groups)
            if current > self._purged_window:
                # Old windows are useless: drop them, at most once per window per instance.
                await connection.execute(
                    delete(RateWindow).where(RateWindow.window_start < current)
                )
                self._purged_window = current
        admissions = []
        for i, visit in enumerate(visits):
            if not allowed[i]:
                admissions.append(Admission(False, retry_after=max(1, retry_after[i])))
            elif visit.outcome is ScanOutcome.VALID and visit.credential_id in live:
                admissions.append(Admission(True, scan_ids[i], live[visit.credential_id]))
            else:
                admissions.append(Admission(True, scan_ids[i]))
        return admissions

    def _announce(self, batch: Iterable[_Pending], admissions: Iterable[Admission]) -> None:
        if not scan_listeners:
            return
        for (visit, _), admission in zip(batch, admissions, strict=True):
            if admission.credential is None or admission.scan_id is None:
                continue
            assert visit.code_issued_at is not None
            event = CredentialScanned(
                scan_id=admission.scan_id,
                credential_id=admission.credential.id,
                credential_number=admission.credential.number,
                officer_id=admission.credential.officer_id,
                agency_id=admission.credential.agency_id,
                scanned_at=visit.at,
                code_issued_at=visit.code_issued_at,
                client_family=visit.client.family,
            )
            for listener in list(scan_listeners):
                task = asyncio.create_task(_run_listener(listener, event))
                self._background.add(task)
                task.add_done_callback(self._background.discard)


async def _run_listener(listener: ScanListener, event: CredentialScanned) -> None:
    # The scan row is committed already; a failing listener must not reach the party's page.
    try:
        await listener(event)
    except Exception:
        log.exception("credential scan listener %r failed for scan %s", listener, event.scan_id)


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
    )
    .join(Officer, Officer.id == Credential.officer_id)
    .join(Agency, Agency.id == Credential.agency_id)
)
# One statement for SQLite (3.35+) and PostgreSQL: count the hits and read the window's total.
_COUNT_HITS = text(
    "INSERT INTO credential_rate_windows (client_key, window_start, hits) "
    "VALUES (:key, :start, :hits) ON CONFLICT (client_key, window_start) "
    "DO UPDATE SET hits = credential_rate_windows.hits + excluded.hits RETURNING hits"
)


async def live_credentials(
    connection: AsyncConnection, ids: set[uuid.UUID]
) -> dict[uuid.UUID, LiveCredential]:
    rows = await connection.execute(_LIVE.where(Credential.id.in_(ids)))
    return {
        row.id: LiveCredential(**row._asdict() | {"has_photo": bool(row.has_photo)}) for row in rows
    }


class Verifier:
    """Per application instance: the policy, the group writer, a cache of verified signatures."""

    def __init__(self, context: AreaContext) -> None:
        self.context = context
        self.policy = load_policy()
        self.writer = ScanWriter(context.database, self.policy)
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
        """Check the token, count the request and (for a page/JSON open) record the scan."""
        now = self.context.clock.now()
        checked = await self.check(token, now)
        outcome = outcome_of(checked)
        claims = checked.claims if outcome is not ScanOutcome.NOT_GENUINE else None
        admission = await self.writer.submit(
            Visit(
                client=client,
                at=now,
                outcome=outcome if scan else None,
                credential_id=claims.credential_id if claims else None,
                code_issued_at=dt.datetime.fromtimestamp(claims.issued_at, dt.UTC)
                if claims
                else None,
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
