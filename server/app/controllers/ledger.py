"""The ledger over HTTP: signed tree heads and proofs are public (hashes only); entries are not."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery

from server.app.context import AppContext
from server.core import ledger
from server.core.errors import NotFound
from server.core.models import LedgerEntry
from server.core.roles import ADMINS, PUBLIC, allow


class EntryView(msgspec.Struct, frozen=True):
    seq: int
    kind: str
    ref: str
    recorded_at: str
    data: msgspec.Raw
    leaf_hash: str


class LedgerController(Controller):
    path = "/api/ledger"
    tags = ["ledger"]

    @get("/head", opt=PUBLIC, summary="The current signed tree head")
    async def head(self, state: State) -> ledger.TreeHead:
        context: AppContext = state.context
        async with context.database.sessionmaker() as session:
            return await ledger.signed_head(session)

    @get("/proofs/inclusion/{seq:int}", opt=PUBLIC, summary="Inclusion proof of one entry")
    async def inclusion(
        self, state: State, seq: FromPath[int], tree_size: FromQuery[int | None] = None
    ) -> ledger.InclusionProof:
        context: AppContext = state.context
        async with context.database.sessionmaker() as session:
            return await ledger.inclusion_proof(session, seq, tree_size)

    @get("/proofs/consistency", opt=PUBLIC, summary="Consistency proof between two tree sizes")
    async def consistency(
        self, state: State, first: FromQuery[int], second: FromQuery[int | None] = None
    ) -> ledger.ConsistencyProof:
        context: AppContext = state.context
        async with context.database.sessionmaker() as session:
            return await ledger.consistency_proof(session, first, second)

    @get(
        "/entries/{seq:int}", opt=allow(*ADMINS), summary="One ledger entry with its recorded data"
    )
    async def entry(self, state: State, seq: FromPath[int]) -> EntryView:
        context: AppContext = state.context
        async with context.database.sessionmaker() as session:
            row = await session.get(LedgerEntry, seq)
            if row is None:
                raise NotFound("账本中没有该条目", seq=seq)
            return EntryView(
                seq=row.seq,
                kind=row.kind,
                ref=row.ref,
                recorded_at=row.recorded_at.isoformat(),
                data=msgspec.Raw(row.data),
                leaf_hash=row.leaf_hash.hex(),
            )
