"""What a recording is, as PyAV sees it, and whether it decodes.

Every packet is demuxed (the container must hold together from start to end) and every video
keyframe and the first audio packets are decoded. Segments start on keyframes, so each segment
gets at least one picture decoded without paying for decoding the whole recording.
"""

from __future__ import annotations

from typing import BinaryIO

import av
import msgspec

AUDIO_PACKETS_DECODED = 50


class Probe(msgspec.Struct, frozen=True):
    container: str
    video_codec: str
    audio_codec: str | None
    width: int
    height: int
    duration_s: float
    keyframes: int


class ProbeFailed(Exception):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def probe(file: BinaryIO) -> Probe:
    try:
        return _probe(file)
    except av.FFmpegError as exc:
        raise ProbeFailed(f"媒体文件无法解码：{exc}") from exc


def _probe(file: BinaryIO) -> Probe:
    with av.open(file, "r") as container:
        if not container.streams.video:
            raise ProbeFailed("媒体文件中没有视频流")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        streams = [video, audio] if audio else [video]
        first: float | None = None
        last = 0.0
        keyframes = decoded = audio_fed = 0
        for packet in container.demux(streams):
            if packet.size == 0 or packet.pts is None or packet.time_base is None:
                continue
            if packet.stream is video:
                start = float(packet.pts * packet.time_base)
                end = start + float((packet.duration or 0) * packet.time_base)
                first = start if first is None else min(first, start)
                last = max(last, end)
                if packet.is_keyframe:
                    keyframes += 1
                    decoded += len(video.codec_context.decode(packet))
            elif audio_fed < AUDIO_PACKETS_DECODED:
                audio_fed += 1
                audio.codec_context.decode(packet)  # type: ignore[union-attr]
        decoded += len(video.codec_context.decode(None))
        if keyframes == 0 or decoded < keyframes:
            raise ProbeFailed(f"视频关键帧无法完整解码（{decoded}/{keyframes}）")
        return Probe(
            container=container.format.name,
            video_codec=video.codec_context.name,
            audio_codec=audio.codec_context.name if audio else None,
            width=video.codec_context.width,
            height=video.codec_context.height,
            duration_s=round(last - (first or 0.0), 3),
            keyframes=keyframes,
        )
