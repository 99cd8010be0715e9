"""Load test: parties opening the verification page and terminals pushing events, on one worker.

One server (uvicorn, http=httptools, loop=uvloop, one worker, keep-alive 120 s, started by
``harness.serve``) on a fresh database with the demo agency (SQLite, or a fresh PostgreSQL database
with ``--database-url``), loaded by two kinds of clients, each on its own keep-alive HTTP/1.1
connection, each sending its next request as soon as the previous answer arrived. Three phases of
``--seconds`` each on the same server: the parties alone, the terminals alone, both at once.

- ``--clients`` parties' phones: ``GET /v/{token}``, alternately the HTML page (a phone browser's
  ``Accept`` and WeChat's user agent) and the JSON answer, with the codes the demo officers'
  terminals show right now (the server's own pre-signed batch, the code of the current 30 s slot).
  The page is rate-limited per client address (60 a minute as shipped). The server sits behind a
  load balancer in production, so the bench server trusts ``X-Forwarded-For`` from 127.0.0.1 only
  (uvicorn ``--forwarded-allow-ips``, as a deployment must configure it) and every simulated party
  sends its own address there, a new party every ``PARTY_REQUESTS`` requests. The limit stays as
  shipped and a 429 counts as an error.
- ``--clients`` terminals, enrolled with their own device keys (as ``bench/sync.py`` prepares
  them), push ``--batch`` events per ``POST /api/sync/push`` with a fresh DPoP proof per request.
  Each opened a case of the demo officers 13010001/13010002 before the phases, so the scans of
  those two (a third of the parties' requests) become 亮证 events of an open case, as in the field.

Errors are counted over the whole run (case openings and warm-ups included): every transport
error (refused, reset, cut short, no answer within ``TIMEOUT`` s), every non-2xx answer and every
pushed event not ``accepted``. Throughput and latency count only requests completing inside each
phase's window, after a 2 s warm-up. The load generator is this process, apart from the server's
(raw asyncio streams on uvloop: far cheaper per request than an HTTP client library); its CPU
share and the server's are printed, so a saturated generator shows. Last lines: ``load_errors=<n>`` and the throughputs, alone and together.
Usage: ``python bench/load.py [--quick] [--clients 200] [--seconds 60] [--database-url …]``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import free_port, serve  # noqa: E402
from sync import Terminal, add_push_options, postgres_database, prepare  # noqa: E402

from mobile_api.contracts.credential import load_policy  # noqa: E402
from mobile_api.contracts.sync import PUSH_PATH  # noqa: E402
from mobile_api.credentials.services import issue_token_batch, load_credential  # noqa: E402
from server.app import demo  # noqa: E402
from server.app.context import AppContext  # noqa: E402
from server.core.settings import load_settings  # noqa: E402

WARM_UP_SECONDS = 2.0
TIMEOUT = 60.0
# A party opens the page, maybe the JSON, reloads once or twice: then the next party comes.
PARTY_REQUESTS = 4
PROXY = "127.0.0.1"
PHONE = (
    "Mozilla/5.0 (Linux; Android 13; V2227A) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/107.0.5304.141 Mobile Safari/537.36 MicroMessenger/8.0.47"
)
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


class TransportError(Exception):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects after a transport error."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        try:
            return await asyncio.wait_for(self._exchange(head, body), TIMEOUT)
        except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            self.close()
            raise TransportError(repr(exc)) from exc

    async def _exchange(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        writer.write(head + body)
        answer = await reader.readuntil(b"\r\n\r\n")
        status = int(answer[9:12])
        length, chunked, close = 0, False, False
        for line in answer.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append((await reader.readexactly(size + 2))[:-2])
            await reader.readuntil(b"\r\n")  # no trailers are sent to us
            content = b"".join(parts)
        else:
            content = await reader.readexactly(length)
        if close:
            self.close()
        return status, content

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


@dataclass
class Tally:
    """What one endpoint saw: latencies inside the window, items (events) inside it, errors."""

    name: str
    latencies: list[float] = field(default_factory=list)
    items: int = 0
    transport_errors: int = 0
    bad_status: int = 0
    refused: int = 0
    samples: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.transport_errors + self.bad_status + self.refused

    def failed(self, what: str) -> None:
        if len(self.samples) < 3:
            self.samples.append(what[:200])

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


class Window(msgspec.Struct):
    opens: float
    closes: float

    def counts(self, finished: float) -> bool:
        return self.opens <= finished <= self.closes


class Codes(msgspec.Struct):
    """The codes the demo officers' terminals show: one per slot, the current slot's counts."""

    first_slot: int
    slot_seconds: int
    per_officer: list[list[str]]

    def current(self, officer: int) -> str:
        slot = (int(time.time()) - self.first_slot) // self.slot_seconds
        return self.per_officer[officer % len(self.per_officer)][slot]


async def _codes(env: dict[str, str]) -> Codes:
    settings = load_settings(environ=env)
    context = AppContext(settings)
    try:
        keyring = await context.keyring()
        now = context.clock.now()
        async with context.database.sessionmaker() as session:
            # Loaded as when the terminal asks for its batch.
            loaded = [
                await load_credential(session, number=number, with_photo=True)
                for number, *_ in demo.OFFICERS
            ]
        batches = [
            issue_token_batch(
                credential,
                agency,
                keyring,
                load_policy(env),
                now=now,
                public_base_url=settings.resolved_public_base_url,
            )
            for credential, agency in loaded
        ]
    finally:
        await context.close()
    return Codes(
        first_slot=batches[0].first_slot,
        slot_seconds=batches[0].slot_seconds,
        per_officer=[batch.tokens for batch in batches],
    )


async def _party(
    number: int,
    clients: int,
    port: int,
    codes: Codes,
    window: Window,
    pages: Tally,
    answers: Tally,
) -> None:
    """Simulated client ``number`` of ``clients``: a stream of parties, one after the other."""
    connection = Connection(port)
    common = f"Host: 127.0.0.1:{port}\r\nUser-Agent: {PHONE}\r\n"
    sent = 0
    while time.perf_counter() < window.closes:
        party = sent // PARTY_REQUESTS * clients + number
        # From 10.0.0.0 on: unique per party over the run.
        address = ipaddress.IPv4Address(0x0A000000 + party)
        tally, accept = (pages, BROWSER_ACCEPT) if sent % 2 == 0 else (answers, "application/json")
        head = (
            f"GET /v/{codes.current(party)} HTTP/1.1\r\n{common}"
            f"Accept: {accept}\r\nX-Forwarded-For: {address}\r\n\r\n"
        )
        sent += 1
        began = time.perf_counter()
        try:
            status, content = await connection.request(head.encode())
        except TransportError as exc:
            tally.transport_errors += 1
            tally.failed(str(exc))
            continue
        finished = time.perf_counter()
        if not 200 <= status < 300:
            tally.bad_status += 1
            tally.failed(f"{status} {content[:150].decode(errors='replace')}")
        elif window.counts(finished):
            tally.latencies.append(finished - began)
    connection.close()


async def _push(connection: Connection, terminal: Terminal, port: int, body: bytes) -> bytes:
    target = f"http://127.0.0.1:{port}{PUSH_PATH}"
    headers = terminal.headers(target) | {
        "Host": f"127.0.0.1:{port}",
        "Content-Length": str(len(body)),
    }
    head = f"POST {PUSH_PATH} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    status, content = await connection.request(f"{head}\r\n".encode(), body)
    if not 200 <= status < 300:
        raise _BadStatus(f"{status} {content[:150].decode(errors='replace')}")
    return content


class _BadStatus(Exception):
    pass


def _accepted(content: bytes, tally: Tally) -> int:
    results = msgspec.json.decode(content)["results"]
    refused = [r for r in results if r["outcome"] != "accepted"]
    if refused:
        tally.refused += len(refused)
        tally.failed(f"refused {refused[0]}")
    return len(results) - len(refused)


async def _terminal(
    terminal: Terminal, port: int, batch: int, window: Window, pushes: Tally
) -> None:
    connection = Connection(port)
    while time.perf_counter() < window.closes:
        body = terminal.batch(batch)
        began = time.perf_counter()
        try:
            content = await _push(connection, terminal, port, body)
        except TransportError as exc:
            pushes.transport_errors += 1
            pushes.failed(str(exc))
            continue
        except _BadStatus as exc:
            pushes.bad_status += 1
            pushes.failed(str(exc))
            continue
        finished = time.perf_counter()
        accepted = _accepted(content, pushes)
        if window.counts(finished):
            pushes.latencies.append(finished - began)
            pushes.items += accepted
    connection.close()


async def _open_cases(terminals: list[Terminal], port: int, pushes: Tally) -> None:
    async def one(terminal: Terminal) -> None:
        connection = Connection(port)
        try:
            _accepted(await _push(connection, terminal, port, terminal.opening()), pushes)
        except TransportError as exc:
            pushes.transport_errors += 1
            pushes.failed(str(exc))
        except _BadStatus as exc:
            pushes.bad_status += 1
            pushes.failed(str(exc))
        finally:
            connection.close()

    await asyncio.gather(*(one(t) for t in terminals))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# What runs in each phase (parties, terminals): each endpoint alone, its capacity on one
# worker, then both at once, as in the field, where they share the worker and the database.
PHASES = (("verification alone", True, False), ("sync alone", False, True), ("both", True, True))
# Party addresses of phase i start at 10.0.0.0 + i * PHASE_ADDRESSES: never reused across phases.
PHASE_ADDRESSES = 4_000_000


async def _settle(server_pid: int, limit: float = 120.0) -> float:
    """Wait until the server idles (work left from a phase, such as the 亮证 events written
    after scans, must not count in the next one); returns the seconds waited."""
    began = time.perf_counter()
    while time.perf_counter() - began < limit:
        used = _cpu_seconds(server_pid)
        await asyncio.sleep(1.0)
        if _cpu_seconds(server_pid) - used < 0.05:
            break
    return time.perf_counter() - began


@dataclass
class Phase:
    name: str
    settled: float  # seconds the server needed to idle before this phase
    pages: Tally
    answers: Tally
    pushes: Tally
    seconds: float
    server_cpu: float
    generator_cpu: float

    @property
    def tallies(self) -> tuple[Tally, Tally, Tally]:
        return self.pages, self.answers, self.pushes

    @property
    def verify_rate(self) -> float:
        return (len(self.pages.latencies) + len(self.answers.latencies)) / self.seconds

    @property
    def events_rate(self) -> float:
        return self.pushes.items / self.seconds


async def _phase(
    number: int,
    port: int,
    server_pid: int,
    codes: Codes,
    terminals: list[Terminal],
    args: argparse.Namespace,
) -> Phase:
    name, parties, pushing = PHASES[number]
    settled = await _settle(server_pid)
    pages, answers = Tally("GET /v/{token} HTML page"), Tally("GET /v/{token} JSON")
    pushes = Tally("POST /api/sync/push")
    opens = time.perf_counter() + WARM_UP_SECONDS
    window = Window(opens=opens, closes=opens + args.seconds)

    async def measure_cpu() -> tuple[float, float]:
        await asyncio.sleep(max(0.0, opens - time.perf_counter()))
        server, generator = _cpu_seconds(server_pid), time.process_time()
        await asyncio.sleep(max(0.0, window.closes - time.perf_counter()))
        return _cpu_seconds(server_pid) - server, time.process_time() - generator

    first = number * PHASE_ADDRESSES
    *_, (server_cpu, generator_cpu) = await asyncio.gather(
        *(
            _party(first + n, args.clients, port, codes, window, pages, answers)
            for n in range(args.clients if parties else 0)
        ),
        *(_terminal(t, port, args.batch, window, pushes) for t in terminals if pushing),
        measure_cpu(),
    )
    return Phase(name, settled, pages, answers, pushes, args.seconds, server_cpu, generator_cpu)


async def _run(args: argparse.Namespace, database_url: str | None) -> tuple[Tally, list[Phase]]:
    with tempfile.TemporaryDirectory(prefix="zhifa-bench-load-") as folder:
        port = free_port()
        env, terminals = await prepare(Path(folder), port, database_url, args.clients)
        codes = await _codes(env)
        server = serve(
            "server.app.main:create_app", port, env, factory=True, forwarded_allow_ips=PROXY
        )
        try:
            # Officers are on open cases when parties scan them, so scans become 亮证 events.
            opening = Tally("opening the terminals' cases")
            await _open_cases(terminals, port, opening)
            phases = [
                await _phase(number, port, server.pid, codes, terminals, args)
                for number in range(len(PHASES))
            ]
            return opening, phases
        finally:
            server.terminate()
            server.wait()


def _report(opening: Tally, phases: list[Phase], args: argparse.Namespace, database: str) -> None:
    policy = load_policy()
    print(
        f"server: uvicorn {version('uvicorn')}, http=httptools {version('httptools')}, "
        f"loop=uvloop {version('uvloop')}, litestar {version('litestar')}, 1 worker; {database}"
    )
    print(
        f"load: {args.clients} parties (a new X-Forwarded-For address every {PARTY_REQUESTS} "
        f"requests, trusted from {PROXY} only; rate limit as shipped: "
        f"{policy.rate_limit_requests} requests per address per "
        f"{policy.rate_limit_window_seconds} s) and {args.clients} terminals ({args.batch} events "
        f"per push, DPoP); {args.seconds:g} s per phase after {WARM_UP_SECONDS:g} s warm-up"
    )
    header = f"{'phase':<20}{'endpoint':<27}{'requests':>9}{'req/s':>8}{'events/s':>9}"
    print(f"{header}{'p50 ms':>9}{'p99 ms':>9}{'errors':>7}{'CPU srv/gen':>13}")
    for phase in phases:
        cpu = f"{phase.server_cpu / phase.seconds:.0%}/{phase.generator_cpu / phase.seconds:.0%}"
        for tally in phase.tallies:
            if not tally.latencies and not tally.errors:
                continue  # not loaded in this phase
            events = f"{tally.items / phase.seconds:.0f}" if tally.items else ""
            print(
                f"{phase.name:<20}{tally.name:<27}{len(tally.latencies):>9}"
                f"{len(tally.latencies) / phase.seconds:>8.0f}{events:>9}"
                f"{tally.quantile(0.5):>9.1f}{tally.quantile(0.99):>9.1f}{tally.errors:>7}"
                f"{cpu:>13}"
            )
            for sample in tally.samples:
                print(f"  error: {sample}")
    print(
        f"CPU srv/gen: the server's and the load generator's share of one core over the window "
        f"({os.cpu_count()} cores, load average now {os.getloadavg()[0]:.1f}); "
        "waited for the server to idle: "
        + ", ".join(f"{p.settled:.0f} s before {p.name}" for p in phases)
    )
    errors = opening.errors + sum(t.errors for phase in phases for t in phase.tallies)
    alone_verify, alone_sync, both = phases
    print(f"load_errors={errors}")
    print(f"load_verify_rps={alone_verify.verify_rate:.0f}")
    print(f"load_sync_events_per_s={alone_sync.events_rate:.0f}")
    print(f"load_both_verify_rps={both.verify_rate:.0f}")
    print(f"load_both_sync_events_per_s={both.events_rate:.0f}")


def main() -> None:
    logging.getLogger().setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s per phase instead of 60 s")
    parser.add_argument("--clients", type=int, default=200, help="parties, and as many terminals")
    parser.add_argument("--seconds", type=float, default=None)
    add_push_options(parser)
    args = parser.parse_args()
    args.seconds = args.seconds or (10.0 if args.quick else 60.0)
    import uvloop

    database_url = None
    if args.database_url:  # a fresh database on that server, dropped afterwards
        name = f"zhifa_bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(postgres_database(args.database_url, [name], 'CREATE DATABASE "{name}"'))
        database_url = f"{args.database_url.rsplit('/', 1)[0]}/{name}"
    try:
        opening, phases = uvloop.run(_run(args, database_url))
    finally:
        if args.database_url:
            statement = 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            asyncio.run(postgres_database(args.database_url, [name], statement))
    _report(opening, phases, args, "PostgreSQL" if args.database_url else "SQLite (WAL)")


if __name__ == "__main__":
    main()
