"""What the tour stands on: the server in its own process, staff calls over HTTP, the narration."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx

from server.app import demo, migrate
from server.app.context import AppContext
from server.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


class TourFailed(Exception):
    """A step did not turn out as the tour expects: the message says which and why."""


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(settings: Settings) -> int:
    """The configured port when it is free, else any free one."""
    if _port_free(settings.host, settings.port):
        return settings.port
    with socket.socket() as sock:
        sock.bind((settings.host, 0))
        return int(sock.getsockname()[1])


def prepare_database(settings: Settings) -> demo.DemoInfo:
    """Migrate and seed the demo agency, as ``make seed`` does (both change nothing the second
    time), so the tour also runs on a fresh data directory."""

    async def work() -> demo.DemoInfo:
        context = AppContext(settings)
        try:
            await migrate.upgrade(context.database)
            return await demo.seed(context)
        finally:
            await context.close()

    return asyncio.run(work())


class Server:
    """``zhifa serve`` in its own process, as an operator runs it; the tour kills and restarts
    it in the middle of an upload."""

    def __init__(self, settings: Settings, port: int, log_path: Path) -> None:
        self.settings = settings
        self.port = port
        self.url = f"http://{settings.host}:{port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        env = {
            **os.environ,
            "ZHIFA_DATA_DIR": self.settings.data_dir,
            "ZHIFA_DATABASE_URL": self.settings.resolved_database_url,
            "ZHIFA_PORT": str(self.port),
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server.app.cli", "serve"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TourFailed(f"the server exited at start; its log: {self.log_path}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TourFailed(f"the server did not get ready in {timeout:.0f} s; log: {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as when the power goes."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def wait(self) -> None:
        if self.process is not None:
            self.process.wait()


class Staff:
    """A console user calling the HTTP API (reviewer, admin), with a bearer token."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.username = username
        self.http = httpx.Client(base_url=base_url, timeout=30)
        token = self.call("POST", "/api/auth/login", {"username": username, "password": password})
        self.http.headers["Authorization"] = f"Bearer {token['access_token']}"

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        params: dict[str, str] | None = None,
    ) -> Any:
        response = self.http.request(method, path, json=body, params=params)
        if response.status_code >= 400:
            raise TourFailed(
                f"{self.username}: {method} {path} → {response.status_code} {response.text}"
            )
        return response.json()

    def close(self) -> None:
        self.http.close()


class Narrator:
    """The tour's voice: numbered steps, indented facts and the links to what each step made."""

    def __init__(self) -> None:
        self.number = 0

    def title(self, text: str) -> None:
        click.echo(click.style(text, bold=True))

    def step(self, text: str) -> None:
        self.number += 1
        click.echo("")
        click.echo(click.style(f"{self.number:>2}. {text}", fg="cyan", bold=True))

    def say(self, text: str) -> None:
        click.echo(f"    {text}")

    def detail(self, text: str) -> None:
        for line in text.splitlines():
            click.echo(click.style(f"      {line}", dim=True))

    def link(self, label: str, url: str) -> None:
        click.echo(f"    → {label}: {click.style(url, fg='blue', underline=True)}")
