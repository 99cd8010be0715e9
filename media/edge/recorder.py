"""The terminal's recorder: standby with a pre-record ring, recording, stop, resume.

Feed it frames with `push` from the capture loop; `start_recording` and `stop` may come from
another thread (the officer's button). Every finished segment is fsynced, renamed from `.part`
to `.ts`, hashed into the chain and the signed head rewritten, so a crash loses at most the
segment being written; `Recorder.resume` picks the chain up again.
"""

from __future__ import annotations

import enum
import os
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from media.edge.chain import (
    ChainLog,
    SegmentRecord,
    genesis,
    head_of,
    next_link,
    segment_name,
    sign_head,
    verify_chain,
)
from media.edge.config import RecorderConfig
from media.edge.metadata import GpsFix, RecordingMeta, StopReason
from media.edge.overlay import Overlay
from media.edge.segmenter import (
    TICKS_PER_SECOND,
    ClosedSegment,
    SegmentEncoder,
    pick_video_encoder,
)
from media.edge.storage import (
    PART_SUFFIX,
    STANDBY_DIR,
    RecordingDir,
    fsync_dir,
    sha256_file,
)

# The timeline starts at 1 s, not 0: with B-frames the first decode timestamps precede the
# first picture, and a negative one would make the muxer shift one segment but not the next.
TIMELINE_START = TICKS_PER_SECOND


class State(enum.Enum):
    IDLE = "idle"  # frames are dropped (no pre-record, or the disk is full)
    STANDBY = "standby"  # encoding into the pre-record ring
    RECORDING = "recording"


class RecorderError(Exception):
    pass


class StorageFull(RecorderError):
    pass


