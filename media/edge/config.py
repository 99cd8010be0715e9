"""Recording settings of a terminal."""

from __future__ import annotations

import msgspec


class RecorderConfig(msgspec.Struct, frozen=True, kw_only=True):
    width: int = 1280
    height: int = 720
    fps: int = 25
    sample_rate: int = 48_000
    channels: int = 1
    audio: bool = True
    segment_seconds: float = 4.0
    # Seconds kept encoded while in standby and prepended when record is pressed; 0 disables.
    pre_record_seconds: float = 30.0
    # Preferred encoder; falls back to another H.264 encoder, then MPEG-4 part 2.
    video_codec: str = "libx264"
    preset: str = "veryfast"
    crf: int = 23
    # Peak video bit rate; None derives it from the picture size (≈ 2.8 Mbit/s at 720p25).
    max_bitrate: int | None = None
    audio_bitrate: int = 64_000
    # Encoder threads; 0 lets the encoder choose.
    threads: int = 0
    # Free space the recorder never uses, for the rest of the terminal.
    reserve_bytes: int = 64 * 1024 * 1024

    @property
    def video_bitrate_cap(self) -> int:
        return self.max_bitrate or int(self.width * self.height * self.fps * 0.12)

    @property
    def worst_case_bytes_per_second(self) -> float:
        """Storage rate before any segment was measured: both streams at their peak, plus
        MPEG-TS framing (up to ~25 % at low rates: every audio frame takes a 188-byte packet)."""
        return 1.25 * (self.video_bitrate_cap + self.audio_bitrate) / 8
