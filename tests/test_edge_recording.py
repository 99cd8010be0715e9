"""The terminal side of recording: capture, overlay, segments, hash chain, crash and quota."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import msgspec
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from media.edge.capture import DeviceSource, FileSource, Source, SyntheticSource
from media.edge.chain import (
    ChainLog,
    SegmentRecord,
    genesis,
    head_message,
    head_of,
    verify_chain,
)
from media.edge.config import RecorderConfig
from media.edge.metadata import GpsFix
from media.edge.overlay import Overlay, plane_view
from media.edge.recorder import ChainBroken, Recorder, State, StorageFull
from media.edge.segmenter import pick_video_encoder
from media.edge.storage import RecordingDir, attach_case

REPO = Path(__file__).resolve().parents[1]
EPOCH = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)  # 14:00 China time
TERMINAL, OFFICER = "ZF-0001", "44010012345"


SMALL = RecorderConfig(
    width=320, height=180, pre_record_seconds=0, segment_seconds=2.0, reserve_bytes=0
)


def small(**overrides: object) -> RecorderConfig:
    """320x180 without pre-record: enough pixels to check everything but resolution."""
    return msgspec.structs.replace(SMALL, **overrides)


def synthetic(config: RecorderConfig, seconds: float, epoch: datetime = EPOCH) -> SyntheticSource:
    return SyntheticSource(
        epoch=epoch, width=config.width, height=config.height, fps=config.fps, duration=seconds
    )


def make_recorder(root: Path, key: Ed25519PrivateKey, config: RecorderConfig, **kw) -> Recorder:
    kw.setdefault("epoch", EPOCH)
    return Recorder(
        root, terminal_id=TERMINAL, credential_no=OFFICER, device_key=key, config=config, **kw
    )


def feed(recorder: Recorder, source: Source) -> float:
    """Push every frame; returns the seconds spent inside the recorder."""
    spent = 0.0
    for frame in source.frames():
        started = time.perf_counter()
        recorder.push(frame)
        spent += time.perf_counter() - started
    return spent


@dataclass
class Decoded:
    video_codec: str
    audio_codec: str | None
    size: tuple[int, int]
    video_times: list[float]
    audio_start: float
    audio_end: float
    pictures: list[np.ndarray]  # luma of every picture

    def video_duration(self, fps: int = 25) -> float:
        return self.video_times[-1] - self.video_times[0] + 1 / fps

    @property
    def audio_duration(self) -> float:
        return self.audio_end - self.audio_start


def decode(data: bytes) -> Decoded:
    with av.open(io.BytesIO(data), "r", format="mpegts") as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        times: list[float] = []
        pictures: list[np.ndarray] = []
        audio_start, audio_end = float("inf"), 0.0
        for frame in container.decode(*container.streams):
            assert frame.time is not None
            if isinstance(frame, av.VideoFrame):
                times.append(frame.time)
                pictures.append(plane_view(frame, 0).copy())
            else:
                audio_start = min(audio_start, frame.time)
                audio_end = max(audio_end, frame.time + frame.samples / frame.sample_rate)
        return Decoded(
            video_codec=video.codec_context.name,
            audio_codec=audio.codec_context.name if audio else None,
            size=(video.codec_context.width, video.codec_context.height),
            video_times=times,
            audio_start=audio_start,
            audio_end=audio_end,
            pictures=pictures,
        )


def concatenation(directory: RecordingDir, log: ChainLog) -> bytes:
    return b"".join(directory.read_segment(record) for record in log.segments)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@dataclass
class Finished:
    directory: RecordingDir
    log: ChainLog
    config: RecorderConfig


@pytest.fixture(scope="module")
def ten_seconds(tmp_path_factory: pytest.TempPathFactory, key: Ed25519PrivateKey) -> Finished:
    """10 s of synthetic media in 2 s segments, recorded once for several tests."""
    config = small()
    with make_recorder(tmp_path_factory.mktemp("rec"), key, config) as recorder:
        directory = recorder.start_recording(
            officers=["44010099999"],
            position=GpsFix(lat=23.129, lon=113.264, at=EPOCH, accuracy_m=8.0),
        )
        feed(recorder, synthetic(config, 10.0))
        recorder.add_position(GpsFix(lat=23.130, lon=113.265, at=EPOCH + timedelta(seconds=10)))
        log = recorder.stop()
    return Finished(directory, log, config)


# -- segments and chain ---------------------------------------------------------------------


def test_segments_decode_alone_and_concatenated(ten_seconds: Finished, key) -> None:
    directory, log = ten_seconds.directory, ten_seconds.log
    assert [r.name for r in log.segments] == [f"{i:06d}.ts" for i in range(5)]
    for record in log.segments:
        seg = decode(directory.read_segment(record))
        assert (seg.video_codec, seg.audio_codec, seg.size) == ("h264", "aac", (320, 180))
        assert seg.video_duration() == pytest.approx(2.0, abs=0.01)
        assert record.duration_s == pytest.approx(2.0, abs=0.01)
        assert seg.audio_duration == pytest.approx(2.0, abs=0.1)

    whole = decode(concatenation(directory, log))
    assert len(whole.video_times) == 250
    assert whole.video_duration() == pytest.approx(10.0, abs=0.01)
    assert all(b > a for a, b in itertools.pairwise(whole.video_times))
    assert whole.audio_duration == pytest.approx(10.0, abs=0.1)

    assert directory.verify(key.public_key(), require_closed=True) == []
    head = log.head
    assert head is not None and head.closed and head.count == 5
    message = head_message(log.recording_id, 5, bytes.fromhex(head.head_hex), True)
    key.public_key().verify(base64.b64decode(head.signature_b64), message)


def test_metadata_beside_the_chain(ten_seconds: Finished) -> None:
    directory, log = ten_seconds.directory, ten_seconds.log
    meta = directory.load_meta()
    assert meta.recording_id == log.recording_id == directory.recording_id
    assert meta.started_at == EPOCH == log.started_at
    assert meta.ended_at == EPOCH + timedelta(seconds=10)
    assert meta.stop_reason == "officer"
    assert meta.officers == [OFFICER, "44010099999"]
    assert [p.lat for p in meta.positions] == [23.129, 23.130]
    assert meta.case_id is None
    assert log.segments[1].started_at == EPOCH + timedelta(seconds=2)
    assert attach_case(directory.path, "案-2025-0042").case_id == "案-2025-0042"
    assert directory.load_meta().case_id == "案-2025-0042"


def test_chain_byte_format() -> None:
    """The formulas of chain.py, recomputed here with hashlib alone."""
    rid = "01950000-0000-7000-8000-000000000000"
    g = hashlib.sha256(b"zhifa-chain-v1\x00" + rid.encode()).digest()
    assert genesis(rid) == g
    digests = [hashlib.sha256(b"seg%d" % i).digest() for i in range(3)]
    link = g
    for i, digest in enumerate(digests):
        link = hashlib.sha256(link + i.to_bytes(8, "big") + digest).digest()
    records = [
        SegmentRecord(i, f"{i:06d}.ts", 4, d.hex(), 1.0, EPOCH) for i, d in enumerate(digests)
    ]
    assert head_of(rid, records) == link
    assert head_message(rid, 3, link, True) == (
        b"zhifa-chain-head-v1\x00"
        + len(rid).to_bytes(2, "big")
        + rid.encode()
        + (3).to_bytes(8, "big")
        + link
        + b"\x01"
    )


# -- tampering ------------------------------------------------------------------------------


def _tamper_setup(finished: Finished) -> tuple[ChainLog, dict[str, bytes]]:
    log = finished.directory.load_chain()
    files = {r.name: finished.directory.read_segment(r) for r in log.segments}
    return log, files


def _check(log: ChainLog, files: dict[str, bytes], key: Ed25519PrivateKey) -> list[str]:
    return verify_chain(log, lambda r: files[r.name], key.public_key())


def test_untouched_copy_verifies(ten_seconds: Finished, key) -> None:
    assert _check(*_tamper_setup(ten_seconds), key) == []


def test_flipped_byte_names_the_segment(ten_seconds: Finished, key) -> None:
    log, files = _tamper_setup(ten_seconds)
    data = bytearray(files["000002.ts"])
    data[len(data) // 2] ^= 0x01
    files["000002.ts"] = bytes(data)
    problems = _check(log, files, key)
    assert problems and problems[0].startswith("segment 2 (000002.ts)")


def test_swapped_files_detected(ten_seconds: Finished, key) -> None:
    log, files = _tamper_setup(ten_seconds)
    files["000001.ts"], files["000003.ts"] = files["000003.ts"], files["000001.ts"]
    problems = _check(log, files, key)
    assert problems[0].startswith("segment 1 (000001.ts)")


def test_reordered_log_detected(ten_seconds: Finished, key) -> None:
    log, files = _tamper_setup(ten_seconds)
    log.segments[1], log.segments[2] = log.segments[2], log.segments[1]
    problems = _check(log, files, key)
    assert problems[0].startswith("segment 1 (000002.ts): recorded index 2")


def test_renumbered_log_detected(ten_seconds: Finished, key) -> None:
    # Reorder the log and renumber it consistently: only the head can tell.
    log, files = _tamper_setup(ten_seconds)
    a, b = log.segments[1], log.segments[2]
    log.segments[1] = msgspec.structs.replace(b, index=1, name=a.name)
    log.segments[2] = msgspec.structs.replace(a, index=2, name=b.name)
    files[a.name], files[b.name] = files[b.name], files[a.name]
    assert _check(log, files, key) == ["head link does not match the segment hashes in the log"]


def test_removed_segment_detected(ten_seconds: Finished, key) -> None:
    log, files = _tamper_setup(ten_seconds)
    del log.segments[-1]
    assert "head counts 5 segments, log lists 4" in _check(log, files, key)
    log, files = _tamper_setup(ten_seconds)
    del files["000003.ts"]
    assert _check(log, files, key)[0].startswith("segment 3 (000003.ts): missing")


def test_inserted_segment_detected(ten_seconds: Finished, key) -> None:
    log, files = _tamper_setup(ten_seconds)
    extra = log.segments[4]
    log.segments.append(msgspec.structs.replace(extra, index=5, name="000005.ts"))
    files["000005.ts"] = files["000004.ts"]
    assert "head counts 5 segments, log lists 6" in _check(log, files, key)
    # A stray file beside the chain is reported by the directory check.
    stray = ten_seconds.directory.path / "000005.ts"
    stray.write_bytes(files["000004.ts"])
    try:
        assert ten_seconds.directory.verify(key.public_key()) == ["000005.ts is not in the chain"]
    finally:
        stray.unlink()


def test_wrong_key_and_forged_head_detected(ten_seconds: Finished, key) -> None:
    log, files = _tamper_setup(ten_seconds)
    other = Ed25519PrivateKey.generate()
    problems = _check(log, files, other)
    assert "head signature is not valid" in problems
    assert any(p.startswith("head signed by key") for p in problems)
    assert log.head is not None
    log.head = msgspec.structs.replace(log.head, closed=False)
    assert _check(log, files, key) == ["head signature is not valid"]


# -- sources and overlay --------------------------------------------------------------------------------


def test_synthetic_source_is_deterministic() -> None:
    def first_frames(epoch: datetime) -> list[bytes]:
        frames = SyntheticSource(epoch=epoch, width=320, height=180, duration=0.2).frames()
        return [b"".join(bytes(p) for p in f.planes) for f in frames]

    a, b = first_frames(EPOCH), first_frames(EPOCH)
    assert a == b
    assert len(a) == 5 + 10  # 5 pictures at 25 fps, 10 sound frames of 20 ms
    assert first_frames(EPOCH + timedelta(hours=1)) != a  # the clock in the picture


def test_overlay_strip_changes_with_the_second() -> None:
    overlay = Overlay(TERMINAL, OFFICER, width=1280, height=720)
    t = EPOCH + timedelta(seconds=5, milliseconds=100)
    first = overlay.strip(t)
    assert overlay.strip(t + timedelta(milliseconds=800)) is first  # rendered once per second
    second = overlay.strip(t + timedelta(seconds=1))
    assert not np.array_equal(first.y, second.y)
    h = first.y.shape[0]
    clock_line, identity_line = slice(0, h // 2), slice(h // 2, h)
    assert not np.array_equal(first.y[clock_line], second.y[clock_line])
    assert np.array_equal(first.y[identity_line], second.y[identity_line])
    # The terminal id and credential number are drawn: bright text on the dark strip.
    assert (first.y[identity_line] > 200).sum() > 100

    frame = next(f for f in SyntheticSource(epoch=EPOCH).frames() if isinstance(f, av.VideoFrame))
    overlay.apply(frame, t)
    x, y, w, h = overlay.box
    assert np.array_equal(plane_view(frame, 0)[y : y + h, x : x + w], first.y)


def test_overlay_burnt_into_the_recording(ten_seconds: Finished) -> None:
    x, y, w, h = Overlay(TERMINAL, OFFICER, width=320, height=180).box
    pictures = [
        decode(ten_seconds.directory.read_segment(r)).pictures[0] for r in ten_seconds.log.segments
    ]
    strips = [p[y : y + h, x : x + w].astype(int) for p in pictures]
    # Each segment starts two seconds after the previous one: the clock digits differ.
    assert all(np.abs(a - b).mean() > 1 for a, b in itertools.pairwise(strips))


# -- pre-record -----------------------------------------------------------------------------


def test_pre_record_prepends_the_ring(tmp_path: Path, key) -> None:
    config = small(pre_record_seconds=3.0, segment_seconds=1.0)
    recorder = make_recorder(tmp_path, key, config)
    assert recorder.state is State.STANDBY
    source = synthetic(config, 9.0).frames()
    standby = tmp_path / ".standby"
    for frame in source:
        is_last = isinstance(frame, av.VideoFrame) and frame.time >= 6.5
        recorder.push(frame)
        assert len(list(standby.glob("*.ts"))) <= 4  # the ring stays bounded
        if is_last:
            break
    pressed = EPOCH + timedelta(seconds=6.52)  # the first picture at or after 6.5 s
    directory = recorder.start_recording()
    assert recorder.state is State.RECORDING
    for frame in source:
        recorder.push(frame)
    log = recorder.stop()
    assert recorder.state is State.STANDBY

    meta = directory.load_meta()
    assert meta.record_pressed_at == pressed
    # The recording begins with the segment holding pressed - 3 s = 3.52 s, nothing earlier.
    assert log.started_at == EPOCH + timedelta(seconds=3)
    assert 3.0 <= meta.pre_record_s < 4.0
    whole = decode(concatenation(directory, log))
    assert whole.video_duration() == pytest.approx(9.0 - 3.0, abs=0.01)
    assert directory.verify(key.public_key(), require_closed=True) == []
    assert not list(directory.path.glob("*.part"))
    recorder.close()
    assert not standby.exists()


# -- crash and resume -----------------------------------------------------------------------


def test_killed_recorder_resumes_the_chain(tmp_path: Path, key) -> None:
    config = small(segment_seconds=1.0)
    key_file = tmp_path / "device.pem"
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    root, rid = tmp_path / "rec", "crash-0001"
    child = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests" / "_edge_record_child.py"),
            str(root),
            rid,
            str(key_file),
            msgspec.json.encode(config).decode(),
            EPOCH.isoformat(),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    directory = RecordingDir(root / rid)
    try:
        deadline = time.monotonic() + 30
        while len(list(directory.path.glob("*.ts"))) < 3:
            assert child.poll() is None, "the recorder died by itself"
            assert time.monotonic() < deadline, "no segments from the child"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # At most the segment being written is lost; at 4x real time one always is.
    assert len(list(directory.path.glob("*.part"))) == 1
    before = directory.load_chain()
    assert before.head is not None and not before.head.closed
    assert len(before.segments) >= 2

    resumed_at = EPOCH + timedelta(minutes=5)
    recorder = Recorder.resume(directory.path, device_key=key, config=config, epoch=resumed_at)
    assert not list(directory.path.glob("*.part"))
    assert recorder.state is State.RECORDING
    kept = recorder.recording
    assert kept is not None and kept.path == directory.path
    adopted = len(directory.load_chain().segments)
    assert adopted >= len(before.segments)
    feed(recorder, synthetic(config, 2.0, epoch=resumed_at))
    log = recorder.stop()

    assert log.segments[: len(before.segments)] == before.segments
    assert len(log.segments) == adopted + 2
    assert log.segments[adopted].started_at == resumed_at
    assert directory.verify(key.public_key(), require_closed=True) == []
    assert directory.load_meta().resumed_at
    whole = decode(concatenation(directory, log))
    assert all(b > a for a, b in itertools.pairwise(whole.video_times))
    assert whole.video_duration() == pytest.approx(adopted + 2.0, abs=0.05)


def test_resume_adopts_segment_finished_before_the_chain_was_saved(tmp_path: Path, key) -> None:
    config = small(segment_seconds=1.0)
    recorder = make_recorder(tmp_path, key, config)
    directory = recorder.start_recording()
    snapshot: bytes | None = None
    for frame in synthetic(config, 4.5).frames():
        recorder.push(frame)
        if snapshot is None and len(directory.load_chain().segments) == 2:
            snapshot = (directory.path / "chain.json").read_bytes()
    assert snapshot is not None
    # "Crash": the recorder is abandoned and chain.json is as it was two segments earlier.
    assert len(directory.load_chain().segments) == 4
    (directory.path / "chain.json").write_bytes(snapshot)
    assert directory.verify(key.public_key()) == [
        "000002.ts is not in the chain",
        "000003.ts is not in the chain",
    ]
    resumed = Recorder.resume(directory.path, device_key=key, config=config, epoch=EPOCH)
    assert len(directory.load_chain().segments) == 4
    log = resumed.stop()
    assert len(log.segments) == 4
    assert directory.verify(key.public_key(), require_closed=True) == []


def test_resume_refuses_a_tampered_chain(tmp_path: Path, key) -> None:
    config = small(segment_seconds=1.0)
    recorder = make_recorder(tmp_path, key, config)
    directory = recorder.start_recording()
    feed(recorder, synthetic(config, 3.5))
    (directory.path / "000001.ts").write_bytes(b"\x47" * 188)
    with pytest.raises(ChainBroken, match="segment 1"):
        Recorder.resume(directory.path, device_key=key, config=config)


# -- storage --------------------------------------------------------------------------------


def _used(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_quota_stops_cleanly(tmp_path: Path, key) -> None:
    config = small(segment_seconds=1.0)
    probe = make_recorder(tmp_path / "probe", key, config)
    probe.start_recording()
    feed(probe, synthetic(config, 2.0))
    probe_log = probe.stop()
    measured = sum(r.size for r in probe_log.segments) / 2.0
    assert probe.bytes_per_second == pytest.approx(measured)
    assert probe.bytes_per_second < config.worst_case_bytes_per_second
    per_segment = probe.bytes_per_second * config.segment_seconds

    budget = int(4.5 * per_segment)
    root = tmp_path / "rec"

    def free_bytes() -> int:
        return budget - _used(root)

    recorder = make_recorder(root, key, config, free_bytes=free_bytes)
    directory = recorder.start_recording()
    feed(recorder, synthetic(config, 10.0))
    assert recorder.state is State.IDLE
    log = directory.load_chain()
    assert 2 <= len(log.segments) <= 4
    assert directory.load_meta().stop_reason == "storage_full"
    assert log.head is not None and log.head.closed
    assert directory.verify(key.public_key(), require_closed=True) == []
    assert not list(root.rglob("*.part"))
    assert _used(root) <= budget
    assert recorder.seconds_left() < 1.5 * config.segment_seconds
    with pytest.raises(StorageFull):
        recorder.start_recording()


# -- sources and encoders -------------------------------------------------------------------


def test_file_source_rerecords_a_recording(ten_seconds: Finished, tmp_path: Path, key) -> None:
    original = tmp_path / "original.ts"
    original.write_bytes(concatenation(ten_seconds.directory, ten_seconds.log))
    config = small()
    with make_recorder(tmp_path / "rec", key, config) as recorder:
        directory = recorder.start_recording()
        feed(recorder, FileSource(original, epoch=EPOCH))
        log = recorder.stop()
    whole = decode(concatenation(directory, log))
    assert len(whole.video_times) == 250
    assert whole.audio_duration == pytest.approx(10.0, abs=0.15)


def test_mpeg4_fallback_records(tmp_path: Path, key) -> None:
    assert pick_video_encoder("no-such-encoder") == "libx264"
    config = small(video_codec="mpeg4")
    with make_recorder(tmp_path, key, config) as recorder:
        assert recorder.video_codec == "mpeg4"
        directory = recorder.start_recording()
        feed(recorder, synthetic(config, 4.0))
        log = recorder.stop()
    seg = decode(directory.read_segment(log.segments[1]))
    assert seg.video_codec == "mpeg4"
    assert seg.video_duration() == pytest.approx(2.0, abs=0.01)


@pytest.mark.skipif(
    not DeviceSource.available(), reason="no V4L2 camera at /dev/video0 on this machine"
)
def test_device_source_records(tmp_path: Path, key) -> None:
    config = small()
    source = DeviceSource(width=640, height=480)  # every UVC camera has it; scaled to 320x180
    with make_recorder(tmp_path, key, config, epoch=source.epoch) as recorder:
        directory = recorder.start_recording()
        frames = source.frames()
        first: float | None = None
        for frame in frames:
            t = frame.time
            assert t is not None
            first = t if first is None else first
            recorder.push(frame)
            if t - first >= 2.5:
                break
        frames.close()
        log = recorder.stop()
    assert decode(directory.read_segment(log.segments[0])).size == (320, 180)


@pytest.mark.parametrize("noise", [0, 12], ids=["clean", "noisy"])
def test_720p_realtime_factor(tmp_path: Path, key, noise: int) -> None:
    """Full size; prints how fast one thread encodes 720p25 with `veryfast`.

    The clean test picture is easy to predict; camera-like noise gives the figure of a real
    scene."""
    config = RecorderConfig(pre_record_seconds=0, threads=1, segment_seconds=1.0)
    seconds = 3.0
    source = SyntheticSource(epoch=EPOCH, duration=seconds, noise=noise)
    with make_recorder(tmp_path, key, config) as recorder:
        directory = recorder.start_recording()
        started = time.perf_counter()
        spent = feed(recorder, source)
        log = recorder.stop()
        total = time.perf_counter() - started
    print(
        f"\n720p25 {config.preset}, 1 thread, noise {noise}: recorder {seconds / spent:.2f}x"
        f" real time (with synthetic capture {seconds / total:.2f}x),"
        f" {recorder.bytes_per_second * 8 / 1e6:.2f} Mbit/s"
    )
    seg = decode(directory.read_segment(log.segments[0]))
    assert seg.size == (1280, 720)
    assert len(log.segments) == 3


def test_edge_imports_nothing_from_the_server() -> None:
    code = (
        "import sys, media.edge.capture, media.edge.recorder, media.edge.chain;"
        "bad = [m for m in sys.modules if m.split('.')[0] in"
        " ('server', 'litestar', 'sqlalchemy', 'review', 'disclosure')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
