"""QR rendering of a verification URL (segno): PNG, SVG and text for a terminal window.

Used by the server's endpoints for the officer's current code and by the edge agent's card.
Error correction M, never boosted: a smaller version reads better at arm's length than extra
redundancy does on a clean screen.
"""

from __future__ import annotations

import io

import segno

ERROR_CORRECTION = "m"


def make_qr(url: str) -> segno.QRCode:
    return segno.make_qr(url, error=ERROR_CORRECTION, boost_error=False)


def qr_png(url: str, scale: int = 8) -> bytes:
    buffer = io.BytesIO()
    make_qr(url).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def qr_svg(url: str, scale: int = 6) -> bytes:
    buffer = io.BytesIO()
    make_qr(url).save(
        buffer, kind="svg", scale=scale, border=4, xmldecl=False, title="执法证件核验二维码"
    )
    return buffer.getvalue()


def qr_text(url: str) -> str:
    """Two module rows per line in Unicode half blocks, light modules drawn: for a dark terminal."""
    buffer = io.StringIO()
    make_qr(url).terminal(out=buffer, compact=True)
    return buffer.getvalue()
