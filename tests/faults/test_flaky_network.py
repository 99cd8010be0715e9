"""A TCP proxy between the terminals and the server drops, delays, truncates, stalls and resets
connections while 20 terminals upload recordings and sync events (PostgreSQL this time): every
recording is sealed byte-identical exactly once, every event stored exactly once, in order."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.conftest import LiveServer
from tests.faults.chaos_proxy import ChaosProxy
from tests.faults.fleet import Fleet

TERMINALS = 20
STORM_SECONDS = 25


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_flaky_network_between_terminals_and_server(
    server: LiveServer, rng: random.Random, tmp_path: Path
) -> None:
    proxy = ChaosProxy(server.settings.port, rng)
    try:
        fleet = Fleet(proxy.url, tmp_path, TERMINALS, rng)
        proxy.storm()
        fleet.start(upload_rate=20_000)
        stormy_until = time.monotonic() + STORM_SECONDS
        while fleet.running() and time.monotonic() < stormy_until:
            time.sleep(0.2)
        proxy.calm()  # the network heals; whatever is left goes through
        fleet.join(timeout=180)
    finally:
        proxy.close()
    faulted = sum(n for fate, n in proxy.fates.items() if fate not in ("clean", "delay"))
    assert faulted >= 20, f"the proxy broke only {faulted} connections: {proxy.fates}"
    counts = await fleet.verify(server.settings)
    print(f"connections: {dict(proxy.fates)}, {counts}")
