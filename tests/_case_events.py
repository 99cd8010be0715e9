"""Helpers for the sync and case tests: events as a terminal writes them, pushes, a second agency."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import msgspec
import uuid6

from mobile_api.contracts import events as ev
from mobile_api.contracts.device_proof import make_device_proof
from mobile_api.contracts.sync import PULL_PATH, PUSH_PATH, PullResponse, PushRequest, PushResponse
from mobile_api.sync.services import LEDGER_KIND
from server.app import demo
from server.app.context import AppContext
from server.core import accounts, ledger, roster
from server.core.models import ActKind, Agency, EnforcementCategory, EnforcementItem, Role
from tests.conftest import TerminalIdentity

PAIR = ["13010001", "13010002"]  # 张明 and 李华: both 文化市场 in 示范市城东区


class Writer:
    """Writes events the way a terminal does: UUIDv7 ids and a monotonic HLC on its own clock."""

    def __init__(self, node: str, clock: Any, skew: dt.timedelta = dt.timedelta(0)) -> None:
        self.node = node
        self.clock = clock  # the server's FrozenClock; the terminal reads it plus ``skew``
        self.skew = skew
        self.counter = 0

    def terminal_time(self) -> dt.datetime:
        return self.clock.now() + self.skew

    def __call__(self, cls: type[ev.EventBase], case_id: uuid.UUID, **fields: Any) -> Any:
        self.counter += 1
        now = self.terminal_time()
        fields.setdefault("officers", PAIR)
        return cls(
            id=uuid.UUID(int=uuid6.uuid7().int),
            case_id=case_id,
            terminal_time=now,
            hlc=ev.format_hlc(int(now.timestamp() * 1000), self.counter, self.node),
            **fields,
        )

    def open(self, case_id: uuid.UUID | None = None, **fields: Any) -> ev.CaseOpened:
        values: dict[str, Any] = {
            "procedure": "立案",
            "item_code": "WH-CF-001",
            "category": "文化市场",
            "region": "示范市城东区",
            "act_kind": "行政处罚",
            "title": "某娱乐场所擅自经营案",
        }
        values.update(fields)
        return self(ev.CaseOpened, case_id or uuid.uuid4(), **values)

    def person(self, case_id: uuid.UUID, **fields: Any) -> ev.PartyIdentified:
        party = ev.Person(name="张三", id_number="110101199001011234", phone="13800000000")
        return self(ev.PartyIdentified, case_id, party_id=uuid.uuid4(), party=party, **fields)


async def push(
    client: httpx.AsyncClient, terminal: TerminalIdentity, events: list[Any]
) -> httpx.Response:
    return await client.post(
        PUSH_PATH,
        content=msgspec.json.encode(PushRequest(events=events)),
        headers={**terminal.headers("POST", PUSH_PATH), "content-type": "application/json"},
    )


async def push_ok(
    client: httpx.AsyncClient, terminal: TerminalIdentity, events: list[Any]
) -> list[Any]:
    response = await push(client, terminal, events)
    assert response.status_code == 200, response.text
    return msgspec.json.decode(response.content, type=PushResponse).results


async def pull(
    client: httpx.AsyncClient, terminal: TerminalIdentity, **params: str
) -> PullResponse:
    response = await client.get(
        PULL_PATH, params=params, headers=terminal.headers("GET", PULL_PATH)
    )
    assert response.status_code == 200, response.text
    return msgspec.json.decode(response.content, type=PullResponse)


async def login_again(client: httpx.AsyncClient, terminal: TerminalIdentity, username: str) -> None:
    """The officer logs in again on the same terminal (tokens expire when tests move the clock)."""
    response = await client.post(
        "/api/auth/terminal-login",
        json={"username": username, "password": demo.DEMO_PASSWORD},
        headers={
            "DPoP": make_device_proof(
                terminal.key, "POST", "/api/auth/terminal-login", now=terminal.now()
            )
        },
    )
    assert response.status_code == 200, response.text
    terminal.tokens = response.json()


async def ledger_refs(context: AppContext, kind: str) -> list[dict[str, Any]]:
    async with context.database.sessionmaker() as session:
        return [
            msgspec.json.decode(entry.data)["data"]
            async for entry in ledger.entries(session)
            if entry.kind == kind
        ]


async def ledgered_events(context: AppContext) -> list[dict[str, Any]]:
    """Every event the ledger names (one entry per case per push), with the pushing terminal."""
    return [
        {**event, "terminal": entry["terminal"]}
        for entry in await ledger_refs(context, LEDGER_KIND)
        for event in entry["events"]
    ]


async def second_agency(context: AppContext) -> str:
    """Another agency with one officer (证号 99990001, user ``other``); returns an enrollment code."""
    now = context.clock.now()
    keyring = await context.keyring()
    async with context.database.transaction() as session:
        agency = Agency(code="other", name="另一执法支队", region="另一市", created_at=now)
        session.add(agency)
        await session.flush()
        session.add(EnforcementCategory(agency_id=agency.id, name="文化市场"))
        session.add(
            EnforcementItem(
                agency_id=agency.id,
                code="WH-CF-001",
                name="对擅自从事娱乐场所经营活动的处罚",
                category="文化市场",
                kind=ActKind.PENALTY,
                legal_basis="《娱乐场所管理条例》第四十一条",
            )
        )
        await session.flush()
        csv = "证号,姓名,单位,执法类别,执法区域,发证日期,有效期至\n99990001,孙立,一大队,文化市场,另一市全市,2024-01-01,2029-12-31\n99990002,周全,一大队,文化市场,另一市全市,2024-01-01,2029-12-31\n"
        await roster.import_roster(
            session, keyring, agency_code="other", raw_csv=csv.encode(), photos=None, now=now
        )
        for username, number, roles in (
            ("other", "99990001", [Role.OFFICER]),
            ("other-admin", None, [Role.AGENCY_ADMIN]),
        ):
            await accounts.create_user(
                session,
                keyring,
                username=username,
                password=demo.DEMO_PASSWORD,
                display_name=username,
                roles=roles,
                agency_id=agency.id,
                now=now,
                credential_number=number,
            )
        code, _ = await accounts.create_enrollment_code(session, context.settings, agency.id, now)
    return code


async def enrollment_code(context: AppContext, agency_code: str = "demo") -> str:
    async with context.database.transaction() as session:
        agency = await accounts.agency_by_code(session, agency_code)
        code, _ = await accounts.create_enrollment_code(
            session, context.settings, agency.id, context.clock.now()
        )
    return code
