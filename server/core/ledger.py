"""The append-only ledger (DESIGN.md §5): every state change, in the same transaction, as a leaf of an
RFC 9162 Merkle tree, with signed tree heads, inclusion and consistency proofs.

Appends are serialised on the single ``ledger_state`` row (``FOR UPDATE`` on PostgreSQL; SQLite
writers are serial already), which keeps leaf indexes dense even when transactions roll back. The
row stays locked until the transaction ends, and every appending transaction of every instance
waits for it: append as the last statement of a transaction, and do nothing under the lock that
can be done before it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.core.errors import NotFound, ValidationFailed
from server.core.keys import KeyRing
from server.core.merkle import CompactRange, MerkleTree, leaf_hash
from server.core.models import LedgerEntry, LedgerState


class TreeHead(msgspec.Struct, frozen=True):
    """A signed tree head: size, root and when the server signed it."""

    tree_size: int
    root_hash: str
    signed_at: dt.datetime
    kid: str
    signature: str


def tree_head_message(size: int, root: bytes, signed_at: dt.datetime) -> bytes:
    millis = int(signed_at.timestamp() * 1000)
    return f"zhifa-tree-head-v1\n{size}\n{root.hex()}\n{millis}\n".encode()


def entry_bytes(seq: int, kind: str, ref: str, at: dt.datetime, data: Any) -> bytes:
    """Canonical bytes of one entry (sorted keys), the exact input of its leaf hash. ``data`` may
    come encoded already (``msgspec.Raw`` of ``encode_data``): the bytes are the same."""
    document = {"seq": seq, "kind": kind, "ref": ref, "at": at.isoformat(), "data": data}
    return msgspec.json.encode(document, order="sorted")


def encode_data(data: Any) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(data, order="sorted"))


async def append(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    kind: str,
    ref: str,
    data: Any,
    now: dt.datetime,
) -> LedgerEntry:
    """Append one entry; call it inside the transaction that makes the change it records."""
    (row,) = await _append_rows(session, keyring, [(kind, ref, data)], now)
    return LedgerEntry(**row)


async def append_many(
    session: AsyncSession,
    keyring: KeyRing,
    items: list[tuple[str, str, Any]],
    *,
    now: dt.datetime,
) -> list[int]:
    """Append ``(kind, ref, data)`` entries in order under one lock, with one signed head;
    returns their sequence numbers. For batches (a push of many events): one insert for all the
    rows and one signature."""
    return [row["seq"] for row in await _append_rows(session, keyring, items, now)]


async def _append_rows(
    session: AsyncSession, keyring: KeyRing, items: list[tuple[str, str, Any]], now: dt.datetime
) -> list[dict[str, Any]]:
    if not items:
        return []
    # Encoded before the lock: only what depends on the position is made under it.
    encoded = [(kind, ref, encode_data(data)) for kind, ref, data in items]
    # Columns, not the entity: appends are hot, and the update below keeps any loaded copy current.
    state = (
        await session.execute(
            select(LedgerState.size, LedgerState.frontier)
            .where(LedgerState.id == 1)
            .with_for_update()
        )
    ).first()
    frontier = (
        CompactRange.from_list(state.size, [bytes.fromhex(h) for h in state.frontier])
        if state
        else CompactRange()
    )
    rows: list[dict[str, Any]] = []
    for kind, ref, data in encoded:
        seq = len(frontier)
        raw = entry_bytes(seq, kind, ref, now, data)
        leaf = leaf_hash(raw)
        frontier.append(leaf)
        rows.append(
            {
                "seq": seq,
                "kind": kind,
                "ref": ref,
                "recorded_at": now,
                "data": raw,
                "leaf_hash": leaf,
                "root_hash": frontier.root(),
            }
        )
    await session.execute(insert(LedgerEntry), rows)
    size, root = len(frontier), frontier.root()
    signature = keyring.sign(tree_head_message(size, root, now))
    head = {
        "size": size,
        "frontier": [h.hex() for h in frontier.to_list()],
        "root_hash": root,
        "signed_at": now,
        "signature": signature,
        "kid": keyring.active_kid,
    }
    if state is None:
        await session.execute(insert(LedgerState).values(id=1, **head))
    else:
        await session.execute(update(LedgerState).where(LedgerState.id == 1).values(**head))
    return rows


async def signed_head(session: AsyncSession) -> TreeHead:
    state = await session.get(LedgerState, 1)
    if state is None:
        raise NotFound("账本尚无记录")
    return TreeHead(
        tree_size=state.size,
        root_hash=state.root_hash.hex(),
        signed_at=state.signed_at,
        kid=state.kid,
        signature=state.signature.hex(),
    )


async def _tree(session: AsyncSession, size: int) -> MerkleTree:
    leaves = await session.scalars(
        select(LedgerEntry.leaf_hash).where(LedgerEntry.seq < size).order_by(LedgerEntry.seq)
    )
    return MerkleTree(list(leaves))


async def _checked_size(session: AsyncSession, size: int | None) -> int:
    state = await session.get(LedgerState, 1)
    current = state.size if state else 0
    size = current if size is None else size
    if not 0 < size <= current:
        raise ValidationFailed(f"树大小须在 1 到 {current} 之间", field="tree_size")
    return size


class InclusionProof(msgspec.Struct, frozen=True):
    seq: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    proof: list[str]


class ConsistencyProof(msgspec.Struct, frozen=True):
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]


async def inclusion_proof(session: AsyncSession, seq: int, size: int | None) -> InclusionProof:
    size = await _checked_size(session, size)
    if not 0 <= seq < size:
        raise NotFound("账本中没有该条目", seq=seq)
    tree = await _tree(session, size)
    return InclusionProof(
        seq=seq,
        tree_size=size,
        leaf_hash=tree.leaf(seq).hex(),
        root_hash=tree.root().hex(),
        proof=[h.hex() for h in tree.inclusion_proof(seq)],
    )


async def consistency_proof(
    session: AsyncSession, first: int, second: int | None
) -> ConsistencyProof:
    second = await _checked_size(session, second)
    if not 0 < first <= second:
        raise ValidationFailed("起始树大小须大于 0 且不大于目标树大小", field="first")
    tree = await _tree(session, second)
    return ConsistencyProof(
        first=first,
        second=second,
        first_root=tree.root(first).hex(),
        second_root=tree.root().hex(),
        proof=[h.hex() for h in tree.consistency_proof(first)],
    )


async def entries(session: AsyncSession, batch: int = 5000) -> AsyncIterator[LedgerEntry]:
    """Every entry in order, streamed in batches so a large ledger does not sit in memory."""
    after = -1
    while True:
        rows = list(
            await session.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.seq > after)
                .order_by(LedgerEntry.seq)
                .limit(batch)
            )
        )
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = rows[-1].seq
        session.expunge_all()


class VerifyReport(msgspec.Struct):
    size: int
    root_hash: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(session: AsyncSession, keyring: KeyRing) -> VerifyReport:
    """Re-check the whole tree from the stored bytes; name the first entry that does not hold."""
    problems: list[str] = []
    frontier = CompactRange()
    async for row in entries(session):
        seq = len(frontier)
        if row.seq != seq:
            problems.append(f"第 {seq} 条缺失（下一条为第 {row.seq} 条）")
            break
        recomputed = leaf_hash(row.data)
        document = msgspec.json.decode(row.data)
        if recomputed != row.leaf_hash:
            problems.append(f"第 {seq} 条（{row.kind}）内容与其叶哈希不符：该条记录被改动")
            break
        if (
            document.get("seq") != seq
            or document.get("kind") != row.kind
            or document.get("ref") != row.ref
        ):
            problems.append(f"第 {seq} 条的序号、类型或对象与其内容不符：该条记录被改动")
            break
        frontier.append(recomputed)
        if frontier.root() != row.root_hash:
            problems.append(f"第 {seq} 条之后的树根与记录不符：第 {seq} 条或其之前的记录被改动")
            break
    state = await session.get(LedgerState, 1)
    if not problems and state is not None:
        if state.size != len(frontier) or state.root_hash != frontier.root():
            problems.append(
                f"已签名的树头（大小 {state.size}）与重新计算的树（大小 {len(frontier)}）不符"
            )
        else:
            key = keyring.public_key(state.kid)
            try:
                if key is None:
                    raise InvalidSignature
                key.verify(
                    state.signature, tree_head_message(state.size, state.root_hash, state.signed_at)
                )
            except InvalidSignature:
                problems.append("树头签名无效")
    return VerifyReport(size=len(frontier), root_hash=frontier.root().hex(), problems=problems)
