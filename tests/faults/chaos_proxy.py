"""A TCP proxy between terminals and the server that breaks connections (asyncio, own thread).

Each new connection draws its fate from the test's seeded generator: passed through untouched,
delayed (every piece held back a little), dropped (closed cleanly after some bytes), truncated
(a piece cut in the middle, then closed), reset (RST after some bytes) or stalled (nothing moves
for a while, then RST). Faults hit either direction: requests and answers alike are cut.
``calm()`` lets every later connection through untouched so the test can finish.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import socket
import struct
import threading
from dataclasses import dataclass

FATES = ("clean", "delay", "drop", "truncate", "reset", "stall")
WEIGHTS = (40, 15, 12, 12, 12, 9)


@dataclass
class Fate:
    kind: str
    budget: int  # bytes let through (in the faulted direction) before the fault
    upstream: bool  # the fault is on the way to the server (else on the way back)
    delay: float


class ChaosProxy:
    def __init__(self, target_port: int, rng: random.Random) -> None:
        self.target_port = target_port
        self._rng = rng
        self._lock = threading.Lock()
        self._chaos = False
        self.fates: collections.Counter[str] = collections.Counter()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait()
        self.url = f"http://127.0.0.1:{self.port}"

    # -- control (from the test's thread) ------------------------------------------------------

    def storm(self) -> None:
        self._chaos = True

    def calm(self) -> None:
        self._chaos = False

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    # -- the proxy -------------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    def _draw(self) -> Fate:
        with self._lock:
            kind = self._rng.choices(FATES, WEIGHTS)[0] if self._chaos else "clean"
            fate = Fate(
                kind,
                budget=self._rng.randrange(0, 96 * 1024),
                upstream=self._rng.random() < 0.6,
                delay=self._rng.uniform(0.005, 0.15)
                if kind == "delay"
                else self._rng.uniform(0.5, 2.5),
            )
            self.fates[kind] += 1
            return fate

    async def _connection(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        fate = self._draw()
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _reset(client_w)
            return
        ends = (client_w, server_w)
        await asyncio.gather(
            self._pump(client_r, server_w, fate if fate.upstream else None, ends),
            self._pump(server_r, client_w, None if fate.upstream else fate, ends),
            return_exceptions=True,
        )
        for end in ends:
            end.close()

    async def _pump(
        self,
        source: asyncio.StreamReader,
        target: asyncio.StreamWriter,
        fate: Fate | None,
        ends: tuple[asyncio.StreamWriter, ...],
    ) -> None:
        passed = 0
        try:
            while data := await source.read(16 * 1024):
                if fate is not None and fate.kind == "delay":
                    await asyncio.sleep(fate.delay)
                elif fate is not None and fate.kind != "clean" and passed + len(data) > fate.budget:
                    await self._strike(fate, data[: max(0, fate.budget - passed)], target, ends)
                    return
                passed += len(data)
                target.write(data)
                await target.drain()
            if target.can_write_eof():
                target.write_eof()
        except (OSError, asyncio.IncompleteReadError):
            for end in ends:
                _reset(end)

    async def _strike(
        self,
        fate: Fate,
        head: bytes,
        target: asyncio.StreamWriter,
        ends: tuple[asyncio.StreamWriter, ...],
    ) -> None:
        if fate.kind == "truncate" and head:
            target.write(head[: len(head) // 2 + 1])
            with contextlib.suppress(OSError):
                await target.drain()
        if fate.kind == "stall":
            await asyncio.sleep(fate.delay)
        for end in ends:
            if fate.kind in ("reset", "stall"):
                _reset(end)
            else:
                end.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN, as a middlebox or a crashed peer does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
