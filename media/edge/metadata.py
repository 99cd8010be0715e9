"""What the terminal knows about a recording besides its pictures: stored as meta.json."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

StopReason = Literal["officer", "storage_full", "write_error", "shutdown"]


class GpsFix(msgspec.Struct, frozen=True):
    lat: float
    lon: float
    at: datetime
    accuracy_m: float | None = None


class RecordingMeta(msgspec.Struct):
    recording_id: str
    terminal_id: str
    # Start of the earliest picture, pre-record included; end of the last segment.
    started_at: datetime
    record_pressed_at: datetime
    ended_at: datetime | None = None
    stop_reason: StopReason | None = None
    pre_record_s: float = 0.0
    case_id: str | None = None
    # Credential numbers (证号) of the officers present.
    officers: list[str] = []
    positions: list[GpsFix] = []
    # When recording continued after the terminal crashed or lost power.
    resumed_at: list[datetime] = []


def encode_meta(meta: RecordingMeta) -> bytes:
    return msgspec.json.format(msgspec.json.encode(meta), indent=2)


def decode_meta(data: bytes) -> RecordingMeta:
    return msgspec.json.decode(data, type=RecordingMeta)
