"""Fixtures of the fault tests: a printed seed, a seeded database, a live server to break."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.app import demo
from server.app.context import AppContext
from server.core.clock import Clock
from server.core.settings import Settings
from tests.conftest import LiveServer

SEED_ENV = "ZHIFA_FAULT_SEED"


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """Seeded randomness; the seed is printed (shown with a failure) and can be replayed with
    ZHIFA_FAULT_SEED=<seed> make test-faults."""
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))
    print(f"{request.node.nodeid}: {SEED_ENV}={seed}")
    request.node.user_properties.append(("seed", seed))
    return random.Random(seed)


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    # A killed server's lease on an upload lapses quickly, so the next PATCH need not wait long.
    monkeypatch.setenv("ZHIFA_MEDIA_UPLOAD_LEASE_SECONDS", "2")


@pytest.fixture
async def demo_agency(migrated: Settings) -> Settings:
    context = AppContext(migrated, Clock())
    try:
        await demo.seed(context)
    finally:
        await context.close()
    return migrated


@pytest.fixture
def server(short_lease: None, demo_agency: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    """``zhifa serve`` on the seeded database, in a process the test may kill."""
    live = LiveServer(demo_agency, tmp_path / "server.log")
    live.start(timeout=90)  # the machine is shared: a slow start is not the fault under test
    try:
        yield live
    finally:
        live.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything here is slow on purpose and runs with `make test-faults`, not `make test`.
    for item in items:
        if "tests/faults/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.faults)
