"""The local API's recording endpoints: standby (pre-record), start and stop a recording, the
recordings with their upload progress, the minutes of recording left.

A recording runs in a capture thread of the serving process, with an agent of its own (the store
allows one connection per thread); requests only press its buttons.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import msgspec
from starlette.routing import Route

from edge_agent.agent import Agent
from edge_agent.client import EdgeError
from edge_agent.recordings import Recordings, Take, TakeResult, capture, open_source, parse_gps
from media.edge.config import RecorderConfig
from media.edge.recorder import Recorder

DEFAULTS = RecorderConfig()


class StartRecording(msgspec.Struct, frozen=True, kw_only=True):
    source: str = "synthetic"
    case_id: str | None = None
    officers: list[str] = []
    gps: str | None = None  # LAT,LON[,ACCURACY_M]
    seconds: float | None = None
    width: int = DEFAULTS.width
    height: int = DEFAULTS.height
    fps: int = DEFAULTS.fps
    pre_record_seconds: float = DEFAULTS.pre_record_seconds  # for standby


class Started(msgspec.Struct, frozen=True):
    recording_id: str
    resumed: bool


class RecordingActive(EdgeError):
    code = "recording_active"


class NotRecording(EdgeError):
    code = "not_recording"


class _Live:
    """The one recording of this terminal: its recorder, its thread, and how it ended."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.lock = threading.Lock()
        self.recorder: Recorder | None = None
        self.thread: threading.Thread | None = None
        self.stop = threading.Event()
        self.pressed = threading.Event()
        self.take = Take()
        self.result: TakeResult | None = None
        self.error: Exception | None = None

    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _take(self, agent: Agent, data: StartRecording) -> Take:
        if data.case_id is not None:
            agent.desk.case(data.case_id)  # an unknown case is refused before anything runs
        return Take(
            case_id=data.case_id,
            officers=data.officers,
            position=parse_gps(data.gps, agent.desk.clock()) if data.gps else None,
            seconds=data.seconds,
        )

    def _launch(self, data: StartRecording, *, pre_record: float, press: bool) -> Recorder:
        """Start the capture thread: in standby (pre-record ring) or pressed at once."""
        config = RecorderConfig(
            width=data.width, height=data.height, fps=data.fps, pre_record_seconds=pre_record
        )
        agent = Agent(self.home)
        try:
            recordings = Recordings(agent.home, agent.session, agent.desk)
            self.take = take = self._take(agent, data)
            source = open_source(data.source, config, pace=1.0)
            self.recorder = recorder = recordings.recorder(config, epoch=source.epoch)
        except BaseException:
            agent.close()
            raise
        self.stop, self.pressed = threading.Event(), threading.Event()
        self.result, self.error = None, None
        if press:
            self.pressed.set()
        stop, pressed = self.stop, self.pressed

        def run() -> None:
            try:
                with recorder:
                    self.result = capture(
                        recordings, recorder, source.frames(), take, stop=stop, pressed=pressed
                    )
            except Exception as exc:  # reported by the next stop or start
                self.error = exc
            finally:
                agent.close()

        self.thread = threading.Thread(target=run, name="recording", daemon=True)
        self.thread.start()
        return recorder

    def standby(self, data: StartRecording) -> dict[str, Any]:
        with self.lock:
            if self.running():
                raise RecordingActive("已在待机或录像中")
            recorder = self._launch(data, pre_record=data.pre_record_seconds, press=False)
            if recorder.recording is not None:  # an interrupted recording goes on at once
                return {"state": "recording", "recording_id": recorder.recording.recording_id}
            return {"state": "standby", "pre_record_seconds": data.pre_record_seconds}

    def start(self, data: StartRecording) -> Started:
        with self.lock:
            recorder = self.recorder
            if self.running() and recorder is not None and recorder.recording is None:
                # Record pressed in standby: the ring becomes the first seconds.
                with Agent(self.home) as agent:
                    take = self._take(agent, data)
                self.take.case_id, self.take.officers = take.case_id, take.officers
                self.take.position, self.take.seconds = take.position, take.seconds
                self.pressed.set()
                resumed = False
            elif self.running():
                raise RecordingActive("正在录像，请先停止")
            else:
                recorder = self._launch(data, pre_record=0, press=True)
                resumed = recorder.recording is not None
            # The recording exists once the next frame arrived.
            deadline = time.monotonic() + 10
            while recorder.recording is None and self.running():
                if time.monotonic() > deadline:
                    self.stop.set()
                    raise EdgeError("录像源没有画面", code="source_silent")
                time.sleep(0.02)
            if recorder.recording is None:
                raise self._failure()
            return Started(recorder.recording.recording_id, resumed)

    def _failure(self) -> Exception:
        error = self.error or EdgeError("录像意外结束", code="recording_failed")
        return (
            error
            if isinstance(error, EdgeError)
            else EdgeError(str(error), code="recording_failed")
        )

    def finish(self) -> dict[str, Any]:
        with self.lock:
            if self.thread is None:
                raise NotRecording("当前没有录像")
            standby = self.recorder is not None and self.recorder.recording is None
            self.stop.set()
            self.thread.join()
            self.thread = None
            if standby and self.result is None:
                return {"state": "idle"}  # standby ended, nothing was recorded
            if self.result is None:
                raise self._failure()
            return asdict(self.result)


def routes(home: Path, endpoint: Callable[..., Any]) -> list[Route]:
    live = _Live(home)

    def start(_: Agent, __: Any, body: bytes) -> Started:
        return live.start(msgspec.json.decode(body or b"{}", type=StartRecording))

    def standby(_: Agent, __: Any, body: bytes) -> dict[str, Any]:
        return live.standby(msgspec.json.decode(body or b"{}", type=StartRecording))

    def space(agent: Agent, *_: Any) -> Any:
        recorder = live.recorder if live.running() else None
        return Recordings(agent.home, agent.session, agent.desk).space(recorder)

    def listing(agent: Agent, *_: Any) -> Any:
        return Recordings(agent.home, agent.session, agent.desk).lines()

    return [
        Route("/api/recordings", endpoint(listing), methods=["GET"]),
        Route("/api/recordings/space", endpoint(space), methods=["GET"]),
        Route("/api/recordings/standby", endpoint(standby, 201), methods=["POST"]),
        Route("/api/recordings/start", endpoint(start, 201), methods=["POST"]),
        Route("/api/recordings/stop", endpoint(lambda a, r, b: live.finish()), methods=["POST"]),
    ]
