"""Sync push throughput: 200 simulated terminals pushing event batches at one server worker.

Both servers run in the same run under the same uvicorn (http=httptools, loop=uvloop, one worker,
no access log, keep-alive 120 s), on 127.0.0.1, each on a fresh database of the same kind (SQLite
file by default, ``--database-url`` for PostgreSQL), with the same client code in this process:
every terminal has its own connection and pushes ``--batch`` events per request (default: the
agent's batch), back to back; every request carries a fresh DPoP proof signed by that terminal's
device key. The window opens once every terminal has had one batch answered (a fixed warm-up
shorter than one round of 200 pushes would open it on the first, synchronised round, whose answers
bunch up at its end: on a loaded machine that round takes longer than the window); then only pushes
completing inside the ``--seconds`` window count.

- ours: ``POST /api/sync/push`` of the real app: token and device proof checked, the terminal and
  the agency's rules, replays, cases and credentials read, the procedure rules applied, events and
  cases written, the accepted events appended to the ledger (one entry per case, one signed head
  per batch), all in one transaction per batch.
- plain: one ASGI callable: decode the same batch, insert the same ``case_events`` rows (canonical
  payload and hash) in one transaction per batch through the same database layer. The ceiling.

Prints events/second and push latency (p50, p99) for both; last line ``sync_ratio=<ours/plain>``.
Usage: ``python bench/sync.py [--quick] [--terminals 200] [--seconds 15] [--batch 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import msgspec
import uuid6
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import free_port, serve  # noqa: E402

from edge_agent.sync import DEFAULT_BATCH  # noqa: E402
from mobile_api.contracts import events as ev  # noqa: E402
from mobile_api.contracts.device_proof import make_device_proof  # noqa: E402
from mobile_api.contracts.sync import PUSH_PATH, PushRequest  # noqa: E402
from server.app import demo, migrate  # noqa: E402
from server.app.context import AppContext  # noqa: E402
from server.core import accounts  # noqa: E402
from server.core.auth import issue_access_token  # noqa: E402
from server.core.keys import jwk_thumbprint, okp_jwk, raw_public  # noqa: E402
from server.core.models import StaffUser  # noqa: E402
from server.core.settings import load_settings  # noqa: E402

PAIR = ["13010001", "13010002"]
PLAIN_ENV = ("BENCH_AGENCY", "BENCH_TERMINAL", "BENCH_USER")


# -- the plain app (served by its own uvicorn process) ----------------------------------------------

_plain: dict[str, Any] = {}


async def plain_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    from sqlalchemy import insert

    from mobile_api.models import CaseEvent
    from server.core.db import Database

    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            _plain["database"] = Database(load_settings())
            await send({"type": "lifespan.startup.complete"})
        await _plain["database"].dispose()
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] != "POST":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    agency, terminal, user = (uuid.UUID(os.environ[name]) for name in PLAIN_ENV)
    now = dt.datetime.now(dt.UTC)
    rows = []
    for event in msgspec.json.decode(body, type=PushRequest).events:
        raw = ev.canonical_bytes(event)
        rows.append(
            {
                "id": event.id,
                "case_id": event.case_id,
                "agency_id": agency,
                "terminal_id": terminal,
                "pushed_by": user,
                "kind": ev.event_kind(event),
                "hlc": event.hlc,
                "terminal_time": event.terminal_time,
                "recorded_at": now,
                "outcome": "accepted",
                "status": 200,
                "code": "",
                "message": "",
                "payload": raw,
                "payload_sha256": hashlib.sha256(raw).hexdigest(),
            }
        )
    async with _plain["database"].transaction() as session:
        await session.execute(insert(CaseEvent), rows)
    answer = msgspec.json.encode(
        {"results": [{"id": r["id"], "outcome": "accepted"} for r in rows]}
    )
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": answer})


# -- terminals --------------------------------------------------------------------------------------


class Terminal:
    """A simulated terminal: its device key, its officer's token, its case, its HLC."""

    def __init__(self, key: Ed25519PrivateKey, token: str, node: str) -> None:
        self.key, self.token, self.node = key, token, node
        self.case_id = uuid.uuid4()
        self.counter = 0

    def _event(self, cls: type[ev.EventBase], **fields: Any) -> Any:
        self.counter += 1
        now = dt.datetime.now(dt.UTC)
        return cls(
            id=uuid.UUID(int=uuid6.uuid7().int),
            case_id=self.case_id,
            officers=PAIR,
            terminal_time=now,
            hlc=ev.format_hlc(int(now.timestamp() * 1000), self.counter % 99_999, self.node),
            **fields,
        )

    def opening(self) -> bytes:
        opened = self._event(
            ev.CaseOpened,
            procedure="立案",
            item_code="WH-JC-001",
            category="文化市场",
            region="示范市城东区",
            act_kind="行政检查",
            title="娱乐场所日常检查",
        )
        shown = self._event(ev.CredentialShown, credential_number=PAIR[0])
        return msgspec.json.encode(PushRequest(events=[opened, shown]))

    def batch(self, size: int) -> bytes:
        events = [
            self._event(
                ev.InspectionRecorded, place="包间 3", findings=f"第 {self.counter} 项检查未见异常"
            )
            for _ in range(size)
        ]
        return msgspec.json.encode(PushRequest(events=events))

    def headers(self, url: str) -> dict[str, str]:
        return {
            "Authorization": f"DPoP {self.token}",
            "DPoP": make_device_proof(self.key, "POST", url, self.token),
            "Content-Type": "application/json",
        }


