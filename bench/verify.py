"""Public credential verification (``GET /v/{token}``, JSON) against a plain Litestar handler.

Both servers run in the same run under the same uvicorn (http=httptools, loop=uvloop, one worker,
no access log), on a fresh SQLite database seeded with the demo agency. The load comes from one
process of raw HTTP/1.1 keep-alive connections (a bounded number, each waiting for its answer).
Our endpoint does everything a party's scan does: signature check, rate limit (in memory), scan
row and live status read with the officer's open case, the database work of concurrent requests
grouped into one transaction. The workloads take turns in short slices (``--rounds``, default 3),
so that the load other processes put on a shared machine weighs on ours and on the ceiling alike;
each ratio is the median of the rounds' ratios, and the per-round same-code ratios are printed.

Workloads: "same codes" (the six demo officers' current codes, opened again and again, as a party's
phone does with the page and its photo: the verified signature is cached) and "fresh codes" (every
request a code never seen before, so every request pays an Ed25519 verification; the cost of one
verification, measured in the same run, is printed as that workload's ceiling). The last line,
``verify_ratio``, is the same-code one: what the endpoint's own machinery (framework, rate limit,
scan row, live status) costs next to a constant; ``fresh_code_ratio`` is printed above it.
With six codes and 64 connections the "same codes" rows of a round name six credentials at most,
and no demo officer has an open case: a scan announces nothing.
Usage: ``python bench/verify.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from litestar import Litestar, get
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import free_port, serve  # noqa: E402


@get("/constant", sync_to_thread=False)
def constant() -> dict[str, str]:
    return {"status": "有效", "name": "张明"}


plain_app = Litestar([constant])


async def _connection(
    port: int, paths: list[str], start: int, step: int, stop_at: float, latencies: list[float]
) -> tuple[int, int]:
    """Requests ``paths[start], paths[start + step] …`` until ``stop_at``: (errors, next index)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    i = start
    while time.perf_counter() < stop_at:
        path = paths[i % len(paths)]
        i += step
        request = f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: application/json\r\n\r\n"
        began = time.perf_counter()
        writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - began)
        errors += not head.startswith(b"HTTP/1.1 200")
    writer.close()
    return errors, i


class Row:
    """One workload's requests over every round, and its rate in each round."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: list[float] = []
        self.seconds = 0.0
        self.errors = 0
        self.rates: list[float] = []
        self.used = 0  # paths before this index were sent: a "fresh" code is never sent twice

    def add(self, latencies: list[float], seconds: float, errors: int) -> None:
        self.latencies += latencies
        self.seconds += seconds
        self.errors += errors
        self.rates.append(len(latencies) / seconds)

    def line(self) -> str:
        ordered = sorted(self.latencies)
        rate = len(ordered) / self.seconds
        p50 = ordered[len(ordered) // 2] * 1000
        p99 = ordered[int(len(ordered) * 0.99)] * 1000
        return f"{self.name:<32}{rate:>10.0f}{p50:>10.2f}{p99:>10.2f}{self.errors:>8}"


async def _slice(
    port: int, paths: list[str], connections: int, seconds: float
) -> tuple[list[float], int, int]:
    """Load for ``seconds``: (latencies, errors, how many of ``paths`` may have been sent)."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    ends = await asyncio.gather(
        *(_connection(port, paths, c, connections, stop_at, latencies) for c in range(connections))
    )
    return latencies, sum(errors for errors, _ in ends), max(end for _, end in ends)


def run_rounds(
    workloads: list[tuple[Row, int, list[str]]], connections: int, seconds: float, rounds: int
) -> None:
    """Each workload for ``seconds / rounds`` in turn, ``rounds`` times over: the machine's load
    (other processes on shared cores) then weighs on ours and the ceiling alike, round by round."""
    import uvloop

    async def go() -> None:
        for _, port, paths in workloads:  # warm-up: connections, caches, the first key read
            await _slice(port, paths[-200:], connections, min(2.0, seconds / 3))
        for _ in range(rounds):
            for row, port, paths in workloads:
                rest = paths[row.used : -200] if len(paths) > 200 else paths
                latencies, errors, used = await _slice(port, rest, connections, seconds / rounds)
                row.add(latencies, seconds / rounds, errors)
                row.used += used

    uvloop.run(go())


