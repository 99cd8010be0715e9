"""A PostgreSQL of the test's own (Debian's binaries, a temporary cluster, a free port), which the
test may stop and start at will. The shared instance on 127.0.0.1:5432 is never touched: other
engineers' tests run on it."""

from __future__ import annotations

import contextlib
import getpass
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import free_port

REQUIRE_ENV = "ZHIFA_REQUIRE_POSTGRES"


def _binaries() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4])
    )
    return Path(found[-1]).parent if found else None


def unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but a private PostgreSQL cannot run: {reason}")
    pytest.skip(f"a private PostgreSQL cannot run: {reason}")


class PrivatePostgres:
    def __init__(self) -> None:
        bin_dir = _binaries()
        if bin_dir is None:
            unavailable("no /usr/lib/postgresql/*/bin/initdb (Debian package postgresql)")
        assert bin_dir is not None
        self.bin = bin_dir
        # PostgreSQL refuses to run as root: as root, the cluster belongs to the postgres user.
        self.as_root = os.geteuid() == 0
        if self.as_root and shutil.which("runuser") is None:
            unavailable("running as root without runuser")
        self.user = "postgres" if self.as_root else getpass.getuser()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="zhifa-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        if self.as_root:
            try:
                shutil.chown(self.root, "postgres", "postgres")
            except (LookupError, OSError) as exc:
                shutil.rmtree(self.root, ignore_errors=True)
                unavailable(f"no postgres user to own the cluster ({exc})")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.user, "--no-sync")
        self.start()

    @property
    def admin_url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed: {done.stdout}{done.stderr}{log}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def crash(self) -> None:
        """Stop at once, as a crash or an operator's restart does: every connection is cut."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # not running
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