class ChainBroken(RecorderError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class _Buffered:
    """A finished segment in the pre-record ring."""

    path: Path
    start: int
    end: int
    size: int
    digest: bytes
    started_at: datetime


@dataclass
class _Active:
    """The recording in progress."""

    directory: RecordingDir
    log: ChainLog
    meta: RecordingMeta
    link: bytes
    next_part: int  # index in the name of the next `.part` opened in this directory
    # Record was pressed before any frame arrived: its times come from the first frame.
    awaiting_first_frame: bool = False


def new_recording_id() -> str:
    """UUIDv7 (RFC 9562): time-ordered, so recordings sort by start."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (
        (ms & (2**48 - 1)) << 80
        | 0x7 << 76
        | (rand >> 62 & 0xFFF) << 64
        | 0b10 << 62
        | rand & (2**62 - 1)
    )
    return str(uuid.UUID(int=value))


class Recorder:
    def __init__(
        self,
        root: Path,
        *,
        terminal_id: str,
        credential_no: str,
        device_key: Ed25519PrivateKey,
        config: RecorderConfig | None = None,
        epoch: datetime | None = None,
        free_bytes: Callable[[], int] | None = None,
    ) -> None:
        """`epoch` is the wall-clock time of source time 0 (`Source.epoch`); None takes the
        first frame as captured now. `free_bytes` reports the space left for recordings
        (default: the free space of the file system holding `root`)."""
        self.root = Path(root)
        self.config = config or RecorderConfig()
        self.terminal_id, self.credential_no = terminal_id, credential_no
        self.video_codec = pick_video_encoder(self.config.video_codec)
        self._key = device_key
        self._epoch = epoch
        self._free_bytes = free_bytes or (lambda: shutil.disk_usage(self.root).free)
        self._overlay = Overlay(
            terminal_id, credential_no, width=self.config.width, height=self.config.height
        )
        self._lock = threading.Lock()
        self._segment_ticks = round(self.config.segment_seconds * TICKS_PER_SECOND)
        self._pre_ticks = round(self.config.pre_record_seconds * TICKS_PER_SECOND)

        self.root.mkdir(parents=True, exist_ok=True)
        self._standby = self.root / STANDBY_DIR
        shutil.rmtree(self._standby, ignore_errors=True)  # scratch of an earlier run
        self._standby.mkdir()
        self._standby_seq = 0
        self._ring: deque[_Buffered] = deque()
        self._active: _Active | None = None

        # Timeline: tick = base + (frame.time - origin) * TICKS_PER_SECOND.
        self._base = TIMELINE_START
        self._origin: float | None = None
        self._wall0 = datetime.now(UTC)  # wall-clock time of tick 0, fixed by the first frame
        self._last_video: int | None = None
        self._next_cut: int | None = None  # None: the next picture starts a segment

        self._written_bytes = 0
        self._written_ticks = 0
        self.last_error: str | None = None
        self._pipeline: SegmentEncoder | None = None
        if self._pre_ticks > 0:
            self._pipeline = self._new_pipeline()

    # -- state and storage ------------------------------------------------------------------

    @property
    def state(self) -> State:
        if self._active is not None:
            return State.RECORDING
        return State.STANDBY if self._pipeline is not None else State.IDLE

    @property
    def recording(self) -> RecordingDir | None:
        return self._active.directory if self._active else None

    @property
    def bytes_per_second(self) -> float:
        """Measured storage rate of this terminal's segments (worst case before any)."""
        if self._written_ticks == 0:
            return self.config.worst_case_bytes_per_second
        return self._written_bytes * TICKS_PER_SECOND / self._written_ticks

    def seconds_left(self) -> float:
        """Recording time the free space allows, at the measured rate."""
        return max(0, self._free_bytes() - self.config.reserve_bytes) / self.bytes_per_second

    def _room_for_segment(self) -> bool:
        # One more segment, with half a segment of margin for bit-rate peaks.
        return self.seconds_left() >= 1.5 * self.config.segment_seconds

    # -- frames -----------------------------------------------------------------------------

    def push(self, frame: av.VideoFrame | av.AudioFrame) -> None:
        """Take one frame from the source. The recorder owns it from here: it draws the
        overlay on it and restamps it, so the caller must not reuse it."""
        with self._lock:
            tick = self._tick(frame)
            if self._pipeline is None:
                return
            try:
                if isinstance(frame, av.VideoFrame):
                    self._push_video(frame, tick)
                else:
                    self._pipeline.audio(frame, tick / TICKS_PER_SECOND)
            except OSError as exc:
                self._write_failed(exc)

    def _tick(self, frame: av.VideoFrame | av.AudioFrame) -> int:
        t = frame.time
        if t is None:
            raise ValueError("frame has no timestamp")
        if self._origin is None:
            self._origin = t
            first = (
                self._epoch + timedelta(seconds=t) if self._epoch is not None else datetime.now(UTC)
            )
            self._wall0 = first - timedelta(seconds=self._base / TICKS_PER_SECOND)
            if self._active is not None and self._active.awaiting_first_frame:
                meta = self._active.meta
                meta.started_at = meta.record_pressed_at = first
                self._active.log.started_at = first
                self._active.directory.save_meta(meta)
        return self._base + round((t - self._origin) * TICKS_PER_SECOND)

    def _wall(self, tick: int) -> datetime:
        return self._wall0 + timedelta(seconds=tick / TICKS_PER_SECOND)

    def _push_video(self, frame: av.VideoFrame, tick: int) -> None:
        assert self._pipeline is not None
        if self._last_video is not None and tick <= self._last_video:
            return  # encoders need rising timestamps; a repeated capture time is a duplicate
        frame = frame.reformat(self.config.width, self.config.height, "yuv420p")
        self._overlay.apply(frame, self._wall(tick))
        keyframe = self._next_cut is None or tick >= self._next_cut
        if keyframe:
            # Stop at a cut rather than start a segment the disk cannot hold.
            if self._active and self._next_cut is not None and not self._room_for_segment():
                self._stop("storage_full")
                return
            self._next_cut = tick + self._segment_ticks
        self._last_video = tick
        for closed in self._pipeline.video(frame, tick, keyframe):
            self._finish(closed)

    def _new_pipeline(self) -> SegmentEncoder:
        self._next_cut = None
        return SegmentEncoder(self.config, self._new_part, video_codec=self.video_codec)

    def _new_part(self) -> Path:
        if self._active is not None:
            index = self._active.next_part
            self._active.next_part += 1
            return self._active.directory.path / (segment_name(index) + PART_SUFFIX)
        self._standby_seq += 1
        return self._standby / (segment_name(self._standby_seq) + PART_SUFFIX)

    def _finish(self, closed: ClosedSegment) -> None:
        size = closed.part.stat().st_size
        digest = sha256_file(closed.part)
        self._written_bytes += size
        self._written_ticks += closed.end - closed.start
        if self._active is not None:
            self._append(closed.part, digest, size, closed.duration_s, self._wall(closed.start))
            self._save_head(closed=False)
            return
        path = closed.part.with_suffix("")  # NNNNNN.ts.part -> NNNNNN.ts
        os.replace(closed.part, path)
        fsync_dir(self._standby)
        self._ring.append(
            _Buffered(path, closed.start, closed.end, size, digest, self._wall(closed.start))
        )
        self._prune_ring(closed.end)

    def _prune_ring(self, now: int) -> None:
        """Forget buffered segments that end before the pre-record window."""
        while self._ring and self._ring[0].end <= now - self._pre_ticks:
            self._ring.popleft().path.unlink()

    # -- chain ------------------------------------------------------------------------------

    def _append(
        self, source: Path, digest: bytes, size: int, duration_s: float, started_at: datetime
    ) -> None:
        """Move a finished segment into the recording and extend the chain (not yet saved)."""
        active = self._active
        assert active is not None
        index = len(active.log.segments)
        name = segment_name(index)
        target = active.directory.segment_path(name)
        os.replace(source, target)
        fsync_dir(target.parent)
        if source.parent != target.parent:
            fsync_dir(source.parent)
        active.link = next_link(active.link, index, digest)
        active.log.segments.append(
            SegmentRecord(index, name, size, digest.hex(), duration_s, started_at)
        )

    def _save_head(self, *, closed: bool) -> None:
        active = self._active
        assert active is not None
        log = active.log
        log.head = sign_head(log.recording_id, len(log.segments), active.link, closed, self._key)
        active.directory.save_chain(log)

    # -- officer's controls -----------------------------------------------------------------

    def start_recording(
        self,
        recording_id: str | None = None,
        *,
        case_id: str | None = None,
        officers: Iterable[str] = (),
        position: GpsFix | None = None,
    ) -> RecordingDir:
        """Begin a recording; the pre-record ring becomes its first segments."""
        with self._lock:
            if self._active is not None:
                raise RecorderError("already recording")
            if not self._room_for_segment():
                raise StorageFull(f"{self.seconds_left():.0f} s of recording left")
            rid = recording_id or new_recording_id()
            directory = RecordingDir(self.root / rid)
            directory.path.mkdir()
            pressed = self._last_video
            pressed_at = self._wall(pressed) if pressed is not None else datetime.now(UTC)
            if pressed is not None:
                self._prune_ring(pressed)
            buffered = list(self._ring)
            self._ring.clear()
            if self._pipeline is None:
                self._pipeline = self._new_pipeline()
            first = buffered[0].start if buffered else self._pipeline.earliest_start
            started_at = self._wall(first) if first is not None else pressed_at
            meta = RecordingMeta(
                recording_id=rid,
                terminal_id=self.terminal_id,
                started_at=started_at,
                record_pressed_at=pressed_at,
                pre_record_s=(pressed_at - started_at).total_seconds(),
                case_id=case_id,
                officers=list(dict.fromkeys((self.credential_no, *officers))),
                positions=[position] if position else [],
            )
            log = ChainLog(rid, self.terminal_id, self.credential_no, started_at)
            self._active = _Active(
                directory,
                log,
                meta,
                genesis(rid),
                next_part=len(buffered) + self._pipeline.has_open_segment,
                awaiting_first_frame=self._origin is None,
            )
            directory.save_meta(meta)
            self._save_head(closed=False)
            if buffered:
                # A crash among these moves leaves segments that resume adopts.
                for b in buffered:
                    duration_s = (b.end - b.start) / TICKS_PER_SECOND
                    self._append(b.path, b.digest, b.size, duration_s, b.started_at)
                self._save_head(closed=False)
            return directory

    def stop(self) -> ChainLog:
        """Finish the recording: flush the last segment, close and sign the chain."""
        with self._lock:
            if self._active is None:
                raise RecorderError("not recording")
            return self._stop("officer")

    def add_position(self, fix: GpsFix) -> None:
        with self._lock:
            active = self._require_active()
            active.meta.positions.append(fix)
            active.directory.save_meta(active.meta)

    def attach_case(self, case_id: str) -> None:
        with self._lock:
            active = self._require_active()
            active.meta.case_id = case_id
            active.directory.save_meta(active.meta)

    def close(self) -> None:
        """Shut down: stop a recording in progress, drop the pre-record ring."""
        with self._lock:
            if self._active is not None:
                self._stop("shutdown")
            if self._pipeline is not None:
                self._pipeline.abort()
                self._pipeline = None
            self._ring.clear()
            shutil.rmtree(self._standby, ignore_errors=True)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _require_active(self) -> _Active:
        if self._active is None:
            raise RecorderError("not recording")
        return self._active

    def _stop(self, reason: StopReason) -> ChainLog:
        assert self._pipeline is not None
        try:
            for closed in self._pipeline.close():
                self._finish(closed)
        except OSError as exc:
            self.last_error = f"write failed: {exc}"
            self._pipeline.abort()
            reason = "write_error"
        self._pipeline = None
        log = self._close_chain(reason)
        # Back to standby after the officer's stop; not when the disk is what stopped us.
        if reason == "officer" and self._pre_ticks > 0:
            self._pipeline = self._new_pipeline()
        return log

    def _write_failed(self, exc: OSError) -> None:
        self.last_error = f"write failed: {exc}"
        if self._pipeline is not None:
            self._pipeline.abort()
            self._pipeline = None
        if self._active is not None:
            self._close_chain("write_error")

    def _close_chain(self, reason: StopReason) -> ChainLog:
        active = self._require_active()
        segments = active.log.segments
        active.meta.ended_at = (
            segments[-1].started_at + timedelta(seconds=segments[-1].duration_s)
            if segments
            else active.meta.started_at
        )
        active.meta.stop_reason = reason
        active.directory.save_meta(active.meta)
        self._save_head(closed=True)
        self._active = None
        return active.log

    # -- crash recovery ---------------------------------------------------------------------

    @classmethod
    def resume(
        cls,
        recording_dir: Path,
        *,
        device_key: Ed25519PrivateKey,
        config: RecorderConfig | None = None,
        epoch: datetime | None = None,
        free_bytes: Callable[[], int] | None = None,
    ) -> Recorder:
        """Continue a recording interrupted by a crash or power loss.

        Deletes half-written files, re-verifies every finished segment against the chain,
        adopts segments finished after the last chain update, and returns a recorder that
        appends new segments to the same chain.
        """
        directory = RecordingDir(recording_dir)
        directory.remove_leftovers()
        log = directory.load_chain()
        if log.head is not None and log.head.closed:
            raise RecorderError(f"recording {log.recording_id} is closed")
        problems = verify_chain(log, directory.read_segment, device_key.public_key())
        if problems:
            raise ChainBroken(problems)
        recorder = cls(
            directory.path.parent,
            terminal_id=log.terminal_id,
            credential_no=log.credential_no,
            device_key=device_key,
            config=config,
            epoch=epoch,
            free_bytes=free_bytes,
        )
        with recorder._lock:
            recorder._continue(directory, log)
        return recorder

    def _continue(self, directory: RecordingDir, log: ChainLog) -> None:
        meta = directory.load_meta()
        meta.resumed_at.append(datetime.now(UTC))
        self._active = _Active(
            directory, log, meta, head_of(log.recording_id, log.segments), len(log.segments)
        )
        self._adopt_orphans()
        self._active.next_part = len(log.segments)
        # New pictures continue the old timeline, so the segments still concatenate.
        recorded = sum(round(s.duration_s * TICKS_PER_SECOND) for s in log.segments)
        self._base = TIMELINE_START + recorded
        if self._pipeline is None:
            self._pipeline = self._new_pipeline()
        directory.save_meta(meta)
        self._save_head(closed=False)

    def _adopt_orphans(self) -> None:
        """Chain segments renamed to `.ts` just before a crash kept the chain from saying so."""
        active = self._require_active()
        segments = active.log.segments
        while (path := active.directory.segment_path(segment_name(len(segments)))).exists():
            started_at = (
                segments[-1].started_at + timedelta(seconds=segments[-1].duration_s)
                if segments
                else active.log.started_at
            )
            self._append(
                path,
                sha256_file(path),
                path.stat().st_size,
                self._probe_duration(path),
                started_at,
            )

    def _probe_duration(self, path: Path) -> float:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            pts = [p.pts for p in container.demux(stream) if p.pts is not None]
            assert stream.time_base is not None
            return float((max(pts) - min(pts)) * stream.time_base) + 1 / self.config.fps