async def prepare(
    folder: Path, port: int, database_url: str | None, terminals: int
) -> tuple[dict[str, str], list[Terminal]]:
    """A fresh database with the demo agency and ``terminals`` enrolled terminals, logged in."""
    env = {
        **os.environ,
        "ZHIFA_DATA_DIR": str(folder),
        "ZHIFA_PORT": str(port),
        "ZHIFA_LOG_LEVEL": "warning",
        "ZHIFA_ACCESS_TOKEN_TTL_SECONDS": "86400",
    }
    if database_url:
        env["ZHIFA_DATABASE_URL"] = database_url
    else:
        env.pop("ZHIFA_DATABASE_URL", None)
    settings = load_settings(environ=env)
    context = AppContext(settings)
    made: list[Terminal] = []
    try:
        await migrate.upgrade(context.database)
        await demo.seed(context)
        keyring = await context.keyring()
        now = context.clock.now()
        async with context.database.transaction() as session:
            agency = await accounts.agency_by_code(session, demo.AGENCY_CODE)
            officer = await session.scalar(select(StaffUser).where(StaffUser.username == PAIR[0]))
            for number in range(terminals):
                key = Ed25519PrivateKey.generate()
                code, _ = await accounts.create_enrollment_code(session, settings, agency.id, now)
                public = raw_public(key.public_key())
                terminal = await accounts.enroll_terminal(
                    session,
                    keyring,
                    code=code,
                    name=f"bench-{number}",
                    public_key=public,
                    proof_thumbprint=jwk_thumbprint(okp_jwk(public)),
                    now=now,
                )
                token = issue_access_token(
                    keyring,
                    accounts.principal_of(officer, terminal.id),
                    now,
                    settings.access_token_ttl_seconds,
                    device_jkt=terminal.key_thumbprint,
                )
                made.append(Terminal(key, token, f"{number:08x}"))
            env.update(
                BENCH_AGENCY=str(agency.id),
                BENCH_TERMINAL=str(terminal.id),
                BENCH_USER=str(officer.id),
            )
    finally:
        await context.close()
    return env, made


