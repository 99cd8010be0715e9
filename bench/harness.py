"""What every benchmark shares: one way to start the server under test, so ours and the ceiling
always run under the same uvicorn settings (named in each benchmark's output)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(
    target: str,
    port: int,
    env: dict[str, str],
    *,
    factory: bool,
    forwarded_allow_ips: str | None = None,
    python: str = sys.executable,
    app_dir: Path = ROOT / "bench",
) -> subprocess.Popen[bytes]:
    """uvicorn with the httptools parser, uvloop and one worker; returns once it answers HTTP.

    ``forwarded_allow_ips``: the load balancers whose ``X-Forwarded-For`` names the client, as a
    deployment behind one configures it (said explicitly, not left to uvicorn's default).
    ``python``, ``app_dir``: another environment's interpreter and app (a peer installed apart)."""
    command = [python, "-m", "uvicorn", target, "--port", str(port)]
    command += ["--http", "httptools", "--loop", "uvloop", "--workers", "1"]
    command += ["--log-level", "warning", "--no-access-log", "--app-dir", str(app_dir)]
    # Hundreds of queued clients may not reuse a connection within the 5 s default.
    command += ["--timeout-keep-alive", "120"]
    if forwarded_allow_ips is not None:
        command += ["--proxy-headers", "--forwarded-allow-ips", forwarded_allow_ips]
    if factory:
        command.append("--factory")
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)  # any answer means it listens
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{target} did not start")
