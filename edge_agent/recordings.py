"""Audio-video recordings on the terminal: record, attach to a case, upload, list (issue 4).

The officer-facing side of ``media.edge``: the recorder gets the terminal id, the logged-in
officer's 证号 and the device key from the session; local storage is a ``LocalQuota`` under
``<home>/recordings`` (recordings the server confirmed sealed are cleared first); uploads use the
session's token with a fresh device proof per request. Used by the CLI (recording_cli), the local
API (recording_api) and, after every sync, by the sync hook at the end of this module.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from edge_agent.cases import Desk
from edge_agent.client import EdgeError, Offline
from edge_agent.session import Session
from edge_agent.sync import SYNC_HOOKS, Syncer, SyncReport
from media.edge.capture import DeviceSource, FileSource, Frame, Source, SyntheticSource
from media.edge.chain import ChainLog
from media.edge.config import RecorderConfig
from media.edge.manifest import EvidenceReceipt
from media.edge.metadata import GpsFix, RecordingMeta
from media.edge.recorder import ChainBroken, Recorder, RecorderError, StorageFull
from media.edge.storage import STANDBY_DIR, RecordingDir, fsync_dir
from media.edge.uploader import (
    REJECTED,
    UPLOAD_STATE,
    Backoff,
    EvidenceRejected,
    LocalQuota,
    Rejection,
    Stopped,
    Uploader,
    UploadError,
    UploadState,
    closed_chain,
    pending_recordings,
    read_receipt,
)
from mobile_api.contracts.device_proof import make_device_proof
from mobile_api.contracts.events import EvidenceAttached

log = logging.getLogger("zhifa.edge.recordings")

RECORDINGS_DIR = "recordings"
# Upload progress as the server acknowledged it, for `zhifa-edge recordings` and the local API
# (advisory: the uploader always resumes from the server's offset).
PROGRESS_FILE = "progress.json"
QUOTA_ENV = "ZHIFA_EDGE_QUOTA_MB"
DEFAULT_QUOTA_MB = 8192
# The officer is warned when fewer minutes of recording are left.
WARN_MINUTES = 10.0
# An upload that made no progress for this long gives up until the next try (no network).
STALL_SECONDS = 60.0

STATE_LABELS = {
    "recording": "录像中",
    "waiting": "等待上传",
    "uploading": "上传中",
    "sealed": "已封存",
    "refused": "被拒收",
}


STOP_LABELS = {
    "officer": "执法人员停止",
    "storage_full": "存储空间已满",
    "write_error": "写入失败",
    "shutdown": "终端关机",
}


class RecordingUnknown(EdgeError):
    code = "recording_unknown"


class RecordingBusy(EdgeError):
    code = "recording_unfinished"


class StorageExhausted(EdgeError):
    code = "storage_full"


class Progress(msgspec.Struct, frozen=True):
    offset: int
    size: int


class RecordingLine(msgspec.Struct, frozen=True, kw_only=True):
    recording_id: str
    state: str  # recording | waiting | uploading | sealed | refused
    label: str  # the state in Chinese, with the percentage or the reason
    percent: int | None = None
    case_id: str | None = None
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    stop_reason: str | None = None
    seconds: float = 0.0
    size: int = 0
    evidence_id: str | None = None
    problems: list[str] = []


class Space(msgspec.Struct, frozen=True, kw_only=True):
    minutes_left: float
    free_bytes: int
    reclaimable_bytes: int
    quota_bytes: int
    warn: bool


class UploadOutcome(msgspec.Struct, frozen=True, kw_only=True):
    recording_id: str
    state: str  # sealed | refused | interrupted
    evidence_id: str | None = None
    message: str = ""


ProgressFn = Callable[[str, int, int], None]


def quota_bytes_default() -> int:
    return int(float(os.environ.get(QUOTA_ENV, DEFAULT_QUOTA_MB)) * 1024 * 1024)


def parse_gps(text: str, now: dt.datetime) -> GpsFix:
    """``LAT,LON`` or ``LAT,LON,ACCURACY_M``."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (2, 3) or not (-90 <= values[0] <= 90 and -180 <= values[1] <= 180):
        raise EdgeError(f"定位应写作 纬度,经度[,精度米]：{text}", code="gps_invalid")
    return GpsFix(values[0], values[1], now, values[2] if len(values) == 3 else None)


