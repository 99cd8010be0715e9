"""The ledger: every change is a leaf; proofs verify; tampering is found and named."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import select, update

from server.core import ledger
from server.core.keys import rotate_signing_key
from server.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from server.core.models import LedgerEntry
from tests.conftest import ROOT, login


async def _append(context, count: int, kind: str = "test.event") -> None:
    keyring = await context.keyring()
    async with context.database.transaction() as session:
        for i in range(count):
            await ledger.append(
                session, keyring, kind=kind, ref=f"test:{i}", data={"i": i}, now=context.clock.now()
            )


async def test_proofs_over_http_verify_against_the_signed_head(client, context, seeded):
    await _append(context, 20)
    head = (await client.get("/api/ledger/head")).json()
    size, root = head["tree_size"], bytes.fromhex(head["root_hash"])
    assert size >= 20

    for seq in (0, 7, size - 1):
        proof = (
            await client.get(f"/api/ledger/proofs/inclusion/{seq}", params={"tree_size": size})
        ).json()
        assert verify_inclusion(
            bytes.fromhex(proof["leaf_hash"]),
            seq,
            size,
            [bytes.fromhex(h) for h in proof["proof"]],
            root,
        )

    old = (await client.get("/api/ledger/proofs/inclusion/0", params={"tree_size": 5})).json()[
        "root_hash"
    ]
    consistency = (await client.get("/api/ledger/proofs/consistency", params={"first": 5})).json()
    assert consistency["first_root"] == old
    assert verify_consistency(
        5, size, bytes.fromhex(old), root, [bytes.fromhex(h) for h in consistency["proof"]]
    )


async def test_head_signature_verifies_with_the_published_jwks(client, context, seeded):
    head = (await client.get("/api/ledger/head")).json()
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert head["kid"] in {key["kid"] for key in jwks["keys"]}
    keyring = await context.keyring()
    async with context.database.sessionmaker() as session:
        assert (await ledger.verify(session, keyring)).ok


async def test_proof_requests_out_of_range_are_clear_errors(client, seeded):
    size = (await client.get("/api/ledger/head")).json()["tree_size"]
    beyond = await client.get(f"/api/ledger/proofs/inclusion/{size}")
    assert beyond.status_code == 404
    assert beyond.headers["content-type"].startswith("application/problem+json")
    bad = await client.get("/api/ledger/proofs/consistency", params={"first": size + 1})
    assert bad.status_code == 422
    assert bad.json()["code"] == "validation_failed"


async def test_entries_need_an_admin(client, seeded):
    assert (await client.get("/api/ledger/entries/0")).status_code == 401
    reviewer = await client.get("/api/ledger/entries/0", headers=await login(client, "reviewer"))
    assert reviewer.status_code == 403
    admin = await client.get("/api/ledger/entries/0", headers=await login(client, "admin"))
    assert admin.status_code == 200
    assert admin.json()["kind"] == "agency.created"


def _verify_cli(settings) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        ZHIFA_DATABASE_URL=settings.resolved_database_url,
        ZHIFA_DATA_DIR=settings.data_dir,
    )
    return subprocess.run(
        [sys.executable, "-m", "server.app.cli", "ledger", "verify"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_verify_cli_names_the_first_tampered_entry(context, seeded, settings):
    await _append(context, 10)
    clean = _verify_cli(settings)
    assert clean.returncode == 0, clean.stderr
    assert "账本完好" in clean.stdout

    # Alter one stored row the way an insider with database access would.
    async with context.database.transaction() as session:
        row = await session.scalar(select(LedgerEntry).where(LedgerEntry.ref == "test:3"))
        target = row.seq
        await session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.seq == target)
            .values(data=row.data.replace(b'"i":3', b'"i":4'))
        )
    tampered = _verify_cli(settings)
    assert tampered.returncode == 1
    assert f"第 {target} 条" in tampered.stderr


async def test_rewriting_leaf_and_root_is_still_found(context, seeded):
    """An attacker who also recomputes the leaf hash breaks the stored roots after it."""
    await _append(context, 5)
    async with context.database.transaction() as session:
        row = await session.scalar(select(LedgerEntry).where(LedgerEntry.ref == "test:1"))
        forged = row.data.replace(b'"i":1', b'"i":9')
        await session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.seq == row.seq)
            .values(data=forged, leaf_hash=leaf_hash(forged))
        )
        target = row.seq
    keyring = await context.keyring()
    async with context.database.sessionmaker() as session:
        report = await ledger.verify(session, keyring)
    assert not report.ok
    assert f"第 {target} 条" in report.problems[0]


async def test_key_rotation_keeps_old_heads_verifiable(context, client, seeded):
    async with context.database.transaction() as session:
        await rotate_signing_key(session, context.clock.now())
    keyring = await context.keyring(refresh=True)
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert len(jwks["keys"]) == 2
    async with context.database.sessionmaker() as session:
        assert (await ledger.verify(session, keyring)).ok
    await _append(context, 1)
    async with context.database.sessionmaker() as session:
        assert (await ledger.verify(session, keyring)).ok


def test_entry_bytes_are_the_same_with_data_encoded_beforehand():
    """Appends encode an entry's data before they take the ledger lock; the leaf's bytes must be
    those of the whole entry encoded at once (sorted keys at every depth)."""
    import datetime as dt
    import uuid

    data = {
        "z": [{"b": 1, "a": "证号 13010001"}],
        "a": {"when": dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC), "id": uuid.UUID(int=7)},
        "m": None,
    }
    at = dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.UTC)
    whole = ledger.entry_bytes(3, "case.events", "case:x", at, data)
    assert ledger.entry_bytes(3, "case.events", "case:x", at, ledger.encode_data(data)) == whole
    assert whole.index(b'"a":{"id"') < whole.index(b'"m":null') < whole.index(b'"z":[{"a"')