def median_ratio(ours: Row, ceiling: Row) -> float:
    return statistics.median(a / b for a, b in zip(ours.rates, ceiling.rates, strict=True))


async def prepare(
    data_dir: Path, database_url: str, fresh_codes: int
) -> tuple[str, list[str], list[str]]:
    """Migrate and seed a database; sign the demo officers' current codes and ``fresh_codes`` more."""
    from mobile_api.contracts.credential import sign_token
    from server.app import demo, migrate
    from server.app.context import AppContext
    from server.core.models import Credential
    from server.core.settings import load_settings

    settings = load_settings(environ={}, data_dir=str(data_dir), database_url=database_url)
    context = AppContext(settings)
    try:
        await migrate.upgrade(context.database)
        await demo.seed(context)
        keyring = await context.keyring()
        async with context.database.sessionmaker() as session:
            ids = list(await session.scalars(select(Credential.id).order_by(Credential.number)))
        now = int(context.clock.now().timestamp())

        def code(i: int) -> str:
            token = sign_token(keyring.active, keyring.active_kid, ids[i % len(ids)], now, 600)
            return f"/v/{token}"

        return (
            settings.resolved_database_url,
            [code(i) for i in range(len(ids))],
            [code(i) for i in range(fresh_codes)],
        )
    finally:
        await context.close()


def ed25519_verifications_per_second(seconds: float = 1.0) -> float:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    public, message = key.public_key(), b"x" * 66
    signature = key.sign(message)
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        for _ in range(100):
            public.verify(signature, message)
        done += 100
    return done / (time.perf_counter() - began)


def main() -> None:
    logging.getLogger().setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (3 s per measurement)")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternations of ours and the ceiling (median ratio)"
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="an existing database to migrate and seed (default: a fresh SQLite file)",
    )
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)

    with tempfile.TemporaryDirectory(prefix="zhifa-bench-verify-") as tmp:
        # Enough never-seen codes for the fresh run at well above the rate we expect.
        database_url, same, fresh = asyncio.run(
            prepare(Path(tmp), args.database_url, int(6000 * (seconds + 3)))
        )
        env = dict(os.environ)
        env.update(
            ZHIFA_DATA_DIR=tmp,
            ZHIFA_DATABASE_URL=database_url,
            ZHIFA_LOG_LEVEL="warning",
            # One benchmark client is one address: the limit must not be what we measure.
            ZHIFA_CREDENTIAL_RATE_LIMIT_REQUESTS=str(10**9),
        )
        plain = Row("plain constant handler")
        same_codes = Row("/v/{token} JSON, same codes")
        fresh_codes = Row("/v/{token} JSON, fresh codes")
        plain_port, our_port = free_port(), free_port()
        servers = [serve("verify:plain_app", plain_port, env, factory=False)]
        try:
            servers.append(serve("server.app.main:create_app", our_port, env, factory=True))
            run_rounds(
                [
                    (plain, plain_port, ["/constant"]),
                    (same_codes, our_port, same),
                    (fresh_codes, our_port, fresh),
                ],
                args.connections,
                seconds,
                args.rounds,
            )
        finally:
            for server in servers:
                server.terminate()
                server.wait()
    verify_rate = ed25519_verifications_per_second()

    print(
        f"uvicorn {version('uvicorn')} http=httptools {version('httptools')} loop=uvloop "
        f"{version('uvloop')}, litestar {version('litestar')}, one worker each; "
        f"{args.connections} keep-alive connections, {seconds:g} s per row in {args.rounds} "
        "alternating rounds, "
        f"{database_url.split(':', 1)[0]}"
    )
    print(f"{'workload':<32}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for row in (plain, same_codes, fresh_codes):
        print(row.line())
    print(f"{'Ed25519 verify alone (ceiling)':<32}{verify_rate:>10.0f}")
    ratios = [a / b for a, b in zip(same_codes.rates, plain.rates, strict=True)]
    print(f"verify_ratio per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"fresh_code_ratio={median_ratio(fresh_codes, plain):.2f}")
    print(f"verify_ratio={median_ratio(same_codes, plain):.2f}")


if __name__ == "__main__":
    main()