class Recordings:
    def __init__(
        self,
        home: Path,
        session: Session,
        desk: Desk,
        *,
        quota_bytes: int | None = None,
    ) -> None:
        self.root = home / RECORDINGS_DIR
        self.session = session
        self.desk = desk
        self.root.mkdir(parents=True, exist_ok=True)
        # The recorder's own disk reserve is kept here, so it is not counted twice.
        self.quota = LocalQuota(
            self.root,
            quota_bytes if quota_bytes is not None else quota_bytes_default(),
            reserve_bytes=RecorderConfig().reserve_bytes,
        )

    # -- recording ------------------------------------------------------------------------------

    def unfinished(self) -> list[Path]:
        """Recordings whose chain is not closed: interrupted by a crash (or being recorded)."""
        return [
            path
            for path in sorted(self.root.iterdir())
            if path.is_dir()
            and path.name != STANDBY_DIR
            and (path / "chain.json").exists()
            and closed_chain(path) is None
        ]

    def recorder(self, config: RecorderConfig, *, epoch: dt.datetime | None) -> Recorder:
        """A recorder for this terminal and officer. An interrupted recording is continued
        (its chain goes on); older interrupted ones are closed as they are."""
        config = msgspec.structs.replace(config, reserve_bytes=0)
        # Room for two segments at the peak rate before a segment is refused.
        watermark = int(2 * config.segment_seconds * config.worst_case_bytes_per_second)
        options = {
            "device_key": self.session.device_key(),
            "config": config,
            "epoch": epoch,
            "free_bytes": lambda: self.quota.free_bytes(watermark),
        }
        interrupted = self.unfinished()
        try:
            for directory in interrupted[:-1]:
                Recorder.resume(directory, **options).close()  # type: ignore[arg-type]
            if interrupted:
                return Recorder.resume(interrupted[-1], **options)  # type: ignore[arg-type]
        except ChainBroken as exc:
            raise EdgeError(
                f"中断的录像链校验失败，未继续录制：{exc}", code="chain_broken"
            ) from exc
        return Recorder(
            self.root,
            terminal_id=self.session.row("terminal_id"),
            credential_no=self.session.credential_number,
            **options,  # type: ignore[arg-type]
        )

    def minutes_left(self, recorder: Recorder | None = None) -> float:
        rate = (
            recorder.bytes_per_second if recorder else RecorderConfig().worst_case_bytes_per_second
        )
        return self.quota.minutes_left(rate)

    def space(self, recorder: Recorder | None = None) -> Space:
        minutes = self.minutes_left(recorder)
        return Space(
            minutes_left=round(minutes, 1),
            free_bytes=self.quota.free_bytes(),
            reclaimable_bytes=self.quota.reclaimable_bytes(),
            quota_bytes=self.quota.quota_bytes,
            warn=minutes < WARN_MINUTES,
        )

    # -- cases ------------------------------------------------------------------------------------

    def _directory(self, recording_id: str) -> RecordingDir:
        path = self.root / recording_id
        if recording_id in ("", ".", "..", STANDBY_DIR) or not (path / "chain.json").exists():
            raise RecordingUnknown(f"本机没有录像 {recording_id}")
        return RecordingDir(path)

    def attach(
        self, recording_id: str, case_id: str, *, for_event: str | None = None
    ) -> EvidenceAttached:
        """Link a finished recording to a case: in its metadata (sent with the upload, or on the
        sealed evidence item when already sealed) and as an evidence-attached case event."""
        directory = self._directory(recording_id)
        chain = closed_chain(directory.path)
        if chain is None:
            raise RecordingBusy(f"录像 {recording_id} 尚未结束，结束后再关联案件")
        case = self.desk.case(case_id)
        receipt = read_receipt(directory.path)
        if receipt is not None:
            # Sealed already: the server links its evidence item (first, so a refusal changes
            # nothing here).
            body = msgspec.json.encode({"case_id": case.id})
            self.session.call(
                lambda client, token: client.request(
                    "PUT",
                    f"/api/media/evidence/{receipt.evidence_id}/case",
                    token=token,
                    content=body,
                )
            )
        meta = directory.load_meta()
        meta.case_id = case.id
        directory.save_meta(meta)
        return self._evidence_event(directory, chain, meta, for_event)

    def _evidence_event(
        self, directory: RecordingDir, chain: ChainLog, meta: RecordingMeta, for_event: str | None
    ) -> EvidenceAttached:
        assert meta.case_id is not None
        started = meta.started_at.astimezone(dt.timezone(dt.timedelta(hours=8)))
        seconds = sum(s.duration_s for s in chain.segments)
        fields: dict[str, object] = {
            # The recording id is the terminal's evidence id; the server's item carries it too.
            "evidence_id": chain.recording_id,
            "evidence_kind": "音像记录",
            "description": f"执法记录仪录像 {started:%Y-%m-%d %H:%M:%S}，{seconds:.0f} 秒",
            "recording_id": chain.recording_id,
            "sha256": self._sha256(directory, chain),
        }
        if for_event:
            fields["for_event"] = for_event
        event = self.desk.record(meta.case_id, "evidence_attached", fields, meta.officers or None)
        assert isinstance(event, EvidenceAttached)
        return event

    def _sha256(self, directory: RecordingDir, chain: ChainLog) -> str:
        """The SHA-256 of the segments concatenated, as uploaded (the uploader keeps it)."""
        receipt = read_receipt(directory.path)
        if receipt is not None:
            return receipt.sha256
        try:
            state = msgspec.json.decode(
                (directory.path / UPLOAD_STATE).read_bytes(), type=UploadState
            )
            if chain.head is not None and state.head_hex == chain.head.head_hex:
                return state.sha256
        except FileNotFoundError:
            pass
        hasher = hashlib.sha256()
        for record in chain.segments:
            hasher.update(directory.read_segment(record))
        return hasher.hexdigest()

    # -- listing ----------------------------------------------------------------------------------

    def lines(self) -> list[RecordingLine]:
        return [
            self._line(path)
            for path in sorted(self.root.iterdir())
            if path.is_dir() and path.name != STANDBY_DIR and (path / "chain.json").exists()
        ]

    def _line(self, path: Path) -> RecordingLine:
        directory = RecordingDir(path)
        chain = directory.load_chain()
        try:
            meta: RecordingMeta | None = directory.load_meta()
        except FileNotFoundError:
            meta = None
        line = RecordingLine(
            recording_id=path.name,
            state="waiting",
            label=STATE_LABELS["waiting"],
            case_id=meta.case_id if meta else None,
            started_at=meta.started_at if meta else chain.started_at,
            ended_at=meta.ended_at if meta else None,
            stop_reason=meta.stop_reason if meta else None,
            seconds=round(sum(s.duration_s for s in chain.segments), 1),
            size=sum(s.size for s in chain.segments),
        )
        replace = msgspec.structs.replace
        receipt = read_receipt(path)
        if chain.head is None or not chain.head.closed:
            return replace(line, state="recording", label=STATE_LABELS["recording"])
        if receipt is not None:
            return replace(
                line, state="sealed", label=STATE_LABELS["sealed"], evidence_id=receipt.evidence_id
            )
        if (path / REJECTED).exists():
            problems = msgspec.json.decode((path / REJECTED).read_bytes(), type=Rejection).problems
            label = f"{STATE_LABELS['refused']}：{'；'.join(problems)}"
            return replace(line, state="refused", label=label, problems=problems)
        try:
            progress = msgspec.json.decode((path / PROGRESS_FILE).read_bytes(), type=Progress)
        except (FileNotFoundError, msgspec.DecodeError):
            return line
        percent = progress.offset * 100 // max(1, progress.size)
        label = f"{STATE_LABELS['uploading']} {percent}%"
        return replace(line, state="uploading", label=label, percent=percent)

    # -- upload -----------------------------------------------------------------------------------

    def _headers(self) -> Callable[[str, str], dict[str, str]]:
        key = self.session.device_key()

        def headers(method: str, url: str) -> dict[str, str]:
            token = self.session.access_token()
            now = self.session.client().server_now()
            return {
                "Authorization": f"DPoP {token}",
                "DPoP": make_device_proof(key, method, url, token, now=now),
            }

        return headers

    def upload_all(
        self,
        *,
        max_bytes_per_second: float | None = None,
        progress: ProgressFn | None = None,
        stall_seconds: float = STALL_SECONDS,
        chunk_size: int = 1024 * 1024,
    ) -> list[UploadOutcome]:
        """Upload every finished recording not yet sealed; delete a recording's segments only
        once the server confirmed the sealed evidence matches them."""
        pending = pending_recordings(self.root)
        if not pending:
            return []
        self.session.access_token()  # not logged in: say so before anything else
        watchdog = _Watchdog(stall_seconds)

        def on_progress(recording_id: str, offset: int, size: int) -> None:
            watchdog.alive()
            _write_progress(self.root / recording_id, offset, size)
            if progress is not None:
                progress(recording_id, offset, size)

        outcomes: list[UploadOutcome] = []
        with (
            Uploader(
                self.session.row("server_url"),
                self._headers(),
                chunk_size=chunk_size,
                max_bytes_per_second=max_bytes_per_second,
                progress=on_progress,
                backoff=Backoff(first=0.2, maximum=5.0),
                stop=watchdog.stop,
            ) as uploader,
            watchdog,
        ):
            for path in pending:
                watchdog.alive()
                try:
                    receipt = uploader.upload(path)
                except Stopped:
                    outcomes.append(
                        UploadOutcome(
                            recording_id=path.name,
                            state="interrupted",
                            message="网络不通或服务器无响应，已上传的部分下次继续",
                        )
                    )
                    break
                except EvidenceRejected as exc:
                    outcomes.append(
                        UploadOutcome(recording_id=path.name, state="refused", message=str(exc))
                    )
                    continue
                except Offline as exc:
                    outcomes.append(
                        UploadOutcome(
                            recording_id=path.name, state="interrupted", message=exc.message
                        )
                    )
                    break
                except UploadError as exc:
                    outcomes.append(
                        UploadOutcome(recording_id=path.name, state="refused", message=str(exc))
                    )
                    continue
                clear_segments(path, receipt)
                outcomes.append(
                    UploadOutcome(
                        recording_id=path.name, state="sealed", evidence_id=receipt.evidence_id
                    )
                )
        return outcomes