class Run(msgspec.Struct):
    name: str
    events: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _drive(name: str, url: str, terminals: list[Terminal], seconds: float, batch: int) -> Run:
    # One connection per terminal, as on the street (and a shared pool of 200 connections would
    # make httpx's own bookkeeping the bottleneck). Plain HTTP: no TLS context, whose CA bundle
    # costs tens of ms of CPU per client to load.
    clients = [
        httpx.AsyncClient(
            base_url=url, timeout=120, limits=httpx.Limits(max_connections=1), verify=False
        )
        for _ in terminals
    ]
    target = f"{url}{PUSH_PATH}"

    async def push(http: httpx.AsyncClient, terminal: Terminal, body: bytes) -> int:
        response = await http.post(PUSH_PATH, content=body, headers=terminal.headers(target))
        if response.status_code != 200:
            raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
        results = msgspec.json.decode(response.content)["results"]
        refused = [r for r in results if r["outcome"] != "accepted"]
        if refused:
            raise RuntimeError(f"{name}: refused {refused[:2]}")
        return len(results)

    latencies: list[float] = []
    counted = 0
    warming = len(terminals)  # terminals yet to have their first batch answered
    window: list[float] = []  # opens, closes

    async def work(http: httpx.AsyncClient, terminal: Terminal) -> None:
        nonlocal counted, warming
        first = True
        while not window or time.perf_counter() < window[1]:
            body = terminal.batch(batch)
            started = time.perf_counter()
            accepted = await push(http, terminal, body)
            finished = time.perf_counter()
            if first:
                first, warming = False, warming - 1
                if not warming:
                    window.extend((finished, finished + seconds))
            # Only what completes inside the window counts: no start-up, no drain at the end.
            elif window and window[0] <= finished <= window[1]:
                latencies.append(finished - started)
                counted += accepted

    try:
        # Each terminal opens its case first (not timed).
        await asyncio.gather(
            *(push(h, t, t.opening()) for h, t in zip(clients, terminals, strict=True))
        )
        await asyncio.gather(*(work(h, t) for h, t in zip(clients, terminals, strict=True)))
    finally:
        for http in clients:
            await http.aclose()
    return Run(name=name, events=counted, seconds=seconds, latencies=latencies)


async def _phase(
    name: str, database_url: str | None, args: argparse.Namespace, target: str, factory: bool
) -> Run:
    with tempfile.TemporaryDirectory(prefix=f"zhifa-bench-{name}-") as folder:
        port = free_port()
        env, terminals = await prepare(Path(folder), port, database_url, args.terminals)
        process = serve(target, port, env, factory=factory)
        try:
            return await _drive(
                name, f"http://127.0.0.1:{port}", terminals, args.seconds, args.batch
            )
        finally:
            process.terminate()
            process.wait()


async def postgres_database(base: str, names: list[str], statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(base.replace("+asyncpg", ""))
    try:
        for name in names:
            await connection.execute(statement.format(name=name))
    finally:
        await connection.close()


def add_push_options(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark that pushes events shares (this one and bench/load.py)."""
    parser.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH, help="events per push (default: the agent's)"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server database URL (postgresql+asyncpg://…/postgres); default SQLite",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s per server instead of 15 s")
    parser.add_argument("--terminals", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=None)
    add_push_options(parser)
    args = parser.parse_args()
    args.seconds = args.seconds or (5.0 if args.quick else 15.0)
    names = [f"zhifa_bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    urls: list[str | None] = [None, None]
    if args.database_url:  # two fresh databases on that server
        asyncio.run(postgres_database(args.database_url, names, 'CREATE DATABASE "{name}"'))
        urls = [f"{args.database_url.rsplit('/', 1)[0]}/{name}" for name in names]
    print(
        f"server: uvicorn {version('uvicorn')}, http=httptools {version('httptools')}, loop=uvloop, "
        f"1 worker; database: {'PostgreSQL' if args.database_url else 'SQLite (WAL)'}; "
        f"{args.terminals} terminals, {args.batch} events per push, {args.seconds:g} s each"
    )
    try:
        plain = asyncio.run(_phase("plain", urls[0], args, "sync:plain_app", False))
        ours = asyncio.run(_phase("ours", urls[1], args, "server.app.main:create_app", True))
    finally:
        if args.database_url:
            statement = 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            asyncio.run(postgres_database(args.database_url, names, statement))
    print(f"{'':8}{'pushes':>8}{'events':>9}{'events/s':>11}{'p50 ms':>9}{'p99 ms':>9}")
    for run in (ours, plain):
        print(
            f"{run.name:8}{len(run.latencies):>8}{run.events:>9}{run.rate:>11.0f}"
            f"{run.quantile(0.5):>9.1f}{run.quantile(0.99):>9.1f}"
        )
    print(
        f"p99 push latency (ours): {ours.quantile(0.99):.1f} ms; mean {statistics.mean(ours.latencies) * 1000:.1f} ms"
    )
    print(f"sync_ratio={ours.rate / plain.rate:.2f}")


if __name__ == "__main__":
    main()
