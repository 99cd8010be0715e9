"""The PDF of a composed document: A4, fonts embedded, the same bytes for the same input.

reportlab with ``invariant=1`` writes no timestamp and a fixed document id; TrueType fonts are
subset in the order glyphs are first used, so the subset (and its name) is a function of the text.
Two fonts, both with TrueType outlines (reportlab embeds no CFF): AR PL UMing (a 宋体 / Ming face)
for the body and WenQuanYi Zen Hei (黑体) for titles and for any character UMing lacks. A character
neither font has is refused rather than printed as an empty box.

The bytes also depend on the font files and the reportlab version: ``Fonts.identity`` names them,
so a server that renders differently can say why.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import reportlab
from reportlab.lib.colors import Color, black
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from mobile_api.contracts.documents.compose import Composed, Paragraph, Row, Table
from mobile_api.contracts.documents.errors import FontMissing, UnprintableText
from mobile_api.contracts.qr import make_qr

MM = 72 / 25.4
PAGE_W, PAGE_H = A4
LEFT, RIGHT, TOP, BOTTOM = 28 * MM, 26 * MM, 20 * MM, 22 * MM
WIDTH = PAGE_W - LEFT - RIGHT
BODY_SIZE, BODY_LEADING = 12.0, 20.5
SMALL_SIZE, SMALL_LEADING = 9.5, 15.0
CELL_PAD = 5.0
LABEL_W = 40 * MM
QR_SIZE = 24 * MM
GREY = Color(0.35, 0.35, 0.35)
# reportlab keeps per-document font subset state on the shared font objects: one render at a time
_RENDER_LOCK = threading.Lock()
MAX_JUSTIFY = 0.3  # of the font size: the widest gap justification may add between characters

# Debian's packages (fonts-arphic-uming, fonts-wqy-zenhei); "path#index" in the environment
# variables picks other files, e.g. on a terminal that ships its own copies.
BODY_FONT = (
    "ZHIFA_DOCUMENT_FONT_BODY",
    "/usr/share/fonts/truetype/arphic/uming.ttc#0",
    "fonts-arphic-uming",
)
HEADING_FONT = (
    "ZHIFA_DOCUMENT_FONT_HEADING",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc#0",
    "fonts-wqy-zenhei",
)

_NO_LINE_START = set("，。、；：？！）》」』”’〕】％…—,.;:?!)]%")
_NO_LINE_END = set("（《「『“‘〔【(［[")


@dataclass(frozen=True)
class Fonts:
    body: str  # registered reportlab font names
    heading: str
    body_chars: frozenset[int]
    heading_chars: frozenset[int]
    identity: str  # reportlab version and the SHA-256 of each font file

    def face(self, ch: str, heading: bool = False) -> str:
        code = ord(ch)
        first, second = (self.heading, self.body) if heading else (self.body, self.heading)
        first_chars = self.heading_chars if heading else self.body_chars
        if code in first_chars or ch in " \n":
            return first
        if code in (self.body_chars if heading else self.heading_chars):
            return second
        raise UnprintableText(
            f"文书字体中没有字符「{ch}」（U+{code:04X}），无法打印；请改用常用字或同音说明",
            character=ch,
            codepoint=f"U+{code:04X}",
        )


def _locate(spec: tuple[str, str, str]) -> tuple[Path, int]:
    variable, default, package = spec
    value = os.environ.get(variable) or default
    path, _, index = value.partition("#")
    if not Path(path).is_file():
        raise FontMissing(
            f"未找到文书字体 {path}：请安装 {package}，或以环境变量 {variable} 指定字体文件",
            path=path,
        )
    return Path(path), int(index or 0)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.cache
def _register(path: Path, index: int) -> tuple[str, frozenset[int], str]:
    font = TTFont(f"zhifa-{_sha256(path)[:12]}-{index}", str(path), subfontIndex=index)
    pdfmetrics.registerFont(font)
    return font.fontName, frozenset(font.face.charToGlyph), _sha256(path)


@functools.cache
def _fonts(body: tuple[Path, int], heading: tuple[Path, int]) -> Fonts:
    body_name, body_chars, body_hash = _register(*body)
    heading_name, heading_chars, heading_hash = _register(*heading)
    identity = (
        f"reportlab {reportlab.Version}; {body[0].name}#{body[1]} sha256:{body_hash}; "
        f"{heading[0].name}#{heading[1]} sha256:{heading_hash}"
    )
    return Fonts(body_name, heading_name, body_chars, heading_chars, identity)


def default_fonts() -> Fonts:
    """The document fonts of this machine (loaded once per process)."""
    return _fonts(_locate(BODY_FONT), _locate(HEADING_FONT))


# --- line breaking ------------------------------------------------------------------------------


@dataclass
class _Line:
    runs: list[tuple[str, str]]  # (text, font name)
    natural: float
    chars: int
    last: bool  # the last line of its paragraph: not justified


def _tokens(text: str) -> list[str]:
    """Characters, except that runs of Latin letters and digits stay whole (numbers, IDs, URLs)."""
    out: list[str] = []
    for ch in text:
        joins = ch.isascii() and (ch.isalnum() or ch in "./-:@_")
        if joins and out and out[-1][-1].isascii() and out[-1][-1].isalnum():
            out[-1] += ch
        else:
            out.append(ch)
    return out


def _width(fonts: Fonts, text: str, size: float, heading: bool = False) -> float:
    return sum(pdfmetrics.stringWidth(ch, fonts.face(ch, heading), size) for ch in text)


def _runs(fonts: Fonts, text: str, heading: bool = False) -> list[tuple[str, str]]:
    runs: list[tuple[str, str]] = []
    for ch in text:
        face = fonts.face(ch, heading)
        if runs and runs[-1][1] == face:
            runs[-1] = (runs[-1][0] + ch, face)
        else:
            runs.append((ch, face))
    return runs


def wrap(fonts: Fonts, text: str, width: float, size: float, indent: bool = False) -> list[_Line]:
    """Break ``text`` into lines of at most ``width`` points, Chinese line-breaking rules applied:
    closing punctuation hangs rather than start a line, opening punctuation never ends one."""
    lines: list[_Line] = []
    for para in text.split("\n"):
        tokens = _tokens(("\u3000\u3000" if indent else "") + para)
        current: list[str] = []
        used = 0.0
        for token in tokens:
            w = _width(fonts, token, size)
            fits = used + w <= width + 0.01
            if current and not fits and token[0] not in _NO_LINE_START:
                carry: list[str] = []
                while current and current[-1][-1] in _NO_LINE_END:
                    carry.insert(0, current.pop())
                lines.append(_make_line(fonts, "".join(current), size, last=False))
                current, used = carry, sum(_width(fonts, t, size) for t in carry)
            current.append(token)
            used += w
        lines.append(_make_line(fonts, "".join(current), size, last=True))
    return lines


def _make_line(fonts: Fonts, text: str, size: float, last: bool) -> _Line:
    return _Line(_runs(fonts, text), _width(fonts, text, size), len(text), last)


# --- page layout --------------------------------------------------------------------------------


class _Writer:
    """Draws onto pages top-down; ``ensure`` starts a new page when the next item would not fit."""

    def __init__(
        self, canvas: Canvas, fonts: Fonts, doc: Composed, url: str, doc_id: str, pages: int
    ) -> None:
        self.c = canvas
        self.fonts = fonts
        self.doc = doc
        self.url = url
        self.doc_id = doc_id
        self.pages = pages
        self.page = 0
        self.y = 0.0
        self._start_page()

    # pages
    def _start_page(self) -> None:
        if self.page:
            self._finish_page()
            self.c.showPage()
        self.page += 1
        if self.page == 1:
            self._first_header()
        else:
            self._text(
                LEFT, PAGE_H - TOP, f"{self.doc.title}（{self.doc.number}）续页", SMALL_SIZE, GREY
            )
            self.y = PAGE_H - TOP - 2 * SMALL_LEADING

    def _finish_page(self) -> None:
        footer = f"第 {self.page} 页　共 {self.pages} 页"
        self._centred(BOTTOM - 4, footer, SMALL_SIZE, GREY)
        self._text(LEFT, BOTTOM - 4 - SMALL_LEADING, f"核验码 {self.doc_id}", 8, GREY)
        right = f"{self.doc.number}"
        self._text(
            PAGE_W - RIGHT - _width(self.fonts, right, 8),
            BOTTOM - 4 - SMALL_LEADING,
            right,
            8,
            GREY,
        )

    def finish(self) -> None:
        self._finish_page()
        self.c.showPage()

    def ensure(self, height: float) -> None:
        if self.y - height < BOTTOM + 1.5 * SMALL_LEADING:
            self._start_page()

    # primitives
    def _text(
        self,
        x: float,
        y: float,
        text: str,
        size: float,
        colour: Color = black,
        heading: bool = False,
    ) -> None:
        t = self.c.beginText(x, y)
        t.setFillColor(colour)
        for run, face in _runs(self.fonts, text, heading):
            t.setFont(face, size)
            t.textOut(run)
        self.c.drawText(t)

    def _centred(
        self, y: float, text: str, size: float, colour: Color = black, heading: bool = False
    ) -> None:
        w = _width(self.fonts, text, size, heading)
        self._text((PAGE_W - w) / 2, y, text, size, colour, heading)

    def _line(
        self,
        x: float,
        y: float,
        line: _Line,
        width: float,
        size: float,
        align: str,
        justify: bool = True,
    ) -> None:
        gaps = line.chars - 1
        full = justify and gaps > 0 and not line.last and align == "left"
        spacing = (width - line.natural) / gaps if full else 0.0
        if spacing > size * MAX_JUSTIFY:
            spacing = 0.0  # a long number went to the next line: ragged beats gappy
        if align == "center":
            x += (width - line.natural) / 2
        elif align == "right":
            x += width - line.natural
        t = self.c.beginText(x, y)
        t.setCharSpace(spacing)
        for run, face in line.runs:
            t.setFont(face, size)
            t.textOut(run)
        self.c.drawText(t)

    def _first_header(self) -> None:
        top = PAGE_H - TOP
        self._qr(PAGE_W - RIGHT - QR_SIZE, top - QR_SIZE)
        caption = "扫码核验真伪"
        self._text(
            PAGE_W - RIGHT - QR_SIZE / 2 - _width(self.fonts, caption, 7) / 2,
            top - QR_SIZE - 8,
            caption,
            7,
            GREY,
        )
        self._centred(top - 30, self.doc.agency, 16, heading=True)
        self._centred(top - 62, self.doc.title, 22, heading=True)
        self._centred(top - 88, self.doc.number, BODY_SIZE)
        self.c.setLineWidth(0.8)
        self.c.line(LEFT, top - 98, PAGE_W - RIGHT, top - 98)
        self.y = top - 98 - BODY_LEADING * 1.3

    def _qr(self, x: float, y: float) -> None:
        qr = make_qr(self.url)
        matrix = [list(row) for row in qr.matrix]
        n = len(matrix)
        border = 2  # the page margin is white already; two modules keep the code apart from text
        module = QR_SIZE / (n + 2 * border)
        self.c.setFillColor(black)
        for r, row in enumerate(matrix):
            c = 0
            while c < n:
                if row[c]:
                    start = c
                    while c < n and row[c]:
                        c += 1
                    self.c.rect(
                        x + (border + start) * module,
                        y + QR_SIZE - (border + r + 1) * module,
                        (c - start) * module,
                        module,
                        stroke=0,
                        fill=1,
                    )
                else:
                    c += 1

    # blocks
    def paragraph(self, p: Paragraph) -> None:
        size, leading = (SMALL_SIZE, SMALL_LEADING) if p.small else (BODY_SIZE, BODY_LEADING)
        for line in wrap(self.fonts, p.text, WIDTH, size, p.indent and p.align == "left"):
            self.ensure(leading)
            self._line(LEFT, self.y, line, WIDTH, size, p.align)
            self.y -= leading
        if p.small:
            self.y -= 2

    def table(self, table: Table) -> None:
        self.y += BODY_LEADING * 0.35
        for row in table.rows:
            self._row(row)
        self.y -= BODY_LEADING * 0.65

    def _row(self, row: Row) -> None:
        value_w = WIDTH - LABEL_W - 2 * CELL_PAD
        labels = wrap(self.fonts, row.label, LABEL_W - 2 * CELL_PAD, BODY_SIZE)
        values = wrap(self.fonts, row.text, value_w, BODY_SIZE) if row.text else []
        image_h = 16 * MM if row.image else 0.0
        # an empty signature cell leaves room to sign the printed paper by hand
        blank = 14 * MM if "签名" in row.label and not row.text and not row.image else 0.0
        height = max(len(labels), len(values)) * BODY_LEADING + image_h + blank + 2 * CELL_PAD - 6
        self.ensure(height)
        top = self.y + BODY_LEADING - 4
        self.c.setLineWidth(0.6)
        self.c.rect(LEFT, top - height, WIDTH, height, stroke=1, fill=0)
        self.c.line(LEFT + LABEL_W, top, LEFT + LABEL_W, top - height)
        y = top - CELL_PAD - BODY_SIZE
        for line in labels:
            self._line(LEFT + CELL_PAD, y, line, LABEL_W - 2 * CELL_PAD, BODY_SIZE, "left", False)
            y -= BODY_LEADING
        y = top - CELL_PAD - BODY_SIZE
        for line in values:
            self._line(LEFT + LABEL_W + CELL_PAD, y, line, value_w, BODY_SIZE, "left", False)
            y -= BODY_LEADING
        if row.image:
            image = ImageReader(io.BytesIO(row.image))
            iw, ih = image.getSize()
            w = min(value_w, image_h * iw / ih)
            self.c.drawImage(
                image,
                LEFT + LABEL_W + CELL_PAD,
                top - height + CELL_PAD,
                w,
                image_h - 2,
                mask="auto",
            )
        self.y = top - height - BODY_LEADING + 4

    def signatures(self) -> None:
        """Officers, the party's receipt line, the seal and date, and the footer: kept together."""
        doc = self.doc
        officers = wrap(self.fonts, doc.officers, WIDTH, BODY_SIZE) if doc.officers else []
        footer = wrap(self.fonts, doc.footer, WIDTH, SMALL_SIZE) if doc.footer else []
        height = BODY_LEADING * (0.5 + len(officers) + (1.5 if doc.party_sign else 0))
        height += BODY_LEADING * (2.8 if doc.seal else 0) + (BODY_LEADING * 0.5 if footer else 0)
        self.ensure(height + len(footer) * SMALL_LEADING)
        self.y -= BODY_LEADING * 0.5
        if officers:
            for line in officers:
                self._line(LEFT, self.y, line, WIDTH, BODY_SIZE, "left")
                self.y -= BODY_LEADING
        if doc.party_sign:
            self._text(
                LEFT,
                self.y - 4,
                "当事人签收：＿＿＿＿＿＿＿＿＿　　日期：＿＿＿＿年＿＿月＿＿日",
                BODY_SIZE,
            )
            self.y -= BODY_LEADING * 1.5
        if doc.seal:
            self.y -= BODY_LEADING * 0.8
            right = PAGE_W - RIGHT - 2 * BODY_SIZE
            name = f"{doc.agency}（印章）"
            self._text(right - _width(self.fonts, name, BODY_SIZE), self.y, name, BODY_SIZE)
            self.y -= BODY_LEADING
            self._text(right - _width(self.fonts, doc.date, BODY_SIZE), self.y, doc.date, BODY_SIZE)
            self.y -= BODY_LEADING
        if doc.footer:
            self.y -= BODY_LEADING * 0.5
            self.paragraph(Paragraph(doc.footer, indent=False, small=True))


def _draw(doc: Composed, url: str, doc_id: str, fonts: Fonts, pages: int) -> tuple[bytes, int]:
    buffer = io.BytesIO()
    canvas = Canvas(
        buffer,
        pagesize=A4,
        invariant=1,
        pageCompression=1,
        initialFontName=fonts.body,
        initialFontSize=BODY_SIZE,
    )
    canvas.setTitle(f"{doc.title} {doc.number}")
    canvas.setAuthor(doc.agency)
    canvas.setCreator("zhifa")
    canvas.setProducer("zhifa")
    writer = _Writer(canvas, fonts, doc, url, doc_id, pages)
    for block in doc.blocks:
        if isinstance(block, Table):
            writer.table(block)
        else:
            writer.paragraph(block)
    writer.signatures()
    writer.finish()
    canvas.save()
    return buffer.getvalue(), writer.page


def to_pdf(doc: Composed, url: str, doc_id: str, fonts: Fonts) -> bytes:
    """Two passes: the first counts the pages so every footer can say 第 i 页 共 n 页."""
    with _RENDER_LOCK:
        _, pages = _draw(doc, url, doc_id, fonts, 0)
        pdf, drawn = _draw(doc, url, doc_id, fonts, pages)
    assert drawn == pages
    return pdf
