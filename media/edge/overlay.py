"""Burn date-time (China time), terminal id and credential number into every picture.

GA/T 947 asks enforcement recorders to show these on the picture. The `av` wheel has no drawtext
filter, so the text is drawn with Pillow into a small strip once per second, converted to
yuv420p once, and copied into each frame's planes with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

# China has kept UTC+8 without DST since 1991; a fixed offset needs no tzdata on the terminal.
CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")

# (path, face index) of fonts with CJK glyphs: Debian/Ubuntu, then Android terminals.
CJK_FONTS: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),
    ("/system/fonts/NotoSansCJK-Regular.ttc", 2),
)


def load_font(size: int, path: str | None = None) -> tuple[ImageFont.FreeTypeFont, bool]:
    """A font of `size` px and whether it can draw Chinese labels."""
    candidates = ((path, 0),) if path else CJK_FONTS
    for font_path, index in candidates:
        if Path(font_path).exists():
            return ImageFont.truetype(font_path, size, index=index), True
    # Pillow's bundled scalable font has Latin glyphs only.
    font = ImageFont.load_default(size)
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise RuntimeError("Pillow is built without FreeType: no font to draw the overlay")
    return font, False


def plane_view(frame: av.VideoFrame, index: int) -> np.ndarray:
    """Writable numpy view of one plane of `frame`, without the line padding."""
    plane = frame.planes[index]
    rows = np.frombuffer(memoryview(plane), np.uint8, count=plane.line_size * plane.height)
    return rows.reshape(plane.height, plane.line_size)[:, : plane.width]


@dataclass(frozen=True)
class Strip:
    """Rendered text in yuv420p planes; width and height are even for chroma subsampling."""

    second: int
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray


class Overlay:
    def __init__(
        self,
        terminal_id: str,
        credential_no: str,
        *,
        width: int,
        height: int,
        font_path: str | None = None,
    ) -> None:
        size = max(10, height // 30)
        self._font, cjk = load_font(size, font_path)
        self._identity = (
            f"终端 {terminal_id}  证号 {credential_no}"
            if cjk
            else f"TERM {terminal_id}  ID {credential_no}"
        )
        self._pad = max(2, size // 4)
        self._margin = _even(max(2, height // 60))
        ascent, descent = self._font.getmetrics()
        self._line = ascent + descent
        # The clock line is measured with its widest digits so the strip never changes size.
        widest = max("0123456789", key=self._font.getlength)
        clock_w = self._font.getlength(f"{widest * 4}-{widest * 2}-{widest * 2} " + widest * 6)
        text_w = max(clock_w, self._font.getlength(self._identity))
        self._w = min(_even(int(text_w) + 2 * self._pad), _even(width - 2 * self._margin - 1))
        self._h = min(_even(2 * self._line + 3 * self._pad), _even(height - 2 * self._margin - 1))
        self._strip: Strip | None = None

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) of the strip on the picture."""
        return self._margin, self._margin, self._w, self._h

    def strip(self, when: datetime) -> Strip:
        """The strip for the second containing `when`, rendered at most once per second."""
        second = int(when.timestamp() // 1)
        if self._strip is None or self._strip.second != second:
            self._strip = self._render(second)
        return self._strip

    def apply(self, frame: av.VideoFrame, when: datetime) -> None:
        """Draw onto a yuv420p `frame` in place (copying first if the decoder shares it)."""
        strip = self.strip(when)
        frame.make_writable()
        x, y, w, h = self.box
        plane_view(frame, 0)[y : y + h, x : x + w] = strip.y
        cx, cy, cw, ch = x // 2, y // 2, w // 2, h // 2
        plane_view(frame, 1)[cy : cy + ch, cx : cx + cw] = strip.u
        plane_view(frame, 2)[cy : cy + ch, cx : cx + cw] = strip.v

    def _render(self, second: int) -> Strip:
        clock = datetime.fromtimestamp(second, CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")
        image = Image.new("RGB", (self._w, self._h))
        draw = ImageDraw.Draw(image)
        white = (255, 255, 255)
        draw.text((self._pad, self._pad), clock, fill=white, font=self._font)
        draw.text(
            (self._pad, 2 * self._pad + self._line), self._identity, fill=white, font=self._font
        )
        yuv = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24").reformat(
            format="yuv420p"
        )
        y, u, v = (plane_view(yuv, i).copy() for i in range(3))
        return Strip(second, y, u, v)


def _even(n: int) -> int:
    return n - n % 2
