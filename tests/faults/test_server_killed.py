"""The server is killed with SIGKILL at random moments while 20 terminals upload recordings and
sync events, and restarted on the same database and storage: every recording is sealed
byte-identical exactly once, every event stored exactly once, in order."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.conftest import LiveServer
from tests.faults.fleet import Fleet

TERMINALS = 20
KILLS = 5


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sigkill_during_uploads_and_syncs(
    server: LiveServer, rng: random.Random, tmp_path: Path
) -> None:
    fleet = Fleet(server.url, tmp_path, TERMINALS, rng)
    # ~40 KB a second for each upload: a recording takes a few seconds, long enough to be cut.
    fleet.start(upload_rate=40_000)
    kills = 0
    try:
        while kills < KILLS and fleet.running():
            time.sleep(rng.uniform(0.2, 1.5))
            server.kill()
            kills += 1
            time.sleep(rng.uniform(0.0, 0.5))  # down for a moment: clients meet refused connections
            server.start()
        fleet.join(timeout=180)
    finally:
        fleet.stop.set()
    assert kills >= 3, f"only {kills} kills happened while the fleet was working"
    counts = await fleet.verify(server.settings)
    print(f"{kills} kills, {counts}")