def _write_progress(directory: Path, offset: int, size: int) -> None:
    # Advisory, rewritten per chunk: replaced atomically but not fsynced.
    tmp = directory / (PROGRESS_FILE + ".tmp")
    tmp.write_bytes(msgspec.json.encode(Progress(offset, size)))
    os.replace(tmp, directory / PROGRESS_FILE)


def clear_segments(directory: Path, receipt: EvidenceReceipt) -> None:
    """Free the space of a recording the server sealed: its segments go, the small records
    (chain, metadata, receipt) stay so the list still shows it sealed until the quota clears it."""
    if read_receipt(directory) != receipt:
        raise UploadError(f"{directory.name}: no matching receipt, nothing cleared")
    for path in RecordingDir(directory).segment_files():
        path.unlink()
    (directory / PROGRESS_FILE).unlink(missing_ok=True)
    fsync_dir(directory)


@dataclass
class _Watchdog:
    """Sets ``stop`` when nothing moved for ``seconds``: an upload without network gives up
    (and resumes next time) instead of retrying for ever."""

    seconds: float
    stop: threading.Event = field(default_factory=threading.Event)
    _last: float = field(default_factory=time.monotonic)
    _done: threading.Event = field(default_factory=threading.Event)

    def alive(self) -> None:
        self._last = time.monotonic()

    def _watch(self) -> None:
        while not self._done.wait(0.5):
            if time.monotonic() - self._last > self.seconds:
                self.stop.set()
                return

    def __enter__(self) -> _Watchdog:
        threading.Thread(target=self._watch, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()


def open_source(spec: str, config: RecorderConfig, *, pace: float | None) -> Source:
    """``synthetic`` (test picture, clock and tone; ``pace`` times real time, None flat out),
    ``file:PATH`` or ``device`` (V4L2 camera and ALSA microphone)."""
    width, height, fps = config.width, config.height, config.fps
    if spec == "synthetic":
        return SyntheticSource(
            epoch=dt.datetime.now(dt.UTC), width=width, height=height, fps=fps, pace=pace
        )
    if spec.startswith("file:"):
        path = Path(spec.removeprefix("file:"))
        if not path.is_file():
            raise EdgeError(f"找不到录像源文件 {path}", code="source_missing")
        return FileSource(path)
    if spec == "device":
        if not DeviceSource.available():
            raise EdgeError("本机没有摄像头（/dev/video0）", code="source_missing")
        return DeviceSource(
            width=width,
            height=height,
            fps=fps,
            sample_rate=config.sample_rate,
            channels=config.channels,
        )
    raise EdgeError(
        f"未知的录像源 {spec}：可用 synthetic、file:路径、device", code="source_unknown"
    )


# -- capture ----------------------------------------------------------------------------------


@dataclass
class Take:
    """What one recording session asks for."""

    case_id: str | None = None
    officers: list[str] = field(default_factory=list)
    position: GpsFix | None = None
    seconds: float | None = None  # of media after record was pressed; None: until stopped
    # Press record by itself after this many seconds of standby media (the pre-record ring is
    # full then); None: wait for the ``pressed`` event.
    press_after: float | None = None


@dataclass
class TakeResult:
    recording_id: str
    stop_reason: str
    resumed: bool
    seconds: float
    event_id: str | None = None  # the evidence-attached event, when recorded for a case


def capture(
    recordings: Recordings,
    recorder: Recorder,
    frames: Iterator[Frame],
    take: Take,
    *,
    stop: threading.Event,
    pressed: threading.Event,
    on_space: Callable[[float], None] | None = None,
    check_every: float = 2.0,
) -> TakeResult:
    """Feed ``frames`` to ``recorder``: standby until ``pressed`` (a resumed recording is
    recording already), record until ``stop``, ``take.seconds`` of media, the end of the source,
    or the storage is full; then close the chain. ``on_space`` gets the minutes left, every
    ``check_every`` seconds of media."""
    resumed = recorder.recording is not None
    first: float | None = None
    started_at: float | None = None
    checked_at = float("-inf")
    directory = recorder.recording
    try:
        for frame in frames:
            t = frame.time or 0.0
            first = t if first is None else first
            if take.press_after is not None and t - first >= take.press_after:
                pressed.set()
            if directory is None and (pressed.is_set() or stop.is_set()):
                try:
                    directory = recorder.start_recording(
                        case_id=take.case_id,
                        officers=take.officers,
                        position=take.position,
                    )
                except StorageFull as exc:
                    raise StorageExhausted(
                        f"存储空间不足，无法开始录像（{exc}）；请先上传已结束的录像"
                    ) from exc
            if directory is not None and started_at is None:
                started_at = t
            recorder.push(frame)
            if directory is not None and recorder.recording is None:
                break  # the recorder stopped itself: storage full or a write error
            if stop.is_set() or (
                take.seconds is not None
                and started_at is not None
                and t - started_at >= take.seconds
            ):
                break
            if on_space is not None and t - checked_at >= check_every:
                checked_at = t
                on_space(recordings.minutes_left(recorder))
    finally:
        if recorder.recording is not None:
            recorder.stop()
        closer = getattr(frames, "close", None)
        if closer is not None:
            closer()
    if directory is None:
        raise RecorderError("录像源没有画面，未开始录像")
    meta = directory.load_meta()
    chain = directory.load_chain()
    result = TakeResult(
        recording_id=directory.recording_id,
        stop_reason=meta.stop_reason or "officer",
        resumed=resumed,
        seconds=round(sum(s.duration_s for s in chain.segments), 1),
    )
    if meta.case_id is not None:
        result.event_id = str(recordings._evidence_event(directory, chain, meta, None).id)
    return result


# -- after every sync: upload what is finished --------------------------------------------------


def upload_after_sync(syncer: Syncer, report: SyncReport) -> None:
    recordings = Recordings(
        syncer.store.path.parent, syncer.session, Desk(syncer.store, syncer.session, syncer.clock)
    )
    for outcome in recordings.upload_all(stall_seconds=15.0):
        report.notes.append(outcome_text(outcome))


def outcome_text(outcome: UploadOutcome) -> str:
    if outcome.state == "sealed":
        return (
            f"录像 {outcome.recording_id} 已上传并封存为证据 {outcome.evidence_id}，本机文件已清除"
        )
    if outcome.state == "refused":
        return f"录像 {outcome.recording_id} 被拒收：{outcome.message}"
    return f"录像 {outcome.recording_id} 上传中断：{outcome.message}"


SYNC_HOOKS.append(upload_after_sync)
