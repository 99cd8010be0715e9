"""The staff console's one look (执法工作台): layout, filters and response headers shared by every
area's server-rendered pages (case list, review). Areas stay independent of each other (DESIGN.md
§3), so what they share lives here; this module knows Jinja, not Litestar.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape

from server.core.clock import CHINA_TZ


def _china_time(value: dt.datetime | None) -> str:
    return value.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M") if value else ""


def _yuan(value: Decimal | None) -> str:
    return "不限" if value is None else f"{value.normalize():,f}"


def console_templates(package: str) -> Environment:
    """An area's templates, which extend ``console.html`` (the shared layout)."""
    environment = Environment(
        loader=ChoiceLoader(
            [PackageLoader(package, "templates"), PackageLoader("server.core", "templates")]
        ),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(china_time=_china_time, yuan=_yuan)
    return environment


def page_headers(script_nonce: str | None = None) -> dict[str, str]:
    """No caching, no framing; scripts only with the page's nonce, none without one."""
    scripts = f"'nonce-{script_nonce}'" if script_nonce else "'none'"
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": (
            f"default-src 'self'; script-src {scripts}; style-src 'unsafe-inline'; "
            "img-src 'self' data: http: https:; media-src 'self' http: https:; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }
