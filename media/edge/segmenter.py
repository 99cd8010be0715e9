"""Encode frames into H.264 + AAC MPEG-TS segments that each decode on their own.

The encoders live as long as the pipeline; only the muxer is reopened at every cut, as HLS
segmenters do. So timestamps and audio run on across segments and the byte concatenation of
consecutive segments is one valid TS stream. A cut happens on a keyframe the caller forced;
each segment file is fsynced before it is handed back, still named `.part`.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
from av.video.frame import PictureType

from media.edge.config import RecorderConfig

# Timeline clock of the pipeline. Milliseconds suit every encoder (MPEG-4 part 2 refuses time
# bases finer than 1/65535) and convert exactly to the 90 kHz clock of MPEG-TS.
TICKS_PER_SECOND = 1000
TICK = Fraction(1, TICKS_PER_SECOND)

# H.264 in software, then on common hardware, then MPEG-4 part 2, which every FFmpeg has.
FALLBACK_ENCODERS = ("libx264", "h264_v4l2m2m", "h264_nvenc", "h264_qsv", "h264_amf", "mpeg4")


@functools.cache
def pick_video_encoder(preferred: str = "libx264") -> str:
    """`preferred` if it opens here, else the first H.264 encoder that does, else MPEG-4."""
    for name in dict.fromkeys((preferred, *FALLBACK_ENCODERS)):
        if name in av.codecs_available and _encoder_opens(name):
            return name
    raise RuntimeError("no H.264 or MPEG-4 video encoder available")


def _encoder_opens(name: str) -> bool:
    # Hardware encoders are listed even without their hardware: only opening tells.
    try:
        ctx = av.Codec(name, "w").create("video")
        ctx.width, ctx.height, ctx.pix_fmt = 320, 240, "yuv420p"
        ctx.time_base = Fraction(1, 25)
        ctx.open()
    except (av.error.FFmpegError, ValueError):
        return False
    return True


def _video_encoder(name: str, cfg: RecorderConfig) -> av.VideoCodecContext:
    ctx = av.Codec(name, "w").create("video")
    ctx.width, ctx.height, ctx.pix_fmt = cfg.width, cfg.height, "yuv420p"
    ctx.time_base = TICK
    ctx.framerate = Fraction(cfg.fps)
    ctx.gop_size = max(1, round(cfg.fps * cfg.segment_seconds))
    ctx.thread_count = cfg.threads
    cap = cfg.video_bitrate_cap
    if name == "libx264":
        # Capped CRF: steady quality, bounded storage use. forced-idr makes every forced
        # keyframe an IDR, so a segment needs nothing before it.
        ctx.options = {
            "preset": cfg.preset,
            "crf": str(cfg.crf),
            "maxrate": str(cap),
            "bufsize": str(2 * cap),
            "forced-idr": "1",
        }
    else:
        ctx.bit_rate = cap
    ctx.open()
    return ctx


class _Adts:
    """ADTS framing (ISO/IEC 14496-3, 1.A.2), which MPEG-TS requires for AAC.

    The encoder emits raw AAC; FFmpeg's TS muxer would add ADTS itself only from the stream's
    extradata, which a stream muxing already-encoded packets does not carry.
    """

    def __init__(self, audio_specific_config: bytes) -> None:
        asc = audio_specific_config
        self._object_type = asc[0] >> 3
        self._rate_index = ((asc[0] & 0x07) << 1) | (asc[1] >> 7)
        self._channels = (asc[1] >> 3) & 0x0F

    def wrap(self, packet: av.Packet) -> av.Packet:
        size = packet.size + 7
        header = bytes(
            (
                0xFF,
                0xF1,  # MPEG-4, no CRC
                ((self._object_type - 1) << 6) | (self._rate_index << 2) | (self._channels >> 2),
                ((self._channels & 0x03) << 6) | (size >> 11),
                (size >> 3) & 0xFF,
                ((size & 0x07) << 5) | 0x1F,  # buffer fullness 0x7FF: variable rate
                0xFC,
            )
        )
        framed = av.Packet(header + bytes(packet))
        framed.pts, framed.dts, framed.time_base = packet.pts, packet.dts, packet.time_base
        framed.duration = packet.duration
        return framed


class _AudioEncoder:
    """AAC with its resampler: any input layout and rate in, ADTS packets out."""

    def __init__(self, cfg: RecorderConfig) -> None:
        ctx = av.Codec("aac", "w").create("audio")
        ctx.sample_rate = cfg.sample_rate
        ctx.layout = {1: "mono", 2: "stereo"}[cfg.channels]
        ctx.format = "fltp"
        ctx.bit_rate = cfg.audio_bitrate
        ctx.time_base = Fraction(1, cfg.sample_rate)
        ctx.open()
        assert ctx.extradata, "the AAC encoder always sets its AudioSpecificConfig"
        self._ctx = ctx
        self._resampler = av.AudioResampler(
            format="fltp", layout=ctx.layout, rate=cfg.sample_rate, frame_size=ctx.frame_size
        )
        self._adts = _Adts(ctx.extradata)
        self._next: int | None = None  # pts (1/sample_rate) of the next sample

    def encode(self, frame: av.AudioFrame, t: float) -> list[av.Packet]:
        """Sound starting at timeline second `t`; later frames are taken as contiguous."""
        if self._next is None:
            self._next = round(t * self._ctx.sample_rate)
        frame.pts = None  # resampled chunks are stamped by sample count instead
        return [p for chunk in self._resampler.resample(frame) for p in self._encode(chunk)]

    def flush(self) -> list[av.Packet]:
        packets = [p for chunk in self._resampler.resample(None) for p in self._encode(chunk)]
        return packets + [self._adts.wrap(p) for p in self._ctx.encode(None)]

    def _encode(self, chunk: av.AudioFrame) -> list[av.Packet]:
        assert self._next is not None
        chunk.pts, chunk.time_base = self._next, self._ctx.time_base
        self._next += chunk.samples
        return [self._adts.wrap(p) for p in self._ctx.encode(chunk)]


@dataclass(frozen=True)
class ClosedSegment:
    """A finished, fsynced segment file; start and end are timeline ticks of its pictures."""

    part: Path
    start: int
    end: int

    @property
    def duration_s(self) -> float:
        return (self.end - self.start) / TICKS_PER_SECOND


class _OpenSegment:
    def __init__(self, part: Path, start: int, video_codec: str, cfg: RecorderConfig) -> None:
        self.part, self.start, self.end = part, start, start
        self._frame_ticks = round(TICKS_PER_SECOND / cfg.fps)
        self._file: BinaryIO = open(part, "wb")  # noqa: SIM115 - closed in close()/discard()
        self._box = av.open(self._file, "w", format="mpegts")
        self._video = self._box.add_mux_stream(
            video_codec, rate=cfg.fps, width=cfg.width, height=cfg.height
        )
        self._audio = self._box.add_mux_stream("aac", rate=cfg.sample_rate) if cfg.audio else None

    def mux_video(self, packet: av.Packet) -> None:
        if packet.pts is not None:  # read before mux() rescales it to the stream's clock
            self.end = max(self.end, packet.pts + self._frame_ticks)
        packet.stream = self._video
        self._box.mux(packet)

    def mux_audio(self, packet: av.Packet) -> None:
        assert self._audio is not None
        packet.stream = self._audio
        self._box.mux(packet)

    def close(self) -> ClosedSegment:
        self._box.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return ClosedSegment(self.part, self.start, self.end)

    def discard(self) -> None:
        # The disk already failed us; the file goes anyway. Writing the trailer fails too, and the
        # muxer reports our file's OSError as its own callback error.
        for close in (self._box.close, self._file.close):
            with contextlib.suppress(OSError, av.FFmpegError):
                close()
        self.part.unlink(missing_ok=True)


class SegmentEncoder:
    """Frames in, closed segments out.

    `new_part()` names the `.part` file of the next segment. The caller sets pts on
    the timeline (TICK) and asks for a keyframe where a segment must begin; the first picture
    must be one.
    """

    def __init__(
        self, cfg: RecorderConfig, new_part: Callable[[], Path], *, video_codec: str
    ) -> None:
        self._cfg, self._new_part, self._codec_name = cfg, new_part, video_codec
        self._video = _video_encoder(video_codec, cfg)
        self._audio = _AudioEncoder(cfg) if cfg.audio else None
        self._cuts: deque[int] = deque()  # pts of forced keyframes not yet out of the encoder
        self._audio_packets: deque[av.Packet] = deque()
        self._video_fed = -1  # pts of the last picture fed to the encoder
        self._segment: _OpenSegment | None = None

    @property
    def has_open_segment(self) -> bool:
        return self._segment is not None

    @property
    def earliest_start(self) -> int | None:
        """Start tick of the oldest picture not yet in a closed segment, if any was fed."""
        if self._segment is not None:
            return self._segment.start
        return self._cuts[0] if self._cuts else None

    def video(self, frame: av.VideoFrame, pts: int, keyframe: bool) -> list[ClosedSegment]:
        frame.pts, frame.time_base = pts, TICK
        # Decoded input may carry its own picture type; only ours counts.
        frame.pict_type = PictureType.I if keyframe else PictureType.NONE
        if keyframe:
            self._cuts.append(pts)
        self._video_fed = pts
        closed: list[ClosedSegment] = []
        for packet in self._video.encode(frame):
            self._on_video(packet, closed)
        self._drain_audio(self._safe_audio_limit())
        return closed

    def audio(self, frame: av.AudioFrame, t: float) -> None:
        """Sound starting at timeline second `t`; later frames are taken as contiguous."""
        if self._audio is not None:
            self._audio_packets.extend(self._audio.encode(frame, t))
            self._drain_audio(self._safe_audio_limit())

    def close(self) -> list[ClosedSegment]:
        """Flush the encoders into the open segment and close it."""
        closed: list[ClosedSegment] = []
        for packet in self._video.encode(None):
            self._on_video(packet, closed)
        if self._audio is not None:
            self._audio_packets.extend(self._audio.flush())
        self._drain_audio(None)
        if self._segment is not None:
            closed.append(self._segment.close())
            self._segment = None
        return closed

    def abort(self) -> None:
        """Drop the open segment, e.g. after a write error."""
        if self._segment is not None:
            self._segment.discard()
            self._segment = None

    def _on_video(self, packet: av.Packet, closed: list[ClosedSegment]) -> None:
        if packet.is_keyframe and self._cuts and packet.pts == self._cuts[0]:
            self._cuts.popleft()
            self._drain_audio(packet.pts)
            if self._segment is not None:
                closed.append(self._segment.close())
            self._segment = _OpenSegment(self._new_part(), packet.pts, self._codec_name, self._cfg)
        assert self._segment is not None, "the first picture must be a forced keyframe"
        self._segment.mux_video(packet)

    def _safe_audio_limit(self) -> int:
        # Sound before the next pending cut belongs to the open segment; with no cut pending,
        # sound before the last picture fed does, since any later cut comes after it.
        return self._cuts[0] if self._cuts else self._video_fed

    def _drain_audio(self, until: int | None) -> None:
        """Mux queued sound earlier than tick `until` (all of it for None)."""
        if self._segment is None:
            return
        rate = self._cfg.sample_rate
        while self._audio_packets:
            packet = self._audio_packets[0]
            assert packet.pts is not None  # the AAC encoder stamps every packet
            if until is not None and packet.pts * TICKS_PER_SECOND >= until * rate:
                return
            self._segment.mux_audio(self._audio_packets.popleft())
