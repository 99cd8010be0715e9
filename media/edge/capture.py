"""Picture and sound sources for the recorder.

A source yields av.VideoFrame and av.AudioFrame objects in time order. `frame.time` counts seconds
from the source's `epoch` (a UTC datetime), so the wall-clock time of a frame is
`epoch + frame.time`.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Generator, Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np
from PIL import Image, ImageDraw

from media.edge.overlay import CHINA_TZ, load_font, plane_view

Frame = av.VideoFrame | av.AudioFrame

UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Source(Protocol):
    epoch: datetime

    def frames(self) -> Iterator[Frame]: ...


class SyntheticSource:
    """Moving test picture with a visible clock, and a sine tone.

    Frame n always looks and sounds the same for the same `epoch`, so tests can rely on it.
    `pace` > 0 sleeps to deliver media at `pace` times real time; None runs flat out.
    """

    def __init__(
        self,
        *,
        epoch: datetime,
        width: int = 1280,
        height: int = 720,
        fps: int = 25,
        sample_rate: int = 48_000,
        channels: int = 1,
        tone_hz: float = 1000.0,
        duration: float | None = None,
        pace: float | None = None,
        noise: int = 0,
    ) -> None:
        """`noise` (0-20) adds camera-like luma noise, so encoder speed and bit rate are those
        of a real scene rather than of a clean, easily predicted picture."""
        if not 0 <= noise <= 20:
            raise ValueError("noise must be 0-20 (luma stays within 16-255)")
        self.epoch = epoch
        self.width, self.height, self.fps = width, height, fps
        self.sample_rate, self.channels, self.tone_hz = sample_rate, channels, tone_hz
        self.duration, self.pace = duration, pace
        self._font, _ = load_font(max(10, height // 12))
        _, _, right, bottom = self._font.getbbox("88:88:88.888 #8888888")
        self._clock_box = min(int(right) + 8, width), min(int(bottom) + 8, height)
        # Background: a luma ramp left to right, chroma ramps in both directions.
        self._y = np.tile(np.linspace(16, 235, width, dtype=np.uint8), (height, 1))
        cw, ch = width // 2, height // 2
        self._u = np.tile(np.linspace(64, 192, cw, dtype=np.uint8), (ch, 1))
        self._v = np.tile(np.linspace(64, 192, ch, dtype=np.uint8)[:, None], (1, cw))
        # A bank of noise fields drawn once; a prime count keeps any period off the GOP.
        rng = np.random.default_rng(0)
        self._noise = [
            rng.integers(0, noise + 1, (height, width), dtype=np.uint8)
            for _ in range(7 if noise else 0)
        ]

    def frames(self) -> Iterator[Frame]:
        audio_step = self.sample_rate // 50  # 20 ms, a common capture period
        video_index = sample = 0
        started = time.monotonic()
        while True:
            # Next event in time order: compare n/fps with sample/rate without rounding.
            audio_first = sample * self.fps <= video_index * self.sample_rate
            t = sample / self.sample_rate if audio_first else video_index / self.fps
            if self.duration is not None and t >= self.duration:
                return
            if self.pace:
                delay = started + t / self.pace - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if audio_first:
                yield self._audio(sample, audio_step)
                sample += audio_step
            else:
                yield self._video(video_index)
                video_index += 1

    def _video(self, index: int) -> av.VideoFrame:
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        y = plane_view(frame, 0)
        y[:] = self._y
        # A bar crossing the picture every 4 s shows motion and dropped frames.
        bar = self.width // 16
        x = int(index * self.width / (4 * self.fps)) % (self.width - bar)
        y[:, x : x + bar] = 235
        self._clock(y, index)
        if self._noise:
            y += self._noise[index % len(self._noise)]
        plane_view(frame, 1)[:] = self._u
        plane_view(frame, 2)[:] = self._v
        frame.pts = index
        frame.time_base = Fraction(1, self.fps)
        return frame

    def _clock(self, y: np.ndarray, index: int) -> None:
        when = (self.epoch + timedelta(seconds=index / self.fps)).astimezone(CHINA_TZ)
        text = f"{when:%H:%M:%S}.{when.microsecond // 1000:03d} #{index}"
        w, h = self._clock_box
        image = Image.new("L", (w, h), 16)
        ImageDraw.Draw(image).text((4, 4), text, fill=235, font=self._font)
        y[self.height - h :, self.width - w :] = np.asarray(image)

    def _audio(self, first: int, count: int) -> av.AudioFrame:
        n = np.arange(first, first + count)
        tone = (0.3 * 32767 * np.sin(2 * math.pi * self.tone_hz * n / self.sample_rate)).astype(
            np.int16
        )
        packed = np.repeat(tone, self.channels).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(packed, format="s16", layout=_layout(self.channels))
        frame.sample_rate = self.sample_rate
        frame.pts = first
        frame.time_base = Fraction(1, self.sample_rate)
        return frame


class FileSource:
    """Decode the first video and first audio stream of a media file, in demux order."""

    def __init__(self, path: Path, *, epoch: datetime | None = None) -> None:
        self.path = Path(path)
        self.epoch = epoch or datetime.now(UTC)

    def frames(self) -> Iterator[Frame]:
        with av.open(str(self.path)) as container:
            streams = [*container.streams.video[:1], *container.streams.audio[:1]]
            for packet in container.demux(streams):
                for frame in packet.decode():
                    if isinstance(frame, av.VideoFrame | av.AudioFrame):
                        yield frame


class DeviceSource:
    """V4L2 camera and ALSA or PulseAudio microphone.

    Both demuxers stamp frames with wall-clock microseconds (v4l2 converts the driver's
    monotonic clock with timestamps=mono2abs), so the epoch is the Unix epoch and the two
    streams share one clock. Each device is read by its own
    thread; frames meet in a queue.
    """

    def __init__(
        self,
        *,
        video_device: str = "/dev/video0",
        audio_device: str | None = "default",
        audio_format: str = "alsa",
        width: int = 1280,
        height: int = 720,
        fps: int = 25,
        sample_rate: int = 48_000,
        channels: int = 1,
    ) -> None:
        self.epoch = UNIX_EPOCH
        self.video_device, self.audio_device, self.audio_format = (
            video_device,
            audio_device,
            audio_format,
        )
        self.video_options = {
            "video_size": f"{width}x{height}",
            "framerate": str(fps),
            "timestamps": "mono2abs",
        }
        self.audio_options = {"sample_rate": str(sample_rate), "channels": str(channels)}

    @staticmethod
    def available(video_device: str = "/dev/video0") -> bool:
        return Path(video_device).exists()

    def frames(self) -> Generator[Frame, None, None]:
        """Close the generator to release the devices."""
        inputs = [av.open(self.video_device, format="v4l2", options=self.video_options)]
        if self.audio_device is not None:
            inputs.append(
                av.open(self.audio_device, format=self.audio_format, options=self.audio_options)
            )
        frames: queue.Queue[Frame | BaseException] = queue.Queue(maxsize=64)
        stop = threading.Event()
        readers = [
            threading.Thread(target=_read_device, args=(c, frames, stop), daemon=True)
            for c in inputs
        ]
        for reader in readers:
            reader.start()
        try:
            while True:
                item = frames.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            for reader in readers:
                reader.join(timeout=2)
            for container in inputs:
                container.close()


def _read_device(
    container: av.container.InputContainer,
    out: queue.Queue[Frame | BaseException],
    stop: threading.Event,
) -> None:
    try:
        for frame in container.decode(container.streams[0]):
            if stop.is_set():
                return
            if isinstance(frame, av.VideoFrame | av.AudioFrame):
                out.put(frame)
    except BaseException as exc:  # handed to the consumer, which raises it
        out.put(exc)


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}[channels]
